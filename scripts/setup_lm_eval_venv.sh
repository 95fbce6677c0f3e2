#!/usr/bin/env bash
# Python venv (.venv-lmeval) with EleutherAI's lm-evaluation-harness (transformers backend, CPU),
# used only as the independent reference for `swiftkv eval` (see docs/quality.md,
# "Validation against lm-evaluation-harness"). Not part of the build or of CI.
#
# torch is large (the PyPI wheel for Linux is the CUDA build, several GB with its nvidia-*
# dependencies). If a donor venv that already has torch + transformers for the same Python exists
# (LMEVAL_TORCH_FROM, default /tmp/tv), its site-packages is put on this venv's path with a .pth
# file (appended after the venv's own site-packages, so anything installed here wins) and pip
# sees torch/transformers as already installed. On a fresh machine (no donor) everything,
# torch included, is installed from PyPI: slow, but it works.
#
#   scripts/setup_lm_eval_venv.sh            # creates/updates .venv-lmeval
#   LMEVAL_TORCH_FROM= scripts/setup_lm_eval_venv.sh   # never reuse a donor venv
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv-lmeval"
lm_eval_version="${LMEVAL_VERSION:-0.4.13}"
donor="${LMEVAL_TORCH_FROM-/tmp/tv}"
python="${PYTHON:-python3}"

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pyver="$("$venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

rm -f "$site/lmeval-donor.pth"
if [ -n "$donor" ] && [ -d "$donor/lib/python$pyver/site-packages/torch" ] \
   && [ -d "$donor/lib/python$pyver/site-packages/transformers" ]; then
  echo "reusing torch + transformers from $donor (python $pyver)"
  echo "$donor/lib/python$pyver/site-packages" > "$site/lmeval-donor.pth"
fi

stamp="$venv/.lmeval.stamp"
want="lm-eval[hf]==$lm_eval_version donor=$donor"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/pip" install --quiet --upgrade pip
  # torch/transformers come from the donor when there is one (already satisfied), else from PyPI.
  "$venv/bin/pip" install "lm-eval[hf]==$lm_eval_version" numpy safetensors
  echo "$want" > "$stamp"
fi
"$venv/bin/python" - <<'EOF'
import importlib.metadata as md
for p in ("lm_eval", "torch", "transformers", "datasets", "accelerate"):
    print(f"{p:13s} {md.version(p.replace('_', '-'))}")
EOF
