#pragma once
// A Jinja2 subset, written by hand because no Debian-packaged C++ library renders the
// templates shipped with Hugging Face models. Values are nlohmann::json.
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace skv::jinja {

struct Options {
  bool trim_blocks = true;   // transformers renders chat templates with both enabled
  bool lstrip_blocks = true;
};

// Throws skv::Error naming the line and the construct on a syntax or runtime error
// (including the template's own raise_exception(...)).
std::string render(const std::string& tmpl, const nlohmann::json& context, const Options& opts = {});

}  // namespace skv::jinja
