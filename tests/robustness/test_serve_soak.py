#!/usr/bin/env python3
"""The short version of scripts/load_serve.py, on the tiny fixture model: 64 concurrent streams
for 15 s, then Poisson arrivals at 80% of the rate they reached for 15 s. Passes when the script
does: no error, RSS growth after the warm-up within 32 MiB (reported only in sanitizer builds,
whose allocator keeps freed memory in quarantine), open fds back to their start count, the
engine idle, SIGTERM exit 0. The sanitizer build runs 32 streams for 8 s + 8 s.

The long version (256 streams x 120 s, then 600 s) runs by hand; docs/reliability.md has its
figures. Standard library only. Env: SKV_BIN, SKV_SOURCE_DIR.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_checks import BIN, ROOT, Checks, make_env, sanitized  # noqa: E402

TINY = os.path.join(ROOT, "tests", "fixtures", "models", "llama_gqa")
checks = Checks(BIN, "serve")


def main() -> int:
    if not checks.have_binary():
        return checks.summary("serve soak")
    asan = sanitized()
    streams, secs, bound = (32, 8, -1) if asan else (64, 15, 32)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "load.json")
        cmd = [sys.executable, os.path.join(ROOT, "scripts", "load_serve.py"), "--bin", BIN, "--model", TINY,
               "--streams", str(streams), "--phase1", str(secs), "--phase2", str(secs), "-t", "2",
               "--sample-every", "1", "--rss-bound-mb", str(bound), "--request-timeout", "120", "--json", out,
               "--", "--kv-cache-memory-bytes", "16MiB"]
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=make_env())
        except subprocess.TimeoutExpired:
            checks.record("load_serve_short", ["load_serve.py did not stop by itself within 600 s"])
            return checks.summary("serve soak")
        took = time.monotonic() - t0
        print(p.stdout.strip())
        try:
            with open(out) as f:
                r = json.load(f)
        except (OSError, ValueError):
            r = None
        if r is None:
            checks.record("load_serve_short", [f"no report (exit {p.returncode}): {p.stderr[-600:]}"])
            return checks.summary("serve soak")
        problems = list(r["failures"])
        if p.returncode != 0 and not problems:
            problems.append(f"exit {p.returncode}: {p.stderr[-300:]}")
        p1, p2 = r["phase1"], r["phase2"]
        if p1["requests"] == 0 or p2["requests"] == 0:
            problems.append(f"requests: phase 1 {p1['requests']}, phase 2 {p2['requests']}")
        checks.record("load_serve_short", problems,
                      f"{took:.0f} s; phase 1: {p1['requests']} requests, {p1['requests_per_s']}/s, TTFT p99 "
                      f"{p1['ttft_ms']['p99']} ms; phase 2 at {r['phase2_rate_requests_per_s']}/s: {p2['requests']} "
                      f"requests, TTFT p99 {p2['ttft_ms']['p99']} ms, ITL p99 {p2['itl_ms']['p99']} ms, e2e p99 "
                      f"{p2['e2e_ms']['p99']} ms; errors {p1['errors']} + {p2['errors']}; RSS growth "
                      f"{r['rss_mib']['growth_after_warmup']} MiB; fds {r['fds']['start']} -> {r['fds']['end']}")
    return checks.summary("serve soak")


if __name__ == "__main__":
    sys.exit(main())
