#include "engine/stop_strings.h"

#include <algorithm>

namespace skv::engine {

std::string StopStringMatcher::push(const std::string& text) {
  if (stopped_) return {};
  std::string buf = held_ + text;
  held_.clear();

  // Earliest occurrence over all stop strings wins: the held part never contains a whole
  // stop string, so this is the first point at which generation should have stopped.
  size_t stop_at = std::string::npos;
  for (const auto& s : stops_) {
    if (s.empty()) continue;
    stop_at = std::min(stop_at, buf.find(s));
  }
  if (stop_at != std::string::npos) {
    stopped_ = true;
    buf.resize(stop_at);
    return buf;
  }

  // Hold back the longest suffix that could still grow into a stop string. Stop strings start
  // at a UTF-8 lead byte, so the split never cuts a character of well-formed text.
  size_t hold = 0;
  for (const auto& s : stops_) {
    for (size_t len = std::min(buf.size(), s.size() - (s.empty() ? 0 : 1)); len > hold; --len) {
      if (buf.compare(buf.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  held_ = buf.substr(buf.size() - hold);
  buf.resize(buf.size() - hold);
  return buf;
}

std::string StopStringMatcher::flush() {
  if (stopped_) return {};
  std::string out;
  out.swap(held_);
  return out;
}

}  // namespace skv::engine
