#!/usr/bin/env python3
"""Oracle: the engine's SwiftKV path and teacher path vs the numpy float64 reference
(tests/oracle/numpy_llama.py), on tiny random SwiftKV checkpoints written at test time by
tests/oracle/make_swiftkv_models.py into a temp dir (see tests/oracle/README.md).

Per model, for each path -- the config's default (SwiftKV when "swiftkv": true) and --no-swiftkv
(the teacher: every layer's original q/k/v_proj):
  * score:    `$SKV_BIN score --model DIR [--no-swiftkv] --token-ids ...` on seeded random ids of
              length 7, 40, 150, and the 150 ids again with --batch-size 16; every token log-prob
              within 1e-3 of the numpy forward of that path.
  * generate: `$SKV_BIN generate ... --max-tokens 8 --temperature 0 --ignore-eos --json` on a
              24-id prompt, and a 23-id prompt with --batch-size 7 (prefilled in 4 chunks): the
              ids must equal numpy's greedy continuation (full forward per step); a divergence is
              tolerated only where the reference top-1/top-2 gap is < 1e-3 (then not compared).
  * paths:    the numpy SwiftKV and teacher log-probs differ by > 0.1, and so do the engine's
              two outputs when the model runs SwiftKV by default (the flag has an effect).
  * info:     `$SKV_BIN info --model DIR --json` reports kv_cache_bytes_per_token_teacher =
              L*KV*D*4*2, kv_cache_bytes_per_token_swiftkv = (M + (L-M)/G)*KV*D*4*2 (F32 K and V)
              and kv_cache_bytes_per_token = the one of the default path.
Plus a numpy self-check (on a biased, a Qwen3 and a Mistral model): with M = L-1, G = 1 and the
SwiftKV tensors set to the teacher's own (norm_swiftkv = layer M's input_layernorm,
q/k/v_proj_swiftkv = q/k/v_proj, q/k_norm_swiftkv = q/k_norm) the SwiftKV forward equals the
teacher forward exactly.
Env: SKV_BIN (swiftkv binary, required), SKV_SOURCE_DIR (unused: the models are generated).
Usage: test_swiftkv.py [model-name ...]     Exit status 1 on any failure.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_swiftkv_models as mk  # noqa: E402
import numpy_llama as nl  # noqa: E402
from test_logits import SCORE_TOL, Results, compare_greedy, compare_logprobs, run_skv  # noqa: E402

SEQ_LENS = (7, 40, 150)
CHUNKED_SCORE_BATCH = 16  # the longest sequence is also scored in chunks of this many tokens
GREEDY_PROMPTS = ((24, None), (23, 7))  # (prompt length, --batch-size or None)
GREEDY_TOKENS = 8
PATH_SEPARATION = 0.1  # min max-|dlogprob| between the SwiftKV and teacher paths


@dataclasses.dataclass
class Path:
    label: str
    args: list[str]
    swiftkv: bool  # which numpy forward it must match


def paths_of(spec: mk.Spec) -> list[Path]:
    default = Path("swiftkv", [], True) if spec.swiftkv_flag else Path("default(teacher)", [], False)
    return [default, Path("teacher", ["--no-swiftkv"], False)]


def greedy_reference(d: str, cfg: nl.Config, w: dict, prompt: list[int], swiftkv: bool):
    """-> (GREEDY_TOKENS argmax ids, top-1/top-2 log-prob gap of each step), full forward per step."""
    ids, out, gaps = list(prompt), [], []
    for _ in range(GREEDY_TOKENS):
        lp = nl.forward_logprobs(d, ids, cfg, w, swiftkv)[-1]
        second, first = np.argsort(lp)[-2:]
        out.append(int(first))
        gaps.append(float(lp[first] - lp[second]))
        ids.append(int(first))
    return out, gaps


def kv_bytes(spec: mk.Spec) -> dict[str, int]:
    per_layer = spec.kv_heads * spec.d * 4 * 2  # F32 K and V
    teacher = mk.LAYERS * per_layer
    swiftkv = (spec.m + (mk.LAYERS - spec.m) // spec.g) * per_layer
    return {"kv_cache_bytes_per_token": swiftkv if spec.swiftkv_flag else teacher,
            "kv_cache_bytes_per_token_teacher": teacher,
            "kv_cache_bytes_per_token_swiftkv": swiftkv}


def check_model(skv_bin: str, spec: mk.Spec, d: str, res: Results, table: list[list[str]]) -> None:
    cfg, w = nl.load_config(d), nl.load_weights(d)
    rng = np.random.default_rng(spec.seed + 100)
    seqs = [rng.integers(3, mk.VOCAB, n).tolist() for n in SEQ_LENS]
    prompts = [(rng.integers(3, mk.VOCAB, n).tolist(), b) for n, b in GREEDY_PROMPTS]
    ref = {sk: [nl.token_logprobs(d, s, cfg, w, sk) for s in seqs] for sk in (True, False)}

    sep = max(float(np.max(np.abs(np.array(a[1:]) - np.array(b[1:])))) for a, b in zip(ref[True], ref[False]))
    if sep > PATH_SEPARATION:
        res.ok()
    else:
        res.fail(f"{spec.name}/numpy-paths", f"SwiftKV and teacher log-probs differ by only {sep:.3g}")

    engine: dict[str, list] = {}  # path label -> engine token_logprobs of seqs
    for path in paths_of(spec):
        worst, secs = 0.0, 0.0
        runs = [(s, []) for s in seqs] + [(seqs[-1], ["--batch-size", str(CHUNKED_SCORE_BATCH)])]
        for k, (seq, extra) in enumerate(runs):
            what = f"{spec.name}/{path.label}/score[len {len(seq)}{' -b ' + extra[1] if extra else ''}]"
            try:
                out, dt = run_skv(skv_bin, ["score", "--model", d, *path.args, *extra,
                                            "--token-ids", ",".join(map(str, seq))])
                secs += dt
                if not isinstance(out, dict) or "token_logprobs" not in out:
                    raise ValueError(f"no \"token_logprobs\" in output: {str(out)[:300]}")
                err, msg = compare_logprobs(out["token_logprobs"], ref[path.swiftkv][min(k, len(seqs) - 1)])
            except Exception as e:  # noqa: BLE001 -- any failure of the binary is a test failure
                err, msg = math.inf, str(e)
            worst = max(worst, err)
            if msg:
                res.fail(what, msg)
                continue
            res.ok()
            if k < len(seqs):
                engine.setdefault(path.label, []).append(out["token_logprobs"])

        greedy = []
        for prompt, batch in prompts:
            what = f"{spec.name}/{path.label}/generate[prompt {len(prompt)}{f' -b {batch}' if batch else ''}]"
            want, gaps = greedy_reference(d, cfg, w, prompt, path.swiftkv)
            args = ["generate", "--model", d, *path.args, "--token-ids", ",".join(map(str, prompt)),
                    "--max-tokens", str(GREEDY_TOKENS), "--temperature", "0", "--ignore-eos", "--json"]
            if batch:
                args += ["--batch-size", str(batch)]
            try:
                out, _ = run_skv(skv_bin, args)
                if not isinstance(out, dict) or "token_ids" not in out:
                    raise ValueError(f"no \"token_ids\" in output: {str(out)[:300]}")
                msg, note = compare_greedy(out["token_ids"], prompt, want, gaps)
            except Exception as e:  # noqa: BLE001
                msg, note = str(e), ""
            if msg:
                res.fail(what, msg)
                greedy.append("FAIL")
            else:
                res.ok()
                greedy.append("tie" if note else "ok")
        table.append([spec.name, f"{spec.m}/{spec.g}", path.label, f"{worst:.1e}", " ".join(greedy), f"{secs:.1f}s"])

    # The engine's two paths must differ where the default is SwiftKV (else the flag is ignored).
    if spec.swiftkv_flag and all(len(engine.get(p.label, [])) == len(seqs) for p in paths_of(spec)):
        a, b = (engine[p.label] for p in paths_of(spec))
        esep = max(max(abs(x - y) for x, y in zip(sa[1:], sb[1:])) for sa, sb in zip(a, b))
        if esep > PATH_SEPARATION:
            res.ok()
        else:
            res.fail(f"{spec.name}/engine-paths", f"swiftkv and --no-swiftkv log-probs differ by only {esep:.3g}")
        table[-1].append(f"paths differ by {esep:.2f}")

    what = f"{spec.name}/info"
    try:
        out, _ = run_skv(skv_bin, ["info", "--model", d, "--json"])
        bad = {k: (out.get(k) if isinstance(out, dict) else None, v) for k, v in kv_bytes(spec).items()
               if not isinstance(out, dict) or out.get(k) != v}
        msg = "; ".join(f"{k} = {g!r}, want {v}" for k, (g, v) in bad.items())
    except Exception as e:  # noqa: BLE001
        msg = str(e)
    if msg:
        res.fail(what, msg)
    else:
        res.ok()


def identity_self_check(spec: mk.Spec, d: str, res: Results) -> None:
    """SwiftKV with M = L-1, G = 1 and the teacher's own tensors in the SwiftKV slots == teacher."""
    cfg, w = nl.load_config(d), nl.load_weights(d)
    last = cfg.num_layers - 1
    cfg1 = dataclasses.replace(cfg, num_key_value_layers=last, key_value_group_size=1, swiftkv=True)
    a = f"model.layers.{last}.self_attn."
    w1 = dict(w)
    w1["model.norm_swiftkv.weight"] = w[f"model.layers.{last}.input_layernorm.weight"]
    for proj in ("q_proj", "k_proj", "v_proj", "q_norm", "k_norm"):
        for kind in ("weight", "bias"):
            if f"{a}{proj}.{kind}" in w:
                w1[f"{a}{proj}_swiftkv.{kind}"] = w[f"{a}{proj}.{kind}"]
    ids = np.random.default_rng(spec.seed).integers(3, mk.VOCAB, 40).tolist()
    teacher = nl.forward_logits(d, ids, cfg1, w1, swiftkv=False)
    same = nl.forward_logits(d, ids, cfg1, w1, swiftkv=True)
    # The SwiftKV slots must matter: the checkpoint's own (random) norm_swiftkv changes the logits.
    other = nl.forward_logits(d, ids, cfg1, {**w1, "model.norm_swiftkv.weight": w["model.norm_swiftkv.weight"]},
                              swiftkv=True)
    if not np.array_equal(same, teacher):
        res.fail("numpy-identity", f"SwiftKV(teacher tensors) != teacher: max |dlogit| "
                 f"{np.max(np.abs(same - teacher)):.3g}")
    elif np.max(np.abs(other - teacher)) < PATH_SEPARATION:
        res.fail("numpy-identity", "norm_swiftkv has no effect on the numpy SwiftKV forward")
    else:
        res.ok()
        print(f"numpy identity self-check ({spec.name}, M = {last}, G = 1): SwiftKV == teacher exactly", flush=True)


def main() -> int:
    skv_bin = os.environ.get("SKV_BIN")
    if not skv_bin or not os.access(skv_bin, os.X_OK):
        print(f"swiftkv oracle: SKV_BIN={skv_bin!r} is not an executable swiftkv binary")
        print("swiftkv oracle: 0 passed, 1 failed")
        return 1
    specs = mk.SPECS
    if sys.argv[1:]:
        names = [s.name for s in specs]
        unknown = set(sys.argv[1:]) - set(names)
        if unknown:
            print(f"unknown models {sorted(unknown)}; have {names}")
            return 2
        specs = [s for s in specs if s.name in sys.argv[1:]]

    res, table = Results(), []
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="skv_swiftkv_oracle_") as tmp:
        # One spec per kind of attention: biases, q/k norms, a sliding window.
        for pick in (lambda s: s.attention_bias, lambda s: s.arch == "qwen3", lambda s: s.arch == "mistral"):
            spec = next(s for s in mk.SPECS if pick(s))
            identity_self_check(spec, mk.write_model(spec, tmp), res)
        for spec in specs:
            check_model(skv_bin, spec, mk.write_model(spec, tmp), res, table)

    header = ["model", "M/G", "path", "score max|dlp|", "greedy", "engine time", ""]
    widths = [max(len(str(r[i])) if i < len(r) else 0 for r in table + [header]) for i in range(len(header))]
    for row in [header] + table:
        print("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    print(f"swiftkv oracle: {res.passed} passed, {len(res.failed)} failed "
          f"(score tol {SCORE_TOL:g}, {time.time() - t0:.0f}s)")
    if res.failed:
        print("failed: " + ", ".join(res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
