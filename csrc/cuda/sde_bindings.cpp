// pybind11 bindings of the CUDA SDE kernels (host compiler, no CUDA headers). Pointers and the
// stream arrive as integers: vrlvr/ops/sde_backends.py passes tensor.data_ptr() and
// torch.cuda.current_stream(device).cuda_stream, so the kernels run on the caller's stream and
// vrlvr._cuda never links libtorch. Launches are asynchronous; a launch error raises RuntimeError.
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "vrlvr/registry.h"
#include "vrlvr/sde_cuda.h"
#include "vrlvr/sde_math.h"

namespace py = pybind11;

namespace {

using vrlvr::cuda::SdeLaunch;

void raise_if(const std::string& err) {
  if (!err.empty()) throw std::runtime_error(err);
}

SdeLaunch common(int dtype_x, int dtype_v, std::int64_t batch, std::int64_t numel, int device,
                 std::uintptr_t stream) {
  SdeLaunch a;
  a.dtype_x = dtype_x;
  a.dtype_v = dtype_v;
  a.batch = batch;
  a.numel = numel;
  a.device = device;
  a.stream = stream;
  return a;
}

void step(std::uintptr_t x, std::uintptr_t v, std::uintptr_t noise, std::uintptr_t x_next,
          std::uintptr_t mean, std::uintptr_t coef, std::uintptr_t logp, std::uintptr_t workspace,
          int dtype_x, int dtype_v, std::int64_t batch, std::int64_t numel, bool stochastic, int device,
          std::uintptr_t stream) {
  SdeLaunch a = common(dtype_x, dtype_v, batch, numel, device, stream);
  a.x = x, a.v = v, a.noise = noise, a.x_next = x_next, a.mean = mean, a.coef = coef, a.out = logp;
  a.workspace = workspace;
  py::gil_scoped_release release;
  raise_if(vrlvr::cuda::sde_step_launch(a, stochastic));
}

void logprob(std::uintptr_t x, std::uintptr_t v, std::uintptr_t x_next, std::uintptr_t coef,
             std::uintptr_t logp, std::uintptr_t workspace, int dtype_x, int dtype_v, std::int64_t batch,
             std::int64_t numel, int device, std::uintptr_t stream) {
  SdeLaunch a = common(dtype_x, dtype_v, batch, numel, device, stream);
  a.x = x, a.v = v, a.x_next = x_next, a.coef = coef, a.out = logp, a.workspace = workspace;
  py::gil_scoped_release release;
  raise_if(vrlvr::cuda::sde_logprob_launch(a));
}

void logprob_backward(std::uintptr_t x, std::uintptr_t v, std::uintptr_t x_next, std::uintptr_t coef,
                      std::uintptr_t k, std::uintptr_t grad_v, int dtype_x, int dtype_v,
                      std::int64_t batch, std::int64_t numel, int device, std::uintptr_t stream) {
  SdeLaunch a = common(dtype_x, dtype_v, batch, numel, device, stream);
  a.x = x, a.v = v, a.x_next = x_next, a.coef = coef, a.k = k, a.grad_v = grad_v;
  py::gil_scoped_release release;
  raise_if(vrlvr::cuda::sde_logprob_backward_launch(a));
}

void kl(std::uintptr_t v, std::uintptr_t v_ref, std::uintptr_t coef, std::uintptr_t out,
        std::uintptr_t workspace, int dtype_v, std::int64_t batch, std::int64_t numel, int device,
        std::uintptr_t stream) {
  SdeLaunch a = common(dtype_v, dtype_v, batch, numel, device, stream);
  a.v = v, a.v_ref = v_ref, a.coef = coef, a.out = out, a.workspace = workspace;
  py::gil_scoped_release release;
  raise_if(vrlvr::cuda::sde_kl_launch(a));
}

void kl_backward(std::uintptr_t v, std::uintptr_t v_ref, std::uintptr_t k, std::uintptr_t grad_v,
                 int dtype_v, std::int64_t batch, std::int64_t numel, int device,
                 std::uintptr_t stream) {
  SdeLaunch a = common(dtype_v, dtype_v, batch, numel, device, stream);
  a.v = v, a.v_ref = v_ref, a.k = k, a.grad_v = grad_v;
  py::gil_scoped_release release;
  raise_if(vrlvr::cuda::sde_kl_backward_launch(a));
}

py::dict coef_layout() {
  py::dict d;
  for (const vrlvr::sde::CoefName& c : vrlvr::sde::kCoefLayout) d[c.name] = c.value;
  return d;
}

void register_sde(py::module_& m) {
  using py::arg;
  m.def("sde_coef_layout", &coef_layout, "Columns of the float64 [B, count] SDE coefficient table.");
  m.def("sde_chunk_elems", &vrlvr::cuda::sde_chunk_elems, "Elements reduced per thread block.");
  m.def("sde_workspace_doubles", &vrlvr::cuda::sde_workspace_doubles, arg("batch"), arg("numel"),
        "float64 workspace (partial sums) that sde_step / sde_logprob / sde_kl need.");
  m.def("sde_step", &step, arg("x"), arg("v"), arg("noise"), arg("x_next"), arg("mean"), arg("coef"),
        arg("logp"), arg("workspace"), arg("dtype_x"), arg("dtype_v"), arg("batch"), arg("numel"),
        arg("stochastic"), arg("device"), arg("stream"),
        "Enqueue the fused SDE step on `stream`: x_next, optional fp32 mean, fp32 logp [B].");
  m.def("sde_logprob", &logprob, arg("x"), arg("v"), arg("x_next"), arg("coef"), arg("logp"),
        arg("workspace"), arg("dtype_x"), arg("dtype_v"), arg("batch"), arg("numel"), arg("device"),
        arg("stream"), "Enqueue the per-sample log-prob of x_next: fp32 logp [B].");
  m.def("sde_logprob_backward", &logprob_backward, arg("x"), arg("v"), arg("x_next"), arg("coef"),
        arg("k"), arg("grad_v"), arg("dtype_x"), arg("dtype_v"), arg("batch"), arg("numel"),
        arg("device"), arg("stream"), "Enqueue grad_v = k[b] * (x_next - mean).");
  m.def("sde_kl", &kl, arg("v"), arg("v_ref"), arg("coef"), arg("kl"), arg("workspace"), arg("dtype_v"),
        arg("batch"), arg("numel"), arg("device"), arg("stream"),
        "Enqueue the per-sample KL of the step Gaussians: fp32 [B].");
  m.def("sde_kl_backward", &kl_backward, arg("v"), arg("v_ref"), arg("k"), arg("grad_v"), arg("dtype_v"),
        arg("batch"), arg("numel"), arg("device"), arg("stream"),
        "Enqueue grad_v = k[b] * (v - v_ref).");
}

}  // namespace

VRLVR_REGISTER_BINDINGS(sde_step, register_sde);
