// fp::Fast (core/fpmath.hpp) against the correctly rounded division and square root, bit for
// bit: the kernels of tests/cuda/test_fast_math.cu (a sample of divisors, every dividend) and of
// tests/cuda/verify_fast_math.cu (every pair of significands).
//
// Why significands suffice for the division: inside fp::Fast's domain (b in [2^-62, 2^62], |a|
// in [2^-62, 2^62]) every intermediate value of fp::Fast::div is a normal number or an exact
// zero, so scaling a or b by a power of two scales every rounded result by the same power, as
// long as the hardware reciprocal approximation scales too (rcp_scales checks that for every
// significand and exponent of the domain). So a, b in [1, 2) with all 2^23 x 2^23 significand
// pairs cover the domain; a negative a negates every step exactly (rounding is symmetric).
#pragma once

#include <alloy/alloy.cuh>

#include <cstdint>

namespace fast_check {

struct Result {
  unsigned long long checked;
  unsigned long long bad;
  std::uint32_t first_a;  // bit patterns of the first mismatch found (0xffffffff: none)
  std::uint32_t first_b;
};

__device__ inline void report(Result* out, unsigned long long checked, unsigned long long bad,
                              std::uint32_t a, std::uint32_t b) {
  atomicAdd(&out->checked, checked);
  if (bad) {
    atomicAdd(&out->bad, bad);
    atomicMin(&out->first_a, a);
    atomicMin(&out->first_b, b);
  }
}

/// fp::Fast::sqrt(v) == __fsqrt_rn(v) for every float with bits in [lo, hi].
__global__ void sqrt_range(std::uint32_t lo, std::uint32_t hi, Result* out) {
  unsigned long long n = 0, bad = 0;
  std::uint32_t first = 0xffffffffu;
  const alloy::fp::Fast ar;
  const std::uint64_t stride = std::uint64_t(gridDim.x) * blockDim.x;
  for (std::uint64_t u = lo + std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; u <= hi;
       u += stride) {
    const float v = __uint_as_float(std::uint32_t(u));
    ++n;
    if (__float_as_uint(ar.sqrt(v)) != __float_as_uint(__fsqrt_rn(v))) {
      ++bad;
      first = first < std::uint32_t(u) ? first : std::uint32_t(u);
    }
  }
  report(out, n, bad, first, 0);
}

/// fp::Fast::div(a, b) == __fdiv_rn(a, b) for a in [1, 2) (every significand) and b in [1, 2)
/// with significand bs[blockIdx.x] (or b_first + blockIdx.x when bs is null).
__global__ void div_significands(const std::uint32_t* bs, std::uint32_t b_first, Result* out) {
  const std::uint32_t bm = bs ? bs[blockIdx.x] : b_first + blockIdx.x;
  const float b = __uint_as_float(0x3f800000u | (bm & 0x7fffffu));
  const alloy::fp::Fast ar;
  unsigned long long n = 0, bad = 0;
  std::uint32_t first = 0xffffffffu;
  for (std::uint32_t am = threadIdx.x; am < (1u << 23); am += blockDim.x) {
    const float a = __uint_as_float(0x3f800000u | am);
    ++n;
    if (__float_as_uint(ar.div(a, b)) != __float_as_uint(__fdiv_rn(a, b))) {
      ++bad;
      first = first < am ? first : am;
    }
  }
  report(out, n, bad, first, bm);
}

/// The reciprocal approximation fp::Fast starts from scales with its argument:
/// rcp(b 2^k) == rcp(b) 2^-k for b in [1, 2) (every significand) and k in [-62, 61].
__global__ void rcp_scales(Result* out) {
  unsigned long long n = 0, bad = 0;
  std::uint32_t first_b = 0xffffffffu, first_k = 0xffffffffu;
  const std::uint32_t stride = gridDim.x * blockDim.x;
  for (std::uint32_t bm = blockIdx.x * blockDim.x + threadIdx.x; bm < (1u << 23); bm += stride) {
    const float b = __uint_as_float(0x3f800000u | bm);
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(b));
    for (int k = -62; k <= 61; ++k) {
      float rk;
      asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(rk) : "f"(ldexpf(b, k)));
      ++n;
      if (__float_as_uint(rk) != __float_as_uint(ldexpf(r, -k))) {
        ++bad;
        if (bm < first_b) {
          first_b = bm;
          first_k = std::uint32_t(k + 62);
        }
      }
    }
  }
  report(out, n, bad, first_b, first_k);
}

/// Signs and zeros: fp::Fast::div(-a, b) == -fp::Fast::div(a, b) for a spread of a, and
/// fp::Fast::div(+-0, b) == __fdiv_rn(+-0, b) (sign included), for every significand of b at
/// exponents -62, 0 and 61.
__global__ void div_signs(Result* out) {
  unsigned long long n = 0, bad = 0;
  std::uint32_t first = 0xffffffffu;
  const alloy::fp::Fast ar;
  const std::uint32_t stride = gridDim.x * blockDim.x;
  for (std::uint32_t bm = blockIdx.x * blockDim.x + threadIdx.x; bm < (1u << 23); bm += stride) {
    for (int k : {-62, 0, 61}) {
      const float b = ldexpf(__uint_as_float(0x3f800000u | bm), k);
      const float a = ldexpf(__uint_as_float(0x3f800000u | (bm * 2654435761u >> 9)), -k / 2);
      const bool ok =
          __float_as_uint(ar.div(-a, b)) == (__float_as_uint(ar.div(a, b)) ^ 0x80000000u) &&
          __float_as_uint(ar.div(0.f, b)) == __float_as_uint(__fdiv_rn(0.f, b)) &&
          __float_as_uint(ar.div(-0.f, b)) == __float_as_uint(__fdiv_rn(-0.f, b));
      ++n;
      if (!ok) {
        ++bad;
        first = first < bm ? first : bm;
      }
    }
  }
  report(out, n, bad, first, 0);
}

/// A zeroed Result in device memory.
inline Result* new_result() {
  Result* d = nullptr;
  if (cudaMalloc(&d, sizeof(Result)) != cudaSuccess) return nullptr;
  const Result zero{0, 0, 0xffffffffu, 0xffffffffu};
  cudaMemcpy(d, &zero, sizeof zero, cudaMemcpyHostToDevice);
  return d;
}
inline Result take(Result* d) {
  Result h{};
  cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost);
  cudaFree(d);
  return h;
}

}  // namespace fast_check
