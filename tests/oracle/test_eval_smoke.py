#!/usr/bin/env python3
"""End-to-end `swiftkv eval` on the tiny random Llama fixture (tests/fixtures/models/llama_gqa):
runs `eval --tasks mc:<fixture>,arc_easy --limit 5`, checks the results JSON and the sample log
have the documented shape, and cross-checks every log-likelihood the scorer reports against
`swiftkv score` on the same tokens: the continuation split is redone here the way lm-eval's
TemplateLM._encode_pair does it (trailing spaces of the context move to the continuation;
continuation = tokenize(context + continuation)[len(tokenize(context)):]; an empty context is
the prefix token), and the sum of score's per-token log-probs over the continuation must equal
the scorer's number. Then a few-shot run (fewshot= file) and `--compare`.

arc_easy needs the shared data (SKV_DATA, default ../shared/data); without it only mc: runs.
Env: SKV_BIN, SKV_SOURCE_DIR, SKV_DATA.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.environ.get("SKV_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("SKV_BIN", os.path.join(ROOT, "build", "swiftkv"))
DATA = os.environ.get("SKV_DATA", os.path.join(ROOT, "..", "shared", "data"))
MODEL = os.path.join(ROOT, "tests", "fixtures", "models", "llama_gqa")
MC = os.path.join(ROOT, "tests", "fixtures", "eval", "mc_small.jsonl")
MC_SHOTS = os.path.join(ROOT, "tests", "fixtures", "eval", "mc_fewshot.jsonl")
ENV = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
TOL = 2e-3  # float32 forward passes chunked differently

failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def swiftkv(*args: str) -> str:
    p = subprocess.run([BIN, *args], capture_output=True, text=True, env=ENV, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"swiftkv {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def tokenize(text: str) -> list[int]:
    if text == "":
        return []
    return json.loads(swiftkv("tokenize", "--tokenizer", MODEL, "--text", text))["ids"]


def encode_pair(context: str, continuation: str, prefix: int) -> tuple[list[int], list[int]]:
    if context == "":
        return [prefix], json.loads(
            swiftkv("tokenize", "--tokenizer", MODEL, "--no-add-special", "--text", continuation))["ids"]
    n = len(context) - len(context.rstrip())
    if n:
        continuation = context[-n:] + continuation
        context = context[:-n]
    whole = tokenize(context + continuation)
    ctx = tokenize(context)
    return ctx, whole[len(ctx):]


def score_sum(ctx: list[int], cont: list[int]) -> float:
    ids = ctx + cont
    lp = json.loads(swiftkv("score", "--model", MODEL, "--token-ids", ",".join(map(str, ids))))["token_logprobs"]
    return sum(lp[len(ctx):])


def run_eval(tmp: str, name: str, tasks: str, *extra: str) -> tuple[dict, list[dict]]:
    out, samples = os.path.join(tmp, f"{name}.json"), os.path.join(tmp, f"{name}.jsonl")
    swiftkv("eval", "--model", MODEL, "--tasks", tasks, "--output", out, "--log-samples", samples, "-t", "2", *extra)
    with open(out) as f:
        results = json.load(f)
    with open(samples) as f:
        lines = [json.loads(line) for line in f]
    return results, lines


def cross_check(samples: list[dict], choices_of: dict, delimiter: str, prefix: int) -> None:
    checked = 0
    for s in samples:
        choices = choices_of[(s["task"], s["doc_id"])]
        lls = s["loglikelihoods"]
        check(len(lls) == len(choices) == len(s["is_greedy"]), f"{s['task']}#{s['doc_id']}: one loglik per choice")
        for j, choice in enumerate(choices):
            ctx, cont = encode_pair(s["context"], delimiter + choice, prefix)
            ref = score_sum(ctx, cont)
            ok = math.isfinite(lls[j]) and abs(lls[j] - ref) <= TOL * max(1.0, abs(ref))
            check(ok, f"{s['task']}#{s['doc_id']} choice {j}: eval {lls[j]:.5f} == score {ref:.5f}")
            checked += 1
        pred = max(range(len(lls)), key=lambda i: (lls[i], -i))
        check(s["pred"] == pred and s["acc"] == (pred == s["target"]), f"{s['task']}#{s['doc_id']}: pred / acc")
        norm = [lls[i] / len(c) for i, c in enumerate(choices)]
        pred_norm = max(range(len(norm)), key=lambda i: (norm[i], -i))
        check(s["pred_norm"] == pred_norm and s["acc_norm"] == (pred_norm == s["target"]),
              f"{s['task']}#{s['doc_id']}: pred_norm / acc_norm (length in characters)")
    print(f"     cross-checked {checked} continuations against swiftkv score")


def main() -> int:
    with open(os.path.join(MODEL, "tokenizer_config.json")) as f:
        assert json.load(f).get("add_bos_token") is False  # the split below assumes no BOS is added
    prefix = 1  # <s>: the fixture tokenizer's BOS, lm-eval's prefix token
    with open(MC) as f:
        mc_items = [json.loads(line) for line in f]
    choices_of = {(f"mc:{MC}", i): it["choices"] for i, it in enumerate(mc_items)}

    have_arc = os.path.exists(os.path.join(DATA, "arc", "ARC-Easy-Test.jsonl"))
    tasks = f"mc:{MC}" + (",arc_easy" if have_arc else "")
    if not have_arc:
        print(f"note: no ARC data under {DATA}; running mc: only")
    with tempfile.TemporaryDirectory(prefix="skv_eval_smoke_") as tmp:
        results, samples = run_eval(tmp, "limit5", tasks, "--limit", "5", "--data-dir", DATA, "--label", "tiny")
        # Results JSON shape.
        check(results.get("label") == "tiny", "label recorded")
        r = results["results"]
        mc = r.get(f"mc:{MC}", {})
        for key in ["acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "n", "num_fewshot", "seconds"]:
            check(key in mc, f"mc results have {key}")
        check(mc.get("n") == 5 and mc.get("num_fewshot") == 0, "mc: n = 5 items, 0-shot")
        cfg = results.get("config", {})
        for key in ["model", "path", "limit", "num_fewshot", "seed", "chat_template", "max_length", "batch_tokens"]:
            check(key in cfg, f"config has {key}")
        check(cfg.get("path") == "base" and cfg.get("seed") == 1234 and cfg.get("limit") == 5, "config values")
        check({"load_seconds", "eval_seconds", "total_seconds"} <= set(results.get("timings", {})), "timings")
        if have_arc:
            arc = r.get("arc_easy", {})
            check(arc.get("n") == 5 and {"acc", "acc_norm", "acc_stderr", "acc_norm_stderr"} <= set(arc),
                  "arc_easy: n = 5 with acc / acc_norm and stderrs")
        mc_samples = [s for s in samples if s["task"] == f"mc:{MC}"]
        check(len(mc_samples) == 5 and len(samples) == (10 if have_arc else 5), "one sample line per item")
        for s in samples:
            missing = {"task", "doc_id", "target", "loglikelihoods", "is_greedy", "pred", "pred_norm", "acc",
                       "acc_norm"} - set(s)
            check(not missing, f"sample {s['task']}#{s['doc_id']} has every field (missing {sorted(missing)})")
        # Mean of the per-item accuracies is the reported acc.
        check(abs(mc["acc"] - sum(s["acc"] for s in mc_samples) / 5) < 1e-12, "acc = mean of sample accs")
        if have_arc:
            arc_docs = []
            with open(os.path.join(DATA, "arc", "ARC-Easy-Test.jsonl")) as f:
                for i, line in zip(range(5), f):
                    arc_docs.append(json.loads(line))
            for i, doc in enumerate(arc_docs):
                choices_of[("arc_easy", i)] = [c["text"] for c in doc["question"]["choices"]]
                s = next(x for x in samples if x["task"] == "arc_easy" and x["doc_id"] == i)
                check(s["context"] == f"Question: {doc['question']['stem']}\nAnswer:", f"arc_easy#{i} prompt")
        cross_check(mc_samples, choices_of, "", prefix)
        if have_arc:
            cross_check([s for s in samples if s["task"] == "arc_easy"], choices_of, " ", prefix)

        # All items (the last has an empty context) with one few-shot example from a file.
        results2, samples2 = run_eval(tmp, "fewshot", f"mc:{MC},fewshot={MC_SHOTS}", "--num-fewshot", "1")
        check(results2["results"][f"mc:{MC}"]["n"] == len(mc_items), "all items without --limit")
        with open(MC_SHOTS) as f:
            shots = [json.loads(line) for line in f]
        shot_texts = {it["context"] + it["choices"][it["label"]] + "\n\n" for it in shots}
        for s in samples2:
            check(any(s["context"] == t + mc_items[s["doc_id"]]["context"] for t in shot_texts),
                  f"few-shot #{s['doc_id']}: one example (context + correct choice + blank line) then the item")
        cross_check(samples2[-2:], choices_of, "", prefix)

        # All items 0-shot: the last one has an empty context (conditioned on the prefix token).
        _, samples3 = run_eval(tmp, "all", f"mc:{MC}")
        check(len(samples3) == len(mc_items) and samples3[-1]["context"] == "", "empty-context item runs")
        cross_check(samples3[-1:], choices_of, "", prefix)

        table = swiftkv("eval", "--compare", os.path.join(tmp, "limit5.json"), os.path.join(tmp, "fewshot.json"))
        print(table)
        rows = [line for line in table.splitlines() if line.startswith("| ")]
        check(rows[0].startswith("| Task | Metric | tiny | fewshot |"), "compare: one column per file, label first")
        check(any(line.startswith(f"| mc:{MC} | acc_norm |") for line in rows), "compare: mc row shows acc_norm")
        check(rows[-1].startswith("| Average |"), "compare: Average row")

    print(f"\n{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
