// Per-element math of the fused SDE step and its Gaussian log-prob, written once and included by
// both the CPU loop (csrc/native/sde_step.cpp, host compiler) and the CUDA kernels
// (csrc/cuda/sde_step.cu, nvcc). VRLVR_HD expands to `__host__ __device__` under nvcc and to
// nothing for the host compiler.
//
// The sigma-dependent part of a step (Flow-GRPO "sde", DanceGRPO "dance", "cps", "ode") is folded
// on the host, once per sample, into a row of the coefficient table below (vrlvr/ops/sde_args.py
// builds it in float64). Per element, every mode is then the same affine map:
//   mean = cx * x + cv * v            x' = mean + s * noise            r = x' - mean
// and the per-sample reductions are
//   logp = logp_const + logp_scale * mean(r^2)          kl = kl_scale * mean((v - v_ref)^2)
// so the kernels know nothing about modes, only whether the step draws noise.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define VRLVR_HD __host__ __device__
#else
#define VRLVR_HD
#endif

namespace vrlvr {
namespace sde {

// Columns of the per-sample coefficient table: float64 [B, kCoefCount], row-major. The Python
// side (vrlvr/ops/sde_args.py) writes the same layout; a test checks that both agree.
enum Coef : int {
  kCoefCx = 0,         // coefficient of x in the mean
  kCoefCv = 1,         // coefficient of v in the mean
  kCoefS = 2,          // standard deviation of the step's noise (0 for "ode")
  kCoefLogpScale = 3,  // logp = logp_const + logp_scale * mean(r^2)
  kCoefLogpConst = 4,
  kCoefKlScale = 5,    // kl = kl_scale * mean((v - v_ref)^2)
  kCoefCount = 6,
};

// The layout as the Python side names it (vrlvr/ops/sde_args.py COEF_*): both bindings export it
// as a dict (sde_coef_layout), so tests compare one list, not two hand-written copies.
struct CoefName {
  const char* name;
  int value;
};
inline constexpr CoefName kCoefLayout[] = {
    {"cx", kCoefCx},
    {"cv", kCoefCv},
    {"s", kCoefS},
    {"logp_scale", kCoefLogpScale},
    {"logp_const", kCoefLogpConst},
    {"kl_scale", kCoefKlScale},
    {"count", kCoefCount},
};

// Element types of the tensors, as codes shared with Python (vrlvr/ops/sde_backends.py).
enum DType : int { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2 };

// 16-bit storage types. Plain structs, so the header needs neither <cuda_bf16.h> nor a C++23
// compiler; conversions below are exact bit manipulations with round-to-nearest-even, matching
// torch's .to(torch.bfloat16) / .to(torch.float16).
struct bf16 {
  uint16_t bits;
};
struct f16 {
  uint16_t bits;
};

VRLVR_HD inline uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

VRLVR_HD inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// c ? a : b without a branch. The f16 conversions below compute every candidate (some with a float
// add) and pick one with masks: a ternary would let the compiler sink the float op into a branch,
// which it then may not speculate back (-ftrapping-math), and the CPU loops would stay scalar.
VRLVR_HD inline uint32_t select_bits(bool c, uint32_t a, uint32_t b) {
  const uint32_t m = 0u - static_cast<uint32_t>(c);
  return (a & m) | (b & ~m);
}

VRLVR_HD inline float to_float(float x) { return x; }

// bf16 is the upper half of a float32.
VRLVR_HD inline float to_float(bf16 x) { return bits_float(static_cast<uint32_t>(x.bits) << 16); }

// IEEE half -> float: move exponent and mantissa into place and re-bias; subnormal halves are
// renormalised by one float subtraction, Inf/NaN get the float's all-ones exponent.
VRLVR_HD inline float to_float(f16 x) {
  const uint32_t h = x.bits;
  const uint32_t u = ((h & 0x7fffu) << 13) + ((127u - 15u) << 23);  // re-biased exponent, mantissa
  const uint32_t exp = h & 0x7c00u;
  const uint32_t normal = u;
  const uint32_t special = u + ((128u - 16u) << 23);  // Inf / NaN: exponent all ones
  const uint32_t subnormal = float_bits(bits_float(u + (1u << 23)) - bits_float(113u << 23));
  const uint32_t bits = select_bits(exp == 0x7c00u, special, select_bits(exp == 0, subnormal, normal));
  return bits_float(bits | ((h & 0x8000u) << 16));
}

template <typename T>
VRLVR_HD inline T from_float(float f);

template <>
VRLVR_HD inline float from_float<float>(float f) {
  return f;
}

// float -> bf16, round to nearest even; NaN stays a (quiet) NaN instead of rounding to Inf.
template <>
VRLVR_HD inline bf16 from_float<bf16>(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u;
  return bf16{static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded)};
}

// float -> IEEE half, round to nearest even, overflow to Inf, gradual underflow to subnormals.
template <>
VRLVR_HD inline f16 from_float<f16>(float f) {
  const uint32_t all = float_bits(f);
  const uint32_t sign = (all >> 16) & 0x8000u;
  const uint32_t u = all & 0x7fffffffu;
  // |f| >= 65536 or Inf: Inf; NaN: quiet NaN
  const uint32_t special = select_bits(u > 0x7f800000u, 0x7e00u, 0x7c00u);
  // Subnormal or zero result (|f| < 2^-14): adding 0.5f puts the half's ulp (2^-24) at the float's
  // last mantissa bit, so the float adder does the round-to-nearest-even for us.
  const uint32_t tiny = float_bits(bits_float(u) + 0.5f) - float_bits(0.5f);
  // Normal: re-bias, add 0x0fff plus the lowest kept bit (ties to even) and truncate; a carry out of
  // the mantissa correctly bumps the exponent (65520..65535 round to Inf).
  const uint32_t rebias = static_cast<uint32_t>(15 - 127) << 23;
  const uint32_t normal = (u + rebias + 0x0fffu + ((u >> 13) & 1u)) >> 13;
  const uint32_t h = select_bits(u >= ((127u + 16u) << 23), special,
                                 select_bits(u < (113u << 23), tiny, normal));
  return f16{static_cast<uint16_t>(h | sign)};
}

// Stores of the storage types. A 16-bit type is written through its bits member: GCC's vectoriser
// gives up on aggregate (struct) assignments, not on uint16 stores.
VRLVR_HD inline void store(float* p, float v) { *p = v; }
VRLVR_HD inline void store(bf16* p, bf16 v) { p->bits = v.bits; }
VRLVR_HD inline void store(f16* p, f16 v) { p->bits = v.bits; }

// ------------------------------------------------------------------------------------------------
// The per-element math: the CPU loop and the CUDA kernels evaluate exactly these lines (the
// Triton kernels, pure Python, repeat them; the torch reference writes the modes out instead).
// ------------------------------------------------------------------------------------------------

// Mean of the step's Gaussian: cx * x + cv * v in fp32 (bf16 inputs can overflow in lower
// precision, which is why Flow-GRPO upcasts too). One explicit fused multiply-add on the device,
// so sampling and re-scoring round the mean identically whatever the compiler contracts.
VRLVR_HD inline float step_mean(float cx, float cv, float x, float v) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(cx, x, __fmul_rn(cv, v));
#else
  return cx * x + cv * v;
#endif
}

// The sample x' = mean + s * noise, rounded to the storage type of x (the CUDA kernels call this
// on values they loaded as vectors).
template <typename TX>
VRLVR_HD inline TX sample(float m, float s, float noise) {
  return from_float<TX>(m + s * noise);
}

// One sampled element: writes x' (rounded to the storage type of x) and the mean, and returns the
// squared residual of the value actually stored. Scoring the stored sample, not the fp32 one,
// is what makes the rollout's logp and a later sde_logprob of the same x' identical.
template <typename TX, typename TV>
VRLVR_HD inline float step_element(float cx, float cv, float s, TX x, TV v, TX noise, TX* x_next,
                                   float* mean) {
  const float m = step_mean(cx, cv, to_float(x), to_float(v));
  const TX stored = sample<TX>(m, s, to_float(noise));
  store(x_next, stored);
  *mean = m;
  const float r = to_float(stored) - m;
  return r * r;
}

// Deterministic step ("ode", s = 0): x' = mean, no noise read and no log-prob.
template <typename TX, typename TV>
VRLVR_HD inline void ode_element(float cx, float cv, TX x, TV v, TX* x_next, float* mean) {
  const float m = step_mean(cx, cv, to_float(x), to_float(v));
  store(x_next, from_float<TX>(m));
  *mean = m;
}

// Residual of a recorded sample under the current velocity: r = x' - mean.
template <typename TX, typename TV>
VRLVR_HD inline float logprob_residual(float cx, float cv, TX x, TV v, TX x_next) {
  return to_float(x_next) - step_mean(cx, cv, to_float(x), to_float(v));
}

// d logp / d v for one element is k * r, with the per-sample factor
// k = grad_logp * (-2 logp_scale cv / N) computed on the host side.
template <typename TX, typename TV>
VRLVR_HD inline TV logprob_grad_element(float cx, float cv, float k, TX x, TV v, TX x_next) {
  return from_float<TV>(k * logprob_residual(cx, cv, x, v, x_next));
}

// The means of policy and reference differ by cv * (v - v_ref): the KL needs only the velocities.
template <typename TV>
VRLVR_HD inline float kl_delta(TV v, TV v_ref) {
  return to_float(v) - to_float(v_ref);
}

// d kl / d v for one element is k * (v - v_ref), k = grad_kl * 2 kl_scale / N.
template <typename TV>
VRLVR_HD inline TV kl_grad_element(float k, TV v, TV v_ref) {
  return from_float<TV>(k * kl_delta(v, v_ref));
}

}  // namespace sde
}  // namespace vrlvr
