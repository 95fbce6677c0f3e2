#!/usr/bin/env python3
"""The CLI runs OpenBLAS's kernels for this CPU, not its Prescott (SSE3) fallback.

Debian's OpenBLAS 0.3.21 falls back to Prescott on CPUs newer than its table; swiftkv then sets
OPENBLAS_CORETYPE and re-executes itself (backend/cpu/blas_kernels.h). `swiftkv info --json`
reports the kernels the process ended up with:
- with OPENBLAS_CORETYPE unset, on a CPU with AVX2 + FMA, they are not Prescott;
- a value the user sets is kept, Prescott included;
- the arguments survive the re-exec (the command's output is the same as with the variable set).

Env: SKV_BIN. Standard library only.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_checks import BIN, make_env  # noqa: E402
from make_bad_files import build_all  # noqa: E402


def cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def info(model: str, coretype: str | None) -> dict:
    env = make_env()
    env.pop("OPENBLAS_CORETYPE", None)
    if coretype is not None:
        env["OPENBLAS_CORETYPE"] = coretype
    p = subprocess.run([BIN, "info", "--model", model, "--json"], capture_output=True, text=True, env=env,
                       timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"info failed ({p.returncode}): {p.stderr[-500:]}")
    return json.loads(p.stdout)


def main() -> int:
    if not os.path.exists(BIN):
        print(f"FAIL: no binary at {BIN}")
        return 1
    failures = []
    with tempfile.TemporaryDirectory(prefix="skv_blas_") as tmp:
        model = build_all(tmp)["gguf_valid"]
        auto = info(model, None)
        kept = info(model, "Prescott")
        flags = cpu_flags()
        blas = auto["kernels"]["blas"]
        print(f"cpu has avx2+fma: {'avx2' in flags and 'fma' in flags}; OpenBLAS kernels chosen: {blas}")
        if "avx2" in flags and "fma" in flags and blas == "Prescott":
            failures.append("OPENBLAS_CORETYPE unset on an AVX2 CPU, and OpenBLAS still runs Prescott")
        if kept["kernels"]["blas"] != "Prescott":
            failures.append(f"OPENBLAS_CORETYPE=Prescott was not kept: {kept['kernels']['blas']}")
        for j in (auto, kept):  # the pool is sized from MemAvailable, which moves between runs
            del j["kernels"], j["kv_cache_pool"]
        if auto != kept:
            failures.append("info's output differs with and without the re-exec")
    for f in failures:
        print("FAIL:", f)
    print("test_blas_kernels:", "FAILED" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
