// skv::read_file, the one whole-file reader: exact bytes, and one-line input errors that name
// the file (quoted, bounded) and the system's reason.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "../fixtures/io/io_test_util.h"
#include "core/error.h"
#include "io/read_file.h"

using skv_test::TempDir;

namespace {

skv::ErrorKind kind_of(const std::string& path) {
  try {
    skv::io::read_file(path);
  } catch (const skv::Error& e) {
    return e.kind();
  }
  ADD_FAILURE() << "no error reading " << path;
  return skv::ErrorKind::Internal;
}

}  // namespace

TEST(ReadFile, ReturnsEveryByte) {
  TempDir dir;
  // Larger than one read() chunk, with NULs and invalid UTF-8, which a text reader might drop.
  std::string bytes(200000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 % 256);
  skv_test::write_file(dir.file("blob"), bytes);
  EXPECT_EQ(skv::io::read_file(dir.file("blob")), bytes);
  skv_test::write_file(dir.file("empty"), std::string());
  EXPECT_EQ(skv::io::read_file(dir.file("empty")), "");
}

TEST(ReadFile, MissingFileNamesPathWhatAndReason) {
  TempDir dir;
  const std::string p = dir.file("nope.jsonl");
  EXPECT_SKV_ERROR(skv::io::read_file(p, "--prompts file"),
                   "cannot open --prompts file '" + p + "': No such file or directory");
  EXPECT_EQ(kind_of(p), skv::ErrorKind::Input);
}

TEST(ReadFile, DirectoryIsRefusedByName) {
  TempDir dir;
  EXPECT_SKV_ERROR(skv::io::read_file(dir.path.string()),
                   "cannot read file '" + dir.path.string() + "': Is a directory");
  EXPECT_EQ(kind_of(dir.path.string()), skv::ErrorKind::Input);
}

TEST(ReadFile, LongPathIsShortenedAndControlBytesEscaped) {
  TempDir dir;
  const std::string p = dir.file(std::string(200, 'x') + "\n/tail.txt");  // the directory does not exist
  const std::string msg = skv_test::error_of([&] { skv::io::read_file(p); });
  EXPECT_LT(msg.size(), 260u) << msg;
  EXPECT_NE(msg.find("..."), std::string::npos) << msg;
  EXPECT_NE(msg.find("/tail.txt'"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}
