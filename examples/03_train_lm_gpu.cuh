// The demo's model on a CUDA device (examples/03_train_lm.cpp, --device cuda): the same
// byte-level MLP language model as the host `Model` (fp32, row-major matrices (out, in)), its
// forward and backward as cuBLAS SGEMMs (pure fp32 math mode) and a few small kernels.
//
// Row-major M (r x c) is column-major M^T, so each product below is written for cuBLAS in
// column-major terms: C^T = op(B)^T op(A)^T.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <alloy/alloy.cuh>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gpu {

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "03_train_lm: %s\n", what.c_str());
  std::exit(1);
}
inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(std::string(what) + ": " + cudaGetErrorString(e));
}
inline void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    fail(std::string(what) + ": cuBLAS status " + std::to_string(int(s)));
}
#define DEMO_CK(x) ::gpu::check((x), #x)

/// Whether this process sees a CUDA device.
inline bool available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

/// A device allocation that frees itself.
template <class T>
struct Array {
  T* p = nullptr;
  std::size_t n = 0;
  Array() = default;
  explicit Array(std::size_t count) : n(count) {
    DEMO_CK(cudaMalloc(&p, std::max<std::size_t>(1, n) * sizeof(T)));
  }
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;
  Array(Array&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr, o.n = 0; }
  Array& operator=(Array&& o) noexcept {
    std::swap(p, o.p);
    std::swap(n, o.n);
    return *this;
  }
  ~Array() { cudaFree(p); }
};

/// x[b, c E + k] = emb[text[starts[b] + c], k]: the concatenated context embeddings.
__global__ void gather_kernel(const float* emb, const std::uint8_t* text,
                              const std::uint64_t* starts, int B, int C, int E, float* x) {
  const std::size_t D = std::size_t(C) * E, total = std::size_t(B) * D;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < total;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t b = i / D, d = i % D, c = d / E, k = d % E;
    x[i] = emb[std::size_t(text[starts[b] + c]) * E + k];
  }
}

/// a[b, j] = tanh(a[b, j] + bias[j]).
__global__ void bias_tanh_kernel(float* a, const float* bias, int B, int H) {
  const std::size_t total = std::size_t(B) * H;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < total;
       i += std::size_t(gridDim.x) * blockDim.x)
    a[i] = tanhf(a[i] + bias[i % H]);
}

/// One block of 256 threads per sequence: logits + bias, log-softmax, the loss of the next
/// byte; with `grad`, dlogits = (softmax - onehot) / B.
__global__ void __launch_bounds__(256)
    softmax_ce_kernel(const float* logits, const float* bias, const std::uint8_t* text,
                      const std::uint64_t* starts, int C, int B, bool grad, float* dlogits,
                      float* losses) {
  __shared__ float red[256];
  const int b = blockIdx.x, v = threadIdx.x;
  const float a = logits[std::size_t(b) * 256 + v] + bias[v];
  red[v] = a;
  __syncthreads();
  for (int h = 128; h > 0; h /= 2) {
    if (v < h) red[v] = fmaxf(red[v], red[v + h]);
    __syncthreads();
  }
  const float mx = red[0];
  __syncthreads();
  const float e = expf(a - mx);
  red[v] = e;
  __syncthreads();
  for (int h = 128; h > 0; h /= 2) {
    if (v < h) red[v] += red[v + h];
    __syncthreads();
  }
  const float z = red[0];
  const int target = text[starts[b] + std::uint64_t(C)];
  if (v == target) losses[b] = logf(z) + mx - a;
  if (grad) dlogits[std::size_t(b) * 256 + v] = (e / z - (v == target ? 1.f : 0.f)) / float(B);
}

/// da = dh (1 - h^2), in place over dh.
__global__ void tanh_backward_kernel(float* dh, const float* h, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    dh[i] *= 1.f - h[i] * h[i];
}

/// out[j] = sum over rows b of m[b, j] (one thread per column, rows in order: deterministic).
__global__ void column_sum_kernel(const float* m, int rows, int cols, float* out) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  float s = 0.f;
  for (int b = 0; b < rows; ++b) s += m[std::size_t(b) * cols + j];
  out[j] = s;
}

/// g_emb[text[starts[b] + c], k] += dx[b, c E + k] (atomic adds: order not fixed).
__global__ void scatter_embedding_kernel(const float* dx, const std::uint8_t* text,
                                         const std::uint64_t* starts, int B, int C, int E,
                                         float* gemb) {
  const std::size_t D = std::size_t(C) * E, total = std::size_t(B) * D;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < total;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t b = i / D, d = i % D, c = d / E, k = d % E;
    atomicAdd(&gemb[std::size_t(text[starts[b] + c]) * E + k], dx[i]);
  }
}

inline unsigned grid_for(std::size_t n) {
  return unsigned(std::min<std::size_t>((n + 255) / 256, 4096));
}

/// The corpus splits on the device, uploaded once per host buffer.
inline const std::uint8_t* device_text(const std::vector<std::uint8_t>& text) {
  static std::map<const std::uint8_t*, Array<std::uint8_t>> cache;
  auto it = cache.find(text.data());
  if (it == cache.end()) {
    Array<std::uint8_t> d(text.size());
    DEMO_CK(cudaMemcpy(d.p, text.data(), text.size(), cudaMemcpyHostToDevice));
    it = cache.emplace(text.data(), std::move(d)).first;
  }
  return it->second.p;
}

/// The model with its weights and gradients in device memory.
template <class HostModel>
struct Model {
  using Exec = alloy::exec::Cuda;
  static constexpr int V = 256;
  int C, E, H;
  struct Tensor {
    std::string name;
    std::vector<std::int64_t> shape;
    std::size_t n = 0;
    std::shared_ptr<Array<float>> w, g;
  };
  std::vector<Tensor> t;  // embed, W1, b1, W2, b2 (the host model's order)

  /// Uploads the host model's weights (gradients start at zero).
  explicit Model(const HostModel& h) : C(h.C), E(h.E), H(h.H) {
    for (const auto& x : h.t) {
      Tensor d{x.name, x.shape, x.w.size(), std::make_shared<Array<float>>(x.w.size()),
               std::make_shared<Array<float>>(x.w.size())};
      DEMO_CK(cudaMemcpy(d.w->p, x.w.data(), d.n * 4, cudaMemcpyHostToDevice));
      DEMO_CK(cudaMemset(d.g->p, 0, d.n * 4));
      t.push_back(std::move(d));
    }
  }
  /// A copy owns new weights (same values) and gradients.
  Model(const Model& o) : C(o.C), E(o.E), H(o.H) { copy_from(o); }
  Model& operator=(const Model& o) {
    if (this != &o) {
      C = o.C, E = o.E, H = o.H;
      t.clear();
      copy_from(o);
    }
    return *this;
  }

  std::size_t params() const {
    std::size_t n = 0;
    for (const auto& x : t) n += x.n;
    return n;
  }
  void sync() const { DEMO_CK(cudaDeviceSynchronize()); }

  /// Mean cross-entropy of the next byte over `starts`, as the host model's loss(); with
  /// `grad`, the gradient of that mean into the g buffers (overwritten).
  double loss(const std::vector<std::uint8_t>& text, const std::vector<std::size_t>& starts,
              bool grad, unsigned /*threads*/) {
    const int B = int(starts.size()), D = C * E;
    scratch(B);
    std::vector<std::uint64_t> s64(starts.begin(), starts.end());
    DEMO_CK(cudaMemcpy(starts_.p, s64.data(), s64.size() * 8, cudaMemcpyHostToDevice));
    const std::uint8_t* txt = device_text(text);
    const float one = 1.f, zero = 0.f;
    float *emb = t[0].w->p, *w1 = t[1].w->p, *b1 = t[2].w->p, *w2 = t[3].w->p, *b2 = t[4].w->p;
    const std::size_t BD = std::size_t(B) * D, BH = std::size_t(B) * H;
    gather_kernel<<<grid_for(BD), 256>>>(emb, txt, starts_.p, B, C, E, x_.p);
    // a = x W1^T: column-major a^T (H x B) = W1 (from col-major W1^T, D x H) * x^T (D x B)
    DEMO_CK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, H, B, D, &one, w1, D, x_.p, D, &zero, h_.p,
                        H));
    bias_tanh_kernel<<<grid_for(BH), 256>>>(h_.p, b1, B, H);
    // logits = h W2^T: (256 x B) = W2 (256 x H) * h^T (H x B)
    DEMO_CK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, V, B, H, &one, w2, H, h_.p, H, &zero,
                        logits_.p, V));
    softmax_ce_kernel<<<B, 256>>>(logits_.p, b2, txt, starts_.p, C, B, grad, dlogits_.p, losses_.p);
    if (grad) {
      float *ge = t[0].g->p, *gw1 = t[1].g->p, *gb1 = t[2].g->p, *gw2 = t[3].g->p, *gb2 = t[4].g->p;
      // dW2 = dlogits^T h: column-major (H x 256) = h^T (H x B) * dlogits (B x 256)
      DEMO_CK(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_T, H, V, B, &one, h_.p, H, dlogits_.p, V,
                          &zero, gw2, H));
      column_sum_kernel<<<1, 256>>>(dlogits_.p, B, V, gb2);
      // dh = dlogits W2: (H x B) = W2^T (H x 256) * dlogits^T (256 x B)
      DEMO_CK(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, H, B, V, &one, w2, H, dlogits_.p, V,
                          &zero, dh_.p, H));
      tanh_backward_kernel<<<grid_for(BH), 256>>>(dh_.p, h_.p, BH);  // dh_ is now da
      column_sum_kernel<<<(H + 255) / 256, 256>>>(dh_.p, B, H, gb1);
      // dW1 = da^T x: (D x H) = x^T (D x B) * da (B x H)
      DEMO_CK(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_T, D, H, B, &one, x_.p, D, dh_.p, H, &zero,
                          gw1, D));
      // dx = da W1: (D x B) = W1^T (D x H) * da^T (H x B)
      DEMO_CK(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, D, B, H, &one, w1, D, dh_.p, H, &zero,
                          dx_.p, D));
      DEMO_CK(cudaMemsetAsync(ge, 0, t[0].n * 4));
      scatter_embedding_kernel<<<grid_for(BD), 256>>>(dx_.p, txt, starts_.p, B, C, E, ge);
    }
    DEMO_CK(cudaGetLastError());
    std::vector<float> l(std::size_t(B), 0.f);
    DEMO_CK(cudaMemcpy(l.data(), losses_.p, l.size() * 4, cudaMemcpyDeviceToHost));
    double sum = 0;
    for (float x : l) sum += x;
    return sum / B;
  }

  ~Model() {
    if (blas_) cublasDestroy(blas_);
  }

 private:
  void copy_from(const Model& o) {
    for (const auto& x : o.t) {
      Tensor d{x.name, x.shape, x.n, std::make_shared<Array<float>>(x.n),
               std::make_shared<Array<float>>(x.n)};
      DEMO_CK(cudaMemcpy(d.w->p, x.w->p, d.n * 4, cudaMemcpyDeviceToDevice));
      DEMO_CK(cudaMemset(d.g->p, 0, d.n * 4));
      t.push_back(std::move(d));
    }
  }
  void scratch(int B) {
    if (!blas_) DEMO_CK(cublasCreate(&blas_));  // default stream, as alloy's step()
    if (B <= batch_) return;
    batch_ = B;
    const std::size_t b = std::size_t(B);
    x_ = Array<float>(b * C * E);
    h_ = Array<float>(b * H);
    dh_ = Array<float>(b * H);
    dx_ = Array<float>(b * C * E);
    logits_ = Array<float>(b * V);
    dlogits_ = Array<float>(b * V);
    losses_ = Array<float>(b);
    starts_ = Array<std::uint64_t>(b);
  }
  cublasHandle_t blas_ = nullptr;
  int batch_ = 0;
  Array<float> x_, h_, dh_, dx_, logits_, dlogits_, losses_;
  Array<std::uint64_t> starts_;
};

}  // namespace gpu
