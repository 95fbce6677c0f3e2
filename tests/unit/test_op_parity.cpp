// Op parity, in the spirit of llama.cpp's test-backend-ops: every op of backend/ops.h on random
// inputs of odd sizes, run by every backend variant this machine has (the CPU backend with its
// generic, AVX2 and AVX-512 kernels, and the guarded test device), each against a plain double-precision
// reference written here, with a normalised error bound: NMSE = sum (y - ref)^2 / sum ref^2.
// A new backend (CUDA) joins by adding a variant.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/quant.h"
#include "backend/ops.h"
#include "guarded_device.h"
#include "kernel_test_util.h"

namespace skv {
namespace {

struct Variant {
  std::string name;
  Device device;
  backend::cpu::Isa isa;
};

std::vector<Variant> variants() {
  std::vector<Variant> v;
  for (backend::cpu::Isa isa : backend::cpu::isas())
    v.push_back({std::string("cpu-") + backend::cpu::isa_name(isa), kHost, isa});
  v.push_back({"guarded-device", testing::GuardedDevice::instance().device(), backend::cpu::detected_isa()});
  return v;
}

using Vec = std::vector<double>;

Tensor host_f32(const std::vector<float>& v, Shape s) {
  Tensor t = Tensor::empty(DType::F32, s);
  std::copy(v.begin(), v.end(), t.as<float>());
  return t;
}

std::vector<float> randv(size_t n, std::mt19937& rng, float sd = 1.0f, float mean = 0.0f) {
  std::normal_distribution<float> d(mean, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A weight [rows, cols] in dtype dt made from w, and its exact values after that rounding.
Tensor make_weight(DType dt, const std::vector<float>& w, int64_t rows, int64_t cols, std::vector<float>& exact) {
  Tensor t = Tensor::empty(dt, {rows, cols});
  exact.assign(w.size(), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = w.data() + r * cols;
    float* ex = exact.data() + r * cols;
    uint8_t* dst = static_cast<uint8_t*>(t.data) + r * t.row_bytes();
    switch (dt) {
      case DType::F32:
        std::copy(src, src + cols, reinterpret_cast<float*>(dst)), std::copy(src, src + cols, ex);
        break;
      case DType::F16:
        for (int64_t j = 0; j < cols; ++j)
          reinterpret_cast<uint16_t*>(dst)[j] = backend::cpu::fp32_to_fp16(src[j]),
          ex[j] = backend::cpu::fp16_to_fp32(reinterpret_cast<uint16_t*>(dst)[j]);
        break;
      case DType::BF16:
        for (int64_t j = 0; j < cols; ++j)
          reinterpret_cast<uint16_t*>(dst)[j] = backend::cpu::fp32_to_bf16(src[j]),
          ex[j] = backend::cpu::bf16_to_fp32(reinterpret_cast<uint16_t*>(dst)[j]);
        break;
      case DType::Q8_0:
        backend::cpu::quantize_row_q8_0(src, reinterpret_cast<backend::cpu::BlockQ8_0*>(dst), cols);
        backend::cpu::dequantize_row_q8_0(reinterpret_cast<backend::cpu::BlockQ8_0*>(dst), ex, cols);
        break;
      case DType::Q4_0:
        backend::cpu::quantize_row_q4_0(src, reinterpret_cast<backend::cpu::BlockQ4_0*>(dst), cols);
        backend::cpu::dequantize_row_q4_0(reinterpret_cast<backend::cpu::BlockQ4_0*>(dst), ex, cols);
        break;
      case DType::Q4_1:
        backend::cpu::quantize_row_q4_1(src, reinterpret_cast<backend::cpu::BlockQ4_1*>(dst), cols);
        backend::cpu::dequantize_row_q4_1(reinterpret_cast<backend::cpu::BlockQ4_1*>(dst), ex, cols);
        break;
      case DType::Q5_0:
      case DType::Q5_1:
      case DType::Q4_K:
      case DType::Q5_K:
      case DType::Q6_K:
        backend::cpu::quantize_row(dt, src, dst, cols);
        backend::cpu::dequantize_row(dt, dst, ex, cols);
        break;
      default:
        ADD_FAILURE() << "no weight maker for " << dtype_name(dt);
    }
  }
  return t;
}

double nmse(const Tensor& y, const Vec& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = y.as<float>()[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return den > 0 ? num / den : num;
}

// Runs `op` once per variant with its inputs cloned onto the variant's device, and checks the
// host copy of `out` against the reference.
void check(const std::string& what, const Vec& ref, double bound, const std::vector<Tensor>& inputs,
           const std::function<Tensor(std::vector<Tensor>&)>& op) {
  backend::cpu::IsaRestore restore;
  for (const Variant& v : variants()) {
    backend::cpu::set_isa(v.isa);
    std::vector<Tensor> in;
    for (const Tensor& t : inputs) in.push_back(t.defined() ? backend::clone(t, v.device) : Tensor());
    const Tensor out = backend::to_host(op(in));
    ASSERT_EQ(static_cast<size_t>(out.numel()), ref.size()) << what;
    const double e = nmse(out, ref);
    EXPECT_LE(e, bound) << what << " on " << v.name;
    std::printf("  %-44s %-16s nmse %.2e (bound %.0e)\n", what.c_str(), v.name.c_str(), e, bound);
  }
}

// The variants a CPU cannot run are left out of every test below; this one says which.
TEST(OpParity, Avx512Variant) {
  if (const char* missing = backend::cpu::isa_missing(backend::cpu::Isa::AVX512))
    GTEST_SKIP() << "variant cpu-avx512 not run: this CPU (or build) lacks " << missing;
  bool found = false;
  for (const Variant& v : variants()) found = found || v.name == "cpu-avx512";
  EXPECT_TRUE(found);
}

TEST(OpParity, Linear) {
  std::mt19937 rng(1);
  for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                   DType::Q4_K, DType::Q5_K, DType::Q6_K})
    for (int64_t in : dtype_block_size(dt) == 256 ? std::vector<int64_t>{256, 768} : std::vector<int64_t>{96, 160})
      for (int64_t out : {17, 33})
        for (int64_t n : {1, 3, 17, 70}) {
          std::vector<float> exact;
          const Tensor w = make_weight(dt, randv(out * in, rng), out, in, exact);
          const std::vector<float> x = randv(n * in, rng), b = randv(out, rng, 0.5f);
          const bool bias = n % 2 == 1;
          Vec ref(n * out);
          for (int64_t i = 0; i < n; ++i)
            for (int64_t o = 0; o < out; ++o) {
              double s = bias ? b[o] : 0.0;
              for (int64_t k = 0; k < in; ++k) s += static_cast<double>(x[i * in + k]) * exact[o * in + k];
              ref[i * out + o] = s;
            }
          // Quantised weights multiply 8-bit quantised activations (llama.cpp's scheme).
          const double bound = dtype_is_quantized(dt) ? 2e-4 : 1e-10;
          check(std::string("linear ") + dtype_name(dt) + " n=" + std::to_string(n) + " in=" + std::to_string(in) +
                    " out=" + std::to_string(out),
                ref, bound, {host_f32(x, {n, in}), w, bias ? host_f32(b, {out}) : Tensor()},
                [&](std::vector<Tensor>& t) {
                  Tensor y = Tensor::empty(DType::F32, {n, out}, t[0].device);
                  backend::linear(t[0], t[1], t[2].defined() ? &t[2] : nullptr, y);
                  return y;
                });
        }
}

TEST(OpParity, RmsNormAndElementwise) {
  std::mt19937 rng(2);
  const int64_t n = 5, d = 97;
  const std::vector<float> x = randv(n * d, rng), w = randv(d, rng, 0.2f, 1.0f), u = randv(n * d, rng);
  Vec ref(n * d);
  for (int64_t i = 0; i < n; ++i) {
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(x[i * d + j]) * x[i * d + j];
    const double r = 1.0 / std::sqrt(ss / d + 1e-5);
    for (int64_t j = 0; j < d; ++j) ref[i * d + j] = x[i * d + j] * r * w[j];
  }
  check("rms_norm n=5 d=97", ref, 1e-10, {host_f32(x, {n, d}), host_f32(w, {d})}, [&](std::vector<Tensor>& t) {
    Tensor y = Tensor::empty(DType::F32, {n, d}, t[0].device);
    backend::rms_norm(t[0], t[1], 1e-5f, y);
    return y;
  });
  for (size_t i = 0; i < ref.size(); ++i) ref[i] = static_cast<double>(x[i]) + u[i];
  check("add_inplace n=5 d=97", ref, 1e-12, {host_f32(x, {n, d}), host_f32(u, {n, d})}, [&](std::vector<Tensor>& t) {
    backend::add_inplace(t[0], t[1]);
    return t[0];
  });
  for (size_t i = 0; i < ref.size(); ++i) ref[i] = x[i] / (1.0 + std::exp(-static_cast<double>(x[i]))) * u[i];
  check("silu_mul n=5 d=97", ref, 1e-10, {host_f32(x, {n, d}), host_f32(u, {n, d})}, [&](std::vector<Tensor>& t) {
    Tensor y = Tensor::empty(DType::F32, {n, d}, t[0].device);
    backend::silu_mul(t[0], t[1], y);
    return y;
  });
  Vec ls(n * d), sm(n * d);
  for (int64_t i = 0; i < n; ++i) {
    double m = -INFINITY, s = 0;
    for (int64_t j = 0; j < d; ++j) m = std::max(m, static_cast<double>(x[i * d + j]));
    for (int64_t j = 0; j < d; ++j) s += std::exp(x[i * d + j] - m);
    for (int64_t j = 0; j < d; ++j)
      ls[i * d + j] = x[i * d + j] - m - std::log(s), sm[i * d + j] = std::exp(ls[i * d + j]);
  }
  check("log_softmax_rows n=5 d=97", ls, 1e-10, {host_f32(x, {n, d})}, [&](std::vector<Tensor>& t) {
    backend::log_softmax_rows(t[0]);
    return t[0];
  });
  check("softmax_rows n=5 d=97", sm, 1e-10, {host_f32(x, {n, d})}, [&](std::vector<Tensor>& t) {
    backend::softmax_rows(t[0]);
    return t[0];
  });
  const int64_t w2 = 31, col0 = 40;
  Vec cc(n * w2);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w2; ++j) cc[i * w2 + j] = x[i * d + col0 + j];
  check("copy_cols n=5 [40, 71) of 97", cc, 0.0, {host_f32(x, {n, d})}, [&](std::vector<Tensor>& t) {
    Tensor y = Tensor::empty(DType::F32, {n, w2}, t[0].device);
    backend::copy_cols(t[0], col0, y);
    return y;
  });
}

TEST(OpParity, Embedding) {
  std::mt19937 rng(3);
  const int64_t vocab = 50, d_plain = 64;
  const std::vector<int32_t> ids = {0, 49, 7, 7, 23};
  for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                   DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    std::vector<float> exact;
    const int64_t d = std::max<int64_t>(d_plain, dtype_block_size(dt));
    const Tensor table = make_weight(dt, randv(vocab * d, rng), vocab, d, exact);
    Vec ref;
    for (int32_t id : ids) ref.insert(ref.end(), exact.begin() + id * d, exact.begin() + (id + 1) * d);
    Tensor idt = Tensor::empty(DType::I32, {static_cast<int64_t>(ids.size()), 1});
    std::copy(ids.begin(), ids.end(), idt.as<int32_t>());
    check(std::string("embedding ") + dtype_name(dt), ref, 1e-12, {table, idt}, [&](std::vector<Tensor>& t) {
      Tensor y = Tensor::empty(DType::F32, {static_cast<int64_t>(ids.size()), d}, t[0].device);
      backend::embedding(t[0], t[1], y);
      return y;
    });
  }
}

TEST(OpParity, Rope) {
  std::mt19937 rng(4);
  for (bool interleaved : {false, true})
    for (int64_t D : {6, 64}) {
      const int64_t heads = 3, n = 7;
      backend::Rope rp;
      rp.head_dim = D;
      rp.interleaved = interleaved;
      rp.attention_factor = 1.25f;
      for (int64_t j = 0; j < D / 2; ++j) rp.inv_freq.push_back(static_cast<float>(std::pow(10000.0, -2.0 * j / D)));
      const std::vector<int32_t> pos = {0, 1, 5, 99, 1000, 4095, 77};
      const std::vector<float> x = randv(n * heads * D, rng);
      Vec ref(x.begin(), x.end());
      for (int64_t i = 0; i < n; ++i)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t j = 0; j < D / 2; ++j) {
            const float theta = static_cast<float>(pos[i]) * rp.inv_freq[j];  // HF: the angle in fp32
            const double c = std::cos(static_cast<double>(theta)) * rp.attention_factor;
            const double s = std::sin(static_cast<double>(theta)) * rp.attention_factor;
            const int64_t a = i * heads * D + h * D + (interleaved ? 2 * j : j);
            const int64_t b = a + (interleaved ? 1 : D / 2);
            ref[a] = x[a] * c - x[b] * s;
            ref[b] = x[b] * c + x[a] * s;
          }
      Tensor pt = Tensor::empty(DType::I32, {n, 1});
      std::copy(pos.begin(), pos.end(), pt.as<int32_t>());
      check(std::string("rope D=") + std::to_string(D) + (interleaved ? " interleaved" : " half"), ref, 1e-10,
            {host_f32(x, {n, heads * D}), pt}, [&](std::vector<Tensor>& t) {
              backend::rope(t[0], heads, t[1], rp);
              return t[0];
            });
    }
}

TEST(OpParity, Attention) {
  std::mt19937 rng(5);
  struct Geo {
    int64_t H, KV, D, n_past, n, window;  // window 0: none
  };
  // Prefill, chunked prefill, short decode, a long decode (the split-keys path), and sliding
  // windows shorter than the prefill and than the decode history.
  for (const Geo g : {Geo{6, 2, 40, 0, 9, 0}, Geo{6, 3, 40, 7, 5, 0}, Geo{4, 4, 24, 11, 1, 0}, Geo{8, 2, 64, 700, 1, 0},
                      Geo{6, 2, 40, 3, 12, 5}, Geo{8, 2, 64, 700, 1, 33}}) {
    const int64_t cap = g.n_past + g.n + 3, qd = g.H * g.D, kd = g.KV * g.D;
    const float scale = 1.0f / std::sqrt(static_cast<float>(g.D));
    const std::vector<float> q = randv(g.n * qd, rng), k = randv(cap * kd, rng), v = randv(cap * kd, rng);
    Vec ref(g.n * qd, 0.0);
    for (int64_t i = 0; i < g.n; ++i)
      for (int64_t h = 0; h < g.H; ++h) {
        const int64_t kvh = h / (g.H / g.KV), T = g.n_past + i + 1;
        const int64_t t0 = g.window > 0 ? std::max<int64_t>(0, T - g.window) : 0;  // i - W < j <= i
        std::vector<double> s(T);
        double m = -INFINITY, z = 0;
        for (int64_t t = t0; t < T; ++t) {
          double dot = 0;
          for (int64_t e = 0; e < g.D; ++e)
            dot += static_cast<double>(q[i * qd + h * g.D + e]) * k[t * kd + kvh * g.D + e];
          s[t] = dot * scale;
          m = std::max(m, s[t]);
        }
        for (int64_t t = t0; t < T; ++t) z += s[t] = std::exp(s[t] - m);
        for (int64_t t = t0; t < T; ++t)
          for (int64_t e = 0; e < g.D; ++e) ref[i * qd + h * g.D + e] += s[t] / z * v[t * kd + kvh * g.D + e];
      }
    check("attention H=" + std::to_string(g.H) + " KV=" + std::to_string(g.KV) + " D=" + std::to_string(g.D) +
              " past=" + std::to_string(g.n_past) + " n=" + std::to_string(g.n) + " window=" + std::to_string(g.window),
          ref, 1e-9, {host_f32(q, {g.n, qd}), host_f32(k, {cap, kd}), host_f32(v, {cap, kd})},
          [&](std::vector<Tensor>& t) {
            Tensor out = Tensor::empty(DType::F32, {g.n, qd}, t[0].device);
            backend::attention(t[0], t[1], t[2], g.n_past, g.H, g.KV, scale, out, g.window);
            return out;
          });
  }
}

TEST(OpParity, CopyAcrossDevices) {
  std::mt19937 rng(6);
  const std::vector<float> x = randv(37, rng);
  const Tensor h = host_f32(x, {37});
  const Device d = testing::GuardedDevice::instance().device();
  Tensor on_dev = backend::clone(h, d), dev2 = Tensor::empty(DType::F32, {37}, d);
  backend::copy(on_dev, dev2);  // device to device
  const Tensor back = backend::to_host(dev2);
  for (int i = 0; i < 37; ++i) EXPECT_EQ(back.as<float>()[i], x[i]);
  backend::zero(dev2);
  EXPECT_EQ(backend::to_host(dev2).as<float>()[36], 0.0f);
}

}  // namespace
}  // namespace skv
