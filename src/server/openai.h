#pragma once
// The OpenAI API as vLLM serves it, on the engine core: request bodies of /v1/completions and
// /v1/chat/completions become engine requests, and their results become response bodies. Used
// by `swiftkv run-batch` (vLLM's offline batch format) and by the server. Bad requests throw
// skv::InputError naming the field (a 400 response).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/request.h"
#include "tokenizer/tokenizer.h"

namespace skv::server {

using Json = nlohmann::ordered_json;

struct ApiContext {
  const tokenizer::Tokenizer* tok = nullptr;
  std::string model_name;               // what responses say; requests may name it or omit it
  std::string chat_template;            // the model's, or --chat-template's
  std::vector<int32_t> extra_stop_ids;  // end-of-turn tokens of chat models
  int64_t max_model_len = 0;
};

// The special tokens chat models end a turn with (<|im_end|>, <|eot_id|>, ...), which need not
// be the tokenizer's EOS: stop tokens of every request unless it asks to ignore EOS.
std::vector<int32_t> end_of_turn_ids(const tokenizer::Tokenizer& tok);

enum class Endpoint { Completions, ChatCompletions };

// One OpenAI request: one engine request per prompt (each with `n` samples).
struct ApiRequest {
  Endpoint endpoint = Endpoint::Completions;
  std::vector<engine::Request> prompts;
  int n = 1;
  bool echo = false;  // completions: prompt text (and log-probs) before the answer
  int logprobs = -1;  // completions: top alternatives per token; chat: top_logprobs (0 with logprobs: true)
  bool stream = false;
  bool include_usage = false;
  std::string model;
};

// Result of one engine request (one prompt) as the engine's events built it: one entry per sample.
struct SampleResult {
  std::vector<int32_t> tokens;
  std::string text;
  std::vector<engine::TokenLogprob> logprobs;
  std::string finish_reason;
};
struct PromptResult {
  std::vector<int32_t> prompt;
  std::vector<engine::TokenLogprob> prompt_logprobs;
  std::vector<SampleResult> samples;
  int64_t cached_tokens = 0;
};

// Throws InputError naming the first field the request sets that we do not implement (tools,
// response formats other than text, best_of > n, ...): a 400, never silent ignoring.
ApiRequest parse_request(Endpoint endpoint, const Json& body, const ApiContext& ctx);
// The non-streaming response body (`id` e.g. "cmpl-..." / "chatcmpl-...", `created` in seconds).
Json response_body(const ApiRequest& req, const std::vector<PromptResult>& results, const ApiContext& ctx,
                   const std::string& id, int64_t created);
// vLLM's error body: {"object": "error", "message", "type", "param", "code"} (batch records).
Json error_body(const std::string& message, int code);
// The server's error body, OpenAI's shape: {"error": {"message", "type", "param", "code"}}, type
// invalid_request_error (400, 404, 413), authentication_error (401), service_unavailable (503)
// or internal_error.
Json api_error(const std::string& message, int status);

// Streaming (server-sent events): one chunk of choice `index` with new text, its tokens and
// their log-probs (when asked); `first` adds the chat role delta (and, for echo, the prompt);
// a non-empty finish_reason ends the choice.
struct StreamDelta {
  int64_t index = 0;
  std::string text;
  std::vector<int32_t> tokens;
  std::vector<engine::TokenLogprob> logprobs;
  std::string finish_reason;
  bool first = false;
  const PromptResult* prompt = nullptr;  // with `first` and echo: the prompt and its log-probs
};
Json stream_chunk(const ApiRequest& req, const ApiContext& ctx, const std::string& id, int64_t created,
                  const StreamDelta& d);
// The last chunk when stream_options.include_usage: no choices, the request's usage.
Json usage_chunk(const ApiRequest& req, const ApiContext& ctx, const std::string& id, int64_t created,
                 int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens);

// n random lowercase hex digits, for response and request ids ("cmpl-...", "batch_req_...").
std::string random_hex(size_t n);

// "/v1/completions" | "/v1/chat/completions"; throws InputError otherwise.
Endpoint endpoint_from_url(const std::string& url);

// The request of one line of a vLLM batch file ({"custom_id", "method": "POST", "url", "body"}),
// as `swiftkv run-batch` reads it once the line is a JSON object with its custom_id checked.
// Throws InputError naming the field ('method', 'url', 'body', a body field, 'stream').
ApiRequest parse_batch_request(const Json& line, const ApiContext& ctx);

}  // namespace skv::server
