// Correctly rounded fp32 operations that the compiler may not contract into FMA.
//
// The element math of every rule is written with these, so the CUDA executor (where nvcc
// contracts a*b+c into FMA by default and --use_fast_math approximates / and sqrt) and the host
// executor (where g++ in ISO mode never contracts) round every operation the same way. Together
// with integer-only conversions this makes host and CUDA results bitwise equal for the fp32 and
// bf16 formats (docs/numerics.md), a stronger promise than DESIGN's bound.
#pragma once

#include <cmath>

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
