#include "io/atomic_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace skv::io {
namespace {

// Deletes the temporary file unless it was renamed into place.
struct TempFile {
  std::string path;
  int fd = -1;
  bool committed = false;
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!committed) ::unlink(path.c_str());
  }
};

void write_all(int fd, const std::string& dest, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail(dest, ": write failed: ", std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& parts) {
  // Same directory so rename() is atomic: readers see the old file or the complete new one.
  TempFile tmp{path + ".tmp.XXXXXX"};
  tmp.fd = ::mkstemp(tmp.path.data());
  if (tmp.fd < 0) {
    tmp.committed = true;  // nothing to delete
    fail(path, ": cannot create temporary file: ", std::strerror(errno));
  }
  for (const auto& [data, n] : parts) write_all(tmp.fd, path, data, n);
  if (::fsync(tmp.fd) != 0) fail(path, ": fsync failed: ", std::strerror(errno));
  ::fchmod(tmp.fd, 0644);  // mkstemp creates 0600; nothing written here is secret
  const int fd = tmp.fd;
  tmp.fd = -1;
  if (::close(fd) != 0) fail(path, ": close failed: ", std::strerror(errno));
  if (::rename(tmp.path.c_str(), path.c_str()) != 0) fail(path, ": rename failed: ", std::strerror(errno));
  tmp.committed = true;

  // Persist the rename itself; best effort, a failure here loses durability, not data.
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, {{bytes.data(), bytes.size()}});
}

int remove_stale_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string prefix = target.filename().string() + ".tmp.";
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    // mkstemp's suffix: exactly six characters.
    if (name.size() != prefix.size() + 6 || name.compare(0, prefix.size(), prefix) != 0) continue;
    std::error_code rec;
    if (it->is_regular_file(rec) && fs::remove(it->path(), rec)) ++removed;
  }
  return removed;
}

}  // namespace skv::io
