// CUDA runtime queries for vrlvr._cuda. cudart is linked statically, so importing the module
// never needs libcudart; the driver (libcuda) is loaded lazily by the first runtime call and its
// absence comes back as an error code, never a crash.
#include <cuda_runtime.h>

#include <cstdio>

#include "vrlvr/cuda_runtime_api.h"

namespace vrlvr {
namespace cuda {

int runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}

int driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) return 0;
  return v;  // 0 when no driver is installed
}

int device_count(std::string* error) {
  int n = 0;
  cudaError_t status = cudaGetDeviceCount(&n);
  if (status != cudaSuccess) {
    if (error) *error = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  return n;
}

bool device_properties(int device, DeviceInfo* out, std::string* error) {
  cudaDeviceProp prop;
  cudaError_t status = cudaGetDeviceProperties(&prop, device);
  if (status != cudaSuccess) {
    if (error) *error = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
    cudaGetLastError();
    return false;
  }
  out->name = prop.name;
  out->major = prop.major;
  out->minor = prop.minor;
  out->total_memory = prop.totalGlobalMem;
  out->multiprocessors = prop.multiProcessorCount;
  return true;
}

std::string last_error() {
  cudaError_t status = cudaGetLastError();
  if (status == cudaSuccess) return "";
  return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
}

}  // namespace cuda
}  // namespace vrlvr
