// The public entry points of jinja/jinja.h: lex, parse, then render with the interpreter.
#include "core/error.h"
#include "jinja/builtins.h"
#include "jinja/jinja.h"
#include "jinja/json.h"
#include "jinja/parser.h"
#include "jinja/runtime.h"

namespace skv::jinja {

struct Template::Impl {
  detail::Body body;
};

Template::Template(const std::string& source, const Options& opts) : impl_(std::make_unique<Impl>()) {
  impl_->body = detail::parse(detail::tokenize(source, opts));
}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const nlohmann::ordered_json& context) const {
  if (!context.is_object() && !context.is_null()) skv::fail("jinja: the template context must be a JSON object");
  detail::ValueDict globals;
  detail::add_globals(globals);
  try {
    if (context.is_object())
      for (auto it = context.begin(); it != context.end(); ++it)
        globals.set(detail::Value::str(it.key()), detail::from_json(it.value()));
  } catch (const detail::Failure& f) {
    skv::fail("jinja: ", f.msg);
  }
  detail::Interp interp(globals);
  std::string out;
  interp.run(impl_->body, out);
  return out;
}

std::string render(const std::string& tmpl, const nlohmann::ordered_json& context, const Options& opts) {
  return Template(tmpl, opts).render(context);
}

std::string render(const std::string& tmpl, const nlohmann::json& context, const Options& opts) {
  return Template(tmpl, opts).render(nlohmann::ordered_json(context));
}

}  // namespace skv::jinja
