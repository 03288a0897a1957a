// Views of tensors the framework owns. alloy never allocates parameters or gradients.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "dtype.hpp"

// Same declaration as the CUDA runtime's, so host-only code can name a stream without CUDA.
struct CUstream_st;

ALLOY_NAMESPACE_BEGIN

/// A CUDA stream (cudaStream_t); nullptr is the legacy default stream.
using Stream = CUstream_st*;

struct Device {
  enum class Kind : std::uint8_t { host, cuda };
  Kind kind = Kind::host;
  int index = 0;  // CUDA device ordinal; 0 for the host

  static constexpr Device host() { return {Kind::host, 0}; }
  static constexpr Device cuda(int i = 0) { return {Kind::cuda, i}; }
  constexpr bool is_cuda() const { return kind == Kind::cuda; }
  friend constexpr bool operator==(Device a, Device b) {
    return a.kind == b.kind && a.index == b.index;
  }
};

inline std::string to_string(Device d) {
  return d.is_cuda() ? "cuda:" + std::to_string(d.index) : std::string("host");
}

/// A non-owning view: pointer, element count, dtype, device, optional shape and name.
/// `data == nullptr` means "no tensor" (used for an absent gradient).
struct TensorView {
  void* data = nullptr;
  std::uint64_t numel = 0;
  DType dtype = DType::f32;
  Device device = Device::host();
  std::vector<std::int64_t> shape;  // optional; if given, its product must equal numel
  std::string name;                 // optional; sets the stable RNG key and names errors

  TensorView() = default;
  TensorView(void* d, std::uint64_t n, DType t, Device dev = Device::host(), std::string nm = {},
             std::vector<std::int64_t> shp = {})
      : data(d), numel(n), dtype(t), device(dev), shape(std::move(shp)), name(std::move(nm)) {}

  template <class T>
  static TensorView of(T* d, std::uint64_t n, Device dev = Device::host(), std::string nm = {},
                       std::vector<std::int64_t> shp = {}) {
    return TensorView(const_cast<std::remove_const_t<T>*>(d), n,
                      dtype_of<std::remove_const_t<T>>::value, dev, std::move(nm), std::move(shp));
  }
  std::uint64_t bytes() const { return numel * dtype_size(dtype); }
};

/// One parameter with its gradient. `key` overrides the name-derived RNG key when set.
struct Param {
  TensorView param;
  TensorView grad;  // grad.data may be null: no gradient (skipped, as torch skips grad=None)
  std::optional<std::uint32_t> key = std::nullopt;
  /// share::PerBlock: elements per block of the shared second moment (consecutive elements; must
  /// divide numel); 0: the whole tensor is one block. share::adam_mini_partition computes it.
  std::uint64_t share_block = 0;
};

ALLOY_NAMESPACE_END
