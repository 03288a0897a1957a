// share::PerBlock on CUDA: the statistics pass and the update equal the host executor bit for
// bit (the same summation order), for Fp32, Bf16 and Int8 first moments, blocks from one element to
// whole tensors of a million elements, every dtype pair, grid sizes, misaligned tensors.
#include "twins.hpp"

namespace {
// Blocks dividing kMixed = {1, 3, 4095, 4097, 70001, 8, 256, 1000003}: single elements, small
// rows, whole tensors (70001 and 1000003 are prime) larger than one statistics sweep (2048).
const std::vector<std::uint64_t> kBlocks = {1, 3, 45, 17, 70001, 2, 64, 1000003};

template <class Format>
void per_block_equals_host(unsigned grid) {
  const alloy::rule::AdamW::Hyper h{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
  for (const auto& dc : kDtypeCases) {
    Options o;
    o.seed = 11;
    o.param_rounding = dc.pr;
    o.cuda_blocks = grid;
    INFO(Format::kName << " param " << alloy::dtype_name(dc.p) << " grad "
                       << alloy::dtype_name(dc.g) << " grid " << grid);
    Twins<alloy::rule::AdamW, Format, alloy::share::PerBlock> tw(
        kMixed, dc.p, dc.g, h, o, {1, 0, 3}, {0, 2}, false, 5, kBlocks);
    for (int s = 0; s < 8; ++s) tw.step(1e-2);
    tw.check_equal();
  }
}
}  // namespace

TEST_CASE("PerBlock (CUDA): equal to the host executor bit for bit") {
  per_block_equals_host<alloy::state::Fp32>(0);
  per_block_equals_host<alloy::state::Bf16<>>(0);
  per_block_equals_host<alloy::state::Int8Blockwise<>>(0);
  per_block_equals_host<alloy::state::Fp32>(3);  // few blocks: the grid-stride loops
}
