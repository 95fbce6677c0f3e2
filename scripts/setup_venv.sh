#!/usr/bin/env bash
# Python venv for test oracles only (HF tokenizers, jinja2/transformers for chat templates,
# llama.cpp via llama-cpp-python, numpy). Nothing at run time uses Python.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
stamp="$venv/.requirements.sha"
want="$(sha256sum "$root/scripts/requirements-oracle.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/pip" install --quiet --upgrade pip
  # llama-cpp-python compiles llama.cpp from source: native flags so the oracle (and the
  # benchmark baseline) uses this CPU's SIMD like a user's own llama.cpp build would.
  CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF" "$venv/bin/pip" install --quiet -r "$root/scripts/requirements-oracle.txt"
  echo "$want" > "$stamp"
fi
