#pragma once
// Renders a model's chat template like transformers' apply_chat_template (Jinja2 with
// trim_blocks and lstrip_blocks), using the Jinja subset in jinja/jinja.h.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace skv::tokenizer {

struct ChatMessage {
  std::string role;
  std::string content;
};

// The template sees what transformers passes: messages, add_generation_prompt, tools = none,
// documents = none, and bos_token / eos_token (each left undefined when empty, as transformers
// does for a tokenizer without that token).
std::string apply_chat_template(const std::string& tmpl, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt, const std::string& bos_token = "",
                                const std::string& eos_token = "");

// Same, with messages as JSON (a list of objects that may carry more than role / content, e.g.
// tool_calls) and extra template variables (e.g. tools, date_string, enable_thinking), which
// override the defaults above like apply_chat_template's **kwargs.
std::string apply_chat_template_json(const std::string& tmpl, const nlohmann::ordered_json& messages,
                                     bool add_generation_prompt, const std::string& bos_token = "",
                                     const std::string& eos_token = "",
                                     const nlohmann::ordered_json& extra_context = nlohmann::ordered_json::object());

}  // namespace skv::tokenizer
