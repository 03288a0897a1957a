// The Adam-mini partition helper against a table of names and expected specs taken from the
// official rules (adam-mini 1.1.1: lower-cased substring sets, first match wins), Llama-3.2-1B's
// block count, GQA key/value shapes, GPT-2 and BERT names, and its errors.
#include <doctest/doctest.h>

#include <alloy/alloy.hpp>
#include <alloy/share/partition.hpp>

#include <string>
#include <vector>

namespace {
using alloy::share::AdamMiniConfig;
using alloy::share::BlockSpec;
using K = BlockSpec::Kind;

struct Row {
  const char* name;
  std::vector<std::int64_t> shape;
  K kind;
  std::uint64_t blocks;
  bool wd;
  const char* rule;
};

/// Every row's spec, block count, weight decay and matching rule.
void check_table(const std::vector<Row>& table, const AdamMiniConfig& cfg) {
  for (const Row& r : table) {
    INFO(std::string(r.name));
    const auto a = alloy::share::adam_mini_partition(r.name, r.shape, cfg);
    std::uint64_t numel = 1;
    for (auto d : r.shape) numel *= std::uint64_t(d);
    CHECK(a.spec.kind == r.kind);
    CHECK(a.spec.blocks(numel) == r.blocks);
    CHECK(a.spec.block_size * r.blocks == numel);
    CHECK(a.weight_decay == r.wd);
    CHECK(std::string(a.rule) == r.rule);
  }
}
}  // namespace

TEST_CASE("adam-mini partition: Llama-style names (GQA: 32 query heads, 8 key/value heads)") {
  const AdamMiniConfig cfg{2048, 32, 8, false};
  const std::vector<Row> table = {
      {"model.embed_tokens.weight", {128256, 2048}, K::rows, 128256, true, "embedding"},
      {"model.layers.0.self_attn.q_proj.weight", {2048, 2048}, K::heads, 32, true, "query/key"},
      {"model.layers.0.self_attn.k_proj.weight", {512, 2048}, K::heads, 8, true, "query/key"},
      {"model.layers.0.self_attn.v_proj.weight", {512, 2048}, K::rows, 512, true, "value"},
      {"model.layers.0.self_attn.o_proj.weight",
       {2048, 2048},
       K::rows,
       2048,
       true,
       "attention output"},
      {"model.layers.0.mlp.gate_proj.weight", {8192, 2048}, K::rows, 8192, true, "mlp"},
      {"model.layers.0.mlp.down_proj.weight", {2048, 8192}, K::rows, 2048, true, "mlp"},
      {"model.layers.0.input_layernorm.weight", {2048}, K::whole, 1, false, "default"},
      {"model.norm.weight", {2048}, K::whole, 1, false, "default"},
      {"lm_head.weight", {128256, 2048}, K::rows, 128256, true, "output"},
      {"model.layers.0.self_attn.q_proj.bias", {2048}, K::elementwise, 2048, false, "bias"},
      {"Model.Layers.0.Self_Attn.Q_PROJ.Weight", {2048, 2048}, K::heads, 32, true, "query/key"},
      // Meta-style names: wq / wk / wv / wo, feed_forward, output
      {"layers.3.attention.wq.weight", {2048, 2048}, K::heads, 32, true, "query/key"},
      {"layers.3.attention.wk.weight", {512, 2048}, K::heads, 8, true, "query/key"},
      {"layers.3.attention.wv.weight", {512, 2048}, K::rows, 512, true, "value"},
      {"layers.3.attention.wo.weight", {2048, 2048}, K::rows, 2048, true, "attention output"},
      {"layers.3.feed_forward.w1.weight", {8192, 2048}, K::rows, 8192, true, "mlp"},
      {"output.weight", {128256, 2048}, K::rows, 128256, true, "output"},
      {"tok_embeddings.weight", {128256, 2048}, K::rows, 128256, true, "embedding"},
  };
  check_table(table, cfg);
  // value_whole_tensor (official wv_names = {}): one block for V.
  const AdamMiniConfig whole_v{2048, 32, 8, true};
  const auto v = alloy::share::adam_mini_partition("model.layers.0.self_attn.v_proj.weight",
                                                   std::vector<std::int64_t>{512, 2048}, whole_v);
  CHECK(v.spec.kind == K::whole);
  CHECK(v.spec.blocks(512 * 2048) == 1);
}

TEST_CASE("adam-mini partition: Llama-3.2-1B has 464,801 blocks (456,625 with one block for V)") {
  // 1 tied embedding, 16 layers (q, k, v, o, gate, up, down, two norms), final norm.
  for (bool whole_v : {false, true}) {
    const AdamMiniConfig cfg{2048, 32, 8, whole_v};
    std::uint64_t blocks = 0, params = 0;
    auto add = [&](const std::string& name, std::vector<std::int64_t> shape) {
      std::uint64_t n = 1;
      for (auto d : shape) n *= std::uint64_t(d);
      blocks += alloy::share::adam_mini_partition(name, shape, cfg).spec.blocks(n);
      params += n;
    };
    add("model.embed_tokens.weight", {128256, 2048});
    for (int l = 0; l < 16; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      add(p + "self_attn.q_proj.weight", {2048, 2048});
      add(p + "self_attn.k_proj.weight", {512, 2048});
      add(p + "self_attn.v_proj.weight", {512, 2048});
      add(p + "self_attn.o_proj.weight", {2048, 2048});
      add(p + "mlp.gate_proj.weight", {8192, 2048});
      add(p + "mlp.up_proj.weight", {8192, 2048});
      add(p + "mlp.down_proj.weight", {2048, 8192});
      add(p + "input_layernorm.weight", {2048});
      add(p + "post_attention_layernorm.weight", {2048});
    }
    add("model.norm.weight", {2048});
    CHECK(params == 1235814400u);
    CHECK(blocks == (whole_v ? 456625u : 464801u));
  }
}

TEST_CASE("adam-mini partition: GPT-2 and BERT names, as the official substring rules read them") {
  const AdamMiniConfig gpt2{768, 12, 0, false};
  const std::vector<Row> table = {
      {"transformer.wte.weight", {50257, 768}, K::rows, 50257, true, "embedding"},
      {"transformer.wpe.weight", {1024, 768}, K::whole, 1, true, "default"},  // no rule matches
      {"transformer.h.0.attn.c_attn.weight", {768, 2304}, K::whole, 1, true, "default"},  // fused
                                                                                          // QKV
      {"transformer.h.0.attn.c_attn.bias", {2304}, K::elementwise, 2304, false, "bias"},
      {"transformer.h.0.attn.c_proj.weight", {768, 768}, K::whole, 1, true, "default"},
      {"transformer.h.0.mlp.c_fc.weight", {768, 3072}, K::rows, 768, true, "mlp"},  // Conv1D: (in,
                                                                                    // out)
      {"transformer.h.0.ln_1.weight", {768}, K::whole, 1, false, "default"},
      {"bert.encoder.layer.0.attention.self.query.weight",
       {768, 768},
       K::heads,
       12,
       true,
       "query/key"},
      {"bert.encoder.layer.0.attention.self.key.weight",
       {768, 768},
       K::heads,
       12,
       true,
       "query/key"},
      {"bert.encoder.layer.0.attention.self.value.weight", {768, 768}, K::rows, 768, true, "value"},
      {"bert.encoder.layer.0.attention.output.dense.weight",
       {768, 768},
       K::rows,
       768,
       true,
       "output"},
      // "output" matches, but the tensor is 1-D: one block (the official code would fail here).
      {"bert.encoder.layer.0.attention.output.LayerNorm.weight",
       {768},
       K::whole,
       1,
       false,
       "output"},
  };
  check_table(table, gpt2);
}

TEST_CASE("adam-mini partition: errors name the tensor and the rule") {
  CHECK_THROWS_WITH_AS(alloy::share::adam_mini_partition(
                           "q_proj.weight", std::vector<std::int64_t>{64, 64}, AdamMiniConfig{}),
                       doctest::Contains("q_proj.weight"), alloy::Error);
  CHECK_THROWS_WITH_AS(
      alloy::share::adam_mini_partition("k_proj.weight", std::vector<std::int64_t>{10, 64},
                                        AdamMiniConfig{64, 8, 8, false}),
      doctest::Contains("not a multiple of a head"), alloy::Error);
  CHECK_THROWS_WITH_AS(
      alloy::share::adam_mini_partition("q_proj.weight", std::vector<std::int64_t>{64, 64},
                                        AdamMiniConfig{64, 8, 3, false}),
      doctest::Contains("n_kv_heads"), alloy::Error);
  CHECK_THROWS_WITH_AS(alloy::share::adam_mini_partition("mlp.weight", std::vector<std::int64_t>{},
                                                         AdamMiniConfig{}),
                       doctest::Contains("no shape"), alloy::Error);
  CHECK_THROWS_WITH_AS(alloy::share::adam_mini_partition(
                           "mlp.weight", std::vector<std::int64_t>{4, 0}, AdamMiniConfig{}),
                       doctest::Contains("dimension 0"), alloy::Error);
}
