#!/usr/bin/env python3
"""`swiftkv run-batch`: vLLM's offline batch format.

Bad flags and files fail cleanly (exit 1, one stderr line naming the problem, nothing written).
Inside a batch file, every malformed or invalid line gets its own error record carrying its line
number, and every other request completes: lines that are not JSON, lack custom_id / method /
url / body, name an unknown url or model (404), repeat a custom_id, ask to stream, or carry bad
parameters. Functional, on SmolLM2-135M-Instruct Q4_1 (integer kernels: each row is computed on
its own): the answers do not depend on concurrency (--max-num-seqs 1 vs the default) or on the
prefix cache; an output cut short and continued with --resume ends with every request exactly
once and the same answers.

Env: SKV_BIN, SKV_SOURCE_DIR, SKV_MODELS (missing model is a failure unless SKV_ALLOW_SKIP=1).
Runs in the ASan+UBSan build too.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_checks import BIN, ROOT, TRACEBACK_MARKERS, Checks  # noqa: E402

TINY = os.path.join(ROOT, "tests", "fixtures", "models", "llama_gqa")
MODELS = os.environ.get("SKV_MODELS", os.path.join(ROOT, "models"))
SMOL = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")

checks = Checks(BIN, "run-batch", default_timeout=600)


def write(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def line(cid, url="/v1/completions", **body) -> str:
    return json.dumps({"custom_id": cid, "method": "POST", "url": url, "body": body})


def error_cases(tmp: str) -> None:
    good = write(os.path.join(tmp, "good.jsonl"), line("a", prompt=[1, 2, 3], max_tokens=2) + "\n")
    out = os.path.join(tmp, "out.jsonl")
    base = ["--model", TINY, "-i", good, "-o", out]

    def case(name, args, keyword, exit_code=None):
        checks.expect_error(name, args, keyword, tmp, exit_code=exit_code)

    case("missing_input", ["--model", TINY, "-o", out], r"missing required flag --input-file")
    case("missing_output", ["--model", TINY, "-i", good], r"missing required flag --output-file")
    case("missing_model", ["-i", good, "-o", out], r"missing required flag --model")
    case("input_not_found", ["--model", TINY, "-i", os.path.join(tmp, "nope.jsonl"), "-o", out],
         r"nope\.jsonl.*no such file")
    case("output_is_dir", ["--model", TINY, "-i", good, "-o", tmp], r"is a directory")
    write(os.path.join(tmp, "taken.jsonl"), "{}\n")
    case("output_exists", ["--model", TINY, "-i", good, "-o", os.path.join(tmp, "taken.jsonl")],
         r"already exists.*--resume")
    case("bad_kv_bytes", base + ["--kv-cache-memory-bytes", "lots"], r"--kv-cache-memory-bytes.*not a byte count")
    case("bad_block_size", base + ["--block-size", "0"], r"--block-size must be in")
    case("bad_max_num_seqs", base + ["--max-num-seqs", "-2"], r"--max-num-seqs must be positive")
    case("tiny_kv_cache", base + ["--kv-cache-memory-bytes", "1KiB"], r"no room for a KV cache block", exit_code=3)
    case("max_model_len_beyond_cache", base + ["--kv-cache-memory-bytes", "1MiB", "--max-model-len", "100000"],
         r"does not fit the KV cache", exit_code=3)
    case("bad_kv_dtype", base + ["--kv-cache-dtype", "int3"], r"--kv-cache-dtype 'int3' is not one of")
    case("kv_dtype_needs_head_dim", base + ["--kv-cache-dtype", "q8_0"], r"head dim that is a multiple of 32")
    case("both_prefix_flags", base + ["--enable-prefix-caching", "--no-enable-prefix-caching"], r"at most one of")
    case("positional", base + ["extra"], r"unexpected argument")


def batch_lines(vocab_ok_prompt: str) -> tuple[list[str], dict[str, str]]:
    """Lines of a batch file and, per custom_id or line number, what its record must be."""
    lines, want = [], {}

    def add(text, key, kind):
        lines.append(text)
        want[key] = kind

    add(line("c1", prompt=vocab_ok_prompt, max_tokens=12, temperature=0, ignore_eos=True), "c1", "ok")
    add(line("c2", prompt=[vocab_ok_prompt, vocab_ok_prompt + " again"], max_tokens=6, temperature=0), "c2", "ok")
    add(line("chat", "/v1/chat/completions", messages=[{"role": "user", "content": "Name a colour."}],
             max_tokens=10, temperature=0, logprobs=True, top_logprobs=2), "chat", "ok")
    add(line("parts", "/v1/chat/completions",
             messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], max_tokens=4, temperature=0),
        "parts", "ok")
    add(line("seeded", prompt=vocab_ok_prompt, max_tokens=8, temperature=0.9, seed=4, n=2), "seeded", "ok")
    add(line("echo", prompt=vocab_ok_prompt, max_tokens=3, echo=True, logprobs=1, temperature=0), "echo", "ok")
    add("{not json", "line:7", "400")
    add(json.dumps([1, 2]), "line:8", "400")
    add(json.dumps({"method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}}), "line:9", "400")
    add(json.dumps({"custom_id": "nourl", "method": "POST", "body": {"prompt": "x"}}), "nourl", "400")
    add(line("badurl", "/v1/embeddings", input="x"), "badurl", "400")
    add(json.dumps({"custom_id": "get", "method": "GET", "url": "/v1/completions", "body": {"prompt": "x"}}),
        "get", "400")
    add(line("temp", prompt="x", temperature=-1), "temp", "400")
    add(line("topp", prompt="x", top_p=2), "topp", "400")
    add(line("ids", prompt=[1, 99999999], max_tokens=2), "ids", "400")
    add(line("noprompt", max_tokens=2), "noprompt", "400")
    add(line("stream", prompt="x", stream=True), "stream", "400")
    add(line("model", prompt="x", model="gpt-5"), "model", "404")
    add(line("lp", prompt="x", logprobs=50), "lp", "400")
    add(line("msgs", "/v1/chat/completions", messages=[]), "msgs", "400")
    add(line("c1", prompt="dup", max_tokens=2), "line:21", "400")  # repeats c1
    return lines, want


def check_records(name: str, out: str, want: dict[str, str]) -> dict[str, dict]:
    problems, by_key = [], {}
    try:
        records = [json.loads(x) for x in open(out, encoding="utf-8") if x.strip()]
    except (OSError, ValueError) as e:
        checks.record(name, [f"output unreadable: {e}"])
        return {}
    for r in records:
        err = r.get("error")
        cid = r.get("custom_id")
        key = cid if cid is not None and not (err and cid == "c1" and err.get("line") == 21) else None
        if key is None and err:
            key = f"line:{err.get('line')}"
        if key in by_key:
            problems.append(f"{key} answered twice")
        by_key[key] = r
    for key, kind in want.items():
        r = by_key.get(key)
        if r is None:
            problems.append(f"{key}: no record")
            continue
        status = r["response"]["status_code"]
        if kind == "ok":
            body = r["response"]["body"]
            if status != 200 or r["error"] is not None or not body.get("choices"):
                problems.append(f"{key}: status {status}, error {r['error']}")
            elif body["usage"]["completion_tokens"] <= 0:
                problems.append(f"{key}: no tokens")
        else:
            if str(status) != kind or not r["error"] or "line" not in r["error"]:
                problems.append(f"{key}: status {status}, error {r['error']} (want {kind} with a line number)")
    extra = set(by_key) - set(want)
    if extra:
        problems.append(f"unexpected records {sorted(extra)[:5]}")
    if by_key.get("c2") and len(by_key["c2"]["response"]["body"]["choices"]) != 2:
        problems.append("c2: two prompts must give two choices")
    if by_key.get("seeded") and len(by_key["seeded"]["response"]["body"]["choices"]) != 2:
        problems.append("seeded: n=2 must give two choices")
    checks.record(name, problems, f"{len(records)} records")
    return by_key


def answers(by_key: dict[str, dict]) -> dict[str, list[str]]:
    out = {}
    for k, r in by_key.items():
        if r["response"]["status_code"] == 200:
            out[k] = [c.get("text", c.get("message", {}).get("content")) for c in r["response"]["body"]["choices"]]
    return out


def kv_bytes_per_token(model: str) -> int:
    """F32 KV bytes per position, from `swiftkv info --json`."""
    p = subprocess.run([BIN, "info", "--model", model, "--json"], capture_output=True, text=True, timeout=300)
    return int(json.loads(p.stdout)["kv_cache_bytes_per_token"])


def functional(tmp: str, model: str) -> None:
    lines, want = batch_lines("The quick brown fox")
    req = write(os.path.join(tmp, "req.jsonl"), "\n".join(lines) + "\n")
    out = os.path.join(tmp, "res.jsonl")
    common = ["--model", model, "-i", req, "-t", "2", "--kv-cache-memory-bytes", "256MiB"]
    p = checks.run(common + ["-o", out])
    bad = [m for m in TRACEBACK_MARKERS if m in p.stderr]
    if p.returncode != 0 or bad:
        checks.record("batch", [f"exit {p.returncode} {bad}"], p.stderr.strip()[-800:])
        return
    first = answers(check_records("batch_records", out, want))

    out1 = os.path.join(tmp, "res1.jsonl")
    p = checks.run(common + ["-o", out1, "--max-num-seqs", "1", "--no-enable-prefix-caching"])
    one = answers(check_records("batch_one_at_a_time_records", out1, want)) if p.returncode == 0 else {}
    checks.record("batch_independent_of_concurrency", [] if one == first else
                  [f"differs: {sorted(k for k in first if first.get(k) != one.get(k))}"])

    # A compressed cache serves every request too (its answers may differ slightly).
    out8 = os.path.join(tmp, "res8.jsonl")
    p = checks.run(common + ["-o", out8, "--kv-cache-dtype", "fp8"])
    if p.returncode == 0:
        check_records("batch_fp8_cache_records", out8, want)
    else:
        checks.record("batch_fp8_cache_records", [f"exit {p.returncode}"], p.stderr.strip()[-400:])

    # An exhausted pool: 8 blocks (128 positions) for 12 requests that need 2 blocks each, so
    # running ones are preempted and recomputed; one prompt longer than the whole pool is
    # refused with its line number. Every other answer is the one computed alone.
    lines = [line(f"p{i}", prompt=f"The quick brown fox, number {i}", max_tokens=20, temperature=0, ignore_eos=True)
             for i in range(12)]
    lines.append(line("toolong", prompt=list(range(1, 201)), max_tokens=2))
    small_want = {f"p{i}": "ok" for i in range(12)}
    fits = dict(small_want, toolong="ok")  # in the default pool
    small_want["toolong"] = "400"
    small_req = write(os.path.join(tmp, "small.jsonl"), "\n".join(lines) + "\n")
    outs = {}
    for name, extra in (("alone", ["--max-num-seqs", "1"]),
                        ("exhausted", ["--kv-cache-memory-bytes", str(8 * 16 * kv_bytes_per_token(model))])):
        o = os.path.join(tmp, f"small_{name}.jsonl")
        p = checks.run(["--model", model, "-i", small_req, "-o", o, "-t", "2"] +
                       (extra if name == "exhausted" else common[4:6] + extra))
        bad = [m for m in TRACEBACK_MARKERS if m in p.stderr]
        if p.returncode != 0 or bad:
            checks.record(f"pool_{name}", [f"exit {p.returncode} {bad}"], p.stderr.strip()[-800:])
            return
        got = answers(check_records(f"pool_{name}_records", o, small_want if name == "exhausted" else fits))
        got.pop("toolong", None)
        outs[name] = (got, p.stderr)
    preempted = re.search(r"(\d+) preemptions", outs["exhausted"][1])
    checks.record("pool_exhausted_preempts", [] if preempted and int(preempted.group(1)) > 0 else
                  [f"no preemption reported: {outs['exhausted'][1].strip()[-300:]}"])
    checks.record("pool_exhausted_same_answers", [] if outs["exhausted"][0] == outs["alone"][0] else
                  [f"differs: {sorted(k for k in outs['alone'][0] if outs['alone'][0][k] != outs['exhausted'][0].get(k))}"])

    # Interrupted after three records and part of a fourth, then resumed.
    with open(out, encoding="utf-8") as f:
        recs = f.read().splitlines(keepends=True)
    out2 = os.path.join(tmp, "res2.jsonl")
    with open(out2, "w", encoding="utf-8") as f:
        f.write("".join(recs[:3]) + recs[3][:20])
    p = checks.run(common + ["-o", out2, "--resume"])
    resumed = answers(check_records("batch_resume_records", out2, want)) if p.returncode == 0 else {}
    checks.record("batch_resume_same_answers", [] if resumed == first else [f"exit {p.returncode}: differs"])


def main() -> int:
    if not checks.have_binary():
        return checks.summary("run-batch")
    with tempfile.TemporaryDirectory(prefix="skv_run_batch_") as tmp:
        work = os.path.join(tmp, "work")
        os.makedirs(work)
        error_cases(work)
        if os.path.exists(SMOL):
            functional(tmp, SMOL)
        elif os.environ.get("SKV_ALLOW_SKIP") != "1":
            checks.record("smollm2_model", [f"{SMOL} is missing (scripts/fetch_model.sh)"])
        else:
            print(f"skip functional: {SMOL} missing")
    return checks.summary("run-batch")


if __name__ == "__main__":
    sys.exit(main())
