// run-batch input files (vLLM's batch format): the input is the file, one request a line. Each
// line goes the way `swiftkv run-batch` takes it: JSON, an object with a string custom_id, then
// server::parse_batch_request (method, url, body -> engine requests). A bad line becomes an
// error record (InputError); it must never throw anything else, which would end the whole batch.
#include <memory>

#include "fuzz_common.h"
#include "io/read_file.h"
#include "server/openai.h"
#include "tokenizer/tokenizer.h"

using namespace skv;

namespace {

const server::ApiContext& context() {
  static const auto tok =
      tokenizer::Tokenizer::from_tokenizer_json(fuzz::source_dir() + "/tests/fixtures/tokenizer/llama3_style.json");
  static const server::ApiContext ctx = [] {
    server::ApiContext c;
    c.tok = tok.get();
    c.model_name = "fuzz-model";
    c.chat_template = io::read_file(fuzz::source_dir() + "/tests/fixtures/chat_templates/llama-3.2-1b-instruct.jinja");
    c.extra_stop_ids = server::end_of_turn_ids(*tok);
    c.max_model_len = 4096;
    return c;
  }();
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const server::ApiContext& ctx = context();
  for (size_t pos = 0; pos < input.size();) {
    size_t nl = input.find('\n', pos);
    if (nl == std::string_view::npos) nl = input.size();
    const std::string_view text = input.substr(pos, nl - pos);
    pos = nl + 1;
    const server::Json j = server::Json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("custom_id") || !j["custom_id"].is_string()) continue;
    fuzz::guarded([&] { server::parse_batch_request(j, ctx); });
  }
  return 0;
}
