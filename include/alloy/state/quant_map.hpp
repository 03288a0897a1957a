// The 8-bit dynamic codebooks of blockwise quantized state (bitsandbytes' "dynamic" maps) and a
// nearest-code encoder that needs no search through memory: a table indexed by the float's
// exponent and top mantissa bits gives a candidate code, then at most two neighbour steps.
// First step of [int8]: the codebooks and the encoder; the block format itself comes next.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../core/dtype.hpp"

ALLOY_NAMESPACE_BEGIN
namespace state {

/// A sorted 256-entry codebook over [-1, 1] (signed) or [0, 1] (unsigned).
struct QuantMap {
  std::array<float, 256> code;
  bool is_signed;
};

/// bitsandbytes' create_dynamic_map(signed, max_exponent_bits = 7, total_bits = 8), computed in
/// fp32 as its torch code does: for decade i = 0..6, n = 2^(i + s) + 1 boundaries
/// linspace(0.1, 1, n) (s = 0 signed, 1 unsigned), their midpoints scaled by 10^(i - 6) (and
/// negated, when signed), plus 0 and 1.0, sorted. linspace is emulated as torch's scalar CPU
/// path computes it (step = (end - start) / (n - 1); start + i step in the first half,
/// end - (n - 1 - i) step in the second). Bit equality with the installed bitsandbytes is
/// checked on the GPU machine (docs/policies/quant_map.md), not here.
inline QuantMap dynamic_map(bool is_signed) {
  QuantMap m{{}, is_signed};
  int k = 0;
  for (int i = 0; i < 7; ++i) {
    const int n = is_signed ? (1 << i) + 1 : (1 << (i + 1)) + 1;
    const float start = 0.1f, end = 1.0f;
    const float step = (end - start) / float(n - 1);
    float b[129 + 1];
    for (int j = 0; j < n; ++j) {
      volatile float prod = step * float(j < n / 2 ? j : n - 1 - j);  // no contraction
      b[j] = j < n / 2 ? start + prod : end - prod;
    }
    const float scale = float(1.0 / [&] {
      double p = 1;
      for (int e = 0; e < 6 - i; ++e) p *= 10;
      return p;
    }());
    for (int j = 0; j + 1 < n; ++j) {
      volatile float sum = b[j] + b[j + 1];
      const float mean = sum / 2.0f;
      volatile float v = scale * mean;
      m.code[k++] = v;
      if (is_signed) m.code[k++] = -v;
    }
  }
  m.code[k++] = 0.f;
  m.code[k++] = 1.f;
  // sort (insertion: 256 entries, once)
  for (int a = 1; a < 256; ++a)
    for (int c = a; c > 0 && m.code[c - 1] > m.code[c]; --c) std::swap(m.code[c - 1], m.code[c]);
  return m;
}

/// Nearest-code encoder of a QuantMap (host side for now; the block format ports it to the
/// device). Ties (x exactly halfway between two codes) go to the code of smaller magnitude; a
/// signed map's negative codes mirror its positive ones (code[z - j] == -code[z + j], z the index
/// of 0), so both signs share one table; inputs beyond the codebook clamp to its extreme code;
/// NaN encodes as 0.
class QuantEncoder {
 public:
  /// Buckets of magnitudes: below 2^-kMinExp one bucket; above, (exponent, top kMantBits bits of
  /// the mantissa). Each bucket stores the largest code <= its lower edge; a bucket is narrower
  /// than the codebook's spacing there, so the answer is at most kMaxSteps codes further (the
  /// tests check this on every bucket edge and every code midpoint).
  static constexpr int kMantBits = 6;
  static constexpr int kMinExp = 24;
  static constexpr int kMaxSteps = 2;

  explicit QuantEncoder(const QuantMap& m) : map_(m) {
    zero_ = 0;
    while (map_.code[zero_] < 0.f) ++zero_;
    for (int b = 0; b < kBuckets; ++b) {
      const float lo = bucket_low(b);
      int c = zero_;
      while (c + 1 < 256 && map_.code[c + 1] <= lo) ++c;
      start_[b] = std::uint8_t(c);
    }
    // up_[c]: the smallest float strictly above the exact midpoint of codes c and c + 1, so the
    // encoder decides with one float compare, exactly (a float sum is exact in double).
    for (int c = 0; c + 1 < 256; ++c) {
      const double mid = (double(map_.code[c]) + double(map_.code[c + 1])) / 2;
      float f = float(mid);
      if (double(f) <= mid) f = std::nextafter(f, 2.f);
      up_[c] = f;
    }
    up_[255] = 2.f;
  }

  const QuantMap& map() const { return map_; }
  int zero_index() const { return zero_; }

  /// The code of x; `steps`, if given, receives the neighbour steps taken after the table.
  std::uint8_t encode(float x, int* steps = nullptr) const {
    if (!(x == x)) return std::uint8_t(zero_);
    const bool neg = x < 0.f;
    if (neg && !map_.is_signed) return std::uint8_t(zero_);
    const int top = neg ? 2 * zero_ : 255;  // the largest magnitude this sign has
    float a = neg ? -x : x;
    if (a == 0.f) return std::uint8_t(zero_);  // +-0
    if (a > map_.code[top]) a = map_.code[top];
    int c = start_[bucket(a)], taken = 0;
    while (c < top && map_.code[c + 1] <= a) {
      ++c;
      ++taken;
    }
    if (steps) *steps = taken;
    // Nearest of code[c] <= a < code[c + 1]; exact ties go to the smaller magnitude.
    const int best = (c < top && a >= up_[c]) ? c + 1 : c;
    return std::uint8_t(neg ? 2 * zero_ - best : best);
  }

  float decode(std::uint8_t q) const { return map_.code[q]; }

 private:
  static constexpr int kBuckets = 1 + kMinExp * (1 << kMantBits) + 1;

  static int bucket(float a) {
    std::uint32_t u;
    std::memcpy(&u, &a, 4);
    const int e = int(u >> 23) - 127;  // a in [2^e, 2^(e+1))
    if (e < -kMinExp) return 0;
    if (e >= 0) return kBuckets - 1;  // a == 1
    return 1 + (e + kMinExp) * (1 << kMantBits) +
           int((u >> (23 - kMantBits)) & ((1u << kMantBits) - 1));
  }
  static float bucket_low(int b) {
    if (b == 0) return 0.f;
    if (b == kBuckets - 1) return 1.f;
    const int e = (b - 1) / (1 << kMantBits) - kMinExp, mant = (b - 1) % (1 << kMantBits);
    const std::uint32_t u = std::uint32_t(e + 127) << 23 | std::uint32_t(mant) << (23 - kMantBits);
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }

  QuantMap map_;
  int zero_ = 0;
  std::array<std::uint8_t, kBuckets> start_{};
  std::array<float, 256> up_{};
};

}  // namespace state
ALLOY_NAMESPACE_END
