#!/usr/bin/env python3
"""swiftkv vs llama.cpp (llama-cpp-python) on SmolLM2-135M-Instruct.

Two models, the same weights:

A. The Q4_1 GGUF as shipped. Both engines round activations to 8 bits for the quantised dot
   products (and llama.cpp keeps an F16 KV cache, swiftkv F32), so they are not bit-exact. This
   model amplifies such rounding: llama.cpp against *itself* with an F32 instead of an F16 KV
   cache changes per-token log-probs by ~0.07 on average (up to ~0.75) and flips greedy choices
   whose logit gap is up to ~0.4 (5 of these 6 prompts diverge that way). The Q4_1 limits are set
   just above that measured noise floor, which the test re-measures and prints for scoring:
   1. greedy generation (N_NEW tokens, EOS ignored) on plain and chat-formatted prompts,
      tokenised by llama.cpp (add_bos=False as the GGUF says, special=True). A divergence at step
      k passes only as a near-tie: llama.cpp's logits for its token and for ours differ by less
      than Q_TIE_GAP, and so do swiftkv's (its log-probs of both tokens, from `swiftkv score`).
   2. `swiftkv score` log-probs vs llama.cpp's (logits_all=True, log_softmax) on two ~100-token
      sequences: mean |diff| < Q_LP_MEAN, max |diff| < Q_LP_MAX.
B. The same GGUF dequantised to F32 (written at test time), llama.cpp with an F32 KV cache:
   no 8-bit rounding anywhere, so both engines compute the same float math and are held to float
   tolerances: greedy ties must be within F_TIE_GAP, log-probs within F_LP_MEAN / F_LP_MAX.

Prints "llama.cpp oracle: N passed, M failed"; exits non-zero on any failure.
Env: SKV_BIN, SKV_MODELS (or SKV_SOURCE_DIR/models). A missing llama_cpp module or model is a
failure (scripts/setup_venv.sh and scripts/fetch_model.sh provide them) unless SKV_ALLOW_SKIP=1.
SKV_ORACLE_SKIP_F32=1 skips part B (it writes a 540 MB temporary file).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llamacpp_util import (chat_prompt, default_bin, default_model, greedy_llamacpp, ids_arg,  # noqa: E402
                           load_llama, log_softmax, run_skv, write_f32_gguf)

N_NEW = 64
THREADS = 2
# A. Q4_1 (noise floor: llama.cpp F16-KV vs F32-KV flips ties of gap <= ~0.4, lp diffs mean ~0.07, max ~0.75)
Q_TIE_GAP = 0.5
Q_LP_MEAN = 0.15
Q_LP_MAX = 1.5
# B. dequantised F32 (measured: |lp diff| < 1e-4)
F_TIE_GAP = 0.01
F_LP_MEAN = 1e-3
F_LP_MAX = 1e-2

PROMPTS = [
    ("plain: capital", "The capital of France is"),
    ("plain: story", "Once upon a time, in a small village by the sea, there lived"),
    ("plain: code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
    ("chat: france", chat_prompt("What is the capital of France?")),
    ("chat: factorial", chat_prompt("Write a Python function that returns the factorial of n.")),
    ("chat: health", chat_prompt("Give me three tips for staying healthy.")),
]
F32_PROMPTS = [PROMPTS[1], PROMPTS[3], PROMPTS[5]]

SCORE_TEXTS = [
    ("plain paragraph",
     "The history of mathematics deals with the origin of discoveries in mathematics and the "
     "mathematical methods and notation of the past. Before the modern age and the worldwide spread "
     "of knowledge, written examples of new mathematical developments have come to light only in a "
     "few locales. From 3000 BC the Mesopotamian states of Sumer, Akkad and Assyria, followed closely "
     "by Ancient Egypt and the Levantine state of Ebla began using arithmetic, algebra and geometry "
     "for purposes of taxation, commerce, trade and also in the patterns in nature."),
    ("chat exchange",
     chat_prompt("Can you explain what photosynthesis is in simple terms?")
     + "Of course! Photosynthesis is the process plants use to make their own food. They take in "
       "sunlight through their leaves, water through their roots, and carbon dioxide from the air. "
       "Using the energy from the light, they turn the water and carbon dioxide into sugar, which "
       "feeds the plant, and oxygen, which they release into the air for us to breathe.<|im_end|>\n"),
]
SCORE_LEN = 100

passed: list[str] = []
failed: list[str] = []


def result(ok: bool, label: str, msg: str) -> None:
    (passed if ok else failed).append(label)
    print(f"{'ok  ' if ok else 'FAIL'} [{label}] {msg}", flush=True)


def skv_score(binary: str, model: str, ids: list[int]) -> list:
    return run_skv(binary, ["score", "--model", model, "--threads", str(THREADS), "--token-ids", ids_arg(ids)])[
        "token_logprobs"]


def greedy_checks(llm, binary: str, model: str, prompts, tie_gap: float, tag: str) -> None:
    full = 0
    for name, text in prompts:
        label = f"{tag} greedy: {name}"
        prompt = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        ref, ref_logits = greedy_llamacpp(llm, prompt, N_NEW)
        try:
            out = run_skv(binary, ["generate", "--model", model, "--token-ids", ids_arg(prompt), "--max-tokens",
                                   str(N_NEW), "--temperature", "0", "--ignore-eos", "--threads", str(THREADS),
                                   "--json"])
        except Exception as e:  # noqa: BLE001
            result(False, label, f"swiftkv generate: {e}")
            continue
        ours = [int(t) for t in out["token_ids"]]
        if len(ours) == len(prompt) + N_NEW and ours[:len(prompt)] == prompt:
            ours = ours[len(prompt):]  # tolerate an echo of the prompt
        if len(ours) != N_NEW:
            result(False, label, f"swiftkv returned {len(ours)} tokens, want {N_NEW} "
                                 f"(finish_reason {out.get('finish_reason')!r})")
            continue
        k = next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), None)
        if k is None:
            full += 1
            result(True, label, f"{len(prompt)} prompt tokens: all {N_NEW} greedy tokens identical")
            continue
        theirs_tok, our_tok = ref[k], ours[k]
        lg = ref_logits[k]
        gap = float(lg[theirs_tok] - lg[our_tok])
        lp = log_softmax(lg)
        top3 = np.argsort(lg)[::-1][:3].tolist()
        common = prompt + ref[:k]
        skv_gap = float("nan")
        try:
            s_ours = skv_score(binary, model, common + [our_tok])[-1]
            s_theirs = skv_score(binary, model, common + [theirs_tok])[-1]
            skv_gap = s_ours - s_theirs  # = swiftkv's logit gap (same softmax denominator)
            skv_view = f"swiftkv lp: its {s_ours:.4f} vs llama.cpp's {s_theirs:.4f} (gap {skv_gap:+.4f})"
        except Exception as e:  # noqa: BLE001
            skv_view = f"swiftkv score failed: {e}"
        detail = (f"diverged at step {k}/{N_NEW}: llama.cpp {theirs_tok} (logit {lg[theirs_tok]:.4f}, lp "
                  f"{lp[theirs_tok]:.4f}) vs swiftkv {our_tok} (logit {lg[our_tok]:.4f}, lp {lp[our_tok]:.4f}); "
                  f"llama.cpp logit gap {gap:.4f}, top-3 {top3}; {skv_view}")
        # A near-tie for both engines: each prefers its own token by less than tie_gap.
        if 0 <= gap < tie_gap and abs(skv_gap) < tie_gap:
            result(True, label, f"near-tie (< {tie_gap}) {detail}")
        else:
            result(False, label, f"not a near-tie (a gap >= {tie_gap}): {detail}\n"
                                 f"     llama.cpp: {ref[:k + 1]}\n     swiftkv:   {ours[:k + 1]}")
    print(f"{tag} greedy: {full}/{len(prompts)} prompts matched all {N_NEW} tokens", flush=True)


def llamacpp_token_logprobs(llm_all, ids: list[int]) -> np.ndarray:
    llm_all.reset()
    llm_all.eval(ids)
    logits = np.array(llm_all.scores[:len(ids), :], dtype=np.float64)
    return log_softmax(logits[:-1])[np.arange(len(ids) - 1), ids[1:]]


def score_checks(llm_all, binary: str, model: str, lim_mean: float, lim_max: float, tag: str,
                 floor_llm=None) -> None:
    for name, text in SCORE_TEXTS:
        label = f"{tag} score: {name}"
        ids = llm_all.tokenize(text.encode("utf-8"), add_bos=False, special=True)[:SCORE_LEN]
        ref_lp = llamacpp_token_logprobs(llm_all, ids)
        try:
            lp = skv_score(binary, model, ids)
        except Exception as e:  # noqa: BLE001
            result(False, label, f"swiftkv score: {e}")
            continue
        if len(lp) != len(ids) or lp[0] is not None or any(x is None for x in lp[1:]):
            result(False, label, f"token_logprobs has {len(lp)} entries (want {len(ids)}, first null)")
            continue
        diff = np.abs(np.array(lp[1:], dtype=np.float64) - ref_lp)
        mx, mean, worst = float(diff.max()), float(diff.mean()), int(diff.argmax()) + 1
        msg = (f"{len(ids)} tokens: |logprob diff| max {mx:.3g} (position {worst}), mean {mean:.3g} "
               f"(limits {lim_max} / {lim_mean}); mean logprob swiftkv {np.mean(lp[1:]):.4f}, "
               f"llama.cpp {ref_lp.mean():.4f}")
        if floor_llm is not None:
            d2 = np.abs(llamacpp_token_logprobs(floor_llm, ids) - ref_lp)
            msg += f"; noise floor (llama.cpp F16-KV vs F32-KV): max {d2.max():.3g}, mean {d2.mean():.3g}"
        result(mean < lim_mean and mx < lim_max, label, msg)


def main() -> int:
    t_start = time.time()
    model, binary = default_model(), default_bin()
    require = os.environ.get("SKV_ALLOW_SKIP", "") not in ("1", "true", "yes")
    try:
        import llama_cpp
    except ImportError as e:
        print(f"{'FAIL' if require else 'SKIP'}: llama_cpp not importable ({e}); run scripts/setup_venv.sh "
              "(SKV_ALLOW_SKIP=1 turns this into a skip)")
        return 1 if require else 0
    if not os.path.exists(model):
        print(f"{'FAIL' if require else 'SKIP'}: model {model} missing; run scripts/fetch_model.sh "
              "(SKV_ALLOW_SKIP=1 turns this into a skip)")
        return 1 if require else 0
    if not os.access(binary, os.X_OK):
        print(f"FAIL: swiftkv binary {binary} not found (set SKV_BIN)")
        return 1
    print(f"llama-cpp-python {llama_cpp.__version__}, model {model}, threads {THREADS}", flush=True)

    # ---------------------------------------------------------------- A. Q4_1 as shipped
    llm = load_llama(model, n_ctx=2048, threads=THREADS)
    greedy_checks(llm, binary, model, PROMPTS, Q_TIE_GAP, "Q4_1")
    del llm
    llm_all = load_llama(model, n_ctx=512, threads=THREADS, logits_all=True)
    floor = load_llama(model, n_ctx=512, threads=THREADS, logits_all=True, kv_f32=True)
    score_checks(llm_all, binary, model, Q_LP_MEAN, Q_LP_MAX, "Q4_1", floor_llm=floor)
    del llm_all, floor
    print(f"({time.time() - t_start:.1f}s)", flush=True)

    # ---------------------------------------------------------------- B. dequantised to F32
    if os.environ.get("SKV_ORACLE_SKIP_F32", "") in ("1", "true", "yes"):
        print("F32: skipped (SKV_ORACLE_SKIP_F32)")
    else:
        with tempfile.TemporaryDirectory(prefix="skv_oracle_f32_") as tmp:
            f32 = os.path.join(tmp, "model-f32.gguf")
            t0 = time.time()
            write_f32_gguf(model, f32)
            print(f"F32: wrote dequantised copy ({os.path.getsize(f32) / 2**20:.0f} MiB, {time.time() - t0:.1f}s)",
                  flush=True)
            llm = load_llama(f32, n_ctx=512, threads=THREADS, kv_f32=True)
            greedy_checks(llm, binary, f32, F32_PROMPTS, F_TIE_GAP, "F32")
            del llm
            llm_all = load_llama(f32, n_ctx=512, threads=THREADS, logits_all=True, kv_f32=True)
            score_checks(llm_all, binary, f32, F_LP_MEAN, F_LP_MAX, "F32")
            del llm_all

    print(f"({time.time() - t_start:.1f}s)")
    print(f"llama.cpp oracle: {len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
