// share::PerBlock (Adam-mini) on the host executor: 100 steps against an independent float64
// Adam-mini on a Llama-like tensor list partitioned by share::adam_mini_partition; one-element
// blocks equal AdamW bit for bit; thread-count independence; state accounting; validation;
// 8-bit first moments with shared second moments.
#include <doctest/doctest.h>

#include <alloy/alloy.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace {
using alloy::Param;
using alloy::TensorView;
using alloy::share::PerBlock;

struct Tensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> p, g;
  std::uint64_t block = 0;  // from the partition helper
  bool decay = true;
  std::uint64_t numel() const { return p.size(); }
};

/// A two-layer Llama-like model, dim 32, 4 heads, 2 key/value heads (GQA), vocab 50.
std::vector<Tensor> llama_like(std::uint64_t seed) {
  const std::int64_t d = 32, kv = 16, ff = 48, vocab = 50;
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> spec = {
      {"model.embed_tokens.weight", {vocab, d}}};
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    spec.push_back({p + "self_attn.q_proj.weight", {d, d}});
    spec.push_back({p + "self_attn.k_proj.weight", {kv, d}});
    spec.push_back({p + "self_attn.v_proj.weight", {kv, d}});
    spec.push_back({p + "self_attn.o_proj.weight", {d, d}});
    spec.push_back({p + "mlp.gate_proj.weight", {ff, d}});
    spec.push_back({p + "mlp.up_proj.weight", {ff, d}});
    spec.push_back({p + "mlp.down_proj.weight", {d, ff}});
    spec.push_back({p + "input_layernorm.weight", {d}});
    spec.push_back({p + "post_attention_layernorm.weight", {d}});
  }
  spec.push_back({"model.norm.weight", {d}});
  spec.push_back({"lm_head.weight", {vocab, d}});
  spec.push_back({"lm_head.bias", {vocab}});
  const alloy::share::AdamMiniConfig cfg{d, 4, 2, false};
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.5f);
  std::vector<Tensor> out;
  for (auto& [name, shape] : spec) {
    Tensor t{name, shape, {}, {}, 0, true};
    std::uint64_t n = 1;
    for (auto x : shape) n *= std::uint64_t(x);
    t.p.resize(n);
    t.g.resize(n);
    for (auto& x : t.p) x = nd(rng);
    const auto a = alloy::share::adam_mini_partition(name, shape, cfg);
    t.block = a.spec.block_size;
    t.decay = a.weight_decay;
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<Param> params_of(std::vector<Tensor>& ts, bool with_blocks = true) {
  std::vector<Param> ps;
  for (auto& t : ts) {
    Param p{TensorView::of(t.p.data(), t.numel(), alloy::Device::host(), t.name, t.shape),
            TensorView::of(t.g.data(), t.numel())};
    if (with_blocks) p.share_block = t.block;
    ps.push_back(p);
  }
  return ps;
}

void fill_grads(std::vector<Tensor>& ts, std::mt19937_64& rng) {
  std::normal_distribution<float> nd(0.f, 1e-2f);
  for (auto& t : ts)
    for (std::size_t i = 0; i < t.g.size(); ++i)
      t.g[i] = nd(rng) * (1.f + float(i % 7));  // uneven magnitudes within a block
}

alloy::Options adam_mini_options(unsigned threads = 2) {
  alloy::Options o;
  o.no_decay = std::vector<std::string>{"norm", "ln", "bias"};  // the official mask
  o.host_threads = threads;
  return o;
}

/// Adam-mini in float64, written from the paper's Algorithm 1 and the official step order.
struct Reference {
  std::vector<std::vector<double>> p, m, v;  // v: one per block
  Reference(const std::vector<Tensor>& ts) {
    for (const auto& t : ts) {
      p.emplace_back(t.p.begin(), t.p.end());
      m.emplace_back(t.numel(), 0.0);
      v.emplace_back(t.numel() / t.block, 0.0);
    }
  }
  void step(const std::vector<Tensor>& ts, int t, const alloy::rule::AdamW::Hyper& h) {
    const double bc1 = 1 - std::pow(double(h.beta1), t), bc2 = 1 - std::pow(double(h.beta2), t);
    for (std::size_t k = 0; k < ts.size(); ++k) {
      const auto& T = ts[k];
      const double wd = T.decay ? h.weight_decay : 0.0;
      for (std::uint64_t b = 0; b < v[k].size(); ++b) {
        double s = 0;
        for (std::uint64_t i = b * T.block; i < (b + 1) * T.block; ++i)
          s += double(T.g[i]) * T.g[i];
        v[k][b] = h.beta2 * v[k][b] + (1 - double(h.beta2)) * s / double(T.block);
      }
      for (std::uint64_t i = 0; i < T.numel(); ++i) {
        p[k][i] *= 1 - double(h.lr) * wd;
        m[k][i] = h.beta1 * m[k][i] + (1 - double(h.beta1)) * T.g[i];
        const double denom = std::sqrt(v[k][i / T.block]) / std::sqrt(bc2) + h.eps;
        p[k][i] -= h.lr / bc1 * m[k][i] / denom;
      }
    }
  }
};
}  // namespace

TEST_CASE("PerBlock: 100 steps of Adam-mini against float64 on a Llama-like model (GQA)") {
  auto ts = llama_like(1);
  // The helper's partition: heads of 256 for q/k (2 for GQA k), rows elsewhere, whole norms.
  CHECK(ts[1].block == 256);
  CHECK(ts[2].block == 256);
  CHECK(ts[2].numel() / ts[2].block == 2);
  CHECK(ts[3].block == 32);
  CHECK(ts[8].block == 32);
  CHECK(ts.back().block == 1);
  const alloy::rule::AdamW::Hyper h{1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f, false};
  alloy::Optimizer<alloy::rule::AdamW, alloy::state::Fp32, PerBlock> opt(params_of(ts), h,
                                                                         adam_mini_options());
  Reference ref(ts);
  const auto p0 = ref.p;
  std::mt19937_64 rng(7);
  double worst = 0, worst_v = 0;
  for (int s = 1; s <= 100; ++s) {
    fill_grads(ts, rng);
    opt.step();
    ref.step(ts, s, h);
  }
  for (std::size_t k = 0; k < ts.size(); ++k) {
    const auto v = opt.moment(k, 1);
    for (std::uint64_t i = 0; i < ts[k].numel(); ++i) {
      // fp32 rounding is relative to the parameter's scale along the way (it starts at |p0|
      // and moves by at most lr per step): the absolute error over that scale.
      const double scale = std::fabs(p0[k][i]) + 100 * double(h.lr);
      worst = std::max(worst, std::fabs(ts[k].p[i] - ref.p[k][i]) / scale);
      const double rv = ref.v[k][i / ts[k].block];
      worst_v = std::max(worst_v, std::fabs(v[i] - rv) / rv);
    }
    CHECK(opt.step_count(k) == 100);
  }
  INFO("worst parameter error " << worst << ", worst shared v error " << worst_v);
  // v: fp32 block sums of up to 1,600 squares (tree of 256 lanes), a few 2^-24 per level: 2e-6.
  // p: each update moves by half of v's relative error (~3e-7) times its size (up to ~3 lr);
  // over 100 steps that is ~1e-6 of the scale, plus the roundings of p itself: 5e-6. A wrong
  // statistic (sum for mean, another block) or eps placement errs by 1e-3 or more.
  CHECK(worst_v <= 2e-6);
  CHECK(worst <= 5e-6);
  // Weight decay followed the official mask: norms and biases kept none.
  CHECK(ts[8].decay == false);
  CHECK(ts.back().decay == false);
}

TEST_CASE("PerBlock: one-element blocks are AdamW bit for bit; threads do not matter") {
  auto a = llama_like(2), b = llama_like(2), c = llama_like(2);
  for (auto& t : a) t.block = 1;
  const alloy::rule::AdamW::Hyper h{1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f, false};
  alloy::Optimizer<alloy::rule::AdamW, alloy::state::Fp32, PerBlock> mini(params_of(a), h,
                                                                          adam_mini_options(2));
  alloy::Optimizer<alloy::rule::AdamW> adam(params_of(b, false), h, adam_mini_options(1));
  alloy::Optimizer<alloy::rule::AdamW, alloy::state::Fp32, PerBlock> mini1(params_of(c), h,
                                                                           adam_mini_options(1));
  alloy::Optimizer<alloy::rule::AdamW, alloy::state::Fp32, PerBlock> mini3(
      params_of(c), h, adam_mini_options(3));  // same tensors as mini1: compared below
  std::mt19937_64 r1(3);
  for (int s = 0; s < 20; ++s) {
    fill_grads(a, r1);
    for (std::size_t k = 0; k < a.size(); ++k) b[k].g = a[k].g;
    mini.step();
    adam.step();
  }
  for (std::size_t k = 0; k < a.size(); ++k) {
    CHECK(a[k].p == b[k].p);
    CHECK(mini.moment(k, 0) == adam.moment(k, 0));
    CHECK(mini.moment(k, 1) == adam.moment(k, 1));
  }
  // Thread count: 1 and 3 workers from the same start give the same bits.
  auto d = llama_like(2);
  alloy::Optimizer<alloy::rule::AdamW, alloy::state::Fp32, PerBlock> mini3b(params_of(d), h,
                                                                            adam_mini_options(3));
  std::mt19937_64 r2(4), r3(4);
  for (int s = 0; s < 5; ++s) {
    fill_grads(c, r2);
    fill_grads(d, r3);
    mini1.step();
    mini3b.step();
  }
  for (std::size_t k = 0; k < c.size(); ++k) CHECK(c[k].p == d[k].p);
}

TEST_CASE("PerBlock: state accounting, validation, and 8-bit first moments") {
  auto ts = llama_like(3);
  std::size_t blocks = 0, numel = 0;
  for (const auto& t : ts) {
    blocks += t.numel() / t.block;
    numel += t.numel();
  }
  alloy::Optimizer<alloy::rule::AdamW, alloy::state::Fp32, PerBlock> opt(params_of(ts), {},
                                                                         adam_mini_options());
  CHECK(opt.state_bytes() == numel * 4 + blocks * 4 + ts.size() * 4);
  alloy::Optimizer<alloy::rule::AdamW, alloy::state::Bf16<>, PerBlock> half(params_of(ts), {},
                                                                            adam_mini_options());
  CHECK(half.state_bytes() == numel * 2 + blocks * 4 + ts.size() * 4);

  // A block size that does not tile the tensor, and share_block with PerParameter.
  std::vector<float> p(100), g(100);
  Param bad{TensorView::of(p.data(), 100, alloy::Device::host(), "w"),
            TensorView::of(g.data(), 100)};
  bad.share_block = 30;
  using Mini = alloy::Optimizer<alloy::rule::AdamW, alloy::state::Fp32, PerBlock>;
  CHECK_THROWS_WITH_AS(Mini({bad}), doctest::Contains("share_block = 30 does not divide"),
                       alloy::Error);
  CHECK_THROWS_WITH_AS(alloy::Optimizer<alloy::rule::AdamW>({bad}),
                       doctest::Contains("applies to share::PerBlock"), alloy::Error);

  // Int8 first moments + shared second moments: ~1 byte of state per parameter on big tensors,
  // and the same trajectory as fp32 first moments within the 8-bit error.
  const std::uint64_t rows = 64, cols = 1024;
  std::vector<float> w8(rows * cols), w32, gw(rows * cols);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& x : w8) x = nd(rng);
  w32 = w8;
  std::vector<float> gw32(rows * cols);
  Param p8{TensorView::of(w8.data(), w8.size(), alloy::Device::host(), "mlp.up_proj.weight"),
           TensorView::of(gw.data(), gw.size())};
  Param p32{TensorView::of(w32.data(), w32.size(), alloy::Device::host(), "mlp.up_proj.weight"),
            TensorView::of(gw32.data(), gw32.size())};
  p8.share_block = p32.share_block = cols;  // rows
  const alloy::rule::AdamW::Hyper h{1e-3f, 0.9f, 0.999f, 1e-8f, 0.f, false};
  alloy::Optimizer<alloy::rule::AdamW, alloy::state::Int8Blockwise<>, PerBlock> o8({p8}, h);
  alloy::Optimizer<alloy::rule::AdamW, alloy::state::Fp32, PerBlock> o32({p32}, h);
  CHECK(o8.quantized(0));
  const double per_param = double(o8.state_bytes()) / double(w8.size());
  CHECK(per_param <= 1.05);
  CHECK(o8.state_bytes() == w8.size() + w8.size() / 256 * 4 + rows * 4 + 4);
  double loss0 = 0;
  for (float x : w8) loss0 += 0.5 * double(x) * x;
  for (int s = 0; s < 200; ++s) {  // minimize 0.5 |w|^2 with noisy gradients
    for (std::size_t i = 0; i < gw.size(); ++i) {
      const float noise = 0.1f * nd(rng);
      gw[i] = w8[i] + noise;
      gw32[i] = w32[i] + noise;
    }
    o8.step();
    o32.step();
  }
  double l8 = 0, l32 = 0;
  for (std::size_t i = 0; i < w8.size(); ++i) {
    l8 += 0.5 * double(w8[i]) * w8[i];
    l32 += 0.5 * double(w32[i]) * w32[i];
  }
  MESSAGE("0.5|w|^2: start " << loss0 << ", int8 m " << l8 << ", fp32 m " << l32);
  CHECK(l32 < 0.9 * loss0);
  CHECK(std::fabs(l8 - l32) <= 0.01 * l32);
}

TEST_CASE("PerBlock: the block sum's fixed order, written out independently") {
  // The order of share::block_mean_sq, spelled out a second way: a segment's lanes by index
  // arithmetic, its tree as explicit pairs, segment sums in order. Blocks of one, a partial and
  // several segments (8192 elements each), with values whose sums are order-sensitive.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> d(-3.f, 3.f);
  for (std::uint64_t n : {1ull, 100ull, 2048ull, 8192ull, 8193ull, 3 * 8192ull + 5, 131072ull}) {
    std::vector<float> g(n);
    for (auto& x : g) x = d(rng) * std::exp2(float(int(rng() % 40) - 20));
    float total = 0.f;
    for (std::uint64_t s0 = 0; s0 < n; s0 += 8192) {
      const std::uint64_t len = std::min<std::uint64_t>(8192, n - s0);
      std::vector<float> lane(256, 0.f);
      for (std::uint64_t i = 0; i < len; ++i) lane[(i >> 3) & 255] += g[s0 + i] * g[s0 + i];
      std::vector<float> warp(8);
      for (int w = 0; w < 8; ++w) {
        std::vector<float> x(lane.begin() + 32 * w, lane.begin() + 32 * w + 32);
        for (int h = 16; h >= 1; h >>= 1)
          for (int l = 0; l < h; ++l) x[l] += x[l + h];
        warp[w] = x[0];
      }
      const float seg = ((warp[0] + warp[4]) + (warp[2] + warp[6])) +
                        ((warp[1] + warp[5]) + (warp[3] + warp[7]));
      total = s0 == 0 ? seg : total + seg;
    }
    const float want = float(double(total) / double(n));
    const float got = alloy::share::block_mean_sq(n, [&](std::uint64_t i) { return g[i]; });
    INFO("n = " << n);
    CHECK(got == want);
  }
}
