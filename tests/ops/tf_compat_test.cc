// kiln-domain ops for TensorFlow semantics (src/ops/tf_compat.cc).
#include <gtest/gtest.h>

#include "ops/base/kernel_context.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using testing::Values;

StatusOr<std::vector<Tensor>> RunKiln(const std::string& op, const std::vector<Tensor>& inputs,
                                      AttrMap attrs = {}) {
  static const OpRegistry* reg = [] {
    auto* r = new OpRegistry();
    RegisterTfCompatOps(*r);
    return r;
  }();
  const OpSchema* schema = reg->Find("kiln", op);
  if (schema == nullptr) return NotFound(op);
  Node node;
  node.name = "t";
  node.op_type = op;
  node.domain = "kiln";
  node.attrs = std::move(attrs);
  std::vector<const Tensor*> args;
  for (size_t i = 0; i < inputs.size(); ++i) {
    node.inputs.push_back("in" + std::to_string(i));
    args.push_back(&inputs[i]);
  }
  node.outputs = {"out"};
  KILN_RETURN_IF_ERROR(schema->CheckNode(node));
  std::vector<Tensor> outputs;
  KILN_RETURN_IF_ERROR(RunKernel(*schema, node, 18, args, &outputs));
  return outputs;
}

Tensor Iota(std::vector<int64_t> dims) {
  Tensor t = Tensor::Empty(DataType::kFloat32, dims);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.mutable_data<float>()[i] = float(i);
  return t;
}

Tensor I32(std::vector<int32_t> v) { return Tensor::FromVector<int32_t>(v); }

TEST(TfStridedSlice, MasksEllipsisNewAxisShrink) {
  Tensor x = Iota({2, 3, 4});
  // x[..., ::-1, 2]: ellipsis then a reversed axis then shrink -> [2, 3]
  auto r = RunKiln("StridedSlice", {x, I32({0, 0, 2}), I32({0, 0, 3}), I32({1, -1, 1})},
                   {{"ellipsis_mask", Attr::Int(1)},
                    {"begin_mask", Attr::Int(2)},
                    {"end_mask", Attr::Int(2)},
                    {"shrink_axis_mask", Attr::Int(4)}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0].dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(Values<float>((*r)[0]), (std::vector<float>{10, 6, 2, 22, 18, 14}));
  // x[tf.newaxis, 1:, -3:-1] with out-of-range begin clamping -> [1, 1, 2, 4]
  auto r2 = RunKiln("StridedSlice", {x, I32({0, 1, -3}), I32({0, 100, -1}), I32({1, 1, 1})},
                    {{"new_axis_mask", Attr::Int(1)}});
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ((*r2)[0].dims(), (std::vector<int64_t>{1, 1, 2, 4}));
  EXPECT_EQ(Values<float>((*r2)[0]), (std::vector<float>{12, 13, 14, 15, 16, 17, 18, 19}));
  // Errors: shrink index out of range; zero stride.
  EXPECT_FALSE(RunKiln("StridedSlice", {x, I32({5}), I32({6}), I32({1})},
                       {{"shrink_axis_mask", Attr::Int(1)}})
                   .ok());
  EXPECT_FALSE(RunKiln("StridedSlice", {x, I32({0}), I32({1}), I32({0})}).ok());
}

TEST(TfSpaceBatch, RoundTripAndShapes) {
  Tensor x = Iota({2, 4, 2, 3});
  Tensor block = I32({2, 1});
  Tensor pads = Tensor::FromVector<int32_t>({0, 0, 1, 0}, {2, 2}, true);
  auto s = RunKiln("SpaceToBatchND", {x, block, pads});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)[0].dims(), (std::vector<int64_t>{4, 2, 3, 3}));
  // Batch 2 = block offset 1 of image 0: rows 1 and 3; column 0 is padding.
  const float* p = (*s)[0].data<float>() + 2 * 2 * 3 * 3;
  EXPECT_EQ(std::vector<float>(p, p + 9), (std::vector<float>{0, 0, 0, 6, 7, 8, 9, 10, 11}));
  auto b = RunKiln("BatchToSpaceND", {(*s)[0], block, pads});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE((*b)[0].BitwiseEqual(x));
  EXPECT_FALSE(RunKiln("SpaceToBatchND", {Iota({1, 3, 2, 1}), block,
                                          Tensor::FromVector<int32_t>({0, 0, 0, 0}, {2, 2}, true)})
                   .ok());  // 3 is not a multiple of 2
}

TEST(TfFloorDivMod, SignsAndBroadcast) {
  Tensor a = Tensor::FromVector<int64_t>({-7, 7, -6, 0}, {2, 2}, true);
  Tensor b = Tensor::FromVector<int64_t>({2, -2});
  auto d = RunKiln("FloorDiv", {a, b});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(Values<int64_t>((*d)[0]), (std::vector<int64_t>{-4, -4, -3, 0}));
  auto m = RunKiln("FloorMod", {a, b});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(Values<int64_t>((*m)[0]), (std::vector<int64_t>{1, -1, 0, 0}));
  auto fm = RunKiln("FloorMod", {Tensor::FromVector<double>({-1.5, 4.25}),
                                 Tensor::FromVector<double>({1.0, -2.0})});
  ASSERT_TRUE(fm.ok());
  EXPECT_EQ(Values<double>((*fm)[0]), (std::vector<double>{0.5, -1.75}));
  auto z = RunKiln("FloorDiv", {a, Tensor::FromVector<int64_t>({0})});
  ASSERT_FALSE(z.ok());
  EXPECT_NE(z.status().message().find("division by zero"), std::string::npos);
}

TEST(TfRandomUniform, RangeShapeAndDeterminism) {
  auto r = RunKiln("RandomUniform", {I32({3, 5})}, {{"seed", Attr::Int(7)}});
  auto r2 = RunKiln("RandomUniform", {I32({3, 5})}, {{"seed", Attr::Int(7)}});
  ASSERT_TRUE(r.ok() && r2.ok());
  EXPECT_EQ((*r)[0].dims(), (std::vector<int64_t>{3, 5}));
  EXPECT_TRUE((*r)[0].BitwiseEqual((*r2)[0]));
  auto v = Values<float>((*r)[0]);
  float lo = 1, hi = 0;
  for (float f : v) {
    lo = std::min(lo, f);
    hi = std::max(hi, f);
  }
  EXPECT_GE(lo, 0.0f);
  EXPECT_LT(hi, 1.0f);
  EXPECT_LT(lo, hi);
}

TEST(TfFakeQuant, NudgedRange) {
  Tensor x = Tensor::FromVector<float>({0.5f, 2.0f, -2.0f, 0.0f});
  // [-0.5, 1.5] on 8 bits: scale 2/255, zero point 63.75 nudged to 64.
  auto r = RunKiln("FakeQuantWithMinMax",
                   {x, Tensor::Scalar<float>(-0.5f), Tensor::Scalar<float>(1.5f)});
  ASSERT_TRUE(r.ok()) << r.status();
  const float s = 2.0f / 255.0f;
  auto v = Values<float>((*r)[0]);
  EXPECT_NEAR(v[0], 64 * s, 1e-6);  // (0.5 + 64 s) / s = 127.75 -> 128 steps above min
  EXPECT_NEAR(v[1], 191 * s, 1e-6);
  EXPECT_NEAR(v[2], -64 * s, 1e-6);
  EXPECT_NEAR(v[3], 0.0f, 1e-6);
  // narrow_range: quantized range [1, 255].
  auto n = RunKiln("FakeQuantWithMinMax",
                   {x, Tensor::Scalar<float>(-1.0f), Tensor::Scalar<float>(1.0f)},
                   {{"narrow_range", Attr::Int(1)}});
  ASSERT_TRUE(n.ok());
  EXPECT_NEAR(Values<float>((*n)[0])[1], 1.0f, 1e-6);
  EXPECT_NEAR(Values<float>((*n)[0])[2], -1.0f, 1e-6);
}

TEST(TfQuantizeAndDequantize, SignedRangeGiven) {
  Tensor x = Tensor::FromVector<float>({0.5f, 2.0f, -2.0f, 0.1f});
  auto r = RunKiln("QuantizeAndDequantize",
                   {x, Tensor::Scalar<float>(-1.0f), Tensor::Scalar<float>(1.0f)},
                   {{"range_given", Attr::Int(1)}});
  ASSERT_TRUE(r.ok()) << r.status();
  auto v = Values<float>((*r)[0]);
  EXPECT_NEAR(v[0], 64.0f / 127, 1e-6);   // 63.5 rounds half to even
  EXPECT_NEAR(v[1], 1.0f, 1e-6);
  EXPECT_NEAR(v[2], -128.0f / 127, 1e-6);
  EXPECT_NEAR(v[3], 13.0f / 127, 1e-6);
  // Range from the data: max |x| = 2 on the max side.
  auto r2 = RunKiln("QuantizeAndDequantize",
                    {x, Tensor::Scalar<float>(0.0f), Tensor::Scalar<float>(0.0f)});
  ASSERT_TRUE(r2.ok());
  EXPECT_NEAR(Values<float>((*r2)[0])[1], 2.0f, 1e-6);
}

}  // namespace
}  // namespace kiln
