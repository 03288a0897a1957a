// Test problems shared by the host and CUDA tests: tensors of given sizes and dtypes with fresh
// random values, gradients regenerated every step, and a run of alloy beside the float64
// reference of tests/common/reference.hpp.
#pragma once

#include <alloy/alloy.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "reference.hpp"

namespace testing {

using alloy::DType;

/// Host bytes of one tensor in its dtype.
struct HostTensor {
  DType dtype = DType::f32;
  std::vector<std::uint8_t> bytes;
  std::uint64_t numel = 0;

  HostTensor() = default;
  HostTensor(DType t, std::uint64_t n) : dtype(t), bytes(n * alloy::dtype_size(t)), numel(n) {}
  void* data() { return bytes.data(); }

  double get(std::uint64_t i) const {
    if (dtype == DType::f32) {
      float f;
      std::memcpy(&f, &bytes[i * 4], 4);
      return f;
    }
    std::uint16_t h;
    std::memcpy(&h, &bytes[i * 2], 2);
    return dtype == DType::bf16 ? alloy::to_float(alloy::bf16{h}) : alloy::to_float(alloy::fp16{h});
  }
  /// Stores v, which must be representable in the dtype (round it with ref::store first).
  void set(std::uint64_t i, double v) {
    const float f = float(v);
    if (dtype == DType::f32) {
      std::memcpy(&bytes[i * 4], &f, 4);
      return;
    }
    const std::uint16_t h =
        dtype == DType::bf16 ? alloy::to_bf16_nearest(f).bits : alloy::to_fp16_nearest(f).bits;
    std::memcpy(&bytes[i * 2], &h, 2);
  }
  std::vector<double> values() const {
    std::vector<double> v(numel);
    for (std::uint64_t i = 0; i < numel; ++i) v[i] = get(i);
    return v;
  }
};

inline ref::Store nearest_store(DType t) {
  return t == DType::f32    ? ref::Store::f32
         : t == DType::bf16 ? ref::Store::bf16_nearest
                            : ref::Store::f16_nearest;
}

/// Fills t with N(0, scale^2) values, rounded to nearest in its dtype. Never zeros.
inline void fill_normal(HostTensor& t, std::mt19937_64& rng, double scale) {
  std::normal_distribution<double> nd(0.0, scale);
  for (std::uint64_t i = 0; i < t.numel; ++i) {
    double v = 0;
    while (v == 0) v = ref::store(nd(rng), nearest_store(t.dtype), 0);
    t.set(i, v);
  }
}

/// Parameters and gradients of a list of tensors.
struct Problem {
  std::vector<std::uint64_t> sizes;
  DType pdt, gdt;
  std::vector<HostTensor> p, g;
  std::uint64_t seed;

  Problem(std::vector<std::uint64_t> s, DType pt, DType gt, std::uint64_t sd)
      : sizes(std::move(s)), pdt(pt), gdt(gt), seed(sd) {
    std::mt19937_64 rng(seed);
    for (auto n : sizes) {
      p.emplace_back(pdt, n);
      g.emplace_back(gdt, n);
      fill_normal(p.back(), rng, 1.0);
    }
  }
  /// Fresh gradients for step `step` (deterministic in seed and step).
  void make_grads(int step, double scale = 1.0) {
    std::mt19937_64 rng(seed * 1000003u + std::uint64_t(step));
    for (auto& t : g) fill_normal(t, rng, scale);
  }
  std::string name(std::size_t i) const {
    std::string n = "t";  // not "t" + to_string(i): gcc 12 -Wrestrict false positive (PR105329)
    return n += std::to_string(i);
  }
};

/// Rounding words of element i of a tensor with key `key` in global step `step`, as
/// docs/policies/rounding.md defines them: with moments rounded stochastically, Philox output i
/// (word 0 the parameter, 1 and 2 the moments); otherwise the parameter's 16 bits are half i % 2
/// of word (i % 8) / 2 of output i / 8.
inline auto rounding_words(std::uint64_t seed, std::uint32_t step, std::uint32_t key,
                           bool random_moments) {
  return [=](std::uint64_t i) {
    const auto s = alloy::exec::rounding_stream(seed, step, key);
    if (random_moments) {
      const auto r = s.at(i);
      return ref::Words{{r.v[0], r.v[1], r.v[2], r.v[3]}};
    }
    const auto r = s.at(i / 8);
    return ref::Words{{(r.v[(i % 8) / 2] >> (16 * (i % 2))) & 0xffffu, 0, 0, 0}};
  };
}

/// The float64 reference run of a problem: state per tensor.
template <class RefHyper>
struct Reference {
  RefHyper hyper;
  ref::Store pstore, sstore;
  std::uint64_t seed;
  std::vector<std::vector<double>> p, m, v;
  std::vector<int> t;

  Reference(const Problem& prob, RefHyper h, ref::Store ps, ref::Store ss, std::uint64_t sd)
      : hyper(h), pstore(ps), sstore(ss), seed(sd) {
    for (const auto& x : prob.p) {
      p.push_back(x.values());
      m.emplace_back(x.numel, 0.0);
      v.emplace_back(x.numel, 0.0);
      t.push_back(0);
    }
  }
  /// One step of tensor i (its own step count advances), with global step `gstep`.
  void step(const Problem& prob, std::size_t i, std::uint32_t gstep, std::uint32_t key,
            ref::Scales* scale = nullptr) {
    ++t[i];
    ref::step(hyper, t[i], p[i], m[i], v[i], prob.g[i].values(), pstore, sstore,
              rounding_words(seed, gstep, key, sstore == ref::Store::bf16_stochastic), scale);
  }
};

}  // namespace testing
