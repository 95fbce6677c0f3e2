#include "tokenizer/chat_template.h"

#include "core/error.h"
#include "jinja/jinja.h"

namespace skv::tokenizer {

std::string apply_chat_template_json(const std::string& tmpl, const nlohmann::ordered_json& messages,
                                     bool add_generation_prompt, const std::string& bos_token,
                                     const std::string& eos_token, const nlohmann::ordered_json& extra_context) {
  if (!messages.is_array()) fail("chat template: messages must be a JSON array");
  for (const auto& m : messages)
    if (!m.is_object()) fail("chat template: every message must be a JSON object, got ", m.dump());
  if (!extra_context.is_object() && !extra_context.is_null())
    fail("chat template: extra context must be a JSON object");
  // Same variables, in the same order, as transformers' render_jinja_template.
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = messages;
  ctx["tools"] = nullptr;
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = add_generation_prompt;
  if (!bos_token.empty()) ctx["bos_token"] = bos_token;
  if (!eos_token.empty()) ctx["eos_token"] = eos_token;
  if (extra_context.is_object())
    for (auto it = extra_context.begin(); it != extra_context.end(); ++it) ctx[it.key()] = it.value();
  jinja::Options opts;  // trim_blocks + lstrip_blocks, as transformers
  return jinja::render(tmpl, ctx, opts);
}

std::string apply_chat_template(const std::string& tmpl, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt, const std::string& bos_token,
                                const std::string& eos_token) {
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  for (const auto& m : messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
  return apply_chat_template_json(tmpl, msgs, add_generation_prompt, bos_token, eos_token);
}

}  // namespace skv::tokenizer
