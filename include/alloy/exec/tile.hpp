// The element pipeline of one step, shared by the host and CUDA executors:
// load a tile of N consecutive elements (param, gradient, moments) -> the rule's element math in
// fp32 -> store moments through the state format and the parameter in its dtype.
#pragma once

#include <cstdint>
#include <cstring>

#include "../core/dtype.hpp"
#include "../core/philox.hpp"
#include "table.hpp"

ALLOY_NAMESPACE_BEGIN
namespace exec {

// Evict-first (__ldcs/__stcs) hints on the 16-byte accesses. Off: plain loads and stores ran
// 1.5-2.5% faster on every sm_90 row of bench/tune.sh (bench/results/tune_sm90.txt, "nohint").
#ifndef ALLOY_STREAMING_CACHE_HINTS
#define ALLOY_STREAMING_CACHE_HINTS 0
#endif

namespace io {
/// N consecutive elements from src. `Vector`: src is 16-byte aligned and N * sizeof(T) is a
/// multiple of 16, so the device issues 16-byte loads.
template <bool Vector, class T, int N>
ALLOY_HD void load(const T* ALLOY_RESTRICT src, T (&dst)[N]) {
#if ALLOY_ON_DEVICE
  if constexpr (Vector && (N * sizeof(T)) % 16 == 0) {
#pragma unroll
    for (int v = 0; v < int(N * sizeof(T) / 16); ++v) {
#if ALLOY_STREAMING_CACHE_HINTS
      const uint4 x = __ldcs(reinterpret_cast<const uint4*>(src) + v);
#else
      const uint4 x = reinterpret_cast<const uint4*>(src)[v];
#endif
      std::memcpy(&dst[v * 16 / sizeof(T)], &x, 16);
    }
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) dst[j] = src[j];
  }
#else
  for (int j = 0; j < N; ++j) dst[j] = src[j];
#endif
}

template <bool Vector, class T, int N>
ALLOY_HD void store(T* ALLOY_RESTRICT dst, const T (&src)[N]) {
#if ALLOY_ON_DEVICE
  if constexpr (Vector && (N * sizeof(T)) % 16 == 0) {
#pragma unroll
    for (int v = 0; v < int(N * sizeof(T) / 16); ++v) {
      uint4 x;
      std::memcpy(&x, &src[v * 16 / sizeof(T)], 16);
#if ALLOY_STREAMING_CACHE_HINTS
      __stcs(reinterpret_cast<uint4*>(dst) + v, x);
#else
      reinterpret_cast<uint4*>(dst)[v] = x;
#endif
    }
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) dst[j] = src[j];
  }
#else
  for (int j = 0; j < N; ++j) dst[j] = src[j];
#endif
}
}  // namespace io

/// Per-launch values every element of a pass sees: the seed and global step that key its random
/// streams, which purpose its stochastic rounding draws from, and the pass's own arguments.
template <class Args>
struct Pass {
  std::uint64_t seed;
  std::uint32_t step;
  std::uint8_t rounding_purpose;
  Args args;

  ALLOY_HD RandomStream rounding(std::uint32_t key) const {
    return RandomStream{std::uint32_t(seed), std::uint32_t(seed >> 32), key, step,
                        rounding_purpose};
  }
};

struct NoArgs {};

/// The element math of one composition for one (param dtype, grad dtype, param rounding), with
/// the gradient read from the gradient tensor (grad::Backprop).
template <class Rule, class Format, class PT, class GT, Rounding PR>
struct ElementStep {
  static constexpr int K = Rule::kMoments;
  using S = typename Format::Stored;
  using Scalars = typename Rule::Scalars;
  using Args = NoArgs;
  static constexpr bool kRandom =
      Format::kRandom || (PR == Rounding::stochastic && sizeof(PT) == 2);

  /// Tile width of the CUDA executor: 16 bytes of the narrowest stored type, so that every
  /// array of the tile (parameter, gradient, each moment) moves in whole 16-byte vectors.
  static constexpr std::size_t kNarrowest = sizeof(PT) < sizeof(GT)
                                                ? (sizeof(PT) < sizeof(S) ? sizeof(PT) : sizeof(S))
                                                : (sizeof(GT) < sizeof(S) ? sizeof(GT) : sizeof(S));
  static constexpr int kVec = int(16 / kNarrowest);

  /// A tile of N consecutive elements starting at index i0 of one tensor.
  template <int N>
  struct Tile {
    PT p[N];
    GT g[N];
    S m[K > 0 ? K : 1][N];

    /// VecP / VecG: param / gradient of this tensor are 16-byte aligned (and i0 % N == 0).
    /// State is allocated 256-byte aligned, so it is vector-loaded whenever i0 % N == 0.
    template <bool VecP, bool VecG, bool VecS>
    ALLOY_HD void load(const TensorEntry& t, std::uint64_t i0) {
      io::load<VecP>(static_cast<const PT*>(t.param) + i0, p);
      io::load<VecG>(static_cast<const GT*>(t.grad) + i0, g);
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
      for (int k = 0; k < K; ++k)
        if (k < int(t.moments)) io::load<VecS>(static_cast<const S*>(t.state[k]) + i0, m[k]);
    }

    template <bool VecP, bool VecS>
    ALLOY_HD void update_store(const TensorEntry& t, std::uint64_t i0, const Scalars& s,
                               const Pass<Args>& pass) {
      const RandomStream rng = pass.rounding(t.key);
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
      for (int j = 0; j < N; ++j) {
        float pj = to_float(p[j]);
        float mj[K > 0 ? K : 1];
        for (int k = 0; k < K; ++k) mj[k] = k < int(t.moments) ? Format::decode(m[k][j]) : 0.f;
        Rule::update(s, pj, to_float(g[j]), mj);
        Philox4x32 r{{0, 0, 0, 0}};
        if constexpr (kRandom) r = rng.at(i0 + std::uint64_t(j));
        p[j] = round_to<PT, PR>(pj, r.v[0]);
        for (int k = 0; k < K; ++k) m[k][j] = Format::encode(mj[k], r.v[1 + k]);
      }
      io::store<VecP>(static_cast<PT*>(t.param) + i0, p);
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
      for (int k = 0; k < K; ++k)
        if (k < int(t.moments)) io::store<VecS>(static_cast<S*>(t.state[k]) + i0, m[k]);
    }
  };
};

/// Elements [begin, end) of tensor t one at a time, for any element kind E (tensor edges, and
/// the host executor's tails).
template <class E>
ALLOY_HD void scalar_range(const TensorEntry& t, std::uint64_t begin, std::uint64_t end,
                           const typename E::Scalars& s, const Pass<typename E::Args>& pass) {
  for (std::uint64_t i = begin; i < end; ++i) {
    typename E::template Tile<1> tile;
    tile.template load<false, false, false>(t, i);
    tile.template update_store<false, false>(t, i, s, pass);
  }
}

/// Names ElementStep for the executors: Kind<Rule, Format>::type<PT, GT, PR>.
template <class Rule, class Format>
struct BackpropKind {
  template <class PT, class GT, Rounding PR>
  using type = ElementStep<Rule, Format, PT, GT, PR>;
};

/// The rounding stream of one tensor in one step.
ALLOY_HD RandomStream rounding_stream(std::uint64_t seed, std::uint32_t step, std::uint32_t key) {
  return RandomStream{std::uint32_t(seed), std::uint32_t(seed >> 32), key, step,
                      std::uint8_t(Purpose::rounding)};
}

}  // namespace exec
ALLOY_NAMESPACE_END
