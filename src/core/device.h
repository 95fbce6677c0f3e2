#pragma once
// Where memory lives and how to get it. Device 0 is host memory, which host code may read and
// write. Any other device's memory belongs to its backend: host code may hold, offset and pass
// on its pointers, but only that device's primitives (here and in its backend) touch the bytes.
// Devices register their memory here, so that core code (Tensor::empty) allocates on any device
// without knowing the backends, and a new backend is added without editing core, model or engine.
#include <cstddef>
#include <cstdint>
#include <string>

namespace skv {

struct Device {
  uint8_t id = 0;
  bool is_host() const { return id == 0; }
  friend bool operator==(Device a, Device b) = default;
};
inline constexpr Device kHost{};

class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;
  virtual std::string name() const = 0;
  // At least 64-byte aligned; throws skv::Error (resource kind) when the device is full.
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p) = 0;
  // Copies `bytes` from src to dst; each side is on this device or on the host.
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) = 0;
  virtual void zero(void* dst, size_t bytes) = 0;
};

// Registers a device's memory (which must outlive every tensor on it) and returns its id.
Device register_device(DeviceMemory* memory);
// Throws skv::Error for an id nothing registered.
DeviceMemory& device_memory(Device d);
std::string device_name(Device d);

}  // namespace skv
