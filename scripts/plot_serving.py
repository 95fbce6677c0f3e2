#!/usr/bin/env python3
"""Figures and tables of the serving sweeps (bench/serving_sweep.py): reads the result JSONs
(`swiftkv bench serve --save-result`, vLLM's keys) and writes into docs/figures/ a PNG per
sweep and a markdown file with the same numbers, the machine and the command, for
docs/serving.md.

  .venv/bin/python scripts/plot_serving.py [--results build-serving] [--out docs/figures]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ARM_ORDER = ["llama-server", "baseline", "skv25", "skv50", "skv50-akv3", "skv50-kv8"]
LABEL = {"llama-server": "llama-server (Q4_1)", "baseline": "swiftkv baseline (teacher path)",
         "skv25": "SwiftKV 25%", "skv50": "SwiftKV 50%", "skv50-akv3": "SwiftKV 50% + AcrossKV G=3",
         "skv50-kv8": "SwiftKV 50% + 8-bit KV"}


def load(results: str, sweep: str) -> dict[tuple[str, str], dict]:
    out = {}
    for path in glob.glob(os.path.join(results, sweep, "*__*.json")):
        point, arm = os.path.basename(path)[:-5].split("__")
        with open(path) as f:
            out[(point, arm)] = json.load(f)
    return out


def machine(results: str, sweep: str) -> str:
    try:
        with open(os.path.join(results, sweep, "machine.txt")) as f:
            return f.read().strip()
    except OSError:
        return "?"


def arms_of(data: dict) -> list[str]:
    present = {arm for _, arm in data}
    return [a for a in ARM_ORDER if a in present]


def md_table(table: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(table[0]) + " |", "|" + "|".join(["---"] + ["---:"] * (len(table[0]) - 1)) + "|"] +
            ["| " + " | ".join(r) + " |" for r in table[1:]])


def write_md(out: str, name: str, title: str, cmd: str, mach: str, table: list[list[str]], notes: str = "") -> None:
    lines = [f"![{title}]({name}.png)", "", f"`{cmd}`; {mach}.", ""] + md_table(table)
    if notes:
        lines += ["", notes]
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines) + "\n")


def throughput(results: str, out: str) -> None:
    data = load(results, "throughput")
    if not data:
        return
    lens = sorted({int(p[2:]) for p, _ in data})
    arms = arms_of(data)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for arm in arms:
        xs = [n for n in lens if (f"in{n}", arm) in data]
        ax.plot(xs, [data[(f"in{n}", arm)]["total_token_throughput"] for n in xs], marker="o", label=LABEL[arm])
    ax.set_xscale("log", base=2)
    ax.set_xticks(lens, [str(n) for n in lens])
    ax.set_xlabel("input tokens per request (64 output)")
    ax.set_ylabel("combined throughput (tokens/s)")
    ax.set_title("Combined throughput vs input length, request rate inf")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "serving_throughput.png"), dpi=110)
    plt.close(fig)
    table = [["input tokens"] + [LABEL[a] for a in arms] + ["SwiftKV 50% / baseline", "baseline / llama-server"]]
    for n in lens:
        row = [str(n)]
        for a in arms:
            r = data.get((f"in{n}", a))
            row.append(f"{r['total_token_throughput']:.0f}" if r else "-")
        b, s, ll = (data.get((f"in{n}", a)) for a in ("baseline", "skv50", "llama-server"))
        row.append(f"{s['total_token_throughput'] / b['total_token_throughput']:.2f}x" if b and s else "-")
        row.append(f"{b['total_token_throughput'] / ll['total_token_throughput']:.2f}x" if b and ll else "-")
        table.append(row)
    ttft = [["input tokens"] + [f"{LABEL[a]} median TTFT ms" for a in arms]]
    for n in lens:
        ttft.append([str(n)] + [f"{data[(f'in{n}', a)]['median_ttft_ms']:.0f}" if (f"in{n}", a) in data else "-"
                                for a in arms])
    write_md(out, "serving_throughput", "combined throughput vs input length",
             "python bench/serving_sweep.py throughput && python scripts/plot_serving.py",
             machine(results, "throughput"), table,
             "Median TTFT at the same points (every request sent at once):\n\n" + "\n".join(md_table(ttft)))


def latency(results: str, out: str) -> None:
    data = load(results, "latency")
    if not data:
        return
    for n in sorted({int(p.split("-")[0][2:]) for p, _ in data}):
        points = sorted({p for p, _ in data if p.startswith(f"in{n}-")}, key=lambda p: float(p.split("rate")[1]))
        arms = [a for a in arms_of(data) if any((p, a) in data for p in points)]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for arm in arms:
            pts = [p for p in points if (p, arm) in data]
            rates = [data[(p, arm)]["request_rate"] for p in pts]
            for ax, key in zip(axes, ("ttft", "tpot")):
                ax.plot(rates, [data[(p, arm)][f"mean_{key}_ms"] for p in pts], marker="o", label=f"{LABEL[arm]} mean")
                ax.plot(rates, [data[(p, arm)][f"p99_{key}_ms"] for p in pts], marker="x", linestyle="--",
                        label=f"{LABEL[arm]} p99")
        for ax, key in zip(axes, ("TTFT", "TPOT")):
            ax.set_xlabel("Poisson arrival rate (requests/s)")
            ax.set_ylabel(f"{key} (ms)")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"{n} input tokens, 64 output: latency vs arrival rate")
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"serving_latency_in{n}.png"), dpi=110)
        plt.close(fig)
        table = [["rate (req/s)", "arm", "mean TTFT ms", "p99 TTFT ms", "mean TPOT ms", "p99 TPOT ms",
                  "output tok/s", "completed"]]
        for p in points:
            for a in arms:
                r = data.get((p, a))
                if r:
                    table.append([f"{r['request_rate']:.3f}", LABEL[a], f"{r['mean_ttft_ms']:.0f}",
                                  f"{r['p99_ttft_ms']:.0f}", f"{r['mean_tpot_ms']:.1f}", f"{r['p99_tpot_ms']:.1f}",
                                  f"{r['output_throughput']:.1f}", str(r["completed"])])
        write_md(out, f"serving_latency_in{n}", f"latency vs arrival rate, {n} input tokens",
                 "python bench/serving_sweep.py latency && python scripts/plot_serving.py",
                 machine(results, "latency"), table)


def prefix(results: str, out: str) -> None:
    data = load(results, "prefix")
    if not data:
        return
    lens = sorted({int(p[6:]) for p, _ in data})
    arms = arms_of(data)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for arm in arms:
        xs = [n for n in lens if (f"prefix{n}", arm) in data]
        axes[0].plot(xs, [data[(f"prefix{n}", arm)]["total_token_throughput"] for n in xs], marker="o",
                     label=LABEL[arm])
        axes[1].plot(xs, [data[(f"prefix{n}", arm)]["mean_ttft_ms"] for n in xs], marker="o", label=LABEL[arm])
    axes[0].set_ylabel("combined throughput (tokens/s)")
    axes[1].set_ylabel("mean TTFT (ms)")
    for ax in axes:
        ax.set_xlabel("shared prefix tokens (+256 own, 64 output)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Shared-prefix workload, prefix caching on")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "serving_prefix.png"), dpi=110)
    plt.close(fig)
    table = [["shared prefix", "arm", "combined tok/s", "mean TTFT ms", "mean TPOT ms"]]
    for n in lens:
        for a in arms:
            r = data.get((f"prefix{n}", a))
            if r:
                table.append([str(n), LABEL[a], f"{r['total_token_throughput']:.0f}", f"{r['mean_ttft_ms']:.0f}",
                              f"{r['mean_tpot_ms']:.1f}"])
    write_md(out, "serving_prefix", "shared-prefix workload", "python bench/serving_sweep.py prefix && "
             "python scripts/plot_serving.py", machine(results, "prefix"), table)


def tpot1(results: str, out: str) -> None:
    data = load(results, "tpot1")
    if not data:
        return
    reps = sorted({p for p, _ in data})
    arms = arms_of(data)
    table = [["repetition"] + [f"{LABEL[a]} mean TPOT ms" for a in arms] + ["ratio"]]
    ratios = []
    for p in reps:
        vals = [data[(p, a)]["mean_tpot_ms"] if (p, a) in data else None for a in arms]
        ratio = vals[1] / vals[0] if len(vals) == 2 and None not in vals else None
        if ratio:
            ratios.append(ratio)
        table.append([p] + [f"{v:.2f}" if v else "-" for v in vals] + [f"{ratio:.3f}" if ratio else "-"])
    note = ""
    if ratios:
        note = (f"SwiftKV 50% / baseline mean TPOT at concurrency 1: median {statistics.median(ratios):.3f}, "
                f"range {min(ratios):.3f} .. {max(ratios):.3f} over {len(ratios)} interleaved repetitions.")
    path = os.path.join(out, "serving_tpot1.md")
    lines = [f"`python bench/serving_sweep.py tpot1`; {machine(results, 'tpot1')}.", ""] + md_table(table) + ["", note]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=os.path.join(ROOT, "build-serving"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "figures"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for fn in (throughput, latency, prefix, tpot1):
        fn(a.results, a.out)


if __name__ == "__main__":
    main()
