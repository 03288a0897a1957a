// Optimizer<Rule, State, Share, Grad, Exec>: one composition, its registered tensors, its state.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "compose.hpp"
#include "core/allocator.hpp"
#include "core/error.hpp"
#include "core/options.hpp"
#include "core/philox.hpp"
#include "core/tensor.hpp"
#include "exec/dispatch.hpp"
#include "exec/host.hpp"
#include "exec/table.hpp"
#include "grad/backprop.hpp"
#include "grad/spsa.hpp"
#include "share/per_block.hpp"
#include "share/per_parameter.hpp"
#include "state/fp32.hpp"
#include "state/int8.hpp"

ALLOY_NAMESPACE_BEGIN

/// One moment of one tensor as a block-quantized format stores it (Optimizer::quantized_moment).
struct QuantizedMoment {
  std::vector<std::uint8_t> codes;
  std::vector<float> absmax;  // one per block
};

/// An optimizer composed from an update rule and three policies, run by an executor:
///
///     alloy::Optimizer<alloy::rule::AdamW, alloy::state::Bf16<>> opt(params, {.lr = 1e-3f});
///     opt.step();
///
/// `Exec` is exec::Host (tensors in host memory; this header) or exec::Cuda (tensors on a GPU;
/// <alloy/alloy.cuh>, which also defines alloy::cuda::Optimizer<...> with it preset).
///
/// Tensors are registered in groups, each with its own hyperparameters; tensors are only ever
/// appended (freeze one instead of removing it), so a tensor's index and state are stable.
/// Every check happens before anything changes: a call that throws alloy::Error leaves
/// parameters, gradients and state exactly as they were.
template <class Rule, class State = state::Fp32, class Share = share::PerParameter,
          class Grad = grad::Backprop, class Exec = exec::Host>
class Optimizer {
  static_assert(detail::CheckComposition<Rule, State, Share, Grad>::value);

 public:
  using rule_type = Rule;
  using state_type = State;
  using share_type = Share;
  using grad_type = Grad;
  using executor_type = Exec;
  using Hyper = typename Rule::Hyper;
  using Stored = typename State::Stored;
  static constexpr int kMoments = Rule::kMoments;
  static constexpr bool kZerothOrder = is_zeroth_order<Grad>();

  struct Group {
    std::vector<Param> params;
    Hyper hyper{};
    std::string name;  // optional; names the group in errors
  };

  explicit Optimizer(Options options = {})
      : options_(std::move(options)),
        alloc_(options_.allocator ? options_.allocator : Exec::default_allocator()),
        backend_(options_) {
    if (options_.param_rounding && *options_.param_rounding != Rounding::nearest &&
        *options_.param_rounding != Rounding::stochastic)
      detail::fail("Options::param_rounding has an unknown value");
    if constexpr (kZerothOrder) {
      if (!std::isfinite(options_.zo_eps) || !(options_.zo_eps > 0.f))
        detail::fail("Options::zo_eps = ", options_.zo_eps, " must be finite and > 0");
      if (options_.zo_directions < 1 || options_.zo_directions > unsigned(Grad::kMaxDirections))
        detail::fail("Options::zo_directions = ", options_.zo_directions, " must be in [1, ",
                     Grad::kMaxDirections, "]");
    }
    if (!options_.no_decay && kZerothOrder)
      options_.no_decay = std::vector<std::string>{"bias", "layer_norm", "layernorm"};
  }
  Optimizer(std::vector<Param> params, Hyper hyper = {}, Options options = {})
      : Optimizer(std::move(options)) {
    add_group(Group{std::move(params), hyper, {}});
  }
  Optimizer(std::vector<Group> groups, Options options = {}) : Optimizer(std::move(options)) {
    for (auto& g : groups) add_group(std::move(g));
  }

  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// Registers a group of tensors with its hyperparameters; returns the group index. The new
  /// tensors get indices num_tensors() .. num_tensors() + params.size() - 1 and zero state.
  std::size_t add_group(Group group) {
    const std::size_t gi = groups_.size();
    if (group.name.empty()) group.name = std::to_string(gi);
    Rule::validate(group.hyper, "group '" + group.name + "'");
    if (group.params.empty()) detail::fail("group '", group.name, "': has no tensors");
    check_not_perturbed("add_group");

    // Validate every tensor against every rule before touching anything.
    std::vector<Record> fresh;
    fresh.reserve(group.params.size());
    for (std::size_t i = 0; i < group.params.size(); ++i) {
      Param& p = group.params[i];
      Record r;
      r.name = p.param.name.empty() ? std::string("#") + std::to_string(records_.size() + i)
                                    : p.param.name;
      if (p.param.name.empty() && !p.key && draws_random(p.param.dtype))
        detail::fail("tensor ", r.name, " of group '", group.name,
                     "': has neither a name nor Param::key, but this composition draws random "
                     "numbers for it (stochastic rounding), which must not depend on "
                     "registration order; name the tensor or give it a key");
      check_param(p.param, r.name);
      if constexpr (kZerothOrder) {
        if (p.grad.data)
          detail::fail("tensor '", r.name, "': ", Grad::kName,
                       " computes the gradient from losses; register the tensor without one");
      }
      check_grad(p.param, p.grad, r.name);
      if constexpr (kShared) {
        r.share_block = p.share_block ? p.share_block : p.param.numel;
        if (p.param.numel % r.share_block)
          detail::fail("tensor '", r.name, "': share_block = ", p.share_block,
                       " does not divide its ", p.param.numel,
                       " elements (blocks of the shared second moment must tile the tensor)");
      } else if (p.share_block) {
        detail::fail("tensor '", r.name, "': share_block is set but the sharing policy is ",
                     Share::kName, " (it applies to share::PerBlock)");
      }
      r.param = p.param;
      r.grad = p.grad;
      r.key = p.key ? *p.key : tensor_key_from_name(r.name);
      r.group = std::uint32_t(gi);
      r.moments = Rule::moments_used(group.hyper);
      fresh.push_back(std::move(r));
    }
    check_keys_and_overlaps(fresh, records_.size());
    const Device dev =
        records_.empty() ? fresh.front().param.device : records_.front().param.device;
    for (const Record& r : fresh)
      if (!(r.param.device == dev))
        detail::fail("tensor '", r.name, "': is on ", to_string(r.param.device),
                     " but this optimizer's tensors are on ", to_string(dev),
                     " (one optimizer steps tensors of one device)");

    // Allocate zeroed state (an allocation failure throws before anything is committed).
    const Device where =
        Exec::kKind == Device::Kind::cuda ? fresh.front().param.device : Device::host();
    for (Record& r : fresh) {
      if constexpr (kBlockState) {
        r.small = r.param.numel < options_.min_quantized_numel;
        for (const auto& pat : options_.fp32_state_names)
          if (!pat.empty() && r.name.find(pat) != std::string::npos) r.small = true;
      }
      for (int k = 0; k < r.moments; ++k) {
        if (!per_element(k)) {  // share::PerBlock: one fp32 second moment per block
          r.state[k] = detail::Buffer(alloc_, r.param.numel / r.share_block * sizeof(float), where);
          backend_.fill(r.state[k].get(), 0, r.state[k].bytes());
          continue;
        }
        if (r.small) {  // a block format's small tensor: fp32 state
          r.state[k] = detail::Buffer(alloc_, r.param.numel * sizeof(float), where);
          backend_.fill(r.state[k].get(), 0, r.state[k].bytes());
          continue;
        }
        r.state[k] = detail::Buffer(alloc_, r.param.numel * sizeof(Stored), where);
        if constexpr (kBlockState) {
          backend_.fill(r.state[k].get(), State::zero_code(k), r.state[k].bytes());
          r.scale[k] = detail::Buffer(alloc_, blocks_of(r.param.numel) * sizeof(float), where);
          backend_.fill(r.scale[k].get(), 0, r.scale[k].bytes());
        } else {
          backend_.fill(r.state[k].get(), 0, r.state[k].bytes());
        }
      }
    }

    for (Record& r : fresh) records_.push_back(std::move(r));
    groups_.push_back(GroupInfo{group.name, group.hyper, Rule::moments_used(group.hyper)});
    rebuild();
    return gi;
  }

  /// Rebinds tensor `t`'s gradient; a view with data == nullptr means "no gradient": the tensor
  /// is skipped (its step count does not advance) until a gradient is bound again. Costs a table
  /// rebuild at the next step (re-capture a CUDA graph after changing bindings).
  void set_grad(std::size_t t, TensorView grad) {
    if constexpr (kZerothOrder)
      detail::fail(Grad::kName, " computes gradients from losses: set_grad does not apply");
    check_index(t);
    Record& r = records_[t];
    check_grad(r.param, grad, r.name);
    if (grad.data) check_overlap_one(grad, "gradient of '" + r.name + "'", t);
    r.grad = std::move(grad);
    dirty_ = true;
  }

  /// A frozen tensor is skipped by step() and keeps its state (torch: requires_grad=False).
  void set_frozen(std::size_t t, bool frozen) {
    check_index(t);
    check_not_perturbed("set_frozen");
    records_[t].frozen = frozen;
    dirty_ = true;
  }

  /// Replaces a group's hyperparameters (validated). Takes effect at the next step; on CUDA
  /// it is copied to the device table in stream order.
  void set_hyper(std::size_t g, const Hyper& h) {
    check_group(g);
    Rule::validate(h, "group '" + groups_[g].name + "'");
    if (Rule::moments_used(h) > groups_[g].moments)
      detail::fail("group '", groups_[g].name,
                   "': these hyperparameters need more state than the group was registered "
                   "with (e.g. momentum turned on later); register the group with them");
    groups_[g].hyper = h;
    backend_.set_hyper(g, h);
  }
  void set_lr(std::size_t g, float lr) {
    check_group(g);
    Hyper h = groups_[g].hyper;
    h.lr = lr;
    set_hyper(g, h);
  }
  const Hyper& hyper(std::size_t g) const {
    check_group(g);
    return groups_[g].hyper;
  }

  /// One optimizer step over every active tensor. CUDA: enqueued on `stream`, no allocation,
  /// no host synchronization (unless bindings changed since the last step).
  void step(Stream stream = nullptr) {
    static_assert(!kZerothOrder,
                  "alloy: a zeroth-order optimizer steps with step(loss_fn) or with "
                  "perturb/flip/update (docs/policies/spsa.md)");
    if (dirty_) {
      backend_.prepare_rebuild(stream);
      rebuild();
    }
    backend_.step(stream);
  }

  // ---- zeroth-order gradient sources (grad::Spsa) ----

  /// Where the parameters stand relative to p: at p, at p + eps z, or at p - eps z.
  enum class Perturbation { none, plus, minus };
  struct PerturbationInfo {
    Perturbation state;
    int direction;       // k of z_k
    std::uint64_t step;  // the step z belongs to (keys the direction stream with the seed)
    std::uint64_t seed;
    float eps;
  };
  /// The projected gradients of a step, in one of three forms: executor memory (device
  /// pointers on CUDA: no host sync, graph-capturable; all-reduce them first in data-parallel
  /// runs), losses in executor memory (c_k = (loss_plus[k] - loss_minus[k]) / (2 eps)), or values.
  struct ProjectedGradient {
    const float* c = nullptr;
    const float* loss_plus = nullptr;
    const float* loss_minus = nullptr;
    float values[8] = {};
  };

  bool is_perturbed() const { return zo_state_ != Perturbation::none; }
  PerturbationInfo perturbation() const {
    return {zo_state_, zo_direction_, global_step() + 1, options_.seed, options_.zo_eps};
  }

  /// Pass: p <- p + eps z_k of the coming step. Parameters must be at p.
  void perturb(Stream stream = nullptr, int k = 0) {
    static_assert(kZerothOrder,
                  "alloy: perturb() needs a zeroth-order gradient source (grad::Spsa)");
    check_direction(k);
    if (zo_state_ != Perturbation::none)
      detail::fail("perturb(): parameters are already perturbed; restore() or update() first");
    zo_pass(1.f, k, Purpose::rounding_perturb, stream);
    zo_state_ = Perturbation::plus;
    zo_direction_ = k;
  }
  /// Pass: p + eps z_k -> p - eps z_k.
  void flip(Stream stream = nullptr) {
    static_assert(kZerothOrder, "alloy: flip() needs a zeroth-order gradient source (grad::Spsa)");
    if (zo_state_ != Perturbation::plus) detail::fail("flip(): parameters are not at p + eps z");
    zo_pass(-2.f, zo_direction_, Purpose::rounding_flip, stream);
    zo_state_ = Perturbation::minus;
  }
  /// Pass: back to p (equal to the unperturbed parameters within rounding, not bitwise).
  void restore(Stream stream = nullptr) {
    static_assert(kZerothOrder,
                  "alloy: restore() needs a zeroth-order gradient source (grad::Spsa)");
    if (zo_state_ == Perturbation::none) return;
    zo_pass(zo_state_ == Perturbation::plus ? -1.f : 1.f, zo_direction_, Purpose::rounding_restore,
            stream);
    zo_state_ = Perturbation::none;
  }
  /// The update pass of the step: restores p from p - eps z_{n-1} (after flip) in registers,
  /// applies the rule with g = (1/n) sum_k c_k z_k, and with `fold` adds eps z_0 of the next
  /// step before storing (then the parameters stay perturbed: is_perturbed() is true).
  void update(const ProjectedGradient& c, Stream stream = nullptr, bool fold = true) {
    static_assert(kZerothOrder,
                  "alloy: update() needs a zeroth-order gradient source (grad::Spsa)");
    const int n = int(options_.zo_directions);
    if (zo_state_ == Perturbation::plus)
      detail::fail(
          "update(): parameters are at p + eps z; flip() (and evaluate) or restore() first");
    if (zo_state_ == Perturbation::minus && zo_direction_ != n - 1)
      detail::fail("update(): parameters are at p - eps z_", zo_direction_,
                   " but the update restores direction ", n - 1, "; restore() first");
    if (!c.c && !c.loss_plus)
      for (int k = 0; k < n; ++k)
        if (!std::isfinite(c.values[k]))
          detail::fail("update(): projected gradient ", k, " = ", c.values[k], " is not finite");
    if (c.loss_plus && !c.loss_minus) detail::fail("update(): loss_plus given without loss_minus");
    if (dirty_) {
      backend_.prepare_rebuild(stream);
      rebuild();
    }
    const auto fill = [&](auto& a, int count) {
      a.eps = options_.zo_eps;
      a.restore = zo_state_ == Perturbation::minus ? 1.f : 0.f;
      a.directions = n;
      a.fold = fold ? 1 : 0;
      a.c = c.c;
      a.loss_plus = c.loss_plus;
      a.loss_minus = c.loss_minus;
      for (int k = 0; k < count; ++k) a.c_value[k] = c.values[k];
    };
    if (n == 1) {
      exec::ZoUpdateArgs<1> a{};
      fill(a, 1);
      backend_.template run<typename Grad::template UpdateKind<Rule, State>>(
          a, true, std::uint8_t(Purpose::rounding), stream);
    } else {
      exec::ZoUpdateArgs<Grad::kMaxDirections> a{};
      fill(a, Grad::kMaxDirections);
      backend_.template run<typename Grad::template MultiUpdateKind<Rule, State>>(
          a, true, std::uint8_t(Purpose::rounding), stream);
    }
    zo_state_ = fold ? Perturbation::plus : Perturbation::none;
    zo_direction_ = 0;
  }

  /// A whole zeroth-order step (MeZO's loop, fused): `loss_fn()` evaluates the loss of the
  /// current parameters on the caller's batch and returns it as a float (it is called twice per
  /// direction). Returns the first loss, L(p + eps z_0), as MeZO reports it. Two passes over the
  /// parameters per step with one direction (flip, then update + next perturbation); the very
  /// first step adds one perturbation pass.
  template <class F>
  requires std::is_invocable_r_v<float, F&>
  float step(F&& loss_fn, Stream stream = nullptr) {
    static_assert(kZerothOrder,
                  "alloy: step(loss_fn) needs a zeroth-order gradient source (grad::Spsa)");
    const int n = int(options_.zo_directions);
    ProjectedGradient c;
    float first = 0.f;
    for (int k = 0; k < n; ++k) {
      if (zo_state_ == Perturbation::none) perturb(stream, k);
      const float lp = loss_fn();
      flip(stream);
      const float lm = loss_fn();
      if (k == 0) first = lp;
      c.values[k] = (lp - lm) / (2.f * options_.zo_eps);
      if (k + 1 < n) restore(stream);
    }
    update(c, stream, true);
    return first;
  }

  std::size_t num_tensors() const { return records_.size(); }
  std::size_t num_groups() const { return groups_.size(); }
  std::size_t group_of(std::size_t t) const {
    check_index(t);
    return records_[t].group;
  }
  const std::string& name(std::size_t t) const {
    check_index(t);
    return records_[t].name;
  }
  std::uint32_t key(std::size_t t) const {
    check_index(t);
    return records_[t].key;
  }
  const Options& options() const { return options_; }

  /// Steps taken by tensor t (as torch's state['step']). CUDA: waits for the whole device.
  std::uint32_t step_count(std::size_t t) const {
    check_index(t);
    return backend_.step_count(t);
  }
  /// Steps taken by the optimizer (keys the random streams).
  std::uint64_t global_step() const { return backend_.global_step(); }

  /// Moment k of tensor t, decoded to fp32, copied to host memory (for tests, inspection and
  /// checkpoints). Moments a group does not keep read as zeros. CUDA: synchronizes.
  std::vector<float> moment(std::size_t t, int k) const {
    check_index(t);
    if (k < 0 || k >= kMoments)
      detail::fail("moment index ", k, " out of range: ", Rule::kName, " has ", kMoments);
    const Record& r = records_[t];
    std::vector<float> out(r.param.numel, 0.f);
    if (k >= r.moments) return out;
    if (!per_element(k)) {  // each element reads its block's shared value
      std::vector<float> shared(r.param.numel / r.share_block);
      backend_.read_state(shared.data(), r.state[k].get(), r.state[k].bytes());
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = shared[i / r.share_block];
      return out;
    }
    if (r.small) {
      backend_.read_state(out.data(), r.state[k].get(), r.state[k].bytes());
      return out;
    }
    std::vector<Stored> raw(r.param.numel);
    backend_.read_state(raw.data(), r.state[k].get(), r.state[k].bytes());
    if constexpr (kBlockState) {
      std::vector<float> absmax(blocks_of(r.param.numel));
      backend_.read_state(absmax.data(), r.scale[k].get(), r.scale[k].bytes());
      for (std::size_t i = 0; i < raw.size(); ++i)
        out[i] = State::decode(State::tables(), k, raw[i], absmax[i / State::kBlock]);
    } else {
      for (std::size_t i = 0; i < raw.size(); ++i) out[i] = State::decode(raw[i]);
    }
    return out;
  }

  /// Block formats: the stored codes and per-block absmax of moment k of tensor t, copied to the
  /// host (for tests and checkpoints). Empty for tensors that keep fp32 state (!quantized(t)).
  QuantizedMoment quantized_moment(std::size_t t, int k) const requires(!State::kElementwise) {
    check_index(t);
    if (k < 0 || k >= kMoments)
      detail::fail("moment index ", k, " out of range: ", Rule::kName, " has ", kMoments);
    const Record& r = records_[t];
    QuantizedMoment q;
    if (r.small || k >= r.moments || !per_element(k)) return q;
    q.codes.resize(r.param.numel);
    q.absmax.resize(blocks_of(r.param.numel));
    backend_.read_state(q.codes.data(), r.state[k].get(), r.state[k].bytes());
    backend_.read_state(q.absmax.data(), r.scale[k].get(), r.scale[k].bytes());
    return q;
  }
  /// Whether tensor t's state is quantized (block formats: numel >= min_quantized_numel and the
  /// name matches no Options::fp32_state_names).
  bool quantized(std::size_t t) const {
    check_index(t);
    return kBlockState && !records_[t].small;
  }

  /// Bytes of optimizer state: moments (and block scales) of every tensor plus per-tensor step
  /// counts.
  std::size_t state_bytes() const {
    std::size_t b = backend_.count_bytes();
    for (const Record& r : records_)
      for (int k = 0; k < r.moments; ++k) b += r.state[k].bytes() + r.scale[k].bytes();
    return b;
  }
  /// Bytes of metadata: tensor and chunk tables, hyperparameters, per-tensor step scalars.
  std::size_t overhead_bytes() const { return backend_.overhead_bytes(); }

  /// The backend (exec::Cuda's exposes device pointers of hyperparameters for graph replay).
  auto& backend() { return backend_; }
  const auto& backend() const { return backend_; }

 private:
  struct Record {
    std::string name;
    TensorView param, grad;
    std::uint32_t key = 0, group = 0;
    int moments = 0;
    bool frozen = false;
    bool small = false;              // block format, below the size threshold: fp32 state
    std::uint64_t share_block = 0;   // share::PerBlock: elements per shared second moment
    detail::Buffer state[kMoments];  // moment values (block formats: codes)
    detail::Buffer scale[kMoments];  // block formats: one fp32 absmax per block
  };
  static constexpr bool kBlockState = !State::kElementwise;
  /// share::PerBlock: moment 1 is one fp32 value per sharing block (state[1]), not a per-element
  /// moment of the state format.
  static constexpr bool kShared = Share::kSharesSecondMoment;
  static bool per_element(int k) { return !(kShared && k == 1); }
  static std::uint64_t blocks_of(std::uint64_t numel) {
    if constexpr (kBlockState) return (numel + State::kBlock - 1) / State::kBlock;
    else return 0;
  }
  struct GroupInfo {
    std::string name;
    Hyper hyper;
    int moments;  // moments its tensors were registered with (state exists for these)
  };

  void check_not_perturbed(const char* what) const {
    if (zo_state_ != Perturbation::none)
      detail::fail(what, "(): the parameters are perturbed (",
                   zo_state_ == Perturbation::plus ? "+" : "-", "eps z); call restore() first");
  }
  void check_direction(int k) const {
    if (k < 0 || k >= int(options_.zo_directions))
      detail::fail("direction ", k,
                   " out of range: Options::zo_directions = ", options_.zo_directions);
  }
  void zo_pass(float scale, int k, Purpose rounding, Stream stream) {
    if (dirty_) {
      backend_.prepare_rebuild(stream);
      rebuild();
    }
    backend_.template run<exec::ZoPerturbKind<Grad::kDirection>>(
        exec::ZoPerturbArgs{options_.zo_eps, scale, k}, false, std::uint8_t(rounding), stream);
  }

  /// Whether a step draws random numbers for a tensor of this dtype (stochastic rounding).
  bool draws_random(DType param) const {
    return State::kRandom || (param == DType::bf16 &&
                              bf16_param_rounding(options_, kZerothOrder) == Rounding::stochastic);
  }

  void check_index(std::size_t t) const {
    if (t >= records_.size())
      detail::fail("tensor index ", t, " out of range (", records_.size(), " registered)");
  }
  void check_group(std::size_t g) const {
    if (g >= groups_.size())
      detail::fail("group index ", g, " out of range (", groups_.size(), " groups)");
  }

  static void check_view(const TensorView& v, const std::string& what) {
    if (!v.data) detail::fail(what, ": null data pointer");
    if (v.numel == 0) detail::fail(what, ": has zero elements");
    if (v.dtype != DType::f32 && v.dtype != DType::bf16 && v.dtype != DType::f16)
      detail::fail(what, ": unknown dtype");
    if (reinterpret_cast<std::uintptr_t>(v.data) % dtype_size(v.dtype))
      detail::fail(what, ": pointer is not aligned to its element size (", dtype_size(v.dtype),
                   " bytes); such storage cannot be addressed as ", dtype_name(v.dtype));
    if (!v.device.is_cuda() && v.device.index != 0)
      detail::fail(what, ": host device index must be 0 (got ", v.device.index, ")");
    if (v.device.kind != Exec::kKind)
      detail::fail(what, ": is on ", to_string(v.device), " but this optimizer uses the ",
                   Exec::kName, " executor",
                   Exec::kKind == Device::Kind::host
                       ? " (use alloy::cuda::Optimizer from <alloy/alloy.cuh> for GPU tensors)"
                       : " (use alloy::Optimizer with exec::Host for host tensors)");
    if (!v.shape.empty()) {
      std::uint64_t n = 1;
      for (auto d : v.shape) {
        if (d < 0) detail::fail(what, ": negative dimension in shape");
        if (__builtin_mul_overflow(n, std::uint64_t(d), &n))
          detail::fail(what, ": shape's element count overflows 64 bits");
      }
      if (n != v.numel) detail::fail(what, ": shape has ", n, " elements but numel is ", v.numel);
    }
    Exec::template Backend<Rule, State, Share, Grad>::check_view(v, what);
  }

  void check_param(const TensorView& p, const std::string& name) const {
    check_view(p, "tensor '" + name + "'");
    if (p.dtype == DType::f16 && options_.param_rounding == Rounding::stochastic)
      detail::fail("tensor '", name,
                   "': stochastic rounding of parameters is supported for bf16 only; this "
                   "tensor is fp16 (use Rounding::nearest or bf16 parameters)");
  }

  void check_grad(const TensorView& p, const TensorView& g, const std::string& name) const {
    if (!g.data) return;  // absent gradient: allowed
    check_view(g, "gradient of '" + name + "'");
    if (g.numel != p.numel)
      detail::fail("gradient of '", name, "': has ", g.numel, " elements, the parameter ", p.numel);
    if (!(g.device == p.device))
      detail::fail("gradient of '", name, "': is on ", to_string(g.device), ", the parameter on ",
                   to_string(p.device));
    if (!exec::dtype_pair_supported(p.dtype, g.dtype))
      detail::fail("gradient of '", name, "': dtype ", dtype_name(g.dtype), " with a ",
                   dtype_name(p.dtype),
                   " parameter is not supported (supported: equal dtypes, or fp32 parameters "
                   "with bf16/fp16 gradients)");
  }

  struct Span {
    std::uintptr_t begin, end;
    std::string what;
    int device;
  };
  void collect_spans(std::vector<Span>& s, const std::vector<Record>& rs) const {
    for (const Record& r : rs) {
      auto add = [&](const TensorView& v, std::string what) {
        if (!v.data) return;
        const auto b = reinterpret_cast<std::uintptr_t>(v.data);
        s.push_back(Span{b, b + v.bytes(), std::move(what), v.device.index});
      };
      add(r.param, "tensor '" + r.name + "'");
      add(r.grad, "gradient of '" + r.name + "'");
    }
  }
  static void check_spans(std::vector<Span>& s) {
    std::sort(s.begin(), s.end(), [](const Span& a, const Span& b) {
      return a.device != b.device ? a.device < b.device : a.begin < b.begin;
    });
    for (std::size_t i = 1; i < s.size(); ++i)
      if (s[i].device == s[i - 1].device && s[i].begin < s[i - 1].end)
        detail::fail(s[i].what, " overlaps ", s[i - 1].what,
                     " in memory; every parameter and gradient must have storage of its own");
  }
  void check_keys_and_overlaps(const std::vector<Record>& fresh, std::size_t) const {
    std::vector<std::pair<std::uint32_t, const std::string*>> keys;
    for (const Record& r : records_) keys.emplace_back(r.key, &r.name);
    for (const Record& r : fresh) keys.emplace_back(r.key, &r.name);
    std::sort(keys.begin(), keys.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t i = 1; i < keys.size(); ++i)
      if (keys[i].first == keys[i - 1].first)
        detail::fail("tensors '", *keys[i - 1].second, "' and '", *keys[i].second,
                     "' have the same random-stream key ", keys[i].first,
                     " (equal names, or a hash collision); give one a distinct name or an "
                     "explicit Param::key");
    std::vector<Span> spans;
    collect_spans(spans, records_);
    collect_spans(spans, fresh);
    check_spans(spans);
  }
  void check_overlap_one(const TensorView& g, const std::string& what, std::size_t skip) const {
    std::vector<Span> spans;
    for (std::size_t i = 0; i < records_.size(); ++i) {
      const Record& r = records_[i];
      const auto add = [&](const TensorView& v, std::string w) {
        if (!v.data) return;
        const auto b = reinterpret_cast<std::uintptr_t>(v.data);
        spans.push_back(Span{b, b + v.bytes(), std::move(w), v.device.index});
      };
      add(r.param, "tensor '" + r.name + "'");
      if (i != skip) add(r.grad, "gradient of '" + r.name + "'");
    }
    const auto b = reinterpret_cast<std::uintptr_t>(g.data);
    spans.push_back(Span{b, b + g.bytes(), what, g.device.index});
    check_spans(spans);
  }

  void rebuild() {
    std::vector<exec::TensorEntry> entries(records_.size());
    for (std::size_t i = 0; i < records_.size(); ++i) {
      const Record& r = records_[i];
      exec::TensorEntry& e = entries[i];
      e.param = r.param.data;
      e.grad = r.grad.data;
      e.state[0] = e.state[1] = e.scale[0] = e.scale[1] = nullptr;
      for (int k = 0; k < kMoments && k < r.moments; ++k) {
        e.state[k] = r.state[k].get();
        e.scale[k] = r.scale[k].get();
      }
      e.numel = r.param.numel;
      e.share_block = r.share_block;
      e.key = r.key;
      e.group = r.group;
      e.flags = 0;
      if ((r.grad.data || !Grad::kReadsGradient) && !r.frozen) e.flags |= exec::kTensorActive;
      if (options_.no_decay)
        for (const auto& pat : *options_.no_decay)
          if (!pat.empty() && r.name.find(pat) != std::string::npos) e.flags |= exec::kNoDecay;
      if (r.small) e.flags |= exec::kSmallState;
      if (reinterpret_cast<std::uintptr_t>(r.param.data) % 16 == 0)
        e.flags |= exec::kParamAligned16;
      if (reinterpret_cast<std::uintptr_t>(r.grad.data) % 16 == 0) e.flags |= exec::kGradAligned16;
      e.moments = std::uint8_t(r.moments);
      e.param_dtype = std::uint8_t(r.param.dtype);
      e.grad_dtype = std::uint8_t(r.grad.data ? r.grad.dtype : r.param.dtype);
      e.pad_ = 0;
    }
    std::vector<Hyper> hypers;
    for (const auto& g : groups_) hypers.push_back(g.hyper);
    backend_.rebuild(entries, hypers);
    dirty_ = false;
  }

  Options options_;
  std::shared_ptr<Allocator> alloc_;
  typename Exec::template Backend<Rule, State, Share, Grad> backend_;
  std::vector<Record> records_;
  std::vector<GroupInfo> groups_;
  bool dirty_ = false;
  Perturbation zo_state_ = Perturbation::none;
  int zo_direction_ = 0;
};

ALLOY_NAMESPACE_END
