#!/usr/bin/env python3
"""An independent client to cross-check `swiftkv bench serve` (run by hand, not in CI).

Written apart from the C++ client (asyncio + aiohttp, numpy for the statistics), with vLLM's
definitions: TTFT = send -> first chunk with choices, ITL = gaps between such chunks,
TPOT = (E2EL - TTFT) / (output tokens - 1), E2EL = send -> last chunk with choices, output tokens
from the usage chunk. Gamma arrivals (shape = burstiness, mean 1 / rate) from Python's random.

1. Make prompts of exact token lengths through the server's own /tokenize and /detokenize:
     python scripts/bench_serve_crosscheck.py --base-url URL --make-dataset p.jsonl \
         --num-prompts 32 --input-len 256 --output-len 32
2. Run this client and `swiftkv bench serve --dataset-path p.jsonl --save-result ...` on it:
     python scripts/bench_serve_crosscheck.py --base-url URL --dataset-path p.jsonl \
         --request-rate 2 --ignore-eos --compare swiftkv-result.json
   It prints its figures beside the swiftkv result's.

Needs aiohttp and numpy (the project's .venv has both).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time

import aiohttp
import numpy as np


async def post_json(session: aiohttp.ClientSession, url: str, body: dict) -> dict:
    async with session.post(url, json=body) as r:
        r.raise_for_status()
        return await r.json()


async def make_dataset(args) -> None:
    """Random token ids, decoded, re-encoded and cut or topped up until each prompt encodes to
    exactly --input-len tokens (without special tokens) under the server's tokenizer."""
    rng = random.Random(args.seed)
    async with aiohttp.ClientSession() as s:
        async with s.get(args.base_url + "/tokenizer_info") as r:
            vocab = (await r.json()).get("vocab_size", 32000)
        rows = []
        for _ in range(args.num_prompts):
            ids = [rng.randrange(1000, vocab) for _ in range(args.input_len)]
            for _ in range(50):
                text = (await post_json(s, args.base_url + "/detokenize", {"tokens": ids}))["prompt"]
                ids = (await post_json(s, args.base_url + "/tokenize",
                                       {"prompt": text, "add_special_tokens": False}))["tokens"]
                if len(ids) == args.input_len:
                    break
                ids = ids[:args.input_len] + [rng.randrange(1000, vocab) for _ in range(args.input_len - len(ids))]
            rows.append({"prompt": text, "output_len": args.output_len, "tokens": len(ids)})
    bad = [r["tokens"] for r in rows if r["tokens"] != args.input_len]
    with open(args.make_dataset, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"prompt": r["prompt"], "output_len": r["output_len"]}) + "\n")
    print(f"wrote {len(rows)} prompts to {args.make_dataset}; {len(bad)} not of {args.input_len} tokens")


async def one(session, args, model, row, t_origin):
    chat = args.endpoint.endswith("chat/completions")
    body = {"model": model, "stream": True, "stream_options": {"include_usage": True}, "temperature": 0.0}
    if chat:
        body.update(messages=[{"role": "user", "content": row["prompt"]}], max_completion_tokens=row["output_len"])
    else:
        body.update(prompt=row["prompt"], max_tokens=row["output_len"])
    if args.ignore_eos:
        body["ignore_eos"] = True
    out = {"ok": False, "ttft": None, "itl": [], "latency": None, "out": None, "inp": None, "err": ""}
    st = time.perf_counter()
    out["start"] = st - t_origin
    last = None
    done = False
    try:
        async with session.post(args.base_url + args.endpoint, json=body) as r:
            if r.status != 200:
                out["err"] = f"HTTP {r.status}: {(await r.text())[:200]}"
                return out
            async for raw in r.content:  # one line at a time
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    continue
                now = time.perf_counter()
                j = json.loads(data)
                if j.get("error"):
                    out["err"] = str(j["error"])
                    return out
                if j.get("choices"):
                    if last is None:
                        out["ttft"] = now - st
                    else:
                        out["itl"].append(now - last)
                    last = now
                if j.get("usage"):
                    out["out"] = j["usage"].get("completion_tokens")
                    out["inp"] = j["usage"].get("prompt_tokens")
    except aiohttp.ClientError as e:
        out["err"] = repr(e)
        return out
    if not done or last is None or out["out"] is None:
        out["err"] = f"done={done} token={last is not None} usage={out['out'] is not None}"
        return out
    out["latency"] = last - st
    out["ok"] = True
    return out


async def run(args) -> dict:
    rows = [json.loads(line) for line in open(args.dataset_path, encoding="utf-8") if line.strip()]
    rows = rows[:args.num_prompts] if args.num_prompts else rows
    rng = random.Random(args.seed)
    gaps = [0.0] * len(rows) if args.request_rate == float("inf") else \
        [rng.gammavariate(args.burstiness, 1.0 / (args.request_rate * args.burstiness)) for _ in rows]
    times = list(np.cumsum(gaps))
    if args.request_rate != float("inf"):  # the offered load exactly n / rate, as vLLM rescales it
        times = [t * (len(rows) / args.request_rate) / times[-1] for t in times]
    sem = asyncio.Semaphore(args.max_concurrency) if args.max_concurrency else None
    conn = aiohttp.TCPConnector(limit=args.max_concurrency or 0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=6 * 3600)) as s:
        async with s.get(args.base_url + "/v1/models") as r:
            model = args.model or (await r.json())["data"][0]["id"]
        await one(s, args, model, rows[0], time.perf_counter())  # warm-up, as vLLM's initial test

        async def limited(row, t0):
            if sem is None:
                return await one(s, args, model, row, t0)
            async with sem:
                return await one(s, args, model, row, t0)

        t0 = time.perf_counter()
        tasks = []
        for row, t in zip(rows, times):
            delay = t0 + t - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(limited(row, t0)))
        outs = await asyncio.gather(*tasks)
        dur = time.perf_counter() - t0
    good = [o for o in outs if o["ok"]]
    ttft = [o["ttft"] for o in good]
    e2el = [o["latency"] for o in good]
    tpot = [(o["latency"] - o["ttft"]) / (o["out"] - 1) for o in good if o["out"] > 1]
    itl = [g for o in good for g in o["itl"]]
    n_in, n_out = sum(o["inp"] for o in good), sum(o["out"] for o in good)
    res = {"completed": len(good), "failed": len(outs) - len(good), "duration": dur, "total_input_tokens": n_in,
           "total_output_tokens": n_out, "request_throughput": len(good) / dur, "output_throughput": n_out / dur,
           "total_token_throughput": (n_in + n_out) / dur, "errors": [o["err"] for o in outs if not o["ok"]][:5]}
    for name, v in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2el", e2el)):
        v = v or [0.0]
        res[f"mean_{name}_ms"] = float(np.mean(v)) * 1000
        res[f"median_{name}_ms"] = float(np.median(v)) * 1000
        res[f"std_{name}_ms"] = float(np.std(v)) * 1000
        res[f"p99_{name}_ms"] = float(np.percentile(v, 99)) * 1000
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8000")
    ap.add_argument("--endpoint", default="/v1/completions")
    ap.add_argument("--model")
    ap.add_argument("--dataset-path")
    ap.add_argument("--make-dataset", help="write prompts of --input-len tokens to this JSONL file and stop")
    ap.add_argument("--num-prompts", type=int, default=0)
    ap.add_argument("--input-len", type=int, default=256)
    ap.add_argument("--output-len", type=int, default=32)
    ap.add_argument("--request-rate", type=float, default=float("inf"))
    ap.add_argument("--burstiness", type=float, default=1.0)
    ap.add_argument("--max-concurrency", type=int, default=0)
    ap.add_argument("--ignore-eos", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare", help="a `swiftkv bench serve --save-result` JSON to print beside ours")
    ap.add_argument("--output", help="write our figures here as JSON")
    args = ap.parse_args()
    if args.make_dataset:
        args.num_prompts = args.num_prompts or 32
        asyncio.run(make_dataset(args))
        return 0
    if not args.dataset_path:
        ap.error("--dataset-path (or --make-dataset) is required")
    res = asyncio.run(run(args))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(res, f, indent=1)
    other = json.load(open(args.compare)) if args.compare else {}
    keys = ["completed", "failed", "duration", "total_input_tokens", "total_output_tokens", "request_throughput",
            "output_throughput", "total_token_throughput"] + \
        [f"{s}_{m}_ms" for m in ("ttft", "tpot", "itl", "e2el") for s in ("mean", "median", "p99")]
    print(f"{'metric':<28} {'crosscheck':>12} {'swiftkv':>12}")
    for k in keys:
        a, b = res.get(k), other.get(k)
        fa = f"{a:12.2f}" if isinstance(a, float) else f"{a!s:>12}"
        fb = f"{b:12.2f}" if isinstance(b, float) else f"{'' if b is None else b!s:>12}"
        print(f"{k:<28} {fa} {fb}")
    if res["errors"]:
        print("errors:", res["errors"])
    return 0 if res["completed"] else 1


if __name__ == "__main__":
    sys.exit(main())
