// 02_cuda_graph: one optimizer step captured in a CUDA graph and replayed every training step,
// with a learning-rate schedule (linear warmup, then cosine decay) that changes every step.
//
// A step of alloy's CUDA executor is a fixed sequence of launches that read the hyperparameters
// from device memory, so a graph captured once stays valid: before each replay the program
// writes the step's learning rate to `opt.backend().device_lr(group)` in stream order.
//
// The same training runs twice from the same start, once replaying the graph and once calling
// `opt.step()` with `set_lr()` (validated on the host, copied to the device at the next step).
// Both give the same parameters and moments bit for bit, which the program checks at the end.
//
// The model is 01_cuda_adamw's linear least-squares problem, here with bf16 parameters stored
// with stochastic rounding, and two groups: weights (decayed) and biases (not decayed).
//
// Exits with code 0 and "no CUDA device: skipped" on a machine without a GPU.
#include <alloy/alloy.cuh>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr int kRows = 2048, kIn = 256, kOut = 8, kSteps = 300, kWarmup = 30, kPrintEvery = 100;

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
  std::size_t bytes() const { return n_ * sizeof(T); }

 private:
  T* p_ = nullptr;
  std::size_t n_;
};

/// Pinned host memory: cudaMemcpyAsync from it is truly asynchronous, so each step's learning
/// rate needs its own slot, alive until the copy has run.
template <class T>
class PinnedArray {
 public:
  explicit PinnedArray(std::size_t n) { CUDA_CHECK(cudaMallocHost(&p_, n * sizeof(T))); }
  ~PinnedArray() { cudaFreeHost(p_); }
  PinnedArray(const PinnedArray&) = delete;
  PinnedArray& operator=(const PinnedArray&) = delete;
  T& operator[](std::size_t i) { return p_[i]; }

 private:
  T* p_ = nullptr;
};

// ---- the model's forward and backward passes (bf16 parameters and gradients) ----
using alloy::bf16;

/// R = X W^T + b - Y, one thread per (row, output).
__global__ void residual_kernel(const float* X, const bf16* W, const bf16* b, const float* Y,
                                float* R) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= kRows * kOut) return;
  const int r = i / kOut, o = i % kOut;
  float s = alloy::to_float(b[o]) - Y[i];
  for (int c = 0; c < kIn; ++c) s += X[r * kIn + c] * alloy::to_float(W[o * kIn + c]);
  R[i] = s;
}

/// dW = R^T X / rows and db = column sums of R / rows (c == kIn is the bias).
__global__ void gradient_kernel(const float* X, const float* R, bf16* dW, bf16* db) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= kOut * (kIn + 1)) return;
  const int o = i / (kIn + 1), c = i % (kIn + 1);
  float s = 0.f;
  for (int r = 0; r < kRows; ++r) s += R[r * kOut + o] * (c < kIn ? X[r * kIn + c] : 1.f);
  const bf16 g = alloy::to_bf16_nearest(s / kRows);
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

/// Learning rate of step t (1-based): linear warmup to `peak`, then cosine decay to peak / 10.
float schedule(float peak, int t) {
  if (t <= kWarmup) return peak * float(t) / kWarmup;
  const double progress = double(t - kWarmup) / (kSteps - kWarmup);
  return float(peak * (0.1 + 0.9 * 0.5 * (1.0 + std::cos(3.14159265358979323846 * progress))));
}

using Opt = alloy::cuda::Optimizer<alloy::rule::AdamW, alloy::state::Bf16<>>;

/// What a run ends with: parameter bits and every moment (decoded to fp32).
struct Result {
  std::vector<std::uint8_t> params;
  std::vector<float> moments;
};

Result train(bool use_graph, cudaStream_t stream) {
  const char* label = use_graph ? "graph replay" : "eager step()";
  // Data: X (rows x in), Y = X W*^T + b* + noise (rows x out); the same for both runs.
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
  CUDA_CHECK(cudaMemcpyAsync(dX.get(), X.data(), dX.bytes(), cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaMemcpyAsync(dY.get(), Y.data(), dY.bytes(), cudaMemcpyHostToDevice, stream));

  // Parameters (zero) and gradients, bf16, in device memory.
  DeviceArray<bf16> W(kOut * kIn), b(kOut), dW(kOut * kIn), db(kOut);
  CUDA_CHECK(cudaMemsetAsync(W.get(), 0, W.bytes(), stream));
  CUDA_CHECK(cudaMemsetAsync(b.get(), 0, b.bytes(), stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));

  // Two groups with their own hyperparameters; both follow the schedule with their own peak.
  const alloy::Device gpu = alloy::Device::cuda(0);
  const float peak[2] = {0.05f, 0.02f};
  alloy::Options options;
  options.param_rounding = alloy::Rounding::stochastic;
  options.seed = 2024;
  const alloy::Param weight{
      alloy::TensorView::of(W.get(), W.size(), gpu, "linear.weight", {kOut, kIn}),
      alloy::TensorView::of(dW.get(), dW.size(), gpu)};
  const alloy::Param bias{alloy::TensorView::of(b.get(), b.size(), gpu, "linear.bias", {kOut}),
                          alloy::TensorView::of(db.get(), db.size(), gpu)};
  Opt opt({Opt::Group{{weight}, {.lr = schedule(peak[0], 1), .weight_decay = 0.01f}, "weights"},
           Opt::Group{{bias}, {.lr = schedule(peak[1], 1), .weight_decay = 0.0f}, "biases"}},
          options);

  // The schedule, one slot per (step, group), in pinned memory for asynchronous copies.
  PinnedArray<float> lr(2 * kSteps);
  for (int t = 1; t <= kSteps; ++t)
    for (int g = 0; g < 2; ++g) lr[2 * (t - 1) + g] = schedule(peak[g], t);

  // Capture one optimizer step. Capturing enqueues nothing: the step count does not advance.
  // Capture after every tensor is registered and bound, and with no set_hyper/set_lr pending:
  // a pending write would be captured too and replayed with its old value every time.
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t step_graph = nullptr;
  float* device_lr[2] = {nullptr, nullptr};
  if (use_graph) {
    CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    opt.step(stream);
    CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    CUDA_CHECK(cudaGraphInstantiate(&step_graph, graph, 0));
    // Valid until the tables are rebuilt (after set_grad, set_frozen or add_group); then
    // fetch them again and re-capture the graph.
    for (int g = 0; g < 2; ++g) device_lr[g] = opt.backend().device_lr(g);
  }

  for (int t = 1; t <= kSteps; ++t) {
    residual_kernel<<<(kRows * kOut + 255) / 256, 256, 0, stream>>>(dX.get(), W.get(), b.get(),
                                                                    dY.get(), dR.get());
    CUDA_CHECK(cudaGetLastError());
    gradient_kernel<<<(kOut * (kIn + 1) + 255) / 256, 256, 0, stream>>>(dX.get(), dR.get(),
                                                                        dW.get(), db.get());
    CUDA_CHECK(cudaGetLastError());
    if (use_graph) {
      // Not validated: the value goes straight into the hyperparameter table.
      for (int g = 0; g < 2; ++g)
        CUDA_CHECK(cudaMemcpyAsync(device_lr[g], &lr[2 * (t - 1) + g], sizeof(float),
                                   cudaMemcpyHostToDevice, stream));
      CUDA_CHECK(cudaGraphLaunch(step_graph, stream));
    } else {
      for (int g = 0; g < 2; ++g) opt.set_lr(g, lr[2 * (t - 1) + g]);
      opt.step(stream);
    }
    if (t % kPrintEvery == 0 || t == 1) {
      float loss = 0.f;
      loss_kernel<<<1, 256, 0, stream>>>(dR.get(), dLoss.get());  // loss before this step
      CUDA_CHECK(cudaGetLastError());
      CUDA_CHECK(
          cudaMemcpyAsync(&loss, dLoss.get(), sizeof(float), cudaMemcpyDeviceToHost, stream));
      CUDA_CHECK(cudaStreamSynchronize(stream));
      std::printf("  %-12s step %4d  lr %.5f / %.5f  loss %.6f\n", label, t, lr[2 * (t - 1)],
                  lr[2 * (t - 1) + 1], loss);
    }
  }
  // Reads below copy on the legacy default stream, which does not wait for a non-blocking
  // stream: synchronize it first.
  CUDA_CHECK(cudaStreamSynchronize(stream));
  std::printf("%-12s %u steps (weights), %u (biases)\n", label, opt.step_count(0),
              opt.step_count(1));

  Result res;
  res.params.resize(W.bytes() + b.bytes());
  CUDA_CHECK(cudaMemcpy(res.params.data(), W.get(), W.bytes(), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(res.params.data() + W.bytes(), b.get(), b.bytes(), cudaMemcpyDeviceToHost));
  for (std::size_t t = 0; t < opt.num_tensors(); ++t)
    for (int k = 0; k < Opt::kMoments; ++k) {
      const std::vector<float> m = opt.moment(t, k);
      res.moments.insert(res.moments.end(), m.begin(), m.end());
    }
  if (use_graph) {
    CUDA_CHECK(cudaGraphExecDestroy(step_graph));
    CUDA_CHECK(cudaGraphDestroy(graph));
  }
  return res;
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
    const Result eager = train(false, stream);
    const Result graph = train(true, stream);
    CUDA_CHECK(cudaStreamDestroy(stream));
    const bool same_params = eager.params == graph.params;
    const bool same_moments = eager.moments.size() == graph.moments.size() &&
                              std::memcmp(eager.moments.data(), graph.moments.data(),
                                          eager.moments.size() * sizeof(float)) == 0;
    std::printf("parameters (%zu bytes) and moments (%zu values) after %d steps: %s\n",
                eager.params.size(), eager.moments.size(), kSteps,
                same_params && same_moments ? "identical" : "DIFFERENT");
    return same_params && same_moments ? 0 : 1;
  } catch (const std::exception& ex) {  // alloy::Error and failed CUDA calls
    std::fprintf(stderr, "02_cuda_graph: %s\n", ex.what());
    return 1;
  }
}
