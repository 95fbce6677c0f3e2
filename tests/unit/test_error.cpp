// skv::Error's kinds (the CLI's exit status and the server's HTTP status come from them) and the
// message escaping and quoting every kind shares.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "core/error.h"

using namespace skv;

namespace {

struct Caught {
  ErrorKind kind;
  std::string what;
};

// What f threw, caught as the common base, as every front end catches it.
Caught catch_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return {e.kind(), e.what()};
  }
  ADD_FAILURE() << "nothing thrown";
  return {};
}

}  // namespace

TEST(Error, EachFailFunctionThrowsItsKind) {
  EXPECT_EQ(catch_error([] { fail("bad flag ", 3); }).kind, ErrorKind::Input);
  EXPECT_EQ(catch_error([] { fail_resource("context full at ", 4096); }).kind, ErrorKind::Resource);
  EXPECT_EQ(catch_error([] { fail_internal("shape mismatch"); }).kind, ErrorKind::Internal);
  EXPECT_EQ(catch_error([] { fail_resource("context full at ", 4096); }).what, "context full at 4096");
}

TEST(Error, KindsCanBeCaughtByType) {
  EXPECT_THROW(fail("x"), InputError);
  EXPECT_THROW(fail_resource("x"), ResourceError);
  EXPECT_THROW(fail_internal("x"), InternalError);
  // A handler for one kind lets the others through.
  EXPECT_THROW(
      {
        try {
          fail_internal("x");
        } catch (const ResourceError&) {
        }
      },
      InternalError);
}

TEST(Error, KindNames) {
  EXPECT_STREQ(error_kind_name(ErrorKind::Input), "input");
  EXPECT_STREQ(error_kind_name(ErrorKind::Resource), "resource");
  EXPECT_STREQ(error_kind_name(ErrorKind::Internal), "internal");
}

TEST(Error, EveryKindEscapesControlBytesAndInvalidUtf8) {
  const std::string raw = std::string("name\0x\n", 7) + "\xff" + "é";
  const std::string want = "bad: name\\x00x\\x0a\\xffé";
  EXPECT_EQ(catch_error([&] { fail("bad: ", raw); }).what, want);
  EXPECT_EQ(catch_error([&] { fail_resource("bad: ", raw); }).what, want);
  EXPECT_EQ(catch_error([&] { fail_internal("bad: ", raw); }).what, want);
}

TEST(Error, FailLikeKeepsTheKindAndReplacesTheMessage) {
  for (ErrorKind k : {ErrorKind::Input, ErrorKind::Resource, ErrorKind::Internal}) {
    const Caught c = catch_error([k] {
      try {
        if (k == ErrorKind::Input) fail("inner");
        if (k == ErrorKind::Resource) fail_resource("inner");
        fail_internal("inner");
      } catch (const Error& e) {
        fail_like(e, "file.jsonl:3: ", e.what(), "\x01");
      }
    });
    EXPECT_EQ(c.kind, k) << error_kind_name(k);
    EXPECT_EQ(c.what, "file.jsonl:3: inner\\x01");
  }
}

TEST(Error, QuoteBoundedKeepsShortTextWhole) {
  EXPECT_EQ(quote_bounded("data/a.jsonl"), "'data/a.jsonl'");
  EXPECT_EQ(quote_bounded(""), "''");
  EXPECT_EQ(quote_bounded(std::string(160, 'a')), "'" + std::string(160, 'a') + "'");
}

TEST(Error, QuoteBoundedElidesTheMiddleOfLongText) {
  const std::string path = "/" + std::string(1000, 'd') + "/file.txt";
  const std::string q = quote_bounded(path, 60);
  EXPECT_LE(q.size(), 60u + 5u + 13u);  // the quotes, "..." and " (1010 bytes)"
  EXPECT_EQ(q.front(), '\'');
  EXPECT_NE(q.find("..."), std::string::npos);
  EXPECT_TRUE(q.ends_with("/file.txt' (1010 bytes)")) << q;  // the file's name and the full length
  EXPECT_TRUE(q.starts_with("'/ddd")) << q;
}

TEST(Error, QuoteBoundedNeverSplitsACharacter) {
  // 2-byte characters: any byte cut would leave half of one, which printable() then escapes.
  std::string s;
  for (int i = 0; i < 100; ++i) s += "é";
  for (size_t max : {10u, 11u, 31u, 60u}) {
    const std::string q = quote_bounded(s, max);
    EXPECT_EQ(printable(q), q) << max;
    EXPECT_LE(q.size(), max + 5 + 12) << max;  // + " (200 bytes)"
  }
}

TEST(Error, BoundMessageCutsAtACharacterAndStatesTheLength) {
  EXPECT_EQ(bound_message("short"), "short");
  EXPECT_EQ(bound_message(std::string(kMaxMessageBytes, 'x')), std::string(kMaxMessageBytes, 'x'));
  std::string s;
  for (int i = 0; i < 10; ++i) s += "é";  // 20 bytes
  EXPECT_EQ(bound_message(s, 5), "éé... (20 bytes in all)");
}

TEST(Error, FailBoundsAHugeMessage) {
  // A 10 MB value quoted whole (a site that forgot quote_bounded) still gives a short line.
  try {
    fail("key '", std::string(10'000'000, 'k'), "' is bad");
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_LE(what.size(), kMaxMessageBytes + 40);
    EXPECT_TRUE(what.ends_with("... (10000013 bytes in all)")) << what.substr(what.size() - 60);
    return;
  }
  FAIL() << "no InputError";
}

TEST(Error, QuoteBoundedOfAHugeKeyIsShort) {
  const std::string q = quote_bounded(std::string(188034112, 'k'));
  EXPECT_LE(q.size(), 160u + 5u + 20u);
  EXPECT_TRUE(q.ends_with("' (188034112 bytes)")) << q;
}
