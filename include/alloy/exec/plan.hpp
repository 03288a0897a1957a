// Splitting the tensors of one launch group into per-worker chunks (host side, at registration).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../core/dtype.hpp"
#include "table.hpp"

ALLOY_NAMESPACE_BEGIN
namespace exec {

/// One launch group: the active tensors of one (param dtype, grad dtype) pair, split into
/// chunks so that worker w (a host thread or a CUDA block) owns chunks
/// [worker_begin[w], worker_begin[w + 1]) and every worker gets about the same element count.
struct GroupPlan {
  DType param, grad;
  std::vector<std::uint32_t> tensors;  // the group's tensors, in order
  std::vector<Chunk> chunks;
  std::vector<std::uint32_t> worker_begin;  // size workers + 1
  std::uint64_t elements = 0;
};

/// Partition the given tensors (indices into `entries`, all of one dtype pair) over `workers`.
/// Cuts inside a tensor fall on multiples of kChunkAlign, counted from the tensor's start.
inline GroupPlan plan_group(const std::vector<TensorEntry>& entries,
                            const std::vector<std::uint32_t>& tensors, DType p, DType g,
                            unsigned workers) {
  GroupPlan plan{p, g, tensors, {}, {}, 0};
  for (auto t : tensors) plan.elements += entries[t].numel;
  workers = std::max(1u, workers);
  const std::uint64_t share =
      std::max<std::uint64_t>(kChunkAlign, (plan.elements + workers - 1) / workers);
  plan.worker_begin.assign(workers + 1, 0);
  unsigned w = 0;
  std::uint64_t filled = 0;  // elements given to worker w so far
  for (auto t : tensors) {
    const std::uint64_t n = entries[t].numel;
    std::uint64_t at = 0;
    while (at < n) {
      std::uint64_t want = share - std::min(share, filled);
      std::uint64_t end = std::min(n, at + std::max<std::uint64_t>(want, 1));
      if (end < n) end = std::min(n, (end + kChunkAlign - 1) / kChunkAlign * kChunkAlign);
      plan.chunks.push_back(Chunk{t, 0, at, end});
      filled += end - at;
      at = end;
      if (filled >= share && w + 1 < workers) {
        ++w;
        plan.worker_begin[w] = std::uint32_t(plan.chunks.size());
        filled = 0;
      }
    }
  }
  for (unsigned i = w + 1; i <= workers; ++i)
    plan.worker_begin[i] = std::uint32_t(plan.chunks.size());
  return plan;
}

/// All launch groups: active tensors grouped by dtype pair, each group in tensor order.
inline std::vector<GroupPlan> plan_all(const std::vector<TensorEntry>& entries, unsigned workers) {
  std::vector<GroupPlan> plans;
  const DType types[] = {DType::f32, DType::bf16, DType::f16};
  for (DType p : types)
    for (DType g : types) {
      std::vector<std::uint32_t> members;
      for (std::uint32_t t = 0; t < entries.size(); ++t)
        if ((entries[t].flags & kTensorActive) && entries[t].param_dtype == std::uint8_t(p) &&
            entries[t].grad_dtype == std::uint8_t(g))
          members.push_back(t);
      if (!members.empty()) plans.push_back(plan_group(entries, members, p, g, workers));
    }
  return plans;
}

}  // namespace exec
ALLOY_NAMESPACE_END
