// The CPU backend's INT8 layers (backends/cpu/layers_int8.cc) against the reference kernels:
// conv with bias + ReLU, conv with a residual sum, grouped conv, Gemm/MatMul with bias; signed
// and unsigned activations; a serialized plan runs the same. Large biases make a wrongly scaled
// bias visible; exact ranges make the error the rounding error only.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/layers.h"
#include "engine/calibrator.h"
#include "int8/int8_test_util.h"

namespace kiln {
namespace {

// INT8 error bound of these small layers: 2% with 8-bit weights; CPUs without VNNI quantize
// weights to 7 bits (Int8WeightLevels), which doubles the weight rounding.
double Tol() { return 2e-2 * 127.0 / cpu::Int8WeightLevels(); }

using testing_cpu::A;
using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

using testing_int8::BuildAndCompare;
using testing_int8::Result;

int CountInt8(const std::vector<LayerInfo>& layers) {
  int n = 0;
  for (const auto& l : layers) n += l.precision == "INT8";
  return n;
}

TEST(Int8Layers, ConvBiasRelu) {
  if (!CpuHasKernel(Precision::kINT8)) GTEST_SKIP() << "no INT8 kernel on this machine";
  SegmentBuilder b;
  b.In("x", {2, 8, 12, 12})
      .Init("w", Random({16, 8, 3, 3}, 1, -0.3f, 0.3f))
      .Init("bias", Random({16}, 2, -2.f, 2.f))  // large: a mis-scaled bias shows
      .Op("Conv", {"x", "w", "bias"}, {"c"}, A({{"pads", Attr::Ints({1, 1, 1, 1})}}))
      .Op("Relu", {"c"}, {"y"})
      .Out("y");
  Result r = BuildAndCompare(b, {Random({2, 8, 12, 12}, 3)});
  EXPECT_LT(r.err, Tol());
  EXPECT_GT(r.err, 0.0);
  EXPECT_EQ(CountInt8(r.layers), 1);
}

TEST(Int8Layers, UnsignedInputResidualSumAndPlan) {
  if (!CpuHasKernel(Precision::kINT8)) GTEST_SKIP() << "no INT8 kernel on this machine";
  SegmentBuilder b;
  b.In("x", {2, 16, 10, 10})
      .Init("w0", Random({16, 16, 1, 1}, 4, -0.5f, 0.5f))
      .Init("w1", Random({16, 16, 3, 3}, 5, -0.2f, 0.2f))
      .Init("b1", Random({16}, 6, -1.f, 1.f))
      .Op("Conv", {"x", "w0"}, {"c0"})
      .Op("Relu", {"c0"}, {"r0"})  // unsigned input of the next conv
      .Op("Conv", {"r0", "w1", "b1"}, {"c1"}, A({{"pads", Attr::Ints({1, 1, 1, 1})}}))
      .Op("Add", {"c1", "r0"}, {"s"})
      .Op("Relu", {"s"}, {"y"})
      .Out("y");
  Result r = BuildAndCompare(b, {Random({2, 16, 10, 10}, 7)}, /*round_trip=*/true);
  EXPECT_LT(r.err, Tol());
  EXPECT_EQ(CountInt8(r.layers), 2);
}

// conv -> relu -> conv -> relu -> conv: the first two write INT8 straight into the next one's
// input (Q/DQ only at the precision boundaries).
TEST(Int8Layers, ChainedInt8Convs) {
  if (!CpuHasKernel(Precision::kINT8)) GTEST_SKIP() << "no INT8 kernel on this machine";
  SegmentBuilder b;
  b.In("x", {2, 8, 10, 10})
      .Init("w0", Random({16, 8, 1, 1}, 30, -0.5f, 0.5f))
      .Init("b0", Random({16}, 31, -0.5f, 0.5f))
      .Init("w1", Random({16, 16, 3, 3}, 32, -0.2f, 0.2f))
      .Init("b1", Random({16}, 33, -0.5f, 0.5f))
      .Init("w2", Random({8, 16, 1, 1}, 34, -0.4f, 0.4f))
      .Op("Conv", {"x", "w0", "b0"}, {"c0"})
      .Op("Relu", {"c0"}, {"r0"})
      .Op("Conv", {"r0", "w1", "b1"}, {"c1"}, A({{"pads", Attr::Ints({1, 1, 1, 1})}}))
      .Op("Relu", {"c1"}, {"r1"})
      .Op("Conv", {"r1", "w2"}, {"y"})
      .Out("y");
  Result r = BuildAndCompare(b, {Random({2, 8, 10, 10}, 35)}, /*round_trip=*/true);
  EXPECT_LT(r.err, 3e-2);
  EXPECT_GT(r.err, 0.0);
  EXPECT_EQ(CountInt8(r.layers), 3);
}

// Three bottleneck-like residual blocks, as in ResNet: a downsample branch whose output only
// feeds the residual add (with a calibrated range: written s8 and added, in place, into the
// block's u8 dst; without: FP32, added by a binary post-op), two identity blocks whose residual
// is the previous block's INT8 output (added by the sum post-op scaled back to real values), and
// a last block writing the FP32 engine output from an INT8 residual (dequantized). Large biases
// and unequal block scales make a wrong scale visible.
class Int8Residual : public ::testing::TestWithParam<bool> {};

TEST_P(Int8Residual, BlocksStayInt8) {
  if (!CpuHasKernel(Precision::kINT8)) GTEST_SKIP() << "no INT8 kernel on this machine";
  SegmentBuilder b;
  const Attr pad1 = Attr::Ints({1, 1, 1, 1});
  b.In("x", {2, 8, 10, 10})
      .Init("ws", Random({16, 8, 3, 3}, 50, -0.3f, 0.3f))
      .Init("bs", Random({16}, 51, -1.f, 1.f))
      .Op("Conv", {"x", "ws", "bs"}, {"cs"}, A({{"pads", pad1}}))
      .Op("Relu", {"cs"}, {"t0"})
      .Init("wd", Random({32, 16, 1, 1}, 52, -0.5f, 0.5f))
      .Init("bd", Random({32}, 53, -2.f, 2.f))
      .Op("Conv", {"t0", "wd", "bd"}, {"d"});
  std::string in = "t0";
  for (int i = 1; i <= 3; ++i) {
    const std::string n = std::to_string(i);
    const int seed = 60 + 10 * i;
    b.Init("wa" + n, Random({8, i == 1 ? 16 : 32, 1, 1}, seed, -0.5f, 0.5f))
        .Init("ba" + n, Random({8}, seed + 1, -1.f, 1.f))
        .Op("Conv", {in, "wa" + n, "ba" + n}, {"ca" + n})
        .Op("Relu", {"ca" + n}, {"a" + n})
        .Init("wb" + n, Random({32, 8, 3, 3}, seed + 2, -0.3f * i, 0.3f * i))
        .Init("bb" + n, Random({32}, seed + 3, -2.f, 2.f))
        .Op("Conv", {"a" + n, "wb" + n, "bb" + n}, {"cb" + n}, A({{"pads", pad1}}))
        .Op("Add", {"cb" + n, i == 1 ? "d" : in}, {"s" + n})
        .Op("Relu", {"s" + n}, {i == 3 ? "y" : "t" + n});
    in = "t" + n;
  }
  b.Out("y");
  Result r = BuildAndCompare(b, {Random({2, 8, 10, 10}, 99)}, /*round_trip=*/true, GetParam());
  EXPECT_LT(r.err, 3e-2);
  EXPECT_GT(r.err, 0.0);
  EXPECT_EQ(CountInt8(r.layers), 8);
}

INSTANTIATE_TEST_SUITE_P(Int8Layers, Int8Residual, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "WithResidualRanges" : "WithoutResidualRanges";
                         });

// ResNet's stem: conv -> ReLU -> max pool -> two convs. The conv writes INT8 with the pooled
// tensor's range (its own output has none: only the pool reads it) and the pool runs on the
// INT8 values.
TEST(Int8Layers, MaxPoolPassesInt8Through) {
  if (!CpuHasKernel(Precision::kINT8)) GTEST_SKIP() << "no INT8 kernel on this machine";
  SegmentBuilder b;
  b.In("x", {2, 3, 16, 16})
      .Init("ws", Random({16, 3, 3, 3}, 80, -0.4f, 0.4f))
      .Init("bs", Random({16}, 81, -1.f, 1.f))
      .Op("Conv", {"x", "ws", "bs"}, {"c"}, A({{"pads", Attr::Ints({1, 1, 1, 1})}}))
      .Op("Relu", {"c"}, {"r"})
      .Op("MaxPool", {"r"}, {"p"},
          A({{"kernel_shape", Attr::Ints({3, 3})},
             {"strides", Attr::Ints({2, 2})},
             {"pads", Attr::Ints({1, 1, 1, 1})}}))
      .Init("w1", Random({16, 16, 1, 1}, 82, -0.5f, 0.5f))
      .Init("w2", Random({8, 16, 3, 3}, 83, -0.3f, 0.3f))
      .Op("Conv", {"p", "w1"}, {"y1"})
      .Op("Conv", {"p", "w2"}, {"y2"}, A({{"pads", Attr::Ints({1, 1, 1, 1})}}))
      .Out("y1")
      .Out("y2");
  Result r = BuildAndCompare(b, {Random({2, 3, 16, 16}, 84)}, /*round_trip=*/true);
  EXPECT_LT(r.err, 3e-2);
  EXPECT_GT(r.err, 0.0);
  bool pool_int8 = false;
  for (const auto& l : r.layers) pool_int8 |= l.op == "MaxPool" && l.precision == "INT8";
  EXPECT_TRUE(pool_int8);
}

// The same stem with the pooled tensor also read by a floating-point layer (a Sigmoid, an engine
// output): the pool must not hand INT8 values to it, so the chain stops at the conv.
TEST(Int8Layers, MaxPoolWithFloatReaderStaysFloat) {
  if (!CpuHasKernel(Precision::kINT8)) GTEST_SKIP() << "no INT8 kernel on this machine";
  SegmentBuilder b;
  b.In("x", {2, 3, 16, 16})
      .Init("ws", Random({16, 3, 3, 3}, 90, -0.4f, 0.4f))
      .Op("Conv", {"x", "ws"}, {"c"}, A({{"pads", Attr::Ints({1, 1, 1, 1})}}))
      .Op("Relu", {"c"}, {"r"})
      .Op("MaxPool", {"r"}, {"p"},
          A({{"kernel_shape", Attr::Ints({2, 2})}, {"strides", Attr::Ints({2, 2})}}))
      .Init("w1", Random({16, 16, 1, 1}, 91, -0.5f, 0.5f))
      .Op("Conv", {"p", "w1"}, {"y1"})
      .Op("Sigmoid", {"p"}, {"y2"})
      .Out("y1")
      .Out("y2");
  Result r = BuildAndCompare(b, {Random({2, 3, 16, 16}, 92)});
  EXPECT_LT(r.err, 3e-2);
  for (const auto& l : r.layers) {
    if (l.op == "MaxPool") {
      EXPECT_NE(l.precision, "INT8");
    }
  }
}

// Two INT8 convs that cannot merge (1x1 and 3x3) read the same FP32 input: they share one
// quantizing reorder (Builder::Quantized), and a residual dequantized into a dst for an in-place
// sum gets a private copy, never the shared buffer.
TEST(Int8Layers, SiblingReadersShareOneQuantizedInput) {
  if (!CpuHasKernel(Precision::kINT8)) GTEST_SKIP() << "no INT8 kernel on this machine";
  SegmentBuilder b;
  b.In("x", {2, 16, 8, 8})
      .Init("w1", Random({16, 16, 1, 1}, 110, -0.5f, 0.5f))
      .Init("w3", Random({16, 16, 3, 3}, 111, -0.2f, 0.2f))
      .Op("Conv", {"x", "w1"}, {"a"})
      .Op("Conv", {"x", "w3"}, {"c"}, A({{"pads", Attr::Ints({1, 1, 1, 1})}}))
      .Op("Add", {"a", "c"}, {"y"})
      .Out("y");
  Result r = BuildAndCompare(b, {Random({2, 16, 8, 8}, 112)}, /*round_trip=*/true);
  EXPECT_LT(r.err, 3e-2);
  EXPECT_GT(r.err, 0.0);
  EXPECT_EQ(CountInt8(r.layers), 2);
}

// An INT8 conv's reader that cannot run in INT8 after all (a matmul with a binary post-op)
// gets the conv's output dequantized.
TEST(Int8Layers, FloatReaderOfInt8Output) {
  if (!CpuHasKernel(Precision::kINT8)) GTEST_SKIP() << "no INT8 kernel on this machine";
  SegmentBuilder b;
  b.In("x", {2, 4, 6, 6})
      .In("z", {2, 8, 6, 5})
      .Init("w", Random({8, 4, 3, 3}, 40, -0.4f, 0.4f))
      .Init("k", Random({6, 5}, 41, -0.5f, 0.5f))
      .Op("Conv", {"x", "w"}, {"c"}, A({{"pads", Attr::Ints({1, 1, 1, 1})}}))
      .Op("Relu", {"c"}, {"r"})
      .Op("MatMul", {"r", "k"}, {"m"})
      .Op("Add", {"m", "z"}, {"y"})
      .Out("y");
  Result r = BuildAndCompare(b, {Random({2, 4, 6, 6}, 42), Random({2, 8, 6, 5}, 43)});
  EXPECT_LT(r.err, 3e-2);
  EXPECT_GE(CountInt8(r.layers), 1);
}

TEST(Int8Layers, MergedSiblingConvs) {
  if (!CpuHasKernel(Precision::kINT8)) GTEST_SKIP() << "no INT8 kernel on this machine";
  SegmentBuilder b;
  b.In("x", {2, 16, 8, 8})
      .Init("wa", Random({24, 16, 1, 1}, 20, -0.4f, 0.4f))
      .Init("wb", Random({8, 16, 1, 1}, 21, -0.4f, 0.4f))
      .Init("bb", Random({8}, 22, -1.f, 1.f))
      .Op("Conv", {"x", "wa"}, {"ya"})
      .Op("Conv", {"x", "wb", "bb"}, {"yb"})
      .Out("ya")
      .Out("yb");
  Result r = BuildAndCompare(b, {Random({2, 16, 8, 8}, 23)});
  EXPECT_LT(r.err, Tol());
  EXPECT_EQ(CountInt8(r.layers), static_cast<int>(r.layers.size()));
}

TEST(Int8Layers, GroupedConvInt8DepthwiseStaysFloat) {
  if (!CpuHasKernel(Precision::kINT8)) GTEST_SKIP() << "no INT8 kernel on this machine";
  SegmentBuilder b;
  b.In("x", {1, 16, 9, 9})
      .Init("w", Random({16, 4, 3, 3}, 8, -0.5f, 0.5f))  // 4 groups of 4 channels
      .Init("bias", Random({16}, 9, -1.f, 1.f))
      .Op("Conv", {"x", "w", "bias"}, {"y"},
          A({{"group", Attr::Int(4)}, {"pads", Attr::Ints({1, 1, 1, 1})}}))
      .Out("y");
  Result r = BuildAndCompare(b, {Random({1, 16, 9, 9}, 10)});
  EXPECT_LT(r.err, Tol());
  EXPECT_EQ(CountInt8(r.layers), 1);

  SegmentBuilder d;  // depthwise: memory-bound, kept in floating point (layers_int8.cc)
  d.In("x", {1, 16, 9, 9})
      .Init("w", Random({16, 1, 3, 3}, 11, -0.5f, 0.5f))
      .Op("Conv", {"x", "w"}, {"y"},
          A({{"group", Attr::Int(16)}, {"pads", Attr::Ints({1, 1, 1, 1})}}))
      .Out("y");
  Result rd = BuildAndCompare(d, {Random({1, 16, 9, 9}, 12)});
  EXPECT_LT(rd.err, Tol());
  ASSERT_EQ(rd.layers.size(), 1u);
  EXPECT_NE(rd.layers[0].precision, "INT8");
}

TEST(Int8Layers, GemmAndMatMulWithBias) {
  if (!CpuHasKernel(Precision::kINT8)) GTEST_SKIP() << "no INT8 kernel on this machine";
  SegmentBuilder b;
  b.In("x", {4, 5, 64})
      .Init("w", Random({64, 48}, 11, -0.3f, 0.3f))
      .Init("bias", Random({48}, 12, -2.f, 2.f))
      .Op("MatMul", {"x", "w"}, {"m"})
      .Op("Add", {"m", "bias"}, {"y"})
      .Out("y");
  Result r = BuildAndCompare(b, {Random({4, 5, 64}, 13)});
  EXPECT_LT(r.err, Tol());
  EXPECT_GT(r.err, 0.0);
  EXPECT_EQ(CountInt8(r.layers), 1);

  SegmentBuilder g;
  g.In("x", {3, 40})
      .Init("w", Random({24, 40}, 14, -0.3f, 0.3f))
      .Init("c", Random({24}, 15, -2.f, 2.f))
      .Op("Gemm", {"x", "w", "c"}, {"y"}, A({{"transB", Attr::Int(1)}}))
      .Out("y");
  Result rg = BuildAndCompare(g, {Random({3, 40}, 16)});
  EXPECT_LT(rg.err, Tol());
  EXPECT_EQ(CountInt8(rg.layers), 1);
}

// A layer without a range (not in the table) keeps its floating precision.
TEST(Int8Layers, NoRangeNoInt8) {
  SegmentBuilder b;
  b.In("x", {1, 8, 6, 6})
      .Init("w", Random({8, 8, 3, 3}, 17, -0.3f, 0.3f))
      .Op("Conv", {"x", "w"}, {"y"})
      .Out("y");
  std::map<std::string, Tensor> all;
  ASSERT_TRUE(testing_cpu::RunReference(b.graph(), {Random({1, 8, 6, 6}, 18)}, &all).ok());
  b.InferValueInfo(all);
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  cfg.precision = Precision::kINT8;
  cfg.int8_ranges["some_other_tensor"] = {1.f, -1.f, 1.f};
  auto e = CpuBackend().Build(b.graph(), cfg);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(CountInt8((*e)->Layers()), 0);
}

}  // namespace
}  // namespace kiln
