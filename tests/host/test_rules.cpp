// Each rule against the float64 reference over 100 steps, for every state format, dtype pair
// and shape, on the host executor.
#include "../common/cases.hpp"

using namespace testing;
using alloy::exec::Host;

TEST_CASE("AdamW matches the float64 reference (host)") {
  check_against_reference<AdamWCase, alloy::state::Fp32, Host, HostMemory>();
  check_against_reference<AdamWCase, alloy::state::Bf16<>, Host, HostMemory>();
  check_against_reference<AdamWCase, alloy::state::Bf16<Rounding::stochastic>, Host, HostMemory>();
}

TEST_CASE("AdamW with maximize matches the reference (host)") {
  check_against_reference<AdamWCase, alloy::state::Fp32, Host, HostMemory>(
      [](alloy::rule::AdamW::Hyper h) {
        h.maximize = true;
        return h;
      });
}

TEST_CASE("SGD matches the float64 reference (host)") {
  check_against_reference<SgdCase, alloy::state::Fp32, Host, HostMemory>();
  check_against_reference<SgdCase, alloy::state::Bf16<>, Host, HostMemory>();
  check_against_reference<SgdCase, alloy::state::Bf16<Rounding::stochastic>, Host, HostMemory>();
}

TEST_CASE("SGD variants: Nesterov, no momentum, no weight decay, maximize (host)") {
  check_against_reference<SgdCase, alloy::state::Fp32, Host, HostMemory>(
      [](alloy::rule::Sgd::Hyper h) {
        h.nesterov = true;
        h.dampening = 0;
        return h;
      });
  check_against_reference<SgdCase, alloy::state::Fp32, Host, HostMemory>(
      [](alloy::rule::Sgd::Hyper h) {
        h.momentum = 0;
        h.dampening = 0;
        return h;
      });
  check_against_reference<SgdCase, alloy::state::Fp32, Host, HostMemory>(
      [](alloy::rule::Sgd::Hyper h) {
        h.weight_decay = 0;
        h.maximize = true;
        return h;
      });
}

TEST_CASE("fp::in_range and fp::in_range_abs: the domain tests of the fast arithmetic") {
  using alloy::fp::in_range;
  using alloy::fp::in_range_abs;
  const float lo = 0x1p-60f, hi = 0x1p60f;
  for (float x : {lo, hi, 1.f, 0x1.fffffep59f, std::nextafter(lo, 1.f)}) {
    CHECK(in_range(x, lo, hi));
    CHECK(in_range_abs(x, lo, hi));
    CHECK(!in_range(-x, lo, hi));
    CHECK(in_range_abs(-x, lo, hi));
  }
  for (float x : {0.f, std::nextafter(lo, 0.f), std::nextafter(hi, 1e30f), 0x1p-149f,
                  std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                  std::numeric_limits<float>::max()}) {
    CHECK(!in_range(x, lo, hi));
    CHECK(!in_range(-x, lo, hi));
    CHECK(!in_range_abs(x, lo, hi));
    CHECK(!in_range_abs(-x, lo, hi));
  }
}
