// `swiftkv chat-template`: render a chat template for a list of messages, byte-for-byte what
// transformers' apply_chat_template(..., tokenize=False) returns.
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "io/read_file.h"
#include "tokenizer/chat_template.h"

namespace skv::cli {

namespace {

const char* kUsage =
    "usage: swiftkv chat-template --template FILE --messages-json FILE [flags]\n"
    "\n"
    "Renders a Jinja chat template (as transformers' apply_chat_template does) and prints the\n"
    "text to stdout exactly, with no trailing newline added.\n"
    "\n"
    "  --template FILE          file holding the raw Jinja template text\n"
    "  --messages-json FILE     JSON array of messages, e.g. [{\"role\":\"user\",\"content\":\"Hi\"}];\n"
    "                           '-' reads stdin. Messages may carry extra keys (tool_calls...)\n"
    "  --add-generation-prompt  end with the assistant header so the model answers next\n"
    "  --bos-token S            value of bos_token (left undefined when not given)\n"
    "  --eos-token S            value of eos_token (left undefined when not given)\n"
    "  --context-json FILE      JSON object of extra template variables (tools, date_string,\n"
    "                           enable_thinking, ...)\n"
    "  -h, --help               show this help\n";

// '-' means stdin for this command's flags only; read_file takes '-' as a file name.
std::string read_input(const std::string& path, const char* what) {
  if (path != "-") return io::read_file(path, what);
  std::ostringstream s;
  s << std::cin.rdbuf();
  return s.str();
}

nlohmann::ordered_json read_json(const std::string& path, const char* what) {
  std::string text = read_input(path, what);
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail(what, " ", quote_bounded(path), " is not valid JSON: ", bound_message(e.what(), 300));
  }
}

}  // namespace

int cmd_chat_template(int argc, char** argv) {
  Args args(argc, argv, {"--template", "--messages-json", "--bos-token", "--eos-token", "--context-json"},
            {"--add-generation-prompt", "--help"}, {{"-h", "--help"}});
  if (args.flag("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!args.positional().empty()) fail("unexpected argument ", quote_bounded(args.positional()[0]), " (see --help)");
  std::string tmpl = read_input(args.required("--template"), "template file");
  nlohmann::ordered_json messages = read_json(args.required("--messages-json"), "messages file");
  if (!messages.is_array()) fail("messages file '", args.required("--messages-json"), "' must hold a JSON array");
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  if (auto path = args.opt("--context-json")) {
    extra = read_json(*path, "context file");
    if (!extra.is_object()) fail("context file ", quote_bounded(*path), " must hold a JSON object");
  }
  std::string out =
      tokenizer::apply_chat_template_json(tmpl, messages, args.flag("--add-generation-prompt"),
                                          args.str("--bos-token", ""), args.str("--eos-token", ""), extra);
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0)
    fail("failed writing to stdout");
  return 0;
}

}  // namespace skv::cli
