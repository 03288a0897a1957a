// The 8-bit dynamic codebooks (structure, as bitsandbytes' create_dynamic_map defines them) and
// the table-driven nearest-code encoder (against a brute-force nearest search at every code
// midpoint, its neighbouring floats, every bucket edge and a strided sweep of [-1, 1]).
#include <doctest/doctest.h>

#include <alloy/state/quant_map.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace {
using alloy::state::QuantEncoder;
using alloy::state::QuantMap;

/// Brute force: the nearest code, ties to the smaller magnitude; beyond the range, the extreme.
int nearest(const QuantMap& m, float x) {
  int best = -1;
  double bd = 0;
  for (int c = 0; c < 256; ++c) {
    const double d = std::fabs(double(m.code[c]) - double(x));
    if (best < 0 || d < bd || (d == bd && std::fabs(m.code[c]) < std::fabs(m.code[best]))) {
      best = c;
      bd = d;
    }
  }
  return best;
}

float next_up(float x) { return std::nextafter(x, 2.f); }
float next_down(float x) { return std::nextafter(x, -2.f); }
}  // namespace

TEST_CASE("int8 codebooks: the structure of bitsandbytes' dynamic maps") {
  for (bool is_signed : {true, false}) {
    const QuantMap m = alloy::state::dynamic_map(is_signed);
    INFO(std::string(is_signed ? "signed" : "unsigned"));
    int zeros = 0;
    for (int c = 0; c < 256; ++c) {
      zeros += m.code[c] == 0.f;
      if (c) CHECK(m.code[c - 1] < m.code[c]);  // 256 distinct, increasing
    }
    CHECK(zeros == 1);
    CHECK(m.code[255] == 1.0f);
    // Codes per decade [10^(i-7), 10^(i-6)) of each sign: 2^i (signed) / 2^(i+1) (unsigned).
    for (int i = 0; i < 7; ++i) {
      const double lo = std::pow(10.0, i - 7), hi = std::pow(10.0, i - 6);
      int pos = 0, neg = 0;
      for (float v : m.code) {
        pos += v >= lo && v < hi;
        neg += -v >= lo && -v < hi;
      }
      CHECK(pos == (is_signed ? 1 << i : 1 << (i + 1)));
      CHECK(neg == (is_signed ? 1 << i : 0));
    }
    if (is_signed) {
      CHECK(m.code[127] == 0.f);
      CHECK(m.code[0] == doctest::Approx(-0.992969).epsilon(1e-6));  // no -1
      CHECK(m.code[128] == doctest::Approx(5.5e-7).epsilon(1e-6));
      for (int j = 1; j <= 127; ++j) CHECK(m.code[127 - j] == -m.code[127 + j]);  // mirror
    } else {
      CHECK(m.code[0] == 0.f);
      CHECK(m.code[1] == doctest::Approx(3.25e-7).epsilon(1e-6));
    }
  }
}

TEST_CASE("int8 encoder: nearest code at every midpoint, bucket edge and a sweep of [-1, 1]") {
  for (bool is_signed : {true, false}) {
    const QuantMap m = alloy::state::dynamic_map(is_signed);
    const QuantEncoder enc(m);
    INFO(std::string(is_signed ? "signed" : "unsigned"));
    std::vector<float> probes;
    for (int c = 0; c + 1 < 256; ++c) {
      const float mid = float((double(m.code[c]) + double(m.code[c + 1])) / 2);
      for (float x :
           {mid, next_up(mid), next_down(mid), next_up(next_up(mid)), next_down(next_down(mid)),
            m.code[c], next_up(m.code[c]), next_down(m.code[c])})
        probes.push_back(x);
    }
    for (int e = -30; e <= 0; ++e)
      for (int k = 0; k < 64; ++k) {
        const float edge = std::ldexp(1.0f + float(k) / 64.f, e);
        for (float x : {edge, next_up(edge), next_down(edge)}) {
          probes.push_back(x);
          probes.push_back(-x);
        }
      }
    for (std::uint32_t u = 0; u < 0x3f800000u; u += 997) {  // every 997th float in [0, 1)
      float x;
      std::memcpy(&x, &u, 4);
      probes.push_back(x);
      probes.push_back(-x);
    }
    probes.push_back(1.0f);
    probes.push_back(-1.0f);
    probes.push_back(1.5f);
    probes.push_back(-7.f);
    std::size_t wrong = 0;
    for (float x : probes) {
      const int got = enc.encode(x);
      const int want = (!is_signed && x < 0) ? nearest(m, 0.f) : nearest(m, x);
      if (got != want) {
        if (++wrong < 5)
          MESSAGE("x = " << x << ": code " << got << " (" << m.code[got] << "), nearest " << want
                         << " (" << m.code[want] << ")");
      }
    }
    CHECK(wrong == 0);
    CHECK(probes.size() > 2000000);
  }
}

TEST_CASE("int8 encoder: the nearest code of every float in [-1, 1], Inf and NaN") {
  // Floats of increasing magnitude, with the nearest magnitude tracked by distances in double
  // (ties stay at the smaller one): independent of the encoder's thresholds and buckets. The
  // bounded encoder (the block format's) the same on (-2, 2) and NaN.
  for (bool is_signed : {true, false}) {
    const QuantMap m = alloy::state::dynamic_map(is_signed);
    const QuantEncoder enc(m);
    INFO(std::string(is_signed ? "signed" : "unsigned"));
    const int zero = is_signed ? 127 : 0, top = 255 - zero;
    const auto mag = [&](int j) { return double(m.code[zero + j]); };
    std::uint64_t wrong = 0, checked = 0;
    int j = 0;
    const auto expect = [&](std::uint32_t u, int got, int want) {
      ++checked;
      if (got != want && ++wrong < 5)
        MESSAGE("bits " << u << ": code " << got << ", nearest " << want);
    };
    const auto bounded = [&](float x) {
      return is_signed ? alloy::state::encode_nearest_bounded<true>(enc.tables(), x)
                       : alloy::state::encode_nearest_bounded<false>(enc.tables(), x);
    };
    for (std::uint32_t u = 0; u < 0x40000000u; ++u) {  // [0, 2)
      float a;
      std::memcpy(&a, &u, 4);
      while (j < top && std::fabs(double(a) - mag(j + 1)) < std::fabs(double(a) - mag(j))) ++j;
      const int pos = zero + j, neg = is_signed ? zero - std::min(j, 127) : 0;
      if (u <= 0x3f800000u) {  // [0, 1]
        expect(u, enc.encode(a), pos);
        expect(u, enc.encode(-a), neg);
      }
      expect(u, bounded(a), pos);
      expect(u, bounded(-a), neg);
    }
    CHECK(wrong == 0);
    CHECK(checked == 2 * (std::uint64_t(0x3f800000u) + 1) + 2 * std::uint64_t(0x40000000u));
    CHECK(bounded(NAN) == zero);
    CHECK(bounded(-NAN) == zero);
    CHECK(enc.encode(INFINITY) == 255);
    CHECK(enc.encode(-INFINITY) == (is_signed ? 0 : 0));
    CHECK(enc.encode(3.0e38f) == 255);
    CHECK(enc.encode(NAN) == zero);
    CHECK(enc.encode(-NAN) == zero);
  }
}

TEST_CASE("int8 encoder: tables refuse a codebook finer than their buckets") {
  QuantMap fine = alloy::state::dynamic_map(false);
  // Crowd codes 200..210 within one bucket near 0.75 (the map stays sorted).
  for (int c = 200; c <= 210; ++c) fine.code[c] = 0.75f + float(c - 200) * 1e-6f;
  for (int c = 211; c < 255; ++c) fine.code[c] = 0.76f + float(c - 211) * 1e-3f;
  for (int c = 150; c < 200; ++c) fine.code[c] = 0.5f + float(c - 150) * 1e-3f;
  CHECK_THROWS_WITH_AS(QuantEncoder{fine}, doctest::Contains("decision points"), alloy::Error);
}

TEST_CASE("int8 encoder: round trip error is bounded by half the local code spacing") {
  const QuantMap m = alloy::state::dynamic_map(true);
  const QuantEncoder enc(m);
  for (std::uint32_t u = 0x33000000u; u < 0x3f800000u; u += 4099) {
    float x;
    std::memcpy(&x, &u, 4);
    for (float s : {x, -x}) {
      const int q = enc.encode(s);
      const float d = enc.decode(q);
      // the two codes around s
      int hi = 0;
      while (hi < 255 && m.code[hi] < s) ++hi;
      const int lo = hi > 0 ? hi - 1 : 0;
      const double spacing = hi > 0 ? double(m.code[hi]) - double(m.code[lo]) : 0.0;
      CHECK(std::fabs(double(d) - double(s)) <=
            spacing / 2 + 1e-12 + (s < m.code[0] ? m.code[0] - s : 0));
      CHECK(enc.encode(d) == q);  // codes are fixed points
    }
  }
  CHECK(enc.encode(NAN) == enc.zero_index());
}
