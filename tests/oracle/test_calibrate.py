#!/usr/bin/env python3
"""Oracle: `swiftkv convert --calibrate` (least-squares SwiftKV K/V projections) against numpy.

A. Tiny HF fixtures (Llama with GQA, G = 1 and 2; Qwen2 with biases; Qwen3, whose keys are fitted
   before k_norm): the calibration data is a JSONL of token_ids, cut to --calibration-tokens and
   into --calibration-seq-len pieces as distill packs documents. numpy_llama's float64 teacher
   forward gives x_M and every later layer's k_proj / v_proj outputs; h = RMSNorm(x_M) with layer
   M's input norm (norm_swiftkv's initialisation); numpy.linalg.lstsq on the ridge-augmented
   system [h 1; sqrt(lambda) I 0] W = [mean of the group's targets; 0] gives the expected
   k/v_proj_swiftkv and biases, lambda = ridge * mean diagonal of sum h h^T. The written tensors
   must match it (the C++ teacher runs in F32, so within a float tolerance), every other tensor
   must be the plain conversion's, and the printed relative errors must match numpy's.
   With --calibrate-q (Llama, Qwen2 with biases), each later layer's q_proj_swiftkv must be the
   same kind of fit from the student's own inputs (numpy's SwiftKV forward of the written model)
   to the teacher's queries.
B. SmolLM2-135M Q4_1 GGUF -> SwiftKV GGUF calibrated on the shared Gutenberg prose: every later
   layer's K and V error falls, and the SwiftKV path scores held-out prose better than the plain
   conversion.

Env: SKV_BIN, SKV_SOURCE_DIR, SKV_MODELS, SKV_DATA. A missing model or data set is a failure
unless SKV_ALLOW_SKIP=1. Prints "calibrate oracle: N passed, M failed".
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("SKV_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
BIN = os.environ.get("SKV_BIN", os.path.join(SRC, "build", "swiftkv"))
MODELS = os.environ.get("SKV_MODELS", os.path.join(SRC, "models"))
DATA = os.environ.get("SKV_DATA", os.path.join(SRC, "..", "shared", "data"))
FIXTURES = os.path.join(SRC, "tests", "fixtures", "models")
GGUF = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
PROSE = os.path.join(DATA, "prose", "gutenberg_bodies.txt")

sys.path.insert(0, HERE)
import numpy_llama as nl  # noqa: E402
from test_convert import Results, read_hf_tensors, run_skv, score  # noqa: E402


def printed_errors(stderr: str) -> dict[int, tuple[float, float, float, float]]:
    """layer -> (K before, K after, V before, V after) from convert's table."""
    out = {}
    for line in stderr.splitlines():
        m = re.fullmatch(r"\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*", line)
        if m:
            out[int(m.group(1))] = tuple(float(m.group(i)) for i in range(2, 6))
    return out


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def pieces(docs: list[list[int]], max_tokens: int, seq_len: int) -> list[list[int]]:
    """The documents cut to max_tokens in all, then into seq_len pieces (positions restart)."""
    out, total = [], 0
    for d in docs:
        d = d[: max(0, max_tokens - total)]
        total += len(d)
        out += [d[i: i + seq_len] for i in range(0, len(d), seq_len)]
    return [p for p in out if p]


# (fixture, M, G, ridge)
CASES = [("llama_gqa", 1, 1, 1e-3), ("llama_gqa", 1, 2, 1e-3), ("llama_gqa", 1, 1, 0.0),
         ("qwen2_bias", 1, 1, 1e-3), ("qwen3", 1, 1, 1e-2)]
TOKENS, SEQ_LEN = 300, 70


def check_fixture(res: Results, tmp: str, k: int, name: str, m: int, g: int, ridge: float):
    what = f"{name} M={m} G={g} ridge={ridge}"
    base = os.path.join(FIXTURES, name)
    cfg = nl.load_config(base)
    W = nl.load_weights(base)
    rng = np.random.default_rng(100 + k)
    docs = [rng.integers(0, cfg.vocab_size, size=n).tolist() for n in (150, 40, 200)]
    data = os.path.join(tmp, f"calib{k}.jsonl")
    with open(data, "w") as f:
        for d in docs:
            f.write(json.dumps({"token_ids": d}) + "\n")
    out = os.path.join(tmp, f"out{k}")
    plain = os.path.join(tmp, f"plain{k}")
    flags = ["--num-key-value-layers", str(m), "--key-value-group-size", str(g), "--dtype", "f32"]
    p = run_skv(["convert", "--model", base, "--out", out, *flags, "--calibrate", data,
                 "--calibration-tokens", str(TOKENS), "--calibration-seq-len", str(SEQ_LEN),
                 "--calibration-ridge", str(ridge)])
    run_skv(["convert", "--model", base, "--out", plain, *flags])
    got, ref = read_hf_tensors(out), read_hf_tensors(plain)

    # numpy: h and the teacher's K/V of every later layer over the same pieces.
    L, kv = cfg.num_layers, cfg.num_kv_heads * cfg.head_dim
    H, K, V = [], {j: [] for j in range(m, L)}, {j: [] for j in range(m, L)}
    for piece in pieces(docs, TOKENS, SEQ_LEN):
        taps = {}
        nl.forward_logits(base, piece, cfg, W, swiftkv=False, taps=taps)
        H.append(rms_norm(taps["x", m], W[f"model.layers.{m}.input_layernorm.weight"], cfg.rms_norm_eps))
        for j in range(m, L):
            K[j].append(taps["k", j])
            V[j].append(taps["v", j])
    H = np.concatenate(H)
    bias = f"model.layers.{m}.self_attn.k_proj.bias" in W
    Ha = np.concatenate([H, np.ones((len(H), 1))], axis=1) if bias else H
    d = H.shape[1]
    lam = ridge * np.mean(np.diag(H.T @ H))
    reg = np.zeros((d, Ha.shape[1]))
    reg[:, :d] = np.sqrt(lam) * np.eye(d)
    A = np.concatenate([Ha, reg])
    numpy_err = {}
    worst, changed_other = 0.0, []
    for leader in range(m, L, g):
        members = range(leader, leader + g)
        for proj, T in (("k", K), ("v", V)):
            target = np.mean([np.concatenate(T[j]) for j in members], axis=0)
            X = np.linalg.lstsq(A, np.concatenate([target, np.zeros((d, kv))]), rcond=None)[0]
            w_exp = X[:d].T
            prefix = f"model.layers.{leader}.self_attn.{proj}_proj_swiftkv."
            w_got = got[prefix + "weight"][1].astype(np.float64)
            # the initialisation is kept where it is already closer (layer M's own projection)
            w_init = ref[prefix + "weight"][1].astype(np.float64)
            init_sse = sum(np.sum((Ha[:, :d] @ w_init.T + (ref[prefix + "bias"][1] if bias else 0)
                                   - np.concatenate(T[j])) ** 2) for j in members)
            fit_sse = sum(np.sum((Ha @ X - np.concatenate(T[j])) ** 2) for j in members)
            expect = w_init if init_sse <= fit_sse else w_exp
            rel = np.max(np.abs(w_got - expect)) / np.max(np.abs(expect))
            worst = max(worst, rel)
            if bias:
                b_exp = ref[prefix + "bias"][1] if init_sse <= fit_sse else X[d]
                worst = max(worst, np.max(np.abs(got[prefix + "bias"][1] - b_exp)) / np.max(np.abs(b_exp)))
            Xused = X if init_sse > fit_sse else None
            for j in members:
                tj = np.concatenate(T[j])
                pred = Ha @ Xused if Xused is not None else (
                    Ha[:, :d] @ w_init.T + (ref[prefix + "bias"][1] if bias else 0))
                numpy_err[j, proj] = np.linalg.norm(pred - tj) / np.linalg.norm(tj)
    # Everything but the fitted k/v_proj_swiftkv is the plain conversion's, bit for bit.
    for n, (tag, arr) in ref.items():
        fitted = re.search(r"\.[kv]_proj_swiftkv\.", n) is not None
        if not fitted and (n not in got or not np.array_equal(got[n][1], arr)):
            changed_other.append(n)
    res.check(f"{what}: fitted tensors equal numpy lstsq", worst < 2e-3, f"max relative difference {worst:.3g}")
    res.check(f"{what}: other tensors untouched", not changed_other and set(got) == set(ref),
              f"changed: {changed_other[:5]}, names differ: {sorted(set(got) ^ set(ref))[:5]}")
    printed = printed_errors(p.stderr)
    bad = [(j, proj, printed.get(j), numpy_err[j, proj]) for (j, proj) in numpy_err
           if j not in printed or abs(printed[j][1 if proj == "k" else 3] - numpy_err[j, proj]) > 2e-3]
    res.check(f"{what}: printed errors equal numpy's", not bad and len(printed) == L - m,
              f"{bad[:4]} (printed {printed})")
    # The SwiftKV path of the calibrated model runs and the teacher path is still the base.
    ids = docs[0][:20]
    res.check(f"{what}: SwiftKV path scores", all(x is None or np.isfinite(x) for x in score(out, ids)))


def check_query_fit(res: Results, tmp: str, k: int, name: str, ridge: float):
    """--calibrate-q: layer j's q_proj_swiftkv is the ridge fit from the student's own layer-j
    inputs (numpy's SwiftKV forward of the written model, whose layers below j are the fitted
    ones) to the teacher's Q_j. M = 1, G = 1."""
    what = f"{name} --calibrate-q"
    base = os.path.join(FIXTURES, name)
    cfg = nl.load_config(base)
    W = nl.load_weights(base)
    rng = np.random.default_rng(300 + k)
    docs = [rng.integers(0, cfg.vocab_size, size=n).tolist() for n in (160, 150)]
    data = os.path.join(tmp, f"calibq{k}.jsonl")
    with open(data, "w") as f:
        for d in docs:
            f.write(json.dumps({"token_ids": d}) + "\n")
    out = os.path.join(tmp, f"outq{k}")
    p = run_skv(["convert", "--model", base, "--out", out, "--num-key-value-layers", "1", "--dtype", "f32",
                 "--calibrate", data, "--calibrate-q", "--calibration-tokens", str(TOKENS),
                 "--calibration-seq-len", str(SEQ_LEN), "--calibration-ridge", str(ridge)])
    ocfg = nl.load_config(out)
    OW = nl.load_weights(out)
    m, L = 1, cfg.num_layers
    xs, qt = {j: [] for j in range(m, L)}, {j: [] for j in range(m, L)}
    for piece in pieces(docs, TOKENS, SEQ_LEN):
        t_taps, s_taps = {}, {}
        nl.forward_logits(base, piece, cfg, W, swiftkv=False, taps=t_taps)
        nl.forward_logits(out, piece, ocfg, OW, swiftkv=True, taps=s_taps)
        for j in range(m, L):
            nt = rms_norm(t_taps["x", j], W[f"model.layers.{j}.input_layernorm.weight"], cfg.rms_norm_eps)
            a = f"model.layers.{j}.self_attn."
            qt[j].append(nt @ W[a + "q_proj.weight"].T + W.get(a + "q_proj.bias", 0))
            xs[j].append(rms_norm(s_taps["x", j], W[f"model.layers.{j}.input_layernorm.weight"], cfg.rms_norm_eps))
    worst, errs = 0.0, {}
    for j in range(m, L):
        H = np.concatenate(xs[j])
        T = np.concatenate(qt[j])
        a = f"model.layers.{j}.self_attn."
        bias = a + "q_proj.bias" in W
        Ha = np.concatenate([H, np.ones((len(H), 1))], axis=1) if bias else H
        d = H.shape[1]
        lam = ridge * np.mean(np.diag(H.T @ H))
        reg = np.zeros((d, Ha.shape[1]))
        reg[:, :d] = np.sqrt(lam) * np.eye(d)
        X = np.linalg.lstsq(np.concatenate([Ha, reg]), np.concatenate([T, np.zeros((d, T.shape[1]))]), rcond=None)[0]
        init = Ha[:, :d] @ W[a + "q_proj.weight"].T + (W[a + "q_proj.bias"] if bias else 0)
        fit_better = np.sum((Ha @ X - T) ** 2) < np.sum((init - T) ** 2)
        expect = X[:d].T if fit_better else W[a + "q_proj.weight"]
        got = OW[a + "q_proj_swiftkv.weight"]
        worst = max(worst, np.max(np.abs(got - expect)) / np.max(np.abs(expect)))
        errs[j] = np.linalg.norm((Ha @ X if fit_better else init) - T) / np.linalg.norm(T)
    res.check(f"{what}: q_proj_swiftkv equals numpy lstsq on the student's inputs", worst < 2e-3,
              f"max relative difference {worst:.3g}")
    printed = {}
    for line in p.stderr.splitlines():
        mm = re.fullmatch(r"\s*(\d+)(\s+[\d.]+){6}\s*", line)
        if mm:
            printed[int(line.split()[0])] = float(line.split()[6])
    bad = [(j, printed.get(j), e) for j, e in errs.items() if j not in printed or abs(printed[j] - e) > 2e-3]
    res.check(f"{what}: printed Q errors equal numpy's", not bad, str(bad))


def mean_logprob(model: str, ids: list[int]) -> float:
    return float(np.mean([x for x in score(model, ids) if x is not None]))


def check_gguf(res: Results, tmp: str):
    calib = os.path.join(tmp, "calib.gguf")
    plain = os.path.join(tmp, "plain.gguf")
    p = run_skv(["convert", "--model", GGUF, "--out", calib, "--swiftkv-fraction", "0.5",
                 "--calibrate", PROSE, "--calibration-tokens", "2048"])
    run_skv(["convert", "--model", GGUF, "--out", plain, "--swiftkv-fraction", "0.5"])
    printed = printed_errors(p.stderr)
    res.check("SmolLM2: a row per later layer", sorted(printed) == list(range(15, 30)), str(sorted(printed)))
    worse = [(j, e) for j, e in printed.items() if e[1] > e[0] + 1e-4 or e[3] > e[2] + 1e-4]
    res.check("SmolLM2: no layer's K or V error grows", not worse, str(worse))
    last = printed.get(29, (0, 1, 0, 1))
    res.check("SmolLM2: the last layer's K and V errors fall by a third or more",
              last[1] < 0.67 * last[0] and last[3] < 0.67 * last[2], str(last))
    # Held-out prose: Shakespeare, which the calibration (Gutenberg, first 2048 tokens) never saw.
    text = open(os.path.join(DATA, "prose", "tinyshakespeare.txt"), encoding="utf-8").read()[20000:23000]
    ids = json.loads(run_skv(["tokenize", "--model", GGUF, "--text", text]).stdout.strip().splitlines()[-1])["ids"]
    ids = ids[:512]
    lp_c, lp_p = mean_logprob(calib, ids), mean_logprob(plain, ids)
    res.check("SmolLM2: the calibrated SwiftKV path scores held-out prose better", lp_c > lp_p,
              f"mean log-prob calibrated {lp_c:.4f}, plain {lp_p:.4f}")
    print(f"SmolLM2 50%: mean log-prob on 512 held-out tokens: plain conversion {lp_p:.4f}, "
          f"calibrated {lp_c:.4f}")


def main() -> int:
    if not os.access(BIN, os.X_OK):
        print(f"calibrate oracle: SKV_BIN={BIN!r} is not an executable swiftkv binary")
        print("calibrate oracle: 0 passed, 1 failed")
        return 1
    res = Results()
    tmp = tempfile.mkdtemp(prefix="skv_calibrate_")
    try:
        for k, case in enumerate(CASES):
            check_fixture(res, tmp, k, *case)
        check_query_fit(res, tmp, 0, "llama_gqa", 1e-3)
        check_query_fit(res, tmp, 1, "qwen2_bias", 1e-3)
        if os.path.exists(GGUF) and os.path.exists(PROSE):
            check_gguf(res, tmp)
        elif os.environ.get("SKV_ALLOW_SKIP") == "1":
            print(f"note: {GGUF} or {PROSE} not found; SmolLM2 checks skipped (SKV_ALLOW_SKIP=1)")
        else:
            res.check("SmolLM2 GGUF", False, f"{GGUF} or {PROSE} not found")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"calibrate oracle: {res.passed} passed, {len(res.failed)} failed")
    if res.failed:
        print("failed: " + ", ".join(res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
