// The CUDA executor against the float64 reference: the same cases as the host tests.
#include "../common/cases.hpp"
#include "cuda_memory.hpp"

using namespace testing;
using alloy::exec::Cuda;

TEST_CASE("AdamW matches the float64 reference (CUDA)") {
  check_against_reference<AdamWCase, alloy::state::Fp32, Cuda, CudaMemory>();
  check_against_reference<AdamWCase, alloy::state::Bf16<>, Cuda, CudaMemory>();
  check_against_reference<AdamWCase, alloy::state::Bf16<Rounding::stochastic>, Cuda, CudaMemory>();
}

TEST_CASE("SGD matches the float64 reference (CUDA)") {
  check_against_reference<SgdCase, alloy::state::Fp32, Cuda, CudaMemory>();
  check_against_reference<SgdCase, alloy::state::Bf16<>, Cuda, CudaMemory>();
  check_against_reference<SgdCase, alloy::state::Bf16<Rounding::stochastic>, Cuda, CudaMemory>();
  check_against_reference<SgdCase, alloy::state::Fp32, Cuda, CudaMemory>(
      [](alloy::rule::Sgd::Hyper h) {
        h.nesterov = true;
        h.dampening = 0;
        return h;
      });
  check_against_reference<SgdCase, alloy::state::Fp32, Cuda, CudaMemory>(
      [](alloy::rule::Sgd::Hyper h) {
        h.momentum = 0;
        h.dampening = 0;
        return h;
      });
}
