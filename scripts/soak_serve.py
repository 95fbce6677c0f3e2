#!/usr/bin/env python3
"""A long soak of `swiftkv serve`, run by hand (too long for CI): starts the server, drives it with
a mixed workload from concurrent clients for --minutes, and reports errors, throughput, latency
and resident memory over time. docs/serving.md holds the figures.

Each client loops over a weighted mix: streamed completions on prose prompts of 100-1500 tokens,
non-streamed chat, echo + logprobs (scoring), clients that disconnect after the first chunk, bad
requests that must get a 4xx, and tokenize/detokenize round trips. A sampler polls /health,
/metrics and the server's RSS every few seconds. At the end every request must have been answered
as expected, the engine must be idle again (nothing running or waiting, the aborted requests'
blocks freed) and SIGTERM must exit 0.

Standard library only. Exit status 0 when no request failed.

  .venv/bin/python scripts/soak_serve.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf \\
      --minutes 30 --concurrency 16 -- --max-num-seqs 32
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PROSE = os.path.join(ROOT, "..", "shared", "data", "prose", "gutenberg_bodies.txt")


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def sigterm_exit(p: subprocess.Popen, timeout: float = 120) -> int:
    """SIGTERM, then the exit status; -999 (after kill -9) when it has not exited within `timeout`."""
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return -999


class Soak:
    def __init__(self, port: int, prose: str, seed: int):
        self.port = port
        self.prose = prose
        self.seed = seed
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.failures: list[str] = []
        self.ttft: list[float] = []
        self.tpot: list[float] = []
        self.prompt_tokens = 0
        self.gen_tokens = 0
        self.health_ms: list[float] = []
        self.rss: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def fail(self, kind: str, what: str) -> None:
        with self.lock:
            self.failures.append(f"{kind}: {what}"[:300])

    def done(self, kind: str) -> None:
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def post(self, path: str, body, raw: bytes | None = None):
        c = self.conn()
        c.request("POST", path, body=raw if raw is not None else json.dumps(body).encode(),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def prompt(self, rng: random.Random, tokens: int) -> str:
        # About four characters a token in English prose.
        start = rng.randrange(0, len(self.prose) - tokens * 4 - 1)
        return self.prose[start:start + tokens * 4]

    def streamed(self, rng: random.Random, disconnect: bool) -> None:
        kind = "disconnect" if disconnect else "stream"
        body = {"prompt": self.prompt(rng, rng.randint(100, 1500)), "max_tokens": rng.randint(16, 128),
                "temperature": rng.choice([0.0, 0.7]), "seed": rng.randrange(1 << 30), "stream": True,
                "stream_options": {"include_usage": True}}
        c = self.conn()
        t0 = time.perf_counter()
        c.request("POST", "/v1/completions", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            self.fail(kind, f"status {r.status} {r.read()[:200]!r}")
            return c.close()
        first, last, pieces, usage, done = None, None, 0, None, False
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                break
            j = json.loads(line[6:])
            if "error" in j:
                self.fail(kind, j["error"]["message"])
                return c.close()
            if j.get("usage"):
                usage = j["usage"]
            if j["choices"] and j["choices"][0].get("text") is not None:
                now = time.perf_counter()
                first = first if first is not None else now
                last = now
                pieces += 1
                if disconnect:
                    c.close()  # goes away mid-answer; the server must abort it
                    return self.done(kind)
        c.close()
        if not done or usage is None:
            return self.fail(kind, f"no [DONE] or usage (done {done})")
        with self.lock:
            self.prompt_tokens += usage["prompt_tokens"]
            self.gen_tokens += usage["completion_tokens"]
            if first is not None:
                self.ttft.append(first - t0)
                if usage["completion_tokens"] > 1:
                    self.tpot.append((last - first) / (usage["completion_tokens"] - 1))
        self.done(kind)

    def chat(self, rng: random.Random) -> None:
        q = self.prompt(rng, rng.randint(20, 200))
        st, data = self.post("/v1/chat/completions", {
            "messages": [{"role": "user", "content": "Summarise: " + q}], "max_tokens": rng.randint(8, 64),
            "temperature": 0.0})
        if st != 200:
            return self.fail("chat", f"status {st} {data[:200]!r}")
        u = json.loads(data)["usage"]
        with self.lock:
            self.prompt_tokens += u["prompt_tokens"]
            self.gen_tokens += u["completion_tokens"]
        self.done("chat")

    def score(self, rng: random.Random) -> None:
        st, data = self.post("/v1/completions", {"prompt": self.prompt(rng, rng.randint(50, 600)), "max_tokens": 1,
                                                 "echo": True, "logprobs": 1, "temperature": 0.0})
        if st != 200:
            return self.fail("score", f"status {st} {data[:200]!r}")
        lp = json.loads(data)["choices"][0]["logprobs"]["token_logprobs"]
        if not lp or lp[0] is not None or any(x is None or x > 0 for x in lp[1:]):
            return self.fail("score", "echo log-probs malformed")
        with self.lock:
            self.prompt_tokens += len(lp) - 1
        self.done("score")

    def bad(self, rng: random.Random) -> None:
        case = rng.randrange(4)
        if case == 0:
            st, data = self.post("/v1/completions", None, raw=b'{"prompt": "x", "max_tokens": ')
        elif case == 1:
            st, data = self.post("/v1/completions", {"prompt": [1, 2, 1 << 30], "max_tokens": 4})
        elif case == 2:
            st, data = self.post("/v1/completions", {"prompt": "x " * 100000, "max_tokens": 4})
        else:
            st, data = self.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                                                          "tools": [{"type": "function"}]})
        if st != 400 or "error" not in json.loads(data):
            return self.fail("bad", f"case {case}: status {st} {data[:200]!r}")
        self.done("bad")

    def tokenize(self, rng: random.Random) -> None:
        text = self.prompt(rng, rng.randint(10, 300))
        st, data = self.post("/tokenize", {"prompt": text, "add_special_tokens": False})
        if st != 200:
            return self.fail("tokenize", f"status {st}")
        st, data = self.post("/detokenize", {"tokens": json.loads(data)["tokens"]})
        if st != 200 or json.loads(data)["prompt"] != text:
            return self.fail("tokenize", f"round trip differs (status {st})")
        self.done("tokenize")

    def client(self, i: int) -> None:
        rng = random.Random(self.seed * 1000 + i)
        mix = [("stream", 50), ("chat", 15), ("score", 10), ("disconnect", 10), ("bad", 10), ("tokenize", 5)]
        kinds = [k for k, w in mix for _ in range(w)]
        while not self.stop.is_set():
            kind = rng.choice(kinds)
            try:
                if kind in ("stream", "disconnect"):
                    self.streamed(rng, kind == "disconnect")
                else:
                    getattr(self, kind)(rng)
            except Exception as e:  # noqa: BLE001 - every exception is a failed request, reported
                self.fail(kind, f"{type(e).__name__}: {e}")

    def sampler(self, pid: int, t0: float, every: float) -> None:
        while not self.stop.wait(every):
            try:
                c = self.conn()
                h0 = time.perf_counter()
                c.request("GET", "/health")
                r = c.getresponse()
                r.read()
                c.close()
                with self.lock:
                    self.health_ms.append((time.perf_counter() - h0) * 1000)
                    self.rss.append((time.perf_counter() - t0, rss_kib(pid)))
                if r.status != 200:
                    self.fail("health", f"status {r.status}")
            except Exception as e:  # noqa: BLE001
                self.fail("health", f"{type(e).__name__}: {e}")

    def metrics(self) -> dict[str, float]:
        c = self.conn()
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        out = {}
        for m in re.finditer(r"^swiftkv:(\w+)(\{[^}]*\})? (\S+)$", text, re.M):
            key = m.group(1) + (m.group(2) or "")
            out[key] = float(m.group(3))
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "swiftkv"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--threads", "-t", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sample-every", type=float, default=5.0)
    ap.add_argument("serve_args", nargs="*", help="extra flags for swiftkv serve (after --)")
    a = ap.parse_args()

    with open(PROSE, encoding="utf-8") as f:
        prose = f.read()
    p = subprocess.Popen([a.bin, "serve", "--model", a.model, "--port", "0", "-t", str(a.threads),
                          "--stats-interval", "30"] + a.serve_args, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r"ready on http://[^:]+:(\d+)", line)
    if not m:
        p.kill()
        print(f"server did not start: {line!r}", file=sys.stderr)
        return 1
    soak = Soak(int(m.group(1)), prose, a.seed)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"soak: {a.model} {' '.join(a.serve_args)}; {a.concurrency} clients, {a.minutes} min; {cpu}, "
          f"{os.cpu_count()} CPUs, -t {a.threads}", flush=True)
    rss_start = rss_kib(p.pid)
    t0 = time.perf_counter()
    clients = [threading.Thread(target=soak.client, args=(i,)) for i in range(a.concurrency)]
    sampler = threading.Thread(target=soak.sampler, args=(p.pid, t0, a.sample_every))
    for t in clients + [sampler]:
        t.start()
    soak.stop.wait(a.minutes * 60)
    soak.stop.set()
    for t in clients + [sampler]:
        t.join()
    secs = time.perf_counter() - t0

    # The engine must be idle again: the disconnected clients' requests aborted, blocks freed.
    idle = None
    for _ in range(100):
        idle = soak.metrics()
        if all(v == 0 for k, v in idle.items() if k.startswith(("num_requests_running", "num_requests_waiting"))):
            break
        time.sleep(0.1)
    running = next((v for k, v in idle.items() if k.startswith("num_requests_running")), None)
    waiting = next((v for k, v in idle.items() if k.startswith("num_requests_waiting")), None)
    usage = next((v for k, v in idle.items() if k.startswith("kv_cache_usage_perc")), None)
    aborted = next((v for k, v in idle.items() if k.startswith("request_success_total") and 'abort' in k), 0)
    if running != 0 or waiting != 0:
        soak.failures.append(f"not idle after the soak: running {running}, waiting {waiting}")
    rss_end = rss_kib(p.pid)
    rc = sigterm_exit(p)
    if rc != 0:
        soak.failures.append(f"SIGTERM: exit {rc}")

    total = sum(soak.counts.values())
    rss = [r for _, r in soak.rss]
    warm = [r for t, r in soak.rss if t >= min(60.0, secs / 4)]
    print(f"requests: {total} in {secs:.0f} s ({total / secs:.2f}/s): "
          + ", ".join(f"{k} {v}" for k, v in sorted(soak.counts.items())))
    print(f"failures: {len(soak.failures)}" + "".join(f"\n  {f}" for f in soak.failures[:20]))
    print(f"tokens: prompt {soak.prompt_tokens} ({soak.prompt_tokens / secs:.0f}/s), "
          f"generated {soak.gen_tokens} ({soak.gen_tokens / secs:.1f}/s)")
    print(f"TTFT s: p50 {pct(soak.ttft, .5):.3f} p90 {pct(soak.ttft, .9):.3f} p99 {pct(soak.ttft, .99):.3f}; "
          f"TPOT ms: p50 {pct(soak.tpot, .5) * 1e3:.1f} p90 {pct(soak.tpot, .9) * 1e3:.1f} "
          f"p99 {pct(soak.tpot, .99) * 1e3:.1f}")
    print(f"/health ms: median {statistics.median(soak.health_ms) if soak.health_ms else float('nan'):.1f} "
          f"max {max(soak.health_ms, default=float('nan')):.1f} ({len(soak.health_ms)} polls)")
    if rss:
        print(f"RSS MiB: start {rss_start / 1024:.0f}, after warm-up {(warm or rss)[0] / 1024:.0f}, "
              f"max {max(rss) / 1024:.0f}, end {rss_end / 1024:.0f}; "
              f"by quarter: {', '.join(f'{rss[min(len(rss) - 1, i * len(rss) // 4)] / 1024:.0f}' for i in range(4))}")
    print(f"idle after: running {running}, waiting {waiting}, kv_cache_usage_perc {usage}, aborted {aborted:.0f}; "
          f"SIGTERM exit {rc}")
    return 0 if not soak.failures else 1


if __name__ == "__main__":
    sys.exit(main())
