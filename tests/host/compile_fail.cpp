// Compositions that must not compile, one per static_assert of include/alloy/compose.hpp, and
// one (CASE 0) that must. Built with -fsyntax-only -DCASE=n by CTest (tests/CMakeLists.txt),
// which passes a case when the compiler prints that static_assert's message.
#include <alloy/alloy.hpp>

#ifndef CASE
#error "define CASE (0 compiles; 1..8 must fail)"
#endif

namespace test_local {

/// A sharing policy that shares the second moment (as Adam-mini's PerBlock will).
struct SharesSecondMoment {
  static constexpr bool kIsSharePolicy = true;
  static constexpr bool kSharesSecondMoment = true;
};
/// A state format that is not elementwise but lacks the block interface.
struct BlockState {
  static constexpr bool kElementwise = false;
  static constexpr bool kRandom = false;
  using Stored = float;
  static float decode(Stored s) { return s; }
  static Stored encode(float x, std::uint32_t) { return x; }
};
/// A gradient source that reads no gradient buffer but is not zeroth-order either.
struct ZerothOrder {
  static constexpr bool kIsGradPolicy = true;
  static constexpr bool kReadsGradient = false;
};

}  // namespace test_local

#if CASE == 0
// Valid compositions, including the test-local second-moment sharing with a rule that has one.
alloy::Optimizer<alloy::rule::AdamW> a;
alloy::Optimizer<alloy::rule::Sgd, alloy::state::Bf16<alloy::Rounding::stochastic>> b;
alloy::Optimizer<alloy::rule::AdamW, alloy::state::Int8Blockwise<>> d;
alloy::Optimizer<alloy::rule::AdamW, alloy::state::Int8Blockwise<>, alloy::share::PerBlock> e;
alloy::Optimizer<alloy::rule::AdamW, alloy::state::Fp32, test_local::SharesSecondMoment> c;
#elif CASE == 1
// 1st slot: a state format where the rule belongs.
alloy::Optimizer<alloy::state::Fp32, alloy::state::Fp32> x;
#elif CASE == 2
// 2nd slot: a rule where the state format belongs.
alloy::Optimizer<alloy::rule::AdamW, alloy::rule::Sgd> x;
#elif CASE == 3
// 3rd slot: a state format where the sharing policy belongs.
alloy::Optimizer<alloy::rule::AdamW, alloy::state::Fp32, alloy::state::Fp32> x;
#elif CASE == 4
// 4th slot: a sharing policy where the gradient source belongs.
alloy::Optimizer<alloy::rule::AdamW, alloy::state::Fp32, alloy::share::PerParameter,
                 alloy::share::PerParameter>
    x;
#elif CASE == 5
// Second-moment sharing with a rule that keeps no second moment.
alloy::Optimizer<alloy::rule::Sgd, alloy::state::Fp32, test_local::SharesSecondMoment> x;
#elif CASE == 6
// A non-elementwise state format without the block-quantized interface.
alloy::Optimizer<alloy::rule::AdamW, test_local::BlockState> x;
#elif CASE == 7
// A gradient source that reads no gradient and has no zeroth-order passes.
alloy::Optimizer<alloy::rule::AdamW, alloy::state::Fp32, alloy::share::PerParameter,
                 test_local::ZerothOrder>
    x;
#elif CASE == 8
// Second-moment sharing with a zeroth-order gradient source.
alloy::Optimizer<alloy::rule::AdamW, alloy::state::Fp32, alloy::share::PerBlock,
                 alloy::grad::Spsa<>>
    x;
#else
#error "unknown CASE"
#endif

int main() {}
