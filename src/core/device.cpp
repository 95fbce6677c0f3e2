#include "core/device.h"

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/error.h"

namespace skv {
namespace {

class HostMemory final : public DeviceMemory {
 public:
  std::string name() const override { return "host"; }
  void* allocate(size_t bytes) override {
    const size_t rounded = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) fail_resource("out of host memory allocating ", bytes, " bytes");
    return p;
  }
  void deallocate(void* p) override { std::free(p); }
  void copy(void* dst, Device, const void* src, Device, size_t bytes) override {
    if (bytes) std::memmove(dst, src, bytes);
  }
  void zero(void* dst, size_t bytes) override {
    if (bytes) std::memset(dst, 0, bytes);
  }
};

struct Registry {
  std::mutex mu;
  std::array<std::atomic<DeviceMemory*>, 256> memory{};  // read without the lock on every allocation
  size_t count = 1;
  Registry() {
    static HostMemory host;
    memory[0].store(&host);
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

Device register_device(DeviceMemory* memory) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  if (!memory) fail_internal("register_device: no memory");
  if (r.count == r.memory.size()) fail_internal("register_device: too many devices");
  r.memory[r.count].store(memory);
  return Device{static_cast<uint8_t>(r.count++)};
}

DeviceMemory& device_memory(Device d) {
  Registry& r = registry();
  DeviceMemory* m = r.memory[d.id].load();
  if (!m) fail_internal("device ", static_cast<int>(d.id), " is not registered in this process");
  return *m;
}

std::string device_name(Device d) { return device_memory(d).name(); }

}  // namespace skv
