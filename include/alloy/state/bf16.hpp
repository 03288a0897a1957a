// State format Bf16: each moment one bf16 per element, computed in fp32.
#pragma once

#include <cstdint>

#include "../core/dtype.hpp"

ALLOY_NAMESPACE_BEGIN
namespace state {

/// Moments stored as bf16 (as torch keeps them for bf16 parameters), loaded to fp32, updated in
/// fp32 and rounded back: to nearest-even (default) or stochastically. Stochastic rounding draws
/// from the step's rounding stream (Purpose::rounding, word 1 for the first moment, word 2 for
/// the second), so it is deterministic given the seed. 2 bytes per moment per parameter.
template <Rounding R = Rounding::nearest>
struct Bf16 {
  static constexpr const char* kName = R == Rounding::nearest ? "Bf16" : "Bf16Stochastic";
  static constexpr bool kElementwise = true;
  static constexpr bool kRandom = R == Rounding::stochastic;
  using Stored = bf16;

  ALLOY_HD static float decode(Stored s) { return to_float(s); }
  ALLOY_HD static Stored encode(float x, std::uint32_t random) {
    return round_to<bf16, R>(x, random);
  }
};

}  // namespace state
ALLOY_NAMESPACE_END
