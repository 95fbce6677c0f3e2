#!/usr/bin/env python3
"""GGUF K-quants (Q4_K, Q5_K, Q6_K) and their Q5_0 / Q5_1 fallbacks, against llama.cpp.

llama.cpp's own quantiser (llama_cpp.llama_model_quantize, allow_requantize) turns the shipped
SmolLM2-135M-Instruct Q4_1 into Q4_K_M and Q5_K_M files. SmolLM2's hidden size 576 is not a
multiple of 256, so llama.cpp stores every 576-wide row in its fallback type: Q4_K_M holds
Q5_0, Q8_0, Q4_K and Q6_K tensors, Q5_K_M holds Q5_1, Q8_0, Q5_K and Q6_K (checked). Per file:

1. Dequantisation: `swiftkv convert` writes the model as an F32 checkpoint (swiftkv's reference
   dequantisers); every tensor of a new type must equal gguf-py's `gguf.quants.dequantize` of
   the file's blocks (q/k rows put back in HF order) bit for bit.
2. Quantised, as test_llamacpp_greedy.py part A: `swiftkv score` log-probs against llama.cpp's
   (logits_all, log_softmax) on the same file over one ~100-token text. Both engines round
   activations to 8 bits (llama.cpp per 256 values for the K-quants, swiftkv per 32) and keep
   different KV caches (F16 vs F32), and this requantised model amplifies such rounding, so the
   bound comes from llama.cpp against itself with an F32 instead of an F16 KV cache (the noise
   floor, re-measured here): mean |diff| <= LP_MEAN_X x the floor's mean, max |diff| < LP_MAX.
   (Measured: swiftkv vs llama.cpp mean 0.075-0.14, floor 0.085-0.12; max 0.56-1.02, floor
   0.33-1.05.)
3. Dequantised F32, as part B (Q4_K_M only): llama.cpp on gguf-py's F32 copy of the file (F32
   KV cache) against swiftkv's teacher path on its own F32 export of step 1: no 8-bit rounding
   anywhere, so float tolerances: max |diff| < F_LP_MAX.
4. SwiftKV on the K-quant base (Q4_K_M): `swiftkv convert --out X.gguf --swiftkv-fraction 0.5`
   keeps every base tensor byte for byte (read back with gguf-py), its teacher path
   (--no-swiftkv) scores exactly like the base, its SwiftKV path runs.

Prints "llama.cpp K-quant oracle: N passed, M failed"; exits non-zero on any failure.
Env: SKV_BIN, SKV_MODELS. A missing llama_cpp module or model is a failure unless SKV_ALLOW_SKIP=1.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from llamacpp_util import (default_bin, default_model, ids_arg, load_llama, quantize_gguf, run_skv,  # noqa: E402
                           write_f32_gguf)
from test_convert import gguf_meta, hf_name, read_hf_tensors, unpermute  # noqa: E402
from test_llamacpp_greedy import SCORE_TEXTS, llamacpp_token_logprobs  # noqa: E402

THREADS = 2
# llama.cpp's spinning thread pool loses whole time slices when anything else runs on these cores
# (100 tokens: 0.8 s on one thread, 6.4 s on two beside a busy process); one thread is robust.
LLAMACPP_THREADS = 1
SCORE_LEN = 100
LP_MEAN_X = 1.6   # measured ratio to the noise floor's mean: 0.88-1.17
LP_MAX = 1.5      # the Q4_1 test's limit; measured 0.56-1.02
F_LP_MAX = 1e-3   # float engines on the same weights (test_convert holds the Q4_1 teacher to 1e-4)

FILES = [  # (ftype name, types the file must hold besides F32 / Q8_0, text index)
    ("Q4_K_M", {"Q5_0", "Q4_K", "Q6_K"}, 1),
    ("Q5_K_M", {"Q5_1", "Q5_K", "Q6_K"}, 0),
]
NEW_TYPES = {"Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"}

passed: list[str] = []
failed: list[str] = []


_last = [time.time()]


def result(ok: bool, label: str, msg: str) -> None:
    """Records a check; the time is since the previous one (the step's cost)."""
    (passed if ok else failed).append(label)
    now = time.time()
    print(f"{'ok  ' if ok else 'FAIL'} [{label}] {msg} ({now - _last[0]:.1f}s)", flush=True)
    _last[0] = now


def skv_score(binary: str, model: str, ids: list[int], extra: list[str] = ()) -> np.ndarray:
    lp = run_skv(binary, ["score", "--model", model, "--threads", str(THREADS), "--token-ids", ids_arg(ids), *extra])[
        "token_logprobs"]
    if len(lp) != len(ids) or lp[0] is not None or any(x is None for x in lp[1:]):
        raise ValueError(f"token_logprobs has {len(lp)} entries (want {len(ids)}, the first null)")
    return np.array(lp[1:], dtype=np.float64)


def run_skv_plain(binary: str, args: list[str]) -> None:
    p = subprocess.run([binary] + args, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"swiftkv {' '.join(args[:1])} failed (exit {p.returncode}): {p.stderr.strip()[-2000:]}")


def check_dequantisation(binary: str, path: str, tag: str, tmp: str) -> str:
    """Step 1. Returns the F32 export's directory."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    out = os.path.join(tmp, f"{tag}_f32")
    run_skv_plain(binary, ["convert", "--model", path, "--out", out, "--swiftkv-fraction", "0.5", "--dtype", "f32"])
    r = GGUFReader(path)
    n_head = int(gguf_meta(r, "llama.attention.head_count"))
    n_kv = int(gguf_meta(r, "llama.attention.head_count_kv"))
    written = read_hf_tensors(out)
    compared, bad, seen = 0, [], set()
    for t in r.tensors:
        kind = t.tensor_type.name
        if kind not in NEW_TYPES:
            continue
        seen.add(kind)
        want = dequantize(t.data, t.tensor_type).astype(np.float32).reshape([int(x) for x in reversed(t.shape)])
        name = hf_name(t.name)
        if ".self_attn.q_proj." in name:
            want = unpermute(want, n_head)
        elif ".self_attn.k_proj." in name:
            want = unpermute(want, n_kv)
        got = written.get(name)
        compared += 1
        if got is None or got[0] != "F32" or got[1].shape != want.shape or \
                not np.array_equal(got[1].view(np.uint32), want.view(np.uint32)):
            err = "missing" if got is None else (f"max |d| {np.abs(got[1] - want).max():.3g}"
                                                if got[1].shape == want.shape else f"shape {got[1].shape}")
            bad.append(f"{t.name} ({kind}): {err}")
    result(not bad and compared > 0, f"{tag} dequantisation",
           f"{compared} tensors ({', '.join(sorted(seen))}) bit for bit equal to gguf-py's" if not bad
           else f"{len(bad)} of {compared} differ: {bad[:4]}")
    return out


def check_quantised(binary: str, path: str, tag: str, text: str) -> list[int]:
    """Step 2. Returns the text's token ids."""
    llm = load_llama(path, n_ctx=256, threads=LLAMACPP_THREADS, logits_all=True)
    floor = load_llama(path, n_ctx=256, threads=LLAMACPP_THREADS, logits_all=True, kv_f32=True)
    ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)[:SCORE_LEN]
    ref = llamacpp_token_logprobs(llm, ids)
    d_floor = np.abs(llamacpp_token_logprobs(floor, ids) - ref)
    del llm, floor
    label = f"{tag} score vs llama.cpp"
    try:
        lp = skv_score(binary, path, ids)
    except Exception as e:  # noqa: BLE001
        result(False, label, f"swiftkv score: {e}")
        return ids
    d = np.abs(lp - ref)
    lim_mean = LP_MEAN_X * float(d_floor.mean())
    result(float(d.mean()) <= lim_mean and float(d.max()) < LP_MAX, label,
           f"{len(ids)} tokens: |logprob diff| mean {d.mean():.4f} (limit {lim_mean:.4f} = {LP_MEAN_X} x the noise "
           f"floor's {d_floor.mean():.4f}), max {d.max():.3f} (limit {LP_MAX}; floor {d_floor.max():.3f}); mean "
           f"logprob swiftkv {lp.mean():.4f}, llama.cpp {ref.mean():.4f}")
    return ids


def check_f32(binary: str, path: str, export: str, tag: str, text: str, tmp: str) -> None:
    """Step 3."""
    f32 = os.path.join(tmp, f"{tag}_f32.gguf")
    write_f32_gguf(path, f32)
    llm = load_llama(f32, n_ctx=256, threads=LLAMACPP_THREADS, logits_all=True, kv_f32=True)
    ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)[:SCORE_LEN]
    ref = llamacpp_token_logprobs(llm, ids)
    del llm
    os.unlink(f32)
    label = f"{tag} dequantised F32 vs llama.cpp"
    try:
        lp = skv_score(binary, export, ids, ["--no-swiftkv"])
    except Exception as e:  # noqa: BLE001
        result(False, label, f"swiftkv score: {e}")
        return
    d = np.abs(lp - ref)
    result(float(d.max()) < F_LP_MAX, label,
           f"swiftkv's own F32 export (teacher path) vs llama.cpp on gguf-py's F32 copy, {len(ids)} tokens: "
           f"|logprob diff| max {d.max():.2e} (limit {F_LP_MAX:g}), mean {d.mean():.2e}")


def check_swiftkv_gguf(binary: str, path: str, tag: str, text_ids: list[int], tmp: str) -> None:
    """Step 4."""
    from gguf import GGUFReader

    out = os.path.join(tmp, f"{tag}_skv50.gguf")
    run_skv_plain(binary, ["convert", "--model", path, "--out", out, "--swiftkv-fraction", "0.5"])
    base, skv = GGUFReader(path), GGUFReader(out)
    st = {t.name: t for t in skv.tensors}
    bad = [t.name for t in base.tensors
           if t.name not in st or st[t.name].tensor_type != t.tensor_type or
           list(st[t.name].shape) != list(t.shape) or not np.array_equal(st[t.name].data, t.data)]
    kinds = sorted({t.tensor_type.name for t in base.tensors})
    result(not bad, f"{tag} SwiftKV GGUF keeps the base",
           f"all {len(base.tensors)} base tensors ({', '.join(kinds)}) byte for byte, {len(st) - len(base.tensors)} "
           f"SwiftKV tensors added" if not bad else f"{len(bad)} differ or are missing: {bad[:4]}")
    try:
        teacher, ref = skv_score(binary, out, text_ids, ["--no-swiftkv"]), skv_score(binary, path, text_ids)
        swift = skv_score(binary, out, text_ids)
        d = float(np.abs(teacher - ref).max())
        result(d == 0.0 and bool(np.all(np.isfinite(swift))) and not np.array_equal(swift, teacher),
               f"{tag} SwiftKV GGUF runs",
               f"teacher path vs base: max |diff| {d:.3g} (want 0); SwiftKV path mean logprob {swift.mean():.4f} "
               f"(teacher {teacher.mean():.4f})")
    except Exception as e:  # noqa: BLE001
        result(False, f"{tag} SwiftKV GGUF runs", str(e))
    del base, skv
    os.unlink(out)


def main() -> int:
    t_start = time.time()
    model, binary = default_model(), default_bin()
    require = os.environ.get("SKV_ALLOW_SKIP", "") not in ("1", "true", "yes")
    try:
        import llama_cpp
    except ImportError as e:
        print(f"{'FAIL' if require else 'SKIP'}: llama_cpp not importable ({e}); run scripts/setup_venv.sh")
        return 1 if require else 0
    if not os.path.exists(model):
        print(f"{'FAIL' if require else 'SKIP'}: model {model} missing; run scripts/fetch_model.sh")
        return 1 if require else 0
    if not os.access(binary, os.X_OK):
        print(f"FAIL: swiftkv binary {binary} not found (set SKV_BIN)")
        return 1
    from gguf import GGUFReader

    print(f"llama-cpp-python {llama_cpp.__version__}, base {model}, threads: swiftkv {THREADS}, llama.cpp "
          f"{LLAMACPP_THREADS}", flush=True)
    with tempfile.TemporaryDirectory(prefix="skv_kquant_") as tmp:
        for ftype, must_hold, text_index in FILES:
            path = os.path.join(tmp, f"SmolLM2-135M-Instruct.{ftype}.gguf")
            try:
                quantize_gguf(model, path, ftype, THREADS)
            except Exception as e:  # noqa: BLE001
                result(False, f"{ftype} quantise", str(e))
                continue
            kinds = {t.tensor_type.name for t in GGUFReader(path).tensors}
            result(must_hold <= kinds, f"{ftype} file", f"llama.cpp wrote {', '.join(sorted(kinds))} tensors "
                   f"({os.path.getsize(path) / 2**20:.1f} MiB)"
                   + ("" if must_hold <= kinds else f"; missing {sorted(must_hold - kinds)}"))
            text = SCORE_TEXTS[text_index][1]
            try:
                export = check_dequantisation(binary, path, ftype, tmp)
            except Exception as e:  # noqa: BLE001
                result(False, f"{ftype} dequantisation", str(e))
                export = None
            ids = check_quantised(binary, path, ftype, text)
            if ftype == "Q4_K_M":
                if export:
                    check_f32(binary, path, export, ftype, text, tmp)
                check_swiftkv_gguf(binary, path, ftype, ids[:64], tmp)
            print(f"({time.time() - t_start:.1f}s)", flush=True)
    print(f"llama.cpp K-quant oracle: {len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
