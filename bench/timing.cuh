// What the benchmark tools share: the CUDA error check, the median, and the copy bandwidth that
// every fraction of copy is measured against (BENCHMARKS.md: cudaMemcpyAsync device to device of
// 4 GiB, median of 20, read plus written bytes).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(expr)                                                                             \
  do {                                                                                       \
    cudaError_t e_ = (expr);                                                                 \
    if (e_ != cudaSuccess) {                                                                 \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, \
                   __LINE__, #expr);                                                         \
      std::exit(1);                                                                          \
    }                                                                                        \
  } while (0)

namespace timing {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

/// Milliseconds of each of `runs` calls of f on the legacy default stream, events around each
/// call, waiting for each before the next.
template <class F>
std::vector<double> time_each_ms(int runs, F&& f) {
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    CK(cudaEventRecord(e0));
    f();
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float t;
    CK(cudaEventElapsedTime(&t, e0, e1));
    ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return ms;
}

/// Copy bandwidth in GB/s: cudaMemcpyAsync of 4 GiB device to device (after one warm-up copy),
/// median of 20, bytes read plus bytes written.
inline double copy_bandwidth_gbs() {
  const std::size_t bytes = std::size_t(4) << 30;
  void *a, *b;
  CK(cudaMalloc(&a, bytes));
  CK(cudaMalloc(&b, bytes));
  CK(cudaMemset(a, 1, bytes));
  CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
  const double ms =
      median(time_each_ms(20, [&] { CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice)); }));
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) / (ms * 1e-3) / 1e9;
}

}  // namespace timing
