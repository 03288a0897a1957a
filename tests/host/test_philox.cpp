// Philox4x32-10 against Random123's known-answer vectors, the RandomStream counter/key layout,
// and the FNV-1a tensor key.
#include <doctest/doctest.h>

#include <alloy/alloy.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <random>
#include <string_view>
#include <vector>

namespace {

using Words = std::array<std::uint32_t, 4>;
Words words(const alloy::Philox4x32& x) { return {x.v[0], x.v[1], x.v[2], x.v[3]}; }

alloy::RandomStream base_stream() {
  return alloy::RandomStream{0x9e3779b9u, 0x7f4a7c15u, 0xc0ffee11u, 123456u,
                             std::uint8_t(alloy::Purpose::rounding)};
}

}  // namespace

TEST_CASE("philox4x32_10 matches Random123's known-answer vectors") {
  // Random123 1.14, kat_vectors: "philox4x32 10 <ctr[4]> <key[2]> <out[4]>".
  struct Kat {
    Words ctr;
    std::uint32_t k0, k1;
    Words out;
  };
  const Kat kats[] = {
      {{0u, 0u, 0u, 0u}, 0u, 0u, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       0xffffffffu,
       0xffffffffu,
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       0xa4093822u,
       0x299f31d0u,
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& k : kats) {
    const alloy::Philox4x32 out = alloy::philox4x32_10(
        alloy::Philox4x32{{k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3]}}, k.k0, k.k1);
    CAPTURE(k.ctr[0]);
    CHECK(words(out) == k.out);
  }
}

TEST_CASE("RandomStream: the documented counter layout, keyed by the 64-bit seed") {
  // counter = (index low 32 | index bits 32..55 + purpose << 24 | tensor key | step),
  // key = (seed low, seed high).
  std::mt19937_64 rng(31337);
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t seed = rng(), element = rng() & ((1ull << 56) - 1);
    const alloy::RandomStream s{std::uint32_t(seed), std::uint32_t(seed >> 32),
                                std::uint32_t(rng()), std::uint32_t(rng()), std::uint8_t(rng())};
    const Words want = words(alloy::philox4x32_10(
        alloy::Philox4x32{{std::uint32_t(element),
                           std::uint32_t(element >> 32) | (std::uint32_t(s.purpose) << 24),
                           s.tensor_key, s.step}},
        std::uint32_t(seed), std::uint32_t(seed >> 32)));
    CHECK(words(s.at(element)) == want);
  }
}

TEST_CASE("RandomStream: every field of the key changes the output") {
  const alloy::RandomStream base = base_stream();
  const std::uint64_t element = 0x00ab'cdef'1234'5678ull;
  const Words ref = words(base.at(element));
  int changed = 0, tried = 0;
  const auto expect_differs = [&](const alloy::RandomStream& s, std::uint64_t e, const char* what,
                                  int bit) {
    CAPTURE(what);
    CAPTURE(bit);
    ++tried;
    const bool differs = words(s.at(e)) != ref;
    changed += differs;
    CHECK(differs);
  };
  for (int b = 0; b < 32; ++b) {
    auto s = base;
    s.seed_lo ^= 1u << b;
    expect_differs(s, element, "seed bits 0..31", b);
    s = base;
    s.seed_hi ^= 1u << b;
    expect_differs(s, element, "seed bits 32..63", b);
    s = base;
    s.tensor_key ^= 1u << b;
    expect_differs(s, element, "tensor key", b);
    s = base;
    s.step ^= 1u << b;
    expect_differs(s, element, "step", b);
  }
  for (int b = 0; b < 8; ++b) {
    auto s = base;
    s.purpose = std::uint8_t(s.purpose ^ (1u << b));
    expect_differs(s, element, "purpose", b);
  }
  // The element index: all 56 bits the layout keeps (the low 32 and the 24 above them).
  for (int b = 0; b < 56; ++b) expect_differs(base, element ^ (1ull << b), "element index", b);
  CHECK(changed == tried);
  CHECK(tried == 4 * 32 + 8 + 56);

  // Purposes are disjoint families: the purpose byte sits above the 24 high index bits, and
  // index bits 56..63 are masked off (documented: indices are below 2^56), so no index of one
  // purpose reaches another purpose's counters.
  auto spsa = base;
  spsa.purpose = std::uint8_t(alloy::Purpose::spsa_direction);
  CHECK(words(spsa.at(element)) != ref);
  CHECK(words(base.at(element | (0xffull << 56))) == ref);

  // The seed is the 64-bit Options::seed split in halves: as the host executor builds it.
  const std::uint64_t seed = 0x0123456789abcdefull;
  const alloy::RandomStream rs = alloy::exec::rounding_stream(seed, 77u, 0xdeadbeefu);
  CHECK(rs.seed_lo == 0x89abcdefu);
  CHECK(rs.seed_hi == 0x01234567u);
  CHECK(rs.step == 77u);
  CHECK(rs.tensor_key == 0xdeadbeefu);
  CHECK(rs.purpose == std::uint8_t(alloy::Purpose::rounding));
}

TEST_CASE("RandomStream: an element's numbers do not depend on the visiting order") {
  // Counter-based: at(i) is a function of i. Visit 10000 elements in order, reversed, shuffled
  // and in chunks of several sizes, interleaved as workers would, and compare.
  const alloy::RandomStream s = base_stream();
  const std::size_t n = 10000;
  const std::uint64_t offset = 0x0000'0003'ffff'f000ull;  // crosses the 2^32 boundary (at 0x1000)
  std::vector<Words> in_order(n);
  for (std::size_t i = 0; i < n; ++i) in_order[i] = words(s.at(offset + i));

  std::vector<std::size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::vector<std::vector<std::size_t>> orders;
  orders.push_back({idx.rbegin(), idx.rend()});
  std::mt19937 rng(5);
  std::shuffle(idx.begin(), idx.end(), rng);
  orders.push_back(idx);
  for (std::size_t chunk : {1u, 7u, 256u, 4096u}) {  // round-robin over chunks, 3 "workers"
    std::vector<std::size_t> o;
    const std::size_t chunks = (n + chunk - 1) / chunk;
    for (std::size_t w = 0; w < 3; ++w)
      for (std::size_t c = w; c < chunks; c += 3)
        for (std::size_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i) o.push_back(i);
    REQUIRE(o.size() == n);
    orders.push_back(o);
  }
  for (const auto& o : orders) {
    std::vector<Words> got(n);
    for (std::size_t i : o) got[i] = words(s.at(offset + i));
    CHECK(got == in_order);
  }
  // And the stream is not constant across elements (neighbours differ in every word).
  std::size_t same = 0;
  for (std::size_t i = 1; i < n; ++i)
    for (int w = 0; w < 4; ++w) same += in_order[i][w] == in_order[i - 1][w];
  CHECK(same < 4);
}

TEST_CASE("RandomStream: 32-bit words are uniform (mean and 16-bin histogram)") {
  // Mean of u / 2^32 over 2^20 draws: standard deviation sqrt(1/12) / 2^10 = 2.8e-4, so the
  // 1e-3 bound is 3.5 sigma. Histogram of the top 4 bits and of the low 16 bits' top 4 bits
  // (the bits stochastic rounding uses): chi-square with 15 degrees of freedom, 40 is p ~ 5e-4.
  const alloy::RandomStream s = base_stream();
  constexpr std::size_t N = 1u << 20;
  double sum[4] = {0, 0, 0, 0};
  std::uint64_t hist_hi[4][16] = {}, hist_lo[4][16] = {};
  for (std::size_t i = 0; i < N; ++i) {
    const alloy::Philox4x32 r = s.at(i);
    for (int w = 0; w < 4; ++w) {
      sum[w] += double(r.v[w]) / 4294967296.0;
      ++hist_hi[w][r.v[w] >> 28];
      ++hist_lo[w][(r.v[w] >> 12) & 15u];
    }
  }
  const auto chi2 = [](const std::uint64_t(&h)[16]) {
    const double e = double(N) / 16;
    double c = 0;
    for (auto x : h) c += (double(x) - e) * (double(x) - e) / e;
    return c;
  };
  for (int w = 0; w < 4; ++w) {
    CAPTURE(w);
    CHECK(std::abs(sum[w] / double(N) - 0.5) <= 1e-3);
    CHECK(chi2(hist_hi[w]) < 40.0);
    CHECK(chi2(hist_lo[w]) < 40.0);
  }
}

TEST_CASE("rounding_bits: 16 bits per element from one call per 8, whatever the tile's start") {
  // The layout, written out: element e takes half e % 2 of word (e % 8) / 2 of output e / 8.
  const alloy::RandomStream s = base_stream();
  const auto want = [&](std::uint64_t e) {
    const Words w = words(s.at(e / 8));
    return (w[(e % 8) / 2] >> (16 * (e % 2))) & 0xffffu;
  };
  std::uint64_t starts[] = {0, 1, 3, 7, 8, 9, 15, 16, 24, 1000, (1ull << 40) + 5, 1ull << 40};
  for (std::uint64_t i0 : starts) {
    CAPTURE(i0);
    std::uint32_t r16[16], r1[1], r24[24];
    alloy::rounding_bits<16>(s, i0, r16);
    alloy::rounding_bits<1>(s, i0, r1);
    alloy::rounding_bits<24>(s, i0, r24);
    for (int j = 0; j < 16; ++j) CHECK((r16[j] & 0xffffu) == want(i0 + std::uint64_t(j)));
    for (int j = 0; j < 24; ++j) CHECK((r24[j] & 0xffffu) == want(i0 + std::uint64_t(j)));
    CHECK((r1[0] & 0xffffu) == want(i0));
  }
  // Two elements never share bits: the 16-bit halves of a call are distinct draws (a check
  // that the layout does not hand one half to two elements; equal halves are 2^-16 rare).
  std::uint32_t r[64];
  alloy::rounding_bits<64>(s, 0, r);
  int equal_neighbours = 0;
  for (int j = 0; j + 1 < 64; ++j) equal_neighbours += (r[j] & 0xffffu) == (r[j + 1] & 0xffffu);
  CHECK(equal_neighbours == 0);
}

namespace {
/// FNV-1a, 32 bits, from its specification (offset basis 2166136261, prime 16777619).
std::uint32_t fnv1a32(std::string_view s) {
  std::uint64_t h = 2166136261u;
  for (unsigned char c : s) h = ((h ^ c) * 16777619u) & 0xffffffffu;
  return std::uint32_t(h);
}
}  // namespace

TEST_CASE("tensor_key_from_name is FNV-1a 32") {
  static_assert(alloy::tensor_key_from_name("") == 2166136261u, "usable at compile time");
  CHECK(alloy::tensor_key_from_name("") == 2166136261u);
  CHECK(alloy::tensor_key_from_name("a") == 0xe40c292cu);       // published FNV-1a test vector
  CHECK(alloy::tensor_key_from_name("foobar") == 0xbf9cf968u);  // published FNV-1a test vector
  CHECK(fnv1a32("a") == 0xe40c292cu);                           // the test's own FNV agrees
  const std::string_view names[] = {"layers.0.attn.q_proj.weight", "lm_head.weight", "t0", "t1",
                                    "\xff\x80 bytes above 127",    "embed"};
  for (auto n : names) {
    CAPTURE(n);
    CHECK(alloy::tensor_key_from_name(n) == fnv1a32(n));
  }
  CHECK(alloy::tensor_key_from_name("t0") != alloy::tensor_key_from_name("t1"));
}
