#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "engine/stop_strings.h"

using namespace skv;

TEST(StopStrings, AcrossChunkBoundaries) {
  engine::StopStringMatcher m({"lo w"});
  std::string out = m.push("Hel");
  EXPECT_EQ(out, "He");  // "l" could start "lo w"
  out += m.push("lo wor");
  EXPECT_TRUE(m.stopped());
  out += m.push("ld");
  out += m.flush();
  EXPECT_EQ(out, "Hel");
}

TEST(StopStrings, MultipleStopsEarliestWins) {
  engine::StopStringMatcher m({"END", "\n\n"});
  EXPECT_EQ(m.push("abc\n"), "abc");
  EXPECT_EQ(m.push("\nxyz END"), "");
  EXPECT_TRUE(m.stopped());

  engine::StopStringMatcher m2({"world", "o w"});
  EXPECT_EQ(m2.push("hello world"), "hell");
}

TEST(StopStrings, StopAtBeginning) {
  engine::StopStringMatcher m({"<|end|>"});
  EXPECT_EQ(m.push("<|end|>rest"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStrings, IncompletePrefixIsReleased) {
  engine::StopStringMatcher m({"STOP"});
  EXPECT_EQ(m.push("ST"), "");
  EXPECT_EQ(m.push("ART "), "START ");
  EXPECT_EQ(m.push("STO"), "");
  EXPECT_EQ(m.flush(), "STO");  // generation ended before the stop string completed
  EXPECT_FALSE(m.stopped());
}

TEST(StopStrings, OverlappingPrefix) {
  engine::StopStringMatcher m({"aab"});
  EXPECT_EQ(m.push("aa"), "");
  EXPECT_EQ(m.push("a"), "a");  // "aaa": only the last "aa" can still start "aab"
  EXPECT_EQ(m.push("b"), "");
  EXPECT_TRUE(m.stopped());
}

TEST(StopStrings, EmptyStopsIgnored) {
  engine::StopStringMatcher m({"", "x"});
  EXPECT_EQ(m.push("abc"), "abc");
  EXPECT_FALSE(m.stopped());
  engine::StopStringMatcher none({});
  EXPECT_EQ(none.push("abc"), "abc");
  EXPECT_EQ(none.flush(), "");
}

TEST(StopStrings, RandomChunkingMatchesWholeText) {
  // Whatever the chunking, the emitted text is the text up to the first stop string.
  std::mt19937 g(5);
  const std::vector<std::string> stops = {"abca", "cc", "bab"};
  for (int iter = 0; iter < 500; ++iter) {
    std::string text;
    for (int i = 0; i < 30; ++i) text += "abc"[g() % 3];
    size_t first = std::string::npos;
    for (const auto& s : stops) first = std::min(first, text.find(s));
    std::string want = text.substr(0, first);

    engine::StopStringMatcher m(stops);
    std::string got;
    for (size_t pos = 0; pos < text.size();) {
      size_t len = 1 + g() % 5;
      got += m.push(text.substr(pos, len));
      pos += len;
    }
    got += m.flush();
    ASSERT_EQ(got, want) << text;
    ASSERT_EQ(m.stopped(), first != std::string::npos) << text;
  }
}
