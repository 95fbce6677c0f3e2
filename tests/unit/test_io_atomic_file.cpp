// The atomic writers (io/atomic_file.h): the file at the path is the old one or the whole new one,
// no temporary survives a failure, and a failure is one error naming the file and the reason, a
// full disk or the file size limit a resource error. The limit (RLIMIT_FSIZE, with SIGXFSZ
// ignored as swiftkv's main does) stands in for a full disk here; tests/robustness/
// test_disk_faults.py fails the writes of the whole program with ENOSPC as well.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "../fixtures/io/io_test_util.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/read_file.h"

using skv_test::TempDir;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Lowers the file size limit for the scope (SIGXFSZ ignored, so a write past it fails with EFBIG).
struct FileSizeLimit {
  rlimit saved{};
  void (*saved_handler)(int) = nullptr;
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved);
    saved_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lim = saved;
    lim.rlim_cur = bytes;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, saved_handler);
  }
};

template <class F>
skv::ErrorKind kind_of(F&& f, std::string* message) {
  try {
    f();
  } catch (const skv::Error& e) {
    *message = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "no error";
  return skv::ErrorKind::Internal;
}

}  // namespace

TEST(AtomicFile, ReplacesWholeAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("out.bin");
  skv::io::write_file_atomic(path, "old");
  const std::string a(100000, 'a'), b = "tail";
  skv::io::write_file_atomic(path, {{a.data(), a.size()}, {b.data(), b.size()}});
  EXPECT_EQ(skv::io::read_file(path), a + b);
  EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"out.bin"});
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST(AtomicFile, UncommittedLeavesTheOldFile) {
  TempDir dir;
  const std::string path = dir.file("out.bin");
  skv::io::write_file_atomic(path, "old");
  {
    skv::io::AtomicFile f(path);
    f.write("new", 3);
    EXPECT_EQ(names_in(dir.path).size(), 2u);  // the temporary exists while writing
  }
  EXPECT_EQ(skv::io::read_file(path), "old");
  EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"out.bin"});
}

TEST(AtomicFile, StreamBufferWritesEveryByte) {
  TempDir dir;
  const std::string path = dir.file("samples.jsonl");
  skv::io::AtomicFile f(path);
  skv::io::AtomicFileBuf buf(f);
  std::ostream out(&buf);
  out.exceptions(std::ios::badbit);
  std::string want;
  for (int i = 0; i < 5000; ++i) {
    const std::string line = "{\"i\": " + std::to_string(i) + "}\n";
    out << line;
    want += line;
  }
  const std::string big(200000, 'x');  // larger than the buffer: written straight through
  out << big << 'z';
  want += big + "z";
  EXPECT_FALSE(fs::exists(path));
  buf.commit();
  EXPECT_EQ(skv::io::read_file(path), want);
}

TEST(AtomicFile, FileSizeLimitIsAResourceErrorAndKeepsTheOldFile) {
  TempDir dir;
  const std::string path = dir.file("model.gguf");
  skv::io::write_file_atomic(path, "previous");
  const std::string big(20000, 'b');
  std::string msg;
  {
    FileSizeLimit limit(8192);
    EXPECT_EQ(kind_of([&] { skv::io::write_file_atomic(path, big); }, &msg), skv::ErrorKind::Resource);
  }
  EXPECT_NE(msg.find("cannot write " + path + ": File too large"), std::string::npos) << msg;
  EXPECT_EQ(skv::io::read_file(path), "previous");
  EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"model.gguf"});

  // The same through an ostream: the error reaches the writer as the skv::Error naming the file.
  {
    FileSizeLimit limit(8192);
    skv::io::AtomicFile f(path);
    skv::io::AtomicFileBuf buf(f);
    std::ostream out(&buf);
    out.exceptions(std::ios::badbit);
    EXPECT_EQ(kind_of(
                  [&] {
                    for (int i = 0; i < 1000; ++i) out << std::string(100, 'c') << "\n";
                    buf.commit();
                  },
                  &msg),
              skv::ErrorKind::Resource);
  }
  EXPECT_NE(msg.find("File too large"), std::string::npos) << msg;
  EXPECT_EQ(skv::io::read_file(path), "previous");
  EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"model.gguf"});
}

TEST(AppendFile, FailedRecordIsCutOff) {
  TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  {
    skv::io::AppendFile log(path);  // created
    log.append("{\"step\": 1}\n");
  }
  const std::string before = skv::io::read_file(path);
  std::string msg;
  {
    FileSizeLimit limit(before.size() + 10);
    skv::io::AppendFile log(path);
    EXPECT_EQ(kind_of([&] { log.append("{\"step\": 2, \"loss\": 1.2345}\n"); }, &msg), skv::ErrorKind::Resource);
  }
  EXPECT_NE(msg.find("cannot write " + path), std::string::npos) << msg;
  EXPECT_EQ(skv::io::read_file(path), before);  // no torn line
}

TEST(AtomicFile, UnwritableDirectoryIsAnInputError) {
  if (::geteuid() == 0)
    GTEST_SKIP() << "root writes into a read-only directory (test_disk_faults.py runs this case "
                    "as an unprivileged user)";
  TempDir dir;
  const fs::path ro = dir.path / "ro";
  fs::create_directories(ro);
  skv::io::write_file_atomic((ro / "f").string(), "old");
  ::chmod(ro.c_str(), 0555);
  std::string msg;
  EXPECT_EQ(kind_of([&] { skv::io::write_file_atomic((ro / "f").string(), "new"); }, &msg), skv::ErrorKind::Input);
  ::chmod(ro.c_str(), 0755);
  EXPECT_NE(msg.find("cannot create a temporary file next to " + (ro / "f").string() + ": Permission denied"),
            std::string::npos)
      << msg;
  EXPECT_EQ(skv::io::read_file((ro / "f").string()), "old");
}
