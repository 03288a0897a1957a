// alloy's main demo: train a byte-level language model on real text with every optimizer
// composition alloy has, from the same initial weights, and show memory, speed and held-out loss
// side by side (a table on stdout, loss curves as CSV and as an SVG plot).
//
//   03_train_lm [--corpus PATH] [--steps N] [--compositions a,b,...] [--device auto|host|cuda]
//               [--out DIR] [--batch B] [--hidden H] [--seed S] [--help]
//
// The model: the previous 16 bytes, each embedded in 24 dimensions, concatenated, one tanh
// hidden layer (1,600 units by default) and a softmax over the next byte: 1.03 M parameters,
// almost all of them in two matrices (far above Int8Blockwise's 4,096-element threshold).
// Forward and backward are written out by hand below (no framework), on the host; built with
// CUDA (the CMake build does so when nvcc is found), the same model runs on a GPU with cuBLAS
// (examples/03_train_lm_gpu.cuh) and the optimizers on alloy's CUDA executor.
//
// First-order runs train from the same initial weights on the training split. The zeroth-order
// runs (MeZO = Sgd + Spsa, and ZO-Adam = AdamW + Spsa) fine-tune the AdamW/Fp32 result on a
// second, held-out split with the same number of forward passes each, and are scored like the
// others on the evaluation split, which no run trains on.
#include <alloy/alloy.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>  // isatty: a live progress line on a terminal, a few lines in a log

#ifdef ALLOY_DEMO_CUDA
#include "03_train_lm_gpu.cuh"
#endif

namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------------------------
// Command line

struct Config {
  std::string corpus = "/usr/share/games/fortunes";
  std::string out = "demo-out";
  std::string device = "auto";
  std::vector<std::string> compositions;  // empty: all
  int steps = 200;
  int batch = 24;
  int hidden = 1600;
  int context = 16;
  int embed = 24;
  int eval_windows = 256;
  int evals = 10;
  bool cosine = true;
  float zo_lr = 1e-4f;
  std::uint64_t seed = 1;
  bool int8_embeddings = false;
};

const char* kUsage =
    "usage: 03_train_lm [options]\n"
    "  --corpus PATH        a text file, or a directory of text files (default\n"
    "                       /usr/share/games/fortunes, Debian package fortunes-min)\n"
    "  --steps N            optimizer steps per composition (default 200)\n"
    "  --compositions LIST  comma-separated names (default: all); see below\n"
    "  --device D           auto (default: cuda when built with CUDA and a GPU is present,\n"
    "                       else host), host, or cuda\n"
    "  --out DIR            where to write losses.csv and losses.svg (default demo-out)\n"
    "  --batch B            sequences per step (default 24)\n"
    "  --hidden H           hidden units (default 1600: 1.03 M parameters)\n"
    "  --seed S             initial weights and batches (default 1)\n"
    "  --schedule S         first-order learning rate: cosine (default: decays to 0 over\n"
    "                       the run) or constant; zeroth-order runs keep theirs constant\n"
    "  --eval-windows N     held-out windows scored per evaluation (default 256)\n"
    "  --evals N            evaluations per run: points per curve (default 10)\n"
    "  --zo-lr X            learning rate of the zeroth-order runs (default 1e-4; SPSA's\n"
    "                       gradient noise grows with the parameter count: lower it for\n"
    "                       larger models)\n"
    "  --int8-embeddings    8-bit state for the embedding too (default: fp32 for it)\n"
    "compositions: adamw-fp32 adamw-bf16 adamw-int8 sgd-momentum adam-mini-fp32\n"
    "              adam-mini-bf16 adam-mini-int8 mezo zo-adam\n";

const std::vector<std::string> kAllCompositions = {
    "adamw-fp32",     "adamw-bf16",     "adamw-int8", "sgd-momentum", "adam-mini-fp32",
    "adam-mini-bf16", "adam-mini-int8", "mezo",       "zo-adam"};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "03_train_lm: %s\n", msg.c_str());
  std::exit(2);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}

Config parse(int argc, char** argv) {
  Config c;
  for (int a = 1; a < argc; ++a) {
    const std::string k = argv[a];
    const auto value = [&]() -> std::string {
      if (a + 1 >= argc) die(k + " needs a value (try --help)");
      return argv[++a];
    };
    const auto number = [&](const std::string& v) {
      try {
        std::size_t used = 0;
        const long long n = std::stoll(v, &used);
        if (used != v.size() || n <= 0) throw std::invalid_argument(v);
        return n;
      } catch (const std::exception&) {
        die(k + " needs a positive integer, got '" + v + "'");
      }
    };
    if (k == "--help" || k == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (k == "--corpus") c.corpus = value();
    else if (k == "--out") c.out = value();
    else if (k == "--device") c.device = value();
    else if (k == "--compositions") c.compositions = split(value());
    else if (k == "--steps") c.steps = int(number(value()));
    else if (k == "--batch") c.batch = int(number(value()));
    else if (k == "--hidden") c.hidden = int(number(value()));
    else if (k == "--seed") c.seed = std::uint64_t(number(value()));
    else if (k == "--eval-windows") c.eval_windows = int(number(value()));
    else if (k == "--evals") c.evals = int(number(value()));
    else if (k == "--zo-lr") {
      const std::string v = value();
      char* end = nullptr;
      c.zo_lr = std::strtof(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(c.zo_lr > 0.f))
        die("--zo-lr needs a positive number, got '" + v + "'");
    }
    else if (k == "--schedule") {
      const std::string v = value();
      if (v != "cosine" && v != "constant") die("--schedule " + v + ": use cosine or constant");
      c.cosine = v == "cosine";
    }
    else if (k == "--int8-embeddings") c.int8_embeddings = true;
    else die("unknown option '" + k + "' (try --help)");
  }
  if (c.device != "auto" && c.device != "host" && c.device != "cuda")
    die("--device " + c.device + ": use auto, host or cuda");
#ifdef ALLOY_DEMO_CUDA
  if (c.device == "auto") c.device = gpu::available() ? "cuda" : "host";
  if (c.device == "cuda" && !gpu::available()) die("--device cuda: no CUDA device is visible");
#else
  if (c.device == "cuda")
    die("--device cuda: this build has no CUDA (configure with nvcc present and ALLOY_CUDA not "
        "OFF, e.g. cmake --preset release)");
  c.device = "host";
#endif
  if (c.compositions.empty()) c.compositions = kAllCompositions;
  for (const auto& n : c.compositions)
    if (std::find(kAllCompositions.begin(), kAllCompositions.end(), n) == kAllCompositions.end())
      die("unknown composition '" + n + "' (try --help for the list)");
  return c;
}

// ---------------------------------------------------------------------------------------------
// Corpus: every regular text file under the path (fortune's .dat indexes skipped), in name
// order, cut into entries at lines holding a single "%" (fortune's separator; a plain text file
// is cut at blank lines), and the entries dealt 8 / 1 / 1 into training, fine-tuning and
// evaluation text, so that the three splits are samples of the same text.

struct Corpus {
  std::vector<std::uint8_t> train, tune, eval;
  std::size_t files = 0;
};

Corpus load_corpus(const std::string& path) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const auto& e : fs::recursive_directory_iterator(path, ec))
      if (e.is_regular_file() && e.path().extension() != ".dat" && e.path().extension() != ".u8")
        files.push_back(e.path());
    std::sort(files.begin(), files.end());
  } else if (fs::is_regular_file(path, ec)) {
    files.push_back(path);
  } else {
    die("corpus '" + path +
        "' does not exist (install Debian's fortunes-min, or pass --corpus with a text file)");
  }
  std::vector<std::uint8_t> all;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    all.insert(all.end(), std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    all.push_back('\n');
  }
  if (all.size() < 20000)
    die("corpus '" + path + "' has only " + std::to_string(all.size()) +
        " bytes; the demo needs at least 20,000");
  Corpus c;
  c.files = files.size();
  std::vector<std::uint8_t>* split[10] = {&c.train, &c.train, &c.train, &c.train, &c.train,
                                          &c.train, &c.train, &c.train, &c.tune,  &c.eval};
  std::size_t entry = 0, begin = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const bool eol = all[i] == '\n';
    const bool sep = eol && i + 2 < all.size() &&
                     ((all[i + 1] == '%' && all[i + 2] == '\n') || all[i + 1] == '\n');
    if (sep || i + 1 == all.size()) {
      auto& dst = *split[entry++ % 10];
      dst.insert(dst.end(), all.begin() + long(begin), all.begin() + long(i + 1));
      begin = i + 1;
    }
  }
  if (c.tune.size() < 2000 || c.eval.size() < 2000)
    die("corpus '" + path + "' has too few entries to split (" + std::to_string(entry) + ")");
  return c;
}

// ---------------------------------------------------------------------------------------------
// The model: byte MLP language model, fp32, row-major matrices (out, in).

struct Model {
  using Exec = alloy::exec::Host;
  int C, E, H;
  static constexpr int V = 256;
  // Parameters and their gradients, as named tensors (Llama-style names, so that Adam-mini's
  // partition helper assigns rows to the matrices and elementwise blocks to the biases).
  struct Tensor {
    std::string name;
    std::vector<std::int64_t> shape;
    std::vector<float> w, g;
  };
  std::vector<Tensor> t;  // embed, W1, b1, W2, b2
  Tensor& emb() { return t[0]; }
  Tensor& w1() { return t[1]; }
  Tensor& b1() { return t[2]; }
  Tensor& w2() { return t[3]; }
  Tensor& b2() { return t[4]; }

  Model(int context, int embed, int hidden, std::uint64_t seed) : C(context), E(embed), H(hidden) {
    const auto make = [](std::string n, std::vector<std::int64_t> s) {
      std::int64_t k = 1;
      for (auto d : s) k *= d;
      return Tensor{std::move(n), std::move(s), std::vector<float>(std::size_t(k)),
                    std::vector<float>(std::size_t(k))};
    };
    t.push_back(make("model.embed_tokens.weight", {V, E}));
    t.push_back(make("model.mlp.up_proj.weight", {H, C * E}));
    t.push_back(make("model.mlp.up_proj.bias", {H}));
    t.push_back(make("lm_head.weight", {V, H}));
    t.push_back(make("lm_head.bias", {V}));
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& x : emb().w) x = 0.5f * nd(rng);
    for (auto& x : w1().w) x = nd(rng) / std::sqrt(float(C * E));
    for (auto& x : w2().w) x = nd(rng) / std::sqrt(float(H));
  }
  std::size_t params() const {
    std::size_t n = 0;
    for (const auto& x : t) n += x.w.size();
    return n;
  }
  void sync() const {}

  /// Mean cross-entropy (nats per byte) of predicting text[s + C] from text[s .. s + C) for
  /// every start s in `starts`; with `grad`, accumulates the gradient of that mean into g.
  /// Work is split over threads by sequence; gradients are summed in a fixed order.
  double loss(const std::vector<std::uint8_t>& text, const std::vector<std::size_t>& starts,
              bool grad, unsigned threads) {
    const int B = int(starts.size()), D = C * E;
    const std::size_t nb = starts.size(), nd = std::size_t(D), nh = std::size_t(H);
    std::vector<double> losses(nb);
    if (grad)
      for (auto& x : t) std::fill(x.g.begin(), x.g.end(), 0.f);
    const auto work = [&](unsigned th, std::vector<Tensor>* grads) {
      std::vector<float> x(nd), h(nh), logits(V), dh(nh), dx(nd);
      for (int b = int(th); b < B; b += int(threads)) {
        const std::size_t s = starts[std::size_t(b)];
        for (int c = 0; c < C; ++c)
          std::memcpy(&x[std::size_t(c * E)], &emb().w[std::size_t(text[s + std::size_t(c)]) * E],
                      sizeof(float) * std::size_t(E));
        for (int j = 0; j < H; ++j) {
          const float* row = &w1().w[std::size_t(j) * std::size_t(D)];
          float a = b1().w[std::size_t(j)];
          for (int i = 0; i < D; ++i) a += row[i] * x[std::size_t(i)];
          h[std::size_t(j)] = std::tanh(a);
        }
        float mx = -1e30f;
        for (int v = 0; v < V; ++v) {
          const float* row = &w2().w[std::size_t(v) * std::size_t(H)];
          float a = b2().w[std::size_t(v)];
          for (int j = 0; j < H; ++j) a += row[j] * h[std::size_t(j)];
          logits[std::size_t(v)] = a;
          mx = std::max(mx, a);
        }
        double z = 0;
        for (int v = 0; v < V; ++v) z += std::exp(double(logits[std::size_t(v)] - mx));
        const int target = text[s + std::size_t(C)];
        losses[std::size_t(b)] = std::log(z) + mx - logits[std::size_t(target)];
        if (!grads) continue;
        // Backward: dlogits = softmax - onehot, scaled by 1/B.
        std::vector<Tensor>& G = *grads;
        std::fill(dh.begin(), dh.end(), 0.f);
        for (int v = 0; v < V; ++v) {
          float d = float(std::exp(double(logits[std::size_t(v)] - mx)) / z);
          if (v == target) d -= 1.f;
          d /= float(B);
          G[4].w[std::size_t(v)] += d;
          float* grow = &G[3].w[std::size_t(v) * std::size_t(H)];
          const float* row = &w2().w[std::size_t(v) * std::size_t(H)];
          for (int j = 0; j < H; ++j) {
            grow[j] += d * h[std::size_t(j)];
            dh[std::size_t(j)] += d * row[j];
          }
        }
        std::fill(dx.begin(), dx.end(), 0.f);
        for (int j = 0; j < H; ++j) {
          const float da = dh[std::size_t(j)] * (1.f - h[std::size_t(j)] * h[std::size_t(j)]);
          G[2].w[std::size_t(j)] += da;
          float* grow = &G[1].w[std::size_t(j) * std::size_t(D)];
          const float* row = &w1().w[std::size_t(j) * std::size_t(D)];
          for (int i = 0; i < D; ++i) {
            grow[i] += da * x[std::size_t(i)];
            dx[std::size_t(i)] += da * row[i];
          }
        }
        for (int c = 0; c < C; ++c) {
          float* e = &G[0].w[std::size_t(text[s + std::size_t(c)]) * std::size_t(E)];
          for (int k = 0; k < E; ++k) e[k] += dx[std::size_t(c * E + k)];
        }
      }
    };
    std::vector<std::vector<Tensor>> grads(threads);
    if (grad)
      for (auto& g : grads)
        for (const auto& x : t)
          g.push_back(Tensor{x.name, x.shape, std::vector<float>(x.w.size()), {}});
    std::vector<std::thread> pool;
    for (unsigned th = 1; th < threads; ++th)
      pool.emplace_back(work, th, grad ? &grads[th] : nullptr);
    work(0, grad ? &grads[0] : nullptr);
    for (auto& p : pool) p.join();
    if (grad)
      for (unsigned th = 0; th < threads; ++th)  // fixed order: thread 0, 1, ...
        for (std::size_t k = 0; k < t.size(); ++k)
          for (std::size_t i = 0; i < t[k].g.size(); ++i) t[k].g[i] += grads[th][k].w[i];
    double sum = 0;
    for (double l : losses) sum += l;
    return sum / B;
  }
};

// ---------------------------------------------------------------------------------------------
// One run of one composition.

struct Curve {
  std::vector<int> step;
  std::vector<double> train, eval;
};
struct Result {
  std::string name, kind;  // kind: "first-order" or "zeroth-order (fine-tune)"
  std::size_t state_bytes = 0, memory_bytes = 0;
  double opt_ms = 0, step_ms = 0, final_eval = 0, best_eval = 1e30;
  Curve curve;
};

/// The model's tensors as alloy parameters (host vectors, or device buffers of the GPU model).
template <class M>
std::vector<alloy::Param> params_of(M& m, bool grads, bool blocks) {
  const alloy::share::AdamMiniConfig cfg{};  // no query/key matrices in this model
  std::vector<alloy::Param> ps;
  for (auto& x : m.t) {
    float *w = nullptr, *g = nullptr;
    std::size_t n = 0;
    alloy::Device dev = alloy::Device::host();
    if constexpr (std::is_same_v<M, Model>) {
      w = x.w.data(), g = x.g.data(), n = x.w.size();
    } else {
      w = x.w->p, g = x.g->p, n = x.n, dev = alloy::Device::cuda(0);
    }
    alloy::Param p{alloy::TensorView::of(w, n, dev, x.name, x.shape),
                   grads ? alloy::TensorView::of(g, n, dev) : alloy::TensorView{}};
    if (blocks)
      p.share_block = alloy::share::adam_mini_partition(x.name, x.shape, cfg).spec.block_size;
    ps.push_back(p);
  }
  return ps;
}

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

/// Windows of the evaluation split scored after every `every` steps (the same for every run).
std::vector<std::size_t> fixed_starts(const std::vector<std::uint8_t>& text, int n, int C,
                                      std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> u(0, text.size() - std::size_t(C) - 1);
  std::vector<std::size_t> s(static_cast<std::size_t>(n));
  for (auto& x : s) x = u(rng);
  return s;
}

template <class M, class Opt, class StepFn>
Result train(const std::string& name, M& model, Opt& opt, const Config& cfg,
             const std::vector<std::uint8_t>& text, const std::vector<std::uint8_t>& eval_text,
             const std::vector<std::size_t>& eval_starts, unsigned threads, StepFn&& one_step,
             bool zeroth_order) {
  Result r;
  r.name = name;
  r.kind = zeroth_order ? "zeroth-order" : "first-order";
  r.state_bytes = opt.state_bytes();
  std::size_t acts =
      std::size_t(cfg.batch) * std::size_t(model.C * model.E + 2 * model.H + 256) * 4;
  r.memory_bytes = model.params() * 4 * (zeroth_order ? 1 : 2) + r.state_bytes + acts;
  std::mt19937_64 rng(cfg.seed * 7919 + 17);
  std::uniform_int_distribution<std::size_t> u(0, text.size() - std::size_t(model.C) - 1);
  const int every = std::max(1, cfg.steps / std::min(cfg.evals, cfg.steps));
  // First-order runs decay the learning rate along a cosine to 0 at the last step (--schedule).
  std::vector<float> lr0;
  for (std::size_t g = 0; g < opt.num_groups(); ++g) lr0.push_back(opt.hyper(g).lr);
  double opt_ms = 0, step_ms = 0;
  for (int s = 1; s <= cfg.steps; ++s) {
    std::vector<std::size_t> starts(std::size_t(cfg.batch));
    for (auto& x : starts) x = u(rng);
    if (!zeroth_order && cfg.cosine)
      for (std::size_t g = 0; g < lr0.size(); ++g)
        opt.set_lr(g, float(0.5 * lr0[g] * (1 + std::cos(3.14159265358979 * (s - 1) / cfg.steps))));
    const auto t0 = Clock::now();
    double o = 0;
    const double loss = one_step(starts, o);
    step_ms += ms_since(t0);
    opt_ms += o;
    if (s % every == 0 || s == cfg.steps) {
      if constexpr (Opt::kZerothOrder)
        if (opt.is_perturbed()) opt.restore();  // score the weights, not the perturbed ones
      const double ev = model.loss(eval_text, eval_starts, false, threads);
      r.curve.step.push_back(s);
      r.curve.train.push_back(loss);
      r.curve.eval.push_back(ev);
      r.best_eval = std::min(r.best_eval, ev);
      r.final_eval = ev;
      static const bool tty = isatty(fileno(stdout));
      if (tty || s % std::max(1, cfg.steps / 4) < every || s == cfg.steps) {
        std::printf("%s  %-15s step %4d/%d  train %.3f  held-out %.3f", tty ? "\r" : "",
                    name.c_str(), s, cfg.steps, loss, ev);
        if (!tty && s != cfg.steps) std::printf("\n");
        std::fflush(stdout);
      }
    }
  }
  std::printf("\n");
  r.opt_ms = opt_ms / cfg.steps;
  r.step_ms = step_ms / cfg.steps;
  return r;
}

/// One first-order step: forward and backward on the batch, then the optimizer (timed alone).
template <class M, class Opt>
auto backprop_step(M& m, Opt& opt, const std::vector<std::uint8_t>& text, unsigned threads) {
  return [&m, &opt, &text, threads](const std::vector<std::size_t>& starts, double& opt_ms) {
    const double l = m.loss(text, starts, true, threads);
    const auto t0 = Clock::now();
    opt.step();
    m.sync();
    opt_ms = ms_since(t0);
    return l;
  };
}

template <class State, class Share, class M>
Result first_order(const std::string& name, const M& init, const Config& cfg, const Corpus& corpus,
                   const std::vector<std::size_t>& eval_starts, unsigned threads,
                   M* keep = nullptr) {
  M m = init;
  alloy::Options o;
  o.no_decay = std::vector<std::string>{"norm", "ln", "bias"};
  o.host_threads = threads;
  // 8-bit state: the embedding keeps fp32 state (bitsandbytes' advice). Its rows for rare bytes
  // get gradients seldom, and their second moments round to zero in 8-bit blocks shared with
  // frequent bytes' rows; --int8-embeddings shows what that costs.
  if (!cfg.int8_embeddings) o.fp32_state_names = {"embed"};
  const bool blocks = Share::kSharesSecondMoment;
  alloy::Optimizer<alloy::rule::AdamW, State, Share, alloy::grad::Backprop, typename M::Exec> opt(
      params_of(m, true, blocks), {2e-3f, 0.9f, 0.999f, 1e-8f, 0.01f}, o);
  Result r = train(name, m, opt, cfg, corpus.train, corpus.eval, eval_starts, threads,
                   backprop_step(m, opt, corpus.train, threads), false);
  if (keep) *keep = m;
  return r;
}

template <class M>
Result sgd_momentum(const M& init, const Config& cfg, const Corpus& corpus,
                    const std::vector<std::size_t>& eval_starts, unsigned threads) {
  M m = init;
  alloy::Options o;
  o.host_threads = threads;
  alloy::Optimizer<alloy::rule::Sgd, alloy::state::Fp32, alloy::share::PerParameter,
                   alloy::grad::Backprop, typename M::Exec>
      opt(params_of(m, true, false), {0.03f, 0.9f, 0.f, 0.f}, o);
  return train("sgd-momentum", m, opt, cfg, corpus.train, corpus.eval, eval_starts, threads,
               backprop_step(m, opt, corpus.train, threads), false);
}

/// Fine-tunes `start` on the tuning split with forward passes only (two per step).
template <class Rule, class M>
Result zeroth_order(const std::string& name, const M& start, const typename Rule::Hyper& h,
                    const Config& cfg, const Corpus& corpus,
                    const std::vector<std::size_t>& eval_starts, unsigned threads) {
  M m = start;
  alloy::Options o;
  o.host_threads = threads;
  o.seed = cfg.seed;
  o.zo_eps = 1e-3f;
  alloy::Optimizer<Rule, alloy::state::Fp32, alloy::share::PerParameter, alloy::grad::Spsa<>,
                   typename M::Exec>
      opt(params_of(m, false, false), h, o);
  return train(
      name, m, opt, cfg, corpus.tune, corpus.eval, eval_starts, threads,
      [&](const std::vector<std::size_t>& starts, double& opt_ms) {
        const auto t0 = Clock::now();
        double model_ms = 0;
        const float l = opt.step([&] {
          const auto f0 = Clock::now();
          const double v = m.loss(corpus.tune, starts, false, threads);
          model_ms += ms_since(f0);
          return float(v);
        });
        opt_ms = ms_since(t0) - model_ms;
        return double(l);
      },
      true);
}

// ---------------------------------------------------------------------------------------------
// Output: table, CSV, SVG.

std::string mib(std::size_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f", double(b) / (1 << 20));
  return s;
}

void write_csv(const std::string& path, const std::vector<Result>& rs) {
  std::ofstream f(path);
  f << "composition,kind,step,train_loss,heldout_loss\n";
  for (const auto& r : rs)
    for (std::size_t i = 0; i < r.curve.step.size(); ++i)
      f << r.name << ',' << r.kind << ',' << r.curve.step[i] << ',' << r.curve.train[i] << ','
        << r.curve.eval[i] << '\n';
}

void write_svg(const std::string& path, const std::vector<Result>& rs, const std::string& title) {
  const double W = 820, Hh = 480, L = 70, R = 220, T = 40, Bm = 50;
  double lo = 1e30, hi = -1e30;
  int smax = 1;
  for (const auto& r : rs)
    for (std::size_t i = 0; i < r.curve.step.size(); ++i) {
      lo = std::min(lo, r.curve.eval[i]);
      hi = std::max(hi, r.curve.eval[i]);
      smax = std::max(smax, r.curve.step[i]);
    }
  if (hi <= lo) hi = lo + 1;
  const auto X = [&](double s) { return L + (W - L - R) * s / smax; };
  const auto Y = [&](double v) { return T + (Hh - T - Bm) * (hi - v) / (hi - lo); };
  const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  std::ofstream f(path);
  f << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << Hh
    << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' "
       "fill='white'/>\n";
  f << "<text x='" << L << "' y='24' font-size='14'>" << title << "</text>\n";
  f << "<line x1='" << L << "' y1='" << Hh - Bm << "' x2='" << W - R << "' y2='" << Hh - Bm
    << "' stroke='black'/><line x1='" << L << "' y1='" << T << "' x2='" << L << "' y2='" << Hh - Bm
    << "' stroke='black'/>\n";
  for (int k = 0; k <= 4; ++k) {
    const double v = lo + (hi - lo) * k / 4;
    f << "<text x='" << L - 8 << "' y='" << Y(v) + 4 << "' text-anchor='end'>" << std::fixed;
    f.precision(2);
    f << v << "</text>\n";
  }
  for (int k = 0; k <= 4; ++k)
    f << "<text x='" << X(smax * k / 4.0) << "' y='" << Hh - Bm + 16 << "' text-anchor='middle'>"
      << smax * k / 4 << "</text>\n";
  f << "<text x='" << (L + W - R) / 2 << "' y='" << Hh - 12
    << "' text-anchor='middle'>optimizer step (zeroth-order runs: fine-tuning steps from "
       "adamw-fp32's end)</text>\n";
  f << "<text transform='translate(16," << (T + Hh - Bm) / 2
    << ") rotate(-90)' text-anchor='middle'>held-out loss (nats/byte)</text>\n";
  for (std::size_t i = 0; i < rs.size(); ++i) {
    const auto& r = rs[i];
    f << "<polyline fill='none' stroke-width='2' stroke='" << colors[i % 10] << "'"
      << (r.kind == "zeroth-order" ? " stroke-dasharray='6 3'" : "") << " points='";
    for (std::size_t j = 0; j < r.curve.step.size(); ++j)
      f << X(r.curve.step[j]) << ',' << Y(r.curve.eval[j]) << ' ';
    f << "'/>\n<text x='" << W - R + 10 << "' y='" << T + 18 * double(i) + 10 << "' fill='"
      << colors[i % 10] << "'>" << r.name << "</text>\n";
  }
  f << "</svg>\n";
}

}  // namespace

/// Every composition of cfg on model M (host Model or the GPU model), from the same `init`.
template <class M>
std::vector<Result> run_compositions(const M& init, const Config& cfg, const Corpus& corpus,
                                     const std::vector<std::size_t>& eval_starts, unsigned threads,
                                     double& start_eval) {
  const auto want = [&](const std::string& n) {
    return std::find(cfg.compositions.begin(), cfg.compositions.end(), n) != cfg.compositions.end();
  };
  using alloy::share::PerBlock;
  using alloy::share::PerParameter;
  namespace st = alloy::state;
  std::vector<Result> results;
  M adamw_end = init;
  bool have_adamw = false;
  const bool need_adamw = want("adamw-fp32") || want("mezo") || want("zo-adam");
  if (need_adamw) {
    results.push_back(first_order<st::Fp32, PerParameter>("adamw-fp32", init, cfg, corpus,
                                                          eval_starts, threads, &adamw_end));
    have_adamw = true;
    if (!want("adamw-fp32")) results.pop_back();
  }
  if (want("adamw-bf16"))
    results.push_back(first_order<st::Bf16<>, PerParameter>("adamw-bf16", init, cfg, corpus,
                                                            eval_starts, threads));
  if (want("adamw-int8"))
    results.push_back(first_order<st::Int8Blockwise<>, PerParameter>("adamw-int8", init, cfg,
                                                                     corpus, eval_starts, threads));
  if (want("sgd-momentum"))
    results.push_back(sgd_momentum(init, cfg, corpus, eval_starts, threads));
  if (want("adam-mini-fp32"))
    results.push_back(
        first_order<st::Fp32, PerBlock>("adam-mini-fp32", init, cfg, corpus, eval_starts, threads));
  if (want("adam-mini-bf16"))
    results.push_back(first_order<st::Bf16<>, PerBlock>("adam-mini-bf16", init, cfg, corpus,
                                                        eval_starts, threads));
  if (want("adam-mini-int8"))
    results.push_back(first_order<st::Int8Blockwise<>, PerBlock>("adam-mini-int8", init, cfg,
                                                                 corpus, eval_starts, threads));
  if (have_adamw) start_eval = adamw_end.loss(corpus.eval, eval_starts, false, threads);
  if (want("mezo"))
    results.push_back(zeroth_order<alloy::rule::Sgd>("mezo", adamw_end, {cfg.zo_lr, 0.f, 0.f, 0.f}, cfg,
                                                     corpus, eval_starts, threads));
  if (want("zo-adam"))
    results.push_back(zeroth_order<alloy::rule::AdamW>("zo-adam", adamw_end,
                                                       {cfg.zo_lr, 0.9f, 0.999f, 1e-8f, 0.f}, cfg,
                                                       corpus, eval_starts, threads));

  return results;
}

int main(int argc, char** argv) {
  const Config cfg = parse(argc, argv);
  const Corpus corpus = load_corpus(cfg.corpus);
  const unsigned threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  const Model init(cfg.context, cfg.embed, cfg.hidden, cfg.seed);
  std::printf(
      "alloy %s demo: byte-level MLP language model, %zu parameters (%d hidden), %d "
      "steps per composition, batch %d, %s\n",
      ALLOY_VERSION_STRING, init.params(), cfg.hidden, cfg.steps, cfg.batch,
      cfg.device == "cuda" ? "CUDA (cuBLAS model, alloy's CUDA executor)"
                           : ("host executor, " + std::to_string(threads) + " threads").c_str());
  std::printf(
      "corpus %s: %zu files, %zu / %zu / %zu bytes (train / fine-tune / held-out "
      "entries, dealt 8 / 1 / 1)\n",
      cfg.corpus.c_str(), corpus.files, corpus.train.size(), corpus.tune.size(),
      corpus.eval.size());
  const auto eval_starts = fixed_starts(corpus.eval, cfg.eval_windows, cfg.context, cfg.seed + 99);
  const auto t_all = Clock::now();
  double start_eval = 0;
  std::vector<Result> results;
#ifdef ALLOY_DEMO_CUDA
  if (cfg.device == "cuda")
    results =
        run_compositions(gpu::Model<Model>(init), cfg, corpus, eval_starts, threads, start_eval);
  else
#endif
    results = run_compositions(init, cfg, corpus, eval_starts, threads, start_eval);

  // The table.
  std::printf("\n%-15s %-13s %10s %12s %10s %10s %10s %10s\n", "composition", "kind", "state MiB",
              "memory MiB", "opt ms", "step ms", "final", "best");
  for (const auto& r : results)
    std::printf("%-15s %-13s %10s %12s %10.2f %10.1f %10.4f %10.4f\n", r.name.c_str(),
                r.kind.c_str(), mib(r.state_bytes).c_str(), mib(r.memory_bytes).c_str(), r.opt_ms,
                r.step_ms, r.final_eval, r.best_eval);
  std::printf(
      "(state: optimizer state bytes; memory: parameters, gradients (first-order), state "
      "and activations; final/best: held-out loss in nats/byte; zeroth-order runs start "
      "from adamw-fp32's end, held-out loss %.4f, and fine-tune on a separate split)\n",
      start_eval);

  std::error_code ec;
  fs::create_directories(cfg.out, ec);
  if (ec) die("cannot create --out directory '" + cfg.out + "': " + ec.message());
  write_csv(cfg.out + "/losses.csv", results);
  write_svg(cfg.out + "/losses.svg", results,
            "alloy demo: held-out loss per composition (" + std::to_string(init.params()) +
                " parameters)");
  const auto best = std::min_element(results.begin(), results.end(), [](auto& a, auto& b) {
    return a.kind == b.kind ? a.best_eval < b.best_eval : a.kind < b.kind;
  });
  std::printf(
      "done: %zu compositions in %.0f s; best first-order held-out loss %.4f (%s); curves "
      "in %s/losses.csv and %s/losses.svg\n",
      results.size(), ms_since(t_all) / 1000, best->best_eval, best->name.c_str(), cfg.out.c_str(),
      cfg.out.c_str());
  return 0;
}
