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
