#include "io/atomic_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace skv::io {
namespace {

// 0 or the errno of the write that failed. A write() of a regular file that returns 0 for a
// non-empty buffer has no errno; EIO stands in for it.
int write_fully(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno;
    if (w == 0) return EIO;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return 0;
}

std::string parent_dir(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

void fail_write(int err, const std::string& what, const char* call) {
  const std::string reason = call ? std::string(call) + " failed: " + std::strerror(err) : std::strerror(err);
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) fail_resource(what, ": ", reason);
  fail(what, ": ", reason);
}

AtomicFile::AtomicFile(const std::string& path) : path_(path), tmp_(path + ".tmp.XXXXXX") {
  // Same directory so rename() is atomic: readers see the old file or the complete new one.
  fd_ = ::mkstemp(tmp_.data());
  if (fd_ < 0) fail_write(errno, "cannot create a temporary file next to " + path);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  if (fd_ < 0) fail_internal(path_, ": write after commit");
  if (const int err = write_fully(fd_, data, n)) fail_write(err, "cannot write " + path_);
}

void AtomicFile::commit() {
  if (fd_ < 0) fail_internal(path_, ": committed twice");
  // fsync reports what the disk refused of the cached writes (ENOSPC on thin or network storage,
  // EIO), which is the last chance to fail before the old file is gone.
  if (::fsync(fd_) != 0) fail_write(errno, "cannot write " + path_, "fsync");
  ::fchmod(fd_, 0644);  // mkstemp creates 0600; nothing written here is secret
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail_write(errno, "cannot write " + path_, "close");
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail_write(errno, "cannot write " + path_, "rename");
  committed_ = true;
  // Persist the rename itself.
  sync_directory(parent_dir(path_));
}

void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& parts) {
  AtomicFile f(path);
  for (const auto& [data, n] : parts) f.write(data, n);
  f.commit();
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, {{bytes.data(), bytes.size()}});
}

AtomicFileBuf::AtomicFileBuf(AtomicFile& file) : file_(file), buf_(1 << 16) {
  setp(buf_.data(), buf_.data() + buf_.size());
}

void AtomicFileBuf::flush_buffer() {
  const size_t n = static_cast<size_t>(pptr() - pbase());
  // Reset first: after a failed write the buffered bytes are dropped, not retried forever.
  setp(buf_.data(), buf_.data() + buf_.size());
  if (n > 0) file_.write(buf_.data(), n);
}

AtomicFileBuf::int_type AtomicFileBuf::overflow(int_type ch) {
  flush_buffer();
  if (traits_type::eq_int_type(ch, traits_type::eof())) return traits_type::not_eof(ch);
  *pptr() = traits_type::to_char_type(ch);
  pbump(1);
  return ch;
}

std::streamsize AtomicFileBuf::xsputn(const char* s, std::streamsize n) {
  if (n <= epptr() - pptr()) {
    std::memcpy(pptr(), s, static_cast<size_t>(n));
    pbump(static_cast<int>(n));
    return n;
  }
  flush_buffer();
  if (static_cast<size_t>(n) >= buf_.size()) {
    file_.write(s, static_cast<size_t>(n));
  } else {
    std::memcpy(pptr(), s, static_cast<size_t>(n));
    pbump(static_cast<int>(n));
  }
  return n;
}

int AtomicFileBuf::sync() {
  flush_buffer();
  return 0;
}

void AtomicFileBuf::commit() {
  flush_buffer();
  file_.commit();
}

AppendFile::AppendFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_write(errno, "cannot open " + path + " for appending");
}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendFile::append(const std::string& record) {
  const off_t end = ::lseek(fd_, 0, SEEK_END);
  if (const int err = write_fully(fd_, record.data(), record.size())) {
    // Shrinking needs no free space, so this works on the full disk that caused the failure;
    // should it fail all the same, the torn line stays and the log's reader (distill's resume)
    // skips it.
    if (end >= 0) {
      [[maybe_unused]] const int rc = ::ftruncate(fd_, end);
    }
    fail_write(err, "cannot write " + path_);
  }
}

void sync_directory(const std::string& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
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
