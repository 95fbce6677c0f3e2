// Kernel benchmarks on SmolLM2-135M shapes (hidden 576, 9 heads / 3 KV heads of 64,
// intermediate 1536, vocab 49152, 30 layers).
//
//   bench_kernels --benchmark_filter=Linear     # one matrix, n = 1 (decode) / 512 (prefill)
//   bench_kernels --benchmark_filter=Model      # all 30 layers' linears, distinct weights
//   SKV_CPU_ISA=generic bench_kernels ...       # the scalar table
// Threads: SKV_THREADS (default: all cores).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/quant.h"
#include "backend/ops.h"
#include "core/tensor.h"

using namespace skv;

namespace {

Tensor random_weight(DType dt, int64_t out, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  Tensor w = Tensor::empty(dt, {out, in});
  std::vector<float> row(in);
  for (int64_t r = 0; r < out; ++r) {
    for (auto& v : row) v = nd(rng);
    void* dst = const_cast<uint8_t*>(w.row_ptr(r));
    switch (dt) {
      case DType::F32:
        std::memcpy(dst, row.data(), in * 4);
        break;
      case DType::F16:
        for (int64_t j = 0; j < in; ++j) static_cast<uint16_t*>(dst)[j] = backend::cpu::fp32_to_fp16(row[j]);
        break;
      case DType::BF16:
        for (int64_t j = 0; j < in; ++j) static_cast<uint16_t*>(dst)[j] = backend::cpu::fp32_to_bf16(row[j]);
        break;
      case DType::Q8_0:
        backend::cpu::quantize_row_q8_0(row.data(), static_cast<backend::cpu::BlockQ8_0*>(dst), in);
        break;
      case DType::Q4_0:
        backend::cpu::quantize_row_q4_0(row.data(), static_cast<backend::cpu::BlockQ4_0*>(dst), in);
        break;
      case DType::Q4_1:
        backend::cpu::quantize_row_q4_1(row.data(), static_cast<backend::cpu::BlockQ4_1*>(dst), in);
        break;
      default:  // the 5-bit and K formats
        backend::cpu::quantize_row(dt, row.data(), dst, in);
        break;
    }
  }
  return w;
}

Tensor random_act(int64_t n, int64_t d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Tensor t = Tensor::empty(DType::F32, {n, d});
  for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = nd(rng);
  return t;
}

void setup_threads() {
  static bool done = false;
  if (done) return;
  done = true;
  const char* e = std::getenv("SKV_THREADS");
  backend::cpu::set_num_threads(e ? std::atoi(e) : 0);
}

// args: dtype (skv::DType value: 0 F32, 3 Q8_0, 4 Q4_0, 5 Q4_1, 2 BF16, 8 Q5_0, 9 Q5_1,
// 10 Q4_K, 11 Q5_K, 12 Q6_K, 14 FP8; the K-quants only where in is a multiple of 256), n, in, out,
// path (0 auto, 1 integer / float dot "gemv", 2 panel dequantise + sgemm, 3 FP8 weights with
// activations quantised to E4M3 per token: --fp8-activations fp8)
void BM_Linear(benchmark::State& st) {
  setup_threads();
  const DType dt = static_cast<DType>(st.range(0));
  const int64_t n = st.range(1), in = st.range(2), out = st.range(3);
  const bool e4m3 = st.range(4) == 3;
  const auto path = e4m3 ? backend::cpu::LinearPath::Auto : static_cast<backend::cpu::LinearPath>(st.range(4));
  backend::set_fp8_activations(e4m3 ? backend::Fp8Activations::E4M3 : backend::Fp8Activations::F32);
  Tensor w = random_weight(dt, out, in, 1);
  Tensor x = random_act(n, in, 2);
  Tensor y = Tensor::empty(DType::F32, {n, out});
  for (auto _ : st) {
    backend::cpu::linear(x, w, nullptr, y, path);
    benchmark::DoNotOptimize(y.data);
    benchmark::ClobberMemory();
  }
  const double flop = 2.0 * n * in * out;
  st.counters["GFLOP/s"] = benchmark::Counter(flop * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["tok/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(std::string(dtype_name(dt)) + (e4m3 ? "+E4M3-act " : " ") +
              backend::cpu::isa_name(backend::cpu::active_isa()) + " t" + std::to_string(backend::cpu::num_threads()));
  backend::set_fp8_activations(backend::Fp8Activations::F32);
}

void LinearArgs(benchmark::internal::Benchmark* b) {
  const int64_t shapes[][2] = {{576, 576}, {576, 192}, {576, 1536}, {1536, 576}, {576, 49152}};
  for (DType dt : {DType::Q4_1, DType::Q8_0, DType::Q4_0, DType::F32, DType::BF16, DType::Q5_0, DType::Q5_1,
                   DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::FP8})
    for (int64_t n : {1, 512})
      for (auto& s : shapes) {
        if (n == 512 && s[1] == 49152) continue;  // prefill computes logits for the last row only
        if (s[0] % dtype_block_size(dt) != 0) continue;
        b->Args({static_cast<int64_t>(dt), n, s[0], s[1], 0});
        if (dt == DType::FP8) {
          b->Args({static_cast<int64_t>(dt), n, s[0], s[1], 3});
          continue;
        }
        // For quantised weights also the panel-dequantise + sgemm alternative (path 2).
        if (n == 512 && dtype_is_quantized(dt)) b->Args({static_cast<int64_t>(dt), n, s[0], s[1], 2});
      }
}
BENCHMARK(BM_Linear)
    ->Apply(LinearArgs)
    ->ArgNames({"dt", "n", "in", "out", "path"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// GEMV vs GEMM crossover for small n (576 -> 1536).
void CrossoverArgs(benchmark::internal::Benchmark* b) {
  for (DType dt : {DType::Q4_1, DType::Q8_0, DType::F32})
    for (int64_t n : {1, 2, 3, 4, 6, 8, 12, 16})
      for (int64_t path : {1, 2}) b->Args({static_cast<int64_t>(dt), n, 576, 1536, path});
}
BENCHMARK(BM_Linear)
    ->Name("BM_LinearCrossover")
    ->Apply(CrossoverArgs)
    ->ArgNames({"dt", "n", "in", "out", "path"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Every linear of SmolLM2-135M (30 layers, distinct weights so the working set is the real
// ~66 MB at Q4_1) plus the tied LM head on the last row: the linear part of one decode step
// (n = 1) or of a 512-token prefill.
void BM_ModelLinears(benchmark::State& st) {
  setup_threads();
  const DType dt = static_cast<DType>(st.range(0));
  const int64_t n = st.range(1);
  constexpr int64_t L = 30, d = 576, ff = 1536, kv = 192, vocab = 49152;
  struct Layer {
    Tensor q, k, v, o, g, u, dn;
  };
  std::vector<Layer> layers;
  for (int64_t l = 0; l < L; ++l) {
    const uint32_t s = static_cast<uint32_t>(l * 10);
    layers.push_back({random_weight(dt, d, d, s), random_weight(dt, kv, d, s + 1), random_weight(dt, kv, d, s + 2),
                      random_weight(dt, d, d, s + 3), random_weight(dt, ff, d, s + 4), random_weight(dt, ff, d, s + 5),
                      random_weight(dt, d, ff, s + 6)});
  }
  Tensor head = random_weight(dt, vocab, d, 999);
  Tensor x = random_act(n, d, 3), h = random_act(n, ff, 4);
  Tensor yq = Tensor::empty(DType::F32, {n, d}), yk = Tensor::empty(DType::F32, {n, kv});
  Tensor yf = Tensor::empty(DType::F32, {n, ff}), logits = Tensor::empty(DType::F32, {1, vocab});
  Tensor last = Tensor::view(DType::F32, {1, d}, x.as<float>() + (n - 1) * d);
  for (auto _ : st) {
    for (const Layer& l : layers) {
      backend::linear(x, l.q, nullptr, yq);
      backend::linear(x, l.k, nullptr, yk);
      backend::linear(x, l.v, nullptr, yk);
      backend::linear(x, l.o, nullptr, yq);
      backend::linear(x, l.g, nullptr, yf);
      backend::linear(x, l.u, nullptr, yf);
      backend::linear(h, l.dn, nullptr, yq);
    }
    backend::linear(last, head, nullptr, logits);
    benchmark::ClobberMemory();
  }
  st.counters["tok/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(std::string(dtype_name(dt)) + " " + backend::cpu::isa_name(backend::cpu::active_isa()) + " t" +
              std::to_string(backend::cpu::num_threads()));
}
BENCHMARK(BM_ModelLinears)
    ->Args({static_cast<int64_t>(DType::Q4_1), 1})
    ->Args({static_cast<int64_t>(DType::Q8_0), 1})
    ->Args({static_cast<int64_t>(DType::Q4_1), 512})
    ->Args({static_cast<int64_t>(DType::Q8_0), 512})
    ->ArgNames({"dt", "n"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Attention, SmolLM2 heads: decode (n = 1 at context T) and prefill (n = T from 0).
void BM_Attention(benchmark::State& st) {
  setup_threads();
  const int64_t T = st.range(0), n = st.range(1);
  constexpr int64_t H = 9, KV = 3, D = 64;
  Tensor q = random_act(n, H * D, 5);
  Tensor k = random_act(T, KV * D, 6), v = random_act(T, KV * D, 7);
  Tensor out = Tensor::empty(DType::F32, {n, H * D});
  for (auto _ : st) {
    backend::attention(q, k, v, T - n, H, KV, 0.125f, out);
    benchmark::ClobberMemory();
  }
  // 4 D flops per (query, key) pair per head (QK^T and PV).
  double pairs = 0;
  for (int64_t i = 0; i < n; ++i) pairs += static_cast<double>(T - n + i + 1);
  st.counters["GFLOP/s"] =
      benchmark::Counter(pairs * H * 4.0 * D * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["tok/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(std::string(backend::cpu::isa_name(backend::cpu::active_isa())) + " t" +
              std::to_string(backend::cpu::num_threads()));
}
BENCHMARK(BM_Attention)
    ->Args({512, 1})
    ->Args({2048, 1})
    ->Args({8192, 1})
    ->Args({512, 512})
    ->Args({2048, 2048})
    ->ArgNames({"T", "n"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
