// traffic_probe: the ceiling of 8-bit AdamW's memory traffic on this GPU, without its arithmetic.
//
//   traffic_probe [--elements 268435456] [--steps 20] [--match LABEL]
//
// Streams exactly the bytes one step of AdamW with Int8Blockwise<256> state moves (parameter
// and gradient read, parameter written, both moments' codes read and written, one fp32 absmax
// per 256 elements per moment read and written), for fp32 and bf16 parameters, with one integer
// operation per value instead of the rule: how fast that traffic mix can go at all, set against
// cudaMemcpy's copy bandwidth measured in the same run (BENCHMARKS.md's denominator). A kernel
// that reaches the probe's fraction is as fast as its bytes allow on this device; the gap
// between the two is what the arithmetic costs.
//
// Each thread owns 16-element tiles (as the 8-bit kernels' 16-bit-parameter path). Three ways
// to move them: plain 16-byte loads, `depth` tiles in flight per thread (`probe`); staged in
// shared memory with cp.async as the kernels do (`probe_staged`); staged with sm_90 bulk copies
// and mbarriers (`probe_bulk`), optionally with the stores as bulk copies too (`bulk io`). Two
// layouts beside the kernels' own: both moments' codes interleaved tile by tile in one array
// (`mv`), and parameter stores whose every instruction writes 512 consecutive bytes (`coalesced p`;
// a lane storing its own tile writes half of each 32-byte sector an instruction touches), or each
// lane's tile in two halves so that every store instruction writes whole lines (`split`). Some
// rows add a stand-in for the rule's arithmetic (`work R`, R rounds per element), to see how the
// traffic fares beside computing warps. The grid is one full wave of the kernel (optionally at
// most `cap` blocks per SM). Prints one line per configuration (--match: only those whose label
// contains LABEL) and the copy bandwidth. Measured: docs/policies/int8.md.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <alloy/exec/stage.cuh>  // async::copy, commit, wait: the kernels' own cp.async

#include "timing.cuh"

namespace {

namespace async = alloy::exec::async;

constexpr int kTile = 16;    // elements per thread per tile
constexpr int kBlock = 256;  // elements per absmax
constexpr int kThreads = 256;

/// One tile's bytes: parameter and gradient (PBytes each per element), two code arrays, and the
/// tile's absmax per moment (one thread in 16 carries it: the block's first tile).
template <int PBytes>
struct Tile {
  uint4 p[PBytes], g[PBytes];  // 16 elements x PBytes bytes = PBytes x 16-byte vectors
  uint4 m, v;
  float am, av;
};

/// f(d, t) for each of a thread's Depth tiles t = t0 + d * stride that exist.
template <int Depth, class F>
__device__ __forceinline__ void each_tile(std::uint64_t t0, std::uint64_t stride,
                                          std::uint64_t tiles, F&& f) {
#pragma unroll
  for (int d = 0; d < Depth; ++d)
    if (t0 + d * stride < tiles) f(d, t0 + d * stride);
}

template <int PBytes, int Depth, bool MV = false, bool CoalescedP = false>
__global__ void __launch_bounds__(kThreads)
    probe(uint4* p, const uint4* g, uint4* m, uint4* v, float* am, float* av, std::uint64_t tiles) {
  constexpr int kTilesPerBlock = kBlock / kTile;
  // MV: the two moments' codes interleaved tile by tile in one array (m: unit 2t, v: 2t + 1).
  const auto mi = [](std::uint64_t t) { return MV ? 2 * t : t; };
  if constexpr (MV) v = m + 1;
  const std::uint64_t stride = std::uint64_t(gridDim.x) * kThreads;
  for (std::uint64_t t0 = blockIdx.x * std::uint64_t(kThreads) + threadIdx.x; t0 < tiles;
       t0 += stride * Depth) {
    Tile<PBytes> x[Depth];
    each_tile<Depth>(t0, stride, tiles, [&](int d, std::uint64_t t) {
      const unsigned lane = threadIdx.x % 32;
      const auto pi = [&](int k) {  // CoalescedP: 512 consecutive bytes per instruction
        return CoalescedP ? (t - lane) * PBytes + 32 * k + lane : t * PBytes + k;
      };
#pragma unroll
      for (int k = 0; k < PBytes; ++k) {
        x[d].p[k] = p[pi(k)];
        x[d].g[k] = g[pi(k)];
      }
      x[d].m = m[mi(t)];
      x[d].v = v[mi(t)];
      if (t % kTilesPerBlock == 0) {
        x[d].am = am[t / kTilesPerBlock];
        x[d].av = av[t / kTilesPerBlock];
      }
    });
    each_tile<Depth>(t0, stride, tiles, [&](int d, std::uint64_t t) {
      const unsigned lane = threadIdx.x % 32;
#pragma unroll
      for (int k = 0; k < PBytes; ++k) {
        const uint4 a = x[d].p[k], b = x[d].g[k];
        p[CoalescedP ? (t - lane) * PBytes + 32 * k + lane : t * PBytes + k] =
            make_uint4(a.x ^ b.x, a.y ^ b.y, a.z ^ b.z, a.w ^ b.w);
      }
      m[mi(t)] = make_uint4(x[d].m.x + 1, x[d].m.y, x[d].m.z, x[d].m.w);
      v[mi(t)] = make_uint4(x[d].v.x + 1, x[d].v.y, x[d].v.z, x[d].v.w);
      if (t % kTilesPerBlock == 0) {
        am[t / kTilesPerBlock] = x[d].am + 1.f;
        av[t / kTilesPerBlock] = x[d].av + 1.f;
      }
    });
  }
}

/// A stand-in for the rule's arithmetic, `Rounds` rounds per element (0: none): dependent float
/// math with one reciprocal square root and one shared-memory gather per round, after two
/// gathers that decode the element's codes (the 8-bit kernels read two codebook entries and two
/// encoder entries per element, at lane-dependent addresses). Returns a word the caller folds
/// into its output only under a condition false at run time, so that the work is done and the
/// traffic unchanged.
template <int Rounds, int PBytes>
__device__ __forceinline__ unsigned work(const uint4 (&pp)[PBytes], const uint4 (&gg)[PBytes],
                                         uint4 c, uint4 e, const std::uint32_t* tab) {
  if constexpr (Rounds == 0) {
    return 0;
  } else {
    const unsigned lane = threadIdx.x % 32;
    const auto word = [](const uint4* x, int i) {
      const uint4 v = x[i / 4];
      return i % 4 == 0 ? v.x : i % 4 == 1 ? v.y : i % 4 == 2 ? v.z : v.w;
    };
    const auto value = [&](const uint4* x, int j) {  // element j as fp32
      if constexpr (PBytes == 2)
        return __uint_as_float(word(x, j / 2) << (16 * (1 - j % 2)) & 0xffff0000u);
      else return __uint_as_float(word(x, j));
    };
    float acc = 0.f;
#pragma unroll
    for (int j = 0; j < kTile; ++j) {
      float x = value(pp, j);
      const float gr = value(gg, j);
      const unsigned q = (word(&c, j / 4) >> (8 * (j % 4))) & 0xffu;
      const unsigned r = (word(&e, j / 4) >> (8 * (j % 4))) & 0xffu;
      float m = __uint_as_float(tab[(q + 8 * lane) & 255u]);
      float v = __uint_as_float(tab[256 + ((r + 8 * lane) & 255u)]);
#pragma unroll
      for (int k = 0; k < Rounds; ++k) {
        m = fmaf(0.9f, m, 0.1f * gr);
        v = fmaf(0.999f, v, 1e-3f * gr * gr);
        x = fmaf(-1e-3f, m * rsqrtf(v + 1e-8f), x);
        const unsigned idx = ((__float_as_uint(m) >> 13) + 97u * lane + 13u * unsigned(j)) & 4095u;
        m += __uint_as_float(tab[512 + idx]);
      }
      acc += x + m + v;
    }
    return __float_as_uint(acc);
  }
}

/// Sets up a probe's stand-in for the 8-bit kernels' tables (`Words` 32-bit words of static shared
/// memory): with work, small positive floats throughout; and word tx, which the thread reads back
/// into its output, zero (touched at a thread-dependent index, so that the compiler keeps all of
/// it). Returns tx.
template <int Words, bool Tables, int Work>
__device__ __forceinline__ unsigned prepare_tables(std::uint32_t* tables) {
  if constexpr (Work != 0) {
    for (unsigned i = threadIdx.x; i < Words; i += blockDim.x)
      tables[i] = __float_as_uint(1e-3f * float(i % 61) + 1e-4f);
    __syncthreads();
  }
  const unsigned tx = (threadIdx.x * 26u) % Words;
  if (Tables) tables[tx] = 0;
  return tx;
}

/// The same traffic through shared memory, as the 8-bit kernels stage it: each warp copies its
/// 32 lanes' next tiles `Stages - 1` iterations ahead with cp.async.ca, every copy instruction
/// reading 512 consecutive bytes of one array, into piece-major buffers ([stage][piece][thread]:
/// a lane's 16-byte reads of its own tile are free of bank conflicts); a lane waits for the
/// oldest group, meets its warp (__syncwarp: the other lanes' copies are visible), and computes
/// from shared memory. `Tables` adds the 8-bit kernels' 26,624 bytes of static shared memory
/// (their codebooks), which also sets how much is left for L1. Without `StageP` the parameter is
/// not staged: each lane loads its tile's parameter from global memory when it computes.
template <int PBytes, int Stages, bool Tables, bool StageP = true, bool MV = false,
          bool CoalescedP = false, int Work = 0, int Split = 0>
__global__ void __launch_bounds__(kThreads)
    probe_staged(uint4* p, const uint4* g, uint4* m, uint4* v, float* am, float* av,
                 std::uint64_t tiles) {
  const auto mi = [](std::uint64_t t) { return MV ? 2 * t : t; };
  if constexpr (MV) v = m + 1;
  static_assert(!Work || Tables, "the work gathers from the tables");
  constexpr int kP = StageP ? PBytes : 0;   // staged pieces of the parameter
  constexpr int kPieces = kP + PBytes + 3;  // parameter, gradient, two codes, one for the absmax
  constexpr int kTilesPerBlock = kBlock / kTile;
  extern __shared__ uint4 buf[];  // [Stages][kPieces][kThreads]
  constexpr int kWords = Tables ? 26624 / 4 : 1;
  __shared__ std::uint32_t tables[kWords];
  const unsigned tx = prepare_tables<kWords, Tables, Work>(tables);
  const unsigned never = unsigned(tiles >> 62);  // 0 at run time, unknown to the compiler
  const unsigned lane = threadIdx.x % 32, warp0 = threadIdx.x - lane;
  const std::uint64_t stride = std::uint64_t(gridDim.x) * kThreads;
  const std::uint64_t t0 = blockIdx.x * std::uint64_t(kThreads) + threadIdx.x;
  const auto slot = [&](std::uint64_t i, int k, unsigned owner) -> uint4* {
    return buf + (int(i % Stages) * kPieces + k) * kThreads + warp0 + owner;
  };
  // One array of Pieces 16-byte pieces per tile, pieces [k0, k0 + Pieces) of the stage: copy c
  // of the warp takes 16-byte unit 32 c + lane of the warp's 32 consecutive tiles.
  const auto fetch_array = [&]<int Pieces>(std::uint64_t i, const uint4* src, int k0) {
    const std::uint64_t first = t0 - lane + i * stride;  // the warp's first tile
#pragma unroll
    for (int c = 0; c < Pieces; ++c) {
      const unsigned unit = 32 * c + lane, owner = unit / Pieces;
      if (first + owner < tiles)
        async::copy<16>(slot(i, k0 + int(unit % Pieces), owner), src + first * Pieces + unit);
    }
  };
  const auto fetch = [&](std::uint64_t i) {  // the warp's tiles of iteration i into its stage
    if constexpr (StageP) fetch_array.template operator()<PBytes>(i, p, 0);
    fetch_array.template operator()<PBytes>(i, g, kP);
    if constexpr (MV) {
      fetch_array.template operator()<2>(i, m, kP + PBytes);  // pieces m, v of each tile
    } else {
      fetch_array.template operator()<1>(i, m, kP + PBytes);
      fetch_array.template operator()<1>(i, v, kP + PBytes + 1);
    }
    const std::uint64_t t = t0 + i * stride;
    if (t < tiles && t % kTilesPerBlock == 0) {
      float* a = reinterpret_cast<float*>(slot(i, kP + PBytes + 2, lane));
      async::copy<4>(a, am + t / kTilesPerBlock);
      async::copy<4>(a + 1, av + t / kTilesPerBlock);
    }
    async::commit();
  };
  for (int i = 0; i < Stages - 1; ++i) fetch(i);
  for (std::uint64_t i = 0; t0 - lane + i * stride < tiles; ++i) {
    __syncwarp();  // every lane is done with the stage the next fetch overwrites
    fetch(i + Stages - 1);
    async::wait<Stages - 1>();
    __syncwarp();
    const std::uint64_t t = t0 + i * stride;
    if (t >= tiles) continue;
    uint4 a[PBytes], b[PBytes];
#pragma unroll
    for (int k = 0; k < PBytes; ++k) {
      a[k] = StageP ? *slot(i, k, lane) : p[t * PBytes + k];
      b[k] = *slot(i, kP + k, lane);
    }
    const uint4 c = *slot(i, kP + PBytes, lane), e = *slot(i, kP + PBytes + 1, lane);
    const unsigned w = work<Work, PBytes>(a, b, c, e, tables) & never;
    if constexpr (Split) {
      // Each lane's tile as two runs of 8 elements, inside a group of Split lanes owning 16 x
      // Split consecutive elements (lane j of the group: elements 8j.. and 8 (Split + j)..): a
      // store instruction then writes 16 x Split bytes of the parameter (16-byte pieces) or
      // 8 x Split of each code array (8-byte pieces) in one run: whole 32-byte sectors from
      // Split = 4, whole 128-byte lines from 16. A traffic pattern only (the values land in
      // other lanes' places).
      static_assert(PBytes == 2 && !MV && !CoalescedP && 32 % Split == 0);
      const unsigned grp = lane / Split, j = lane % Split;
      uint4* const pw = p + (t - lane) * PBytes + 2 * Split * grp + j;
      pw[0] = make_uint4(a[0].x ^ b[0].x ^ w, a[0].y ^ b[0].y, a[0].z ^ b[0].z, a[0].w ^ b[0].w);
      pw[Split] = make_uint4(a[1].x ^ b[1].x, a[1].y ^ b[1].y, a[1].z ^ b[1].z, a[1].w ^ b[1].w);
      uint2* const mw = reinterpret_cast<uint2*>(m + (t - lane)) + 2 * Split * grp + j;
      uint2* const vw = reinterpret_cast<uint2*>(v + (t - lane)) + 2 * Split * grp + j;
      mw[0] = make_uint2(c.x + 1, c.y);
      mw[Split] = make_uint2(c.z, c.w);
      vw[0] = make_uint2(e.x + 1, e.y);
      vw[Split] = make_uint2(e.z, e.w);
    } else {
#pragma unroll
      for (int k = 0; k < PBytes; ++k) {
        // CoalescedP: each store instruction writes 512 consecutive bytes (the warp's tiles'
        // pieces in order; a traffic pattern only, the values land in other lanes' places).
        p[CoalescedP ? (t - lane) * PBytes + 32 * k + lane : t * PBytes + k] = make_uint4(
            a[k].x ^ b[k].x ^ (k == 0 ? w : 0u), a[k].y ^ b[k].y, a[k].z ^ b[k].z, a[k].w ^ b[k].w);
      }
      m[mi(t)] = make_uint4(c.x + 1, c.y, c.z, c.w);
      v[mi(t)] = make_uint4(e.x + 1, e.y, e.z, e.w);
    }
    if (t % kTilesPerBlock == 0) {
      const float* a = reinterpret_cast<const float*>(slot(i, kP + PBytes + 2, lane));
      am[t / kTilesPerBlock] = a[0] + 1.f;
      av[t / kTilesPerBlock] = a[1] + 1.f + float(Tables ? tables[tx] : 0u);
    }
  }
  async::wait<0>();
}

namespace bulk {
// sm_90 instructions: compiled for earlier devices the helpers trap (main runs the bulk rows on
// sm_90 and later only).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define PROBE_BULK 0
#else
#define PROBE_BULK 1
#endif
/// The mbarrier at `bar` (shared memory) expects `arrivals` arrivals per phase.
__device__ __forceinline__ void init(std::uint64_t* bar, unsigned arrivals = 1) {
#if PROBE_BULK
  const auto b = static_cast<unsigned>(__cvta_generic_to_shared(bar));
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(b), "r"(arrivals) : "memory");
#else
  (void)bar;
  (void)arrivals;
  __trap();
#endif
}
/// Arrives on `bar`, announcing `bytes` of bulk copies that will complete on it.
__device__ __forceinline__ void expect(std::uint64_t* bar, unsigned bytes) {
#if PROBE_BULK
  const auto b = static_cast<unsigned>(__cvta_generic_to_shared(bar));
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b), "r"(bytes)
               : "memory");
#else
  (void)bar;
  (void)bytes;
#endif
}
/// One bulk copy (TMA) of `bytes` (a multiple of 16, both ends 16-byte aligned) from global to
/// shared memory, completing on `bar`.
__device__ __forceinline__ void copy(void* dst, const void* src, unsigned bytes,
                                     std::uint64_t* bar) {
#if PROBE_BULK
  const auto d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  const auto b = static_cast<unsigned>(__cvta_generic_to_shared(bar));
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::
          "r"(d),
      "l"(src), "r"(bytes), "r"(b)
      : "memory");
#else
  (void)dst;
  (void)src;
  (void)bytes;
  (void)bar;
#endif
}
/// Arrives on `bar` once this thread's earlier cp.async copies have completed (the arrival the
/// barrier's count includes for them: `.noinc`).
__device__ __forceinline__ void arrive_copies(std::uint64_t* bar) {
#if PROBE_BULK
  const auto b = static_cast<unsigned>(__cvta_generic_to_shared(bar));
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(b) : "memory");
#else
  (void)bar;
#endif
}
/// Waits until the phase of `bar` with this parity has completed.
__device__ __forceinline__ void wait(std::uint64_t* bar, unsigned parity) {
#if PROBE_BULK
  const auto b = static_cast<unsigned>(__cvta_generic_to_shared(bar));
  asm volatile(
      "{\n .reg .pred p;\n W: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      " @!p bra W;\n}" ::"r"(b),
      "r"(parity)
      : "memory");
#else
  (void)bar;
  (void)parity;
#endif
}
/// One bulk copy (TMA) of `bytes` from shared to global memory, in this thread's bulk group
/// (commit, wait_read). The writes of every thread to `src` must be fenced for the async proxy
/// (fence_async) and synchronized before.
__device__ __forceinline__ void store(void* dst, const void* src, unsigned bytes) {
#if PROBE_BULK
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(src));
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(dst), "r"(s),
               "r"(bytes)
               : "memory");
#else
  (void)dst;
  (void)src;
  (void)bytes;
#endif
}
/// Closes this thread's bulk group of stores.
__device__ __forceinline__ void commit() {
#if PROBE_BULK
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
#endif
}
/// Waits until at most N of this thread's bulk groups still read shared memory.
template <int N>
__device__ __forceinline__ void wait_read() {
#if PROBE_BULK
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(N) : "memory");
#endif
}
/// Makes this thread's shared-memory writes visible to bulk copies issued after a barrier.
__device__ __forceinline__ void fence_async() {
#if PROBE_BULK
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}
}  // namespace bulk

/// The same traffic staged with bulk copies (TMA, sm_90): lane 0 of each warp copies its warp's
/// next 32 tiles of each array (parameter, gradient, two codes: one contiguous run each)
/// `Stages - 1` iterations ahead, completing on one mbarrier per warp and stage; the lanes wait
/// on it and read their tiles from shared memory, 16-byte pieces in a lane-dependent order (no
/// bank conflicts). The absmax (8 bytes per moment per warp, below the bulk copies' 16) is read
/// and written back plainly, both loads before both stores: one global round trip in every
/// iteration of the warp (load, store, load, store made two, and held 8 warps per SM at 0.77-0.83
/// of copy: docs/policies/int8.md, seventeenth session), or, with
/// StagedAbsmax, staged by lane 0's cp.async copies that arrive on the same mbarrier (as the
/// kernels stage it: each iteration then only stores it). Needs elements % (32 * 16) == 0. With
/// BulkStores (`bulk io`) the stores are bulk copies too: the lanes write the new parameter and
/// codes over their tiles in the stage, lane 0 copies the stage's three output runs to global
/// memory as one bulk group, and a stage is fetched again once its group has been read.
template <int PBytes, int Stages, bool Tables, int Threads = kThreads, bool BulkStores = false,
          bool StagedAbsmax = false, int Work = 0>
__global__ void __launch_bounds__(Threads) probe_bulk(uint4* p, const uint4* g, uint4* m, uint4* v,
                                                      float* am, float* av, std::uint64_t tiles) {
  static_assert(!BulkStores || Stages >= 3, "a stage's stores drain while the next computes");
  static_assert(!Work || Tables, "the work gathers from the tables");
  constexpr int kPieces = 2 * PBytes + 2;  // 16-byte pieces per tile: p, g, m, v
  constexpr int kWarps = Threads / 32;
  constexpr int kTilesPerBlock = kBlock / kTile;
  extern __shared__ uint4 buf[];  // [Stages][warp][array][32 lanes x pieces]
  __shared__ std::uint64_t bars[Stages][kWarps];
  __shared__ float2 amx[StagedAbsmax ? Stages : 1][kWarps][2];  // the warp's two blocks' absmax
  constexpr int kWords = Tables ? 26624 / 4 : 1;
  __shared__ std::uint32_t tables[kWords];
  const unsigned tx = prepare_tables<kWords, Tables, Work>(tables);
  const unsigned never = unsigned(tiles >> 62);  // 0 at run time, unknown to the compiler
  // The warp's index from lane 0: ptxas then knows it is the same in every lane, and the bulk
  // copies' addresses (warp-uniform operands) need no loop over the lanes' values.
  const unsigned lane = threadIdx.x % 32, warp = __shfl_sync(~0u, threadIdx.x / 32, 0);
  if (lane == 0)
    for (int s = 0; s < Stages; ++s) bulk::init(&bars[s][warp], StagedAbsmax ? 2 : 1);
  bulk::fence_async();  // the barriers' initialization, before any bulk copy completes on them
  __syncwarp();
  const std::uint64_t stride = std::uint64_t(gridDim.x) * Threads;
  const std::uint64_t w0 =
      blockIdx.x * std::uint64_t(Threads) + 32 * warp;  // the warp's first tile
  const std::uint64_t t0 = w0 + lane;
  const auto stage = [&](std::uint64_t i) {
    return buf + (int(i % Stages) * kWarps + warp) * 32 * kPieces;
  };
  const auto fetch = [&](std::uint64_t i) {
    const std::uint64_t first = w0 + i * stride;
    if (lane != 0 || first >= tiles) return;
    uint4* s = stage(i);
    std::uint64_t* bar = &bars[i % Stages][warp];
    bulk::expect(bar, 32 * kPieces * 16);
    bulk::copy(s, p + first * PBytes, 32 * PBytes * 16, bar);
    bulk::copy(s + 32 * PBytes, g + first * PBytes, 32 * PBytes * 16, bar);
    bulk::copy(s + 64 * PBytes, m + first, 32 * 16, bar);
    bulk::copy(s + 64 * PBytes + 32, v + first, 32 * 16, bar);
    if constexpr (StagedAbsmax) {  // the warp's 32 tiles are two blocks: 8 bytes per moment
      async::copy<8>(&amx[i % Stages][warp][0], am + first / kTilesPerBlock);
      async::copy<8>(&amx[i % Stages][warp][1], av + first / kTilesPerBlock);
      bulk::arrive_copies(bar);
    }
  };
  for (int i = 0; i < Stages - 1; ++i) fetch(i);
  for (std::uint64_t i = 0; w0 + i * stride < tiles; ++i) {
    if (!BulkStores) {
      __syncwarp();  // every lane is done with the stage the next fetch overwrites
      fetch(i + Stages - 1);
    }
    bulk::wait(&bars[i % Stages][warp], unsigned(i / Stages) & 1u);
    const std::uint64_t t = t0 + i * stride;
    uint4* s = stage(i);
    // Outputs go to global memory, or over the inputs in the stage (BulkStores).
    uint4* const po = BulkStores ? s : p + (t - lane) * PBytes;
    uint4* const mo = BulkStores ? s + 64 * PBytes : m + (t - lane);
    uint4* const vo = BulkStores ? s + 64 * PBytes + 32 : v + (t - lane);
    const uint4 c = s[64 * PBytes + lane], e = s[64 * PBytes + 32 + lane];
    if constexpr (Work == 0) {
#pragma unroll
      for (int k = 0; k < PBytes; ++k) {
        const int kk = k ^ int((lane >> 2) % PBytes);  // 8 lanes of a phase: 8 distinct bank groups
        const uint4 a = s[lane * PBytes + kk], b = s[32 * PBytes + lane * PBytes + kk];
        po[lane * PBytes + kk] = make_uint4(a.x ^ b.x, a.y ^ b.y, a.z ^ b.z, a.w ^ b.w);
      }
    } else {  // in place (2-way bank conflicts): a lane-dependent order would index registers
      uint4 a[PBytes], b[PBytes];
#pragma unroll
      for (int k = 0; k < PBytes; ++k) {
        a[k] = s[lane * PBytes + k];
        b[k] = s[32 * PBytes + lane * PBytes + k];
      }
      const unsigned w = work<Work, PBytes>(a, b, c, e, tables) & never;
#pragma unroll
      for (int k = 0; k < PBytes; ++k)
        po[lane * PBytes + k] = make_uint4(a[k].x ^ b[k].x ^ (k == 0 ? w : 0u), a[k].y ^ b[k].y,
                                           a[k].z ^ b[k].z, a[k].w ^ b[k].w);
    }
    mo[lane] = make_uint4(c.x + 1, c.y, c.z, c.w);
    vo[lane] = make_uint4(e.x + 1, e.y, e.z, e.w);
    if (t % kTilesPerBlock == 0) {
      float a = 0.f, b = 0.f;  // the block's absmax, lane 0 or 16
      if constexpr (StagedAbsmax) {
        const float2 sa = amx[i % Stages][warp][0], sv = amx[i % Stages][warp][1];
        a = lane ? sa.y : sa.x;
        b = lane ? sv.y : sv.x;
      } else {
        a = am[t / kTilesPerBlock];
        b = av[t / kTilesPerBlock];
      }
      am[t / kTilesPerBlock] = a + 1.f;
      av[t / kTilesPerBlock] = b + 1.f + float(Tables ? tables[tx] : 0u);
    }
    if (BulkStores) {
      bulk::fence_async();
      __syncwarp();
      if (lane == 0) {
        const std::uint64_t first = w0 + i * stride;
        bulk::store(p + first * PBytes, po, 32 * PBytes * 16);
        bulk::store(m + first, mo, 32 * 16);
        bulk::store(v + first, vo, 32 * 16);
        bulk::commit();
        bulk::wait_read<1>();  // stage i - 1's stores have read it: it may be fetched again
      }
      fetch(i + Stages - 1);  // lane 0, into stage i - 1's buffer
    }
  }
  if (BulkStores && lane == 0) bulk::wait_read<0>();  // the buffers outlive the stores' reads
}

template <int PBytes, int Stages, int Threads = kThreads>
constexpr int bulk_smem() {
  return Stages * (2 * PBytes + 2) * Threads * 16;
}

template <int PBytes, int Stages, bool StageP = true>
constexpr int staged_smem() {
  return Stages * ((StageP ? 2 : 1) * PBytes + 3) * kThreads * 16;
}

using Kernel = void (*)(uint4*, const uint4*, uint4*, uint4*, float*, float*, std::uint64_t);

std::string g_match;  // --match: run only the rows whose label contains it
bool g_warm = false;  // the process's first timed row has had its warm-up pass

/// Times `kernel` (one full wave of it with `smem` bytes of dynamic shared memory) over n elements.
template <int PBytes>
void run(Kernel kernel, int smem, const char* what, std::uint64_t n, int steps, double copy_gbs,
         int cap = 64, int threads = kThreads, bool check = false) {
  if (std::string(what).find(g_match) == std::string::npos) return;
  const std::uint64_t tiles = n / kTile;
  void *p, *g, *m, *v, *am, *av;
  CK(cudaMalloc(&p, n * PBytes));
  CK(cudaMalloc(&g, n * PBytes));
  CK(cudaMalloc(&m, 2 * n));  // room for both moments' codes interleaved (the MV kernels)
  CK(cudaMalloc(&v, n));
  CK(cudaMalloc(&am, n / kBlock * 4));
  CK(cudaMalloc(&av, n / kBlock * 4));
  CK(cudaMemset(p, 0x3c, n * PBytes));
  CK(cudaMemset(g, 0x11, n * PBytes));
  CK(cudaMemset(m, 0x7f, 2 * n));
  CK(cudaMemset(v, 0x01, n));
  CK(cudaMemset(am, 0, n / kBlock * 4));
  CK(cudaMemset(av, 0, n / kBlock * 4));
  int per_sm = 0, sms = 0, dev = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
  per_sm = per_sm < cap ? per_sm : cap;  // blocks per SM: the grid is one wave of them
  const unsigned grid = unsigned(sms * per_sm);
  unsigned launches = 0;
  const auto launch = [&] {
    ++launches;
    kernel<<<grid, threads, smem>>>(static_cast<uint4*>(p), static_cast<const uint4*>(g),
                                    static_cast<uint4*>(m), static_cast<uint4*>(v),
                                    static_cast<float*>(am), static_cast<float*>(av), tiles);
    CK(cudaGetLastError());
  };
  launch();  // warm-up
  // The process's first row also warms the GPU up: without that pass it ran 7-10% slower (H100).
  for (int i = 0; !g_warm && i < 2 * steps; ++i) launch();
  g_warm = true;
  const double ms = timing::median(timing::time_each_ms(steps, launch));
  // The floor the benchmark counts: 16 (fp32) or 10 (bf16) bytes per element, absmax not counted.
  const double floor_bytes = double(n) * (3 * PBytes + 4);
  const double frac = floor_bytes / (ms * 1e-3) / 1e9 / copy_gbs;
  std::printf("params %-4s %-28s %4d blocks of %d (%d per SM)  %8.3f ms  fraction of copy %.3f\n",
              PBytes == 4 ? "fp32" : "bf16", what, grid, threads, per_sm, ms, frac);
  if (check) {  // every launch added 1 to the first word of each code tile and to each absmax
    uint4 first, last;
    float a0, v1;
    CK(cudaMemcpy(&first, m, 16, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(&last, static_cast<uint4*>(v) + tiles - 1, 16, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(&a0, am, 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(&v1, static_cast<float*>(av) + n / kBlock - 1, 4, cudaMemcpyDeviceToHost));
    const bool ok = first.x == 0x7f7f7f7fu + launches && last.x == 0x01010101u + launches &&
                    a0 == float(launches) && v1 == float(launches);
    std::printf("  codes and absmax after %u launches: %s\n", launches,
                ok ? "as expected" : "WRONG");
  }
  for (void* x : {p, g, m, v, am, av}) cudaFree(x);
}

/// A row of bf16 parameters staged as the kernels (4 stages, the tables, 8 warps per SM) with a
/// store layout and the stand-in for the arithmetic; the label says which.
template <int Work, int Split = 0, bool CoalescedP = false>
void staged_row(std::uint64_t n, int steps, double copy) {
  std::string what = "staged 4, tables";
  if (CoalescedP) what += ", coalesced p";
  if (Split) what += ", split " + std::to_string(Split);
  if (Work) what += ", work " + std::to_string(Work);
  run<2>(probe_staged<2, 4, true, true, false, CoalescedP, Work, Split>, staged_smem<2, 4>(),
         what.c_str(), n, steps, copy);
}

/// A row of bf16 parameters staged with bulk copies (loads, and stores with BulkStores), the
/// absmax plain or staged, one 256-thread block per SM, with the stand-in for the arithmetic;
/// the row checks the codes and absmax it wrote.
template <int Stages, bool BulkStores, bool StagedAbsmax, int Work>
void bulk_row(std::uint64_t n, int steps, double copy) {
  std::string what = std::string(BulkStores ? "bulk io " : "bulk ") + std::to_string(Stages) +
                     ", tables" + (StagedAbsmax ? ", absmax" : "") + ", cap 1";
  if (Work) what += ", work " + std::to_string(Work);
  run<2>(probe_bulk<2, Stages, true, kThreads, BulkStores, StagedAbsmax, Work>,
         bulk_smem<2, Stages>(), what.c_str(), n, steps, copy, 1, kThreads, true);
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t n = std::uint64_t(1) << 28;
  int steps = 20;
  for (int a = 1; a < argc; ++a) {
    const std::string k = argv[a];
    if (k == "--elements" && a + 1 < argc) n = std::strtoull(argv[++a], nullptr, 0);
    else if (k == "--steps" && a + 1 < argc) steps = std::atoi(argv[++a]);
    else if (k == "--match" && a + 1 < argc) g_match = argv[++a];
    else {
      std::printf(
          "usage: traffic_probe [--elements N (multiple of 256)] [--steps S] [--match LABEL]\n");
      return k == "--help" || k == "-h" ? 0 : 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("traffic_probe: no CUDA device\n");
    return 0;
  }
  if (n % kBlock) {
    std::fprintf(stderr, "traffic_probe: --elements must be a multiple of %d\n", kBlock);
    return 2;
  }
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  const double copy = timing::copy_bandwidth_gbs();
  std::printf("%s: copy bandwidth %.0f GB/s (cudaMemcpy, read + write), %llu elements\n", prop.name,
              copy, static_cast<unsigned long long>(n));
  // Plain loads, `depth` tiles in flight per thread.
  run<2>(probe<2, 1>, 0, "loads, depth 1", n, steps, copy);
  run<2>(probe<2, 2>, 0, "loads, depth 2", n, steps, copy);
  run<2>(probe<2, 3>, 0, "loads, depth 3", n, steps, copy);
  run<2>(probe<2, 4>, 0, "loads, depth 4", n, steps, copy);
  run<2>(probe<2, 8>, 0, "loads, depth 8", n, steps, copy);
  run<4>(probe<4, 1>, 0, "loads, depth 1", n, steps, copy);
  run<4>(probe<4, 2>, 0, "loads, depth 2", n, steps, copy);
  run<4>(probe<4, 4>, 0, "loads, depth 4", n, steps, copy);  // depth 8 spills (H100: 0.30)
  run<2>(probe<2, 3, false, true>, 0, "loads, depth 3, coalesced p", n, steps, copy);
  run<2>(probe<2, 4, false, true>, 0, "loads, depth 4, coalesced p", n, steps, copy);
  run<2>(probe<2, 8, false, true>, 0, "loads, depth 8, coalesced p", n, steps, copy);
  run<4>(probe<4, 4, false, true>, 0, "loads, depth 4, coalesced p", n, steps, copy);
  run<2>(probe<2, 2, true>, 0, "loads, depth 2, mv", n, steps, copy);
  run<2>(probe<2, 3, true>, 0, "loads, depth 3, mv", n, steps, copy);
  run<2>(probe<2, 4, true>, 0, "loads, depth 4, mv", n, steps, copy);
  run<4>(probe<4, 4, true>, 0, "loads, depth 4, mv", n, steps, copy);
  // Staged through shared memory with cp.async (sm_80 on), as the 8-bit kernels (which have
  // the tables).
  if (prop.major >= 8) {
    run<2>(probe_staged<2, 4, true>, staged_smem<2, 4>(), "staged 4, tables", n, steps, copy);
    run<2>(probe_staged<2, 3, true>, staged_smem<2, 3>(), "staged 3, tables", n, steps, copy);
    run<2>(probe_staged<2, 2, true>, staged_smem<2, 2>(), "staged 2, tables", n, steps, copy);
    run<2>(probe_staged<2, 4, false>, staged_smem<2, 4>(), "staged 4", n, steps, copy);
    run<2>(probe_staged<2, 3, false>, staged_smem<2, 3>(), "staged 3", n, steps, copy);
    run<2>(probe_staged<2, 2, false>, staged_smem<2, 2>(), "staged 2", n, steps, copy);
    run<2>(probe_staged<2, 4, true, false>, staged_smem<2, 4, false>(), "staged 4 but p, tables", n,
           steps, copy);
    run<2>(probe_staged<2, 3, true, false>, staged_smem<2, 3, false>(), "staged 3 but p, tables", n,
           steps, copy);
    run<4>(probe_staged<4, 4, true>, staged_smem<4, 4>(), "staged 4, tables", n, steps, copy);
    run<4>(probe_staged<4, 2, true>, staged_smem<4, 2>(), "staged 2, tables", n, steps, copy);
    run<2>(probe_staged<2, 4, true, true, true>, staged_smem<2, 4>(), "staged 4, tables, mv", n,
           steps, copy);
    run<2>(probe_staged<2, 3, true, true, true>, staged_smem<2, 3>(), "staged 3, tables, mv", n,
           steps, copy);
    run<2>(probe_staged<2, 4, true, true, false, true>, staged_smem<2, 4>(),
           "staged 4, tables, coalesced p", n, steps, copy);
    run<2>(probe_staged<2, 3, true, true, false, true>, staged_smem<2, 3>(),
           "staged 3, tables, coalesced p", n, steps, copy);
    run<2>(probe_staged<2, 4, false, true, false, true>, staged_smem<2, 4>(),
           "staged 4, coalesced p", n, steps, copy);
    run<4>(probe_staged<4, 2, true, true, false, true>, staged_smem<4, 2>(),
           "staged 2, tables, coalesced p", n, steps, copy);
    run<2>(probe_staged<2, 4, false>, staged_smem<2, 4>(), "staged 4, cap 1", n, steps, copy, 1);
    // Stores in whole sectors or lines by layout (`split`), and with a stand-in for the rule's
    // arithmetic (`work R`: R rounds per element).
    staged_row<0, 4>(n, steps, copy);
    staged_row<1, 4>(n, steps, copy);
    staged_row<0, 8>(n, steps, copy);
    staged_row<1, 8>(n, steps, copy);
    staged_row<0, 16>(n, steps, copy);
    staged_row<1, 16>(n, steps, copy);
    staged_row<2, 16>(n, steps, copy);
    staged_row<2, 0, true>(n, steps, copy);
    staged_row<1, 0, true>(n, steps, copy);
    staged_row<1>(n, steps, copy);
    staged_row<2>(n, steps, copy);
    staged_row<3>(n, steps, copy);
    staged_row<5>(n, steps, copy);
    staged_row<7>(n, steps, copy);
    staged_row<5, 0, true>(n, steps, copy);
    run<4>(probe_staged<4, 4, true, true, true>, staged_smem<4, 4>(), "staged 4, tables, mv", n,
           steps, copy);
    run<4>(probe_staged<4, 2, true, true, true>, staged_smem<4, 2>(), "staged 2, tables, mv", n,
           steps, copy);
  } else {
    std::printf("staged rows skipped: cp.async needs sm_80 or later\n");
  }
  // Staged with bulk copies (TMA, sm_90 on), one mbarrier per warp and stage.
  if (prop.major < 9 || n % (32 * kTile) != 0) {
    std::printf("bulk rows skipped: they need sm_90 or later and --elements a multiple of %d\n",
                32 * kTile);
  } else {
    run<2>(probe_bulk<2, 4, true>, bulk_smem<2, 4>(), "bulk 4, tables", n, steps, copy);
    run<2>(probe_bulk<2, 4, true, 128>, bulk_smem<2, 4, 128>(), "bulk 4, tables, cap 2", n, steps,
           copy, 2, 128);
    run<2>(probe_bulk<2, 4, true, 128>, bulk_smem<2, 4, 128>(), "bulk 4, tables", n, steps, copy,
           64, 128);
    run<2>(probe_bulk<2, 3, true, 128>, bulk_smem<2, 3, 128>(), "bulk 3, tables, cap 2", n, steps,
           copy, 2, 128);
    run<2>(probe_bulk<2, 3, true, 128>, bulk_smem<2, 3, 128>(), "bulk 3, tables", n, steps, copy,
           64, 128);
    run<2>(probe_bulk<2, 2, true, 128>, bulk_smem<2, 2, 128>(), "bulk 2, tables", n, steps, copy,
           64, 128);
    run<2>(probe_bulk<2, 2, true, 128>, bulk_smem<2, 2, 128>(), "bulk 2, tables, cap 3", n, steps,
           copy, 3, 128);
    run<2>(probe_bulk<2, 3, true>, bulk_smem<2, 3>(), "bulk 3, tables", n, steps, copy);
    run<2>(probe_bulk<2, 2, true>, bulk_smem<2, 2>(), "bulk 2, tables, cap 2", n, steps, copy, 2);
    run<2>(probe_bulk<2, 2, true>, bulk_smem<2, 2>(), "bulk 2, tables", n, steps, copy);
    run<2>(probe_bulk<2, 4, false>, bulk_smem<2, 4>(), "bulk 4", n, steps, copy);
    run<2>(probe_bulk<2, 4, false>, bulk_smem<2, 4>(), "bulk 4, cap 1", n, steps, copy, 1);
    run<2>(probe_bulk<2, 8, false>, bulk_smem<2, 8>(), "bulk 8", n, steps, copy);
    run<2>(probe_bulk<2, 2, false>, bulk_smem<2, 2>(), "bulk 2, cap 2", n, steps, copy, 2);
    run<2>(probe_bulk<2, 2, false>, bulk_smem<2, 2>(), "bulk 2, cap 1", n, steps, copy, 1);
    run<2>(probe_bulk<2, 2, false>, bulk_smem<2, 2>(), "bulk 2, cap 4", n, steps, copy, 4);
    run<4>(probe_bulk<4, 4, true>, bulk_smem<4, 4>(), "bulk 4, tables", n, steps, copy);
    run<4>(probe_bulk<4, 2, true>, bulk_smem<4, 2>(), "bulk 2, tables", n, steps, copy);
    // Loads and stores as bulk copies (each row checks the codes it wrote).
    run<2>(probe_bulk<2, 4, true, kThreads, true>, bulk_smem<2, 4>(), "bulk io 4, tables, cap 1", n,
           steps, copy, 1, kThreads, true);
    run<2>(probe_bulk<2, 6, true, kThreads, true>, bulk_smem<2, 6>(), "bulk io 6, tables, cap 1", n,
           steps, copy, 1, kThreads, true);
    run<2>(probe_bulk<2, 8, true, kThreads, true>, bulk_smem<2, 8>(), "bulk io 8, tables, cap 1", n,
           steps, copy, 1, kThreads, true);
    run<2>(probe_bulk<2, 4, true, kThreads, true>, bulk_smem<2, 4>(), "bulk io 4, tables", n, steps,
           copy, 64, kThreads, true);
    run<2>(probe_bulk<2, 3, true, kThreads, true>, bulk_smem<2, 3>(), "bulk io 3, tables", n, steps,
           copy, 64, kThreads, true);
    run<2>(probe_bulk<2, 4, true, 128, true>, bulk_smem<2, 4, 128>(), "bulk io 4, tables", n, steps,
           copy, 64, 128, true);
    run<4>(probe_bulk<4, 4, true, kThreads, true>, bulk_smem<4, 4>(), "bulk io 4, tables, cap 1", n,
           steps, copy, 1, kThreads, true);
    run<4>(probe_bulk<4, 3, true, kThreads, true>, bulk_smem<4, 3>(), "bulk io 3, tables", n, steps,
           copy, 64, kThreads, true);
    // With the stand-in for the rule's arithmetic (`work R`), 8 warps per SM.
    bulk_row<4, true, false, 3>(n, steps, copy);
    bulk_row<4, true, false, 5>(n, steps, copy);
    bulk_row<4, true, false, 7>(n, steps, copy);
    bulk_row<6, true, false, 5>(n, steps, copy);
    bulk_row<4, true, true, 1>(n, steps, copy);
    bulk_row<4, true, true, 2>(n, steps, copy);
    bulk_row<4, true, true, 3>(n, steps, copy);
    bulk_row<4, true, true, 5>(n, steps, copy);
    bulk_row<6, true, true, 2>(n, steps, copy);
    bulk_row<4, false, false, 5>(n, steps, copy);
    // The absmax staged too (cp.async arriving on the stage's mbarrier), as the kernels do.
    run<2>(probe_bulk<2, 4, true, kThreads, false, true>, bulk_smem<2, 4>(),
           "bulk 4, tables, absmax, cap 1", n, steps, copy, 1, kThreads, true);
    run<2>(probe_bulk<2, 8, true, kThreads, false, true>, bulk_smem<2, 8>(),
           "bulk 8, tables, absmax, cap 1", n, steps, copy, 1, kThreads, true);
    run<2>(probe_bulk<2, 3, true, kThreads, false, true>, bulk_smem<2, 3>(),
           "bulk 3, tables, absmax", n, steps, copy, 64, kThreads, true);
    run<2>(probe_bulk<2, 4, true, kThreads, true, true>, bulk_smem<2, 4>(),
           "bulk io 4, tables, absmax, cap 1", n, steps, copy, 1, kThreads, true);
    run<2>(probe_bulk<2, 6, true, kThreads, true, true>, bulk_smem<2, 6>(),
           "bulk io 6, tables, absmax, cap 1", n, steps, copy, 1, kThreads, true);
    run<2>(probe_bulk<2, 3, true, kThreads, true, true>, bulk_smem<2, 3>(),
           "bulk io 3, tables, absmax", n, steps, copy, 64, kThreads, true);
    run<2>(probe_bulk<2, 4, true, 128, true, true>, bulk_smem<2, 4, 128>(),
           "bulk io 4, tables, absmax", n, steps, copy, 64, 128, true);
    run<4>(probe_bulk<4, 4, true, kThreads, true, true>, bulk_smem<4, 4>(),
           "bulk io 4, tables, absmax, cap 1", n, steps, copy, 1, kThreads, true);
    run<4>(probe_bulk<4, 4, true, kThreads, false, true>, bulk_smem<4, 4>(),
           "bulk 4, tables, absmax, cap 1", n, steps, copy, 1, kThreads, true);
  }
  return 0;
}
