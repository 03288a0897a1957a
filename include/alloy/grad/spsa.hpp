// Gradient source Spsa: zeroth-order gradients from two loss evaluations along a random direction
// (SPSA; MeZO, Malladi et al. 2023). Sgd + Spsa is MeZO; AdamW + Spsa is ZO-Adam.
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/dtype.hpp"
#include "../core/fpmath.hpp"
#include "../core/philox.hpp"
#include "../exec/tile.hpp"

ALLOY_NAMESPACE_BEGIN
namespace grad {
enum class Direction : std::uint8_t { gaussian, rademacher };
}
namespace exec {
template <class Rule, class Format, grad::Direction D, int kMax>
struct ZoUpdateKind;
}
namespace grad {

/// Spsa<D>: the gradient of a step is  g = (1/n) sum_k c_k z_k,  c_k = (L(p + eps z_k) -
/// L(p - eps z_k)) / (2 eps), with directions z_k ~ N(0, I) (or Rademacher) regenerated from
/// Philox keyed by (seed, step, direction, tensor key, element index): never stored. The passes
/// over the parameters (perturb, flip, restore + update + next perturbation) are launches of the
/// optimizer; the caller evaluates the losses (see Optimizer::zo_step and docs/policies/spsa.md).
template <Direction D = Direction::gaussian>
struct Spsa {
  static constexpr const char* kName = D == Direction::gaussian ? "Spsa" : "SpsaRademacher";
  static constexpr bool kIsGradPolicy = true;
  static constexpr bool kReadsGradient = false;
  static constexpr bool kZerothOrder = true;
  static constexpr Direction kDirection = D;
  /// At most this many directions per step (their scalars travel by value in a launch).
  static constexpr int kMaxDirections = 8;
  /// The element kind of the update pass (exec/tile.hpp): a one-direction kernel (MeZO) and one
  /// for up to kMaxDirections; the first sizes the grid.
  template <class Rule, class Format>
  using UpdateKind = exec::ZoUpdateKind<Rule, Format, D, 1>;
  template <class Rule, class Format>
  using MultiUpdateKind = exec::ZoUpdateKind<Rule, Format, D, kMaxDirections>;
};

/// The random stream of direction k in step `step`.
ALLOY_HD RandomStream direction_stream(std::uint64_t seed, std::uint32_t step, std::uint32_t key,
                                       int k) {
  return RandomStream{std::uint32_t(seed), std::uint32_t(seed >> 32), key, step,
                      std::uint8_t(int(Purpose::spsa_direction) + k)};
}

/// Two standard normal values from two 32-bit words: Box-Muller on their top 23 bits,
/// (r cos a, r sin a), r = sqrt(-2 ln u1). Each word's top 23 bits become the mantissa of
/// x in [1, 2) (one integer instruction); u1 = 2 - x in [2^-23, 1] and the angle a = 2 pi (x - 1.5)
/// in [-pi, pi) are exact in float, so |z| <= sqrt(2 ln 2^23) = 5.65. The device uses the hardware
/// log2, sqrt and sin/cos (one instruction each), the host <cmath>: the words are bitwise the same
/// on both, the values agree to a few ulps away from r = 0 (docs/numerics.md). -2 ln u1 enters
/// the square root by magnitude: the hardware log2 of a u1 just below 1 may come out a hair above
/// 0.
ALLOY_HD void gaussian_pair(std::uint32_t w0, std::uint32_t w1, float& z0, float& z1) {
  constexpr float kMinus2Ln2 = -1.38629436111989061883f;  // -2 ln 2: -2 ln u = -2 ln2 log2 u
  const float u1 = 2.f - bits_float(0x3f800000u | (w0 >> 9));
  const float a = (bits_float(0x3f800000u | (w1 >> 9)) - 1.5f) * 6.28318530717958647692f;
#if ALLOY_ON_DEVICE
  float lg, rad;
  asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(lg) : "f"(u1));  // u1 >= 2^-23: never subnormal
  asm("sqrt.approx.ftz.f32 %0, %1;" : "=f"(rad) : "f"(fabsf(lg * kMinus2Ln2)));
  float sn, cs;
  __sincosf(a, &sn, &cs);
#else
  const float rad = std::sqrt(std::fabs(std::log2(u1) * kMinus2Ln2));
  const float sn = std::sin(a), cs = std::cos(a);
#endif
  z0 = rad * cs;
  z1 = rad * sn;
}

/// The directions of elements 4q .. 4q+3: one Philox call, all four words used (Gaussian: two
/// pairs; Rademacher: the low bit of each word).
template <Direction D>
ALLOY_HD void direction_quad(const RandomStream& rs, std::uint64_t q, float (&z)[4]) {
  const Philox4x32 r = rs.at(q);
  if constexpr (D == Direction::rademacher) {
    for (int j = 0; j < 4; ++j) z[j] = (r.v[j] & 1u) ? 1.f : -1.f;
  } else {
    gaussian_pair(r.v[0], r.v[1], z[0], z[1]);
    gaussian_pair(r.v[2], r.v[3], z[2], z[3]);
  }
}

/// The direction of one element.
template <Direction D>
ALLOY_HD float direction(const RandomStream& rs, std::uint64_t element) {
  float z[4];
  direction_quad<D>(rs, element >> 2, z);
  const unsigned lane = unsigned(element & 3u);  // selects, not a run-time index (registers)
  return lane == 0 ? z[0] : lane == 1 ? z[1] : lane == 2 ? z[2] : z[3];
}

}  // namespace grad

namespace exec {

/// Arguments of a parameter pass that moves p along a direction: p <- p + scale * eps * z_k.
struct ZoPerturbArgs {
  float eps;
  float scale;  // +1 perturb, -2 flip, +1 or -1 restore
  int direction;
};

/// Arguments of the update pass: restore (p += restore * eps * z_last), the rule's update with
/// g = (1/n) sum_k c_k z_k, then optionally fold the next step's perturbation (+eps z').
template <int kMax>
struct ZoUpdateArgs {
  float eps;
  float restore;           // 0: parameters are at p; 1: they are at p - eps z_{n-1} (after a flip)
  int directions;          // n
  int fold;                // add +eps z_0 of step + 1
  const float* c;          // n projected gradients in executor memory, or null
  const float* loss_plus;  // else n losses L(p + eps z_k) and n losses L(p - eps z_k), or null
  const float* loss_minus;
  float c_value[kMax];  // else these, by value
};

template <int kMax>
ALLOY_HD float projected_gradient(const ZoUpdateArgs<kMax>& a, int k) {
  if (a.c) return a.c[k];
  if (a.loss_plus) return fp::div(fp::sub(a.loss_plus[k], a.loss_minus[k]), fp::mul(2.f, a.eps));
  return a.c_value[k];
}

/// A pass that moves parameters along direction k of step `pass.step` (no rule, no state).
template <grad::Direction D, class PT, Rounding PR>
struct ZoPerturb {
  using Scalars = char;  // unused: no per-tensor scalars
  using Args = ZoPerturbArgs;
  /// Tiles in flight per thread on sm_90: the pass is bound by arithmetic (Philox and
  /// Box-Muller per element), so fewer registers per thread and more warps pay off.
  static constexpr int kUnrollSm90 = 2;
  static constexpr bool kRandom = PR == Rounding::stochastic && sizeof(PT) == 2;
  static constexpr int kVec = int(16 / sizeof(PT));

  template <int N>
  struct Tile {
    PT p[N];
    template <bool VecP, bool, bool>
    ALLOY_HD void load(const TensorEntry& t, std::uint64_t i0) {
      io::load<VecP>(static_cast<const PT*>(t.param) + i0, p);
    }
    template <bool VecP, bool>
    ALLOY_HD void update_store(const TensorEntry& t, std::uint64_t i0, const Scalars&,
                               const Pass<Args>& pass) {
      const RandomStream zs =
          grad::direction_stream(pass.seed, pass.step, t.key, pass.args.direction);
      const RandomStream rng = pass.rounding(t.key);
      const float se = fp::mul(pass.args.scale, pass.args.eps);
      float z[N];
      directions<N>(zs, i0, z);
      std::uint32_t r[N] = {};
      if constexpr (kRandom) rounding_bits<N>(rng, i0, r);
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
      for (int j = 0; j < N; ++j) {
        const float pj = fp::add(to_float(p[j]), fp::mul(se, z[j]));
        p[j] = round_to<PT, PR>(pj, r[j]);
      }
      io::store<VecP>(static_cast<PT*>(t.param) + i0, p);
    }
  };

  /// z of elements i0 .. i0 + N - 1 (one Philox call per 4 when i0 is a multiple of 4).
  template <int N>
  ALLOY_HD static void directions(const RandomStream& zs, std::uint64_t i0, float (&z)[N]) {
    if constexpr (N % 4 == 0) {
      if ((i0 & 3u) == 0) {
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
        for (int j = 0; j < N; j += 4) {
          float q[4];
          grad::direction_quad<D>(zs, (i0 >> 2) + std::uint64_t(j / 4), q);
          for (int h = 0; h < 4; ++h) z[j + h] = q[h];
        }
        return;
      }
    }
    for (int j = 0; j < N; ++j) z[j] = grad::direction<D>(zs, i0 + std::uint64_t(j));
  }
};

/// The update pass of a zeroth-order step: restore, rule, fold; moments through the format.
template <class Rule, class Format, grad::Direction D, int kMax, class PT, Rounding PR>
struct ZoUpdate {
  static constexpr int K = Rule::kMoments;
  using S = typename Format::Stored;
  using Scalars = typename Rule::Scalars;
  using Args = ZoUpdateArgs<kMax>;
  static constexpr bool kRandom =
      Format::kRandom || (PR == Rounding::stochastic && sizeof(PT) == 2);
  static constexpr bool kBlockState = !Format::kElementwise;
  static constexpr int kVec =
      kBlockState ? kBlockTile<PT> : int(16 / (sizeof(PT) < sizeof(S) ? sizeof(PT) : sizeof(S)));
  static constexpr int kUnrollSm90 = kVec == 4 ? 2 : 1;  // bound by arithmetic, as ZoPerturb
  using Perturb = ZoPerturb<D, PT, PR>;

  using State = Format;
  using Small = ZoUpdate<Rule, typename SmallFormat<Format>::type, D, kMax, PT, PR>;

  template <int N>
  struct Tile {
    PT p[N];
    Moments<Format, K, N, Format::kElementwise, kAllMoments<Rule>> m;

    template <bool VecP, bool, bool VecS>
    ALLOY_HD void load(const TensorEntry& t, std::uint64_t i0, int valid = N) {
      io::load_tile<VecP>(static_cast<const PT*>(t.param) + i0, p, valid);
      m.template load<VecS>(t, i0, valid);
    }

    template <bool VecP, bool VecS, class Group = Solo>
    ALLOY_HD void update_store(const TensorEntry& t, std::uint64_t i0, const Scalars& s,
                               const Pass<Args>& pass, int valid = N) {
      const Args& a = pass.args;
      const RandomStream rng = pass.rounding(t.key);
      float pj[N], g[N], z[N];
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
      for (int j = 0; j < N; ++j) {
        pj[j] = to_float(p[j]);
        g[j] = 0.f;
      }
      if constexpr (kMax == 1) {  // MeZO: one direction, every index a constant
        Perturb::template directions<N>(grad::direction_stream(pass.seed, pass.step, t.key, 0), i0,
                                        z);
        const float c0 = projected_gradient(a, 0), re = fp::mul(a.restore, a.eps);
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
        for (int j = 0; j < N; ++j) {
          g[j] = fp::mul(c0, z[j]);
          pj[j] = fp::add(pj[j], fp::mul(re, z[j]));
        }
      } else {
        const float inv_n = fp::div(1.f, float(a.directions));
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
        for (int k = 0; k < kMax; ++k) {  // unrolled: c_value[k] stays out of local memory
          if (k >= a.directions) break;
          Perturb::template directions<N>(grad::direction_stream(pass.seed, pass.step, t.key, k),
                                          i0, z);
          const float ck = fp::mul(projected_gradient(a, k), inv_n);
          const float re = k == a.directions - 1 ? fp::mul(a.restore, a.eps) : 0.f;
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
          for (int j = 0; j < N; ++j) {
            g[j] = fp::add(g[j], fp::mul(ck, z[j]));
            pj[j] = fp::add(pj[j], fp::mul(re, z[j]));
          }
        }
      }
      if (a.fold) {
        Perturb::template directions<N>(grad::direction_stream(pass.seed, pass.step + 1, t.key, 0),
                                        i0, z);
      }
      const exec::TileRounding<N, kRandom, Format::kRandom> rounding(rng, i0);
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
      for (int j = 0; j < N; ++j) {
        float mj[K > 0 ? K : 1];
        for (int k = 0; k < K; ++k) mj[k] = m.kept(t, k) ? m.get(k, j, pass.tables) : 0.f;
        Rule::update(s, pj[j], g[j], mj);
        if (a.fold) pj[j] = fp::add(pj[j], fp::mul(a.eps, z[j]));
        const Philox4x32 r = rounding.words(j);
        p[j] = round_to<PT, PR>(pj[j], r.v[0]);
        for (int k = 0; k < K; ++k) m.put(k, j, mj[k], r.v[1 + k]);
      }
      io::store_tile<VecP>(static_cast<PT*>(t.param) + i0, p, valid);
      m.template store<VecS, Group>(t, i0, pass.tables, valid);
    }
  };
};

template <grad::Direction D>
struct ZoPerturbKind {
  template <class PT, class GT, Rounding PR>
  using type = ZoPerturb<D, PT, PR>;
};
template <class Rule, class Format, grad::Direction D, int kMax>
struct ZoUpdateKind {
  template <class PT, class GT, Rounding PR>
  using type = ZoUpdate<Rule, Format, D, kMax, PT, PR>;
};

}  // namespace exec
ALLOY_NAMESPACE_END
