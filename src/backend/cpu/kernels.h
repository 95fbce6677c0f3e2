#pragma once
// Per-ISA kernel table. dispatch.cpp picks one table at first use from the CPU's features
// (capped by SKV_CPU_ISA=generic|avx2|avx512); tests switch tables with set_isa().
//
// The tables hold only "leaf" kernels working on raw rows. The drivers (linear.cpp,
// attention.cpp, ...) are compiled for baseline x86-64 and own the threading, so every
// decision about parallelism lives in one place and the SIMD files stay free of threading.
//
// Rule for *_avx2.cpp / *_avx512.cpp files: they must not instantiate any inline function
// or template shared with baseline code (std::min, std::vector, ...), because the linker may
// keep their AVX copy for the whole program. Keep everything there in an anonymous namespace
// and use only intrinsics and plain C++.
#include <cstddef>
#include <cstdint>

#include "backend/cpu/quant.h"

namespace skv::backend::cpu {

enum class Isa : uint8_t { Generic, AVX2, AVX512 };

const char* isa_name(Isa isa);
bool isa_supported(Isa isa);  // by this CPU (and OS state saving)
// The first feature `isa` needs that this CPU or build lacks ("avx512_vnni", ...), for
// messages; nullptr when supported. AVX512 means F, BW, VL, DQ and VNNI (see dispatch.cpp).
const char* isa_missing(Isa isa);
// AVX512-BF16 (vdpbf16ps), which the AVX512 table's gemm_bf16 uses when present.
bool cpu_has_avx512_bf16();
Isa detected_isa();  // best ISA the CPU supports
Isa active_isa();
// Selects the kernel table. Throws skv::Error when the CPU cannot run `isa`.
void set_isa(Isa isa);
// Parses "generic" | "avx2" | "avx512" (case-insensitive); throws skv::Error otherwise.
Isa parse_isa(const char* name);

// Activation row quantised to 8 bits for the integer dot products: 32 values per block,
// x ~= d * q, and s = d * sum(q) (what ggml's block_q8_1 carries) so that the offset terms of
// Q4_1 (m) and Q4_0 (-8 d) cost one multiply per block. Internal format (fp32 scales), never
// stored in files. Rounding is to nearest-even in every ISA, so all tables agree bit for bit.
struct BlockQ8A {
  float d;
  float s;
  int8_t qs[QK];
};
static_assert(sizeof(BlockQ8A) == 40);

// x[k] -> k / QK blocks. k % QK == 0.
using QuantizeActFn = void (*)(const float* x, BlockQ8A* y, int64_t k);

// Integer GEMV tile: for weight rows r < rows (row r at w + r * w_stride bytes, k elements)
// and activation rows a < na (row a at act + a * act_stride blocks):
//   y[a * ldy + r] = sum_j w[r, j] * act[a, j].
// Any rows >= 1 and na >= 1; k a multiple of the weight's block size (QK, or QK_K for the
// K-quants, whose super-block meets 8 consecutive activation blocks).
using QGemvFn = void (*)(const void* w, size_t w_stride, int64_t rows, const BlockQ8A* act, int64_t act_stride,
                         int64_t na, int64_t k, float* y, int64_t ldy);
// Same with float activations (x row a at x + a * ldx) and F32 / F16 / BF16 weights.
using FGemvFn = void (*)(const void* w, size_t w_stride, int64_t rows, const float* x, int64_t ldx, int64_t na,
                         int64_t k, float* y, int64_t ldy);
// BF16 rows against BF16 rows: y[a * ldy + r] = sum_j w[r, j] x[a, j] for r < rows, a < na
// (row r at w + r * ldw, row a at x + a * ldx, in elements), F32 accumulation. Any k >= 0.
using Bf16GemmFn = void (*)(const uint16_t* w, int64_t ldw, int64_t rows, const uint16_t* x, int64_t ldx, int64_t na,
                            int64_t k, float* y, int64_t ldy);
// One row of k elements of some dtype -> F32.
using ToFloatFn = void (*)(const void* src, float* dst, int64_t k);

// Online-softmax attention of G query vectors (query g at q + g * q_stride; the heads of one
// GQA group) against the same T keys / values (key t at k + t * kv_stride), tiled over keys
// so each K / V tile is read from memory once for all G queries. For each g it writes the
// running max m[g], the sum l[g] = sum_t exp(s_t - m[g]) and the unnormalised accumulator
// o[g * o_stride + d] = sum_t exp(s_t - m[g]) v_t[d], where s_t = scale * q_g . k_t; the
// caller divides by l (or merges several key ranges first). G <= kAttnMaxGroup, T >= 1.
// Keys are taken in tiles of kAttnTile from the first, each tile updating (m, l, o) online.
// With init false, (m, l, o) hold the state a previous call left and this call continues it
// exactly as if its keys had followed in the same call, so a paged cache fed one tile per call
// gives the same bits as a contiguous one (backend/cpu/attention.cpp).
constexpr int64_t kAttnMaxGroup = 16;
constexpr int64_t kAttnTile = 64;
using AttnFn = void (*)(const float* q, int64_t q_stride, int64_t G, const float* k, const float* v, int64_t kv_stride,
                        int64_t T, int64_t D, float scale, float* o, int64_t o_stride, float* m, float* l, bool init);

struct Kernels {
  Isa isa;
  QuantizeActFn quantize_q8a;
  QGemvFn gemv_q8_0, gemv_q4_0, gemv_q4_1, gemv_q5_0, gemv_q5_1, gemv_q4_k, gemv_q5_k, gemv_q6_k;
  FGemvFn gemv_f32, gemv_f16, gemv_bf16;
  ToFloatFn to_float_f16, to_float_bf16, to_float_q8_0, to_float_q4_0, to_float_q4_1, to_float_q5_0, to_float_q5_1,
      to_float_q4_k, to_float_q5_k, to_float_q6_k;
  // FP8 rows (DType::FP8): to_float_fp8 gives x = s * e4m3(q); gemv_fp8 is the float GEMV of
  // such rows against F32 activations, each row's sum times its scale.
  ToFloatFn to_float_fp8;
  FGemvFn gemv_fp8;
  // The dynamic-activation FP8 path (linear.cpp): fp8_to_bf16 writes a row's E4M3 values,
  // unscaled, as BF16 (exact: E4M3 has fewer mantissa bits and less exponent range), and
  // gemm_bf16 multiplies them with the BF16 copies of E4M3-rounded activations. Products of
  // two E4M3 values are exact in F32, so tables differ only in the order of the sums.
  void (*fp8_to_bf16)(const void* row, uint16_t* dst, int64_t k);
  Bf16GemmFn gemm_bf16;
  // Row helpers (n any >= 0).
  float (*sum_squares)(const float* x, int64_t n);                                  // sum x^2 (fp32 lanes)
  void (*mul_scale)(const float* x, float s, const float* w, float* y, int64_t n);  // y = (x * s) * w
  void (*add)(float* y, const float* x, int64_t n);                                 // y += x
  void (*silu_mul)(const float* g, const float* u, float* out, int64_t n);          // out = silu(g) * u
  AttnFn attn;
};

const Kernels& kernels();  // the active table (initialised on first use)

// The table's integer GEMV / row conversion for a weight dtype; nullptr where it has none
// (F32 for to_float; the float dtypes for qgemv).
QGemvFn qgemv_for(const Kernels& k, DType t);
ToFloatFn to_float_for(const Kernels& k, DType t);

// Tables. The AVX2 and AVX-512 ones exist only on x86-64 builds; nullptr elsewhere.
const Kernels* generic_kernels();
const Kernels* avx2_kernels();
const Kernels* avx512_kernels();

}  // namespace skv::backend::cpu
