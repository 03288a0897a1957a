// grad::Spsa on the GPU: integer random streams bitwise equal to the host's, CUDA within a
// stated bound of the host executor (fp32 and bf16 with stochastic rounding, many tensors), and a
// whole zeroth-order step with device-side losses captured in a CUDA graph.
#include <doctest/doctest.h>

#include <alloy/alloy.cuh>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

namespace {

using alloy::Device;
using alloy::DType;
using alloy::Param;
using alloy::TensorView;
using alloy::grad::Direction;

template <class Exec, class Rule = alloy::rule::Sgd, class State = alloy::state::Fp32>
using ZoOpt = alloy::Optimizer<Rule, State, alloy::share::PerParameter, alloy::grad::Spsa<>, Exec>;

__global__ void stream_words(std::uint64_t seed, std::uint32_t step, std::uint32_t key, int k,
                             std::uint64_t first, std::uint32_t n, std::uint32_t* out) {
  const std::uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const auto r = alloy::grad::direction_stream(seed, step, key, k).at(first + i);
  const auto s = alloy::exec::rounding_stream(seed, step, key).at(first + i);
  for (int w = 0; w < 4; ++w) {
    out[8 * i + w] = r.v[w];
    out[8 * i + 4 + w] = s.v[w];
  }
}

/// gaussian_pair for every radius input m (word m << 9: all 2^23 values of the 23 bits it
/// uses), angle word from a multiplicative hash of m (every angle bucket is visited).
__global__ void all_gaussian_pairs(float* z) {
  const std::uint32_t m = blockIdx.x * blockDim.x + threadIdx.x;
  if (m >= (1u << 23)) return;
  alloy::grad::gaussian_pair(m << 9, m * 2654435761u, z[2 * m], z[2 * m + 1]);
}

/// 0.5 * sum (w - t)^2 in a fixed order (one block, fixed tree): the caller's "forward pass".
__global__ void quadratic_loss(const float* w, const float* t, std::uint32_t n, float* loss) {
  __shared__ double part[256];
  double s = 0;
  for (std::uint32_t i = threadIdx.x; i < n; i += 256) {
    const double d = double(w[i]) - double(t[i]);
    s += 0.5 * d * d;
  }
  part[threadIdx.x] = s;
  __syncthreads();
  for (int h = 128; h > 0; h >>= 1) {
    if (threadIdx.x < h) part[threadIdx.x] += part[threadIdx.x + h];
    __syncthreads();
  }
  if (threadIdx.x == 0) *loss = float(part[0]);
}

template <class T>
struct DevBuf {
  T* d = nullptr;
  std::size_t n;
  explicit DevBuf(const std::vector<T>& h) : n(h.size()) {
    REQUIRE(cudaMalloc(&d, n * sizeof(T)) == cudaSuccess);
    REQUIRE(cudaMemcpy(d, h.data(), n * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
  }
  ~DevBuf() { cudaFree(d); }
  std::vector<T> get() const {
    std::vector<T> h(n);
    REQUIRE(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
  }
};

/// Host and CUDA Spsa optimizers over the same tensors (sizes), stepped with the same projected
/// gradients (by value), fused schedule.
template <class T, class Rule = alloy::rule::Sgd, class State = alloy::state::Fp32>
void host_vs_cuda(const std::vector<std::size_t>& sizes, alloy::Rounding pr, int steps,
                  double& rel_error, double& differing, double& worst_ulps,
                  const typename Rule::Hyper& h = {1e-3f, 0.f, 0.f, 0.01f, false, false}) {
  std::mt19937_64 g(3);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<std::vector<T>> host(sizes.size());
  std::vector<std::unique_ptr<DevBuf<T>>> dev;
  std::vector<Param> hp, dp;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    host[i].resize(sizes[i]);
    for (auto& x : host[i]) {
      if constexpr (sizeof(T) == 4) x = nd(g);
      else x = alloy::to_bf16_nearest(nd(g));
    }
    dev.push_back(std::make_unique<DevBuf<T>>(host[i]));
    const std::string name = "layers." + std::to_string(i) + ".weight";
    hp.push_back({TensorView::of(host[i].data(), sizes[i], Device::host(), name), {}});
    dp.push_back({TensorView::of(dev[i]->d, sizes[i], Device::cuda(0), name), {}});
  }
  alloy::Options o;
  o.seed = 77;
  o.param_rounding = pr;
  ZoOpt<alloy::exec::Host, Rule, State> ho(hp, h, o);
  ZoOpt<alloy::exec::Cuda, Rule, State> co(dp, h, o);
  typename ZoOpt<alloy::exec::Host, Rule, State>::ProjectedGradient hc;
  typename ZoOpt<alloy::exec::Cuda, Rule, State>::ProjectedGradient cc;
  ho.perturb();
  co.perturb();
  for (int s = 0; s < steps; ++s) {
    hc.values[0] = cc.values[0] = 0.5f - 0.07f * float(s);
    ho.flip();
    co.flip();
    ho.update(hc);
    co.update(cc);
  }
  ho.restore();
  co.restore();
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  double num = 0, den = 0, diff = 0, total = 0;
  worst_ulps = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const auto d = dev[i]->get();
    for (std::size_t j = 0; j < d.size(); ++j) {
      const double a = alloy::to_float(d[j]), b = alloy::to_float(host[i][j]);
      num += (a - b) * (a - b);
      den += b * b;
      diff += a != b;
      ++total;
      // In ulps of the values that were rounded: p + eps z, at least eps in magnitude.
      int e;
      std::frexp(std::max(std::fabs(b), 1e-3), &e);
      worst_ulps =
          std::max(worst_ulps, std::fabs(a - b) / std::ldexp(1.0, e - (sizeof(T) == 4 ? 24 : 8)));
    }
  }
  rel_error = std::sqrt(num / den);
  differing = diff / total;
}

}  // namespace

TEST_CASE("spsa (CUDA): integer random streams are bitwise the host's") {
  const std::uint32_t n = 1 << 16;
  std::uint32_t* d;
  REQUIRE(cudaMalloc(&d, 8 * n * sizeof(std::uint32_t)) == cudaSuccess);
  for (std::uint64_t first : {std::uint64_t(0), std::uint64_t(1) << 33}) {
    stream_words<<<n / 256, 256>>>(0x0123456789abcdefull, 5, 0xfeedu, 3, first, n, d);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    std::vector<std::uint32_t> got(8 * n);
    REQUIRE(cudaMemcpy(got.data(), d, got.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    std::size_t mismatches = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      const auto r =
          alloy::grad::direction_stream(0x0123456789abcdefull, 5, 0xfeedu, 3).at(first + i);
      const auto s = alloy::exec::rounding_stream(0x0123456789abcdefull, 5, 0xfeedu).at(first + i);
      for (int w = 0; w < 4; ++w)
        mismatches += (got[8 * i + w] != r.v[w]) + (got[8 * i + 4 + w] != s.v[w]);
    }
    CHECK(mismatches == 0);
  }
  cudaFree(d);
}

TEST_CASE(
    "spsa (CUDA): Gaussian directions are finite and the host's within the hardware "
    "log2, sqrt and sincos error, for every radius input") {
  // Device (CUDA Programming Guide, intrinsic functions): log2 within 2^-22 absolute on [0.5, 2]
  // and 2 ulps elsewhere, so |dt| <= 2 ln2 2^-22 + t 2^-20 in t = -2 ln u1 (fp32 roundings of t
  // included); sin / cos within 2^-21.41 absolute on [-pi, pi]. Then |dr| <= min(sqrt(dt),
  // dt / sqrt(t)), and |dz| <= |dr| + r 2^-21.41 + r 2^-21 (the approximate square root and the
  // fp32 roundings of r and z on host and device).
  const std::uint32_t n = 1u << 23;
  float* d;
  REQUIRE(cudaMalloc(&d, 2ull * n * sizeof(float)) == cudaSuccess);
  all_gaussian_pairs<<<n / 256, 256>>>(d);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  std::vector<float> got(2ull * n);
  REQUIRE(cudaMemcpy(got.data(), d, got.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  cudaFree(d);
  std::size_t not_finite = 0, outside = 0;
  double worst = 0, largest = 0;
  for (std::uint32_t m = 0; m < n; ++m) {
    float h0, h1;
    alloy::grad::gaussian_pair(m << 9, m * 2654435761u, h0, h1);
    const double u1 = 1.0 - double(m) * 0x1p-23;  // 2 - x, x = 1 + m 2^-23
    const double t = -2.0 * std::log(u1), r = std::sqrt(t);
    const double dt = 2 * std::log(2.0) * 0x1p-22 + t * 0x1p-20;
    const double dr = t > 0 ? std::min(std::sqrt(dt), dt / std::sqrt(t)) : std::sqrt(dt);
    const double bound = dr + r * std::exp2(-21.41) + r * 0x1p-21;
    for (const auto& [dev, host] : {std::pair{got[2 * m], h0}, std::pair{got[2 * m + 1], h1}}) {
      not_finite += !std::isfinite(dev);
      const double e = std::fabs(double(dev) - double(host));
      outside += !(e <= bound);
      worst = std::max(worst, e / bound);
      largest = std::max(largest, std::fabs(double(dev)));
    }
  }
  MESSAGE("gaussian_pair, 2^23 inputs: worst |device - host| = "
          << worst << " of the bound; max |z| = " << largest);
  CHECK(not_finite == 0);
  CHECK(outside == 0);
  CHECK(largest <= std::sqrt(2 * 23 * std::log(2.0)) + 1e-5);
}

TEST_CASE("spsa (CUDA): fp32 parameters within 1e-6 of the host executor (fused MeZO steps)") {
  // The integer streams are equal; the Gaussians differ by a few ulps (hardware log/sincos on the
  // device, <cmath> on the host), and lr * c * dz with lr = 1e-3 keeps the parameters within
  // ~1e-9 relative of each other per step; the perturbation cancels within each executor.
  double rel, differing, worst;
  host_vs_cuda<float>({1, 3, 4095, 4097, 70001, 1000003}, alloy::Rounding::nearest, 10, rel,
                      differing, worst);
  INFO("relative error " << rel << ", worst " << worst << " ulps");
  CHECK(rel < 1e-6);
}

TEST_CASE("spsa (CUDA): ZO-Adam with Int8Blockwise state close to the host executor") {
  // As above, the directions differ by a few fp32 ulps; a moment whose scaled value lies within
  // that of a code midpoint may take the neighbouring code (one code step, at most 1.4% of its
  // block's absmax in the top decade), which changes that element's later updates by a
  // fraction of lr. 10 steps of lr 1e-3 on N(0, 1) parameters: relative error well below 1e-4.
  const alloy::rule::AdamW::Hyper h{1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, false};
  double rel, differing, worst;
  host_vs_cuda<float, alloy::rule::AdamW, alloy::state::Int8Blockwise<>>(
      {1, 3, 4095, 4097, 70001, 1000003}, alloy::Rounding::nearest, 10, rel, differing, worst, h);
  INFO("relative error " << rel << ", differing " << differing);
  CHECK(rel < 1e-5);
}

TEST_CASE("spsa (CUDA): many tensors (>= 500), bf16 with stochastic rounding") {
  // bf16: the two executors draw the same rounding bits; a rounding decision differs only where
  // the fp32 values before it differ across a threshold (probability ~ (fp32 difference) /
  // bf16 ulp ~ 1e-5 per store), and then by one ulp of the value rounded, p + eps z (which may
  // persist): measured in ulps of max(|p|, eps).
  std::vector<std::size_t> sizes;
  std::mt19937_64 g(9);
  for (int i = 0; i < 520; ++i) sizes.push_back(1 + g() % 5000);
  double rel, differing, worst;
  host_vs_cuda<alloy::bf16>(sizes, alloy::Rounding::stochastic, 10, rel, differing, worst);
  INFO("relative error " << rel << ", differing " << differing << ", worst " << worst << " ulps");
  CHECK(differing < 1e-3);
  CHECK(worst <= 2.0);
}

TEST_CASE("spsa (CUDA): a whole step with device-side losses, captured in a graph") {
  const std::uint32_t n = 1003;
  std::vector<float> w0(n), t(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    w0[i] = 0.f;
    t[i] = float(std::sin(0.001 * double(i)));
  }
  DevBuf<float> wa(w0), wb(w0), target(t), losses(std::vector<float>(4, 0.f));
  float* lp = losses.d;
  float* lm = losses.d + 1;
  float* lp2 = losses.d + 2;
  float* lm2 = losses.d + 3;
  alloy::Options o;
  o.seed = 4;
  const alloy::rule::Sgd::Hyper h{4e-4f, 0.f, 0.f, 0.f, false, false};
  using Opt = ZoOpt<alloy::exec::Cuda>;
  Opt graphed({{TensorView::of(wa.d, n, Device::cuda(0), "w"), {}}}, h, o);
  Opt plain({{TensorView::of(wb.d, n, Device::cuda(0), "w"), {}}}, h, o);
  cudaStream_t s;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  Opt::ProjectedGradient ca, cb;
  ca.loss_plus = lp;
  ca.loss_minus = lm;
  cb.loss_plus = lp2;
  cb.loss_minus = lm2;
  graphed.perturb(s);
  plain.perturb(s);
  // One step: loss at p + eps z, flip, loss at p - eps z, update (+ next perturbation).
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
  quadratic_loss<<<1, 256, 0, s>>>(wa.d, target.d, n, lp);
  graphed.flip(s);
  quadratic_loss<<<1, 256, 0, s>>>(wa.d, target.d, n, lm);
  graphed.update(ca, s);
  REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
  REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  float first = 0, last = 0;
  for (int k = 0; k < 300; ++k) {
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    quadratic_loss<<<1, 256, 0, s>>>(wb.d, target.d, n, lp2);
    plain.flip(s);
    quadratic_loss<<<1, 256, 0, s>>>(wb.d, target.d, n, lm2);
    plain.update(cb, s);
    if (k == 0 || k == 299) {
      REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
      float l;
      REQUIRE(cudaMemcpy(&l, lp, 4, cudaMemcpyDeviceToHost) == cudaSuccess);
      (k == 0 ? first : last) = l;
    }
  }
  REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  CHECK(std::memcmp(wa.get().data(), wb.get().data(), n * 4) == 0);  // replay == direct calls
  CHECK(graphed.step_count(0) == 300);
  INFO("loss " << first << " -> " << last);
  // ZO-SGD on 0.5||w - t||^2: E[loss] shrinks by about (1 - lr (2 - lr (d + 2))) per step, here
  // exp(-0.19) over 300 steps.
  CHECK(last < 0.95f * first);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
}
