#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace skv {

Progress::Progress(std::string label, std::string unit, int64_t total, int64_t done_before, bool enabled)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      done_before_(done_before),
      done_(done_before),
      enabled_(enabled && total > done_before),
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

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::print(const std::string& detail, bool final_line) {
  const double elapsed = seconds();
  const double items_rate = elapsed > 0 ? (done_ - done_before_) / elapsed : 0;
  const std::string eta = items_rate > 0 ? format_duration((total_ - done_) / items_rate) : "?";
  const bool by_amount = !amount_unit_.empty();
  const double rate = by_amount ? (elapsed > 0 ? amount_ / elapsed : 0) : items_rate;
  const std::string in_parens = detail.empty() ? "" : " (" + detail + ")";
  std::fprintf(stderr, "%s%s: %lld/%lld %s%s, %.*f %s/s, ETA %s%s", tty_ ? "\r\033[K" : "", label_.c_str(),
               (long long)done_, (long long)total_, unit_.c_str(), in_parens.c_str(), by_amount ? 1 : 2, rate,
               (by_amount ? amount_unit_ : unit_).c_str(), eta.c_str(), tty_ && !final_line ? "" : "\n");
  std::fflush(stderr);
  open_line_ = tty_ && !final_line;
}

void Progress::advance(int64_t n, const std::string& detail, int64_t amount) {
  done_ += n;
  amount_ += amount;
  if (!enabled_) return;
  const bool last = done_ >= total_;
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    // Redrawing more than a few times a second only costs time.
    if (last || now - last_print_ > std::chrono::milliseconds(200)) {
      last_print_ = now;
      print(detail, last);
    }
    return;
  }
  const int64_t decile = (done_ - done_before_) * 10 / std::max<int64_t>(1, total_ - done_before_);
  if (decile > last_decile_ || last) {
    last_decile_ = decile;
    print(detail, true);
  }
}

void Progress::finish() {
  if (open_line_) std::fputc('\n', stderr);
  open_line_ = false;
}

}  // namespace skv
