// The host executor: the same tiles and element math as the CUDA executor, on CPU threads.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "../compose.hpp"
#include "../core/allocator.hpp"
#include "../core/options.hpp"
#include "../share/per_block.hpp"
#include "dispatch.hpp"
#include "plan.hpp"
#include "thread_pool.hpp"
#include "tile.hpp"

ALLOY_NAMESPACE_BEGIN
namespace exec {

/// Steps tensors in host memory. A real backend (CPU training, the demo without a GPU): one
/// persistent thread pool, work split evenly by elements, tiles of 8 elements that the compiler
/// vectorizes. Results are bitwise independent of the thread count.
struct Host {
  static constexpr Device::Kind kKind = Device::Kind::host;
  static constexpr const char* kName = "host";
  static std::shared_ptr<Allocator> default_allocator() {
    return std::make_shared<HostAllocator>();
  }
  template <class Rule, class Format, class Share, class Grad>
  class Backend;
};

template <class Rule, class Format, class Share, class Grad>
class Host::Backend {
  using Hyper = typename Rule::Hyper;
  using Scalars = typename Rule::Scalars;
  static constexpr int kTile = 8;

 public:
  Backend(const Options& o)
      : seed_(o.seed), rounding_(bf16_param_rounding(o, is_zeroth_order<Grad>())),
        pool_(o.host_threads ? o.host_threads : std::max(1u, std::thread::hardware_concurrency())) {
  }

  static void check_view(const TensorView&, const std::string&) {}
  static void prepare_rebuild(Stream) {}
  static void fill(void* p, int byte, std::size_t bytes) { std::memset(p, byte, bytes); }

  /// New tables; step counts of tensors that existed before are kept.
  void rebuild(const std::vector<TensorEntry>& entries, const std::vector<Hyper>& hypers) {
    entries_ = entries;
    hypers_ = hypers;
    counts_.resize(entries.size(), 0);
    scalars_.resize(entries.size());
    plans_ = plan_all(entries_, pool_.size());
  }
  void set_hyper(std::size_t g, const Hyper& h) { hypers_[g] = h; }

  /// A step of the rule over gradient tensors (grad::Backprop).
  void step(Stream s) {
    if constexpr (Share::kSharesSecondMoment)
      run<SharedKind<Rule, Format>>(NoArgs{}, true, std::uint8_t(Purpose::rounding), s);
    else run<BackpropKind<Rule, Format>>(NoArgs{}, true, std::uint8_t(Purpose::rounding), s);
  }

  /// One pass of element kind Kind over every active tensor. `advance`: a step of the rule
  /// (step counts, global step and per-tensor scalars advance first); otherwise a parameter pass
  /// belonging to the next step (global step + 1).
  template <class Kind, class Args>
  void run(const Args& args, bool advance, std::uint8_t rounding_purpose, Stream) {
    if (advance) {
      ++global_step_;
      for (std::size_t t = 0; t < entries_.size(); ++t)
        if (entries_[t].flags & kTensorActive)
          scalars_[t] = Rule::scalars(tensor_hyper(hypers_[entries_[t].group], entries_[t].flags),
                                      ++counts_[t]);
      if constexpr (Share::kSharesSecondMoment) advance_shared_second_moments();
    }
    const Pass<Args> pass{seed_, std::uint32_t(global_step_ + (advance ? 0 : 1)), rounding_purpose,
                          args, tables()};
    for (const GroupPlan& plan : plans_)
      dispatch_dtypes(plan.param, plan.grad, rounding_, [&]<class PT, class GT, Rounding PR>() {
        run_group<typename Kind::template type<PT, GT, PR>>(plan, pass);
      });
  }

  /// The state format's tables (block formats), else null.
  static const void* tables() {
    if constexpr (Format::kElementwise) return nullptr;
    else return &Format::tables();
  }

  std::uint32_t step_count(std::size_t t) const { return counts_[t]; }
  std::uint64_t global_step() const { return global_step_; }
  void read_state(void* dst, const void* src, std::size_t bytes) const {
    std::memcpy(dst, src, bytes);
  }
  /// Bytes of per-tensor step counts (counted as state).
  std::size_t count_bytes() const { return counts_.size() * sizeof(std::uint32_t); }
  std::size_t overhead_bytes() const {
    std::size_t b = entries_.size() * sizeof(TensorEntry) + scalars_.size() * sizeof(Scalars) +
                    hypers_.size() * sizeof(Hyper) + sizeof(global_step_);
    for (const auto& p : plans_)
      b += p.chunks.size() * sizeof(Chunk) + p.worker_begin.size() * sizeof(std::uint32_t);
    return b;
  }

 private:
  template <class E>
  void run_group(const GroupPlan& plan, const Pass<typename E::Args>& pass) {
    const unsigned workers = unsigned(plan.worker_begin.size() - 1);
    pool_.run(workers, [&](unsigned w) {
      for (std::uint32_t c = plan.worker_begin[w]; c < plan.worker_begin[w + 1]; ++c) {
        const Chunk ch = plan.chunks[c];
        const TensorEntry& t = entries_[ch.tensor];
        typename E::Scalars s{};
        if constexpr (std::is_same_v<typename E::Scalars, Scalars>) s = scalars_[ch.tensor];
        if constexpr (kBlockKind<E>) {
          if (t.flags & kSmallState) elementwise_range<typename E::Small>(t, ch, s, pass);
          else block_range<E>(t, ch, s, pass);
        } else {
          elementwise_range<E>(t, ch, s, pass);
        }
      }
    });
  }

  template <class E>
  static void elementwise_range(const TensorEntry& t, const Chunk& ch, const typename E::Scalars& s,
                                const Pass<typename E::Args>& pass) {
    std::uint64_t i = ch.begin;  // a multiple of kChunkAlign, hence of kTile
    for (; i + kTile <= ch.end; i += kTile) {
      typename E::template Tile<kTile> tile;
      tile.template load<false, false, false>(t, i);
      tile.template update_store<false, false>(t, i, s, pass);
    }
    scalar_range<E>(t, i, ch.end, s, pass);
  }

  /// share::PerBlock: v_b <- beta2 v_b + (1 - beta2) mean_b(g^2) for every block of every active
  /// tensor (blocks spread over the workers; each block's sum in the fixed order of
  /// share::block_mean_sq, so the result does not depend on the worker count).
  void advance_shared_second_moments() {
    for (const GroupPlan& plan : plans_)
      dispatch_dtypes(plan.param, plan.grad, rounding_, [&]<class PT, class GT, Rounding PR>() {
        const unsigned workers = unsigned(plan.worker_begin.size() - 1);
        pool_.run(workers, [&](unsigned w) {
          std::uint64_t at = 0;  // block index over the group, for a round-robin split
          for (std::uint32_t t : plan.tensors) {
            const TensorEntry& e = entries_[t];
            const GT* g = static_cast<const GT*>(e.grad);
            float* v = static_cast<float*>(e.state[1]);
            const std::uint64_t bs = e.share_block, nb = e.numel / bs;
            for (std::uint64_t b = 0; b < nb; ++b, ++at) {
              if (at % workers != w) continue;
              const float mean = share::block_mean_sq(
                  bs, [&](std::uint64_t i) { return to_float(g[b * bs + i]); });
              v[b] = Rule::second_moment(scalars_[t], v[b], mean);
            }
          }
        });
      });
  }

  /// Block formats: one tile per quantization block (chunks start on block boundaries).
  template <class E>
  static void block_range(const TensorEntry& t, const Chunk& ch, const typename E::Scalars& s,
                          const Pass<typename E::Args>& pass) {
    constexpr int B = E::State::kBlock;
    for (std::uint64_t i = ch.begin; i < ch.end; i += B) {
      const int valid = int(std::min<std::uint64_t>(B, ch.end - i));
      typename E::template Tile<B> tile;
      tile.template load<false, false, false>(t, i, valid);
      tile.template update_store<false, false, Solo>(t, i, s, pass, valid);
    }
  }

  std::uint64_t seed_;
  Rounding rounding_;
  ThreadPool pool_;
  std::vector<TensorEntry> entries_;
  std::vector<Hyper> hypers_;
  std::vector<std::uint32_t> counts_;
  std::vector<Scalars> scalars_;
  std::vector<GroupPlan> plans_;
  std::uint64_t global_step_ = 0;
};

}  // namespace exec
ALLOY_NAMESPACE_END
