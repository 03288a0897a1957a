// What only the GPU shows: CUDA equals the host executor bit for bit (the numerics contract:
// uncontracted, correctly rounded fp32 ops on both), independent of grid size and tensor order;
// every element written and nothing outside touched; unaligned tensors; many tensors; graph
// capture and replay with a changing learning rate; non-default streams.
#include "twins.hpp"

TEST_CASE("CUDA equals the host executor bit for bit: every rule, format, dtype pair") {
  const alloy::rule::AdamW::Hyper adam{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
  const alloy::rule::Sgd::Hyper sgd{0.01f, 0.9f, 0.1f, 0.1f, false, false};
  cuda_equals_host<alloy::rule::AdamW, alloy::state::Fp32>(adam);
  cuda_equals_host<alloy::rule::AdamW, alloy::state::Bf16<>>(adam);
  cuda_equals_host<alloy::rule::AdamW, alloy::state::Bf16<Rounding::stochastic>>(adam);
  cuda_equals_host<alloy::rule::Sgd, alloy::state::Fp32>(sgd);
  cuda_equals_host<alloy::rule::Sgd, alloy::state::Bf16<Rounding::stochastic>>(sgd);
}

TEST_CASE("CUDA results do not depend on grid size or tensor order") {
  const alloy::rule::AdamW::Hyper h{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
  using F = alloy::state::Bf16<Rounding::stochastic>;
  for (unsigned blocks : {1u, 7u, 1000u, 0u}) {
    Options o;
    o.seed = 3;
    o.param_rounding = Rounding::stochastic;
    o.cuda_blocks = blocks;
    INFO("blocks " << blocks);
    Twins<alloy::rule::AdamW, F> tw(kMixed, DType::bf16, DType::bf16, h, o);
    if (blocks) CHECK(tw.cuda->backend().grid_sizes() == std::vector<unsigned>{blocks});
    for (int s = 0; s < 5; ++s) tw.step(1e-2);
    tw.check_equal();
  }
  Options o;
  o.seed = 3;
  o.param_rounding = Rounding::stochastic;
  Twins<alloy::rule::AdamW, F> tw(kMixed, DType::bf16, DType::bf16, h, o, {}, {}, /*reverse=*/true);
  for (int s = 0; s < 5; ++s) tw.step(1e-2);
  tw.check_equal(/*reverse=*/true);
}

TEST_CASE("unaligned tensors: every element written, nothing outside touched") {
  const alloy::rule::AdamW::Hyper h{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
  // Parameters and gradients misaligned by different element counts (and some aligned).
  for (DType dt : {DType::f32, DType::bf16}) {
    Options o;
    INFO(alloy::dtype_name(dt));
    Twins<alloy::rule::AdamW, alloy::state::Fp32> tw(kMixed, dt, dt, h, o, {1, 2, 3, 0, 5},
                                                     {3, 0, 1, 7});
    for (int s = 0; s < 4; ++s) tw.step(1e-2);
    tw.check_equal();
  }
}

TEST_CASE("state: every element written, nothing outside its allocation touched") {
  auto guarded = std::make_shared<GuardedAllocator>();
  {
    Options o;
    o.allocator = guarded;
    const alloy::rule::AdamW::Hyper h{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
    Twins<alloy::rule::AdamW, alloy::state::Bf16<>> tw(kMixed, DType::bf16, DType::bf16, h, o);
    for (int s = 0; s < 4; ++s) tw.step(1e-2);
    tw.check_equal();  // moments equal to the host's: every state element was written
    CHECK(guarded->guards_intact());
    CHECK(guarded->live_blocks() > 2 * kMixed.size());  // moments, tables
  }
  CHECK(guarded->live_blocks() == 0);  // everything returned to the allocator
}

TEST_CASE("many tensors (>= 500, mixed sizes and dtypes, two groups)") {
  std::mt19937_64 rng(11);
  std::vector<std::uint64_t> a, b;
  for (int i = 0; i < 300; ++i) a.push_back(1 + rng() % 70000);
  for (int i = 0; i < 260; ++i) b.push_back(1 + rng() % 9000);
  Arena p32(DType::f32, a, {0, 1}), g32(DType::f32, a, {}), p16(DType::bf16, b, {0, 3}),
      g16(DType::bf16, b, {});
  p32.fill(rng, 1.0);
  p16.fill(rng, 1.0);
  p32.upload();
  p16.upload();
  using Opt = alloy::rule::AdamW;
  auto groups = [&](bool dev) {
    std::vector<alloy::Param> ga, gb;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const std::string n = "a" + std::to_string(i);
      ga.push_back({dev ? p32.dev_view(i, n) : p32.host_view(i, n),
                    dev ? g32.dev_view(i, n) : g32.host_view(i, n)});
    }
    for (std::size_t i = 0; i < b.size(); ++i) {
      const std::string n = "b" + std::to_string(i);
      gb.push_back({dev ? p16.dev_view(i, n) : p16.host_view(i, n),
                    dev ? g16.dev_view(i, n) : g16.host_view(i, n)});
    }
    return std::make_pair(ga, gb);
  };
  Options o;
  o.param_rounding = Rounding::stochastic;
  auto [ha, hb] = groups(false);
  auto [da, db] = groups(true);
  alloy::Optimizer<Opt, alloy::state::Fp32> host({{ha, {0.01f, 0.9f, 0.99f, 1e-3f, 0.1f}, "fp32"},
                                                  {hb, {0.03f, 0.8f, 0.95f, 1e-3f, 0.0f}, "bf16"}},
                                                 o);
  alloy::cuda::Optimizer<Opt, alloy::state::Fp32> cuda(
      {{da, {0.01f, 0.9f, 0.99f, 1e-3f, 0.1f}, "fp32"},
       {db, {0.03f, 0.8f, 0.95f, 1e-3f, 0.0f}, "bf16"}},
      o);
  CHECK(cuda.num_tensors() >= 500);
  CHECK(cuda.backend().grid_sizes().size() == 2);  // one launch per dtype pair
  for (int s = 0; s < 5; ++s) {
    g32.fill(rng, 1e-2);
    g16.fill(rng, 1e-2);
    g32.upload();
    g16.upload();
    host.step();
    cuda.step();
  }
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const auto d32 = p32.download(), d16 = p16.download();
  CHECK(Arena::gaps_intact(p32, d32));
  CHECK(Arena::gaps_intact(p16, d16));
  CHECK(std::memcmp(d32.data(), p32.host.data(), d32.size()) == 0);
  CHECK(std::memcmp(d16.data(), p16.host.data(), d16.size()) == 0);
  CHECK(cuda.state_bytes() == host.state_bytes());
}

TEST_CASE("CUDA graph: capture one step, replay with a changing learning rate") {
  const alloy::rule::AdamW::Hyper h{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
  Options o;
  o.param_rounding = Rounding::stochastic;
  o.seed = 8;
  Twins<alloy::rule::AdamW, alloy::state::Bf16<Rounding::stochastic>> tw(kMixed, DType::bf16,
                                                                         DType::bf16, h, o);
  cudaStream_t s;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
  tw.cuda->step(s);
  REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
  REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  float* lr_dev = tw.cuda->backend().device_lr(0);
  for (int k = 1; k <= 10; ++k) {
    const float lr = 0.01f * (1.0f + 0.25f * float(k));  // a schedule, different every replay
    tw.hg.fill(tw.rng, 1e-2);
    tw.hg.upload(s);
    REQUIRE(cudaMemcpyAsync(lr_dev, &lr, sizeof(float), cudaMemcpyHostToDevice, s) == cudaSuccess);
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    tw.host->set_lr(0, lr);
    tw.host->step();
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  }
  tw.check_equal();
  CHECK(tw.cuda->step_count(0) == 10);
  CHECK(tw.cuda->global_step() == 10);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
}

TEST_CASE("non-default stream, set_lr between steps, absent and frozen tensors") {
  const alloy::rule::Sgd::Hyper h{0.05f, 0.9f, 0.0f, 0.01f, true, false};
  Options o;
  Twins<alloy::rule::Sgd, alloy::state::Fp32> tw(kMixed, DType::f32, DType::f32, h, o);
  cudaStream_t s;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  for (int k = 0; k < 3; ++k) tw.step(1.0, s);
  tw.host->set_lr(0, 0.02f);
  tw.cuda->set_lr(0, 0.02f);
  tw.host->set_frozen(1, true);
  tw.cuda->set_frozen(1, true);
  tw.host->set_grad(2, TensorView{});
  tw.cuda->set_grad(2, TensorView{});
  for (int k = 0; k < 3; ++k) tw.step(1.0, s);
  tw.check_equal();
  CHECK(tw.cuda->step_count(0) == 6);
  CHECK(tw.cuda->step_count(1) == 3);
  CHECK(tw.cuda->step_count(2) == 3);
  cudaStreamDestroy(s);
}

TEST_CASE("host memory registered as a CUDA tensor is refused") {
  std::vector<float> p(100, 1.f), g(100, 1.f);
  using Opt = alloy::cuda::Optimizer<alloy::rule::AdamW>;
  try {
    Opt opt({{TensorView(p.data(), p.size(), DType::f32, Device::cuda(0), "hostmem"),
              TensorView(g.data(), g.size(), DType::f32, Device::cuda(0), "hostmem.g")}});
    FAIL("expected alloy::Error");
  } catch (const alloy::Error& e) {
    CHECK(std::string(e.what()).find("hostmem") != std::string::npos);
    CHECK(std::string(e.what()).find("not device memory") != std::string::npos);
  }
}

TEST_CASE("graph capture: pending set_lr is refused; device_lr survives a table rebuild") {
  const alloy::rule::AdamW::Hyper h{0.01f, 0.9f, 0.99f, 1e-3f, 0.1f, false};
  Options o;
  Twins<alloy::rule::AdamW, alloy::state::Fp32> tw(kMixed, DType::f32, DType::f32, h, o);
  cudaStream_t s;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  tw.cuda->set_lr(0, 0.02f);
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
  bool threw = false;
  try {
    tw.cuda->step(s);
  } catch (const alloy::Error& e) {
    threw = std::string(e.what()).find("pending") != std::string::npos;
  }
  cudaGraph_t g = nullptr;
  cudaStreamEndCapture(s, &g);
  if (g) cudaGraphDestroy(g);
  cudaGetLastError();
  CHECK(threw);
  tw.cuda->step(s);  // applies the pending value
  const float lr = 0.5f;
  float* lr_dev = tw.cuda->backend().device_lr(0);
  REQUIRE(cudaMemcpy(lr_dev, &lr, 4, cudaMemcpyHostToDevice) == cudaSuccess);
  tw.cuda->set_frozen(1, true);  // the next step rebuilds the tables
  tw.cuda->step(s);
  REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  CHECK(tw.cuda->backend().device_lr(0) == lr_dev);
  float back = 0;
  REQUIRE(cudaMemcpy(&back, lr_dev, 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(back == lr);
  cudaStreamDestroy(s);
}
