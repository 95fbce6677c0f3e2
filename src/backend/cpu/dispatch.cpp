// Runtime ISA selection: the best table the CPU supports, capped by SKV_CPU_ISA.
//
// Levels are whole tables. AVX512 needs AVX-512 F/BW/VL/DQ and VNNI: its integer kernels are
// built on vpdpbusd, so a CPU with AVX-512F but no VNNI (Skylake-SP/X; VNNI arrived with
// Cascade Lake and Ice Lake) runs the AVX2 table rather than a per-kernel mix, which would
// be a second AVX-512 table to test for a CPU generation the integer paths gain least on.
// The table uses no AVX512-BF16 instruction (BF16 weights are widened to F32 and multiplied
// with FMA, see vec_dot_avx512.cpp), so that feature is not required.
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <string>

#include "backend/cpu/amx.h"
#include "backend/cpu/kernels.h"
#include "core/error.h"

namespace skv::backend::cpu {

namespace {

std::atomic<const Kernels*> g_active{nullptr};
std::once_flag g_init_once;

const Kernels* table_for(Isa isa) {
  const Kernels* t = isa == Isa::AVX512 ? avx512_kernels() : isa == Isa::AVX2 ? avx2_kernels() : nullptr;
  return t ? t : generic_kernels();
}

#if defined(__x86_64__) || defined(__i386__)
// CPUID feature bits, each counted only if the OS saves the register state it needs (XCR0):
// a kernel using zmm registers on an OS that does not save them would corrupt other threads.
struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
  bool avx512bf16 = false;
  bool amx_tile = false, amx_bf16 = false;
};

CpuFeatures probe_cpu() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
  const bool fma = c & (1u << 12), f16c = c & (1u << 29);
  if (!osxsave || !avx) return f;
  unsigned xlo, xhi;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  const bool os_ymm = (xlo & 0x06u) == 0x06u;  // SSE and AVX state
  const bool os_zmm = (xlo & 0xe6u) == 0xe6u;  // plus opmask, ZMM_Hi256, Hi16_ZMM
  if (!os_ymm || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2 = b & (1u << 5);
  f.fma = fma;
  f.f16c = f16c;
  if (os_zmm) {
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    f.avx512vnni = c & (1u << 11);
    f.amx_bf16 = d & (1u << 22);
    f.amx_tile = d & (1u << 24);
    unsigned a1, b1, c1, d1;
    if (a >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512bf16 = a1 & (1u << 5);
  }
  return f;
}

const CpuFeatures& cpu() {
  static const CpuFeatures f = probe_cpu();
  return f;
}
#endif

void init_from_env() {
  Isa isa = detected_isa();
  if (const char* env = std::getenv("SKV_CPU_ISA"); env && *env) {
    const Isa want = parse_isa(env);
    if (const char* missing = isa_missing(want))
      fail("SKV_CPU_ISA=", env, ": this CPU does not support ", isa_name(want), " (no ", missing,
           "; best available: ", isa_name(detected_isa()), ")");
    isa = want;
  }
  g_active.store(table_for(isa), std::memory_order_release);
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Generic:
      return "generic";
    case Isa::AVX2:
      return "avx2";
    case Isa::AVX512:
      return "avx512";
  }
  return "?";
}

const char* isa_missing(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  const CpuFeatures& f = cpu();
  switch (isa) {
    case Isa::Generic:
      return nullptr;
    case Isa::AVX2:
      if (!avx2_kernels()) return "AVX2 kernels (not built)";
      if (!f.avx2) return "avx2";
      if (!f.fma) return "fma";
      if (!f.f16c) return "f16c";
      return nullptr;
    case Isa::AVX512:
      if (const char* m = isa_missing(Isa::AVX2)) return m;
      if (!avx512_kernels()) return "AVX-512 kernels (not built)";
      if (!f.avx512f) return "avx512f (or OS support for zmm state)";
      if (!f.avx512bw) return "avx512bw";
      if (!f.avx512vl) return "avx512vl";
      if (!f.avx512dq) return "avx512dq";
      if (!f.avx512vnni) return "avx512_vnni";
      return nullptr;
  }
  return "an unknown ISA";
#else
  return isa == Isa::Generic ? nullptr : "x86-64";
#endif
}

bool isa_supported(Isa isa) { return isa_missing(isa) == nullptr; }

namespace {

// Linux hands out the AMX tile state on request only (arch_prctl ARCH_REQ_XCOMP_PERM for
// XFEATURE_XTILEDATA); then XCR0 must show the tile config and data states enabled.
bool amx_permitted() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__linux__)
  if (!cpu().amx_tile || !cpu().amx_bf16) return false;
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) != 0) return false;
  unsigned xlo, xhi;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  return (xlo & 0x60000u) == 0x60000u;
#else
  return false;
#endif
}

}  // namespace

bool amx_bf16_ready() {
  static const bool ok = [] {
    const char* off = std::getenv("SKV_NO_AMX");
    return !(off && *off) && amx_permitted();
  }();
  return ok && active_isa() == Isa::AVX512;
}

bool cpu_has_avx512_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  return cpu().avx512bf16 && cpu().avx512f;
#else
  return false;
#endif
}

Isa detected_isa() {
  if (isa_supported(Isa::AVX512)) return Isa::AVX512;
  if (isa_supported(Isa::AVX2)) return Isa::AVX2;
  return Isa::Generic;
}

Isa parse_isa(const char* name) {
  std::string s(name ? name : "");
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "generic") return Isa::Generic;
  if (s == "avx2") return Isa::AVX2;
  if (s == "avx512") return Isa::AVX512;
  fail("unknown CPU ISA '", name ? name : "", "' (expected generic, avx2 or avx512)");
}

const Kernels& kernels() {
  const Kernels* k = g_active.load(std::memory_order_acquire);
  if (k) return *k;
  std::call_once(g_init_once, init_from_env);
  return *g_active.load(std::memory_order_acquire);
}

Isa active_isa() { return kernels().isa; }

QGemvFn qgemv_for(const Kernels& k, DType t) {
  switch (t) {
    case DType::Q8_0:
      return k.gemv_q8_0;
    case DType::Q4_0:
      return k.gemv_q4_0;
    case DType::Q4_1:
      return k.gemv_q4_1;
    case DType::Q5_0:
      return k.gemv_q5_0;
    case DType::Q5_1:
      return k.gemv_q5_1;
    case DType::Q4_K:
      return k.gemv_q4_k;
    case DType::Q5_K:
      return k.gemv_q5_k;
    case DType::Q6_K:
      return k.gemv_q6_k;
    default:
      return nullptr;
  }
}

ToFloatFn to_float_for(const Kernels& k, DType t) {
  switch (t) {
    case DType::F16:
      return k.to_float_f16;
    case DType::BF16:
      return k.to_float_bf16;
    case DType::Q8_0:
      return k.to_float_q8_0;
    case DType::Q4_0:
      return k.to_float_q4_0;
    case DType::Q4_1:
      return k.to_float_q4_1;
    case DType::Q5_0:
      return k.to_float_q5_0;
    case DType::Q5_1:
      return k.to_float_q5_1;
    case DType::Q4_K:
      return k.to_float_q4_k;
    case DType::Q5_K:
      return k.to_float_q5_k;
    case DType::Q6_K:
      return k.to_float_q6_k;
    case DType::FP8:
      return k.to_float_fp8;
    default:
      return nullptr;
  }
}

void set_isa(Isa isa) {
  if (const char* missing = isa_missing(isa))
    fail("CPU ISA ", isa_name(isa), " is not supported here (no ", missing,
         "; best available: ", isa_name(detected_isa()), ")");
  kernels();  // make sure the env initialisation does not run later and override this
  g_active.store(table_for(isa), std::memory_order_release);
}

}  // namespace skv::backend::cpu
