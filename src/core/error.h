#pragma once
// One exception type for every user-facing failure: the CLI prints what() on one line
// and exits non-zero, so messages must name the file / flag / value at fault.
#include <sstream>
#include <stdexcept>
#include <string>

namespace skv {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Messages quote names read from untrusted files; control bytes (a NUL would cut the message
// short) and invalid UTF-8 are escaped as \xNN so the error stays one readable line.
std::string printable(const std::string& s);

template <class... Args>
[[noreturn]] void fail(Args&&... args) {
  std::ostringstream s;
  (s << ... << args);
  throw Error(printable(s.str()));
}

// Out of a resource (context, cache, memory).
template <class... Args>
[[noreturn]] void fail_resource(Args&&... args) {
  fail(std::forward<Args>(args)...);
}

// A broken invariant inside swiftkv (a bug, not bad input).
template <class... Args>
[[noreturn]] void fail_internal(Args&&... args) {
  fail("internal error: ", std::forward<Args>(args)...);
}

}  // namespace skv
