#include "eval/gsm8k.h"

#include <cctype>

#include "eval/prompts.h"
#include "eval/pystr.h"
#include "tokenizer/regex.h"

namespace skv::eval {
namespace {

constexpr const char* kInvalid = "[invalid]";

struct Exemplar {
  const char* question;
  const char* answer;
};

// Wei et al. 2022 (arXiv:2201.11903), Table 20's math word problem prompt, as gsm8k-cot.yaml
// carries it; public research prompts.
constexpr Exemplar kExemplars[] = {
    {"There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there "
     "will be 21 trees. How many trees did the grove workers plant today?",
     "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been "
     "21 - 15 = 6. The answer is 6."},
    {"If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
     "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5."},
    {"Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
     "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, they "
     "had 74 - 35 = 39. The answer is 39."},
    {"Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did Jason "
     "give to Denny?",
     "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. The "
     "answer is 8."},
    {"Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?",
     "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. The "
     "answer is 9."},
    {"There were nine computers in the server room. Five more computers were installed each day, from monday to "
     "thursday. How many computers are now in the server room?",
     "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers "
     "were added. 9 + 20 is 29. The answer is 29."},
    {"Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls "
     "did he have at the end of wednesday?",
     "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he "
     "had 35 - 2 = 33 golf balls. The answer is 33."},
    {"Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
     "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars "
     "left. 23 - 15 is 8. The answer is 8."},
};

// Start of the last UTF-8 code point of s (s non-empty).
size_t last_char_start(const std::string& s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

std::string remove_matches(const std::string& s, const tokenizer::Regex& re) {
  std::string out;
  size_t pos = 0;
  for (auto [b, e] : re.find_all(s)) {
    out.append(s, pos, b - pos);
    pos = e;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

std::string normalize(std::string s) {
  static const tokenizer::Regex kIgnore[] = {tokenizer::Regex(","), tokenizer::Regex(R"(\$)"),
                                             tokenizer::Regex(R"((?s).*#### )"), tokenizer::Regex(R"(\.$)")};
  for (const tokenizer::Regex& re : kIgnore) s = remove_matches(s, re);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::vector<Doc> gsm8k_exemplars() {
  std::vector<Doc> out;
  for (const Exemplar& e : kExemplars) {
    Doc d;
    d.text = gsm8k_text(e.question);
    d.target = e.answer;
    out.push_back(std::move(d));
  }
  return out;
}

std::string gsm8k_target(const std::string& answer) {
  const size_t hit = answer.rfind("####");
  return py_strip(hit == std::string::npos ? answer : answer.substr(hit + 4));
}

std::string gsm8k_extract_strict(const std::string& response) {
  static const tokenizer::Regex kStrict(R"(The answer is (\-?[0-9\.\,]+).)");
  auto m = kStrict.find_all(response);
  if (m.empty()) return kInvalid;
  // The whole match is "The answer is " + group + one more character (the regex's final "."
  // matches any character), so the group is the match without those.
  std::string whole = response.substr(m[0].first, m[0].second - m[0].first);
  whole.resize(last_char_start(whole));
  return py_strip(whole.substr(14));
}

std::string gsm8k_extract_flexible(const std::string& response) {
  static const tokenizer::Regex kFlexible(R"((-?[$0-9.,]{2,})|(-?[0-9]+))");
  auto m = kFlexible.find_all(response);
  if (m.empty()) return kInvalid;
  // Exactly one of the two groups matched, and it spans the whole match.
  return py_strip(response.substr(m.back().first, m.back().second - m.back().first));
}

bool gsm8k_exact_match(const std::string& prediction, const std::string& reference) {
  return normalize(prediction) == normalize(reference);
}

}  // namespace skv::eval
