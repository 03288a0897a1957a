// Where optimizer state comes from. A framework can pass its own allocator (for example its
// caching allocator), so that its memory statistics include alloy's state.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

#include "error.hpp"
#include "tensor.hpp"

ALLOY_NAMESPACE_BEGIN

/// Allocates optimizer state and metadata. Returned memory must be aligned to at least 256
/// bytes (what cudaMalloc gives), so vector accesses of state are always aligned.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(std::size_t bytes, Device where) = 0;
  virtual void deallocate(void* ptr, std::size_t bytes, Device where) noexcept = 0;
};

/// The host allocator: 256-byte-aligned operator new. Handles host placements only.
class HostAllocator final : public Allocator {
 public:
  static constexpr std::size_t kAlignment = 256;
  void* allocate(std::size_t bytes, Device where) override {
    if (where.is_cuda()) detail::fail("HostAllocator cannot allocate on ", to_string(where));
    return ::operator new (bytes ? bytes : 1, std::align_val_t{kAlignment});
  }
  void deallocate(void* ptr, std::size_t, Device) noexcept override {
    ::operator delete (ptr, std::align_val_t{kAlignment});
  }
};

namespace detail {
/// One allocation owned through an Allocator; remembers its size for exact accounting.
class Buffer {
 public:
  Buffer() = default;
  Buffer(std::shared_ptr<Allocator> a, std::size_t bytes, Device where)
      : alloc_(std::move(a)), bytes_(bytes), where_(where) {
    if (bytes_) ptr_ = alloc_->allocate(bytes_, where_);
  }
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release();
      alloc_ = std::move(o.alloc_);
      ptr_ = o.ptr_;
      bytes_ = o.bytes_;
      where_ = o.where_;
      o.ptr_ = nullptr;
      o.bytes_ = 0;
    }
    return *this;
  }
  ~Buffer() { release(); }
  void* get() const { return ptr_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return where_; }

 private:
  void release() noexcept {
    if (ptr_) alloc_->deallocate(ptr_, bytes_, where_);
    ptr_ = nullptr;
  }
  std::shared_ptr<Allocator> alloc_;
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  Device where_{};
};
}  // namespace detail

ALLOY_NAMESPACE_END
