#pragma once
// Rolling log-likelihood windows over a long token list, with lm-eval's semantics
// (lm_eval/utils.py get_rolling_token_windows + make_disjoint_window), so a document's
// perplexity is summed over the same (context, prediction) pairs lm-eval scores.
#include <cstdint>
#include <vector>

namespace skv::eval {

struct TokenWindow {
  std::vector<int32_t> context;     // conditioning tokens, never scored
  std::vector<int32_t> prediction;  // tokens whose log-probabilities are summed
};

// Every token of `tokens` is predicted exactly once. The first window is prefix_token followed
// by up to max_seq_len - 1 tokens; later windows predict up to max_seq_len - context_len + 1
// tokens each, conditioned on the max_seq_len tokens before their end (context_len >= 1).
// The windows are already disjoint: context and prediction do not overlap.
std::vector<TokenWindow> rolling_windows(const std::vector<int32_t>& tokens, int32_t prefix_token, int64_t max_seq_len,
                                         int64_t context_len = 1);

}  // namespace skv::eval
