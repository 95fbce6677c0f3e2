#!/usr/bin/env python3
"""The serving sweeps of docs/serving.md, end to end and resumable point by point: every point
(one arm at one load) is one fresh server and one `swiftkv bench serve` run, whose result JSON
lands in --results; a point whose JSON exists is skipped, so an interrupted sweep goes on where
it stopped. Arms run interleaved (for each load, every arm in turn), so slow drift of a shared
machine hits them alike. Then scripts/plot_serving.py draws the figures.

Sweeps:
  throughput  combined (input + output) throughput vs input length 256 .. 4096, 64 output
              tokens, request rate inf (every request at once; --max-num-seqs of them run).
  latency     TTFT and TPOT (mean, p99) vs Poisson arrival rate at 1024 and 2048 input tokens,
              64 output tokens, baseline vs SwiftKV 50%. Rates are fractions of the baseline's
              saturated request throughput from the throughput sweep, up to and past it. Not
              4096: its baseline serves 0.046 requests/s here, so even 24 requests per rate
              would take about 3 hours for the two arms.
  prefix      a shared-prefix workload (--random-prefix-len 0 .. 3072 + 256 own tokens, 64 out,
              rate inf), baseline vs SwiftKV 50%, prefix caching on.
  tpot1       concurrency 1: 5 interleaved repetitions of baseline and SwiftKV 50% (1024 in, 128
              out), for the TPOT spread.

Arms share the Q4_1 base weights: llama-server runs the base GGUF; every swiftkv arm runs a
SwiftKV GGUF made from it (`swiftkv convert --out X.gguf`, made here when missing), the
baseline being the 50% file's teacher path (--no-swiftkv).

  python bench/serving_sweep.py throughput [--arms baseline,skv50] [--results build-serving]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MODELS = os.path.join(ROOT, "models")
BASE = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
SKV = os.environ.get("SKV_BIN", os.path.join(ROOT, "build", "swiftkv"))
LLAMA_SERVER = os.path.join(ROOT, "build-llama-server", "bin", "llama-server")
THREADS = 2
SEQS = 8            # --max-num-seqs / llama-server -np
MAX_LEN = 4096 + 256  # longest prompt + answer of any sweep, with room for BOS and chat wrapping
OUT_LEN = 64

# name -> (server, model file, extra flags); the SwiftKV files are made from BASE on first use.
ARMS = {
    "llama-server": ("llama", BASE, []),
    "baseline": ("swiftkv", "skv50.gguf", ["--no-swiftkv"]),
    "skv25": ("swiftkv", "skv25.gguf", []),
    "skv50": ("swiftkv", "skv50.gguf", []),
    "skv50-akv3": ("swiftkv", "skv50-akv3.gguf", []),
    "skv50-kv8": ("swiftkv", "skv50.gguf", ["--kv-cache-dtype", "q8_0"]),
}
# q8_0 projections: the files the figures in docs/serving.md were measured with (made before
# f16 became convert's default; the two measured alike, swiftkv.md "A SwiftKV GGUF").
CONVERT = {"skv25.gguf": ["--swiftkv-fraction", "0.25"], "skv50.gguf": ["--swiftkv-fraction", "0.5"],
           "skv50-akv3.gguf": ["--swiftkv-fraction", "0.5", "--key-value-group-size", "3"]}
CONVERT = {k: v + ["--swiftkv-dtype", "q8_0"] for k, v in CONVERT.items()}


def model_path(name: str) -> str:
    if os.path.isabs(name):
        return name
    path = os.path.join(MODELS, name)
    if not os.path.exists(path):
        subprocess.run([SKV, "convert", "--model", BASE, "--out", path] + CONVERT[name], check=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, arm: str, log_dir: str):
        kind, model, extra = ARMS[arm]
        self.port = free_port()
        path = model_path(model)
        if kind == "llama":
            # Continuous batching (the default) with one slot per sequence; -c is split over the
            # slots, so each gets MAX_LEN.
            cmd = [LLAMA_SERVER, "-m", path, "--host", "127.0.0.1", "--port", str(self.port), "-t", str(THREADS),
                   "-tb", str(THREADS), "-np", str(SEQS), "-c", str(SEQS * MAX_LEN), "--no-webui"]
        else:
            cmd = [SKV, "serve", "--model", path, "--port", str(self.port), "-t", str(THREADS), "--max-num-seqs",
                   str(SEQS), "--max-model-len", str(MAX_LEN), "--stats-interval", "0"] + extra
        self.log = open(os.path.join(log_dir, f"server-{arm}.log"), "a")
        self.log.write(f"\n$ {' '.join(cmd)}\n")
        self.log.flush()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{arm}: server exited {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{arm}: server not ready in 300 s")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def bench(server: Server, out: str | None, input_len: int, output_len: int, num_prompts: int, rate: str,
          seed: int, prefix_len: int = 0, max_concurrency: int | None = None) -> None:
    cmd = [SKV, "bench", "serve", "--base-url", server.url, "--tokenizer", BASE,
           "--dataset-name", "random", "--random-input-len", str(input_len), "--random-output-len", str(output_len),
           "--random-prefix-len", str(prefix_len), "--num-prompts", str(num_prompts), "--request-rate", rate,
           "--ignore-eos", "--seed", str(seed), "--percentile-metrics", "ttft,tpot,itl,e2el",
           "--metric-percentiles", "50,90,99"]
    if max_concurrency:
        cmd += ["--max-concurrency", str(max_concurrency)]
    if out:
        cmd += ["--save-result", "--result-filename", out]
    subprocess.run(cmd, check=True, stdout=None if out else subprocess.DEVNULL)


def run_point(results: str, name: str, arm: str, force: bool, **load) -> None:
    out = os.path.join(results, f"{name}__{arm}.json")
    if os.path.exists(out) and not force:
        print(f"= {name} {arm}: done before", flush=True)
        return
    print(f"> {name} {arm}: {load}", flush=True)
    server = Server(arm, results)
    try:
        # A few requests first, so the first measured ones do not pay for cold pages and caches.
        bench(server, None, min(load["input_len"], 256), 8, 2, "inf", seed=999)
        bench(server, out + ".part", **load)
        os.replace(out + ".part", out)
    finally:
        server.stop()


def saturated_rate(results: str, input_len: int) -> float:
    path = os.path.join(results, "throughput", f"in{input_len}__baseline.json")
    if not os.path.exists(path):
        sys.exit(f"the latency sweep needs the throughput sweep's baseline at {input_len} tokens ({path})")
    with open(path) as f:
        return json.load(f)["request_throughput"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep", choices=["throughput", "latency", "prefix", "tpot1"])
    ap.add_argument("--results", default=os.path.join(ROOT, "build-serving"))
    ap.add_argument("--arms", help="comma-separated subset of " + ",".join(ARMS))
    ap.add_argument("--force", action="store_true", help="re-run points that have results")
    a = ap.parse_args()
    if not os.path.exists(BASE):
        sys.exit(f"{BASE} missing: run scripts/fetch_model.sh")
    results = os.path.join(a.results, a.sweep)
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, "machine.txt"), "w") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
        flags = next((ln.split(":", 1)[1].split() for ln in open("/proc/cpuinfo") if ln.startswith("flags")), [])
        simd = [x for x in flags if re.match(r"(avx|amx|fma|f16c)", x)]
        f.write(f"{cpu}; {os.cpu_count()} CPUs; {' '.join(simd)}\n")

    def arms(default: list[str]) -> list[str]:
        chosen = a.arms.split(",") if a.arms else default
        for x in chosen:
            if x not in ARMS:
                sys.exit(f"unknown arm {x!r} (arms: {', '.join(ARMS)})")
        return chosen

    if a.sweep == "throughput":
        if "llama-server" in arms(list(ARMS)) and not os.path.exists(LLAMA_SERVER):
            sys.exit(f"{LLAMA_SERVER} missing: run bench/build_llama_server.sh")
        for n in (256, 512, 1024, 2048, 4096):
            # 16k prompt tokens a point (at least one wave of SEQS requests): 256 tokens prefill at
            # about 400 tokens/s on these 2 cores, so the long points take minutes even so.
            prompts = max(SEQS, min(32, 16384 // n))
            for arm in arms(list(ARMS)):
                run_point(results, f"in{n}", arm, a.force, input_len=n, output_len=OUT_LEN, num_prompts=prompts,
                          rate="inf", seed=1)
    elif a.sweep == "latency":
        for n in (1024, 2048):
            sat = saturated_rate(a.results, n)
            # About 2 minutes of arrivals at saturation per point: 32 requests at 1024, 16 at 2048.
            prompts = 32 if n == 1024 else 16
            # 0.5 is the "moderate load" (the baseline at half its saturated throughput).
            for frac in (0.5, 0.75, 1.0, 1.5):
                for arm in arms(["baseline", "skv50"]):
                    run_point(results, f"in{n}-rate{frac:.2f}", arm, a.force, input_len=n, output_len=OUT_LEN,
                              num_prompts=prompts, rate=f"{frac * sat:.4f}", seed=2)
    elif a.sweep == "prefix":
        for p in (0, 1024, 2048, 3072):
            for arm in arms(["baseline", "skv50"]):
                run_point(results, f"prefix{p}", arm, a.force, input_len=256, output_len=OUT_LEN, num_prompts=32,
                          rate="inf", seed=3, prefix_len=p)
    else:
        for rep in range(5):
            for arm in arms(["baseline", "skv50"]):
                run_point(results, f"rep{rep}", arm, a.force, input_len=1024, output_len=128, num_prompts=8,
                          rate="inf", seed=10 + rep, max_concurrency=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
