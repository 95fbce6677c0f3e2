// OpenAI request bodies -> engine requests: the input is the JSON body of a request, parsed for
// both /v1/completions and /v1/chat/completions with the context the server builds (a fixture
// tokenizer, the SmolLM2 chat template, a 2048-token model). Bad bodies throw InputError (a 400);
// whatever parses gives engine requests whose token ids are in the vocabulary.
#include <memory>

#include "fuzz_common.h"
#include "io/read_file.h"
#include "server/openai.h"
#include "tokenizer/tokenizer.h"

using namespace skv;

namespace {

const server::ApiContext& context() {
  static const auto tok =
      tokenizer::Tokenizer::from_tokenizer_json(fuzz::source_dir() + "/tests/fixtures/tokenizer/gpt2_style.json");
  static const server::ApiContext ctx = [] {
    server::ApiContext c;
    c.tok = tok.get();
    c.model_name = "fuzz-model";
    c.chat_template = io::read_file(fuzz::source_dir() + "/tests/fixtures/chat_templates/smollm2-135m-instruct.jinja");
    c.extra_stop_ids = server::end_of_turn_ids(*tok);
    c.max_model_len = 2048;
    return c;
  }();
  return ctx;
}

void check(const server::ApiRequest& a, const server::ApiContext& ctx) {
  for (const engine::Request& r : a.prompts)
    for (int32_t id : r.prompt)
      if (id < 0 || id >= ctx.tok->vocab_size())
        fuzz::finding("prompt token id " + std::to_string(id) + " out of range");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const server::Json body = server::Json::parse(data, data + size, nullptr, false);
  if (body.is_discarded()) return 0;
  const server::ApiContext& ctx = context();
  for (auto ep : {server::Endpoint::Completions, server::Endpoint::ChatCompletions})
    fuzz::guarded([&] { check(server::parse_request(ep, body, ctx), ctx); });
  return 0;
}
