#!/usr/bin/env python3
"""lm-evaluation-harness's `local-completions` model against `swiftkv serve`: the way users
evaluate a served model. lm-eval (lm-eval[api], no torch) tokenises through the server
(/tokenizer_info, /tokenize, /detokenize), sends token-id prompts with echo and logprobs, and
scores arc_easy and piqa (the local task yamls of scripts/lm_eval_tasks, data from
../shared/data, no hub access), first --limit items. Every item's log-likelihoods must be within
1e-4 of `swiftkv eval` on the same items, with the same predictions and the same accuracy.

Env: SKV_BIN, SKV_SOURCE_DIR, SKV_MODELS, SKV_LM_EVAL_LIMIT (default 200); a missing model or
lm_eval is a failure unless SKV_ALLOW_SKIP=1.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "robustness"))
from cli_checks import start_serve  # noqa: E402

ROOT = os.environ.get("SKV_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("SKV_BIN", os.path.join(ROOT, "build", "swiftkv"))
MODELS = os.environ.get("SKV_MODELS", os.path.join(ROOT, "models"))
SMOL = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
LIMIT = os.environ.get("SKV_LM_EVAL_LIMIT", "200")
TASKS = ["arc_easy", "piqa"]


def skip_or_fail(why: str) -> int:
    if os.environ.get("SKV_ALLOW_SKIP") == "1":
        print(f"skip: {why}")
        return 0
    print(f"FAIL: {why}")
    return 1


def lm_eval_samples(out: str, task: str) -> dict[int, list[float]]:
    files = glob.glob(os.path.join(out, "**", f"samples_{task}_local_*.jsonl"), recursive=True)
    if not files:
        raise RuntimeError(f"lm-eval wrote no samples for {task}")
    items = {}
    with open(max(files, key=os.path.getmtime)) as f:
        for line in f:
            s = json.loads(line)
            items[int(s["doc_id"])] = [float(r[0]) for r in s["filtered_resps"]]
    return items


def main() -> int:
    if not os.path.exists(SMOL):
        return skip_or_fail(f"{SMOL} is missing (scripts/fetch_model.sh)")
    lm_eval = os.path.join(os.path.dirname(sys.executable), "lm_eval")
    if not os.path.exists(lm_eval):
        return skip_or_fail("lm_eval is not installed in this venv (scripts/setup_venv.sh)")
    proc, url, name = start_serve(SMOL, ["--kv-cache-memory-bytes", "512MiB"])
    problems: list[str] = []
    tmp = tempfile.mkdtemp(prefix="skv_lmeval_")
    try:
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   HF_HUB_DISABLE_TELEMETRY="1", HF_DATASETS_CACHE=os.path.join(tmp, "hf-datasets"))
        model_args = (f"base_url={url}/v1/completions,model={name},tokenizer_backend=remote,tokenized_requests=True,"
                      "num_concurrent=8,max_retries=1,timeout=600")
        cmd = [lm_eval, "--model", "local-completions", "--model_args", model_args,
               "--tasks", ",".join(t + "_local" for t in TASKS), "--include_path", "scripts/lm_eval_tasks",
               "--limit", LIMIT, "--log_samples", "--output_path", os.path.join(tmp, "lm-eval")]
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
        if p.returncode != 0:
            print(p.stdout[-2000:], p.stderr[-3000:])
            problems.append(f"lm_eval exit {p.returncode}")
            raise StopIteration
        samples = os.path.join(tmp, "skv.jsonl")
        subprocess.run([BIN, "eval", "--model", SMOL, "--tasks", ",".join(TASKS), "--limit", LIMIT, "-t", "2",
                        "--log-samples", samples, "--output", os.path.join(tmp, "skv.json")],
                       check=True, capture_output=True, text=True, timeout=3000)
        ours: dict[str, dict[int, dict]] = {}
        with open(samples) as f:
            for line in f:
                s = json.loads(line)
                ours.setdefault(s["task"], {})[int(s["doc_id"])] = s
        for task in TASKS:
            theirs = lm_eval_samples(os.path.join(tmp, "lm-eval"), task)
            mine = ours.get(task, {})
            common = sorted(set(theirs) & set(mine))
            if len(common) != int(LIMIT):
                problems.append(f"{task}: {len(common)} common items, want {LIMIT}")
                continue
            worst, pred_diff, acc_a, acc_b = 0.0, 0, 0, 0
            for d in common:
                a, b = theirs[d], mine[d]["loglikelihoods"]
                if len(a) != len(b):
                    problems.append(f"{task} item {d}: {len(a)} vs {len(b)} choices")
                    continue
                worst = max(worst, max(abs(x - y) for x, y in zip(a, b)))
                pa, pb = max(range(len(a)), key=a.__getitem__), max(range(len(b)), key=b.__getitem__)
                pred_diff += pa != pb
                target = mine[d]["target"]
                acc_a += pa == target
                acc_b += pb == target
            print(f"{task}: {len(common)} items, max |loglik diff| {worst:.2e}, predictions differing {pred_diff}, "
                  f"acc lm-eval via server {acc_a / len(common):.4f}, swiftkv eval {acc_b / len(common):.4f}")
            if worst > 1e-4 or pred_diff or acc_a != acc_b:
                problems.append(f"{task}: max diff {worst:.2e}, {pred_diff} predictions differ")
    except StopIteration:
        pass
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)
        if rc != 0:
            problems.append(f"server exit {rc}")
        shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        print("FAIL lm_eval_local_completions: " + "; ".join(problems))
        return 1
    print("ok   lm_eval_local_completions: per-item log-likelihoods within 1e-4 of swiftkv eval, same accuracy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
