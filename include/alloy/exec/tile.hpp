// The element pipeline of one step, shared by the host and CUDA executors:
// load a tile of N consecutive elements (param, gradient, moments) -> the rule's element math in
// fp32 -> store moments through the state format and the parameter in its dtype.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../core/dtype.hpp"
#include "../core/fpmath.hpp"
#include "../core/philox.hpp"
#include "table.hpp"

ALLOY_NAMESPACE_BEGIN
namespace exec {

// Evict-first (__ldcs/__stcs) hints on the 16-byte accesses. Off: plain loads and stores ran
// 1.5-2.5% faster on every sm_90 row of bench/tune.sh (bench/results/tune_sm90.txt, "nohint").
#ifndef ALLOY_STREAMING_CACHE_HINTS
#define ALLOY_STREAMING_CACHE_HINTS 0
#endif

namespace io {
/// Tensor memory is device global memory. Said to the compiler for arrays of 16-bit elements:
/// in kernels that convert with cvt.rn.bf16.f32 (inline PTX), it otherwise compiles their
/// accesses through the tensor tables' generic pointers to generic LD/ST instead of LDG/STG.
/// (Said for every type, it cost the fp32 AdamW kernel 1% on H100; not needed there.)
template <class T>
ALLOY_HD void assume_global(const T* ptr) {
#if ALLOY_ON_DEVICE
  if constexpr (sizeof(T) == 2) __builtin_assume(__isGlobal(ptr));
#else
  (void)ptr;
#endif
}

/// The widest access (16, 8 or 4 bytes) that divides an array of N T's; 0 if none does.
template <class T, int N>
inline constexpr int kAccess = (N * sizeof(T)) % 16 == 0  ? 16
                               : (N * sizeof(T)) % 8 == 0 ? 8
                               : (N * sizeof(T)) % 4 == 0 ? 4
                                                          : 0;
#if ALLOY_DEVICE_COMPILE
template <int Bytes>
struct Word;
template <>
struct Word<16> {
  using type = uint4;
};
template <>
struct Word<8> {
  using type = uint2;
};
template <>
struct Word<4> {
  using type = unsigned;
};
#endif

/// N consecutive elements from src. `Vector`: src is aligned to kAccess<T, N> bytes (16-byte
/// aligned pointers and i0 % N == 0 guarantee it), so the device issues vector accesses.
template <bool Vector, class T, int N>
ALLOY_HD void load(const T* ALLOY_RESTRICT src, T (&dst)[N]) {
  assume_global(src);
#if ALLOY_ON_DEVICE
  constexpr int A = kAccess<T, N>;
  if constexpr (Vector && A != 0) {
    using W = typename Word<A>::type;
#pragma unroll
    for (int v = 0; v < int(N * sizeof(T) / A); ++v) {
#if ALLOY_STREAMING_CACHE_HINTS
      const W x = __ldcs(reinterpret_cast<const W*>(src) + v);
#else
      const W x = reinterpret_cast<const W*>(src)[v];
#endif
      std::memcpy(&dst[v * A / sizeof(T)], &x, A);
    }
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) dst[j] = src[j];
  }
#else
  for (int j = 0; j < N; ++j) dst[j] = src[j];
#endif
}

template <bool Vector, class T, int N>
ALLOY_HD void store(T* ALLOY_RESTRICT dst, const T (&src)[N]) {
  assume_global(dst);
#if ALLOY_ON_DEVICE
  constexpr int A = kAccess<T, N>;
  if constexpr (Vector && A != 0) {
    using W = typename Word<A>::type;
#pragma unroll
    for (int v = 0; v < int(N * sizeof(T) / A); ++v) {
      W x;
      std::memcpy(&x, &src[v * A / sizeof(T)], A);
#if ALLOY_STREAMING_CACHE_HINTS
      __stcs(reinterpret_cast<W*>(dst) + v, x);
#else
      reinterpret_cast<W*>(dst)[v] = x;
#endif
    }
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) dst[j] = src[j];
  }
#else
  for (int j = 0; j < N; ++j) dst[j] = src[j];
#endif
}

/// The first `valid` of N elements (the rest of dst zero): a tile cut by a tensor's end.
template <class T, int N>
ALLOY_HD void load_n(const T* ALLOY_RESTRICT src, T (&dst)[N], int valid) {
  assume_global(src);
  for (int j = 0; j < N; ++j) dst[j] = j < valid ? src[j] : T{};
}
template <class T, int N>
ALLOY_HD void store_n(T* ALLOY_RESTRICT dst, const T (&src)[N], int valid) {
  assume_global(dst);
  for (int j = 0; j < N; ++j)
    if (j < valid) dst[j] = src[j];
}
/// A whole tile (vector accesses where allowed) or the first `valid` elements of it.
template <bool Vector, class T, int N>
ALLOY_HD void load_tile(const T* ALLOY_RESTRICT src, T (&dst)[N], int valid) {
  if (valid == N) load<Vector>(src, dst);
  else load_n(src, dst, valid);
}
template <bool Vector, class T, int N>
ALLOY_HD void store_tile(T* ALLOY_RESTRICT dst, const T (&src)[N], int valid) {
  if (valid == N) store<Vector>(dst, src);
  else store_n(dst, src, valid);
}
}  // namespace io

/// Where a tile's new parameters go: straight to the tensor. (The CUDA executor's staged loop
/// gives its own: TileStage::ParamSlots.)
struct ParamToTensor {
  template <bool Vec, class T, int N>
  ALLOY_HD void store(const TensorEntry& t, std::uint64_t i0, const T (&p)[N], int valid) const {
    io::store_tile<Vec>(static_cast<T*>(t.param) + i0, p, valid);
  }
};

/// The threads that share one quantization block, for the block absmax: one thread owning the
/// whole block (host executor), or L consecutive lanes of a warp (CUDA executor). kTree: each
/// thread takes the max over its tile pairwise (max_tree: log2(N) dependent steps) instead of
/// in order; the result is the same (a max is exact), the schedule is not: kStageWholeWarps.
struct Solo {
  static constexpr bool kTree = false;
  ALLOY_HD static float max(float x) { return x; }
};
#if ALLOY_DEVICE_COMPILE
template <int L, bool Tree = false>
struct LaneGroup {
  static_assert(L >= 1 && L <= 32 && (L & (L - 1)) == 0);
  static constexpr bool kTree = Tree;
  /// x >= 0 and not NaN (a max of fmaxf(0, |.|)): a whole warp compares the bit patterns,
  /// which order such floats as their values, in one redux.sync.
  __device__ static float max(float x) {
    if constexpr (L == 32) {
      return __uint_as_float(__reduce_max_sync(0xffffffffu, __float_as_uint(x)));
    } else if constexpr (L > 1) {
      const unsigned lane = threadIdx.x & 31u;
      const unsigned mask = L == 32 ? 0xffffffffu : ((1u << L) - 1u) << (lane & ~unsigned(L - 1));
#pragma unroll
      for (int o = L / 2; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(mask, x, o));
    }
    return x;
  }
};
#endif

/// Tile width (elements per CUDA thread) of block-quantized formats, by parameter width: 16
/// (a 256-element block is 16 lanes), which keeps more bytes in flight per thread than two
/// 8-element tiles at the same registers: with fp::Fast, fp32 parameters ran at 0.879 / 0.903 of
/// copy (flat / llama1b) against 0.837 / 0.878 with 8-element tiles two deep (H100,
/// 2026-11-26). bench/tune.sh sweeps them (docs/policies/int8.md).
#ifndef ALLOY_BLOCK_TILE_FP32
#define ALLOY_BLOCK_TILE_FP32 16
#endif
#ifndef ALLOY_BLOCK_TILE_16BIT
#define ALLOY_BLOCK_TILE_16BIT 16
#endif
template <class PT>
inline constexpr int kBlockTile = sizeof(PT) == 4 ? ALLOY_BLOCK_TILE_FP32 : ALLOY_BLOCK_TILE_16BIT;

/// Per-launch values every element of a pass sees: the seed and global step that key its random
/// streams, which purpose its stochastic rounding draws from, and the pass's own arguments.
template <class Args>
struct Pass {
  std::uint64_t seed;
  std::uint32_t step;
  std::uint8_t rounding_purpose;
  Args args;
  const void* tables = nullptr;  // the state format's tables (block formats), else null

  ALLOY_HD RandomStream rounding(std::uint32_t key) const {
    return RandomStream{std::uint32_t(seed), std::uint32_t(seed >> 32), key, step,
                        rounding_purpose};
  }
};

struct NoArgs {};

/// The format a block format falls back to for small tensors (elementwise formats: themselves).
template <class Format>
struct SmallFormat {
  using type = Format;
};
template <class Format>
requires(!Format::kElementwise) struct SmallFormat<Format> {
  using type = typename Format::Small;
};

/// Whether a rule keeps all its moments for every group (AdamW), so kernels need not read how
/// many a tensor has (Sgd keeps its momentum only when momentum != 0).
template <class Rule>
inline constexpr bool kAllMoments = requires {
  requires Rule::kMomentsFixed;
};

/// The moments of a tile of N elements as the state format stores them. Elementwise formats:
/// each element's stored value on its own. Block formats (Int8Blockwise): codes plus the
/// block's absmax; new values are collected, then re-quantized together against the new absmax
/// of their block (store()). A tile never straddles a block: N divides Block, or Block divides N.
template <bool All>
struct MomentsKept {
  /// Whether tensor t keeps moment k (All: every moment, known at compile time).
  ALLOY_HD static bool kept(const TensorEntry& t, int k) { return All || k < int(t.moments); }
};

template <class Format, int K, int N, bool Elementwise = Format::kElementwise, bool All = false>
struct Moments : MomentsKept<All> {
  using S = typename Format::Stored;
  using MomentsKept<All>::kept;
  S m[K > 0 ? K : 1][N];

  template <bool Vec>
  ALLOY_HD void load(const TensorEntry& t, std::uint64_t i0, int valid) {
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
    for (int k = 0; k < K; ++k)
      if (kept(t, k)) {
        io::load_tile<Vec>(static_cast<const S*>(t.state[k]) + i0, m[k], valid);
      }
  }
  ALLOY_HD float get(int k, int j, const void*) const { return Format::decode(m[k][j]); }
  ALLOY_HD void put(int k, int j, float x, std::uint32_t random) {
    m[k][j] = Format::encode(x, random);
  }
  template <bool Vec, class Group>
  ALLOY_HD void store(const TensorEntry& t, std::uint64_t i0, const void*, int valid) {
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
    for (int k = 0; k < K; ++k)
      if (kept(t, k)) {
        io::store_tile<Vec>(static_cast<S*>(t.state[k]) + i0, m[k], valid);
      }
  }
};

/// The largest of m[0 .. N) (fmax: NaN only if all are), pairwise: log2(N) dependent steps.
template <int N>
ALLOY_HD float max_tree(const float* m) {
  static_assert(N >= 1 && (N & (N - 1)) == 0);
  if constexpr (N == 1) return m[0];
  else return fp::max(max_tree<N / 2>(m), max_tree<N / 2>(m + N / 2));
}

template <class Format, int K, int N, bool All>
struct Moments<Format, K, N, false, All> : MomentsKept<All> {
  static constexpr int B = Format::kBlock;
  static_assert(B % N == 0 || N % B == 0, "a tile must not straddle a quantization block");
  using Tables = typename Format::Tables;
  using MomentsKept<All>::kept;
  std::uint8_t q[K > 0 ? K : 1][N];
  float x[K > 0 ? K : 1][N];
  float absmax[K > 0 ? K : 1];  // of the block of element i0 (N <= B) when loaded

  template <bool Vec>
  ALLOY_HD void load(const TensorEntry& t, std::uint64_t i0, int valid) {
    static_assert(N <= B, "load one block at a time");
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
    for (int k = 0; k < K; ++k)
      if (kept(t, k)) {
        io::load_tile<Vec>(static_cast<const std::uint8_t*>(t.state[k]) + i0, q[k], valid);
        absmax[k] = static_cast<const float*>(t.scale[k])[i0 / B];
      }
  }
  ALLOY_HD float get(int k, int j, const void* tables) const {
    return Format::decode(*static_cast<const Tables*>(tables), k, q[k][j], absmax[k]);
  }
  ALLOY_HD void put(int k, int j, float v, std::uint32_t) { x[k][j] = v; }
  /// New absmax of the block (max |x| over its valid elements and the Group's threads), codes
  /// against it, and the absmax stored by the thread holding the block's first element.
  template <bool Vec, class Group>
  ALLOY_HD void store(const TensorEntry& t, std::uint64_t i0, const void* tables, int valid) {
    const Tables& tab = *static_cast<const Tables*>(tables);
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
    for (int k = 0; k < K; ++k)
      if (kept(t, k)) {
        // max(0, |x|) over the valid elements (NaN ignored), in order or as a tree.
        float a = 0.f;
        if constexpr (Group::kTree) {
          float m[N];
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
          for (int j = 0; j < N; ++j) m[j] = j < valid ? fp::abs(x[k][j]) : 0.f;
          a = fp::max(max_tree<N>(m), 0.f);
        } else {
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
          for (int j = 0; j < N; ++j)
            if (j < valid) a = fp::max(a, fp::abs(x[k][j]));
        }
        a = Group::max(a);
        const float inv = Format::inverse(a);
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
        // Elements past `valid` are not stored, and their values (computed from zero-filled
        // inputs) are not under the absmax: they encode a zero, so every encoded value is.
        for (int j = 0; j < N; ++j)
          q[k][j] = Format::encode(tab, k, j < valid ? x[k][j] : 0.f, inv);
        io::store_tile<Vec>(static_cast<std::uint8_t*>(t.state[k]) + i0, q[k], valid);
        if (i0 % B == 0) static_cast<float*>(t.scale[k])[i0 / B] = a;
      }
  }
};

/// Runs body(j, arith) for the N elements of a tile. With `Retry` on the device: first with
/// fp::Fast (branch-free division and square root), and if some element left fp::Fast's domain,
/// reload() and again with fp::Ieee, so results always equal the host's. The body writes its
/// results apart from its inputs (block formats' Moments keep the codes apart from the new
/// values; parameters go to a ParamOut); reload() brings the inputs back from memory, so the
/// rare second run costs no registers across the first.
template <int N, bool Retry, class Body, class Reload>
ALLOY_HD void for_each_element(Body&& body, Reload&& reload) {
#if ALLOY_ON_DEVICE
  if constexpr (Retry) {
    fp::Fast ar;
#pragma unroll
    for (int j = 0; j < N; ++j) body(j, ar);
    if (ar.ok) return;
    reload();
  }
#pragma unroll
#else
  (void)reload;
#endif
  for (int j = 0; j < N; ++j) body(j, fp::Ieee{});
}

/// The stochastic-rounding words of a tile's elements i0 .. i0 + N - 1 (Purpose::rounding;
/// docs/policies/rounding.md): with a state format that rounds its moments stochastically
/// (`Moments`), each element's own Philox output (word 0 the parameter, 1 + k moment k); when
/// only the parameter is (`Param`), its 16 bits in word 0 (rounding_bits: one call per 8
/// elements, drawn once per tile); otherwise nothing is drawn.
template <int N, bool Param, bool Moments>
struct TileRounding {
  static constexpr bool kPacked = Param && !Moments;
  RandomStream rng;
  std::uint64_t i0;
  std::uint32_t bits[kPacked ? N : 1] = {};

  ALLOY_HD TileRounding(const RandomStream& r, std::uint64_t first) : rng(r), i0(first) {
    if constexpr (kPacked) rounding_bits<N>(rng, i0, bits);
  }
  ALLOY_HD Philox4x32 words(int j) const {
    if constexpr (Moments) return rng.at(i0 + std::uint64_t(j));
    else if constexpr (kPacked) return Philox4x32{{bits[j], 0, 0, 0}};
    else return Philox4x32{{0, 0, 0, 0}};
  }
};

/// A tile's new parameters, rounded to PT: one by one, or, for round-to-nearest into a 16-bit
/// type, kept in fp32 and rounded in pairs at the end (one instruction per pair on the device).
template <class PT, Rounding PR, int N>
struct ParamOut {
  static constexpr bool kPairs = sizeof(PT) == 2 && PR == Rounding::nearest && N % 2 == 0;
  std::conditional_t<kPairs, float, PT> v[N];

  ALLOY_HD void set(int j, float x, std::uint32_t random) {
    if constexpr (kPairs) v[j] = x;
    else v[j] = round_to<PT, PR>(x, random);
  }
  ALLOY_HD void get(PT (&p)[N]) const {
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
    for (int j = 0; j < N; j += kPairs ? 2 : 1) {
      if constexpr (kPairs) round_pair_nearest(v[j], v[j + 1], p[j], p[j + 1]);
      else p[j] = v[j];
    }
  }
};

/// The traits every element kind that reads a gradient shares. Block formats (kBlockState):
/// tiles of one block group share an absmax, and tensors below the size threshold run the
/// kind's `Small` (the same math with the format's small-tensor format).
template <class Rule, class Format, class PT, Rounding PR>
struct GradKindTraits {
  using Param = PT;
  using S = typename Format::Stored;
  using Scalars = typename Rule::Scalars;
  using Args = NoArgs;
  using State = Format;
  static constexpr bool kRandom =
      Format::kRandom || (PR == Rounding::stochastic && sizeof(PT) == 2);
  static constexpr bool kBlockState = !Format::kElementwise;
};

/// What a gradient-reading tile holds: N parameters, N gradients and the moments M, loaded
/// together. VecP / VecG: param / gradient of this tensor are 16-byte aligned (and i0 % N == 0);
/// state is allocated 256-byte aligned, so it is vector-loaded whenever i0 % N == 0. `valid` < N
/// when the tensor ends inside the tile (block formats only: elementwise tails go through
/// scalar_range).
template <class PT, class GT, class M, int N>
struct GradTile {
  PT p[N];
  GT g[N];
  M m;

  template <bool VecP, bool VecG, bool VecS>
  ALLOY_HD void load(const TensorEntry& t, std::uint64_t i0, int valid = N) {
    load_rest<VecP, VecS>(t, i0, valid);
    load_grad<VecG>(t, i0, valid);
  }
  /// The gradient alone, and the rest (parameter, moments) later: a kernel that reduces over
  /// gradients first holds fewer registers across the reduction.
  template <bool VecG>
  ALLOY_HD void load_grad(const TensorEntry& t, std::uint64_t i0, int valid = N) {
    io::load_tile<VecG>(static_cast<const GT*>(t.grad) + i0, g, valid);
  }
  template <bool VecP, bool VecS>
  ALLOY_HD void load_rest(const TensorEntry& t, std::uint64_t i0, int valid = N) {
    io::load_tile<VecP>(static_cast<const PT*>(t.param) + i0, p, valid);
    m.template load<VecS>(t, i0, valid);
  }
  /// The whole tile again (scalar accesses), through an index the compiler cannot prove equal
  /// to i0, so that it loads instead of keeping the first load's registers alive.
  ALLOY_HD void reload(const TensorEntry& t, std::uint64_t i0, int valid) {
#if ALLOY_ON_DEVICE
    asm("mov.b64 %0, %0;" : "+l"(i0));
#endif
    load<false, false, false>(t, i0, valid);
  }
};

/// The element math of one composition for one (param dtype, grad dtype, param rounding), with
/// the gradient read from the gradient tensor (grad::Backprop).
template <class Rule, class Format, class PT, class GT, Rounding PR>
struct ElementStep : GradKindTraits<Rule, Format, PT, PR> {
  static constexpr int K = Rule::kMoments;
  using typename GradKindTraits<Rule, Format, PT, PR>::S;
  using typename GradKindTraits<Rule, Format, PT, PR>::Scalars;
  using typename GradKindTraits<Rule, Format, PT, PR>::Args;
  using GradKindTraits<Rule, Format, PT, PR>::kRandom;
  using GradKindTraits<Rule, Format, PT, PR>::kBlockState;
  using Small = ElementStep<Rule, typename SmallFormat<Format>::type, PT, GT, PR>;

  /// Tile width of the CUDA executor: 16 bytes of the narrowest stored type, so that every
  /// array of the tile (parameter, gradient, each moment) moves in whole 16-byte vectors.
  static constexpr std::size_t kNarrowest = sizeof(PT) < sizeof(GT)
                                                ? (sizeof(PT) < sizeof(S) ? sizeof(PT) : sizeof(S))
                                                : (sizeof(GT) < sizeof(S) ? sizeof(GT) : sizeof(S));
  static constexpr int kVec = kBlockState ? kBlockTile<PT> : int(16 / kNarrowest);
  /// Tiles run fp::Fast first (for_each_element) with block formats.
  static constexpr bool kFastFirst = kBlockState;

  /// A tile of N consecutive elements starting at index i0 of one tensor.
  template <int N>
  using M = Moments<Format, K, N, Format::kElementwise, kAllMoments<Rule>>;
  template <int N>
  struct Tile : GradTile<PT, GT, M<N>, N> {
    using GradTile<PT, GT, M<N>, N>::p, GradTile<PT, GT, M<N>, N>::g, GradTile<PT, GT, M<N>, N>::m;

    template <bool VecP, bool VecS, class Group = Solo, class Sink = ParamToTensor>
    ALLOY_HD void update_store(const TensorEntry& t, std::uint64_t i0, const Scalars& s,
                               const Pass<Args>& pass, int valid = N, const Sink& sink = {}) {
      const TileRounding<N, kRandom, Format::kRandom> rounding(pass.rounding(t.key), i0);
      ParamOut<PT, PR, N> out;
      for_each_element<N, kFastFirst>(
          [&](int j, auto&& ar) {
            float pj = to_float(this->p[j]);
            float mj[K > 0 ? K : 1];
            for (int k = 0; k < K; ++k)
              mj[k] = this->m.kept(t, k) ? this->m.get(k, j, pass.tables) : 0.f;
            Rule::update(s, pj, to_float(this->g[j]), mj, ar);
            const Philox4x32 r = rounding.words(j);
            out.set(j, pj, r.v[0]);
            for (int k = 0; k < K; ++k) this->m.put(k, j, mj[k], r.v[1 + k]);
          },
          [&] { this->reload(t, i0, valid); });
      out.get(p);
      sink.template store<VecP>(t, i0, p, valid);
      m.template store<VecS, Group>(t, i0, pass.tables, valid);
    }
  };
};

/// share::PerBlock: the rule's element math with the second moment read from the tensor's block
/// values (state[1], one fp32 per share_block elements, already advanced this step by the
/// statistics pass); the first moment goes through the state format.
template <class Rule, class Format, class PT, class GT, Rounding PR>
struct SharedStep : GradKindTraits<Rule, Format, PT, PR> {
  using typename GradKindTraits<Rule, Format, PT, PR>::Scalars;
  using typename GradKindTraits<Rule, Format, PT, PR>::Args;
  using GradKindTraits<Rule, Format, PT, PR>::kRandom;
  using Small = SharedStep<Rule, typename SmallFormat<Format>::type, PT, GT, PR>;
  static constexpr int kVec = ElementStep<Rule, Format, PT, GT, PR>::kVec;
  /// Tiles run fp::Fast first (for_each_element) with block formats and 16-bit parameters. With
  /// fp32 parameters the one-pass kernel's 64-register budget spilled with both arithmetics in
  /// it, and llama1b's Int8 row ran at 0.800 of copy against 0.822 without (H100, 2026-11-26).
  static constexpr bool kFastFirst = !Format::kElementwise && sizeof(PT) == 2;

  template <int N>
  using M = Moments<Format, 1, N, Format::kElementwise, kAllMoments<Rule>>;
  template <int N>
  struct Tile : GradTile<PT, GT, M<N>, N> {
    using GradTile<PT, GT, M<N>, N>::p, GradTile<PT, GT, M<N>, N>::g, GradTile<PT, GT, M<N>, N>::m;

    template <bool VecP, bool VecS, class Group = Solo, class Sink = ParamToTensor>
    ALLOY_HD void update_store(const TensorEntry& t, std::uint64_t i0, const Scalars& s,
                               const Pass<Args>& pass, int valid = N, const Sink& sink = {}) {
      const float* shared = static_cast<const float*>(t.state[1]);
      // Block of element i0 + j, advanced without a division per element (one per tile, in
      // 32 bits when the indices fit).
      std::uint64_t blk, into;
      if (((i0 | t.share_block) >> 32) == 0) {
        blk = std::uint32_t(i0) / std::uint32_t(t.share_block);
        into = std::uint32_t(i0) - std::uint32_t(blk) * std::uint32_t(t.share_block);
      } else {
        blk = i0 / t.share_block;
        into = i0 - blk * t.share_block;
      }
      float v[N];
#if ALLOY_ON_DEVICE
#pragma unroll
#endif
      for (int j = 0; j < N; ++j) {
        v[j] = j < valid ? shared[blk] : 0.f;
        if (++into == t.share_block) {
          into = 0;
          ++blk;
        }
      }
      update_store_given<VecP, VecS, Group>(t, i0, s, pass, v, valid, sink);
    }

    /// The same, with each element's block second moment given (v[j] for element i0 + j).
    template <bool VecP, bool VecS, class Group = Solo, class Sink = ParamToTensor>
    ALLOY_HD void update_store_given(const TensorEntry& t, std::uint64_t i0, const Scalars& s,
                                     const Pass<Args>& pass, const float (&v)[N], int valid = N,
                                     const Sink& sink = {}) {
      const TileRounding<N, kRandom, Format::kRandom> rounding(pass.rounding(t.key), i0);
      ParamOut<PT, PR, N> out;
      for_each_element<N, kFastFirst>(
          [&](int j, auto&& ar) {
            float pj = to_float(this->p[j]);
            float m0 = this->m.get(0, j, pass.tables);
            Rule::update_given_second(s, pj, to_float(this->g[j]), m0, v[j], ar);
            const Philox4x32 r = rounding.words(j);
            out.set(j, pj, r.v[0]);
            this->m.put(0, j, m0, r.v[1]);
          },
          [&] { this->reload(t, i0, valid); });
      out.get(p);
      sink.template store<VecP>(t, i0, p, valid);
      m.template store<VecS, Group>(t, i0, pass.tables, valid);
    }
  };
};

template <class Rule, class Format>
struct SharedKind {
  template <class PT, class GT, Rounding PR>
  using type = SharedStep<Rule, Format, PT, GT, PR>;
};

/// Elements [begin, end) of tensor t one at a time, for any element kind E (tensor edges, and
/// the host executor's tails).
template <class E>
ALLOY_HD void scalar_range(const TensorEntry& t, std::uint64_t begin, std::uint64_t end,
                           const typename E::Scalars& s, const Pass<typename E::Args>& pass) {
  for (std::uint64_t i = begin; i < end; ++i) {
    typename E::template Tile<1> tile{};  // zeroed: moments a tensor does not keep stay unread
    tile.template load<false, false, false>(t, i);
    tile.template update_store<false, false>(t, i, s, pass);
  }
}

/// Whether element kind E keeps block-quantized state (then E::State::kBlock, E::Small exist).
template <class E>
inline constexpr bool kBlockKind = false;
template <class E>
requires(bool(E::kBlockState)) inline constexpr bool kBlockKind<E> = true;

/// Names ElementStep for the executors: Kind<Rule, Format>::type<PT, GT, PR>.
template <class Rule, class Format>
struct BackpropKind {
  template <class PT, class GT, Rounding PR>
  using type = ElementStep<Rule, Format, PT, GT, PR>;
};

/// The rounding stream of one tensor in one step.
ALLOY_HD RandomStream rounding_stream(std::uint64_t seed, std::uint32_t step, std::uint32_t key) {
  return RandomStream{std::uint32_t(seed), std::uint32_t(seed >> 32), key, step,
                      std::uint8_t(Purpose::rounding)};
}

}  // namespace exec
ALLOY_NAMESPACE_END
