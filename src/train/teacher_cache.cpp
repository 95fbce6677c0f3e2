#include "train/teacher_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/fingerprint.h"
#include "io/read_file.h"

namespace skv::train {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
constexpr int kFormat = 1;

int64_t padded4(int64_t bytes) { return (bytes + 3) / 4 * 4; }

// Byte offsets of the sections of one record of n tokens (x_M at 0), and its padded size: the
// one description of the layout that sizing, writing and reading all use.
struct RecordLayout {
  int64_t fn = 0, logp = 0, rest = 0, ids = 0, h_last = 0, bytes = 0;
};

RecordLayout record_layout(int64_t n, int64_t d, int64_t k) {
  RecordLayout r;
  int64_t at = n * d * 4;
  if (k == 0) {
    r.fn = at;
    at += n * d * 2;
  } else {
    r.logp = at;
    at += n * k * 4;
    r.rest = at;
    at += n * 4;
    r.ids = at;
    at += n * k * 4;
  }
  r.h_last = at;
  r.bytes = padded4(at + n * d * 2);
  return r;
}

uint64_t lengths_hash(const std::vector<int64_t>& lengths) {
  return io::hash_bytes(lengths.data(), lengths.size() * sizeof(int64_t));
}

// The fields a cache must share with the run that reads it.
Json identity(const TeacherCacheSpec& s) {
  int64_t tokens = 0;
  for (int64_t n : s.lengths) tokens += n;
  return Json{{"format", kFormat},
              {"hidden_size", s.hidden},
              {"top_k", s.k},
              {"temperature", s.temperature},
              {"model_fingerprint", s.model_fingerprint},
              {"data_fingerprint", s.data_fingerprint},
              {"sequences", static_cast<int64_t>(s.lengths.size())},
              {"tokens", tokens},
              {"lengths_fingerprint", io::hex64(lengths_hash(s.lengths))},
              {"bytes", TeacherCache::total_bytes(s)}};
}

std::string meta_path(const std::string& dir) { return (fs::path(dir) / "meta.json").string(); }
std::string bin_path(const std::string& dir) { return (fs::path(dir) / "teacher.bin").string(); }

Json read_meta(const std::string& dir) {
  const std::string path = meta_path(dir);
  const std::string text = io::read_file(path, "teacher cache metadata");
  try {
    return Json::parse(text);
  } catch (const std::exception& e) {
    fail(path, " is not valid JSON (", bound_message(e.what(), 300),
         "); remove the directory to rebuild the teacher cache");
  }
}

void write_meta(const std::string& dir, const TeacherCacheSpec& s, int64_t complete) {
  Json j = identity(s);
  j["complete_sequences"] = complete;
  io::write_file_atomic(meta_path(dir), j.dump(2) + "\n");
}

void check_identity(const std::string& dir, const Json& saved, const TeacherCacheSpec& s) {
  const Json now = identity(s);
  for (auto it = now.begin(); it != now.end(); ++it)
    if (!saved.contains(it.key()) || saved[it.key()] != it.value())
      fail("teacher cache ", dir, " was made for another run: its ", it.key(), " is ",
           saved.contains(it.key()) ? saved[it.key()].dump() : std::string("missing"), ", this run's is ",
           it.value().dump(), " (give another --teacher-cache directory, or remove this one)");
}

}  // namespace

int64_t TeacherCache::bytes_per_record(int64_t n, int64_t hidden, int64_t k) {
  return record_layout(n, hidden, k).bytes;
}

int64_t TeacherCache::total_bytes(const TeacherCacheSpec& s) {
  int64_t total = 0;
  for (int64_t n : s.lengths) total += bytes_per_record(n, s.hidden, s.k);
  return total;
}

void TeacherCache::prepare(const std::string& dir, const TeacherCacheSpec& spec) {
  if (spec.lengths.empty() || spec.hidden < 1 || spec.k < 0) fail("teacher cache: nothing to cache");
  std::error_code ec;
  if (fs::exists(meta_path(dir), ec)) {
    check_identity(dir, read_meta(dir), spec);
    const std::string bin = bin_path(dir);
    const auto size = fs::file_size(bin, ec);
    if (ec || static_cast<int64_t>(size) != total_bytes(spec))
      fail("teacher cache ", bin, " is ", ec ? std::string("missing") : std::to_string(size) + " bytes", ", expected ",
           total_bytes(spec), " (remove ", dir, " to rebuild it)");
    return;
  }
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create the teacher cache directory ", dir, ": ", ec.message());
  const std::string bin = bin_path(dir);
  const int fd = ::open(bin.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) io::fail_write(errno, "cannot create " + bin);
  // Reserve the blocks now, so a full disk fails here and not hours into the build.
  const int rc = ::posix_fallocate(fd, 0, total_bytes(spec));
  ::close(fd);
  if (rc != 0) {
    ::unlink(bin.c_str());
    io::fail_write(rc, "cannot reserve " + std::to_string(total_bytes(spec)) + " bytes for the teacher cache " + bin);
  }
  try {
    write_meta(dir, spec, 0);
  } catch (const Error&) {
    // Without meta.json the reserved file is not a cache, only gigabytes of a disk already short
    // of room; the next run creates both again.
    ::unlink(bin.c_str());
    throw;
  }
}

TeacherCache::TeacherCache(const std::string& dir, const TeacherCacheSpec& spec, bool write)
    : dir_(dir), bin_(bin_path(dir)), spec_(spec) {
  const Json meta = read_meta(dir);
  check_identity(dir, meta, spec);
  complete_ = meta.value("complete_sequences", int64_t{0});
  if (complete_ < 0 || complete_ > size()) fail(meta_path(dir), ": complete_sequences ", complete_, " out of range");
  offsets_.resize(spec.lengths.size() + 1, 0);
  for (size_t i = 0; i < spec.lengths.size(); ++i)
    offsets_[i + 1] = offsets_[i] + bytes_per_record(spec.lengths[i], spec.hidden, spec.k);
  if (write) {
    fd_ = ::open(bin_.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0) io::fail_write(errno, "cannot open " + bin_ + " for writing");
  }
}

TeacherCache::~TeacherCache() {
  if (map_ != nullptr) ::munmap(const_cast<uint8_t*>(map_), map_size_);
  if (fd_ >= 0) ::close(fd_);
}

void TeacherCache::write(int64_t seq, const TeacherTargetBuffers& t) {
  if (fd_ < 0) fail("teacher cache ", bin_, " is not open for writing");
  if (seq < 0 || seq >= size()) fail("teacher cache: sequence ", seq, " out of range");
  const int64_t n = spec_.lengths[seq], d = spec_.hidden, k = spec_.k;
  if (t.k != k || static_cast<int64_t>(t.x_m.size()) != n * d || static_cast<int64_t>(t.h_last.size()) != n * d ||
      static_cast<int64_t>(k == 0 ? t.fn.size() : t.rest.size()) != (k == 0 ? n * d : n))
    fail("teacher cache: sequence ", seq, " has the wrong shape");
  const RecordLayout r = record_layout(n, d, k);
  std::vector<uint8_t> rec(r.bytes, 0);
  std::memcpy(rec.data(), t.x_m.data(), n * d * 4);
  if (k == 0) {
    std::memcpy(rec.data() + r.fn, t.fn.data(), n * d * 2);
  } else {
    std::memcpy(rec.data() + r.logp, t.top_logp.data(), n * k * 4);
    std::memcpy(rec.data() + r.rest, t.rest.data(), n * 4);
    std::memcpy(rec.data() + r.ids, t.top_ids.data(), n * k * 4);
  }
  std::memcpy(rec.data() + r.h_last, t.h_last.data(), n * d * 2);
  size_t done = 0;
  while (done < rec.size()) {
    const ssize_t w = ::pwrite(fd_, rec.data() + done, rec.size() - done, offsets_[seq] + static_cast<off_t>(done));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) io::fail_write(errno, "cannot write the teacher cache " + bin_);
    if (w == 0) io::fail_write(EIO, "cannot write the teacher cache " + bin_);
    done += static_cast<size_t>(w);
  }
}

void TeacherCache::sync() {
  if (fd_ >= 0 && ::fdatasync(fd_) != 0) io::fail_write(errno, "cannot write the teacher cache " + bin_, "fdatasync");
}

void TeacherCache::commit(int64_t done, bool record) {
  if (done < complete_ || done > size()) fail("teacher cache: cannot commit ", done, " of ", size(), " sequences");
  if (record) write_meta(dir_, spec_, done);
  complete_ = done;
}

TeacherTargets TeacherCache::get(int64_t seq) {
  if (seq < 0 || seq >= complete_) fail("teacher cache: sequence ", seq, " is not recorded");
  if (map_ == nullptr) {
    const int fd = ::open(bin_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open ", bin_, ": ", std::strerror(errno));
    map_size_ = static_cast<size_t>(offsets_.back());
    void* m = ::mmap(nullptr, map_size_, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED) fail("cannot map ", bin_, ": ", std::strerror(errno));
    map_ = static_cast<const uint8_t*>(m);
  }
  const int64_t k = spec_.k;
  const RecordLayout r = record_layout(spec_.lengths[seq], spec_.hidden, k);
  const uint8_t* p = map_ + offsets_[seq];
  TeacherTargets t;
  t.k = k;
  t.x_m = reinterpret_cast<const float*>(p);
  t.h_last = reinterpret_cast<const uint16_t*>(p + r.h_last);
  if (k == 0) {
    t.fn = reinterpret_cast<const uint16_t*>(p + r.fn);
  } else {
    t.top_logp = reinterpret_cast<const float*>(p + r.logp);
    t.rest = reinterpret_cast<const float*>(p + r.rest);
    t.top_ids = reinterpret_cast<const int32_t*>(p + r.ids);
  }
  return t;
}

}  // namespace skv::train
