// CUDA kernels of the fused SDE step, its log-prob (forward, backward) and the KL. The per-element
// math is csrc/include/vrlvr/sde_math.h, shared with the CPU loop; this file walks memory, reduces
// and launches.
//
// Work items: every sample of N elements (contiguous [B, N] buffers) is cut into chunks of kChunk
// elements; item t = b * chunks + c is chunk c of sample b. A 1-D grid of as many blocks as the GPU
// holds at once (occupancy API x SM count, capped by the item count) strides over the items, so
// any batch size fits one launch and the last wave is at most one item per block short.
//
// Memory: each thread handles groups of V = 16 / (widest element size) consecutive elements (4 for
// fp32, 8 for bf16 / fp16). When every operand pointer is 16-byte aligned and N % V == 0 (so every
// group of every row is aligned too) a group is one 16-byte load or store per fp32 operand, 8 bytes
// per 16-bit operand next to an fp32 one; otherwise the same kernel loads element by element
// (kVec = false). Both paths give every thread the same elements in the same order, so their sums
// are bit-identical: a re-score of a rollout stored at an unaligned address still reproduces its
// logp exactly.
//
// Reductions: each block sums its chunk in fp32 (per thread with explicit FMAs, then a fixed
// warp-shuffle tree), writes one float64 partial per item, and a second tiny kernel adds a sample's
// partials in chunk order in float64 and applies the coefficients. No atomics: results are bitwise
// reproducible run to run and do not depend on the grid size.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "vrlvr/sde_cuda.h"
#include "vrlvr/sde_math.h"

namespace vrlvr {
namespace cuda {
namespace {

namespace sde = vrlvr::sde;

constexpr int kThreads = 256;
// 2048 elements: 2 groups per thread in fp32, 1 in 16-bit. Small enough that a Wan2.2-5B latent
// (1.57M elements per sample, B = 4: 3072 items) fills ~3 full waves of an H100/H200 with a short
// tail; large enough that the per-item block sum (two __syncthreads) is a few % of its time.
constexpr std::int64_t kChunk = 2048;

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
  __syncthreads();  // warp_sums is reused by the block's next item
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

// Elements per group: one 16-byte access of the widest operand.
template <typename A, typename B = A>
__host__ __device__ constexpr int width() {
  return 16 / static_cast<int>(sizeof(A) > sizeof(B) ? sizeof(A) : sizeof(B));
}

// The integer type of one aligned access of `Bytes` bytes (16: 128-bit ld/st.global.v4).
template <int Bytes>
struct Raw;
template <>
struct Raw<16> {
  using type = uint4;
};
template <>
struct Raw<8> {
  using type = uint2;
};
template <>
struct Raw<4> {
  using type = unsigned int;
};

template <typename T, int V>
struct Pack {
  T e[V];
};

// Bytes per access of a group of V elements of T: the whole group, at most 16 (the fp32 mean of
// an 8-wide 16-bit group is two 16-byte accesses). A group starts at a multiple of its own size
// from a 16-byte aligned base, so every access is aligned to its size.
template <typename T, int V>
__host__ __device__ constexpr int access_bytes() {
  return sizeof(T) * V < 16 ? static_cast<int>(sizeof(T) * V) : 16;
}

// Work item t -> its sample b and the flat range [begin, end) of its chunk.
struct Item {
  std::int64_t b, begin, end;
};

__device__ inline Item item_of(std::int64_t t, std::int64_t chunks, std::int64_t N) {
  const std::int64_t b = t / chunks;
  const std::int64_t c = t - b * chunks;
  const std::int64_t begin = b * N + c * kChunk;
  return {b, begin, b * N + min((c + 1) * kChunk, N)};
}

// Elements [i, i + V) of p as fp32. Vector path: aligned accesses (the caller guarantees
// alignment and i + V <= end); scalar path: element by element, those at or past `end` read as 0.
template <bool kVec, int V, typename T>
__device__ inline void load(const T* __restrict__ p, std::int64_t i, std::int64_t end, float (&out)[V]) {
  if constexpr (kVec) {
    using R = typename Raw<access_bytes<T, V>()>::type;
    constexpr int n = sizeof(Pack<T, V>) / sizeof(R);
    R raw[n];
#pragma unroll
    for (int j = 0; j < n; ++j) raw[j] = reinterpret_cast<const R*>(p + i)[j];
    Pack<T, V> pack;
    memcpy(&pack, raw, sizeof pack);
#pragma unroll
    for (int k = 0; k < V; ++k) out[k] = sde::to_float(pack.e[k]);
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) out[k] = i + k < end ? sde::to_float(p[i + k]) : 0.0f;
  }
}

template <bool kVec, int V, typename T>
__device__ inline void store(T* __restrict__ p, std::int64_t i, std::int64_t end, const Pack<T, V>& pack) {
  if constexpr (kVec) {
    using R = typename Raw<access_bytes<T, V>()>::type;
    constexpr int n = sizeof(Pack<T, V>) / sizeof(R);
    R raw[n];
    memcpy(raw, &pack, sizeof raw);
#pragma unroll
    for (int j = 0; j < n; ++j) reinterpret_cast<R*>(p + i)[j] = raw[j];
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k)
      if (i + k < end) sde::store(&p[i + k], pack.e[k]);
  }
}

template <bool kVec, int V>
__device__ inline void store(float* __restrict__ p, std::int64_t i, std::int64_t end, const float (&f)[V]) {
  Pack<float, V> pack;
#pragma unroll
  for (int k = 0; k < V; ++k) pack.e[k] = f[k];
  store<kVec, V>(p, i, end, pack);
}

// Squared residuals are accumulated with one explicit FMA each, in the same order in the sampling
// and the re-scoring kernel, whatever the compiler would contract.
__device__ inline float add_square(float acc, float r) { return __fmaf_rn(r, r, acc); }

template <bool kVec, typename TX, typename TV>
__global__ void __launch_bounds__(kThreads)
    step_kernel(const TX* __restrict__ x, const TV* __restrict__ v, const TX* __restrict__ noise,
                TX* __restrict__ x_next, float* __restrict__ mean, const double* __restrict__ coef,
                std::int64_t B, std::int64_t N, std::int64_t chunks, bool stochastic,
                double* __restrict__ partial) {
  constexpr int V = width<TX, TV>();
  for (std::int64_t t = blockIdx.x; t < B * chunks; t += gridDim.x) {
    const Item it = item_of(t, chunks, N);
    const Row c = load_row(coef, it.b);
    float acc = 0.0f;
#pragma unroll 2
    for (std::int64_t i = it.begin + threadIdx.x * V; i < it.end; i += kThreads * V) {
      float xf[V], vf[V], nf[V], mf[V];
      load<kVec, V>(x, i, it.end, xf);
      load<kVec, V>(v, i, it.end, vf);
      if (stochastic) load<kVec, V>(noise, i, it.end, nf);
      Pack<TX, V> xn;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        mf[k] = sde::step_mean(c.cx, c.cv, xf[k], vf[k]);
        if (stochastic) {
          xn.e[k] = sde::sample<TX>(mf[k], c.s, nf[k]);
          // residual of the value actually stored, as the re-scoring kernel sees it
          if (kVec || i + k < it.end) acc = add_square(acc, sde::to_float(xn.e[k]) - mf[k]);
        } else {
          xn.e[k] = sde::from_float<TX>(mf[k]);
        }
      }
      store<kVec, V>(x_next, i, it.end, xn);
      if (mean) store<kVec, V>(mean, i, it.end, mf);
    }
    if (stochastic) {
      const float total = block_sum(acc);
      if (threadIdx.x == 0) partial[t] = static_cast<double>(total);
    }
  }
}

template <bool kVec, typename TX, typename TV>
__global__ void __launch_bounds__(kThreads)
    logprob_kernel(const TX* __restrict__ x, const TV* __restrict__ v, const TX* __restrict__ x_next,
                   const double* __restrict__ coef, std::int64_t B, std::int64_t N, std::int64_t chunks,
                   double* __restrict__ partial) {
  constexpr int V = width<TX, TV>();
  for (std::int64_t t = blockIdx.x; t < B * chunks; t += gridDim.x) {
    const Item it = item_of(t, chunks, N);
    const Row c = load_row(coef, it.b);
    float acc = 0.0f;
#pragma unroll 2
    for (std::int64_t i = it.begin + threadIdx.x * V; i < it.end; i += kThreads * V) {
      float xf[V], vf[V], nf[V];
      load<kVec, V>(x, i, it.end, xf);
      load<kVec, V>(v, i, it.end, vf);
      load<kVec, V>(x_next, i, it.end, nf);
#pragma unroll
      for (int k = 0; k < V; ++k)
        if (kVec || i + k < it.end) acc = add_square(acc, nf[k] - sde::step_mean(c.cx, c.cv, xf[k], vf[k]));
    }
    const float total = block_sum(acc);
    if (threadIdx.x == 0) partial[t] = static_cast<double>(total);
  }
}

template <bool kVec, typename TX, typename TV>
__global__ void __launch_bounds__(kThreads)
    logprob_backward_kernel(const TX* __restrict__ x, const TV* __restrict__ v,
                            const TX* __restrict__ x_next, const double* __restrict__ coef,
                            const double* __restrict__ k, TV* __restrict__ grad_v, std::int64_t B,
                            std::int64_t N, std::int64_t chunks) {
  constexpr int V = width<TX, TV>();
  for (std::int64_t t = blockIdx.x; t < B * chunks; t += gridDim.x) {
    const Item it = item_of(t, chunks, N);
    const Row c = load_row(coef, it.b);
    const float kb = static_cast<float>(k[it.b]);
#pragma unroll 2
    for (std::int64_t i = it.begin + threadIdx.x * V; i < it.end; i += kThreads * V) {
      float xf[V], vf[V], nf[V];
      load<kVec, V>(x, i, it.end, xf);
      load<kVec, V>(v, i, it.end, vf);
      load<kVec, V>(x_next, i, it.end, nf);
      Pack<TV, V> g;
#pragma unroll
      for (int e = 0; e < V; ++e)
        g.e[e] = sde::from_float<TV>(kb * (nf[e] - sde::step_mean(c.cx, c.cv, xf[e], vf[e])));
      store<kVec, V>(grad_v, i, it.end, g);
    }
  }
}

template <bool kVec, typename TV>
__global__ void __launch_bounds__(kThreads)
    kl_kernel(const TV* __restrict__ v, const TV* __restrict__ v_ref, std::int64_t B, std::int64_t N,
              std::int64_t chunks, double* __restrict__ partial) {
  constexpr int V = width<TV>();
  for (std::int64_t t = blockIdx.x; t < B * chunks; t += gridDim.x) {
    const Item it = item_of(t, chunks, N);
    float acc = 0.0f;
#pragma unroll 2
    for (std::int64_t i = it.begin + threadIdx.x * V; i < it.end; i += kThreads * V) {
      float vf[V], rf[V];
      load<kVec, V>(v, i, it.end, vf);
      load<kVec, V>(v_ref, i, it.end, rf);
#pragma unroll
      for (int k = 0; k < V; ++k)
        if (kVec || i + k < it.end) acc = add_square(acc, vf[k] - rf[k]);
    }
    const float total = block_sum(acc);
    if (threadIdx.x == 0) partial[t] = static_cast<double>(total);
  }
}

template <bool kVec, typename TV>
__global__ void __launch_bounds__(kThreads)
    kl_backward_kernel(const TV* __restrict__ v, const TV* __restrict__ v_ref,
                       const double* __restrict__ k, TV* __restrict__ grad_v, std::int64_t B,
                       std::int64_t N, std::int64_t chunks) {
  constexpr int V = width<TV>();
  for (std::int64_t t = blockIdx.x; t < B * chunks; t += gridDim.x) {
    const Item it = item_of(t, chunks, N);
    const float kb = static_cast<float>(k[it.b]);
#pragma unroll 2
    for (std::int64_t i = it.begin + threadIdx.x * V; i < it.end; i += kThreads * V) {
      float vf[V], rf[V];
      load<kVec, V>(v, i, it.end, vf);
      load<kVec, V>(v_ref, i, it.end, rf);
      Pack<TV, V> g;
#pragma unroll
      for (int e = 0; e < V; ++e) g.e[e] = sde::from_float<TV>(kb * (vf[e] - rf[e]));
      store<kVec, V>(grad_v, i, it.end, g);
    }
  }
}

// out[b] = coef[b, const_col] + coef[b, scale_col] * (sum of the sample's partials) / N. One warp
// per sample: lane l adds partials l, l + 32, ... in float64, then a fixed shuffle tree; the
// order depends on nothing but the chunk count, so the result is reproducible.
constexpr int kFinalizeWarps = 8;

__global__ void __launch_bounds__(kFinalizeWarps * 32)
    finalize_kernel(const double* __restrict__ partial, std::int64_t chunks,
                    const double* __restrict__ coef, int scale_col, int const_col, std::int64_t B,
                    std::int64_t N, float* __restrict__ out) {
  const std::int64_t b = static_cast<std::int64_t>(blockIdx.x) * kFinalizeWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (b >= B) return;  // b is uniform across a warp: whole warps leave, the shuffles stay full
  double sum = 0.0;
  for (std::int64_t c = lane; c < chunks; c += 32) sum += partial[b * chunks + c];
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, off);
  if (lane != 0) return;
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

std::int64_t items_of(const SdeLaunch& a) { return a.batch * chunks_of(a.numel); }

// Blocks of one launch: as many as the device holds at once (the kernels stride over the items),
// never more than there are items.
template <typename Kernel>
unsigned blocks_for(Kernel kernel, const SdeLaunch& a) {
  int sms = 0, per_sm = 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, a.device) != cudaSuccess || sms < 1) {
    cudaGetLastError();
    sms = 1;
  }
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0) != cudaSuccess ||
      per_sm < 1) {
    cudaGetLastError();
    per_sm = 1;
  }
  return static_cast<unsigned>(std::min<std::int64_t>(items_of(a), static_cast<std::int64_t>(sms) * per_sm));
}

// The 16-byte path applies when every operand (unused ones are 0) is 16-byte aligned and rows are
// whole groups of v elements, so that every group of every sample starts aligned.
bool vectorisable(std::initializer_list<std::uintptr_t> ptrs, std::int64_t numel, int v) {
  if (numel % v != 0) return false;
  for (std::uintptr_t p : ptrs)
    if (p % 16 != 0) return false;
  return true;
}

// f(std::true_type{}) for the vector path, f(std::false_type{}) for the scalar one.
template <typename F>
void with_path(bool vec, F&& f) {
  if (vec)
    f(std::true_type{});
  else
    f(std::false_type{});
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
  const unsigned blocks = static_cast<unsigned>((a.batch + kFinalizeWarps - 1) / kFinalizeWarps);
  finalize_kernel<<<blocks, kFinalizeWarps * 32, 0, stream_of(a)>>>(in<double>(a.workspace), chunks_of(a.numel),
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
      const bool vec = vectorisable({a.x, a.v, a.noise, a.x_next, a.mean}, a.numel, width<TX, TV>());
      with_path(vec, [&](auto path) {
        const auto kernel = step_kernel<decltype(path)::value, TX, TV>;
        kernel<<<blocks_for(kernel, a), kThreads, 0, stream_of(a)>>>(
            in<TX>(a.x), in<TV>(a.v), in<TX>(a.noise), out<TX>(a.x_next), out<float>(a.mean),
            in<double>(a.coef), a.batch, a.numel, chunks_of(a.numel), stochastic, out<double>(a.workspace));
      });
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
                 const bool vec = vectorisable({a.x, a.v, a.x_next}, a.numel, width<TX, TV>());
                 with_path(vec, [&](auto path) {
                   const auto kernel = logprob_kernel<decltype(path)::value, TX, TV>;
                   kernel<<<blocks_for(kernel, a), kThreads, 0, stream_of(a)>>>(
                       in<TX>(a.x), in<TV>(a.v), in<TX>(a.x_next), in<double>(a.coef), a.batch, a.numel,
                       chunks_of(a.numel), out<double>(a.workspace));
                 });
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
                 const bool vec = vectorisable({a.x, a.v, a.x_next, a.grad_v}, a.numel, width<TX, TV>());
                 with_path(vec, [&](auto path) {
                   const auto kernel = logprob_backward_kernel<decltype(path)::value, TX, TV>;
                   kernel<<<blocks_for(kernel, a), kThreads, 0, stream_of(a)>>>(
                       in<TX>(a.x), in<TV>(a.v), in<TX>(a.x_next), in<double>(a.coef), in<double>(a.k),
                       out<TV>(a.grad_v), a.batch, a.numel, chunks_of(a.numel));
                 });
               });
             });
}

std::string sde_kl_launch(const SdeLaunch& a) {
  return run(a, "sde_kl",
             {{"v", a.v}, {"v_ref", a.v_ref}, {"coef", a.coef}, {"kl", a.out}, {"workspace", a.workspace}},
             [&] {
               const bool ok = with_dtype(a.dtype_v, [&](auto tv) {
                 using TV = decltype(tv);
                 with_path(vectorisable({a.v, a.v_ref}, a.numel, width<TV>()), [&](auto path) {
                   const auto kernel = kl_kernel<decltype(path)::value, TV>;
                   kernel<<<blocks_for(kernel, a), kThreads, 0, stream_of(a)>>>(
                       in<TV>(a.v), in<TV>(a.v_ref), a.batch, a.numel, chunks_of(a.numel),
                       out<double>(a.workspace));
                 });
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
                 with_path(vectorisable({a.v, a.v_ref, a.grad_v}, a.numel, width<TV>()), [&](auto path) {
                   const auto kernel = kl_backward_kernel<decltype(path)::value, TV>;
                   kernel<<<blocks_for(kernel, a), kThreads, 0, stream_of(a)>>>(
                       in<TV>(a.v), in<TV>(a.v_ref), in<double>(a.k), out<TV>(a.grad_v), a.batch,
                       a.numel, chunks_of(a.numel));
                 });
               });
             });
}

}  // namespace cuda
}  // namespace vrlvr
