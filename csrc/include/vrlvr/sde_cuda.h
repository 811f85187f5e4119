// Host-side declarations of the CUDA SDE kernels' launchers (csrc/cuda/sde_step.cu). Plain C++
// types only: the pybind11 bindings (csrc/cuda/sde_bindings.cpp) are compiled by the host compiler
// and never include CUDA headers. Pointers are device addresses passed as integers (torch's
// data_ptr()), the stream is a cudaStream_t as an integer (torch.cuda.current_stream().cuda_stream).
#pragma once

#include <cstdint>
#include <string>

namespace vrlvr {
namespace cuda {

// Buffers of one SDE launch. Every [B, N] buffer is contiguous on `device`; unused fields stay 0.
struct SdeLaunch {
  std::uintptr_t x = 0, v = 0, noise = 0, x_next = 0, v_ref = 0;  // [B, N], dtype_x / dtype_v
  std::uintptr_t mean = 0;       // fp32 [B, N]; 0: not written
  std::uintptr_t grad_v = 0;     // [B, N], dtype_v
  std::uintptr_t coef = 0;       // float64 [B, kCoefCount] (vrlvr/sde_math.h)
  std::uintptr_t k = 0;          // float64 [B]: per-sample factor of a backward pass
  std::uintptr_t out = 0;        // fp32 [B]: logp or kl
  std::uintptr_t workspace = 0;  // float64 [sde_workspace_doubles(B, N)]: per-chunk partial sums
  int dtype_x = 0;               // vrlvr::sde::DType codes
  int dtype_v = 0;
  std::int64_t batch = 0;
  std::int64_t numel = 0;        // N, elements per sample
  int device = 0;
  std::uintptr_t stream = 0;
};

// Elements each thread block reduces; a sample of N elements has ceil(N / chunk) partial sums.
std::int64_t sde_chunk_elems();
std::int64_t sde_workspace_doubles(std::int64_t batch, std::int64_t numel);

// Each launcher enqueues its kernels on the stream and returns "" or the CUDA error it hit.
// Step: x_next (+ mean) and, when stochastic, out = logp; the "ode" step writes no logp.
std::string sde_step_launch(const SdeLaunch& a, bool stochastic);
std::string sde_logprob_launch(const SdeLaunch& a);           // out = logp from x, v, x_next
std::string sde_logprob_backward_launch(const SdeLaunch& a);  // grad_v = k * (x_next - mean)
std::string sde_kl_launch(const SdeLaunch& a);                // out = kl from v, v_ref
std::string sde_kl_backward_launch(const SdeLaunch& a);       // grad_v = k * (v - v_ref)

}  // namespace cuda
}  // namespace vrlvr
