// Independent float64 references of the update rules, written from torch.optim's documented
// equations, with rounding to the stored dtype at exactly the stores where alloy rounds.
// Nothing here calls alloy's element math; it uses alloy only for the Philox stream (tested on
// its own against Random123's known answers) so stochastic rounding draws the same bits.
#pragma once

#include <cfenv>
#include <cmath>
#include <cstdint>
#include <vector>

namespace ref {

enum class Store { f32, bf16_nearest, bf16_stochastic, f16_nearest };

/// Rounds a double to a float with `bits` significant bits (ties to even), with `min_exp` the
/// exponent of the smallest normal (gradual underflow below it) and `max_finite` the largest.
inline double round_bits(double x, int bits, int min_exp, double max_finite) {
  if (x == 0 || !std::isfinite(x)) return x;
  int e;
  std::frexp(x, &e);                                   // x = f * 2^e, f in [0.5, 1)
  const int q = std::max(e, min_exp + 1) - bits;       // quantum exponent
  const double r = std::nearbyint(std::ldexp(x, -q));  // default FE_TONEAREST: ties to even
  const double y = std::ldexp(r, q);
  if (std::fabs(y) > max_finite) return std::copysign(INFINITY, x);
  return y;
}

inline double to_bf16(double x) { return round_bits(x, 8, -126, 3.3895313892515355e38); }
inline double to_f16(double x) {
  // fp16 overflows to inf from 65520 on (half an ulp above 65504).
  if (std::fabs(x) >= 65520.0) return std::copysign(INFINITY, x);
  return round_bits(x, 11, -14, 65504.0);
}
inline double to_f32(double x) { return double(float(x)); }

/// Stochastic rounding to bf16 with 16 random bits: up (away from zero) with probability equal
/// to the position of |x| between its two bf16 neighbours.
inline double to_bf16_stochastic(double x, std::uint32_t random) {
  x = to_f32(x);  // the code rounds the fp32 result it computed
  if (x == 0 || !std::isfinite(x)) return x;
  int e;
  std::frexp(x, &e);
  const int q = std::max(e, -125) - 8;
  const double scaled = std::fabs(std::ldexp(x, -q));
  const double lo = std::floor(scaled);
  const double frac = scaled - lo;
  const double u = double(random & 0xffffu) / 65536.0;
  const double mag = (u >= 1.0 - frac) ? lo + 1 : lo;
  return std::copysign(std::ldexp(mag, q), x);
}

inline double store(double x, Store s, std::uint32_t random) {
  switch (s) {
    case Store::f32:
      return to_f32(x);
    case Store::bf16_nearest:
      return to_bf16(x);
    case Store::bf16_stochastic:
      return to_bf16_stochastic(x, random);
    case Store::f16_nearest:
      return to_f16(x);
  }
  return x;
}

struct Words {
  std::uint32_t w[4];
};

struct AdamW {
  double lr, beta1, beta2, eps, weight_decay;
  bool maximize = false;
};
struct Sgd {
  double lr, momentum, dampening, weight_decay;
  bool nesterov = false, maximize = false;
};

/// The update uses the new moments before they are rounded to the state format (as torch's
/// fused kernels do, and as [int8] requires); only the stores round.
///
/// torch.optim.AdamW, one step t >= 1, element by element. `random(i)` gives the rounding
/// words of element i (word 0: parameter, 1: first moment, 2: second moment).
/// `scale`, if given, receives for each stored value the sum of the magnitudes of the terms
/// whose last addition produced it: fp32 arithmetic is accurate to a few ulps of that (and not
/// of the result, under cancellation).
struct Scales {
  std::vector<double> p, m, v;
};

template <class Random>
void step(const AdamW& h, int t, std::vector<double>& p, std::vector<double>& m,
          std::vector<double>& v, const std::vector<double>& g, Store ps, Store ss, Random&& random,
          Scales* scale = nullptr) {
  const double bc1 = 1 - std::pow(h.beta1, t), bc2 = 1 - std::pow(h.beta2, t);
  if (scale)
    *scale = Scales{std::vector<double>(p.size()), std::vector<double>(p.size()),
                    std::vector<double>(p.size())};
  for (std::size_t i = 0; i < p.size(); ++i) {
    const Words r = random(i);
    const double gi = h.maximize ? -g[i] : g[i];
    const double decayed = p[i] * (1 - h.lr * h.weight_decay);
    const double mi = h.beta1 * m[i] + (1 - h.beta1) * gi;
    const double vi = h.beta2 * v[i] + (1 - h.beta2) * gi * gi;
    const double denom = std::sqrt(vi) / std::sqrt(bc2) + h.eps;
    const double u = (h.lr / bc1) * mi / denom;
    if (scale) {
      scale->m[i] = std::fabs(h.beta1 * m[i]) + std::fabs((1 - h.beta1) * gi);
      // m's error (after cancellation, a few ulps of its terms) carries into u.
      scale->p[i] = std::fabs(decayed) + std::fabs(u) + (h.lr / bc1) * scale->m[i] / denom;
      scale->v[i] = std::fabs(h.beta2 * v[i]) + (1 - h.beta2) * gi * gi;
    }
    p[i] = store(decayed - u, ps, r.w[0]);
    m[i] = store(mi, ss, r.w[1]);
    v[i] = store(vi, ss, r.w[2]);
  }
}

/// torch.optim.SGD, one step t >= 1 (m is the momentum buffer, unused without momentum).
template <class Random>
void step(const Sgd& h, int t, std::vector<double>& p, std::vector<double>& m,
          std::vector<double>& v, const std::vector<double>& g, Store ps, Store ss, Random&& random,
          Scales* scale = nullptr) {
  if (scale)
    *scale = Scales{std::vector<double>(p.size()), std::vector<double>(p.size()),
                    std::vector<double>(v.size())};
  for (std::size_t i = 0; i < p.size(); ++i) {
    const Words r = random(i);
    double d = h.maximize ? -g[i] : g[i];
    double sd = std::fabs(d);  // magnitude of the terms behind d
    if (h.weight_decay != 0) {
      d += h.weight_decay * p[i];
      sd += std::fabs(h.weight_decay * p[i]);
    }
    if (h.momentum != 0) {
      const double b = t == 1 ? d : h.momentum * m[i] + (1 - h.dampening) * d;
      const double sb =
          t == 1 ? sd : std::fabs(h.momentum * m[i]) + std::fabs(1 - h.dampening) * sd;
      if (scale) scale->m[i] = sb;
      sd = h.nesterov ? sd + h.momentum * sb : sb;
      d = h.nesterov ? d + h.momentum * b : b;  // the update uses the unrounded buffer
      m[i] = store(b, ss, r.w[1]);
    }
    if (scale) scale->p[i] = std::fabs(p[i]) + h.lr * sd;
    p[i] = store(p[i] - h.lr * d, ps, r.w[0]);
  }
}

inline double rel_error(const std::vector<double>& out, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const double d = out[i] - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  return std::sqrt(num) / std::sqrt(den);
}

}  // namespace ref
