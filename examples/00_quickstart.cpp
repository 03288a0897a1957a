// 00_quickstart: compose an optimizer and train a least-squares model on the host executor.
//
//   y = X w*  (+ noise); minimize 0.5 * mean((X w - y)^2) over w with AdamW, 8 bytes of state
//   per parameter (Fp32), then the same with Bf16 state (4 bytes per parameter).
#include <alloy/alloy.hpp>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

template <class State>
double train(const char* label) {
  constexpr int kRows = 512, kDim = 256, kSteps = 300;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> X(kRows * kDim), w_true(kDim), y(kRows);
  for (auto& x : X) x = nd(rng);
  for (auto& x : w_true) x = nd(rng);
  for (int r = 0; r < kRows; ++r) {
    double s = 0;
    for (int c = 0; c < kDim; ++c) s += X[r * kDim + c] * w_true[c];
    y[r] = float(s + 0.01 * nd(rng));
  }

  std::vector<float> w(kDim, 0.f), grad(kDim);
  // The framework owns parameters and gradients; alloy gets views and owns only its state.
  alloy::Optimizer<alloy::rule::AdamW, State> opt(
      {alloy::Param{alloy::TensorView::of(w.data(), w.size(), alloy::Device::host(), "w"),
                    alloy::TensorView::of(grad.data(), grad.size())}},
      {.lr = 0.05f, .weight_decay = 0.0f});

  double loss = 0;
  for (int step = 1; step <= kSteps; ++step) {
    // Forward and backward by hand: residual r = X w - y, grad = X^T r / rows.
    std::vector<double> res(kRows);
    loss = 0;
    for (int r = 0; r < kRows; ++r) {
      double s = -y[r];
      for (int c = 0; c < kDim; ++c) s += X[r * kDim + c] * w[c];
      res[r] = s;
      loss += 0.5 * s * s / kRows;
    }
    for (int c = 0; c < kDim; ++c) {
      double s = 0;
      for (int r = 0; r < kRows; ++r) s += X[r * kDim + c] * res[r];
      grad[c] = float(s / kRows);
    }
    opt.step();
    if (step % 100 == 0) std::printf("  %-12s step %4d  loss %.6f\n", label, step, loss);
  }
  std::printf("%-12s final loss %.6f, optimizer state %zu bytes (%.2f per parameter)\n", label,
              loss, opt.state_bytes(), double(opt.state_bytes()) / kDim);
  return loss;
}

int main() {
  train<alloy::state::Fp32>("AdamW/Fp32");
  train<alloy::state::Bf16<>>("AdamW/Bf16");
  return 0;
}
