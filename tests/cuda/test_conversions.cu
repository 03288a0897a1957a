// The device's fp32 -> bf16 / fp16 conversions (one hardware instruction each, or one for a
// pair) against the integer definitions the host runs (core/dtype.hpp), for every one of the
// 2^32 float bit patterns: DESIGN's numerics contract needs the stored bits to be the same on
// both executors.
#include <doctest/doctest.h>

#include <alloy/alloy.cuh>

#include <cstdint>
#include <cstdio>
#include <utility>

namespace {

struct Mismatches {
  unsigned long long count;
  std::uint32_t first;  // the smallest bit pattern that differs (0xffffffff: none)
};

/// Grid-stride over [0, 2^32): hardware conversion against the integer one, both compiled here.
template <bool Bf16>
__global__ void compare_all(Mismatches* out) {
  unsigned long long bad = 0;
  std::uint32_t first = 0xffffffffu;
  const std::uint64_t stride = std::uint64_t(gridDim.x) * blockDim.x;
  for (std::uint64_t i = std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (1ull << 32);
       i += stride) {
    const float x = __uint_as_float(std::uint32_t(i));
    const float y = __uint_as_float(~std::uint32_t(i));  // the partner in a pair conversion
    std::uint16_t hw, soft, pair_x, pair_y, soft_y;
    if constexpr (Bf16) {
      hw = alloy::to_bf16_nearest(x).bits;
      soft = alloy::to_bf16_nearest_soft(x).bits;
      soft_y = alloy::to_bf16_nearest_soft(y).bits;
      alloy::bf16 a, b;
      alloy::round_pair_nearest(x, y, a, b);
      pair_x = a.bits;
      pair_y = b.bits;
    } else {
      hw = alloy::to_fp16_nearest(x).bits;
      soft = alloy::to_fp16_nearest_soft(x).bits;
      soft_y = alloy::to_fp16_nearest_soft(y).bits;
      alloy::fp16 a, b;
      alloy::round_pair_nearest(x, y, a, b);
      pair_x = a.bits;
      pair_y = b.bits;
    }
    if (hw != soft || pair_x != soft || pair_y != soft_y) {
      ++bad;
      if (std::uint32_t(i) < first) first = std::uint32_t(i);
    }
  }
  if (bad) {
    atomicAdd(&out->count, bad);
    atomicMin(&out->first, first);
  }
}

template <bool Bf16>
Mismatches run_all() {
  Mismatches* d = nullptr;
  REQUIRE(cudaMalloc(&d, sizeof(Mismatches)) == cudaSuccess);
  const Mismatches zero{0, 0xffffffffu};
  REQUIRE(cudaMemcpy(d, &zero, sizeof zero, cudaMemcpyHostToDevice) == cudaSuccess);
  compare_all<Bf16><<<1024, 256>>>(d);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  Mismatches h{};
  REQUIRE(cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost) == cudaSuccess);
  cudaFree(d);
  return h;
}

/// The pattern the device stores for x (one thread), to check the comparison sees the hardware.
__global__ void convert_one(float x, std::uint16_t* out) {
  out[0] = alloy::to_bf16_nearest(x).bits;
  out[1] = alloy::to_fp16_nearest(x).bits;
}

}  // namespace

TEST_CASE(
    "conversions (CUDA): fp32 -> bf16 to nearest, single and paired, equals the host's for all "
    "2^32 floats") {
  const Mismatches m = run_all<true>();
  INFO("mismatches " << m.count << ", first at bits 0x" << std::hex << m.first);
  CHECK(m.count == 0u);
}

TEST_CASE(
    "conversions (CUDA): fp32 -> fp16 to nearest, single and paired, equals the host's for all "
    "2^32 floats") {
  const Mismatches m = run_all<false>();
  INFO("mismatches " << m.count << ", first at bits 0x" << std::hex << m.first);
  CHECK(m.count == 0u);
}

TEST_CASE("conversions (CUDA): ties, overflow and NaN as the host stores them") {
  std::uint16_t* d = nullptr;
  REQUIRE(cudaMalloc(&d, 4) == cudaSuccess);
  const auto dev = [&](float x) {
    std::uint16_t h[2];
    convert_one<<<1, 1>>>(x, d);
    REQUIRE(cudaMemcpy(h, d, 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    return std::pair<std::uint16_t, std::uint16_t>{h[0], h[1]};
  };
  // Host values (the integer definitions) and the device's, for inputs where rules differ.
  for (float x : {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f), 65520.0f, -65520.0f,
                  std::nextafter(65520.0f, 0.0f), 0x1p-25f, 3 * 0x1p-25f, 3.4e38f,
                  __builtin_nanf(""), -__builtin_nanf(""), 0.0f, -0.0f}) {
    const auto [b, h] = dev(x);
    CHECK(b == alloy::to_bf16_nearest(x).bits);
    CHECK(h == alloy::to_fp16_nearest(x).bits);
  }
  CHECK(dev(-__builtin_nanf("")).first == 0x7fff);
  cudaFree(d);
}
