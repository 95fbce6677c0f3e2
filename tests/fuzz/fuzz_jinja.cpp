// Jinja chat templates: parse and render. The input is a template, optionally followed by a line
// "#context#" and a JSON object used as the render context. Without a valid one the context is
// built from the input's bytes: a few messages (roles and contents cut from the tail), a
// generation prompt flag and the special tokens, the shape transformers passes.
#include <nlohmann/json.hpp>

#include "fuzz_common.h"
#include "jinja/jinja.h"
#include "tokenizer/chat_template.h"

using namespace skv;
using Json = nlohmann::ordered_json;

namespace {

Json random_context(std::string_view bytes) {
  static const char* roles[] = {"system", "user", "assistant", "tool", "user"};
  Json messages = Json::array();
  size_t pos = 0;
  for (int i = 0; i < 4 && pos < bytes.size(); ++i) {
    const size_t len = std::min<size_t>(bytes.size() - pos, static_cast<unsigned char>(bytes[pos]) % 24);
    const std::string content(bytes.substr(pos + 1 < bytes.size() ? pos + 1 : bytes.size(), len));
    messages.push_back({{"role", roles[static_cast<unsigned char>(bytes[pos]) % 5]}, {"content", content}});
    pos += len + 1;
  }
  return Json{{"messages", messages},
              {"add_generation_prompt", bytes.size() % 2 == 0},
              {"bos_token", "<s>"},
              {"eos_token", "</s>"},
              {"tools", nullptr}};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto parts = fuzz::split(input, "\n#context#\n");
  const std::string_view source = parts.first, context_text = parts.second;
  Json context = Json::parse(context_text.begin(), context_text.end(), nullptr, false);
  if (context.is_discarded() || !context.is_object()) context = random_context(source.substr(source.size() / 2));
  jinja::Options opts;
  if (size % 3 == 0) opts.keep_trailing_newline = true;
  if (size % 5 == 0) opts.lstrip_blocks = false;
  std::unique_ptr<jinja::Template> t;
  if (!fuzz::guarded([&] { t = std::make_unique<jinja::Template>(std::string(source), opts); })) return 0;
  fuzz::guarded([&] { t->render(context); });
  // And the way chat models use it: messages as JSON and the extra variables.
  if (context.contains("messages"))
    fuzz::guarded([&] {
      tokenizer::apply_chat_template_json(std::string(source), context["messages"], true, "<s>", "</s>", context);
    });
  return 0;
}
