#!/usr/bin/env python3
"""`swiftkv convert` with bad arguments: each case must exit 1 with exactly one stderr line that
contains "error" and names the problem (a per-case regex), never crash or print a traceback or
sanitizer report, and leave nothing behind: no output directory, no temporary sibling, and an
existing output directory untouched.

Cases: M >= L, M < 1, G < 1, (L - M) % G != 0, fraction outside (0, 1) or rounding to M = 0 / L,
both / neither of M and F, malformed numbers, unknown dtype, a model that is already SwiftKV, a
non-empty output directory without --force, --force on a directory that is not a model, output
over the input, missing parent, missing flags, unknown flags, a missing model.

Env: SKV_BIN (default build/swiftkv), SKV_SOURCE_DIR. Runs in the ASan+UBSan build too.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.environ.get("SKV_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("SKV_BIN", os.path.join(ROOT, "build", "swiftkv"))
BASE = os.path.join(ROOT, "tests", "fixtures", "models", "llama_gqa")  # 3 layers
TIMEOUT = float(os.environ.get("SKV_TEST_TIMEOUT", "120"))

ENV = dict(os.environ)
ENV.setdefault("ASAN_OPTIONS", "detect_leaks=1")
ENV.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
ENV["OMP_NUM_THREADS"] = ENV.get("OMP_NUM_THREADS", "2")

TRACEBACK_MARKERS = ("Traceback (most recent call last)", "AddressSanitizer", "LeakSanitizer",
                     "runtime error:", "terminate called", "Segmentation fault", "core dumped")

passed: list[str] = []
failed: list[str] = []


def snapshot(d: str) -> dict[str, bytes]:
    """Every file under d (relative path -> contents)."""
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = fh.read()
    return out


def expect_error(name: str, args: list[str], keyword: str, workdir: str) -> None:
    """Runs `swiftkv convert ARGS`; keyword: regex (case-insensitive) the error line must match."""
    before = snapshot(workdir)
    problems = []
    try:
        p = subprocess.run([BIN, "convert"] + args, capture_output=True, text=True, errors="replace",
                           timeout=TIMEOUT, env=ENV)
    except subprocess.TimeoutExpired:
        failed.append(name)
        print(f"FAIL {name}: timed out after {TIMEOUT:.0f}s")
        return
    if p.returncode != 1:
        problems.append(f"exit status {p.returncode}, want 1")
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    if len(lines) != 1 or "error" not in lines[0].lower():
        problems.append(f"want exactly one stderr line with 'error', got {len(lines)} lines")
    elif not re.search(keyword, lines[0], re.IGNORECASE):
        problems.append(f"error line does not match /{keyword}/")
    for m in TRACEBACK_MARKERS:
        if m in p.stderr or m in p.stdout:
            problems.append(f"output contains {m!r}")
    after = snapshot(workdir)
    if after != before:
        changed = sorted(set(after) ^ set(before)) or sorted(k for k in after if after[k] != before.get(k))
        problems.append(f"files changed under the work directory: {changed[:5]}")
    if problems:
        failed.append(name)
        print(f"FAIL {name}: {'; '.join(problems)}\n     stderr: {p.stderr.strip()[:500]!r}")
    else:
        passed.append(name)
        print(f"ok   {name}: {lines[0]}")


def main() -> int:
    if not os.access(BIN, os.X_OK):
        print(f"convert args: SKV_BIN={BIN!r} is not an executable swiftkv binary")
        print("convert args: 0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="skv_convert_args_")
    fixtures_before = sorted(os.listdir(os.path.dirname(BASE)))
    try:
        out = os.path.join(tmp, "out")
        m1 = ["--model", BASE, "--out", out]

        def case(name, extra, keyword, model_args=m1):
            expect_error(name, model_args + extra, keyword, tmp)

        case("m_equals_layers", ["--num-key-value-layers", "3"], r"num_key_value_layers.*\[1, 2\].*3 layers")
        case("m_above_layers", ["--num-key-value-layers", "40"], r"num_key_value_layers.*\[1, 2\]")
        case("m_zero", ["--num-key-value-layers", "0"], r"--num-key-value-layers must be at least 1, got 0")
        case("m_negative", ["--num-key-value-layers", "-2"], r"--num-key-value-layers must be at least 1")
        case("m_not_integer", ["--num-key-value-layers", "1.5"], r"--num-key-value-layers expects an integer")
        case("g_zero", ["--num-key-value-layers", "1", "--key-value-group-size", "0"],
             r"--key-value-group-size must be at least 1")
        case("g_not_dividing", ["--num-key-value-layers", "1", "--key-value-group-size", "3"],
             r"key_value_group_size 3 must divide the 2 layers")
        case("g_too_big", ["--num-key-value-layers", "2", "--key-value-group-size", "2"],
             r"key_value_group_size 2 must divide the 1 layers")
        for frac in ("0", "1", "1.5", "-0.25", "nan", "inf"):
            case(f"fraction_{frac}", ["--swiftkv-fraction", frac],
                 r"--swiftkv-fraction must be strictly between 0 and 1")
        case("fraction_not_number", ["--swiftkv-fraction", "half"], r"--swiftkv-fraction expects a number")
        case("fraction_rounds_to_m0", ["--swiftkv-fraction", "0.9"], r"num_key_value_layers = 0")
        case("fraction_rounds_to_mL", ["--swiftkv-fraction", "0.1"], r"num_key_value_layers = 3")
        case("both_m_and_f", ["--num-key-value-layers", "1", "--swiftkv-fraction", "0.5"],
             r"exactly one of --num-key-value-layers and --swiftkv-fraction")
        case("neither_m_nor_f", [], r"exactly one of --num-key-value-layers and --swiftkv-fraction")
        case("unknown_dtype", ["--num-key-value-layers", "1", "--dtype", "q4_1"], r"unknown dtype 'q4_1'.*f32")
        case("missing_model", ["--out", out, "--num-key-value-layers", "1"], r"--model", model_args=[])
        case("missing_out", ["--model", BASE, "--num-key-value-layers", "1"], r"--out", model_args=[])
        case("model_not_found", ["--model", os.path.join(tmp, "nope"), "--out", out, "--num-key-value-layers", "1"],
             r"nope.*does not exist", model_args=[])
        case("unknown_flag", ["--num-key-value-layers", "1", "--layers", "2"], r"unknown flag --layers")
        case("positional", ["--num-key-value-layers", "1", "extra"], r"unexpected argument 'extra'")
        case("out_parent_missing", ["--num-key-value-layers", "1"], r"parent directory.*does not exist",
             model_args=["--model", BASE, "--out", os.path.join(tmp, "no", "such", "out")])
        case("out_is_input", ["--num-key-value-layers", "1", "--force"], r"holds the input model",
             model_args=["--model", BASE, "--out", BASE])

        # An output directory that exists and is not empty.
        os.makedirs(out)
        with open(os.path.join(out, "notes.txt"), "w") as f:
            f.write("keep me\n")
        case("out_not_empty", ["--num-key-value-layers", "1"], r"out.*is not empty.*--force")
        case("force_on_non_model_dir", ["--num-key-value-layers", "1", "--force"], r"not a model directory")
        with open(os.path.join(tmp, "file"), "w") as f:
            f.write("x")
        case("out_is_file", ["--num-key-value-layers", "1", "--force"], r"not a directory",
             model_args=["--model", BASE, "--out", os.path.join(tmp, "file")])

        # A SwiftKV checkpoint cannot be converted again.
        skv_dir = os.path.join(tmp, "swiftkv_model")
        p = subprocess.run([BIN, "convert", "--model", BASE, "--out", skv_dir, "--num-key-value-layers", "1"],
                           capture_output=True, text=True, timeout=TIMEOUT, env=ENV)
        if p.returncode != 0:
            failed.append("setup_valid_convert")
            print(f"FAIL setup_valid_convert: {p.stderr.strip()[:500]}")
        else:
            passed.append("setup_valid_convert")
            case("already_swiftkv", ["--num-key-value-layers", "1"], r"already a SwiftKV model",
                 model_args=["--model", skv_dir, "--out", os.path.join(tmp, "again")])
        # Nothing (e.g. a temporary sibling of --out) was left next to the input model.
        left = sorted(set(os.listdir(os.path.dirname(BASE))) - set(fixtures_before))
        (failed if left else passed).append("fixtures_dir_untouched")
        if left:
            print(f"FAIL fixtures_dir_untouched: left behind {left}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"convert args: {len(passed)} passed, {len(failed)} failed")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
