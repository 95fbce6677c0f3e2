#!/usr/bin/env python3
"""swiftkv vs llama.cpp throughput, side by side in one run (llama-bench semantics).

    python bench/compare_llamacpp.py [--model M.gguf] [--threads 2] [--bin build/swiftkv] [--reps 5]
                                     [--n-prompt 512] [--n-gen 128] [--out results.json]
                                     [--requantize Q4_K_M]

--requantize FTYPE first makes a FTYPE copy of --model with llama.cpp's own quantiser (in a temp
dir, removed afterwards) and benchmarks that: e.g. the shipped Q4_1 SmolLM2 as Q4_K_M.

pp<N>: N random tokens evaluated as one batch (n_batch = n_ubatch = 512) from an empty KV cache.
tg<N>: N single-token decode steps from an empty KV cache.

llama.cpp runs in-process through llama-cpp-python (low-level llama_decode on
llama_batch_get_one batches, as llama-bench does, so no Python work sits inside the timed loop
beyond one ctypes call per step). swiftkv runs as `swiftkv bench -p N -n N -r 1 --json`, which
does its own warm-up for each test. The engines alternate round by round (swiftkv first in odd
rounds, llama.cpp first in even ones) so slow drift in machine load hits both alike. Each engine
is warmed up once before the first round. Reported: mean ± sd of the per-round samples.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))
from llamacpp_util import clear_kv, default_model, load_llama, quantize_gguf  # noqa: E402


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class LlamaCppRunner:
    def __init__(self, model: str, threads: int, n_prompt: int, n_gen: int, seed: int = 42):
        import llama_cpp

        self.lc = llama_cpp
        self.llm = load_llama(model, n_ctx=max(n_prompt, n_gen) + 16, threads=threads, logits_all=False,
                              n_batch=512, n_ubatch=512)
        vocab = int(self.llm.n_vocab())
        rng = np.random.default_rng(seed)
        self.prompt = [int(t) for t in rng.integers(0, vocab, size=max(n_prompt, 1))]
        self.n_prompt, self.n_gen = n_prompt, n_gen
        self.low_level = hasattr(llama_cpp, "llama_batch_get_one") and hasattr(llama_cpp, "llama_decode")

    def _decode(self, tokens: list[int]) -> None:
        if self.low_level:
            arr = (self.lc.llama_token * len(tokens))(*tokens)
            try:
                batch = self.lc.llama_batch_get_one(arr, len(tokens))
            except (TypeError, ctypes.ArgumentError):  # older API: (tokens, n, pos_0, seq_id)
                batch = self.lc.llama_batch_get_one(arr, len(tokens), self._pos, 0)
            rc = self.lc.llama_decode(self.llm.ctx, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc}")
            self._pos += len(tokens)
        else:
            self.llm.eval(tokens)

    def _sync(self) -> None:
        if hasattr(self.lc, "llama_synchronize"):
            self.lc.llama_synchronize(self.llm.ctx)

    def _reset(self) -> None:
        clear_kv(self.llm)
        self._pos = 0

    def pp(self) -> float:
        self._reset()
        t0 = time.perf_counter()
        for s in range(0, self.n_prompt, 512):
            self._decode(self.prompt[s:s + 512])
        self._sync()
        return self.n_prompt / (time.perf_counter() - t0)

    def tg(self) -> float:
        self._reset()
        tok = self.prompt[0]
        t0 = time.perf_counter()
        for _ in range(self.n_gen):
            self._decode([tok])
        self._sync()
        return self.n_gen / (time.perf_counter() - t0)


def run_swiftkv(binary: str, model: str, threads: int, n_prompt: int, n_gen: int, reps: int) -> dict[str, list[float]]:
    cmd = [binary, "bench", "--model", model, "-p", str(n_prompt), "-n", str(n_gen), "-r", str(reps), "-t",
           str(threads), "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"swiftkv bench failed (exit {p.returncode}): {p.stderr.strip()}")
    j = json.loads(p.stdout)
    out = {}
    for r in j["results"]:
        out[r["test"]] = [float(x) for x in r.get("samples", [r["tokens_per_second"]])]
    return out


def fmt(samples: list[float]) -> str:
    if not samples:
        return "-"
    m = statistics.mean(samples)
    sd = statistics.stdev(samples) if len(samples) > 1 else 0.0
    return f"{m:.2f} ± {sd:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=default_model())
    ap.add_argument("--threads", "-t", type=int, default=2)
    ap.add_argument("--bin", default=os.environ.get("SKV_BIN", os.path.join(ROOT, "build", "swiftkv")))
    ap.add_argument("--reps", "-r", type=int, default=5)
    ap.add_argument("--n-prompt", "-p", type=int, default=512)
    ap.add_argument("--n-gen", "-n", type=int, default=128)
    ap.add_argument("--baseline-bin", help="a second swiftkv binary (e.g. the previous build) run in the same rounds; "
                    "its figures and the ratio bin / baseline-bin are reported too")
    ap.add_argument("--out", help="write results as JSON here")
    ap.add_argument("--requantize", metavar="FTYPE", help="benchmark a FTYPE copy of --model made by llama.cpp's "
                    "quantiser (Q4_K_M, Q5_K_M, Q6_K, ...)")
    a = ap.parse_args()
    if a.requantize:
        if not os.path.exists(a.model):
            raise SystemExit(f"model {a.model} not found (scripts/fetch_model.sh)")
        with tempfile.TemporaryDirectory(prefix="skv_bench_") as tmp:
            src = a.model
            a.model = os.path.join(tmp, f"{os.path.basename(src).rsplit('.', 2)[0]}.{a.requantize}.gguf")
            quantize_gguf(src, a.model, a.requantize, a.threads)
            print(f"{src} requantized to {a.requantize} by llama.cpp's quantiser", flush=True)
            return run(a)
    return run(a)


def run(a: argparse.Namespace) -> int:
    import llama_cpp

    if not os.path.exists(a.model):
        raise SystemExit(f"model {a.model} not found (scripts/fetch_model.sh)")
    if not os.access(a.bin, os.X_OK):
        raise SystemExit(f"swiftkv binary {a.bin} not found (--bin or SKV_BIN)")
    if a.baseline_bin and not os.access(a.baseline_bin, os.X_OK):
        raise SystemExit(f"swiftkv baseline binary {a.baseline_bin} not found")
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))

    tests = [t for t, n in (("pp", a.n_prompt), ("tg", a.n_gen)) if n > 0]
    names = {"pp": f"pp{a.n_prompt}", "tg": f"tg{a.n_gen}"}
    theirs = {names[t]: [] for t in tests}
    ours = {names[t]: [] for t in tests}
    base = {names[t]: [] for t in tests}

    t_start = time.time()
    lc = LlamaCppRunner(a.model, a.threads, a.n_prompt, a.n_gen)
    for t in tests:  # warm-up
        getattr(lc, t)()
    run_swiftkv(a.bin, a.model, a.threads, min(a.n_prompt, 64), min(a.n_gen, 8), 1)  # warm page cache
    engines = ["ours", "theirs"] + (["base"] if a.baseline_bin else [])

    for rnd in range(a.reps):
        k = rnd % len(engines)  # each engine goes first in turn
        order = engines[k:] + engines[:k]
        for who in order:
            if who in ("ours", "base"):
                res = run_swiftkv(a.bin if who == "ours" else a.baseline_bin, a.model, a.threads, a.n_prompt, a.n_gen, 1)
                for key in ours:
                    (ours if who == "ours" else base)[key] += res.get(key, [])
            else:
                for t in tests:
                    theirs[names[t]].append(getattr(lc, t)())
        print(f"round {rnd + 1}/{a.reps}: " + ", ".join(
            f"{k} llama.cpp {theirs[k][-1]:.1f} / swiftkv {ours[k][-1] if ours[k] else float('nan'):.1f}"
            for k in theirs), file=sys.stderr)

    cpu = cpu_name()
    print(f"\nllama.cpp: llama-cpp-python {llama_cpp.__version__} "
          f"({'llama_decode' if lc.low_level else 'Llama.eval'}, n_batch=n_ubatch=512)")
    try:
        print("llama.cpp system info: " + llama_cpp.llama_print_system_info().decode().strip())
    except Exception:  # noqa: BLE001
        pass
    print(f"model: {os.path.basename(a.model)}   CPU: {cpu} ({os.cpu_count()} logical cores)   threads: {a.threads}   "
          f"reps: {a.reps} (interleaved)\n")
    print("| test | llama.cpp t/s | swiftkv t/s | ratio (swiftkv / llama.cpp) |")
    print("|------|--------------:|------------:|----------------------------:|")
    rows = []
    for k in theirs:
        m_t = statistics.mean(theirs[k])
        m_o = statistics.mean(ours[k]) if ours[k] else float("nan")
        print(f"| {k} | {fmt(theirs[k])} | {fmt(ours[k])} | {m_o / m_t:.2f}x |")
        rows.append({"test": k, "llamacpp_tps": m_t, "llamacpp_sd": statistics.stdev(theirs[k]) if len(theirs[k]) > 1 else 0.0,
                     "swiftkv_tps": m_o, "swiftkv_sd": statistics.stdev(ours[k]) if len(ours[k]) > 1 else 0.0,
                     "ratio": m_o / m_t, "llamacpp_samples": theirs[k], "swiftkv_samples": ours[k]})
    if a.baseline_bin:
        print(f"\n| test | swiftkv ({a.bin}) t/s | swiftkv ({a.baseline_bin}) t/s | ratio |")
        print("|------|------:|------:|------:|")
        for k in base:
            m_o, m_b = statistics.mean(ours[k]), statistics.mean(base[k])
            print(f"| {k} | {fmt(ours[k])} | {fmt(base[k])} | {m_o / m_b:.3f}x |")
            rows.append({"test": k, "baseline_bin": a.baseline_bin, "baseline_tps": m_b, "baseline_samples": base[k],
                         "ratio_to_baseline": m_o / m_b})
    print(f"\n({time.time() - t_start:.0f}s)")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"model": a.model, "threads": a.threads, "reps": a.reps, "cpu": cpu, "n_prompt": a.n_prompt,
                       "n_gen": a.n_gen,
                       "llama_cpp_python": llama_cpp.__version__, "results": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
