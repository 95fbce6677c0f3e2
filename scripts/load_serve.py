#!/usr/bin/env python3
"""Load test of `swiftkv serve` in two phases, with bounds that make it pass or fail.

Phase 1: --streams clients (default 256), each looping streamed completions back to back for
--phase1 seconds (default 120): the server saturated (more streams than --max-num-seqs, the
rest queued). Its saturation rate is the completed requests per second over the second half of
phase 1 (closed loop, so the queue never empties: that is the most this request mix gets).
Phase 2: Poisson arrivals at --load (default 0.8) of that rate for --phase2 seconds (default
600), each a streamed completion taken by a free client (at most 2 x --streams).

Requests: token-id prompts of --prompt-tokens A:B (uniform; ids drawn from the model's
vocabulary, so any model works), --max-tokens A:B new tokens with ignore_eos, greedy. Per phase:
the request count, errors (any status but 200, an error event, no [DONE], a cut connection, a
timeout), throughput, and p50 / p90 / p99 of TTFT (send to the first text chunk), inter-token
latency (between text chunks) and end-to-end latency (send to [DONE]).

The server process: RSS (VmRSS) every --sample-every seconds; its growth after the warm-up
(the first half of phase 1) is the largest sample after it minus the largest sample during it,
and must stay within --rss-bound-mb (a negative bound reports only: sanitizer builds keep freed
memory in quarantine). The KV pool's pages become resident as its blocks are first used, and
the prefix cache keeps freed blocks until the pool has cycled through, so the warm-up must cycle
the pool (--kv-cache-memory-bytes small enough) for the bound to measure leaks: the report gives
the pool's size. Open file descriptors (/proc/PID/fd) when ready and after the clients
closed their connections: the end count may not exceed the start count. At the end the engine
must be idle (/metrics: 0 running, 0 waiting, KV cache usage 0) and SIGTERM must exit 0.

Bounded: every request has a socket timeout (--request-timeout), both phases end at their
deadlines, clients finish the request they are in (bounded by that timeout) and are joined with
a deadline; the script stops by itself. Exit status 1 on any violated bound. Standard library
only. --json PATH writes every figure.

  .venv/bin/python scripts/load_serve.py --bin build/swiftkv \\
      --model models/SmolLM2-135M-Instruct.Q4_1.gguf -t 1 -- --kv-cache-memory-bytes 1GiB
"""
from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak_serve import pct, rss_kib, sigterm_exit  # noqa: E402


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def span(text: str) -> tuple[int, int]:
    a, _, b = text.partition(":")
    lo, hi = int(a), int(b or a)
    if lo < 1 or hi < lo:
        raise argparse.ArgumentTypeError(f"want A:B with 1 <= A <= B, got {text!r}")
    return lo, hi


class Phase:
    """What one phase measured; add() is called from many client threads."""

    def __init__(self, name: str):
        self.name = name
        self.lock = threading.Lock()
        self.ok = 0
        self.errors: list[str] = []
        self.ttft: list[float] = []
        self.itl: list[float] = []
        self.e2e: list[float] = []
        self.done_at: list[float] = []  # monotonic time each request completed
        self.gen_tokens = 0
        self.prompt_tokens = 0
        self.t0 = self.t1 = 0.0
        self.max_backlog = 0  # Poisson: most arrivals waiting for a free client at once
        self.unserved = 0
        self.clients = 0  # Poisson: clients (connections) it took

    def error(self, what: str) -> None:
        with self.lock:
            self.errors.append(what[:300])

    def summary(self) -> dict:
        secs = max(1e-9, self.t1 - self.t0)
        ms = lambda xs, q: round(pct(xs, q) * 1000, 1)  # noqa: E731
        return {
            "phase": self.name, "seconds": round(secs, 1), "requests": self.ok, "errors": len(self.errors),
            "error_examples": self.errors[:5], "requests_per_s": round(self.ok / secs, 3),
            "generated_tokens_per_s": round(self.gen_tokens / secs, 1),
            "prompt_tokens_per_s": round(self.prompt_tokens / secs, 1),
            "ttft_ms": {q: ms(self.ttft, v) for q, v in (("p50", .5), ("p90", .9), ("p99", .99))},
            "itl_ms": {q: ms(self.itl, v) for q, v in (("p50", .5), ("p90", .9), ("p99", .99))},
            "e2e_ms": {q: ms(self.e2e, v) for q, v in (("p50", .5), ("p90", .9), ("p99", .99))},
            "max_client_backlog": self.max_backlog, "unserved": self.unserved, "clients": self.clients,
        }


class Load:
    def __init__(self, port: int, a: argparse.Namespace, vocab: int):
        self.port, self.a, self.vocab = port, a, vocab

    def body(self, rng: random.Random) -> dict:
        n = rng.randint(*self.a.prompt_tokens)
        return {"prompt": [rng.randrange(1, self.vocab) for _ in range(n)],
                "max_tokens": rng.randint(*self.a.max_tokens), "temperature": 0, "ignore_eos": True,
                "stream": True, "stream_options": {"include_usage": True}}

    def one(self, phase: Phase, rng: random.Random, conn: http.client.HTTPConnection | None,
            t0: float | None = None):
        """One streamed completion, its latencies counted from t0 (default: now); returns the
        connection to reuse (None after a failure)."""
        body = self.body(rng)
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.a.request_timeout)
        t0 = time.monotonic() if t0 is None else t0
        try:
            c.request("POST", "/v1/completions", body=json.dumps(body).encode(),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            if r.status != 200:
                phase.error(f"status {r.status}: {r.read()[:200]!r}")
                c.close()
                return None
            first = last = None
            gaps: list[float] = []
            usage, done = None, False
            for raw in r:
                line = raw.strip()
                if not line.startswith(b"data: "):
                    continue
                if line == b"data: [DONE]":
                    done = True
                    continue
                j = json.loads(line[6:])
                if "error" in j:
                    phase.error(f"error event: {j['error'].get('message', '')}")
                    c.close()
                    return None
                if j.get("usage"):
                    usage = j["usage"]
                if j.get("choices") and j["choices"][0].get("text"):
                    now = time.monotonic()
                    if first is None:
                        first = now
                    else:
                        gaps.append(now - last)
                    last = now
            t1 = time.monotonic()
            if not done or usage is None or usage["completion_tokens"] != body["max_tokens"]:
                phase.error(f"incomplete: [DONE] {done}, usage {usage}, want {body['max_tokens']} tokens")
                c.close()
                return None
        except (OSError, http.client.HTTPException, ValueError) as e:
            phase.error(f"{type(e).__name__}: {e}")
            c.close()
            return None
        with phase.lock:
            phase.ok += 1
            phase.done_at.append(t1)
            phase.e2e.append(t1 - t0)
            if first is not None:
                phase.ttft.append(first - t0)
            phase.itl.extend(gaps)
            phase.gen_tokens += usage["completion_tokens"]
            phase.prompt_tokens += usage["prompt_tokens"]
        return c if not r.will_close else None

    def closed_loop(self, phase: Phase, seconds: float) -> None:
        stop = time.monotonic() + seconds

        def client(i: int) -> None:
            rng = random.Random(self.a.seed * 100003 + i)
            conn = None
            while time.monotonic() < stop:
                conn = self.one(phase, rng, conn)
            if conn is not None:
                conn.close()

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(self.a.streams)]
        phase.t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:  # each ends its last request by the deadline plus one request timeout
            t.join(max(0.0, stop + self.a.request_timeout + 5 - time.monotonic()))
        phase.t1 = time.monotonic()
        if any(t.is_alive() for t in threads):
            phase.error("a client did not finish within its request timeout (hang?)")

    def poisson(self, phase: Phase, rate: float, seconds: float) -> None:
        """Open loop: arrivals at Poisson times, each taken by a free client; a new client (a
        persistent connection, as SDK clients keep them) starts only when none is free, up to
        2 x --streams, so that bursts queue in the server and the connections stay as many as
        the load needs. Latencies count from the arrival time, so a wait for a free client
        counts too. A connection idle for 4 s is replaced before it is used: the server closes
        keep-alive connections after 5 s idle. Arrivals that no client has started 60 s after
        the phase's end (the server fell behind) are not sent: counted as unserved, an error."""
        rng = random.Random(self.a.seed)
        arrivals: queue.Queue = queue.Queue()
        phase.t0 = time.monotonic()
        stop = phase.t0 + seconds
        give_up = stop + min(60.0, self.a.request_timeout)
        lock = threading.Lock()
        idle = [0]  # clients waiting for an arrival

        def worker(i: int) -> None:
            wrng = random.Random(self.a.seed * 7 + i)
            conn, last = None, 0.0
            while True:
                with lock:
                    idle[0] += 1
                t = arrivals.get()
                with lock:
                    idle[0] -= 1
                if t is None:
                    break
                if time.monotonic() > give_up:
                    phase.unserved += 1
                    continue
                if conn is not None and time.monotonic() - last > 4.0:
                    conn.close()
                    conn = None
                conn = self.one(phase, wrng, conn, t)
                last = time.monotonic()
            if conn is not None:
                conn.close()

        workers: list[threading.Thread] = []
        t = phase.t0
        while True:
            t += rng.expovariate(rate)
            if t >= stop:
                break
            time.sleep(max(0.0, t - time.monotonic()))
            phase.max_backlog = max(phase.max_backlog, arrivals.qsize())
            with lock:
                spawn = idle[0] <= arrivals.qsize() and len(workers) < 2 * self.a.streams
            if spawn:
                workers.append(threading.Thread(target=worker, args=(len(workers),), daemon=True))
                workers[-1].start()
            arrivals.put(t)
        phase.clients = len(workers)
        for _ in workers:
            arrivals.put(None)
        for w in workers:
            w.join(max(0.0, give_up + self.a.request_timeout + 5 - time.monotonic()))
        phase.t1 = time.monotonic()
        if any(w.is_alive() for w in workers):
            phase.error("a request did not finish within its timeout (hang?)")
        if phase.unserved:
            phase.error(f"{phase.unserved} arrivals not started 60 s after the phase ended: the server fell behind")

    def get(self, path: str) -> tuple[int, str]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("GET", path)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        return r.status, text

    def metrics(self) -> dict[str, float]:
        _, text = self.get("/metrics")
        out = {}
        for m in re.finditer(r"^swiftkv:(\w+)(\{[^}]*\})? (\S+)$", text, re.M):
            label = re.search(r'finished_reason="(\w+)"', m.group(2) or "")
            out[m.group(1) + (":" + label.group(1) if label else "")] = float(m.group(3))
        return out


def main() -> int:
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--bin", default=os.path.join(root, "build", "swiftkv"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", "-t", type=int, default=os.cpu_count(), help="the server's -t")
    ap.add_argument("--streams", type=int, default=256, help="concurrent streams in phase 1")
    ap.add_argument("--phase1", type=float, default=120, help="seconds of phase 1")
    ap.add_argument("--phase2", type=float, default=600, help="seconds of phase 2")
    ap.add_argument("--load", type=float, default=0.8, help="phase 2's rate as a fraction of saturation")
    ap.add_argument("--prompt-tokens", type=span, default=(16, 128), help="A:B (default 16:128)")
    ap.add_argument("--max-tokens", type=span, default=(16, 64), help="A:B (default 16:64)")
    ap.add_argument("--rss-bound-mb", type=float, default=32,
                    help="largest RSS growth after the warm-up, MiB (default 32; negative: report only)")
    ap.add_argument("--request-timeout", type=float, default=600)
    ap.add_argument("--sample-every", type=float, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("serve_args", nargs="*", help="extra flags for swiftkv serve (after --)")
    a = ap.parse_args()
    if a.streams < 1 or a.phase1 <= 0 or a.phase2 < 0 or not 0 < a.load <= 1:
        ap.error("--streams >= 1, --phase1 > 0, --phase2 >= 0, 0 < --load <= 1")

    cmd = [a.bin, "serve", "--model", a.model, "--port", "0", "-t", str(a.threads), "--stats-interval", "0",
           "--max-waiting-requests", str(max(256, 2 * a.streams))] + a.serve_args
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Drained on a thread: a full stderr pipe would block the server.
    err_tail: collections.deque[str] = collections.deque(maxlen=50)
    kv_line: list[str] = []

    def drain() -> None:
        for ln in p.stderr:
            err_tail.append(ln)
            if not kv_line and "KV cache:" in ln:
                kv_line.append(ln)

    threading.Thread(target=drain, daemon=True).start()
    ready = {}
    threading.Thread(target=lambda: ready.setdefault("line", p.stdout.readline()), daemon=True).start()
    t_start = time.monotonic()
    while "line" not in ready and time.monotonic() - t_start < 300 and p.poll() is None:
        time.sleep(0.05)
    m = re.search(r"ready on http://[^:]+:(\d+)", ready.get("line", ""))
    if not m:
        p.kill()
        print(f"server did not start: {ready.get('line')!r} {''.join(err_tail)[-800:]}", file=sys.stderr)
        return 1
    port = int(m.group(1))
    fds_start = fd_count(p.pid)  # before any connection
    load = Load(port, a, 2)
    _, info = load.get("/tokenizer_info")
    load.vocab = int(json.loads(info).get("vocab_size", 2))
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"load: {' '.join(cmd)}\n      {cpu}, {os.cpu_count()} CPUs; {a.streams} streams x {a.phase1:.0f} s, then "
          f"Poisson at {a.load:.0%} of saturation x {a.phase2:.0f} s; prompts {a.prompt_tokens[0]}-"
          f"{a.prompt_tokens[1]} tokens, {a.max_tokens[0]}-{a.max_tokens[1]} new", flush=True)

    rss: list[tuple[float, int]] = []
    sampling = threading.Event()

    def sampler() -> None:
        while True:
            rss.append((time.monotonic() - t0, rss_kib(p.pid)))
            if sampling.wait(a.sample_every):
                return

    t0 = time.monotonic()
    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    p1 = Phase("phase1")
    load.closed_loop(p1, a.phase1)
    # Saturation: completions per second over the second half of phase 1 (the first half
    # fills the queue and warms the server up).
    half = p1.t0 + a.phase1 / 2
    late = [t for t in p1.done_at if half <= t <= p1.t0 + a.phase1]
    saturation = len(late) / (a.phase1 / 2)
    warm_end = half - t0
    print(f"phase 1: {json.dumps(p1.summary())}\nsaturation: {saturation:.3f} requests/s "
          f"({len(late)} completed in the last {a.phase1 / 2:.0f} s)", flush=True)
    p2 = Phase("phase2")
    if a.phase2 > 0 and saturation > 0:
        load.poisson(p2, a.load * saturation, a.phase2)
        print(f"phase 2: {json.dumps(p2.summary())}", flush=True)
    sampling.set()
    th.join()

    failures: list[str] = []
    # Idle: nothing running or waiting, every block free (the clients have all returned).
    idle, t_idle = {}, time.monotonic()
    while time.monotonic() - t_idle < 30:
        idle = load.metrics()
        if idle.get("num_requests_running") == 0 and idle.get("num_requests_waiting") == 0:
            break
        time.sleep(0.2)
    if idle.get("num_requests_running") != 0 or idle.get("num_requests_waiting") != 0 or \
            idle.get("kv_cache_usage_perc") != 0:
        failures.append(f"not idle at the end: running {idle.get('num_requests_running')}, waiting "
                        f"{idle.get('num_requests_waiting')}, KV usage {idle.get('kv_cache_usage_perc')}")
    fds_end = fd_count(p.pid)
    for _ in range(100):  # connections the server has not seen closed yet
        if fds_end <= fds_start:
            break
        time.sleep(0.1)
        fds_end = fd_count(p.pid)
    if fds_end > fds_start:
        failures.append(f"open fds {fds_start} at the start, {fds_end} at the end")
    rss_end = rss_kib(p.pid)
    rc = sigterm_exit(p)
    if rc != 0:
        failures.append(f"SIGTERM: exit {rc}")

    warm = [r for t, r in rss if t <= warm_end]
    after = [r for t, r in rss if t > warm_end] + [rss_end]
    growth_mb = (max(after) - max(warm or after)) / 1024
    if a.rss_bound_mb >= 0 and growth_mb > a.rss_bound_mb:
        failures.append(f"RSS grew {growth_mb:.1f} MiB after the warm-up (bound {a.rss_bound_mb} MiB)")
    for ph in (p1, p2):
        if ph.errors:
            failures.append(f"{ph.name}: {len(ph.errors)} errors, e.g. {ph.errors[:3]}")
    if p1.ok == 0:
        failures.append("no request completed in phase 1")
    every = max(1, len(rss) // 12)
    pool = re.search(r"KV cache: .*? (\d+) MiB \(", "".join(kv_line))
    report = {
        "command": cmd, "cpu": cpu, "cpus": os.cpu_count(), "streams": a.streams, "phase1_s": a.phase1,
        "phase2_s": a.phase2, "load": a.load, "prompt_tokens": a.prompt_tokens, "max_tokens": a.max_tokens,
        "phase1": p1.summary(), "saturation_requests_per_s": round(saturation, 3),
        "phase2_rate_requests_per_s": round(a.load * saturation, 3), "phase2": p2.summary(),
        "rss_mib": {"samples": [(round(t), round(r / 1024, 1)) for t, r in rss[::every]],
                    "warmup_max": round(max(warm or after) / 1024, 1), "after_warmup_max": round(max(after) / 1024, 1),
                    "end": round(rss_end / 1024, 1), "growth_after_warmup": round(growth_mb, 1),
                    "bound": a.rss_bound_mb, "warmup_s": round(warm_end),
                    "kv_pool": int(pool.group(1)) if pool else None},
        "fds": {"start": fds_start, "end": fds_end},
        "idle_metrics": {k: idle.get(k) for k in ("num_requests_running", "num_requests_waiting",
                                                  "kv_cache_usage_perc", "num_preemptions_total",
                                                  "request_success_total:abort")},
        "sigterm_exit": rc, "failures": failures,
    }
    r = report["rss_mib"]
    print(f"RSS MiB: max during warm-up ({r['warmup_s']} s) {r['warmup_max']}, max after {r['after_warmup_max']}, "
          f"end {r['end']}: growth {r['growth_after_warmup']} (bound {a.rss_bound_mb}; KV pool {r['kv_pool']}); "
          f"samples (s, MiB) "
          f"{r['samples']}")
    print(f"fds: {fds_start} at the start, {fds_end} at the end; idle: {report['idle_metrics']}; SIGTERM exit {rc}")
    print(f"failures: {len(failures)}" + "".join(f"\n  {f}" for f in failures))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
