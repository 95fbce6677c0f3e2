#pragma once
// Writing a file so that a crash at any moment leaves either the old file or the complete new
// one: a temporary file in the same directory, fsync, rename over the target, then fsync of the
// directory (best effort: a failure there loses durability, not data).
#include <cstddef>
#include <streambuf>
#include <string>
#include <utility>
#include <vector>

namespace skv::io {

// Throws for a failed call that writes to `what` (a path, or a phrase naming it), the reason
// (strerror) last. A full disk, a full quota or the file size limit (ENOSPC, EDQUOT, EFBIG) is a
// resource error: the same command succeeds once there is room. Anything else (a read-only or
// unwritable target) is an input error: the path is the user's to change.
[[noreturn]] void fail_write(int err, const std::string& what, const char* call = nullptr);

// The file's bytes are the parts, in order, written straight from where they are (no copy).
// Throws skv::Error naming the path; the temporary file is removed on failure.
void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& parts);
void write_file_atomic(const std::string& path, const std::string& bytes);

// The same for a file written in pieces: it appears at `path` only when commit() returns, and
// until then lives as PATH.tmp.XXXXXX (created by the constructor, so an unwritable directory
// fails before any work is done), which is deleted if the object dies uncommitted.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n);
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// A stream buffer over an AtomicFile, for code that writes to a std::ostream. An ostream over it
// must have exceptions(std::ios::badbit) set: a failed write then reaches the caller as the
// skv::Error that names the file instead of a silently bad stream.
class AtomicFileBuf : public std::streambuf {
 public:
  explicit AtomicFileBuf(AtomicFile& file);
  ~AtomicFileBuf() override = default;  // unflushed bytes only matter to commit(), which flushes

  void commit();  // flushes the buffer, then AtomicFile::commit

 protected:
  int_type overflow(int_type ch) override;
  int sync() override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;

 private:
  void flush_buffer();
  AtomicFile& file_;
  std::vector<char> buf_;
};

// Appends whole records (lines) to a log that lives across runs (distill's metrics.jsonl). A
// record that cannot be written whole is cut off again, so a full disk never leaves a torn line.
class AppendFile {
 public:
  explicit AppendFile(const std::string& path);  // created if missing
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;
  void append(const std::string& record);

 private:
  std::string path_;
  int fd_ = -1;
};

// fsync of a directory, so that the entries created or renamed in it survive a crash. Best
// effort: a failure loses durability, not data.
void sync_directory(const std::string& dir);

// Removes the temporary files (PATH.tmp.XXXXXX) a writer killed mid-way left next to PATH, for
// a program that resumes from PATH; returns how many. Only call it when no other process can be
// writing PATH.
int remove_stale_temporaries(const std::string& path);

}  // namespace skv::io
