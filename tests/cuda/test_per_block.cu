// share::PerBlock on CUDA: the statistics pass and the update equal the host executor bit for
// bit (the same summation order), for Fp32, Bf16 and Int8 first moments, blocks from one element to
// whole tensors of a million elements, every dtype pair, grid sizes, misaligned tensors.
#include "twins.hpp"

#include <array>
#include <optional>

namespace {
// Blocks dividing kMixed = {1, 3, 4095, 4097, 70001, 8, 256, 1000003}: single elements, small
// rows, whole tensors (70001 and 1000003 are prime) larger than one statistics sweep (2048).
const std::vector<std::uint64_t> kBlocks = {1, 3, 45, 17, 70001, 2, 64, 1000003};

/// Sharing blocks per one-pass class of the CUDA twin (K = 1, K = 4, cluster) and its cluster
/// size; expected values are checked where given.
struct OnePassCounts {
  std::array<std::uint64_t, 4> want;
  bool check = false;
};

template <class Format>
void per_block_equals_host(unsigned grid, bool one_pass = false,
                           const std::vector<std::uint64_t>& sizes = kMixed,
                           const std::vector<std::uint64_t>& blocks = kBlocks,
                           OnePassCounts counts = {}) {
  const alloy::rule::AdamW::Hyper h{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
  for (const auto& dc : kDtypeCases) {
    Options o;
    o.seed = 11;
    o.param_rounding = dc.pr;
    o.cuda_blocks = grid;
    o.cuda_per_block_one_pass = one_pass;
    INFO(Format::kName << " param " << alloy::dtype_name(dc.p) << " grad "
                       << alloy::dtype_name(dc.g) << " grid " << grid << " one pass " << one_pass);
    Twins<alloy::rule::AdamW, Format, alloy::share::PerBlock> tw(sizes, dc.p, dc.g, h, o, {1, 0, 3},
                                                                 {0, 2}, false, 5, blocks);
    for (int s = 0; s < 8; ++s) tw.step(1e-2);
    tw.check_equal();
    if (counts.check) CHECK(tw.cuda->backend().one_pass_blocks() == counts.want);
  }
}
}  // namespace

TEST_CASE("PerBlock (CUDA): equal to the host executor bit for bit") {
  per_block_equals_host<alloy::state::Fp32>(0);
  per_block_equals_host<alloy::state::Bf16<>>(0);
  per_block_equals_host<alloy::state::Int8Blockwise<>>(0);
  per_block_equals_host<alloy::state::Fp32>(3);  // few blocks: the grid-stride loops
}

TEST_CASE("PerBlock (CUDA): the one-pass path equals the host executor bit for bit") {
  // Blocks of at most 8192 elements take the one-pass kernel (one run of 8 per lane up to 2048,
  // four up to 8192), larger ones the two-pass path, in the same step; the host executor equals
  // the two-pass path (the test above), so both paths give the same bits.
  per_block_equals_host<alloy::state::Fp32>(0, true);
  per_block_equals_host<alloy::state::Bf16<>>(0, true);
  per_block_equals_host<alloy::state::Fp32>(3, true);
  // Blocks of 2049..8193 elements: four runs per lane, the last ones partial or empty; 8193 is
  // one past one thread block's limit (a cluster of 2 takes it).
  const std::vector<std::uint64_t> sizes = {15000, 16384, 2049, 2048, 8193, 6000};
  const std::vector<std::uint64_t> blocks = {5000, 8192, 2049, 2048, 8193, 3000};
  per_block_equals_host<alloy::state::Fp32>(0, true, sizes, blocks);
  per_block_equals_host<alloy::state::Bf16<>>(5, true, sizes, blocks);
  // 8-bit first moments: one pass for blocks of whole 256-element quantization blocks (below the
  // size threshold, and for other blocks, two passes).
  per_block_equals_host<alloy::state::Int8Blockwise<>>(
      0, true, {4096, 65536, 6144, 70001, 10240, 300, 65536, 24576},
      {256, 2048, 1024, 70001, 512, 3, 8192, 6144});
}

TEST_CASE("PerBlock (CUDA): blocks of 2 to 16 segments take one cluster, bit for bit the host's") {
  // Segments of 8192 elements: 131,072 = 16 (llama1b's query/key heads), 8193 = 2 (one element
  // in the second), 70001 = 9 (the last partial), 24576 = 3, 20480 = 3 (the last half full). A
  // launch's cluster holds its largest block's segments (16 here); blocks of fewer segments
  // leave the rest of the cluster idle. 1,000,003 (123 segments) stays on the two-pass path.
  const std::vector<std::uint64_t> sizes = {262144, 16386, 70001, 73728, 40960, 1000003, 4096};
  const std::vector<std::uint64_t> blocks = {131072, 8193, 70001, 24576, 20480, 1000003, 2048};
  const OnePassCounts all{{2, 0, 2 + 2 + 1 + 3 + 2, 16}, true};
  per_block_equals_host<alloy::state::Fp32>(0, true, sizes, blocks, all);
  per_block_equals_host<alloy::state::Bf16<>>(0, true, sizes, blocks, all);
  // 8-bit first moments: blocks of whole quantization blocks only (8193 and 70001: two passes).
  per_block_equals_host<alloy::state::Int8Blockwise<>>(0, true, sizes, blocks,
                                                       {{2, 0, 2 + 3 + 2, 16}, true});
  // Only small clusters: 2 and 4 segments, a cluster of 4.
  per_block_equals_host<alloy::state::Fp32>(0, true, {32768, 65536}, {16384, 32768},
                                            {{0, 0, 2 + 2, 4}, true});
}

TEST_CASE(
    "PerBlock (CUDA): one-pass launches on the side stream, eager and captured, bit for bit the "
    "host's") {
  // One step holds every kind of launch: one run per lane (2048-element blocks), four runs
  // (6144), clusters (131,072 and 24,576), two passes (70001: not whole quantization blocks) and
  // the step kernel (300 elements: below the 8-bit size threshold). With the side stream on, the
  // cluster and four-run launches run beside the others; steps on the legacy default stream, on
  // a non-blocking stream, and replays of a captured step all equal the host's, bit for bit, as
  // with the side stream off.
  const alloy::rule::AdamW::Hyper h{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
  const std::vector<std::uint64_t> sizes = {262144, 65536, 73728, 70001, 24576, 300};
  const std::vector<std::uint64_t> blocks = {131072, 2048, 24576, 70001, 6144, 3};
  for (bool side : {true, false})
    for (DType dt : {DType::f32, DType::bf16}) {
      INFO(alloy::dtype_name(dt) << " side stream " << side);
      Options o;
      o.cuda_side_stream = side;
      Twins<alloy::rule::AdamW, alloy::state::Int8Blockwise<>, alloy::share::PerBlock> tw(
          sizes, dt, dt, h, o, {}, {}, false, 5, blocks);
      const auto n = tw.cuda->backend().one_pass_blocks();
      CHECK(n[0] == 65536 / 2048);
      CHECK(n[1] == 24576 / 6144);
      CHECK(n[2] == 2 + 3);
      CHECK(tw.cuda->backend().side_stream_ready() == side);
      cudaStream_t s;
      REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
      for (int k = 0; k < 2; ++k) tw.step(1e-2);     // the legacy default stream
      for (int k = 0; k < 2; ++k) tw.step(1e-2, s);  // a non-blocking stream
      tw.step_captured(1e-2, s, 4);
      // The last step that ran on the host side was the captured one, on a stream of the
      // default priority: it forked the side stream made at table build (replays run no host
      // code).
      CHECK(tw.cuda->backend().last_side_stream_priority() ==
            (side ? std::optional<int>(0) : std::nullopt));
      int steps = 8, least = 0, greatest = 0;
      REQUIRE(cudaDeviceGetStreamPriorityRange(&least, &greatest) == cudaSuccess);
      if (side && least - greatest >= 2) {
        // The side stream follows the caller's priority: a step on a stream of the greatest
        // priority forks a side stream of that priority (made at its first step); a captured
        // step on a stream of a priority not seen before runs every launch on that stream (no
        // stream is made during a capture). Results stay the host's.
        cudaStream_t hi, mid;
        REQUIRE(cudaStreamCreateWithPriority(&hi, cudaStreamNonBlocking, greatest) == cudaSuccess);
        REQUIRE(cudaStreamCreateWithPriority(&mid, cudaStreamNonBlocking, greatest + 1) ==
                cudaSuccess);
        for (int k = 0; k < 2; ++k) {
          tw.step(1e-2, hi);
          CHECK(tw.cuda->backend().last_side_stream_priority() == std::optional<int>(greatest));
        }
        tw.step_captured(1e-2, mid, 2);
        CHECK(!tw.cuda->backend().last_side_stream_priority());
        tw.step(1e-2);  // the legacy default stream again: the first side stream
        CHECK(tw.cuda->backend().last_side_stream_priority() == std::optional<int>(0));
        steps += 5;
        cudaStreamDestroy(mid);
        cudaStreamDestroy(hi);
      }
      tw.check_equal();
      CHECK(tw.cuda->step_count(0) == steps);
      cudaStreamDestroy(s);
    }
}

TEST_CASE("PerBlock (CUDA): 8-bit first moments with blocks outside the fast arithmetic's domain") {
  // Zero gradients over whole sharing blocks (their v stays 0: outside fp::Fast's domain, so the
  // tile runs again with fp::Ieee) and a huge one (v > 2^60), on the two-pass and the one-pass
  // paths: bit for bit the host's.
  const alloy::rule::AdamW::Hyper h{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
  for (bool one_pass : {false, true})
    for (DType dt : {DType::f32, DType::bf16}) {
      INFO(alloy::dtype_name(dt) << " one pass " << one_pass);
      Options o;
      o.cuda_per_block_one_pass = one_pass;
      Twins<alloy::rule::AdamW, alloy::state::Int8Blockwise<>, alloy::share::PerBlock> tw(
          {65536, 70001}, dt, dt, h, o, {}, {}, false, 5, {2048, 70001});
      for (int s = 0; s < 5; ++s)
        tw.step_edited(1e-2, [&](Arena& g) {
          for (std::uint64_t j = 4096; j < 8192; ++j) g.set(0, j, 0.f);  // two whole blocks
          if (s < 2) g.set(0, 20000, 3e18f);
          for (std::uint64_t j = 0; j < 70001; j += 3) g.set(1, j, 0.f);
        });
      tw.check_equal();
    }
}
