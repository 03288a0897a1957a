// A small C interface to a few alloy compositions on CUDA, loaded with ctypes by the parity
// scripts in bench/ (int8_parity.py): Python owns the tensors (torch), alloy steps them. Not a
// public API: the PyTorch extension of ../ROADMAP.md replaces it.
//
//   handle = alloy_capi_create(composition, n, params, grads, numels, names, dtype,
//                              lr, beta1, beta2, eps, weight_decay)
//   alloy_capi_step(handle)              enqueued on the legacy default stream (as torch's)
//   alloy_capi_state_bytes(handle), alloy_capi_codebook(k, out256), alloy_capi_destroy(handle)
//
// composition: "adamw_fp32", "adamw_bf16", "adamw_int8". dtype: 0 fp32, 1 bf16 (params and grads
// alike). Errors: create returns null / step returns -1, and alloy_capi_error() says why.
#include <alloy/alloy.cuh>

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

template <class State>
struct AdamW final : Handle {
  alloy::cuda::Optimizer<alloy::rule::AdamW, State> opt;
  AdamW(std::vector<alloy::Param> p, const alloy::rule::AdamW::Hyper& h) : opt(std::move(p), h) {}
  void step() override { opt.step(); }
  std::size_t state_bytes() const override { return opt.state_bytes(); }
};
}  // namespace

extern "C" {

const char* alloy_capi_error() { return g_error.c_str(); }

void* alloy_capi_create(const char* composition, int n, void** params, void** grads,
                        const long long* numels, const char** names, int dtype, float lr,
                        float beta1, float beta2, float eps, float weight_decay) {
  try {
    int dev = 0;
    cudaGetDevice(&dev);
    const alloy::DType dt = dtype == 0 ? alloy::DType::f32 : alloy::DType::bf16;
    std::vector<alloy::Param> ps;
    for (int i = 0; i < n; ++i) {
      const std::string name = names && names[i] ? names[i] : "t" + std::to_string(i);
      alloy::TensorView p(params[i], std::uint64_t(numels[i]), dt, alloy::Device::cuda(dev), name);
      alloy::TensorView g(grads[i], std::uint64_t(numels[i]), dt, alloy::Device::cuda(dev),
                          name + ".grad");
      ps.push_back({p, g});
    }
    const alloy::rule::AdamW::Hyper h{lr, beta1, beta2, eps, weight_decay, false};
    const std::string c = composition;
    std::unique_ptr<Handle> out;
    if (c == "adamw_fp32") out = std::make_unique<AdamW<alloy::state::Fp32>>(ps, h);
    else if (c == "adamw_bf16") out = std::make_unique<AdamW<alloy::state::Bf16<>>>(ps, h);
    else if (c == "adamw_int8") out = std::make_unique<AdamW<alloy::state::Int8Blockwise<>>>(ps, h);
    else alloy::detail::fail("unknown composition '", c, "'");
    return out.release();
  } catch (const std::exception& e) {
    g_error = e.what();
    return nullptr;
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
