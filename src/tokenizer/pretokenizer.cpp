#include "tokenizer/pretokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/regex.h"

namespace skv::tokenizer {
namespace {

using Matches = std::vector<std::pair<size_t, size_t>>;

// Port of HF NormalizedString::split: turn the matches into spans covering `s`, then merge or
// drop the delimiter spans according to `behavior`.
void split_by_matches(const std::string& s, const Matches& matches, SplitBehavior behavior, bool invert, Pieces& out) {
  struct Span {
    size_t b, e;
    bool match;
  };
  std::vector<Span> spans;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (prev != b) spans.push_back({prev, b, invert});
    spans.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != s.size()) spans.push_back({prev, s.size(), invert});

  std::vector<Span> kept;  // `match` now means "remove"
  bool prev_match = false;
  switch (behavior) {
    case SplitBehavior::Removed:
      kept = spans;
      break;
    case SplitBehavior::Isolated:
      for (auto sp : spans) kept.push_back({sp.b, sp.e, false});
      break;
    case SplitBehavior::Contiguous:
      for (auto sp : spans) {
        if (sp.match == prev_match && !kept.empty())
          kept.back().e = sp.e;
        else
          kept.push_back({sp.b, sp.e, false});
        prev_match = sp.match;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (auto sp : spans) {
        if (sp.match && !prev_match && !kept.empty())
          kept.back().e = sp.e;
        else
          kept.push_back({sp.b, sp.e, false});
        prev_match = sp.match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->match && !prev_match && !kept.empty())
          kept.back().b = it->b;
        else
          kept.push_back({it->b, it->e, false});
        prev_match = it->match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  for (auto sp : kept)
    if (!sp.match && sp.e > sp.b) out.emplace_back(s, sp.b, sp.e - sp.b);
}

class SplitPre : public PreTokenizer {
 public:
  SplitPre(std::string regex, SplitBehavior behavior, bool invert)
      : re_(std::move(regex)), behavior_(behavior), invert_(invert) {}
  void apply(Pieces& pieces) const override {
    Pieces out;
    out.reserve(pieces.size());
    for (const auto& p : pieces) split_by_matches(p, re_.find_all(p), behavior_, invert_, out);
    pieces.swap(out);
  }

 private:
  Regex re_;
  SplitBehavior behavior_;
  bool invert_;
};

// Split with a literal String pattern (HF escapes it into a regex; a plain search is equivalent).
class LiteralSplitPre : public PreTokenizer {
 public:
  LiteralSplitPre(std::string lit, SplitBehavior behavior, bool invert)
      : lit_(std::move(lit)), behavior_(behavior), invert_(invert) {}
  void apply(Pieces& pieces) const override {
    Pieces out;
    for (const auto& p : pieces) {
      Matches m;
      for (size_t pos = 0; !lit_.empty() && (pos = p.find(lit_, pos)) != std::string::npos; pos += lit_.size())
        m.emplace_back(pos, pos + lit_.size());
      split_by_matches(p, m, behavior_, invert_, out);
    }
    pieces.swap(out);
  }

 private:
  std::string lit_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPre : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) re_ = std::make_unique<Regex>(kGpt2Regex);
  }
  void apply(Pieces& pieces) const override {
    Pieces split;
    split.reserve(pieces.size());
    for (auto& p : pieces) {
      if (add_prefix_space_ && (p.empty() || p[0] != ' ')) p.insert(p.begin(), ' ');
      if (re_)
        split_by_matches(p, re_->find_all(p), SplitBehavior::Isolated, false, split);
      else if (!p.empty())
        split.push_back(std::move(p));
    }
    pieces.clear();
    for (const auto& p : split) pieces.push_back(byte_level::encode(p));
  }
  bool maps_bytes() const override { return true; }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> re_;
};

class SequencePre : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> stages) : stages_(std::move(stages)) {}
  void apply(Pieces& pieces) const override {
    for (const auto& s : stages_) s->apply(pieces);
  }
  bool maps_bytes() const override {
    for (const auto& s : stages_)
      if (s->maps_bytes()) return true;
    return false;
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> stages_;
};

SplitBehavior behavior_from_name(const std::string& name) {
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  fail("unknown Split behavior ", quote_bounded(name));
}

}  // namespace

std::unique_ptr<PreTokenizer> make_byte_level_pre(bool add_prefix_space, bool use_regex) {
  return std::make_unique<ByteLevelPre>(add_prefix_space, use_regex);
}
std::unique_ptr<PreTokenizer> make_split_pre(const std::string& regex, SplitBehavior behavior, bool invert) {
  return std::make_unique<SplitPre>(regex, behavior, invert);
}
std::unique_ptr<PreTokenizer> make_digits_pre(bool individual_digits) {
  // HF matches char::is_numeric (categories Nd, Nl, No) one character at a time.
  return std::make_unique<SplitPre>(R"(\p{N})", individual_digits ? SplitBehavior::Isolated : SplitBehavior::Contiguous,
                                    false);
}
std::unique_ptr<PreTokenizer> make_sequence_pre(std::vector<std::unique_ptr<PreTokenizer>> stages) {
  return std::make_unique<SequencePre>(std::move(stages));
}

std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("type")) fail("pre_tokenizer must be an object with a \"type\"");
  const std::string type = j.at("type").get<std::string>();
  if (type == "ByteLevel") return make_byte_level_pre(j.value("add_prefix_space", true), j.value("use_regex", true));
  if (type == "Digits") return make_digits_pre(j.value("individual_digits", false));
  if (type == "Split") {
    const auto& pat = j.at("pattern");
    const auto behavior = behavior_from_name(j.at("behavior").get<std::string>());
    const bool invert = j.value("invert", false);
    if (pat.contains("Regex")) return make_split_pre(pat["Regex"].get<std::string>(), behavior, invert);
    if (pat.contains("String"))
      return std::make_unique<LiteralSplitPre>(pat["String"].get<std::string>(), behavior, invert);
    fail("Split pre_tokenizer pattern must be {\"Regex\": ...} or {\"String\": ...}");
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> stages;
    for (const auto& s : j.at("pretokenizers")) stages.push_back(pre_tokenizer_from_json(s));
    return make_sequence_pre(std::move(stages));
  }
  fail("unsupported pre_tokenizer type ", quote_bounded(type), " (supported: ByteLevel, Split, Digits, Sequence)");
}

}  // namespace skv::tokenizer
