// fp::Fast, the branch-free division and square root the CUDA executor runs first: bit for bit
// the correctly rounded operations on its domain. The square root over its whole domain; the
// division for every dividend significand against 2,048 divisor significands (the extremes, the
// all-ones families, powers of two and a random spread; tests/cuda/verify_fast_math.cu runs all
// 2^46 pairs, docs/numerics.md), the reciprocal's scaling, signs and zeros.
#include <doctest/doctest.h>

#include <alloy/alloy.cuh>

#include <cstdint>
#include <vector>

#include "fast_math_check.cuh"

namespace {

void check(const fast_check::Result& r, unsigned long long expect_checked) {
  INFO("checked " << r.checked << ", mismatches " << r.bad << ", first a 0x" << std::hex
                  << r.first_a << " b 0x" << r.first_b);
  CHECK(r.checked == expect_checked);
  CHECK(r.bad == 0u);
}

}  // namespace

TEST_CASE("fast math (CUDA): square root equals __fsqrt_rn on [2^-100, 2^100]") {
  const std::uint32_t lo = 0x0d800000u, hi = 0x71800000u;  // 2^-100, 2^100
  auto* d = fast_check::new_result();
  REQUIRE(d);
  fast_check::sqrt_range<<<1024, 256>>>(lo, hi, d);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  check(fast_check::take(d), hi - lo + 1ull);
}

TEST_CASE("fast math (CUDA): division equals __fdiv_rn for every dividend of 2,048 divisors") {
  std::vector<std::uint32_t> bs;
  for (std::uint32_t k = 0; k < 256; ++k) {
    bs.push_back(k);              // just above a power of two
    bs.push_back(0x7fffffu - k);  // just below (the all-ones significand first)
    bs.push_back((0x7fffffu >> (k % 23)) << (k % 23));  // ones, then zeros
    bs.push_back(0x7fffffu >> (k % 23));                // zeros, then ones
  }
  std::uint32_t x = 12345u;
  while (bs.size() < 2048) {
    x = x * 1664525u + 1013904223u;
    bs.push_back(x >> 9);
  }
  std::uint32_t* d_bs = nullptr;
  REQUIRE(cudaMalloc(&d_bs, bs.size() * 4) == cudaSuccess);
  REQUIRE(cudaMemcpy(d_bs, bs.data(), bs.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  auto* d = fast_check::new_result();
  REQUIRE(d);
  fast_check::div_significands<<<unsigned(bs.size()), 256>>>(d_bs, 0, d);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  check(fast_check::take(d), bs.size() << 23);
  cudaFree(d_bs);
}

TEST_CASE("fast math (CUDA): the reciprocal approximation scales; signs and zeros") {
  auto* d = fast_check::new_result();
  REQUIRE(d);
  fast_check::rcp_scales<<<1024, 256>>>(d);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  check(fast_check::take(d), (1ull << 23) * 124);
  d = fast_check::new_result();
  REQUIRE(d);
  fast_check::div_signs<<<1024, 256>>>(d);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  check(fast_check::take(d), (1ull << 23) * 3);
}

TEST_CASE("fast math (CUDA): a mismatch is reported (the check can fail)") {
  // The same comparison against a deliberately wrong reference: __fdiv_rz differs from
  // __fdiv_rn for about half the quotients. Here through the square root's kernel's counterpart:
  // an empty range checks nothing, and a range outside the domain (tiny values) must mismatch.
  auto* d = fast_check::new_result();
  REQUIRE(d);
  fast_check::sqrt_range<<<64, 256>>>(0x00000001u, 0x00100000u, d);  // subnormals: outside
  REQUIRE(cudaGetLastError() == cudaSuccess);
  const fast_check::Result r = fast_check::take(d);
  CHECK(r.checked == 0x00100000ull);
  CHECK(r.bad > 0u);
}
