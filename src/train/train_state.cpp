#include "train/train_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace skv::train {
namespace {

namespace fs = std::filesystem;
constexpr char kMagic[8] = {'S', 'K', 'V', 'T', 'R', 'N', '0', '1'};

// FNV-1a over the payload: detects a torn or bit-rotted file before it poisons a resumed run.
uint64_t fnv1a(const char* p, size_t n, uint64_t h = 1469598103934665603ull) {
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<uint8_t>(p[i])) * 1099511628211ull;
  return h;
}

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) fail("cannot open '", path, "' to sync it: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail("fsync of '", path, "' failed: ", std::strerror(errno));
}

void append_floats(std::string& out, const std::vector<float>& v) {
  out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

}  // namespace

std::string train_state_path(const std::string& dir) { return (fs::path(dir) / "state.bin").string(); }

bool train_state_exists(const std::string& dir) { return fs::exists(train_state_path(dir)); }

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const fs::path target(path);
  const std::string tmp = path + ".tmp";
  {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) fail("cannot write '", tmp, "': ", std::strerror(errno));
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        const int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        fail("writing '", tmp, "' failed: ", std::strerror(e));
      }
      done += static_cast<size_t>(w);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
      ::unlink(tmp.c_str());
      fail("cannot flush '", tmp, "' to disk: ", std::strerror(errno));
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot rename '", tmp, "' to '", path, "': ", std::strerror(e));
  }
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  fsync_path(parent.string(), O_RDONLY | O_DIRECTORY);
}

void save_train_state(const std::string& dir, const TrainState& s) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create checkpoint directory '", dir, "': ", ec.message());
  if (s.adam_m.size() != s.params.size() || s.adam_v.size() != s.params.size())
    fail("internal: optimiser state and parameters differ in size");
  nlohmann::json meta = s.meta;
  meta["num_params"] = s.params.size();
  std::string payload = meta.dump();
  const uint64_t json_len = payload.size();
  append_floats(payload, s.params);
  append_floats(payload, s.adam_m);
  append_floats(payload, s.adam_v);
  std::string out(kMagic, sizeof kMagic);
  const uint64_t checksum = fnv1a(payload.data(), payload.size());
  out.append(reinterpret_cast<const char*>(&json_len), sizeof json_len);
  out.append(reinterpret_cast<const char*>(&checksum), sizeof checksum);
  out += payload;
  write_file_atomic(train_state_path(dir), out);
}

TrainState load_train_state(const std::string& dir) {
  const std::string path = train_state_path(dir);
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("no checkpoint to resume from: cannot read '", path, "'");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string all = ss.str();
  const size_t head = sizeof kMagic + 2 * sizeof(uint64_t);
  if (all.size() < head || std::memcmp(all.data(), kMagic, sizeof kMagic) != 0)
    fail("'", path, "' is not a swiftkv distillation checkpoint");
  uint64_t json_len = 0, checksum = 0;
  std::memcpy(&json_len, all.data() + sizeof kMagic, sizeof json_len);
  std::memcpy(&checksum, all.data() + sizeof kMagic + sizeof json_len, sizeof checksum);
  const char* payload = all.data() + head;
  const size_t payload_len = all.size() - head;
  if (json_len > payload_len || fnv1a(payload, payload_len) != checksum)
    fail("checkpoint '", path, "' is truncated or corrupt (checksum mismatch)");
  TrainState s;
  try {
    s.meta = nlohmann::json::parse(std::string(payload, json_len));
  } catch (const std::exception& e) {
    fail("checkpoint '", path, "': bad metadata: ", e.what());
  }
  const size_t n = s.meta.value("num_params", size_t{0});
  if (payload_len - json_len != 3 * n * sizeof(float))
    fail("checkpoint '", path, "' holds ", payload_len - json_len, " bytes of tensors, expected ",
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
