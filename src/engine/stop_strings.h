#pragma once
// Stop strings end generation at the first occurrence of any of them in the detokenised text,
// which arrives in pieces that need not align with the stop strings (OpenAI / vLLM `stop`).
#include <string>
#include <utility>
#include <vector>

namespace skv::engine {

// Detects stop strings in streamed text. push() returns the text that is safe to emit
// now (text that could still become the start of a stop string is held back); once a stop
// string is found, stopped() is true and the text before it has been returned.
class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  std::string push(const std::string& text);
  std::string flush();  // held-back text at the end of generation
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace skv::engine
