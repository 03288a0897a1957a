// Correctly rounded fp32 operations that the compiler may not contract into FMA.
//
// The element math of every rule is written with these, so the CUDA executor (where nvcc
// contracts a*b+c into FMA by default and --use_fast_math approximates / and sqrt) and the host
// executor (where g++ in ISO mode never contracts) round every operation the same way. Together
// with integer-only conversions this makes host and CUDA results bitwise equal for the fp32 and
// bf16 formats (docs/numerics.md), a stronger promise than DESIGN's bound.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "macros.hpp"

ALLOY_NAMESPACE_BEGIN
namespace fp {

#if ALLOY_ON_DEVICE
ALLOY_HD float add(float a, float b) { return __fadd_rn(a, b); }
ALLOY_HD float sub(float a, float b) { return __fsub_rn(a, b); }
ALLOY_HD float mul(float a, float b) { return __fmul_rn(a, b); }
ALLOY_HD float div(float a, float b) { return __fdiv_rn(a, b); }
ALLOY_HD float sqrt(float a) { return __fsqrt_rn(a); }
#else
// Host code must be compiled without FP contraction: g++ contracts into FMA whenever the target
// has it (-march=haswell and later, AArch64), in every -std mode. The alloy::alloy CMake target
// adds -ffp-contract=off (option ALLOY_HOST_NO_FP_CONTRACT); without CMake, add it yourself.
ALLOY_HD float add(float a, float b) { return a + b; }
ALLOY_HD float sub(float a, float b) { return a - b; }
ALLOY_HD float mul(float a, float b) { return a * b; }
ALLOY_HD float div(float a, float b) { return a / b; }
ALLOY_HD float sqrt(float a) { return std::sqrt(a); }
#endif
/// Exact on every target: |a|, the larger and the smaller of two values (a NaN operand yields
/// the other).
#if ALLOY_ON_DEVICE
ALLOY_HD float abs(float a) { return fabsf(a); }
ALLOY_HD float max(float a, float b) { return fmaxf(a, b); }
ALLOY_HD float min(float a, float b) { return fminf(a, b); }
#else
ALLOY_HD float abs(float a) { return std::fabs(a); }
ALLOY_HD float max(float a, float b) { return std::fmax(a, b); }
ALLOY_HD float min(float a, float b) { return std::fmin(a, b); }
#endif

/// The arithmetic a rule's element math is written against. `Ieee`: correctly rounded division
/// and square root (fp::div, fp::sqrt), what the host executor runs. `require` states the domain
/// a faster arithmetic needs (below); Ieee ignores it.
struct Ieee {
  ALLOY_HD void require(bool) const {}
  ALLOY_HD float div(float a, float b) const { return fp::div(a, b); }
  ALLOY_HD float sqrt(float a) const { return fp::sqrt(a); }
};

/// Whether x lies in [lo, hi] (0 < lo <= hi finite): one subtraction and one unsigned compare of
/// the bit patterns (negative values, infinities and NaN lie outside).
ALLOY_HD bool in_range(float x, float lo, float hi) {
  std::uint32_t u, l, h;
  std::memcpy(&u, &x, 4);
  std::memcpy(&l, &lo, 4);
  std::memcpy(&h, &hi, 4);
  return u - l <= h - l;
}
/// Whether |x| lies in [lo, hi] (0 < lo <= hi finite), x of either sign: the same on the bits
/// shifted left by one, which drops the sign.
ALLOY_HD bool in_range_abs(float x, float lo, float hi) {
  std::uint32_t u, l, h;
  std::memcpy(&u, &x, 4);
  std::memcpy(&l, &lo, 4);
  std::memcpy(&h, &hi, 4);
  return u * 2u - l * 2u <= (h - l) * 2u;
}

#if ALLOY_DEVICE_COMPILE
/// Division and square root from the hardware's approximations (MUFU) and FMA corrections, with
/// no branch: equal to the correctly rounded fp::div / fp::sqrt on the domains below, which
/// tests/cuda/verify_fast_math.cu checks exhaustively on the GPU (docs/numerics.md). Element math
/// states with `require` that its operands lie in those domains; the executor then keeps the
/// results only if every element of a tile did, and otherwise runs the tile again with Ieee.
/// `ok` is that verdict. Device code only.
struct Fast {
  bool ok = true;

  __device__ void require(bool c) { ok &= c; }
  /// a / b, for b in [2^-62, 2^62] and a = +-0 or |a| in [2^-62, 2^62]: the reciprocal refined by
  /// one Newton step, the quotient, its exact remainder and one correction. The remainder is taken
  /// as b q - a (not a - b q) so that -0 / b stays -0.
  __device__ float div(float a, float b) const {
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(b));
    r = __fmaf_rn(r, __fmaf_rn(-b, r, 1.f), r);
    const float q = __fmul_rn(a, r);
    return __fmaf_rn(-r, __fmaf_rn(b, q, -a), q);
  }
  /// sqrt(v), for v in [2^-100, 2^100]: s = v / sqrt(v) from the reciprocal square root, then one
  /// correction by the exact residual v - s^2.
  __device__ float sqrt(float v) const {
    float y;
    asm("rsqrt.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(v));
    const float s = __fmul_rn(v, y);
    return __fmaf_rn(__fmaf_rn(-s, s, v), __fmul_rn(0.5f, y), s);
  }
};
#endif

/// beta^t for an integer t >= 0 by binary exponentiation in double: the same sequence of
/// correctly rounded double multiplies on host and device, so bias corrections agree bitwise.
ALLOY_HD double dmul(double a, double b) {
#if ALLOY_ON_DEVICE
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
ALLOY_HD double dsub(double a, double b) {
#if ALLOY_ON_DEVICE
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
ALLOY_HD double powi(double beta, unsigned t) {
  double result = 1.0, base = beta;
  while (t) {
    if (t & 1u) result = dmul(result, base);
    base = dmul(base, base);
    t >>= 1;
  }
  return result;
}

}  // namespace fp
ALLOY_NAMESPACE_END
