// Gradient source Backprop: the gradient buffer the framework's backward pass wrote.
#pragma once

#include "../exec/tile.hpp"

ALLOY_NAMESPACE_BEGIN
namespace grad {

/// Reads the registered gradient tensor of each parameter, once per step.
/// Zeroth-order sources ([spsa]) set kReadsGradient = false and regenerate directions instead.
struct Backprop {
  static constexpr const char* kName = "Backprop";
  static constexpr bool kIsGradPolicy = true;
  static constexpr bool kReadsGradient = true;
  static constexpr bool kZerothOrder = false;
  /// The element kind of a step (exec/tile.hpp).
  template <class Rule, class Format>
  using UpdateKind = exec::BackpropKind<Rule, Format>;
};

}  // namespace grad
ALLOY_NAMESPACE_END
