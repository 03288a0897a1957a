// What each axis of a composition must provide, and the rules for combining them. A broken
// rule stops compilation with a static_assert that says what to change.
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <type_traits>

#include "core/macros.hpp"

ALLOY_NAMESPACE_BEGIN

/// An update rule (rule/): hyperparameters, per-tensor scalars, and element math.
template <class R>
concept UpdateRule = requires(const typename R::Hyper& h, typename R::Scalars s, float p,
                              float (&m)[R::kMoments]) {
  { R::kMoments } -> std::convertible_to<int>;
  { R::kHasSecondMoment } -> std::convertible_to<bool>;
  R::validate(h, std::string());
  { R::moments_used(h) } -> std::convertible_to<int>;
  { R::scalars(h, 1u) } -> std::same_as<typename R::Scalars>;
  R::update(s, p, 0.f, m);
};

/// A state format (state/).
template <class S>
concept StateFormat = requires {
  { S::kElementwise } -> std::convertible_to<bool>;
  typename S::Stored;
};

/// A block-quantized state format (state::Int8Blockwise): codes plus one scale per block, with
/// tables (codebooks) both executors read, and an elementwise format for small tensors.
template <class S>
concept BlockStateFormat = requires(const typename S::Tables& t, float x) {
  { S::kBlock } -> std::convertible_to<int>;
  typename S::Small;
  { S::tables() } -> std::convertible_to<const typename S::Tables&>;
  { S::decode(t, 0, std::uint8_t(0), x) } -> std::same_as<float>;
  { S::inverse(x) } -> std::same_as<float>;
  { S::encode(t, 0, x, x) } -> std::same_as<std::uint8_t>;
  { S::zero_code(0) } -> std::convertible_to<std::uint8_t>;
}
&&std::is_same_v<typename S::Stored, std::uint8_t>;

/// A moment-sharing policy (share/).
template <class S>
concept SharePolicy = requires {
  { S::kIsSharePolicy } -> std::convertible_to<bool>;
  { S::kSharesSecondMoment } -> std::convertible_to<bool>;
};

/// A gradient source (grad/).
template <class G>
concept GradPolicy = requires {
  { G::kIsGradPolicy } -> std::convertible_to<bool>;
  { G::kReadsGradient } -> std::convertible_to<bool>;
};

/// Whether a gradient source is zeroth-order (grad::Spsa): it has kZerothOrder = true.
template <class G>
constexpr bool is_zeroth_order() {
  if constexpr (requires { G::kZerothOrder; }) return bool(G::kZerothOrder);
  else return false;
}

namespace detail {
/// The composition rules. Instantiated by Optimizer; each message says what to change.
template <class Rule, class State, class Share, class Grad>
struct CheckComposition {
  static_assert(UpdateRule<Rule>,
                "alloy: the 1st argument of Optimizer must be an update rule, e.g. "
                "alloy::rule::AdamW or alloy::rule::Sgd");
  static_assert(StateFormat<State>,
                "alloy: the 2nd argument of Optimizer must be a state format, e.g. "
                "alloy::state::Fp32 or alloy::state::Bf16<>");
  static_assert(SharePolicy<Share>,
                "alloy: the 3rd argument of Optimizer must be a moment-sharing policy, e.g. "
                "alloy::share::PerParameter");
  static_assert(GradPolicy<Grad>,
                "alloy: the 4th argument of Optimizer must be a gradient source, e.g. "
                "alloy::grad::Backprop");
  // Later checks read members that exist only if the axis checks above passed.
  static constexpr bool kSharingOk = [] {
    if constexpr (UpdateRule<Rule> && SharePolicy<Share>)
      return !Share::kSharesSecondMoment || Rule::kHasSecondMoment;
    else return true;
  }();
  static constexpr bool kElementwiseOk = [] {
    if constexpr (StateFormat<State>) return bool(State::kElementwise) || BlockStateFormat<State>;
    else return true;
  }();
  static constexpr bool kGradientOk = [] {
    if constexpr (GradPolicy<Grad>) return bool(Grad::kReadsGradient) || is_zeroth_order<Grad>();
    else return true;
  }();
  static constexpr bool kZerothOrderSharingOk = [] {
    if constexpr (SharePolicy<Share> && GradPolicy<Grad>)
      return !Share::kSharesSecondMoment || !is_zeroth_order<Grad>();
    else return true;
  }();
  static_assert(kSharingOk,
                "alloy: this sharing policy shares the second moment, but the rule keeps none "
                "(Sgd); use share::PerParameter, or a rule with a second moment such as "
                "rule::AdamW");
  static_assert(kElementwiseOk,
                "alloy: a state format that is not elementwise must be a block-quantized "
                "format (kBlock, Tables, tables(), decode/inverse/encode on codes, zero_code, "
                "Small, uint8 codes), as state::Int8Blockwise");
  static_assert(kGradientOk,
                "alloy: a gradient source that reads no gradient buffer must be zeroth-order "
                "(kZerothOrder = true, with its passes, as grad::Spsa); use grad::Backprop or "
                "grad::Spsa<>");
  static_assert(kZerothOrderSharingOk,
                "alloy: share::PerBlock with a zeroth-order gradient source is not supported yet "
                "(its block statistic would need a pass over the directions first); use "
                "share::PerParameter with grad::Spsa");
  static constexpr bool value = true;
};
}  // namespace detail

ALLOY_NAMESPACE_END
