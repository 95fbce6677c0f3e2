#pragma once
// One progress line on stderr: items done / total, items per second, time left. On a terminal
// it is rewritten in place; otherwise (a log file, CI) a line is written about every 10% so
// logs stay short.
#include <chrono>
#include <cstdint>
#include <string>

namespace skv::eval {

class Progress {
 public:
  explicit Progress(int64_t total, bool enabled = true);
  void advance(const std::string& task, int64_t n = 1);
  void finish();  // ends the terminal line

 private:
  void print(const std::string& task, bool final_line);

  int64_t total_, done_ = 0;
  bool enabled_, tty_;
  int last_decile_ = 0;
  std::chrono::steady_clock::time_point start_, last_print_;
  bool open_line_ = false;
};

std::string format_duration(double seconds);  // "45s", "3m07s", "1h02m"

}  // namespace skv::eval
