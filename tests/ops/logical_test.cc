#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using testing::TensorsNear;
using testing::V;

using LogicalTest = testing::OpFamilyTest<RegisterLogicalOps>;

TEST_F(LogicalTest, ComparisonsFloatWithNaN) {
  Tensor a = V<float>({1, 2, 3, NAN});
  Tensor b = V<float>({2, 2, 2, 1});
  EXPECT_TRUE(TensorsNear(Run("Equal", {a, b}), V<bool>({false, true, false, false})));
  EXPECT_TRUE(TensorsNear(Run("Less", {a, b}), V<bool>({true, false, false, false})));
  EXPECT_TRUE(TensorsNear(Run("Greater", {a, b}), V<bool>({false, false, true, false})));
  EXPECT_TRUE(TensorsNear(Run("LessOrEqual", {a, b}), V<bool>({true, true, false, false})));
  EXPECT_TRUE(TensorsNear(Run("GreaterOrEqual", {a, b}), V<bool>({false, true, true, false})));
}

TEST_F(LogicalTest, ComparisonsBroadcastAndTypes) {
  // [2,3] vs [3] and vs [2,1].
  Tensor a = V<int32_t>({1, 5, 3, 4, 2, 6}, {2, 3});
  EXPECT_TRUE(TensorsNear(Run("Greater", {a, V<int32_t>({2, 2, 5})}),
                          V<bool>({false, true, false, true, false, true}, {2, 3})));
  EXPECT_TRUE(TensorsNear(Run("Equal", {a, V<int32_t>({5, 2}, {2, 1})}),
                          V<bool>({false, true, false, false, true, false}, {2, 3})));
  EXPECT_TRUE(TensorsNear(Run("Less", {V<uint64_t>({0, 10}), V<uint64_t>({5}, {})}),
                          V<bool>({true, false})));
  EXPECT_TRUE(TensorsNear(Run("Equal", {V<bool>({true, false}), V<bool>({true, true})}),
                          V<bool>({true, false})));
  EXPECT_TRUE(TensorsNear(Run("Equal", {V<std::string>({"a", "bc"}), V<std::string>({"bc"}, {})}),
                          V<bool>({false, true})));
  auto h = ConvertTensor(V<float>({0.5f, 2}), DataType::kFloat16);
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(TensorsNear(Run("GreaterOrEqual", {*h, *h}), V<bool>({true, true})));
  EXPECT_FALSE(RunStatus("Less", {V<std::string>({"a"}), V<std::string>({"b"})}).ok());
  EXPECT_FALSE(RunStatus("Equal", {V<float>({1}), V<int32_t>({1})}).ok());
  EXPECT_FALSE(RunStatus("Equal", {V<float>({1, 2}), V<float>({1, 2, 3})}).ok());
}

TEST_F(LogicalTest, ComparisonMatchesNaiveOnRandom) {
  Tensor a = testing::RandomTensor(DataType::kFloat64, {3, 4, 5}, 7);
  Tensor b = testing::RandomTensor(DataType::kFloat64, {4, 1}, 8);
  Tensor got = Run("Less", {a, b});
  ASSERT_EQ(got.dims(), (std::vector<int64_t>{3, 4, 5}));
  for (int64_t i = 0; i < 60; ++i) {
    int64_t row = (i / 5) % 4;
    EXPECT_EQ(got.data<bool>()[i], a.data<double>()[i] < b.data<double>()[row]) << i;
  }
}

TEST_F(LogicalTest, BooleanOps) {
  Tensor a = V<bool>({true, true, false, false});
  Tensor b = V<bool>({true, false, true, false});
  EXPECT_TRUE(TensorsNear(Run("And", {a, b}), V<bool>({true, false, false, false})));
  EXPECT_TRUE(TensorsNear(Run("Or", {a, b}), V<bool>({true, true, true, false})));
  EXPECT_TRUE(TensorsNear(Run("Xor", {a, b}), V<bool>({false, true, true, false})));
  EXPECT_TRUE(TensorsNear(Run("Not", {a}), V<bool>({false, false, true, true})));
  // ONNX test_xor_bcast3v1d-style broadcast: [2,3] xor [3].
  EXPECT_TRUE(TensorsNear(Run("Xor", {V<bool>({true, false, true, false, false, true}, {2, 3}),
                                      V<bool>({false, false, true})}),
                          V<bool>({true, false, false, false, false, false}, {2, 3})));
  EXPECT_FALSE(RunStatus("And", {V<int32_t>({1}), V<int32_t>({1})}).ok());
  EXPECT_FALSE(RunStatus("Not", {V<float>({1})}).ok());
}

TEST_F(LogicalTest, BitwiseOps) {
  EXPECT_TRUE(TensorsNear(Run("BitwiseAnd", {V<int32_t>({12, -1}), V<int32_t>({10, 7})}),
                          V<int32_t>({8, 7})));
  EXPECT_TRUE(TensorsNear(Run("BitwiseOr", {V<uint8_t>({12, 0}), V<uint8_t>({3}, {})}),
                          V<uint8_t>({15, 3})));
  EXPECT_TRUE(
      TensorsNear(Run("BitwiseXor", {V<int64_t>({12}), V<int64_t>({10})}), V<int64_t>({6})));
  EXPECT_TRUE(
      TensorsNear(Run("BitwiseNot", {V<uint8_t>({0, 255, 15})}), V<uint8_t>({255, 0, 240})));
  EXPECT_TRUE(TensorsNear(Run("BitwiseNot", {V<int8_t>({0, -1})}), V<int8_t>({-1, 0})));
  EXPECT_FALSE(RunStatus("BitwiseAnd", {V<bool>({true}), V<bool>({true})}).ok());
}

TEST_F(LogicalTest, ShapeInference) {
  const OpSchema* s = reg_.Find("", "Less");
  ASSERT_NE(s, nullptr);
  Node n;
  n.name = "n";
  n.op_type = "Less";
  n.inputs = {"a", "b"};
  n.outputs = {"c"};
  std::vector<ValueInfo> out;
  ASSERT_TRUE(
      RunInfer(*s, n, 18,
               {{DataType::kFloat32, Shape({-1, 1, 4})}, {DataType::kFloat32, Shape({3, 1})}},
               {nullptr, nullptr}, &out)
          .ok());
  EXPECT_EQ(out[0].dtype, DataType::kBool);
  EXPECT_EQ(out[0].shape.ToString(), "[?,3,4]");
}

}  // namespace
}  // namespace kiln
