// Test helpers shared by the CUDA test files: tensors in poisoned arenas, a guarded allocator,
// and host/CUDA optimizer twins stepped together and compared byte for byte.
#pragma once

#include <cstring>
#include <memory>
#include <random>

#include "../common/cases.hpp"
#include "cuda_memory.hpp"

using namespace testing;
using alloy::Device;
using alloy::Options;
using alloy::TensorView;
using alloy::exec::Cuda;
using alloy::exec::Host;

namespace {

/// Tensors of one dtype laid out inside one buffer, each at an element offset with a gap of
/// poison bytes (0xff: NaN in every dtype) before it; a host buffer and a device twin.
struct Arena {
  DType dtype;
  std::vector<std::uint64_t> offset, numel;
  std::vector<std::uint8_t> host;
  std::uint8_t* dev = nullptr;

  /// `misalign[i % size]` extra elements before tensor i: offsets need not be 16-byte aligned.
  Arena(DType t, const std::vector<std::uint64_t>& sizes, const std::vector<int>& misalign)
      : dtype(t) {
    std::uint64_t at = 0;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      at += 37 + std::uint64_t(misalign.empty() ? 0 : misalign[i % misalign.size()]);
      offset.push_back(at);
      numel.push_back(sizes[i]);
      at += sizes[i];
    }
    at += 41;
    host.assign(at * alloy::dtype_size(t), 0xff);
    REQUIRE(cudaMalloc(&dev, host.size()) == cudaSuccess);
  }
  ~Arena() { cudaFree(dev); }
  Arena(const Arena&) = delete;

  std::size_t esize() const { return alloy::dtype_size(dtype); }
  void* host_ptr(std::size_t i) { return host.data() + offset[i] * esize(); }
  /// Element j of tensor i on the host side, stored in the arena's dtype (rounded to nearest).
  void set(std::size_t i, std::uint64_t j, float x) {
    std::uint8_t* at = static_cast<std::uint8_t*>(host_ptr(i)) + j * esize();
    if (dtype == DType::f32) std::memcpy(at, &x, 4);
    else {
      const std::uint16_t b =
          dtype == DType::bf16 ? alloy::to_bf16_nearest(x).bits : alloy::to_fp16_nearest(x).bits;
      std::memcpy(at, &b, 2);
    }
  }
  TensorView host_view(std::size_t i, std::string name) {
    return TensorView(host_ptr(i), numel[i], dtype, Device::host(), std::move(name));
  }
  TensorView dev_view(std::size_t i, std::string name) {
    return TensorView(dev + offset[i] * esize(), numel[i], dtype, Device::cuda(0), std::move(name));
  }
  /// Fresh N(0, scale^2) values in every tensor (gaps stay poison).
  void fill(std::mt19937_64& rng, double scale) {
    for (std::size_t i = 0; i < numel.size(); ++i) {
      HostTensor t(dtype, numel[i]);
      fill_normal(t, rng, scale);
      std::memcpy(host_ptr(i), t.data(), t.bytes.size());
    }
  }
  void upload(cudaStream_t s = nullptr) {
    REQUIRE(cudaMemcpyAsync(dev, host.data(), host.size(), cudaMemcpyHostToDevice, s) ==
            cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  }
  std::vector<std::uint8_t> download() const {
    std::vector<std::uint8_t> out(host.size());
    REQUIRE(cudaMemcpy(out.data(), dev, out.size(), cudaMemcpyDeviceToHost) == cudaSuccess);
    return out;
  }
  /// True when every byte outside the tensors is still poison.
  static bool gaps_intact(const Arena& a, const std::vector<std::uint8_t>& bytes) {
    std::uint64_t at = 0;
    for (std::size_t i = 0; i <= a.offset.size(); ++i) {
      const std::uint64_t end = i < a.offset.size() ? a.offset[i] : bytes.size() / a.esize();
      for (std::uint64_t b = at * a.esize(); b < end * a.esize(); ++b)
        if (bytes[b] != 0xff) return false;
      if (i < a.offset.size()) at = a.offset[i] + a.numel[i];
    }
    return true;
  }
};

/// A device allocator that surrounds every allocation with 256 poison bytes on each side and
/// can check they were never written.
class GuardedAllocator final : public alloy::Allocator {
 public:
  void* allocate(std::size_t bytes, Device where) override {
    REQUIRE(where.is_cuda());
    std::uint8_t* p = nullptr;
    REQUIRE(cudaMalloc(&p, bytes + 2 * kGuard) == cudaSuccess);
    REQUIRE(cudaMemset(p, 0xff, bytes + 2 * kGuard) == cudaSuccess);
    blocks_.push_back({p, bytes});
    return p + kGuard;
  }
  void deallocate(void* ptr, std::size_t, Device) noexcept override {
    for (auto& b : blocks_)
      if (b.base + kGuard == ptr) {
        cudaFree(b.base);
        b.base = nullptr;
      }
  }
  bool guards_intact() const {
    for (const auto& b : blocks_) {
      if (!b.base) continue;
      std::vector<std::uint8_t> g(kGuard);
      for (std::size_t off : {std::size_t(0), kGuard + b.bytes}) {
        if (cudaMemcpy(g.data(), b.base + off, kGuard, cudaMemcpyDeviceToHost) != cudaSuccess)
          return false;
        for (auto x : g)
          if (x != 0xff) return false;
      }
    }
    return true;
  }
  std::size_t live_blocks() const {
    std::size_t n = 0;
    for (const auto& b : blocks_) n += b.base != nullptr;
    return n;
  }

 private:
  static constexpr std::size_t kGuard = 256;
  struct Block {
    std::uint8_t* base;
    std::size_t bytes;
  };
  std::vector<Block> blocks_;
};

/// Host and CUDA optimizers over the same arenas, stepped together; compares every byte.
template <class Rule, class Format, class Share = alloy::share::PerParameter>
struct Twins {
  Arena hp, hg;  // parameters and gradients (host and device twins inside)
  using HostOpt = alloy::Optimizer<Rule, Format, Share, alloy::grad::Backprop, Host>;
  using CudaOpt = alloy::cuda::Optimizer<Rule, Format, Share>;
  std::unique_ptr<HostOpt> host;
  std::unique_ptr<CudaOpt> cuda;
  std::mt19937_64 rng;

  Twins(const std::vector<std::uint64_t>& sizes, DType p, DType g, const typename Rule::Hyper& h,
        Options o, const std::vector<int>& mis_p = {}, const std::vector<int>& mis_g = {},
        bool reverse_order = false, std::uint64_t seed = 5,
        const std::vector<std::uint64_t>& share_blocks = {})
      : hp(p, sizes, mis_p), hg(g, sizes, mis_g), rng(seed) {
    hp.fill(rng, 1.0);
    hp.upload();
    std::vector<alloy::Param> hostp, devp;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      const std::size_t i = reverse_order ? sizes.size() - 1 - k : k;
      const std::string n = "w" + std::to_string(i);
      devp.push_back({hp.dev_view(i, n), hg.dev_view(i, n + ".g")});
      if (!share_blocks.empty()) devp.back().share_block = share_blocks[i];
    }
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const std::string n = "w" + std::to_string(i);
      hostp.push_back({hp.host_view(i, n), hg.host_view(i, n + ".g")});
      if (!share_blocks.empty()) hostp.back().share_block = share_blocks[i];
    }
    Options ho = o;
    ho.allocator = nullptr;  // the host twin uses the host allocator
    host = std::make_unique<HostOpt>(hostp, h, ho);
    cuda = std::make_unique<CudaOpt>(devp, h, o);
  }
  void step(double grad_scale, cudaStream_t s = nullptr) {
    step_edited(
        grad_scale, [](Arena&) {}, s);
  }
  /// A step whose random gradients `edit` changes first (both twins see the edited ones).
  template <class Edit>
  void step_edited(double grad_scale, Edit&& edit, cudaStream_t s = nullptr) {
    hg.fill(rng, grad_scale);
    edit(hg);
    hg.upload(s);
    host->step();
    cuda->step(s);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    REQUIRE(cudaGetLastError() == cudaSuccess);
  }
  /// One CUDA step captured on `s` into a graph, then `replays` replays of it, each with new
  /// random gradients and a host step beside it.
  void step_captured(double grad_scale, cudaStream_t s, int replays) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
    cuda->step(s);
    REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);  // unjoined work would fail here
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    for (int k = 0; k < replays; ++k) {
      hg.fill(rng, grad_scale);
      hg.upload(s);
      REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
      host->step();
      REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  /// Parameters (with their gaps) and every moment equal bit for bit.
  void check_equal(bool reverse_order = false) {
    const auto dev = hp.download();
    CHECK(Arena::gaps_intact(hp, dev));
    CHECK(std::memcmp(dev.data(), hp.host.data(), dev.size()) == 0);
    const std::size_t n = hp.numel.size();
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t j = reverse_order ? n - 1 - i : i;  // the CUDA index of tensor i
      for (int k = 0; k < Rule::kMoments; ++k) {
        const auto a = host->moment(i, k), b = cuda->moment(j, k);
        CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
        if constexpr (!Format::kElementwise) {  // the codes and block absmax themselves
          const auto qa = host->quantized_moment(i, k), qb = cuda->quantized_moment(j, k);
          CHECK(qa.codes == qb.codes);
          CHECK(std::memcmp(qa.absmax.data(), qb.absmax.data(), qa.absmax.size() * 4) == 0);
          CHECK(host->quantized(i) == cuda->quantized(j));
        }
      }
      CHECK(host->step_count(i) == cuda->step_count(j));
    }
  }
};

const std::vector<std::uint64_t> kMixed = {1, 3, 4095, 4097, 70001, 8, 256, 1000003};

template <class Rule, class Format>
void cuda_equals_host(const typename Rule::Hyper& h) {
  for (const auto& dc : kDtypeCases) {
    Options o;
    o.seed = 99;
    o.param_rounding = dc.pr;
    const std::string what = std::string(Rule::kName) + "/" + Format::kName + " param " +
                             alloy::dtype_name(dc.p) + " grad " + alloy::dtype_name(dc.g) +
                             (dc.pr == Rounding::stochastic ? " SR" : "");
    INFO(what);
    Twins<Rule, Format> tw(kMixed, dc.p, dc.g, h, o);
    for (int s = 0; s < 12; ++s) tw.step(Rule::kMoments == 2 ? 1e-2 : 1.0);
    tw.check_equal();
  }
}

}  // namespace
