// Behaviour of the host executor beyond the element math (test_rules.cpp covers that):
// bitwise independence of thread count and registration order, absent gradients, frozen
// tensors, groups, set_lr, registration after steps, state/overhead accounting with a
// caller's allocator, and the global step.
//
// Most checks are bitwise comparisons between two optimizers that must agree exactly by the
// numerics contract (docs/numerics.md, DESIGN.md "Numerics contract"); each such test also has
// a control that must differ, so that agreement is not trivial.
#include <doctest/doctest.h>

#include <alloy/alloy.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using alloy::Device;
using alloy::DType;
using alloy::Param;
using alloy::Rounding;
using alloy::TensorView;
using AdamW = alloy::rule::AdamW;
using Sgd = alloy::rule::Sgd;

/// Memory of one test. Tensors get fresh N(0, 1) values (never zero); gradients are refreshed
/// by new_grads(). Two worlds built from one seed by the same calls hold the same values.
class World {
 public:
  explicit World(std::uint64_t seed, double grad_scale = 1.0)
      : rng_(seed), grad_scale_(grad_scale) {}
  TensorView tensor(DType t, std::size_t n, std::string name = {}) {
    blocks_.emplace_back(
        static_cast<std::byte*>(::operator new (n* alloy::dtype_size(t), std::align_val_t{64})));
    TensorView v(blocks_.back().get(), n, t, Device::host(), std::move(name));
    fill(v, 1.0);
    return v;
  }
  TensorView grad(DType t, std::size_t n) {
    TensorView v = tensor(t, n);
    fill(v, grad_scale_);
    grads_.push_back(v);
    return v;
  }
  void new_grads() {
    for (auto& g : grads_) fill(g, grad_scale_);
  }

 private:
  struct AlignedDelete {
    void operator()(std::byte* p) const { ::operator delete (p, std::align_val_t{64}); }
  };
  void fill(TensorView& v, double scale) {
    std::normal_distribution<double> nd(0.0, scale);
    for (std::uint64_t i = 0; i < v.numel; ++i) {
      float x = 0;
      while (x == 0 || std::fabs(x) < 1e-3 * scale) x = float(nd(rng_));
      std::byte* at = static_cast<std::byte*>(v.data) + i * alloy::dtype_size(v.dtype);
      if (v.dtype == DType::f32) {
        std::memcpy(at, &x, 4);
      } else {
        const std::uint16_t h = v.dtype == DType::bf16 ? alloy::to_bf16_nearest(x).bits
                                                       : alloy::to_fp16_nearest(x).bits;
        std::memcpy(at, &h, 2);
      }
    }
  }
  std::mt19937_64 rng_;
  double grad_scale_;
  std::vector<std::unique_ptr<std::byte, AlignedDelete>> blocks_;
  std::vector<TensorView> grads_;
};

std::vector<std::byte> bytes_of(const TensorView& v) {
  const auto* p = static_cast<const std::byte*>(v.data);
  return {p, p + v.bytes()};
}
void copy_into(const TensorView& dst, const TensorView& src) {
  REQUIRE(dst.bytes() == src.bytes());
  std::memcpy(dst.data, src.data, src.bytes());
}
std::vector<std::uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<std::uint32_t> out(v.size());
  std::memcpy(out.data(), v.data(), v.size() * 4);
  return out;
}
bool any_nonzero(const std::vector<float>& v) {
  return std::any_of(v.begin(), v.end(), [](float x) { return x != 0.f; });
}

/// Parameter bytes and moment bits of tensor t of an optimizer.
template <class Opt>
struct TensorResult {
  std::vector<std::byte> param;
  std::vector<std::vector<std::uint32_t>> moments;
  std::uint32_t count;
  bool operator==(const TensorResult&) const = default;
};
template <class Opt>
TensorResult<Opt> result_of(const Opt& opt, std::size_t t, const TensorView& param) {
  TensorResult<Opt> r{bytes_of(param), {}, opt.step_count(t)};
  for (int k = 0; k < Opt::kMoments; ++k) r.moments.push_back(bits_of(opt.moment(t, k)));
  return r;
}
template <class Opt>
std::size_t index_of(const Opt& opt, const std::string& name) {
  for (std::size_t t = 0; t < opt.num_tensors(); ++t)
    if (opt.name(t) == name) return t;
  FAIL("no tensor named " << name);
  return 0;
}

// Hyperparameters under which every term moves a bf16 parameter by more than an ulp.
const AdamW::Hyper kAdamW{0.02f, 0.9f, 0.99f, 1e-3f, 0.2f, false};
using StochasticState = alloy::state::Bf16<Rounding::stochastic>;

}  // namespace

// ------------------------------------------------------------------------------------------

TEST_CASE("executor: results are bitwise independent of the thread count") {
  const std::size_t sizes[] = {1, 3, 4095, 4097, 70000};
  // AdamW with stochastic state and parameter rounding (fp32 and bf16 tensors), and Sgd with
  // Nesterov momentum and fp32 state (fp32 parameters with fp32 and bf16 gradients).
  struct Run {
    std::vector<std::vector<std::byte>> params;
    std::vector<std::vector<std::uint32_t>> moments;
    std::vector<std::uint32_t> counts;
    std::size_t overhead;
  };
  const auto run_adamw = [&](unsigned threads) {
    World w(1001);
    std::vector<Param> ps;
    for (DType t : {DType::f32, DType::bf16})
      for (std::size_t n : sizes) {
        TensorView p = w.tensor(t, n, std::string(alloy::dtype_name(t)) + "/" + std::to_string(n));
        ps.push_back(Param{p, w.grad(t, n)});
      }
    alloy::Options o;
    o.host_threads = threads;
    o.seed = 0x1234'5678'9abcull;
    o.param_rounding = Rounding::stochastic;
    alloy::Optimizer<AdamW, StochasticState> opt(ps, kAdamW, o);
    for (int s = 0; s < 20; ++s) {
      w.new_grads();
      opt.step();
    }
    Run r;
    for (std::size_t t = 0; t < ps.size(); ++t) {
      r.params.push_back(bytes_of(ps[t].param));
      for (int k = 0; k < 2; ++k) r.moments.push_back(bits_of(opt.moment(t, k)));
      r.counts.push_back(opt.step_count(t));
    }
    r.overhead = opt.overhead_bytes();
    return r;
  };
  const auto run_sgd = [&](unsigned threads) {
    World w(2002);
    std::vector<Param> ps;
    for (DType g : {DType::f32, DType::bf16})
      for (std::size_t n : sizes) {
        TensorView p =
            w.tensor(DType::f32, n, std::string(alloy::dtype_name(g)) + "/" + std::to_string(n));
        ps.push_back(Param{p, w.grad(g, n)});
      }
    alloy::Options o;
    o.host_threads = threads;
    alloy::Optimizer<Sgd> opt(ps, Sgd::Hyper{0.05f, 0.9f, 0.f, 0.1f, true, false}, o);
    for (int s = 0; s < 20; ++s) {
      w.new_grads();
      opt.step();
    }
    Run r;
    for (std::size_t t = 0; t < ps.size(); ++t) {
      r.params.push_back(bytes_of(ps[t].param));
      r.moments.push_back(bits_of(opt.moment(t, 0)));
      r.counts.push_back(opt.step_count(t));
    }
    r.overhead = opt.overhead_bytes();
    return r;
  };

  const Run a1 = run_adamw(1), s1 = run_sgd(1);
  // The runs did something: every tensor moved, moments are non-zero, 20 steps counted.
  {
    World w0(1001);
    for (std::size_t t = 0; t < a1.params.size(); ++t) {
      const TensorView p0 = w0.tensor(t < 5 ? DType::f32 : DType::bf16, sizes[t % 5]);
      w0.grad(t < 5 ? DType::f32 : DType::bf16, sizes[t % 5]);
      CHECK(bytes_of(p0) != a1.params[t]);
      CHECK(a1.counts[t] == 20u);
    }
  }
  for (const auto& m : a1.moments)
    CHECK(std::any_of(m.begin(), m.end(), [](std::uint32_t b) { return b != 0; }));
  for (unsigned threads : {2u, 3u, 7u}) {
    CAPTURE(threads);
    const Run a = run_adamw(threads), s = run_sgd(threads);
    CHECK(a.overhead != a1.overhead);  // the work really was split differently
    for (std::size_t t = 0; t < a.params.size(); ++t) {
      CAPTURE(t);
      CHECK(a.params[t] == a1.params[t]);
      CHECK(s.params[t] == s1.params[t]);
      CHECK(s.moments[t] == s1.moments[t]);
    }
    CHECK(a.moments == a1.moments);
    CHECK(a.counts == a1.counts);
  }
}

TEST_CASE("executor: stochastic rounding is bitwise independent of registration order") {
  // The rounding stream of a tensor is keyed by its name, so the order (and grouping) of
  // registration never changes its bits. Renaming a tensor does change its own bits, and only
  // its own.
  static constexpr std::size_t sizes[] = {5, 4097, 300, 1, 2049, 64, 777, 3};
  struct Setup {
    World w{3003};
    std::vector<Param> ps;
    Setup() {
      for (std::size_t i = 0; i < std::size(sizes); ++i) {
        const DType t = i % 2 ? DType::bf16 : DType::f32;
        TensorView p = w.tensor(t, sizes[i], std::string("r") += std::to_string(i));
        ps.push_back(Param{p, w.grad(t, sizes[i])});
      }
    }
  };
  alloy::Options o;
  o.seed = 77;
  o.param_rounding = Rounding::stochastic;
  using Opt = alloy::Optimizer<AdamW, StochasticState>;
  const auto run = [&](Setup& s, std::vector<std::size_t> order, std::size_t split,
                       const char* rename) {
    std::vector<Param> first, second;
    for (std::size_t k = 0; k < order.size(); ++k) {
      Param p = s.ps[order[k]];
      if (rename && p.param.name == "r3") p.param.name = rename;
      (k < split ? first : second).push_back(p);
    }
    Opt opt(first, kAdamW, o);
    if (!second.empty()) opt.add_group({second, kAdamW, "rest"});
    for (int step = 0; step < 6; ++step) {
      s.w.new_grads();
      opt.step();
    }
    std::vector<TensorResult<Opt>> out;  // by original index
    for (std::size_t i = 0; i < s.ps.size(); ++i) {
      const std::string name = (rename && i == 3) ? rename : s.ps[i].param.name;
      out.push_back(result_of(opt, index_of(opt, name), s.ps[i].param));
    }
    return out;
  };
  std::vector<std::size_t> in_order(std::size(sizes));
  for (std::size_t i = 0; i < in_order.size(); ++i) in_order[i] = i;
  std::vector<std::size_t> reversed(in_order.rbegin(), in_order.rend());
  std::vector<std::size_t> shuffled = in_order;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(11));

  Setup s0, s1, s2, s3;
  const auto base = run(s0, in_order, in_order.size(), nullptr);
  const auto rev = run(s1, reversed, in_order.size(), nullptr);
  const auto shuf = run(s2, shuffled, 3, nullptr);  // and in two groups
  const auto renamed = run(s3, in_order, in_order.size(), "r3-renamed");
  for (std::size_t i = 0; i < base.size(); ++i) {
    CAPTURE(i);
    CHECK(rev[i] == base[i]);
    CHECK(shuf[i] == base[i]);
    if (i == 3) CHECK(renamed[i].param != base[i].param);  // its own stream changed
    else CHECK(renamed[i] == base[i]);                     // nobody else's
  }
}

TEST_CASE("executor: absent gradients skip a tensor; set_grad binds and unbinds") {
  using Opt = alloy::Optimizer<AdamW>;
  World w(4004), wf(4005);
  const TensorView a = w.tensor(DType::f32, 333, "a"), ga = w.grad(DType::f32, 333);
  const TensorView b = w.tensor(DType::f32, 1025, "b"), gb = w.grad(DType::f32, 1025);
  const TensorView c = w.tensor(DType::bf16, 17, "c"), gc = w.grad(DType::bf16, 17);
  // The reference: tensor b alone, in a fresh optimizer, stepped only when b has a gradient.
  const TensorView fb = wf.tensor(DType::f32, 1025, "b"), fgb = wf.tensor(DType::f32, 1025);
  copy_into(fb, b);
  Opt fresh({Param{fb, fgb}}, kAdamW);

  Opt opt({Param{a, ga}, Param{b, TensorView{}}, Param{c, gc}}, kAdamW);
  const auto b0 = bytes_of(b);
  for (int s = 0; s < 3; ++s) {
    w.new_grads();
    opt.step();
  }
  CHECK(bytes_of(b) == b0);
  CHECK(opt.step_count(0) == 3);
  CHECK(opt.step_count(1) == 0);
  CHECK(opt.step_count(2) == 3);
  CHECK_FALSE(any_nonzero(opt.moment(1, 0)));
  CHECK_FALSE(any_nonzero(opt.moment(1, 1)));

  opt.set_grad(1, gb);
  for (int s = 0; s < 4; ++s) {
    w.new_grads();
    copy_into(fgb, gb);
    opt.step();
    fresh.step();
  }
  CHECK(opt.step_count(0) == 7);
  CHECK(opt.step_count(1) == 4);
  // Bias correction used b's own count (4), not the optimizer's (7): bitwise the fresh run.
  CHECK(bytes_of(b) == bytes_of(fb));
  CHECK(bits_of(opt.moment(1, 0)) == bits_of(fresh.moment(0, 0)));
  CHECK(bits_of(opt.moment(1, 1)) == bits_of(fresh.moment(0, 1)));
  CHECK(bytes_of(b) != b0);

  opt.set_grad(1, TensorView{});
  const auto b7 = bytes_of(b);
  const auto m7 = bits_of(opt.moment(1, 0));
  const auto a7 = bytes_of(a);
  for (int s = 0; s < 2; ++s) {
    w.new_grads();
    opt.step();
  }
  CHECK(bytes_of(b) == b7);
  CHECK(bits_of(opt.moment(1, 0)) == m7);
  CHECK(opt.step_count(1) == 4);
  CHECK(opt.step_count(0) == 9);
  CHECK(bytes_of(a) != a7);
  CHECK(opt.global_step() == 9);
}

TEST_CASE("executor: a frozen tensor is untouched, keeps its state, and continues when unfrozen") {
  using Opt = alloy::Optimizer<AdamW>;
  World w(5005), wf(5006);
  const TensorView a = w.tensor(DType::f32, 4100, "a"), ga = w.grad(DType::f32, 4100);
  const TensorView b = w.tensor(DType::bf16, 999, "b"), gb = w.grad(DType::bf16, 999);
  const TensorView fb = wf.tensor(DType::bf16, 999, "b"), fgb = wf.tensor(DType::bf16, 999);
  copy_into(fb, b);
  Opt opt({Param{a, ga}, Param{b, gb}}, kAdamW);
  Opt fresh({Param{fb, fgb}}, kAdamW);  // b stepped only when not frozen
  const auto both = [&](int steps, bool b_steps) {
    for (int s = 0; s < steps; ++s) {
      w.new_grads();
      opt.step();
      if (b_steps) {
        copy_into(fgb, gb);
        fresh.step();
      }
    }
  };
  both(2, true);
  opt.set_frozen(1, true);
  const auto b2 = bytes_of(b);
  const auto m2 = bits_of(opt.moment(1, 0)), v2 = bits_of(opt.moment(1, 1));
  const auto a2 = bytes_of(a);
  both(3, false);
  CHECK(bytes_of(b) == b2);
  CHECK(bits_of(opt.moment(1, 0)) == m2);
  CHECK(bits_of(opt.moment(1, 1)) == v2);
  CHECK(opt.step_count(1) == 2);
  CHECK(opt.step_count(0) == 5);
  CHECK(bytes_of(a) != a2);
  opt.set_frozen(1, false);
  both(3, true);
  CHECK(opt.step_count(1) == 5);
  CHECK(bytes_of(b) == bytes_of(fb));
  CHECK(bits_of(opt.moment(1, 0)) == bits_of(fresh.moment(0, 0)));
  CHECK(bits_of(opt.moment(1, 1)) == bits_of(fresh.moment(0, 1)));
  CHECK(bytes_of(b) != b2);
}

TEST_CASE("executor: freezing one tensor never changes another tensor's random stream") {
  using Opt = alloy::Optimizer<AdamW, StochasticState>;
  alloy::Options o;
  o.seed = 99;
  o.param_rounding = Rounding::stochastic;
  World w1(6006), w2(6006);
  const auto setup = [](World& w) {
    return std::vector<Param>{Param{w.tensor(DType::bf16, 3000, "x"), w.grad(DType::bf16, 3000)},
                              Param{w.tensor(DType::bf16, 513, "y"), w.grad(DType::bf16, 513)}};
  };
  const auto p1 = setup(w1), p2 = setup(w2);
  Opt o1(p1, kAdamW, o), o2(p2, kAdamW, o);
  for (int s = 0; s < 8; ++s) {
    if (s == 2) o2.set_frozen(1, true);
    if (s == 5) o2.set_frozen(1, false);
    w1.new_grads();
    w2.new_grads();
    o1.step();
    o2.step();
  }
  CHECK(result_of(o1, 0, p1[0].param) == result_of(o2, 0, p2[0].param));
  CHECK(result_of(o1, 1, p1[1].param) != result_of(o2, 1, p2[1].param));
  CHECK(o2.step_count(1) == 5);
}

TEST_CASE("executor: groups with different hyperparameters match one optimizer per group") {
  // Stochastic state and parameter rounding: equal global steps make the streams equal too.
  alloy::Options o;
  o.seed = 5;
  o.param_rounding = Rounding::stochastic;
  const AdamW::Hyper h1{0.03f, 0.8f, 0.95f, 1e-4f, 0.3f, false};
  const AdamW::Hyper h2{0.01f, 0.95f, 0.999f, 1e-2f, 0.f, true};
  const auto setup = [](World& w) {
    return std::vector<Param>{Param{w.tensor(DType::bf16, 2500, "x1"), w.grad(DType::bf16, 2500)},
                              Param{w.tensor(DType::f32, 31, "x2"), w.grad(DType::f32, 31)},
                              Param{w.tensor(DType::f32, 5000, "y1"), w.grad(DType::bf16, 5000)}};
  };
  using Opt = alloy::Optimizer<AdamW, StochasticState>;
  World wa(7007), wb(7007);
  const auto pa = setup(wa), pb = setup(wb);
  Opt both(std::vector<Opt::Group>{{{pa[0], pa[1]}, h1, "one"}, {{pa[2]}, h2, "two"}}, o);
  Opt only1({pb[0], pb[1]}, h1, o), only2({pb[2]}, h2, o);
  for (int s = 0; s < 10; ++s) {
    wa.new_grads();
    wb.new_grads();
    both.step();
    only1.step();
    only2.step();
  }
  CHECK(result_of(both, 0, pa[0].param) == result_of(only1, 0, pb[0].param));
  CHECK(result_of(both, 1, pa[1].param) == result_of(only1, 1, pb[1].param));
  CHECK(result_of(both, 2, pa[2].param) == result_of(only2, 0, pb[2].param));
  CHECK(both.group_of(2) == 1);

  // Sgd: a group with momentum beside one without (which keeps no state).
  using SgdOpt = alloy::Optimizer<Sgd>;
  const Sgd::Hyper s1{0.05f, 0.9f, 0.1f, 0.01f, false, false},
      s2{0.1f, 0.f, 0.f, 0.2f, false, true};
  World wc(7008), wd(7008);
  const auto pc = setup(wc), pd = setup(wd);
  SgdOpt sboth(std::vector<SgdOpt::Group>{{{pc[0], pc[1]}, s1, "mom"}, {{pc[2]}, s2, "plain"}});
  SgdOpt sonly1({pd[0], pd[1]}, s1), sonly2({pd[2]}, s2);
  for (int s = 0; s < 10; ++s) {
    wc.new_grads();
    wd.new_grads();
    sboth.step();
    sonly1.step();
    sonly2.step();
  }
  CHECK(result_of(sboth, 0, pc[0].param) == result_of(sonly1, 0, pd[0].param));
  CHECK(result_of(sboth, 1, pc[1].param) == result_of(sonly1, 1, pd[1].param));
  CHECK(result_of(sboth, 2, pc[2].param) == result_of(sonly2, 0, pd[2].param));
  CHECK(any_nonzero(sboth.moment(0, 0)));
  CHECK_FALSE(any_nonzero(sboth.moment(2, 0)));  // no momentum: no state, reads as zeros
}

TEST_CASE("executor: set_lr changes the next step, and only its group") {
  using Opt = alloy::Optimizer<AdamW>;
  const AdamW::Hyper h{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
  const float lr2 = 0.035f;
  const auto setup = [](World& w) {
    return std::vector<Opt::Group>{
        {{Param{w.tensor(DType::f32, 3001, "p"), w.grad(DType::f32, 3001)}}, AdamW::Hyper{}, "g0"},
        {{Param{w.tensor(DType::f32, 257, "q"), w.grad(DType::f32, 257)}}, AdamW::Hyper{}, "g1"}};
  };
  World wa(8008, 1e-2), wb(8008, 1e-2), wc(8008, 1e-2);
  auto ga = setup(wa), gb = setup(wb), gc = setup(wc);
  for (auto* g : {&ga, &gb, &gc}) (*g)[0].hyper = (*g)[1].hyper = h;
  const TensorView pa = ga[0].params[0].param, ga_grad = ga[0].params[0].grad;
  Opt a(ga), b(gb), c(gc);  // a: set_lr; b: set_hyper with the same lr; c: lr unchanged
  for (int s = 0; s < 4; ++s) {
    for (World* w : {&wa, &wb, &wc}) w->new_grads();
    a.step();
    b.step();
    c.step();
  }
  // State before step 5, for the float64 check of that step.
  std::vector<double> p(pa.numel), m(pa.numel), v(pa.numel), g(pa.numel);
  {
    const auto m4 = a.moment(0, 0), v4 = a.moment(0, 1);
    for (std::size_t i = 0; i < p.size(); ++i) {
      p[i] = static_cast<const float*>(pa.data)[i];
      m[i] = m4[i];
      v[i] = v4[i];
    }
  }
  a.set_lr(0, lr2);
  AdamW::Hyper hb = h;
  hb.lr = lr2;
  b.set_hyper(0, hb);
  CHECK(a.hyper(0).lr == lr2);
  CHECK(a.hyper(1).lr == h.lr);
  for (World* w : {&wa, &wb, &wc}) w->new_grads();
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = static_cast<const float*>(ga_grad.data)[i];
  a.step();
  b.step();
  c.step();
  CHECK(result_of(a, 0, pa) == result_of(b, 0, gb[0].params[0].param));
  CHECK(result_of(a, 0, pa) != result_of(c, 0, gc[0].params[0].param));
  CHECK(result_of(a, 1, ga[1].params[0].param) == result_of(c, 1, gc[1].params[0].param));

  // Step 5 of group 0 in float64 (torch.optim.AdamW's equations, t = 5) with the new lr; the
  // same with the old lr must be far off. fp32 evaluation of ~10 operations: relative error
  // over the tensor a few 1e-7; bound 1e-6. The lr change moves the update by
  // (lr2 - lr) / lr2 ~ 70% of its size, ~1e-2 of |p|.
  const auto ref_step = [&](double lr) {
    const int t = 5;
    const double bc1 = 1 - std::pow(double(h.beta1), t), bc2 = 1 - std::pow(double(h.beta2), t);
    double num = 0, den = 0;
    for (std::size_t i = 0; i < p.size(); ++i) {
      const double mi = h.beta1 * m[i] + (1 - double(h.beta1)) * g[i];
      const double vi = h.beta2 * v[i] + (1 - double(h.beta2)) * g[i] * g[i];
      const double want = p[i] * (1 - lr * h.weight_decay) -
                          lr / bc1 * mi / (std::sqrt(vi) / std::sqrt(bc2) + h.eps);
      const double got = static_cast<const float*>(pa.data)[i];
      num += (got - want) * (got - want);
      den += want * want;
    }
    return std::sqrt(num / den);
  };
  CHECK(ref_step(lr2) <= 1e-6);
  CHECK(ref_step(h.lr) >= 1e-3);
}

TEST_CASE("executor: add_group after steps keeps old state; new tensors start from zero") {
  // Stochastic rounding throughout. The reference for the new tensors registers them with no
  // gradient for the first 3 steps, so its global steps (which key the streams) line up.
  alloy::Options o;
  o.seed = 0xfeed;
  o.param_rounding = Rounding::stochastic;
  using Opt = alloy::Optimizer<AdamW, StochasticState>;
  const AdamW::Hyper hy{0.015f, 0.85f, 0.98f, 1e-3f, 0.05f, false};
  struct Setup {
    World w;
    std::vector<Param> x, y;
    explicit Setup(std::uint64_t seed) : w(seed) {
      x = {Param{w.tensor(DType::bf16, 4097, "x0"), w.grad(DType::bf16, 4097)},
           Param{w.tensor(DType::f32, 100, "x1"), w.grad(DType::f32, 100)}};
      y = {Param{w.tensor(DType::bf16, 700, "y0"), w.grad(DType::bf16, 700)},
           Param{w.tensor(DType::f32, 9, "y1"), w.grad(DType::bf16, 9)}};
    }
  };
  Setup sa(9009), sb(9009), sc(9009);
  Opt a(sa.x, kAdamW, o);  // X; then Y added after 3 steps
  Opt b(sb.x, kAdamW, o);  // X only
  std::vector<Param> y_absent = sc.y;
  for (auto& p : y_absent) p.grad = TensorView{};
  Opt c(y_absent, hy, o);  // Y only, gradients bound from step 4 on
  const auto step_all = [&] {
    sa.w.new_grads();
    sb.w.new_grads();
    sc.w.new_grads();
    a.step();
    b.step();
    c.step();
  };
  for (int s = 0; s < 3; ++s) step_all();
  const std::size_t before = a.state_bytes();
  const auto y0 = bytes_of(sa.y[0].param);
  a.add_group({sa.y, hy, "late"});
  for (std::size_t t = 0; t < c.num_tensors(); ++t) c.set_grad(t, sc.y[t].grad);
  CHECK(a.num_tensors() == 4);
  CHECK(a.state_bytes() == before + (700 + 9) * 2 * 2 + 2 * 4);
  for (std::size_t t : {2u, 3u}) {
    CHECK(a.step_count(t) == 0);
    CHECK_FALSE(any_nonzero(a.moment(t, 0)));
    CHECK_FALSE(any_nonzero(a.moment(t, 1)));
  }
  CHECK(bytes_of(sa.y[0].param) == y0);
  CHECK(a.step_count(0) == 3);
  for (int s = 0; s < 3; ++s) step_all();
  for (std::size_t t = 0; t < 2; ++t) {
    CAPTURE(t);
    CHECK(result_of(a, t, sa.x[t].param) == result_of(b, t, sb.x[t].param));
    CHECK(result_of(a, t + 2, sa.y[t].param) == result_of(c, t, sc.y[t].param));
  }
  CHECK(a.step_count(0) == 6);
  CHECK(a.step_count(2) == 3);
  CHECK(bytes_of(sa.y[0].param) != y0);
}

// ------------------------------------------------------------------------------------------

namespace {
/// A caller's allocator that counts what it hands out and gets back.
class CountingAllocator final : public alloy::Allocator {
 public:
  void* allocate(std::size_t bytes, Device where) override {
    CHECK(where == Device::host());
    ++allocations;
    outstanding += bytes;
    void* p = ::operator new (bytes, std::align_val_t{256});
    return p;
  }
  void deallocate(void* p, std::size_t bytes, Device) noexcept override {
    ++deallocations;
    outstanding -= bytes;
    ::operator delete (p, std::align_val_t{256});
  }
  std::size_t outstanding = 0, allocations = 0, deallocations = 0;
};

/// Moments kept per element by a group.
template <class Rule>
int moments_of(const typename Rule::Hyper& h) {
  if constexpr (std::is_same_v<Rule, Sgd>) return h.momentum != 0.f ? 1 : 0;
  else return 2;
}

template <class Rule, class State>
void check_accounting(const char* what, std::vector<typename Rule::Hyper> hypers,
                      std::size_t bytes_per_param_first) {
  INFO(std::string(what));
  using Opt = alloy::Optimizer<Rule, State>;
  const std::size_t sizes[] = {1, 3, 4095, 4097, 777, 10};
  World w(1234);
  auto alloc = std::make_shared<CountingAllocator>();
  std::vector<Param> ps;
  const char* names[] = {"a", "b", "c", "d", "e", "f"};
  for (std::size_t i = 0; i < std::size(sizes); ++i)
    ps.push_back(Param{w.tensor(DType::f32, sizes[i], names[i]), w.grad(DType::f32, sizes[i])});
  alloy::Options o;
  o.allocator = alloc;
  {
    Opt opt({ps[0], ps[1], ps[2]}, hypers[0], o);
    // The formula: numel x moments kept x bytes per stored moment + 4 bytes per tensor count.
    const auto expected = [&](std::size_t upto_group) {
      std::size_t b = 0, t = 0;
      for (std::size_t g = 0; g <= upto_group; ++g)
        for (std::size_t i = 3 * g; i < 3 * g + 3; ++i, ++t)
          b += sizes[i] * std::size_t(moments_of<Rule>(hypers[g])) * sizeof(typename State::Stored);
      return b + 4 * t;
    };
    CHECK(opt.state_bytes() == expected(0));
    CHECK(opt.state_bytes() == (1 + 3 + 4095) * bytes_per_param_first + 4 * 3);
    CHECK(alloc->outstanding == opt.state_bytes() - 4 * opt.num_tensors());
    opt.add_group({{ps[3], ps[4], ps[5]}, hypers[1], {}});
    CHECK(opt.state_bytes() == expected(1));
    CHECK(alloc->outstanding == opt.state_bytes() - 4 * opt.num_tensors());
    const std::size_t overhead = opt.overhead_bytes();
    CHECK(overhead > 0u);
    for (int s = 0; s < 3; ++s) {
      w.new_grads();
      opt.step();
    }
    CHECK(opt.overhead_bytes() == overhead);
    CHECK(opt.state_bytes() == expected(1));
    CHECK(alloc->outstanding == opt.state_bytes() - 4 * opt.num_tensors());
  }
  CHECK(alloc->outstanding == 0u);
  CHECK(alloc->allocations == alloc->deallocations);
}
}  // namespace

TEST_CASE("executor: state_bytes is exact and matches what the allocator handed out") {
  const Sgd::Hyper mom{0.01f, 0.9f, 0.f, 0.f, false, false},
      plain{0.01f, 0.f, 0.f, 0.f, false, false};
  check_accounting<AdamW, alloy::state::Fp32>("AdamW / Fp32: 8 B per parameter", {kAdamW, kAdamW},
                                              8);
  check_accounting<AdamW, alloy::state::Bf16<>>("AdamW / Bf16: 4 B per parameter", {kAdamW, kAdamW},
                                                4);
  check_accounting<AdamW, StochasticState>("AdamW / Bf16 stochastic: 4 B", {kAdamW, kAdamW}, 4);
  check_accounting<Sgd, alloy::state::Fp32>("Sgd momentum / Fp32: 4 B per parameter", {mom, mom},
                                            4);
  check_accounting<Sgd, alloy::state::Bf16<>>("Sgd momentum / Bf16: 2 B per parameter", {mom, mom},
                                              2);
  check_accounting<Sgd, alloy::state::Fp32>("Sgd without momentum: 0 B per parameter",
                                            {plain, plain}, 0);
  check_accounting<Sgd, alloy::state::Fp32>("Sgd: a group without momentum after one with",
                                            {mom, plain}, 4);
  check_accounting<Sgd, alloy::state::Fp32>("Sgd: a group with momentum after one without",
                                            {plain, mom}, 0);
}

TEST_CASE("executor: global_step counts step() calls, frozen or absent tensors or not") {
  World w(4321);
  const TensorView a = w.tensor(DType::f32, 50, "a"), ga = w.grad(DType::f32, 50);
  const TensorView b = w.tensor(DType::f32, 60, "b"), gb = w.grad(DType::f32, 60);
  alloy::Optimizer<AdamW> opt({Param{a, ga}, Param{b, gb}}, kAdamW);
  CHECK(opt.global_step() == 0u);
  for (int s = 1; s <= 5; ++s) {
    opt.step();
    CHECK(opt.global_step() == std::uint64_t(s));
  }
  opt.set_frozen(0, true);
  opt.step();
  opt.set_grad(1, TensorView{});
  opt.step();
  CHECK(opt.global_step() == 7u);
  CHECK(opt.step_count(0) == 5u);
  CHECK(opt.step_count(1) == 6u);
}
