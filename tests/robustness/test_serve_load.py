#!/usr/bin/env python3
"""`swiftkv serve` under load, on the tiny fixture model (the server's machinery, not the model,
is under test; fast enough for the ASan build too).

- 256 concurrent streaming completions (within --max-waiting-requests) all complete with every
  token and no error, /health answers promptly while they run, and the server's resident memory
  after them is within 32 MB of what it was after a warm-up (not checked in sanitizer builds,
  whose allocator keeps freed memory in quarantine).
- With --max-num-seqs 1 and --max-waiting-requests 2, a burst of 12 long requests gets 503s with
  Retry-After for what does not fit the queue, and every accepted request completes.

Standard library only. Env: SKV_BIN, SKV_SOURCE_DIR.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_checks import BIN, ROOT, Checks, sanitized, start_serve  # noqa: E402

TINY = os.path.join(ROOT, "tests", "fixtures", "models", "llama_gqa")
checks = Checks(BIN, "serve")
TIMEOUT = float(os.environ.get("SKV_TEST_TIMEOUT", 300))


def serve(extra: list[str]) -> tuple[subprocess.Popen, int]:
    p, url, _ = start_serve(TINY, ["--kv-cache-memory-bytes", "64MiB"] + extra)
    return p, int(url.rsplit(":", 1)[1])


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stream(port: int, prompt: list[int], n: int) -> tuple[int, int, str]:
    """Streams one completion; returns (HTTP status, tokens received, error)."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        c.request("POST", "/v1/completions", json.dumps({"prompt": prompt, "max_tokens": n, "stream": True,
                                                         "ignore_eos": True, "logprobs": 0}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            return r.status, 0, f"Retry-After: {r.getheader('Retry-After')}; {r.read().decode()[:200]}"
        tokens, done = 0, False
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                continue
            j = json.loads(line[6:])
            if "error" in j:
                return 200, tokens, j["error"]["message"]
            for ch in j["choices"]:
                tokens += len(ch["logprobs"]["tokens"]) if ch.get("logprobs") else 0
        c.close()
        return 200, tokens, "" if done else "no [DONE]"
    except Exception as e:  # noqa: BLE001 - a failed request is a test failure with its message
        return -1, 0, f"{type(e).__name__}: {e}"


def burst(port: int, count: int, n: int) -> list[tuple[int, int, str]]:
    out: list = [None] * count
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, stream(port, [1, 2 + i % 50, 3], n)))
               for i in range(count)]
    for t in threads:
        t.start()
    return out if all(t.join() is None for t in threads) else out


def main() -> int:
    if not checks.have_binary():
        return checks.summary("serve load")
    p, port = serve(["--max-waiting-requests", "512", "--max-num-seqs", "64"])
    try:
        burst(port, 32, 32)  # warm-up: every thread, buffer and pool page the load will use
        time.sleep(0.5)
        rss_warm = rss_kib(p.pid)
        health_ms = []
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                t0 = time.monotonic()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
                c.request("GET", "/health")
                c.getresponse().read()
                c.close()
                health_ms.append(1000 * (time.monotonic() - t0))
                time.sleep(0.05)

        poller = threading.Thread(target=poll)
        poller.start()
        t0 = time.monotonic()
        results = burst(port, 256, 64)
        secs = time.monotonic() - t0
        stop.set()
        poller.join()
        bad = [r for r in results if r is None or r[0] != 200 or r[1] != 64 or r[2]]
        checks.record("load_256_streams", [f"{len(bad)} failed, e.g. {bad[:2]}"] if bad else [],
                      f"256 x 64 tokens in {secs:.1f} s")
        worst = max(health_ms) if health_ms else None
        checks.record("health_during_load", [] if worst is not None and worst < 2000 else [f"worst {worst} ms"],
                      f"{len(health_ms)} polls, worst {worst:.0f} ms" if worst else "")
        time.sleep(0.5)
        rss_after = rss_kib(p.pid)
        if sanitized():
            print(f"skip rss_bounded: sanitizer build (RSS {rss_warm} -> {rss_after} KiB)")
        else:
            grew = (rss_after - rss_warm) / 1024
            checks.record("rss_bounded", [] if grew <= 32 else [f"RSS grew {grew:.1f} MB"],
                          f"{rss_warm / 1024:.1f} -> {rss_after / 1024:.1f} MB")
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=TIMEOUT)
    checks.record("load_sigterm_exits_0", [] if rc == 0 else [f"exit {rc}"])

    # A queue of two: a burst of 12 long requests, one runs, two wait, the rest get 503.
    p, port = serve(["--max-waiting-requests", "2", "--max-num-seqs", "1", "--max-model-len", "2048"])
    try:
        results = burst(port, 12, 1500)
        statuses = [r[0] for r in results]
        busy = statuses.count(503)
        ok = [r for r in results if r[0] == 200]
        problems = []
        if busy == 0:
            problems.append(f"no 503 in {statuses}")
        if any(r[0] == 503 and not r[2].startswith("Retry-After: 1;") for r in results):
            problems.append(f"a 503 without Retry-After: {[r for r in results if r[0] == 503][:1]}")
        if any(r[1] != 1500 or r[2] for r in ok) or len(ok) + busy != 12:
            problems.append(f"accepted requests did not all complete: {results}")
        checks.record("queue_full_503", problems, f"{len(ok)} served, {busy} refused with 503")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        c.request("POST", "/v1/completions", json.dumps({"prompt": [1], "max_tokens": 1}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        checks.record("serves_after_burst", [] if r.status == 200 else [f"status {r.status}"])
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=TIMEOUT)
    checks.record("queue_sigterm_exits_0", [] if rc == 0 else [f"exit {rc}"])
    return checks.summary("serve load")


if __name__ == "__main__":
    sys.exit(main())
