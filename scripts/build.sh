#!/usr/bin/env bash
# Release build into build/ (the CLI lands at build/swiftkv).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DSKV_SANITIZE=OFF -DSKV_BUILD_TESTS=ON -DSKV_PYTHON="$root/.venv/bin/python" "$@" >/dev/null
cmake --build "$root/build" -j"$(nproc)"
