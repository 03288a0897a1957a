// A small C interface to a few alloy compositions on CUDA, loaded with ctypes by the parity
// scripts in bench/ (int8_parity.py): Python owns the tensors (torch), alloy steps them. Not a
// public API: the PyTorch extension of ../ROADMAP.md replaces it. bench/alloy_capi_host.cpp
// compiles this file for the host executor (tensors in host memory; no CUDA needed).
//
//   handle = alloy_capi_create(composition, n, params, grads, numels, names, dtype,
//                              lr, beta1, beta2, eps, weight_decay)
//   alloy_capi_step(handle)              enqueued on the legacy default stream (as torch's)
//   alloy_capi_state_bytes(handle), alloy_capi_codebook(k, out256), alloy_capi_destroy(handle)
//   alloy_capi_adam_mini_block(name, rows, numel, dim, n_heads, n_kv_heads, &block, &rule)
//
// composition: "adamw_fp32", "adamw_bf16", "adamw_int8", "adamw_int8_sr" (bf16 parameters
// rounded stochastically: Options::param_rounding), and Adam-mini ("adam_mini_fp32",
// "adam_mini_bf16", "adam_mini_int8": AdamW + PerBlock, blocks from share::adam_mini_partition,
// created with alloy_capi_create_adam_mini, which also takes each tensor's rows and the model's
// dim / heads). dtype: 0 fp32, 1 bf16 (params and grads alike). Errors: create returns null /
// step returns -1, and alloy_capi_error() says why.

#ifdef ALLOY_CAPI_HOST
#include <alloy/alloy.hpp>
#else
#include <alloy/alloy.cuh>
#endif

#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {
thread_local std::string g_error;

struct Handle {
  virtual ~Handle() = default;
  virtual void step() = 0;
  virtual std::size_t state_bytes() const = 0;
};

#ifdef ALLOY_CAPI_HOST
template <class State, class Share>
using AdamWOptimizer = alloy::Optimizer<alloy::rule::AdamW, State, Share>;
alloy::Device tensor_device() { return alloy::Device::host(); }
#else
template <class State, class Share>
using AdamWOptimizer = alloy::cuda::Optimizer<alloy::rule::AdamW, State, Share>;
alloy::Device tensor_device() {
  int dev = 0;
  cudaGetDevice(&dev);
  return alloy::Device::cuda(dev);
}
#endif

template <class State, class Share = alloy::share::PerParameter>
struct AdamW final : Handle {
  AdamWOptimizer<State, Share> opt;
  AdamW(std::vector<alloy::Param> p, const alloy::rule::AdamW::Hyper& h, alloy::Options o = {})
      : opt(std::move(p), h, std::move(o)) {}
  void step() override { opt.step(); }
  std::size_t state_bytes() const override { return opt.state_bytes(); }
};

std::vector<alloy::Param> make_params(int n, void** params, void** grads, const long long* numels,
                                      const char** names, int dtype) {
  const alloy::Device where = tensor_device();
  const alloy::DType dt = dtype == 0 ? alloy::DType::f32 : alloy::DType::bf16;
  std::vector<alloy::Param> ps;
  for (int i = 0; i < n; ++i) {
    const std::string name = names && names[i] ? names[i] : "t" + std::to_string(i);
    alloy::TensorView p(params[i], std::uint64_t(numels[i]), dt, where, name);
    alloy::TensorView g(grads[i], std::uint64_t(numels[i]), dt, where, name + ".grad");
    ps.push_back({p, g});
  }
  return ps;
}
/// The partition of a tensor given as (rows, numel): 2-D (rows, numel / rows), or 1-D.
alloy::share::AdamMiniAssignment adam_mini_assignment(const std::string& name, long long rows,
                                                      long long numel,
                                                      const alloy::share::AdamMiniConfig& cfg) {
  std::vector<std::int64_t> shape = {rows};
  if (numel != rows) shape.push_back(numel / rows);
  return alloy::share::adam_mini_partition(name, shape, cfg);
}
}  // namespace

extern "C" {

const char* alloy_capi_error() { return g_error.c_str(); }

void* alloy_capi_create(const char* composition, int n, void** params, void** grads,
                        const long long* numels, const char** names, int dtype, float lr,
                        float beta1, float beta2, float eps, float weight_decay) {
  try {
    auto ps = make_params(n, params, grads, numels, names, dtype);
    const alloy::rule::AdamW::Hyper h{lr, beta1, beta2, eps, weight_decay, false};
    const std::string c = composition;
    std::unique_ptr<Handle> out;
    if (c == "adamw_fp32") out = std::make_unique<AdamW<alloy::state::Fp32>>(ps, h);
    else if (c == "adamw_bf16") out = std::make_unique<AdamW<alloy::state::Bf16<>>>(ps, h);
    else if (c == "adamw_int8") out = std::make_unique<AdamW<alloy::state::Int8Blockwise<>>>(ps, h);
    else if (c == "adamw_int8_sr") {
      alloy::Options o;
      o.param_rounding = alloy::Rounding::stochastic;
      out = std::make_unique<AdamW<alloy::state::Int8Blockwise<>>>(ps, h, o);
    } else alloy::detail::fail("unknown composition '", c, "'");
    return out.release();
  } catch (const std::exception& e) {
    g_error = e.what();
    return nullptr;
  }
}

/// Adam-mini (AdamW + PerBlock) as the official release 1.1.1 partitions a model: rows[i] is
/// tensor i's first dimension (numel for 1-D tensors); dim, n_heads, n_kv_heads the model's.
/// Weight decay is masked for names containing "norm", "ln" or "bias", as the official code.
void* alloy_capi_create_adam_mini(const char* composition, int n, void** params, void** grads,
                                  const long long* numels, const long long* rows,
                                  const char** names, int dtype, float lr, float beta1, float beta2,
                                  float eps, float weight_decay, int dim, int n_heads,
                                  int n_kv_heads) {
  try {
    auto ps = make_params(n, params, grads, numels, names, dtype);
    const alloy::share::AdamMiniConfig cfg{dim, n_heads, n_kv_heads, false};
    for (int i = 0; i < n; ++i)
      ps[std::size_t(i)].share_block =
          adam_mini_assignment(ps[std::size_t(i)].param.name, rows[i], numels[i], cfg)
              .spec.block_size;
    const alloy::rule::AdamW::Hyper h{lr, beta1, beta2, eps, weight_decay, false};
    alloy::Options o;
    o.no_decay = std::vector<std::string>{"norm", "ln", "bias"};
    const std::string c = composition;
    using alloy::share::PerBlock;
    std::unique_ptr<Handle> out;
    if (c == "adam_mini_fp32")
      out = std::make_unique<AdamW<alloy::state::Fp32, PerBlock>>(ps, h, o);
    else if (c == "adam_mini_bf16")
      out = std::make_unique<AdamW<alloy::state::Bf16<>, PerBlock>>(ps, h, o);
    else if (c == "adam_mini_int8")
      out = std::make_unique<AdamW<alloy::state::Int8Blockwise<>, PerBlock>>(ps, h, o);
    else alloy::detail::fail("unknown Adam-mini composition '", c, "'");
    return out.release();
  } catch (const std::exception& e) {
    g_error = e.what();
    return nullptr;
  }
}

/// share::adam_mini_partition for one tensor (rows: its first dimension, numel for 1-D): writes
/// the block size and the name of the rule that matched; 0, or -1 with alloy_capi_error().
int alloy_capi_adam_mini_block(const char* name, long long rows, long long numel, int dim,
                               int n_heads, int n_kv_heads, long long* block, const char** rule) {
  try {
    const auto a = adam_mini_assignment(
        name, rows, numel, alloy::share::AdamMiniConfig{dim, n_heads, n_kv_heads, false});
    *block = static_cast<long long>(a.spec.block_size);
    *rule = a.rule;
    return 0;
  } catch (const std::exception& e) {
    g_error = e.what();
    return -1;
  }
}

int alloy_capi_step(void* h) {
  try {
    static_cast<Handle*>(h)->step();
    return 0;
  } catch (const std::exception& e) {
    g_error = e.what();
    return -1;
  }
}

long long alloy_capi_state_bytes(void* h) {
  return static_cast<long long>(static_cast<Handle*>(h)->state_bytes());
}

/// The 256 entries of codebook k (0: signed, for the first moment; 1: unsigned) as fp32.
void alloy_capi_codebook(int k, float* out) {
  std::memcpy(out, alloy::state::int8_tables().map[k == 0 ? 0 : 1].code, 256 * sizeof(float));
}

void alloy_capi_destroy(void* h) { delete static_cast<Handle*>(h); }
}
