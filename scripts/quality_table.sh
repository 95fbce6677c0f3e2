#!/usr/bin/env bash
# The quality table of docs/quality.md: every evaluation task on each model given, the same items
# for every model, then `swiftkv eval --compare` as a markdown table.
#
#   scripts/quality_table.sh LABEL=MODEL [LABEL=MODEL ...]
#   LIMIT=200 MMLU_LIMIT=10 WIKITEXT_LIMIT=10 GSM8K_LIMIT=100 THREADS=2 OUT=build-quality scripts/quality_table.sh \
#       baseline=models/SmolLM2-135M-Instruct.Q4_1.gguf skv25=models/smollm2-skv25 skv50=models/smollm2-skv50
#
# LIMIT: items per task (first N, as lm-eval's --limit; empty = full sets); MMLU_LIMIT: items per
# MMLU subject (57 subjects); WIKITEXT_LIMIT: WikiText-2 documents (62 in all, about 280k tokens);
# GSM8K_LIMIT: GSM8K items (generation is the slowest task).
# Each model's results JSON (metrics, stderr, n, settings, seconds per task) and per-item samples
# go to OUT/<label>.json and OUT/<label>.samples.jsonl; the table to OUT/table.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${SKV_BIN:-$root/build/swiftkv}"
out="${OUT:-$root/build-quality}"
threads="${THREADS:-0}"
[ $# -ge 1 ] || { echo "usage: $0 LABEL=MODEL [LABEL=MODEL ...]" >&2; exit 2; }
mkdir -p "$out"

limit_flag() { [ -n "$1" ] && echo "--limit $1" || true; }

results=()
for spec in "$@"; do
  label="${spec%%=*}"
  model="${spec#*=}"
  [ "$label" != "$spec" ] && [ -n "$label" ] && [ -n "$model" ] || { echo "bad argument '$spec' (want LABEL=MODEL)" >&2; exit 2; }
  parts=()
  # One eval call per limit group; the results files are merged by --compare (tasks x models).
  run() {
    local name="$1" tasks="$2" lim="$3"
    echo "== $label: $tasks ${lim:+(limit $lim)}" >&2
    # shellcheck disable=SC2046
    "$bin" eval --model "$model" --tasks "$tasks" $(limit_flag "$lim") -t "$threads" --label "$label" \
      --output "$out/$label.$name.json" --log-samples "$out/$label.$name.samples.jsonl"
    parts+=("$out/$label.$name.json")
  }
  run mc "arc_easy,arc_challenge,piqa,boolq,truthfulqa_mc1,truthfulqa_mc2,lambada_openai" "${LIMIT:-}"
  run wikitext "wikitext2" "${WIKITEXT_LIMIT:-${LIMIT:-}}"
  run mmlu "mmlu" "${MMLU_LIMIT:-${LIMIT:-}}"
  run gsm8k "gsm8k_cot" "${GSM8K_LIMIT:-${LIMIT:-}}"
  results+=("${parts[@]}")
done
"$bin" eval --compare "${results[@]}" | tee "$out/table.md"
