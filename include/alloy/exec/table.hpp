// The plain-old-data tables both executors walk: one entry per tensor, and chunks of tensors
// assigned to workers (host threads or CUDA thread blocks). Built once at registration.
#pragma once

#include <cstdint>

#include "../core/macros.hpp"

ALLOY_NAMESPACE_BEGIN
namespace exec {

/// Flags of a TensorEntry.
enum : std::uint32_t {
  kTensorActive = 1u,    // has a gradient and is not frozen: stepped (and counted) this step
  kParamAligned16 = 2u,  // param pointer is 16-byte aligned: vector loads in the body
  kGradAligned16 = 4u,   // gradient pointer is 16-byte aligned
  kNoDecay = 8u,         // the group's weight decay does not apply (Options::no_decay names)
  kSmallState = 16u,     // block format, tensor below the size threshold: fp32 state instead
};

/// The hyperparameters a tensor steps with: its group's, without weight decay when masked.
template <class Hyper>
ALLOY_HD Hyper tensor_hyper(Hyper h, std::uint32_t flags) {
  if (flags & kNoDecay) h.weight_decay = 0.f;
  return h;
}

/// Everything a step needs about one tensor. State pointers are null for moments a group
/// does not keep (Sgd without momentum).
struct TensorEntry {
  void* param;
  const void* grad;
  void* state[2];
  void* scale[2];  // block formats: one fp32 absmax per block of each moment, else null
  std::uint64_t numel;
  std::uint64_t share_block;  // share::PerBlock: elements per shared second moment (state[1])
  std::uint32_t key;          // stable RNG key
  std::uint32_t group;        // hyperparameter group
  std::uint32_t flags;
  std::uint8_t moments;                  // moments kept (0 .. Rule::kMoments)
  std::uint8_t param_dtype, grad_dtype;  // DType values
  std::uint8_t pad_;
};

/// A contiguous element range [begin, end) of one tensor. `begin` is a multiple of
/// kChunkAlign (or 0), so vector tiles and future quantization blocks never straddle chunks.
struct Chunk {
  std::uint32_t tensor;
  std::uint32_t pad_;
  std::uint64_t begin, end;
};

/// Chunk boundaries inside a tensor fall on multiples of this many elements: a multiple of every
/// tile width (16 bytes of the narrowest type = 8 elements) and of the int8 block size (256).
inline constexpr std::uint64_t kChunkAlign = 256;

}  // namespace exec
ALLOY_NAMESPACE_END
