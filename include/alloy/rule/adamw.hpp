// AdamW, exactly as torch.optim.AdamW defines it (amsgrad=False).
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/fpmath.hpp"
#include "rule_base.hpp"

ALLOY_NAMESPACE_BEGIN
namespace rule {

/// AdamW (Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019), in the form
/// of torch.optim.AdamW's documentation. For step t >= 1 of a tensor (its own step count):
///
///     g      <- -g if maximize
///     p      <- p * (1 - lr * weight_decay)                  (decoupled weight decay)
///     m      <- beta1 * m + (1 - beta1) * g
///     v      <- beta2 * v + (1 - beta2) * g^2
///     p      <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
///
/// eps sits outside the square root, as in torch. Moments start at zero. amsgrad is not
/// supported (it would be a third moment; no open issue asks for it).
struct AdamW {
  static constexpr const char* kName = "AdamW";
  static constexpr int kMoments = 2;
  static constexpr bool kHasSecondMoment = true;
  static constexpr bool kMomentsFixed = true;  // moments_used is 2 for every group

  struct Hyper {
    float lr = 1e-3f;  // first member: the CUDA executor hands out its device address
    float beta1 = 0.9f;
    float beta2 = 0.999f;
    float eps = 1e-8f;
    float weight_decay = 1e-2f;
    bool maximize = false;
  };

  static void validate(const Hyper& h, const std::string& group) {
    detail::require_at_least(h.lr, 0.f, "lr", group);
    detail::require_in(h.beta1, 0.f, 1.f, "beta1", group);
    detail::require_in(h.beta2, 0.f, 1.f, "beta2", group);
    detail::require_at_least(h.eps, 0.f, "eps", group);
    detail::require_at_least(h.weight_decay, 0.f, "weight_decay", group);
  }
  /// Moments this group keeps per element (state is allocated for these only).
  static int moments_used(const Hyper&) { return 2; }

  /// Per-tensor values of one step, computed once per tensor (on the device for CUDA).
  struct Scalars {
    float step_size;  // lr / (1 - beta1^t)
    float decay;      // 1 - lr * weight_decay
    float sqrt_bc2;   // sqrt(1 - beta2^t)
    float eps;
    float beta1;
    float m_gain;  // 1 - beta1, negated when maximizing (exact: negation commutes with rounding)
    float beta2, one_minus_beta2;
  };

  /// t >= 1. Bias corrections in double, with beta^t by binary exponentiation: the same bits
  /// on host and device.
  ALLOY_HD static Scalars scalars(const Hyper& h, std::uint32_t t) {
    const double bc1 = fp::dsub(1.0, fp::powi(double(h.beta1), t));
    const double bc2 = fp::dsub(1.0, fp::powi(double(h.beta2), t));
    Scalars s;
    s.step_size = float(double(h.lr) / bc1);
    s.decay = fp::sub(1.f, fp::mul(h.lr, h.weight_decay));
    s.sqrt_bc2 = float(std::sqrt(bc2));
    s.eps = h.eps;
    s.beta1 = h.beta1;
    s.m_gain = h.maximize ? -fp::sub(1.f, h.beta1) : fp::sub(1.f, h.beta1);
    s.beta2 = h.beta2;
    s.one_minus_beta2 = fp::sub(1.f, h.beta2);
    return s;
  }

  /// One element. m[0] is the first moment, m[1] the second. `ar`: the arithmetic of the
  /// divisions and the square root (fp::Ieee, or the CUDA executor's fp::Fast under the domain
  /// stated in update_given_second).
  template <class Arith = fp::Ieee>
  ALLOY_HD static void update(const Scalars& s, float& p, float g, float (&m)[kMoments],
                              Arith&& ar = Arith{}) {
    m[1] = second_moment(s, m[1], fp::mul(g, g));
    update_given_second(s, p, g, m[0], m[1], ar);
  }

  /// The second-moment EMA, v <- beta2 v + (1 - beta2) g2, where g2 is g^2 of one element or a
  /// block statistic (share::PerBlock: the block's mean of g^2, Adam-mini).
  ALLOY_HD static float second_moment(const Scalars& s, float v, float g2) {
    return fp::add(fp::mul(s.beta2, v), fp::mul(s.one_minus_beta2, g2));
  }
  /// The first moment and the parameter, given this step's (already updated) second moment v.
  /// (1 - beta1) g with g negated when maximizing is m_gain * g, bit for bit.
  template <class Arith = fp::Ieee>
  ALLOY_HD static void update_given_second(const Scalars& s, float& p, float g, float& m, float v,
                                           Arith&& ar = Arith{}) {
    m = fp::add(fp::mul(s.beta1, m), fp::mul(s.m_gain, g));
    // fp::Fast's domain: v in [2^-60, 2^60] puts sqrt(v) in [2^-30, 2^30]; with sqrt_bc2 in
    // [2^-20, 1] and eps in [0, 2^20] the denominator lies in [2^-30, 2^51]; with |m| in
    // [2^-60, 2^60] both divisions are inside fp::Fast's (the square root's too).
    ar.require(fp::in_range(v, 0x1p-60f, 0x1p60f) & fp::in_range_abs(m, 0x1p-60f, 0x1p60f) &
               fp::in_range(s.sqrt_bc2, 0x1p-20f, 1.f) & (s.eps <= 0x1p20f));
    const float denom = fp::add(ar.div(ar.sqrt(v), s.sqrt_bc2), s.eps);
    p = fp::sub(fp::mul(p, s.decay), fp::mul(s.step_size, ar.div(m, denom)));
  }
};

}  // namespace rule
ALLOY_NAMESPACE_END
