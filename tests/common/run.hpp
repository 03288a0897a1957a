// Running an alloy optimizer over a Problem on any executor, beside the float64 reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>

#include "problem.hpp"

namespace testing {

/// Memory policy of the host executor: views point straight at the problem's host bytes.
struct HostMemory {
  static constexpr alloy::Device device = alloy::Device::host();
  alloy::TensorView view(HostTensor& t, std::string name) {
    return alloy::TensorView(t.data(), t.numel, t.dtype, device, std::move(name));
  }
  void upload(HostTensor&) {}
  void download(HostTensor&) {}
  void sync() {}
};

/// Builds the optimizer's parameter list over `prob` in memory `mem`.
template <class Mem>
std::vector<alloy::Param> params_of(Problem& prob, Mem& mem) {
  std::vector<alloy::Param> ps;
  for (std::size_t i = 0; i < prob.sizes.size(); ++i)
    ps.push_back(alloy::Param{mem.view(prob.p[i], prob.name(i)),
                              mem.view(prob.g[i], prob.name(i) + ".grad")});
  return ps;
}

struct RunResult {
  double max_rel_error = 0;    // ||out - ref|| / ||ref|| of all parameters
  double max_rel_error_m = 0;  // the same for the first moment (0 if the rule keeps none)
  bool finite = true;
};

/// `steps` steps of opt over prob (gradients regenerated every step) and of the reference.
template <class Opt, class Mem, class RefHyper>
RunResult run_vs_reference(Opt& opt, Problem& prob, Mem& mem, Reference<RefHyper>& ref, int steps,
                           double grad_scale) {
  for (int s = 1; s <= steps; ++s) {
    prob.make_grads(s, grad_scale);
    for (auto& g : prob.g) mem.upload(g);
    opt.step();
    for (std::size_t i = 0; i < prob.sizes.size(); ++i)
      ref.step(prob, i, std::uint32_t(s), opt.key(i));
  }
  mem.sync();
  // Relative error over the whole tensor list (a one-element tensor that drifted near zero
  // would make a per-tensor ratio meaningless).
  RunResult r;
  std::vector<double> out, want, mout, mwant;
  for (std::size_t i = 0; i < prob.sizes.size(); ++i) {
    mem.download(prob.p[i]);
    for (double x : prob.p[i].values()) out.push_back(x);
    want.insert(want.end(), ref.p[i].begin(), ref.p[i].end());
    const auto m = opt.moment(i, 0);
    mout.insert(mout.end(), m.begin(), m.end());
    mwant.insert(mwant.end(), ref.m[i].begin(), ref.m[i].end());
  }
  for (double x : out) r.finite = r.finite && std::isfinite(x);
  r.max_rel_error = ref::rel_error(out, want);
  bool any = false;
  for (double x : mwant) any = any || x != 0;
  if (any) r.max_rel_error_m = ref::rel_error(mout, mwant);
  return r;
}

}  // namespace testing

namespace testing {

/// One unit in the last place of |x| stored as `t` (fp32, bf16: 8 significant bits, fp16: 11
/// with subnormals below 2^-14).
inline double ulp(double x, ref::Store t) {
  const int bits = t == ref::Store::f32 ? 24 : t == ref::Store::f16_nearest ? 11 : 8;
  const int min_exp = t == ref::Store::f16_nearest ? -14 : -126;
  int e;
  std::frexp(x == 0 ? 0x1p-149 : x, &e);
  return std::ldexp(1.0, std::max(e, min_exp + 1) - bits);
}

struct LockstepResult {
  double worst = 0;            // max over elements of |out - ref| / allowed  (must be <= 1)
  double differing = 0;        // fraction of bf16/fp16 stores that differ from the reference at all
  std::uint64_t compared = 0;  // bf16/fp16 stores compared
  bool finite = true;
};

/// Every step starts the reference from the optimizer's own stored state, so each step is
/// checked from identical inputs, with no accumulation: every stored value (parameters and
/// moments) must be within one ulp of its format of the float64 result, plus the fp32
/// arithmetic's own error: at most ten rounded operations, each within half an fp32 ulp, so
/// 16 fp32 ulps (2^-20) of the magnitude of the terms that produced the value (ref::Scales);
/// it matters only under cancellation, where the result is far below its terms.
template <class Opt, class Mem, class RefHyper>
LockstepResult run_lockstep(Opt& opt, Problem& prob, Mem& mem, Reference<RefHyper>& ref, int steps,
                            double grad_scale) {
  LockstepResult r;
  std::uint64_t compared = 0, differ = 0;
  auto compare = [&](const std::vector<double>& out, const std::vector<double>& want,
                     const std::vector<double>& scale, ref::Store t) {
    for (std::size_t j = 0; j < out.size(); ++j) {
      r.finite = r.finite && std::isfinite(out[j]);
      const double d = std::fabs(out[j] - want[j]);
      const double allowed = ulp(want[j], t) + 0x1p-20 * scale[j];
      r.worst = std::max(r.worst, d / allowed);
      if (t != ref::Store::f32) {  // fp32 stores differ from float64 almost always, harmlessly
        ++compared;
        differ += d != 0;
      }
    }
  };
  for (int s = 1; s <= steps; ++s) {
    mem.sync();
    for (std::size_t i = 0; i < prob.sizes.size(); ++i) {
      mem.download(prob.p[i]);
      ref.p[i] = prob.p[i].values();
      const auto m = opt.moment(i, 0);
      ref.m[i].assign(m.begin(), m.end());
      if constexpr (Opt::kMoments > 1) {
        const auto v = opt.moment(i, 1);
        ref.v[i].assign(v.begin(), v.end());
      }
    }
    prob.make_grads(s, grad_scale);
    for (auto& g : prob.g) mem.upload(g);
    opt.step();
    mem.sync();
    for (std::size_t i = 0; i < prob.sizes.size(); ++i) {
      ref::Scales scale;
      ref.step(prob, i, std::uint32_t(s), opt.key(i), &scale);
      mem.download(prob.p[i]);
      compare(prob.p[i].values(), ref.p[i], scale.p,
              ref.pstore == ref::Store::bf16_stochastic ? ref::Store::bf16_nearest : ref.pstore);
      const ref::Store st =
          ref.sstore == ref::Store::bf16_stochastic ? ref::Store::bf16_nearest : ref.sstore;
      const auto m = opt.moment(i, 0);  // zeros, like the reference, when no moment is kept
      compare(std::vector<double>(m.begin(), m.end()), ref.m[i], scale.m, st);
      if constexpr (Opt::kMoments > 1) {
        const auto v = opt.moment(i, 1);
        compare(std::vector<double>(v.begin(), v.end()), ref.v[i], scale.v, st);
      }
    }
  }
  r.differing = compared ? double(differ) / double(compared) : 0;
  r.compared = compared;
  return r;
}

}  // namespace testing
