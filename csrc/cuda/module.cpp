// vrlvr._cuda: pybind11 bindings compiled by the host compiler. Kernels take raw device pointers
// (as integers) and a cudaStream_t (as an integer), so the module never links libtorch; the
// Python side passes tensor.data_ptr() and torch.cuda.current_stream().cuda_stream.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "vrlvr/cuda_runtime_api.h"
#include "vrlvr/registry.h"

namespace py = pybind11;

namespace {

py::dict build_info() {
  py::dict info;
  info["module"] = "vrlvr._cuda";
  info["compiler"] = VRLVR_CXX_COMPILER;
  info["cuda_compiler"] = VRLVR_CUDA_COMPILER;
  info["flags"] = VRLVR_CUDA_FLAGS;
  info["build_type"] = VRLVR_BUILD_TYPE;
  info["cuda_version"] = VRLVR_CUDA_TOOLKIT_VERSION;
  info["cuda_runtime_version"] = vrlvr::cuda::runtime_version();
  py::list archs;
  std::string s = VRLVR_CUDA_ARCHS;
  std::size_t start = 0;
  while (start < s.size()) {
    std::size_t end = s.find(' ', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) archs.append(s.substr(start, end - start));
    start = end + 1;
  }
  info["architectures"] = archs;
  info["cudart"] = "static";
  py::list names;
  for (auto& entry : vrlvr::registrars()) names.append(entry.first);
  info["registered"] = names;
  return info;
}

py::dict device_status() {
  py::dict status;
  std::string error;
  int n = vrlvr::cuda::device_count(&error);
  status["device_count"] = n;
  status["driver_version"] = vrlvr::cuda::driver_version();
  status["error"] = error.empty() ? py::object(py::none()) : py::object(py::str(error));
  py::list devices;
  for (int i = 0; i < n; ++i) {
    vrlvr::cuda::DeviceInfo d;
    std::string err;
    if (!vrlvr::cuda::device_properties(i, &d, &err)) continue;
    py::dict dev;
    dev["index"] = i;
    dev["name"] = d.name;
    dev["compute_capability"] = std::to_string(d.major) + "." + std::to_string(d.minor);
    dev["total_memory"] = d.total_memory;
    dev["multiprocessors"] = d.multiprocessors;
    devices.append(dev);
  }
  status["devices"] = devices;
  return status;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "vrlvr CUDA kernels (raw device pointers + stream, static cudart, no libtorch)";
  m.def("build_info", &build_info, "Compilers, flags, CUDA version and architectures of this build.");
  m.def("device_count", [] { return vrlvr::cuda::device_count(nullptr); },
        "Number of usable CUDA devices; 0 without a driver or device (never raises).");
  m.def("device_status", &device_status,
        "Device count, driver version, the error that explains a count of 0, and device properties.");
  vrlvr::register_all(m);
}
