// Tests for the misc family: TopK, NonMaxSuppression, Resize, Upsample.
// Expected values are hand-computed, from an independent naive implementation here, or copied
// from the ONNX backend test data (onnx/backend/test/data/node/test_<case>).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "ops/layout_test_util.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using testing::F32;
using testing::RandomTensor;
using testing::RunOp;
using testing::TensorsNear;
using testing::ToNchw;
using testing::ToNhwc;

using MiscTest = testing::OpFamilyTest<RegisterMiscOps>;

Tensor I64(std::vector<int64_t> v, std::vector<int64_t> dims) {
  return Tensor::FromVector<int64_t>(v, std::move(dims), true);
}
std::vector<float> Iota(int n, float start = 1) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

// ----------------------------------------------------------------------------- TopK

TEST_F(MiscTest, TopKLargestAlongAxis1) {
  auto out =
      RunOp(reg_, "TopK", {F32(Iota(12, 0), {3, 4}), I64({3}, {1})}, {{"axis", Attr::Int(1)}}, 2);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorsNear((*out)[0], F32({3, 2, 1, 7, 6, 5, 11, 10, 9}, {3, 3})));
  EXPECT_TRUE((*out)[1].BitwiseEqual(I64({3, 2, 1, 3, 2, 1, 3, 2, 1}, {3, 3})));
}

TEST_F(MiscTest, TopKTiesGoToLowerIndex) {
  Tensor x = F32({1, 3, 3, 2, 3, 1}, {6});
  auto big = RunOp(reg_, "TopK", {x, I64({4}, {1})}, {}, 2);
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_TRUE((*big)[0].BitwiseEqual(F32({3, 3, 3, 2}, {4})));
  EXPECT_TRUE((*big)[1].BitwiseEqual(I64({1, 2, 4, 3}, {4})));
  auto small = RunOp(reg_, "TopK", {x, I64({3}, {1})}, {{"largest", Attr::Int(0)}}, 2);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_TRUE((*small)[0].BitwiseEqual(F32({1, 1, 2}, {3})));
  EXPECT_TRUE((*small)[1].BitwiseEqual(I64({0, 5, 3}, {3})));
}

// Random int32 data with many ties, every axis, largest and smallest, against a stable sort.
TEST_F(MiscTest, TopKMatchesStableSortOnRandomInts) {
  Tensor x = RandomTensor(DataType::kInt32, {3, 7, 4}, 7, -3, 3);
  for (int axis = 0; axis < 3; ++axis) {
    for (int largest = 0; largest < 2; ++largest) {
      const int64_t k = x.dim(axis) - 1;
      auto out = RunOp(reg_, "TopK", {x, I64({k}, {1})},
                       {{"axis", Attr::Int(axis - 3)}, {"largest", Attr::Int(largest)}}, 2);
      ASSERT_TRUE(out.ok()) << out.status();
      std::vector<int64_t> od = x.dims();
      od[axis] = k;
      ASSERT_EQ((*out)[0].dims(), od);
      std::vector<int64_t> st = {28, 4, 1};
      std::vector<int64_t> ost = {od[1] * od[2], od[2], 1};
      const int32_t* xv = x.data<int32_t>();
      for (int64_t a = 0; a < 3; ++a) {
        for (int64_t b = 0; b < 7; ++b) {
          for (int64_t c = 0; c < 4; ++c) {
            int64_t pos[3] = {a, b, c};
            if (pos[axis] != 0) continue;
            std::vector<int64_t> idx(x.dim(axis));
            std::iota(idx.begin(), idx.end(), 0);
            auto val = [&](int64_t j) {
              int64_t p[3] = {a, b, c};
              p[axis] = j;
              return xv[p[0] * st[0] + p[1] * st[1] + p[2] * st[2]];
            };
            std::stable_sort(idx.begin(), idx.end(), [&](int64_t i, int64_t j) {
              return largest ? val(i) > val(j) : val(i) < val(j);
            });
            for (int64_t j = 0; j < k; ++j) {
              int64_t p[3] = {a, b, c};
              p[axis] = j;
              const int64_t o = p[0] * ost[0] + p[1] * ost[1] + p[2] * ost[2];
              EXPECT_EQ((*out)[0].data<int32_t>()[o], val(idx[j]));
              EXPECT_EQ((*out)[1].data<int64_t>()[o], idx[j]);
            }
          }
        }
      }
    }
  }
}

TEST_F(MiscTest, TopKOpset9AttributeAndDouble) {
  Tensor x = Tensor::FromVector<double>({0.5, -1, 2.5, 2}, {2, 2}, true);
  auto out = RunOp(reg_, "TopK", {x}, {{"k", Attr::Int(1)}, {"axis", Attr::Int(0)}}, 2, 9);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].BitwiseEqual(Tensor::FromVector<double>({2.5, 2}, {1, 2}, true)));
  EXPECT_TRUE((*out)[1].BitwiseEqual(I64({1, 1}, {1, 2})));
}

TEST_F(MiscTest, TopKRejectsBadK) {
  Tensor x = F32(Iota(4), {4});
  EXPECT_EQ(RunOp(reg_, "TopK", {x, I64({5}, {1})}, {}, 2).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(RunOp(reg_, "TopK", {x, I64({-1}, {1})}, {}, 2).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(RunOp(reg_, "TopK", {x, I64({1, 2}, {2})}, {}, 2).ok());
  EXPECT_FALSE(RunOp(reg_, "TopK", {x, I64({1}, {1})}, {{"axis", Attr::Int(1)}}, 2).ok());
}

TEST_F(MiscTest, TopKInfersShapeFromConstantK) {
  const OpSchema* s = reg_.Find("", "TopK");
  Node n;
  n.op_type = "TopK";
  n.inputs = {"x", "k"};
  n.outputs = {"v", "i"};
  Tensor k = I64({2}, {1});
  std::vector<ValueInfo> outs;
  ASSERT_TRUE(RunInfer(*s, n, 18, {{DataType::kFloat32, Shape({5, -1})}, {DataType::kInt64, {1}}},
                       {nullptr, &k}, &outs)
                  .ok());
  EXPECT_EQ(outs[0].shape.ToString(), "[5,2]");
  EXPECT_EQ(outs[1].dtype, DataType::kInt64);
}

// ----------------------------------------------------------------------------- NMS

const std::vector<float> kNmsBoxes = {0, 0,  1, 1,  0, 0.1f,  1, 1.1f,  0, -0.1f, 1, 0.9f,
                                      0, 10, 1, 11, 0, 10.1f, 1, 11.1f, 0, 100,   1, 101};
const std::vector<float> kNmsScores = {0.9f, 0.75f, 0.6f, 0.95f, 0.5f, 0.3f};

// ONNX test_nonmaxsuppression_suppress_by_IOU.
TEST_F(MiscTest, NmsSuppressByIou) {
  auto out = RunOp(reg_, "NonMaxSuppression",
                   {F32(kNmsBoxes, {1, 6, 4}), F32(kNmsScores, {1, 1, 6}), I64({3}, {1}),
                    F32({0.5f}, {1}), F32({0.0f}, {1})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].BitwiseEqual(I64({0, 0, 3, 0, 0, 0, 0, 0, 5}, {3, 3})));
}

// ONNX test_nonmaxsuppression_two_classes (limit 2 per class) and a score threshold.
TEST_F(MiscTest, NmsTwoClassesAndScoreThreshold) {
  std::vector<float> scores = kNmsScores;
  scores.insert(scores.end(), kNmsScores.begin(), kNmsScores.end());
  auto out = RunOp(reg_, "NonMaxSuppression",
                   {F32(kNmsBoxes, {1, 6, 4}), F32(scores, {1, 2, 6}), I64({2}, {1}),
                    F32({0.5f}, {1}), F32({0.0f}, {1})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].BitwiseEqual(I64({0, 0, 3, 0, 0, 0, 0, 1, 3, 0, 1, 0}, {4, 3})));
  // Only scores > 0.4 survive: boxes 3, 0 (box 5 at 0.3 and box 4 is suppressed).
  auto thr = RunOp(reg_, "NonMaxSuppression",
                   {F32(kNmsBoxes, {1, 6, 4}), F32(kNmsScores, {1, 1, 6}), I64({10}, {1}),
                    F32({0.5f}, {1}), F32({0.4f}, {1})});
  ASSERT_TRUE(thr.ok()) << thr.status();
  EXPECT_TRUE((*thr)[0].BitwiseEqual(I64({0, 0, 3, 0, 0, 0}, {2, 3})));
}

// Center-point boxes, flipped corners, identical boxes and absent optional inputs.
TEST_F(MiscTest, NmsBoxFormatsAndDefaults) {
  std::vector<float> centers = {0.5f, 0.5f,  1, 1, 0.5f, 0.6f,  1, 1, 0.5f, 0.4f,   1, 1,
                                0.5f, 10.5f, 1, 1, 0.5f, 10.6f, 1, 1, 0.5f, 100.5f, 1, 1};
  auto out =
      RunOp(reg_, "NonMaxSuppression",
            {F32(centers, {1, 6, 4}), F32(kNmsScores, {1, 1, 6}), I64({3}, {1}), F32({0.5f}, {1})},
            {{"center_point_box", Attr::Int(1)}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].BitwiseEqual(I64({0, 0, 3, 0, 0, 0, 0, 0, 5}, {3, 3})));
  std::vector<float> flipped = {1, 1,  0, 0,  0, 0.1f,  1, 1.1f,  0, 0.9f, 1, -0.1f,
                                0, 10, 1, 11, 1, 10.1f, 0, 11.1f, 1, 101,  0, 100};
  auto fl = RunOp(reg_, "NonMaxSuppression",
                  {F32(flipped, {1, 6, 4}), F32(kNmsScores, {1, 1, 6}), I64({3}, {1}),
                   F32({0.5f}, {1}), F32({0.0f}, {1})});
  ASSERT_TRUE(fl.ok()) << fl.status();
  EXPECT_TRUE((*fl)[0].BitwiseEqual(I64({0, 0, 3, 0, 0, 0, 0, 0, 5}, {3, 3})));
  std::vector<float> same(40);
  for (int i = 0; i < 10; ++i) std::copy_n(std::vector<float>{0, 0, 1, 1}.begin(), 4, &same[4 * i]);
  auto id = RunOp(reg_, "NonMaxSuppression",
                  {F32(same, {1, 10, 4}), F32(std::vector<float>(10, 0.9f), {1, 1, 10}),
                   I64({3}, {1}), F32({0.5f}, {1})});
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE((*id)[0].BitwiseEqual(I64({0, 0, 0}, {1, 3})));
  // No max_output_boxes_per_class: nothing is selected.
  auto none =
      RunOp(reg_, "NonMaxSuppression", {F32(kNmsBoxes, {1, 6, 4}), F32(kNmsScores, {1, 1, 6})});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ((*none)[0].dims(), (std::vector<int64_t>{0, 3}));
}

TEST_F(MiscTest, NmsRejectsBadShapes) {
  EXPECT_EQ(RunOp(reg_, "NonMaxSuppression",
                  {F32(kNmsBoxes, {1, 8, 3}), F32(kNmsScores, {1, 1, 6}), I64({3}, {1})})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(RunOp(reg_, "NonMaxSuppression",
                  {F32(kNmsBoxes, {1, 6, 4}), F32(kNmsScores, {1, 2, 3}), I64({3}, {1})})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(RunOp(reg_, "NonMaxSuppression",
                     {F32(kNmsBoxes, {1, 6, 4}), F32(kNmsScores, {1, 1, 6}), I64({3}, {1}),
                      F32({1.5f}, {1})})
                   .ok());
}

// ----------------------------------------------------------------------------- Resize

Tensor Empty() { return Tensor(); }

TEST_F(MiscTest, ResizeNearestUpsampleScales) {
  auto out =
      RunOp(reg_, "Resize", {F32({1, 2, 3, 4}, {1, 1, 2, 2}), Empty(), F32({1, 1, 2, 3}, {4})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].BitwiseEqual(
      F32({1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4}, {1, 1, 4, 6})));
}

// Nearest modes on a 1-D ramp: 4 -> 7 with asymmetric coordinates, x = o * 4/7.
TEST_F(MiscTest, ResizeNearestModes) {
  Tensor x = F32({10, 11, 12, 13}, {4});
  struct Case {
    const char* mode;
    std::vector<float> want;
  };
  // x_orig = 0, .571, 1.143, 1.714, 2.286, 2.857, 3.429
  std::vector<Case> cases = {{"round_prefer_floor", {10, 11, 11, 12, 12, 13, 13}},
                             {"floor", {10, 10, 11, 11, 12, 12, 13}},
                             {"ceil", {10, 11, 12, 12, 13, 13, 13}}};
  for (const auto& c : cases) {
    auto out = RunOp(reg_, "Resize", {x, Empty(), Empty(), I64({7}, {1})},
                     {{"nearest_mode", Attr::String(c.mode)},
                      {"coordinate_transformation_mode", Attr::String("asymmetric")}});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE((*out)[0].BitwiseEqual(F32(c.want, {7}))) << c.mode << (*out)[0].DebugString(7);
  }
  // 2 -> 4 asymmetric: x = 0, .5, 1, 1.5: the .5 ties differ between the round modes.
  Tensor y = F32({1, 2}, {2});
  auto pf = RunOp(reg_, "Resize", {y, Empty(), F32({2}, {1})},
                  {{"coordinate_transformation_mode", Attr::String("asymmetric")}});
  auto pc = RunOp(reg_, "Resize", {y, Empty(), F32({2}, {1})},
                  {{"coordinate_transformation_mode", Attr::String("asymmetric")},
                   {"nearest_mode", Attr::String("round_prefer_ceil")}});
  ASSERT_TRUE(pf.ok() && pc.ok());
  EXPECT_TRUE((*pf)[0].BitwiseEqual(F32({1, 1, 2, 2}, {4})));
  EXPECT_TRUE((*pc)[0].BitwiseEqual(F32({1, 2, 2, 2}, {4})));
}

TEST_F(MiscTest, ResizeNearestIntegersAndOpset10) {
  Tensor x = Tensor::FromVector<int32_t>({1, 2, 3, 4}, {2, 2}, true);
  auto out = RunOp(reg_, "Resize", {x, F32({2, 1.5f}, {2})}, {}, 1, 10);
  ASSERT_TRUE(out.ok()) << out.status();
  // Opset 10: asymmetric, truncating when upsampling: columns 0, 0, 1 (x = 0, .67, 1.33).
  EXPECT_TRUE((*out)[0].BitwiseEqual(
      Tensor::FromVector<int32_t>({1, 1, 2, 1, 1, 2, 3, 3, 4, 3, 3, 4}, {4, 3}, true)));
}

// ONNX test_resize_upsample_scales_linear: 2x2 -> 4x4, half_pixel.
TEST_F(MiscTest, ResizeLinearHalfPixel) {
  auto out =
      RunOp(reg_, "Resize", {F32({1, 2, 3, 4}, {1, 1, 2, 2}), Empty(), F32({1, 1, 2, 2}, {4})},
            {{"mode", Attr::String("linear")}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorsNear((*out)[0], F32({1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25,
                                          3.5, 3, 3.25, 3.75, 4},
                                         {1, 1, 4, 4})));
}

// ONNX test data: align_corners downsampling uses the unrounded resized length.
TEST_F(MiscTest, ResizeLinearOnnxCases) {
  auto ac =
      RunOp(reg_, "Resize", {F32(Iota(8), {1, 1, 2, 4}), Empty(), F32({1, 1, 0.6f, 0.6f}, {4})},
            {{"mode", Attr::String("linear")},
             {"coordinate_transformation_mode", Attr::String("align_corners")}});
  ASSERT_TRUE(ac.ok()) << ac.status();
  EXPECT_TRUE(TensorsNear((*ac)[0], F32({1, 3.142857074737549f}, {1, 1, 1, 2})));
  auto pt =
      RunOp(reg_, "Resize", {F32(Iota(16), {1, 1, 4, 4}), Empty(), Empty(), I64({1, 1, 3, 1}, {4})},
            {{"mode", Attr::String("linear")},
             {"coordinate_transformation_mode", Attr::String("pytorch_half_pixel")}});
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_TRUE(TensorsNear((*pt)[0], F32({1.6666666f, 7, 12.333333f}, {1, 1, 3, 1})));
  auto crop = RunOp(reg_, "Resize",
                    {F32(Iota(16), {1, 1, 4, 4}), F32({0, 0, 0.4f, 0.6f, 1, 1, 1.2f, 1.7f}, {8}),
                     Empty(), I64({1, 1, 3, 3}, {4})},
                    {{"mode", Attr::String("linear")},
                     {"coordinate_transformation_mode", Attr::String("tf_crop_and_resize")},
                     {"extrapolation_value", Attr::Float(10)}});
  ASSERT_TRUE(crop.ok()) << crop.status();
  EXPECT_TRUE(TensorsNear((*crop)[0], F32({7.6f, 10, 10, 12.4f, 10, 10, 10, 10, 10}, {1, 1, 3, 3}),
                          1e-5, 1e-5));
}

// ONNX test data for cubic: exclude_outside with A = -0.5, sizes, asymmetric upsampling.
TEST_F(MiscTest, ResizeCubicOnnxCases) {
  Tensor x = F32(Iota(16), {1, 1, 4, 4});
  auto ex = RunOp(reg_, "Resize", {x, Empty(), F32({1, 1, 0.8f, 0.8f}, {4})},
                  {{"mode", Attr::String("cubic")},
                   {"cubic_coeff_a", Attr::Float(-0.5f)},
                   {"exclude_outside", Attr::Int(1)}});
  ASSERT_TRUE(ex.ok()) << ex.status();
  EXPECT_TRUE(TensorsNear((*ex)[0], F32({1.3681267f, 2.6695013f, 4.0133367f, 6.573625f, 7.875f,
                                         9.218835f, 11.948966f, 13.250341f, 14.594176f},
                                        {1, 1, 3, 3})));
  auto sz = RunOp(reg_, "Resize", {x, Empty(), Empty(), I64({1, 1, 3, 3}, {4})},
                  {{"mode", Attr::String("cubic")}});
  ASSERT_TRUE(sz.ok()) << sz.status();
  EXPECT_TRUE(TensorsNear((*sz)[0], F32({1.630787f, 3.0046296f, 4.3784723f, 7.126157f, 8.5,
                                         9.873842f, 12.621528f, 13.99537f, 15.369213f},
                                        {1, 1, 3, 3})));
  auto as = RunOp(reg_, "Resize", {x, Empty(), F32({1, 1, 2, 2}, {4})},
                  {{"mode", Attr::String("cubic")},
                   {"coordinate_transformation_mode", Attr::String("asymmetric")}});
  ASSERT_TRUE(as.ok()) << as.status();
  ASSERT_EQ((*as)[0].dims(), (std::vector<int64_t>{1, 1, 8, 8}));
  const float want_row1[8] = {2.625, 3.03125, 3.625, 4.125, 4.625, 5.21875, 5.625, 5.71875};
  const float want_row7[8] = {13.375, 13.78125, 14.375, 14.875, 15.375, 15.96875, 16.375, 16.46875};
  for (int j = 0; j < 8; ++j) {
    EXPECT_NEAR((*as)[0].data<float>()[8 + j], want_row1[j], 1e-5);
    EXPECT_NEAR((*as)[0].data<float>()[56 + j], want_row7[j], 1e-5);
  }
}

// Naive bilinear on random NCHW data: each output point computed directly from the 4 corners.
TEST_F(MiscTest, ResizeLinearMatchesNaiveOnRandomData) {
  const int64_t n = 2, c = 3, h = 5, w = 7, oh = 8, ow = 4;
  Tensor x = RandomTensor(DataType::kFloat64, {n, c, h, w}, 11);
  for (const char* coord : {"half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"}) {
    auto out = RunOp(reg_, "Resize", {x, Empty(), Empty(), I64({n, c, oh, ow}, {4})},
                     {{"mode", Attr::String("linear")},
                      {"coordinate_transformation_mode", Attr::String(coord)}});
    ASSERT_TRUE(out.ok()) << out.status();
    const std::string m = coord;
    auto src = [&](int64_t o, int64_t in, int64_t on) {
      const double s = static_cast<double>(on) / in;
      if (m == "half_pixel") return (o + 0.5) / s - 0.5;
      if (m == "pytorch_half_pixel") return on > 1 ? (o + 0.5) / s - 0.5 : 0.0;
      if (m == "align_corners") return on == 1 ? 0.0 : o * (in - 1.0) / (on - 1.0);
      return o / s;
    };
    const double* xv = x.data<double>();
    for (int64_t b = 0; b < n * c; ++b) {
      for (int64_t i = 0; i < oh; ++i) {
        for (int64_t j = 0; j < ow; ++j) {
          double y = std::clamp(src(i, h, oh), 0.0, h - 1.0);
          double xx = std::clamp(src(j, w, ow), 0.0, w - 1.0);
          int64_t y0 = static_cast<int64_t>(y), x0 = static_cast<int64_t>(xx);
          int64_t y1 = std::min(y0 + 1, h - 1), x1 = std::min(x0 + 1, w - 1);
          double dy = y - y0, dx = xx - x0;
          const double* p = xv + b * h * w;
          double want = (1 - dy) * ((1 - dx) * p[y0 * w + x0] + dx * p[y0 * w + x1]) +
                        dy * ((1 - dx) * p[y1 * w + x0] + dx * p[y1 * w + x1]);
          EXPECT_NEAR((*out)[0].data<double>()[(b * oh + i) * ow + j], want, 1e-12) << coord;
        }
      }
    }
  }
}

TEST_F(MiscTest, ResizeAxesAndKeepAspectRatio) {
  Tensor x = RandomTensor(DataType::kFloat32, {1, 2, 4, 6}, 3);
  // axes = [3, 2] with sizes (12, 2); not_larger picks scale min(12/6, 2/4) = 0.5.
  auto out = RunOp(
      reg_, "Resize", {x, Empty(), Empty(), I64({12, 2}, {2})},
      {{"axes", Attr::Ints({3, 2})}, {"keep_aspect_ratio_policy", Attr::String("not_larger")}});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ((*out)[0].dims(), (std::vector<int64_t>{1, 2, 2, 3}));
  // half_pixel nearest with scale 0.5: x = 2o + 0.5 -> round_prefer_floor -> 2o.
  for (int64_t ch = 0; ch < 2; ++ch) {
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < 3; ++j) {
        EXPECT_EQ((*out)[0].data<float>()[(ch * 2 + i) * 3 + j],
                  x.data<float>()[(ch * 4 + 2 * i) * 6 + 2 * j]);
      }
    }
  }
  auto big = RunOp(
      reg_, "Resize", {x, Empty(), Empty(), I64({12, 2}, {2})},
      {{"axes", Attr::Ints({3, 2})}, {"keep_aspect_ratio_policy", Attr::String("not_smaller")}});
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ((*big)[0].dims(), (std::vector<int64_t>{1, 2, 8, 12}));
}

TEST_F(MiscTest, ResizeRejectsBadArguments) {
  Tensor x = F32(Iota(4), {1, 1, 2, 2});
  auto code = [&](std::vector<Tensor> in, AttrMap attrs) {
    return RunOp(reg_, "Resize", in, attrs).status().code();
  };
  EXPECT_EQ(code({x, Empty(), F32({1, 1, 2, 2}, {4}), I64({1, 1, 4, 4}, {4})}, {}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code({x, Empty(), F32({1, 2}, {2})}, {}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code({x, Empty(), F32({1, 1, 2, 2}, {4})}, {{"mode", Attr::String("area")}}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code({x, Empty(), F32({1, 1, -2, 2}, {4})}, {}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code({x, Empty(), F32({1, 1, 2, 2}, {4})},
                 {{"coordinate_transformation_mode", Attr::String("tf_crop_and_resize")}}),
            StatusCode::kInvalidArgument);
}

// Opset 18 antialias (values as in ONNX's test_resize_downsample_scales_{linear,cubic}_antialias):
// the kernel is stretched by 1 / scale when downscaling.
TEST_F(MiscTest, ResizeAntialias) {
  Tensor x = F32(Iota(16), {1, 1, 4, 4});
  auto lin = RunOp(reg_, "Resize", {x, Empty(), F32({1, 1, 0.6f, 0.6f}, {4})},
                   {{"mode", Attr::String("linear")}, {"antialias", Attr::Int(1)}});
  ASSERT_TRUE(lin.ok()) << lin.status();
  EXPECT_TRUE(TensorsNear((*lin)[0], F32({2.875f, 4.5f, 9.375f, 11.0f}, {1, 1, 2, 2})));
  auto cub = RunOp(reg_, "Resize", {x, Empty(), F32({1, 1, 0.6f, 0.6f}, {4})},
                   {{"mode", Attr::String("cubic")}, {"antialias", Attr::Int(1)}});
  ASSERT_TRUE(cub.ok()) << cub.status();
  EXPECT_TRUE(
      TensorsNear((*cub)[0], F32({2.5180721f, 4.2858863f, 9.589329f, 11.357142f}, {1, 1, 2, 2})));
  // Upscaling ignores antialias.
  auto up =
      RunOp(reg_, "Resize", {F32({1, 2, 3, 4}, {1, 1, 2, 2}), Empty(), F32({1, 1, 2, 2}, {4})},
            {{"mode", Attr::String("linear")}, {"antialias", Attr::Int(1)}});
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_TRUE(TensorsNear((*up)[0], F32({1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25,
                                         3.5, 3, 3.25, 3.75, 4},
                                        {1, 1, 4, 4})));
}

TEST_F(MiscTest, UpsampleOpset7And9) {
  Tensor x = F32({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor want =
      F32({1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4}, {1, 1, 4, 6});
  auto v9 = RunOp(reg_, "Upsample", {x, F32({1, 1, 2, 3}, {4})}, {}, 1, 9);
  ASSERT_TRUE(v9.ok()) << v9.status();
  EXPECT_TRUE((*v9)[0].BitwiseEqual(want));
  auto v7 = RunOp(reg_, "Upsample", {x}, {{"scales", Attr::Floats({1, 1, 2, 3})}}, 1, 7);
  ASSERT_TRUE(v7.ok()) << v7.status();
  EXPECT_TRUE((*v7)[0].BitwiseEqual(want));
  // Linear, asymmetric: x = o / 2 on [1, 2] -> 1, 1.5, 2, 2.
  auto lin = RunOp(reg_, "Upsample", {F32({1, 2}, {1, 2}), F32({1, 2}, {2})},
                   {{"mode", Attr::String("linear")}}, 1, 9);
  ASSERT_TRUE(lin.ok()) << lin.status();
  EXPECT_TRUE(TensorsNear((*lin)[0], F32({1, 1.5f, 2, 2}, {1, 4})));
}

TEST_F(MiscTest, ResizeInfersShape) {
  const OpSchema* s = reg_.Find("", "Resize");
  Node n;
  n.op_type = "Resize";
  n.inputs = {"x", "", "scales"};
  n.outputs = {"y"};
  Tensor scales = F32({1, 1, 2, 0.5f}, {4});
  std::vector<ValueInfo> outs;
  ASSERT_TRUE(RunInfer(*s, n, 13,
                       {{DataType::kFloat32, Shape({1, -1, 3, 8})}, {}, {DataType::kFloat32, {4}}},
                       {nullptr, nullptr, &scales}, &outs)
                  .ok());
  EXPECT_EQ(outs[0].shape.ToString(), "[1,?,6,4]");
}

// ----------------------------------------------------------------------------- NHWC Resize

// Per-axis values of an NCHW tensor listed in NHWC axis order ([n, c, s...] -> [n, s..., c]).
template <typename V>
std::vector<V> AxisValuesToNhwc(std::vector<V> v) {
  std::rotate(v.begin() + 1, v.begin() + 2, v.end());
  return v;
}

struct LayoutCase {
  const char* mode;
  const char* coord;
  const char* nearest;
  std::vector<int64_t> dims;   // NCHW
  std::vector<float> scales;   // NCHW order; empty: use sizes
  std::vector<int64_t> sizes;  // NCHW order
  std::vector<float> roi;      // NCHW order, starts then ends (tf_crop_and_resize)
  AttrMap extra;
};

// Resize with data_format="NHWC" on ToNhwc(x), with scales / sizes / roi in NHWC order, equals
// ToNhwc(Resize(x)): exactly (the same arithmetic in the same order, whichever kernel runs)
// unless linear / cubic also resize the channel axis, whose pass then runs in another order.
void ExpectNhwcMatchesNchw(const OpRegistry& reg, const LayoutCase& c, DataType dtype,
                           uint32_t seed) {
  const int rank = static_cast<int>(c.dims.size());
  const bool u8 = dtype == DataType::kUInt8;
  Tensor x = RandomTensor(dtype, c.dims, seed, u8 ? 0 : -50, u8 ? 255 : 50);
  AttrMap attrs = {{"mode", Attr::String(c.mode)},
                   {"coordinate_transformation_mode", Attr::String(c.coord)},
                   {"nearest_mode", Attr::String(c.nearest)},
                   {"extrapolation_value", Attr::Float(-7.5f)}};
  attrs.insert(c.extra.begin(), c.extra.end());
  Tensor roi_nchw, roi_nhwc, scales_nchw, scales_nhwc, sizes_nchw, sizes_nhwc;
  if (!c.roi.empty()) {
    std::vector<float> starts(c.roi.begin(), c.roi.begin() + rank);
    std::vector<float> ends(c.roi.begin() + rank, c.roi.end());
    std::vector<float> r = AxisValuesToNhwc(starts);
    const std::vector<float> e = AxisValuesToNhwc(ends);
    r.insert(r.end(), e.begin(), e.end());
    roi_nchw = F32(c.roi, {2 * rank});
    roi_nhwc = F32(r, {2 * rank});
  }
  if (!c.scales.empty()) {
    scales_nchw = F32(c.scales, {rank});
    scales_nhwc = F32(AxisValuesToNhwc(c.scales), {rank});
  } else {
    sizes_nchw = I64(c.sizes, {rank});
    sizes_nhwc = I64(AxisValuesToNhwc(c.sizes), {rank});
  }
  auto want = RunOp(reg, "Resize", {x, roi_nchw, scales_nchw, sizes_nchw}, attrs);
  ASSERT_TRUE(want.ok()) << want.status();
  attrs["data_format"] = Attr::String("NHWC");
  auto got = RunOp(reg, "Resize", {ToNhwc(x), roi_nhwc, scales_nhwc, sizes_nhwc}, attrs);
  ASSERT_TRUE(got.ok()) << got.status();
  const std::string what = std::string(c.mode) + " " + c.coord + " " + c.nearest + " " +
                           x.TypeString() + " -> " + (*want)[0].TypeString();
  const bool channels_resized = c.scales.empty() ? c.sizes[1] != c.dims[1] : c.scales[1] != 1.0f;
  if (std::string(c.mode) == "nearest" || !channels_resized) {
    EXPECT_TRUE((*got)[0].BitwiseEqual(ToNhwc((*want)[0]))) << what;
  }
  EXPECT_TRUE(TensorsNear((*got)[0], ToNhwc((*want)[0]), 1e-6, 1e-5)) << what;
  const Tensor& y = (*want)[0];
  bool varies = false;
  for (int64_t i = 1; i < y.num_elements() && !varies; ++i) {
    varies = y.GetAsDouble(i) != y.GetAsDouble(0);
  }
  EXPECT_TRUE(varies) << what;
}

TEST_F(MiscTest, ResizeNhwcEqualsTransposedNchw) {
  const std::vector<float> up = {1, 1, 1.75f, 2.5f}, down = {1, 1, 0.6f, 0.45f};
  const std::vector<float> roi = {0, 0, 0.2f, -0.3f, 1, 1, 0.9f, 1.4f};
  std::vector<LayoutCase> cases;
  for (const char* mode : {"nearest", "linear", "cubic"}) {
    for (const char* coord : {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                              "align_corners", "asymmetric", "tf_half_pixel_for_nn"}) {
      for (const char* nearest : {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}) {
        if (std::string(mode) != "nearest" && std::string(nearest) != "floor") continue;
        cases.push_back({mode, coord, nearest, {2, 3, 5, 4}, up, {}, {}, {}});
        cases.push_back({mode, coord, nearest, {1, 4, 9, 11}, down, {}, {}, {}});
        cases.push_back({mode, coord, nearest, {2, 3, 5, 7}, {}, {2, 3, 8, 3}, {}, {}});
      }
    }
    // Crop box partly outside the input: extrapolation_value there.
    cases.push_back({mode,
                     "tf_crop_and_resize",
                     "round_prefer_floor",
                     {1, 3, 6, 5},
                     {},
                     {1, 3, 7, 9},
                     roi,
                     {}});
    // Antialias (downscaling only), exclude_outside, a resized channel axis (not the fast
    // path), 3-D spatial and 1-D spatial.
    cases.push_back(
        {mode, "half_pixel", "floor", {1, 3, 9, 10}, down, {}, {}, {{"antialias", Attr::Int(1)}}});
    cases.push_back({mode,
                     "asymmetric",
                     "floor",
                     {1, 3, 6, 5},
                     up,
                     {},
                     {},
                     {{"exclude_outside", Attr::Int(1)}}});
    cases.push_back({mode, "half_pixel", "floor", {2, 4, 3, 5}, {1, 0.5f, 2, 1.5f}, {}, {}, {}});
    cases.push_back(
        {mode, "align_corners", "floor", {1, 3, 3, 4, 5}, {1, 1, 2, 1.5f, 0.8f}, {}, {}, {}});
    cases.push_back({mode, "half_pixel", "floor", {2, 3, 6}, {1, 1, 1.5f}, {}, {}, {}});
  }
  uint32_t seed = 1;
  for (const LayoutCase& c : cases) ExpectNhwcMatchesNchw(reg_, c, DataType::kFloat32, seed++);
  // Other dtypes: double, and uint8 / int32 images (rounded after interpolation).
  for (DataType dt : {DataType::kFloat64, DataType::kUInt8, DataType::kInt32}) {
    for (const char* mode : {"nearest", "linear", "cubic"}) {
      LayoutCase c{mode, "half_pixel", "round_prefer_floor", {1, 3, 6, 5}, up, {}, {}, {}};
      ExpectNhwcMatchesNchw(reg_, c, dt, seed++);
    }
  }
}

// axes (opset 18) name NHWC axes in NHWC order too.
TEST_F(MiscTest, ResizeNhwcAxes) {
  Tensor x = RandomTensor(DataType::kFloat32, {2, 3, 5, 4}, 7);
  auto want = RunOp(reg_, "Resize", {x, Empty(), Empty(), I64({8, 6}, {2})},
                    {{"mode", Attr::String("linear")}, {"axes", Attr::Ints({2, 3})}}, 1, 18);
  auto got = RunOp(reg_, "Resize", {ToNhwc(x), Empty(), Empty(), I64({8, 6}, {2})},
                   {{"mode", Attr::String("linear")},
                    {"axes", Attr::Ints({1, 2})},
                    {"data_format", Attr::String("NHWC")}},
                   1, 18);
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_EQ((*got)[0].dims(), (std::vector<int64_t>{2, 8, 6, 3}));
  EXPECT_TRUE((*got)[0].BitwiseEqual(ToNhwc((*want)[0])));
}

// Hand-checked NHWC: 1x2x2x2 (two channels) -> 1x4x4x2 half_pixel linear; channel 0 is the ONNX
// test_resize_upsample_scales_linear image, channel 1 is 10x it.
TEST_F(MiscTest, ResizeNhwcLinearHandChecked) {
  Tensor x = F32({1, 10, 2, 20, 3, 30, 4, 40}, {1, 2, 2, 2});
  auto out = RunOp(reg_, "Resize", {x, Empty(), F32({1, 2, 2, 1}, {4})},
                   {{"mode", Attr::String("linear")}, {"data_format", Attr::String("NHWC")}});
  ASSERT_TRUE(out.ok()) << out.status();
  const std::vector<float> c0 = {1,   1.25, 1.75, 2,   1.5, 1.75, 2.25, 2.5,
                                 2.5, 2.75, 3.25, 3.5, 3,   3.25, 3.75, 4};
  std::vector<float> want;
  for (float v : c0) want.insert(want.end(), {v, 10 * v});
  EXPECT_TRUE(TensorsNear((*out)[0], F32(want, {1, 4, 4, 2})));
}

TEST_F(MiscTest, UpsampleNhwc) {
  Tensor x = RandomTensor(DataType::kFloat32, {1, 2, 3, 4}, 11);
  for (const char* mode : {"nearest", "linear"}) {
    auto want =
        RunOp(reg_, "Upsample", {x, F32({1, 1, 2, 3}, {4})}, {{"mode", Attr::String(mode)}}, 1, 9);
    auto got = RunOp(reg_, "Upsample", {ToNhwc(x), F32({1, 2, 3, 1}, {4})},
                     {{"mode", Attr::String(mode)}, {"data_format", Attr::String("NHWC")}}, 1, 9);
    ASSERT_TRUE(want.ok() && got.ok()) << mode;
    EXPECT_TRUE((*got)[0].BitwiseEqual(ToNhwc((*want)[0]))) << mode;
  }
}

TEST_F(MiscTest, ResizeRejectsBadDataFormat) {
  Tensor x = F32({1, 2, 3, 4}, {1, 1, 2, 2});
  for (const char* f : {"NWHC", "nhwc", "", "NCDHW"}) {
    auto r = RunOp(reg_, "Resize", {x, Empty(), F32({1, 1, 2, 2}, {4})},
                   {{"data_format", Attr::String(f)}});
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << f;
    auto u = RunOp(reg_, "Upsample", {x, F32({1, 1, 2, 2}, {4})},
                   {{"data_format", Attr::String(f)}}, 1, 9);
    EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument) << f;
  }
  const OpSchema* s = reg_.Find("", "Resize");
  Node n;
  n.op_type = "Resize";
  n.inputs = {"x", "", "scales"};
  n.outputs = {"y"};
  n.attrs["data_format"] = Attr::String("CHWN");
  std::vector<ValueInfo> outs;
  EXPECT_FALSE(RunInfer(*s, n, 13, {{DataType::kFloat32, Shape({1, 2, 3, 4})}, {}, {}},
                        {nullptr, nullptr, nullptr}, &outs)
                   .ok());
}

// Prints (does not assert) the time of a 1x128x128x64 -> 256x256 bilinear resize, NHWC vs NCHW.
TEST_F(MiscTest, ResizeBilinearNhwcVsNchwTiming) {
  Tensor nhwc = RandomTensor(DataType::kFloat32, {1, 128, 128, 64}, 3);
  Tensor nchw = ToNchw(nhwc);
  auto time_ms = [&](const Tensor& x, const char* format, Tensor* y) {
    const std::vector<int64_t> sizes = std::string(format) == "NHWC"
                                           ? std::vector<int64_t>{1, 256, 256, 64}
                                           : std::vector<int64_t>{1, 64, 256, 256};
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      auto r = RunOp(reg_, "Resize", {x, Empty(), Empty(), I64(sizes, {4})},
                     {{"mode", Attr::String("linear")}, {"data_format", Attr::String(format)}});
      const auto t1 = std::chrono::steady_clock::now();
      EXPECT_TRUE(r.ok()) << r.status();
      if (r.ok()) *y = (*r)[0];
      best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    return best;
  };
  Tensor y_nhwc, y_nchw;
  const double t_nhwc = time_ms(nhwc, "NHWC", &y_nhwc);
  const double t_nchw = time_ms(nchw, "NCHW", &y_nchw);
  std::printf(
      "[ timing ] Resize bilinear 1x128x128x64 -> 256x256 float32: NHWC %.2f ms, NCHW "
      "%.2f ms (best of 3)\n",
      t_nhwc, t_nchw);
  EXPECT_TRUE(y_nhwc.BitwiseEqual(ToNhwc(y_nchw)));
}

}  // namespace
}  // namespace kiln
