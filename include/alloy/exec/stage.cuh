// Staging a thread's next tile in shared memory with asynchronous copies (cp.async, sm_80+), so
// that its global loads are in flight while the thread computes the tile before it. Used by the
// CUDA executor for block-quantized state, whose kernels wait on global memory more than they
// issue (docs/policies/int8.md).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "tile.hpp"

ALLOY_NAMESPACE_BEGIN
namespace exec {

// Staging buffers (tiles per thread staged ahead of the one being computed, plus one), by
// parameter width; below 2 turns staging off (tiles load straight into registers). 4: three
// tiles in flight per thread while it computes the fourth; the buffers (106 KB with 16-bit
// parameters, 172 KB with fp32, besides the 26 KB of tables) leave one 256-thread block per SM.
// On the H100 (2026-11-26, docs/policies/int8.md) that ran the 8-bit AdamW rows at 0.898-0.915
// of copy; 2 buffers (two blocks per SM) at 0.85-0.89, 3 at 0.83-0.91, 6 (16-bit) at 0.88-0.89.
#ifndef ALLOY_BLOCK_STAGES_FP32
#define ALLOY_BLOCK_STAGES_FP32 4
#endif
#ifndef ALLOY_BLOCK_STAGES_16BIT
#define ALLOY_BLOCK_STAGES_16BIT 4
#endif
template <class PT>
inline constexpr int kBlockStages = sizeof(PT) == 4 ? ALLOY_BLOCK_STAGES_FP32
                                                    : ALLOY_BLOCK_STAGES_16BIT;

// Whether the staged loop takes whole warps only (32 tiles at a time, the rest by the unstaged
// tile loop) and reduces each tile's absmax as a tree (LaneGroup's kTree), by parameter width.
// The results are the same either way; the speed is not: on the H100 (2026-11-26,
// docs/policies/int8.md, bench/results/session8_ab_h100.txt) both together ran flat fp32 at
// 0.908-0.912 of copy against 0.900-0.901 without (six runs each; llama1b fp32 unchanged),
// while the 16-bit kernel, bound by issue at 128 registers, lost 2-3.5% with either change
// alone or both.
#ifndef ALLOY_STAGE_WHOLE_WARPS_FP32
#define ALLOY_STAGE_WHOLE_WARPS_FP32 1
#endif
#ifndef ALLOY_STAGE_WHOLE_WARPS_16BIT
#define ALLOY_STAGE_WHOLE_WARPS_16BIT 0
#endif
template <class PT>
inline constexpr bool kStageWholeWarps = sizeof(PT) == 4 ? ALLOY_STAGE_WHOLE_WARPS_FP32
                                                         : ALLOY_STAGE_WHOLE_WARPS_16BIT;

// Whether the staged loop writes its tiles' new parameters back through the staging buffer, so
// that each store instruction writes 512 consecutive bytes (TileStage::ParamSlots,
// store_params), instead of each lane storing its own tile (a 16-element tile is 2 or 4
// 16-byte pieces: every store instruction then writes half of each 32-byte sector it touches).
// By parameter width. On the H100 (2026-11-26, docs/policies/int8.md,
// bench/results/session11_ab_h100.txt) llama1b fp32 ran at 0.924-0.929 of copy against
// 0.908-0.915 (flat fp32 within 0.4%, won back by kStageTablesInFront); the 16-bit kernel,
// bound by issue, lost 1% on flat bf16 (0.889-0.891 against 0.898-0.904) to the extra
// shared-memory instructions.
#ifndef ALLOY_STAGE_PARAM_OUT_FP32
#define ALLOY_STAGE_PARAM_OUT_FP32 1
#endif
#ifndef ALLOY_STAGE_PARAM_OUT_16BIT
#define ALLOY_STAGE_PARAM_OUT_16BIT 0
#endif
template <class PT>
inline constexpr bool kStageParamOut = sizeof(PT) == 4 ? ALLOY_STAGE_PARAM_OUT_FP32
                                                       : ALLOY_STAGE_PARAM_OUT_16BIT;

// Whether the step kernel keeps the format's tables (26,624 bytes for Int8Blockwise) at the
// front of its dynamic shared memory, before the staging buffers, instead of in static shared
// memory; by parameter width. On the H100 (2026-11-26, docs/policies/int8.md,
// bench/results/session11_ab_h100.txt) flat fp32 ran at 0.911-0.917 of copy against 0.904-0.907
// (llama1b fp32 unchanged); the 16-bit kernel was 2-3% slower with them there (ninth session).
#ifndef ALLOY_STAGE_TABLES_IN_FRONT_FP32
#define ALLOY_STAGE_TABLES_IN_FRONT_FP32 1
#endif
#ifndef ALLOY_STAGE_TABLES_IN_FRONT_16BIT
#define ALLOY_STAGE_TABLES_IN_FRONT_16BIT 0
#endif
template <class PT>
inline constexpr bool kStageTablesInFront = sizeof(PT) == 4 ? ALLOY_STAGE_TABLES_IN_FRONT_FP32
                                                            : ALLOY_STAGE_TABLES_IN_FRONT_16BIT;

/// Whether the device code being compiled stages tiles: PTX for sm_90 and the data-center
/// Blackwells (sm_100, sm_103), whose 228 KB of shared memory per SM hold the buffers and tables
/// (the kernels were tuned on sm_90). The host asks the compiled kernel
/// (cudaFuncAttributes::ptxVersion) which it got: stages_on_ptx.
#if defined(__CUDA_ARCH__) && \
    (__CUDA_ARCH__ == 900 || __CUDA_ARCH__ == 1000 || __CUDA_ARCH__ == 1030)
#define ALLOY_STAGE_ARCH 1
#else
#define ALLOY_STAGE_ARCH 0
#endif
constexpr bool stages_on_ptx(int ptx_version) {
  return ptx_version == 90 || ptx_version == 100 || ptx_version == 103;
}

namespace async {
// cp.async exists from sm_80 on. Code compiled for earlier devices never stages (ALLOY_STAGE_ARCH)
// and traps if it calls these anyway, so that any caller compiles for every architecture.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define ALLOY_CP_ASYNC 0
#else
#define ALLOY_CP_ASYNC 1
#endif
/// Copies Bytes (4, 8 or 16) from global memory to shared memory without the registers,
/// through L1 (.ca). (The L1-bypassing form for 16 bytes, .cg, ran the 8-bit AdamW kernels at
/// 0.66-0.71 of copy against 0.85-0.88 with .ca, coalesced or not; H100, 2026-11-26.)
template <int Bytes>
__device__ __forceinline__ void copy(void* shared, const void* global) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16);
#if ALLOY_CP_ASYNC
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2;" ::"r"(s), "l"(global), "n"(Bytes)
               : "memory");
#else
  (void)shared;
  (void)global;
  __trap();
#endif
}
/// Closes the group of copies issued since the last commit (possibly none).
__device__ __forceinline__ void commit() {
#if ALLOY_CP_ASYNC
  asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}
/// Waits until at most `Pending` of this thread's committed groups are still in flight; the
/// completed groups' data is then visible to this thread.
template <int Pending>
__device__ __forceinline__ void wait() {
#if ALLOY_CP_ASYNC
  asm volatile("cp.async.wait_group %0;" ::"n"(Pending) : "memory");
#endif
}
}  // namespace async

/// One array of Bytes per thread in a staging buffer, kept as pieces of W bytes (the widest of
/// 16, 8, 4 dividing Bytes) piece-major ([piece][thread]), so that the threads of a warp read
/// their own arrays at consecutive addresses: one shared-memory wavefront per 8 threads (16-byte
/// pieces).
template <int Bytes, int kThreads>
struct StagedArray {
  static constexpr int W = io::kAccess<std::uint8_t, Bytes>;
  static constexpr int P = Bytes / W;  // pieces per thread
  static_assert(W != 0, "staged arrays are whole 4-byte words");
  static constexpr int kSize = Bytes * kThreads;  // bytes of the region, all threads

  /// Issues the copies of this thread's own array (src: global, aligned to W).
  __device__ static void fetch(char* region, const void* src) {
#pragma unroll
    for (int i = 0; i < P; ++i)
      async::copy<W>(region + slot(i, threadIdx.x) * W, static_cast<const char*>(src) + i * W);
  }
  /// Issues this lane's share of the copies of its warp's arrays, which lie one after another
  /// in global memory from `src` (aligned to W); the first `owners` lanes have one (`Partial`:
  /// owners may be below 32). Lane c copies the pieces c, c + 32, ... of those bytes, each into
  /// the slot of the lane owning it, so that every copy instruction of the warp reads 32
  /// consecutive pieces. The owners see the data after async::wait and a __syncwarp.
  template <bool Partial>
  __device__ static void fetch_warp(char* region, const void* src, unsigned owners) {
    each_warp_piece<Partial>(
        region, static_cast<const char*>(src), owners,
        [](char* shared, const char* global) { async::copy<W>(shared, global); });
  }
  /// This thread's array from the region into dst (registers).
  __device__ static void read(const char* region, void* dst) {
    using Word = typename io::Word<W>::type;
#pragma unroll
    for (int i = 0; i < P; ++i) {
      const Word x = *reinterpret_cast<const Word*>(region + slot(i, threadIdx.x) * W);
      std::memcpy(static_cast<char*>(dst) + i * W, &x, W);
    }
  }
  /// This thread's array from src (registers) into its slots: read's inverse.
  __device__ static void write(char* region, const void* src) {
    using Word = typename io::Word<W>::type;
#pragma unroll
    for (int i = 0; i < P; ++i) {
      Word x;
      std::memcpy(&x, static_cast<const char*>(src) + i * W, W);
      *reinterpret_cast<Word*>(region + slot(i, threadIdx.x) * W) = x;
    }
  }
  /// fetch_warp's inverse: stores the arrays of the warp's first `owners` lanes from their slots
  /// to global memory, one after another from `dst` (aligned to W), every store instruction
  /// writing 32 consecutive pieces (whole 32-byte sectors; a lane's own P pieces stored by
  /// itself would leave each instruction writing a part of every sector it touches). Call after
  /// the owners' `write` and a __syncwarp.
  template <bool Partial>
  __device__ static void store_warp(const char* region, void* dst, unsigned owners) {
    using Word = typename io::Word<W>::type;
    each_warp_piece<Partial>(
        region, static_cast<char*>(dst), owners, [](const char* shared, char* global) {
          *reinterpret_cast<Word*>(global) = *reinterpret_cast<const Word*>(shared);
        });
  }
  /// The warp's mapping of pieces to lanes, shared by fetch_warp and store_warp: f(shared,
  /// global) for each piece this lane moves, its slot in `region` and its place among the warp's
  /// arrays from `global`. Piece r * 32 + lane belongs to lane (32 / P) * r + lane / P, as its
  /// piece lane % P: the row does not depend on r, and the column only by a multiple of 8
  /// (untouched by slot's XOR), so every address is one base plus a constant.
  template <bool Partial, class S, class G, class F>
  __device__ static void each_warp_piece(S* region, G* global, unsigned owners, F&& f) {
    static_assert(P <= 4, "a warp's copy rows must start on multiples of 8 owners");
    const unsigned lane = threadIdx.x & 31u, owner0 = lane / P;
    S* const shared = region + slot(lane % P, threadIdx.x - lane + owner0) * W;
    G* const from = global + lane * W;
#pragma unroll
    for (int r = 0; r < P; ++r)
      if (!Partial || owner0 + (32u / P) * r < owners)
        f(shared + (32 / P) * r * W, from + 32 * r * W);
  }
  /// The slot of piece `part` of thread `thread`'s array: row `part`, the thread's column with
  /// its low three bits XORed by part * 8 / P. Reads (8 consecutive threads, one piece) and the
  /// warp's copies (8 consecutive lanes: 8 / P threads, P pieces each) then both fall on 8
  /// distinct 16-byte bank groups.
  __device__ static unsigned slot(unsigned part, unsigned thread) {
    return part * kThreads + (thread ^ (part * (8u / P)));
  }
};

/// Staging of the tiles of element kind E (block-quantized state, tiles with a parameter array
/// p, a gradient array g, codes m.q[k] and block absmax m.absmax[k]) for kThreads threads: a
/// buffer holds one tile per thread; kStages buffers make the dynamic shared memory.
template <class E, int kThreads>
struct TileStage {
  static constexpr int N = E::kVec, B = E::State::kBlock;
  using Tile = typename E::template Tile<N>;
  using PT = std::remove_extent_t<decltype(Tile::p)>;
  static constexpr int kStages = kBlockStages<PT>;
  using GT = std::remove_extent_t<decltype(Tile::g)>;
  using Moments = decltype(Tile::m);
  static constexpr int K = int(std::extent_v<decltype(Moments::q)>);
  using P = StagedArray<int(N * sizeof(PT)), kThreads>;
  using G = StagedArray<int(N * sizeof(GT)), kThreads>;
  using Q = StagedArray<N, kThreads>;
  using A = StagedArray<4, kThreads>;
  static constexpr int kQ = P::kSize + G::kSize;                     // offset of the codes
  static constexpr int kA = kQ + K * Q::kSize;                       // offset of the absmax
  static constexpr int kBuffer = kA + K * A::kSize;                  // bytes of one buffer
  static constexpr int kBytes = kStages > 0 ? kBuffer* kStages : 0;  // dynamic shared memory
  static_assert(kBuffer % 16 == 0);

  /// Issues the copies of the warp's tiles into `buffer`: the tiles at elements i0, i0 + N, ...
  /// of t for its first `owners` lanes (whole tiles of whole blocks; parameter and gradient
  /// 16-byte aligned, i0 % N == 0).
  __device__ static void fetch(char* buffer, const TensorEntry& t, std::uint64_t i0,
                               unsigned owners) {
    if (owners == 32) fetch_warp<false>(buffer, t, i0, owners);
    else fetch_warp<true>(buffer, t, i0, owners);
  }
  template <bool Partial>
  __device__ static void fetch_warp(char* buffer, const TensorEntry& t, std::uint64_t i0,
                                    unsigned owners) {
    P::template fetch_warp<Partial>(buffer, static_cast<const PT*>(t.param) + i0, owners);
    G::template fetch_warp<Partial>(buffer + P::kSize, static_cast<const GT*>(t.grad) + i0, owners);
    const unsigned lane = threadIdx.x & 31u;
#pragma unroll
    for (int k = 0; k < K; ++k)
      if (Moments::kept(t, k)) {
        Q::template fetch_warp<Partial>(buffer + kQ + k * Q::kSize,
                                        static_cast<const std::uint8_t*>(t.state[k]) + i0, owners);
        if (!Partial || lane < owners)
          A::fetch(buffer + kA + k * A::kSize,
                   static_cast<const float*>(t.scale[k]) + (i0 + lane * N) / B);
      }
  }
  /// Where a staged tile puts its new parameters (update_store's sink): the thread's own slots
  /// of the parameter array in `buffer`, from where store_params writes the warp's tiles out.
  struct ParamSlots {
    char* buffer;
    template <bool Vec, int M>
    __device__ void store(const TensorEntry&, std::uint64_t, const PT (&p)[M], int) const {
      static_assert(M == N, "staged tiles are whole");
      P::write(buffer, p);
    }
  };
  /// The new parameters of the warp's tiles at elements i0, i0 + N, ... for its first `owners`
  /// lanes, from `buffer` to the tensor (after the owners' ParamSlots and a __syncwarp).
  __device__ static void store_params(const char* buffer, const TensorEntry& t, std::uint64_t i0,
                                      unsigned owners) {
    PT* const dst = static_cast<PT*>(t.param) + i0;
    if (owners == 32) P::template store_warp<false>(buffer, dst, owners);
    else P::template store_warp<true>(buffer, dst, owners);
  }
  /// This thread's tile from `buffer` (after async::wait and __syncwarp).
  __device__ static void read(const char* buffer, const TensorEntry& t, Tile& tile) {
    P::read(buffer, tile.p);
    G::read(buffer + P::kSize, tile.g);
#pragma unroll
    for (int k = 0; k < K; ++k)
      if (Moments::kept(t, k)) {
        Q::read(buffer + kQ + k * Q::kSize, tile.m.q[k]);
        A::read(buffer + kA + k * A::kSize, &tile.m.absmax[k]);
      }
  }
};

/// Whether E's tiles can be staged: block-quantized state and tiles of the GradTile layout
/// (parameter, gradient, codes, absmax), with staging on.
template <class E>
inline constexpr bool kStagedKind = false;
template <class E>
requires(kBlockKind<E>&& kBlockStages<typename E::Param> >= 2 &&
         requires(typename E::template Tile<E::kVec> t) {
           t.p;
           t.g;
           t.m.q;
           t.m.absmax;
         }) inline constexpr bool kStagedKind<E> = true;

/// Whether E's staged step kernel keeps its format's tables in the dynamic shared memory.
template <class E, int kThreads>
constexpr bool staged_tables() {
  if constexpr (kStagedKind<E>) return kStageTablesInFront<typename TileStage<E, kThreads>::PT>;
  else return false;
}

/// Dynamic shared memory of E's step kernel with kThreads threads (0 without staging): the
/// staging buffers, after the tables where they go in front (staged_tables).
template <class E, int kThreads>
constexpr int staged_bytes() {
  if constexpr (kStagedKind<E>)
    return TileStage<E, kThreads>::kBytes +
           (staged_tables<E, kThreads>() ? int(sizeof(typename E::State::Tables)) : 0);
  else return 0;
}

}  // namespace exec
ALLOY_NAMESPACE_END
