// OpenAI request bodies to engine requests (no model or tokenizer needed with token-id prompts).
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "server/openai.h"

using skv::server::ApiContext;
using skv::server::Endpoint;
using skv::server::Json;
using skv::server::parse_request;

namespace {

bool has(const std::vector<int32_t>& v, int32_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

TEST(OpenAI, EndOfTurnTokensStopUnlessIgnoreEos) {
  ApiContext ctx;
  ctx.extra_stop_ids = {7};
  const auto r = parse_request(Endpoint::Completions, Json{{"prompt", {1, 2, 3}}, {"stop_token_ids", {9}}}, ctx);
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_TRUE(has(r.prompts[0].stop_token_ids, 7));
  EXPECT_TRUE(has(r.prompts[0].stop_token_ids, 9));
  EXPECT_FALSE(r.prompts[0].ignore_eos);
  // ignore_eos: the end-of-turn token is an EOS like any other; ids the request names still stop.
  const auto i = parse_request(Endpoint::Completions,
                               Json{{"prompt", {1, 2, 3}}, {"stop_token_ids", {9}}, {"ignore_eos", true}}, ctx);
  EXPECT_TRUE(i.prompts[0].ignore_eos);
  EXPECT_FALSE(has(i.prompts[0].stop_token_ids, 7));
  EXPECT_TRUE(has(i.prompts[0].stop_token_ids, 9));
}

TEST(OpenAI, TokenIdPromptsAndBadFields) {
  ApiContext ctx;
  const auto r =
      parse_request(Endpoint::Completions, Json{{"prompt", {{1, 2}, {3}}}, {"max_tokens", 5}, {"n", 2}}, ctx);
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.prompts[1].prompt, std::vector<int32_t>{3});
  EXPECT_EQ(r.prompts[0].max_tokens, 5);
  EXPECT_EQ(r.prompts[0].n, 2);
  EXPECT_THROW(parse_request(Endpoint::Completions, Json{{"prompt", {1}}, {"temperature", -1}}, ctx), skv::Error);
  EXPECT_THROW(parse_request(Endpoint::Completions, Json{{"prompt", "text"}}, ctx), skv::Error);  // no tokenizer
  EXPECT_THROW(parse_request(Endpoint::Completions, Json{{"max_tokens", 2}}, ctx), skv::Error);
  EXPECT_THROW(parse_request(Endpoint::Completions, Json{{"prompt", {1}}, {"ignore_eos", "yes"}}, ctx), skv::Error);
}

}  // namespace
