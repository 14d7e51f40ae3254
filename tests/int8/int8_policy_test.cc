// Which layers run in INT8 (backends/cpu/int8_policy.h, layers_int8.cc) and the entropy
// calibrator's fallback for sparse histograms (engine/calibrator.h): thin layers (the first conv
// with 3 input channels, squeeze-excitation FCs) and layers reading a BF16 tensor stay in
// floating point, wide ones run in INT8; a tensor with too few calibration samples keeps its
// max |x|. Random non-constant inputs; ranges from the reference run.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/int8_policy.h"
#include "engine/calibrator.h"
#include "int8/int8_test_util.h"

namespace kiln {
namespace {

using cpu::Int8MinDot;
using cpu::ScopedInt8Thresholds;
using testing_cpu::A;
using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

TEST(Int8Policy, ParseThresholds) {
  Int8MinDot t;
  EXPECT_TRUE(cpu::ParseInt8MinDot("128,32", &t));
  EXPECT_EQ(t.k, 128);
  EXPECT_EQ(t.n, 32);
  for (const char* bad : {"", "64", "a,1", "1,", ",1", "-1,4", "1,2,3", "99999999999999,1"}) {
    Int8MinDot u;
    EXPECT_FALSE(cpu::ParseInt8MinDot(bad, &u)) << bad;
    EXPECT_EQ(u.k, 64) << bad;  // unchanged
    EXPECT_EQ(u.n, 64) << bad;
  }
  EXPECT_FALSE(cpu::ParseInt8MinDot(nullptr, &t));
  EXPECT_TRUE(cpu::Int8Pays(64, 64, Int8MinDot{}));
  EXPECT_FALSE(cpu::Int8Pays(27, 64, Int8MinDot{}));  // a 3x3 conv of 3 channels
  EXPECT_FALSE(cpu::Int8Pays(200, 50, Int8MinDot{}));  // a squeeze-excitation FC
  EXPECT_TRUE(cpu::Int8Pays(1, 1, Int8MinDot{0, 0}));
  {
    ScopedInt8Thresholds outer({10, 20});
    EXPECT_EQ(cpu::Int8Thresholds().k, 10);
    {
      ScopedInt8Thresholds inner({30, 40});
      EXPECT_EQ(cpu::Int8Thresholds().n, 40);
    }
    EXPECT_EQ(cpu::Int8Thresholds().n, 20);
  }
}

// Gaussian values with a few far outliers: entropy clips them when it has enough samples, and
// keeps max |x| when the histogram is too sparse to compare distributions.
TEST(Int8Policy, EntropyNeedsSamples) {
  auto make = [](int n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.f, 1.f);
    std::vector<float> v(n);
    for (auto& x : v) x = g(rng);
    v[n / 3] = 30.f;
    v[n / 2] = -30.f;
    Histogram h;
    h.Add(v.data(), n);
    return h;
  };
  const Histogram dense = make(200000, 3);
  ASSERT_GE(dense.count(), kEntropyMinSamples);
  const float e = CalibratedAmax(dense, CalibrationMethod::kEntropy);
  EXPECT_LT(e, 10.f) << "enough samples: entropy clips the outliers";
  EXPECT_EQ(e, EntropyAmax(dense, 128));

  const Histogram sparse = make(600, 4);  // e.g. an SE FC's input: a few values per image
  ASSERT_LT(sparse.count(), kEntropyMinSamples);
  EXPECT_LT(EntropyAmax(sparse, 128), 20.f) << "the raw KL threshold clips these outliers";
  EXPECT_EQ(CalibratedAmax(sparse, CalibrationMethod::kEntropy), MinMaxAmax(sparse));
  EXPECT_NEAR(MinMaxAmax(sparse), 30.f, 1e-5);
  // The other calibrators are unchanged.
  EXPECT_EQ(CalibratedAmax(sparse, CalibrationMethod::kPercentile, 50.0),
            PercentileAmax(sparse, 50.0));
}

using Built = testing_int8::Result;

// The INT8 engine of `b` with exact ranges of the INT8 layers' inputs, against the reference.
Built Build(SegmentBuilder& b, const std::vector<Tensor>& in) {
  return testing_int8::BuildAndCompare(b, in, /*round_trip=*/false, /*residual_ranges=*/false);
}

// The precision of the layer holding the node that writes `output` (SegmentBuilder names it
// "<output>_node").
std::string PrecisionOf(const Built& r, const std::string& output) {
  for (const auto& l : r.layers) {
    for (const auto& n : l.nodes) {
      if (n == output + "_node") return l.precision;
    }
  }
  return "?";
}

// Two engines. Thin stem: a 3-channel 3x3 conv (K = 27). Wide + SE: a 3x3 conv 64 -> 64
// (K = 576) on the engine input -> ReLU -> global pool -> SE-style 1x1 FC 64 -> 8 (N = 8) ->
// ReLU -> 1x1 FC 8 -> 64 (K = 8).
SegmentBuilder ThinStem() {
  SegmentBuilder b;
  b.In("x", {2, 3, 12, 12})
      .Init("w0", Random({64, 3, 3, 3}, 50, -0.4f, 0.4f))
      .Init("b0", Random({64}, 51, -0.5f, 0.5f))
      .Op("Conv", {"x", "w0", "b0"}, {"stem"}, A({{"pads", Attr::Ints({1, 1, 1, 1})}}))
      .Out("stem");
  return b;
}

SegmentBuilder WideSe() {
  SegmentBuilder b;
  b.In("x", {2, 64, 8, 8})
      .Init("w1", Random({64, 64, 3, 3}, 52, -0.08f, 0.08f))
      .Init("b1", Random({64}, 53, -0.5f, 0.5f))
      .Init("w2", Random({8, 64, 1, 1}, 54, -0.3f, 0.3f))
      .Init("w3", Random({64, 8, 1, 1}, 55, -0.3f, 0.3f))
      .Op("Conv", {"x", "w1", "b1"}, {"wide"}, A({{"pads", Attr::Ints({1, 1, 1, 1})}}))
      .Op("Relu", {"wide"}, {"r1"})
      .Op("GlobalAveragePool", {"r1"}, {"p"})
      .Op("Conv", {"p", "w2"}, {"se1"})
      .Op("Relu", {"se1"}, {"r2"})
      .Op("Conv", {"r2", "w3"}, {"y"})
      .Out("y");
  return b;
}

TEST(Int8Policy, ThinLayersStayFloatWideOnesRunInt8) {
  if (!CpuHasKernel(Precision::kINT8)) GTEST_SKIP() << "no INT8 kernel on this machine";
  ScopedInt8Thresholds defaults(Int8MinDot{});
  SegmentBuilder s = ThinStem();
  Built rs = Build(s, {Random({2, 3, 12, 12}, 56)});
  EXPECT_LT(rs.err, 3e-2);
  EXPECT_NE(PrecisionOf(rs, "stem"), "INT8");
  EXPECT_NE(PrecisionOf(rs, "stem"), "?");
  SegmentBuilder b = WideSe();
  Built r = Build(b, {Random({2, 64, 8, 8}, 57)});
  EXPECT_LT(r.err, 3e-2);
  EXPECT_GT(r.err, 0.0);
  EXPECT_EQ(PrecisionOf(r, "wide"), "INT8");
  EXPECT_NE(PrecisionOf(r, "se1"), "INT8");
  EXPECT_NE(PrecisionOf(r, "se1"), "?");
  EXPECT_NE(PrecisionOf(r, "y"), "INT8");

  // Thresholds 0,0 (KILN_CPU_INT8_MIN_DOT=0,0): every capable layer in INT8 again.
  ScopedInt8Thresholds all(Int8MinDot{0, 0});
  SegmentBuilder s2 = ThinStem();
  Built rs2 = Build(s2, {Random({2, 3, 12, 12}, 56)});
  EXPECT_EQ(PrecisionOf(rs2, "stem"), "INT8");
  SegmentBuilder b2 = WideSe();
  Built r2 = Build(b2, {Random({2, 64, 8, 8}, 57)});
  EXPECT_LT(r2.err, 5e-2);
  for (const char* n : {"wide", "se1", "y"}) EXPECT_EQ(PrecisionOf(r2, n), "INT8") << n;
}

// A wide 1x1 conv reading a BF16 depthwise conv's output stays BF16 (the bf16 -> int8 reorder
// costs more than INT8 saves); the same conv reading an FP32 engine input runs in INT8.
TEST(Int8Policy, Bf16InputStaysBf16) {
  if (!CpuHasKernel(Precision::kINT8)) GTEST_SKIP() << "no INT8 kernel on this machine";
  if (!CpuHasKernel(Precision::kBF16)) GTEST_SKIP() << "no BF16 kernel on this machine";
  ScopedInt8Thresholds defaults(Int8MinDot{});
  SegmentBuilder b;
  b.In("x", {1, 64, 10, 10})
      .Init("dw", Random({64, 1, 3, 3}, 60, -0.5f, 0.5f))
      .Init("w", Random({64, 64, 1, 1}, 61, -0.2f, 0.2f))
      .Init("w2", Random({64, 64, 1, 1}, 62, -0.2f, 0.2f))
      .Op("Conv", {"x", "w2"}, {"first"})  // reads the FP32 input: INT8
      .Op("Conv", {"first", "dw"}, {"d"},
          A({{"group", Attr::Int(64)}, {"pads", Attr::Ints({1, 1, 1, 1})}}))
      .Op("Conv", {"d", "w"}, {"y"})  // reads the BF16 depthwise output
      .Out("y");
  Built r = Build(b, {Random({1, 64, 10, 10}, 63)});
  EXPECT_LT(r.err, 3e-2);
  EXPECT_EQ(PrecisionOf(r, "first"), "INT8");
  EXPECT_EQ(PrecisionOf(r, "d"), "BF16");
  EXPECT_EQ(PrecisionOf(r, "y"), "BF16");
}

}  // namespace
}  // namespace kiln
