#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ops/base/dispatch.h"
#include "ops/base/op_schema.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using testing::TensorsNear;
using testing::V;

using ActivationTest = testing::OpFamilyTest<RegisterActivationOps>;

const Tensor kX = V<float>({-2.0f, -0.5f, 0.0f, 0.5f, 3.0f});

TEST_F(ActivationTest, Relu) {
  EXPECT_TRUE(TensorsNear(Run("Relu", {kX}), V<float>({0, 0, 0, 0.5f, 3})));
  EXPECT_TRUE(TensorsNear(Run("Relu", {V<int32_t>({-3, 4})}), V<int32_t>({0, 4})));
  EXPECT_TRUE(TensorsNear(Run("Relu", {V<double>({-1e300, 1e300})}), V<double>({0, 1e300})));
  EXPECT_FALSE(RunStatus("Relu", {V<uint8_t>({1})}).ok());
}

TEST_F(ActivationTest, SigmoidTanhSoftplusSoftsign) {
  EXPECT_TRUE(TensorsNear(Run("Sigmoid", {kX}),
                          V<float>({0.11920292f, 0.37754067f, 0.5f, 0.62245933f, 0.95257413f})));
  // Extremes stay finite and saturate.
  EXPECT_TRUE(TensorsNear(Run("Sigmoid", {V<float>({-1000, 1000})}), V<float>({0, 1})));
  EXPECT_TRUE(TensorsNear(Run("Tanh", {kX}),
                          V<float>({-0.96402758f, -0.46211716f, 0, 0.46211716f, 0.99505475f})));
  // ONNX test_softplus_example; large inputs do not overflow.
  EXPECT_TRUE(TensorsNear(Run("Softplus", {V<float>({-1, 0, 1, 100})}),
                          V<float>({0.31326166f, 0.69314718f, 1.3132617f, 100})));
  EXPECT_TRUE(TensorsNear(Run("Softsign", {kX}),
                          V<float>({-0.6666667f, -0.3333333f, 0, 0.3333333f, 0.75f})));
}

TEST_F(ActivationTest, LeakyEluSeluCelu) {
  EXPECT_TRUE(TensorsNear(Run("LeakyRelu", {kX}), V<float>({-0.02f, -0.005f, 0, 0.5f, 3})));
  EXPECT_TRUE(TensorsNear(Run("LeakyRelu", {kX}, {{"alpha", Attr::Float(0.1f)}}),
                          V<float>({-0.2f, -0.05f, 0, 0.5f, 3})));
  // ONNX test_elu_example / test_selu_example (alpha=2, gamma=3).
  EXPECT_TRUE(TensorsNear(Run("Elu", {V<float>({-1, 0, 1})}, {{"alpha", Attr::Float(2)}}),
                          V<float>({-1.2642412f, 0, 1})));
  EXPECT_TRUE(TensorsNear(
      Run("Selu", {V<float>({-1, 0, 1})}, {{"alpha", Attr::Float(2)}, {"gamma", Attr::Float(3)}}),
      V<float>({-3.7927237f, 0, 3})));
  // Default Selu: gamma * alpha * (e^-1 - 1) for x = -1.
  EXPECT_TRUE(TensorsNear(Run("Selu", {V<double>({-1, 2})}), V<double>({-1.1113307, 2.1014020})));
  EXPECT_TRUE(TensorsNear(Run("Celu", {V<float>({-1, 0, 1})}, {{"alpha", Attr::Float(2)}}),
                          V<float>({-0.7869387f, 0, 1})));
  EXPECT_TRUE(TensorsNear(Run("Celu", {V<float>({-1})}), V<float>({-0.63212056f})));
}

TEST_F(ActivationTest, HardSigmoidHardSwishThresholdedMishGelu) {
  EXPECT_TRUE(
      TensorsNear(Run("HardSigmoid", {V<float>({-3, 0, 1, 3})}), V<float>({0, 0.5f, 0.7f, 1})));
  EXPECT_TRUE(TensorsNear(Run("HardSigmoid", {V<float>({-1, 0, 1})},
                              {{"alpha", Attr::Float(0.5f)}, {"beta", Attr::Float(0.6f)}}),
                          V<float>({0.1f, 0.6f, 1})));
  // ONNX test_hardswish values.
  EXPECT_TRUE(TensorsNear(Run("HardSwish", {V<float>({1.7640524f, -0.9772779f, -4, 4})}),
                          V<float>({1.400673f, -0.32946026f, 0, 4})));
  EXPECT_TRUE(TensorsNear(
      Run("ThresholdedRelu", {V<float>({-1.5f, 0, 1.2f, 2, 2.2f})}, {{"alpha", Attr::Float(2)}}),
      V<float>({0, 0, 0, 0, 2.2f})));
  EXPECT_TRUE(TensorsNear(Run("ThresholdedRelu", {V<float>({0.5f, 1.5f})}), V<float>({0, 1.5f})));
  // mish(1) = tanh(log(1 + e)) = 0.8650984; mish(-1) = -0.3034014.
  EXPECT_TRUE(
      TensorsNear(Run("Mish", {V<float>({1, -1, 0})}), V<float>({0.86509836f, -0.30340144f, 0})));
  EXPECT_TRUE(
      TensorsNear(Run("Gelu", {V<float>({1, -1, 0})}), V<float>({0.8413447f, -0.15865526f, 0})));
  EXPECT_TRUE(TensorsNear(Run("Gelu", {V<float>({1, -1})}, {{"approximate", Attr::String("tanh")}}),
                          V<float>({0.8411920f, -0.1588080f})));
}

TEST_F(ActivationTest, Shrink) {
  // ONNX test_shrink_hard (lambd=1.5) and test_shrink_soft (lambd=1.5, bias=1.5).
  Tensor x = V<float>({-2, -1, 0, 1, 2});
  EXPECT_TRUE(
      TensorsNear(Run("Shrink", {x}, {{"lambd", Attr::Float(1.5f)}}), V<float>({-2, 0, 0, 0, 2})));
  EXPECT_TRUE(
      TensorsNear(Run("Shrink", {x}, {{"lambd", Attr::Float(1.5f)}, {"bias", Attr::Float(1.5f)}}),
                  V<float>({-0.5f, 0, 0, 0, 0.5f})));
  EXPECT_TRUE(TensorsNear(Run("Shrink", {V<int32_t>({-3, 0, 3})}, {{"bias", Attr::Float(1)}}),
                          V<int32_t>({-2, 0, 2})));
}

TEST_F(ActivationTest, PReluUnidirectionalBroadcast) {
  Tensor x = V<float>({-1, 2, -3, 4, -5, 6}, {2, 3});
  EXPECT_TRUE(TensorsNear(Run("PRelu", {x, V<float>({0.5f, 0.1f, 2})}),
                          V<float>({-0.5f, 2, -6, 4, -0.5f, 6}, {2, 3})));
  EXPECT_TRUE(TensorsNear(Run("PRelu", {x, V<float>({0.25f}, {})}),
                          V<float>({-0.25f, 2, -0.75f, 4, -1.25f, 6}, {2, 3})));
  EXPECT_TRUE(
      TensorsNear(Run("PRelu", {V<int32_t>({-4, 4}), V<int32_t>({3})}), V<int32_t>({-12, 4})));
  // Slope that would grow X's shape, or does not broadcast at all.
  EXPECT_FALSE(RunStatus("PRelu", {V<float>({1, 2, 3}), V<float>({1, 2, 3}, {3, 1})}).ok());
  EXPECT_FALSE(RunStatus("PRelu", {x, V<float>({1, 2})}).ok());
}

TEST_F(ActivationTest, ClipInputsAndAttributes) {
  Tensor x = V<float>({-1, 0, 6, NAN});
  // ONNX test_clip_splitbounds.
  Tensor got = Run("Clip", {x, V<float>({-5}, {}), V<float>({5}, {})});
  EXPECT_TRUE(TensorsNear(got, V<float>({-1, 0, 5, NAN})));
  EXPECT_TRUE(TensorsNear(Run("Clip", {x, V<float>({0.5f}, {})}), V<float>({0.5f, 0.5f, 6, NAN})));
  EXPECT_TRUE(
      TensorsNear(Run("Clip", {x, Tensor(), V<float>({1}, {})}), V<float>({-1, 0, 1, NAN})));
  EXPECT_TRUE(TensorsNear(Run("Clip", {x}), x));
  // min > max: everything becomes max.
  EXPECT_TRUE(TensorsNear(Run("Clip", {V<float>({-1, 5}), V<float>({3}, {}), V<float>({2}, {})}),
                          V<float>({2, 2})));
  // Integer types (ONNX test_clip_default_int8_min) and opset-6 attributes.
  EXPECT_TRUE(TensorsNear(Run("Clip", {V<int8_t>({-7, 0, 100}), V<int8_t>({0}, {})}),
                          V<int8_t>({0, 0, 100})));
  EXPECT_TRUE(
      TensorsNear(Run("Clip", {V<uint64_t>({1, 50}), V<uint64_t>({2}, {}), V<uint64_t>({9}, {})}),
                  V<uint64_t>({2, 9})));
  EXPECT_TRUE(TensorsNear(Run("Clip", {V<float>({-3, 0.5f, 3})},
                              {{"min", Attr::Float(-1)}, {"max", Attr::Float(1)}}, 6),
                          V<float>({-1, 0.5f, 1})));
  EXPECT_TRUE(TensorsNear(Run("Clip", {V<double>({-3, 3})}, {{"max", Attr::Float(1)}}, 6),
                          V<double>({-3, 1})));
  EXPECT_FALSE(RunStatus("Clip", {x, V<double>({0}, {})}).ok());
  EXPECT_FALSE(RunStatus("Clip", {x, V<float>({0, 1})}).ok());
}

TEST_F(ActivationTest, HalfAndTypeChecks) {
  auto h = ConvertTensor(V<float>({-2, 0.5f}), DataType::kFloat16);
  ASSERT_TRUE(h.ok());
  Tensor out = Run("LeakyRelu", {*h}, {{"alpha", Attr::Float(0.5f)}});
  EXPECT_EQ(out.dtype(), DataType::kFloat16);
  EXPECT_EQ(static_cast<float>(out.data<Float16>()[0]), -1.0f);
  Tensor clip =
      Run("Clip", {*h, Tensor(), *ConvertTensor(V<float>({0.25f}, {}), DataType::kFloat16)});
  EXPECT_EQ(static_cast<float>(clip.data<Float16>()[1]), 0.25f);
  EXPECT_FALSE(RunStatus("Sigmoid", {V<int32_t>({1})}).ok());
  EXPECT_FALSE(RunStatus("Elu", {kX}, {{"alpha", Attr::Int(1)}}).ok());  // wrong attr type
  // Random tensors: Relu(x) - x == 0 where positive, -x where negative (LeakyRelu alpha 0).
  Tensor r = testing::RandomTensor(DataType::kFloat64, {4, 7}, 3);
  Tensor relu = Run("Relu", {r});
  Tensor leaky = Run("LeakyRelu", {r}, {{"alpha", Attr::Float(0)}});
  EXPECT_TRUE(TensorsNear(relu, leaky));
  for (int64_t i = 0; i < r.num_elements(); ++i) {
    EXPECT_EQ(relu.data<double>()[i], std::max(0.0, r.data<double>()[i]));
  }
}

}  // namespace
}  // namespace kiln
