# Sourced by scripts/setup_venv.sh and bench/build_llama_server.sh: the ggml CMake flags for
# this CPU, so llama.cpp is built like a user's own build (the oracle, the benchmark baselines).
# Some machines list AMX but fault on its tile instructions (llama.cpp's AMX matmul dies with
# SIGILL there), so where AMX is listed the build names this CPU's other extensions instead of
# -march=native.
ggml_args="-DGGML_NATIVE=ON"
if grep -qw amx_tile /proc/cpuinfo; then
  ggml_args="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  for f in sse4_2:SSE42 avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI avx512f:AVX512 \
           avx512_vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    if grep -qw "${f%%:*}" /proc/cpuinfo; then ggml_args+=" -DGGML_${f#*:}=ON"; fi
  done
fi
