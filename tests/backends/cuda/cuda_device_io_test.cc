// CUDA engines reading and writing device-resident tensors (Tensor::ToDevice / WrapDevice,
// RunOptions::outputs_on_device): the engine alone, and a converted graph whose two engines
// have a host op between them. Values must equal the host path's exactly (same engine, same
// kernels). Skipped where no GPU is visible.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace kiln
