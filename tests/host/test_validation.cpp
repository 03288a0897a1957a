// Every precondition of registration and of the optimizer's setters, broken one at a time.
// Each broken call must throw alloy::Error whose message names the tensor (or group, index or
// value) and the rule broken, and must leave every parameter and gradient byte, the optimizer
// state, step counts, hyperparameters and registrations exactly as they were. At the end of each
// test the optimizer keeps stepping bit for bit like a twin that never saw the bad calls.
#include <doctest/doctest.h>

#include <alloy/alloy.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

using alloy::Device;
using alloy::DType;
using alloy::Param;
using alloy::TensorView;
using AdamW = alloy::rule::AdamW;
using Sgd = alloy::rule::Sgd;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

/// All memory of one test: every parameter and gradient, valid or not, lives in one block, so a
/// byte snapshot of the block covers whatever a failing call could have written. Twin worlds
/// built from the same seed by the same calls have the same layout and the same values.
class World {
 public:
  static constexpr std::size_t kBytes = 1u << 20;
  explicit World(std::uint64_t seed)
      : rng_(seed), mem_(static_cast<std::byte*>(::operator new (kBytes, std::align_val_t{64}))) {
    std::memset(mem_, 0xA5, kBytes);
  }
  ~World() { ::operator delete (mem_, std::align_val_t{64}); }
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  /// n elements of dtype t with fresh N(0, 1) values (never zero), placed `misalign` bytes past
  /// a 64-byte boundary.
  TensorView tensor(DType t, std::size_t n, std::string name, std::size_t misalign = 0) {
    used_ = (used_ + 63) / 64 * 64 + misalign;
    std::byte* p = mem_ + used_;
    used_ += n * alloy::dtype_size(t);
    REQUIRE(used_ <= kBytes);
    TensorView v(p, n, t, Device::host(), std::move(name));
    fill(v);
    return v;
  }
  /// A gradient: like tensor(), and refreshed by new_grads().
  TensorView grad(DType t, std::size_t n, std::size_t misalign = 0) {
    TensorView v = tensor(t, n, {}, misalign);
    grads_.push_back(v);
    return v;
  }
  /// A view of n elements of dtype t starting `byte_offset` bytes into `of` (for overlaps).
  static TensorView alias(const TensorView& of, std::size_t byte_offset, DType t, std::size_t n,
                          std::string name = {}) {
    return TensorView(static_cast<std::byte*>(of.data) + byte_offset, n, t, Device::host(),
                      std::move(name));
  }
  void new_grads() {
    for (auto& g : grads_) fill(g);
  }
  std::vector<std::byte> bytes() const { return {mem_, mem_ + kBytes}; }

 private:
  void fill(TensorView& v) {
    std::normal_distribution<float> nd(0.f, 1.f);
    for (std::uint64_t i = 0; i < v.numel; ++i) {
      float x = 0;
      while (x == 0 || std::fabs(x) < 1e-3f) x = nd(rng_);  // never zero, fp16-normal
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
  std::byte* mem_;
  std::size_t used_ = 0;
  std::vector<TensorView> grads_;
};

Param P(TensorView p, TensorView g, std::optional<std::uint32_t> key = std::nullopt) {
  return Param{std::move(p), std::move(g), key};
}

std::uint32_t bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
std::vector<std::uint32_t> hyper_repr(const AdamW::Hyper& h) {
  return {bits(h.lr), bits(h.beta1), bits(h.beta2), bits(h.eps), bits(h.weight_decay), h.maximize};
}
std::vector<std::uint32_t> hyper_repr(const Sgd::Hyper& h) {
  return {bits(h.lr),           bits(h.momentum), bits(h.dampening),
          bits(h.weight_decay), h.nesterov,       h.maximize};
}

/// Everything observable about an optimizer, moments as raw bits.
struct OptView {
  std::size_t tensors = 0, groups = 0, state_bytes = 0, overhead_bytes = 0;
  std::uint64_t global_step = 0;
  std::vector<std::uint32_t> counts, keys, group_of;
  std::vector<std::string> names;
  std::vector<std::vector<std::uint32_t>> moments, hypers;
  bool operator==(const OptView&) const = default;
};
template <class Opt>
OptView observe(const Opt& opt) {
  OptView v;
  v.tensors = opt.num_tensors();
  v.groups = opt.num_groups();
  v.state_bytes = opt.state_bytes();
  v.overhead_bytes = opt.overhead_bytes();
  v.global_step = opt.global_step();
  for (std::size_t t = 0; t < opt.num_tensors(); ++t) {
    v.counts.push_back(opt.step_count(t));
    v.keys.push_back(opt.key(t));
    v.group_of.push_back(std::uint32_t(opt.group_of(t)));
    v.names.push_back(opt.name(t));
    for (int k = 0; k < Opt::kMoments; ++k) {
      std::vector<std::uint32_t> m;
      for (float x : opt.moment(t, k)) m.push_back(bits(x));
      v.moments.push_back(std::move(m));
    }
  }
  for (std::size_t g = 0; g < opt.num_groups(); ++g) v.hypers.push_back(hyper_repr(opt.hyper(g)));
  return v;
}

/// `call` must throw alloy::Error whose message contains every fragment, and change nothing.
template <class Opt, class F>
void expect_rejected(const char* what, Opt& opt, const World& world, F&& call,
                     const std::vector<std::string>& fragments) {
  INFO("case: " << std::string(what));
  const OptView before = observe(opt);
  const std::vector<std::byte> mem_before = world.bytes();
  std::string msg;
  bool threw = false;
  try {
    call();
  } catch (const alloy::Error& e) {
    threw = true;
    msg = e.what();
  }
  INFO("message: " << msg);
  CHECK(threw);
  for (const auto& f : fragments) CHECK_MESSAGE(msg.find(f) != std::string::npos, "missing: " << f);
  CHECK(observe(opt) == before);
  CHECK(world.bytes() == mem_before);
}

/// Constructors that must throw (nothing exists afterwards; the world must be unchanged).
template <class F>
void expect_constructor_rejected(const char* what, const World& world, F&& make,
                                 const std::vector<std::string>& fragments) {
  INFO("case: " << std::string(what));
  const std::vector<std::byte> mem_before = world.bytes();
  std::string msg;
  bool threw = false;
  try {
    make();
  } catch (const alloy::Error& e) {
    threw = true;
    msg = e.what();
  }
  INFO("message: " << msg);
  CHECK(threw);
  for (const auto& f : fragments) CHECK_MESSAGE(msg.find(f) != std::string::npos, "missing: " << f);
  CHECK(world.bytes() == mem_before);
}

/// Twins must agree bit for bit: memory, moments, counts, registrations.
template <class Opt>
void check_twins(const Opt& a, const World& wa, const Opt& b, const World& wb) {
  CHECK(wa.bytes() == wb.bytes());
  const OptView va = observe(a), vb = observe(b);
  CHECK(va.counts == vb.counts);
  CHECK(va.names == vb.names);
  CHECK(va.hypers == vb.hypers);
  CHECK(va.state_bytes == vb.state_bytes);
  CHECK(va.moments == vb.moments);  // bitwise
}

template <class Opt>
void step_both(Opt& a, World& wa, Opt& b, World& wb, int steps) {
  for (int s = 0; s < steps; ++s) {
    wa.new_grads();
    wb.new_grads();
    a.step();
    b.step();
  }
}

const AdamW::Hyper kAdamW{0.01f, 0.9f, 0.99f, 1e-6f, 0.1f, false};

/// The registered tensors of the AdamW tests, plus spare memory for broken views.
struct AdamWSetup {
  TensorView w0, g0, w1, g1, w2, g2, w3, g3, s0, sg0;
  TensorView fresh, fresh_g, spare32, spare32_g, spare16, spare16_g;
  explicit AdamWSetup(World& w) {
    w0 = w.tensor(DType::f32, 1000, "w0");
    g0 = w.grad(DType::f32, 1000);
    w1 = w.tensor(DType::f32, 37, "w1");
    g1 = w.grad(DType::bf16, 37);
    w2 = w.tensor(DType::bf16, 1, "w2");
    g2 = w.grad(DType::bf16, 1);
    w3 = w.tensor(DType::f16, 129, "w3");
    g3 = w.grad(DType::f16, 129);
    s0 = w.tensor(DType::f32, 300, "s0");
    sg0 = w.grad(DType::f32, 300);
    fresh = w.tensor(DType::f32, 50, "fresh");
    fresh_g = w.grad(DType::f32, 50);
    spare32 = w.tensor(DType::f32, 256, "spare32");
    spare32_g = w.tensor(DType::f32, 256, {});
    spare16 = w.tensor(DType::bf16, 256, "spare16");
    spare16_g = w.tensor(DType::bf16, 256, {});
  }
  std::vector<Param> base() const { return {P(w0, g0), P(w1, g1), P(w2, g2), P(w3, g3)}; }
};

using AdamWOpt = alloy::Optimizer<AdamW>;

}  // namespace

// ------------------------------------------------------------------------------------------

TEST_CASE("validation: broken tensors in add_group are rejected and change nothing") {
  World wa(101), wb(101);
  AdamWSetup a(wa), b(wb);
  alloy::Options o;
  o.host_threads = 2;
  AdamWOpt opt(a.base(), kAdamW, o), twin(b.base(), kAdamW, o);
  opt.add_group({{P(a.s0, a.sg0)}, kAdamW, "second"});
  twin.add_group({{P(b.s0, b.sg0)}, kAdamW, "second"});
  step_both(opt, wa, twin, wb, 3);
  REQUIRE(opt.num_tensors() == 5);

  // Each bad tensor comes after a valid one in its group: nothing of the group may remain.
  const auto group_with = [&](Param bad) {
    return [&opt, &a, bad] { opt.add_group({{P(a.fresh, a.fresh_g), bad}, kAdamW, "g"}); };
  };
  const TensorView sp = a.spare32, spg = a.spare32_g;
  const auto f32 = [](void* p, std::uint64_t n, std::string name,
                      std::vector<std::int64_t> shape = {}) {
    return TensorView(p, n, DType::f32, Device::host(), std::move(name), std::move(shape));
  };

  expect_rejected("null parameter pointer", opt, wa,
                  group_with(P(f32(nullptr, 10, "nullp"), World::alias(spg, 0, DType::f32, 10))),
                  {"tensor 'nullp'", "null data pointer"});
  expect_rejected("zero elements", opt, wa,
                  group_with(P(f32(sp.data, 0, "empty"), World::alias(spg, 0, DType::f32, 1))),
                  {"tensor 'empty'", "zero elements"});
  expect_rejected(
      "shape product != numel", opt, wa,
      group_with(P(f32(sp.data, 16, "shaped", {3, 5}), World::alias(spg, 0, DType::f32, 16))),
      {"tensor 'shaped'", "shape has 15 elements", "numel is 16"});
  expect_rejected(
      "negative dimension", opt, wa,
      group_with(P(f32(sp.data, 15, "negdim", {-3, -5}), World::alias(spg, 0, DType::f32, 15))),
      {"tensor 'negdim'", "negative dimension"});
  expect_rejected(
      "negative dimension among positive ones", opt, wa,
      group_with(P(f32(sp.data, 15, "negdim2", {3, 5, -1}), World::alias(spg, 0, DType::f32, 15))),
      {"tensor 'negdim2'", "negative dimension"});
  expect_rejected("fp32 parameter not 4-byte aligned", opt, wa,
                  group_with(P(World::alias(sp, 1, DType::f32, 10, "odd32"),
                               World::alias(spg, 0, DType::f32, 10))),
                  {"tensor 'odd32'", "not aligned to its element size (4 bytes)"});
  expect_rejected("bf16 parameter not 2-byte aligned", opt, wa,
                  group_with(P(World::alias(a.spare16, 3, DType::bf16, 10, "odd16"),
                               World::alias(a.spare16_g, 0, DType::bf16, 10))),
                  {"tensor 'odd16'", "not aligned to its element size (2 bytes)"});
  expect_rejected("gradient not aligned", opt, wa,
                  group_with(P(World::alias(sp, 0, DType::f32, 10, "oddgrad"),
                               World::alias(spg, 2, DType::f32, 10))),
                  {"gradient of 'oddgrad'", "not aligned"});
  expect_rejected("parameter on a CUDA device, host executor", opt, wa,
                  group_with(P(TensorView(sp.data, 10, DType::f32, Device::cuda(0), "gpu"),
                               TensorView(spg.data, 10, DType::f32, Device::cuda(0)))),
                  {"tensor 'gpu'", "cuda:0", "host executor"});
  expect_rejected("gradient on a CUDA device", opt, wa,
                  group_with(P(World::alias(sp, 0, DType::f32, 10, "gpugrad"),
                               TensorView(spg.data, 10, DType::f32, Device::cuda(1)))),
                  {"gradient of 'gpugrad'", "cuda:1", "host executor"});
  expect_rejected(
      "gradient on another host device than its parameter", opt, wa,
      group_with(P(World::alias(sp, 0, DType::f32, 10, "hostgrad"),
                   TensorView(spg.data, 10, DType::f32, Device{Device::Kind::host, 1}))),
      {"gradient of 'hostgrad'", "host device index must be 0"});
  expect_rejected("gradient element count", opt, wa,
                  group_with(P(World::alias(sp, 0, DType::f32, 10, "short"),
                               World::alias(spg, 0, DType::f32, 9))),
                  {"gradient of 'short'", "has 9 elements", "the parameter 10"});
  expect_rejected("gradient with zero elements", opt, wa,
                  group_with(P(World::alias(sp, 0, DType::f32, 10, "zgrad"),
                               World::alias(spg, 0, DType::f32, 0))),
                  {"gradient of 'zgrad'", "zero elements"});
  expect_rejected("gradient with a wrong shape", opt, wa,
                  group_with(P(World::alias(sp, 0, DType::f32, 12, "gshape"),
                               TensorView(spg.data, 12, DType::f32, Device::host(), {}, {5, 2}))),
                  {"gradient of 'gshape'", "shape has 10 elements"});
  expect_rejected("bf16 parameter with fp32 gradient", opt, wa,
                  group_with(P(World::alias(a.spare16, 0, DType::bf16, 10, "bf_f32"),
                               World::alias(spg, 0, DType::f32, 10))),
                  {"gradient of 'bf_f32'", "fp32", "bf16", "not supported"});
  expect_rejected("fp16 parameter with bf16 gradient", opt, wa,
                  group_with(P(World::alias(a.spare16, 0, DType::f16, 10, "h_bf"),
                               World::alias(a.spare16_g, 0, DType::bf16, 10))),
                  {"gradient of 'h_bf'", "bf16", "fp16", "not supported"});
  expect_rejected("bf16 parameter with fp16 gradient", opt, wa,
                  group_with(P(World::alias(a.spare16, 0, DType::bf16, 10, "bf_h"),
                               World::alias(a.spare16_g, 0, DType::f16, 10))),
                  {"gradient of 'bf_h'", "fp16", "bf16", "not supported"});
  expect_rejected("fp16 parameter with fp32 gradient", opt, wa,
                  group_with(P(World::alias(a.spare16, 0, DType::f16, 10, "h_f32"),
                               World::alias(spg, 0, DType::f32, 10))),
                  {"gradient of 'h_f32'", "fp32", "fp16", "not supported"});

  // Nothing of the failed groups remains: the valid tensor of every failed group, and the
  // names used, register fine now (in both twins, which then must keep agreeing).
  opt.add_group({{P(a.fresh, a.fresh_g)}, kAdamW, "late"});
  twin.add_group({{P(b.fresh, b.fresh_g)}, kAdamW, "late"});
  CHECK(opt.num_tensors() == 6);
  CHECK(opt.num_groups() == 3);
  CHECK(opt.name(5) == "fresh");
  CHECK(opt.step_count(5) == 0);
  step_both(opt, wa, twin, wb, 3);
  check_twins(opt, wa, twin, wb);
  CHECK(opt.step_count(0) == 6);
  CHECK(opt.step_count(5) == 3);
}

TEST_CASE("validation: a shape whose element product overflows 64 bits is rejected") {
  // 3 * 0x5555555555555557 = 2^64 + 5: the product wraps to exactly numel = 5 in 64-bit
  // arithmetic, but the shape describes ~5.5e19 elements, not 5.
  World w(111);
  AdamWSetup a(w);
  AdamWOpt opt(a.base(), kAdamW);
  opt.step();
  const TensorView bad(a.spare32.data, 5, DType::f32, Device::host(), "wrapped",
                       {3, 0x5555555555555557ll});
  expect_rejected(
      "shape product overflows 64 bits", opt, w,
      [&] {
        opt.add_group({{P(bad, World::alias(a.spare32_g, 0, DType::f32, 5))}, kAdamW, "g"});
      },
      {"tensor 'wrapped'", "shape"});
  // A gradient's shape, through set_grad: 13 * 0x6276276276276279 = 4 * 2^64 + 37.
  const TensorView bad_grad(a.spare16_g.data, 37, DType::bf16, Device::host(), {},
                            {13, 0x6276276276276279ll});
  expect_rejected("gradient shape product overflows 64 bits", opt, w,
                  [&] { opt.set_grad(1, bad_grad); }, {"w1", "shape"});
}

TEST_CASE("validation: overlapping tensors, duplicate names and keys, empty groups") {
  World wa(202), wb(202);
  AdamWSetup a(wa), b(wb);
  AdamWOpt opt(a.base(), kAdamW), twin(b.base(), kAdamW);
  opt.add_group({{P(a.s0, a.sg0)}, kAdamW, "second"});
  twin.add_group({{P(b.s0, b.sg0)}, kAdamW, "second"});
  step_both(opt, wa, twin, wb, 2);

  const TensorView sp = a.spare32, spg = a.spare32_g;
  const auto add = [&](std::vector<Param> ps, std::string group = "g") {
    return [&opt, ps = std::move(ps), group] { opt.add_group({ps, kAdamW, group}); };
  };
  const auto v32 = [](const TensorView& of, std::size_t byte_off, std::size_t n,
                      std::string name = {}) {
    return World::alias(of, byte_off, DType::f32, n, std::move(name));
  };

  // Within one new group.
  expect_rejected(
      "two parameters overlap", opt, wa,
      add({P(v32(sp, 0, 64, "o1"), v32(spg, 0, 64)), P(v32(sp, 128, 64, "o2"), v32(spg, 512, 64))}),
      {"tensor 'o1'", "tensor 'o2'", "overlaps"});
  expect_rejected(
      "two parameters are the same memory", opt, wa,
      add({P(v32(sp, 0, 8, "same1"), v32(spg, 0, 8)), P(v32(sp, 0, 8, "same2"), v32(spg, 64, 8))}),
      {"same1", "same2", "overlaps"});
  expect_rejected("a parameter overlaps its own gradient", opt, wa,
                  add({P(v32(sp, 0, 64, "selfish"), v32(sp, 252, 64))}),
                  {"tensor 'selfish'", "gradient of 'selfish'", "overlaps"});
  expect_rejected(
      "a parameter overlaps another tensor's gradient", opt, wa,
      add({P(v32(sp, 0, 16, "pa"), v32(spg, 0, 16)), P(v32(spg, 60, 4, "pb"), v32(sp, 512, 4))}),
      {"gradient of 'pa'", "tensor 'pb'", "overlaps"});
  expect_rejected(
      "two gradients overlap", opt, wa,
      add({P(v32(sp, 0, 16, "ga"), v32(spg, 0, 16)), P(v32(sp, 64, 16, "gb"), v32(spg, 32, 16))}),
      {"gradient of 'ga'", "gradient of 'gb'", "overlaps"});
  // Two bytes of overlap: an fp32 tensor's last element and a bf16 tensor's first.
  expect_rejected("a two-byte overlap between dtypes", opt, wa,
                  add({P(v32(sp, 0, 10, "wide"), v32(spg, 0, 10)),
                       P(World::alias(sp, 38, DType::bf16, 10, "narrow"),
                         World::alias(spg, 100, DType::bf16, 10))}),
                  {"tensor 'wide'", "tensor 'narrow'", "overlaps"});
  // Against tensors of earlier groups (the constructor's and a later add_group's).
  expect_rejected("a new parameter overlaps a registered parameter", opt, wa,
                  add({P(World::alias(a.w0, 400, DType::f32, 8, "intruder"), v32(spg, 0, 8))}),
                  {"tensor 'intruder'", "tensor 'w0'", "overlaps"});
  expect_rejected("a new parameter overlaps a registered gradient", opt, wa,
                  add({P(World::alias(a.sg0, 0, DType::f32, 8, "intruder"), v32(spg, 0, 8))}),
                  {"tensor 'intruder'", "gradient of 's0'", "overlaps"});
  expect_rejected("a new gradient overlaps a registered gradient", opt, wa,
                  add({P(v32(sp, 0, 8, "intruder"), World::alias(a.g1, 2, DType::bf16, 8))}),
                  {"gradient of 'intruder'", "gradient of 'w1'", "overlaps"});
  expect_rejected("a new gradient is a registered parameter", opt, wa,
                  add({P(v32(sp, 0, 1, "intruder"), World::alias(a.w2, 0, DType::bf16, 1))}),
                  {"gradient of 'intruder'", "tensor 'w2'", "overlaps"});

  // Names and keys.
  expect_rejected(
      "duplicate names in one group", opt, wa,
      add({P(v32(sp, 0, 8, "dup"), v32(spg, 0, 8)), P(v32(sp, 64, 8, "dup"), v32(spg, 64, 8))}),
      {"'dup'", "same random-stream key"});
  expect_rejected("a name already registered in an earlier group", opt, wa,
                  add({P(v32(sp, 0, 8, "w1"), v32(spg, 0, 8))}),
                  {"'w1'", "same random-stream key"});
  expect_rejected("duplicate explicit keys", opt, wa,
                  add({P(v32(sp, 0, 8, "k1"), v32(spg, 0, 8), 42u),
                       P(v32(sp, 64, 8, "k2"), v32(spg, 64, 8), 42u)}),
                  {"'k1'", "'k2'", "42"});
  const std::uint32_t w0_key = alloy::tensor_key_from_name("w0");
  expect_rejected("an explicit key equal to a registered tensor's key", opt, wa,
                  add({P(v32(sp, 0, 8, "thief"), v32(spg, 0, 8), w0_key)}),
                  {"'w0'", "'thief'", std::to_string(w0_key)});

  // Groups.
  expect_rejected("a named empty group", opt, wa, add({}, "nothing"),
                  {"group 'nothing'", "no tensors"});
  expect_rejected("an unnamed empty group", opt, wa, add({}, ""), {"group '2'", "no tensors"});

  // Accepted: touching but not overlapping spans, and unnamed tensors (named by index).
  opt.add_group({{P(v32(a.spare32, 0, 10, "left"), v32(a.spare32_g, 0, 10)),
                  P(v32(a.spare32, 40, 10, "right"), v32(a.spare32_g, 40, 10)),
                  P(v32(a.spare32, 80, 5), v32(a.spare32_g, 80, 5))},
                 kAdamW,
                 "touching"});
  twin.add_group({{P(v32(b.spare32, 0, 10, "left"), v32(b.spare32_g, 0, 10)),
                   P(v32(b.spare32, 40, 10, "right"), v32(b.spare32_g, 40, 10)),
                   P(v32(b.spare32, 80, 5), v32(b.spare32_g, 80, 5))},
                  kAdamW,
                  "touching"});
  CHECK(opt.name(7) == "#7");
  step_both(opt, wa, twin, wb, 3);
  check_twins(opt, wa, twin, wb);
}

TEST_CASE("validation: AdamW hyperparameters in add_group, set_hyper, set_lr and constructors") {
  World wa(303), wb(303);
  AdamWSetup a(wa), b(wb);
  AdamWOpt opt(a.base(), kAdamW), twin(b.base(), kAdamW);
  opt.add_group({{P(a.s0, a.sg0)}, kAdamW, "second"});
  twin.add_group({{P(b.s0, b.sg0)}, kAdamW, "second"});
  step_both(opt, wa, twin, wb, 2);

  struct Bad {
    AdamW::Hyper h;
    std::string fragment;  // field and value as the message prints them
  };
  const auto with = [](auto f) {
    AdamW::Hyper h = kAdamW;
    f(h);
    return h;
  };
  const std::vector<Bad> bad = {
      {with([](auto& h) { h.lr = -0.5f; }), "lr = -0.5"},
      {with([](auto& h) { h.lr = kNaN; }), "lr = nan"},
      {with([](auto& h) { h.lr = kInf; }), "lr = inf"},
      {with([](auto& h) { h.lr = -kInf; }), "lr = -inf"},
      {with([](auto& h) { h.beta1 = -0.25f; }), "beta1 = -0.25"},
      {with([](auto& h) { h.beta1 = 1.0f; }), "beta1 = 1"},
      {with([](auto& h) { h.beta1 = 1.5f; }), "beta1 = 1.5"},
      {with([](auto& h) { h.beta1 = kNaN; }), "beta1 = nan"},
      {with([](auto& h) { h.beta2 = -0.25f; }), "beta2 = -0.25"},
      {with([](auto& h) { h.beta2 = 1.0f; }), "beta2 = 1"},
      {with([](auto& h) { h.beta2 = kInf; }), "beta2 = inf"},
      {with([](auto& h) { h.beta2 = kNaN; }), "beta2 = nan"},
      {with([](auto& h) { h.eps = -0.5f; }), "eps = -0.5"},
      {with([](auto& h) { h.eps = kNaN; }), "eps = nan"},
      {with([](auto& h) { h.eps = kInf; }), "eps = inf"},
      {with([](auto& h) { h.weight_decay = -2.f; }), "weight_decay = -2"},
      {with([](auto& h) { h.weight_decay = kInf; }), "weight_decay = inf"},
      {with([](auto& h) { h.weight_decay = kNaN; }), "weight_decay = nan"},
  };
  for (const Bad& x : bad) {
    CAPTURE(x.fragment);
    expect_rejected("add_group", opt, wa,
                    [&] {
                      opt.add_group({{P(a.fresh, a.fresh_g)}, x.h, "bad"});
                    },
                    {"group 'bad'", x.fragment});
    expect_rejected("set_hyper", opt, wa, [&] { opt.set_hyper(1, x.h); },
                    {"group 'second'", x.fragment});
    expect_constructor_rejected("constructor", wa,
                                [&] { AdamWOpt o({P(a.fresh, a.fresh_g)}, x.h); },
                                {"group '0'", x.fragment});
  }
  expect_rejected("set_lr(NaN)", opt, wa, [&] { opt.set_lr(0, kNaN); }, {"group '0'", "lr = nan"});
  expect_rejected("set_lr(-1)", opt, wa, [&] { opt.set_lr(1, -1.f); },
                  {"group 'second'", "lr = -1"});
  expect_rejected("set_lr(inf)", opt, wa, [&] { opt.set_lr(1, kInf); },
                  {"group 'second'", "lr = inf"});

  // Valid edge values are accepted: lr = 0, beta = 0, eps = 0, weight_decay = 0.
  AdamW::Hyper edge{0.f, 0.f, 0.f, 0.f, 0.f, true};
  AdamWOpt ok({P(a.fresh, a.fresh_g)}, edge);
  ok.set_hyper(0, kAdamW);

  // The old hyperparameters are in force: the next steps match the twin bit for bit.
  CHECK(hyper_repr(opt.hyper(0)) == hyper_repr(kAdamW));
  CHECK(hyper_repr(opt.hyper(1)) == hyper_repr(kAdamW));
  step_both(opt, wa, twin, wb, 3);
  check_twins(opt, wa, twin, wb);
}

TEST_CASE("validation: Sgd hyperparameters, state growth refused, moment index") {
  World wa(404), wb(404);
  const auto make = [](World& w) {
    std::vector<alloy::Optimizer<Sgd>::Group> groups;
    TensorView p0 = w.tensor(DType::f32, 513, "m0");
    TensorView g0 = w.grad(DType::f32, 513);
    TensorView p1 = w.tensor(DType::bf16, 77, "n0");
    TensorView g1 = w.grad(DType::bf16, 77);
    groups.push_back({{P(p0, g0)}, Sgd::Hyper{0.05f, 0.9f, 0.1f, 0.01f, false, false}, "mom"});
    groups.push_back({{P(p1, g1)}, Sgd::Hyper{0.05f, 0.f, 0.f, 0.01f, false, false}, "plain"});
    return groups;
  };
  auto ga = make(wa), gb = make(wb);
  const TensorView fresh = wa.tensor(DType::f32, 20, "fresh"), fresh_g = wa.grad(DType::f32, 20);
  wb.tensor(DType::f32, 20, "fresh");  // the twin's world keeps the same layout
  wb.grad(DType::f32, 20);
  alloy::Optimizer<Sgd> opt(ga), twin(gb);
  step_both(opt, wa, twin, wb, 2);
  const Sgd::Hyper good = opt.hyper(0);

  struct Bad {
    Sgd::Hyper h;
    std::vector<std::string> fragments;
  };
  const auto with = [&](auto f) {
    Sgd::Hyper h = good;
    f(h);
    return h;
  };
  const std::vector<Bad> bad = {
      {with([](auto& h) { h.lr = -0.5f; }), {"lr = -0.5"}},
      {with([](auto& h) { h.lr = kNaN; }), {"lr = nan"}},
      {with([](auto& h) { h.lr = kInf; }), {"lr = inf"}},
      {with([](auto& h) { h.momentum = -0.25f; }), {"momentum = -0.25"}},
      {with([](auto& h) { h.momentum = kNaN; }), {"momentum = nan"}},
      {with([](auto& h) { h.momentum = kInf; }), {"momentum = inf"}},
      {with([](auto& h) { h.weight_decay = -2.f; }), {"weight_decay = -2"}},
      {with([](auto& h) { h.weight_decay = kNaN; }), {"weight_decay = nan"}},
      {with([](auto& h) { h.dampening = kNaN; }), {"dampening = nan"}},
      {with([](auto& h) { h.dampening = kInf; }), {"dampening = inf"}},
      {with([](auto& h) { h.dampening = -kInf; }), {"dampening = -inf"}},
      {with([](auto& h) {
         h.nesterov = true;
         h.momentum = 0.f;
         h.dampening = 0.f;
       }),
       {"nesterov", "momentum = 0"}},
      {with([](auto& h) {
         h.nesterov = true;
         h.dampening = 0.5f;
       }),
       {"nesterov", "dampening = 0.5"}},
  };
  for (const Bad& x : bad) {
    CAPTURE(x.fragments[0]);
    auto add_frag = x.fragments, set_frag = x.fragments;
    add_frag.push_back("group 'bad'");
    set_frag.push_back("group 'mom'");
    expect_rejected(
        "add_group", opt, wa,
        [&] {
          opt.add_group({{P(fresh, fresh_g)}, x.h, "bad"});
        },
        add_frag);
    expect_rejected(
        "set_hyper", opt, wa, [&] { opt.set_hyper(0, x.h); }, set_frag);
  }
  expect_rejected("set_lr(NaN)", opt, wa, [&] { opt.set_lr(1, kNaN); },
                  {"group 'plain'", "lr = nan"});

  // A group registered without momentum has no buffer to turn momentum on with.
  Sgd::Hyper more = opt.hyper(1);
  more.momentum = 0.9f;
  expect_rejected("momentum turned on later", opt, wa, [&] { opt.set_hyper(1, more); },
                  {"group 'plain'", "more state"});
  // Sgd keeps one moment: index 1 is out of range, and so is -1.
  expect_rejected("moment index 1 of Sgd", opt, wa, [&] { (void)opt.moment(0, 1); },
                  {"moment index 1", "Sgd has 1"});
  expect_rejected("moment index -1", opt, wa, [&] { (void)opt.moment(0, -1); },
                  {"moment index -1", "Sgd"});

  // Nesterov with momentum and no dampening is valid.
  Sgd::Hyper nest = good;
  nest.nesterov = true;
  nest.dampening = 0.f;
  { alloy::Optimizer<Sgd> ok({P(fresh, fresh_g)}, nest); }

  CHECK(hyper_repr(opt.hyper(0)) == hyper_repr(good));
  step_both(opt, wa, twin, wb, 3);
  check_twins(opt, wa, twin, wb);
}

TEST_CASE("validation: fp16 parameters with stochastic parameter rounding") {
  World w(505);
  const TensorView pb = w.tensor(DType::bf16, 300, "b"), gb = w.grad(DType::bf16, 300);
  const TensorView ph = w.tensor(DType::f16, 33, "h16"), gh = w.grad(DType::f16, 33);
  alloy::Options o;
  o.param_rounding = alloy::Rounding::stochastic;
  AdamWOpt opt({P(pb, gb)}, kAdamW, o);
  opt.step();
  expect_rejected("fp16 parameter, stochastic rounding", opt, w,
                  [&] {
                    opt.add_group({{P(ph, gh)}, kAdamW, "halves"});
                  },
                  {"tensor 'h16'", "stochastic rounding", "fp16"});
  expect_constructor_rejected("constructor", w, [&] { AdamWOpt x({P(ph, gh)}, kAdamW, o); },
                              {"tensor 'h16'", "stochastic rounding", "fp16"});
  // With round-to-nearest the same tensor is fine.
  AdamWOpt nearest({P(ph, gh)}, kAdamW);
  nearest.step();
  CHECK(nearest.step_count(0) == 1);
}

TEST_CASE("validation: indices out of range and set_grad with a mismatched view") {
  World wa(606), wb(606);
  AdamWSetup a(wa), b(wb);
  AdamWOpt opt(a.base(), kAdamW), twin(b.base(), kAdamW);
  step_both(opt, wa, twin, wb, 2);
  const std::size_t n = opt.num_tensors();  // 4
  const std::string tindex = "tensor index " + std::to_string(n);
  const std::vector<std::string> tmsg = {tindex, "out of range", "4 registered"};
  const std::vector<std::string> gmsg = {"group index 1", "out of range", "1 groups"};

  expect_rejected(
      "set_grad", opt, wa, [&] { opt.set_grad(n, a.fresh_g); }, tmsg);
  expect_rejected(
      "set_frozen", opt, wa, [&] { opt.set_frozen(n, true); }, tmsg);
  expect_rejected(
      "moment", opt, wa, [&] { (void)opt.moment(n, 0); }, tmsg);
  expect_rejected(
      "step_count", opt, wa, [&] { (void)opt.step_count(n); }, tmsg);
  expect_rejected(
      "name", opt, wa, [&] { (void)opt.name(n); }, tmsg);
  expect_rejected(
      "key", opt, wa, [&] { (void)opt.key(n); }, tmsg);
  expect_rejected(
      "group_of", opt, wa, [&] { (void)opt.group_of(n); }, tmsg);
  expect_rejected("set_frozen, huge index", opt, wa, [&] { opt.set_frozen(std::size_t(-1), true); },
                  {std::to_string(std::size_t(-1)), "out of range"});
  expect_rejected(
      "set_hyper", opt, wa, [&] { opt.set_hyper(1, kAdamW); }, gmsg);
  expect_rejected(
      "set_lr", opt, wa, [&] { opt.set_lr(1, 0.1f); }, gmsg);
  expect_rejected(
      "hyper", opt, wa, [&] { (void)opt.hyper(1); }, gmsg);
  expect_rejected("moment index 2 of AdamW", opt, wa, [&] { (void)opt.moment(0, 2); },
                  {"moment index 2", "AdamW has 2"});
  expect_rejected("moment index -1", opt, wa, [&] { (void)opt.moment(1, -1); },
                  {"moment index -1", "AdamW"});

  // set_grad(t, view) checks the view against tensor t's parameter like registration does.
  const TensorView sp = a.spare32, spg = a.spare32_g;
  const auto v = [](const TensorView& of, std::size_t off, DType t, std::size_t cnt) {
    return World::alias(of, off, t, cnt);
  };
  expect_rejected("element count", opt, wa, [&] { opt.set_grad(0, v(spg, 0, DType::f32, 999)); },
                  {"gradient of 'w0'", "has 999 elements", "the parameter 1000"});
  expect_rejected("dtype pair", opt, wa, [&] { opt.set_grad(2, v(spg, 0, DType::f32, 1)); },
                  {"gradient of 'w2'", "fp32", "bf16", "not supported"});
  expect_rejected("dtype pair fp16", opt, wa,
                  [&] { opt.set_grad(3, v(a.spare16_g, 0, DType::bf16, 129)); },
                  {"gradient of 'w3'", "bf16", "fp16", "not supported"});
  expect_rejected("device", opt, wa,
                  [&] { opt.set_grad(1, TensorView(spg.data, 37, DType::bf16, Device::cuda(0))); },
                  {"gradient of 'w1'", "cuda:0"});
  expect_rejected("alignment", opt, wa, [&] { opt.set_grad(1, v(spg, 1, DType::bf16, 37)); },
                  {"gradient of 'w1'", "not aligned"});
  expect_rejected("zero elements", opt, wa, [&] { opt.set_grad(1, v(spg, 0, DType::bf16, 0)); },
                  {"gradient of 'w1'", "zero elements"});
  expect_rejected(
      "shape", opt, wa,
      [&] {
        opt.set_grad(1, TensorView(spg.data, 37, DType::bf16, Device::host(), {}, {6, 6}));
      },
      {"gradient of 'w1'", "shape has 36 elements"});
  // (set_grad names the new gradient as registration does: "gradient of '<tensor>'".)
  expect_rejected("overlaps its own parameter", opt, wa,
                  [&] { opt.set_grad(0, v(a.w0, 0, DType::f32, 1000)); },
                  {"gradient of 'w0'", "tensor 'w0'", "overlaps"});
  expect_rejected("overlaps another parameter", opt, wa,
                  [&] { opt.set_grad(2, World::alias(a.w3, 256, DType::bf16, 1)); },
                  {"gradient of 'w2'", "tensor 'w3'", "overlaps"});
  expect_rejected("overlaps another gradient", opt, wa,
                  [&] { opt.set_grad(0, World::alias(a.g1, 0, DType::f32, 1000)); },
                  {"gradient of 'w0'", "gradient of 'w1'", "overlaps"});

  // Accepted: a new buffer over this tensor's own old gradient (it is being replaced).
  opt.set_grad(0, v(a.g0, 0, DType::f32, 1000));
  twin.set_grad(0, v(b.g0, 0, DType::f32, 1000));
  step_both(opt, wa, twin, wb, 3);
  check_twins(opt, wa, twin, wb);
}

TEST_CASE("validation: element-aligned but not vector-aligned tensors step like aligned ones") {
  // Offsets of one element past a 64-byte boundary (4 bytes for fp32, 2 for bf16/fp16): legal,
  // and the results must be bitwise those of 64-byte-aligned copies. Sizes are not multiples
  // of the 8-element tile.
  struct Spec {
    DType p, g;
    std::size_t n;
  };
  const Spec specs[] = {{DType::f32, DType::f32, 1},     {DType::f32, DType::f32, 1001},
                        {DType::f32, DType::bf16, 37},   {DType::f32, DType::f16, 263},
                        {DType::bf16, DType::bf16, 515}, {DType::f16, DType::f16, 7}};
  const auto build = [&](World& w, bool shifted) {
    std::vector<Param> ps;
    const char* names[] = {"u0", "u1", "u2", "u3", "u4", "u5"};
    int i = 0;
    for (const Spec& s : specs) {
      const std::size_t pm = shifted ? alloy::dtype_size(s.p) : 0,
                        gm = shifted ? alloy::dtype_size(s.g) : 0;
      TensorView p = w.tensor(s.p, s.n, names[i++], pm);
      TensorView g = w.grad(s.g, s.n, gm);
      ps.push_back(P(p, g));
    }
    return ps;
  };
  World wa(707), wb(707);
  auto pa = build(wa, true), pb = build(wb, false);
  for (const Param& p : pa) REQUIRE(reinterpret_cast<std::uintptr_t>(p.param.data) % 16 != 0);
  alloy::Options o;
  o.host_threads = 3;
  AdamWOpt shifted(pa, kAdamW, o), aligned(pb, kAdamW, o);
  for (int s = 0; s < 5; ++s) {
    wa.new_grads();
    wb.new_grads();
    shifted.step();
    aligned.step();
  }
  bool moved = false;
  for (std::size_t t = 0; t < pa.size(); ++t) {
    CAPTURE(t);
    CHECK(std::memcmp(pa[t].param.data, pb[t].param.data, pa[t].param.bytes()) == 0);
    CHECK(std::memcmp(pa[t].grad.data, pb[t].grad.data, pa[t].grad.bytes()) == 0);
    for (int k = 0; k < 2; ++k) CHECK(shifted.moment(t, k) == aligned.moment(t, k));
    CHECK(shifted.step_count(t) == 5);
    World probe(707);  // the initial values, rebuilt: the step must have changed them
    const auto p0 = build(probe, true);
    moved = moved || std::memcmp(p0[t].param.data, pa[t].param.data, pa[t].param.bytes()) != 0;
  }
  CHECK(moved);
}

TEST_CASE("validation: a tensor that draws random numbers needs a name or a key") {
  World w(606);
  const TensorView named = w.tensor(DType::bf16, 40, "named"), gn = w.grad(DType::bf16, 40);
  const TensorView anon = w.tensor(DType::bf16, 41, ""), ga = w.grad(DType::bf16, 41);
  alloy::Options o;
  o.param_rounding = alloy::Rounding::stochastic;
  AdamWOpt opt({P(named, gn)}, kAdamW, o);
  opt.step();
  // Stochastic parameter rounding: an unnamed, unkeyed tensor would draw from a stream that
  // depends on its registration position.
  expect_rejected("unnamed bf16 tensor, stochastic parameter rounding", opt, w,
                  [&] {
                    opt.add_group({{P(anon, ga)}, kAdamW, "anon"});
                  },
                  {"#1", "neither a name nor Param::key", "stochastic rounding"});
  // An explicit key is enough.
  alloy::Param keyed = P(anon, ga);
  keyed.key = 12345u;
  opt.add_group({{keyed}, kAdamW, "keyed"});
  CHECK(opt.key(1) == 12345u);
  // Without any random stream an unnamed tensor is fine.
  const TensorView anon32 = w.tensor(DType::f32, 42, ""), g32 = w.grad(DType::f32, 42);
  AdamWOpt plain({P(anon32, g32)}, kAdamW);
  plain.step();
  CHECK(plain.step_count(0) == 1);
}

TEST_CASE("validation: momentum may come back after it was set to zero (state still exists)") {
  World w(707);
  const TensorView p = w.tensor(DType::f32, 64, "p"), g = w.grad(DType::f32, 64);
  const Sgd::Hyper mom{0.05f, 0.9f, 0.f, 0.f, false, false};
  alloy::Optimizer<Sgd> opt({P(p, g)}, mom);
  opt.step();
  Sgd::Hyper off = mom;
  off.momentum = 0.f;
  opt.set_hyper(0, off);
  opt.step();
  opt.set_hyper(0, mom);  // allowed: the group was registered with momentum
  opt.step();
  CHECK(opt.hyper(0).momentum == 0.9f);
  CHECK(opt.step_count(0) == 3);
}
