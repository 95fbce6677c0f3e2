#!/usr/bin/env bash
# Fresh machine -> a chat with SmolLM2-135M-Instruct on the CPU.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install_deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DSKV_SANITIZE=OFF -DSKV_BUILD_TESTS=OFF >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target swiftkv
"$root/scripts/fetch_model.sh"
model="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
"$root/build/swiftkv" info --model "$model"
echo
if [ -t 0 ]; then
  echo "Chatting with SmolLM2-135M-Instruct (type /exit to quit):"
  exec "$root/build/swiftkv" chat --model "$model"
else
  "$root/build/swiftkv" generate --model "$model" --chat-template --temperature 0 --max-tokens 128 \
    --prompt "Give me three tips for staying healthy."
fi
