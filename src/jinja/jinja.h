#pragma once
// A Jinja2 subset, written by hand because no Debian-packaged C++ library renders the
// templates shipped with Hugging Face models. Values are nlohmann::json.
//
// Semantics follow jinja2 3.1 as transformers uses it (ImmutableSandboxedEnvironment with
// loopcontrols, plus the globals raise_exception / strftime_now / namespace / dict and its
// json.dumps-based `tojson` filter). Supported: text, {{ }}, {# #}, whitespace control (-/+),
// trim_blocks / lstrip_blocks, if/elif/else, for (else, `if` filter, tuple targets, loop.*),
// set (incl. namespace attributes and set blocks), macro, break/continue, with, filter blocks,
// raw, transformers' {% generation %}; Python-semantics expressions, filters, tests and
// str/dict/list methods. Not supported: extends/include/import/call blocks, autoescape.
// Known gaps: case mapping (upper/lower/title...) is ASCII-only.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace skv::jinja {

struct Options {
  bool trim_blocks = true;  // transformers renders chat templates with both enabled
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;  // jinja2 default: one trailing newline of the source is dropped
};

// A parsed template; render() may be called many times (and concurrently: rendering keeps its
// state on the stack).
class Template {
 public:
  // Throws skv::Error naming the line on a syntax error, unknown filter / test or tag.
  explicit Template(const std::string& source, const Options& opts = {});
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // The context keeps its key order (Python dicts do; tojson output depends on it). Throws
  // skv::Error naming the line on a runtime error, including the template's own
  // raise_exception(...).
  std::string render(const nlohmann::ordered_json& context) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Throws skv::Error naming the line and the construct on a syntax or runtime error
// (including the template's own raise_exception(...)).
std::string render(const std::string& tmpl, const nlohmann::ordered_json& context, const Options& opts = {});
// nlohmann::json sorts object keys; prefer the ordered_json overload when key order matters.
std::string render(const std::string& tmpl, const nlohmann::json& context, const Options& opts = {});

}  // namespace skv::jinja
