#include "bench/arrivals.h"

#include <cmath>
#include <random>

#include "core/error.h"

namespace skv::bench {

std::vector<double> arrival_times(int64_t n, double rate, double burstiness, uint64_t seed) {
  if (!(rate > 0)) fail("--request-rate must be > 0 or inf, got ", rate);
  if (!(burstiness > 0)) fail("--burstiness must be > 0, got ", burstiness);
  std::vector<double> t(static_cast<size_t>(std::max<int64_t>(n, 0)), 0.0);
  if (std::isinf(rate) || t.empty()) return t;
  std::mt19937_64 rng(seed);
  std::gamma_distribution<double> gap(std::isinf(burstiness) ? 1.0 : burstiness,
                                      std::isinf(burstiness) ? 1.0 : 1.0 / (rate * burstiness));
  double sum = 0;
  for (double& x : t) {
    sum += std::isinf(burstiness) ? 1.0 / rate : gap(rng);
    x = sum;
  }
  const double scale = (static_cast<double>(n) / rate) / t.back();
  for (double& x : t) x *= scale;
  return t;
}

}  // namespace skv::bench
