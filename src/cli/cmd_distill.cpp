#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "backend/cpu/threads.h"
#include "backend/ops.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "core/progress.h"
#include "train/comm.h"
#include "train/distill.h"

namespace skv::cli {
namespace {

constexpr const char* kDistillHelp =
    "usage: swiftkv distill --model SWIFTKV_DIR --data FILE [--data FILE ...] --out DIR\n"
    "                       [--steps N | --epochs E] [--lr 2e-4] [--warmup-ratio 0.05] [--max-seq-len T]\n"
    "                       [--batch-tokens B] [--temperature 2.0] [--hidden-loss-weight 1.0]\n"
    "                       [--save-every N] [--resume] [--seed S] [-t N]\n"
    "       mpirun -np R swiftkv distill ...     (data-parallel over R processes)\n"
    "\n"
    "Knowledge-preserving distillation (docs/distill.md): the checkpoint's teacher path (every layer\n"
    "computes its own K/V) teaches its SwiftKV path. Trained: norm_swiftkv, every q_proj_swiftkv and\n"
    "the group leaders' k/v_proj_swiftkv (and biases); everything else is frozen and written back\n"
    "bit for bit. Loss = KL(teacher || student) at temperature T, times T^2, averaged over tokens,\n"
    "plus --hidden-loss-weight x the mean squared difference of the hidden states at the last\n"
    "layer's input. AdamW (betas 0.9, 0.999), linear warm-up then linear decay, gradient clipping.\n"
    "\n"
    "  -m, --model DIR            SwiftKV checkpoint (from `swiftkv convert`)\n"
    "      --data FILE            training data, repeatable: .txt (one document per file) or .jsonl\n"
    "                             lines with \"text\", \"messages\" (rendered with the chat template)\n"
    "                             or \"token_ids\"; packed to --max-seq-len with per-document masking\n"
    "  -o, --out DIR              the distilled checkpoint (written when training completes)\n"
    "      --checkpoint-dir DIR   training state and metrics.jsonl (default: OUT.state)\n"
    "      --steps N              optimiser steps (default: --epochs over the data)\n"
    "      --epochs E             passes over the packed data (default 1)\n"
    "      --lr LR                peak learning rate (default 2e-4)\n"
    "      --warmup-ratio R       fraction of the steps spent warming up linearly (default 0.05)\n"
    "      --weight-decay W       decoupled weight decay (default 0)\n"
    "      --max-grad-norm C      clip the global gradient norm to C (default 1.0; 0 = off)\n"
    "      --max-seq-len T        tokens per packed sequence (default 2048)\n"
    "      --batch-tokens B       tokens per optimiser step over all ranks, rounded up to whole\n"
    "                             sequences (default 16384)\n"
    "      --temperature T        distillation temperature (default 2.0)\n"
    "      --kl-weight W          weight of the KL term (default 1.0)\n"
    "      --hidden-loss-weight W weight of the hidden-state MSE (default 1.0; 0 = KL only)\n"
    "      --save-every N         checkpoint every N steps (default 100; 0 = only at the end)\n"
    "      --resume               continue from the checkpoint directory (same settings required)\n"
    "      --stop-after N         stop after N steps of this run, checkpointed (resume later); the\n"
    "                             weights so far go to CHECKPOINT_DIR/model-step-S, a full model\n"
    "      --seed S               data order (default 42)\n"
    "      --decontaminate DIR    drop documents sharing a 13-word sequence with an evaluation item\n"
    "                             under DIR (default $SKV_DATA, else ../shared/data next to the source\n"
    "                             tree when present)\n"
    "      --no-decontaminate     keep every document\n"
    "      --teacher-cache DIR    compute what the loss needs of the teacher once for every training\n"
    "                             sequence (x_M and its hidden states) and keep it in DIR; every\n"
    "                             step then skips layers 0..L-1 of the teacher. Built before the\n"
    "                             first step (resumable), reused by later epochs and by runs with\n"
    "                             the same model, data and temperature; 8 x hidden bytes per token\n"
    "      --teacher-top-k K      keep the teacher's K most likely tokens per position instead of\n"
    "                             its final hidden state (also skips its LM head), and take the KL\n"
    "                             over those K plus one class for the rest: a lower bound that\n"
    "                             misses much of the KL at temperature 2 (docs/distill.md); default 0\n"
    "      --head-chunk N         rows of logits computed at a time (default 256; bounds the\n"
    "                             [rows, vocab] teacher / student logit blocks)\n"
    "      --force                replace an existing --out model directory\n"
    "  -t, --threads N            CPU threads per process (default: all cores / processes)\n"
    "\n"
    "Progress (step, loss, lr, grad norm, tokens/s, ETA) goes to stderr, one line per step; the same\n"
    "figures go to CHECKPOINT_DIR/metrics.jsonl.\n";

}  // namespace

int cmd_distill(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kDistillHelp, stdout);
      return 0;
    }
  }
  train::Comm& comm = train::Comm::world();
  const Args args(argc, argv,
                  {"--model",
                   "--data",
                   "--out",
                   "--checkpoint-dir",
                   "--steps",
                   "--epochs",
                   "--lr",
                   "--warmup-ratio",
                   "--weight-decay",
                   "--max-grad-norm",
                   "--max-seq-len",
                   "--batch-tokens",
                   "--temperature",
                   "--kl-weight",
                   "--hidden-loss-weight",
                   "--save-every",
                   "--stop-after",
                   "--seed",
                   "--decontaminate",
                   "--threads",
                   "--head-chunk",
                   "--teacher-cache",
                   "--teacher-top-k"},
                  {"--resume", "--no-decontaminate", "--force"},
                  {{"-m", "--model"}, {"-o", "--out"}, {"-t", "--threads"}});
  if (!args.positional().empty()) fail("unexpected argument ", quote_bounded(args.positional()[0]));
  if (args.has("--steps") && args.has("--epochs")) fail("give at most one of --steps and --epochs");
  train::DistillOptions o;
  o.model = args.required("--model");
  o.data = args.all("--data");
  o.out = args.required("--out");
  o.checkpoint_dir = args.str("--checkpoint-dir", "");
  o.steps = args.integer("--steps", 0);
  if (args.has("--steps") && o.steps < 1) fail("--steps must be at least 1, got ", o.steps);
  o.epochs = args.real("--epochs", 1.0);
  o.lr = args.real("--lr", o.lr);
  o.warmup_ratio = args.real("--warmup-ratio", o.warmup_ratio);
  o.weight_decay = args.real("--weight-decay", o.weight_decay);
  o.max_grad_norm = args.real("--max-grad-norm", o.max_grad_norm);
  o.max_seq_len = args.integer("--max-seq-len", o.max_seq_len);
  o.batch_tokens = args.integer("--batch-tokens", o.batch_tokens);
  o.temperature = args.real("--temperature", o.temperature);
  o.kl_weight = args.real("--kl-weight", o.kl_weight);
  o.hidden_loss_weight = args.real("--hidden-loss-weight", o.hidden_loss_weight);
  o.save_every = args.integer("--save-every", o.save_every);
  o.stop_after = args.integer("--stop-after", 0);
  if (o.stop_after < 0) fail("--stop-after must not be negative");
  o.resume = args.flag("--resume");
  o.force = args.flag("--force");
  const int64_t seed = args.integer("--seed", 42);
  if (seed < 0) fail("--seed must not be negative");
  o.seed = static_cast<uint64_t>(seed);
  o.head_chunk_rows = args.integer("--head-chunk", o.head_chunk_rows);
  if (o.head_chunk_rows < 1) fail("--head-chunk must be positive");
  if (args.has("--teacher-top-k") && !args.has("--teacher-cache")) fail("--teacher-top-k needs --teacher-cache DIR");
  o.teacher_cache = args.str("--teacher-cache", "");
  if (args.has("--teacher-cache") && o.teacher_cache.empty()) fail("--teacher-cache needs a directory");
  o.teacher_top_k = args.integer("--teacher-top-k", o.teacher_top_k);
  if (o.teacher_top_k < 0) fail("--teacher-top-k must not be negative, got ", o.teacher_top_k);
  if (args.flag("--no-decontaminate") && args.has("--decontaminate"))
    fail("give at most one of --decontaminate and --no-decontaminate");
  if (args.has("--decontaminate")) {
    o.decontaminate_dir = args.str("--decontaminate", "");
  } else if (!args.flag("--no-decontaminate")) {
    o.decontaminate_dir = shared_data_dir();
    if (!std::filesystem::is_directory(o.decontaminate_dir)) {
      if (comm.rank() == 0)
        std::fprintf(stderr,
                     "swiftkv distill: warning: no evaluation data at %s (set SKV_DATA or --decontaminate "
                     "DIR); training data is not checked against evaluation items\n",
                     o.decontaminate_dir.c_str());
      o.decontaminate_dir.clear();
    }
  }

  int threads = static_cast<int>(args.integer("--threads", 0));
  if (threads < 0) fail("--threads must not be negative");
  if (threads == 0 && comm.size() > 1) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    threads = std::max(1, static_cast<int>(cores) / comm.size());
  }
  backend::cpu::set_num_threads(threads);

  const train::DistillResult r = train::run_distill(o);
  if (comm.rank() == 0) {
    const std::string where = r.completed ? "wrote " + o.out
                                          : "stopped at step " + std::to_string(r.end_step) + " of " +
                                                std::to_string(r.total_steps) + "; weights so far in " +
                                                r.partial_model + "; continue with --resume";
    const double train_s = r.seconds - r.cache_seconds;
    const std::string cache =
        r.cache_seconds > 0 ? " (after " + format_duration(r.cache_seconds) + " on the teacher cache)" : "";
    std::fprintf(
        stderr,
        "swiftkv distill: %lld steps this run, %lld tokens in %.1f s (%.0f tokens/s)%s, loss %.5f -> %.5f; %s\n",
        static_cast<long long>(r.steps_done), static_cast<long long>(r.tokens), train_s,
        r.tokens / std::max(train_s, 1e-9), cache.c_str(), r.first_loss, r.last_loss, where.c_str());
  }
  return 0;
}

}  // namespace skv::cli
