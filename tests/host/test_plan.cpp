// The planner (include/alloy/exec/plan.hpp): how a launch group's tensors are cut into chunk
// lists. The executors' results do not depend on the cut (the byte-for-byte executor tests);
// what is checked here is the cut itself: every element of every tensor in exactly one chunk,
// in order; the alignment of every cut inside a tensor; the number and sizes of the lists.
#include <doctest/doctest.h>

#include <alloy/alloy.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

namespace {

using alloy::DType;
using alloy::exec::GroupPlan;
using alloy::exec::TensorEntry;

std::vector<TensorEntry> entries_of(const std::vector<std::uint64_t>& sizes) {
  std::vector<TensorEntry> e(sizes.size());
  for (std::size_t i = 0; i < sizes.size(); ++i) e[i].numel = sizes[i];
  return e;
}

std::vector<std::uint32_t> all_of(const std::vector<TensorEntry>& e) {
  std::vector<std::uint32_t> t(e.size());
  for (std::uint32_t i = 0; i < t.size(); ++i) t[i] = i;
  return t;
}

/// Elements of each list, after checking that the chunks walk the tensors in order, each
/// element once, with every cut inside a tensor on a multiple of `align`.
std::vector<std::uint64_t> check_cover(const GroupPlan& plan, const std::vector<TensorEntry>& e,
                                       std::uint64_t align) {
  REQUIRE(plan.worker_begin.size() >= 2);
  CHECK(plan.worker_begin.front() == 0);
  CHECK(plan.worker_begin.back() == plan.chunks.size());
  std::uint32_t tensor = 0;
  std::uint64_t at = 0, total = 0;
  for (const auto& c : plan.chunks) {
    if (at == e[tensor].numel) {  // the previous tensor is done
      ++tensor;
      at = 0;
    }
    REQUIRE(tensor < e.size());
    CHECK(c.tensor == tensor);
    CHECK(c.begin == at);
    CHECK(c.end > c.begin);
    CHECK(c.end <= e[tensor].numel);
    if (c.end < e[tensor].numel) CHECK(c.end % align == 0);
    total += c.end - c.begin;
    at = c.end;
  }
  CHECK(tensor + 1 == e.size());
  CHECK(at == e.back().numel);
  CHECK(total == plan.elements);
  std::vector<std::uint64_t> sizes;
  for (std::size_t w = 0; w + 1 < plan.worker_begin.size(); ++w) {
    CHECK(plan.worker_begin[w] <= plan.worker_begin[w + 1]);
    std::uint64_t n = 0;
    for (auto c = plan.worker_begin[w]; c < plan.worker_begin[w + 1]; ++c)
      n += plan.chunks[c].end - plan.chunks[c].begin;
    sizes.push_back(n);
  }
  return sizes;
}

std::vector<std::uint64_t> random_sizes(std::mt19937_64& rng) {
  std::vector<std::uint64_t> sizes(1 + rng() % 40);
  for (auto& n : sizes) {
    switch (rng() % 4) {
      case 0:
        n = 1 + rng() % 300;
        break;  // below a chunk
      case 1:
        n = 4096 * (1 + rng() % 64);
        break;  // whole queue cuts
      case 2:
        n = 1 + rng() % 3'000'000;
        break;  // anything
      default:
        n = 2048 * (1 + rng() % 2048);
        break;  // model-like rows
    }
  }
  return sizes;
}

}  // namespace

TEST_CASE("plan_group: one list per worker, even shares, cuts on kChunkAlign") {
  using alloy::exec::kChunkAlign;
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    const auto e = entries_of(random_sizes(rng));
    const unsigned workers = 1 + unsigned(rng() % 200);
    const GroupPlan plan = alloy::exec::plan_group(e, all_of(e), DType::f32, DType::f32, workers);
    const auto sizes = check_cover(plan, e, kChunkAlign);
    REQUIRE(sizes.size() == workers);
    const std::uint64_t share =
        std::max(kChunkAlign, (plan.elements + workers - 1) / workers);  // at least one cut
    // Every list but the last closes once it holds its share: at most kChunkAlign - 1 more
    // (the cut rounds up inside a tensor), or less only where nothing is left.
    std::uint64_t before = 0;
    for (unsigned w = 0; w + 1 < workers; ++w) {
      CHECK(sizes[w] < share + kChunkAlign);
      if (before + sizes[w] < plan.elements) CHECK(sizes[w] >= share);
      before += sizes[w];
    }
  }
}

TEST_CASE("plan_queue: lists of the queue's size, heads, at least one list per block") {
  using alloy::exec::plan_queue;
  constexpr std::uint64_t kAlign = 4096;
  std::mt19937_64 rng(12);
  for (int trial = 0; trial < 300; ++trial) {
    const auto e = entries_of(random_sizes(rng));
    const unsigned blocks = 1 + unsigned(rng() % 140);
    const std::uint64_t list = kAlign * (1 + rng() % 32);
    const unsigned head = (trial % 3 == 0) ? 0u : unsigned(rng() % 1001);
    const GroupPlan plan =
        plan_queue(e, all_of(e), DType::bf16, DType::bf16, blocks, list, head, kAlign);
    const auto sizes = check_cover(plan, e, kAlign);
    CAPTURE(plan.elements);
    CAPTURE(blocks);
    CAPTURE(list);
    CAPTURE(head);
    REQUIRE(sizes.size() >= blocks);
    // The size each list aims at: the head lists' share where it is larger than a tail list.
    const std::uint64_t even = (plan.elements / blocks + kAlign - 1) / kAlign * kAlign;
    const std::uint64_t tail = std::max(kAlign, std::min(list, even));
    const std::uint64_t first = plan.elements / 1000 * head / blocks / kAlign * kAlign;
    CHECK(tail % kAlign == 0);
    std::uint64_t before = 0;
    unsigned nonempty = 0;
    for (std::size_t w = 0; w < sizes.size(); ++w) {
      const std::uint64_t want = w < blocks && first > tail ? first : tail;
      const bool last = before + sizes[w] == plan.elements;
      if (sizes[w]) ++nonempty;
      if (!last) CHECK(sizes[w] >= want);  // a list closes only once it holds its size ...
      if (sizes[w]) CHECK(sizes[w] < want + kAlign);  // ... and by less than one cut past it
      if (last && sizes.size() > blocks) CHECK(w + 1 == sizes.size());  // no empty extra lists
      before += sizes[w];
    }
    // Lists past the blocks' first ones exist only where the group outgrows one per block.
    if (sizes.size() > blocks) CHECK(nonempty == sizes.size());
    // One list per block at most where the group is small: no block waits for a long list.
    if (plan.elements <= blocks * kAlign) CHECK(sizes.size() == blocks);
  }
}

TEST_CASE("plan_queue: a flat tensor is cut exactly, heads first") {
  using alloy::exec::plan_queue;
  const auto e = entries_of({std::uint64_t(1) << 28});
  SUBCASE("lists of 32K elements, no head: 8192 lists, all alike") {
    const GroupPlan plan = plan_queue(e, all_of(e), DType::f32, DType::f32, 132, 32768, 0, 4096);
    const auto sizes = check_cover(plan, e, 4096);
    REQUIRE(sizes.size() == 8192);
    for (auto n : sizes) CHECK(n == 32768);
  }
  SUBCASE("head 900: 132 lists of 90% of the tensor, then 64K-element lists") {
    const GroupPlan plan =
        plan_queue(e, all_of(e), DType::bf16, DType::bf16, 132, 65536, 900, 4096);
    const auto sizes = check_cover(plan, e, 4096);
    const std::uint64_t first = (std::uint64_t(1) << 28) / 1000 * 900 / 132 / 4096 * 4096;
    CHECK(first == 1826816);
    for (unsigned w = 0; w < 132; ++w) CHECK(sizes[w] == first);
    const std::uint64_t rest = (std::uint64_t(1) << 28) - 132 * first;
    CHECK(sizes.size() == 132 + (rest + 65535) / 65536);
    for (std::size_t w = 132; w + 1 < sizes.size(); ++w) CHECK(sizes[w] == 65536);
  }
  SUBCASE("a small group: one list per block, some empty") {
    const auto small = entries_of({100'000});
    const GroupPlan plan =
        plan_queue(small, all_of(small), DType::f32, DType::f32, 132, 32768, 0, 4096);
    const auto sizes = check_cover(plan, small, 4096);
    REQUIRE(sizes.size() == 132);
    for (unsigned w = 0; w < 24; ++w) CHECK(sizes[w] == 4096);
    CHECK(sizes[24] == 100'000 - 24 * 4096);
    for (unsigned w = 25; w < 132; ++w) CHECK(sizes[w] == 0);
  }
}
