// Run-time dtype pair -> compile-time instantiation, once per launch group (never per element).
#pragma once

#include "../core/dtype.hpp"
#include "../core/error.hpp"

ALLOY_NAMESPACE_BEGIN
namespace exec {

/// The (parameter, gradient) dtype pairs alloy steps: equal dtypes, and fp32 master parameters
/// with bf16 or fp16 gradients (mixed precision).
constexpr bool dtype_pair_supported(DType p, DType g) {
  return p == g || (p == DType::f32 && g != DType::f32);
}

/// Calls f.template operator()<PT, GT, PR>() for the pair (p, g). Parameter rounding only
/// matters for bf16 parameters; fp32 and fp16 always use round-to-nearest.
template <class F>
void dispatch_dtypes(DType p, DType g, Rounding pr, F&& f) {
  if (p == DType::f32) {
    if (g == DType::f32) return f.template operator()<float, float, Rounding::nearest>();
    if (g == DType::bf16) return f.template operator()<float, bf16, Rounding::nearest>();
    return f.template operator()<float, fp16, Rounding::nearest>();
  }
  if (p == DType::bf16 && g == DType::bf16) {
    if (pr == Rounding::stochastic)
      return f.template operator()<bf16, bf16, Rounding::stochastic>();
    return f.template operator()<bf16, bf16, Rounding::nearest>();
  }
  if (p == DType::f16 && g == DType::f16)
    return f.template operator()<fp16, fp16, Rounding::nearest>();
  detail::fail("internal: unsupported dtype pair reached dispatch");
}

}  // namespace exec
ALLOY_NAMESPACE_END
