// The 8-bit dynamic codebooks of blockwise quantized state (bitsandbytes' "dynamic" maps) and a
// nearest-code encoder that needs no search through memory: one table entry, indexed by the
// float's exponent and top mantissa bits, and one integer add decide the nearest code.
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
/// on the device. The encoder clamps a magnitude into [2^-kMinExp, 1] (NaN to the low end; the
/// bounded encoder only from below, to [2^-kMinExp, 2)), where it falls in a bucket: the floats
/// that share their exponent and top kMantBits mantissa bits, 2^kMantBits per binade, and all of
/// [1, 2) at the top code. Buckets are narrower than the codebook's spacing, so at most one
/// decision point (where the next code becomes the nearer) lies inside a bucket: one 32-bit
/// entry per bucket holds the nearest code of the bucket's lower edge and where, in the float's
/// low kLowBits bits, the decision point is. Encoding is then one table read and integer
/// arithmetic (encode_nearest); make_codebook_tables refuses a codebook finer than the buckets,
/// and the tests check every float of (-2, 2).
struct CodebookTables {
  static constexpr int kMantBits = 7;
  static constexpr int kLowBits = 23 - kMantBits;  // 16: the bits that vary within a bucket
  static constexpr int kMinExp = 23;
  /// [2^-23, 1) bucket by bucket, then [1, 2), all of it the top code (encode_nearest_bounded).
  static constexpr int kBuckets = (kMinExp + 1) * (1 << kMantBits);
  /// Bits of 2^-kMinExp, the first bucket's lower edge, shifted right by kLowBits.
  static constexpr std::uint32_t kFirst = std::uint32_t(127 - kMinExp) << kMantBits;

  float code[256];
  /// enc[b] = ((j - h) << 16) + f (mod 2^32): j is the magnitude index (code index minus the
  /// zero's) of the nearest code to bucket b's lower edge, h = kFirst + b the bucket's high 16
  /// bits; f is 0 when no decision point lies in the bucket, else 2^16 - t, where t (>= 1) are
  /// the low 16 bits of the smallest float nearer to magnitude j + 1 than to j. A float u of
  /// the bucket is (h << 16) + l, so (enc[b] + u) >> 16 = (j << 16) + f + l >> 16 is j + 1
  /// exactly when l >= t: the carry is the comparison, and the float's high bits cancel
  /// without a mask.
  std::uint32_t enc[kBuckets];
};

/// The code of magnitude a >= 2^-23 (a < 2, or the encoding below is wrong) in a codebook of
/// bitsandbytes' dynamic layout, for a value of sign `neg`: one table read and an add.
template <bool Signed>
ALLOY_HD std::uint8_t code_of_magnitude(const CodebookTables& t, float a, bool neg) {
  const std::uint32_t u = float_bits(a);
  const std::uint32_t e = t.enc[(u >> CodebookTables::kLowBits) - CodebookTables::kFirst];
  const int j = int((e + u) >> 16);
  if constexpr (Signed) {
    // The largest negative magnitude is 127 (128 is the positive-only 1.0): clamp at code 0.
    const int c = neg ? 127 - j : 127 + j;
    return std::uint8_t(c < 0 ? 0 : c);
  } else {
    (void)neg;
    return std::uint8_t(j);
  }
}

/// The nearest code of x in a codebook of bitsandbytes' dynamic layout: zero at index 127
/// (signed; negative codes mirror positive ones, code[127 - j] == -code[127 + j]) or 0
/// (unsigned). Ties (x exactly halfway) go to the code of smaller magnitude; inputs beyond the
/// codebook clamp to its extreme code; +-0 and NaN encode as zero, and so do negative inputs of
/// an unsigned map. One table read, no search and no compare against the codebook.
template <bool Signed>
ALLOY_HD std::uint8_t encode_nearest(const CodebookTables& t, float x) {
  // |x| into [2^-23, 1]: below 2^-23 every value is nearest to zero (make_codebook_tables
  // checks), and fmax turns NaN into the low end.
  static_assert(CodebookTables::kMinExp == 23, "the clamp is 2^-kMinExp");
  const bool neg = float_bits(x) >> 31;
  if (!Signed && neg) return 0;
  return code_of_magnitude<Signed>(t, fp::min(fp::max(fp::abs(x), 0x1p-23f), 1.0f), neg);
}

/// encode_nearest for |x| < 2 or NaN (a value times the inverse of its block's absmax: see
/// state::Int8Blockwise::inverse), with one clamp fewer: the tables cover [1, 2) as the top
/// code. Unsigned maps clamp x itself, not |x|, from below, so negative values and NaN reach
/// the zero code without a test of the sign. Equal to encode_nearest on its domain (tested for
/// every float of (-2, 2)).
template <bool Signed>
ALLOY_HD std::uint8_t encode_nearest_bounded(const CodebookTables& t, float x) {
  if constexpr (Signed)
    return code_of_magnitude<true>(t, fp::max(fp::abs(x), 0x1p-23f), float_bits(x) >> 31);
  else return code_of_magnitude<false>(t, fp::max(x, 0x1p-23f), false);
}

/// The encoder tables of a map with the dynamic layout (zero at 127 or 0). Fails if some bucket
/// would hold two decision points (a codebook finer than the buckets), or if a value below
/// 2^-kMinExp would not be nearest to zero.
inline CodebookTables make_codebook_tables(const QuantMap& m) {
  CodebookTables t{};
  for (int c = 0; c < 256; ++c) t.code[c] = m.code[c];
  const int zero = m.is_signed ? 127 : 0, top = 255 - zero;  // magnitudes 0..top
  // up[j]: the smallest float nearer to magnitude j + 1 than to j (above the exact midpoint;
  // a float sum is exact in double); +Inf past the largest.
  std::array<std::uint32_t, 256> up{};
  for (int j = 0; j <= top; ++j) {
    if (j == top) {
      up[j] = float_bits(INFINITY);
      continue;
    }
    const double mid = (double(m.code[zero + j]) + double(m.code[zero + j + 1])) / 2;
    float f = float(mid);
    if (double(f) <= mid) f = std::nextafter(f, INFINITY);
    up[j] = float_bits(f);
  }
  constexpr int L = CodebookTables::kLowBits;
  for (int b = 0; b < CodebookTables::kBuckets; ++b) {
    const std::uint32_t lo = (CodebookTables::kFirst + std::uint32_t(b)) << L;  // its floats:
    const std::uint32_t hi = lo + (1u << L) - 1;                                // [lo, hi]
    int j = 0;  // the nearest magnitude of the lower edge
    while (j < top && up[j] <= lo) ++j;
    int inside = 0;  // decision points in (lo, hi]
    while (j + inside < top && up[j + inside] <= hi) ++inside;
    if (inside > 1)
      detail::fail("make_codebook_tables: bucket ", b, " holds ", inside,
                   " decision points; the codebook is finer than the encoder's buckets");
    if (b == 0 && j != 0)
      detail::fail("make_codebook_tables: values below 2^-", CodebookTables::kMinExp,
                   " are not all nearest to zero");
    const std::uint32_t h = CodebookTables::kFirst + std::uint32_t(b);
    t.enc[b] =
        ((std::uint32_t(j) - h) << 16) + (inside ? (1u << L) - (up[j] & ((1u << L) - 1)) : 0u);
  }
  return t;
}

/// A codebook with its encoder tables (host side; the block format copies the tables to the
/// device as they are).
class QuantEncoder {
 public:
  explicit QuantEncoder(const QuantMap& m) : map_(m), tables_(make_codebook_tables(m)) {
    if (m.is_signed ? !(m.code[127] == 0.f) : !(m.code[0] == 0.f))
      detail::fail("QuantEncoder: the codebook does not have the dynamic layout (zero at ",
                   m.is_signed ? 127 : 0, ")");
  }

  const QuantMap& map() const { return map_; }
  const CodebookTables& tables() const { return tables_; }
  int zero_index() const { return map_.is_signed ? 127 : 0; }

  std::uint8_t encode(float x) const {
    return map_.is_signed ? encode_nearest<true>(tables_, x) : encode_nearest<false>(tables_, x);
  }
  float decode(std::uint8_t q) const { return map_.code[q]; }

 private:
  QuantMap map_;
  CodebookTables tables_;
};

}  // namespace state
ALLOY_NAMESPACE_END
