// Steps an AdamW optimizer once over a few floats through alloy's public header, checks the
// result against AdamW's first-step formula, and prints alloy's version for the test driver.
#include <alloy/alloy.hpp>

#include <cmath>
#include <cstdio>
#include <string_view>

// The version string and the numeric macros come from one header; hold them to each other.
constexpr bool version_string_matches() {
  constexpr int parts[3] = {ALLOY_VERSION_MAJOR, ALLOY_VERSION_MINOR, ALLOY_VERSION_PATCH};
  std::string_view s = ALLOY_VERSION_STRING;
  for (int k = 0; k < 3; ++k) {
    int v = 0;
    std::size_t i = 0;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) v = v * 10 + (s[i] - '0');
    if (i == 0 || v != parts[k]) return false;
    s.remove_prefix(i);
    if (k < 2) {
      if (s.empty() || s[0] != '.') return false;
      s.remove_prefix(1);
    }
  }
  return s.empty();
}
static_assert(version_string_matches(), "ALLOY_VERSION_STRING disagrees with ALLOY_VERSION_*");

int main() {
  constexpr int kN = 5;
  float p[kN] = {1.0f, -2.0f, 0.5f, 3.0f, -0.25f};
  float g[kN] = {0.3f, -0.1f, 2.0f, -4.0f, 0.05f};
  float before[kN];
  for (int i = 0; i < kN; ++i) before[i] = p[i];

  alloy::rule::AdamW::Hyper h;
  h.lr = 0.01f;
  h.weight_decay = 0.1f;
  alloy::Optimizer<alloy::rule::AdamW> opt(
      {alloy::Param{alloy::TensorView::of(p, kN, alloy::Device::host(), "p"),
                    alloy::TensorView::of(g, kN)}},
      h);
  opt.step();

  // Step 1 of AdamW: m_hat = g and v_hat = g^2, so p1 = p0 (1 - lr wd) - lr g / (|g| + eps').
  int bad = 0;
  for (int i = 0; i < kN; ++i) {
    const double want = double(before[i]) * (1.0 - double(h.lr) * double(h.weight_decay)) -
                        double(h.lr) * (g[i] > 0 ? 1.0 : -1.0);
    if (p[i] == before[i] || std::fabs(p[i] - want) > 1e-5 * std::fabs(want) + 1e-6) {
      std::printf("element %d: %.9g -> %.9g, expected %.9g\n", i, before[i], p[i], want);
      ++bad;
    }
  }
  // Fp32 AdamW: two fp32 moments per element, plus one 4-byte step count per tensor.
  const std::size_t want_state = kN * 8 + 4;
  if (opt.state_bytes() != want_state) {
    std::printf("state_bytes() = %zu, expected %zu\n", opt.state_bytes(), want_state);
    ++bad;
  }
  std::printf("alloy version: %s\n", ALLOY_VERSION_STRING);
  return bad == 0 ? 0 : 1;
}
