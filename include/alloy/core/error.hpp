// alloy::Error: the one exception type alloy throws for bad input and failed CUDA calls.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "macros.hpp"

ALLOY_NAMESPACE_BEGIN

/// Thrown for every broken precondition (naming the tensor or value and the rule broken) and
/// for failed CUDA runtime calls. alloy checks all input before it changes anything, so when a
/// call throws, parameters and optimizer state are as they were before the call.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error("alloy: " + what) {}
};

namespace detail {
template <class... Args>
[[noreturn]] void fail(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  throw Error(os.str());
}
}  // namespace detail

ALLOY_NAMESPACE_END
