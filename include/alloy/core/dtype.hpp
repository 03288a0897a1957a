// Element types of parameters, gradients and state, and the conversions between them.
//
// bf16 and fp16 are plain 16-bit storage types here (no CUDA headers needed); all arithmetic
// happens in fp32. Conversions are integer bit manipulation, identical on host and device, so
// the stored bits never depend on the executor.
#pragma once

#include <cstdint>
#include <cstring>

#include "macros.hpp"

ALLOY_NAMESPACE_BEGIN

enum class DType : std::uint8_t { f32, bf16, f16 };

constexpr const char* dtype_name(DType t) {
  return t == DType::f32 ? "fp32" : t == DType::bf16 ? "bf16" : "fp16";
}
constexpr std::size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 2; }

/// How a float is rounded into a narrower store: to nearest (ties to even), or stochastically
/// (up with probability equal to the discarded fraction; unbiased, see docs/policies/rounding.md).
enum class Rounding : std::uint8_t { nearest, stochastic };

struct bf16 {
  std::uint16_t bits;
};
struct fp16 {
  std::uint16_t bits;
};

template <class T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::f32;
};
template <>
struct dtype_of<bf16> {
  static constexpr DType value = DType::bf16;
};
template <>
struct dtype_of<fp16> {
  static constexpr DType value = DType::f16;
};

ALLOY_HD std::uint32_t float_bits(float x) {
#if ALLOY_ON_DEVICE
  return __float_as_uint(x);
#else
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
#endif
}
ALLOY_HD float bits_float(std::uint32_t u) {
#if ALLOY_ON_DEVICE
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, 4);
  return x;
#endif
}

// ---- bf16 ----
ALLOY_HD float to_float(bf16 h) { return bits_float(std::uint32_t(h.bits) << 16); }

/// fp32 -> bf16, round to nearest, ties to even, in integer operations: the definition the
/// host runs and the device test compares the hardware conversion with. Every NaN becomes the
/// canonical NaN 0x7fff (what the GPU's conversion instruction produces).
ALLOY_HD bf16 to_bf16_nearest_soft(float x) {
  std::uint32_t u = float_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{0x7fffu};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{std::uint16_t(u >> 16)};
}

/// fp32 -> bf16, round to nearest, ties to even; NaN to 0x7fff. On sm_80 and later one
/// hardware instruction (cvt.rn.bf16.f32; a pair packs into one F2FP), bitwise equal to
/// to_bf16_nearest_soft for every float (tests/cuda/test_conversions.cu checks all 2^32).
ALLOY_HD bf16 to_bf16_nearest(float x) {
#if ALLOY_ON_DEVICE && __CUDA_ARCH__ >= 800
  std::uint16_t r;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(x));
  return bf16{r};
#else
  return to_bf16_nearest_soft(x);
#endif
}

/// fp32 -> bf16, stochastic: adds 16 random bits below the kept mantissa and truncates, so the
/// magnitude rounds up with probability (discarded bits) / 2^16. Inf and NaN pass unchanged.
ALLOY_HD bf16 to_bf16_stochastic(float x, std::uint32_t random) {
  std::uint32_t u = float_bits(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return to_bf16_nearest(x);
  u += random & 0xffffu;
  return bf16{std::uint16_t(u >> 16)};
}

// ---- fp16 (IEEE binary16) ----
ALLOY_HD float to_float(fp16 h) {
  const std::uint32_t sign = std::uint32_t(h.bits & 0x8000u) << 16;
  std::uint32_t exp = (h.bits >> 10) & 0x1fu;
  std::uint32_t man = h.bits & 0x3ffu;
  if (exp == 0x1fu) return bits_float(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp == 0) {
    if (man == 0) return bits_float(sign);
    // subnormal: value = man * 2^-24, exact in fp32
    float v = float(man) * 5.9604644775390625e-8f;
    return bits_float(sign | float_bits(v));
  }
  return bits_float(sign | ((exp + 112u) << 23) | (man << 13));
}

/// fp32 -> fp16, round to nearest, ties to even (overflow to inf, gradual underflow), in integer
/// operations (the host's definition; see to_bf16_nearest_soft). Every NaN becomes 0x7fff.
ALLOY_HD fp16 to_fp16_nearest_soft(float x) {
  std::uint32_t u = float_bits(x);
  const std::uint16_t sign = std::uint16_t((u >> 16) & 0x8000u);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return fp16{0x7fffu};                         // nan
  if (u >= 0x477ff000u) return fp16{std::uint16_t(sign | 0x7c00u)};  // rounds to >= 65520: inf
  if (u < 0x38800000u) {                     // below the smallest normal 2^-14: subnormal or zero
    if (u < 0x33000000u) return fp16{sign};  // below half the smallest subnormal (2^-25)
    const std::uint32_t exp = u >> 23;
    const std::uint32_t man = (u & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126u - exp;  // 14..24 : man >> shift is the subnormal code
    std::uint32_t code = man >> shift;
    const std::uint32_t rem = man & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (code & 1u))) ++code;
    return fp16{std::uint16_t(sign | code)};
  }
  std::uint32_t v = u - 0x38000000u;  // rebias exponent 127 -> 15
  v += 0xfffu + ((v >> 13) & 1u);
  return fp16{std::uint16_t(sign | (v >> 13))};
}

/// fp32 -> fp16, round to nearest, ties to even; NaN to 0x7fff. One instruction on the device
/// (cvt.rn.f16.f32), bitwise equal to to_fp16_nearest_soft for every float (tested).
ALLOY_HD fp16 to_fp16_nearest(float x) {
#if ALLOY_ON_DEVICE
  std::uint16_t r;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(x));
  return fp16{r};
#else
  return to_fp16_nearest_soft(x);
#endif
}

ALLOY_HD float to_float(float x) { return x; }

/// Loads one element of type T as fp32.
template <class T>
ALLOY_HD float load_as_float(const T* p) {
  return to_float(*p);
}

/// Stores an fp32 value as T with rounding R; `random` feeds stochastic rounding.
template <class T, Rounding R>
ALLOY_HD T round_to(float x, std::uint32_t random) {
  if constexpr (sizeof(T) == 4) {
    (void)random;
    return x;
  } else if constexpr (dtype_of<T>::value == DType::bf16) {
    if constexpr (R == Rounding::stochastic) return to_bf16_stochastic(x, random);
    else return to_bf16_nearest(x);
  } else {
    static_assert(R == Rounding::nearest,
                  "alloy: stochastic rounding is implemented for bf16 stores only; use "
                  "Rounding::nearest for fp16");
    (void)random;
    return to_fp16_nearest(x);
  }
}

/// Two floats to a 16-bit T (bf16 or fp16), round to nearest: round_to<T, nearest> of each, in
/// one instruction for the pair on the device (cvt.rn.bf16x2.f32 / cvt.rn.f16x2.f32; tested
/// against the integer definitions like the single conversions).
template <class T>
ALLOY_HD void round_pair_nearest(float a, float b, T& ra, T& rb) {
  static_assert(sizeof(T) == 2);
#if ALLOY_ON_DEVICE && __CUDA_ARCH__ >= 800
  std::uint32_t r;  // the first source lands in the upper half
  if constexpr (dtype_of<T>::value == DType::bf16)
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(b), "f"(a));
  else asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(b), "f"(a));
  ra = T{std::uint16_t(r)};
  rb = T{std::uint16_t(r >> 16)};
#else
  ra = round_to<T, Rounding::nearest>(a, 0);
  rb = round_to<T, Rounding::nearest>(b, 0);
#endif
}

ALLOY_NAMESPACE_END
