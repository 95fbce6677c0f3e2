#!/usr/bin/env python3
"""`swiftkv generate-data`: bad arguments and prompt files, then resuming.

Error cases must exit 1 with exactly one stderr line that contains "error" and names the
problem (a per-case regex; for a bad prompt line, file:line), never crash or print a traceback
or sanitizer report, and leave the work directory as it was (an existing --out untouched).
Cases: missing --model / --prompts / --out, a missing prompt file, an unknown extension, a
prompt line that is not JSON, has neither or both of prompt / messages, an empty prompt, bad
messages, an empty or blank prompt file, --out that exists without --resume or is a directory,
--resume on a file written for other prompts / with too many lines / with a broken line, bad
--samples-per-prompt / --max-tokens / sampling values, unknown flags, a stray argument, a model
without a chat template, and a prompt longer than the context.

Functional: on the tiny fixture model (given a chat template in a temporary copy) and on
SmolLM2-135M-Instruct Q4_1: three answers; the file cut to one line plus a partial line and
continued with --resume is byte-identical to the uninterrupted run; --system and
--samples-per-prompt lay out the lines as documented.

Env: SKV_BIN (default build/swiftkv), SKV_SOURCE_DIR, SKV_MODELS (holding
SmolLM2-135M-Instruct.Q4_1.gguf; missing is a failure unless SKV_ALLOW_SKIP=1). Runs in the
ASan+UBSan build too.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_checks import BIN, ROOT, TRACEBACK_MARKERS, Checks  # noqa: E402

TINY = os.path.join(ROOT, "tests", "fixtures", "models", "llama_gqa")  # no chat template
TEMPLATE = os.path.join(ROOT, "tests", "fixtures", "chat_templates", "smollm2-135m-instruct.jinja")
MODELS = os.environ.get("SKV_MODELS", os.path.join(ROOT, "models"))
SMOL = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")

checks = Checks(BIN, "generate-data", default_timeout=300)


def write(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def error_cases(tmp: str, model: str, smol: str | None) -> None:
    good = write(os.path.join(tmp, "good.txt"), "Say hello.\nName a colour.\n")
    out = os.path.join(tmp, "out.jsonl")
    base = ["--model", model, "--prompts", good, "--out", out]

    def case(name, args, keyword, exit_code=None):
        checks.expect_error(name, args, keyword, tmp, exit_code=exit_code)

    case("missing_prompts", ["--model", model, "--out", out], r"missing required flag --prompts")
    case("missing_out", ["--model", model, "--prompts", good], r"missing required flag --out")
    case("missing_model", ["--prompts", good, "--out", out], r"missing required flag --model")
    case("prompts_not_found", ["--model", model, "--prompts", os.path.join(tmp, "nope.txt"), "--out", out],
         r"nope\.txt.*no such file")
    case("prompts_bad_extension", ["--model", model, "--prompts", write(os.path.join(tmp, "p.csv"), "x\n"),
                                   "--out", out], r"unknown extension '\.csv'")

    def bad_jsonl(name, text, keyword):
        path = write(os.path.join(tmp, f"{name}.jsonl"), text)
        case(name, ["--model", model, "--prompts", path, "--out", out], keyword)

    ok = json.dumps({"prompt": "hi"}) + "\n"
    bad_jsonl("jsonl_invalid", ok + "\n" + '{"prompt": "unterminated\n', r"jsonl_invalid\.jsonl:3: invalid JSON")
    bad_jsonl("jsonl_neither", ok + json.dumps({"text": "x"}) + "\n", r"jsonl_neither\.jsonl:2: .*exactly one of prompt")
    bad_jsonl("jsonl_both", json.dumps({"prompt": "x", "messages": []}), r"jsonl_both\.jsonl:1: .*exactly one of")
    bad_jsonl("jsonl_empty_prompt", json.dumps({"prompt": "  "}), r"jsonl_empty_prompt\.jsonl:1: empty prompt")
    bad_jsonl("jsonl_prompt_not_string", json.dumps({"prompt": 3}), r":1: prompt must be a string")
    bad_jsonl("jsonl_not_object", "[1]\n", r"jsonl_not_object\.jsonl:1: expected a JSON object")
    bad_jsonl("jsonl_messages_empty", json.dumps({"messages": []}), r":1: messages must be a non-empty list")
    bad_jsonl("jsonl_messages_bad", json.dumps({"messages": [{"role": "user", "content": 5}]}),
              r":1: messages\[0\] must be an object with string role and content")
    case("prompts_empty", ["--model", model, "--prompts", write(os.path.join(tmp, "empty.txt"), ""), "--out", out],
         r"empty\.txt holds no prompts")
    case("prompts_blank", ["--model", model, "--prompts", write(os.path.join(tmp, "blank.jsonl"), "\n  \n\n"),
                           "--out", out], r"blank\.jsonl holds no prompts")

    write(out, json.dumps({"messages": [{"role": "user", "content": "Say hello."},
                                        {"role": "assistant", "content": "Hello!"}]}) + "\n")
    case("out_exists", base, r"out\.jsonl already exists and is not empty.*--resume")
    os.makedirs(os.path.join(tmp, "outdir"))
    case("out_is_directory", ["--model", model, "--prompts", good, "--out", os.path.join(tmp, "outdir")],
         r"is a directory")
    case("out_parent_missing", ["--model", model, "--prompts", good, "--out", os.path.join(tmp, "no", "o.jsonl")],
         r"cannot write --out")
    other = write(os.path.join(tmp, "other.txt"), "Something else.\n")
    case("resume_other_prompts", ["--model", model, "--prompts", other, "--out", out, "--resume"],
         r"out\.jsonl:1: does not answer the prompt at .*other\.txt:1")
    case("resume_other_system", base + ["--resume", "--system", "Be brief."], r"out\.jsonl:1: does not answer")
    long_out = write(os.path.join(tmp, "long.jsonl"), open(out).read() * 3)
    case("resume_too_many", ["--model", model, "--prompts", write(os.path.join(tmp, "one.txt"), "Say hello.\n"),
                             "--out", long_out, "--resume"], r"long\.jsonl:2: .*more answers than the 1 asked for")
    broken = write(os.path.join(tmp, "broken.jsonl"), open(out).read() + "{oops\n")
    case("resume_broken_line", ["--model", model, "--prompts", good, "--out", broken, "--resume"],
         r"broken\.jsonl:2: invalid JSON")

    fresh = ["--model", model, "--prompts", good, "--out", os.path.join(tmp, "fresh.jsonl")]
    case("samples_zero", fresh + ["--samples-per-prompt", "0"], r"--samples-per-prompt must be at least 1")
    case("samples_not_int", fresh + ["--samples-per-prompt", "two"], r"--samples-per-prompt")
    case("max_tokens_zero", fresh + ["--max-tokens", "0"], r"--max-tokens must be at least 1")
    case("temperature_negative", fresh + ["--temperature", "-1"], r"temperature")
    case("top_p_too_big", fresh + ["--top-p", "1.5"], r"top_p")
    case("seed_negative", fresh + ["--seed", "-3"], r"--seed must be >= 0")
    case("unknown_flag", fresh + ["--prompt-file", "x"], r"unknown flag --prompt-file")
    case("positional", fresh + ["extra"], r"unexpected argument 'extra'")
    case("no_chat_template", ["--model", TINY, "--prompts", good, "--out", os.path.join(tmp, "fresh.jsonl")],
         r"no chat template")
    if smol:
        case("prompt_too_long", ["--model", smol, "--prompts", good, "--out", os.path.join(tmp, "fresh.jsonl"),
                                 "-c", "8"], r"good\.txt:1: the prompt has \d+ tokens.*model length 8",
             exit_code=3)  # the context is full: a resource, not bad input


def functional(name: str, tmp: str, model: str) -> None:
    """Three answers, then the file cut short and resumed must come out byte-identical."""
    prompts = write(os.path.join(tmp, f"{name}_prompts.jsonl"),
                    json.dumps({"prompt": "Write a short poem about the sea."}) + "\n\n" +
                    json.dumps({"messages": [{"role": "user", "content": "Hi!"},
                                             {"role": "assistant", "content": "Hello! How can I help?"},
                                             {"role": "user", "content": "Name three fruits."}]}) + "\n" +
                    json.dumps({"prompt": "What is the capital of France?"}) + "\n")
    out = os.path.join(tmp, f"{name}_out.jsonl")
    args = ["--model", model, "--prompts", prompts, "--out", out, "--max-tokens", "8", "--seed", "11", "-t", "1"]
    problems = []
    p = checks.run(args)
    if p.returncode != 0:
        checks.record(f"{name}_generate", [f"exit {p.returncode}"], p.stderr.strip()[-800:])
        return
    with open(out, "rb") as f:
        full = f.read()
    lines = full.decode("utf-8").splitlines()
    expected_users = [["Write a short poem about the sea."], ["Hi!", "Name three fruits."],
                      ["What is the capital of France?"]]
    if len(lines) != 3:
        problems.append(f"{len(lines)} lines, want 3")
    for i, line in enumerate(lines[:3]):
        j = json.loads(line)
        msgs = j.get("messages", [])
        if not msgs or msgs[-1].get("role") != "assistant" or not isinstance(msgs[-1].get("content"), str):
            problems.append(f"line {i + 1}: last message is not an assistant answer")
        if [m["content"] for m in msgs if m["role"] == "user"] != expected_users[i]:
            problems.append(f"line {i + 1}: user turns {msgs!r}")
        if j.get("finish_reason") not in ("stop", "length"):
            problems.append(f"line {i + 1}: finish_reason {j.get('finish_reason')!r}")
    if any(m in p.stderr for m in TRACEBACK_MARKERS):
        problems.append("sanitizer / crash output")
    checks.record(f"{name}_generate", problems, f"{len(lines)} answers")

    # Interrupted after one answer and part of the second.
    first_end = full.index(b"\n") + 1
    with open(out, "wb") as f:
        f.write(full[:first_end] + full[first_end:first_end + 25])
    p = checks.run(args + ["--resume"])
    with open(out, "rb") as f:
        resumed = f.read()
    problems = []
    if p.returncode != 0:
        problems.append(f"exit {p.returncode}: {p.stderr.strip()[-400:]}")
    elif resumed != full:
        problems.append("resumed file differs from the uninterrupted run")
    if "partial last line" not in p.stderr:
        problems.append("no note about the dropped partial line")
    checks.record(f"{name}_resume_identical", problems)

    # Resuming a complete file does nothing.
    p = checks.run(args + ["--resume"])
    with open(out, "rb") as f:
        again = f.read()
    done = p.returncode == 0 and again == full and "already holds all 3" in p.stderr
    checks.record(f"{name}_resume_complete",
                  [] if done else [f"exit {p.returncode}, changed={again != full}: {p.stderr.strip()[-300:]}"])

    # --system and --samples-per-prompt: answer a = prompt a // 2, sample a % 2.
    out2 = os.path.join(tmp, f"{name}_out2.jsonl")
    p = checks.run(["--model", model, "--prompts", prompts, "--out", out2, "--max-tokens", "4",
                    "--samples-per-prompt", "2", "--system", "You answer briefly.", "-t", "1"])
    problems = []
    if p.returncode != 0:
        problems.append(f"exit {p.returncode}: {p.stderr.strip()[-400:]}")
    else:
        rows = [json.loads(x) for x in open(out2, encoding="utf-8")]
        if len(rows) != 6:
            problems.append(f"{len(rows)} lines, want 6")
        for i, r in enumerate(rows):
            m = r["messages"]
            if m[0] != {"role": "system", "content": "You answer briefly."}:
                problems.append(f"line {i + 1}: no system message first")
            if [x["content"] for x in m if x["role"] == "user"] != expected_users[i // 2]:
                problems.append(f"line {i + 1}: wrong prompt for answer {i}")
    checks.record(f"{name}_system_and_samples", problems)


def main() -> int:
    if not checks.have_binary():
        return checks.summary("generate-data")
    tmp = tempfile.mkdtemp(prefix="skv_generate_data_")
    try:
        tiny = os.path.join(tmp, "tiny_chat")
        shutil.copytree(TINY, tiny)
        shutil.copy(TEMPLATE, os.path.join(tiny, "chat_template.jinja"))
        smol = SMOL if os.path.exists(SMOL) else None
        work = os.path.join(tmp, "work")
        os.makedirs(work)
        error_cases(work, tiny, smol)
        functional("tiny", tmp, tiny)
        if smol:
            functional("smollm2", tmp, smol)
        elif os.environ.get("SKV_ALLOW_SKIP", "") in ("1", "true", "yes"):
            print(f"SKIP smollm2: {SMOL} missing (SKV_ALLOW_SKIP=1)")
        else:
            checks.record("smollm2_present", [f"{SMOL} missing; run scripts/fetch_model.sh (SKV_ALLOW_SKIP=1 skips)"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return checks.summary("generate-data")


if __name__ == "__main__":
    sys.exit(main())
