// swiftkv perplexity: llama-perplexity's measurement on the engine core, plus the KL divergence
// of each KV cache dtype from a reference cache (the question a compressed cache raises: how far
// do the model's next-token distributions move, not only its perplexity).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "engine/kv_pool.h"

namespace skv::cli {
namespace {

const char* kHelp = R"(usage: swiftkv perplexity --model PATH -f FILE [flags]

Perplexity of a text, as llama-perplexity measures it: the tokenised file is cut into chunks of
--ctx-size tokens (BOS first when the model's tokenizer adds one), each chunk runs as one
request from an empty cache, and the second half of each chunk is scored (the first half is
its context). With several --kv-cache-dtype values every one is measured on the same chunks,
and each is compared with --kl-reference-kv-dtype position by position: the KL divergence of
its next-token distribution from the reference's, and how often both put the same token first.

  -m, --model PATH          HF model directory or .gguf file
  -f, --file FILE           text to score
  -c, --ctx-size N          tokens per chunk (default 512)
      --chunks N            score only the first N chunks (default: all)
      --kv-cache-dtype LIST comma-separated: auto, f32, f16, bf16, q8_0, fp8 (default f32)
      --kl-reference-kv-dtype T  the cache the others are compared with (default f32)
      --kl-reference-model PATH  compare with another model (same vocabulary) run with the
                            --kl-reference-kv-dtype cache, e.g. a quantised file with the float
                            one it came from (llama-perplexity's --kl-divergence-base); its
                            SwiftKV path when it has one
      --block-size N        KV cache block, in positions (default 16)
  -b, --batch-size N        prompt tokens per engine step (default 512)
  -t, --threads N           CPU threads (default: all cores)
      --no-swiftkv          run a SwiftKV checkpoint's teacher path
      --json                print the results as one JSON object
)";

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// Natural-log softmax of one logits row, in double so the KL of nearly equal rows keeps its digits.
void log_softmax(const float* x, int64_t n, std::vector<double>& out) {
  out.resize(n);
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(x[i]));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(x[i] - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] - lse;
}

struct Acc {
  double nll = 0, nll2 = 0;
  double kl = 0, kl2 = 0, kl_max = 0;
  int64_t n = 0, same_top = 0;
  std::vector<double> kls;  // per position, for percentiles
};

// One chunk through one engine: the logits of every scored position, row-major.
std::vector<float> run_chunk(engine::Engine& eng, const std::vector<int32_t>& chunk, int64_t first, int64_t vocab) {
  const int64_t n_score = static_cast<int64_t>(chunk.size()) - first;
  std::vector<float> logits(static_cast<size_t>(n_score * vocab));
  // Row for position p predicts chunk[p]; positions first..size-1 are scored.
  engine::Request r;
  r.prompt = chunk;
  r.max_tokens = 0;
  r.prompt_logprobs = 0;
  r.prompt_logprobs_from = first;
  r.detokenize = false;
  r.prompt_logits = [&](int64_t pos, const float* row) {
    std::copy(row, row + vocab, logits.begin() + (pos - first) * vocab);
  };
  eng.add(std::move(r));
  bool finished = false;
  while (eng.has_work())
    for (const engine::Event& e : eng.step()) {
      if (!e.error.empty()) fail("chunk failed: ", e.error);
      finished |= e.finished;
    }
  if (!finished) fail("the engine stopped before the chunk finished");
  return logits;
}

}  // namespace

int cmd_perplexity(int argc, char** argv) {
  Args args(argc, argv,
            join({kModelFlags,
                  {"--file", "--chunks", "--kv-cache-dtype", "--kl-reference-kv-dtype", "--kl-reference-model",
                   "--block-size"}}),
            join({kModelBoolFlags, {"--json", "--help"}}), [] {
              auto a = kAliases;
              a["-f"] = "--file";
              return a;
            }());
  if (args.flag("--help")) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const std::string path = args.required("--file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open --file ", path);
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();

  const std::vector<std::string> names = split_list(args.str("--kv-cache-dtype", "f32"));
  if (names.empty()) fail("--kv-cache-dtype lists no dtype");
  std::vector<DType> dtypes;
  for (const std::string& n : names) dtypes.push_back(engine::parse_kv_dtype(n));
  const std::string ref_name = args.str("--kl-reference-kv-dtype", "f32");
  DType ref_dtype = DType::F32;
  try {
    ref_dtype = engine::parse_kv_dtype(ref_name);
  } catch (const Error&) {
    fail("--kl-reference-kv-dtype ", quote_bounded(ref_name, 40), " is not one of auto, f32, f16, bf16, q8_0, fp8");
  }
  const std::string ref_model_path = args.str("--kl-reference-model", "");
  const bool want_kl =
      !ref_model_path.empty() || std::any_of(dtypes.begin(), dtypes.end(), [&](DType d) { return d != ref_dtype; });

  LoadedModel m = load_model(args, true);
  std::unique_ptr<model::LlamaModel> ref_model;
  if (!ref_model_path.empty()) {
    ref_model = model::LlamaModel::load(ref_model_path, model::ModelOptions{});
    if (ref_model->config().vocab_size != m.model->config().vocab_size)
      fail("--kl-reference-model has a vocabulary of ", ref_model->config().vocab_size, " tokens, --model ",
           m.model->config().vocab_size);
  }
  const int64_t ctx = args.integer("--ctx-size", 512);
  if (ctx < 4) fail("--ctx-size must be at least 4, got ", ctx);
  if (ctx > m.model->config().max_position_embeddings)
    fail_resource("--ctx-size ", ctx, " exceeds the model's ", m.model->config().max_position_embeddings, " positions");
  const std::vector<int32_t> ids = m.tokenizer->encode(text, false, false);
  const std::optional<int32_t> bos = m.tokenizer->adds_bos() ? m.tokenizer->bos_id() : std::nullopt;
  int64_t n_chunks = static_cast<int64_t>(ids.size()) / ctx;
  if (n_chunks == 0) fail("--file has ", ids.size(), " tokens, fewer than one chunk of --ctx-size ", ctx);
  const int64_t max_chunks = args.integer("--chunks", -1);
  if (args.has("--chunks") && max_chunks <= 0) fail("--chunks must be positive, got ", max_chunks);
  if (max_chunks > 0) n_chunks = std::min(n_chunks, max_chunks);
  const int64_t first = ctx / 2;  // positions first..ctx-1 are scored
  const int64_t vocab = m.model->config().vocab_size;

  auto make_engine = [&](DType d, const model::LlamaModel& model) {
    engine::EngineOptions o;
    o.block_size = block_size_flag(args);
    o.kv_dtype = d;
    o.max_num_seqs = 1;
    o.max_num_batched_tokens = m.batch_size;
    o.max_model_len = ctx;
    o.num_kv_blocks = (ctx + o.block_size - 1) / o.block_size;
    o.enable_prefix_caching = false;  // every chunk from an empty cache, as llama-perplexity
    return std::make_unique<engine::Engine>(model, nullptr, o);
  };
  std::unique_ptr<engine::Engine> ref = want_kl ? make_engine(ref_dtype, ref_model ? *ref_model : *m.model) : nullptr;
  std::vector<std::unique_ptr<engine::Engine>> engines;
  for (DType d : dtypes) engines.push_back(make_engine(d, *m.model));
  std::fprintf(stderr, "perplexity: %lld tokens, %lld chunks of %lld (scoring %lld positions each)\n",
               static_cast<long long>(ids.size()), static_cast<long long>(n_chunks), static_cast<long long>(ctx),
               static_cast<long long>(ctx - first));

  std::vector<Acc> acc(dtypes.size());
  std::vector<double> lp_ref, lp;
  for (int64_t c = 0; c < n_chunks; ++c) {
    std::vector<int32_t> chunk(ids.begin() + c * ctx, ids.begin() + (c + 1) * ctx);
    if (bos) chunk[0] = *bos;
    std::vector<float> ref_logits;
    if (ref) ref_logits = run_chunk(*ref, chunk, first, vocab);
    for (size_t d = 0; d < dtypes.size(); ++d) {
      const bool is_ref = ref && !ref_model && dtypes[d] == ref_dtype;
      std::vector<float> own;
      if (!is_ref) own = run_chunk(*engines[d], chunk, first, vocab);
      const std::vector<float>& logits = is_ref ? ref_logits : own;
      Acc& a = acc[d];
      for (int64_t i = 0; i < ctx - first; ++i) {
        const float* row = logits.data() + i * vocab;
        log_softmax(row, vocab, lp);
        const double nll = -lp[chunk[first + i]];  // the row that predicts position first + i
        a.nll += nll;
        a.nll2 += nll * nll;
        if (ref) {
          log_softmax(ref_logits.data() + i * vocab, vocab, lp_ref);
          double kl = 0;
          for (int64_t v = 0; v < vocab; ++v) kl += std::exp(lp_ref[v]) * (lp_ref[v] - lp[v]);
          kl = std::max(kl, 0.0);
          a.kl += kl;
          a.kl2 += kl * kl;
          a.kl_max = std::max(a.kl_max, kl);
          a.kls.push_back(kl);
          const auto top = [&](const std::vector<double>& x) {
            return std::max_element(x.begin(), x.end()) - x.begin();
          };
          a.same_top += top(lp_ref) == top(lp);
        }
        ++a.n;
      }
    }
    std::fprintf(stderr, "\rchunk %lld/%lld", static_cast<long long>(c + 1), static_cast<long long>(n_chunks));
  }
  std::fprintf(stderr, "\n");

  nlohmann::json rows = nlohmann::json::array();
  const int64_t n_nll = n_chunks * (ctx - first);
  for (size_t d = 0; d < dtypes.size(); ++d) {
    Acc& a = acc[d];
    const double mean = a.nll / n_nll;
    const double sd = std::sqrt(std::max(0.0, a.nll2 / n_nll - mean * mean));
    const double ppl = std::exp(mean);
    nlohmann::json row = {{"kv_cache_dtype", names[d]},
                          {"kv_bytes_per_token", engines[d]->kv_bytes_per_token()},
                          {"ppl", ppl},
                          {"ppl_stderr", ppl * sd / std::sqrt(static_cast<double>(n_nll))},
                          {"scored_tokens", n_nll}};
    if (ref) {
      const double km = a.kl / a.n;
      const double ksd = std::sqrt(std::max(0.0, a.kl2 / a.n - km * km));
      std::sort(a.kls.begin(), a.kls.end());
      row["kl_mean"] = km;
      row["kl_stderr"] = ksd / std::sqrt(static_cast<double>(a.n));
      row["kl_p99"] = a.kls[static_cast<size_t>(0.99 * (a.kls.size() - 1))];
      row["kl_max"] = a.kl_max;
      row["same_top_token"] = static_cast<double>(a.same_top) / a.n;
    }
    rows.push_back(row);
  }
  const size_t ref_bytes = ref ? ref->kv_bytes_per_token() : engines[0]->kv_bytes_per_token();
  if (args.flag("--json")) {
    std::cout << nlohmann::json{{"model", args.required("--model")},
                                {"file", path},
                                {"ctx_size", ctx},
                                {"chunks", n_chunks},
                                {"kl_reference_kv_dtype", ref ? nlohmann::json(ref_name) : nlohmann::json(nullptr)},
                                {"kl_reference_model",
                                 ref_model ? nlohmann::json(ref_model_path) : nlohmann::json(nullptr)},
                                {"rows", rows}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::printf("| kv dtype | bytes/token | %% of %s | PPL | mean KL | KL p99 | same top token |\n",
              ref ? ref_name.c_str() : names[0].c_str());
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& r : rows) {
    std::printf("| %s | %zu | %.1f%% | %.4f ± %.4f |", r["kv_cache_dtype"].get<std::string>().c_str(),
                r["kv_bytes_per_token"].get<size_t>(), 100.0 * r["kv_bytes_per_token"].get<double>() / ref_bytes,
                r["ppl"].get<double>(), r["ppl_stderr"].get<double>());
    if (r.contains("kl_mean"))
      std::printf(" %.6f ± %.6f | %.6f | %.2f%% |\n", r["kl_mean"].get<double>(), r["kl_stderr"].get<double>(),
                  r["kl_p99"].get<double>(), 100.0 * r["same_top_token"].get<double>());
    else
      std::printf(" - | - | - |\n");
  }
  return 0;
}

}  // namespace skv::cli
