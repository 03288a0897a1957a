// Test memory policy for the CUDA executor: each host tensor of a Problem gets a device twin.
#pragma once

#include <alloy/alloy.cuh>

#include <map>

#include "../common/problem.hpp"

namespace testing {

#define CUDA_OK(expr) REQUIRE((expr) == cudaSuccess)

struct CudaMemory {
  static constexpr alloy::Device device = alloy::Device::cuda(0);
  std::map<const void*, void*> twin;  // host data -> device buffer
  cudaStream_t stream = nullptr;

  CudaMemory() = default;
  CudaMemory(const CudaMemory&) = delete;
  ~CudaMemory() {
    for (auto& [h, d] : twin) cudaFree(d);
  }
  void* device_of(HostTensor& t) {
    auto it = twin.find(t.data());
    if (it != twin.end()) return it->second;
    void* d = nullptr;
    CUDA_OK(cudaMalloc(&d, t.bytes.size()));
    CUDA_OK(cudaMemcpy(d, t.data(), t.bytes.size(), cudaMemcpyHostToDevice));
    twin[t.data()] = d;
    return d;
  }
  alloy::TensorView view(HostTensor& t, std::string name) {
    return alloy::TensorView(device_of(t), t.numel, t.dtype, device, std::move(name));
  }
  void upload(HostTensor& t) {
    CUDA_OK(cudaMemcpy(device_of(t), t.data(), t.bytes.size(), cudaMemcpyHostToDevice));
  }
  void download(HostTensor& t) {
    CUDA_OK(cudaMemcpy(t.data(), device_of(t), t.bytes.size(), cudaMemcpyDeviceToHost));
  }
  void sync() { CUDA_OK(cudaDeviceSynchronize()); }
};

}  // namespace testing
