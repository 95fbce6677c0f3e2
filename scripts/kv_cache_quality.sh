#!/usr/bin/env bash
# The compressed-KV-cache table of docs/quality.md: for each model given and each KV cache dtype,
# the KL divergence of the next-token distributions from the F32 cache's on held text (WikiText-2
# test, `swiftkv perplexity`), LAMBADA accuracy and perplexity and WikiText-2 word perplexity
# (`swiftkv eval`), the same items and documents for every row.
#
#   DTYPES=f32,f16,bf16,q8_0,fp8 LAMBADA_LIMIT=300 WIKITEXT_LIMIT=3 KL_CHUNKS=8 KL_CTX=1024 THREADS=2 \
#     OUT=build-kvq scripts/kv_cache_quality.sh base=models/SmolLM2-135M-Instruct.Q4_1.gguf skv50=models/smollm2-skv50
#
# Writes OUT/<label>.kl.json (one row per dtype), OUT/<label>.<dtype>.json (eval results) and
# prints a markdown table per model.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${SKV_BIN:-$root/build/swiftkv}"
out="${OUT:-$root/build-kvq}"
threads="${THREADS:-0}"
dtypes="${DTYPES:-f32,f16,bf16,q8_0,fp8}"
data="${SKV_DATA:-$root/../shared/data}"
[ $# -ge 1 ] || { echo "usage: $0 LABEL=MODEL [LABEL=MODEL ...]" >&2; exit 2; }
mkdir -p "$out"

for spec in "$@"; do
  label="${spec%%=*}"
  model="${spec#*=}"
  [ "$label" != "$spec" ] && [ -n "$label" ] && [ -n "$model" ] || { echo "bad argument '$spec' (want LABEL=MODEL)" >&2; exit 2; }
  echo "== $label: KL on WikiText-2 test" >&2
  "$bin" perplexity --model "$model" -f "$data/wikitext2/wiki.test.raw" -c "${KL_CTX:-1024}" --chunks "${KL_CHUNKS:-8}" \
    --kv-cache-dtype "$dtypes" --kl-reference-kv-dtype f32 -t "$threads" --json > "$out/$label.kl.json"
  for d in ${dtypes//,/ }; do
    echo "== $label: LAMBADA and WikiText-2, $d cache" >&2
    "$bin" eval --model "$model" --tasks lambada_openai --limit "${LAMBADA_LIMIT:-300}" -t "$threads" \
      --kv-cache-dtype "$d" --label "$label-$d" --output "$out/$label.$d.lambada.json"
    "$bin" eval --model "$model" --tasks wikitext2 --limit "${WIKITEXT_LIMIT:-3}" -t "$threads" \
      --kv-cache-dtype "$d" --label "$label-$d" --output "$out/$label.$d.wikitext.json"
  done
  python3 - "$out" "$label" "$dtypes" <<'EOF'
import json, sys
out, label, dtypes = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
kl = {r["kv_cache_dtype"]: r for r in json.load(open(f"{out}/{label}.kl.json"))["rows"]}
ref = kl.get("f32", next(iter(kl.values())))["kv_bytes_per_token"]
print(f"\n{label}\n")
print("| KV cache | bytes/token | % of F32 | mean KL (± se) | same top token | LAMBADA acc | LAMBADA ppl | WikiText-2 word ppl |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for d in dtypes:
    r = kl[d]
    lam = json.load(open(f"{out}/{label}.{d}.lambada.json"))["results"]["lambada_openai"]
    wt = json.load(open(f"{out}/{label}.{d}.wikitext.json"))["results"]["wikitext2"]
    print(f"| {d} | {r['kv_bytes_per_token']} | {100 * r['kv_bytes_per_token'] / ref:.1f}% | "
          f"{r['kl_mean']:.6f} ± {r['kl_stderr']:.6f} | {100 * r['same_top_token']:.2f}% | "
          f"{lam['acc']:.4f} ± {lam['acc_stderr']:.4f} | {lam['perplexity']:.3f} | {wt['word_perplexity']:.4f} |")
EOF
done
