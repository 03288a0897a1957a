// The 8-bit dynamic codebooks of blockwise quantized state (bitsandbytes' "dynamic" maps) and a
// nearest-code encoder that needs no search through memory: a table indexed by the float's
// exponent and top mantissa bits gives a candidate code, then at most two neighbour steps.
// The same code encodes on the host and on the device (state/int8.hpp).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../core/dtype.hpp"
#include "../core/error.hpp"
#include "../core/fpmath.hpp"

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
/// negated, when signed), plus 0 and 1.0, sorted. linspace is computed as torch's CPU kernel
/// does, with one rounding per boundary: step = (end - start) / (n - 1) in fp32, then
/// fma(step, j, start) for the first half and fma(-step, n - 1 - j, end) for the second. These
/// bits equal bitsandbytes 0.50.2's maps entry for entry (bench/int8_parity.py,
/// docs/policies/int8.md).
inline QuantMap dynamic_map(bool is_signed) {
  QuantMap m{{}, is_signed};
  int k = 0;
  for (int i = 0; i < 7; ++i) {
    const int n = is_signed ? (1 << i) + 1 : (1 << (i + 1)) + 1;
    const float start = 0.1f, end = 1.0f;
    volatile float span = end - start;  // no contraction, no constant folding in extended precision
    const float step = span / float(n - 1);
    float b[129 + 1];
    for (int j = 0; j < n; ++j)
      b[j] = j < n / 2 ? std::fma(step, float(j), start) : std::fma(-step, float(n - 1 - j), end);
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

/// The encoder's tables for one codebook: plain data, the same bytes on the host and (copied)
/// on the device. Magnitudes are bucketed: below 2^-kMinExp one bucket; above, by (exponent, top
/// kMantBits bits of the mantissa); a bucket is narrower than the codebook's spacing there, so
/// the nearest code is at most kMaxSteps codes above the bucket's start (the tests check this at
/// every bucket edge and every code midpoint).
struct CodebookTables {
  static constexpr int kMantBits = 6;
  static constexpr int kMinExp = 24;
  static constexpr int kMaxSteps = 2;
  static constexpr int kBuckets = 1 + kMinExp * (1 << kMantBits) + 1;

  float code[256];
  /// up[c]: the smallest float strictly above the exact midpoint of code[c] and code[c + 1], so
  /// one float compare decides between them exactly; up[255] = 2.
  float up[256];
  /// start[b]: the largest code at or below bucket b's lower edge (positive side).
  std::uint8_t start[kBuckets];
};

/// Bucket of a magnitude a in [0, 1]: 0 below 2^-24, then 64 per binade, kBuckets - 1 for 1.0.
/// Branch-free: the float's bits above the top 6 mantissa bits, offset to binade 2^-24.
ALLOY_HD int magnitude_bucket(float a) {
  const int b = int(float_bits(a) >> (23 - CodebookTables::kMantBits)) -
                (127 - CodebookTables::kMinExp) * (1 << CodebookTables::kMantBits) + 1;
  return b < 0 ? 0 : b > CodebookTables::kBuckets - 1 ? CodebookTables::kBuckets - 1 : b;
}

/// The nearest code of x in a codebook of bitsandbytes' dynamic layout: zero at index 127
/// (signed; negative codes mirror positive ones, code[127 - j] == -code[127 + j]) or 0
/// (unsigned). Ties (x exactly halfway) go to the code of smaller magnitude; inputs beyond the
/// codebook clamp to its extreme code; +-0 and NaN encode as zero, and so do negative inputs of
/// an unsigned map. `steps`, if given, receives the neighbour steps taken after the table.
template <bool Signed>
ALLOY_HD std::uint8_t encode_nearest(const CodebookTables& t, float x, int* steps = nullptr) {
  constexpr int zero = Signed ? 127 : 0;
  const bool neg = x < 0.f;
  if (!(x == x) || (!Signed && neg)) return std::uint8_t(zero);
  const int top = neg ? 2 * zero : 255;  // the largest magnitude of this sign
  float a = fp::abs(x);                  // +-0 -> +0: the bucket reads the bits
  if (a > t.code[top]) a = t.code[top];
  int c = t.start[magnitude_bucket(a)];
  int taken = 0;
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
  for (int s = 0; s < CodebookTables::kMaxSteps; ++s) {
    const bool up = c < top && t.code[c + 1] <= a;
    c += up;
    taken += up;
  }
  if (steps) *steps = taken;
  // Nearest of code[c] <= a < code[c + 1]; an exact tie stays at the smaller magnitude.
  const int best = c + int(c < top && a >= t.up[c]);
  return std::uint8_t(neg ? 2 * zero - best : best);
}

/// The encoder tables of a map with the dynamic layout (zero at 127 or 0).
inline CodebookTables make_codebook_tables(const QuantMap& m) {
  CodebookTables t{};
  for (int c = 0; c < 256; ++c) t.code[c] = m.code[c];
  const int zero = m.is_signed ? 127 : 0;
  for (int b = 0; b < CodebookTables::kBuckets; ++b) {
    float lo = 0.f;  // the bucket's lower edge
    if (b == CodebookTables::kBuckets - 1) lo = 1.f;
    else if (b > 0) {
      const int e = (b - 1) / (1 << CodebookTables::kMantBits) - CodebookTables::kMinExp;
      const int mant = (b - 1) % (1 << CodebookTables::kMantBits);
      lo = bits_float(std::uint32_t(e + 127) << 23 | std::uint32_t(mant)
                                                         << (23 - CodebookTables::kMantBits));
    }
    int c = zero;
    while (c + 1 < 256 && m.code[c + 1] <= lo) ++c;
    t.start[b] = std::uint8_t(c);
  }
  for (int c = 0; c + 1 < 256; ++c) {  // a float sum is exact in double
    const double mid = (double(m.code[c]) + double(m.code[c + 1])) / 2;
    float f = float(mid);
    if (double(f) <= mid) f = std::nextafter(f, 2.f);
    t.up[c] = f;
  }
  t.up[255] = 2.f;
  return t;
}

/// A codebook with its encoder tables (host side; the block format copies the tables to the
/// device as they are).
class QuantEncoder {
 public:
  static constexpr int kMaxSteps = CodebookTables::kMaxSteps;

  explicit QuantEncoder(const QuantMap& m) : map_(m), tables_(make_codebook_tables(m)) {
    if (m.is_signed ? !(m.code[127] == 0.f) : !(m.code[0] == 0.f))
      detail::fail("QuantEncoder: the codebook does not have the dynamic layout (zero at ",
                   m.is_signed ? 127 : 0, ")");
  }

  const QuantMap& map() const { return map_; }
  const CodebookTables& tables() const { return tables_; }
  int zero_index() const { return map_.is_signed ? 127 : 0; }

  std::uint8_t encode(float x, int* steps = nullptr) const {
    return map_.is_signed ? encode_nearest<true>(tables_, x, steps)
                          : encode_nearest<false>(tables_, x, steps);
  }
  float decode(std::uint8_t q) const { return map_.code[q]; }

 private:
  QuantMap map_;
  CodebookTables tables_;
};

}  // namespace state
ALLOY_NAMESPACE_END
