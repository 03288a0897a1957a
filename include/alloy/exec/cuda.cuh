// The CUDA executor: per step, one tiny prologue launch (per-tensor step counts and scalars,
// from hyperparameters in device memory) and one persistent, vectorized launch per
// (parameter dtype, gradient dtype) group over all its tensors; share::PerBlock adds its
// one-pass launches, two of them on a side stream of the executor's own, forked from the
// caller's stream and joined back within the step. No allocation, no host synchronization,
// nothing copied from the host: a step can be captured in a CUDA graph.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "../compose.hpp"
#include "../core/allocator.hpp"
#include "../core/error.hpp"
#include "../core/options.hpp"
#include "../share/per_block.hpp"
#include "dispatch.hpp"
#include "plan.hpp"
#include "stage.cuh"
#include "tile.hpp"

ALLOY_NAMESPACE_BEGIN
namespace exec {

namespace cuda_detail {
inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) detail::fail("CUDA error in ", what, ": ", cudaGetErrorString(e));
}

/// Makes device `d` current for its lifetime.
class DeviceGuard {
 public:
  explicit DeviceGuard(int d) {
    check(cudaGetDevice(&old_), "cudaGetDevice");
    if (d != old_) check(cudaSetDevice(d), "cudaSetDevice");
  }
  ~DeviceGuard() {
    int now = -1;
    if (cudaGetDevice(&now) == cudaSuccess && now != old_) cudaSetDevice(old_);
  }

 private:
  int old_ = 0;
};

/// A stream of the executor's own that a step forks from the caller's stream and joins back
/// (two events), so that launches on it may run beside those on the caller's stream. Graph
/// capture follows the fork and the join. Created on a device by `create`, before any capture.
class SideStream {
 public:
  SideStream() = default;
  SideStream(SideStream&& o) noexcept { swap(o); }
  SideStream& operator=(SideStream&& o) noexcept {
    swap(o);
    return *this;
  }
  ~SideStream() {
    if (!stream_) return;
    cudaEventDestroy(fork_);
    cudaEventDestroy(join_);
    cudaStreamDestroy(stream_);  // returns at once; pending work still completes
  }
  bool ready() const { return stream_ != nullptr; }
  /// The stream's priority (cudaStreamCreateWithPriority's).
  int priority() const { return priority_; }
  void create(int device, int priority = 0) {
    if (stream_) return;
    DeviceGuard guard(device);
    SideStream s;
    check(cudaStreamCreateWithPriority(&s.stream_, cudaStreamNonBlocking, priority),
          "cudaStreamCreateWithPriority");
    s.priority_ = priority;
    check(cudaEventCreateWithFlags(&s.fork_, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventCreateWithFlags(&s.join_, cudaEventDisableTiming), "cudaEventCreate");
    swap(s);
  }
  /// The side stream, after it waits for everything enqueued on `s` so far.
  cudaStream_t fork(cudaStream_t s) {
    check(cudaEventRecord(fork_, s), "cudaEventRecord");
    check(cudaStreamWaitEvent(stream_, fork_, 0), "cudaStreamWaitEvent");
    return stream_;
  }
  /// `s` waits for everything enqueued on the side stream so far.
  void join(cudaStream_t s) {
    check(cudaEventRecord(join_, stream_), "cudaEventRecord");
    check(cudaStreamWaitEvent(s, join_, 0), "cudaStreamWaitEvent");
  }

 private:
  void swap(SideStream& o) noexcept {
    std::swap(stream_, o.stream_);
    std::swap(fork_, o.fork_);
    std::swap(join_, o.join_);
    std::swap(priority_, o.priority_);
  }
  cudaStream_t stream_ = nullptr;
  cudaEvent_t fork_ = nullptr, join_ = nullptr;
  int priority_ = 0;
};
}  // namespace cuda_detail

#define ALLOY_CUDA_CHECK(expr) ::alloy::exec::cuda_detail::check((expr), #expr)

/// cudaMalloc / cudaFree on the view's device. The default allocator of the CUDA executor.
class CudaAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes, Device where) override {
    if (!where.is_cuda()) detail::fail("CudaAllocator cannot allocate on ", to_string(where));
    cuda_detail::DeviceGuard guard(where.index);
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess)
      detail::fail("cudaMalloc of ", bytes, " bytes on ", to_string(where),
                   " failed: ", cudaGetErrorString(e));
    return p;
  }
  void deallocate(void* ptr, std::size_t, Device where) noexcept override {
    int old = 0;
    cudaGetDevice(&old);
    if (old != where.index) cudaSetDevice(where.index);
    cudaFree(ptr);
    if (old != where.index) cudaSetDevice(old);
  }
};

/// Launch shape of the step kernel, per architecture.
struct Tuning {
  int threads;  // per block
  int unroll;   // tiles in flight per thread
};

// sm_90 (H100) values; the macros exist so bench/tune.sh can sweep them without editing code.
#ifndef ALLOY_SM90_THREADS
#define ALLOY_SM90_THREADS 256
#endif
#ifndef ALLOY_SM90_UNROLL_4
#define ALLOY_SM90_UNROLL_4 4
#endif
#ifndef ALLOY_SM90_UNROLL_8
#define ALLOY_SM90_UNROLL_8 2
#endif
#ifndef ALLOY_SM90_UNROLL_16
#define ALLOY_SM90_UNROLL_16 1
#endif

// Block-quantized formats (Int8Blockwise): threads per block, tiles in flight per thread (by
// tile width), and the depth of the fp32-state path of small tensors inside the same kernel.
#ifndef ALLOY_SM90_BLOCK_THREADS
#define ALLOY_SM90_BLOCK_THREADS 256
#endif
#ifndef ALLOY_SM90_BLOCK_UNROLL_8
#define ALLOY_SM90_BLOCK_UNROLL_8 2
#endif
#ifndef ALLOY_SM90_BLOCK_UNROLL_16
#define ALLOY_SM90_BLOCK_UNROLL_16 1
#endif
#ifndef ALLOY_SM90_SMALL_UNROLL
#define ALLOY_SM90_SMALL_UNROLL 1
#endif
// Threads per SM the block-quantized step kernels must fit (__launch_bounds__' minimum blocks
// times the block size): 512 caps them at 128 registers. (With staging, shared memory leaves one
// 256-thread block per SM; lifting the cap to 255 registers ran within -1%..+0.5%, 2026-11-26.)
#ifndef ALLOY_BLOCK_MIN_THREADS_PER_SM
#define ALLOY_BLOCK_MIN_THREADS_PER_SM 512
#endif

// Chunk lists from a queue, by parameter width: a launch group is planned as lists of this many
// elements (plan_queue; fewer where a group is too small to give every block one), block b walks
// list b and then takes the next list from a counter whenever it finishes one
// (StepParams::queue), instead of walking one fixed list. 0: one fixed list per block. The fp32
// kernels are bound by memory, which serves some SMs faster than others. On the H100
// (2026-11-27, docs/policies/int8.md, bench/results/session12_ab_h100.txt), 8-bit AdamW: fixed
// lists ran flat fp32 at 0.911-0.920 of copy and llama1b fp32 at 0.929-0.934; lists of 32K
// elements at 0.974-0.977 and 0.992-0.995, of 64K at 0.957-0.959 and 0.975-0.976; 16K-element
// lists ran flat at 0.80 (each list restarts the staging pipeline). AdamW with fp32 or bf16
// state, Sgd and the zeroth-order passes: 0.89-0.94 -> 0.92-0.97 with 32K-element lists, 0.90-0.95
// with 128K. The 8-bit kernels with 16-bit parameters (ALLOY_QUEUE_LIST_ELEMENTS_16BIT: block
// formats) are bound by issue and their SMs finish within 2% of each other
// (Nsight Compute at the boost clock, thirteenth session, bench/results/session13_ab_h100.txt):
// a restart costs them about 2 us of a block's time, and 8-bit flat bf16 ran at 0.83 with 64K-
// element lists, 0.85 with 128K, against 0.89-0.90 with one fixed list per block.
#ifndef ALLOY_QUEUE_LIST_ELEMENTS_FP32
#define ALLOY_QUEUE_LIST_ELEMENTS_FP32 32768
#endif
#ifndef ALLOY_QUEUE_LIST_ELEMENTS_16BIT
#define ALLOY_QUEUE_LIST_ELEMENTS_16BIT 0
#endif
// The elementwise formats' kernels with 16-bit parameters are bound by memory as the fp32 ones:
// with fixed lists their SMs finished far apart (AdamW with fp32 state, flat bf16, Nsight
// Compute at the boost clock: active cycles min / average / max 2.56M / 3.84M / 4.20M; with
// 32K-element lists 3.96M / 4.01M / 4.04M). On the H100 (2026-11-27, thirteenth session,
// bench/results/session13_ab_h100.txt), fixed lists -> 32K -> 128K-element lists: AdamW Fp32
// flat bf16 0.920-0.922 -> 0.949-0.955 -> 0.934-0.937 of copy, llama1b bf16 0.926-0.930 ->
// 0.962-0.965 -> 0.947-0.948; AdamW Bf16, Sgd alike; MeZO's passes 0.507-0.520 -> 0.528-0.546.
#ifndef ALLOY_QUEUE_LIST_ELEMENTS_16BIT_ELEMENTWISE
#define ALLOY_QUEUE_LIST_ELEMENTS_16BIT_ELEMENTWISE 32768
#endif
// With a queue, the part (permille) of a group that the blocks' first lists hold, one list
// each, the rest coming in lists of ALLOY_QUEUE_LIST_ELEMENTS_* (few restarts, and small lists
// at the end to even the blocks out); 0: every list that size. On the H100 (thirteenth session),
// 16-bit lists of 64K elements with a head of 950 ran 8-bit llama1b bf16 at 0.917-0.918 of copy
// against 0.902-0.907 with fixed lists, and flat bf16 at 0.882-0.891 against 0.886-0.902: off by
// default, since the flat row is the one at its target.
#ifndef ALLOY_QUEUE_HEAD_PERMILLE_FP32
#define ALLOY_QUEUE_HEAD_PERMILLE_FP32 0
#endif
#ifndef ALLOY_QUEUE_HEAD_PERMILLE_16BIT
#define ALLOY_QUEUE_HEAD_PERMILLE_16BIT 0
#endif
/// Queued lists of a launch group, by parameter width and whether its state format is
/// block-quantized: elements per list (0: no queue) and the head's permille.
struct QueueShape {
  std::uint64_t list;
  unsigned head;
};
constexpr QueueShape queue_shape(DType param, bool block_format) {
  if (param == DType::f32) return {ALLOY_QUEUE_LIST_ELEMENTS_FP32, ALLOY_QUEUE_HEAD_PERMILLE_FP32};
  const std::uint64_t list =
      block_format ? ALLOY_QUEUE_LIST_ELEMENTS_16BIT : ALLOY_QUEUE_LIST_ELEMENTS_16BIT_ELEMENTWISE;
  return {list, ALLOY_QUEUE_HEAD_PERMILLE_16BIT};
}
/// Queued lists are cut on multiples of this many elements: one iteration of a 256-thread block
/// over 16-element tiles, so that no list leaves a remainder to a staged loop's tail.
inline constexpr std::uint64_t kQueueAlign = 4096;
/// Whether E's step kernel walks exactly one chunk list per thread block: kinds that never run
/// over a launch with a queue (queue_shape) or more lists than blocks. Block kinds run over
/// groups of their own format only; other kinds (the zeroth-order passes among them) also over
/// block-quantized groups. Every other kernel takes a queue where the launch has one, else lists
/// b, b + grid, ... (any number of lists).
template <class E>
inline constexpr bool kOneList = false;
template <class E>
requires requires { typename E::Param; }
inline constexpr bool kOneList<E> =
    dtype_of<typename E::Param>::value != DType::f32 &&
    queue_shape(dtype_of<typename E::Param>::value, true).list == 0 &&
    (kBlockKind<E> || queue_shape(dtype_of<typename E::Param>::value, false).list == 0);

/// sm_90 (H100), chosen by bench/tune.sh on the `flat` and `llama1b` rows
/// (bench/results/tune_sm90.txt, docs/benchmarks.md): 256 threads; tiles of 4 elements (all
/// arrays fp32) 4 deep, tiles of 8 elements (some array 16-bit) 2 deep, i.e. 16 elements of
/// every array in flight per thread. 512 threads: within +-0.5% except -2.6% on AdamW/Bf16
/// bf16 flat; half the depth: up to -2% (AdamW/Fp32 bf16 flat); twice the depth: -13 to -20%
/// on AdamW (register pressure halves occupancy). Block-quantized state (bench/tune.sh, 2026-11-25,
/// docs/policies/int8.md): 16-element tiles 1 deep (kBlockTile); before fp::Fast, fp32
/// parameters ran best with 8-element tiles 2 deep, now 16 is 3-5% faster (2026-11-26); the
/// other choices were 4-11% slower on the `flat` rows.
template <class E>
constexpr Tuning tuning_sm90() {
  if constexpr (requires { E::kUnrollSm90; }) return Tuning{ALLOY_SM90_THREADS, E::kUnrollSm90};
  if constexpr (kBlockKind<E>)
    return Tuning{ALLOY_SM90_BLOCK_THREADS,
                  E::kVec == 8 ? ALLOY_SM90_BLOCK_UNROLL_8 : ALLOY_SM90_BLOCK_UNROLL_16};
  if constexpr (E::kVec == 4) return Tuning{ALLOY_SM90_THREADS, ALLOY_SM90_UNROLL_4};
  if constexpr (E::kVec == 8) return Tuning{ALLOY_SM90_THREADS, ALLOY_SM90_UNROLL_8};
  return Tuning{ALLOY_SM90_THREADS, ALLOY_SM90_UNROLL_16};
}

template <class E>
inline constexpr Tuning kTuningSm90 = tuning_sm90<E>();

template <class E, class RuleScalars>
struct StepParams {
  const TensorEntry* entries;
  const Chunk* chunks;
  const std::uint32_t* worker_begin;
  const RuleScalars* scalars;
  const std::uint32_t* global_step;
  std::uint32_t step_offset;  // 0: the step the prologue just advanced to; 1: the next one
  std::uint64_t seed;
  std::uint8_t rounding_purpose;
  typename E::Args args;
  const void* tables;  // the state format's tables in device memory (block formats), else null
  // Null: block b walks the chunk lists b, b + grid, ... of `workers`. Else {lists taken, blocks
  // done}, both 0 at launch: block b walks list b, then takes list grid + (lists taken) until
  // none is left, and the last block out sets both back to 0 for the next launch (kOneList
  // kernels: list b only).
  std::uint32_t* queue;
  std::uint32_t workers;
};

/// Elements [begin, end) of one tensor by one block: 16-byte tiles in the body (begin is a
/// multiple of kChunkAlign, hence of the tile width), one element per thread in the tail.
template <class E, int kThreads, int kUnroll, bool VP, bool VG>
__device__ __forceinline__ void step_range(const TensorEntry& t, const typename E::Scalars& s,
                                           const Pass<typename E::Args>& pass, std::uint64_t begin,
                                           std::uint64_t end) {
  constexpr int N = E::kVec;
  using Tile = typename E::template Tile<N>;
  const std::uint64_t tiles = (end - begin) / N;
  for (std::uint64_t v0 = threadIdx.x; v0 < tiles; v0 += std::uint64_t(kThreads) * kUnroll) {
    Tile tile[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const std::uint64_t v = v0 + std::uint64_t(u) * kThreads;
      if (v < tiles) tile[u].template load<VP, VG, true>(t, begin + v * N);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const std::uint64_t v = v0 + std::uint64_t(u) * kThreads;
      if (v < tiles) tile[u].template update_store<VP, true>(t, begin + v * N, s, pass);
    }
  }
  const std::uint64_t tail = begin + tiles * N;
  if (threadIdx.x < end - tail)
    scalar_range<E>(t, tail + threadIdx.x, tail + threadIdx.x + 1, s, pass);
}

/// Block formats: elements [begin, end) of one tensor in tiles of N, L = Block / N consecutive
/// lanes per quantization block (begin is a multiple of the block). The tensor's last block may
/// be partial: its tiles load what exists, and every lane of the group still joins the absmax.
template <class E, int kThreads, int kUnroll, bool VP, bool VG>
__device__ __forceinline__ void block_range(const TensorEntry& t, const typename E::Scalars& s,
                                            const Pass<typename E::Args>& pass, std::uint64_t begin,
                                            std::uint64_t end) {
  constexpr int N = E::kVec, B = E::State::kBlock, L = B / N;
  static_assert(B % N == 0 && kThreads % L == 0);
  using Tile = typename E::template Tile<N>;
  const std::uint64_t slots = (end - begin + B - 1) / B * L;  // whole blocks, lanes uniform
  for (std::uint64_t v0 = threadIdx.x; v0 < slots; v0 += std::uint64_t(kThreads) * kUnroll) {
    Tile tile[kUnroll];
    int valid[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const std::uint64_t v = v0 + std::uint64_t(u) * kThreads, i0 = begin + v * N;
      valid[u] = i0 >= end ? 0 : end - i0 >= N ? N : int(end - i0);
      if (v < slots) tile[u].template load<VP, VG, true>(t, i0, valid[u]);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const std::uint64_t v = v0 + std::uint64_t(u) * kThreads;
      if (v >= slots) continue;
      // Whole blocks (all but a tensor's last) take the path where every tile is full; the
      // test is uniform over the lanes of a block, which reduce its absmax together.
      if (begin + (v / L + 1) * B <= end)
        tile[u].template update_store<VP, true, LaneGroup<L>>(t, begin + v * N, s, pass, N);
      else
        tile[u].template update_store<VP, true, LaneGroup<L>>(t, begin + v * N, s, pass, valid[u]);
    }
  }
}

/// Block formats with staging (kStagedKind, sm_90): the whole blocks of [begin, end) in
/// block_range's tiles. Each warp copies its 32 lanes' tiles St::kStages - 1 iterations
/// ahead into their slots of `stage` (TileStage: every copy instruction reads consecutive
/// memory), and each lane reads its tile from there when its turn comes, so that the loads of
/// the next tiles are in flight while it computes. With kStageWholeWarps only whole warps' tiles
/// (32 each) go this way; the rest (whole blocks short of a warp, the tensor's last partial
/// block) by block_range. Parameter and gradient 16-byte aligned.
template <class E, int kThreads, int kUnroll>
__device__ __forceinline__ void staged_block_range(const TensorEntry& t,
                                                   const typename E::Scalars& s,
                                                   const Pass<typename E::Args>& pass,
                                                   std::uint64_t begin, std::uint64_t end,
                                                   char* stage) {
  using St = TileStage<E, kThreads>;
  constexpr int N = St::N, B = St::B, L = B / N, S = St::kStages;
  constexpr bool kWhole = kStageWholeWarps<typename St::PT>;
  // New parameters out through the buffer (a tile of one 16-byte piece stores whole sectors).
  constexpr bool kOut = kStageParamOut<typename St::PT> && St::P::P > 1;
  static_assert(S >= 2 && kThreads % 32 == 0 && 32 % L == 0);
  const std::uint64_t whole = (end - begin) / B;
  const std::uint64_t slots = kWhole ? whole * L / 32 * 32 : whole * L;  // staged tiles
  const unsigned lane = threadIdx.x & 31u;
  // Slot w0 + lane for each lane; the loop runs warp-uniform (w0 is the warp's first slot).
  const auto owners = [&](std::uint64_t w0) {  // lanes of the warp with a slot
    return kWhole ? 32u : unsigned(slots - w0 < 32 ? slots - w0 : 32);
  };
  const auto fetch = [&](int b, std::uint64_t w0) {
    if (w0 < slots) St::fetch(stage + b * St::kBuffer, t, begin + w0 * N, owners(w0));
    async::commit();  // possibly empty: every thread counts the same groups
  };
  __syncwarp();  // every lane has read the buffers the previous range left
  std::uint64_t ahead = threadIdx.x - lane;  // the warp's next slots to fetch
#pragma unroll
  for (int u = 0; u < S - 1; ++u, ahead += kThreads) fetch(u, ahead);
  int buf = 0;  // the buffer holding the slots of w0
  for (std::uint64_t w0 = threadIdx.x - lane; w0 < slots; w0 += kThreads, ahead += kThreads) {
    async::wait<S - 2>();  // this thread's copies into `buf` are complete ...
    __syncwarp();          // ... and every lane's, visible to all; the buffer read one
                           // iteration ago is free (every lane's reads of it are done)
    fetch(buf == 0 ? S - 1 : buf - 1, ahead);
    char* const here = stage + buf * St::kBuffer;
    if (kWhole || w0 + lane < slots) {
      typename St::Tile tile;
      St::read(here, t, tile);
      const auto sink = [here] {
        if constexpr (kOut) return typename St::ParamSlots{here};
        else return ParamToTensor{};
      }();
      tile.template update_store<true, true, LaneGroup<L, kWhole>>(t, begin + (w0 + lane) * N, s,
                                                                   pass, N, sink);
    }
    if constexpr (kOut) {
      __syncwarp();  // every lane's new parameters are in `here`
      St::store_params(here, t, begin + w0 * N, owners(w0));
    }
    buf = buf + 1 == S ? 0 : buf + 1;
  }
  if (slots * N < end - begin)
    block_range<E, kThreads, kUnroll, true, true>(t, s, pass, begin + slots * N, end);
}

/// One tensor range by E's tiles, with vector loads where its pointers allow; `stage`: the
/// staging buffers where E's tiles are staged on this device code, else null.
template <class E, int kThreads, int kUnroll>
__device__ __forceinline__ void tensor_range(const TensorEntry& t, const typename E::Scalars& s,
                                             const Pass<typename E::Args>& pass,
                                             std::uint64_t begin, std::uint64_t end,
                                             char* stage = nullptr) {
  const bool vp = t.flags & kParamAligned16, vg = t.flags & kGradAligned16;
#if ALLOY_STAGE_ARCH
  if constexpr (kStagedKind<E>)
    if (vp && vg) return staged_block_range<E, kThreads, kUnroll>(t, s, pass, begin, end, stage);
#else
  (void)stage;
#endif
  const auto go = [&]<bool VP, bool VG>() {
    if constexpr (kBlockKind<E>) block_range<E, kThreads, kUnroll, VP, VG>(t, s, pass, begin, end);
    else step_range<E, kThreads, kUnroll, VP, VG>(t, s, pass, begin, end);
  };
  if (vp && vg) go.template operator()<true, true>();
  else if (vp) go.template operator()<true, false>();
  else if (vg) go.template operator()<false, true>();
  else go.template operator()<false, false>();
}

/// Block formats: copies the format's tables from device memory into the thread block's shared
/// copy (then a barrier) and returns its address.
template <int kThreads, class Tables>
__device__ __forceinline__ const void* stage_tables(Tables& shared, const void* global) {
  static_assert(sizeof(Tables) % 16 == 0);
  for (unsigned i = threadIdx.x; i < sizeof(Tables) / 16; i += kThreads)
    reinterpret_cast<uint4*>(&shared)[i] = static_cast<const uint4*>(global)[i];
  __syncthreads();
  return &shared;
}

/// The persistent step kernel: block b walks the chunks of worker b, [worker_begin[b],
/// worker_begin[b+1]), then those of the workers it takes from the launch's queue
/// (StepParams::queue) or b + grid, ...
/// Block formats copy their tables into shared memory first, stage their tiles in the dynamic
/// shared memory the launch gives (staged_block_range), and run tensors below the size
/// threshold (kSmallState) with E::Small in the same launch. Block formats: at least 512
/// threads per SM (at most 128 registers; left free, ptxas gave the 8-bit kernels with 16-bit
/// parameters 144, one 256-thread block per SM). Other kinds: minimum 0, ptxas's own choice
/// (asking for 2 raised the zeroth-order kernels from 40-80 registers to 109-126 and cost them
/// 11% of their speed; asking for 1 let AdamW's take 146).
template <class E, class RuleScalars, int kThreads, int kUnroll>
__global__ void __launch_bounds__(kThreads,
                                  kBlockKind<E> ? ALLOY_BLOCK_MIN_THREADS_PER_SM / kThreads : 0)
    step_kernel(const __grid_constant__ StepParams<E, RuleScalars> prm) {
  Pass<typename E::Args> pass{prm.seed, *prm.global_step + prm.step_offset, prm.rounding_purpose,
                              prm.args};
  char* stage = nullptr;  // staging buffers (dynamic shared memory: step_kernel_shared_bytes)
  if constexpr (kBlockKind<E>) {
    using Tables = typename E::State::Tables;
#if ALLOY_STAGE_ARCH
    if constexpr (staged_tables<E, kThreads>()) {  // tables, then the staging buffers
      extern __shared__ __align__(16) char dynamic_shared[];
      pass.tables = stage_tables<kThreads>(*reinterpret_cast<Tables*>(dynamic_shared), prm.tables);
      stage = dynamic_shared + sizeof(Tables);
    } else
#endif
    {
      __shared__ Tables tables;
      pass.tables = stage_tables<kThreads>(tables, prm.tables);
#if ALLOY_STAGE_ARCH
      if constexpr (kStagedKind<E>) {
        extern __shared__ __align__(16) char dynamic_shared[];
        stage = dynamic_shared;
      }
#endif
    }
  }
  const auto worker = [&](std::uint32_t w) {  // the chunks of worker w
    const std::uint32_t first = prm.worker_begin[w], last = prm.worker_begin[w + 1];
    for (std::uint32_t c = first; c < last; ++c) {
      const Chunk ch = prm.chunks[c];
      const TensorEntry t = prm.entries[ch.tensor];
      typename E::Scalars s{};
      if constexpr (std::is_same_v<typename E::Scalars, RuleScalars>) s = prm.scalars[ch.tensor];
      if constexpr (kBlockKind<E>) {
        if (t.flags & kSmallState) {
          using Small = typename E::Small;
          tensor_range<Small, kThreads, ALLOY_SM90_SMALL_UNROLL>(t, s, pass, ch.begin, ch.end);
          continue;
        }
      }
      tensor_range<E, kThreads, kUnroll>(t, s, pass, ch.begin, ch.end, stage);
    }
  };
  if constexpr (kOneList<E>) {
    worker(blockIdx.x);
  } else {
    __shared__ std::uint32_t taken;
    const auto next = [&](std::uint32_t w) {  // the list after w: from the queue, or strided
      if (!prm.queue) return w + gridDim.x;
      if (threadIdx.x == 0) taken = gridDim.x + atomicAdd(&prm.queue[0], 1u);
      __syncthreads();
      w = taken;
      __syncthreads();  // every thread has read `taken` before thread 0 writes it again
      return w;
    };
    for (std::uint32_t w = blockIdx.x; w < prm.workers; w = next(w)) worker(w);
    if (prm.queue && threadIdx.x == 0) {
      __threadfence();  // this block's last take precedes its count below
      if (atomicAdd(&prm.queue[1], 1u) == gridDim.x - 1) {  // every block has taken its last
        __threadfence();
        prm.queue[0] = 0;
        prm.queue[1] = 0;
      }
    }
  }
}

/// Dynamic shared memory of E's step kernel on the current device `device`: TileStage's buffers
/// (and the format's tables, staged_tables) where the kernel's device code stages
/// (ALLOY_STAGE_ARCH: its PTX is for sm_90, sm_100 or sm_103), else 0. The first call per device
/// allows the kernel that much (above the default 48 KB). A device that cannot give it (such code
/// compiled just in time for a device with less shared memory) is refused with an alloy::Error: the
/// kernel stages unconditionally (a fallback copy of the tile code in the same kernel made its
/// staged path 5% slower on the 8-bit bf16 rows, H100, 2026-11-26).
template <class E, class Scalars, int kThreads, int kUnroll>
int step_kernel_shared_bytes(int device) {
  constexpr int bytes = staged_bytes<E, kThreads>();
  if constexpr (bytes == 0) {
    return 0;
  } else {
    static std::atomic<int> known[64];  // per device: bytes + 1, 0 until asked
    if (device >= 0 && device < 64)
      if (const int k = known[device].load(std::memory_order_relaxed)) return k - 1;
    const auto kernel = step_kernel<E, Scalars, kThreads, kUnroll>;
    cudaFuncAttributes a{};
    ALLOY_CUDA_CHECK(cudaFuncGetAttributes(&a, kernel));
    const int use = stages_on_ptx(a.ptxVersion) ? bytes : 0;
    if (use) {
      int optin = 0;
      ALLOY_CUDA_CHECK(
          cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
      if (a.sharedSizeBytes + std::size_t(use) > std::size_t(optin))
        detail::fail("the ", E::State::kName, " step kernel was compiled for sm_", a.ptxVersion,
                     " and stages its tiles in ", a.sharedSizeBytes + use,
                     " bytes of shared memory per thread block, but cuda:", device, " allows ",
                     optin,
                     ": build alloy's kernels for this device's architecture "
                     "(CMAKE_CUDA_ARCHITECTURES / nvcc -arch)");
      ALLOY_CUDA_CHECK(
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, use));
    }
    if (device >= 0 && device < 64) known[device].store(use + 1, std::memory_order_relaxed);
    return use;
  }
}

/// share::PerBlock: the tensors whose blocks the statistics pass visits, with the global index
/// of each tensor's first block.
struct SharedSpan {
  std::uint32_t tensor;
  std::uint32_t pad_;
  std::uint64_t block_begin;
};

/// The span holding global block gb: the last with block_begin <= gb (spans are sorted),
/// searched in [lo, nspans), where lo is a span at or before it.
__device__ __forceinline__ std::uint32_t span_of(const SharedSpan* spans, std::uint32_t nspans,
                                                 std::uint64_t gb, std::uint32_t lo = 0) {
  std::uint32_t hi = nspans;
  while (hi - lo > 1) {
    const std::uint32_t mid = (lo + hi) / 2;
    if (spans[mid].block_begin <= gb) lo = mid;
    else hi = mid;
  }
  return lo;
}

/// span_of for a grid-stride loop: gb only grows, so the span of the previous block (`lo`) is a
/// lower bound, and usually the answer or the one before it. One cached load in the common case
/// instead of a binary search's chain of dependent loads per block.
__device__ __forceinline__ std::uint32_t span_after(const SharedSpan* spans, std::uint32_t nspans,
                                                    std::uint64_t gb, std::uint32_t lo) {
  if (lo + 1 >= nspans || spans[lo + 1].block_begin > gb) return lo;
  if (lo + 2 >= nspans || spans[lo + 2].block_begin > gb) return lo + 1;
  return span_of(spans, nspans, gb, lo + 2);
}

/// A hint to bring the whole 16-byte units of [ptr, ptr + bytes) into L2 ahead of their loads:
/// one sm_90 bulk prefetch, nothing to wait for, no effect on results (a no-op before sm_90).
__device__ __forceinline__ void prefetch_l2(const void* ptr, std::uint64_t bytes) {
#if __CUDA_ARCH__ >= 900
  const std::uint64_t a = reinterpret_cast<std::uintptr_t>(ptr);
  const std::uint64_t lo = (a + 15) & ~std::uint64_t(15), hi = (a + bytes) & ~std::uint64_t(15);
  if (hi > lo)
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(lo), "r"(unsigned(hi - lo))
                 : "memory");
#else
  (void)ptr;
  (void)bytes;
#endif
}

/// The one-pass kernel's look-ahead: lane 0 prefetches into L2 the gradients of global block gb
/// (the block this thread block takes next), and with `All` its parameters and first moments,
/// so that their loads, one reduction later, hit L2 while the memory system stays busy through
/// the reduction.
template <class Stored, bool All>
__device__ __forceinline__ void prefetch_shared_block(const TensorEntry* entries,
                                                      const SharedSpan* spans, std::uint32_t nspans,
                                                      std::uint64_t gb, std::uint32_t lo) {
  lo = span_after(spans, nspans, gb, lo);
  const TensorEntry& e = entries[spans[lo].tensor];
  const std::uint64_t n = e.share_block, first = (gb - spans[lo].block_begin) * n;
  const std::uint64_t gs = dtype_size(DType(e.grad_dtype));
  prefetch_l2(static_cast<const char*>(e.grad) + first * gs, n * gs);
  if constexpr (All) {
    const std::uint64_t ps = dtype_size(DType(e.param_dtype));
    prefetch_l2(static_cast<const char*>(e.param) + first * ps, n * ps);
    prefetch_l2(static_cast<const char*>(e.state[0]) + first * sizeof(Stored), n * sizeof(Stored));
  }
}

/// Which one-pass launches prefetch (measured on H100, llama1b, bench/results/onepass_h100.txt):
/// those with 16-bit parameters, latency-bound between their reductions (Bf16 m: 0.82 -> 0.87
/// of copy bandwidth with the gradients prefetched; Int8 m: 0.63 -> 0.70 with everything);
/// with fp32 parameters the launches already stream near the copy rate, and prefetching cost
/// them 5-15%. ALLOY_ONE_PASS_PREFETCH=0 turns it off.
#ifndef ALLOY_ONE_PASS_PREFETCH
#define ALLOY_ONE_PASS_PREFETCH 1
#endif
template <class E>
inline constexpr bool kOnePassPrefetch = ALLOY_ONE_PASS_PREFETCH && sizeof(typename E::Param) == 2;

template <class GT>
__device__ __forceinline__ float sum_sq_lane(const GT* g, std::uint64_t n, unsigned lane) {
  // Lane l accumulates, in increasing index, the elements i with (i / 8) % 256 == l: the order
  // of share::block_mean_sq.
  float acc = 0.f;
  for (std::uint64_t r = std::uint64_t(lane) * share::kSumRun; r < n;
       r += std::uint64_t(share::kSumLanes) * share::kSumRun)
#pragma unroll
    for (int k = 0; k < share::kSumRun; ++k)
      if (r + k < n) {
        const float x = to_float(g[r + k]);
        acc = fp::add(acc, fp::mul(x, x));
      }
  return acc;
}

/// share::block_mean_sq's tree over the 256 lanes' sums x: each warp's 32 by shuffles
/// (x + shfl_down(x, h) is the host's a[l] + a[l + h] for the lanes l < h that go on), then the
/// 8 warp totals within warp 0. One barrier; `part` holds 8 floats of shared memory that no
/// thread may touch until the next barrier. The sum is valid in thread 0.
__device__ __forceinline__ float block_tree_sum(float x, float* part) {
  static_assert(share::kSumLanes == 8 * share::kSumWarp);
#pragma unroll
  for (int h = share::kSumWarp / 2; h >= 1; h /= 2)
    x = fp::add(x, __shfl_down_sync(0xffffffffu, x, h));
  if (threadIdx.x % share::kSumWarp == 0) part[threadIdx.x / share::kSumWarp] = x;
  __syncthreads();
  if (threadIdx.x < share::kSumWarp) {
    x = threadIdx.x < 8 ? part[threadIdx.x] : 0.f;
#pragma unroll
    for (int h = 4; h >= 1; h /= 2) x = fp::add(x, __shfl_down_sync(0xffffffffu, x, h));
  }
  return x;
}

/// share::PerBlock statistics pass: one thread block per sharing block (grid-stride), the block's
/// mean of g^2 in share::block_mean_sq's order (segments: lanes, the same tree), then
/// v_b <- Rule::second_moment(v_b, mean). Bitwise equal to the host executor's.
template <class Rule>
__global__ void __launch_bounds__(share::kSumLanes)
    shared_stats_kernel(const TensorEntry* entries, const SharedSpan* spans, std::uint32_t nspans,
                        std::uint64_t total, const typename Rule::Scalars* scalars) {
  __shared__ float part[2 * 8];
  const unsigned lane = threadIdx.x;
  std::uint32_t lo = 0, iter = 0;
  for (std::uint64_t gb = blockIdx.x; gb < total; gb += gridDim.x) {
    lo = span_after(spans, nspans, gb, lo);
    const TensorEntry& e = entries[spans[lo].tensor];
    const std::uint64_t b = gb - spans[lo].block_begin, n = e.share_block;
    const std::uint64_t base = b * n;
    // Segment by segment (share::block_mean_sq): lanes, the tree, and thread 0 adds the
    // segments' sums in order.
    float sum = 0.f;
    for (std::uint64_t first = 0; first < n; first += share::kSumSegment) {
      const std::uint64_t count =
          n - first < share::kSumSegment ? n - first : std::uint64_t(share::kSumSegment);
      float acc = 0.f;
      if (e.grad_dtype == std::uint8_t(DType::f32))
        acc = sum_sq_lane(static_cast<const float*>(e.grad) + base + first, count, lane);
      else if (e.grad_dtype == std::uint8_t(DType::bf16))
        acc = sum_sq_lane(static_cast<const bf16*>(e.grad) + base + first, count, lane);
      else acc = sum_sq_lane(static_cast<const fp16*>(e.grad) + base + first, count, lane);
      // part[] alternates between two halves: a tree never meets the previous one's readers
      // (they finished before this tree's barrier).
      const float seg = block_tree_sum(acc, part + 8 * (iter++ & 1));
      sum = first == 0 ? seg : fp::add(sum, seg);
    }
    if (lane == 0) {
      float* v = static_cast<float*>(e.state[1]);
      const float mean = float(__ddiv_rn(double(sum), double(n)));
      v[b] = Rule::second_moment(scalars[spans[lo].tensor], v[b], mean);
    }
  }
}

/// The few thread-block cluster operations the one-pass kernel uses for clusters, in PTX (sm_90):
/// not through cooperative_groups, whose header brings a namespace ::cuda that collides with
/// alloy::cuda for code that says `using namespace alloy`. Before sm_90 (never launched there)
/// they degrade to a cluster of one block.
namespace cluster {
__device__ __forceinline__ unsigned rank() {
  unsigned r = 0;
#if __CUDA_ARCH__ >= 900
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
#endif
  return r;
}
__device__ __forceinline__ unsigned size() {
  unsigned n = 1;
#if __CUDA_ARCH__ >= 900
  asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(n));
#endif
  return n;
}
/// Every thread of every block of the cluster arrives; shared-memory writes before it are
/// visible to reads after it, in any block of the cluster.
__device__ __forceinline__ void sync() {
#if __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::
                   : "memory");
#else
  __syncthreads();
#endif
}
/// The float at the address of `local` in the shared memory of block `r` of the cluster.
__device__ __forceinline__ float load(const float* local, unsigned r) {
#if __CUDA_ARCH__ >= 900
  const unsigned a = unsigned(__cvta_generic_to_shared(local));
  unsigned remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(a), "r"(r));
  float v;
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(remote) : "memory");
  return v;
#else
  (void)r;
  return *local;
#endif
}
}  // namespace cluster

/// Thread blocks per SM the one-pass kernel must fit (__launch_bounds__' minimum): 4 with one run
/// per lane (at most 64 registers), 2 with four (128), except 3 for block formats with four
/// that round to nearest (80 registers; ptxas took 83-84, two blocks per SM, when free to). On
/// the H100, llama1b's 8-bit PerBlock rows ran at 0.836-0.840 (fp32) and 0.698-0.703 (bf16) of
/// copy with 3, against 0.823-0.824 and 0.695-0.696 with 2, and 0.813-0.814 / 0.664-0.665 with 4
/// (64 registers, spilling); with stochastic rounding (bf16) 3 spilled and ran at 0.585-0.586
/// against 0.590-0.593 with 2. Three runs each (2026-11-26, docs/policies/int8.md).
#ifndef ALLOY_ONE_PASS_MIN_BLOCKS_BLOCK_FORMAT_4
#define ALLOY_ONE_PASS_MIN_BLOCKS_BLOCK_FORMAT_4 3
#endif
template <class E, int K>
inline constexpr int kOnePassMinBlocks =
    K == 1                         ? 4
    : kBlockKind<E> && !E::kRandom ? ALLOY_ONE_PASS_MIN_BLOCKS_BLOCK_FORMAT_4
                                   : 2;

/// share::PerBlock in one pass. Without `Cluster`: one thread block (share::kSumLanes threads)
/// per sharing block of at most K * kSumLanes * kSumRun = K * 2048 elements (one segment;
/// grid-stride over spans' blocks). Lane l loads the runs of 8 elements starting at
/// 8 l + 2048 k, k < K (with K = 1 p, g and the first moment as tiles of SharedStep; with K > 1
/// only g, and p and m after the reduction, so that large blocks hold fewer registers across
/// it), sums their g^2 in increasing index, and the lanes combine by share::block_mean_sq's tree
/// (block_tree_sum); lane 0 advances v_b, and every lane updates its runs with it. With 16-bit
/// parameters lane 0 also prefetches the next block into L2.
/// With `Cluster` (K = 4, sm_90): one thread-block cluster per sharing block of 2 to 16
/// segments (8193 to 131,072 elements, such as llama1b's query/key heads); block r of the
/// cluster takes segment r as above, publishes its segment sum in shared memory, and after a
/// cluster barrier thread 0 of every block reads the segments' sums through distributed shared
/// memory and adds them in order (each computes the same v_b; block 0 stores it). Blocks past a
/// sharing block's last segment only join the barriers.
/// Bitwise the host's and the two-pass path's result. Block formats need blocks of whole
/// quantization blocks (a warp's 256 elements are one).
template <class E, class Rule, int K, bool Cluster = false>
__global__ void __launch_bounds__(share::kSumLanes, kOnePassMinBlocks<E, K>)
    shared_one_pass_kernel(const TensorEntry* entries, const SharedSpan* spans,
                           std::uint32_t nspans, std::uint64_t total,
                           const typename Rule::Scalars* scalars, const std::uint32_t* global_step,
                           std::uint64_t seed, std::uint8_t rounding_purpose,
                           const void* format_tables) {
  constexpr int N = share::kSumRun;
  constexpr std::uint64_t kRunStride = std::uint64_t(share::kSumLanes) * N;  // 2048
  static_assert(!Cluster || K * kRunStride == share::kSumSegment, "a cluster block: a segment");
  using Tile = typename E::template Tile<N>;
  // part[], seg_sum[] and v_new[] alternate between two halves, so no barrier is needed
  // between sharing blocks: a half is rewritten two blocks later, after every reader has passed
  // a barrier that follows its read.
  __shared__ float part[2 * 8];
  __shared__ float seg_sum[2];
  __shared__ float v_new[2];
  Pass<typename E::Args> pass{seed, *global_step, rounding_purpose, {}, format_tables};
  if constexpr (kBlockKind<E>) {
    __shared__ typename E::State::Tables tables;
    pass.tables = stage_tables<share::kSumLanes>(tables, format_tables);
  }
  const unsigned lane = threadIdx.x;
  const unsigned rank = Cluster ? cluster::rank() : 0, size = Cluster ? cluster::size() : 1;
  std::uint32_t lo = 0, iter = 0;
  for (std::uint64_t gb = blockIdx.x / size; gb < total; gb += gridDim.x / size) {
    lo = span_after(spans, nspans, gb, lo);
    const TensorEntry t = entries[spans[lo].tensor];
    const typename Rule::Scalars s = scalars[spans[lo].tensor];
    const std::uint64_t b = gb - spans[lo].block_begin, n = t.share_block, base = b * n;
    const std::uint64_t first = std::uint64_t(rank) * share::kSumSegment;  // in the block
    const bool vp =
        (t.flags & kParamAligned16) && (t.flags & kGradAligned16) && (base + first) % N == 0;
    float* v = static_cast<float*>(t.state[1]);
    // Read early (its latency hides behind the loads), and before the cluster barrier: block 0
    // writes the new value only after it.
    const float v_old = lane == 0 ? v[b] : 0.f;
    if constexpr (kOnePassPrefetch<E> && !Cluster)
      if (lane == 0 && gb + gridDim.x < total)
        prefetch_shared_block<typename E::State::Stored, kBlockKind<E>>(entries, spans, nspans,
                                                                        gb + gridDim.x, lo);
    Tile tile[K];
    int valid[K];
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const std::uint64_t off = first + std::uint64_t(lane) * N + std::uint64_t(k) * kRunStride;
      valid[k] = off >= n ? 0 : n - off >= N ? N : int(n - off);
      if (valid[k] > 0) {
        if constexpr (K == 1) {
          if (vp) tile[k].template load<true, true, true>(t, base + off, valid[k]);
          else tile[k].template load<false, false, false>(t, base + off, valid[k]);
        } else {
          if (vp) tile[k].template load_grad<true>(t, base + off, valid[k]);
          else tile[k].template load_grad<false>(t, base + off, valid[k]);
        }
      }
    }
    float acc = 0.f;
#pragma unroll
    for (int k = 0; k < K; ++k)
#pragma unroll
      for (int j = 0; j < N; ++j)
        if (j < valid[k]) {
          const float x = to_float(tile[k].g[j]);
          acc = fp::add(acc, fp::mul(x, x));
        }
    const unsigned half = iter++ & 1;
    float sum = block_tree_sum(acc, part + 8 * half);  // valid in lane 0
    if constexpr (Cluster) {
      if (lane == 0) seg_sum[half] = sum;
      cluster::sync();
      if (lane == 0) {
        const unsigned segments = unsigned((n + share::kSumSegment - 1) / share::kSumSegment);
        sum = cluster::load(&seg_sum[half], 0);
        for (unsigned r = 1; r < segments; ++r)
          sum = fp::add(sum, cluster::load(&seg_sum[half], r));
      }
    }
    if (lane == 0) {
      const float mean = float(__ddiv_rn(double(sum), double(n)));
      const float nv = Rule::second_moment(s, v_old, mean);
      if (rank == 0) v[b] = nv;
      v_new[half] = nv;
    }
    __syncthreads();  // v_new is written before any lane reads it
    float vb[N];
#pragma unroll
    for (int j = 0; j < N; ++j) vb[j] = v_new[half];
#pragma unroll
    // Lanes past the block's end skip the update: with a block format, whole warps (blocks are
    // whole quantization blocks), so the warp's absmax reduction never sees a partial warp.
    for (int k = 0; k < K; ++k) {
      const std::uint64_t i0 =
          base + first + std::uint64_t(lane) * N + std::uint64_t(k) * kRunStride;
      if (valid[k] > 0) {
        if (vp) {
          if constexpr (K > 1) tile[k].template load_rest<true, true>(t, i0, valid[k]);
          tile[k].template update_store_given<true, true, LaneGroup<32>>(t, i0, s, pass, vb,
                                                                         valid[k]);
        } else {
          if constexpr (K > 1) tile[k].template load_rest<false, false>(t, i0, valid[k]);
          tile[k].template update_store_given<false, false, LaneGroup<32>>(t, i0, s, pass, vb,
                                                                           valid[k]);
        }
      }
    }
  }
  if constexpr (Cluster) cluster::sync();  // no block leaves while another may read its seg_sum
}

/// Advances the step count of every active tensor and computes its scalars for this step from
/// its group's hyperparameters (device memory, so a captured graph sees changed values).
template <class Rule>
__global__ void prologue_kernel(const TensorEntry* entries, std::uint32_t n,
                                const typename Rule::Hyper* hypers, std::uint32_t* counts,
                                typename Rule::Scalars* scalars, std::uint32_t* global_step) {
  const std::uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t == 0) ++*global_step;
  if (t >= n || !(entries[t].flags & kTensorActive)) return;
  const std::uint32_t c = ++counts[t];
  scalars[t] = Rule::scalars(tensor_hyper(hypers[entries[t].group], entries[t].flags), c);
}

template <class Hyper>
__global__ void write_hyper_kernel(Hyper* dst, Hyper h) {
  *dst = h;
}

/// Steps tensors in the memory of one CUDA device.
struct Cuda {
  static constexpr Device::Kind kKind = Device::Kind::cuda;
  static constexpr const char* kName = "CUDA";
  static std::shared_ptr<Allocator> default_allocator() {
    return std::make_shared<CudaAllocator>();
  }
  template <class Rule, class Format, class Share, class Grad>
  class Backend;
};

template <class Rule, class Format, class Share, class Grad>
class Cuda::Backend {
  using Hyper = typename Rule::Hyper;
  using Scalars = typename Rule::Scalars;

 public:
  explicit Backend(const Options& o)
      : seed_(o.seed), rounding_(bf16_param_rounding(o, is_zeroth_order<Grad>())),
        blocks_override_(o.cuda_blocks), one_pass_(o.cuda_per_block_one_pass),
        side_stream_(o.cuda_side_stream), alloc_(o.allocator ? o.allocator : default_allocator()) {}

  /// share::PerBlock, one-pass path: the runs of 8 elements per lane (K) with which one thread
  /// block reduces and updates a tensor's sharing blocks in one pass: 1 for blocks of at most
  /// 2048 elements, 4 for at most 8192 (one segment); class 2, one thread-block cluster per
  /// block, for 2 to kMaxClusterSegments segments where the device runs clusters; -1 (the
  /// two-pass path) for larger blocks, and for block formats unless blocks are whole
  /// quantization blocks of a tensor above the size threshold.
  static constexpr int kOnePassRuns[2] = {1, 4};
  static constexpr unsigned kMaxClusterSegments = 16;
  int one_pass_class(const TensorEntry& e) const {  // 0, 1 (kOnePassRuns), 2 (cluster), or -1
    constexpr std::uint64_t run = std::uint64_t(share::kSumLanes) * share::kSumRun;
    if (!one_pass_ || !e.share_block) return -1;
    const bool cluster = e.share_block > run * kOnePassRuns[1];
    if (cluster && !(cluster_ && e.share_block <= kMaxClusterSegments * share::kSumSegment))
      return -1;
    if constexpr (!Format::kElementwise)
      if ((e.flags & kSmallState) || e.share_block % Format::kBlock) return -1;
    return cluster ? 2 : e.share_block <= run * kOnePassRuns[0] ? 0 : 1;
  }
  bool one_pass(const TensorEntry& e) const { return one_pass_class(e) >= 0; }

  /// Clusters of `size` thread blocks of the cluster kernel for E that the device runs at once
  /// (0: none fit).
  template <class E>
  static int max_clusters(unsigned size) {
    const auto kernel = shared_one_pass_kernel<E, Rule, 4, true>;
    ALLOY_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    cudaLaunchAttribute at{};
    at.id = cudaLaunchAttributeClusterDimension;
    at.val.clusterDim.x = size;
    at.val.clusterDim.y = 1;
    at.val.clusterDim.z = 1;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(size);
    cfg.blockDim = dim3(share::kSumLanes);
    cfg.attrs = &at;
    cfg.numAttrs = 1;
    int n = 0;
    ALLOY_CUDA_CHECK(cudaOccupancyMaxActiveClusters(&n, kernel, &cfg));
    return n;
  }
  /// Whether blocks of 2..kMaxClusterSegments segments can take the cluster kernel: sm_90 or
  /// later, cluster launches supported, and a cluster of the largest size fits for every dtype
  /// pair present.
  bool clusters_available(const std::vector<TensorEntry>& entries) const {
    if constexpr (!Share::kSharesSecondMoment) {
      return false;
    } else {
      int major = 0, launch = 0;
      ALLOY_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device_));
      ALLOY_CUDA_CHECK(cudaDeviceGetAttribute(&launch, cudaDevAttrClusterLaunch, device_));
      if (major < 9 || !launch) return false;
      bool ok = true;
      for (const auto& [p, g] : dtype_pairs(entries))
        dispatch_dtypes(p, g, rounding_, [&]<class PT, class GT, Rounding PR>() {
          using E = typename SharedKind<Rule, Format>::template type<PT, GT, PR>;
          ok = ok && max_clusters<E>(kMaxClusterSegments) > 0;
        });
      return ok;
    }
  }

  /// The pointer must be device (or managed) memory of the view's device.
  static void check_view(const TensorView& v, const std::string& what) {
    cudaPointerAttributes a{};
    const cudaError_t e = cudaPointerGetAttributes(&a, v.data);
    if (e != cudaSuccess) {
      cudaGetLastError();  // clear the sticky-free error state of a failed query
      detail::fail(what, ": cannot query the pointer (", cudaGetErrorString(e), ")");
    }
    if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged)
      detail::fail(what, ": is declared on ", to_string(v.device),
                   " but its pointer is not device memory (",
                   a.type == cudaMemoryTypeHost ? "pinned host" : "unregistered host", " memory)");
    if (a.device != v.device.index)
      detail::fail(what, ": is declared on ", to_string(v.device),
                   " but its pointer is on cuda:", a.device);
  }

  void fill(void* p, int byte, std::size_t bytes) const {
    cuda_detail::DeviceGuard guard(device_);
    ALLOY_CUDA_CHECK(cudaMemset(p, byte, bytes));
  }

  void rebuild(const std::vector<TensorEntry>& entries, const std::vector<Hyper>& hypers) {
    if (!entries.empty()) device_ = device_of(entries[0]);
    cuda_detail::DeviceGuard guard(device_);
    // Registration-time work: wait for every stream (steps in flight use the old tables).
    ALLOY_CUDA_CHECK(cudaDeviceSynchronize());
    int sms = 0;
    ALLOY_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device_));
    cluster_ = one_pass_ && clusters_available(entries);

    Tables next;
    const Device dev = Device::cuda(device_);
    next.entries = upload(entries, dev);
    // The hyperparameter table keeps its address (and the values written into it through
    // device_lr / device_hyper) while the number of groups is unchanged; new groups are appended.
    if (tables_.hypers.bytes() == hypers.size() * sizeof(Hyper)) {
      next.hypers = std::move(tables_.hypers);
    } else {
      next.hypers = upload(hypers, dev);
      if (tables_.hypers.bytes())
        ALLOY_CUDA_CHECK(cudaMemcpy(next.hypers.get(), tables_.hypers.get(), tables_.hypers.bytes(),
                                    cudaMemcpyDeviceToDevice));
    }
    next.scalars = detail::Buffer(alloc_, entries.size() * sizeof(Scalars), dev);
    // Step counts and the global step carry over: tensors are only ever appended.
    next.counts = detail::Buffer(alloc_, entries.size() * sizeof(std::uint32_t), dev);
    ALLOY_CUDA_CHECK(cudaMemset(next.counts.get(), 0, next.counts.bytes()));
    if (tables_.counts.bytes())
      ALLOY_CUDA_CHECK(cudaMemcpy(next.counts.get(), tables_.counts.get(), tables_.counts.bytes(),
                                  cudaMemcpyDeviceToDevice));
    next.global_step = detail::Buffer(alloc_, sizeof(std::uint32_t), dev);
    if (tables_.global_step.bytes())
      ALLOY_CUDA_CHECK(cudaMemcpy(next.global_step.get(), tables_.global_step.get(),
                                  sizeof(std::uint32_t), cudaMemcpyDeviceToDevice));
    else ALLOY_CUDA_CHECK(cudaMemset(next.global_step.get(), 0, sizeof(std::uint32_t)));
    if constexpr (Share::kSharesSecondMoment) {
      std::vector<SharedSpan> spans;
      for (std::uint32_t t = 0; t < entries.size(); ++t)
        if ((entries[t].flags & kTensorActive) && entries[t].share_block && !one_pass(entries[t])) {
          spans.push_back(SharedSpan{t, 0, next.shared_total});
          next.shared_total += entries[t].numel / entries[t].share_block;
        }
      next.shared_count = std::uint32_t(spans.size());
      next.shared_spans = upload(spans, dev);
    }
    sms_ = sms;
    if constexpr (!Format::kElementwise) {
      if (tables_.format_tables.bytes()) next.format_tables = std::move(tables_.format_tables);
      else next.format_tables = upload(std::vector<typename Format::Tables>{Format::tables()}, dev);
    }

    // One launch group per dtype pair; its grid is one full wave of its kernel.
    for (const auto& [p, g] : dtype_pairs(entries)) {
      Launch l;
      l.param = p;
      l.grad = g;
      dispatch_dtypes(p, g, rounding_, [&]<class PT, class GT, Rounding PR>() {
        using E = typename PrimaryKind::template type<PT, GT, PR>;
        constexpr Tuning tune = tuning_sm90<E>();
        auto kernel = step_kernel<E, Scalars, tune.threads, tune.unroll>;
        const int shared = step_kernel_shared_bytes<E, Scalars, tune.threads, tune.unroll>(device_);
        int per_sm = 0;
        ALLOY_CUDA_CHECK(
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, tune.threads, shared));
        l.blocks = blocks_override_ ? blocks_override_ : unsigned(std::max(1, per_sm) * sms);
      });
      std::vector<std::uint32_t> members;
      std::vector<SharedSpan> one_pass_spans[3];
      std::uint64_t segments = 0;  // the most of any cluster-class block
      for (std::uint32_t t = 0; t < entries.size(); ++t)
        if ((entries[t].flags & kTensorActive) && entries[t].param_dtype == std::uint8_t(p) &&
            entries[t].grad_dtype == std::uint8_t(g)) {
          const int c = one_pass_class(entries[t]);
          if (c < 0) {
            members.push_back(t);
            continue;
          }
          one_pass_spans[c].push_back(SharedSpan{t, 0, l.one_pass[c].total});
          l.one_pass[c].total += entries[t].numel / entries[t].share_block;
          if (c == 2)
            segments = std::max(
                segments, (entries[t].share_block + share::kSumSegment - 1) / share::kSumSegment);
        }
      for (int c = 0; c < 3; ++c) {
        l.one_pass[c].count = std::uint32_t(one_pass_spans[c].size());
        if (l.one_pass[c].count) l.one_pass[c].spans = upload(one_pass_spans[c], dev);
      }
      if constexpr (Share::kSharesSecondMoment) {
        if (OnePass& op = l.one_pass[2]; op.total) {
          op.cluster = 2;  // the smallest power of two that holds every block's segments
          while (op.cluster < segments) op.cluster *= 2;
          dispatch_dtypes(p, g, rounding_, [&]<class PT, class GT, Rounding PR>() {
            using E = typename SharedKind<Rule, Format>::template type<PT, GT, PR>;
            op.clusters = unsigned(std::min<std::uint64_t>(
                op.total, std::uint64_t(std::max(1, max_clusters<E>(op.cluster)))));
          });
        }
      }
      // Chunk lists from a queue (queue_shape; fp32 parameters by default), else one per block.
      const QueueShape q = queue_shape(p, !Format::kElementwise);
      const bool queued = q.list != 0;
      const GroupPlan plan =
          queued ? plan_queue(entries, members, p, g, l.blocks, q.list, q.head, kQueueAlign)
                 : plan_group(entries, members, p, g, l.blocks);
      l.workers = unsigned(plan.worker_begin.size() - 1);
      l.chunks = upload(plan.chunks, dev);
      l.worker_begin = upload(plan.worker_begin, dev);
      if (queued) {
        l.queue = detail::Buffer(alloc_, 2 * sizeof(std::uint32_t), dev);
        ALLOY_CUDA_CHECK(cudaMemset(l.queue.get(), 0, l.queue.bytes()));
      }
      if (side_stream_ && sides_.empty() && (l.one_pass[1].total || l.one_pass[2].total))
        sides_.emplace_back().create(device_);
      next.launches.push_back(std::move(l));
    }
    ALLOY_CUDA_CHECK(cudaDeviceSynchronize());
    tables_ = std::move(next);
    num_tensors_ = std::uint32_t(entries.size());
  }

  /// Called before a rebuild that a step triggers: a rebuild allocates and synchronizes, which a
  /// stream being captured into a graph cannot do.
  static void prepare_rebuild(Stream stream) {
    if (capturing(stream))
      detail::fail(
          "tensor bindings changed (set_grad, set_frozen) since the last step: the tables "
          "must be rebuilt, which cannot happen while the stream is being captured; step "
          "once outside the capture first");
  }
  static bool capturing(Stream stream) {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    ALLOY_CUDA_CHECK(cudaStreamIsCapturing(stream, &st));
    return st != cudaStreamCaptureStatusNone;
  }

  /// share::PerBlock: the side stream for a step on `stream`, with `stream`'s priority: the one
  /// made at table build (the default priority), or one made on the first step at another
  /// priority. None (every launch on `stream`) without the side stream, and for a priority first
  /// seen while `stream` is being captured: no stream is made during a capture. The pointer
  /// lasts until the next call.
  cuda_detail::SideStream* side_for(Stream stream) {
    if (sides_.empty()) return nullptr;
    int priority = 0;
    ALLOY_CUDA_CHECK(cudaStreamGetPriority(stream, &priority));
    for (auto& s : sides_)
      if (s.priority() == priority) return &s;
    if (capturing(stream)) return nullptr;
    sides_.emplace_back().create(device_, priority);
    return &sides_.back();
  }

  /// Copied to the device table in stream order at the next step (a tiny launch per group).
  void set_hyper(std::size_t g, const Hyper& h) { pending_.emplace_back(g, h); }

  /// A step of the rule over gradient tensors (grad::Backprop).
  void step(Stream s) {
    if constexpr (Share::kSharesSecondMoment)
      run<SharedKind<Rule, Format>>(NoArgs{}, true, std::uint8_t(Purpose::rounding), s);
    else run<BackpropKind<Rule, Format>>(NoArgs{}, true, std::uint8_t(Purpose::rounding), s);
  }

  /// One pass of element kind Kind over every active tensor, enqueued on `stream`. `advance`: a
  /// step of the rule (the prologue advances step counts and the global step and computes the
  /// per-tensor scalars first); otherwise a parameter pass belonging to the next step.
  template <class Kind, class Args>
  void run(const Args& args, bool advance, std::uint8_t rounding_purpose, Stream stream) {
    cuda_detail::DeviceGuard guard(device_);
    auto* hypers = tables_.hypers.template as<Hyper>();
    if (!pending_.empty() && capturing(stream))
      detail::fail(
          "set_hyper/set_lr values are pending while the stream is being captured: a "
          "graph would replay them every time; step once before capturing, and change "
          "hyperparameters of a captured step through device_lr / device_hyper");
    for (const auto& [g, h] : pending_) {
      write_hyper_kernel<<<1, 1, 0, stream>>>(hypers + g, h);
      ALLOY_CUDA_CHECK(cudaGetLastError());
    }
    pending_.clear();
    if (advance) {
      const unsigned pblocks = std::max(1u, (num_tensors_ + 255) / 256);
      prologue_kernel<Rule><<<pblocks, 256, 0, stream>>>(
          tables_.entries.template as<TensorEntry>(), num_tensors_, hypers,
          tables_.counts.template as<std::uint32_t>(), tables_.scalars.template as<Scalars>(),
          tables_.global_step.template as<std::uint32_t>());
      ALLOY_CUDA_CHECK(cudaGetLastError());
      if constexpr (Share::kSharesSecondMoment) {
        if (tables_.shared_total) {
          const unsigned grid =
              unsigned(std::min<std::uint64_t>(tables_.shared_total, std::uint64_t(sms_) * 8));
          shared_stats_kernel<Rule><<<grid, share::kSumLanes, 0, stream>>>(
              tables_.entries.template as<TensorEntry>(),
              tables_.shared_spans.template as<SharedSpan>(), tables_.shared_count,
              tables_.shared_total, tables_.scalars.template as<Scalars>());
          ALLOY_CUDA_CHECK(cudaGetLastError());
        }
      }
    }
    cuda_detail::SideStream* const side = side_for(stream);
    last_side_priority_.reset();
    for (const Launch& l : tables_.launches)
      dispatch_dtypes(l.param, l.grad, rounding_, [&]<class PT, class GT, Rounding PR>() {
        using E = typename Kind::template type<PT, GT, PR>;
        constexpr Tuning tune = tuning_sm90<E>();
        StepParams<E, Scalars> prm{tables_.entries.template as<TensorEntry>(),
                                   l.chunks.template as<Chunk>(),
                                   l.worker_begin.template as<std::uint32_t>(),
                                   tables_.scalars.template as<Scalars>(),
                                   tables_.global_step.template as<std::uint32_t>(),
                                   advance ? 0u : 1u,
                                   seed_,
                                   rounding_purpose,
                                   args,
                                   tables_.format_tables.get(),
                                   l.queue.template as<std::uint32_t>(),
                                   l.workers};
        const auto step_launch = [&] {
          step_kernel<E, Scalars, tune.threads, tune.unroll>
              <<<l.blocks, tune.threads,
                 step_kernel_shared_bytes<E, Scalars, tune.threads, tune.unroll>(device_),
                 stream>>>(prm);
          ALLOY_CUDA_CHECK(cudaGetLastError());
        };
        if constexpr (Share::kSharesSecondMoment && std::is_same_v<Args, NoArgs>) {
          const auto one_pass_launch = [&]<int K>(const OnePass& op, Stream on) {
            if (!op.total) return;
            // Thread blocks per SM of the grid (each strides over the sharing blocks): 8, and
            // 16 for the four-run launch, whose shorter turns share the GPU better with the
            // other launches (llama1b, H100: 8-bit m +1%, bench/results/session14_ab_h100.txt
            // call 10; Fp32 m +0.3%, Bf16 m unchanged, session15_ab_h100.txt call 3).
            constexpr unsigned per_sm = K == kOnePassRuns[1] ? 16 : 8;
            const unsigned grid =
                unsigned(std::min<std::uint64_t>(op.total, std::uint64_t(sms_) * per_sm));
            shared_one_pass_kernel<E, Rule, K><<<grid, share::kSumLanes, 0, on>>>(
                tables_.entries.template as<TensorEntry>(), op.spans.template as<SharedSpan>(),
                op.count, op.total, tables_.scalars.template as<Scalars>(),
                tables_.global_step.template as<std::uint32_t>(), seed_, rounding_purpose,
                tables_.format_tables.get());
            ALLOY_CUDA_CHECK(cudaGetLastError());
          };
          const auto cluster_launch = [&](Stream on) {
            const OnePass& op = l.one_pass[2];
            if (!op.total) return;
            cudaLaunchAttribute at{};
            at.id = cudaLaunchAttributeClusterDimension;
            at.val.clusterDim.x = op.cluster;
            at.val.clusterDim.y = 1;
            at.val.clusterDim.z = 1;
            cudaLaunchConfig_t cfg{};
            cfg.gridDim = dim3(op.cluster * op.clusters);
            cfg.blockDim = dim3(share::kSumLanes);
            cfg.stream = on;
            cfg.attrs = &at;
            cfg.numAttrs = 1;
            ALLOY_CUDA_CHECK(cudaLaunchKernelEx(
                &cfg, shared_one_pass_kernel<E, Rule, 4, true>,
                tables_.entries.template as<TensorEntry>(), op.spans.template as<SharedSpan>(),
                op.count, op.total, tables_.scalars.template as<Scalars>(),
                tables_.global_step.template as<std::uint32_t>(), seed_, rounding_purpose,
                tables_.format_tables.get()));
          };
          if (side && (l.one_pass[1].total || l.one_pass[2].total)) {
            // The cluster launch first (its clusters need free SMs of one GPC; per_block.md
            // has the orders measured), then the four-run launch, on the side stream; the
            // one-run and step launches fill the SMs they leave. The four launches touch
            // disjoint tensors.
            const Stream on = side->fork(stream);
            cluster_launch(on);
            one_pass_launch.template operator()<kOnePassRuns[1]>(l.one_pass[1], on);
            one_pass_launch.template operator()<kOnePassRuns[0]>(l.one_pass[0], stream);
            step_launch();
            side->join(stream);
            last_side_priority_ = side->priority();
          } else {
            step_launch();
            one_pass_launch.template operator()<kOnePassRuns[0]>(l.one_pass[0], stream);
            one_pass_launch.template operator()<kOnePassRuns[1]>(l.one_pass[1], stream);
            cluster_launch(stream);
          }
        } else {
          step_launch();
        }
      });
  }

  /// Device address of group g's hyperparameters (lr is the first member): write new values
  /// there between replays of a captured step. Not validated: see docs/policies/cuda_executor.md.
  Hyper* device_hyper(std::size_t g) { return tables_.hypers.template as<Hyper>() + g; }
  float* device_lr(std::size_t g) { return &device_hyper(g)->lr; }

  /// Reads below wait for all work on the device (any stream) first.
  std::uint32_t step_count(std::size_t t) const {
    ALLOY_CUDA_CHECK(cudaDeviceSynchronize());
    std::uint32_t c = 0;
    ALLOY_CUDA_CHECK(
        cudaMemcpy(&c, tables_.counts.template as<std::uint32_t>() + t, 4, cudaMemcpyDeviceToHost));
    return c;
  }
  std::uint64_t global_step() const {
    ALLOY_CUDA_CHECK(cudaDeviceSynchronize());
    std::uint32_t c = 0;
    if (tables_.global_step.bytes())
      ALLOY_CUDA_CHECK(cudaMemcpy(&c, tables_.global_step.get(), 4, cudaMemcpyDeviceToHost));
    return c;
  }
  void read_state(void* dst, const void* src, std::size_t bytes) const {
    ALLOY_CUDA_CHECK(cudaDeviceSynchronize());
    ALLOY_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
  }
  std::size_t count_bytes() const { return tables_.counts.bytes(); }
  std::size_t overhead_bytes() const {
    std::size_t b = tables_.entries.bytes() + tables_.hypers.bytes() + tables_.scalars.bytes() +
                    tables_.global_step.bytes() + tables_.format_tables.bytes() +
                    tables_.shared_spans.bytes();
    for (const auto& l : tables_.launches)
      b += l.chunks.bytes() + l.worker_begin.bytes() + l.queue.bytes();
    return b;
  }
  /// share::PerBlock: sharing blocks per one-pass class over all launch groups (K = 1, K = 4,
  /// cluster), and the cluster size of the last group with cluster blocks (for tests).
  std::array<std::uint64_t, 4> one_pass_blocks() const {
    std::array<std::uint64_t, 4> n{};
    for (const auto& l : tables_.launches)
      for (int c = 0; c < 3; ++c) {
        n[c] += l.one_pass[c].total;
        if (c == 2 && l.one_pass[c].total) n[3] = l.one_pass[c].cluster;
      }
    return n;
  }
  /// share::PerBlock: whether the executor made its side stream (Options::cuda_side_stream, and
  /// some launch group has cluster or four-run blocks; for tests).
  bool side_stream_ready() const { return !sides_.empty(); }
  /// share::PerBlock: the priority of the side stream the last step forked, if it forked one
  /// (for tests).
  std::optional<int> last_side_stream_priority() const { return last_side_priority_; }
  /// Chunk lists of each launch group, and whether its blocks take them from a queue (for tests).
  std::vector<std::pair<unsigned, bool>> chunk_lists() const {
    std::vector<std::pair<unsigned, bool>> v;
    for (const auto& l : tables_.launches) v.emplace_back(l.workers, l.queue.bytes() != 0);
    return v;
  }
  /// Blocks of each launch group (for tests and tuning).
  std::vector<unsigned> grid_sizes() const {
    std::vector<unsigned> g;
    for (const auto& l : tables_.launches) g.push_back(l.blocks);
    return g;
  }

 private:
  /// Tensors of one launch group whose PerBlock blocks go through the one-pass kernel.
  struct OnePass {
    detail::Buffer spans;
    std::uint32_t count = 0;
    std::uint64_t total = 0;  // sharing blocks
    unsigned cluster = 0;     // class 2: thread blocks per cluster
    unsigned clusters = 0;    // class 2: clusters in the grid
  };
  struct Launch {
    DType param, grad;
    unsigned blocks = 0;
    unsigned workers = 0;  // chunk lists: blocks, or more with a queue
    detail::Buffer chunks, worker_begin, queue;
    // share::PerBlock's one-pass tensors, by class: kOnePassRuns, cluster (not in chunks).
    OnePass one_pass[3];
  };
  /// The kernel that sizes the grid: the rule's update of this gradient source.
  using PrimaryKind = typename Grad::template UpdateKind<Rule, Format>;
  struct Tables {
    detail::Buffer entries, hypers, scalars, counts, global_step;
    detail::Buffer format_tables;  // block formats: their tables (codebooks), else empty
    detail::Buffer shared_spans;   // share::PerBlock: active tensors and their first block
    std::uint32_t shared_count = 0;
    std::uint64_t shared_total = 0;  // blocks over all active tensors
    std::vector<Launch> launches;
  };

  static int device_of(const TensorEntry& e) {
    cudaPointerAttributes a{};
    ALLOY_CUDA_CHECK(cudaPointerGetAttributes(&a, e.param));
    return a.device;
  }
  static std::vector<std::pair<DType, DType>> dtype_pairs(const std::vector<TensorEntry>& entries) {
    std::vector<std::pair<DType, DType>> pairs;
    for (const auto& e : entries) {
      if (!(e.flags & kTensorActive)) continue;
      const std::pair<DType, DType> pr{DType(e.param_dtype), DType(e.grad_dtype)};
      if (std::find(pairs.begin(), pairs.end(), pr) == pairs.end()) pairs.push_back(pr);
    }
    std::sort(pairs.begin(), pairs.end());
    return pairs;
  }
  template <class T>
  detail::Buffer upload(const std::vector<T>& v, Device dev) {
    detail::Buffer b(alloc_, v.size() * sizeof(T), dev);
    if (!v.empty())
      ALLOY_CUDA_CHECK(cudaMemcpy(b.get(), v.data(), b.bytes(), cudaMemcpyHostToDevice));
    return b;
  }

  std::uint64_t seed_;
  Rounding rounding_;
  unsigned blocks_override_;
  bool one_pass_;
  bool side_stream_;
  // share::PerBlock: side streams for the cluster and four-run launches, one per priority; the
  // first (the default priority) is made at table build, so that a first step under capture has
  // one (side_for).
  std::vector<cuda_detail::SideStream> sides_;
  std::optional<int> last_side_priority_;
  bool cluster_ = false;  // share::PerBlock: blocks of 2..16 segments take clusters (rebuild)
  std::shared_ptr<Allocator> alloc_;
  int device_ = 0;
  int sms_ = 1;
  std::uint32_t num_tensors_ = 0;
  Tables tables_;
  std::vector<std::pair<std::size_t, Hyper>> pending_;
};

}  // namespace exec
ALLOY_NAMESPACE_END
