#include <array>
#include <atomic>

#include "backend/backend.h"
#include "core/error.h"

namespace skv::backend {
namespace cpu {
Backend& host_backend();
}

namespace {

std::array<std::atomic<Backend*>, 256>& table() {
  static std::array<std::atomic<Backend*>, 256> t{};
  return t;
}

}  // namespace

void register_backend(Device device, Backend* backend) {
  if (device.is_host()) fail_internal("the host's backend is the CPU backend");
  table()[device.id].store(backend);
}

Backend& backend_for(Device device) {
  if (device.is_host()) return cpu::host_backend();
  Backend* b = table()[device.id].load();
  if (!b) fail("no backend serves device ", static_cast<int>(device.id), " (", device_name(device), ") in this build");
  return *b;
}

}  // namespace skv::backend
