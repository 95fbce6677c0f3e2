#!/usr/bin/env python3
"""`swiftkv eval` with bad task files and bad flags: each case must exit 1 with exactly one
stderr line that contains "error" and names the problem (for a bad mc: file, the file and the
line), never crash, hang, or print a traceback or sanitizer report.

Cases: mc: files with invalid JSON, a missing / mistyped field, empty choices, an empty choice,
a label out of range, no items, a missing file, a bad fewshot= file; --tasks syntax (unknown
task, empty entry, fewshot= not after an mc: task); bad --limit / --num-fewshot / --seed /
--batch-tokens values; more few-shot examples than the pool has; unwritable --output;
--compare on a missing, non-JSON or non-results file.

Env: SKV_BIN (default build/swiftkv), SKV_SOURCE_DIR. Runs in the ASan+UBSan build too.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_checks import BIN, ROOT, Checks  # noqa: E402

MODEL = os.path.join(ROOT, "tests", "fixtures", "models", "llama_gqa")

GOOD = json.dumps({"context": "2+2=", "choices": ["4", "5"], "label": 0})


def main() -> int:
    checks = Checks(BIN, "eval")
    if not checks.have_binary():
        return checks.summary("eval bad files")
    expect_error = checks.expect_error
    with tempfile.TemporaryDirectory(prefix="skv_eval_bad_") as d:
        def write(name: str, body: str | bytes) -> str:
            path = os.path.join(d, name)
            with open(path, "wb") as f:
                f.write(body.encode() if isinstance(body, str) else body)
            return path

        good = write("good.jsonl", GOOD + "\n" + GOOD + "\n")
        # (name, third line of an mc file, what the error must say); the first two lines are good.
        bad_lines = [
            ("invalid_json", '{"context": "a", "choices": ["b"], "label": 0', "invalid JSON"),
            ("not_object", "[1, 2, 3]", "JSON object"),
            ("missing_context", '{"choices": ["b"], "label": 0}', "context"),
            ("context_not_string", '{"context": 1, "choices": ["b"], "label": 0}', "context"),
            ("missing_choices", '{"context": "a", "label": 0}', "choices"),
            ("choices_not_list", '{"context": "a", "choices": "b", "label": 0}', "choices"),
            ("empty_choices", '{"context": "a", "choices": [], "label": 0}', "choices.*empty"),
            ("empty_choice", '{"context": "a", "choices": ["b", ""], "label": 0}', "choice 1 is empty"),
            ("choice_not_string", '{"context": "a", "choices": ["b", null], "label": 0}', "list of strings"),
            ("missing_label", '{"context": "a", "choices": ["b"]}', "label"),
            ("label_string", '{"context": "a", "choices": ["b"], "label": "0"}', "label.*integer"),
            ("label_float", '{"context": "a", "choices": ["b"], "label": 0.5}', "label.*integer"),
            ("label_out_of_range", '{"context": "a", "choices": ["b", "c"], "label": 2}', "label 2 is out of range"),
            ("label_negative", '{"context": "a", "choices": ["b"], "label": -1}', "out of range"),
        ]
        for name, line, why in bad_lines:
            path = write(f"{name}.jsonl", GOOD + "\n" + GOOD + "\n" + line + "\n")
            expect_error(f"mc_{name}", ["--model", MODEL, "--tasks", f"mc:{path}"],
                         re.escape(path) + ":3: .*" + why)
            # The same file as the few-shot pool of a good task.
            expect_error(f"fewshot_{name}", ["--model", MODEL, "--tasks", f"mc:{good},fewshot={path}"],
                         re.escape(path) + ":3: .*" + why)
        binary = write("binary.jsonl", b"\x00\xff\xfe garbage\n")
        expect_error("mc_binary", ["--model", MODEL, "--tasks", f"mc:{binary}"], re.escape(binary) + ":1: invalid JSON")
        empty = write("empty.jsonl", "\n \n")
        expect_error("mc_no_items", ["--model", MODEL, "--tasks", f"mc:{empty}"], "no items")
        expect_error("mc_missing_file", ["--model", MODEL, "--tasks", f"mc:{d}/nope.jsonl"], "cannot open.*nope.jsonl")
        expect_error("mc_no_path", ["--model", MODEL, "--tasks", "mc:"], "needs a file")

        # --tasks syntax and flags.
        expect_error("unknown_task", ["--model", MODEL, "--tasks", "hellaswag_xyz"], "unknown task 'hellaswag_xyz'")
        expect_error("empty_task_entry", ["--model", MODEL, "--tasks", f"mc:{good},,mc:{good}"], "empty entry")
        expect_error("fewshot_without_mc", ["--model", MODEL, "--tasks", "fewshot=x.jsonl"], "must follow an mc:")
        expect_error("no_tasks", ["--model", MODEL], "--tasks")
        expect_error("no_model", ["--tasks", f"mc:{good}"], "--model")
        for flag, value, why in [("--limit", "0", "--limit"), ("--limit", "abc", "--limit"), ("--limit", "2.5", "--limit"),
                                 ("--num-fewshot", "-1", "--num-fewshot"), ("--seed", "-3", "--seed"),
                                 ("--batch-tokens", "0", "--batch-tokens"), ("--threads", "-2", "--threads")]:
            expect_error(f"flag{flag}={value}", ["--model", MODEL, "--tasks", f"mc:{good}", flag, value], why)
        expect_error("unknown_flag", ["--model", MODEL, "--tasks", f"mc:{good}", "--bogus"], "unknown flag --bogus")
        expect_error("too_many_shots", ["--model", MODEL, "--tasks", f"mc:{good}", "--num-fewshot", "2"],
                     "needs more examples")
        expect_error("unwritable_output", ["--model", MODEL, "--tasks", f"mc:{good}", "--output", f"{d}/no/dir/r.json"],
                     "cannot write --output")
        expect_error("missing_model", ["--model", f"{d}/nomodel", "--tasks", f"mc:{good}"], "nomodel")

        # --compare.
        notjson = write("notjson.json", "{ not json")
        noresults = write("noresults.json", json.dumps({"config": {}}))
        expect_error("compare_missing", ["--compare", f"{d}/missing.json"], "cannot open results file")
        expect_error("compare_not_json", ["--compare", notjson], re.escape(notjson) + ".*not a JSON")
        expect_error("compare_no_results", ["--compare", noresults], "no \"results\"")
        expect_error("compare_nothing", ["--compare"], "needs results files")
        r1 = write("r1.json", json.dumps({"label": "one", "results": {"boolq": {"acc": 0.5}}}))
        r2 = write("r2.json", json.dumps({"label": "two", "results": {"boolq": {"acc": 0.6}}}))
        expect_error("compare_unknown_row", ["--compare", "--tasks", "piqa", r1], "no results file has task 'piqa'")
        expect_error("paired_without_compare", ["--paired", r1, r2], "--paired goes with --compare")
        expect_error("paired_one_model", ["--compare", "--paired", r1], "at least two models")
        expect_error("paired_no_samples", ["--compare", "--paired", r1, r2], "no per-item samples for .*r1.json")
        write("r1.samples.jsonl", '{"task": "boolq", "doc_id": 0, "acc": 1}\n')
        write("r2.samples.jsonl", '{"task": "boolq"}\n')
        expect_error("paired_bad_sample", ["--compare", "--paired", r1, r2], "r2.samples.jsonl:1: not a swiftkv eval sample")

    return checks.summary("eval bad files")


if __name__ == "__main__":
    sys.exit(main())
