// alloy, everything: the host-only subset plus the CUDA executor. Include from .cu files
// compiled by nvcc (C++20).
#pragma once

#include "alloy.hpp"
#include "exec/cuda.cuh"

ALLOY_NAMESPACE_BEGIN
namespace cuda {

/// An optimizer over tensors in CUDA device memory (the composition of alloy::Optimizer with
/// the CUDA executor).
template <class Rule, class State = state::Fp32, class Share = share::PerParameter,
          class Grad = grad::Backprop>
using Optimizer = alloy::Optimizer<Rule, State, Share, Grad, exec::Cuda>;

}  // namespace cuda
ALLOY_NAMESPACE_END
