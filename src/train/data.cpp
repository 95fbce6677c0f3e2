#include "train/data.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "io/fingerprint.h"
#include "io/read_file.h"
#include "tokenizer/chat_template.h"
#include "train/decontam.h"

namespace skv::train {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;  // messages keep their keys' order for the template

std::string extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos; }

class Loader {
 public:
  Loader(const tokenizer::Tokenizer* tok, const LoadOptions& opts, LoadStats& stats)
      : tok_(tok), opts_(opts), stats_(stats) {
    vocab_ = opts.vocab_size > 0 ? opts.vocab_size : tok ? tok->vocab_size() : 0;
    if (vocab_ <= 0) fail("training data: no vocabulary size (no tokenizer and no vocab_size given)");
    if (opts.decontaminator && !tok) fail("training data: decontamination needs a tokenizer to read token_ids");
  }

  void load(const std::string& path, std::vector<Document>& out) {
    const std::string ext = extension(path);
    if (ext != ".txt" && ext != ".jsonl")
      fail("training file ", path, ": unknown extension ", quote_bounded(ext), " (expected .txt or .jsonl)");
    const std::string content = io::read_file(path, "training file");
    ++stats_.files;
    if (ext == ".txt") {
      if (blank(content)) fail(path, ": empty text");
      add(out, path, text_ids(path, content), content);
      return;
    }
    size_t pos = 0;
    for (int64_t line_no = 1; pos < content.size(); ++line_no) {
      size_t end = content.find('\n', pos);
      if (end == std::string::npos) end = content.size();
      std::string_view line(content.data() + pos, end - pos);
      pos = end + 1;
      if (blank(line)) continue;
      jsonl_line(path + ":" + std::to_string(line_no), line, out);
    }
  }

 private:
  const tokenizer::Tokenizer& need_tok(const std::string& where) {
    if (!tok_) fail(where, ": text needs a tokenizer and none was given");
    return *tok_;
  }

  std::vector<int32_t> text_ids(const std::string& where, const std::string& text) {
    std::vector<int32_t> ids = need_tok(where).encode(text, true, false);
    if (auto eos = tok_->eos_id()) ids.push_back(*eos);
    return ids;
  }

  void jsonl_line(const std::string& where, std::string_view line, std::vector<Document>& out) {
    Json j;
    try {
      j = Json::parse(line);
    } catch (const Json::exception& e) {
      fail(where, ": invalid JSON (", bound_message(e.what(), 300), ")");
    }
    if (!j.is_object()) fail(where, ": expected a JSON object with one of text, messages, token_ids");
    std::vector<std::string> keys;
    for (const char* k : {"text", "messages", "token_ids"})
      if (j.contains(k)) keys.push_back(k);
    if (keys.empty()) fail(where, ": no text, messages or token_ids key");
    if (keys.size() > 1)
      fail(where, ": several keys (", keys[0], " and ", keys[1], "); give exactly one of text, messages, token_ids");
    const Json& v = j.at(keys[0]);
    if (keys[0] == "text") {
      if (!v.is_string()) fail(where, ": text must be a string");
      const std::string& text = v.get_ref<const std::string&>();
      if (blank(text)) fail(where, ": empty text");
      add(out, where, text_ids(where, text), text);
    } else if (keys[0] == "messages") {
      messages(where, v, out);
    } else {
      token_ids(where, v, out);
    }
  }

  void messages(const std::string& where, const Json& v, std::vector<Document>& out) {
    if (!v.is_array() || v.empty()) fail(where, ": messages must be a non-empty list of {role, content}");
    std::string joined;
    for (size_t i = 0; i < v.size(); ++i) {
      const Json& m = v[i];
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
          !m["content"].is_string())
        fail(where, ": messages[", i, "] must be an object with string role and content");
      joined += m["content"].get_ref<const std::string&>();
      joined += '\n';
    }
    const tokenizer::Tokenizer& tok = need_tok(where);
    const std::string& tmpl = opts_.chat_template.empty() ? template_of(tok) : opts_.chat_template;
    if (tmpl.empty()) fail(where, ": messages need a chat template and the tokenizer has none");
    auto tok_str = [&](std::optional<int32_t> id) { return id ? tok.token_text(*id) : std::string(); };
    std::string rendered;
    try {
      rendered = tokenizer::apply_chat_template_json(tmpl, v, false, tok_str(tok.bos_id()), tok_str(tok.eos_id()));
    } catch (const Error& e) {
      fail_like(e, where, ": chat template: ", e.what());
    }
    if (rendered.empty()) fail(where, ": the chat template rendered the messages as empty text");
    add(out, where, tok.encode(rendered, false, true), joined);
  }

  void token_ids(const std::string& where, const Json& v, std::vector<Document>& out) {
    if (!v.is_array()) fail(where, ": token_ids must be a list of integers");
    if (v.empty()) fail(where, ": empty token_ids");
    std::vector<int32_t> ids;
    ids.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      const Json& x = v[i];
      if (!x.is_number_integer()) fail(where, ": token_ids[", i, "] is not an integer (", x.dump(), ")");
      const bool in_range = x.is_number_unsigned() ? x.get<uint64_t>() < static_cast<uint64_t>(vocab_)
                                                   : x.get<int64_t>() >= 0 && x.get<int64_t>() < vocab_;
      if (!in_range)
        fail(where, ": token id ", x.dump(), " (token_ids[", i, "]) is out of range for the vocabulary of ", vocab_);
      ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
    }
    std::string text;
    if (opts_.decontaminator) text = tok_->decode(ids, true);
    add(out, where, std::move(ids), text);
  }

  const std::string& template_of(const tokenizer::Tokenizer& tok) {
    if (!template_loaded_) {
      template_ = tok.chat_template();
      template_loaded_ = true;
    }
    return template_;
  }

  void add(std::vector<Document>& out, const std::string& where, std::vector<int32_t> ids, const std::string& text) {
    if (opts_.decontaminator && opts_.decontaminator->contaminated(text)) {
      ++stats_.dropped_documents;
      stats_.dropped_sources.push_back(where);
      return;
    }
    for (int32_t id : ids)
      if (id < 0 || id >= vocab_)
        fail(where, ": the tokenizer gave token id ", id, ", outside the vocabulary of ", vocab_);
    if (ids.empty()) fail(where, ": the document has no tokens");
    ++stats_.documents;
    stats_.tokens += static_cast<int64_t>(ids.size());
    out.push_back({std::move(ids), where});
  }

  const tokenizer::Tokenizer* tok_;
  const LoadOptions& opts_;
  LoadStats& stats_;
  int64_t vocab_ = 0;
  bool template_loaded_ = false;
  std::string template_;
};

}  // namespace

std::vector<Document> load_documents(const std::vector<std::string>& paths, const tokenizer::Tokenizer* tok,
                                     const LoadOptions& opts, LoadStats* stats) {
  LoadStats local;
  LoadStats& s = stats ? *stats : local;
  s = LoadStats{};
  if (paths.empty()) fail("no training data files given");
  Loader loader(tok, opts, s);
  std::vector<Document> docs;
  for (const std::string& p : paths) loader.load(p, docs);
  return docs;
}

std::vector<PackedSequence> pack_documents(const std::vector<Document>& docs, int64_t max_seq_len) {
  if (max_seq_len <= 0) fail("max_seq_len must be positive, got ", max_seq_len);
  std::vector<PackedSequence> out;
  PackedSequence cur;
  auto close = [&] {
    if (!cur.ids.empty()) out.push_back(std::move(cur));
    cur = PackedSequence{};
  };
  for (const Document& d : docs) {
    const int64_t n = static_cast<int64_t>(d.ids.size());
    for (int64_t begin = 0; begin < n; begin += max_seq_len) {
      const int64_t len = std::min(max_seq_len, n - begin);
      if (cur.size() + len > max_seq_len) close();
      const int32_t start = static_cast<int32_t>(cur.size());
      for (int64_t i = 0; i < len; ++i) {
        cur.ids.push_back(d.ids[begin + i]);
        cur.positions.push_back(static_cast<int32_t>(i));
        cur.doc_start.push_back(start);
      }
    }
  }
  close();
  return out;
}

int64_t count_tokens(const std::vector<Document>& docs) {
  int64_t n = 0;
  for (const auto& d : docs) n += static_cast<int64_t>(d.ids.size());
  return n;
}

int64_t count_tokens(const std::vector<PackedSequence>& seqs) {
  int64_t n = 0;
  for (const auto& s : seqs) n += s.size();
  return n;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

Xoshiro256::Xoshiro256(uint64_t seed) {
  for (uint64_t& s : s_) {
    seed += 0x9e3779b97f4a7c15ULL;
    s = splitmix64(seed);
  }
}

uint64_t Xoshiro256::next() {
  auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

uint64_t Xoshiro256::below(uint64_t n) {
  if (n == 0) fail_internal("Xoshiro256::below: n must be positive");
  // Draws in [0, threshold) would make the low residues more likely; 2^64 mod n of them are
  // rejected so every residue has the same number of preimages.
  const uint64_t threshold = (0 - n) % n;
  for (;;) {
    const uint64_t r = next();
    if (r >= threshold) return r % n;
  }
}

namespace {

uint64_t data_fingerprint(const std::vector<PackedSequence>& seqs) {
  uint64_t h = splitmix64(seqs.size());
  for (const auto& s : seqs) {
    h = splitmix64(h ^ static_cast<uint64_t>(s.size()));
    for (size_t i = 0; i < s.ids.size(); ++i)
      h = splitmix64(
          h ^ (static_cast<uint64_t>(static_cast<uint32_t>(s.ids[i])) << 32 | static_cast<uint32_t>(s.doc_start[i])));
  }
  return h;
}

}  // namespace

DataLoader::DataLoader(std::vector<PackedSequence> sequences, uint64_t seed)
    : sequences_(std::move(sequences)), seed_(seed), fingerprint_(data_fingerprint(sequences_)) {
  for (const auto& s : sequences_)
    if (s.ids.size() != s.positions.size() || s.ids.size() != s.doc_start.size())
      fail_internal("data loader: a packed sequence has ids, positions and doc_start of different lengths");
}

std::vector<int64_t> DataLoader::permutation(int64_t epoch) const {
  if (epoch < 0) fail_internal("data loader: epoch must be >= 0, got ", epoch);
  std::vector<int64_t> p(sequences_.size());
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<int64_t>(i);
  // Each epoch's generator depends only on (seed, epoch), so any epoch's order can be rebuilt
  // on resume without replaying the ones before it.
  Xoshiro256 rng(splitmix64(seed_) ^ splitmix64(static_cast<uint64_t>(epoch) + 0x5851f42d4c957f2dULL));
  for (size_t i = p.size(); i > 1; --i) std::swap(p[i - 1], p[rng.below(i)]);
  return p;
}

const std::vector<int64_t>& DataLoader::order(int64_t epoch) {
  if (epoch != cached_epoch_) {
    cached_order_ = permutation(epoch);
    cached_epoch_ = epoch;
  }
  return cached_order_;
}

Batch DataLoader::next_batch(int64_t global_sequences_per_step, int rank, int world_size) {
  if (sequences_.empty()) fail_internal("data loader: no training sequences");
  if (global_sequences_per_step <= 0)
    fail_internal("data loader: sequences per step must be positive, got ", global_sequences_per_step);
  if (world_size <= 0) fail_internal("data loader: world size must be positive, got ", world_size);
  if (rank < 0 || rank >= world_size) fail_internal("data loader: rank ", rank, " is outside 0 .. ", world_size - 1);
  Batch b;
  b.start = cursor_;
  const int64_t n = size();
  for (int64_t k = 0; k < global_sequences_per_step; ++k) {
    if (cursor_.index >= n) {
      ++cursor_.epoch;
      cursor_.index = 0;
    }
    const int64_t idx = order(cursor_.epoch)[cursor_.index++];
    if (k % world_size == rank) {
      b.indices.push_back(idx);
      b.sequences.push_back(&sequences_[idx]);
    }
  }
  if (cursor_.index >= n) {
    ++cursor_.epoch;
    cursor_.index = 0;
  }
  return b;
}

nlohmann::json DataLoader::to_json() const {
  return {{"epoch", cursor_.epoch},
          {"index", cursor_.index},
          {"seed", seed_},
          {"num_sequences", size()},
          {"fingerprint", io::hex64(fingerprint_)}};
}

void DataLoader::from_json(const nlohmann::json& j) {
  auto field = [&](const char* k) -> const nlohmann::json& {
    if (!j.is_object() || !j.contains(k)) fail("data loader state: missing ", k);
    return j.at(k);
  };
  auto integer = [&](const char* k) {
    const nlohmann::json& v = field(k);
    if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
      fail("data loader state: ", k, " must be a non-negative integer");
    return v;
  };
  const uint64_t seed = integer("seed").get<uint64_t>();
  const int64_t num = integer("num_sequences").get<int64_t>();
  const nlohmann::json& fp = field("fingerprint");
  if (!fp.is_string()) fail("data loader state: fingerprint must be a string");
  Cursor c{integer("epoch").get<int64_t>(), integer("index").get<int64_t>()};
  if (seed != seed_) fail("data loader state: saved with data seed ", seed, ", this run uses ", seed_);
  if (num != size() || fp.get<std::string>() != io::hex64(fingerprint_))
    fail("data loader state: saved for other training data (", num, " sequences, fingerprint ", fp.get<std::string>(),
         "; this run has ", size(), " sequences, fingerprint ", io::hex64(fingerprint_), ")");
  if (c.index >= size() && size() > 0)
    fail("data loader state: index ", c.index, " is past the ", size(), " sequences");
  cursor_ = c;
}

}  // namespace skv::train
