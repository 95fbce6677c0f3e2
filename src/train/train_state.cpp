#include "train/train_state.h"

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/read_file.h"

namespace skv::train {
namespace {

namespace fs = std::filesystem;
constexpr char kMagic[8] = {'S', 'K', 'V', 'T', 'R', 'N', '0', '1'};

// FNV-1a over the payload: detects a torn or bit-rotted file before it poisons a resumed run.
constexpr uint64_t kFnvBasis = 1469598103934665603ull;
uint64_t fnv1a(const char* p, size_t n, uint64_t h = kFnvBasis) {
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<uint8_t>(p[i])) * 1099511628211ull;
  return h;
}

}  // namespace

std::string train_state_path(const std::string& dir) { return (fs::path(dir) / "state.bin").string(); }

bool train_state_exists(const std::string& dir) { return fs::exists(train_state_path(dir)); }

void save_train_state(const std::string& dir, const TrainState& s) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create checkpoint directory ", quote_bounded(dir), ": ", ec.message());
  if (s.adam_m.size() != s.params.size() || s.adam_v.size() != s.params.size())
    fail_internal("optimiser state and parameters differ in size");
  nlohmann::json meta = s.meta;
  meta["num_params"] = s.params.size();
  const std::string json = meta.dump();
  const uint64_t json_len = json.size();
  // The file is written from the vectors themselves: no in-memory copy of the (for a real
  // model ~100 MB of) parameters and moments.
  std::vector<std::pair<const void*, size_t>> payload = {{json.data(), json.size()}};
  for (const std::vector<float>* v : {&s.params, &s.adam_m, &s.adam_v})
    payload.emplace_back(v->data(), v->size() * sizeof(float));
  uint64_t checksum = kFnvBasis;
  for (const auto& [data, n] : payload) checksum = fnv1a(static_cast<const char*>(data), n, checksum);
  std::vector<std::pair<const void*, size_t>> parts = {
      {kMagic, sizeof kMagic}, {&json_len, sizeof json_len}, {&checksum, sizeof checksum}};
  parts.insert(parts.end(), payload.begin(), payload.end());
  io::write_file_atomic(train_state_path(dir), parts);
}

TrainState load_train_state(const std::string& dir) {
  const std::string path = train_state_path(dir);
  const std::string all = io::read_file(path, "checkpoint to resume from");
  const size_t head = sizeof kMagic + 2 * sizeof(uint64_t);
  if (all.size() < head || std::memcmp(all.data(), kMagic, sizeof kMagic) != 0)
    fail(quote_bounded(path), " is not a swiftkv distillation checkpoint");
  uint64_t json_len = 0, checksum = 0;
  std::memcpy(&json_len, all.data() + sizeof kMagic, sizeof json_len);
  std::memcpy(&checksum, all.data() + sizeof kMagic + sizeof json_len, sizeof checksum);
  const char* payload = all.data() + head;
  const size_t payload_len = all.size() - head;
  if (json_len > payload_len || fnv1a(payload, payload_len) != checksum)
    fail("checkpoint ", quote_bounded(path), " is truncated or corrupt (checksum mismatch)");
  TrainState s;
  try {
    s.meta = nlohmann::json::parse(std::string(payload, json_len));
  } catch (const std::exception& e) {
    fail("checkpoint ", quote_bounded(path), ": bad metadata: ", bound_message(e.what(), 300));
  }
  const size_t n = s.meta.value("num_params", size_t{0});
  if (payload_len - json_len != 3 * n * sizeof(float))
    fail("checkpoint ", quote_bounded(path), " holds ", payload_len - json_len, " bytes of tensors, expected ",
         3 * n * sizeof(float));
  const char* p = payload + json_len;
  for (std::vector<float>* v : {&s.params, &s.adam_m, &s.adam_v}) {
    v->resize(n);
    std::memcpy(v->data(), p, n * sizeof(float));
    p += n * sizeof(float);
  }
  return s;
}

}  // namespace skv::train
