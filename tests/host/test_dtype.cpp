// Narrow-float conversions of core/dtype.hpp against independent references:
// - bf16 and fp16 round-to-nearest-even: float64 rounding by frexp/ldexp/nearbyint
//   (tests/common/reference.hpp), over a strided sweep of all 2^32 float bit patterns and over
//   every midpoint between neighbouring narrow values and the floats on either side of it;
// - fp16 decode: exhaustive over all 65536 codes against ldexp(mantissa, exponent);
// - bf16 stochastic rounding: exact agreement with the float64 stochastic reference for given
//   random words, unbiasedness measured over 2^20 draws of alloy's Philox stream, determinism
//   in the seed, results always one of the two neighbours.
#include <doctest/doctest.h>

#include <alloy/alloy.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../common/reference.hpp"

namespace {

// ---- bit helpers written here, not taken from alloy ----
float f32_of_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
std::uint32_t bits_of_f32(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
/// bf16 code -> float: the code is the top half of an fp32.
float decode_bf16(std::uint16_t h) { return f32_of_bits(std::uint32_t(h) << 16); }
bool bf16_is_nan(std::uint16_t h) { return (h & 0x7fffu) > 0x7f80u; }
bool fp16_is_nan(std::uint16_t h) { return (h & 0x7fffu) > 0x7c00u; }

/// IEEE binary16 decode from its definition: (-1)^s * 2^(e-15) * (1 + m/1024), subnormals
/// 2^-14 * m/1024.
double decode_fp16(std::uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 31) v = m ? std::numeric_limits<double>::quiet_NaN() : INFINITY;
  else if (e == 0) v = std::ldexp(double(m), -24);
  else v = std::ldexp(double(1024 + m), e - 25);
  return s ? -v : v;
}

std::string hex(std::uint32_t u) {
  std::ostringstream os;
  os << "0x" << std::hex << u;
  return os.str();
}

/// Set when the reference produced a value that is not of the target format (a broken oracle);
/// checked by every test that uses expected_*(). Plain counter: the sweeps call these ~10^7
/// times, far too often for a doctest assertion each.
std::uint64_t g_oracle_faults = 0;

/// The bf16 code the float64 reference gives for a non-NaN float (sign of zero kept).
std::uint16_t expected_bf16(float x) {
  const double r = ref::to_bf16(double(x));
  const float f = std::fabs(r) > double(std::numeric_limits<float>::max())
                      ? std::copysign(INFINITY, float(r))
                      : float(r);  // exact: r has at most 8 significant bits
  const std::uint32_t u = bits_of_f32(f);
  if ((u & 0xffffu) != 0u || double(f) != r) ++g_oracle_faults;
  return std::uint16_t(u >> 16);
}

/// fp16 codes of the float64 reference's values, found through the exhaustive decode table.
struct Fp16Table {
  std::vector<std::pair<double, std::uint16_t>> finite;  // non-NaN, non-zero (inf included), sorted
  Fp16Table() {
    for (std::uint32_t c = 0; c < 65536; ++c) {
      const std::uint16_t h = std::uint16_t(c);
      const double v = decode_fp16(h);
      if (!std::isnan(v) && v != 0) finite.emplace_back(v, h);
    }
    std::sort(finite.begin(), finite.end());
  }
  std::uint16_t code_of(double v) const {
    if (v == 0) return std::signbit(v) ? 0x8000 : 0x0000;
    const auto it =
        std::lower_bound(finite.begin(), finite.end(), std::make_pair(v, std::uint16_t(0)));
    if (it == finite.end() || it->first != v) {
      ++g_oracle_faults;  // the reference produced a value fp16 cannot hold
      return 0xffff;
    }
    return it->second;
  }
};
const Fp16Table& fp16_table() {
  static const Fp16Table t;
  return t;
}
std::uint16_t expected_fp16(float x) { return fp16_table().code_of(ref::to_f16(double(x))); }

/// Counts mismatches of f(x) against want(x) and remembers the first one.
struct Tally {
  std::uint64_t checked = 0, wrong = 0;
  std::string first;
  void add(float x, std::uint16_t got, std::uint16_t want) {
    ++checked;
    if (got != want && wrong++ == 0)
      first = "x bits " + hex(bits_of_f32(x)) + " (" + std::to_string(x) + "): got " + hex(got) +
              ", want " + hex(want);
  }
};

/// Checks one float for bf16 round-to-nearest.
void check_bf16_nearest(float x, Tally& t, Tally& nan) {
  const std::uint16_t got = alloy::to_bf16_nearest(x).bits;
  if (std::isnan(x)) {
    // Every NaN becomes the canonical NaN 0x7fff (the GPU conversion instruction's result).
    nan.add(x, got, 0x7fffu);
    return;
  }
  t.add(x, got, expected_bf16(x));
}

void check_fp16_nearest(float x, Tally& t, Tally& nan) {
  const std::uint16_t got = alloy::to_fp16_nearest(x).bits;
  if (std::isnan(x)) {
    nan.add(x, got, 0x7fffu);
    return;
  }
  t.add(x, got, expected_fp16(x));
}

/// Every 257th float bit pattern over the whole 32-bit space (257 is odd and not a multiple of
/// 2^16, so the sweep visits every residue of the discarded low bits in every exponent).
template <class F>
void strided_sweep(F&& f) {
  for (std::uint64_t u = 0; u <= 0xffffffffull; u += 257) f(f32_of_bits(std::uint32_t(u)));
  f(f32_of_bits(0xffffffffu));
}

}  // namespace

// ------------------------------------------------------------------------------------------
// bf16 round to nearest even

TEST_CASE("bf16 nearest: hand-computed values") {
  // bf16 keeps 8 significant bits: the ulp at 1 is 2^-7.
  CHECK(alloy::to_bf16_nearest(1.0f).bits == 0x3f80);
  CHECK(alloy::to_bf16_nearest(1.0f + 0x1p-8f).bits == 0x3f80);             // tie -> even (down)
  CHECK(alloy::to_bf16_nearest(1.0f + 3 * 0x1p-8f).bits == 0x3f82);         // tie -> even (up)
  CHECK(alloy::to_bf16_nearest(1.0f + 0x1p-8f + 0x1p-23f).bits == 0x3f81);  // above the tie
  CHECK(alloy::to_bf16_nearest(-(1.0f + 0x1p-8f + 0x1p-23f)).bits == 0xbf81);
  CHECK(alloy::to_bf16_nearest(0.0f).bits == 0x0000);
  CHECK(alloy::to_bf16_nearest(-0.0f).bits == 0x8000);
  CHECK(alloy::to_bf16_nearest(-0x1p-149f).bits == 0x8000);  // tiny negative -> -0
  CHECK(alloy::to_bf16_nearest(INFINITY).bits == 0x7f80);
  CHECK(alloy::to_bf16_nearest(-INFINITY).bits == 0xff80);
  CHECK(alloy::to_bf16_nearest(std::numeric_limits<float>::max()).bits == 0x7f80);  // -> inf
  CHECK(alloy::to_bf16_nearest(f32_of_bits(0x7f7f7fffu)).bits == 0x7f7f);  // below the midpoint
  CHECK(bf16_is_nan(alloy::to_bf16_nearest(std::numeric_limits<float>::quiet_NaN()).bits));
  // A signalling NaN whose payload lies entirely in the discarded bits must not become inf.
  const std::uint16_t snan = alloy::to_bf16_nearest(f32_of_bits(0x7f800001u)).bits;
  CHECK(bf16_is_nan(snan));
  CHECK(bf16_is_nan(alloy::to_bf16_nearest(f32_of_bits(0xff800001u)).bits));
  // Every NaN, of either sign, becomes the canonical 0x7fff (the GPU instruction's result).
  CHECK(alloy::to_bf16_nearest(f32_of_bits(0xff800001u)).bits == 0x7fff);
  CHECK(alloy::to_bf16_nearest(f32_of_bits(0x7fc00000u)).bits == 0x7fff);
  // The reference agrees with the same hand computation (it is the oracle below).
  CHECK(ref::to_bf16(1.0 + 0x1p-8) == 1.0);
  CHECK(ref::to_bf16(1.0 + 3 * 0x1p-8) == 1.0 + 0x1p-6);
  CHECK(ref::to_bf16(0x1p-133 * 1.5) == 0x1p-132);  // bf16 subnormal tie -> even
}

TEST_CASE("bf16 nearest: strided sweep of all float bit patterns against float64") {
  Tally t, nan;
  strided_sweep([&](float x) { check_bf16_nearest(x, t, nan); });
  INFO("first mismatch: " << t.first << "; first bad NaN: " << nan.first);
  CHECK(t.checked > 16000000u);
  CHECK(nan.checked > 10000u);
  CHECK(t.wrong == 0u);
  CHECK(g_oracle_faults == 0u);
  CHECK(nan.wrong == 0u);
}

TEST_CASE("bf16 nearest: every midpoint between bf16 neighbours and the floats beside it") {
  // For each bf16 code b, the float halfway to the next code (away from zero) is
  // (b << 16) | 0x8000; the floats one fp32 ulp below and above it round down and up.
  Tally t, nan;
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const std::uint32_t mid = (b << 16) | 0x8000u;
    for (std::uint32_t u : {mid - 1, mid, mid + 1}) check_bf16_nearest(f32_of_bits(u), t, nan);
    check_bf16_nearest(f32_of_bits(b << 16), t, nan);  // the bf16 value itself is exact
  }
  INFO("first mismatch: " << t.first << "; first bad NaN: " << nan.first);
  CHECK(t.checked > 250000u);
  CHECK(t.wrong == 0u);
  CHECK(g_oracle_faults == 0u);
  CHECK(nan.wrong == 0u);
}

// ------------------------------------------------------------------------------------------
// fp16

TEST_CASE("fp16 decode: all 65536 codes against ldexp of mantissa and exponent") {
  std::uint64_t wrong = 0, nans = 0;
  std::string first;
  for (std::uint32_t c = 0; c < 65536; ++c) {
    const std::uint16_t h = std::uint16_t(c);
    const float got = alloy::to_float(alloy::fp16{h});
    const double want = decode_fp16(h);
    bool ok;
    if (std::isnan(want)) {
      ++nans;
      ok = std::isnan(got) && std::signbit(got) == bool(h >> 15);
    } else {
      ok = bits_of_f32(got) == bits_of_f32(float(want));  // float(want) exact; sign of 0 kept
    }
    if (!ok && wrong++ == 0) first = "code " + hex(h) + ": got " + std::to_string(got);
  }
  INFO(first);
  CHECK(nans == 2 * 1023);
  CHECK(wrong == 0u);
  CHECK(alloy::to_float(alloy::fp16{0x3c00}) == 1.0f);
  CHECK(alloy::to_float(alloy::fp16{0x7bff}) == 65504.0f);
  CHECK(alloy::to_float(alloy::fp16{0x0001}) == 0x1p-24f);
  CHECK(alloy::to_float(alloy::fp16{0x03ff}) == 1023 * 0x1p-24f);
  CHECK(std::signbit(alloy::to_float(alloy::fp16{0x8000})));
}

TEST_CASE("fp16 nearest: every fp16 value round-trips exactly") {
  std::uint64_t wrong = 0;
  std::string first;
  for (std::uint32_t c = 0; c < 65536; ++c) {
    const std::uint16_t h = std::uint16_t(c);
    const double v = decode_fp16(h);
    const std::uint16_t got = alloy::to_fp16_nearest(float(v)).bits;
    const bool ok = std::isnan(v) ? got == 0x7fffu : got == h;  // NaN: the canonical 0x7fff
    if (!ok && wrong++ == 0) first = "code " + hex(h) + " came back as " + hex(got);
  }
  INFO(first);
  CHECK(wrong == 0u);
}

TEST_CASE("fp16 nearest: every midpoint and the floats beside it against float64") {
  Tally t, nan;
  // Positive finite codes 0 .. 0x7bff; the midpoint to the next value up (65520 above 65504,
  // where the next step would be 2^16). Negative values mirror them.
  for (std::uint32_t c = 0; c <= 0x7bffu; ++c) {
    const double lo = decode_fp16(std::uint16_t(c));
    const double hi = c == 0x7bffu ? 65536.0 : decode_fp16(std::uint16_t(c + 1));
    const float mid = float((lo + hi) / 2);  // exact: 12 significant bits
    REQUIRE(double(mid) == (lo + hi) / 2);
    for (float s : {1.0f, -1.0f})
      for (float x : {std::nextafter(mid, 0.0f), mid, std::nextafter(mid, INFINITY)})
        check_fp16_nearest(s * x, t, nan);
  }
  INFO("first mismatch: " << t.first);
  CHECK(t.checked == 6u * 0x7c00u);
  CHECK(t.wrong == 0u);
  CHECK(g_oracle_faults == 0u);
}

TEST_CASE("fp16 nearest: strided sweep of all float bit patterns against float64") {
  Tally t, nan;
  strided_sweep([&](float x) { check_fp16_nearest(x, t, nan); });
  INFO("first mismatch: " << t.first << "; first bad NaN: " << nan.first);
  CHECK(t.checked > 16000000u);
  CHECK(t.wrong == 0u);
  CHECK(g_oracle_faults == 0u);
  CHECK(nan.wrong == 0u);
}

TEST_CASE("fp16 nearest: subnormals, overflow, NaN, signed zero") {
  const auto c = [](float x) { return alloy::to_fp16_nearest(x).bits; };
  // Subnormals: quantum 2^-24.
  CHECK(c(0x1p-24f) == 0x0001);
  CHECK(c(0x1p-25f) == 0x0000);                        // half the smallest: tie -> 0
  CHECK(c(std::nextafter(0x1p-25f, 1.0f)) == 0x0001);  // just above the tie
  CHECK(c(std::nextafter(0x1p-25f, 0.0f)) == 0x0000);
  CHECK(c(3 * 0x1p-25f) == 0x0002);        // 1.5 quanta: tie -> even
  CHECK(c(5 * 0x1p-25f) == 0x0002);        // 2.5 quanta: tie -> even
  CHECK(c(1023.5f * 0x1p-24f) == 0x0400);  // rounds up into the normals
  CHECK(c(0x1p-14f) == 0x0400);            // smallest normal
  CHECK(c(-3 * 0x1p-24f) == 0x8003);
  CHECK(c(-0x1p-30f) == 0x8000);  // underflow keeps the sign
  CHECK(c(1e-30f) == 0x0000);
  // Overflow: 65504 is the largest finite; from 65520 (its midpoint to 2^16) on, inf.
  CHECK(c(65504.0f) == 0x7bff);
  CHECK(c(65519.99f) == 0x7bff);
  CHECK(c(std::nextafter(65520.0f, 0.0f)) == 0x7bff);
  CHECK(c(65520.0f) == 0x7c00);
  CHECK(c(-65520.0f) == 0xfc00);
  CHECK(c(1e10f) == 0x7c00);
  CHECK(c(INFINITY) == 0x7c00);
  CHECK(c(-INFINITY) == 0xfc00);
  CHECK(c(0.0f) == 0x0000);
  CHECK(c(-0.0f) == 0x8000);
  CHECK(fp16_is_nan(c(std::numeric_limits<float>::quiet_NaN())));
  CHECK(fp16_is_nan(c(f32_of_bits(0x7f800001u))));  // payload only in discarded bits
  CHECK(fp16_is_nan(c(f32_of_bits(0xffc00000u))));
  CHECK(c(f32_of_bits(0xffc00000u)) == 0x7fff);  // every NaN: the canonical 0x7fff
  // Ordinary values with ties: the fp16 ulp at 1 is 2^-10.
  CHECK(c(1.0f + 0x1p-11f) == 0x3c00);
  CHECK(c(1.0f + 3 * 0x1p-11f) == 0x3c02);
  CHECK(c(1.0f + 0x1p-11f + 0x1p-23f) == 0x3c01);
}

// ------------------------------------------------------------------------------------------
// bf16 stochastic rounding

namespace {
/// The two bf16 neighbours of a finite non-zero float, toward and away from zero, by float64
/// arithmetic: lo = |x| truncated to its bf16 quantum, hi = lo + quantum.
std::pair<double, double> bf16_neighbours(float x) {
  int e;
  std::frexp(double(x), &e);
  const int q = std::max(e, -125) - 8;
  const double lo = std::floor(std::fabs(double(x)) * std::ldexp(1.0, -q));
  return {std::copysign(std::ldexp(lo, q), double(x)),
          std::copysign(std::ldexp(lo + 1, q), double(x))};
}
alloy::RandomStream stream(std::uint64_t seed, std::uint32_t key) {
  return alloy::RandomStream{std::uint32_t(seed), std::uint32_t(seed >> 32), key, 7u,
                             std::uint8_t(alloy::Purpose::rounding)};
}
}  // namespace

TEST_CASE("bf16 stochastic: equals the float64 stochastic reference for given words") {
  // Random floats over all binades (random bit patterns, NaN and inf excluded here), each with a
  // Philox word; the reference rounds up iff word + discarded fraction reaches a whole ulp.
  const alloy::RandomStream rs = stream(0x5eed5eed12345ull, 3);
  std::mt19937_64 rng(2024);
  std::uint64_t wrong = 0, ups = 0, n = 0;
  std::string first;
  for (int i = 0; i < 2000000; ++i) {
    const std::uint32_t u = std::uint32_t(rng());
    const float x = f32_of_bits(u);
    if (!std::isfinite(x)) continue;
    const std::uint32_t word = rs.at(std::uint64_t(i)).v[0];
    const std::uint16_t got = alloy::to_bf16_stochastic(x, word).bits;
    const double want = ref::to_bf16_stochastic(double(x), word);
    const float wantf = std::fabs(want) > double(std::numeric_limits<float>::max())
                            ? std::copysign(INFINITY, x)
                            : float(want);
    const auto nb = bf16_neighbours(x);
    ++n;
    const bool exact = (u & 0xffffu) == 0;
    if (!exact && std::fabs(want) == std::fabs(nb.second)) ++ups;
    const bool ok =
        got == std::uint16_t(bits_of_f32(wantf) >> 16) &&
        (double(decode_bf16(got)) == nb.first || double(decode_bf16(got)) == nb.second ||
         (std::isinf(decode_bf16(got)) && std::fabs(nb.second) > 3.4e38));
    if (!ok && wrong++ == 0)
      first = "x bits " + hex(u) + " word " + hex(word) + ": got " + hex(got);
  }
  INFO(first);
  CHECK(n > 1900000u);
  CHECK(wrong == 0u);
  // About half of inexact values round up (discarded fractions are uniform here).
  CHECK(double(ups) / double(n) == doctest::Approx(0.5).epsilon(0.01));
}

TEST_CASE("bf16 stochastic: unbiased over 2^20 Philox words") {
  // Mean of 2^20 roundings must be within 3e-5 relative of x. Standard deviation of the mean:
  // at most half a bf16 ulp (2^-8 relative) / 2^10 = 4e-6 relative, so 3e-5 is > 7 sigma;
  // truncation or round-to-nearest instead would be off by up to 2^-8 = 4e-3.
  // Each x is also held to its own rounding-up fraction: k/N within 5 sigma of the discarded
  // fraction d/2^16 (+1/N), which also sees a bias far below 3e-5 relative.
  const float xs[] = {
      1.3f,                      // binade [1, 2)
      -0.0123456f,               // negative, small
      12345.678f,                // large
      -7.7e-20f,                 // tiny, negative
      0x1.fedcbp-127f,           // float subnormal (bf16 subnormal: ~7 significant bits)
      f32_of_bits(0x3f800001u),  // 1 + 2^-23: 1/65536 ulp above the bf16 value 1
      f32_of_bits(0xc2c8ffffu),  // -(just below a bf16 value): 65535/65536 ulp above
      f32_of_bits(0x40490fdbu),  // pi
  };
  constexpr std::uint64_t N = 1u << 20;
  std::uint32_t key = 11;
  for (float x : xs) {
    const auto nb = bf16_neighbours(x);
    const double frac =
        (std::fabs(double(x)) - std::fabs(nb.first)) / (std::fabs(nb.second) - std::fabs(nb.first));
    REQUIRE(frac > 0.0);  // x is not representable in bf16
    REQUIRE(frac < 1.0);
    const alloy::RandomStream rs = stream(0xabcdef0123ull, key++);
    double sum = 0;
    std::uint64_t up = 0, outside = 0;
    for (std::uint64_t i = 0; i < N; ++i) {
      const double r = double(decode_bf16(alloy::to_bf16_stochastic(x, rs.at(i).v[0]).bits));
      sum += r;
      if (r == nb.second) ++up;
      else if (r != nb.first) ++outside;
    }
    const double mean = sum / double(N);
    const double p = double(up) / double(N);
    const double sigma = std::sqrt(frac * (1 - frac) / double(N));
    INFO("x = " << x << " (bits " << hex(bits_of_f32(x)) << "), mean " << mean << ", up fraction "
                << p << ", discarded fraction " << frac);
    CHECK(outside == 0u);
    CHECK(std::fabs(mean - double(x)) <= 3e-5 * std::fabs(double(x)));
    CHECK(std::fabs(p - frac) <= 5 * sigma + 1.0 / double(N));
    if (frac < 1e-4) CHECK(up > 0u);  // the smallest fraction still rounds up sometimes
  }
}

TEST_CASE("bf16 stochastic: deterministic given the seed; another seed, another sequence") {
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> ud(-4.f, 4.f);
  std::vector<float> xs(50000);
  for (auto& x : xs) {
    do x = ud(rng);
    while ((bits_of_f32(x) & 0xffffu) == 0);  // not exactly representable
  }
  const auto round_all = [&](std::uint64_t seed) {
    const alloy::RandomStream rs = stream(seed, 5);
    std::vector<std::uint16_t> out(xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i)
      out[i] = alloy::to_bf16_stochastic(xs[i], rs.at(i).v[0]).bits;
    return out;
  };
  const auto a = round_all(1234567), b = round_all(1234567), c = round_all(1234568),
             d = round_all(1234567ull | (1ull << 40));
  CHECK(a == b);
  std::size_t differ_c = 0, differ_d = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    differ_c += a[i] != c[i];
    differ_d += a[i] != d[i];
  }
  // Independent words: a value rounds differently with probability 2 f (1 - f), about 1/3 on
  // average over uniform discarded fractions f.
  CHECK(differ_c > xs.size() / 5);
  CHECK(differ_d > xs.size() / 5);
}

TEST_CASE("bf16 stochastic: inf, NaN, zeros and exact values pass through") {
  for (std::uint32_t w : {0u, 1u, 0x8000u, 0xffffu, 0xffffffffu, 0x12345678u}) {
    CAPTURE(w);
    CHECK(alloy::to_bf16_stochastic(INFINITY, w).bits == 0x7f80);
    CHECK(alloy::to_bf16_stochastic(-INFINITY, w).bits == 0xff80);
    CHECK(bf16_is_nan(alloy::to_bf16_stochastic(std::numeric_limits<float>::quiet_NaN(), w).bits));
    CHECK(bf16_is_nan(alloy::to_bf16_stochastic(f32_of_bits(0x7f800001u), w).bits));
    CHECK(bf16_is_nan(alloy::to_bf16_stochastic(f32_of_bits(0xff80ffffu), w).bits));
    CHECK(alloy::to_bf16_stochastic(0.0f, w).bits == 0x0000);
    CHECK(alloy::to_bf16_stochastic(-0.0f, w).bits == 0x8000);
    CHECK(alloy::to_bf16_stochastic(1.5f, w).bits == 0x3fc0);
    CHECK(alloy::to_bf16_stochastic(-3.0f, w).bits == 0xc040);
  }
  // Only the low 16 bits of the word are used: the high half never changes the result.
  CHECK(alloy::to_bf16_stochastic(1.3f, 0x0000u).bits ==
        alloy::to_bf16_stochastic(1.3f, 0xffff0000u).bits);
  CHECK(alloy::to_bf16_stochastic(1.3f, 0xffffu).bits ==
        alloy::to_bf16_stochastic(1.3f, 0x1234ffffu).bits);
  CHECK(alloy::to_bf16_stochastic(1.3f, 0x0000u).bits !=
        alloy::to_bf16_stochastic(1.3f, 0xffffu).bits);
}

// ------------------------------------------------------------------------------------------

TEST_CASE("round_to dispatches on the stored type and rounding mode") {
  using alloy::Rounding;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 10.f);
  int stochastic_differs = 0;
  for (int i = 0; i < 2000; ++i) {
    const float x = nd(rng);
    const std::uint32_t w = std::uint32_t(rng());
    CHECK(bits_of_f32(alloy::round_to<float, Rounding::nearest>(x, w)) == bits_of_f32(x));
    CHECK(bits_of_f32(alloy::round_to<float, Rounding::stochastic>(x, w)) == bits_of_f32(x));
    CHECK(alloy::round_to<alloy::bf16, Rounding::nearest>(x, w).bits == expected_bf16(x));
    CHECK(alloy::round_to<alloy::fp16, Rounding::nearest>(x, w).bits == expected_fp16(x));
    const std::uint16_t s = alloy::round_to<alloy::bf16, Rounding::stochastic>(x, w).bits;
    CHECK(s == std::uint16_t(bits_of_f32(float(ref::to_bf16_stochastic(double(x), w))) >> 16));
    stochastic_differs += s != expected_bf16(x);
  }
  // The stochastic path really is stochastic (not nearest): many values round away from nearest.
  CHECK(stochastic_differs > 200);
  CHECK(g_oracle_faults == 0u);
}
