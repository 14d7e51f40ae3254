// Tests for the extra op family: hand-computed cases plus values from the ONNX backend tests.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/base/op_schema.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using testing::RunOp;
using testing::TensorsNear;

class ExtraOps : public ::testing::Test {
 protected:
  ExtraOps() { RegisterExtraOps(r_); }
  OpRegistry r_;
};

Tensor F(std::vector<float> v, std::vector<int64_t> dims) {
  return Tensor::FromVector<float>(v, std::move(dims), true);
}

TEST_F(ExtraOps, DropoutIsIdentityWithTrueMask) {
  Tensor x = testing::RandomTensor(DataType::kFloat32, {3, 4}, 1);
  auto out = RunOp(r_, "Dropout", {x, Tensor::Scalar(0.5f)}, {}, 2, 13);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].BitwiseEqual(x));
  ASSERT_EQ((*out)[1].dtype(), DataType::kBool);
  for (int64_t i = 0; i < 12; ++i) EXPECT_TRUE((*out)[1].data<bool>()[i]);
  // Training with ratio 0 is still the identity; with ratio > 0 it is refused clearly.
  auto zero = RunOp(r_, "Dropout", {x, Tensor::Scalar(0.0f), Tensor::Scalar(true)}, {}, 1, 13);
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_TRUE((*zero)[0].BitwiseEqual(x));
  auto train = RunOp(r_, "Dropout", {x, Tensor::Scalar(0.5f), Tensor::Scalar(true)}, {}, 1, 13);
  ASSERT_FALSE(train.ok());
  EXPECT_NE(train.status().ToString().find("training_mode"), std::string::npos);
  EXPECT_FALSE(RunOp(r_, "Dropout", {x, Tensor::Scalar(1.5f)}, {}, 1, 13).ok());
  // Opset 7 form: ratio attribute, mask of the input's type.
  auto old = RunOp(r_, "Dropout", {x}, {{"ratio", Attr::Float(0.2f)}}, 2, 7);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ((*old)[1].dtype(), DataType::kFloat32);
  EXPECT_EQ((*old)[1].data<float>()[5], 1.0f);
}

TEST_F(ExtraOps, GridSampleBilinearNearestAlignCorners) {
  Tensor x = F({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor grid = F({-1, -1, 1, 1, 0, 0, 0.5f, -1}, {1, 1, 4, 2});
  auto out = RunOp(r_, "GridSample", {x, grid}, {{"align_corners", Attr::Int(1)}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorsNear((*out)[0], F({1, 4, 2.5f, 1.75f}, {1, 1, 1, 4})));
  // align_corners=0, zeros padding: the corner (-1,-1) lies half a pixel outside -> 1/4 of x00.
  out = RunOp(r_, "GridSample", {x, grid});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NEAR((*out)[0].data<float>()[0], 0.25f, 1e-6);
  EXPECT_NEAR((*out)[0].data<float>()[2], 2.5f, 1e-6);
  out = RunOp(r_, "GridSample", {x, grid},
              {{"mode", Attr::String("nearest")}, {"align_corners", Attr::Int(1)}});
  ASSERT_TRUE(out.ok()) << out.status();
  // (0.5, -1) -> x = 0.75 -> column 1, row 0 -> 2; (0,0) -> 0.5 rounds half to even -> (0,0).
  EXPECT_TRUE(TensorsNear((*out)[0], F({1, 4, 1, 2}, {1, 1, 1, 4})));
  EXPECT_FALSE(RunOp(r_, "GridSample", {x, grid}, {{"mode", Attr::String("cubic")}}).ok());
  EXPECT_FALSE(RunOp(r_, "GridSample", {x, F({0, 0}, {1, 2})}).ok());
}

TEST_F(ExtraOps, GridSampleOnnxBicubicAndReflection) {
  Tensor x = F({0, 1, 2, 3, 4, 5}, {1, 1, 3, 2});
  Tensor grid = F({-1, -1, -0.5f, -0.5f, -0.2f, -0.2f, 0, 0, 0, 0, -0.2f, -0.2f, 0.5f, 0.5f, 1, 1},
                  {1, 2, 4, 2});
  auto out = RunOp(r_, "GridSample", {x, grid}, {{"mode", Attr::String("bicubic")}});
  ASSERT_TRUE(out.ok()) << out.status();
  // ONNX test_gridsample_bicubic (expected values are rounded to 4 decimals).
  EXPECT_TRUE(TensorsNear(
      (*out)[0],
      F({-0.1406f, 0.3828f, 1.7556f, 2.9688f, 2.9688f, 1.7556f, 5.1445f, 1.3906f}, {1, 1, 2, 4}), 0,
      1e-4));
  Tensor far =
      F({-10, -10, -5, -5, -0.2f, -0.2f, 10, 10, 10, 10, -0.2f, -0.2f, 5, 5, 10, 10}, {1, 2, 4, 2});
  out = RunOp(r_, "GridSample", {x, far}, {{"padding_mode", Attr::String("reflection")}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorsNear((*out)[0], F({2.5f, 0, 1.7f, 2.5f, 2.5f, 1.7f, 5, 2.5f}, {1, 1, 2, 4}),
                          1e-5, 1e-5));
}

TEST_F(ExtraOps, Windows) {
  auto hann = RunOp(r_, "HannWindow", {Tensor::Scalar<int64_t>(4)});
  ASSERT_TRUE(hann.ok()) << hann.status();
  EXPECT_TRUE(TensorsNear((*hann)[0], F({0, 0.5f, 1, 0.5f}, {4})));
  auto sym = RunOp(r_, "HannWindow", {Tensor::Scalar<int32_t>(3)}, {{"periodic", Attr::Int(0)}});
  ASSERT_TRUE(sym.ok()) << sym.status();
  EXPECT_TRUE(TensorsNear((*sym)[0], F({0, 1, 0}, {3})));
  auto ham = RunOp(r_, "HammingWindow", {Tensor::Scalar<int64_t>(2)},
                   {{"output_datatype", Attr::Int(11)}});
  ASSERT_TRUE(ham.ok()) << ham.status();
  ASSERT_EQ((*ham)[0].dtype(), DataType::kFloat64);
  EXPECT_NEAR((*ham)[0].data<double>()[0], 4.0 / 46.0, 1e-12);  // alpha - beta
  EXPECT_NEAR((*ham)[0].data<double>()[1], 1.0, 1e-12);         // alpha + beta
  auto black = RunOp(r_, "BlackmanWindow", {Tensor::Scalar<int64_t>(4)});
  ASSERT_TRUE(black.ok()) << black.status();
  EXPECT_TRUE(TensorsNear((*black)[0], F({0, 0.34f, 1, 0.34f}, {4}), 1e-5, 1e-6));
  EXPECT_FALSE(RunOp(r_, "HannWindow", {Tensor::Scalar<int64_t>(-1)}).ok());
  EXPECT_FALSE(
      RunOp(r_, "HannWindow", {Tensor::Scalar<int64_t>(4)}, {{"output_datatype", Attr::Int(99)}})
          .ok());
}

TEST_F(ExtraOps, DftRealComplexInverseOnesided) {
  Tensor x = F({1, 2, 3, 4}, {1, 4, 1});
  auto out = RunOp(r_, "DFT", {x});
  ASSERT_TRUE(out.ok()) << out.status();
  Tensor want = F({10, 0, -2, 2, -2, 0, -2, -2}, {1, 4, 2});
  EXPECT_TRUE(TensorsNear((*out)[0], want, 1e-5, 1e-5));
  auto inv = RunOp(r_, "DFT", {(*out)[0]}, {{"inverse", Attr::Int(1)}});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_TRUE(TensorsNear((*inv)[0], F({1, 0, 2, 0, 3, 0, 4, 0}, {1, 4, 2}), 1e-5, 1e-5));
  auto one = RunOp(r_, "DFT", {x}, {{"onesided", Attr::Int(1)}});
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_TRUE(TensorsNear((*one)[0], F({10, 0, -2, 2, -2, 0}, {1, 3, 2}), 1e-5, 1e-5));
  // dft_length 2 truncates the signal: [1, 2] -> [3, -1].
  auto shortd = RunOp(r_, "DFT", {x, Tensor::Scalar<int64_t>(2)});
  ASSERT_TRUE(shortd.ok()) << shortd.status();
  EXPECT_TRUE(TensorsNear((*shortd)[0], F({3, 0, -1, 0}, {1, 2, 2}), 1e-5, 1e-5));
  EXPECT_FALSE(RunOp(r_, "DFT", {x}, {{"axis", Attr::Int(2)}}).ok());
  EXPECT_FALSE(RunOp(r_, "DFT", {F({1, 2, 3}, {1, 1, 3})}).ok());
}

TEST_F(ExtraOps, StftMatchesFramewiseDft) {
  std::vector<float> sig(10);
  for (int i = 0; i < 10; ++i) sig[i] = static_cast<float>(i * i % 7);
  Tensor x = F(sig, {1, 10, 1});
  Tensor window = F({0.5f, 1, 1, 0.5f}, {4});
  auto out = RunOp(r_, "STFT", {x, Tensor::Scalar<int64_t>(3), window});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ((*out)[0].dims(), (std::vector<int64_t>{1, 3, 3, 2}));
  for (int f = 0; f < 3; ++f) {
    std::vector<float> frame(4);
    for (int k = 0; k < 4; ++k) frame[k] = sig[3 * f + k] * window.data<float>()[k];
    auto d = RunOp(r_, "DFT", {F(frame, {1, 4, 1})}, {{"onesided", Attr::Int(1)}});
    ASSERT_TRUE(d.ok()) << d.status();
    for (int i = 0; i < 6; ++i) {
      EXPECT_NEAR((*out)[0].data<float>()[f * 6 + i], (*d)[0].data<float>()[i], 1e-5);
    }
  }
  EXPECT_FALSE(RunOp(r_, "STFT", {x, Tensor::Scalar<int64_t>(3)}).ok());  // no frame length
  EXPECT_FALSE(RunOp(r_, "STFT", {x, Tensor::Scalar<int64_t>(0), window}).ok());
}

TEST_F(ExtraOps, MelWeightMatrixOnnxCase) {
  auto out = RunOp(r_, "MelWeightMatrix",
                   {Tensor::Scalar<int32_t>(8), Tensor::Scalar<int32_t>(16),
                    Tensor::Scalar<int32_t>(8192), Tensor::Scalar(0.0f), Tensor::Scalar(4096.0f)});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ((*out)[0].dims(), (std::vector<int64_t>{9, 8}));
  // ONNX test_melweightmatrix: ones at (0,0) (0,1) (1,2) (1,3) (2,4) (3,5) (4,6) (5,7).
  std::vector<float> want(72, 0.0f);
  for (auto [row, col] : std::vector<std::pair<int, int>>{
           {0, 0}, {0, 1}, {1, 2}, {1, 3}, {2, 4}, {3, 5}, {4, 6}, {5, 7}}) {
    want[row * 8 + col] = 1;
  }
  EXPECT_TRUE(TensorsNear((*out)[0], F(want, {9, 8})));
}

TEST_F(ExtraOps, DetBatched) {
  Tensor x = F({1, 2, 3, 4, 2, 0, 0, 3, 0, 1, 1, 0}, {3, 2, 2});
  auto out = RunOp(r_, "Det", {x});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorsNear((*out)[0], F({-2, 6, -1}, {3})));
  auto three = RunOp(r_, "Det", {F({2, -1, 0, 1, 3, 2, 0, 5, 4}, {3, 3})});
  ASSERT_TRUE(three.ok()) << three.status();
  // 2*(12-10) - (-1)*(4-0) + 0 = 8.
  EXPECT_NEAR((*three)[0].data<float>()[0], 8.0f, 1e-5);
  EXPECT_EQ((*three)[0].rank(), 0);
  EXPECT_FALSE(RunOp(r_, "Det", {F({1, 2, 3, 4, 5, 6}, {2, 3})}).ok());
}

TEST_F(ExtraOps, MaxUnpoolOnnxCase) {
  Tensor x = F({5, 6, 7, 8}, {1, 1, 2, 2});
  Tensor idx = Tensor::FromVector<int64_t>({5, 7, 13, 15}, {1, 1, 2, 2}, true);
  AttrMap attrs = {{"kernel_shape", Attr::Ints({2, 2})}, {"strides", Attr::Ints({2, 2})}};
  auto out = RunOp(r_, "MaxUnpool", {x, idx}, attrs);
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<float> want(16, 0.0f);
  want[5] = 5;
  want[7] = 6;
  want[13] = 7;
  want[15] = 8;
  EXPECT_TRUE(TensorsNear((*out)[0], F(want, {1, 1, 4, 4})));
  Tensor shape = Tensor::FromVector<int64_t>({1, 1, 5, 5});
  out = RunOp(r_, "MaxUnpool", {x, idx, shape}, attrs);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].dims(), (std::vector<int64_t>{1, 1, 5, 5}));
  // ONNX test_maxunpool_export_with_output_shape: indices keep their 4x4 coordinates.
  std::vector<float> want5(25, 0.0f);
  want5[6] = 5;
  want5[8] = 6;
  want5[16] = 7;
  want5[18] = 8;
  EXPECT_TRUE(TensorsNear((*out)[0], F(want5, {1, 1, 5, 5})));
  EXPECT_FALSE(
      RunOp(r_, "MaxUnpool", {x, idx, Tensor::FromVector<int64_t>({1, 1, 3, 3})}, attrs).ok());
  Tensor bad = Tensor::FromVector<int64_t>({5, 7, 13, 16}, {1, 1, 2, 2}, true);
  EXPECT_FALSE(RunOp(r_, "MaxUnpool", {x, bad}, attrs).ok());
}

TEST_F(ExtraOps, QLinearMatMulOnnxCase) {
  auto u8 = [](std::vector<uint8_t> v, std::vector<int64_t> d) {
    return Tensor::FromVector<uint8_t>(v, std::move(d), true);
  };
  auto out =
      RunOp(r_, "QLinearMatMul",
            {u8({208, 236, 0, 238, 3, 214, 255, 29}, {2, 4}), F({0.0066f}, {1}), u8({113}, {1}),
             u8({152, 51, 244, 60, 26, 255, 0, 127, 246, 127, 254, 247}, {4, 3}),
             F({0.00705f}, {1}), u8({114}, {1}), F({0.0107f}, {1}), u8({118}, {1})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].BitwiseEqual(u8({168, 115, 255, 1, 66, 151}, {2, 3})));
}

TEST_F(ExtraOps, QLinearConvHandComputed) {
  // x = [1..9] (zero point 1 -> 0..8), 2x2 kernel of ones (zero point 0), scales 1, 1, 2:
  // each output = round(sum of a 2x2 window / 2) + 10; windows sum to 8, 12, 20, 24.
  auto i8 = [](std::vector<int8_t> v, std::vector<int64_t> d) {
    return Tensor::FromVector<int8_t>(v, std::move(d), true);
  };
  Tensor x = i8({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  Tensor w = i8({1, 1, 1, 1}, {1, 1, 2, 2});
  std::vector<Tensor> in = {x,
                            Tensor::Scalar(1.0f),
                            Tensor::Scalar<int8_t>(1),
                            w,
                            Tensor::Scalar(1.0f),
                            Tensor::Scalar<int8_t>(0),
                            Tensor::Scalar(2.0f),
                            Tensor::Scalar<int8_t>(10)};
  auto out = RunOp(r_, "QLinearConv", in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].BitwiseEqual(i8({14, 16, 20, 22}, {1, 1, 2, 2})));
  // Bias 3 (in accumulator units): (8+3)/2 = 5.5 -> 6 (half to even), 7.5 -> 8, 11.5 -> 12,
  // 13.5 -> 14.
  in.push_back(Tensor::FromVector<int32_t>({3}));
  out = RunOp(r_, "QLinearConv", in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].BitwiseEqual(i8({16, 18, 22, 24}, {1, 1, 2, 2})));
  in[7] = Tensor::Scalar<int8_t>(120);
  out = RunOp(r_, "QLinearConv", in,
              {{"pads", Attr::Ints({1, 1, 1, 1})}, {"strides", Attr::Ints({2, 2})}});
  ASSERT_TRUE(out.ok()) << out.status();
  // Window sums (x - 1 inside the image) 0, 3, 9, 24: (s+3)/2 = 1.5, 3, 6, 13.5 -> 2, 3, 6, 14;
  // the last saturates: 134 -> 127.
  EXPECT_TRUE((*out)[0].BitwiseEqual(i8({122, 123, 126, 127}, {1, 1, 2, 2})));
  in[7] = Tensor::Scalar<int8_t>(125);
  out = RunOp(r_, "QLinearConv", in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].BitwiseEqual(i8({127, 127, 127, 127}, {1, 1, 2, 2})));
  in[3] = i8({1, 1, 1, 1}, {2, 1, 2, 2});  // 2 output channels, w_scale has 1 value: fine
  in[4] = F({1, 1, 1}, {3});               // but 3 per-channel scales are not
  EXPECT_FALSE(RunOp(r_, "QLinearConv", in).ok());
}

TEST_F(ExtraOps, LpNormalization) {
  auto out = RunOp(r_, "LpNormalization", {F({3, 4, 0, 0}, {2, 2})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorsNear((*out)[0], F({0.6f, 0.8f, 0, 0}, {2, 2})));
  out = RunOp(r_, "LpNormalization", {F({1, -3, 2, 2}, {2, 2})},
              {{"p", Attr::Int(1)}, {"axis", Attr::Int(0)}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorsNear((*out)[0], F({1.0f / 3, -0.6f, 2.0f / 3, 0.4f}, {2, 2})));
  EXPECT_FALSE(RunOp(r_, "LpNormalization", {F({1}, {1})}, {{"p", Attr::Int(3)}}).ok());
}

}  // namespace
}  // namespace kiln
