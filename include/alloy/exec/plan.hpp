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

/// Cut the given tensors (indices into `entries`, all of one dtype pair), in order, into
/// consecutive lists: list w gets about want(w) elements (at least `align`), and cuts inside a
/// tensor fall on multiples of `align` (a multiple of kChunkAlign), counted from the tensor's
/// start. At most `max_lists` lists: the last takes whatever is left. The plan has as many lists
/// as the elements fill (at least one).
template <class Want>
GroupPlan plan_lists(const std::vector<TensorEntry>& entries,
                     const std::vector<std::uint32_t>& tensors, DType p, DType g,
                     std::uint64_t align, unsigned max_lists, Want&& want) {
  GroupPlan plan{p, g, tensors, {}, {0}, 0};
  for (auto t : tensors) plan.elements += entries[t].numel;
  unsigned w = 0;
  std::uint64_t share = std::max(align, std::uint64_t(want(0u)));
  std::uint64_t filled = 0;  // elements given to list w so far
  std::uint64_t left = plan.elements;
  for (auto t : tensors) {
    const std::uint64_t n = entries[t].numel;
    std::uint64_t at = 0;
    while (at < n) {
      std::uint64_t end = at + std::max<std::uint64_t>(share - std::min(share, filled), 1);
      if (end < n) end = std::min(n, (end + align - 1) / align * align);
      else end = n;
      plan.chunks.push_back(Chunk{t, 0, at, end});
      filled += end - at;
      left -= end - at;
      at = end;
      if (filled >= share && left && w + 1 < max_lists) {
        plan.worker_begin.push_back(std::uint32_t(plan.chunks.size()));
        share = std::max(align, std::uint64_t(want(++w)));
        filled = 0;
      }
    }
  }
  plan.worker_begin.push_back(std::uint32_t(plan.chunks.size()));
  return plan;
}

/// Adds empty lists to `plan` up to `lists` in all.
inline void pad_lists(GroupPlan& plan, unsigned lists) {
  while (plan.worker_begin.size() < std::size_t(lists) + 1)
    plan.worker_begin.push_back(plan.worker_begin.back());
}

/// Partition the given tensors over `workers`: one list each, about the same element count
/// (cuts inside a tensor on multiples of kChunkAlign).
inline GroupPlan plan_group(const std::vector<TensorEntry>& entries,
                            const std::vector<std::uint32_t>& tensors, DType p, DType g,
                            unsigned workers) {
  workers = std::max(1u, workers);
  std::uint64_t n = 0;
  for (auto t : tensors) n += entries[t].numel;
  const std::uint64_t share = (n + workers - 1) / workers;
  GroupPlan plan =
      plan_lists(entries, tensors, p, g, kChunkAlign, workers, [share](unsigned) { return share; });
  pad_lists(plan, workers);
  return plan;
}

/// The lists of a launch group whose `blocks` thread blocks take them from a queue: block b
/// starts on list b, then takes lists blocks, blocks + 1, ... as it finishes one. With `head`
/// (permille, 0..1000) the first `blocks` lists hold about that part of the group, evenly, and
/// the rest comes in lists of `list` elements (fewer restarts of a block's pipeline; the small
/// lists at the end even out the blocks); with head 0 every list holds `list` elements (fewer
/// where the group is too small to give every block one). Both sizes are multiples of `align`,
/// and so is every cut inside a tensor: a list that closes inside a tensor holds its size to its
/// size + align - 1 elements. At least `blocks` lists.
inline GroupPlan plan_queue(const std::vector<TensorEntry>& entries,
                            const std::vector<std::uint32_t>& tensors, DType p, DType g,
                            unsigned blocks, std::uint64_t list, unsigned head,
                            std::uint64_t align) {
  blocks = std::max(1u, blocks);
  std::uint64_t n = 0;
  for (auto t : tensors) n += entries[t].numel;
  const auto down = [align](std::uint64_t x) { return x / align * align; };
  const std::uint64_t even = (n / blocks + align - 1) / align * align;  // one list per block
  const std::uint64_t tail = std::max(align, std::min(down(list), even));
  const std::uint64_t first = down(n / 1000 * std::min(head, 1000u) / blocks);
  GroupPlan plan = plan_lists(entries, tensors, p, g, align, ~0u, [&](unsigned w) {
    return w < blocks && first > tail ? first : tail;
  });
  pad_lists(plan, blocks);
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
