// `swiftkv tokenize` and `swiftkv detokenize`: JSON in, JSON out, so scripts and the oracle
// tests can drive the tokenizer directly (--input-jsonl batches thousands of strings per run).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace skv::cli {
namespace {

using nlohmann::json;

const char* kTokenizeUsage =
    "usage: swiftkv tokenize --tokenizer PATH (--text TEXT | --input-jsonl FILE) [flags]\n"
    "\n"
    "Prints {\"ids\":[...]} for the text, or one such line per input line.\n"
    "\n"
    "  --tokenizer PATH     tokenizer.json, model directory, or .gguf (alias: --model, -m)\n"
    "  --text TEXT          text to tokenize\n"
    "  --input-jsonl FILE   one JSON string per line ('-' = stdin)\n"
    "  --no-add-special     do not add BOS/EOS from the tokenizer's post-processor\n"
    "  --no-parse-special   treat special tokens written in the text as plain text\n";

const char* kDetokenizeUsage =
    "usage: swiftkv detokenize --tokenizer PATH (--ids 1,2,3 | --input-jsonl FILE) [flags]\n"
    "\n"
    "Prints {\"text\":\"...\"} (bytes that are not valid UTF-8 become U+FFFD).\n"
    "\n"
    "  --tokenizer PATH     tokenizer.json, model directory, or .gguf (alias: --model, -m)\n"
    "  --ids LIST           comma-separated token ids\n"
    "  --input-jsonl FILE   one JSON array of ids per line ('-' = stdin)\n"
    "  --skip-special       leave out special tokens\n";

bool wants_help(int argc, char** argv) {
  for (int i = 0; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") return true;
  return false;
}

const std::map<std::string, std::string> kAliases = {{"--model", "--tokenizer"}, {"-m", "--tokenizer"}};

std::string ids_line(const std::vector<int32_t>& ids) {
  std::string s = "{\"ids\":[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  return s + "]}\n";
}

std::string text_line(const std::string& text) {
  // replace: invalid UTF-8 (a token sequence may end mid-character) still yields valid JSON.
  return json{{"text", text}}.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

// Calls fn(parsed_json, line_number) for every non-empty line of `path` ('-' = stdin).
template <class Fn>
void for_each_jsonl(const std::string& path, Fn fn) {
  std::ifstream file;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) fail("cannot open --input-jsonl file ", quote_bounded(path));
  }
  std::istream& in = path == "-" ? std::cin : file;
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line == "\r") continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      fail(path, ":", n, ": invalid JSON: ", bound_message(e.what(), 300));
    }
    fn(j, n);
  }
}

void write(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  if (wants_help(argc, argv)) return std::fputs(kTokenizeUsage, stdout), 0;
  Args args(argc, argv, {"--tokenizer", "--text", "--input-jsonl"}, {"--no-add-special", "--no-parse-special"},
            kAliases);
  if (!args.positional().empty()) fail("unexpected argument ", quote_bounded(args.positional()[0]), " (see --help)");
  const auto tok = tokenizer::Tokenizer::from_path(args.required("--tokenizer"));
  const bool add_special = !args.flag("--no-add-special");
  const bool parse_special = !args.flag("--no-parse-special");
  if (args.has("--text") == args.has("--input-jsonl")) fail("give exactly one of --text and --input-jsonl");
  if (auto text = args.opt("--text")) {
    write(ids_line(tok->encode(*text, add_special, parse_special)));
    return 0;
  }
  const std::string path = args.required("--input-jsonl");
  std::string out;
  for_each_jsonl(path, [&](const json& j, size_t n) {
    if (!j.is_string()) fail(path, ":", n, ": expected a JSON string");
    out += ids_line(tok->encode(j.get_ref<const std::string&>(), add_special, parse_special));
    if (out.size() > (1 << 20)) write(out), out.clear();
  });
  write(out);
  return 0;
}

int cmd_detokenize(int argc, char** argv) {
  if (wants_help(argc, argv)) return std::fputs(kDetokenizeUsage, stdout), 0;
  Args args(argc, argv, {"--tokenizer", "--ids", "--input-jsonl"}, {"--skip-special"}, kAliases);
  if (!args.positional().empty()) fail("unexpected argument ", quote_bounded(args.positional()[0]), " (see --help)");
  const auto tok = tokenizer::Tokenizer::from_path(args.required("--tokenizer"));
  const bool skip_special = args.flag("--skip-special");
  if (args.has("--ids") == args.has("--input-jsonl")) fail("give exactly one of --ids and --input-jsonl");
  if (auto ids = args.opt("--ids")) {
    write(text_line(tok->decode(parse_id_list(*ids, "--ids"), skip_special)));
    return 0;
  }
  const std::string path = args.required("--input-jsonl");
  std::string out;
  for_each_jsonl(path, [&](const json& j, size_t n) {
    const json& arr = j.is_object() && j.contains("ids") ? j["ids"] : j;
    if (!arr.is_array()) fail(path, ":", n, ": expected a JSON array of token ids");
    std::vector<int32_t> ids;
    for (const auto& v : arr) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
        fail(path, ":", n, ": ", v.dump(), " is not a token id");
      ids.push_back(v.get<int32_t>());
    }
    out += text_line(tok->decode(ids, skip_special));
    if (out.size() > (1 << 20)) write(out), out.clear();
  });
  write(out);
  return 0;
}

}  // namespace skv::cli
