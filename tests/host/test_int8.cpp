// state::Int8Blockwise on the host executor: codebook round trips, every step against an
// independent float64 reference (moments, block absmax, nearest codes, parameters), exact state
// accounting, and 8-bit vs fp32-state training (least squares, a small MLP).
#include <doctest/doctest.h>

#include <alloy/alloy.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {
using alloy::DType;
using alloy::Param;
using alloy::TensorView;
using alloy::state::QuantMap;
using Int8 = alloy::state::Int8Blockwise<>;

/// Brute force over the map (independent of the encoder's tables): the nearest code of r and
/// the distance from r to the nearest midpoint between two codes (where two answers are fair).
struct Nearest {
  int code;
  double to_midpoint;
};
Nearest nearest_code(const QuantMap& m, double r) {
  int best = 0;
  for (int c = 1; c < 256; ++c)
    if (std::fabs(m.code[c] - r) < std::fabs(m.code[best] - r)) best = c;
  double mid = 1e30;
  for (int c = 0; c + 1 < 256; ++c)
    mid = std::min(mid, std::fabs((double(m.code[c]) + m.code[c + 1]) / 2 - r));
  return {best, mid};
}

double gap_around(const QuantMap& m, double x) {
  for (int c = 0; c + 1 < 256; ++c)
    if (m.code[c] <= x && x <= m.code[c + 1]) return double(m.code[c + 1]) - m.code[c];
  return 0;
}

struct Tensors {
  std::vector<std::vector<float>> p, g;
  std::vector<Param> params(const std::string& prefix = "w") {
    std::vector<Param> out;
    for (std::size_t i = 0; i < p.size(); ++i)
      out.push_back({TensorView::of(p[i].data(), p[i].size(), alloy::Device::host(),
                                    prefix + std::to_string(i)),
                     TensorView::of(g[i].data(), g[i].size())});
    return out;
  }
};
Tensors make_tensors(const std::vector<std::uint64_t>& sizes, std::uint64_t seed) {
  Tensors t;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  for (auto s : sizes) {
    t.p.emplace_back(s);
    t.g.emplace_back(s);
    for (auto& x : t.p.back()) x = n(rng);
  }
  return t;
}
void fill_grads(Tensors& t, std::mt19937_64& rng, float scale) {
  std::normal_distribution<float> n(0.f, 1.f);
  for (auto& g : t.g)
    for (std::size_t i = 0; i < g.size(); ++i)
      g[i] = scale * (n(rng) + (i % 5 == 0 ? 0.5f : 0.f));  // noise plus a steady direction
}
}  // namespace

TEST_CASE("int8 codebooks: every code is its own fixed point; round trips within half a gap") {
  for (bool is_signed : {true, false}) {
    INFO((is_signed ? "signed" : "unsigned"));
    const alloy::state::QuantEncoder enc(alloy::state::dynamic_map(is_signed));
    const QuantMap& m = enc.map();
    for (int c = 0; c < 256; ++c) CHECK(enc.encode(m.code[c]) == c);
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> u(is_signed ? -1.0 : 0.0, 1.0), e(-7.5, 0.0);
    double worst = 0;  // error / half gap
    for (int i = 0; i < 400000; ++i) {
      // Half uniform in the range, half log-uniform magnitudes (the small decades).
      double x = i % 2 ? u(rng) : std::pow(10.0, e(rng)) * (is_signed && i % 4 == 0 ? -1 : 1);
      const float xf = float(x);
      const double back = m.code[enc.encode(xf)];
      const double lo = is_signed ? m.code[0] : 0.0;
      if (xf < lo) {  // beyond the codebook (signed: below -0.99297): the extreme code
        CHECK(back == lo);
        continue;
      }
      worst = std::max(worst, std::fabs(back - xf) / (gap_around(m, xf) / 2));
    }
    CHECK(worst <= 1.0);
  }
}

namespace {
/// Steps `opt` on `t` and checks each step against float64 math from the decoded state before it.
template <class Rule>
void lockstep(const std::vector<std::uint64_t>& sizes, const typename Rule::Hyper& h,
              std::uint64_t min_quantized, int steps) {
  Tensors t = make_tensors(sizes, 11);
  alloy::Options o;
  o.min_quantized_numel = min_quantized;
  o.host_threads = 2;
  alloy::Optimizer<Rule, Int8> opt(t.params(), h, o);
  const QuantMap maps[2] = {alloy::state::dynamic_map(true), alloy::state::dynamic_map(false)};
  std::mt19937_64 rng(5);
  long codes = 0, ambiguous = 0;
  double worst_p = 0, worst_absmax = 0, worst_small = 0;
  for (int s = 1; s <= steps; ++s) {
    fill_grads(t, rng, 1e-2f);
    std::vector<std::vector<float>> before_p = t.p;
    std::vector<std::vector<float>> before_m[2];
    for (std::size_t i = 0; i < sizes.size(); ++i)
      for (int k = 0; k < Rule::kMoments; ++k) before_m[k].push_back(opt.moment(i, k));
    opt.step();
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const std::uint64_t n = sizes[i];
      // New moments, and the magnitude of their terms: fp32 rounding is relative to the terms
      // (m = 0.9 m + 0.1 g may cancel).
      std::vector<double> mnew[2] = {std::vector<double>(n), std::vector<double>(n)};
      std::vector<double> scale[2] = {std::vector<double>(n), std::vector<double>(n)};
      for (std::uint64_t j = 0; j < n; ++j) {
        const double p0 = before_p[i][j], g = t.g[i][j];
        double pref, pterms;
        if constexpr (Rule::kMoments == 2) {  // AdamW
          const double m = h.beta1 * double(before_m[0][i][j]) + (1 - double(h.beta1)) * g;
          const double v = h.beta2 * double(before_m[1][i][j]) + (1 - double(h.beta2)) * g * g;
          const double bc1 = 1 - std::pow(double(h.beta1), s),
                       bc2 = 1 - std::pow(double(h.beta2), s);
          const double decayed = p0 * (1 - double(h.lr) * h.weight_decay);
          const double update = h.lr / bc1 * m / (std::sqrt(v) / std::sqrt(bc2) + h.eps);
          pref = decayed - update;
          // m may have cancelled: its rounding is relative to its terms (scale below).
          pterms = std::fabs(decayed) +
                   std::fabs(update) *
                       (std::fabs(h.beta1 * double(before_m[0][i][j])) + std::fabs(0.1 * g)) /
                       (std::fabs(m) + 1e-30);
          mnew[0][j] = m;
          mnew[1][j] = v;
          scale[0][j] = std::fabs(h.beta1 * double(before_m[0][i][j])) + std::fabs(0.1 * g);
          scale[1][j] = std::fabs(h.beta2 * double(before_m[1][i][j])) + std::fabs(0.01 * g * g);
        } else {  // Sgd with momentum, no weight decay
          const double b = s == 1 ? g : h.momentum * double(before_m[0][i][j]) + g;
          pref = p0 - h.lr * b;
          pterms = std::fabs(p0) + std::fabs(h.lr * b);
          mnew[0][j] = b;
          scale[0][j] = std::fabs(h.momentum * double(before_m[0][i][j])) + std::fabs(g);
        }
        worst_p = std::max(worst_p, std::fabs(t.p[i][j] - pref) / (pterms + 1e-30));
      }
      for (int k = 0; k < Rule::kMoments; ++k) {
        if (!opt.quantized(i)) {  // small tensor: fp32 state
          const auto got = opt.moment(i, k);
          for (std::uint64_t j = 0; j < n; ++j)
            worst_small = std::max(worst_small, std::fabs(got[j] - mnew[k][j]) / scale[k][j]);
          continue;
        }
        const auto q = opt.quantized_moment(i, k);
        REQUIRE(q.codes.size() == n);
        REQUIRE(q.absmax.size() == (n + 255) / 256);
        for (std::uint64_t b0 = 0; b0 < n; b0 += 256) {
          const std::uint64_t b1 = std::min<std::uint64_t>(n, b0 + 256);
          double amax = 0;
          for (std::uint64_t j = b0; j < b1; ++j) amax = std::max(amax, std::fabs(mnew[k][j]));
          const float got_amax = q.absmax[b0 / 256];
          worst_absmax = std::max(worst_absmax, std::fabs(got_amax - amax) / (amax + 1e-30));
          for (std::uint64_t j = b0; j < b1; ++j) {
            const Nearest want = nearest_code(maps[k], amax > 0 ? mnew[k][j] / amax : 0.0);
            ++codes;
            if (q.codes[j] != want.code) {
              ++ambiguous;
              CHECK_MESSAGE(want.to_midpoint <= 1e-5, "tensor ", i, " moment ", k, " element ", j,
                            ": code ", int(q.codes[j]), ", nearest ", want.code);
            }
          }
        }
      }
    }
  }
  INFO("codes " << codes << ", ambiguous " << ambiguous);
  // A few fp32 roundings, each within 2^-24 of the terms (1e-6 ~ 16 ulps).
  CHECK(worst_p <= 1e-6);
  CHECK(worst_absmax <= 1e-6);
  CHECK(worst_small <= 1e-6);
  CHECK(double(ambiguous) <= 1e-4 * double(codes));
}
}  // namespace

TEST_CASE("Int8Blockwise: every step equals float64 math from the stored state (AdamW, Sgd)") {
  const std::vector<std::uint64_t> sizes = {1, 3, 255, 256, 257, 4095, 4097, 70001};
  const alloy::rule::AdamW::Hyper adam{1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f, false};
  const alloy::rule::Sgd::Hyper sgd{1e-2f, 0.9f, 0.f, 0.f, false, false};
  SUBCASE("AdamW, every tensor quantized") { lockstep<alloy::rule::AdamW>(sizes, adam, 0, 20); }
  SUBCASE("AdamW, small tensors in fp32") { lockstep<alloy::rule::AdamW>(sizes, adam, 4096, 20); }
  SUBCASE("Sgd momentum") { lockstep<alloy::rule::Sgd>(sizes, sgd, 0, 20); }
}

TEST_CASE("Int8Blockwise: exact state accounting, threshold per whole tensor, codebook identity") {
  const std::vector<std::uint64_t> sizes = {1000, 4095, 4096, 4097, 65536, 100003};
  Tensors t = make_tensors(sizes, 3);
  alloy::Optimizer<alloy::rule::AdamW, Int8> opt(t.params());
  std::size_t want = sizes.size() * sizeof(std::uint32_t);  // step counts
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const bool q = sizes[i] >= 4096;
    CHECK(opt.quantized(i) == q);
    want += 2 * (q ? sizes[i] + (sizes[i] + 255) / 256 * 4 : sizes[i] * 4);
  }
  CHECK(opt.state_bytes() == want);
  // 2.03 bytes per parameter once the small tensors are a negligible share.
  CHECK(double(opt.state_bytes() - 4 * 4096 * 2 - 1000 * 8) / (4096 + 4097 + 65536 + 100003) <
        2.04);
  CHECK(Int8::kBlock == 256);
  CHECK(Int8::codebook_id(0) == Int8::codebook_id(0));
  CHECK(Int8::codebook_id(0) != Int8::codebook_id(1));
  CHECK(Int8::codebook_id(0).rfind("bnb-dynamic-signed-", 0) == 0);
  // Fresh state decodes to zero; a threshold of 0 quantizes everything.
  for (int k = 0; k < 2; ++k)
    for (float x : opt.moment(4, k)) CHECK(x == 0.f);
  // Names listed in fp32_state_names keep fp32 state whatever their size.
  alloy::Options named;
  named.fp32_state_names = {"w5", "embed"};
  Tensors t3 = make_tensors({65536, 100003}, 6);
  alloy::Optimizer<alloy::rule::AdamW, Int8> some(t3.params(), {}, named);  // names w0, w1
  CHECK(some.quantized(0));
  CHECK(some.quantized(1));
  Tensors t4 = make_tensors({65536}, 6);
  alloy::Optimizer<alloy::rule::AdamW, Int8> kept(t4.params("model.embed_tokens."), {}, named);
  CHECK_FALSE(kept.quantized(0));
  CHECK(kept.state_bytes() == 65536 * 8 + 4);
  alloy::Options o;
  o.min_quantized_numel = 0;
  Tensors t2 = make_tensors({1, 300}, 4);
  alloy::Optimizer<alloy::rule::AdamW, Int8> all(t2.params(), {}, o);
  CHECK(all.quantized(0));
  CHECK(all.state_bytes() == 2 * sizeof(std::uint32_t) + 2 * (1 + 4) + 2 * (300 + 2 * 4));
}

namespace {
/// Least squares with label noise (sigma 0.3): minimize |A x - y|^2 / n over x (dimension d),
/// minibatch gradients; the held-out loss approaches the noise floor sigma^2 = 0.09.
template <class State>
double least_squares(int steps) {
  const int d = 4096, n = 128;
  std::mt19937_64 rng(21);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> xstar(d), x(d, 0.f), g(d);
  for (auto& v : xstar) v = nd(rng);
  alloy::Optimizer<alloy::rule::AdamW, State> opt(
      {{TensorView::of(x.data(), d, alloy::Device::host(), "x"), TensorView::of(g.data(), d)}},
      {3e-2f, 0.9f, 0.999f, 1e-8f, 0.f, false});
  std::mt19937_64 data(99);
  std::vector<float> a(d);
  const auto loss_and_grad = [&](bool grad) {
    double loss = 0;
    if (grad) std::fill(g.begin(), g.end(), 0.f);
    for (int r = 0; r < n; ++r) {
      double ax = 0, ay = 0;
      for (int j = 0; j < d; ++j) {
        a[j] = nd(data) / std::sqrt(float(d));
        ax += double(a[j]) * x[j];
        ay += double(a[j]) * xstar[j];
      }
      const double e = ax - ay - 0.3 * nd(data);
      loss += e * e / n;
      if (grad)
        for (int j = 0; j < d; ++j) g[j] += float(2 * e * a[j] / n);
    }
    return loss;
  };
  for (int s = 0; s < steps; ++s) {
    loss_and_grad(true);
    opt.step();
  }
  data.seed(12345);  // held-out rows, the same for every state format
  return loss_and_grad(false);
}

/// A 2-layer MLP (tanh) regressing a fixed random teacher network with label noise (sigma 0.1),
/// full-batch gradients on 512 examples; the loss is measured on 512 held-out examples.
template <class State>
double mlp(int steps) {
  const int in = 32, hid = 256, out = 8, batch = 512;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  auto init = [&](int n, float s) {
    std::vector<float> v(n);
    for (auto& x : v) x = s * nd(rng);
    return v;
  };
  std::vector<float> w1 = init(in * hid, 1.f / std::sqrt(float(in))),
                     w2 = init(hid * out, 1.f / 16);
  std::vector<float> t1 = init(in * hid, 1.f / std::sqrt(float(in))),
                     t2 = init(hid * out, 1.f / 16);
  std::vector<float> xs = init(batch * in, 1.f), noise = init(batch * out, 0.1f);
  std::vector<float> test_xs = init(batch * in, 1.f), test_noise = init(batch * out, 0.1f);
  std::vector<float> g1(w1.size()), g2(w2.size());
  alloy::Optimizer<alloy::rule::AdamW, State> opt(
      {{TensorView::of(w1.data(), w1.size(), alloy::Device::host(), "w1"),
        TensorView::of(g1.data(), g1.size())},
       {TensorView::of(w2.data(), w2.size(), alloy::Device::host(), "w2"),
        TensorView::of(g2.data(), g2.size())}},
      {3e-3f, 0.9f, 0.999f, 1e-8f, 0.f, false});
  std::vector<float> h(hid), th(hid), y(out), ty(out), dh(hid);
  const auto run = [&](bool grad) {
    double loss = 0;
    if (grad) {
      std::fill(g1.begin(), g1.end(), 0.f);
      std::fill(g2.begin(), g2.end(), 0.f);
    }
    for (int b = 0; b < batch; ++b) {
      const float* xb = grad ? &xs[b * in] : &test_xs[b * in];
      const float* nb = grad ? &noise[b * out] : &test_noise[b * out];
      for (int j = 0; j < hid; ++j) {
        float s = 0, ts = 0;
        for (int i = 0; i < in; ++i) {
          s += xb[i] * w1[i * hid + j];
          ts += xb[i] * t1[i * hid + j];
        }
        h[j] = std::tanh(s);
        th[j] = std::tanh(ts);
      }
      for (int o = 0; o < out; ++o) {
        float s = 0, ts = 0;
        for (int j = 0; j < hid; ++j) {
          s += h[j] * w2[j * out + o];
          ts += th[j] * t2[j * out + o];
        }
        y[o] = s - ts - nb[o];
        loss += double(y[o]) * y[o] / batch;
      }
      if (!grad) continue;
      for (int j = 0; j < hid; ++j) {
        float d = 0;
        for (int o = 0; o < out; ++o) {
          g2[j * out + o] += 2 * y[o] * h[j] / batch;
          d += 2 * y[o] * w2[j * out + o] / batch;
        }
        dh[j] = d * (1 - h[j] * h[j]);
      }
      for (int i = 0; i < in; ++i)
        for (int j = 0; j < hid; ++j) g1[i * hid + j] += xb[i] * dh[j];
    }
    return loss;
  };
  for (int s = 0; s < steps; ++s) {
    run(true);
    opt.step();
  }
  return run(false);
}
}  // namespace

TEST_CASE("Int8Blockwise trains as well as fp32 state: least squares and an MLP (within 1%)") {
  const double ls32 = least_squares<alloy::state::Fp32>(300);
  const double ls8 = least_squares<Int8>(300);
  const double mlp32 = mlp<alloy::state::Fp32>(300);
  const double mlp8 = mlp<Int8>(300);
  MESSAGE("least squares held-out loss: fp32 " << ls32 << ", int8 " << ls8);
  MESSAGE("MLP loss: fp32 " << mlp32 << ", int8 " << mlp8);
  MESSAGE("initial: least squares " << least_squares<alloy::state::Fp32>(0) << ", MLP "
                                    << mlp<alloy::state::Fp32>(0));
  CHECK(ls32 < 0.4 * least_squares<alloy::state::Fp32>(0));  // both train
  CHECK(mlp32 < 0.5 * mlp<alloy::state::Fp32>(0));
  CHECK(std::fabs(ls8 - ls32) <= 0.01 * ls32);
  CHECK(std::fabs(mlp8 - mlp32) <= 0.01 * mlp32);
}

TEST_CASE("block absmax: the pairwise tree equals the in-order max, bit for bit") {
  // A tile's max |x| is taken in order or as a tree (exec::max_tree; the CUDA kernels choose by
  // parameter width, kStageWholeWarps): the same float for every mix of values, with NaN
  // (ignored unless all are) and signed zeros among them.
  namespace fp = alloy::fp;
  const auto bits = [](float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
  };
  const float special[] = {0.f, -0.f, NAN, INFINITY, 0x1p-149f, 0x1p-130f, 3.f, 0x1.fffffep127f};
  std::mt19937 rng(7);
  int nan_tiles = 0, zero_tiles = 0;
  for (int trial = 0; trial < 50000; ++trial) {
    const int mix = trial % 4;  // 0: no specials, 3: specials only
    float x[16], m[16], chain = 0.f;
    for (int j = 0; j < 16; ++j) {
      const bool sp = mix == 3 || (mix > 0 && rng() % (4 - mix) == 0);
      const float v =
          sp ? special[rng() % 8] : std::ldexp(float(rng() % 4096), int(rng() % 80) - 60);
      x[j] = rng() % 2 ? -v : v;
      m[j] = fp::abs(x[j]);
      chain = fp::max(chain, fp::abs(x[j]));
    }
    if (trial % 1000 == 999) std::fill(std::begin(x), std::end(x), NAN);  // all NaN: 0
    if (trial % 1000 == 998) std::fill(std::begin(x), std::end(x), -0.f);
    if (trial % 1000 >= 998) {
      chain = 0.f;
      for (int j = 0; j < 16; ++j) chain = fp::max(chain, fp::abs(x[j])), m[j] = fp::abs(x[j]);
    }
    const float tree = fp::max(alloy::exec::max_tree<16>(m), 0.f);
    nan_tiles += std::isnan(x[0]) && std::isnan(x[15]);
    zero_tiles += chain == 0.f;
    REQUIRE(bits(tree) == bits(chain));
    CHECK(bits(fp::max(alloy::exec::max_tree<4>(m + 4), 0.f)) ==
          bits(fp::max(fp::max(fp::max(fp::max(0.f, m[4]), m[5]), m[6]), m[7])));
  }
  CHECK(nan_tiles >= 50);
  CHECK(zero_tiles >= 50);
}
