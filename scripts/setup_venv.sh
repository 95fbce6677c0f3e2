#!/usr/bin/env bash
# Python venv for test oracles only (HF tokenizers, jinja2/transformers for chat templates,
# llama.cpp via llama-cpp-python, numpy). Nothing at run time uses Python.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"

# llama-cpp-python compiles llama.cpp from source, with this CPU's flags.
source "$root/scripts/ggml_flags.sh"

stamp="$venv/.requirements.sha"
want="$( (cat "$root/scripts/requirements-oracle.txt"; echo "$ggml_args") | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/pip" install --quiet --upgrade pip
  # pip's own wheel cache would hand back a build made with other flags: keep our builds apart,
  # keyed by the flags, so a fresh clone reuses this machine's build instead of recompiling.
  wheels="${XDG_CACHE_HOME:-$HOME/.cache}/swiftkv/llama-cpp-wheels/$(echo "$ggml_args" | sha256sum | cut -c1-16)"
  if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    mkdir -p "$wheels"
    CMAKE_ARGS="$ggml_args -DLLAMA_CURL=OFF" "$venv/bin/pip" wheel --quiet --no-deps --no-cache-dir -w "$wheels" \
      llama-cpp-python
  fi
  "$venv/bin/pip" install --quiet --force-reinstall --no-deps "$wheels"/llama_cpp_python-*.whl
  "$venv/bin/pip" install --quiet -r "$root/scripts/requirements-oracle.txt"
  echo "$want" > "$stamp"
fi
