#!/usr/bin/env bash
# Fresh machine -> the whole test suite: unit tests (GoogleTest), oracle tests against
# HF tokenizers / transformers fixtures / jinja2 / llama.cpp, then the bad-input tests again
# under AddressSanitizer + UndefinedBehaviorSanitizer, then the libFuzzer harnesses (clang).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
jobs="$(nproc)"
"$root/scripts/install_deps.sh"
"$root/scripts/setup_venv.sh"
"$root/scripts/fetch_model.sh"

# Every option this script relies on is stated: build/ may have been configured before by
# quickstart.sh (tests off) or by hand, and CMake's cache would otherwise keep those settings.
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DSKV_BUILD_TESTS=ON -DSKV_SANITIZE=OFF \
  -DSKV_PYTHON="$root/.venv/bin/python" >/dev/null
cmake --build "$root/build" -j"$jobs"
(cd "$root/build" && ctest --no-tests=error --output-on-failure -j"$jobs" --timeout 1800)

# Sanitizer build: unit tests, the robustness tests (corrupt files, bad flags) and the server
# tests with real clients.
# -O1 -g1 keeps the sanitizer build quick to compile while stack traces still name lines.
cmake -S "$root" -B "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DSKV_SANITIZE=ON -DSKV_BUILD_TESTS=ON \
  -DSKV_PYTHON="$root/.venv/bin/python" >/dev/null
cmake --build "$root/build-asan" -j"$jobs"
(cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --no-tests=error --output-on-failure -j"$jobs" -L "unit|robustness|server")

# libFuzzer harnesses (tests/fuzz, docs/reliability.md) in a clang build of their own: every
# committed input replayed, then each harness fuzzed for SKV_FUZZ_SECONDS (20 s by default).
cmake -S "$root" -B "$root/build-fuzz" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DSKV_FUZZ=ON -DSKV_FUZZ_SECONDS="${SKV_FUZZ_SECONDS:-20}" >/dev/null
cmake --build "$root/build-fuzz" -j"$jobs" --target skv_fuzz
(cd "$root/build-fuzz" && ctest --no-tests=error --output-on-failure -j"$jobs" -L fuzz)
