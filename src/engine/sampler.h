#pragma once
// Token sampling with the usual knobs (vLLM semantics): penalties, then temperature,
// then top-k / top-p / min-p filtering, then a draw from a seeded generator.
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace skv::engine {

struct SamplingParams {
  float temperature = 1.0f;  // 0 => greedy argmax
  int top_k = 0;             // 0 or negative => disabled
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;  // over prompt + generated tokens (HF / vLLM)
  float presence_penalty = 0.0f;    // over generated tokens only (OpenAI)
  float frequency_penalty = 0.0f;   // over generated tokens only (OpenAI)
  uint64_t seed = 0;
  bool has_seed = false;  // without a seed, draws use a random seed
  std::map<int32_t, float> logit_bias;

  void validate() const;  // throws skv::Error naming the bad parameter
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // Validates params (throws skv::Error). Without has_seed the generator is seeded randomly.
  // logits: vocab entries, modified in place (logit_bias and penalties are applied to them;
  // temperature and filtering are not). prompt / generated: token ids so far.
  int32_t sample(float* logits, int64_t vocab, const std::vector<int32_t>& prompt,
                 const std::vector<int32_t>& generated);

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  // Scratch reused across calls so a 128k-vocab step does not allocate.
  std::vector<float> probs_;
  std::vector<uint64_t> keys_;  // (weight bits << 32 | ~id): one integer compare orders them
  std::vector<int32_t> toks_;
};

}  // namespace skv::engine
