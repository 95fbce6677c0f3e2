#pragma once
// The serving benchmark's prompts: vLLM's random data set (vllm/benchmarks/datasets/random.py)
// built with our tokenizer, or prompts from a JSONL file.
#include <cstdint>
#include <string>
#include <vector>

namespace skv::tokenizer {
class Tokenizer;
}

namespace skv::bench {

struct SampleRequest {
  std::string prompt;
  int64_t prompt_len = 0;  // tokens under the benchmark's tokenizer; 0 when there is none
  int64_t output_len = 0;  // max_tokens
};

struct RandomOptions {
  int64_t num_prompts = 1000;
  int64_t input_len = 1024;
  int64_t output_len = 128;
  double range_ratio = 0.0;  // lengths uniform in [floor(len * (1 - r)), ceil(len * (1 + r))]
  int64_t prefix_len = 0;    // random tokens shared by every prompt, before its own
  uint64_t seed = 0;
};

// vLLM's recipe: per prompt, an input length (minus the BOS the tokenizer adds), an output length
// and an offset are drawn; the prompt's own tokens are the consecutive non-special ids from the
// offset (plus the prompt's index), after the shared prefix; the ids are decoded to text, and the
// text is re-encoded and adjusted (truncated, or topped up with random ids) until it encodes to
// exactly prefix + input length tokens without special tokens. Throws naming a bad option.
std::vector<SampleRequest> random_requests(const tokenizer::Tokenizer& tok, const RandomOptions& opts);

// {"prompt": "...", "output_len": N (optional, else default_output_len)} per line; the first
// num_prompts lines, cycled when the file has fewer. prompt_len: the prompt's tokens (with the
// BOS the tokenizer adds, as the server will see it) when tok is given, else 0. Throws naming the
// file and line on unreadable files and malformed lines.
std::vector<SampleRequest> jsonl_requests(const std::string& path, const tokenizer::Tokenizer* tok, int64_t num_prompts,
                                          int64_t default_output_len);

// bytes -> valid UTF-8, each invalid or truncated sequence replaced by U+FFFD, as Hugging Face's
// decode does: a prompt must survive being sent as JSON unchanged for its length to hold.
std::string lossy_utf8(const std::string& bytes);

}  // namespace skv::bench
