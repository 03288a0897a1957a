// CUDA tests: they report themselves skipped (exit code 77, CTest SKIP_RETURN_CODE) on a
// machine without a CUDA device; they never pass silently there.
#define DOCTEST_CONFIG_IMPLEMENT
#include <cuda_runtime.h>
#include <doctest/doctest.h>

#include <cstdio>

int main(int argc, char** argv) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    std::printf("SKIPPED: no CUDA device (%s)\n",
                e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 77;
  }
  cudaDeviceProp p{};
  cudaGetDeviceProperties(&p, 0);
  std::printf("CUDA device 0: %s (sm_%d%d, %d SMs)\n", p.name, p.major, p.minor,
              p.multiProcessorCount);
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
