#!/usr/bin/env bash
# Fresh machine -> SmolLM2-135M-Instruct and its 50% SwiftKV model on the CPU: build, fetch the
# model, rebuild the SwiftKV model from the trained SwiftKV tensors shipped in weights/, compare
# the two on one long prompt, then chat with the SwiftKV model.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install_deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DSKV_SANITIZE=OFF -DSKV_BUILD_TESTS=OFF >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target swiftkv
"$root/scripts/fetch_model.sh"
skv="$root/build/swiftkv"
base="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
weights="$root/weights/smollm2-135m-instruct-skv50.safetensors"
model="$root/models/SmolLM2-135M-Instruct.skv50.gguf"
"$skv" info --model "$base"
echo
# The base's quantised tensors as they are, plus the trained SwiftKV tensors (M = 15 of 30 layers).
"$skv" convert --model "$base" --swiftkv-weights "$weights" --out "$model" --force
echo
echo "One 2048-token prompt through the teacher path (the base model) and the SwiftKV path:"
"$skv" bench --model "$model" --swiftkv-compare -p 2048 -n 32 -r 1
echo
sed -n 's/^Quality in one line: //p' "$root/weights/README.md"
echo
if [ -t 0 ]; then
  echo "Chatting with the 50% SwiftKV SmolLM2-135M-Instruct (type /exit to quit):"
  exec "$skv" chat --model "$model"
else
  "$skv" generate --model "$model" --chat-template --temperature 0 --max-tokens 128 \
    --prompt "Give me three tips for staying healthy."
fi
