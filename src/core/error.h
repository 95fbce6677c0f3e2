#pragma once
// Every failure the program reports is an skv::Error. Its kind says whose fault it is, so that a
// front end can answer in kind (the CLI's exit status; the server's 400 / 503 / 500):
//   Input    - the user's flags, files or request are wrong: fixing them fixes the failure.
//   Resource - the input is fine but does not fit what this run has: the context or KV cache is
//              full, memory ran out. A larger --ctx-size, a smaller request or a retry may help.
//   Internal - an invariant of the program broke (model code handing an op mismatched shapes):
//              a bug, whatever the input.
// The CLI prints what() on one line, so messages must name the file / flag / value at fault.
#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace skv {

enum class ErrorKind { Input, Resource, Internal };

const char* error_kind_name(ErrorKind kind);  // "input", "resource", "internal"

class Error : public std::runtime_error {
 public:
  ErrorKind kind() const { return kind_; }

 protected:
  // Only the three kinds below are thrown, so kind() always matches the dynamic type.
  Error(const std::string& what, ErrorKind kind) : std::runtime_error(what), kind_(kind) {}

 private:
  ErrorKind kind_;
};

struct InputError : Error {
  explicit InputError(const std::string& what) : Error(what, ErrorKind::Input) {}
};
struct ResourceError : Error {
  explicit ResourceError(const std::string& what) : Error(what, ErrorKind::Resource) {}
};
struct InternalError : Error {
  explicit InternalError(const std::string& what) : Error(what, ErrorKind::Internal) {}
};

// Messages quote names read from untrusted files; control bytes (a NUL would cut the message
// short) and invalid UTF-8 are escaped as \xNN so the error stays one readable line.
std::string printable(const std::string& s);

// Every message that quotes file or request content (a GGUF key, a tensor name, a JSON field, a
// template's text, a request field) quotes it through quote_bounded: s in single quotes; beyond
// max_bytes its middle is elided ("...") at character boundaries and the full length follows
// ('blk.0.at...weight' (188034112 bytes)), so a value of any length keeps the message one short
// line. fail() escapes the result (printable), so at most 4 * max_bytes + 30 bytes reach the user.
std::string quote_bounded(std::string_view s, size_t max_bytes = 160);

// The last guard, for text that reaches the user whole (an error's what(), a library's message):
// beyond max_bytes, the first max_bytes (at a character boundary) and "... (N bytes in all)".
// fail() applies it to every message, the CLI and the server's error bodies to what they print.
inline constexpr size_t kMaxMessageBytes = 4096;
std::string bound_message(std::string_view s, size_t max_bytes = kMaxMessageBytes);

namespace detail {
template <class... Args>
std::string message(Args&&... args) {
  std::ostringstream s;
  (s << ... << args);
  return bound_message(printable(s.str()));
}
}  // namespace detail

// Invalid input: the default for anything the user can fix.
template <class... Args>
[[noreturn]] void fail(Args&&... args) {
  throw InputError(detail::message(std::forward<Args>(args)...));
}

template <class... Args>
[[noreturn]] void fail_resource(Args&&... args) {
  throw ResourceError(detail::message(std::forward<Args>(args)...));
}

template <class... Args>
[[noreturn]] void fail_internal(Args&&... args) {
  throw InternalError(detail::message(std::forward<Args>(args)...));
}

// Throws an error of e's kind with a new message; for adding context to a caught error without
// turning, say, a full context into a bad-input error.
template <class... Args>
[[noreturn]] void fail_like(const Error& e, Args&&... args) {
  switch (e.kind()) {
    case ErrorKind::Resource:
      fail_resource(std::forward<Args>(args)...);
    case ErrorKind::Internal:
      fail_internal(std::forward<Args>(args)...);
    case ErrorKind::Input:
      break;
  }
  fail(std::forward<Args>(args)...);
}

}  // namespace skv
