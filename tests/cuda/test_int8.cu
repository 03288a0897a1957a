// Int8Blockwise on the GPU: codes and block absmax equal to the host executor's, byte for byte
// (DESIGN's numerics contract), for AdamW and Sgd, every dtype pair, partial blocks at tensor
// ends, grid sizes, misaligned tensors, a smaller block, and a guarded allocator around the state.
// (A file of its own: these instantiations compile in parallel with test_executor.cu.)
#include "twins.hpp"

TEST_CASE("CUDA equals the host executor bit for bit: Int8Blockwise (AdamW, Sgd)") {
  const alloy::rule::AdamW::Hyper adam{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
  const alloy::rule::Sgd::Hyper sgd{0.01f, 0.9f, 0.1f, 0.1f, false, false};
  cuda_equals_host<alloy::rule::AdamW, alloy::state::Int8Blockwise<>>(adam);
  cuda_equals_host<alloy::rule::Sgd, alloy::state::Int8Blockwise<>>(sgd);
}

TEST_CASE("Int8Blockwise: codes equal the host's at every block size, tensor end and grid") {
  // Threshold 0: every tensor quantized, so 1- and 3-element tensors are partial blocks of one
  // lane group; 4097, 70001 and 1000003 end inside a block; misaligned params and grads.
  const alloy::rule::AdamW::Hyper h{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
  for (unsigned blocks : {1u, 7u, 0u})
    for (DType dt : {DType::f32, DType::bf16}) {
      Options o;
      o.min_quantized_numel = 0;
      o.cuda_blocks = blocks;
      INFO("blocks " << blocks << " " << alloy::dtype_name(dt));
      Twins<alloy::rule::AdamW, alloy::state::Int8Blockwise<>> tw(kMixed, dt, dt, h, o,
                                                                  {1, 2, 3, 0, 5}, {3, 0, 1, 7});
      for (int s = 0; s < 6; ++s) tw.step(1e-2);
      tw.check_equal();
    }
  // Block size 64 (four lane groups share a warp) and a guarded allocator around all state.
  auto guarded = std::make_shared<GuardedAllocator>();
  {
    Options o;
    o.allocator = guarded;
    o.min_quantized_numel = 0;
    Twins<alloy::rule::AdamW, alloy::state::Int8Blockwise<64>> tw(kMixed, DType::bf16, DType::bf16,
                                                                  h, o);
    for (int s = 0; s < 4; ++s) tw.step(1e-2);
    tw.check_equal();
    CHECK(guarded->guards_intact());
  }
}

TEST_CASE("Int8Blockwise with fp32 parameters: blocks take chunk lists from a queue") {
  // fp32 parameters (every state format): lists of ALLOY_QUEUE_LIST_ELEMENTS_FP32 elements (at
  // least one per block), more lists than blocks on small grids, each block walking list b and
  // then taking the next from a counter that the last block resets for the next step (the
  // planner's cuts: tests/host/test_plan.cpp); bf16 parameters: one fixed list per
  // block. Either way every element is stepped once per step: codes equal the host's after
  // several steps.
  const alloy::rule::AdamW::Hyper h{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
  const std::vector<std::uint64_t> sizes{3000001, 4096, 100, 700000};
  std::uint64_t n = 0;
  for (auto x : sizes) n += x;
  for (unsigned blocks : {1u, 7u, 0u})
    for (DType dt : {DType::f32, DType::bf16}) {
      Options o;
      o.cuda_blocks = blocks;
      INFO("blocks " << blocks << " " << alloy::dtype_name(dt));
      Twins<alloy::rule::AdamW, alloy::state::Int8Blockwise<>> tw(sizes, dt, dt, h, o);
      const auto lists = tw.cuda->backend().chunk_lists();
      const auto grid = tw.cuda->backend().grid_sizes();
      REQUIRE(lists.size() == 1);
      REQUIRE(grid.size() == 1);
      if (dt == DType::f32) {
        // Lists of k elements, cut inside tensors on kQueueAlign: each holds k to
        // k + kQueueAlign - 1 (the last, or lists that end the group, fewer).
        const std::uint64_t k = ALLOY_QUEUE_LIST_ELEMENTS_FP32, a = alloy::exec::kQueueAlign;
        CHECK(lists[0].second);
        CHECK(lists[0].first >= std::max<std::uint64_t>(grid[0], n / (k + a)));
        CHECK(lists[0].first <= std::max<std::uint64_t>(grid[0], (n + k - 1) / k));
        if (blocks) CHECK(lists[0].first > grid[0]);
      } else {
        CHECK(!lists[0].second);
        CHECK(lists[0].first == grid[0]);
      }
      for (int s = 0; s < 4; ++s) tw.step(1e-2);
      tw.check_equal();
    }
  // Elementwise state takes its lists from a queue too, with fp32 parameters and (by default,
  // ALLOY_QUEUE_LIST_ELEMENTS_16BIT_ELEMENTWISE) with bf16 ones.
  for (DType dt : {DType::f32, DType::bf16}) {
    INFO("Fp32 state, " << alloy::dtype_name(dt));
    Options o;
    o.cuda_blocks = 7;
    Twins<alloy::rule::AdamW, alloy::state::Fp32> tw(sizes, dt, dt, h, o);
    const auto lists = tw.cuda->backend().chunk_lists();
    REQUIRE(lists.size() == 1);
    const bool queued = dt == DType::f32 || ALLOY_QUEUE_LIST_ELEMENTS_16BIT_ELEMENTWISE != 0;
    CHECK(lists[0].second == queued);
    if (queued) CHECK(lists[0].first > 7);
    else CHECK(lists[0].first == 7);
    for (int s = 0; s < 4; ++s) tw.step(1e-2);
    tw.check_equal();
  }
}

TEST_CASE("Int8Blockwise AdamW: tiles outside the fast arithmetic's domain equal the host's") {
  // The CUDA step runs a tile with fp::Fast and again with fp::Ieee when an element leaves the
  // domain AdamW states (v or |m| outside [2^-60, 2^60]): zero gradients (v = 0 while a row has
  // never seen a gradient), huge ones (v > 2^60) and tiny ones (|m| < 2^-60). Had the tile kept
  // its fast results, sqrt(0) alone would be NaN there.
  const alloy::rule::AdamW::Hyper h{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
  for (DType dt : {DType::f32, DType::bf16}) {
    INFO(alloy::dtype_name(dt));
    Options o;
    o.min_quantized_numel = 0;
    Twins<alloy::rule::AdamW, alloy::state::Int8Blockwise<>> tw({70001, 4096, 1000}, dt, dt, h, o);
    for (int s = 0; s < 6; ++s)
      tw.step_edited(1e-2, [&](Arena& g) {
        for (std::uint64_t j = 1000; j < 1512; ++j) g.set(0, j, 0.f);  // whole zero tiles
        for (std::uint64_t j = 0; j < 70001; j += 37) g.set(0, j, 0.f);
        if (s < 3) {
          g.set(1, 5, 3e18f);      // v = 0.01 * 9e36 > 2^60
          g.set(1, 700, -1e-30f);  // |m| and v below 2^-60
        }
        for (std::uint64_t j = 0; j < 1000; ++j) g.set(2, j, 0.f);  // a tensor never updated
      });
    tw.check_equal();
  }
}

TEST_CASE("Int8Blockwise on sm_90: the step kernels stage their next tiles in shared memory") {
  // The cases above check the staged path's results; this checks they ran it: on sm_90 the
  // kernels of 8-bit AdamW and Sgd (momentum) are given TileStage's buffers (whose presence
  // turns staging on in the kernel), sized by the stages of their parameter width, and with
  // fp32 parameters the codebook tables in front of them (kStageTablesInFront).
  cudaDeviceProp prop{};
  REQUIRE(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
  const auto bytes = [&]<class Rule, class PT>() {
    using E = alloy::exec::ElementStep<Rule, alloy::state::Int8Blockwise<>, PT, PT,
                                       alloy::Rounding::nearest>;
    constexpr alloy::exec::Tuning tune = alloy::exec::tuning_sm90<E>();
    using St = alloy::exec::TileStage<E, tune.threads>;
    static_assert(St::kStages == alloy::exec::kBlockStages<PT> && St::kStages >= 2);
    const int got =
        alloy::exec::step_kernel_shared_bytes<E, typename Rule::Scalars, tune.threads, tune.unroll>(
            0);
    // A tile's bytes per thread: parameter, gradient, one code per moment, one absmax each.
    const int per_thread = St::N * int(2 * sizeof(PT)) + St::K * (St::N + 4);
    const int tables =
        alloy::exec::kStageTablesInFront<PT> ? int(sizeof(alloy::state::Int8Tables)) : 0;
    return std::tuple{got, alloy::exec::staged_bytes<E, tune.threads>(),
                      per_thread * tune.threads * St::kStages + tables};
  };
  for (const auto& [got, want, count] : {bytes.operator()<alloy::rule::AdamW, float>(),
                                         bytes.operator()<alloy::rule::AdamW, alloy::bf16>(),
                                         bytes.operator()<alloy::rule::Sgd, float>()}) {
    CHECK(want == count);
    CHECK(want > 48 * 1024);  // above the default limit: the attribute was needed and set
    if (prop.major == 9) CHECK(got == want);
    else CHECK((got == 0 || got == want));
  }
}
