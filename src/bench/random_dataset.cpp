#include "bench/random_dataset.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/error.h"
#include "io/read_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace skv::bench {

std::string lossy_utf8(const std::string& bytes) {
  namespace u = tokenizer::utf8;
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0, len = 0; i < bytes.size(); i += len) {
    const std::string_view rest(bytes.data() + i, bytes.size() - i);
    if (u::classify(rest, len) == u::Status::Complete)
      out.append(rest.substr(0, len));
    else
      out.append(u::kReplacement);
  }
  return out;
}

namespace {

// vLLM's rounds of cutting or topping up the ids, after which it warns about the mismatch.
constexpr int kIdRounds = 10;

void drop_last_char(std::string& s) {
  while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) s.pop_back();
  if (!s.empty()) s.pop_back();
}

}  // namespace

std::vector<SampleRequest> random_requests(const tokenizer::Tokenizer& tok, const RandomOptions& o) {
  if (o.num_prompts < 1) fail("--num-prompts must be >= 1, got ", o.num_prompts);
  if (!(o.range_ratio >= 0 && o.range_ratio < 1)) fail("--random-range-ratio must be in [0, 1), got ", o.range_ratio);
  if (o.prefix_len < 0) fail("--random-prefix-len must be >= 0, got ", o.prefix_len);
  if (o.input_len < 0) fail("--random-input-len must be >= 0, got ", o.input_len);
  if (o.output_len < 1) fail("--random-output-len must be >= 1, got ", o.output_len);
  // The server adds the BOS itself, so the text carries input_len minus that many tokens.
  const int64_t real_input = std::max<int64_t>(0, o.input_len - (tok.adds_bos() ? 1 : 0));
  const int64_t in_lo = static_cast<int64_t>(std::floor(real_input * (1 - o.range_ratio)));
  const int64_t in_hi = static_cast<int64_t>(std::ceil(real_input * (1 + o.range_ratio)));
  const int64_t out_lo = std::max<int64_t>(1, static_cast<int64_t>(std::floor(o.output_len * (1 - o.range_ratio))));
  const int64_t out_hi = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(o.output_len * (1 + o.range_ratio))));
  if (o.prefix_len + in_lo < 1)
    fail("--random-input-len ", o.input_len, " with --random-range-ratio ", o.range_ratio, " and --random-prefix-len ",
         o.prefix_len, " allows prompts of no tokens; raise the input or prefix length");

  std::vector<int32_t> allowed;
  for (int64_t id = 0; id < tok.vocab_size(); ++id)
    if (!tok.is_special(static_cast<int32_t>(id))) allowed.push_back(static_cast<int32_t>(id));
  if (allowed.empty()) fail("the tokenizer has no ordinary (non-special) tokens to build prompts from");

  std::mt19937_64 rng(o.seed);
  auto draw = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const int64_t n_allowed = static_cast<int64_t>(allowed.size());
  std::vector<int32_t> prefix;
  for (int64_t i = 0; i < o.prefix_len; ++i) prefix.push_back(allowed[draw(0, n_allowed - 1)]);
  std::vector<int64_t> in_lens(o.num_prompts), out_lens(o.num_prompts), offsets(o.num_prompts);
  for (auto& x : in_lens) x = draw(in_lo, in_hi);
  for (auto& x : out_lens) x = draw(out_lo, out_hi);
  for (auto& x : offsets) x = draw(0, tok.vocab_size() - 1);

  std::vector<SampleRequest> out;
  int64_t mismatch = 0, missed = 0;
  for (int64_t i = 0; i < o.num_prompts; ++i) {
    std::vector<int32_t> ids = prefix;
    for (int64_t k = 0; k < in_lens[i]; ++k) ids.push_back(allowed[(offsets[i] + i + k) % n_allowed]);
    const size_t target = static_cast<size_t>(o.prefix_len + in_lens[i]);
    // Decoded ids seldom re-encode to the same count (a merge across a token boundary), so the
    // text is re-encoded, cut or topped up, and decoded again until the count holds (vLLM).
    std::string text;
    for (int round = 0;; ++round) {
      text = lossy_utf8(tok.decode(ids, false));
      ids = tok.encode(text, false, true);
      if (ids.size() == target || round == kIdRounds) break;
      if (ids.size() > target) {
        ids.resize(target);
      } else {
        while (ids.size() < target) ids.push_back(allowed[draw(0, n_allowed - 1)]);
      }
    }
    // Where vLLM stops with a mismatch, go on character by character: cutting ids can split a
    // character whose replacement (U+FFFD) encodes to several tokens again, so the id rounds can
    // cycle; dropping whole characters from the end, or appending a token's text, does not.
    for (size_t step = 0; ids.size() != target && step < 4 * target + 64; ++step) {
      if (ids.size() > target)
        drop_last_char(text);
      else
        text += lossy_utf8(tok.decode({allowed[draw(0, n_allowed - 1)]}, false));
      ids = tok.encode(text, false, true);
    }
    if (ids.size() != target) {
      ++missed;
      mismatch += static_cast<int64_t>(ids.size()) - static_cast<int64_t>(target);
    }
    out.push_back({text, static_cast<int64_t>(ids.size()), out_lens[i]});
  }
  if (missed)
    std::fprintf(
        stderr,
        "bench serve: note: %lld of %lld prompts encode to other than their drawn length (%+lld tokens in all)\n",
        static_cast<long long>(missed), static_cast<long long>(o.num_prompts), static_cast<long long>(mismatch));
  return out;
}

std::vector<SampleRequest> jsonl_requests(const std::string& path, const tokenizer::Tokenizer* tok, int64_t num_prompts,
                                          int64_t default_output_len) {
  if (num_prompts < 1) fail("--num-prompts must be >= 1, got ", num_prompts);
  if (default_output_len < 1) fail("--random-output-len must be >= 1, got ", default_output_len);
  const std::string text = io::read_file(path, "--dataset-path file");
  std::istringstream in(text);
  std::string line;
  std::vector<SampleRequest> lines;
  for (int64_t n = 1; std::getline(in, line) && static_cast<int64_t>(lines.size()) < num_prompts; ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(path, ":", n, ": invalid JSON: ", bound_message(e.what(), 300));
    }
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
      fail(path, ":", n, ": expected {\"prompt\": \"...\", \"output_len\": N}");
    SampleRequest r;
    r.prompt = j["prompt"].get<std::string>();
    r.output_len = default_output_len;
    if (j.contains("output_len")) {
      if (!j["output_len"].is_number_integer() || j["output_len"].get<int64_t>() < 1)
        fail(path, ":", n, ": output_len must be a positive integer");
      r.output_len = j["output_len"].get<int64_t>();
    }
    if (tok) r.prompt_len = static_cast<int64_t>(tok->encode(r.prompt, true, true).size());
    lines.push_back(std::move(r));
  }
  if (lines.empty()) fail(path, ": no prompts (expected one {\"prompt\": \"...\"} object per line)");
  std::vector<SampleRequest> out;
  for (int64_t i = 0; i < num_prompts; ++i) out.push_back(lines[i % lines.size()]);
  return out;
}

}  // namespace skv::bench
