// Fused SDE step, Gaussian log-prob and KL on the CPU: one pass over the tensors, OpenMP across
// fixed chunks, the GIL released. The per-element math is csrc/include/vrlvr/sde_math.h (shared
// with the CUDA kernels); this file only walks memory and reduces.
//
// Tensors arrive as raw pointers (torch's data_ptr(), as integers) to contiguous [B, N] buffers
// plus dtype codes: the Python side (vrlvr/ops/sde_backends.py) owns shapes, dtypes and lifetimes,
// so no tensor library is linked here. Per-sample coefficients come as a float64 [B, kCoefCount]
// table (see sde_math.h).
//
// Reductions are deterministic whatever the thread count: each sample is cut into fixed chunks of
// kChunk elements, every chunk is summed in the same order (fp32 SIMD lanes over sub-blocks of
// kSubBlock elements, then float64), and chunk sums are added in chunk order in float64. The result
// depends on N and on the loop copy picked at load time (baseline or AVX2: different lane counts),
// never on the number of threads or the schedule.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "vrlvr/registry.h"
#include "vrlvr/sde_math.h"

namespace py = pybind11;

namespace {

using vrlvr::sde::bf16;
using vrlvr::sde::f16;
namespace sde = vrlvr::sde;

constexpr int64_t kChunk = 16384;   // elements per OpenMP work item (64 KiB of fp32 per tensor)
constexpr int64_t kSubBlock = 512;  // elements summed in fp32 before moving into float64
// Below this many elements a call runs on one thread: ~0.2 ms of work, less than what waking a
// team can cost on a loaded machine.
constexpr int64_t kParallelMin = 1 << 18;

template <typename F>
void with_dtype(int code, const char* what, F&& f) {
  switch (code) {
    case sde::kFloat32:
      f(float{});
      return;
    case sde::kBFloat16:
      f(bf16{});
      return;
    case sde::kFloat16:
      f(f16{});
      return;
    default:
      throw py::value_error(std::string("sde: unknown dtype code for ") + what + ": " +
                            std::to_string(code));
  }
}

// f(TX{}, TV{}) for the dtype codes of x and v, with the GIL released (f touches no Python object).
template <typename F>
void with_dtypes(int dtype_x, int dtype_v, F&& f) {
  with_dtype(dtype_x, "x", [&](auto tx) {
    with_dtype(dtype_v, "v", [&](auto tv) {
      py::gil_scoped_release release;
      f(tx, tv);
    });
  });
}

struct Coefs {
  float cx, cv, s;
};

inline Coefs row(const double* coef, int64_t b) {
  const double* c = coef + b * sde::kCoefCount;
  return {static_cast<float>(c[sde::kCoefCx]), static_cast<float>(c[sde::kCoefCv]),
          static_cast<float>(c[sde::kCoefS])};
}

// Calls body(b, begin, end) for every chunk [begin, end) of flat indices (sample b owns
// [b*N, (b+1)*N)) in parallel; body returns the chunk's sum, and sums[b] receives the sum over the
// sample's chunks in chunk order (nullptr: nothing is reduced). Chunks are handed out dynamically:
// a thread that was descheduled (shared machines) does not hold up the others, and the result
// does not depend on which thread summed which chunk.
template <typename Body>
void for_chunks(int64_t B, int64_t N, double* sums, Body&& body) {
  const int64_t per_sample = (N + kChunk - 1) / kChunk;
  const int64_t total = B * per_sample;
  std::vector<double> partial(sums ? static_cast<size_t>(total) : 0);
  const bool parallel = B * N >= kParallelMin;
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (int64_t t = 0; t < total; ++t) {
    const int64_t b = t / per_sample;
    const int64_t c = t - b * per_sample;
    const int64_t begin = b * N + c * kChunk;
    const int64_t end = begin + std::min(kChunk, N - c * kChunk);
    const double s = body(b, begin, end);
    if (sums) partial[t] = s;
  }
  if (!sums) return;
  for (int64_t b = 0; b < B; ++b) {
    double acc = 0.0;
    for (int64_t c = 0; c < per_sample; ++c) acc += partial[b * per_sample + c];
    sums[b] = acc;
  }
}

namespace generic {
#include "sde_loops.inc"
}  // namespace generic

// A second copy of the loops for AVX2 + F16C machines (GCC on x86-64; other compilers and
// architectures use the baseline copy only).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VRLVR_SDE_AVX2 1
#pragma GCC push_options
#pragma GCC target("avx2,f16c")
namespace avx2 {
#include "sde_loops.inc"
}  // namespace avx2
#pragma GCC pop_options
#else
namespace avx2 = generic;
#endif

bool cpu_has_avx2() {
#ifdef VRLVR_SDE_AVX2
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  return has;
#else
  return false;
#endif
}

// The baseline or the AVX2 instance of a loop, as a function pointer (called once per chunk).
template <typename F>
F pick(F baseline, F fast) {
  return cpu_has_avx2() ? fast : baseline;
}

// out[b] = coef[b, const_col] + coef[b, scale_col] * sums[b] / N, in float64, stored as float32.
void finalize(const double* coef, const double* sums, float* out, int64_t B, int64_t N, int scale_col,
              int const_col) {
  for (int64_t b = 0; b < B; ++b) {
    const double* c = coef + b * sde::kCoefCount;
    const double base = const_col >= 0 ? c[const_col] : 0.0;
    out[b] = static_cast<float>(base + c[scale_col] * (sums[b] / static_cast<double>(N)));
  }
}

template <typename TX, typename TV>
void step_all(const TX* x, const TV* v, const TX* noise, TX* x_next, float* mean, const double* coef,
              int64_t B, int64_t N, bool stochastic, double* sums) {
  if (stochastic) {
    const auto fn = mean ? pick(&generic::step_range<TX, TV, true>, &avx2::step_range<TX, TV, true>)
                         : pick(&generic::step_range<TX, TV, false>, &avx2::step_range<TX, TV, false>);
    for_chunks(B, N, sums, [=](int64_t b, int64_t begin, int64_t end) {
      return fn(x, v, noise, x_next, mean, row(coef, b), begin, end);
    });
  } else {
    const auto fn = mean ? pick(&generic::ode_range<TX, TV, true>, &avx2::ode_range<TX, TV, true>)
                         : pick(&generic::ode_range<TX, TV, false>, &avx2::ode_range<TX, TV, false>);
    for_chunks(B, N, nullptr, [=](int64_t b, int64_t begin, int64_t end) {
      fn(x, v, x_next, mean, row(coef, b), begin, end);
      return 0.0;
    });
  }
}

template <typename T>
const T* in_ptr(uintptr_t p) {
  return reinterpret_cast<const T*>(p);
}
template <typename T>
T* out_ptr(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

void check_sizes(const char* fn, int64_t B, int64_t N) {
  if (B < 1 || N < 1)
    throw py::value_error(std::string(fn) + ": batch and numel must be >= 1, got batch=" +
                          std::to_string(B) + " numel=" + std::to_string(N));
}

void check_ptrs(const char* fn, std::initializer_list<std::pair<const char*, uintptr_t>> ptrs) {
  for (auto& p : ptrs)
    if (p.second == 0) throw py::value_error(std::string(fn) + ": null pointer for " + p.first);
}

// x, v, noise: [B, N] -> x_next [B, N] (x's dtype), mean [B, N] fp32 (when mean != 0),
// logp [B] fp32 (stochastic steps; the "ode" step has no density and leaves logp untouched).
void sde_step_forward(uintptr_t x, uintptr_t v, uintptr_t noise, uintptr_t x_next, uintptr_t mean,
                      uintptr_t coef, uintptr_t logp, int dtype_x, int dtype_v, int64_t B, int64_t N,
                      bool stochastic) {
  check_sizes("sde_step_forward", B, N);
  check_ptrs("sde_step_forward", {{"x", x}, {"v", v}, {"x_next", x_next}, {"coef", coef}});
  if (stochastic) check_ptrs("sde_step_forward", {{"noise", noise}, {"logp", logp}});
  with_dtypes(dtype_x, dtype_v, [&](auto tx, auto tv) {
    using TX = decltype(tx);
    using TV = decltype(tv);
    const double* c = in_ptr<double>(coef);
    std::vector<double> sums(static_cast<size_t>(stochastic ? B : 0));
    step_all<TX, TV>(in_ptr<TX>(x), in_ptr<TV>(v), in_ptr<TX>(noise), out_ptr<TX>(x_next),
                     out_ptr<float>(mean), c, B, N, stochastic, sums.data());
    if (stochastic)
      finalize(c, sums.data(), out_ptr<float>(logp), B, N, sde::kCoefLogpScale, sde::kCoefLogpConst);
  });
}

// x, v, x_next: [B, N] -> logp [B] fp32.
void sde_logprob_forward(uintptr_t x, uintptr_t v, uintptr_t x_next, uintptr_t coef, uintptr_t logp,
                         int dtype_x, int dtype_v, int64_t B, int64_t N) {
  check_sizes("sde_logprob_forward", B, N);
  check_ptrs("sde_logprob_forward",
             {{"x", x}, {"v", v}, {"x_next", x_next}, {"coef", coef}, {"logp", logp}});
  with_dtypes(dtype_x, dtype_v, [&](auto tx, auto tv) {
    using TX = decltype(tx);
    using TV = decltype(tv);
    const TX* xp = in_ptr<TX>(x);
    const TV* vp = in_ptr<TV>(v);
    const TX* xn = in_ptr<TX>(x_next);
    const double* c = in_ptr<double>(coef);
    std::vector<double> sums(static_cast<size_t>(B));
    const auto fn = pick(&generic::logprob_range<TX, TV>, &avx2::logprob_range<TX, TV>);
    for_chunks(B, N, sums.data(), [=](int64_t b, int64_t begin, int64_t end) {
      return fn(xp, vp, xn, row(c, b), begin, end);
    });
    finalize(c, sums.data(), out_ptr<float>(logp), B, N, sde::kCoefLogpScale, sde::kCoefLogpConst);
  });
}

// x, v, x_next: [B, N], k: float64 [B] -> grad_v [B, N] in v's dtype (grad_v[b, i] = k[b] * r).
void sde_logprob_backward(uintptr_t x, uintptr_t v, uintptr_t x_next, uintptr_t coef, uintptr_t k,
                          uintptr_t grad_v, int dtype_x, int dtype_v, int64_t B, int64_t N) {
  check_sizes("sde_logprob_backward", B, N);
  check_ptrs("sde_logprob_backward",
             {{"x", x}, {"v", v}, {"x_next", x_next}, {"coef", coef}, {"k", k}, {"grad_v", grad_v}});
  with_dtypes(dtype_x, dtype_v, [&](auto tx, auto tv) {
    using TX = decltype(tx);
    using TV = decltype(tv);
    const TX* xp = in_ptr<TX>(x);
    const TV* vp = in_ptr<TV>(v);
    const TX* xn = in_ptr<TX>(x_next);
    TV* gv = out_ptr<TV>(grad_v);
    const double* c = in_ptr<double>(coef);
    const double* kp = in_ptr<double>(k);
    const auto fn = pick(&generic::logprob_grad_range<TX, TV>, &avx2::logprob_grad_range<TX, TV>);
    for_chunks(B, N, nullptr, [=](int64_t b, int64_t begin, int64_t end) {
      fn(xp, vp, xn, gv, row(c, b), static_cast<float>(kp[b]), begin, end);
      return 0.0;
    });
  });
}

// v, v_ref: [B, N] -> kl [B] fp32.
void sde_kl_forward(uintptr_t v, uintptr_t v_ref, uintptr_t coef, uintptr_t kl, int dtype_v, int64_t B,
                    int64_t N) {
  check_sizes("sde_kl_forward", B, N);
  check_ptrs("sde_kl_forward", {{"v", v}, {"v_ref", v_ref}, {"coef", coef}, {"kl", kl}});
  with_dtype(dtype_v, "v", [&](auto tv) {
    using TV = decltype(tv);
    py::gil_scoped_release release;
    const TV* vp = in_ptr<TV>(v);
    const TV* rp = in_ptr<TV>(v_ref);
    const double* c = in_ptr<double>(coef);
    std::vector<double> sums(static_cast<size_t>(B));
    const auto fn = pick(&generic::kl_range<TV>, &avx2::kl_range<TV>);
    for_chunks(B, N, sums.data(),
               [=](int64_t, int64_t begin, int64_t end) { return fn(vp, rp, begin, end); });
    finalize(c, sums.data(), out_ptr<float>(kl), B, N, sde::kCoefKlScale, -1);
  });
}

// v, v_ref: [B, N], k: float64 [B] -> grad_v [B, N] in v's dtype (grad_v[b, i] = k[b] * (v - v_ref)).
void sde_kl_backward(uintptr_t v, uintptr_t v_ref, uintptr_t k, uintptr_t grad_v, int dtype_v, int64_t B,
                     int64_t N) {
  check_sizes("sde_kl_backward", B, N);
  check_ptrs("sde_kl_backward", {{"v", v}, {"v_ref", v_ref}, {"k", k}, {"grad_v", grad_v}});
  with_dtype(dtype_v, "v", [&](auto tv) {
    using TV = decltype(tv);
    py::gil_scoped_release release;
    const TV* vp = in_ptr<TV>(v);
    const TV* rp = in_ptr<TV>(v_ref);
    TV* gv = out_ptr<TV>(grad_v);
    const double* kp = in_ptr<double>(k);
    const auto fn = pick(&generic::kl_grad_range<TV>, &avx2::kl_grad_range<TV>);
    for_chunks(B, N, nullptr, [=](int64_t b, int64_t begin, int64_t end) {
      fn(vp, rp, gv, static_cast<float>(kp[b]), begin, end);
      return 0.0;
    });
  });
}

py::dict coef_layout() {
  py::dict d;
  for (const sde::CoefName& c : sde::kCoefLayout) d[c.name] = c.value;
  return d;
}

py::dict dtype_codes() {
  py::dict d;
  d["float32"] = static_cast<int>(sde::kFloat32);
  d["bfloat16"] = static_cast<int>(sde::kBFloat16);
  d["float16"] = static_cast<int>(sde::kFloat16);
  return d;
}

void register_sde(py::module_& m) {
  using py::arg;
  m.def(
      "sde_cpu_isa", [] { return std::string(cpu_has_avx2() ? "avx2" : "baseline"); },
      "Instruction set of the SDE loops this CPU runs: 'avx2' (AVX2 + F16C) or 'baseline'.");
  m.def("sde_coef_layout", &coef_layout, "Columns of the float64 [B, count] SDE coefficient table.");
  m.def("sde_dtype_codes", &dtype_codes, "dtype name -> code understood by the sde_* kernels.");
  m.def("sde_step_forward", &sde_step_forward, arg("x"), arg("v"), arg("noise"), arg("x_next"),
        arg("mean"), arg("coef"), arg("logp"), arg("dtype_x"), arg("dtype_v"), arg("batch"),
        arg("numel"), arg("stochastic"),
        "Fused SDE step on contiguous [B, N] buffers given as data pointers: x_next, optional fp32 "
        "mean (pointer 0 skips it) and fp32 logp [B]. Releases the GIL.");
  m.def("sde_logprob_forward", &sde_logprob_forward, arg("x"), arg("v"), arg("x_next"), arg("coef"),
        arg("logp"), arg("dtype_x"), arg("dtype_v"), arg("batch"), arg("numel"),
        "Per-sample Gaussian log-prob of x_next given (x, v): fp32 logp [B].");
  m.def("sde_logprob_backward", &sde_logprob_backward, arg("x"), arg("v"), arg("x_next"), arg("coef"),
        arg("k"), arg("grad_v"), arg("dtype_x"), arg("dtype_v"), arg("batch"), arg("numel"),
        "grad_v = k[b] * (x_next - mean) in v's dtype, k a float64 [B] factor.");
  m.def("sde_kl_forward", &sde_kl_forward, arg("v"), arg("v_ref"), arg("coef"), arg("kl"),
        arg("dtype_v"), arg("batch"), arg("numel"),
        "Per-sample KL between the step Gaussians of v and v_ref: fp32 [B].");
  m.def("sde_kl_backward", &sde_kl_backward, arg("v"), arg("v_ref"), arg("k"), arg("grad_v"),
        arg("dtype_v"), arg("batch"), arg("numel"),
        "grad_v = k[b] * (v - v_ref) in v's dtype, k a float64 [B] factor.");
}

}  // namespace

VRLVR_REGISTER_BINDINGS(sde_step, register_sde);
