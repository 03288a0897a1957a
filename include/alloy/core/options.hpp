// Options of an optimizer instance that are not hyperparameters of a group.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "allocator.hpp"
#include "dtype.hpp"

ALLOY_NAMESPACE_BEGIN

struct Options {
  /// Seed of every random stream (stochastic rounding now; SPSA directions later).
  std::uint64_t seed = 0;
  /// How bf16 parameters are stored after an update. Stochastic rounding keeps updates smaller
  /// than half a bf16 ulp alive on average; fp32 parameters ignore it; fp16 supports nearest only.
  /// Unset: nearest, except stochastic for zeroth-order gradient sources (grad::Spsa), whose
  /// updates are far below a bf16 ulp (docs/policies/spsa.md).
  std::optional<Rounding> param_rounding;
  /// Owner of optimizer state and metadata; null selects the executor's default
  /// (aligned operator new on the host, cudaMalloc on CUDA).
  std::shared_ptr<Allocator> allocator;
  /// Host executor: worker threads (0: std::thread::hardware_concurrency()).
  unsigned host_threads = 0;
  /// CUDA executor: thread blocks per launch (0: one full wave, from the tuning table).
  unsigned cuda_blocks = 0;
  /// CUDA executor, share::PerBlock: sharing blocks of at most 8192 elements are reduced and
  /// updated by one kernel in one pass over memory (bitwise the same result as the two-pass
  /// path, which reads the gradient twice; docs/policies/per_block.md). On by default.
  bool cuda_per_block_one_pass = true;
  /// CUDA executor, share::PerBlock one-pass path: the cluster and four-run launches go to a
  /// stream of the executor's own, forked from the caller's stream after the step's prologue
  /// and joined back at the end of the step (work enqueued on the caller's stream afterwards
  /// waits for them; graph capture records both), so that they run beside the step's other
  /// launches (same results: they touch other tensors). Off: every launch on the caller's
  /// stream, one after another. On by default.
  bool cuda_side_stream = true;
  /// Tensors whose name contains one of these get no weight decay. Unset: none for gradient
  /// sources that read gradients (as torch), MeZO's {"bias", "layer_norm", "layernorm"} for
  /// zeroth-order ones (grad::Spsa).
  std::optional<std::vector<std::string>> no_decay;
  /// Block-quantized state formats (state::Int8Blockwise): tensors with fewer elements keep
  /// fp32 state (as bitsandbytes' min_8bit_size; judged on the whole tensor).
  std::uint64_t min_quantized_numel = 4096;
  /// Block-quantized state formats: tensors whose name contains one of these keep fp32 state
  /// whatever their size (bitsandbytes' advice for embeddings, whose rarely updated rows have
  /// second moments that 8-bit blocks round to zero; docs/policies/int8.md).
  std::vector<std::string> fp32_state_names;
  /// Zeroth-order (grad::Spsa): perturbation size eps and directions per step (1 .. 8).
  float zo_eps = 1e-3f;
  unsigned zo_directions = 1;
};

/// The rounding of bf16 parameter stores that `o` selects for a composition.
inline Rounding bf16_param_rounding(const Options& o, bool zeroth_order) {
  return o.param_rounding ? *o.param_rounding
         : zeroth_order   ? Rounding::stochastic
                          : Rounding::nearest;
}

ALLOY_NAMESPACE_END
