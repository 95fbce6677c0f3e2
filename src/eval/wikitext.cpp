#include "eval/wikitext.h"

#include <utility>

#include "eval/pystr.h"
#include "tokenizer/regex.h"

namespace skv::eval {
namespace {

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

// re.sub(open + r"\s*([^" + close + r"]*?)\s*" + close, open + r"\1" + close, s): each match runs
// from an opening character to the nearest closing one, and the group is what lies between
// with its surrounding whitespace removed, so the replacement is that text, stripped.
std::string tighten(const std::string& s, const tokenizer::Regex& re) {
  std::string out;
  size_t pos = 0;
  for (auto [b, e] : re.find_all(s)) {
    out.append(s, pos, b - pos);
    out += s[b];
    out += py_strip(std::string_view(s).substr(b + 1, e - b - 2));
    out += s[e - 1];
    pos = e;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

}  // namespace

std::vector<std::string> wikitext_documents(std::string_view raw) {
  std::vector<std::string> docs;
  std::vector<std::string_view> lines;
  for (size_t pos = 0;;) {
    const size_t nl = raw.find('\n', pos);
    lines.push_back(raw.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  std::vector<std::string_view> page;
  auto joined = [&] {
    std::string s;
    for (size_t i = 0; i < page.size(); ++i) {
      if (i) s += '\n';
      s += page[i];
    }
    return s;
  };
  for (std::string_view line : lines) {
    const std::string r = py_strip(replace_all(replace_all(std::string(line), "= = =", "==="), "= =", "=="));
    const bool heading = r.size() >= 2 && r.compare(0, 2, "= ") == 0 && r.size() >= 2 && r.substr(r.size() - 2) == " =";
    if (heading) {
      std::string p = joined();
      if (!py_strip(p).empty()) docs.push_back(std::move(p));
      page.clear();
    }
    page.push_back(line);
  }
  docs.push_back(joined());
  return docs;
}

std::string wikitext_detokenize(const std::string& page) {
  static const tokenizer::Regex kParens(R"(\(\s*[^\)]*?\s*\))");
  static const tokenizer::Regex kBrackets(R"(\[\s*[^\]]*?\s*\])");
  static const tokenizer::Regex kBraces(R"(\{\s*[^}]*?\s*\})");
  static const tokenizer::Regex kDoubleQuotes(R"("\s*[^"]*?\s*")");
  static const tokenizer::Regex kSingleQuotes(R"('\s*[^']*?\s*')");
  std::string s = page;
  // contractions
  s = replace_all(s, "s '", "s'");
  // lm-eval's re.sub(r"/' [0-9]/", r"/'[0-9]/", ...) matches a literal "/' <digit>/" and writes
  // the literal text "/'[0-9]/"; kept for fidelity although wikitext never contains it.
  for (char d = '0'; d <= '9'; ++d) s = replace_all(s, std::string("/' ") + d + "/", "/'[0-9]/");
  // number separators
  s = replace_all(s, " @-@ ", "-");
  s = replace_all(s, " @,@ ", ",");
  s = replace_all(s, " @.@ ", ".");
  // punctuation
  s = replace_all(s, " : ", ": ");
  s = replace_all(s, " ; ", "; ");
  s = replace_all(s, " . ", ". ");
  s = replace_all(s, " ! ", "! ");
  s = replace_all(s, " ? ", "? ");
  s = replace_all(s, " , ", ", ");
  // double brackets
  s = tighten(s, kParens);
  s = tighten(s, kBrackets);
  s = tighten(s, kBraces);
  s = tighten(s, kDoubleQuotes);
  s = tighten(s, kSingleQuotes);
  // miscellaneous
  s = replace_all(s, "= = = =", "====");
  s = replace_all(s, "= = =", "===");
  s = replace_all(s, "= =", "==");
  s = replace_all(s, " \xC2\xB0 ", "\xC2\xB0");  // " ° "
  s = replace_all(s, " \n", "\n");
  s = replace_all(s, "\n ", "\n");
  s = replace_all(s, " N ", " 1 ");
  s = replace_all(s, " 's", "'s");
  return s;
}

}  // namespace skv::eval
