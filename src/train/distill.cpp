#include "train/distill.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/progress.h"
#include "io/atomic_file.h"
#include "io/fingerprint.h"
#include "io/hf_export.h"
#include "io/model_files.h"
#include "tokenizer/tokenizer.h"
#include "train/adamw.h"
#include "train/comm.h"
#include "train/data.h"
#include "train/decontam.h"
#include "train/distill_model.h"
#include "train/teacher_cache.h"
#include "train/train_state.h"

namespace skv::train {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// The settings a resumed run must share with the run that wrote the checkpoint: anything else
// would silently change the loss trajectory. (The number of ranks may differ: the global batch
// and its order do not depend on it.)
Json settings_of(const DistillOptions& o, const io::ModelConfig& c, int64_t total_steps, int64_t seqs_per_step) {
  return Json{{"num_layers", c.num_layers},
              {"num_key_value_layers", c.num_key_value_layers},
              {"key_value_group_size", c.key_value_group_size},
              {"hidden_size", c.hidden_size},
              {"total_steps", total_steps},
              {"sequences_per_step", seqs_per_step},
              {"max_seq_len", o.max_seq_len},
              {"lr", o.lr},
              {"warmup_ratio", o.warmup_ratio},
              {"weight_decay", o.weight_decay},
              {"max_grad_norm", o.max_grad_norm},
              {"temperature", o.temperature},
              {"kl_weight", o.kl_weight},
              {"hidden_loss_weight", o.hidden_loss_weight},
              {"seed", o.seed},
              {"teacher_top_k", o.teacher_cache.empty() ? int64_t{0} : o.teacher_top_k}};
}

void check_same_settings(const Json& saved, const Json& now, const std::string& path) {
  for (auto it = now.begin(); it != now.end(); ++it) {
    // Checkpoints from before the teacher cache ran without one.
    if (it.key() == "teacher_top_k" && !saved.contains(it.key()) && it.value() == 0) continue;
    if (!saved.contains(it.key()))
      fail("checkpoint ", path, " does not record ", quote_bounded(it.key()), "; it was written by another version");
    if (saved[it.key()] != it.value())
      fail("cannot resume from ", path, ": ", it.key(), " was ", saved[it.key()].dump(), " and is now ",
           it.value().dump(), " (resume with the original settings, or start a new run in another directory)");
  }
}

// Keeps the metrics lines of steps <= `step` (those the checkpoint includes).
void truncate_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      if (Json::parse(line).value("step", int64_t{0}) > step) continue;
    } catch (const std::exception&) {
      continue;  // a line torn by the crash
    }
    kept += line + "\n";
  }
  io::write_file_atomic(path, kept);
}

// Opens the teacher cache of this run, first computing whatever it still lacks (every rank its
// share of the sequences); a fresh cache also reports how its KL compares with the live one.
std::unique_ptr<TeacherCache> open_teacher_cache(const DistillOptions& o, DistillModel& dm, const DataLoader& loader,
                                                 DistillResult& res) {
  Comm& comm = Comm::world();
  const bool lead = comm.rank() == 0;
  const io::ModelConfig& c = dm.config();
  const auto t_cache = Clock::now();
  if (o.teacher_top_k < 0 || o.teacher_top_k > c.vocab_size)
    fail("--teacher-top-k must be in 0..", c.vocab_size, ", got ", o.teacher_top_k);
  TeacherCacheSpec spec;
  spec.hidden = c.hidden_size;
  spec.k = o.teacher_top_k;
  spec.temperature = o.temperature;
  std::set<std::string> trained;
  for (const ParamSlot& s : dm.slots()) trained.insert(s.name);
  spec.model_fingerprint = io::hex64(
      io::tensors_fingerprint(dm.files(), [&trained](const std::string& name) { return !trained.count(name); }));
  spec.data_fingerprint = io::hex64(loader.fingerprint());
  for (const PackedSequence& s : loader.sequences()) spec.lengths.push_back(s.size());
  if (lead) TeacherCache::prepare(o.teacher_cache, spec);
  comm.barrier();
  auto cache = std::make_unique<TeacherCache>(o.teacher_cache, spec, true);
  if (cache->complete() < cache->size()) {
    if (lead)
      std::fprintf(stderr, "distill: teacher cache %s: %lld of %lld sequences to compute, %.2f GB in all (%s)\n",
                   o.teacher_cache.c_str(), static_cast<long long>(cache->size() - cache->complete()),
                   static_cast<long long>(cache->size()), TeacherCache::total_bytes(spec) / 1e9,
                   o.teacher_top_k == 0 ? "final hidden states, full KL"
                                        : ("top " + std::to_string(o.teacher_top_k) + " log-probs").c_str());
    LossWeights lw;
    lw.temperature = o.temperature;
    lw.kl_scale = o.temperature * o.temperature;
    // How far the cached KL is from the live one, on the first sequences at the current weights.
    if (cache->complete() == 0 && lead) {
      for (int64_t i = 0; i < std::min<int64_t>(4, cache->size()); ++i) {
        const PackedSequence& s = loader.sequences()[i];
        const TeacherTargetBuffers t = dm.teacher_targets(s.ids.data(), s.positions.data(), s.doc_start.data(),
                                                          s.size(), o.temperature, o.teacher_top_k);
        res.live_kl += dm.evaluate(s.ids.data(), s.positions.data(), s.doc_start.data(), s.size(), lw).kl;
        res.cached_kl += dm.evaluate_cached(t.view(), s.positions.data(), s.doc_start.data(), s.size(), lw).kl;
      }
      std::fprintf(stderr, "distill: KL x T^2 on the first sequences: from the cache %.6g, live %.6g (ratio %.6f)\n",
                   res.cached_kl, res.live_kl, res.live_kl > 0 ? res.cached_kl / res.live_kl : 1.0);
    }
    Progress progress("teacher cache", "sequences", cache->size(), cache->complete(), lead);
    progress.rate_in("tokens");
    const int64_t block = 8 * comm.size();  // sequences between commits
    for (int64_t b0 = cache->complete(); b0 < cache->size(); b0 += block) {
      const int64_t b1 = std::min(cache->size(), b0 + block);
      double tokens = 0;
      for (int64_t i = b0 + comm.rank(); i < b1; i += comm.size()) {
        const PackedSequence& s = loader.sequences()[i];
        cache->write(i, dm.teacher_targets(s.ids.data(), s.positions.data(), s.doc_start.data(), s.size(),
                                           o.temperature, o.teacher_top_k));
        tokens += static_cast<double>(s.size());
      }
      cache->sync();
      comm.allreduce_sum(&tokens, 1);  // also the barrier: every rank's records are on disk
      cache->commit(b1, lead);
      progress.advance(b1 - b0, "", static_cast<int64_t>(tokens));
    }
    progress.finish();
  }
  res.cache_seconds = std::chrono::duration<double>(Clock::now() - t_cache).count();
  return cache;
}

}  // namespace

DistillResult run_distill(const DistillOptions& o) {
  Comm& comm = Comm::world();
  const bool lead = comm.rank() == 0;
  const auto t_start = Clock::now();
  if (o.data.empty()) fail("no training data: give --data FILE (.txt or .jsonl)");
  if (o.max_seq_len < 2) fail("--max-seq-len must be at least 2, got ", o.max_seq_len);
  if (o.batch_tokens < 1) fail("--batch-tokens must be positive, got ", o.batch_tokens);
  if (!(o.temperature > 0)) fail("--temperature must be positive, got ", o.temperature);
  if (o.kl_weight < 0 || o.hidden_loss_weight < 0) fail("loss weights must not be negative");
  if (!(o.lr > 0)) fail("--lr must be positive, got ", o.lr);
  if (o.steps < 0) fail("--steps must be positive, got ", o.steps);
  if (o.steps == 0 && !(o.epochs > 0)) fail("--epochs must be positive, got ", o.epochs);
  if (o.save_every < 0) fail("--save-every must not be negative");
  const std::string ckpt = o.checkpoint_dir.empty() ? o.out + ".state" : o.checkpoint_dir;
  io::check_export_target(o.out, o.model, o.force);
  if (!o.resume && train_state_exists(ckpt))
    fail(ckpt, " already holds a distillation checkpoint: pass --resume to continue it, or remove it");

  io::ModelFiles files = io::open_model_files(o.model);
  const DType out_dtype = io::default_export_dtype(files);
  DistillModel dm(files);
  dm.set_head_chunk_rows(o.head_chunk_rows);
  const io::ModelConfig& c = dm.config();
  // Pre-tokenised data needs no tokenizer (tiny test checkpoints have none); text data does,
  // and load_documents says so if it is missing.
  std::unique_ptr<tokenizer::Tokenizer> tok;
  try {
    tok = tokenizer::Tokenizer::from_path(o.model);
  } catch (const Error&) {
    if (!o.decontaminate_dir.empty()) throw;  // decontamination reads the text
  }

  std::unique_ptr<Decontaminator> decon;
  if (!o.decontaminate_dir.empty())
    decon = std::make_unique<Decontaminator>(Decontaminator::from_eval_dir(o.decontaminate_dir));
  LoadOptions lo;
  lo.vocab_size = c.vocab_size;
  lo.decontaminator = decon.get();
  LoadStats ls;
  std::vector<Document> docs = load_documents(o.data, tok.get(), lo, &ls);
  if (docs.empty()) fail("the training data holds no documents");
  std::vector<PackedSequence> seqs = pack_documents(docs, o.max_seq_len);
  docs.clear();
  const int64_t data_tokens = count_tokens(seqs);
  DataLoader loader(std::move(seqs), o.seed);
  const int64_t seqs_per_step = std::max<int64_t>(1, (o.batch_tokens + o.max_seq_len - 1) / o.max_seq_len);
  const int64_t total =
      o.steps > 0 ? o.steps
                  : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(o.epochs * loader.size() / seqs_per_step)));
  const int64_t warmup = warmup_steps(o.warmup_ratio, total);
  const Json settings = settings_of(o, c, total, seqs_per_step);

  AdamWOptions ao;
  ao.lr = o.lr;
  ao.weight_decay = o.weight_decay;
  ao.max_grad_norm = o.max_grad_norm;
  AdamW opt(dm.params().size(), ao);
  int64_t start = 0;
  const std::string metrics_path = (fs::path(ckpt) / "metrics.jsonl").string();
  if (o.resume && train_state_exists(ckpt)) {
    if (lead) {
      const int stale =
          io::remove_stale_temporaries(train_state_path(ckpt)) + io::remove_stale_temporaries(metrics_path);
      if (stale > 0)
        std::fprintf(stderr, "distill: removed %d unfinished temporary file(s) an interrupted save left in %s\n", stale,
                     ckpt.c_str());
    }
    TrainState s = load_train_state(ckpt);
    check_same_settings(s.meta.at("settings"), settings, train_state_path(ckpt));
    if (s.params.size() != dm.params().size())
      fail("checkpoint ", train_state_path(ckpt), " holds ", s.params.size(), " parameters, this model trains ",
           dm.params().size());
    dm.params() = std::move(s.params);
    opt.m() = std::move(s.adam_m);
    opt.v() = std::move(s.adam_v);
    opt.set_step_count(s.meta.at("adam_steps").get<int64_t>());
    loader.from_json(s.meta.at("data"));
    start = s.meta.at("step").get<int64_t>();
    if (lead) truncate_metrics(metrics_path, start);
  } else if (lead) {
    std::error_code ec;
    fs::create_directories(ckpt, ec);
    if (ec) fail("cannot create ", ckpt, ": ", ec.message());
    io::write_file_atomic(metrics_path, "");
  }
  comm.barrier();

  if (lead) {
    std::fprintf(stderr,
                 "distill: %lld documents (%lld dropped as evaluation overlap), %lld tokens in %lld sequences of <= "
                 "%lld; %lld sequences (~%lld tokens) per step over %s; %lld steps (%lld warm-up)%s; %lld trainable "
                 "parameters; M = %lld of %lld layers, G = %lld\n",
                 static_cast<long long>(ls.documents), static_cast<long long>(ls.dropped_documents),
                 static_cast<long long>(data_tokens), static_cast<long long>(loader.size()),
                 static_cast<long long>(o.max_seq_len), static_cast<long long>(seqs_per_step),
                 static_cast<long long>(seqs_per_step * o.max_seq_len), comm.describe().c_str(),
                 static_cast<long long>(total), static_cast<long long>(warmup),
                 start > 0 ? (", resuming after step " + std::to_string(start)).c_str() : "",
                 static_cast<long long>(dm.params().size()), static_cast<long long>(c.num_key_value_layers),
                 static_cast<long long>(c.num_layers), static_cast<long long>(c.key_value_group_size));
  }

  // The teacher cache: built (or finished) before the first step, then every step reads it.
  DistillResult res;
  std::unique_ptr<TeacherCache> cache;
  if (!o.teacher_cache.empty()) cache = open_teacher_cache(o, dm, loader, res);

  int64_t saved_step = start;  // the step of the checkpoint on disk (0: none yet)
  auto save = [&](int64_t step) {
    if (lead) {
      TrainState s;
      s.meta = Json{{"step", step},
                    {"adam_steps", opt.step_count()},
                    {"data", loader.to_json()},
                    {"settings", settings},
                    {"model", o.model}};
      s.params = dm.params();
      s.adam_m = opt.m();
      s.adam_v = opt.v();
      try {
        save_train_state(ckpt, s);
      } catch (const Error& e) {
        // Whether --resume can continue, and from where, is what the user needs to know next.
        if (saved_step > 0)
          fail_like(e, e.what(), " (the checkpoint of step ", step, " was not saved; the one of step ", saved_step,
                    " is intact and --resume continues from it)");
        fail_like(e, e.what(), " (the checkpoint of step ", step, " was not saved; there is none to resume from)");
      }
      saved_step = step;
    }
    comm.barrier();
  };

  res.total_steps = total;
  std::unique_ptr<io::AppendFile> metrics;
  if (lead) metrics = std::make_unique<io::AppendFile>(metrics_path);
  const double tau = o.temperature;
  const auto t_loop = Clock::now();
  int64_t run_tokens = 0;
  for (int64_t step = start; step < total; ++step) {
    const auto t0 = Clock::now();
    const Batch b = loader.next_batch(seqs_per_step, comm.rank(), comm.size());
    double counts[3] = {0, 0, 0};  // tokens, kl, mse (summed over ranks)
    for (const PackedSequence* s : b.sequences) counts[0] += s->size();
    comm.allreduce_sum(counts, 1);
    const double tokens = counts[0];
    LossWeights lw;
    lw.temperature = tau;
    lw.kl_scale = o.kl_weight * tau * tau / tokens;  // KL x T^2, averaged over the step's tokens
    lw.mse_scale = o.hidden_loss_weight / (tokens * c.hidden_size);
    dm.zero_grads();
    for (size_t j = 0; j < b.sequences.size(); ++j) {
      const PackedSequence* s = b.sequences[j];
      const StepStats st =
          cache
              ? dm.accumulate_cached(cache->get(b.indices[j]), s->positions.data(), s->doc_start.data(), s->size(), lw)
              : dm.accumulate(s->ids.data(), s->positions.data(), s->doc_start.data(), s->size(), lw);
      counts[1] += st.kl;
      counts[2] += st.mse;
    }
    comm.allreduce_sum(counts + 1, 2);
    comm.allreduce_sum(dm.grads().data(), static_cast<int64_t>(dm.grads().size()));
    const double gnorm = grad_norm(dm.grads());
    if (!std::isfinite(gnorm)) fail("step ", step + 1, ": the gradient is not finite (norm ", gnorm, ")");
    const double clip = o.max_grad_norm > 0 && gnorm > o.max_grad_norm ? o.max_grad_norm / (gnorm + 1e-6) : 1.0;
    const double lr = scheduled_lr(o.lr, step, warmup, total);
    opt.step(dm.params(), dm.grads(), lr, clip);

    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const double loss = counts[1] + counts[2];
    run_tokens += static_cast<int64_t>(tokens);
    if (step == start) res.first_loss = loss;
    res.last_loss = loss;
    res.steps_done = step + 1 - start;
    const double elapsed = std::chrono::duration<double>(Clock::now() - t_loop).count();
    const double eta = elapsed / res.steps_done * (total - step - 1);
    if (lead) {
      Json m{{"step", step + 1},
             {"loss", loss},
             {"kl", counts[1]},
             {"mse", counts[2]},
             {"lr", lr},
             {"grad_norm", gnorm},
             {"clipped", clip < 1.0},
             {"tokens", tokens},
             {"seconds", secs},
             {"tokens_per_s", tokens / secs},
             {"epoch", loader.cursor().epoch}};
      metrics->append(m.dump() + "\n");
      std::fprintf(stderr,
                   "step %lld/%lld | loss %.5f (kl %.5f, mse %.5f) | lr %.3g | grad norm %.3g | %.0f tok/s | "
                   "ETA %s\n",
                   static_cast<long long>(step + 1), static_cast<long long>(total), loss, counts[1], counts[2], lr,
                   gnorm, tokens / secs, format_duration(eta).c_str());
    }
    const bool last = step + 1 == total;
    const bool stopping = o.stop_after > 0 && res.steps_done >= o.stop_after && !last;
    if (!last && (stopping || (o.save_every > 0 && (step + 1) % o.save_every == 0))) save(step + 1);
    if (stopping) {
      // A run split over sessions should be measurable at each stop, not only at its end.
      if (lead) {
        res.partial_model = (fs::path(ckpt) / ("model-step-" + std::to_string(step + 1))).string();
        io::HfExportOptions eo;
        eo.dtype = out_dtype;
        eo.replace_existing = true;
        try {
          io::export_hf_directory(dm.files_with_params(), res.partial_model, eo);
        } catch (const Error& e) {
          fail_like(e, e.what(), " (the checkpoint of step ", step + 1, " is saved; --resume continues from it)");
        }
      }
      comm.barrier();
      break;
    }
  }
  res.tokens = run_tokens;
  res.end_step = start + res.steps_done;
  res.completed = res.end_step == total;
  if (res.completed) {
    save(total);
    if (lead) {
      io::HfExportOptions eo;
      eo.dtype = out_dtype;
      eo.replace_existing = o.force;
      try {
        io::export_hf_directory(dm.files_with_params(), o.out, eo);
      } catch (const Error& e) {
        fail_like(e, e.what(), " (training is complete and saved in ", ckpt, "; --resume writes ", o.out,
                  " without training again)");
      }
    }
    comm.barrier();
  }
  res.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  return res;
}

}  // namespace skv::train
