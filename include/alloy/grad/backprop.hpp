// Gradient source Backprop: the gradient buffer the framework's backward pass wrote.
#pragma once

#include "../core/macros.hpp"

ALLOY_NAMESPACE_BEGIN
namespace grad {

/// Reads the registered gradient tensor of each parameter, once per step.
/// Zeroth-order sources ([spsa]) set kReadsGradient = false and regenerate directions instead.
struct Backprop {
  static constexpr const char* kName = "Backprop";
  static constexpr bool kIsGradPolicy = true;
  static constexpr bool kReadsGradient = true;
};

}  // namespace grad
ALLOY_NAMESPACE_END
