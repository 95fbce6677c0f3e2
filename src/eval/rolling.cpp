#include "eval/rolling.h"

#include <algorithm>

#include "core/error.h"

namespace skv::eval {
namespace {

std::vector<int32_t> slice(const std::vector<int32_t>& v, int64_t begin, int64_t end) {
  begin = std::clamp<int64_t>(begin, 0, v.size());
  end = std::clamp<int64_t>(end, begin, v.size());
  return std::vector<int32_t>(v.begin() + begin, v.begin() + end);
}

// make_disjoint_window: the input's last len(pred) - 1 tokens are predicted anyway.
TokenWindow disjoint(std::vector<int32_t> input, std::vector<int32_t> pred) {
  input.resize(input.size() - pred.size() + 1);
  return {std::move(input), std::move(pred)};
}

}  // namespace

std::vector<TokenWindow> rolling_windows(const std::vector<int32_t>& tokens, int32_t prefix_token, int64_t max_seq_len,
                                         int64_t context_len) {
  if (context_len < 1 || context_len > max_seq_len)
    fail_internal("rolling windows need 1 <= context_len <= max_seq_len, got ", context_len, " and ", max_seq_len);
  std::vector<TokenWindow> out;
  const int64_t n = tokens.size();
  if (n == 0) return out;
  const int64_t pred_len = max_seq_len - context_len + 1;
  const int64_t first = std::min<int64_t>(max_seq_len, n);
  std::vector<int32_t> input = {prefix_token};
  std::vector<int32_t> head = slice(tokens, 0, first - 1);
  input.insert(input.end(), head.begin(), head.end());
  out.push_back(disjoint(std::move(input), slice(tokens, 0, first)));
  int64_t predicted = first;
  while (predicted < n) {
    const int64_t window_pred = std::min(n - predicted, pred_len);
    const int64_t end = predicted + window_pred;
    // Later windows exist only when n > max_seq_len, so end > max_seq_len and the input slice
    // never starts before 0 (where Python's negative index would wrap).
    out.push_back(disjoint(slice(tokens, end - max_seq_len - 1, end - 1), slice(tokens, end - window_pred, end)));
    predicted += window_pred;
  }
  return out;
}

}  // namespace skv::eval
