// Helpers shared by the update rules: hyperparameter checks that name the group and the value.
#pragma once

#include <cmath>
#include <string>

#include "../core/error.hpp"

ALLOY_NAMESPACE_BEGIN
namespace rule::detail {

inline void require_finite(float v, const char* what, const std::string& group) {
  if (!std::isfinite(v)) alloy::detail::fail(group, ": ", what, " = ", v, " is not finite");
}
inline void require_at_least(float v, float lo, const char* what, const std::string& group) {
  require_finite(v, what, group);
  if (!(v >= lo)) alloy::detail::fail(group, ": ", what, " = ", v, " must be >= ", lo);
}
/// lo <= v < hi
inline void require_in(float v, float lo, float hi, const char* what, const std::string& group) {
  require_finite(v, what, group);
  if (!(v >= lo && v < hi))
    alloy::detail::fail(group, ": ", what, " = ", v, " must be in [", lo, ", ", hi, ")");
}

}  // namespace rule::detail
ALLOY_NAMESPACE_END
