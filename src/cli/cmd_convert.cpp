// `swiftkv convert`: a base model (HF directory or GGUF) -> a SwiftKV checkpoint directory,
// initialised as docs/swiftkv.md#checkpoint-layout says, ready for distillation or for serving as is.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/config_json.h"
#include "io/gguf.h"
#include "io/hf_export.h"
#include "io/model_files.h"
#include "model/swiftkv.h"
#include "model/swiftkv_weights.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_export.h"
#include "train/calibrate.h"

namespace skv::cli {

namespace {

const char* kUsage =
    "usage: swiftkv convert --model BASE --out DIR|FILE.gguf (--num-key-value-layers M | --swiftkv-fraction F)\n"
    "       [flags]\n"
    "       swiftkv convert --model BASE --out DIR|FILE.gguf --swiftkv-weights FILE.safetensors [--any-base]\n"
    "       swiftkv convert --model SWIFTKV_DIR --base BASE --out FILE.safetensors [--description TEXT]\n"
    "\n"
    "Turns a base model into a SwiftKV checkpoint: a Hugging Face directory (config.json,\n"
    "model.safetensors, tokenizer files, chat template), or, with --out X.gguf and a GGUF base, a\n"
    "SwiftKV GGUF that keeps every base tensor as it is (quantised) and adds the SwiftKV tensors.\n"
    "The SwiftKV tensors are initialised as in the SwiftKV paper:\n"
    "norm_swiftkv = layer M's input norm, q_proj_swiftkv = q_proj, and each group leader's\n"
    "k/v_proj_swiftkv = the mean of its group's k/v_proj; with --calibrate, each k/v_proj_swiftkv\n"
    "is instead the least-squares fit of its group's own K/V projections from norm_swiftkv(x_M)\n"
    "over calibration text. Distil it to recover more quality.\n"
    "\n"
    "  -m, --model PATH             base model: Hugging Face directory or .gguf file\n"
    "  --out DIR|FILE.gguf          output directory (must not exist or must be empty), or a\n"
    "                               .gguf file (must not exist) for a SwiftKV GGUF\n"
    "  --num-key-value-layers M     layers 0..M-1 keep their own K/V (1 <= M < layers)\n"
    "  --swiftkv-fraction F         skip prefill of a fraction F of the layers (0 < F < 1):\n"
    "                               M = layers - round(F * layers), e.g. 0.5 of 32 -> M = 16\n"
    "  --key-value-group-size G     AcrossKV: G consecutive layers >= M share one K/V\n"
    "                               (default 1; G must divide layers - M)\n"
    "  --dtype f32|bf16|f16|fp8     stored dtype. Default: the source's for a Hugging Face\n"
    "                               directory (fp8 for an FP8 one); f32 for GGUF, which holds the\n"
    "                               dequantised values exactly (bf16/f16 would round them). fp8:\n"
    "                               compressed-tensors, as llm-compressor writes it: every decoder\n"
    "                               Linear F8_E4M3 with a per-channel scale, the rest bf16\n"
    "                               (docs/fp8.md)\n"
    "  --swiftkv-dtype f32|f16|q8_0 SwiftKV GGUF only: how the SwiftKV projections are stored\n"
    "                               (default f16); norms stay F32, base tensors untouched\n"
    "  --calibrate FILE[,FILE...]   fit k/v_proj_swiftkv (and biases) by ridge regression on the\n"
    "                               teacher's K/V over these files (.txt, or .jsonl with text /\n"
    "                               messages / token_ids lines, as distill reads them); prints each\n"
    "                               later layer's relative K/V error before and after. Use training\n"
    "                               prose, never an evaluation set\n"
    "  --calibrate-q                also fit every later layer's q_proj_swiftkv, layer by layer, to\n"
    "                               the teacher's queries from the student's own inputs\n"
    "  --calibration-tokens N       tokens of calibration data used, from the start (default 16384)\n"
    "  --calibration-seq-len N      tokens per calibration sequence (default 1024)\n"
    "  --calibration-ridge R        ridge = R x the mean diagonal of sum h h^T (default 1e-3)\n"
    "  --swiftkv-weights FILE       take the SwiftKV tensors (and M, G) from a SwiftKV weights file,\n"
    "                               e.g. the trained ones in weights/ (docs/swiftkv.md), instead of\n"
    "                               initialising them; the file must have been made on this base\n"
    "                               (its fingerprint is checked)\n"
    "  --any-base                   use --swiftkv-weights on a base with another fingerprint (the\n"
    "                               same model in another format or quantisation: quality unmeasured)\n"
    "  --base BASE                  with --out X.safetensors: write the SwiftKV tensors of --model\n"
    "                               (a SwiftKV checkpoint, e.g. from distill) alone, bf16, as a\n"
    "                               SwiftKV weights file for BASE, the model it was made from\n"
    "  --description TEXT           recorded in the weights file (recipe, quality)\n"
    "  --force                      replace a non-empty --out that holds a model\n"
    "  -h, --help                   show this help\n";

std::string megabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

// Fits the SwiftKV K/V projections of `files` (train/calibrate.h) and prints what it did.
void calibrate_model(io::ModelFiles& files, const std::string& model_path, const std::vector<std::string>& data,
                     int64_t tokens, int64_t seq_len, double ridge, bool fit_q) {
  // Pre-tokenised data needs no tokenizer (tiny test models have none); text data does, and
  // load_documents says so if it is missing.
  std::unique_ptr<tokenizer::Tokenizer> tok;
  try {
    tok = tokenizer::Tokenizer::from_path(model_path);
  } catch (const Error&) {
  }
  train::LoadOptions lo;
  lo.vocab_size = files.config.vocab_size;
  const std::vector<train::Document> docs = train::load_documents(data, tok.get(), lo);
  const std::vector<train::PackedSequence> seqs = train::calibration_sequences(docs, tokens, seq_len);
  const int64_t have = train::count_tokens(seqs);
  if (have == 0) fail("--calibrate: the calibration data holds no tokens");
  const int64_t passes = fit_q ? files.config.num_layers - files.config.num_key_value_layers : 1;
  Progress progress("calibrate", "sequence passes", static_cast<int64_t>(seqs.size()) * passes);
  progress.rate_in("tokens");
  int64_t last_tokens = 0;
  train::CalibrationOptions opt;
  opt.ridge = ridge;
  opt.fit_q = fit_q;
  opt.on_sequence = [&](int64_t, int64_t, int64_t t) {
    progress.advance(1, "", t - last_tokens);
    last_tokens = t;
  };
  const train::CalibrationResult r = train::calibrate_swiftkv(files, seqs, opt);
  progress.finish();
  std::fprintf(stderr,
               "swiftkv convert: calibrated on %lld tokens (%zu sequences of <= %lld) in %.1f s, ridge %.3g "
               "(lambda %.4g)%s\n",
               static_cast<long long>(r.tokens), seqs.size(), static_cast<long long>(seq_len), progress.seconds(),
               ridge, r.lambda, have < tokens ? " - the data held fewer tokens than --calibration-tokens" : "");
  std::fprintf(stderr, "  relative error ||fit - teacher|| / ||teacher|| of each later layer's K and V%s:\n",
               fit_q ? " (and Q, from the student's inputs)" : "");
  std::fprintf(stderr, "  layer   K before   K after   V before   V after%s\n", fit_q ? "   Q before   Q after" : "");
  for (const train::CalibrationLayerError& e : r.layers) {
    std::fprintf(stderr, "  %5lld   %8.4f  %8.4f   %8.4f  %8.4f", static_cast<long long>(e.layer), e.k_before,
                 e.k_after, e.v_before, e.v_after);
    if (fit_q) std::fprintf(stderr, "   %8.4f  %8.4f", e.q_before, e.q_after);
    std::fprintf(stderr, "\n");
  }
}

// convert --model SWIFTKV_DIR --base BASE --out FILE.safetensors: the SwiftKV tensors alone.
int extract_swiftkv_weights(const Args& args, const std::string& model_path, const std::string& out) {
  if (!out.ends_with(".safetensors")) fail("--base writes a SwiftKV weights file: give --out FILE.safetensors");
  const std::string base_path = args.str("--base", "");
  if (base_path.empty())
    fail("--out ", out, " writes a SwiftKV weights file: give --base BASE, the model ", model_path, " was made from");
  for (const char* f : {"--num-key-value-layers", "--swiftkv-fraction", "--key-value-group-size", "--dtype",
                        "--swiftkv-dtype", "--calibrate", "--swiftkv-weights"})
    if (args.has(f)) fail(f, " does not apply when writing a SwiftKV weights file (--out X.safetensors)");
  if (args.flag("--any-base") || args.flag("--calibrate-q"))
    fail("--any-base and --calibrate-q do not apply when writing a SwiftKV weights file");
  if (std::filesystem::exists(out) && !args.flag("--force")) fail(out, " already exists; pass --force to replace it");
  const auto start = std::chrono::steady_clock::now();
  const io::ModelFiles ckpt = io::open_model_files(model_path);
  const io::ModelFiles base = io::open_model_files(base_path);
  const uint64_t bytes = model::write_swiftkv_weights(ckpt, base, out, args.str("--description", ""));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr,
               "swiftkv convert: wrote %s: the SwiftKV tensors of %s (M = %lld, G = %lld), bf16, %s, for base %s, "
               "in %.1f s\n",
               out.c_str(), model_path.c_str(), static_cast<long long>(ckpt.config.num_key_value_layers),
               static_cast<long long>(ckpt.config.key_value_group_size), megabytes(bytes).c_str(), base_path.c_str(),
               secs);
  return 0;
}

}  // namespace

int cmd_convert(int argc, char** argv) {
  Args args(argc, argv,
            {"--model", "--out", "--num-key-value-layers", "--swiftkv-fraction", "--key-value-group-size", "--dtype",
             "--swiftkv-dtype", "--calibrate", "--calibration-tokens", "--calibration-seq-len", "--calibration-ridge",
             "--swiftkv-weights", "--base", "--description"},
            {"--force", "--help", "--calibrate-q", "--any-base"}, {{"-m", "--model"}, {"-h", "--help"}});
  if (args.flag("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!args.positional().empty()) fail("unexpected argument ", quote_bounded(args.positional()[0]), " (see --help)");
  const std::string model_path = args.required("--model");
  const std::string out = args.required("--out");
  if (out.ends_with(".safetensors") || args.has("--base") || args.has("--description"))
    return extract_swiftkv_weights(args, model_path, out);
  // Everything checkable without the model is checked first, so a typo fails fast.
  const bool by_layers = args.has("--num-key-value-layers");
  const std::optional<std::string> weights = args.opt("--swiftkv-weights");
  if (weights) {
    for (const char* f : {"--num-key-value-layers", "--swiftkv-fraction", "--key-value-group-size", "--calibrate"})
      if (args.has(f)) fail(f, " cannot be combined with --swiftkv-weights, which sets the SwiftKV tensors and M, G");
    if (weights->empty()) fail("--swiftkv-weights needs a file");
    model::read_swiftkv_weights_info(*weights);  // not a weights file: fail before loading the model
  } else {
    if (args.flag("--any-base")) fail("--any-base applies to --swiftkv-weights FILE");
    if (by_layers == args.has("--swiftkv-fraction"))
      fail("give exactly one of --num-key-value-layers and --swiftkv-fraction (or --swiftkv-weights FILE)");
  }
  const int64_t fixed_m = args.integer("--num-key-value-layers", 1);
  if (fixed_m < 1) fail("--num-key-value-layers must be at least 1, got ", fixed_m);
  const double fraction = args.real("--swiftkv-fraction", 0.5);
  if (!(fraction > 0.0 && fraction < 1.0))
    fail("--swiftkv-fraction must be strictly between 0 and 1, got ", args.str("--swiftkv-fraction", ""));
  int64_t group = args.integer("--key-value-group-size", 1);
  if (group < 1) fail("--key-value-group-size must be at least 1, got ", group);
  std::optional<DType> dtype;
  if (auto d = args.opt("--dtype")) dtype = io::parse_export_dtype(*d);
  const bool to_gguf = out.size() > 5 && out.ends_with(".gguf");
  DType swiftkv_dtype = DType::F16;
  if (auto d = args.opt("--swiftkv-dtype")) {
    if (!to_gguf) fail("--swiftkv-dtype applies to a SwiftKV GGUF (--out X.gguf); use --dtype for a directory");
    if (*d == "f32")
      swiftkv_dtype = DType::F32;
    else if (*d == "f16")
      swiftkv_dtype = DType::F16;
    else if (*d == "q8_0")
      swiftkv_dtype = DType::Q8_0;
    else
      fail("--swiftkv-dtype must be f32, f16 or q8_0, got ", quote_bounded(*d));
  }
  const std::optional<std::string> calibrate = args.opt("--calibrate");
  const int64_t calib_tokens = args.integer("--calibration-tokens", 16384);
  const int64_t calib_seq_len = args.integer("--calibration-seq-len", 1024);
  const double calib_ridge = args.real("--calibration-ridge", 1e-3);
  if (!calibrate) {
    for (const char* f : {"--calibration-tokens", "--calibration-seq-len", "--calibration-ridge"})
      if (args.has(f)) fail(f, " needs --calibrate FILE");
    if (args.flag("--calibrate-q")) fail("--calibrate-q needs --calibrate FILE");
  }
  if (calib_tokens < 1) fail("--calibration-tokens must be at least 1, got ", calib_tokens);
  if (calib_seq_len < 1) fail("--calibration-seq-len must be at least 1, got ", calib_seq_len);
  if (!(calib_ridge >= 0 && std::isfinite(calib_ridge)))
    fail("--calibration-ridge must be a finite number >= 0, got ", args.str("--calibration-ridge", ""));
  std::vector<std::string> calib_files;
  if (calibrate)
    for (const std::string& f : split_commas(*calibrate)) {
      if (f.empty()) fail("--calibrate: empty file name in ", quote_bounded(*calibrate));
      if (!std::filesystem::is_regular_file(f)) fail("--calibrate: ", f, " is not a readable file");
      calib_files.push_back(f);
    }
  if (to_gguf) {
    if (dtype)
      fail("--dtype applies to a directory; a SwiftKV GGUF keeps the base tensors as they are (see --swiftkv-dtype)");
    if (std::filesystem::exists(out) && !args.flag("--force")) fail(out, " already exists; pass --force to replace it");
    if (std::filesystem::is_directory(out)) fail(out, " is a directory; a SwiftKV GGUF is a file");
  } else {
    io::check_export_target(out, model_path, args.flag("--force"));
  }

  const auto start = std::chrono::steady_clock::now();
  io::ModelFiles files = io::open_model_files(model_path);
  if (files.config.swiftkv_checkpoint) fail(model_path, " is already a SwiftKV model; convert its base model instead");
  const int64_t layers = files.config.num_layers;
  int64_t m = 0;
  if (weights) {
    const model::SwiftKVWeightsInfo info = model::apply_swiftkv_weights(files, *weights, args.flag("--any-base"));
    m = info.num_key_value_layers;
    group = info.key_value_group_size;
    std::fprintf(stderr, "swiftkv convert: SwiftKV tensors from %s (M = %lld, G = %lld%s%s)\n", weights->c_str(),
                 static_cast<long long>(m), static_cast<long long>(group), info.description.empty() ? "" : ": ",
                 printable(quote_bounded(info.description, 300)).c_str());
  } else {
    m = by_layers ? fixed_m : model::num_key_value_layers_for_fraction(layers, fraction);
  }

  if (to_gguf) {
    if (files.format != io::ModelFormat::GGUF)
      fail("a SwiftKV GGUF is made from a GGUF base model; ", model_path, " is a Hugging Face directory (write a ",
           "directory with --out DIR instead)");
    if (!weights) model::add_swiftkv_tensors(files, m, group);
    if (!calib_files.empty())
      calibrate_model(files, model_path, calib_files, calib_tokens, calib_seq_len, calib_ridge,
                      args.flag("--calibrate-q"));
    const uint64_t bytes = model::write_swiftkv_gguf(files, out, swiftkv_dtype);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr,
                 "swiftkv convert: wrote %s: num_key_value_layers M = %lld of %lld layers, key_value_group_size G = "
                 "%lld, base tensors as they were, SwiftKV projections %s, %s in %.1f s\n",
                 out.c_str(), static_cast<long long>(m), static_cast<long long>(layers), static_cast<long long>(group),
                 dtype_name(swiftkv_dtype), megabytes(bytes).c_str(), secs);
    return 0;
  }

  io::HfExportOptions opt;
  opt.dtype = dtype.value_or(io::default_export_dtype(files));  // before the F32 group means exist
  opt.replace_existing = args.flag("--force");
  if (files.format == io::ModelFormat::GGUF) {
    opt.extra_files = tokenizer::hf_tokenizer_files_from_gguf(*files.gguf);
    opt.extra_files["generation_config.json"] = io::generation_config_to_json_text(files.config);
  }
  if (!weights) model::add_swiftkv_tensors(files, m, group);
  if (!calib_files.empty())
    calibrate_model(files, model_path, calib_files, calib_tokens, calib_seq_len, calib_ridge,
                    args.flag("--calibrate-q"));
  const io::HfExportResult r = io::export_hf_directory(files, out, opt);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const int64_t cached = m + (layers - m) / group;
  std::fprintf(stderr,
               "swiftkv convert: wrote %s: num_key_value_layers M = %lld of %lld layers, key_value_group_size G = "
               "%lld, KV cache holds %lld layers (%lld + %lld/%lld), %s, %lld tensors, %s in %.1f s\n",
               out.c_str(), static_cast<long long>(m), static_cast<long long>(layers), static_cast<long long>(group),
               static_cast<long long>(cached), static_cast<long long>(m), static_cast<long long>(layers - m),
               static_cast<long long>(group),
               opt.dtype == DType::FP8 ? "fp8 (compressed-tensors; other tensors bfloat16)"
                                       : io::torch_dtype_name(opt.dtype).c_str(),
               static_cast<long long>(r.num_tensors), megabytes(r.bytes_written).c_str(), secs);
  return 0;
}

}  // namespace skv::cli
