// State format Int8Blockwise: moments as 8-bit codes of bitsandbytes' dynamic codebooks, with one
// fp32 absmax per block of consecutive elements (bitsandbytes' blockwise 8-bit optimizer state).
#pragma once

#include <cstdint>
#include <string>

#include "../core/dtype.hpp"
#include "../core/fpmath.hpp"
#include "fp32.hpp"
#include "quant_map.hpp"

ALLOY_NAMESPACE_BEGIN
namespace state {

/// Both codebooks with their encoder tables, as one plain block of bytes (26,624): the first
/// moment uses the signed map, the second moment the unsigned one. The CUDA executor copies it
/// into shared memory once per thread block.
struct alignas(16) Int8Tables {
  CodebookTables map[2];  // [0]: signed (moment 0), [1]: unsigned (moment 1)
};

/// The tables of bitsandbytes' "dynamic" (signed) and "udynamic" (unsigned) maps, built once.
inline const Int8Tables& int8_tables() {
  static const Int8Tables t{
      {make_codebook_tables(dynamic_map(true)), make_codebook_tables(dynamic_map(false))}};
  return t;
}

/// FNV-1a over a codebook's 256 fp32 bit patterns: the codebook's identity for checkpoints.
inline std::uint32_t codebook_hash(const CodebookTables& t) {
  std::uint32_t h = 2166136261u;
  for (float c : t.code) {
    const std::uint32_t u = float_bits(c);
    for (int b = 0; b < 4; ++b) h = (h ^ ((u >> (8 * b)) & 0xffu)) * 16777619u;
  }
  return h;
}

/// Moments stored as 8-bit codes: element i of moment k holds code q, its value is
/// code_k[q] * absmax_k[i / Block]. Each step dequantizes, runs the rule in fp32, takes the new
/// absmax of every block (max |x| over the block: exact in any order), and re-quantizes
/// x * (1 / absmax) to the nearest code (ties to the smaller magnitude). The parameter update
/// uses the unquantized new moments. Moment 0 (AdamW's m, Sgd's momentum) uses the signed
/// dynamic map, moment 1 (AdamW's v) the unsigned one; both equal bitsandbytes' maps.
///
/// Tensors with fewer than Options::min_quantized_numel elements (default 4096, judged on the
/// whole tensor) keep fp32 state (`Small`). State: 1 byte per moment per element plus 4 bytes
/// per block per moment; docs/policies/int8.md.
template <int Block = 256>
struct Int8Blockwise {
  static_assert(Block >= 16 && Block <= 256 && (Block & (Block - 1)) == 0,
                "alloy: Int8Blockwise's block must be a power of two in [16, 256] (chunks of "
                "work are cut at multiples of 256 elements; a block is one group of lanes of "
                "a warp on the CUDA executor)");
  static constexpr const char* kName = "Int8Blockwise";
  static constexpr bool kElementwise = false;
  static constexpr bool kRandom = false;
  static constexpr int kBlock = Block;
  using Stored = std::uint8_t;
  using Tables = Int8Tables;
  /// The format of tensors below the size threshold.
  using Small = Fp32;

  static const Tables& tables() { return int8_tables(); }
  /// Codebook identity of moment k (for checkpoints): "dynamic-signed" / "dynamic-unsigned"
  /// with the hash of its 256 entries.
  static std::string codebook_id(int k) {
    return std::string(k == 0 ? "bnb-dynamic-signed-" : "bnb-dynamic-unsigned-") +
           std::to_string(codebook_hash(int8_tables().map[k == 0 ? 0 : 1]));
  }
  /// The stored byte of a zero moment (what fresh state is filled with).
  static constexpr std::uint8_t zero_code(int k) { return k == 0 ? 127 : 0; }

  ALLOY_HD static float decode(const Tables& t, int k, std::uint8_t q, float absmax) {
    return fp::mul(t.map[k].code[q], absmax);
  }
  /// The scale a block's values are multiplied by before encoding: 1 / absmax (0 for an
  /// all-zero block), at most the largest float (absmax below 2^-128 would give infinity). Then
  /// |x * inverse| < 2 for every finite x of the block (|x| <= absmax; the rounding of 1 / absmax
  /// adds at most 2^-23 relative), as encode_nearest_bounded needs; inf * 0 and NaN stay NaN.
  ALLOY_HD static float inverse(float absmax) {
    return absmax > 0.f ? fp::min(fp::div(1.f, absmax), 0x1.fffffep127f) : 0.f;
  }
  ALLOY_HD static std::uint8_t encode(const Tables& t, int k, float x, float inv) {
    return k == 0 ? encode_nearest_bounded<true>(t.map[0], fp::mul(x, inv))
                  : encode_nearest_bounded<false>(t.map[1], fp::mul(x, inv));
  }
};

}  // namespace state
ALLOY_NAMESPACE_END
