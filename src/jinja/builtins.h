#pragma once
// What a template can call by name: filters (`x | f`), tests (`x is t`), the methods of str,
// dict and list (found through getattr), and the globals transformers adds. Each follows the
// jinja2 3.1 / CPython behaviour a chat template can observe.
#include <string>

#include "jinja/value.h"

namespace skv::jinja::detail {

// ---- filters (filters.cpp) ----
bool has_filter(const std::string& name);
Value apply_filter(Interp& in, const std::string& name, const Value& v, const Args& args);

// ---- tests (tests.cpp) ----
bool has_test(const std::string& name);
bool apply_test(Interp& in, const std::string& name, const Value& v, const Args& args);

// ---- methods and attributes (methods.cpp) ----
Value get_attr(const Value& obj, const std::string& name);
// Python's getattr alone (the `attr` filter): a dict's keys are not attributes.
Value get_py_attr(const Value& obj, const std::string& name);

// ---- globals (globals.cpp) ----
void add_globals(ValueDict& globals);

}  // namespace skv::jinja::detail
