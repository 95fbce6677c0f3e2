#!/usr/bin/env python3
"""Oracle: swiftkv log-probs and greedy tokens vs transformers, on the tiny random checkpoints
in tests/fixtures/models/ (made by scripts/make_logit_fixtures.py; see tests/oracle/README.md).

For every fixture dir with an expected.json:
  * score:    `$SKV_BIN score --model DIR --token-ids 1,2,3` must print JSON
              {"token_logprobs": [null, lp1, ...]} (one entry per id, the first null);
              every |lp - reference| <= 1e-3.
  * generate: `$SKV_BIN generate --model DIR --token-ids <7 ids> --max-tokens 8 --temperature 0
              --ignore-eos --json` must print JSON with "token_ids" = the 8 generated ids
              (a list that also starts with the prompt is accepted); they must equal transformers'
              greedy continuation, except that a divergence is allowed (and ends the comparison)
              at a step whose reference top-1 / top-2 log-prob gap is < 1e-3.
  * numpy:    tests/oracle/numpy_llama.py reproduces the reference to 1e-4 (keeps the numpy
              reference, which other tests reuse, honest without torch).
Env: SKV_BIN (swiftkv binary, required), SKV_SOURCE_DIR (repo root; default: from this file).
Usage: test_logits.py [fixture-name ...]     Exit status 1 on any failure.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCORE_TOL = 1e-3
GAP_TOL = 1e-3
NUMPY_TOL = 1e-4
TIMEOUT_S = 600


def parse_json_output(stdout: str):
    """The whole stdout as JSON, else the last line that parses as a JSON object."""
    s = stdout.strip()
    try:
        return json.loads(s)
    except ValueError:
        pass
    for line in reversed(s.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError(f"no JSON object in output: {s[-500:]!r}")


def run_skv(skv_bin: str, args: list[str]):
    cmd = [skv_bin] + args
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {TIMEOUT_S}s: {' '.join(cmd)[:300]}")
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {' '.join(cmd)[:300]}\n{p.stderr.strip()[-1500:]}")
    return parse_json_output(p.stdout), time.time() - t0


def compare_logprobs(got, expected: list):
    """-> (max abs error, error message or None). expected[0] is None."""
    if not isinstance(got, list):
        return math.inf, f"token_logprobs is not a list: {type(got).__name__}"
    if len(got) != len(expected):
        return math.inf, f"{len(got)} token_logprobs for {len(expected)} ids"
    if got[0] is not None:
        return math.inf, f"token_logprobs[0] must be null (no prefix), got {got[0]!r}"
    worst, worst_i = 0.0, -1
    for i in range(1, len(expected)):
        g = got[i]
        if not isinstance(g, (int, float)) or isinstance(g, bool) or not math.isfinite(g):
            return math.inf, f"token_logprobs[{i}] = {g!r} is not a finite number"
        e = abs(g - expected[i])
        if e > worst:
            worst, worst_i = e, i
    if worst > SCORE_TOL:
        return worst, (f"max |dlogprob| {worst:.3g} > {SCORE_TOL} at position {worst_i} "
                       f"(got {got[worst_i]:.6f}, want {expected[worst_i]:.6f})")
    return worst, None


def compare_greedy(got, prompt: list, ref: list, gaps: list):
    """-> (error message or None, note)."""
    if not isinstance(got, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in got):
        return f"token_ids is not a list of ints: {got!r}", ""
    if len(got) == len(prompt) + len(ref) and got[: len(prompt)] == prompt:
        got = got[len(prompt):]
    for i, r in enumerate(ref):
        if i >= len(got):
            return f"only {len(got)} tokens generated, want {len(ref)}: got {got}, want {ref}", ""
        if got[i] != r:
            if gaps[i] < GAP_TOL:
                return None, f"diverged at step {i} on a near-tie (gap {gaps[i]:.2g}); rest not compared"
            return (f"step {i}: got token {got[i]}, want {r} (reference top-2 gap {gaps[i]:.3g}); "
                    f"got {got}, want {ref}"), ""
    if len(got) != len(ref):
        return f"{len(got)} tokens generated, want {len(ref)} (--ignore-eos): got {got}, want {ref}", ""
    return None, ""


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def ok(self):
        self.passed += 1

    def fail(self, what: str, msg: str):
        self.failed.append(what)
        print(f"FAIL {what}: {msg}", flush=True)


def check_model(skv_bin: str, d: str, name: str, res: Results, numpy_ok: bool):
    with open(os.path.join(d, "expected.json")) as f:
        exp = json.load(f)

    # 1. score
    worst, secs = 0.0, 0.0
    for k, seq in enumerate(exp["sequences"]):
        what = f"{name}/score[len {len(seq['ids'])}]"
        try:
            out, dt = run_skv(skv_bin, ["score", "--model", d, "--token-ids", ",".join(map(str, seq["ids"]))])
            secs += dt
            if not isinstance(out, dict) or "token_logprobs" not in out:
                raise ValueError(f"no \"token_logprobs\" in output: {str(out)[:300]}")
            err, msg = compare_logprobs(out["token_logprobs"], seq["token_logprobs"])
        except Exception as e:  # noqa: BLE001 -- any failure of the binary is a test failure
            res.fail(what, str(e))
            worst = math.inf
            continue
        worst = max(worst, err)
        if msg:
            res.fail(what, msg)
        else:
            res.ok()
    print(f"{name:24s} score: max |dlogprob| {worst:.2e} over {len(exp['sequences'])} sequences "
          f"(tol {SCORE_TOL:g}, {secs:.1f}s)", flush=True)

    # 2. greedy generation
    g = exp["greedy"]
    what = f"{name}/generate"
    try:
        out, _ = run_skv(skv_bin, ["generate", "--model", d, "--token-ids", ",".join(map(str, g["prompt_ids"])),
                                   "--max-tokens", str(len(g["token_ids"])), "--temperature", "0",
                                   "--ignore-eos", "--json"])
        if not isinstance(out, dict) or "token_ids" not in out:
            raise ValueError(f"no \"token_ids\" in output: {str(out)[:300]}")
        msg, note = compare_greedy(out["token_ids"], g["prompt_ids"], g["token_ids"], g["top2_gaps"])
    except Exception as e:  # noqa: BLE001
        msg, note = str(e), ""
    if msg:
        res.fail(what, msg)
    else:
        res.ok()
        print(f"{name:24s} generate: greedy {len(g['token_ids'])} tokens match {note}", flush=True)

    # 3. the numpy reference still reproduces transformers
    if numpy_ok:
        import numpy as np
        import numpy_llama

        what = f"{name}/numpy_llama"
        try:
            cfg, w = numpy_llama.load_config(d), numpy_llama.load_weights(d)
            err = 0.0
            for seq in exp["sequences"]:
                lp = numpy_llama.token_logprobs(d, seq["ids"], cfg, w)
                err = max(err, float(np.max(np.abs(np.array(lp[1:]) - np.array(seq["token_logprobs"][1:])))))
            if err > NUMPY_TOL:
                res.fail(what, f"numpy reference off by {err:.3g} > {NUMPY_TOL}")
            else:
                res.ok()
        except Exception as e:  # noqa: BLE001
            res.fail(what, f"{type(e).__name__}: {e}")


def main() -> int:
    src = os.environ.get("SKV_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
    root = os.path.join(src, "tests", "fixtures", "models")
    skv_bin = os.environ.get("SKV_BIN")
    if not skv_bin or not os.access(skv_bin, os.X_OK):
        print(f"logits oracle: SKV_BIN={skv_bin!r} is not an executable swiftkv binary")
        print("logits oracle: 0 passed, 1 failed")
        return 1
    names = sorted(n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, "expected.json")))
    if sys.argv[1:]:
        unknown = set(sys.argv[1:]) - set(names)
        if unknown:
            print(f"unknown fixtures {sorted(unknown)}; have {names}")
            return 2
        names = [n for n in names if n in sys.argv[1:]]
    if not names:
        print(f"logits oracle: no fixtures under {root}")
        print("logits oracle: 0 passed, 1 failed")
        return 1

    sys.path.insert(0, HERE)
    try:
        import numpy  # noqa: F401
        import safetensors  # noqa: F401

        numpy_ok = True
    except ImportError as e:
        print(f"note: numpy reference check skipped ({e})")
        numpy_ok = False

    res = Results()
    for n in names:
        check_model(skv_bin, os.path.join(root, n), n, res, numpy_ok)
    print(f"logits oracle: {res.passed} passed, {len(res.failed)} failed")
    if res.failed:
        print("failed: " + ", ".join(res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
