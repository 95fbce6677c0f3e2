#!/usr/bin/env python3
"""Reference run of EleutherAI's lm-evaluation-harness (transformers backend, CPU, F32) on the
local ARC-Easy / PIQA files, for validating `swiftkv eval` (docs/quality.md, "Validation
against lm-evaluation-harness").

  scripts/setup_lm_eval_venv.sh
  .venv-lmeval/bin/python scripts/lm_eval_reference.py            # full sets, ~1-2 h on 2 cores
  .venv-lmeval/bin/python scripts/lm_eval_reference.py --limit 16 # smoke test

It makes models/smollm2-f32-hf from the GGUF if missing (scripts/lm_eval_make_hf_model.py), runs

  lm_eval --model hf --model_args pretrained=models/smollm2-f32-hf,dtype=float32
          --tasks arc_easy_local,piqa_local --include_path scripts/lm_eval_tasks
          --device cpu --batch_size 8 --num_fewshot 0 --log_samples --output_path OUT

from the project root with the Hugging Face hub switched off (everything is local) and
--use_cache build-lmeval/lm-eval-cache/... (an interrupted run resumes), times it, and
writes OUT/summary.json + prints acc / acc_norm with stderr. The per-item samples_<task>_*.jsonl
under OUT are what scripts/compare_lm_eval.py reads.
"""
import argparse
import glob
import importlib.metadata as md
import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/smollm2-f32-hf")
    ap.add_argument("--gguf", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--tasks", default="arc_easy_local,piqa_local")
    ap.add_argument("--batch-size", default="8")
    ap.add_argument("--num-fewshot", default="0")
    ap.add_argument("--limit", help="items per task (smoke test)")
    ap.add_argument("--out", default="build-lmeval/lm-eval-results",
                    help="output directory (git-ignored by /build*/)")
    ap.add_argument("--cache", default="build-lmeval/lm-eval-cache/smollm2-f32-hf",
                    help="lm-eval --use_cache sqlite prefix: every computed loglikelihood is kept, "
                         "so an interrupted run resumes where it stopped ('' to disable)")
    a = ap.parse_args()
    os.chdir(ROOT)  # the task yamls name the data as ../shared/data/... relative to the root

    if not os.path.exists(os.path.join(a.model, "model.safetensors")):
        subprocess.run([sys.executable, "scripts/lm_eval_make_hf_model.py", "--gguf", a.gguf,
                        "--out", a.model], check=True)

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false")
    lm_eval = os.path.join(os.path.dirname(sys.executable), "lm_eval")
    cmd = [lm_eval, "--model", "hf", "--model_args", f"pretrained={a.model},dtype=float32",
           "--tasks", a.tasks, "--include_path", "scripts/lm_eval_tasks", "--device", "cpu",
           "--batch_size", a.batch_size, "--num_fewshot", a.num_fewshot, "--log_samples",
           "--output_path", a.out]
    if a.limit:
        cmd += ["--limit", a.limit]
    resumed = False
    if a.cache:
        cmd += ["--use_cache", a.cache]
        resumed = os.path.exists(a.cache + "_rank0.db")
    print("+", " ".join(cmd), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True, env=env)
    wall = time.time() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru.ru_utime + ru.ru_stime

    results = max(glob.glob(os.path.join(a.out, "**", "results_*.json"), recursive=True),
                  key=os.path.getmtime)
    with open(results) as f:
        res = json.load(f)
    import torch
    summary = {
        "command": " ".join(cmd),
        "wall_s": round(wall, 1),
        "resumed_from_cache": resumed,  # then wall/cpu cover only the requests not cached
        "cpu_s": round(cpu, 1),  # user + system of lm_eval: wall/cpu shows CPU contention
        "load_avg_at_end": os.getloadavg(),
        "lm_eval": md.version("lm-eval"), "torch": md.version("torch"),
        "transformers": md.version("transformers"), "datasets": md.version("datasets"),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "nproc": os.cpu_count(), "results_file": results,
        "tasks": {},
    }
    print(f"\nwall time {wall:.0f} s, CPU time {cpu:.0f} s; lm-eval {summary['lm_eval']}, "
          f"torch {summary['torch']}, transformers {summary['transformers']}, "
          f"{summary['torch_threads']} torch threads")
    print("| task | n | acc | acc_norm |\n|---|---:|---:|---:|")
    for task, r in res["results"].items():
        n = res.get("n-samples", {}).get(task, {}).get("effective")
        t = {m: r.get(f"{m},none") for m in ("acc", "acc_stderr", "acc_norm", "acc_norm_stderr")}
        t["n"] = n
        summary["tasks"][task] = t
        print(f"| {task} | {n} | {100 * t['acc']:.2f} ± {100 * t['acc_stderr']:.2f} | "
              f"{100 * t['acc_norm']:.2f} ± {100 * t['acc_norm_stderr']:.2f} |")
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
