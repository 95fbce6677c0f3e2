#pragma once
// Renders a model's chat template like transformers' apply_chat_template (Jinja2 with
// trim_blocks and lstrip_blocks), using the Jinja subset in tokenizer/jinja.h.
#include <string>
#include <vector>

namespace skv {

struct ChatMessage {
  std::string role;
  std::string content;
};

std::string apply_chat_template(const std::string& tmpl, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt, const std::string& bos_token = "",
                                const std::string& eos_token = "");

}  // namespace skv
