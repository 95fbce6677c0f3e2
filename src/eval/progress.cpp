#include "eval/progress.h"

#include <unistd.h>

#include <cstdio>

namespace skv::eval {

Progress::Progress(int64_t total, bool enabled)
    : total_(total),
      enabled_(enabled && total > 0),
      tty_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

std::string format_duration(double s) {
  char buf[32];
  const long t = static_cast<long>(s + 0.5);
  if (t < 60) {
    std::snprintf(buf, sizeof buf, "%lds", t);
  } else if (t < 3600) {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  }
  return buf;
}

void Progress::print(const std::string& task, bool final_line) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? done_ / elapsed : 0;
  const std::string eta = rate > 0 ? format_duration((total_ - done_) / rate) : "?";
  std::fprintf(stderr, "%seval: %lld/%lld items (%s), %.2f items/s, ETA %s%s", tty_ ? "\r\033[K" : "", (long long)done_,
               (long long)total_, task.c_str(), rate, eta.c_str(), tty_ && !final_line ? "" : "\n");
  std::fflush(stderr);
  open_line_ = tty_ && !final_line;
}

void Progress::advance(const std::string& task, int64_t n) {
  if (!enabled_) return;
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    // Redrawing more than a few times a second only costs time.
    if (done_ == total_ || now - last_print_ > std::chrono::milliseconds(200)) {
      last_print_ = now;
      print(task, done_ == total_);
    }
    return;
  }
  const int decile = static_cast<int>(done_ * 10 / total_);
  if (decile > last_decile_) {
    last_decile_ = decile;
    print(task, true);
  }
}

void Progress::finish() {
  if (open_line_) std::fputc('\n', stderr);
  open_line_ = false;
}

}  // namespace skv::eval
