#pragma once
// When the serving benchmark sends each request: vLLM's schedule (vllm/benchmarks/serve.py,
// get_request) without its ramp-up modes.
#include <cstdint>
#include <vector>

namespace skv::bench {

// Send times of n requests, in seconds from the start. rate = inf: all at 0. Otherwise the gaps
// are Gamma(shape = burstiness, scale = 1 / (rate * burstiness)) draws, mean 1 / rate (burstiness
// 1 is a Poisson process; below 1 burstier, above 1 more even; inf gives equal gaps), and the
// cumulative times are rescaled so the last is exactly n / rate, as vLLM does to keep the
// offered load independent of the seed. The first request waits its own gap, as in vLLM.
// Throws naming the flag on rate <= 0 or burstiness <= 0.
std::vector<double> arrival_times(int64_t n, double rate, double burstiness, uint64_t seed);

}  // namespace skv::bench
