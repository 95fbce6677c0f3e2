// Runtime ISA selection: the best table the CPU supports, capped by SKV_CPU_ISA.
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <string>

#include "backend/cpu/kernels.h"
#include "core/error.h"

namespace skv::backend::cpu {

namespace {

std::atomic<const Kernels*> g_active{nullptr};
std::once_flag g_init_once;

const Kernels* table_for(Isa isa) {
  if (isa == Isa::Generic) return generic_kernels();
  const Kernels* t = avx2_kernels();  // AVX-512 has no kernels of its own: AVX2 table
  return t ? t : generic_kernels();
}

void init_from_env() {
  Isa isa = detected_isa();
  if (const char* env = std::getenv("SKV_CPU_ISA"); env && *env) {
    const Isa want = parse_isa(env);
    if (!isa_supported(want))
      fail("SKV_CPU_ISA=", env, ": this CPU does not support ", isa_name(want),
           " (best available: ", isa_name(detected_isa()), ")");
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

bool isa_supported(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Generic:
      return true;
    case Isa::AVX2:
      return avx2_kernels() != nullptr && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case Isa::AVX512:
      return isa_supported(Isa::AVX2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  }
  return false;
#else
  return isa == Isa::Generic;
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

void set_isa(Isa isa) {
  if (!isa_supported(isa))
    fail("CPU ISA ", isa_name(isa), " is not supported here (best available: ", isa_name(detected_isa()), ")");
  kernels();  // make sure the env initialisation does not run later and override this
  g_active.store(table_for(isa), std::memory_order_release);
}

}  // namespace skv::backend::cpu
