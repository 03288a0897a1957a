// The exhaustive proof run behind fp::Fast's division (core/fpmath.hpp): all 2^23 x 2^23 pairs of
// significands (a, b in [1, 2)) against __fdiv_rn, the reciprocal's scaling over the domain's
// exponents, signs and zeros, and the square root over its whole domain (fast_math_check.cuh
// says why significands suffice). Not a CTest test: about a minute on an H100. Prints progress
// and a summary; exit status 0 when nothing differs.
//
//   alloy_verify_fast_math [first_b last_b]   (significand range of b, default all)
#include <cstdio>
#include <cstdlib>

#include "fast_math_check.cuh"

int main(int argc, char** argv) {
  std::uint32_t first = 0, last = (1u << 23) - 1;
  if (argc == 3) {
    first = std::uint32_t(std::strtoul(argv[1], nullptr, 0));
    last = std::uint32_t(std::strtoul(argv[2], nullptr, 0));
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("verify_fast_math: no CUDA device\n");
    return 77;
  }
  int failures = 0;
  const auto show = [&](const char* what, const fast_check::Result& r, unsigned long long want) {
    const bool ok = r.bad == 0 && r.checked == want;
    failures += !ok;
    std::printf("%-58s checked %llu (expected %llu), mismatches %llu%s", what, r.checked, want,
                r.bad, ok ? "\n" : "");
    if (!ok) std::printf(", first a 0x%08x b 0x%08x\n", r.first_a, r.first_b);
  };
  cudaEvent_t t0, t1;
  cudaEventCreate(&t0);
  cudaEventCreate(&t1);
  cudaEventRecord(t0);

  auto* d = fast_check::new_result();
  fast_check::sqrt_range<<<4096, 256>>>(0x0d800000u, 0x71800000u, d);
  show("sqrt(v), v in [2^-100, 2^100]", fast_check::take(d), 0x71800000ull - 0x0d800000ull + 1);
  d = fast_check::new_result();
  fast_check::rcp_scales<<<1024, 256>>>(d);
  show("rcp(b 2^k) == rcp(b) 2^-k, every b significand, k in [-62, 61]", fast_check::take(d),
       (1ull << 23) * 124);
  d = fast_check::new_result();
  fast_check::div_signs<<<1024, 256>>>(d);
  show("div(-a, b) == -div(a, b); div(+-0, b) == +-0", fast_check::take(d), (1ull << 23) * 3);

  // All significand pairs, in slices of 2^16 divisors with progress.
  fast_check::Result total{0, 0, 0xffffffffu, 0xffffffffu};
  const std::uint32_t slice = 1u << 16;
  for (std::uint64_t b = first; b <= last; b += slice) {
    const std::uint32_t n = std::uint32_t(b + slice - 1 <= last ? slice : last - b + 1);
    d = fast_check::new_result();
    fast_check::div_significands<<<n, 256>>>(nullptr, std::uint32_t(b), d);
    const fast_check::Result r = fast_check::take(d);
    if (cudaGetLastError() != cudaSuccess) {
      std::printf("verify_fast_math: CUDA error\n");
      return 1;
    }
    total.checked += r.checked;
    total.bad += r.bad;
    if (r.bad && total.first_b == 0xffffffffu) {
      total.first_a = r.first_a;
      total.first_b = r.first_b;
    }
    if (((b - first) / slice) % 16 == 15 || b + slice > last)
      std::printf("  div: divisors up to 0x%06x done, %llu pairs, %llu mismatches\n",
                  std::uint32_t(b + n - 1), total.checked, total.bad);
    std::fflush(stdout);
  }
  show("div(a, b) == __fdiv_rn(a, b), every significand pair", total,
       (std::uint64_t(last) - first + 1) << 23);
  cudaEventRecord(t1);
  cudaEventSynchronize(t1);
  float ms = 0;
  cudaEventElapsedTime(&ms, t0, t1);
  std::printf("verify_fast_math: %s in %.1f s\n", failures ? "FAILED" : "all equal", ms / 1000);
  return failures ? 1 : 0;
}
