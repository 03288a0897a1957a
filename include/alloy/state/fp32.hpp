// State format Fp32: each moment one float per element.
#pragma once

#include <cstdint>

#include "../core/dtype.hpp"

ALLOY_NAMESPACE_BEGIN
namespace state {

/// Moments stored as fp32, exactly as computed. 4 bytes per moment per parameter.
struct Fp32 {
  static constexpr const char* kName = "Fp32";
  /// Elementwise formats store each element on its own: `Stored`, `decode`, `encode`.
  static constexpr bool kElementwise = true;
  static constexpr bool kRandom = false;  // needs no random bits to store
  using Stored = float;

  ALLOY_HD static float decode(Stored s) { return s; }
  ALLOY_HD static Stored encode(float x, std::uint32_t /*random*/) { return x; }
};

}  // namespace state
ALLOY_NAMESPACE_END
