// 01_cuda_adamw: the quickstart on the GPU. A linear model trained by least squares, with its
// parameters, gradients and data in device memory and every launch on a non-default stream.
//
//   Y = X W*^T + b*  (+ noise); minimize 0.5 * mean over rows of |X W^T + b - Y|^2 over the
//   weight W (kOut x kIn) and the bias b (kOut) with AdamW, moments kept in bf16 (4 bytes of
//   state per parameter). Once with fp32 parameters and gradients, once with bf16 parameters
//   and gradients, stored with stochastic rounding.
//
// The forward and backward passes are small hand-written kernels; in a real program they are
// the framework's. alloy only gets views of the parameter and gradient buffers.
//
// Exits with code 0 and "no CUDA device: skipped" on a machine without a GPU.
#include <alloy/alloy.cuh>

#include <cuda_runtime.h>

#include <cstdio>
#include <exception>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr int kRows = 2048, kIn = 256, kOut = 8, kSteps = 400, kPrintEvery = 100;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
#define CUDA_CHECK(expr) check((expr), #expr)

/// An owning array in device memory.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(std::size_t n) : n_(n) { CUDA_CHECK(cudaMalloc(&p_, n * sizeof(T))); }
  ~DeviceArray() { cudaFree(p_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return p_; }
  std::size_t size() const { return n_; }
  void upload(const std::vector<T>& v, cudaStream_t s) {
    CUDA_CHECK(cudaMemcpyAsync(p_, v.data(), n_ * sizeof(T), cudaMemcpyHostToDevice, s));
  }
  /// All bits zero: +0 in fp32 and in bf16.
  void zero(cudaStream_t s) { CUDA_CHECK(cudaMemsetAsync(p_, 0, n_ * sizeof(T), s)); }

 private:
  T* p_ = nullptr;
  std::size_t n_;
};

// ---- the model's forward and backward passes (T: float or alloy::bf16) ----

/// R = X W^T + b - Y, one thread per (row, output).
template <class T>
__global__ void residual_kernel(const float* X, const T* W, const T* b, const float* Y, float* R) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= kRows * kOut) return;
  const int r = i / kOut, o = i % kOut;
  float s = alloy::to_float(b[o]) - Y[i];
  for (int c = 0; c < kIn; ++c) s += X[r * kIn + c] * alloy::to_float(W[o * kIn + c]);
  R[i] = s;
}

/// dW = R^T X / rows and db = column sums of R / rows, one thread per gradient element
/// (c == kIn is the bias), stored in the parameters' dtype.
template <class T>
__global__ void gradient_kernel(const float* X, const float* R, T* dW, T* db) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= kOut * (kIn + 1)) return;
  const int o = i / (kIn + 1), c = i % (kIn + 1);
  float s = 0.f;
  for (int r = 0; r < kRows; ++r) s += R[r * kOut + o] * (c < kIn ? X[r * kIn + c] : 1.f);
  const T g = alloy::round_to<T, alloy::Rounding::nearest>(s / kRows, 0);
  if (c < kIn) dW[o * kIn + c] = g;
  else db[o] = g;
}

/// loss = 0.5 * sum(R^2) / rows, by one block of 256 threads.
__global__ void loss_kernel(const float* R, float* loss) {
  __shared__ float part[256];
  float s = 0.f;
  for (int i = threadIdx.x; i < kRows * kOut; i += blockDim.x) s += R[i] * R[i];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) *loss = 0.5f * part[0] / kRows;
}

template <class T>
void train(const char* label, alloy::Rounding rounding, cudaStream_t stream) {
  // Data on the host, then on the device: X (rows x in), Y = X W*^T + b* + noise (rows x out).
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> X(kRows * kIn), w_true(kOut * kIn), b_true(kOut), Y(kRows * kOut);
  for (auto& x : X) x = nd(rng);
  for (auto& x : w_true) x = nd(rng);
  for (auto& x : b_true) x = nd(rng);
  for (int r = 0; r < kRows; ++r)
    for (int o = 0; o < kOut; ++o) {
      double s = b_true[o];
      for (int c = 0; c < kIn; ++c) s += double(X[r * kIn + c]) * w_true[o * kIn + c];
      Y[r * kOut + o] = float(s + 0.01 * nd(rng));
    }
  DeviceArray<float> dX(X.size()), dY(Y.size()), dR(kRows * kOut), dLoss(1);
  dX.upload(X, stream);
  dY.upload(Y, stream);

  // The framework's tensors: parameters (zero-initialized) and gradients, in device memory.
  DeviceArray<T> W(kOut * kIn), b(kOut), dW(kOut * kIn), db(kOut);
  W.zero(stream);
  b.zero(stream);
  CUDA_CHECK(cudaStreamSynchronize(stream));

  // alloy gets views, each on the GPU and named (the name keys the tensor's random stream for
  // stochastic rounding, independent of registration order), and owns only its state.
  const alloy::Device gpu = alloy::Device::cuda(0);
  alloy::Options options;
  options.param_rounding = rounding;  // matters for bf16 parameters only
  options.seed = 1234;
  alloy::cuda::Optimizer<alloy::rule::AdamW, alloy::state::Bf16<>> opt(
      {alloy::Param{alloy::TensorView::of(W.get(), W.size(), gpu, "linear.weight", {kOut, kIn}),
                    alloy::TensorView::of(dW.get(), dW.size(), gpu)},
       alloy::Param{alloy::TensorView::of(b.get(), b.size(), gpu, "linear.bias", {kOut}),
                    alloy::TensorView::of(db.get(), db.size(), gpu)}},
      {.lr = 0.05f, .weight_decay = 0.0f}, options);

  float loss = 0.f;
  for (int step = 1; step <= kSteps; ++step) {
    residual_kernel<T><<<(kRows * kOut + 255) / 256, 256, 0, stream>>>(dX.get(), W.get(), b.get(),
                                                                       dY.get(), dR.get());
    CUDA_CHECK(cudaGetLastError());
    gradient_kernel<T><<<(kOut * (kIn + 1) + 255) / 256, 256, 0, stream>>>(dX.get(), dR.get(),
                                                                           dW.get(), db.get());
    CUDA_CHECK(cudaGetLastError());
    // Enqueued on `stream` after the backward pass: no allocation, no host synchronization.
    opt.step(stream);
    if (step % kPrintEvery == 0 || step == 1) {
      loss_kernel<<<1, 256, 0, stream>>>(dR.get(), dLoss.get());  // loss before this step
      CUDA_CHECK(cudaGetLastError());
      CUDA_CHECK(
          cudaMemcpyAsync(&loss, dLoss.get(), sizeof(float), cudaMemcpyDeviceToHost, stream));
      CUDA_CHECK(cudaStreamSynchronize(stream));
      std::printf("  %-16s step %4d  loss %.6f\n", label, step, loss);
    }
  }
  // step_count() and state reads copy on the legacy default stream, which does not wait for a
  // non-blocking stream: synchronize the stream first.
  CUDA_CHECK(cudaStreamSynchronize(stream));
  const std::size_t params = W.size() + b.size();
  std::printf("%-16s %u steps, optimizer state %zu bytes (%.3f per parameter), tables %zu bytes\n",
              label, opt.step_count(0), opt.state_bytes(), double(opt.state_bytes()) / params,
              opt.overhead_bytes());
}

}  // namespace

int main() {
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: skipped (%s)\n",
                e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 0;
  }
  try {
    CUDA_CHECK(cudaSetDevice(0));
    cudaStream_t stream = nullptr;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    train<float>("fp32 params", alloy::Rounding::nearest, stream);
    train<alloy::bf16>("bf16 params (SR)", alloy::Rounding::stochastic, stream);
    CUDA_CHECK(cudaStreamDestroy(stream));
  } catch (const std::exception& ex) {  // alloy::Error and failed CUDA calls
    std::fprintf(stderr, "01_cuda_adamw: %s\n", ex.what());
    return 1;
  }
  return 0;
}
