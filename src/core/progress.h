#pragma once
// One progress line on stderr for long runs (eval, generate-data): done / total, a rate and the
// time left. On a terminal it is rewritten in place; otherwise (a log file, CI) a line is written
// about every 10% so logs stay short. In core because eval's runner, the CLI and training share
// it and core is the one layer they all sit on.
#include <chrono>
#include <cstdint>
#include <string>

namespace skv {

class Progress {
 public:
  // label starts the line ("eval"); unit is what total counts ("items"). done_before: items a
  // resumed run found done; they count towards done but not towards the rate or the time left.
  Progress(std::string label, std::string unit, int64_t total, int64_t done_before = 0, bool enabled = true);

  // Report the rate of what advance()'s `amount` counts (e.g. "tokens") instead of items.
  void rate_in(std::string amount_unit) { amount_unit_ = std::move(amount_unit); }

  // n more items are done; detail (eval: the task) is shown in parentheses after the count.
  void advance(int64_t n = 1, const std::string& detail = "", int64_t amount = 0);
  void finish();  // ends the terminal line

  double seconds() const;  // since construction
  int64_t amount() const { return amount_; }

 private:
  void print(const std::string& detail, bool final_line);

  std::string label_, unit_, amount_unit_;
  int64_t total_, done_before_, done_, amount_ = 0;
  bool enabled_, tty_;
  int64_t last_decile_ = 0;
  std::chrono::steady_clock::time_point start_, last_print_;
  bool open_line_ = false;
};

std::string format_duration(double seconds);  // "45s", "3m07s", "1h02m"

}  // namespace skv
