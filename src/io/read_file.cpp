#include "io/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace skv::io {
namespace {

// Closes the descriptor on every path out, the throwing ones included.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string read_file(const std::string& path, std::string_view what) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) fail("cannot open ", what, " ", quote_bounded(path), ": ", std::strerror(errno));
  // An ifstream opens a directory and then reads nothing; say what it is instead.
  struct stat st {};
  if (::fstat(f.fd, &st) == 0 && S_ISDIR(st.st_mode))
    fail("cannot read ", what, " ", quote_bounded(path), ": ", std::strerror(EISDIR));
  std::string out;
  if (S_ISREG(st.st_mode)) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot read ", what, " ", quote_bounded(path), ": ", std::strerror(errno));
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace skv::io
