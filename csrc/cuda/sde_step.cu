// CUDA kernels of the fused SDE step, its log-prob (forward, backward) and the KL. The per-element
// math is csrc/include/vrlvr/sde_math.h, shared with the CPU loop; this file walks memory, reduces
// and launches.
//
// Layout: contiguous [B, N] buffers, grid (ceil(N / kChunk), B) so a block owns kChunk elements of
// one sample (no division by N per element). Reductions: each block sums its chunk in fp32 (per
// thread, then a fixed warp-shuffle tree), writes one float64 partial, and a second tiny kernel
// adds a sample's partials in chunk order in float64 and applies the coefficients. No atomics, so
// results are bitwise reproducible run to run.
#include <cuda_runtime.h>

#include <algorithm>
#include <initializer_list>
#include <string>

#include "vrlvr/sde_cuda.h"
#include "vrlvr/sde_math.h"

namespace vrlvr {
namespace cuda {
namespace {

namespace sde = vrlvr::sde;

constexpr int kThreads = 256;
constexpr int kPerThread = 16;
constexpr std::int64_t kChunk = static_cast<std::int64_t>(kThreads) * kPerThread;  // 4096
constexpr int kMaxGridY = 65535;  // samples beyond it loop inside the kernel

// Sum over the block in a fixed order: warp shuffles, then warp 0 over the per-warp sums.
__device__ float block_sum(float v) {
  __shared__ float warp_sums[kThreads / 32];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  float total = 0.0f;
  if (warp == 0) {
    total = lane < kThreads / 32 ? warp_sums[lane] : 0.0f;
    for (int off = 16; off > 0; off >>= 1) total += __shfl_down_sync(0xffffffffu, total, off);
  }
  __syncthreads();  // warp_sums is reused by the next sample of a grid-stride loop
  return total;     // valid in thread 0
}

struct Row {
  float cx, cv, s;
};

__device__ inline Row load_row(const double* coef, std::int64_t b) {
  const double* c = coef + b * sde::kCoefCount;
  return {static_cast<float>(c[sde::kCoefCx]), static_cast<float>(c[sde::kCoefCv]),
          static_cast<float>(c[sde::kCoefS])};
}

template <typename TX, typename TV>
__global__ void __launch_bounds__(kThreads)
    step_kernel(const TX* __restrict__ x, const TV* __restrict__ v, const TX* __restrict__ noise,
                TX* __restrict__ x_next, float* __restrict__ mean, const double* __restrict__ coef,
                std::int64_t B, std::int64_t N, bool stochastic, double* __restrict__ partial) {
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.x) * kChunk;
  const std::int64_t end = min(begin + kChunk, N);
  for (std::int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const Row c = load_row(coef, b);
    const std::int64_t base = b * N;
    float acc = 0.0f;
    if (stochastic) {
#pragma unroll 4
      for (std::int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
        float m;
        acc += sde::step_element(c.cx, c.cv, c.s, x[base + i], v[base + i], noise[base + i],
                                 &x_next[base + i], &m);
        if (mean) mean[base + i] = m;
      }
      const float total = block_sum(acc);
      if (threadIdx.x == 0) partial[b * gridDim.x + blockIdx.x] = static_cast<double>(total);
    } else {
#pragma unroll 4
      for (std::int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
        float m;
        sde::ode_element(c.cx, c.cv, x[base + i], v[base + i], &x_next[base + i], &m);
        if (mean) mean[base + i] = m;
      }
    }
  }
}

template <typename TX, typename TV>
__global__ void __launch_bounds__(kThreads)
    logprob_kernel(const TX* __restrict__ x, const TV* __restrict__ v, const TX* __restrict__ x_next,
                   const double* __restrict__ coef, std::int64_t B, std::int64_t N,
                   double* __restrict__ partial) {
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.x) * kChunk;
  const std::int64_t end = min(begin + kChunk, N);
  for (std::int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const Row c = load_row(coef, b);
    const std::int64_t base = b * N;
    float acc = 0.0f;
#pragma unroll 4
    for (std::int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
      const float r = sde::logprob_residual(c.cx, c.cv, x[base + i], v[base + i], x_next[base + i]);
      acc += r * r;
    }
    const float total = block_sum(acc);
    if (threadIdx.x == 0) partial[b * gridDim.x + blockIdx.x] = static_cast<double>(total);
  }
}

template <typename TX, typename TV>
__global__ void __launch_bounds__(kThreads)
    logprob_backward_kernel(const TX* __restrict__ x, const TV* __restrict__ v,
                            const TX* __restrict__ x_next, const double* __restrict__ coef,
                            const double* __restrict__ k, TV* __restrict__ grad_v, std::int64_t B,
                            std::int64_t N) {
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.x) * kChunk;
  const std::int64_t end = min(begin + kChunk, N);
  for (std::int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const Row c = load_row(coef, b);
    const float kb = static_cast<float>(k[b]);
    const std::int64_t base = b * N;
#pragma unroll 4
    for (std::int64_t i = begin + threadIdx.x; i < end; i += kThreads)
      sde::store(&grad_v[base + i], sde::logprob_grad_element(c.cx, c.cv, kb, x[base + i], v[base + i],
                                                              x_next[base + i]));
  }
}

template <typename TV>
__global__ void __launch_bounds__(kThreads)
    kl_kernel(const TV* __restrict__ v, const TV* __restrict__ v_ref, std::int64_t B, std::int64_t N,
              double* __restrict__ partial) {
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.x) * kChunk;
  const std::int64_t end = min(begin + kChunk, N);
  for (std::int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const std::int64_t base = b * N;
    float acc = 0.0f;
#pragma unroll 4
    for (std::int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
      const float d = sde::kl_delta(v[base + i], v_ref[base + i]);
      acc += d * d;
    }
    const float total = block_sum(acc);
    if (threadIdx.x == 0) partial[b * gridDim.x + blockIdx.x] = static_cast<double>(total);
  }
}

template <typename TV>
__global__ void __launch_bounds__(kThreads)
    kl_backward_kernel(const TV* __restrict__ v, const TV* __restrict__ v_ref,
                       const double* __restrict__ k, TV* __restrict__ grad_v, std::int64_t B,
                       std::int64_t N) {
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.x) * kChunk;
  const std::int64_t end = min(begin + kChunk, N);
  for (std::int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const float kb = static_cast<float>(k[b]);
    const std::int64_t base = b * N;
#pragma unroll 4
    for (std::int64_t i = begin + threadIdx.x; i < end; i += kThreads)
      sde::store(&grad_v[base + i], sde::kl_grad_element(kb, v[base + i], v_ref[base + i]));
  }
}

// out[b] = coef[b, const_col] + coef[b, scale_col] * (sum of the sample's partials) / N; one thread
// per sample adds its partials in chunk order in float64.
__global__ void finalize_kernel(const double* __restrict__ partial, std::int64_t chunks,
                                const double* __restrict__ coef, int scale_col, int const_col,
                                std::int64_t B, std::int64_t N, float* __restrict__ out) {
  const std::int64_t b = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= B) return;
  double sum = 0.0;
  for (std::int64_t c = 0; c < chunks; ++c) sum += partial[b * chunks + c];
  const double* row = coef + b * sde::kCoefCount;
  const double base = const_col >= 0 ? row[const_col] : 0.0;
  out[b] = static_cast<float>(base + row[scale_col] * (sum / static_cast<double>(N)));
}

template <typename F>
bool with_dtype(int code, F&& f) {
  switch (code) {
    case sde::kFloat32:
      f(float{});
      return true;
    case sde::kBFloat16:
      f(sde::bf16{});
      return true;
    case sde::kFloat16:
      f(sde::f16{});
      return true;
    default:
      return false;
  }
}

std::int64_t chunks_of(std::int64_t n) { return (n + kChunk - 1) / kChunk; }

dim3 grid_of(const SdeLaunch& a) {
  return dim3(static_cast<unsigned>(chunks_of(a.numel)),
              static_cast<unsigned>(std::min<std::int64_t>(a.batch, kMaxGridY)));
}

cudaStream_t stream_of(const SdeLaunch& a) { return reinterpret_cast<cudaStream_t>(a.stream); }

template <typename T>
const T* in(std::uintptr_t p) {
  return reinterpret_cast<const T*>(p);
}
template <typename T>
T* out(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

std::string error_of(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return "";
  cudaGetLastError();  // clear a non-sticky error so later launches start clean
  return std::string(what) + ": " + cudaGetErrorName(status) + ": " + cudaGetErrorString(status);
}

// Makes `device` current for one launch and restores the caller's device afterwards, so torch's
// notion of the current device is left as it was.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) {
      cudaGetLastError();
      previous_ = -1;
    }
    status_ = previous_ == device ? cudaSuccess : cudaSetDevice(device);
  }
  ~DeviceGuard() {
    if (previous_ >= 0 && status_ == cudaSuccess) cudaSetDevice(previous_);
  }
  cudaError_t status() const { return status_; }

 private:
  int previous_ = -1;
  cudaError_t status_ = cudaSuccess;
};

struct NamedPtr {
  const char* name;
  std::uintptr_t ptr;
};

// Size and pointer checks; "" when the launch may proceed. A null buffer would fault on the
// device (a sticky error that ends the CUDA context), so it is refused here, before any launch.
std::string check(const SdeLaunch& a, const char* what, std::initializer_list<NamedPtr> required) {
  if (a.batch < 1 || a.numel < 1) return std::string(what) + ": batch and numel must be >= 1";
  if (chunks_of(a.numel) > 0x7fffffff) return std::string(what) + ": too many elements per sample";
  for (const NamedPtr& p : required)
    if (p.ptr == 0) return std::string(what) + ": null pointer for " + p.name;
  return "";
}

// Checks `a`, makes its device current and calls launch(), which enqueues the kernels and returns
// false for an unknown dtype code; "" or the error of the check, the device switch or the launch.
template <typename Launch>
std::string run(const SdeLaunch& a, const char* what, std::initializer_list<NamedPtr> required,
                Launch&& launch) {
  const std::string err = check(a, what, required);
  if (!err.empty()) return err;
  DeviceGuard guard(a.device);
  if (guard.status() != cudaSuccess) return error_of(guard.status(), what);
  if (!launch()) return std::string(what) + ": unknown dtype code";
  return error_of(cudaGetLastError(), what);
}

// f(TX{}, TV{}) for the dtype codes of x and v; false for an unknown code.
template <typename F>
bool with_dtypes(const SdeLaunch& a, F&& f) {
  bool ok_v = true;
  const bool ok_x = with_dtype(a.dtype_x, [&](auto tx) {
    ok_v = with_dtype(a.dtype_v, [&](auto tv) { f(tx, tv); });
  });
  return ok_x && ok_v;
}

void launch_finalize(const SdeLaunch& a, int scale_col, int const_col) {
  const int threads = 128;
  const unsigned blocks = static_cast<unsigned>((a.batch + threads - 1) / threads);
  finalize_kernel<<<blocks, threads, 0, stream_of(a)>>>(in<double>(a.workspace), chunks_of(a.numel),
                                                        in<double>(a.coef), scale_col, const_col,
                                                        a.batch, a.numel, out<float>(a.out));
}

}  // namespace

std::int64_t sde_chunk_elems() { return kChunk; }

std::int64_t sde_workspace_doubles(std::int64_t batch, std::int64_t numel) {
  return batch * chunks_of(numel);
}

std::string sde_step_launch(const SdeLaunch& a, bool stochastic) {
  const char* what = "sde_step";
  if (stochastic) {  // the "ode" step reads no noise and writes no logp
    const std::string err = check(a, what, {{"noise", a.noise}, {"logp", a.out}, {"workspace", a.workspace}});
    if (!err.empty()) return err;
  }
  return run(a, what, {{"x", a.x}, {"v", a.v}, {"x_next", a.x_next}, {"coef", a.coef}}, [&] {
    const bool ok = with_dtypes(a, [&](auto tx, auto tv) {
      using TX = decltype(tx);
      using TV = decltype(tv);
      step_kernel<TX, TV><<<grid_of(a), kThreads, 0, stream_of(a)>>>(
          in<TX>(a.x), in<TV>(a.v), in<TX>(a.noise), out<TX>(a.x_next), out<float>(a.mean),
          in<double>(a.coef), a.batch, a.numel, stochastic, out<double>(a.workspace));
    });
    if (ok && stochastic) launch_finalize(a, sde::kCoefLogpScale, sde::kCoefLogpConst);
    return ok;
  });
}

std::string sde_logprob_launch(const SdeLaunch& a) {
  return run(a, "sde_logprob",
             {{"x", a.x}, {"v", a.v}, {"x_next", a.x_next}, {"coef", a.coef}, {"logp", a.out},
              {"workspace", a.workspace}},
             [&] {
               const bool ok = with_dtypes(a, [&](auto tx, auto tv) {
                 using TX = decltype(tx);
                 using TV = decltype(tv);
                 logprob_kernel<TX, TV><<<grid_of(a), kThreads, 0, stream_of(a)>>>(
                     in<TX>(a.x), in<TV>(a.v), in<TX>(a.x_next), in<double>(a.coef), a.batch, a.numel,
                     out<double>(a.workspace));
               });
               if (ok) launch_finalize(a, sde::kCoefLogpScale, sde::kCoefLogpConst);
               return ok;
             });
}

std::string sde_logprob_backward_launch(const SdeLaunch& a) {
  return run(a, "sde_logprob_backward",
             {{"x", a.x}, {"v", a.v}, {"x_next", a.x_next}, {"coef", a.coef}, {"k", a.k},
              {"grad_v", a.grad_v}},
             [&] {
               return with_dtypes(a, [&](auto tx, auto tv) {
                 using TX = decltype(tx);
                 using TV = decltype(tv);
                 logprob_backward_kernel<TX, TV><<<grid_of(a), kThreads, 0, stream_of(a)>>>(
                     in<TX>(a.x), in<TV>(a.v), in<TX>(a.x_next), in<double>(a.coef), in<double>(a.k),
                     out<TV>(a.grad_v), a.batch, a.numel);
               });
             });
}

std::string sde_kl_launch(const SdeLaunch& a) {
  return run(a, "sde_kl",
             {{"v", a.v}, {"v_ref", a.v_ref}, {"coef", a.coef}, {"kl", a.out}, {"workspace", a.workspace}},
             [&] {
               const bool ok = with_dtype(a.dtype_v, [&](auto tv) {
                 using TV = decltype(tv);
                 kl_kernel<TV><<<grid_of(a), kThreads, 0, stream_of(a)>>>(
                     in<TV>(a.v), in<TV>(a.v_ref), a.batch, a.numel, out<double>(a.workspace));
               });
               if (ok) launch_finalize(a, sde::kCoefKlScale, -1);
               return ok;
             });
}

std::string sde_kl_backward_launch(const SdeLaunch& a) {
  return run(a, "sde_kl_backward", {{"v", a.v}, {"v_ref", a.v_ref}, {"k", a.k}, {"grad_v", a.grad_v}},
             [&] {
               return with_dtype(a.dtype_v, [&](auto tv) {
                 using TV = decltype(tv);
                 kl_backward_kernel<TV><<<grid_of(a), kThreads, 0, stream_of(a)>>>(
                     in<TV>(a.v), in<TV>(a.v_ref), in<double>(a.k), out<TV>(a.grad_v), a.batch, a.numel);
               });
             });
}

}  // namespace cuda
}  // namespace vrlvr
