#include "eval/runner.h"

#include <chrono>
#include <cmath>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "eval/fewshot.h"
#include "eval/gsm8k.h"
#include "eval/metrics.h"
#include "eval/pystr.h"

namespace skv::eval {
namespace {

using Json = nlohmann::ordered_json;

// A JSON number, or null for NaN / infinity (which JSON cannot hold).
Json num(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

void add_mean(TaskResult& r, const std::string& name, const std::vector<double>& xs) {
  r.metrics.emplace_back(name, mean(xs));
  r.metrics.emplace_back(name + "_stderr", mean_stderr(xs));
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

int64_t items_to_run(const Task& task, const RunOptions& opts) {
  const int64_t n = task.docs.size();
  if (opts.limit_fraction > 0 && opts.limit_fraction < 1)
    return std::min<int64_t>(n, static_cast<int64_t>(std::ceil(n * opts.limit_fraction)));
  return opts.limit >= 0 ? std::min(n, opts.limit) : n;
}

TaskResult run_task(EvalModel& lm, const Task& task, const RunOptions& opts, Progress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t tokens0 = lm.tokens_computed();
  TaskResult r;
  r.name = task.name;
  r.group = task.group;
  r.n = items_to_run(task, opts);
  r.num_fewshot = opts.num_fewshot >= 0 ? opts.num_fewshot : task.default_fewshot;
  if (task.kind == TaskKind::kRolling && r.num_fewshot > 0)
    fail("task ", task.name, " scores whole documents and takes no few-shot examples");

  // Per-item values, reduced to metrics at the end.
  std::vector<double> acc, acc_norm, mc2s, lls, em_strict, em_flex;
  Weighted words, bytes;
  double rolling_ll = 0;
  int64_t rolling_tokens = 0;

  // Records item i's log-likelihoods (its choices in order) in the metrics and its sample line.
  auto score_item = [&](int64_t i, Json& s, const std::vector<LoglikResult>& res) {
    const Doc& doc = task.docs[i];
    std::vector<double> item_lls;
    std::vector<bool> greedy;
    for (const auto& x : res) {
      item_lls.push_back(x.loglik);
      greedy.push_back(x.is_greedy);
    }
    s["loglikelihoods"] = item_lls;
    s["is_greedy"] = greedy;
    if (task.kind == TaskKind::kLoglikelihood) {
      s["target"] = doc.choices[0];
      lls.push_back(item_lls[0]);
      acc.push_back(greedy[0]);
      s["acc"] = acc.back();
    } else {
      std::vector<std::string_view> views(doc.choices.begin(), doc.choices.end());
      const int64_t pred = argmax(item_lls), pred_norm = argmax_normalized(item_lls, views);
      acc.push_back(pred == doc.gold);
      acc_norm.push_back(pred_norm == doc.gold);
      s["target"] = doc.gold;
      s["pred"] = pred;
      s["pred_norm"] = pred_norm;
      s["acc"] = acc.back();
      s["acc_norm"] = acc_norm.back();
      if (!doc.labels.empty()) {
        mc2s.push_back(mc2(item_lls, doc.labels));
        s["mc2"] = num(mc2s.back());
      }
    }
  };
  auto finish = [&](const Json& s) {
    if (opts.samples) *opts.samples << s.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    progress.advance(1, task.name);
  };
  auto context_of = [&](int64_t i) {
    std::string ctx = build_context(task, i, r.num_fewshot, opts.seed);
    if (opts.chat) ctx = opts.chat(task.description, ctx.substr(task.description.size()));
    return ctx;
  };

  const bool scored = task.kind == TaskKind::kMultipleChoice || task.kind == TaskKind::kLoglikelihood;
  // An item's requests and an estimate of the rows they need computed: its context beyond what
  // it shares with the item before (whose blocks the engine's prefix cache keeps), plus every
  // continuation.
  struct Pending {
    int64_t item;
    Json s;
    std::vector<EvalModel::Request> requests;
    int64_t rows = 0;
  };
  std::vector<int32_t> last_ctx;
  auto prepare = [&](int64_t i) {
    const Doc& doc = task.docs[i];
    Pending p{i, Json(), {}, 0};
    p.s["task"] = task.name;
    p.s["doc_id"] = i;
    const std::string ctx = context_of(i);
    p.s["context"] = ctx;
    // lm-eval drops the target delimiter when a chat template ends the prompt (the assistant
    // turn starts on its own), for multiple-choice tasks only.
    const std::string delim = opts.chat && task.kind == TaskKind::kMultipleChoice ? "" : task.target_delimiter;
    for (const std::string& c : doc.choices) {
      p.requests.push_back(lm.encode_pair(ctx, task.kind == TaskKind::kLoglikelihood ? c : delim + c));
      const auto& [ids, cont] = p.requests.back();
      if (ids != last_ctx) p.rows += ids.size() - std::min(ids.size(), common_prefix(ids, last_ctx));
      p.rows += cont.size();
      last_ctx = ids;
    }
    return p;
  };
  std::optional<Pending> next;  // prepared, but did not fit the last block
  for (int64_t i = 0; i < r.n;) {
    if (scored) {
      // A block of consecutive items whose rows fill about one --batch-tokens forward is scored
      // in one batch; the bookkeeping then goes item by item as if they had run one by one.
      std::vector<Pending> block;
      std::vector<EvalModel::Request> requests;
      int64_t rows = 0;
      while (i < r.n) {
        Pending p = next ? std::move(*next) : prepare(i);
        next.reset();
        if (!block.empty() && rows + p.rows > lm.options().batch_tokens) {
          next = std::move(p);
          break;
        }
        rows += p.rows;
        requests.insert(requests.end(), std::make_move_iterator(p.requests.begin()),
                        std::make_move_iterator(p.requests.end()));  // p keeps their count
        block.push_back(std::move(p));
        ++i;
      }
      const std::vector<LoglikResult> res = lm.loglikelihood_batch(requests);
      size_t at = 0;
      for (Pending& p : block) {
        const size_t k = p.requests.size();
        score_item(p.item, p.s, std::vector<LoglikResult>(res.begin() + at, res.begin() + at + k));
        at += k;
        finish(p.s);
      }
      continue;
    }
    const Doc& doc = task.docs[i];
    Json s;
    s["task"] = task.name;
    s["doc_id"] = i;
    if (task.kind == TaskKind::kRolling) {
      int64_t tokens = 0;
      const double ll = lm.loglikelihood_rolling(doc.text, &tokens);
      const int64_t n_words = split_whitespace_count(doc.page);
      const int64_t n_bytes = doc.page.size();
      rolling_ll += ll;
      rolling_tokens += tokens;
      words.emplace_back(ll, n_words);
      bytes.emplace_back(ll, n_bytes);
      s["loglikelihood"] = ll;
      s["tokens"] = tokens;
      s["words"] = n_words;
      s["bytes"] = n_bytes;
    } else {
      const std::string ctx = context_of(i);
      s["context"] = ctx;
      GenerateResult g = lm.generate_until(ctx, task.until, task.max_gen_tokens);
      const std::string strict = gsm8k_extract_strict(g.text);
      const std::string flexible = gsm8k_extract_flexible(g.text);
      em_strict.push_back(gsm8k_exact_match(strict, doc.target));
      em_flex.push_back(gsm8k_exact_match(flexible, doc.target));
      s["target"] = doc.target;
      s["generated"] = g.text;
      s["generated_tokens"] = g.tokens;
      s["extracted_strict"] = strict;
      s["extracted_flexible"] = flexible;
      s["exact_match"] = em_strict.back();
      s["exact_match_flexible"] = em_flex.back();
    }
    finish(s);
    ++i;
  }

  for (const std::string& m : task.metrics) {
    if (m == "acc") add_mean(r, "acc", acc);
    if (m == "acc_norm") add_mean(r, "acc_norm", acc_norm);
    if (m == "mc2") add_mean(r, "mc2", mc2s);
    if (m == "exact_match") add_mean(r, "exact_match", em_strict);
    if (m == "exact_match_flexible") add_mean(r, "exact_match_flexible", em_flex);
    if (m == "perplexity") {
      r.metrics.emplace_back("perplexity", perplexity(lls));
      r.metrics.emplace_back("perplexity_stderr", perplexity_stderr(lls));
    }
    if (m == "word_perplexity") r.metrics.emplace_back(m, weighted_perplexity(words));
    if (m == "byte_perplexity") r.metrics.emplace_back(m, weighted_perplexity(bytes));
    if (m == "bits_per_byte") r.metrics.emplace_back(m, bits_per_byte(bytes));
    if (m == "token_perplexity") r.metrics.emplace_back(m, std::exp(-rolling_ll / rolling_tokens));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.tokens_computed = lm.tokens_computed() - tokens0;
  return r;
}

TaskResult aggregate_group(const std::string& group, const std::vector<TaskResult>& subtasks) {
  TaskResult g;
  g.name = group;
  if (subtasks.empty()) return g;
  g.num_fewshot = subtasks[0].num_fewshot;
  for (const auto& t : subtasks) {
    g.n += t.n;
    g.seconds += t.seconds;
    g.tokens_computed += t.tokens_computed;
  }
  for (const auto& [name, value] : subtasks[0].metrics) {
    if (name.size() > 7 && name.compare(name.size() - 7, 7, "_stderr") == 0) continue;
    double sum = 0;
    std::vector<double> stderrs;
    std::vector<int64_t> sizes;
    for (const auto& t : subtasks) {
      for (const auto& [n2, v2] : t.metrics) {
        if (n2 == name) sum += v2 * t.n;
        if (n2 == name + "_stderr") stderrs.push_back(v2);
      }
      sizes.push_back(t.n);
    }
    g.metrics.emplace_back(name, g.n ? sum / g.n : NAN);
    if (stderrs.size() == subtasks.size())
      g.metrics.emplace_back(name + "_stderr", pooled_sample_stderr(stderrs, sizes));
  }
  return g;
}

}  // namespace skv::eval
