// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), and the
// key layout every alloy random stream uses.
//
// A counter-based generator: output = bijection(counter, key), no state. Each element derives
// its own counter from (purpose, tensor key, element index, global step), so a stream never
// depends on chunking, launch shape, thread count, registration order or sharding.
#pragma once

#include <cstdint>
#include <string_view>

#include "macros.hpp"

ALLOY_NAMESPACE_BEGIN

struct Philox4x32 {
  std::uint32_t v[4];
};

namespace detail {
ALLOY_HD void mulhilo32(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
#if ALLOY_ON_DEVICE
  lo = a * b;
  hi = __umulhi(a, b);
#else
  const std::uint64_t p = std::uint64_t(a) * b;
  lo = std::uint32_t(p);
  hi = std::uint32_t(p >> 32);
#endif
}
}  // namespace detail

/// Philox4x32 with 10 rounds, as Random123's philox4x32_R(10, ctr, key).
ALLOY_HD Philox4x32 philox4x32_10(Philox4x32 ctr, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    detail::mulhilo32(M0, ctr.v[0], hi0, lo0);
    detail::mulhilo32(M1, ctr.v[2], hi1, lo1);
    ctr = Philox4x32{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return ctr;
}

/// What a random stream is for. Each value names a disjoint family of counters.
enum class Purpose : std::uint8_t {
  /// Stochastic rounding of a step's stores. With a state format that rounds its moments
  /// stochastically, one output per element: word 0 rounds the parameter, words 1 and 2 the
  /// first and second moment, word 3 is reserved. When only the parameter is rounded
  /// stochastically, 16 bits per element from one output per 8 elements (rounding_bits).
  rounding = 0,
  /// Stochastic rounding of the zeroth-order parameter passes that are not the update:
  /// rounding + 1 the perturbation, + 2 the flip, + 3 a restore.
  rounding_perturb = 1,
  rounding_flip = 2,
  rounding_restore = 3,
  /// Zeroth-order directions ([spsa]): purpose values 16 + direction index.
  spsa_direction = 16,
};

/// The per-element counter: (element index low 32 | element index high 24 bits + purpose 8 |
/// tensor key | global step), keyed by the 64-bit seed. Element indices are 64-bit global
/// offsets into the (unsharded) tensor, so a shard draws the same numbers as the whole.
struct RandomStream {
  std::uint32_t seed_lo, seed_hi, tensor_key, step;
  std::uint8_t purpose;

  ALLOY_HD Philox4x32 at(std::uint64_t element) const {
    const Philox4x32 ctr{
        {std::uint32_t(element),
         (std::uint32_t(element >> 32) & 0x00ffffffu) | (std::uint32_t(purpose) << 24), tensor_key,
         step}};
    return philox4x32_10(ctr, seed_lo, seed_hi);
  }
};

/// Stable 32-bit tensor key from a tensor's name (FNV-1a). Registration checks that keys are
/// unique; a caller may give an explicit key instead.
constexpr std::uint32_t tensor_key_from_name(std::string_view name) {
  std::uint32_t h = 2166136261u;
  for (char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return h;
}

/// 16 random bits per element (in the low half of r[j]) for stochastically rounding the
/// parameters of elements i0 .. i0 + N - 1 when nothing else of theirs is rounded: one Philox
/// call per 8 elements, element e taking half e & 1 of word (e & 7) / 2 of the output for index
/// e / 8. A function of the element index alone, like every stream: a tile that does not start
/// on a multiple of 8 draws the same bits (one call per element there).
template <int N>
ALLOY_HD void rounding_bits(const RandomStream& rng, std::uint64_t i0, std::uint32_t (&r)[N]) {
  if constexpr (N % 8 == 0) {
    if ((i0 & 7u) == 0) {
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
      for (int c = 0; c < N / 8; ++c) {
        const Philox4x32 w = rng.at((i0 >> 3) + std::uint64_t(c));
        for (int h = 0; h < 8; ++h) r[8 * c + h] = w.v[h >> 1] >> (16 * (h & 1));
      }
      return;
    }
  }
  for (int j = 0; j < N; ++j) {
    const std::uint64_t e = i0 + std::uint64_t(j);
    const Philox4x32 w = rng.at(e >> 3);
    const unsigned word = unsigned(e & 7u) >> 1;
    const std::uint32_t x = word == 0 ? w.v[0] : word == 1 ? w.v[1] : word == 2 ? w.v[2] : w.v[3];
    r[j] = x >> (16 * (e & 1u));
  }
}

ALLOY_NAMESPACE_END
