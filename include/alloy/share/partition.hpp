// Partition specs for moment sharing (run-time data per tensor), and the Adam-mini partition
// helper that assigns them from a tensor's name and shape as the official release does.
#pragma once

#include <cctype>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"

ALLOY_NAMESPACE_BEGIN
namespace share {

/// How a tensor's elements are grouped into blocks that share one second moment.
struct BlockSpec {
  enum class Kind : std::uint8_t {
    elementwise,  // every element its own block (plain AdamW)
    rows,         // one block per leading-dimension slice (output neuron / token)
    heads,        // consecutive blocks of a fixed size (one attention head of a Q/K matrix)
    whole,        // the whole tensor is one block
  };
  Kind kind = Kind::whole;
  std::uint64_t block_size = 0;  // elements per block

  /// Number of blocks of a tensor of `numel` elements (block_size divides numel).
  std::uint64_t blocks(std::uint64_t numel) const { return block_size ? numel / block_size : 0; }
  friend bool operator==(const BlockSpec&, const BlockSpec&) = default;
};

inline const char* to_string(BlockSpec::Kind k) {
  switch (k) {
    case BlockSpec::Kind::elementwise:
      return "elementwise";
    case BlockSpec::Kind::rows:
      return "rows";
    case BlockSpec::Kind::heads:
      return "heads";
    case BlockSpec::Kind::whole:
      return "whole";
  }
  return "?";
}

/// The model facts the Adam-mini partition needs, and its one option.
struct AdamMiniConfig {
  std::int64_t dim = 0;         // hidden size
  std::int64_t n_heads = 0;     // attention (query) heads
  std::int64_t n_kv_heads = 0;  // key/value heads (GQA); 0: equal to n_heads. Validated only.
  /// Official `wv_names = {}`: one block for the whole value matrix (advised for runs shorter
  /// than 10k-20k steps).
  bool value_whole_tensor = false;
};

/// What the helper decided for one tensor.
struct AdamMiniAssignment {
  BlockSpec spec;
  bool weight_decay;  // false for names containing "norm", "ln" or "bias"
  const char* rule;   // which name set matched: "bias", "query/key", "embedding", "output",
                      // "value", "mlp", "attention output", "default"
};

namespace detail {
inline bool contains_any(std::string_view s, std::initializer_list<std::string_view> subs) {
  for (auto x : subs)
    if (s.find(x) != std::string_view::npos) return true;
  return false;
}
}  // namespace detail

/// Adam-mini's partition as the official release 1.1.1 (package adam-mini, `Adam_mini`) assigns
/// it: the name is lower-cased and matched by substring, first rule wins:
///   1. "bias"                                            -> elementwise (plain AdamW)
///   2. "k_proj" "q_proj" "wq" "wk" "query" "key"         -> heads of dim * dim / n_heads elements
///   3. "embed" "embd" "wte" | "lm_head" "output" "final_layer" | "v_proj" "wv" "value" (unless
///      value_whole_tensor) | "feed_forward" "linear" "mlp" | "o_proj" "wo" "attn.proj"
///                                                        -> one block per row
///   4. everything else (norms, ...)                      -> the whole tensor
/// Weight decay: none for names containing "norm", "ln" or "bias".
/// Divergences from the official code, where it would fail: a 1-D tensor that rule 3 matches
/// gets one whole-tensor block (the official code indexes it as 2-D and raises); tensors of more
/// than two dimensions are split into rows along their first dimension.
inline AdamMiniAssignment adam_mini_partition(std::string_view name_in,
                                              std::span<const std::int64_t> shape,
                                              const AdamMiniConfig& cfg) {
  std::string name(name_in);
  for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (shape.empty())
    alloy::detail::fail("adam_mini_partition: tensor '", name_in, "' has no shape");
  std::uint64_t numel = 1;
  for (auto d : shape) {
    if (d <= 0)
      alloy::detail::fail("adam_mini_partition: tensor '", name_in, "' has a dimension ", d);
    numel *= std::uint64_t(d);
  }
  const bool wd = !detail::contains_any(name, {"norm", "ln", "bias"});
  using K = BlockSpec::Kind;
  if (detail::contains_any(name, {"bias"})) return {{K::elementwise, 1}, wd, "bias"};
  if (detail::contains_any(name, {"k_proj", "q_proj", "wq", "wk", "query", "key"})) {
    if (cfg.dim <= 0 || cfg.n_heads <= 0 || cfg.dim % cfg.n_heads)
      alloy::detail::fail(
          "adam_mini_partition: tensor '", name_in,
          "' is a query/key matrix, which "
          "needs AdamMiniConfig::dim and n_heads (dim a multiple of n_heads); got dim = ",
          cfg.dim, ", n_heads = ", cfg.n_heads);
    const std::int64_t kv = cfg.n_kv_heads ? cfg.n_kv_heads : cfg.n_heads;
    if (kv <= 0 || cfg.n_heads % kv)
      alloy::detail::fail("adam_mini_partition: n_heads = ", cfg.n_heads,
                          " is not a multiple of n_kv_heads = ", kv);
    const std::uint64_t head =
        std::uint64_t(cfg.dim) * std::uint64_t(cfg.dim) / std::uint64_t(cfg.n_heads);
    if (numel % head)
      alloy::detail::fail("adam_mini_partition: tensor '", name_in, "' has ", numel,
                          " elements, not a multiple of a head's dim * dim / n_heads = ", head);
    return {{K::heads, head}, wd, "query/key"};
  }
  const char* rule = nullptr;
  if (detail::contains_any(name, {"embed", "embd", "wte"})) rule = "embedding";
  else if (detail::contains_any(name, {"lm_head", "output", "final_layer"})) rule = "output";
  else if (!cfg.value_whole_tensor && detail::contains_any(name, {"v_proj", "wv", "value"}))
    rule = "value";
  else if (detail::contains_any(name, {"feed_forward", "linear", "mlp"})) rule = "mlp";
  else if (detail::contains_any(name, {"o_proj", "wo", "attn.proj"})) rule = "attention output";
  if (rule && shape.size() >= 2) return {{K::rows, numel / std::uint64_t(shape[0])}, wd, rule};
  return {{K::whole, numel}, wd, rule ? rule : "default"};
}

inline AdamMiniAssignment adam_mini_partition(std::string_view name,
                                              const std::vector<std::int64_t>& shape,
                                              const AdamMiniConfig& cfg) {
  return adam_mini_partition(name, std::span<const std::int64_t>(shape.data(), shape.size()), cfg);
}

}  // namespace share
ALLOY_NAMESPACE_END
