#!/usr/bin/env python3
"""Compare `swiftkv eval --log-samples` with lm-evaluation-harness's per-item samples.

Standard library only (any python3).

  scripts/compare_lm_eval.py --lm-eval build-lmeval/lm-eval-results --swiftkv skv_samples.jsonl

--lm-eval: lm-eval's --output_path directory (searched for samples_<task>_<time>.jsonl; the newest
file per task wins) or the samples files themselves. Each line: doc_id, target, filtered_resps
[[loglikelihood, is_greedy], ...] (lm-eval writes both as strings), acc, acc_norm, arguments.

--swiftkv: JSONL file(s), one line per item:
  {"task", "doc_id", "target", "loglikelihoods": [...], "is_greedy": [...], "pred", "pred_norm",
   "acc", "acc_norm"}
doc_id is the item's index in the local data file (lm-eval's doc_id for the *_local tasks);
task names are matched with any "_local" suffix removed (arc_easy == arc_easy_local).
pred / pred_norm / acc / acc_norm may be missing: they are then recomputed from the
loglikelihoods the way lm-eval does (argmax ll; argmax ll / len(choice text in characters)).

Per task it prints the items compared, the per-item agreement of the argmax prediction for acc
and acc_norm, the score difference in points, max / mean |loglikelihood difference| over all
choices, and the disagreeing items with their log-likelihood gaps. Exit status 1 if an agreement
is below --min-agreement (99%) or a score differs by more than --max-score-diff (0.5 points);
2 for unusable input (no common items, target mismatches).

--to-swiftkv-format OUT writes lm-eval's samples in the swiftkv format instead (optionally with
Gaussian noise of --perturb nats on every loglikelihood and --flip N items' top two choices
swapped), to test this script: against itself it must report 100% and 0 differences.
"""
import argparse
import glob
import json
import os
import random
import re
import sys


def task_key(name):
    return name[:-len("_local")] if name.endswith("_local") else name


def first_argmax(xs):
    # np.argmax semantics (first maximum), as lm-eval uses.
    best = 0
    for i, x in enumerate(xs):
        if x > xs[best]:
            best = i
    return best


def per_char(lls, lens):
    return [x / n for x, n in zip(lls, lens)]


def choice_texts(s):
    """Choice strings as lm-eval's doc_to_choice gives them (continuations minus the delimiter)."""
    doc = s.get("doc", {})
    if isinstance(doc.get("choices"), dict) and "text" in doc["choices"]:
        return list(doc["choices"]["text"])  # ARC (HF ai2_arc fields)
    if "sol1" in doc and "sol2" in doc:
        return [doc["sol1"], doc["sol2"]]  # PIQA
    args = s.get("arguments", {})
    conts = [args[k]["arg_1"] for k in sorted(args, key=lambda k: int(k.rsplit("_", 1)[1]))]
    return [c[1:] if c.startswith(" ") else c for c in conts]  # default target_delimiter " "


def load_lm_eval(paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += glob.glob(os.path.join(p, "**", "samples_*.jsonl"), recursive=True)
        else:
            files.append(p)
    newest = {}
    for f in files:
        m = re.match(r"samples_(.+)_(\d{4}-\d\d-\d\dT[\d.\-]+)\.jsonl$", os.path.basename(f))
        task = m.group(1) if m else os.path.basename(f)[len("samples_"):-len(".jsonl")]
        if task not in newest or os.path.getmtime(f) > os.path.getmtime(newest[task]):
            newest[task] = f
    out = {}
    for task, f in newest.items():
        items = {}
        with open(f) as fh:
            for line in fh:
                s = json.loads(line)
                resps = s["filtered_resps"]
                lls = [float(r[0]) for r in resps]
                greedy = [str(r[1]) == "True" for r in resps]
                lens = [float(len(c)) for c in choice_texts(s)]
                if len(lens) != len(lls):
                    sys.exit(f"{f}: doc {s['doc_id']}: {len(lls)} loglikelihoods, "
                             f"{len(lens)} choices")
                pred = first_argmax(lls)
                pred_norm = first_argmax(per_char(lls, lens))
                gold = int(s["target"])
                # lm-eval's own acc/acc_norm must be what we recompute (else the parsing is wrong).
                assert float(s["acc"]) == float(pred == gold), (f, s["doc_id"])
                assert float(s["acc_norm"]) == float(pred_norm == gold), (f, s["doc_id"])
                items[int(s["doc_id"])] = dict(target=gold, lls=lls, greedy=greedy, lens=lens,
                                               pred=pred, pred_norm=pred_norm,
                                               acc=float(s["acc"]),
                                               acc_norm=float(s["acc_norm"]))
        out[task_key(task)] = (task, f, items)
    return out


def load_swiftkv(paths):
    out = {}
    for p in paths:
        with open(p) as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                r = json.loads(line)
                key = task_key(r["task"])
                items = out.setdefault(key, (r["task"], p, {}))[2]
                doc = int(r["doc_id"])
                if doc in items:
                    sys.exit(f"{p}:{n}: duplicate item {r['task']} doc_id {doc}")
                items[doc] = r
    return out


def compare_task(name, ref, skv, a):
    """Returns (ok, summary dict)."""
    common = sorted(set(ref) & set(skv))
    only_ref, only_skv = len(set(ref) - set(skv)), len(set(skv) - set(ref))
    print(f"\n== {name}: {len(common)} items compared"
          + (f" ({only_ref} only in lm-eval, {only_skv} only in swiftkv)"
             if only_ref or only_skv else ""))
    if not common:
        return False, None
    agree = agree_norm = 0
    acc_r = acc_s = accn_r = accn_s = 0.0
    diffs = []
    bad = []
    problems = 0
    for d in common:
        r, s = ref[d], skv[d]
        lls = [float(x) for x in s["loglikelihoods"]]
        if len(lls) != len(r["lls"]):
            print(f"  doc {d}: {len(lls)} choices in swiftkv, {len(r['lls'])} in lm-eval")
            problems += 1
            continue
        if "target" in s and s["target"] is not None and int(s["target"]) != r["target"]:
            print(f"  doc {d}: target {s['target']} in swiftkv, {r['target']} in lm-eval")
            problems += 1
            continue
        gold = r["target"]
        lens = r["lens"]
        pred = int(s["pred"]) if s.get("pred") is not None else first_argmax(lls)
        pred_norm = (int(s["pred_norm"]) if s.get("pred_norm") is not None
                     else first_argmax(per_char(lls, lens)))
        sa = float(s["acc"]) if s.get("acc") is not None else float(pred == gold)
        sn = float(s["acc_norm"]) if s.get("acc_norm") is not None else float(pred_norm == gold)
        rl = r["lls"]
        diffs += [abs(x - y) for x, y in zip(lls, rl)]
        agree += pred == r["pred"]
        agree_norm += pred_norm == r["pred_norm"]
        acc_r += r["acc"]
        acc_s += sa
        accn_r += r["acc_norm"]
        accn_s += sn
        if pred != r["pred"] or pred_norm != r["pred_norm"]:
            bad.append((d, gold, r, rl, lls, lens, pred, pred_norm))
    if problems:
        print(f"  {problems} items with mismatched targets / choice counts: inputs differ")
        return False, None
    n = len(common)
    alld = sorted(diffs)
    dmax, dmean = alld[-1], sum(alld) / len(alld)
    p99 = alld[min(len(alld) - 1, int(0.99 * len(alld)))]
    pa, pn = 100.0 * agree / n, 100.0 * agree_norm / n
    da, dn = 100.0 * (acc_s - acc_r) / n, 100.0 * (accn_s - accn_r) / n
    print(f"  argmax agreement: acc {pa:.2f}% ({agree}/{n}), acc_norm {pn:.2f}% ({agree_norm}/{n})")
    print(f"  acc      lm-eval {100 * acc_r / n:.2f}  swiftkv {100 * acc_s / n:.2f}  "
          f"diff {da:+.2f} points")
    print(f"  acc_norm lm-eval {100 * accn_r / n:.2f}  swiftkv {100 * accn_s / n:.2f}  "
          f"diff {dn:+.2f} points")
    print(f"  |loglikelihood diff| over {len(alld)} choices: max {dmax:.3e}, "
          f"mean {dmean:.3e}, p99 {p99:.3e}")
    if bad:
        print(f"  disagreeing items ({len(bad)}); gap = ll[lm-eval's pick] - ll[swiftkv's pick] "
              f"(normalised per char for acc_norm) under each engine:")
        for d, gold, r, rl, lls, lens, pred, pred_norm in bad[:a.show]:
            parts = []
            if pred != r["pred"]:
                parts.append(f"acc: lm-eval picks {r['pred']}, swiftkv {pred} "
                             f"(gold {gold}); gap lm-eval {rl[r['pred']] - rl[pred]:+.3e}, "
                             f"swiftkv {lls[r['pred']] - lls[pred]:+.3e}")
            if pred_norm != r["pred_norm"]:
                q, p = r["pred_norm"], pred_norm
                parts.append(f"acc_norm: lm-eval picks {q}, swiftkv {p} (gold {gold}); "
                             f"gap lm-eval {rl[q] / lens[q] - rl[p] / lens[p]:+.3e}, "
                             f"swiftkv {lls[q] / lens[q] - lls[p] / lens[p]:+.3e}")
            worst = max(abs(x - y) for x, y in zip(lls, rl))
            print(f"    doc {d}: max |dll| {worst:.3e}; " + "; ".join(parts))
        if len(bad) > a.show:
            print(f"    ... {len(bad) - a.show} more (--show N)")
    ok = (pa >= a.min_agreement and pn >= a.min_agreement
          and abs(da) <= a.max_score_diff and abs(dn) <= a.max_score_diff)
    print(f"  {'PASS' if ok else 'FAIL'} (agreement >= {a.min_agreement}%, "
          f"|score diff| <= {a.max_score_diff} points)")
    return ok, dict(n=n, agree=pa, agree_norm=pn, dacc=da, dacc_norm=dn,
                    max_dll=dmax, mean_dll=dmean)


def to_swiftkv_format(ref, out, sigma, flip, seed):
    rng = random.Random(seed)
    rows = []
    for key, (task, _, items) in sorted(ref.items()):
        for d, r in sorted(items.items()):
            rows.append([task, d, r])
    flip_idx = set(rng.sample(range(len(rows)), min(flip, len(rows))))
    with open(out, "w") as f:
        for i, (task, d, r) in enumerate(rows):
            lls = [x + rng.gauss(0.0, sigma) if sigma else x for x in r["lls"]]
            if i in flip_idx and len(lls) > 1:
                top = sorted(range(len(lls)), key=lambda j: -lls[j])[:2]
                lls[top[0]], lls[top[1]] = lls[top[1]], lls[top[0]]
            pred = first_argmax(lls)
            pred_norm = first_argmax(per_char(lls, r["lens"]))
            f.write(json.dumps({
                "task": task_key(task), "doc_id": d, "target": r["target"],
                "loglikelihoods": lls, "is_greedy": r["greedy"],
                "pred": pred, "pred_norm": pred_norm,
                "acc": float(pred == r["target"]), "acc_norm": float(pred_norm == r["target"]),
            }) + "\n")
    print(f"wrote {out}: {len(rows)} items, noise sigma {sigma}, {len(flip_idx)} flipped")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--lm-eval", nargs="+", required=True,
                    help="lm-eval output directory or samples_*.jsonl files")
    ap.add_argument("--swiftkv", nargs="+", help="swiftkv eval --log-samples JSONL file(s)")
    ap.add_argument("--tasks", help="comma-separated subset (names with or without _local)")
    ap.add_argument("--min-agreement", type=float, default=99.0, help="percent (default 99)")
    ap.add_argument("--max-score-diff", type=float, default=0.5, help="points (default 0.5)")
    ap.add_argument("--show", type=int, default=20, help="disagreeing items to list per task")
    ap.add_argument("--to-swiftkv-format", metavar="OUT",
                    help="write lm-eval's samples in the swiftkv format (self-test) and exit")
    ap.add_argument("--perturb", type=float, default=0.0,
                    help="with --to-swiftkv-format: Gaussian noise (nats) on each loglikelihood")
    ap.add_argument("--flip", type=int, default=0,
                    help="with --to-swiftkv-format: swap the top two choices of N random items")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    ref = load_lm_eval(a.lm_eval)
    if a.tasks:
        want = {task_key(t) for t in a.tasks.split(",")}
        ref = {k: v for k, v in ref.items() if k in want}
    if not ref:
        sys.exit("no lm-eval samples found")
    if a.to_swiftkv_format:
        to_swiftkv_format(ref, a.to_swiftkv_format, a.perturb, a.flip, a.seed)
        return
    if not a.swiftkv:
        ap.error("--swiftkv is required (or --to-swiftkv-format)")
    skv = load_swiftkv(a.swiftkv)
    if a.tasks:
        skv = {k: v for k, v in skv.items() if k in want}
    for k in sorted(set(skv) - set(ref)):
        print(f"note: task {skv[k][0]} is in swiftkv's samples only; not compared")
    for k in sorted(set(ref) - set(skv)):
        print(f"note: task {ref[k][0]} is in lm-eval's samples only; not compared")
    status = 0
    compared = 0
    for k in sorted(set(ref) & set(skv)):
        rtask, rfile, ritems = ref[k]
        stask, sfile, sitems = skv[k]
        print(f"\nlm-eval {rtask}: {rfile}\nswiftkv {stask}: {sfile}")
        ok, summ = compare_task(k, ritems, sitems, a)
        if summ is None:
            status = 2
        elif not ok and status == 0:
            status = 1
        compared += summ is not None
    if not compared:
        print("no task in common")
        status = 2
    print(f"\n{'OK' if status == 0 else 'FAILED'}")
    sys.exit(status)


if __name__ == "__main__":
    main()
