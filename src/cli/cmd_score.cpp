#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"

namespace skv::cli {

int cmd_score(int argc, char** argv) {
  Args args(argc, argv, join({kModelFlags, kCacheFlags, {"--token-ids", "--prompt"}}),
            join({kModelBoolFlags, kEngineBoolFlags, {"--help"}}), kAliases);
  if (args.flag("--help")) {
    std::puts(
        "usage: swiftkv score --model PATH (--token-ids 1,2,3 | --prompt TEXT) [-t N] [-c N] [-b N] [--no-swiftkv]\n"
        "prints {\"token_logprobs\": [null, lp1, ...]}: ln p(token_i | tokens_<i), every position\n"
        "run through every layer");
    std::fputs(kCacheHelp, stdout);
    return 0;
  }
  if (args.has("--prompt") == args.has("--token-ids")) fail("give exactly one of --token-ids or --prompt");
  LoadedModel m = load_model(args, args.has("--prompt"));
  std::vector<int32_t> ids = args.has("--token-ids") ? parse_id_list(args.required("--token-ids"), "--token-ids")
                                                     : m.tokenizer->encode(args.required("--prompt"), true, true);
  // Scoring needs room for the whole sequence, whatever the generation default is.
  const int64_t ctx = std::max<int64_t>(m.context_size, ids.size());
  if (ctx > m.model->config().max_position_embeddings && !args.has("--ctx-size"))
    fail_resource("sequence has ", ids.size(), " tokens, more than the model's ",
                  m.model->config().max_position_embeddings, " positions");
  engine::Session session(*m.model, ctx, m.batch_size, nullptr, engine_options(args));
  std::vector<double> lp = session.score(ids);
  nlohmann::json out = nlohmann::json::array();
  for (double v : lp) out.push_back(std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v));
  std::cout << nlohmann::json{{"token_ids", ids}, {"token_logprobs", out}}.dump() << "\n";
  return 0;
}

}  // namespace skv::cli
