#pragma once
// Tokens to the AST. As in jinja2, an unknown filter, test or tag fails here, when the template
// is loaded, rather than when a render reaches it.
#include <vector>

#include "jinja/ast.h"
#include "jinja/lexer.h"

namespace skv::jinja::detail {

Body parse(const std::vector<Token>& tokens);

}  // namespace skv::jinja::detail
