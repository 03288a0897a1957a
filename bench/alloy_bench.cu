// alloy_bench: copy bandwidth and alloy's rows of the benchmark (BENCHMARKS.md), as JSON.
//
//   alloy_bench --workloads bench/workloads.json --out alloy.json
//               [--steps 25] [--select flat,llama1b] [--dtypes fp32,bf16] [--no-zo]
//               [--only TEXT] [--two-pass] [--serial] [--stochastic]
//
// Every row is timed as the anchors are: refill the gradients with fresh random data, sync,
// event, step(), event, sync; the first step is reported apart (ms_first); then --steps timed
// steps, median/min/max. `alloy_graph` rows replay a captured step instead of calling step().
#include <alloy/alloy.cuh>

#include "timing.cuh"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

// ---- a minimal JSON reader for bench/workloads.json (objects, arrays, strings, integers) ----
struct Json {
  enum Kind { object, array, string, number } kind = number;
  std::map<std::string, Json> obj;
  std::vector<Json> arr;
  std::string str;
  long long num = 0;
};
struct Reader {
  const std::string& s;
  std::size_t i = 0;
  void ws() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  Json value() {
    ws();
    Json j;
    if (s[i] == '{') {
      j.kind = Json::object;
      ++i;
      for (ws(); s[i] != '}'; ws()) {
        std::string k = value().str;
        ws();
        ++i;  // ':'
        j.obj[k] = value();
        ws();
        if (s[i] == ',') ++i;
      }
      ++i;
    } else if (s[i] == '[') {
      j.kind = Json::array;
      ++i;
      for (ws(); s[i] != ']'; ws()) {
        j.arr.push_back(value());
        ws();
        if (s[i] == ',') ++i;
      }
      ++i;
    } else if (s[i] == '"') {
      j.kind = Json::string;
      for (++i; s[i] != '"'; ++i) j.str += s[i];
      ++i;
    } else {
      std::size_t n = 0;
      j.num = std::stoll(s.substr(i), &n);
      i += n;
    }
    return j;
  }
};

struct Workload {
  std::string name;
  std::vector<std::string> names;
  std::vector<std::vector<std::int64_t>> shapes;
  std::vector<std::uint64_t> sizes;
  std::uint64_t params = 0;
  alloy::share::AdamMiniConfig model;  // "model" facts (dim, heads) for Adam-mini's partition
};

std::vector<Workload> read_workloads(const std::string& path,
                                     const std::vector<std::string>& select) {
  std::ifstream f(path);
  if (!f) {
    std::fprintf(stderr, "cannot open %s\n", path.c_str());
    std::exit(2);
  }
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  Reader r{text};
  const Json root = r.value();
  std::vector<Workload> out;
  for (const auto& name : select) {
    auto it = root.obj.find(name);
    if (it == root.obj.end()) {
      std::fprintf(stderr, "unknown workload '%s' in %s\n", name.c_str(), path.c_str());
      std::exit(2);
    }
    Workload w{name, {}, {}, {}, 0, {}};
    if (auto m = it->second.obj.find("model"); m != it->second.obj.end()) {
      w.model.dim = m->second.obj.at("dim").num;
      w.model.n_heads = m->second.obj.at("n_heads").num;
      w.model.n_kv_heads = m->second.obj.at("n_kv_heads").num;
    }
    const Json& shapes = it->second.obj.at("shapes");
    const Json& names = it->second.obj.at("names");
    for (std::size_t k = 0; k < shapes.arr.size(); ++k) {
      std::uint64_t n = 1;
      std::vector<std::int64_t> shape;
      for (const auto& d : shapes.arr[k].arr) {
        n *= std::uint64_t(d.num);
        shape.push_back(d.num);
      }
      w.shapes.push_back(shape);
      w.sizes.push_back(n);
      w.names.push_back(names.arr[k].str);
      w.params += n;
    }
    out.push_back(std::move(w));
  }
  return out;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) v.push_back(x);
  return v;
}

// ---- device data ----
template <class T>
__global__ void fill_random(T* x, std::uint64_t n, std::uint32_t seed, float scale) {
  for (std::uint64_t i = blockIdx.x * std::uint64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::uint64_t(gridDim.x) * blockDim.x) {
    const auto r =
        alloy::philox4x32_10({{std::uint32_t(i), std::uint32_t(i >> 32), seed, 7}}, 0x1234u, seed);
    float v = (float(r.v[0] >> 8) * (1.f / 16777216.f) - 0.5f) * 2.f * scale;
    if (v == 0.f) v = scale * 1e-3f;  // never zeros
    if constexpr (sizeof(T) == 4) x[i] = v;
    else x[i] = alloy::to_bf16_nearest(v);
  }
}

/// Parameters and gradients of a workload: one allocation each, tensors at 256-byte-aligned
/// offsets (as a framework's allocator places them).
struct Buffers {
  void* p = nullptr;
  void* g = nullptr;
  std::vector<std::uint64_t> offset;
  std::uint64_t total = 0;
  std::size_t esize;
  Buffers(const Workload& w, std::size_t es) : esize(es) {
    const std::uint64_t align = 256 / es;
    for (auto n : w.sizes) {
      offset.push_back(total);
      total += (n + align - 1) / align * align;
    }
    CK(cudaMalloc(&p, total * es));
    CK(cudaMalloc(&g, total * es));
  }
  ~Buffers() {
    cudaFree(p);
    cudaFree(g);
  }
  template <class T>
  void fill(bool grads, std::uint32_t seed, float scale) {
    fill_random<T><<<1024, 256>>>(static_cast<T*>(grads ? g : p), total, seed, scale);
    CK(cudaGetLastError());
  }
};

using timing::copy_bandwidth_gbs;
using timing::median;

struct Row {
  std::string impl, composition, workload, dtype;
  std::uint64_t params, tensors;
  double ms_median, ms_min, ms_max, ms_first, bytes_per_param, fraction_of_copy,
      state_bytes_per_param;
  std::vector<double> ms_steps;  // every timed step in order (the optimizer's age matters)
  std::string error;
};

/// Times `steps` calls of step_fn after one untimed-as-median first call (reported as ms_first):
/// before each, `refill` (not timed) and a device synchronization; events around the call.
Row time_row(const std::function<void()>& refill, const std::function<void()>& step_fn,
             cudaStream_t s, int steps, const Workload& w, const char* dt, const std::string& impl,
             const std::string& comp, double bytes_per_param, double state_bytes, double copy_gbs) {
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<double> ms;
  double first = 0;
  for (int k = 0; k <= steps; ++k) {
    refill();
    CK(cudaDeviceSynchronize());
    CK(cudaEventRecord(e0, s));
    step_fn();
    CK(cudaEventRecord(e1, s));
    CK(cudaEventSynchronize(e1));
    float t;
    CK(cudaEventElapsedTime(&t, e0, e1));
    if (k == 0) first = t;
    else ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  Row r;
  r.impl = impl;
  r.composition = comp;
  r.workload = w.name;
  r.dtype = dt;
  r.params = w.params;
  r.tensors = w.sizes.size();
  r.ms_median = median(ms);
  r.ms_min = *std::min_element(ms.begin(), ms.end());
  r.ms_max = *std::max_element(ms.begin(), ms.end());
  r.ms_first = first;
  r.ms_steps = ms;
  r.bytes_per_param = bytes_per_param;
  r.fraction_of_copy = bytes_per_param * double(w.params) / (r.ms_median * 1e-3) / (copy_gbs * 1e9);
  r.state_bytes_per_param = state_bytes / double(w.params);
  std::fprintf(stderr, "[alloy_bench]   %-12s median %.3f ms  (%.3f of copy)\n", impl.c_str(),
               r.ms_median, r.fraction_of_copy);
  return r;
}

/// Captures `enqueue` on stream s into a CUDA graph and hands `time` a function that replays it.
template <class Enqueue, class Time>
void time_graph(cudaStream_t s, Enqueue&& enqueue, Time&& time) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  enqueue();
  CK(cudaStreamEndCapture(s, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  time([&] { CK(cudaGraphLaunch(exec, s)); });
  CK(cudaStreamSynchronize(s));
  CK(cudaGetLastError());
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

/// --only: run the compositions whose name contains this text (all when empty).
std::string g_only;
/// --two-pass: PerBlock rows turn Options::cuda_per_block_one_pass off (rows named alloy_2pass:
/// a statistics pass, then the update, for every sharing block).
bool g_one_pass = true;
/// --serial: PerBlock rows turn Options::cuda_side_stream off (every one-pass launch on the
/// timed stream, one after another; rows named alloy_serial).
bool g_side_stream = true;
/// --stochastic: rows with bf16 parameters round them stochastically (Options::param_rounding;
/// rows named alloy_sr). fp32 rows are unchanged.
bool g_stochastic = false;

template <class Rule, class State, class T, class Share>
void bench_composition(const Workload& w, const typename Rule::Hyper& h, int steps, double copy_gbs,
                       double bytes_per_param, const std::string& comp, std::vector<Row>& rows);

/// Times one composition on one workload and dtype (and its graph replay).
template <class Rule, class State, class T, class Share = alloy::share::PerParameter>
void bench(const Workload& w, const typename Rule::Hyper& h, int steps, double copy_gbs,
           double bytes_per_param, const std::string& comp, std::vector<Row>& rows) {
#ifdef ALLOY_BENCH_BLOCK_FORMATS_ONLY  // bench/tune.sh: compile (and time) only 8-bit rows
  if constexpr (State::kElementwise) return;
  else
#endif
    bench_composition<Rule, State, T, Share>(w, h, steps, copy_gbs, bytes_per_param, comp, rows);
}

template <class Rule, class State, class T, class Share>
void bench_composition(const Workload& w, const typename Rule::Hyper& h, int steps, double copy_gbs,
                       double bytes_per_param, const std::string& comp, std::vector<Row>& rows) {
  if (comp.find(g_only) == std::string::npos) return;
  const char* dt = sizeof(T) == 4 ? "fp32" : "bf16";
  std::fprintf(stderr, "[alloy_bench] %s %s %s ...\n", comp.c_str(), w.name.c_str(), dt);
  Buffers buf(w, sizeof(T));
  buf.template fill<T>(false, 1, 1.0f);
  std::vector<alloy::Param> ps;
  for (std::size_t k = 0; k < w.sizes.size(); ++k) {
    ps.push_back({alloy::TensorView::of(static_cast<T*>(buf.p) + buf.offset[k], w.sizes[k],
                                        alloy::Device::cuda(0), w.names[k]),
                  alloy::TensorView::of(static_cast<T*>(buf.g) + buf.offset[k], w.sizes[k],
                                        alloy::Device::cuda(0), w.names[k] + ".grad")});
    if constexpr (Share::kSharesSecondMoment)
      ps.back().share_block =
          alloy::share::adam_mini_partition(w.names[k], w.shapes[k], w.model).spec.block_size;
  }
  alloy::Options o;
  std::string impl = "alloy";
  if constexpr (Share::kSharesSecondMoment) {
    o.no_decay = std::vector<std::string>{"norm", "ln", "bias"};  // the official mask
    o.cuda_per_block_one_pass = g_one_pass;
    if (!g_one_pass) impl = "alloy_2pass";
    o.cuda_side_stream = g_side_stream;
    if (!g_side_stream) impl += "_serial";
  }
  if (g_stochastic && sizeof(T) == 2) {
    o.param_rounding = alloy::Rounding::stochastic;
    impl = "alloy_sr";
  }
  alloy::cuda::Optimizer<Rule, State, Share> opt(ps, h, o);
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  std::uint32_t fills = 0;  // fresh gradients before every step
  auto refill = [&] { buf.template fill<T>(true, 100 + fills++, 1e-2f); };
  auto time_steps = [&](const std::function<void()>& step_fn, const std::string& impl) {
    rows.push_back(time_row(refill, step_fn, s, steps, w, dt, impl, comp, bytes_per_param,
                            double(opt.state_bytes()), copy_gbs));
  };
  time_steps([&] { opt.step(s); }, impl);

  time_graph(
      s, [&] { opt.step(s); },
      [&](const std::function<void()>& f) { time_steps(f, impl + "_graph"); });
  cudaStreamDestroy(s);
}

/// The parameter passes of one fused zeroth-order step (Sgd + Spsa, MeZO): flip, then restore +
/// update + next perturbation; the caller's two forward passes are not part of it.
template <class T>
void bench_zo(const Workload& w, int steps, double copy_gbs, std::vector<Row>& rows) {
  const char* dt = sizeof(T) == 4 ? "fp32" : "bf16";
  const std::string comp = "Sgd/Fp32/PerParameter/Spsa";
  if (comp.find(g_only) == std::string::npos) return;
  std::fprintf(stderr, "[alloy_bench] %s %s %s ...\n", comp.c_str(), w.name.c_str(), dt);
  Buffers buf(w, sizeof(T));
  buf.template fill<T>(false, 1, 1.0f);
  std::vector<alloy::Param> ps;
  for (std::size_t k = 0; k < w.sizes.size(); ++k)
    ps.push_back({alloy::TensorView::of(static_cast<T*>(buf.p) + buf.offset[k], w.sizes[k],
                                        alloy::Device::cuda(0), w.names[k]),
                  {}});
  alloy::Options o;
  o.seed = 17;
  if (sizeof(T) == 2)
    o.param_rounding = alloy::Rounding::stochastic;  // the default advice for bf16
  using Opt = alloy::Optimizer<alloy::rule::Sgd, alloy::state::Fp32, alloy::share::PerParameter,
                               alloy::grad::Spsa<>, alloy::exec::Cuda>;
  Opt opt(ps, {1e-6f, 0.f, 0.f, 0.f, false, false}, o);
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  float* c_dev;
  CK(cudaMalloc(&c_dev, sizeof(float)));
  const float c_host = 0.37f;
  CK(cudaMemcpy(c_dev, &c_host, sizeof(float), cudaMemcpyHostToDevice));
  opt.perturb(s);  // the first step's perturbation (later ones are folded into the update)
  typename Opt::ProjectedGradient pg;
  pg.c = c_dev;
  // 4 bytes per fp32 parameter read and written per pass (2 per bf16), two passes.
  const double bytes_per_param = 4.0 * sizeof(T);
  auto time_steps = [&](const std::function<void()>& step_fn, const std::string& impl) {
    rows.push_back(time_row([] {}, step_fn, s, steps, w, dt, impl, comp, bytes_per_param,
                            double(opt.state_bytes()), copy_gbs));
  };
  time_steps(
      [&] {
        opt.flip(s);
        opt.update(pg, s, true);
      },
      "alloy");
  time_graph(
      s,
      [&] {
        opt.flip(s);
        opt.update(pg, s, true);
      },
      [&](const std::function<void()>& f) { time_steps(f, "alloy_graph"); });
  cudaFree(c_dev);
  cudaStreamDestroy(s);
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) o += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  std::string workloads_path = "bench/workloads.json", out_path = "alloy.json";
  std::vector<std::string> select = {"flat", "llama1b"}, dtypes = {"fp32", "bf16"};
  int steps = 25;
  bool zo = true;
  for (int a = 1; a < argc; ++a) {
    const std::string k = argv[a];
    auto next = [&]() -> std::string {
      if (a + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++a];
    };
    if (k == "--workloads") workloads_path = next();
    else if (k == "--out") out_path = next();
    else if (k == "--steps") steps = std::stoi(next());
    else if (k == "--select") select = split(next());
    else if (k == "--dtypes") dtypes = split(next());
    else if (k == "--no-zo") zo = false;
    else if (k == "--only") g_only = next();
    else if (k == "--two-pass") g_one_pass = false;
    else if (k == "--serial") g_side_stream = false;
    else if (k == "--stochastic") g_stochastic = true;
    else if (k == "--help" || k == "-h") {
      std::printf(
          "usage: alloy_bench --workloads FILE --out FILE [--steps N] [--select a,b] [--dtypes "
          "fp32,bf16] [--no-zo] [--only TEXT] [--two-pass] [--serial] [--stochastic]\n");
      return 0;
    } else {
      std::fprintf(stderr, "unknown argument %s (try --help)\n", k.c_str());
      return 2;
    }
  }
  const auto workloads = read_workloads(workloads_path, select);
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  const double copy_gbs = copy_bandwidth_gbs();
  std::fprintf(stderr, "[alloy_bench] %s, copy bandwidth %.1f GB/s\n", prop.name, copy_gbs);

  const alloy::rule::AdamW::Hyper adam{1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, false};
  const alloy::rule::Sgd::Hyper sgd{1e-3f, 0.9f, 0.0f, 0.0f, false, false};
  std::vector<Row> rows;
  // Fewest bytes per step: read p, g and K moments, write p and K moments.
  auto floor_bytes = [](double P, double G, int K, double S) { return 2 * P + G + 2 * K * S; };
  for (const auto& w : workloads)
    for (const auto& dt : dtypes) {
      if (dt == "fp32") {
        bench<alloy::rule::AdamW, alloy::state::Fp32, float>(
            w, adam, steps, copy_gbs, floor_bytes(4, 4, 2, 4), "AdamW/Fp32/PerParameter/Backprop",
            rows);
        bench<alloy::rule::AdamW, alloy::state::Bf16<>, float>(
            w, adam, steps, copy_gbs, floor_bytes(4, 4, 2, 2), "AdamW/Bf16/PerParameter/Backprop",
            rows);
        bench<alloy::rule::AdamW, alloy::state::Int8Blockwise<>, float>(
            w, adam, steps, copy_gbs, floor_bytes(4, 4, 2, 1),
            "AdamW/Int8Blockwise/PerParameter/Backprop", rows);
        bench<alloy::rule::Sgd, alloy::state::Fp32, float>(w, sgd, steps, copy_gbs,
                                                           floor_bytes(4, 4, 1, 4),
                                                           "Sgd/Fp32/PerParameter/Backprop", rows);
        if (w.name == "llama1b") {  // Adam-mini: m per element (K = 1 at the floor)
          bench<alloy::rule::AdamW, alloy::state::Fp32, float, alloy::share::PerBlock>(
              w, adam, steps, copy_gbs, floor_bytes(4, 4, 1, 4), "AdamW/Fp32/PerBlock/Backprop",
              rows);
          bench<alloy::rule::AdamW, alloy::state::Int8Blockwise<>, float, alloy::share::PerBlock>(
              w, adam, steps, copy_gbs, floor_bytes(4, 4, 1, 1),
              "AdamW/Int8Blockwise/PerBlock/Backprop", rows);
        }
#ifndef ALLOY_BENCH_BLOCK_FORMATS_ONLY
        if (zo) bench_zo<float>(w, steps, copy_gbs, rows);
#endif
      } else if (dt == "bf16") {
        bench<alloy::rule::AdamW, alloy::state::Fp32, alloy::bf16>(
            w, adam, steps, copy_gbs, floor_bytes(2, 2, 2, 4), "AdamW/Fp32/PerParameter/Backprop",
            rows);
        bench<alloy::rule::AdamW, alloy::state::Bf16<>, alloy::bf16>(
            w, adam, steps, copy_gbs, floor_bytes(2, 2, 2, 2), "AdamW/Bf16/PerParameter/Backprop",
            rows);
        bench<alloy::rule::AdamW, alloy::state::Int8Blockwise<>, alloy::bf16>(
            w, adam, steps, copy_gbs, floor_bytes(2, 2, 2, 1),
            "AdamW/Int8Blockwise/PerParameter/Backprop", rows);
        bench<alloy::rule::Sgd, alloy::state::Fp32, alloy::bf16>(
            w, sgd, steps, copy_gbs, floor_bytes(2, 2, 1, 4), "Sgd/Fp32/PerParameter/Backprop",
            rows);
        if (w.name == "llama1b") {
          bench<alloy::rule::AdamW, alloy::state::Bf16<>, alloy::bf16, alloy::share::PerBlock>(
              w, adam, steps, copy_gbs, floor_bytes(2, 2, 1, 2), "AdamW/Bf16/PerBlock/Backprop",
              rows);
          bench<alloy::rule::AdamW, alloy::state::Int8Blockwise<>, alloy::bf16,
                alloy::share::PerBlock>(w, adam, steps, copy_gbs, floor_bytes(2, 2, 1, 1),
                                        "AdamW/Int8Blockwise/PerBlock/Backprop", rows);
        }
#ifndef ALLOY_BENCH_BLOCK_FORMATS_ONLY
        if (zo) bench_zo<alloy::bf16>(w, steps, copy_gbs, rows);
#endif
      } else {
        std::fprintf(stderr, "unknown dtype %s\n", dt.c_str());
        return 2;
      }
    }

  std::ofstream out(out_path);
  out << "{\n  \"device\": \"" << json_escape(prop.name) << "\",\n  \"driver\": \"" << driver / 1000
      << "." << (driver % 1000) / 10 << "\",\n  \"cuda\": \"" << runtime / 1000 << "."
      << (runtime % 1000) / 10 << "\",\n  \"sm_count\": " << prop.multiProcessorCount
      << ",\n  \"copy_gbs\": " << copy_gbs << ",\n  \"rows\": [\n";
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const Row& r = rows[k];
    out << "    {\"impl\": \"" << r.impl << "\", \"composition\": \"" << r.composition
        << "\", \"workload\": \"" << r.workload << "\", \"dtype\": \"" << r.dtype
        << "\", \"params\": " << r.params << ", \"tensors\": " << r.tensors
        << ", \"ms_median\": " << r.ms_median << ", \"ms_min\": " << r.ms_min
        << ", \"ms_max\": " << r.ms_max << ", \"ms_first\": " << r.ms_first
        << ", \"bytes_per_param\": " << r.bytes_per_param
        << ", \"fraction_of_copy\": " << r.fraction_of_copy
        << ", \"state_bytes_per_param\": " << r.state_bytes_per_param << ", \"ms_steps\": [";
    for (std::size_t i = 0; i < r.ms_steps.size(); ++i) out << (i ? ", " : "") << r.ms_steps[i];
    out << "]}" << (k + 1 < rows.size() ? "," : "") << "\n";
  }
  out << "  ]\n}\n";
  std::fprintf(stderr, "[alloy_bench] wrote %zu rows to %s\n", rows.size(), out_path.c_str());
  return 0;
}
