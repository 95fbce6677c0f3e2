#pragma once
// Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp). Each harness feeds one input
// surface and holds it to the contract every parser here promises: bad input throws an
// skv::Error of kind Input (or Resource) whose message is one bounded line; anything else is a
// finding. An uncaught exception of another type (a library's json::type_error, std::out_of_range)
// or a sanitizer report crashes the harness, which libFuzzer records; an internal error or an
// unbounded message aborts through finding().
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "core/error.h"

namespace skv::fuzz {

// What an error message may hold: messages quote file content through quote_bounded (160 bytes,
// 640 once escaped) and at most a couple of such quotes appear in one message.
inline constexpr size_t kMaxErrorBytes = 2048;

[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", bound_message(what, 1000).c_str());
  std::abort();
}

inline void check_error(const Error& e) {
  const size_t n = std::strlen(e.what());
  if (e.kind() == ErrorKind::Internal) finding(std::string("internal error for bad input: ") + e.what());
  if (n > kMaxErrorBytes)
    finding("error message of " + std::to_string(n) + " bytes (bound " + std::to_string(kMaxErrorBytes) +
            "): " + e.what());
}

// Runs fn; an skv::Error is checked and swallowed (false), other exceptions propagate.
template <class F>
bool guarded(F&& fn) {
  try {
    fn();
    return true;
  } catch (const Error& e) {
    check_error(e);
    return false;
  }
}

// A directory of this process's own (in /dev/shm when there is one), removed at exit.
inline const std::string& temp_dir() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("skv_fuzz_" + std::to_string(getpid()));
    fs::create_directories(d);
    static const std::string keep = d.string();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return d.string();
  }();
  return dir;
}

// Writes bytes to temp_dir()/name (creating its folders); returns the path.
inline std::string write_file(const std::string& name, std::string_view bytes) {
  const std::filesystem::path p = std::filesystem::path(temp_dir()) / name;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) finding("cannot write " + p.string());
  return p.string();
}

inline std::string source_dir() { return SKV_SOURCE_DIR; }

// Splits "a<sep>b" at the first sep; without one, b is empty.
inline std::pair<std::string_view, std::string_view> split(std::string_view s, std::string_view sep) {
  const size_t at = s.find(sep);
  if (at == std::string_view::npos) return {s, {}};
  return {s.substr(0, at), s.substr(at + sep.size())};
}

}  // namespace skv::fuzz
