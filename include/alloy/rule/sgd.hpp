// SGD with momentum, dampening, Nesterov and weight decay, exactly as torch.optim.SGD.
#pragma once

#include <cstdint>

#include "../core/fpmath.hpp"
#include "rule_base.hpp"

ALLOY_NAMESPACE_BEGIN
namespace rule {

/// SGD in the form of torch.optim.SGD's documentation. For step t >= 1 of a tensor:
///
///     g <- -g if maximize
///     g <- g + weight_decay * p                     (coupled, L2-style weight decay)
///     if momentum != 0:
///         b <- g                                     if t == 1
///         b <- momentum * b + (1 - dampening) * g    otherwise
///         g <- g + momentum * b   if nesterov,  else  g <- b
///     p <- p - lr * g
///
/// With momentum == 0 the group keeps no state at all.
struct Sgd {
  static constexpr const char* kName = "Sgd";
  static constexpr int kMoments = 1;
  static constexpr bool kHasSecondMoment = false;

  struct Hyper {
    float lr = 1e-3f;  // first member: the CUDA executor hands out its device address
    float momentum = 0.f;
    float dampening = 0.f;
    float weight_decay = 0.f;
    bool nesterov = false;
    bool maximize = false;
  };

  static void validate(const Hyper& h, const std::string& group) {
    detail::require_at_least(h.lr, 0.f, "lr", group);
    detail::require_at_least(h.momentum, 0.f, "momentum", group);
    detail::require_finite(h.dampening, "dampening", group);
    detail::require_at_least(h.weight_decay, 0.f, "weight_decay", group);
    if (h.nesterov && (h.momentum <= 0.f || h.dampening != 0.f))
      alloy::detail::fail(group, ": nesterov requires momentum > 0 and dampening = 0 (momentum = ",
                          h.momentum, ", dampening = ", h.dampening, ")");
  }
  static int moments_used(const Hyper& h) { return h.momentum != 0.f ? 1 : 0; }

  struct Scalars {
    float lr, weight_decay, momentum, one_minus_dampening, grad_sign;
    bool first, nesterov, use_momentum;
  };

  ALLOY_HD static Scalars scalars(const Hyper& h, std::uint32_t t) {
    return Scalars{h.lr,
                   h.weight_decay,
                   h.momentum,
                   fp::sub(1.f, h.dampening),
                   h.maximize ? -1.f : 1.f,
                   t == 1,
                   h.nesterov,
                   h.momentum != 0.f};
  }

  /// One element. `Arith` (the executor's arithmetic, fp::Ieee or fp::Fast): SGD divides nothing
  /// and takes no square root, so it has no domain to require.
  template <class Arith = fp::Ieee>
  ALLOY_HD static void update(const Scalars& s, float& p, float g, float (&m)[kMoments],
                              Arith&& = Arith{}) {
    g = fp::mul(g, s.grad_sign);
    if (s.weight_decay != 0.f) g = fp::add(g, fp::mul(s.weight_decay, p));
    if (s.use_momentum) {
      m[0] = s.first ? g : fp::add(fp::mul(s.momentum, m[0]), fp::mul(s.one_minus_dampening, g));
      g = s.nesterov ? fp::add(g, fp::mul(s.momentum, m[0])) : m[0];
    }
    p = fp::sub(p, fp::mul(s.lr, g));
  }
};

}  // namespace rule
ALLOY_NAMESPACE_END
