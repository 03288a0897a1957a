// Moment sharing PerParameter: every element keeps its own moments (plain Adam / SGD).
#pragma once

#include "../core/macros.hpp"

ALLOY_NAMESPACE_BEGIN
namespace share {

/// Each parameter element has its own moments; the rule sees g and g^2 of that element.
/// share::PerBlock (Adam-mini) sets kSharesSecondMoment = true and feeds a block statistic.
struct PerParameter {
  static constexpr const char* kName = "PerParameter";
  static constexpr bool kIsSharePolicy = true;
  static constexpr bool kSharesSecondMoment = false;
};

}  // namespace share
ALLOY_NAMESPACE_END
