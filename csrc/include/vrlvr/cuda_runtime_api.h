// Host-side declarations of vrlvr._cuda's runtime helpers. Plain C++ types only, so the pybind11
// bindings compile with the host compiler and never include CUDA headers.
#pragma once

#include <cstddef>
#include <string>

namespace vrlvr {
namespace cuda {

struct DeviceInfo {
  std::string name;
  int major = 0;
  int minor = 0;
  std::size_t total_memory = 0;
  int multiprocessors = 0;
};

int runtime_version();                        // e.g. 13000 for CUDA 13.0
int driver_version();                         // 0 when no driver is installed
int device_count(std::string* error);         // 0 (and *error set) without driver or device
bool device_properties(int device, DeviceInfo* out, std::string* error);
std::string last_error();                     // "" when no error is pending

}  // namespace cuda
}  // namespace vrlvr
