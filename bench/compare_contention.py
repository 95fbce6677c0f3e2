#!/usr/bin/env python3
"""Decode / prefill speed of two swiftkv builds, quiet and with competing busy processes.

Rounds alternate the builds and the conditions (A quiet, B quiet, A loaded, B loaded, then the
next round in the other order), so load drift from other users of the machine hits every cell
alike. "Loaded" starts --busy processes that spin in a shell loop for the duration of one
`swiftkv bench` run. Every figure is printed with the 1-minute load average taken before it.

    python3 bench/compare_contention.py --new build/swiftkv --old /tmp/base/build/swiftkv \
        --model models/SmolLM2-135M-Instruct.Q4_1.gguf -p 0 -n 128 -r 5 -t 2 --rounds 4
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys


def load_avg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def bench(binary, args):
    cmd = [binary, "bench", "--model", args.model, "-p", args.p, "-n", args.n, "-r", str(args.r), "-t", str(args.t),
           "--json"]
    for attempt in range(3):
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode >= 0:
            break
        # On a shared machine someone else's cleanup may signal our run: say so and run it again.
        print(f"  ({binary} killed by signal {-p.returncode}, running it again)", flush=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return {r["test"]: r["tokens_per_second"] for r in json.loads(p.stdout)["results"]}


def run_cell(binary, loaded, args):
    for attempt in range(3):
        busy = []
        if loaded:
            for _ in range(args.busy):
                busy.append(subprocess.Popen(args.busy_cmd, shell=True))
        try:
            la = load_avg()
            res = bench(binary, args)
            survived = all(p.poll() is None for p in busy)
        finally:
            for p in busy:
                p.kill()
                p.wait()
        if survived:
            return la, res
        print("  (a busy process died during the run, running the cell again)", flush=True)
    raise RuntimeError("the busy processes keep dying")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new", required=True, help="swiftkv binary under test")
    ap.add_argument("--old", required=True, help="baseline swiftkv binary")
    ap.add_argument("--model", required=True)
    ap.add_argument("-p", default="0")
    ap.add_argument("-n", default="128")
    ap.add_argument("-r", type=int, default=5)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--busy", type=int, default=1, help="competing busy processes in the loaded condition")
    ap.add_argument("--busy-cmd", default="while :; do :; done", help="shell command of one busy process")
    ap.add_argument("--conditions", default="quiet,loaded")
    args = ap.parse_args()
    # A killed run must not leave its busy processes behind.
    def on_term(*_):
        print("terminated", file=sys.stderr, flush=True)
        sys.exit(143)

    signal.signal(signal.SIGTERM, on_term)

    print(f"cpu: {cpu_model()}, {os.cpu_count()} logical cpus; threads {args.t}; busy processes {args.busy}")
    bins = {"old": args.old, "new": args.new}
    conds = args.conditions.split(",")
    cells = [(b, c) for c in conds for b in ("old", "new")]
    results = {}  # (bin, cond, test) -> [t/s]
    for rnd in range(args.rounds):
        order = cells if rnd % 2 == 0 else list(reversed(cells))
        for b, c in order:
            la, res = run_cell(bins[b], c == "loaded", args)
            for test, tps in res.items():
                results.setdefault((b, c, test), []).append(tps)
                print(f"round {rnd + 1} {b:3s} {c:6s} {test:6s} {tps:8.2f} t/s   load avg {la:.2f}", flush=True)

    tests = sorted({k[2] for k in results})
    print()
    print("| test | build | " + " | ".join(f"{c} t/s (mean, median)" for c in conds) +
          (" | loaded / quiet (of medians) |" if len(conds) == 2 else " |"))
    print("|---|---|" + "---:|" * len(conds) + ("---:|" if len(conds) == 2 else ""))
    for test in tests:
        for b in ("old", "new"):
            row = []
            med = {}
            for c in conds:
                xs = results.get((b, c, test), [])
                med[c] = statistics.median(xs) if xs else float("nan")
                row.append(f"{statistics.mean(xs):.2f}, {med[c]:.2f}" if xs else "-")
            ratio = f" | {med[conds[1]] / med[conds[0]]:.2f}" if len(conds) == 2 else ""
            print(f"| {test} | {b} | " + " | ".join(row) + ratio + " |")
    for test in tests:
        for c in conds:
            o, n = results.get(("old", c, test)), results.get(("new", c, test))
            if o and n:
                print(f"{test} {c}: new / old (of medians) = {statistics.median(n) / statistics.median(o):.2f}x")


if __name__ == "__main__":
    sys.exit(main())
