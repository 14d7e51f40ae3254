#include <gtest/gtest.h>

#include <cmath>
#include <limits>
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

class ElementwiseTest : public testing::OpFamilyTest<RegisterElementwiseOps> {
 protected:
  // Shape inference for `op` on the given input types.
  ValueInfo Infer(const std::string& op, const std::vector<ValueInfo>& in, AttrMap attrs = {}) {
    return testing::InferOp(reg_, op, in, {}, std::move(attrs))[0];
  }
};

// --------------------------------------------------------------------------- binary arithmetic

TEST_F(ElementwiseTest, AddSameShapeScalarAndBroadcast) {
  Tensor a = V<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_TRUE(TensorsNear(Run("Add", {a, V<float>({10, 20, 30, 40, 50, 60}, {2, 3})}),
                          V<float>({11, 22, 33, 44, 55, 66}, {2, 3})));
  EXPECT_TRUE(TensorsNear(Run("Add", {a, V<float>({0.5f}, {})}),
                          V<float>({1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f}, {2, 3})));
  EXPECT_TRUE(TensorsNear(Run("Add", {V<float>({0.5f}, {}), a}),
                          V<float>({1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f}, {2, 3})));
  // Row vector, column vector, and both-sides broadcast [2,1] + [3] -> [2,3].
  EXPECT_TRUE(TensorsNear(Run("Add", {a, V<float>({100, 200, 300}, {3})}),
                          V<float>({101, 202, 303, 104, 205, 306}, {2, 3})));
  EXPECT_TRUE(TensorsNear(Run("Add", {a, V<float>({100, 200}, {2, 1})}),
                          V<float>({101, 102, 103, 204, 205, 206}, {2, 3})));
  EXPECT_TRUE(TensorsNear(Run("Sub", {V<float>({1, 2}, {2, 1}), V<float>({10, 20, 30}, {3})}),
                          V<float>({-9, -19, -29, -8, -18, -28}, {2, 3})));
}

TEST_F(ElementwiseTest, BroadcastMatchesNaiveOnRandom4D) {
  // [2,3,4,5] * [1,3,1,1] (NCHW scale), [3,1,5] and [2,1,4,1]: compare with an index loop.
  Tensor a = testing::RandomTensor(DataType::kFloat32, {2, 3, 4, 5}, 1);
  for (std::vector<int64_t> bd : {std::vector<int64_t>{1, 3, 1, 1}, {3, 1, 5}, {2, 1, 4, 1}}) {
    Tensor b = testing::RandomTensor(DataType::kFloat32, bd, 2);
    Tensor got = Run("Mul", {a, b});
    ASSERT_EQ(got.dims(), a.dims());
    std::vector<int64_t> full(4 - bd.size(), 1);
    full.insert(full.end(), bd.begin(), bd.end());
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t h = 0; h < 4; ++h)
          for (int64_t w = 0; w < 5; ++w) {
            int64_t ia = ((n * 3 + c) * 4 + h) * 5 + w;
            int64_t bn = full[0] == 1 ? 0 : n, bc = full[1] == 1 ? 0 : c, bh = full[2] == 1 ? 0 : h,
                    bw = full[3] == 1 ? 0 : w;
            int64_t ib = ((bn * full[1] + bc) * full[2] + bh) * full[3] + bw;
            ASSERT_FLOAT_EQ(got.data<float>()[ia], a.data<float>()[ia] * b.data<float>()[ib]);
          }
  }
}

TEST_F(ElementwiseTest, BroadcastMismatchAndTypeMismatchAreErrors) {
  Status st = RunStatus("Add", {V<float>({1, 2, 3}), V<float>({1, 2})});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("test_Add"), std::string::npos) << st;
  EXPECT_FALSE(RunStatus("Add", {V<float>({1}), V<double>({1})}).ok());
  EXPECT_EQ(RunStatus("Add", {V<bool>({true}), V<bool>({true})}).code(),
            StatusCode::kUnimplemented);
}

TEST_F(ElementwiseTest, IntegerArithmeticWrapsWithoutUB) {
  const int32_t kMin = std::numeric_limits<int32_t>::min();
  const int32_t kMax = std::numeric_limits<int32_t>::max();
  EXPECT_TRUE(TensorsNear(Run("Add", {V<int32_t>({kMax, 5}), V<int32_t>({1, -7})}),
                          V<int32_t>({kMin, -2})));
  EXPECT_TRUE(
      TensorsNear(Run("Mul", {V<int64_t>({3, -4}), V<int64_t>({7, 5})}), V<int64_t>({21, -20})));
  EXPECT_TRUE(
      TensorsNear(Run("Mul", {V<uint16_t>({65535}), V<uint16_t>({65535})}), V<uint16_t>({1})));
  EXPECT_TRUE(TensorsNear(Run("Sub", {V<uint8_t>({3}), V<uint8_t>({5})}), V<uint8_t>({254})));
  EXPECT_TRUE(TensorsNear(Run("Div", {V<int32_t>({7, -7, kMin}), V<int32_t>({2, 2, -1})}),
                          V<int32_t>({3, -3, kMin})));
  EXPECT_TRUE(TensorsNear(Run("Neg", {V<int8_t>({-128, 5})}), V<int8_t>({-128, -5})));
  EXPECT_TRUE(TensorsNear(Run("Abs", {V<int8_t>({-128, -5, 7})}), V<int8_t>({-128, 5, 7})));
}

TEST_F(ElementwiseTest, IntegerDivAndModByZeroAreErrors) {
  Status st = RunStatus("Div", {V<int32_t>({1, 2}), V<int32_t>({1, 0})});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("division by zero"), std::string::npos);
  EXPECT_FALSE(RunStatus("Div", {V<uint8_t>({1}), V<uint8_t>({0})}).ok());
  EXPECT_FALSE(RunStatus("Mod", {V<int64_t>({5}), V<int64_t>({0})}).ok());
  // Float division by zero is IEEE.
  Tensor f = Run("Div", {V<float>({1, -1, 0}), V<float>({0, 0, 0})});
  EXPECT_TRUE(std::isinf(f.data<float>()[0]) && f.data<float>()[0] > 0);
  EXPECT_TRUE(std::isinf(f.data<float>()[1]) && f.data<float>()[1] < 0);
  EXPECT_TRUE(std::isnan(f.data<float>()[2]));
}

TEST_F(ElementwiseTest, DivFloatAndUint8) {
  EXPECT_TRUE(
      TensorsNear(Run("Div", {V<double>({3, 8}), V<double>({2, -4})}), V<double>({1.5, -2})));
  EXPECT_TRUE(
      TensorsNear(Run("Div", {V<uint8_t>({250, 7}), V<uint8_t>({3, 2})}), V<uint8_t>({83, 3})));
}

TEST_F(ElementwiseTest, ModSignRules) {
  // Values from ONNX test_mod_mixed_sign_int32 (fmod=0: sign of divisor).
  Tensor a = V<int32_t>({-4, 7, 5, 4, -7, 8});
  Tensor b = V<int32_t>({2, -3, 8, -2, 3, 5});
  EXPECT_TRUE(TensorsNear(Run("Mod", {a, b}), V<int32_t>({0, -2, 5, 0, 2, 3})));
  // fmod=1: sign of dividend.
  EXPECT_TRUE(
      TensorsNear(Run("Mod", {a, b}, {{"fmod", Attr::Int(1)}}), V<int32_t>({0, 1, 5, 0, -1, 3})));
  // ONNX test_mod_mixed_sign_float64 (fmod=1).
  EXPECT_TRUE(TensorsNear(Run("Mod",
                              {V<double>({-4.3, 7.2, 5.0, 4.3, -7.2, 8.0}),
                               V<double>({2.1, -3.4, 8.0, -2.1, 3.4, 5.0})},
                              {{"fmod", Attr::Int(1)}}),
                          V<double>({-0.1, 0.4, 5.0, 0.1, -0.4, 3.0}), 1e-9, 1e-12));
  EXPECT_TRUE(TensorsNear(Run("Mod", {V<float>({-4.5f, 4.5f}), V<float>({2.0f, -2.0f})}),
                          V<float>({1.5f, -1.5f})));
  EXPECT_TRUE(
      TensorsNear(Run("Mod", {V<int32_t>({std::numeric_limits<int32_t>::min()}), V<int32_t>({-1})}),
                  V<int32_t>({0})));
  EXPECT_FALSE(RunStatus("Mod", {a, b}, {{"fmod", Attr::Int(2)}}).ok());
}

TEST_F(ElementwiseTest, PowMixedTypes) {
  EXPECT_TRUE(
      TensorsNear(Run("Pow", {V<float>({1, 2, 3}), V<float>({4, 5, 6})}), V<float>({1, 32, 729})));
  // ONNX test_pow_types_int32_float32 and int64_int64.
  EXPECT_TRUE(TensorsNear(Run("Pow", {V<int32_t>({1, 2, 3}), V<float>({4, 5, 6})}),
                          V<int32_t>({1, 32, 729})));
  EXPECT_TRUE(TensorsNear(Run("Pow", {V<int64_t>({1, 2, 3}), V<int64_t>({4, 5, 6})}),
                          V<int64_t>({1, 32, 729})));
  EXPECT_TRUE(
      TensorsNear(Run("Pow", {V<float>({2, 4}), V<int64_t>({-1, 3})}), V<float>({0.5f, 64})));
  EXPECT_TRUE(
      TensorsNear(Run("Pow", {V<int32_t>({2, -1, -1, 1, 3}), V<int32_t>({-1, -3, 4, -9, 0})}),
                  V<int32_t>({0, -1, 1, 1, 1})));
  // Broadcast scalar exponent; half base computed in float.
  EXPECT_TRUE(TensorsNear(Run("Pow", {V<double>({1, 2, 3}, {3, 1}), V<double>({2}, {})}),
                          V<double>({1, 4, 9}, {3, 1})));
  auto h = ConvertTensor(V<float>({1.5f, 3.0f}), DataType::kFloat16);
  ASSERT_TRUE(h.ok());
  Tensor hp = Run("Pow", {*h, V<float>({2.0f}, {})});
  EXPECT_EQ(hp.dtype(), DataType::kFloat16);
  EXPECT_FLOAT_EQ(static_cast<float>(hp.data<Float16>()[1]), 9.0f);
  // A half exponent leaves a float32 base's result in float32.
  Tensor fp = Run("Pow", {V<float>({1.5f, 3.0f}), *h});
  EXPECT_TRUE(TensorsNear(fp, V<float>({1.8371173f, 27.0f})));
}

TEST_F(ElementwiseTest, BitShift) {
  // ONNX test_bitshift_right_uint16 / left.
  EXPECT_TRUE(TensorsNear(Run("BitShift", {V<uint16_t>({16, 4, 1}), V<uint16_t>({1, 2, 3})},
                              {{"direction", Attr::String("RIGHT")}}),
                          V<uint16_t>({8, 1, 0})));
  EXPECT_TRUE(TensorsNear(Run("BitShift", {V<uint8_t>({16, 4, 1, 1}), V<uint8_t>({1, 2, 7, 8})},
                              {{"direction", Attr::String("LEFT")}}),
                          V<uint8_t>({32, 16, 128, 0})));
  EXPECT_FALSE(
      RunStatus("BitShift", {V<uint8_t>({1}), V<uint8_t>({1})}, {{"direction", Attr::String("UP")}})
          .ok());
  EXPECT_FALSE(RunStatus("BitShift", {V<int32_t>({1}), V<int32_t>({1})},
                         {{"direction", Attr::String("LEFT")}})
                   .ok());
}

// --------------------------------------------------------------------------- variadic

TEST_F(ElementwiseTest, VariadicMaxMinSumMean) {
  Tensor a = V<float>({3, 2, 1}), b = V<float>({1, 4, 4}), c = V<float>({2, 5, 3});
  EXPECT_TRUE(TensorsNear(Run("Max", {a, b, c}), V<float>({3, 5, 4})));
  EXPECT_TRUE(TensorsNear(Run("Min", {a, b, c}), V<float>({1, 2, 1})));
  EXPECT_TRUE(TensorsNear(Run("Sum", {a, b, c}), V<float>({6, 11, 8})));
  EXPECT_TRUE(
      TensorsNear(Run("Mean", {V<float>({3, 0, 2}), V<float>({1, 3, 4}), V<float>({2, 6, 6})}),
                  V<float>({2, 3, 4})));
  EXPECT_TRUE(TensorsNear(Run("Mean", {a}), a));
  // Broadcasting across inputs: [2,1] , [3] , scalar.
  EXPECT_TRUE(TensorsNear(
      Run("Sum", {V<double>({1, 2}, {2, 1}), V<double>({10, 20, 30}), V<double>({100}, {})}),
      V<double>({111, 121, 131, 112, 122, 132}, {2, 3})));
  EXPECT_TRUE(TensorsNear(Run("Max", {V<int8_t>({-5, 7}), V<int8_t>({3, -9})}), V<int8_t>({3, 7})));
  EXPECT_TRUE(
      TensorsNear(Run("Min", {V<uint64_t>({5, 7}), V<uint64_t>({6}, {})}), V<uint64_t>({5, 6})));
  Tensor nan = Run("Max", {V<float>({NAN, 1}), V<float>({2, NAN})});
  EXPECT_TRUE(std::isnan(nan.data<float>()[0]) && std::isnan(nan.data<float>()[1]));
  EXPECT_FALSE(RunStatus("Max", {a, V<double>({1, 2, 3})}).ok());
  EXPECT_FALSE(RunStatus("Sum", {a, V<float>({1, 2})}).ok());
}

// --------------------------------------------------------------------------- unary

TEST_F(ElementwiseTest, UnaryMathHandValues) {
  Tensor x = V<float>({-1.5f, 0.25f, 2.0f});
  EXPECT_TRUE(TensorsNear(Run("Neg", {x}), V<float>({1.5f, -0.25f, -2.0f})));
  EXPECT_TRUE(TensorsNear(Run("Abs", {x}), V<float>({1.5f, 0.25f, 2.0f})));
  EXPECT_TRUE(TensorsNear(Run("Exp", {x}), V<float>({0.22313016f, 1.28402542f, 7.3890561f})));
  EXPECT_TRUE(
      TensorsNear(Run("Log", {V<float>({1, 2.718281828f, 0.5f})}), V<float>({0, 1, -0.69314718f})));
  EXPECT_TRUE(TensorsNear(Run("Sqrt", {V<double>({4, 2})}), V<double>({2, 1.4142135623730951})));
  EXPECT_TRUE(TensorsNear(Run("Reciprocal", {x}), V<float>({-0.6666667f, 4.0f, 0.5f})));
  EXPECT_TRUE(TensorsNear(Run("Floor", {x}), V<float>({-2, 0, 2})));
  EXPECT_TRUE(TensorsNear(Run("Ceil", {x}), V<float>({-1, 1, 2})));
  // ONNX test_round values: ties to even.
  EXPECT_TRUE(
      TensorsNear(Run("Round", {V<float>({0.1f, 0.5f, 0.9f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f})}),
                  V<float>({0, 0, 1, 2, 2, -0, -2, -2})));
  EXPECT_TRUE(TensorsNear(Run("Erf", {V<float>({1.7640524f, -0.9772779f})}),
                          V<float>({0.9873953f, -0.83305275f})));
  EXPECT_TRUE(TensorsNear(Run("Sign", {V<float>({-5, 0, 3})}), V<float>({-1, 0, 1})));
  EXPECT_TRUE(TensorsNear(Run("Sign", {V<int32_t>({-5, 0, 3})}), V<int32_t>({-1, 0, 1})));
  EXPECT_TRUE(TensorsNear(Run("Sign", {V<uint8_t>({0, 9})}), V<uint8_t>({0, 1})));
  EXPECT_FALSE(RunStatus("Neg", {V<uint32_t>({1})}).ok());
  EXPECT_FALSE(RunStatus("Exp", {V<int32_t>({1})}).ok());
}

TEST_F(ElementwiseTest, TrigAndHyperbolic) {
  Tensor x = V<double>({-0.5, 0.3, 0.9});
  auto check = [&](const char* op, double (*f)(double)) {
    Tensor got = Run(op, {x});
    for (int i = 0; i < 3; ++i)
      EXPECT_NEAR(got.data<double>()[i], f(x.data<double>()[i]), 1e-12) << op;
  };
  check("Sin", std::sin);
  check("Cos", std::cos);
  check("Tan", std::tan);
  check("Asin", std::asin);
  check("Acos", std::acos);
  check("Atan", std::atan);
  check("Sinh", std::sinh);
  check("Cosh", std::cosh);
  check("Asinh", std::asinh);
  check("Atanh", std::atanh);
  EXPECT_TRUE(TensorsNear(Run("Acosh", {V<float>({1, 2})}), V<float>({0, 1.3169579f})));
  EXPECT_TRUE(TensorsNear(Run("Sin", {V<float>({1.5707964f})}), V<float>({1})));
}

TEST_F(ElementwiseTest, HalfTypesArePromoted) {
  auto h = ConvertTensor(V<float>({-1.5f, 4.0f}), DataType::kFloat16);
  ASSERT_TRUE(h.ok());
  Tensor out = Run("Sqrt", {Run("Abs", {*h})});
  EXPECT_EQ(out.dtype(), DataType::kFloat16);
  EXPECT_NEAR(static_cast<float>(out.data<Float16>()[0]), 1.2247449f, 1e-3);
  EXPECT_EQ(static_cast<float>(out.data<Float16>()[1]), 2.0f);
  auto bf = ConvertTensor(V<float>({1.0f, 2.0f}), DataType::kBFloat16);
  ASSERT_TRUE(bf.ok());
  Tensor sum = Run("Add", {*bf, *bf});
  EXPECT_EQ(sum.dtype(), DataType::kBFloat16);
  EXPECT_EQ(static_cast<float>(sum.data<BFloat16>()[1]), 4.0f);
}

TEST_F(ElementwiseTest, IsNaNIsInf) {
  // ONNX test_isinf / _negative / _positive input.
  Tensor x = V<float>({-1.7f, NAN, INFINITY, -3.6f, -INFINITY, INFINITY});
  EXPECT_TRUE(TensorsNear(Run("IsNaN", {x}), V<bool>({false, true, false, false, false, false})));
  EXPECT_TRUE(TensorsNear(Run("IsInf", {x}), V<bool>({false, false, true, false, true, true})));
  EXPECT_TRUE(TensorsNear(Run("IsInf", {x}, {{"detect_positive", Attr::Int(0)}}),
                          V<bool>({false, false, false, false, true, false})));
  EXPECT_TRUE(TensorsNear(Run("IsInf", {x}, {{"detect_negative", Attr::Int(0)}}),
                          V<bool>({false, false, true, false, false, true})));
  EXPECT_EQ(Infer("IsNaN", {{DataType::kFloat32, Shape({2, -1})}}).dtype, DataType::kBool);
}

// --------------------------------------------------------------------------- data ops

TEST_F(ElementwiseTest, CastAndCastLike) {
  Tensor f = V<float>({-1.7f, 0.0f, 2.9f}, {3, 1});
  Tensor i = Run("Cast", {f}, {{"to", Attr::Int(static_cast<int64_t>(DataType::kInt32))}});
  EXPECT_TRUE(TensorsNear(i, V<int32_t>({-1, 0, 2}, {3, 1})));
  Tensor b = Run("Cast", {f}, {{"to", Attr::Int(static_cast<int64_t>(DataType::kBool))}});
  EXPECT_TRUE(TensorsNear(b, V<bool>({true, false, true}, {3, 1})));
  Tensor h = Run("Cast", {f}, {{"to", Attr::Int(static_cast<int64_t>(DataType::kFloat16))}});
  EXPECT_EQ(h.dtype(), DataType::kFloat16);
  EXPECT_NEAR(static_cast<float>(h.data<Float16>()[2]), 2.9f, 2e-3);
  Tensor like = Run("CastLike", {V<int64_t>({3, -2}), V<double>({0.0}, {})});
  EXPECT_TRUE(TensorsNear(like, V<double>({3, -2})));
  Tensor s = Run("Cast", {V<std::string>({"1.5", "-2"})},
                 {{"to", Attr::Int(static_cast<int64_t>(DataType::kFloat64))}});
  EXPECT_TRUE(TensorsNear(s, V<double>({1.5, -2})));
  EXPECT_FALSE(RunStatus("Cast", {f}, {{"to", Attr::Int(99)}}).ok());
  EXPECT_FALSE(RunStatus("Cast", {f}).ok());  // `to` is required
  ValueInfo vi = Infer("Cast", {{DataType::kFloat32, Shape({-1, 3})}},
                       {{"to", Attr::Int(static_cast<int64_t>(DataType::kInt64))}});
  EXPECT_EQ(vi.dtype, DataType::kInt64);
  EXPECT_EQ(vi.shape.ToString(), "[?,3]");
  EXPECT_EQ(Infer("CastLike", {{DataType::kFloat32, Shape({2})}, {DataType::kInt8, Shape()}}).dtype,
            DataType::kInt8);
}

TEST_F(ElementwiseTest, IdentitySharesStorageForAnyType) {
  Tensor f = V<float>({1, 2, 3});
  Tensor out = Run("Identity", {f});
  EXPECT_EQ(out.raw_data(), f.raw_data());
  Tensor s = V<std::string>({"a", "bc"});
  EXPECT_TRUE(Run("Identity", {s}).BitwiseEqual(s));
}

TEST_F(ElementwiseTest, ConstantFromEachAttribute) {
  Tensor v = V<float>({1.5f, -2.0f, 3.0f, 4.0f}, {2, 2});
  EXPECT_TRUE(TensorsNear(Run("Constant", {}, {{"value", Attr::TensorValue(v)}}), v));
  EXPECT_TRUE(TensorsNear(Run("Constant", {}, {{"value_float", Attr::Float(2.5f)}}),
                          Tensor::Scalar<float>(2.5f)));
  EXPECT_TRUE(
      TensorsNear(Run("Constant", {}, {{"value_floats", Attr::Floats({1, 2})}}), V<float>({1, 2})));
  EXPECT_TRUE(TensorsNear(Run("Constant", {}, {{"value_int", Attr::Int(-7)}}),
                          Tensor::Scalar<int64_t>(-7)));
  EXPECT_TRUE(TensorsNear(Run("Constant", {}, {{"value_ints", Attr::Ints({4, 5, 6})}}),
                          V<int64_t>({4, 5, 6})));
  EXPECT_TRUE(Run("Constant", {}, {{"value_string", Attr::String("hi")}})
                  .BitwiseEqual(Tensor::Scalar<std::string>("hi")));
  EXPECT_TRUE(Run("Constant", {}, {{"value_strings", Attr::Strings({"a", "b"})}})
                  .BitwiseEqual(V<std::string>({"a", "b"})));
  EXPECT_FALSE(RunStatus("Constant", {}).ok());
  EXPECT_FALSE(
      RunStatus("Constant", {}, {{"value_int", Attr::Int(1)}, {"value_float", Attr::Float(1)}})
          .ok());
  EXPECT_EQ(RunStatus("Constant", {}, {{"sparse_value", Attr::TensorValue(v)}}).code(),
            StatusCode::kUnimplemented);
  ValueInfo vi = Infer("Constant", {}, {{"value", Attr::TensorValue(v)}});
  EXPECT_EQ(vi.dtype, DataType::kFloat32);
  EXPECT_EQ(vi.shape.ToString(), "[2,2]");
  EXPECT_EQ(Infer("Constant", {}, {{"value_ints", Attr::Ints({1, 2, 3})}}).shape.ToString(), "[3]");
}

TEST_F(ElementwiseTest, WhereBroadcastsAllTypes) {
  // ONNX test_where_example.
  EXPECT_TRUE(
      TensorsNear(Run("Where", {V<bool>({true, false, true, true}, {2, 2}),
                                V<float>({1, 2, 3, 4}, {2, 2}), V<float>({9, 8, 7, 6}, {2, 2})}),
                  V<float>({1, 8, 3, 4}, {2, 2})));
  // cond [2,1], X [3], Y scalar -> [2,3].
  EXPECT_TRUE(TensorsNear(
      Run("Where", {V<bool>({true, false}, {2, 1}), V<int64_t>({1, 2, 3}), V<int64_t>({-1}, {})}),
      V<int64_t>({1, 2, 3, -1, -1, -1}, {2, 3})));
  EXPECT_TRUE(
      Run("Where", {V<bool>({false, true}), V<std::string>({"a", "b"}), V<std::string>({"x", "y"})})
          .BitwiseEqual(V<std::string>({"x", "b"})));
  auto h = ConvertTensor(V<float>({1, 2}), DataType::kFloat16);
  ASSERT_TRUE(h.ok());
  Tensor hw =
      Run("Where", {V<bool>({false, true}), *h, V<Float16>({Float16(5.0f), Float16(6.0f)})});
  EXPECT_EQ(static_cast<float>(hw.data<Float16>()[0]), 5.0f);
  EXPECT_EQ(static_cast<float>(hw.data<Float16>()[1]), 2.0f);
  EXPECT_FALSE(
      RunStatus("Where", {V<bool>({true, false}), V<float>({1, 2, 3}), V<float>({1})}).ok());
  EXPECT_FALSE(RunStatus("Where", {V<bool>({true}), V<float>({1}), V<double>({1})}).ok());
  EXPECT_FALSE(RunStatus("Where", {V<int32_t>({1}), V<float>({1}), V<float>({1})}).ok());
  ValueInfo vi = Infer("Where", {{DataType::kBool, Shape({2, 1})},
                                 {DataType::kInt32, Shape({3})},
                                 {DataType::kInt32, Shape({})}});
  EXPECT_EQ(vi.dtype, DataType::kInt32);
  EXPECT_EQ(vi.shape.ToString(), "[2,3]");
}

TEST_F(ElementwiseTest, ShapeInferenceBroadcasts) {
  ValueInfo vi =
      Infer("Add", {{DataType::kFloat32, Shape({-1, 1, 5})}, {DataType::kFloat32, Shape({4, 1})}});
  EXPECT_EQ(vi.dtype, DataType::kFloat32);
  EXPECT_EQ(vi.shape.ToString(), "[?,4,5]");
  EXPECT_EQ(Infer("Exp", {{DataType::kFloat64, Shape({3})}}).shape.ToString(), "[3]");
  EXPECT_EQ(Infer("Pow", {{DataType::kInt32, Shape({3})}, {DataType::kFloat32, Shape({})}}).dtype,
            DataType::kInt32);
}

TEST_F(ElementwiseTest, EmptyTensors) {
  Tensor e = Tensor::Empty(DataType::kFloat32, {0, 3});
  EXPECT_EQ(Run("Add", {e, V<float>({1, 2, 3})}).dims(), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(Run("Exp", {e}).dims(), (std::vector<int64_t>{0, 3}));
}

}  // namespace
}  // namespace kiln
