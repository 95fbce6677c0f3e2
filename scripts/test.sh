#!/usr/bin/env bash
# Fresh machine -> the whole test suite: unit tests (GoogleTest), oracle tests against
# HF tokenizers / transformers fixtures / jinja2 / llama.cpp, then the bad-input tests again
# under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
jobs="$(nproc)"
"$root/scripts/install_deps.sh"
"$root/scripts/setup_venv.sh"
"$root/scripts/fetch_model.sh"

cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DSKV_PYTHON="$root/.venv/bin/python" >/dev/null
cmake --build "$root/build" -j"$jobs"
(cd "$root/build" && ctest --output-on-failure -j"$jobs")

# Sanitizer build: unit tests and the robustness tests (corrupt files, bad flags).
cmake -S "$root" -B "$root/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSKV_SANITIZE=ON \
  -DSKV_PYTHON="$root/.venv/bin/python" >/dev/null
cmake --build "$root/build-asan" -j"$jobs"
(cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs" -L "unit|robustness")
