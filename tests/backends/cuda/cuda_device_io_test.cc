// CUDA engines reading and writing device-resident tensors (Tensor::ToDevice / WrapDevice,
// RunOptions::outputs_on_device): the engine alone, and a converted graph whose two engines
// have a host op between them. Values must equal the host path's exactly (same engine, same
// kernels). Skipped where no GPU is visible.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/lowering.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_engine.h"
#include "io/onnx/onnx_import.h"
#include "kiln/convert.h"
#include "kiln/session.h"
#include "runtime/onnx_builder.h"

namespace kiln {
namespace {

using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

bool HaveGpu() { return cuda::DeviceCount() > 0; }

Tensor Host(const Tensor& t) {
  auto h = t.ToHost();
  EXPECT_TRUE(h.ok()) << h.status();
  return h.ok() ? *h : Tensor();
}

TEST(CudaDeviceIo, EngineTakesAndKeepsDeviceTensors) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  SegmentBuilder b;
  b.In("x", {4, 32}).Init("w", Random({32, 24}, 7)).Init("bias", Random({24}, 8));
  b.Op("MatMul", {"x", "w"}, {"m"}).Op("Add", {"m", "bias"}, {"a"}).Op("Relu", {"a"}, {"y"});
  b.Out("y");
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  auto e = CudaBackend()->Build(b.graph(), cfg);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ((*e)->device(), 0);
  Tensor x = Random({4, 32}, 9);
  std::vector<Tensor> want;
  ASSERT_TRUE((*e)->Execute({&x}, &want).ok());
  ASSERT_FALSE(want[0].on_device());

  auto dx = x.ToDevice(0);
  ASSERT_TRUE(dx.ok()) << dx.status();
  ASSERT_TRUE(dx->on_device());
  for (bool keep : {false, true}) {
    for (int run = 0; run < 3; ++run) {  // later runs reuse the pool's memory
      std::vector<Tensor> got;
      Status s = (*e)->ExecutePlaced({&*dx}, &got, {keep});
      ASSERT_TRUE(s.ok()) << s;
      ASSERT_EQ(got.size(), 1u);
      EXPECT_EQ(got[0].on_device(), keep);
      EXPECT_EQ(got[0].dims(), want[0].dims());
      EXPECT_TRUE(Host(got[0]).BitwiseEqual(want[0])) << "keep " << keep << " run " << run;
    }
  }
  // A smaller batch read from a device tensor (the engine was built for 4).
  Tensor x1 = Random({1, 32}, 10);
  std::vector<Tensor> want1, got1;
  ASSERT_TRUE((*e)->Execute({&x1}, &want1).ok());
  auto dx1 = x1.ToDevice(0);
  ASSERT_TRUE(dx1.ok());
  ASSERT_TRUE((*e)->ExecutePlaced({&*dx1}, &got1, {true}).ok());
  EXPECT_TRUE(Host(got1[0]).BitwiseEqual(want1[0]));
  // A pointer said to be on a GPU this engine does not run on is refused, not read.
  Tensor foreign = Tensor::WrapDevice(DataType::kFloat32, {4, 32}, dx->raw_mutable_data(),
                                      nullptr, cuda::DeviceCount());
  std::vector<Tensor> out;
  Status s = (*e)->Execute({&foreign}, &out);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("lives on CUDA device"), std::string::npos) << s;
}

// x[N,8] ─▶ MatMul W1 ─▶ Add b1 ─▶ Relu ─▶ h ─▶ Round (host) ─▶ r ─▶ MatMul W2 ─▶ Add b2 ─▶ Tanh ─▶ y
Graph TwoEngineGraph() {
  testing::OnnxBuilder b;
  b.Input("x", 1, {-1, 8}).Output("y", 1, {-1, 4});
  std::vector<float> w1(8 * 16), w2(16 * 4);
  for (size_t i = 0; i < w1.size(); ++i) w1[i] = 0.37f * static_cast<float>(i % 11) - 1.5f;
  for (size_t i = 0; i < w2.size(); ++i) w2[i] = 0.05f * static_cast<float>(i % 7) - 0.1f;
  b.FloatInitializer("W1", {8, 16}, w1).FloatInitializer("b1", {16}, std::vector<float>(16, 0.2f));
  b.FloatInitializer("W2", {16, 4}, w2).FloatInitializer("b2", {4}, {0.1f, -0.2f, 0.3f, 0.f});
  b.Node("MatMul", {"x", "W1"}, {"m1"}, "mm1");
  b.Node("Add", {"m1", "b1"}, {"a1"}, "add1");
  b.Node("Relu", {"a1"}, {"h"}, "relu");
  b.Node("Round", {"h"}, {"r"}, "round");
  b.Node("MatMul", {"r", "W2"}, {"m2"}, "mm2");
  b.Node("Add", {"m2", "b2"}, {"a2"}, "add2");
  b.Node("Tanh", {"a2"}, {"y"}, "tanh");
  auto g = ImportOnnxBytes(b.Serialize(), "two_engines.onnx", "");
  EXPECT_TRUE(g.ok()) << g.status();
  return std::move(g).value();
}

TEST(CudaDeviceIo, SessionFeedsAndFetchesDeviceTensors) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  ConversionParams params;
  params.backend = "cuda";
  params.minimum_segment_size = 2;
  params.max_batch_size = 8;
  auto converted = CreateInferenceGraph(TwoEngineGraph(), params);
  ASSERT_TRUE(converted.ok()) << converted.status();
  ASSERT_EQ(converted->summary().engines.size(), 2u) << converted->summary().ToString();
  auto s = Session::FromGraph(converted->graph());
  ASSERT_TRUE(s.ok()) << s.status();
  Tensor x = Random({8, 8}, 11);
  auto want = (*s)->Run({{"x", x}}, {"y", "h"});
  ASSERT_TRUE(want.ok()) << want.status();
  auto dx = x.ToDevice(0);
  ASSERT_TRUE(dx.ok()) << dx.status();
  for (bool on_device : {false, true}) {
    RunOptions opts;
    opts.outputs_on_device = on_device;
    auto got = (*s)->Run({{"x", *dx}}, {"y", "h"}, opts);
    ASSERT_TRUE(got.ok()) << got.status();
    // y: the second engine's output, fetched: on the GPU when asked.
    EXPECT_EQ((*got)[0].on_device(), on_device);
    EXPECT_TRUE(Host((*got)[0]).BitwiseEqual((*want)[0]));
    // h is read by Round, a host op: the first engine hands it over on the host.
    EXPECT_FALSE((*got)[1].on_device());
    EXPECT_TRUE((*got)[1].BitwiseEqual((*want)[1]));
  }
}

// A large pageable host input goes up through the pipelined bounce buffers (several lanes,
// a size that is no multiple of their chunk): the values must arrive exactly.
TEST(CudaDeviceIo, LargeHostInputsArriveExactly) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  SegmentBuilder b;
  b.In("x", {5, 2000003}).Op("Relu", {"x"}, {"y"}).Out("y");
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  auto e = CudaBackend()->Build(b.graph(), cfg);
  ASSERT_TRUE(e.ok()) << e.status();
  Tensor x = Random({5, 2000003}, 81);  // 40 MB
  for (int run = 0; run < 2; ++run) {
    std::vector<Tensor> got;
    ASSERT_TRUE((*e)->Execute({&x}, &got).ok());
    const float* xv = x.data<float>();
    const float* yv = got[0].data<float>();
    int64_t wrong = 0;
    for (int64_t i = 0; i < x.num_elements(); ++i) wrong += yv[i] != std::max(xv[i], 0.f);
    EXPECT_EQ(wrong, 0) << "run " << run;
  }
}

// ids[N,6] (int64 or int32) ─▶ Gather(table[50,32]) ─▶ Add(pos[6,32]) ─▶ MatMul(W[32,16]) ─▶ Relu ─▶ y
Graph EmbeddingGraph(int index_type) {
  testing::OnnxBuilder b;
  b.Input("ids", index_type, {-1, 6}).Output("y", 1, {-1, 6, 16});
  Tensor table = Random({50, 32}, 61), pos = Random({6, 32}, 62), w = Random({32, 16}, 63);
  auto vec = [](const Tensor& t) {
    return std::vector<float>(t.data<float>(), t.data<float>() + t.num_elements());
  };
  b.FloatInitializer("table", {50, 32}, vec(table)).FloatInitializer("pos", {6, 32}, vec(pos));
  b.FloatInitializer("W", {32, 16}, vec(w));
  b.Node("Gather", {"table", "ids"}, {"emb"}, "embed");
  b.Node("Add", {"emb", "pos"}, {"x"}, "add_pos");
  b.Node("MatMul", {"x", "W"}, {"m"}, "proj");
  b.Node("Relu", {"m"}, {"y"}, "relu");
  auto g = ImportOnnxBytes(b.Serialize(), "embedding.onnx", "");
  EXPECT_TRUE(g.ok()) << g.status();
  return std::move(g).value();
}

Tensor Ids(DataType dt, std::vector<int64_t> values, int64_t batch) {
  Tensor t = Tensor::Empty(dt, {batch, 6});
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    const int64_t v = values[i % values.size()];
    if (dt == DataType::kInt64) t.mutable_data<int64_t>()[i] = v;
    else t.mutable_data<int32_t>()[i] = static_cast<int32_t>(v);
  }
  return t;
}

// The embedding Gather runs inside the engine (the token ids are the engine's input): the
// whole model is one engine, it matches the reference kernels, takes ids on the GPU, and
// refuses an id outside the table with a message.
TEST(CudaDeviceIo, EmbeddingLookupRunsInTheEngine) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  setenv("KILN_CUDA_TF32", "0", 1);
  for (int onnx_type : {7, 6}) {  // int64, int32
    const DataType dt = onnx_type == 7 ? DataType::kInt64 : DataType::kInt32;
    SCOPED_TRACE(DataTypeName(dt));
    Graph g = EmbeddingGraph(onnx_type);
    auto native = Session::FromGraph(g);
    ASSERT_TRUE(native.ok()) << native.status();
    ConversionParams params;
    params.backend = "cuda";
    params.minimum_segment_size = 1;
    params.max_batch_size = 4;
    auto converted = CreateInferenceGraph(g, params);
    ASSERT_TRUE(converted.ok()) << converted.status();
    const ConversionSummary& sum = converted->summary();
    EXPECT_EQ(sum.converted_nodes, sum.total_nodes) << sum.ToString();
    ASSERT_EQ(sum.engines.size(), 1u) << sum.ToString();
    auto s = Session::FromGraph(converted->graph());
    ASSERT_TRUE(s.ok()) << s.status();
    // Every row, negative ids (from the end) included, at the built batch and at batch 1.
    for (int64_t batch : {4, 1}) {
      Tensor ids = Ids(dt, {0, 49, 7, -1, 23, -50, 11, 3, 48, 1, 30, 2}, batch);
      auto want = (*native)->Run({{"ids", ids}});
      auto got = (*s)->Run({{"ids", ids}});
      ASSERT_TRUE(want.ok() && got.ok()) << want.status() << got.status();
      EXPECT_LE(testing_cpu::RelL2((*got)[0], (*want)[0]), 1e-5) << "batch " << batch;
      auto dids = ids.ToDevice(0);
      ASSERT_TRUE(dids.ok());
      RunOptions opts;
      opts.outputs_on_device = true;
      auto resident = (*s)->Run({{"ids", *dids}}, {}, opts);
      ASSERT_TRUE(resident.ok()) << resident.status();
      EXPECT_TRUE((*resident)[0].on_device());
      EXPECT_TRUE(Host((*resident)[0]).BitwiseEqual((*got)[0]));
    }
    auto bad = (*s)->Run({{"ids", Ids(dt, {3, 50}, 2)}});
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("index 50 (element 1) is outside the embedding "
                                          "table's 50 rows"),
              std::string::npos)
        << bad.status();
    // The same ids already on the GPU: found by the lookup kernel, reported after the run.
    auto dbad = Ids(dt, {3, 7, 9, -51, 1, 2}, 1).ToDevice(0);  // one bad element
    ASSERT_TRUE(dbad.ok());
    auto bad2 = (*s)->Run({{"ids", *dbad}});
    ASSERT_FALSE(bad2.ok());
    EXPECT_NE(bad2.status().message().find("index -51 (element 3) is outside the embedding "
                                           "table's 50 rows (found on the GPU)"),
              std::string::npos)
        << bad2.status();
    // ...and the next run with good ids on the GPU is fine again.
    auto good = Ids(dt, {1, 2, 3, 4, 5, 6}, 2);
    auto dgood = good.ToDevice(0);
    ASSERT_TRUE(dgood.ok());
    auto ok1 = (*s)->Run({{"ids", *dgood}});
    auto ok2 = (*native)->Run({{"ids", good}});
    ASSERT_TRUE(ok1.ok() && ok2.ok()) << ok1.status() << ok2.status();
    EXPECT_LE(testing_cpu::RelL2((*ok1)[0], (*ok2)[0]), 1e-5);
  }
  unsetenv("KILN_CUDA_TF32");
}

// Engines share the GPU's arena pool: runs of two engines one after another lease the same
// block (memory = the larger engine's need, not the sum); concurrent runs lease one each and
// still compute the right values.
TEST(CudaDeviceIo, EnginesShareTheArenaPool) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  auto make = [](int64_t width, uint32_t seed) {
    SegmentBuilder b;
    b.In("x", {8, 64}).Init("w", Random({64, width}, seed)).Init("v", Random({width, 64}, seed + 1));
    b.Op("MatMul", {"x", "w"}, {"h"}).Op("Relu", {"h"}, {"r"}).Op("MatMul", {"r", "v"}, {"y"});
    b.Out("y");
    BuildConfig cfg = testing_cpu::Config(b.shapes());
    auto e = CudaBackend()->Build(b.graph(), cfg);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? std::move(*e) : nullptr;
  };
  std::unique_ptr<Engine> small = make(128, 20), big = make(4096, 30);
  ASSERT_TRUE(small && big);
  Tensor x = Random({8, 64}, 40);
  std::vector<Tensor> want_small, want_big;
  ASSERT_TRUE(small->Execute({&x}, &want_small).ok());
  ASSERT_TRUE(big->Execute({&x}, &want_big).ok());
  const cuda::ArenaPoolStats before = cuda::GetArenaPoolStats(0);
  for (int i = 0; i < 5; ++i) {
    std::vector<Tensor> a, b;
    ASSERT_TRUE(small->Execute({&x}, &a).ok());
    ASSERT_TRUE(big->Execute({&x}, &b).ok());
    EXPECT_TRUE(a[0].BitwiseEqual(want_small[0]));
    EXPECT_TRUE(b[0].BitwiseEqual(want_big[0]));
  }
  const cuda::ArenaPoolStats after = cuda::GetArenaPoolStats(0);
  EXPECT_EQ(after.runs - before.runs, 10);
  EXPECT_EQ(after.allocations, before.allocations) << "sequential runs reuse the pool's block";
  EXPECT_EQ(after.blocks, std::max(before.blocks, 1));
  std::printf("  arena pool: %d block(s), %.1f MiB, %lld runs, %lld allocations\n", after.blocks,
              static_cast<double>(after.bytes) / (1 << 20), static_cast<long long>(after.runs),
              static_cast<long long>(after.allocations));

  // Four threads at once, each its own inputs, against one-at-a-time results.
  std::vector<Tensor> xs, ref;
  for (int t = 0; t < 4; ++t) {
    xs.push_back(Random({8, 64}, 50 + t));
    std::vector<Tensor> o;
    ASSERT_TRUE(big->Execute({&xs[t]}, &o).ok());
    ref.push_back(o[0]);
  }
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        std::vector<Tensor> o;
        const Engine& e = (i % 2) ? *big : *small;
        if (!e.Execute({&xs[t]}, &o).ok()) {
          ++bad[t];
        } else if ((i % 2) && !o[0].BitwiseEqual(ref[t])) {
          ++bad[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
  EXPECT_LE(cuda::GetArenaPoolStats(0).blocks, 4 + std::max(before.blocks, 1));
}

}  // namespace
}  // namespace kiln
