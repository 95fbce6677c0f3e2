#pragma once
// Training data for distillation: documents read from text / JSONL files and tokenised with the
// model's tokenizer, packed into sequences with per-document positions, and handed out in a
// seeded order that a checkpoint can resume and that splits the same way over any number of
// data-parallel ranks.
//
// Every random draw here comes from a PRNG written out in this file (splitmix64 and
// xoshiro256**, unbiased bounded draws by rejection), never from std::shuffle or
// std::uniform_int_distribution, whose results differ between standard libraries: a run
// resumed on another machine must see the very same order.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace skv::train {

class Decontaminator;

// One training document, already tokenised.
struct Document {
  std::vector<int32_t> ids;
  std::string source;  // "file" for a .txt file, "file:line" for a JSONL line
};

struct LoadOptions {
  // token_ids must be below this; 0 = the tokenizer's vocabulary size. Pass the model's
  // vocab_size when it differs (padded embedding tables).
  int64_t vocab_size = 0;
  // Overrides the tokenizer's chat template for `messages` lines (empty = the tokenizer's).
  std::string chat_template;
  // Documents sharing a word n-gram with an evaluation item are dropped (null = keep all).
  const Decontaminator* decontaminator = nullptr;
};

struct LoadStats {
  int64_t files = 0;
  int64_t documents = 0;  // kept
  int64_t tokens = 0;     // in the kept documents
  int64_t dropped_documents = 0;
  std::vector<std::string> dropped_sources;  // file:line of each dropped document
};

// Reads every file in order. Formats, by extension:
//   .txt    the whole file is one document: BOS (when the tokenizer adds one) + text + EOS.
//   .jsonl  one JSON object per line (blank lines skipped) with exactly one of
//             "text":      string, tokenised as a .txt file is;
//             "messages":  [{"role", "content"}, ...] rendered with the chat template (no
//                          generation prompt, BOS only if the template writes it, as
//                          `generate --chat-template` does) and tokenised with special tokens
//                          recognised; the template's end-of-turn token ends the document;
//             "token_ids": [int, ...] used as given (no BOS / EOS added).
//           Other keys are ignored, so a line may carry metadata (generate-data's
//           finish_reason).
// Plain text is tokenised with special-token strings left as text: training prose that
// happens to contain "<|im_end|>" must not turn into control tokens.
// tok may be null when every file holds only token_ids and no decontaminator is given.
// Throws skv::Error naming file:line and the problem.
std::vector<Document> load_documents(const std::vector<std::string>& paths, const tokenizer::Tokenizer* tok,
                                     const LoadOptions& opts = {}, LoadStats* stats = nullptr);

// Several documents in one row block. doc_start[i] is the index (within this sequence) of the
// first token of token i's document, so token i attends to doc_start[i] .. i only; positions
// restart at 0 with each document (RoPE sees each document as if it were alone).
struct PackedSequence {
  std::vector<int32_t> ids, positions, doc_start;
  int64_t size() const { return static_cast<int64_t>(ids.size()); }
};

// Greedy next-fit packing in document order: a document joins the current sequence if it fits
// in what is left of max_seq_len, else it starts a new one. A document longer than max_seq_len
// is first cut into max_seq_len pieces (the last one shorter), each a document of its own
// (positions from 0). Every token lands in exactly one sequence; there is no padding.
std::vector<PackedSequence> pack_documents(const std::vector<Document>& docs, int64_t max_seq_len);

int64_t count_tokens(const std::vector<Document>& docs);
int64_t count_tokens(const std::vector<PackedSequence>& seqs);

// Where a DataLoader is in its stream: the next sequence handed out is permutation(epoch)[index].
struct Cursor {
  int64_t epoch = 0;
  int64_t index = 0;
  bool operator==(const Cursor&) const = default;
};

// The sequences of one global step that a rank owns.
struct Batch {
  Cursor start;                  // the cursor before this step
  std::vector<int64_t> indices;  // into the loader's sequences, in step order
  std::vector<const PackedSequence*> sequences;
};

// Hands out the packed sequences in a seeded order, one permutation per epoch. A global step
// takes the next global_sequences_per_step sequences of that stream (running on into the next
// epoch's permutation when one ends), and rank r of world_size owns the step's sequences r,
// r + world_size, ...: the union over ranks is the step's global batch whatever world_size is,
// so a run can resume on a different number of ranks and see the same data.
class DataLoader {
 public:
  DataLoader(std::vector<PackedSequence> sequences, uint64_t seed);

  Batch next_batch(int64_t global_sequences_per_step, int rank = 0, int world_size = 1);

  const Cursor& cursor() const { return cursor_; }
  // {"epoch", "index", "seed", "num_sequences", "fingerprint"}: restoring checks that the seed
  // and the data (a hash of every token and document boundary) are those the cursor was saved
  // with, since a cursor into other data would silently skip or repeat sequences.
  nlohmann::json to_json() const;
  void from_json(const nlohmann::json& j);

  // The order of epoch e: a permutation of 0 .. size() - 1.
  std::vector<int64_t> permutation(int64_t epoch) const;

  const std::vector<PackedSequence>& sequences() const { return sequences_; }
  int64_t size() const { return static_cast<int64_t>(sequences_.size()); }
  uint64_t seed() const { return seed_; }
  uint64_t fingerprint() const { return fingerprint_; }

 private:
  const std::vector<int64_t>& order(int64_t epoch);

  std::vector<PackedSequence> sequences_;
  uint64_t seed_;
  uint64_t fingerprint_;
  Cursor cursor_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> cached_order_;
};

// The portable generators, exposed for the tests and for anything else that must draw the
// same numbers everywhere.
uint64_t splitmix64(uint64_t x);  // one step of the splitmix64 output function on x

class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed);  // state from four splitmix64 steps
  uint64_t next();
  uint64_t below(uint64_t n);  // uniform in [0, n), n > 0, unbiased (rejection)

 private:
  uint64_t s_[4];
};

}  // namespace skv::train
