#!/usr/bin/env bash
# Builds llama.cpp's llama-server, the serving peer of docs/serving.md's sweeps, from the sources
# in the llama-cpp-python source distribution whose version the oracle venv holds (so the peer
# and the llama.cpp oracle are the same llama.cpp), with the ggml flags of scripts/ggml_flags.sh
# (this CPU's), into build-llama-server/ (ignored). Idempotent; prints the binary's path.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/build-llama-server"
[ -x "$root/.venv/bin/python" ] || bash "$root/scripts/setup_venv.sh"
version="$("$root/.venv/bin/python" -c 'import llama_cpp; print(llama_cpp.__version__)')"
source "$root/scripts/ggml_flags.sh"

cache="${XDG_CACHE_HOME:-$HOME/.cache}/swiftkv/llama-cpp-src"
src="$cache/llama_cpp_python-$version"
if [ ! -f "$src/vendor/llama.cpp/CMakeLists.txt" ]; then
  mkdir -p "$cache"
  "$root/.venv/bin/pip" download --quiet --no-binary :all: --no-deps "llama-cpp-python==$version" -d "$cache"
  tar xzf "$cache/llama_cpp_python-$version.tar.gz" -C "$cache"
fi

# No web UI (it would be fetched from the network), no curl, static: one self-contained binary.
cmake -S "$src/vendor/llama.cpp" -B "$out" -DCMAKE_BUILD_TYPE=Release $ggml_args -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF >/dev/null
cmake --build "$out" --target llama-server -j"$(nproc)" >/dev/null
echo "$out/bin/llama-server"
