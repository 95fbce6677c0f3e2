#include "tokenizer/normalizer.h"

#include <vector>

#include "core/error.h"
#include "tokenizer/regex.h"

namespace skv::tokenizer {
namespace {

class PrependNorm : public Normalizer {
 public:
  explicit PrependNorm(std::string p) : p_(std::move(p)) {}
  void apply(std::string& s) const override {
    if (!s.empty()) s.insert(0, p_);  // HF leaves empty strings alone
  }

 private:
  std::string p_;
};

class ReplaceNorm : public Normalizer {
 public:
  ReplaceNorm(std::unique_ptr<Regex> re, std::string lit, std::string content)
      : re_(std::move(re)), lit_(std::move(lit)), content_(std::move(content)) {}
  void apply(std::string& s) const override {
    std::vector<std::pair<size_t, size_t>> m;
    if (re_)
      m = re_->find_all(s);
    else
      for (size_t pos = 0; !lit_.empty() && (pos = s.find(lit_, pos)) != std::string::npos; pos += lit_.size())
        m.emplace_back(pos, pos + lit_.size());
    if (m.empty()) return;
    std::string out;
    size_t prev = 0;
    for (auto [b, e] : m) out.append(s, prev, b - prev).append(content_), prev = e;
    out.append(s, prev);
    s.swap(out);
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string lit_, content_;
};

class SequenceNorm : public Normalizer {
 public:
  explicit SequenceNorm(std::vector<std::unique_ptr<Normalizer>> n) : n_(std::move(n)) {}
  void apply(std::string& s) const override {
    for (const auto& n : n_) n->apply(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> n_;
};

}  // namespace

std::unique_ptr<Normalizer> normalizer_from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("type")) fail("normalizer must be an object with a \"type\"");
  const std::string type = j.at("type").get<std::string>();
  if (type == "Prepend") return std::make_unique<PrependNorm>(j.at("prepend").get<std::string>());
  if (type == "Replace") {
    const auto& pat = j.at("pattern");
    std::string content = j.at("content").get<std::string>();
    if (pat.contains("Regex"))
      return std::make_unique<ReplaceNorm>(std::make_unique<Regex>(pat["Regex"].get<std::string>()), "", content);
    return std::make_unique<ReplaceNorm>(nullptr, pat.at("String").get<std::string>(), content);
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> n;
    for (const auto& s : j.at("normalizers")) n.push_back(normalizer_from_json(s));
    return std::make_unique<SequenceNorm>(std::move(n));
  }
  fail("unsupported normalizer type ", quote_bounded(type), " (swiftkv supports null, Sequence, Prepend, Replace; ",
       "Unicode normalization such as NFC is not implemented)");
}

}  // namespace skv::tokenizer
