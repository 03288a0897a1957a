// Moment sharing PerBlock (Adam-mini): one second moment per block of consecutive elements.
#pragma once

#include <cstdint>

#include "../core/fpmath.hpp"
#include "../core/macros.hpp"

ALLOY_NAMESPACE_BEGIN
namespace share {

/// Adam-mini's moment sharing (Zhang et al., "Adam-mini: Use Fewer Learning Rates To Gain
/// More", ICLR 2025): the elements of a block share one second moment, an EMA of the block's
/// mean of g^2 over this step's gradient:
///
///     v_b <- beta2 v_b + (1 - beta2) * mean_{i in b} g_i^2        (once per block)
///     then every element of b steps as the rule does with v = v_b (AdamW: m per element).
///
/// Blocks are Param::share_block consecutive elements (0: the whole tensor); the partition
/// helper share::adam_mini_partition assigns them as the official release 1.1.1 does. v_b is kept
/// in fp32 whatever the state format of the first moment (one float per block). Blocks of one
/// element are AdamW exactly (bitwise).
struct PerBlock {
  static constexpr const char* kName = "PerBlock";
  static constexpr bool kIsSharePolicy = true;
  static constexpr bool kSharesSecondMoment = true;
};

/// The fixed summation order of a block's sum of squares, the same on every executor (DESIGN's
/// numerics contract). A block is cut into segments of 8192 elements (the last may be shorter).
/// In a segment, 256 lanes; lane l accumulates, in increasing index, the elements i with
/// (i / 8) % 256 == l (fp32 adds of fp32 squares); then a tree of two levels, shaped as the GPU
/// reduces without shared-memory round trips: within each warp w of 32 lanes,
/// a[32w + l] += a[32w + l + h] for h = 16, 8, ..., 1; then the 8 warp totals t[w] = a[32w],
/// t[w] += t[w + h] for h = 4, 2, 1. The segments' sums are added in increasing order (the GPU
/// reduces a segment per thread block, and a block of up to 16 segments in one thread-block
/// cluster). Returns the mean, sum / n, rounded from double.
inline constexpr int kSumLanes = 256;
inline constexpr int kSumRun = 8;
inline constexpr int kSumWarp = 32;
inline constexpr std::uint64_t kSumSegment = 8192;

/// The sum of squares of one segment (at most kSumSegment elements) in the order above.
template <class Load>
float segment_sum_sq(std::uint64_t first, std::uint64_t count, Load&& load) {
  float a[kSumLanes] = {};
  for (std::uint64_t i = 0; i < count; ++i) {
    const float g = load(first + i);
    float& acc = a[(i / kSumRun) % kSumLanes];
    acc = fp::add(acc, fp::mul(g, g));
  }
  float t[kSumLanes / kSumWarp];
  for (int w = 0; w < kSumLanes / kSumWarp; ++w) {
    float* x = a + w * kSumWarp;
    for (int h = kSumWarp / 2; h >= 1; h /= 2)
      for (int l = 0; l < h; ++l) x[l] = fp::add(x[l], x[l + h]);
    t[w] = x[0];
  }
  for (int h = kSumLanes / kSumWarp / 2; h >= 1; h /= 2)
    for (int w = 0; w < h; ++w) t[w] = fp::add(t[w], t[w + h]);
  return t[0];
}

template <class Load>
float block_mean_sq(std::uint64_t n, Load&& load) {
  float sum = 0.f;
  for (std::uint64_t first = 0; first < n; first += kSumSegment) {
    const float s = segment_sum_sq(first, n - first < kSumSegment ? n - first : kSumSegment, load);
    sum = first == 0 ? s : fp::add(sum, s);
  }
  return float(double(sum) / double(n));
}

}  // namespace share
ALLOY_NAMESPACE_END
