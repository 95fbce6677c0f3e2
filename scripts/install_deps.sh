#!/usr/bin/env bash
# Debian packages the build and the tests need (clang, its libFuzzer / sanitizer runtimes and
# OpenMP for the fuzz harnesses of tests/fuzz). Idempotent; skips apt when all are present.
set -euo pipefail
pkgs=(build-essential cmake pkg-config nlohmann-json3-dev libcpp-httplib-dev libpcre2-dev libopenblas-dev
      libgtest-dev libgmock-dev libbenchmark-dev libopenmpi-dev openmpi-bin python3-venv python3-dev
      chromium chromium-driver clang libclang-rt-14-dev libomp-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
