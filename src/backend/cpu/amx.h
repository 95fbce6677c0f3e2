#pragma once
// AMX-BF16 tiles for the dynamic-activation FP8 path (linear.cpp): BF16 activations (E4M3
// values) times BF16 weight panels (E4M3 values) with F32 accumulation, 16 x 16 x 32 products
// an instruction. Products of E4M3 values are exact in F32, as in gemm_bf16.
#include <cstdint>

namespace skv::backend::cpu {

// Whether this CPU has AMX-TILE and AMX-BF16 and the OS let this process use the tile data
// (Linux arch_prctl(ARCH_REQ_XCOMP_PERM), asked once here). False off x86-64, and when
// SKV_NO_AMX is set or the active kernel table is not AVX512.
bool amx_bf16_ready();

constexpr int64_t kAmxRows = 32;  // weight rows and activation rows per tile pair
constexpr int64_t kAmxK = 32;     // BF16 values per tile row

// Packs `rows` (<= kAmxRows) BF16 weight rows (row r at w + r * ldw, k values) into the layout
// the B tiles load: for every pair of k values p, 16-row group g, row n of the group:
// dst[((g * kp + p) * 16 + n) * 2 + (0|1)], kp = k_pad / 2; missing rows and k_pad - k
// columns are zero. k_pad = k rounded up to kAmxK. dst holds kAmxRows * k_pad values.
void amx_pack_rows(const uint16_t* w, int64_t ldw, int64_t rows, int64_t k, int64_t k_pad, uint16_t* dst);

// c[a * ldc + r] = sum_j x[a, j] w[r, j] for a < na_pad, r < kAmxRows, where x is BF16 with
// rows of ldx >= k_pad values (zero past k), na_pad a multiple of kAmxRows, and w a panel
// packed by amx_pack_rows. Only after amx_bf16_ready().
void amx_gemm_bf16(const uint16_t* packed, const uint16_t* x, int64_t ldx, int64_t na_pad, int64_t k_pad, float* c,
                   int64_t ldc);

}  // namespace skv::backend::cpu
