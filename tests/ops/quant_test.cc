#include <gtest/gtest.h>

#include <cmath>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using testing::F32;
using testing::RandomTensor;
using testing::RunOp;
using testing::TensorsNear;

const OpRegistry& Reg() { return testing::FamilyRegistry<RegisterQuantOps>(); }

Tensor U8(std::vector<uint8_t> v, std::vector<int64_t> dims) {
  return Tensor::FromVector<uint8_t>(v, std::move(dims), true);
}

Tensor Run1(const std::string& op, const std::vector<Tensor>& in, AttrMap attrs = {},
            int64_t opset = 13) {
  return testing::RunFirst(Reg(), op, in, std::move(attrs), opset);
}

TEST(QuantizeLinear, OnnxExamples) {
  // test_quantizelinear: saturation at both ends.
  Tensor x = F32({0, 2, 3, 1000, -254, -1000}, {6});
  EXPECT_TRUE(TensorsNear(
      Run1("QuantizeLinear", {x, Tensor::Scalar<float>(2), Tensor::Scalar<uint8_t>(128)}),
      U8({128, 129, 130, 255, 1, 0}, {6}), 0, 0));
  // test_quantizelinear_axis: per-channel along axis 1 (the default).
  Tensor xa = F32(
      {-162, 10, -100, 232, -20, -50, -76, 0, 0, 252, 32, -44, 245, -485, -960, -270, -375, -470},
      {1, 3, 3, 2});
  Tensor qa =
      U8({3, 89, 34, 200, 74, 59, 5, 24, 24, 87, 32, 13, 245, 99, 4, 142, 121, 102}, {1, 3, 3, 2});
  Tensor scale = F32({2, 4, 5}, {3});
  Tensor zp = U8({84, 24, 196}, {3});
  EXPECT_TRUE(TensorsNear(Run1("QuantizeLinear", {xa, scale, zp}), qa, 0, 0));
  EXPECT_TRUE(
      TensorsNear(Run1("QuantizeLinear", {xa, scale, zp}, {{"axis", Attr::Int(-3)}}), qa, 0, 0));
  // test_dequantizelinear_axis is the inverse.
  EXPECT_TRUE(TensorsNear(Run1("DequantizeLinear", {qa, scale, zp}), xa, 0, 0));
}

TEST(QuantizeLinear, RoundHalfToEvenAndInt8) {
  // x / 1 = 0.5, 1.5, 2.5, -0.5, -1.5 round to 0, 2, 2, -0, -2.
  Tensor x = F32({0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 300, -300}, {7});
  Tensor q = Run1("QuantizeLinear", {x, Tensor::Scalar<float>(1), Tensor::Scalar<int8_t>(0)});
  EXPECT_EQ(q.dtype(), DataType::kInt8);
  EXPECT_TRUE(TensorsNear(q, Tensor::FromVector<int8_t>({0, 2, 2, 0, -2, 127, -128}), 0, 0));
  // No zero point: uint8 with zero point 0.
  Tensor u = Run1("QuantizeLinear", {x, Tensor::Scalar<float>(0.5f)});
  EXPECT_TRUE(TensorsNear(u, U8({1, 3, 5, 0, 0, 255, 0}, {7}), 0, 0));
  // int32 input (opset 10/13).
  Tensor xi = Tensor::FromVector<int32_t>({-7, 3, 5, 100});
  EXPECT_TRUE(TensorsNear(
      Run1("QuantizeLinear", {xi, Tensor::Scalar<float>(2), Tensor::Scalar<int8_t>(1)}, {}, 10),
      Tensor::FromVector<int8_t>({-3, 3, 3, 51}), 0, 0));
}

TEST(QuantizeLinear, RandomPerAxisVsNaive) {
  Tensor x = RandomTensor(DataType::kFloat32, {2, 3, 4}, 1, -50, 50);
  for (int axis : {0, 1, 2, -1}) {
    const int a = axis < 0 ? axis + 3 : axis;
    const int64_t c = x.dim(a);
    Tensor scale = RandomTensor(DataType::kFloat32, {c}, 2 + a, 0.1, 0.7);
    Tensor zp = RandomTensor(DataType::kInt8, {c}, 5 + a, -20, 20);
    Tensor want = Tensor::Empty(DataType::kInt8, x.dims());
    int64_t inner = 1;
    for (int i = a + 1; i < 3; ++i) inner *= x.dim(i);
    for (int64_t e = 0; e < x.num_elements(); ++e) {
      const int64_t k = (e / inner) % c;
      float v = std::nearbyint(x.data<float>()[e] / scale.data<float>()[k]) + zp.data<int8_t>()[k];
      want.mutable_data<int8_t>()[e] = static_cast<int8_t>(std::min(127.f, std::max(-128.f, v)));
    }
    Tensor q = Run1("QuantizeLinear", {x, scale, zp}, {{"axis", Attr::Int(axis)}});
    EXPECT_TRUE(TensorsNear(q, want, 0, 0)) << axis;
    // Dequantize round trip: within half a step of x unless saturated.
    Tensor d = Run1("DequantizeLinear", {q, scale, zp}, {{"axis", Attr::Int(axis)}});
    for (int64_t e = 0; e < x.num_elements(); ++e) {
      const int64_t k = (e / inner) % c;
      const int8_t qv = q.data<int8_t>()[e];
      EXPECT_FLOAT_EQ(d.data<float>()[e], (qv - zp.data<int8_t>()[k]) * scale.data<float>()[k]);
      if (qv != 127 && qv != -128) {
        EXPECT_LE(std::fabs(d.data<float>()[e] - x.data<float>()[e]),
                  0.5f * scale.data<float>()[k] + 1e-4f);
      }
    }
  }
}

TEST(DequantizeLinear, Forms) {
  // test_dequantizelinear.
  EXPECT_TRUE(TensorsNear(
      Run1("DequantizeLinear",
           {U8({0, 3, 128, 255}, {4}), Tensor::Scalar<float>(2), Tensor::Scalar<uint8_t>(128)}),
      F32({-256, -250, 0, 254}, {4}), 0, 0));
  // int32 input, no zero point.
  EXPECT_TRUE(TensorsNear(Run1("DequantizeLinear", {Tensor::FromVector<int32_t>({-5, 0, 1 << 20}),
                                                    Tensor::Scalar<float>(0.5f)}),
                          F32({-2.5f, 0, 524288}, {3}), 0, 0));
  // Half scale (opset 19 form): the output follows the scale type.
  auto hs = ConvertTensor(Tensor::Scalar<float>(0.25f), DataType::kFloat16);
  Tensor d = Run1("DequantizeLinear", {Tensor::FromVector<int8_t>({-4, 8}), *hs}, {}, 19);
  EXPECT_EQ(d.dtype(), DataType::kFloat16);
  EXPECT_EQ(static_cast<float>(d.data<Float16>()[0]), -1.0f);
}

TEST(Quant, Errors) {
  Tensor x = RandomTensor(DataType::kFloat32, {2, 3}, 9);
  Tensor q = U8({1, 2, 3, 4, 5, 6}, {2, 3});
  // Per-axis scale of the wrong length, zero point not matching the scale, bad axis.
  EXPECT_FALSE(RunOp(Reg(), "QuantizeLinear", {x, F32({1, 2}, {2})}).ok());
  EXPECT_FALSE(
      RunOp(Reg(), "QuantizeLinear", {x, F32({1, 2, 3}, {3}), Tensor::Scalar<uint8_t>(0)}).ok());
  EXPECT_FALSE(
      RunOp(Reg(), "QuantizeLinear", {x, F32({1, 2, 3}, {3})}, {{"axis", Attr::Int(2)}}).ok());
  EXPECT_FALSE(RunOp(Reg(), "DequantizeLinear", {q, F32({1, 2, 3, 4}, {2, 2})}).ok());
  EXPECT_FALSE(
      RunOp(Reg(), "DequantizeLinear", {q, Tensor::Scalar<float>(1), Tensor::Scalar<int8_t>(0)})
          .ok());
  EXPECT_EQ(RunOp(Reg(), "QuantizeLinear", {x, Tensor::Scalar<double>(1)}).status().code(),
            StatusCode::kUnimplemented);
  EXPECT_FALSE(RunOp(Reg(), "DynamicQuantizeLinear", {F32({1, INFINITY}, {2})}, {}, 3).ok());
}

TEST(DynamicQuantizeLinear, OnnxExamples) {
  struct Case {
    std::vector<float> x;
    std::vector<uint8_t> y;
    float scale;
    uint8_t zp;
  };
  const std::vector<Case> cases = {
      {{0, 2, -3, -2.5f, 1.34f, 0.5f}, {153, 255, 0, 26, 221, 179}, 0.019607843831181526f, 153},
      {{-1, -2.1f, -1.3f, -2.5f, -3.34f, -4},
       {191, 121, 172, 96, 42, 0},
       0.01568627543747425f,
       255},
      {{1, 2.1f, 1.3f, 2.5f, 3.34f, 4}, {64, 134, 83, 159, 213, 255}, 0.01568627543747425f, 0},
  };
  for (const auto& c : cases) {
    auto out = RunOp(Reg(), "DynamicQuantizeLinear", {F32(c.x, {6})}, {}, 3, 11);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(TensorsNear((*out)[0], U8(c.y, {6}), 0, 0));
    EXPECT_FLOAT_EQ((*out)[1].data<float>()[0], c.scale);
    EXPECT_EQ((*out)[1].rank(), 0);
    EXPECT_EQ((*out)[2].data<uint8_t>()[0], c.zp);
  }
  // All zeros: scale 0, everything maps to 0.
  auto out = RunOp(Reg(), "DynamicQuantizeLinear", {F32({0, 0}, {2})}, {}, 3, 11);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[1].data<float>()[0], 0.0f);
  EXPECT_TRUE(TensorsNear((*out)[0], U8({0, 0}, {2}), 0, 0));
}

TEST(Quant, ShapeInference) {
  auto infer = [](const std::string& op, std::vector<ValueInfo> in, int n_out) {
    const OpSchema* schema = Reg().Find("", op);
    Node node;
    node.name = "q";
    node.op_type = op;
    for (size_t i = 0; i < in.size(); ++i) node.inputs.push_back("i" + std::to_string(i));
    for (int i = 0; i < n_out; ++i) node.outputs.push_back("o" + std::to_string(i));
    std::vector<ValueInfo> out;
    EXPECT_TRUE(RunInfer(*schema, node, 13, in, {}, &out).ok());
    return out;
  };
  ValueInfo x{DataType::kFloat32, Shape({-1, 3})};
  ValueInfo s{DataType::kFloat32, Shape::Scalar()};
  auto o = infer("QuantizeLinear", {x, s, {DataType::kInt8, Shape::Scalar()}}, 1);
  EXPECT_EQ(o[0].dtype, DataType::kInt8);
  EXPECT_EQ(o[0].shape.ToString(), "[?,3]");
  EXPECT_EQ(infer("QuantizeLinear", {x, s}, 1)[0].dtype, DataType::kUInt8);
  o = infer("DequantizeLinear", {{DataType::kUInt8, Shape({2})}, s}, 1);
  EXPECT_EQ(o[0].dtype, DataType::kFloat32);
  o = infer("DynamicQuantizeLinear", {x}, 3);
  EXPECT_EQ(o[0].dtype, DataType::kUInt8);
  EXPECT_EQ(o[1].shape.ToString(), "[]");
}

}  // namespace
}  // namespace kiln
