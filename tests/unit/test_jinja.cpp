// Unit tests for the Jinja2 subset (jinja/jinja.h) and apply_chat_template.
// Every expected string below was checked against jinja2 3.1 configured the way transformers
// configures it (trim_blocks, lstrip_blocks, loopcontrols, its tojson / raise_exception).
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "core/error.h"
#include "jinja/jinja.h"
#include "tokenizer/chat_template.h"

namespace {

using nlohmann::ordered_json;

std::string R(const std::string& tmpl, const std::string& ctx = "{}") {
  return skv::jinja::render(tmpl, ordered_json::parse(ctx));
}

// The message of the skv::Error the render throws ("" if it does not throw).
std::string Err(const std::string& tmpl, const std::string& ctx = "{}") {
  try {
    R(tmpl, ctx);
  } catch (const skv::Error& e) {
    return e.what();
  }
  return "";
}

struct Case {
  const char* tmpl;
  const char* ctx;
  const char* expected;
};

void Check(const std::vector<Case>& cases) {
  for (const auto& c : cases) EXPECT_EQ(R(c.tmpl, c.ctx), c.expected) << "template: " << c.tmpl;
}

TEST(Jinja, TextAndNewlines) {
  Check({
      {R"J(plain text)J", "{}", R"J(plain text)J"},
      {"one trailing newline is dropped\n", "{}", "one trailing newline is dropped"},
      {"only one\n\n", "{}", "only one\n"},
      {"crlf\r\nand cr\rnormalised", "{}", "crlf\nand cr\nnormalised"},
      {"", "{}", ""},
  });
}

TEST(Jinja, Literals) {
  Check({
      {R"J({{ "s" }}|{{ 's' }}|{{ 42 }}|{{ -7 }}|{{ 1.5 }}|{{ 1.0 }}|{{ 1e3 }}|{{ 1_000 }}|{{ 0x1F }})J", "{}",
       "s|s|42|-7|1.5|1.0|1000.0|1000|31"},
      {R"J({{ true }}|{{ True }}|{{ false }}|{{ none }}|{{ None }})J", "{}", "True|True|False|None|None"},
      {R"J({{ [1, 'a', none, true, 2.5] }}|{{ {'a': 1, "b": [1]} }}|{{ (1, 2) }}|{{ (1,) }}|{{ [] }})J", "{}",
       "[1, 'a', None, True, 2.5]|{'a': 1, 'b': [1]}|(1, 2)|(1,)|[]"},
      {R"J({{ "it's" }}|{{ ["it's", 'say "hi"', "both ' \""] }}|{{ ["a\nb\tc\\"] }})J", "{}",
       R"J(it's|["it's", 'say "hi"', 'both \' "']|['a\nb\tc\\'])J"},
      {R"J({{ "\x41\u00e9\U0001F600\101\d" }}|{{ 'a' 'b' }})J", "{}", "A\u00e9\U0001F600A\\d|ab"},
      {R"J({{ 0.1 + 0.2 }}|{{ 1e16 }}|{{ 1e20 }}|{{ 2.5e-5 }}|{{ 0.0001 }}|{{ 1/3 }}|{{ -0.0 }})J", "{}",
       "0.30000000000000004|1e+16|1e+20|2.5e-05|0.0001|0.3333333333333333|-0.0"},
  });
}

TEST(Jinja, Operators) {
  Check({
      {R"J({{ 1 + 2 }}|{{ 7 / 2 }}|{{ 4 / 2 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 2 ** 10 }})J",
       "{}", "3|3.5|2.0|3|-4|2|-2|1024"},
      // jinja2 quirks: `**` is left-associative, unary minus binds tighter, `{{-` is whitespace control.
      {R"J({{ 2 ** 3 ** 2 }}|{{ -2 ** 2 }}|{{ 1 - -1 }}|{{-1}})J", "{}", "64|4|2|1"},
      {R"J({{ "x" * 3 }}|{{ [1] * 2 }}|{{ [1] + [2] }}|{{ "a" ~ 1 ~ none ~ undefined_var ~ true }})J", "{}",
       "xxx|[1, 1]|[1, 2]|a1NoneTrue"},
      {R"J({{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}|{{ 1 == 1.0 }}|{{ true == 1 }}|{{ (1, 2) == [1, 2] }}|{{ "1" == 1 }})J",
       "{}", "True|False|True|True|False|False"},
      {R"J({{ "a" in "cat" }}|{{ 2 in [1, 2] }}|{{ "k" in {"k": 1} }}|{{ 3 not in [1] }}|{{ not 1 == 2 }})J", "{}",
       "True|True|True|True|True"},
      {R"J({{ 0 or "fallback" }}|{{ 1 and "second" }}|{{ "" and 1 }}|{{ none or [] }})J", "{}", "fallback|second||[]"},
      {R"J({{ "y" if true else "n" }}|{{ "y" if 0 else "n" }}|[{{ "y" if false }}]|{{ 1 if 0 else 2 if 0 else 3 }})J",
       "{}", "y|n|[]|3"},
      {R"J({{ "a" + "b" | upper }}|{{ -3 | abs }}|{{ [1, 2] | length + 1 }})J", "{}", "aB|3|3"},
  });
}

TEST(Jinja, VariablesAndAccess) {
  const char* ctx = R"J({"s": "héllo", "l": [1, 2, 3], "d": {"a": 1, "items": 2, "n": {"x": "deep"}}})J";
  Check({
      {R"J({{ s[1] }}|{{ s[-2:] }}|{{ s[::-1] }}|{{ s | length }}|{{ l[1:] }}|{{ l[::2] }}|{{ l[-2::-1] }}|{{ l[10:] }})J",
       ctx, "é|lo|olléh|5|[2, 3]|[1, 3]|[2, 1]|[]"},
      {R"J({{ d.a }}|{{ d['a'] }}|{{ d.n.x }}|{{ d['n']['x'] }}|{{ l.0 }}|{{ d["items"] }}|{{ d.items() | list }})J",
       ctx, "1|1|deep|deep|1|2|[('a', 1), ('items', 2), ('n', {'x': 'deep'})]"},
      {R"J([{{ missing }}]|[{{ d.zz }}]|[{{ l[9] }}]|{{ d.zz is defined }}|{{ missing is undefined }})J", ctx,
       "[]|[]|[]|False|True"},
      {R"J({{ d.get("a") }}|{{ d.get("zz") }}|{{ d.get("zz", 5) }}|{{ d.keys() | list }}|{{ d.values() | list | length }})J",
       ctx, "1|None|5|['a', 'items', 'n']|3"},
  });
}

TEST(Jinja, WhitespaceControl) {
  Check({
      {"a  {{- ' b ' -}}  c", "{}", "a b c"},
      {"  {% if true %}\n    x\n  {% endif %}\n  y", "{}", "    x\n  y"},
      {"a  {%+ if true %}b{% endif %}  c\n  {%- if true %}d{% endif %}", "{}", "a  b  cd"},
      {"{% if true -%}\n\n  x  \n{%- endif %}!", "{}", "x!"},
      {"{% for i in [1, 2] %}\n{{ i }}\n{% endfor %}\n", "{}", "1\n2\n"},
      {"x {{ 1 }}\n  {{ 2 }}\n", "{}", "x 1\n  2"},  // lstrip_blocks does not touch {{ }}
      {"{# comment #}\na {#- c -#} b\n{#+ c #}\n  {# c #}\nz", "{}", "ab\nz"},
      {"{% raw %}{{ not }}{% endraw %}\n{%- raw -%}  {{ x }}  {%- endraw %}\n", "{}", "{{ not }}{{ x }}"},
      {"  {% set x = 1 %}  \nA", "{}", "  \nA"},
  });
  skv::jinja::Options plain;
  plain.trim_blocks = plain.lstrip_blocks = false;
  EXPECT_EQ(skv::jinja::render("  {% if true %}\n    x\n  {% endif %}\n", ordered_json::object(), plain),
            "  \n    x\n  ");
}

TEST(Jinja, IfElifElse) {
  Check({
      {"{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %}", R"({"x": 2})", "two"},
      {"{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %}", R"({"x": 5})", "many"},
      {"{% if missing %}a{% elif not missing %}b{% endif %}", "{}", "b"},
      {"{% if [] %}a{% elif {} %}b{% elif '' %}c{% elif 0.0 %}d{% else %}e{% endif %}", "{}", "e"},
  });
}

TEST(Jinja, ForLoops) {
  Check({
      {"{% for i in [1, 2, 3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}"
       "{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
       "{}", "1032TrueFalse3;2121FalseFalse3;3210FalseTrue3;"},
      {"{% for i in [1, 2, 3] %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.cycle('a', 'b') }};{% endfor %}", "{}",
       "-2-a;1-3-b;2--a;"},
      {"{% for x in [] %}a{% else %}empty{% endfor %}|{% for x in missing %}a{% else %}undef{% endfor %}", "{}",
       "empty|undef"},
      {"{% for m in ms if m.r != 's' %}{{ m.r }}{{ loop.index }}/{{ loop.length }} {% endfor %}",
       R"({"ms": [{"r": "s"}, {"r": "u"}, {"r": "a"}]})", "u1/2 a2/2 "},
      {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d | items %}{{ k }}{% endfor %}"
       "{% for k in d %}{{ k }}{% endfor %}",
       R"({"d": {"b": 1, "a": 2}})", "b=1;a=2;baba"},
      {"{% for a, b in [[1, 2], (3, 4)] %}{{ a + b }}{% endfor %}{% for (a, b) in [[5, 6]] %}{{ a * b }}{% endfor %}",
       "{}", "3730"},
      {"{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}"
       "{% endfor %}",
       "{}", "0134"},
      {"{% for c in 'héy' %}[{{ c }}]{% endfor %}", "{}", "[h][é][y]"},
      {"{% for i in [1, 2] %}{% for j in 'ab' %}{{ i }}{{ j }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor "
       "%}",
       "{}", "1a1 1b2 1|2a1 2b2 2|"},
  });
}

TEST(Jinja, Scoping) {
  Check({
      // A set inside a loop is per-iteration and does not leak; `if` opens no scope.
      {"{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}", "{}", "01020"},
      {"{% for i in [1, 2] %}{% set y = i %}{% endfor %}[{{ y }}]{% if true %}{% set z = 5 %}{% endif %}{{ z }}", "{}",
       "[]5"},
      {"{% set ns = namespace(found=false, n=0) %}{% for i in [1, 2, 3] %}{% if i > 1 %}{% set ns.found = true %}"
       "{% set ns.n = ns.n + i %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.n }} {{ ns.missing }}|{{ ns['n'] }}",
       "{}", "True 5 |5"},
      {"{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set messages = messages[1:] %}{{ messages | length }}",
       R"({"messages": [1, 2, 3]})", "122"},
      {"{% with a = 1 %}{{ a }}{% endwith %}[{{ a }}]", "{}", "1[]"},
  });
}

TEST(Jinja, MacrosAndBlocks) {
  Check({
      {"{% macro f(a, b='x') %}<{{ a }}|{{ b }}>{% endmacro %}{{ f(1) }}{{ f(2, b=3) }}{{ f(b=4, a=5) }}", "{}",
       "<1|x><2|3><5|4>"},
      {"{% macro g() %}{{ top }}{% endmacro %}{% set top = 7 %}{{ g() }}", "{}", "7"},
      {"{% macro h(n) %}{% if n > 0 %}{{ n }}{{ h(n - 1) }}{% endif %}{% endmacro %}{{ h(3) }}", "{}", "321"},
      {"{% set x %}inner {{ 1 + 1 }}{% endset %}[{{ x }}]{% set y | upper %}shout{% endset %}{{ y }}", "{}",
       "[inner 2]SHOUT"},
      {"{% filter upper %}abc{{ 'd' }}{% endfilter %}", "{}", "ABCD"},
      {"{% generation %}tracked{% endgeneration %}", "{}", "tracked"},
  });
}

TEST(Jinja, Filters) {
  Check({
      {R"J({{ "  x  " | trim }}|{{ "xyx" | trim("x") }}|{{ "AbC" | lower }}|{{ "abc" | upper }}|{{ "aBC" | capitalize }})J",
       "{}", "x|y|abc|ABC|Abc"},
      {R"J({{ "hello world-foo(bar" | title }}|{{ "they're bill" | title }}|{{ "a-b" | replace("-", "+") }}|{{ "aaa" | replace("a", "b", 2) }})J",
       "{}", "Hello World-Foo(Bar|They're Bill|a+b|bba"},
      {R"J({{ [1, 2] | first }}{{ [1, 2] | last }}{{ "ab" | first }}|[{{ [] | first }}]|{{ [1, 2, 3] | count }}|{{ {"a": 1} | length }})J",
       "{}", "12a|[]|3|1"},
      {R"J({{ [1, 2, 3] | join }}|{{ [1, 2, 3] | join(", ") }}|{{ users | join("/", attribute="n") }})J",
       R"({"users": [{"n": "a"}, {"n": "b"}]})", "123|1, 2, 3|a/b"},
      {R"J({{ missing | default("z") }}|{{ none | default("z") }}|{{ none | default("z", true) }}|{{ "" | d("q", true) }})J",
       "{}", "z|None|z|q"},
      {R"J({{ "3.7" | int }}|{{ "x" | int }}|{{ "x" | int(7) }}|{{ 3.9 | int }}|{{ "0x1A" | int(0, 16) }}|{{ true | int }}|{{ "12" | float }}|{{ "a" | float }})J",
       "{}", "3|0|7|3|26|1|12.0|0.0"},
      {R"J({{ 1.5 | round }}|{{ 2.5 | round }}|{{ 2.675 | round(2) }}|{{ 3 | round }}|{{ 3.14159 | round(2, "floor") }}|{{ 1.21 | round(1, "ceil") }})J",
       "{}", "2.0|2.0|2.67|3|3.14|1.3"},
      {R"J({{ 5 | string }}{{ 5 | string | length }}|{{ [1, 2] | list }}|{{ "ab" | list }}|{{ {"a": 1} | items | list }}|{{ "x" | safe }})J",
       "{}", "51|[1, 2]|['a', 'b']|[('a', 1)]|x"},
      {R"J({{ "a\nb\n\nc" | indent(2) }}|{{ "a\nb" | indent(2, true) }}|{{ "a\n\nb" | indent(2, blank=true) }}|{{ "x\ny" | indent }})J",
       "{}", "a\n  b\n\n  c|  a\n  b|a\n  \n  b|x\n    y"},
      {R"J({{ [3, 1, 2] | sort }}{{ ["b", "A", "a"] | sort }}{{ [3, 1, 2] | sort(reverse=true) }}{{ l | sort(attribute="n") | map(attribute="n") | list }})J",
       R"({"l": [{"n": 2}, {"n": 1}]})", "[1, 2, 3]['A', 'a', 'b'][3, 2, 1][1, 2]"},
      {R"J({{ [1, 2, 1] | unique | list }}{{ "abc" | reverse }}{{ [1, 2] | reverse | list }}{{ [1, 2, 3] | sum }}{{ [1, 5, 2] | max }}{{ ["b", "A"] | min }})J",
       "{}", "[1, 2]cba[2, 1]65A"},
      {R"J({{ "%s-%d" | format("a", 3) }}|{{ "%05.2f" | format(3.14159) }}|{{ "Hello World" | wordcount }}|{{ range(5) | batch(2) | list }})J",
       "{}", "a-3|03.14|2|[[0, 1], [2, 3], [4]]"},
      {R"J({{ "hello world foo bar baz" | truncate(12) }}|{{ "hello world foo bar baz" | truncate(12, true) }}|{{ "<a&'>" | e }}|{{ {"b": 1, "a": 2} | dictsort }})J",
       "{}", "hello...|hello wor...|&lt;a&amp;&#39;&gt;|[('a', 2), ('b', 1)]"},
  });
}

TEST(Jinja, SelectMap) {
  const char* ctx = R"J({"l": [{"a": 1, "r": "user"}, {"a": 0, "b": 2, "r": "system"}]})J";
  Check({
      {R"J({{ l | selectattr("a") | list | length }}|{{ l | selectattr("r", "equalto", "user") | map(attribute="a") | first }})J",
       ctx, "1|1"},
      {R"J({{ l | rejectattr("b", "defined") | map(attribute="r") | list }}|{{ l | selectattr("b", "defined") | map(attribute="b") | join }})J",
       ctx, "['user']|2"},
      {R"J({{ l | map(attribute="zz", default="-") | join }}|{{ ["a", "b"] | map("upper") | join }}|{{ [1, 2, 3, 4] | select("even") | list }}|{{ [1, none] | reject("none") | list }})J",
       ctx, "--|AB|[2, 4]|[1]"},
      {R"J({{ l | selectattr("r", "in", ["system", "tool"]) | list | length }}|{{ [0, 1, 2] | select | list }})J", ctx,
       "1|[1, 2]"},
  });
}

TEST(Jinja, Tests) {
  Check({
      {R"J({{ x is string }}{{ x is number }}{{ x is mapping }}{{ x is iterable }}{{ x is sequence }}{{ x is none }})J",
       R"({"x": "s"})", "TrueFalseFalseTrueTrueFalse"},
      {R"J({{ 1 is number }}{{ true is number }}{{ true is integer }}{{ 1.0 is float }}{{ true is boolean }}{{ none is none }})J",
       "{}", "TrueTrueFalseTrueTrueTrue"},
      {R"J({{ {} is mapping }}{{ [] is iterable }}{{ missing is iterable }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }})J",
       "{}", "TrueTrueTrueTrueTrueTrue"},
      {R"J({{ x is eq "s" }}{{ x is equalto "t" }}{{ 1 is in [1] }}{{ true is true }}{{ 1 is true }}{{ false is false }})J",
       R"({"x": "s"})", "TrueFalseTrueTrueFalseTrue"},
      {R"J({{ x is not none }}{{ not x is defined }}{{ x is lower }}{{ "AB" is upper }}{{ 3 is gt 2 }}{{ 3 is lt 2 }})J",
       R"({"x": "s"})", "TrueFalseTrueTrueTrueFalse"},
  });
}

TEST(Jinja, StringMethods) {
  Check({
      {R"J({{ "  a b  ".split() }}|{{ "a,b,,c".split(",") }}|{{ "a b c".split(" ", 1) }}|{{ "a b c".rsplit(" ", 1) }})J",
       "{}", "['a', 'b']|['a', 'b', '', 'c']|['a', 'b c']|['a b', 'c']"},
      {R"J({{ "xxhixx".strip("x") }}|{{ " a ".lstrip() }}|{{ " a ".rstrip() }}|{{ "\u3000a\n".strip() }}|{{ "</think>\n\nx".split("</think>")[-1].lstrip("\n") }})J",
       "{}", "hi|a | a|a|x"},
      {R"J({{ "abc".startswith("ab") }}{{ "abc".endswith(("x", "c")) }}{{ "héllo".find("l") }}{{ "ab".count("a") }}{{ "a b".replace(" ", "_") }})J",
       "{}", "TrueTrue21a_b"},
      {R"J({{ "x".upper() }}{{ "X".lower() }}{{ "they're bill".title() }}{{ "ab".capitalize() }}{{ "-".join(["a", "b"]) }}{{ "x{}y{}".format(1, "b") }})J",
       "{}", "XxThey'Re BillAba-bx1yb"},
      {R"J({{ "a\nb\r\nc".splitlines() }}|{{ "12".isdigit() }}|{{ "ab".isalpha() }}|{{ "k=v".partition("=") }})J", "{}",
       "['a', 'b', 'c']|True|True|('k', '=', 'v')"},
  });
}

TEST(Jinja, ToJson) {
  Check({
      {R"J({{ v | tojson }})J", R"J({"v": {"b": 1, "a": [1, 2.5, null, true, "é\n\"x\u0001"]}})J",
       "{\"b\": 1, \"a\": [1, 2.5, null, true, \"é\\n\\\"x\\u0001\"]}"},
      {R"J({{ v | tojson(indent=2) }})J", R"J({"v": {"a": [1, {}], "b": []}})J",
       "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n}"},
      {R"J({{ v | tojson(separators=(",", ":")) }}|{{ v | tojson(sort_keys=true) }}|{{ "é😀" | tojson(ensure_ascii=true) }})J",
       R"J({"v": {"b": 1, "a": 2}})J", "{\"b\":1,\"a\":2}|{\"a\": 2, \"b\": 1}|\"\\u00e9\\ud83d\\ude00\""},
      {R"J({{ "<tag>&'" | tojson }}|{{ 1.0 | tojson }}|{{ none | tojson }}|{{ (1, "a") | tojson }})J", "{}",
       "\"<tag>&'\"|1.0|null|[1, \"a\"]"},
  });
}

bool Has(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

TEST(Jinja, SyntaxErrorsNameTheLine) {
  // Unknown filters / tests are rejected when parsing, even in branches that never run.
  std::string e = Err("a\n{{ x | nope }}");
  EXPECT_TRUE(Has(e, "line 2") && Has(e, "no filter named 'nope'")) << e;
  e = Err("{% if false %}\n\n{{ x is nope }}{% endif %}");
  EXPECT_TRUE(Has(e, "line 3") && Has(e, "no test named 'nope'")) << e;
  e = Err("ok\n\n{{ 'x' ");
  EXPECT_TRUE(Has(e, "line 3") && Has(e, "unterminated")) << e;
  e = Err("{% for x in y %}\n{{ x }}");
  EXPECT_TRUE(Has(e, "end of template") && Has(e, "'endfor'")) << e;
  e = Err("{% if x %}\n{% endfor %}");
  EXPECT_TRUE(Has(e, "line 2") && Has(e, "unknown tag 'endfor'") && Has(e, "'if' from line 1")) << e;
  EXPECT_TRUE(Has(Err("{% frobnicate %}"), "unknown tag 'frobnicate'"));
  EXPECT_TRUE(Has(Err("{% break %}"), "outside of a for loop"));
  EXPECT_TRUE(Has(Err("x\n{# open"), "line 2: missing end of comment tag"));
  EXPECT_TRUE(Has(Err("{{ 'a' + }}"), "line 1"));
  EXPECT_TRUE(Has(Err("{{ (1, 2]] }}"), "unexpected ']'"));
  EXPECT_TRUE(Has(Err("{% include 'x.jinja' %}"), "not supported"));
  EXPECT_TRUE(Has(Err("{{ a ! b }}"), "unexpected char '!'"));
}

TEST(Jinja, RuntimeErrorsNameTheLine) {
  std::string e = Err("line one\n{{ raise_exception('Conversation roles must alternate') }}");
  EXPECT_TRUE(Has(e, "line 2") && Has(e, "raise_exception: Conversation roles must alternate")) << e;
  EXPECT_TRUE(Has(Err("{{ foo.bar }}"), "'foo' is undefined"));
  EXPECT_TRUE(Has(Err("{{ d.x.y }}", R"({"d": {}})"), "'dict object' has no attribute 'x'"));
  EXPECT_TRUE(Has(Err("{{ messages[0].role }}", R"({"messages": []})"), "list object has no element 0"));
  EXPECT_TRUE(Has(Err("{{ 'a' + 1 }}"), "can only concatenate str (not \"int\") to str"));
  EXPECT_TRUE(Has(Err("{{ l.append(1) }}", R"({"l": []})"), "access to attribute 'append' of 'list' object is unsafe"));
  EXPECT_TRUE(Has(Err("{{ l | selectattr('a') | length }}", R"({"l": []})"), "'generator' has no len()"));
  EXPECT_TRUE(Has(Err("{{ 1 // 0 }}"), "division"));
  EXPECT_TRUE(Has(Err("{% set x = 1 %}{% set x.y = 2 %}"), "non-namespace"));
  EXPECT_TRUE(Has(Err("{% for a, b in [[1, 2, 3]] %}{% endfor %}"), "too many values to unpack"));
  EXPECT_TRUE(Has(Err("{{ undefined_fn() }}"), "'undefined_fn' is undefined"));
  EXPECT_TRUE(Has(Err("{{ 'x' | tojson }}{{ missing | tojson }}"), "not JSON serializable"));
  EXPECT_TRUE(Has(Err("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"), "recursion"));
}

TEST(Jinja, TemplateReuseAndContextTypes) {
  skv::jinja::Template t("{{ a }}-{{ b | default('none') }}");
  EXPECT_EQ(t.render(ordered_json{{"a", 1}}), "1-none");
  EXPECT_EQ(t.render(ordered_json{{"a", "x"}, {"b", 2}}), "x-2");
  // ordered_json keeps the caller's key order (as Python dicts do); plain json sorts keys.
  EXPECT_EQ(R("{{ d | tojson }}", R"({"d": {"z": 1, "a": 2}})"), "{\"z\": 1, \"a\": 2}");
  nlohmann::json sorted = {{"d", {{"z", 1}, {"a", 2}}}};
  EXPECT_EQ(skv::jinja::render("{{ d | tojson }}", sorted), "{\"a\": 2, \"z\": 1}");
}

TEST(Jinja, StrftimeNow) {
  std::string year = R("{{ strftime_now('%Y') }}");
  ASSERT_EQ(year.size(), 4u);
  EXPECT_GE(std::stoi(year), 2024);
  EXPECT_EQ(R("{{ strftime_now is defined }}"), "True");
}

std::string Fixture(const std::string& name) {
  std::string path = std::string(SKV_SOURCE_DIR) + "/tests/fixtures/chat_templates/" + name;
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

TEST(ChatTemplate, SmolLM2) {
  const std::string t = Fixture("smollm2-135m-instruct.jinja");
  EXPECT_EQ(skv::tokenizer::apply_chat_template(t, {{"user", "Hi"}}, true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(skv::tokenizer::apply_chat_template(t, {{"system", "S"}, {"user", "Hi"}, {"assistant", "Yo"}}, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n");
}

TEST(ChatTemplate, Llama31DefaultDate) {
  const std::string t = Fixture("llama-3.1-8b-instruct.jinja");
  EXPECT_EQ(skv::tokenizer::apply_chat_template(t, {{"user", "Hi"}}, true, "<|begin_of_text|>", "<|eot_id|>"),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, Llama2RaisesOnBadRoles) {
  const std::string t = Fixture("llama-2-chat.jinja");
  EXPECT_EQ(skv::tokenizer::apply_chat_template(t, {{"system", "S"}, {"user", " Hi "}, {"assistant", "Yo"}}, false,
                                                "<s>", "</s>"),
            "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\n Hi [/INST] Yo </s>");
  try {
    skv::tokenizer::apply_chat_template(t, {{"user", "a"}, {"user", "b"}}, false, "<s>", "</s>");
    FAIL() << "expected raise_exception";
  } catch (const skv::Error& e) {
    EXPECT_TRUE(Has(e.what(), "Conversation roles must alternate user/assistant/user/assistant/...")) << e.what();
  }
}

TEST(ChatTemplate, ContextVariables) {
  const std::string t =
      "{{ bos_token is defined }}|{{ eos_token }}|{{ tools is none }}|{{ documents is none }}|"
      "{{ add_generation_prompt }}|{{ messages | length }}|{{ messages[0].extra | default('-') }}";
  EXPECT_EQ(skv::tokenizer::apply_chat_template(t, {{"user", "x"}}, true, "", "</s>"), "False|</s>|True|True|True|1|-");
  ordered_json msgs = ordered_json::parse(R"([{"role": "user", "content": "x", "extra": 7}])");
  ordered_json extra = ordered_json::parse(R"({"tools": [{"name": "f"}], "bos_token": "B"})");
  EXPECT_EQ(skv::tokenizer::apply_chat_template_json(t, msgs, false, "", "", extra), "True||False|True|False|1|7");
  EXPECT_THROW(skv::tokenizer::apply_chat_template_json(t, ordered_json::object(), false), skv::Error);
}

}  // namespace
