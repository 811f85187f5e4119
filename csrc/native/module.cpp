// vrlvr._native: the CPU fast paths (frame parser, fused SDE step). Concept files register their
// bindings through VRLVR_REGISTER_BINDINGS; this file only builds the module and its build info.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "vrlvr/registry.h"

#ifdef VRLVR_HAVE_OPENMP
#include <omp.h>
#endif

namespace py = pybind11;

namespace {

py::dict build_info() {
  py::dict info;
  info["module"] = "vrlvr._native";
  info["version"] = VRLVR_VERSION;
  info["compiler"] = VRLVR_CXX_COMPILER;
  info["flags"] = VRLVR_CXX_FLAGS;
  info["build_type"] = VRLVR_BUILD_TYPE;
  info["cxx_standard"] = static_cast<long>(__cplusplus);
#ifdef VRLVR_HAVE_OPENMP
  info["openmp"] = true;
  info["openmp_version"] = static_cast<long>(_OPENMP);
#else
  info["openmp"] = false;
  info["openmp_version"] = py::none();
#endif
  info["registered"] = [] {
    py::list names;
    for (auto& entry : vrlvr::registrars()) names.append(entry.first);
    return names;
  }();
  return info;
}

int max_threads() {
#ifdef VRLVR_HAVE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_num_threads(int n) {
  if (n < 1) throw py::value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
#ifdef VRLVR_HAVE_OPENMP
  omp_set_num_threads(n);
#endif
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "vrlvr native CPU kernels (C++17, OpenMP)";
  m.def("build_info", &build_info, "Compiler, flags, OpenMP and registered kernels of this build.");
  m.def("max_threads", &max_threads, "Threads an OpenMP parallel region uses (1 without OpenMP).");
  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Set the OpenMP thread count used by native kernels.");
  vrlvr::register_all(m);
}
