#include "model/rope_table.h"

#include <cmath>

#include "core/error.h"

namespace skv::model {

backend::Rope make_rope(const io::ModelConfig& cfg, bool interleaved) {
  backend::Rope r;
  r.head_dim = cfg.head_dim;
  r.interleaved = interleaved;
  const int64_t half = cfg.head_dim / 2;
  r.inv_freq.resize(half);
  const io::RopeScaling& s = cfg.rope_scaling;
  for (int64_t i = 0; i < half; ++i) {
    // transformers computes base ** (2i / dim) in float32; double then rounding to float
    // differs by at most one ulp, far below the 1e-3 log-prob tolerance.
    double f = 1.0 / std::pow(cfg.rope_theta, static_cast<double>(2 * i) / static_cast<double>(cfg.head_dim));
    if (s.type == "linear") {
      f /= s.factor;
    } else if (s.type == "llama3") {
      const double old_len = static_cast<double>(s.original_max_position_embeddings);
      const double low_wavelen = old_len / s.low_freq_factor;
      const double high_wavelen = old_len / s.high_freq_factor;
      const double wavelen = 2.0 * M_PI / f;
      if (wavelen > low_wavelen) {
        f /= s.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    } else if (s.type != "none") {
      fail_internal("unsupported rope scaling type ", quote_bounded(s.type));
    }
    r.inv_freq[i] = static_cast<float>(f);
  }
  return r;
}

}  // namespace skv::model
