// AMX-BF16 kernels (amx.h), compiled with the AVX-512 flags (CMakeLists.txt globs *_avx512.cpp)
// plus the AMX target attributes below, and reached only after amx_bf16_ready(). The same rule
// as the other ISA files: nothing here is inline code shared with baseline files.
#if defined(__x86_64__) || defined(__i386__)

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "backend/cpu/amx.h"

namespace skv::backend::cpu {

namespace {

// Palette 1: tiles 0-3 accumulate a 32 x 32 block of outputs as four 16 x 16 F32 tiles, 4 and 5
// hold 16 activation rows x 32 values each, 6 and 7 the matching 16 weight rows (pairs of k).
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

}  // namespace

void amx_pack_rows(const uint16_t* w, int64_t ldw, int64_t rows, int64_t k, int64_t k_pad, uint16_t* dst) {
  const int64_t kp = k_pad / 2;
  for (int64_t g = 0; g < kAmxRows / 16; ++g)
    for (int64_t n = 0; n < 16; ++n) {
      const int64_t r = g * 16 + n;
      uint16_t* base = dst + g * kp * 32 + n * 2;
      for (int64_t p = 0; p < kp; ++p) {
        const int64_t j = 2 * p;
        base[p * 32] = r < rows && j < k ? w[r * ldw + j] : 0;
        base[p * 32 + 1] = r < rows && j + 1 < k ? w[r * ldw + j + 1] : 0;
      }
    }
}

__attribute__((target("amx-tile,amx-bf16"))) void amx_gemm_bf16(const uint16_t* packed, const uint16_t* x, int64_t ldx,
                                                                int64_t na_pad, int64_t k_pad, float* c, int64_t ldc) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  const int64_t kp = k_pad / 2;
  const uint16_t* b0 = packed;
  const uint16_t* b1 = packed + kp * 32;
  for (int64_t a0 = 0; a0 < na_pad; a0 += kAmxRows) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const uint16_t* xa = x + a0 * ldx;
    for (int64_t kc = 0; kc < k_pad; kc += kAmxK) {
      _tile_loadd(4, xa + kc, ldx * 2);
      _tile_loadd(5, xa + 16 * ldx + kc, ldx * 2);
      _tile_loadd(6, b0 + kc * 16, 64);
      _tile_loadd(7, b1 + kc * 16, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    float* ca = c + a0 * ldc;
    _tile_stored(0, ca, ldc * 4);
    _tile_stored(1, ca + 16, ldc * 4);
    _tile_stored(2, ca + 16 * ldc, ldc * 4);
    _tile_stored(3, ca + 16 * ldc + 16, ldc * 4);
  }
  _tile_release();
}

}  // namespace skv::backend::cpu

#else  // not x86

#include "backend/cpu/amx.h"
namespace skv::backend::cpu {
void amx_pack_rows(const uint16_t*, int64_t, int64_t, int64_t, int64_t, uint16_t*) {}
void amx_gemm_bf16(const uint16_t*, const uint16_t*, int64_t, int64_t, int64_t, float*, int64_t) {}
}  // namespace skv::backend::cpu

#endif
