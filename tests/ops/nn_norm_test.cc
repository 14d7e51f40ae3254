#include <gtest/gtest.h>

#include <cmath>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/layout_test_util.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using testing::F32;
using testing::RandomTensor;
using testing::RunOp;
using testing::TensorsNear;
using testing::ToNhwc;

const OpRegistry& Reg() { return testing::FamilyRegistry<RegisterNormOps>(); }

Tensor Run1(const std::string& op, const std::vector<Tensor>& in, AttrMap attrs = {},
            int64_t opset = 18) {
  return testing::RunFirst(Reg(), op, in, std::move(attrs), opset);
}

// Normalizes groups of `count` consecutive elements (stride 1) of x: (x - mean) / sqrt(var + eps)
// followed by y = y * scale(e) + bias(e) where e is the flat element index.
template <typename ScaleFn, typename BiasFn>
Tensor NaiveNormalize(const Tensor& x, int64_t count, double eps, ScaleFn scale, BiasFn bias) {
  Tensor y = Tensor::Empty(DataType::kFloat32, x.dims());
  const float* p = x.data<float>();
  for (int64_t g = 0; g * count < x.num_elements(); ++g) {
    double m = 0, v = 0;
    for (int64_t k = 0; k < count; ++k) m += p[g * count + k];
    m /= count;
    for (int64_t k = 0; k < count; ++k) v += (p[g * count + k] - m) * (p[g * count + k] - m);
    v /= count;
    for (int64_t k = 0; k < count; ++k) {
      const int64_t e = g * count + k;
      y.mutable_data<float>()[e] = (p[e] - m) / std::sqrt(v + eps) * scale(e) + bias(e);
    }
  }
  return y;
}

TEST(BatchNorm, HandComputed) {
  // ONNX doc example: x [1,2,1,3], per-channel s, bias, mean, var.
  Tensor x = F32({-1, 0, 1, 2, 3, 4}, {1, 2, 1, 3});
  Tensor y = Run1("BatchNormalization", {x, F32({1, 1.5f}, {2}), F32({0, 1}, {2}), F32({0, 3}, {2}),
                                         F32({1, 1.5f}, {2})});
  EXPECT_TRUE(
      TensorsNear(y, F32({-0.999995f, 0, 0.999995f, -0.2247397f, 1, 2.2247397f}, {1, 2, 1, 3})));
}

TEST(BatchNorm, RandomAndForms) {
  Tensor x = RandomTensor(DataType::kFloat32, {2, 3, 4, 5}, 1, -2, 2);
  Tensor s = RandomTensor(DataType::kFloat32, {3}, 2), b = RandomTensor(DataType::kFloat32, {3}, 3);
  Tensor m = RandomTensor(DataType::kFloat32, {3}, 4);
  Tensor v = RandomTensor(DataType::kFloat32, {3}, 5, 0.5, 2);
  Tensor want = Tensor::Empty(DataType::kFloat32, x.dims());
  for (int64_t e = 0; e < x.num_elements(); ++e) {
    const int64_t c = (e / 20) % 3;
    want.mutable_data<float>()[e] = s.data<float>()[c] * (x.data<float>()[e] - m.data<float>()[c]) /
                                        std::sqrt(v.data<float>()[c] + 1e-2f) +
                                    b.data<float>()[c];
  }
  AttrMap attrs = {{"epsilon", Attr::Float(1e-2f)}};
  EXPECT_TRUE(TensorsNear(Run1("BatchNormalization", {x, s, b, m, v}, attrs, 15), want));
  // Opset 7 attributes (spatial=1 explicit, momentum) are accepted.
  attrs["spatial"] = Attr::Int(1);
  attrs["momentum"] = Attr::Float(0.5f);
  EXPECT_TRUE(TensorsNear(Run1("BatchNormalization", {x, s, b, m, v}, attrs, 7), want));
  // Inference-mode running stats pass through when requested.
  auto out = RunOp(Reg(), "BatchNormalization", {x, s, b, m, v}, {}, 3, 15);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorsNear((*out)[1], m));
  EXPECT_TRUE(TensorsNear((*out)[2], v));
  // Half input through float promotion.
  auto xh = ConvertTensor(x, DataType::kFloat16);
  ASSERT_TRUE(xh.ok());
  Tensor yh = Run1("BatchNormalization", {*xh, s, b, m, v}, {{"epsilon", Attr::Float(1e-2f)}});
  EXPECT_EQ(yh.dtype(), DataType::kFloat16);
  EXPECT_TRUE(TensorsNear(*ConvertTensor(yh, DataType::kFloat32), want, 1e-2, 1e-2));
}

TEST(BatchNorm, NonSpatial) {
  // spatial=0 (opset 7): parameters of shape dims[1:] apply per element of each sample.
  Tensor x = RandomTensor(DataType::kFloat32, {3, 2, 2}, 6);
  Tensor s = RandomTensor(DataType::kFloat32, {2, 2}, 7),
         b = RandomTensor(DataType::kFloat32, {2, 2}, 8);
  Tensor m = RandomTensor(DataType::kFloat32, {2, 2}, 9);
  Tensor v = RandomTensor(DataType::kFloat32, {2, 2}, 10, 0.5, 2);
  Tensor want = Tensor::Empty(DataType::kFloat32, x.dims());
  for (int64_t e = 0; e < 12; ++e) {
    const int64_t c = e % 4;
    want.mutable_data<float>()[e] = s.data<float>()[c] * (x.data<float>()[e] - m.data<float>()[c]) /
                                        std::sqrt(v.data<float>()[c] + 1e-5f) +
                                    b.data<float>()[c];
  }
  EXPECT_TRUE(TensorsNear(
      Run1("BatchNormalization", {x, s, b, m, v}, {{"spatial", Attr::Int(0)}}, 7), want));
}

TEST(BatchNorm, Errors) {
  Tensor x = RandomTensor(DataType::kFloat32, {2, 3, 2}, 11);
  Tensor p3 = F32({1, 2, 3}, {3});
  // Training mode is implemented for the spatial form only (spatial=0 is opset <= 8).
  auto r = RunOp(Reg(), "BatchNormalization", {x, p3, p3, p3, p3},
                 {{"training_mode", Attr::Int(1)}, {"spatial", Attr::Int(0)}}, 1, 15);
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(r.status().message().find("training_mode"), std::string::npos);
  r = RunOp(Reg(), "BatchNormalization", {x, F32({1, 2}, {2}), p3, p3, p3});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  r = RunOp(Reg(), "BatchNormalization", {F32({1, 2, 3}, {3}), p3, p3, p3, p3});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(InstanceNorm, OnnxExampleAndRandom) {
  // test_instancenorm_example.
  Tensor x = F32({-1, 0, 1, 2, 3, 4}, {1, 2, 1, 3});
  EXPECT_TRUE(
      TensorsNear(Run1("InstanceNormalization", {x, F32({1, 1.5f}, {2}), F32({0, 1}, {2})}),
                  F32({-1.2247356f, 0, 1.2247356f, -0.8371035f, 1, 2.8371034f}, {1, 2, 1, 3})));
  Tensor r = RandomTensor(DataType::kFloat32, {2, 3, 4, 5}, 12, -3, 5);
  Tensor s = RandomTensor(DataType::kFloat32, {3}, 13),
         b = RandomTensor(DataType::kFloat32, {3}, 14);
  Tensor want = NaiveNormalize(
      r, 20, 1e-3, [&](int64_t e) { return s.data<float>()[(e / 20) % 3]; },
      [&](int64_t e) { return b.data<float>()[(e / 20) % 3]; });
  EXPECT_TRUE(
      TensorsNear(Run1("InstanceNormalization", {r, s, b}, {{"epsilon", Attr::Float(1e-3f)}}), want,
                  1e-5, 1e-5));
  EXPECT_FALSE(RunOp(Reg(), "InstanceNormalization", {r, F32({1, 2}, {2}), b}).ok());
}

TEST(LayerNorm, HandComputed) {
  Tensor x = F32({1, 2, 3, 4, 4, 4}, {2, 3});
  auto out = RunOp(Reg(), "LayerNormalization", {x, F32({1, 2, 1}, {3}), F32({0, 0, 5}, {3})},
                   {{"epsilon", Attr::Float(0)}}, 3, 17);
  ASSERT_TRUE(out.ok()) << out.status();
  // Row 0: mean 2, var 2/3 -> (x - 2) * sqrt(1.5). Row 1 is constant: var 0, eps 0 -> 0 * inf.
  const float k = std::sqrt(1.5f);
  EXPECT_TRUE(TensorsNear(
      F32({(*out)[0].data<float>()[0], (*out)[0].data<float>()[1], (*out)[0].data<float>()[2]},
          {3}),
      F32({-k, 0, k + 5}, {3})));
  EXPECT_TRUE(TensorsNear((*out)[1], F32({2, 4}, {2, 1})));
  EXPECT_EQ((*out)[2].dims(), (std::vector<int64_t>{2, 1}));
  EXPECT_NEAR((*out)[2].data<float>()[0], k, 1e-6);
}

TEST(LayerNorm, RandomAxesAndBroadcastScale) {
  Tensor x = RandomTensor(DataType::kFloat32, {2, 3, 4}, 15, -2, 3);
  for (int axis : {-1, 1, 0, -2}) {
    const int a = axis < 0 ? axis + 3 : axis;
    int64_t count = 1;
    std::vector<int64_t> norm_dims;
    for (int i = a; i < 3; ++i) {
      count *= x.dim(i);
      norm_dims.push_back(x.dim(i));
    }
    Tensor s = RandomTensor(DataType::kFloat32, norm_dims, 16 + a);
    Tensor b = RandomTensor(DataType::kFloat32, norm_dims, 20 + a);
    Tensor want = NaiveNormalize(
        x, count, 1e-5, [&](int64_t e) { return s.data<float>()[e % count]; },
        [&](int64_t e) { return b.data<float>()[e % count]; });
    auto out = RunOp(Reg(), "LayerNormalization", {x, s, b}, {{"axis", Attr::Int(axis)}}, 3, 17);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(TensorsNear((*out)[0], want, 1e-5, 1e-5)) << axis;
    std::vector<int64_t> stat_dims(x.dims().begin(), x.dims().begin() + a);
    stat_dims.resize(3, 1);
    EXPECT_EQ((*out)[1].dims(), stat_dims);
    EXPECT_EQ((*out)[1].dtype(), DataType::kFloat32);
  }
  // Scale of shape [4] broadcast over normalized dims [3, 4]; no bias.
  Tensor s = RandomTensor(DataType::kFloat32, {4}, 30);
  Tensor want = NaiveNormalize(
      x, 12, 1e-5, [&](int64_t e) { return s.data<float>()[e % 4]; }, [](int64_t) { return 0.0; });
  EXPECT_TRUE(TensorsNear(Run1("LayerNormalization", {x, s}, {{"axis", Attr::Int(1)}}, 17), want,
                          1e-5, 1e-5));
  // Half input keeps float32 statistics.
  auto xh = ConvertTensor(x, DataType::kFloat16);
  auto out = RunOp(Reg(), "LayerNormalization", {*xh, *ConvertTensor(s, DataType::kFloat16)},
                   {{"axis", Attr::Int(1)}}, 2, 17);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].dtype(), DataType::kFloat16);
  EXPECT_EQ((*out)[1].dtype(), DataType::kFloat32);
  EXPECT_TRUE(TensorsNear(*ConvertTensor((*out)[0], DataType::kFloat32), want, 1e-2, 1e-2));
  // Errors.
  EXPECT_FALSE(RunOp(Reg(), "LayerNormalization", {x, F32({1, 2}, {2})}).ok());
  EXPECT_FALSE(RunOp(Reg(), "LayerNormalization", {x, s}, {{"axis", Attr::Int(3)}}).ok());
}

TEST(LayerNorm, ShapeInference) {
  const OpSchema* schema = Reg().Find("", "LayerNormalization");
  Node node;
  node.name = "ln";
  node.op_type = "LayerNormalization";
  node.inputs = {"x", "s"};
  node.outputs = {"y", "m", "i"};
  node.attrs["axis"] = Attr::Int(1);
  std::vector<ValueInfo> out;
  ASSERT_TRUE(RunInfer(*schema, node, 17,
                       {{DataType::kFloat16, Shape({-1, 3, 4})}, {DataType::kFloat16, Shape({4})}},
                       {nullptr, nullptr}, &out)
                  .ok());
  EXPECT_EQ(out[0].shape.ToString(), "[?,3,4]");
  EXPECT_EQ(out[1].shape.ToString(), "[?,1,1]");
  EXPECT_EQ(out[2].dtype, DataType::kFloat32);
}

TEST(GroupNorm, RandomVsNaive) {
  Tensor x = RandomTensor(DataType::kFloat32, {2, 6, 3, 2}, 31, -1, 4);
  // Per-group parameters (opset 18): 3 groups of 2 channels, 12 elements per group.
  Tensor s = RandomTensor(DataType::kFloat32, {3}, 32),
         b = RandomTensor(DataType::kFloat32, {3}, 33);
  Tensor want = NaiveNormalize(
      x, 12, 1e-5, [&](int64_t e) { return s.data<float>()[(e / 12) % 3]; },
      [&](int64_t e) { return b.data<float>()[(e / 12) % 3]; });
  AttrMap attrs = {{"num_groups", Attr::Int(3)}};
  EXPECT_TRUE(TensorsNear(Run1("GroupNormalization", {x, s, b}, attrs), want, 1e-5, 1e-5));
  // Per-channel parameters (opset 21 form).
  Tensor sc = RandomTensor(DataType::kFloat32, {6}, 34),
         bc = RandomTensor(DataType::kFloat32, {6}, 35);
  want = NaiveNormalize(
      x, 12, 1e-5, [&](int64_t e) { return sc.data<float>()[(e / 6) % 6]; },
      [&](int64_t e) { return bc.data<float>()[(e / 6) % 6]; });
  EXPECT_TRUE(TensorsNear(Run1("GroupNormalization", {x, sc, bc}, attrs), want, 1e-5, 1e-5));
  EXPECT_FALSE(RunOp(Reg(), "GroupNormalization", {x, s, b}, {{"num_groups", Attr::Int(4)}}).ok());
  EXPECT_FALSE(RunOp(Reg(), "GroupNormalization", {x, F32({1, 2}, {2}), b}, attrs).ok());
  EXPECT_FALSE(RunOp(Reg(), "GroupNormalization", {x, s, b}).ok());  // num_groups required
}

TEST(Mvn, RandomVsNaive) {
  // Default axes [0, 2, 3]: statistics per channel over N, H, W.
  Tensor x = RandomTensor(DataType::kFloat32, {3, 2, 2, 2}, 40, -1, 3);
  Tensor want = Tensor::Empty(DataType::kFloat32, x.dims());
  for (int c = 0; c < 2; ++c) {
    double m = 0, v = 0;
    std::vector<int64_t> idx;
    for (int64_t n = 0; n < 3; ++n) {
      for (int64_t k = 0; k < 4; ++k) idx.push_back((n * 2 + c) * 4 + k);
    }
    for (int64_t e : idx) m += x.data<float>()[e] / 12.0;
    for (int64_t e : idx) v += (x.data<float>()[e] - m) * (x.data<float>()[e] - m) / 12.0;
    for (int64_t e : idx) {
      want.mutable_data<float>()[e] = (x.data<float>()[e] - m) / (std::sqrt(v) + 1e-9);
    }
  }
  EXPECT_TRUE(TensorsNear(Run1("MeanVarianceNormalization", {x}, {}, 13), want, 1e-5, 1e-5));
  // axes = [-1]: per row.
  Tensor x2 = RandomTensor(DataType::kFloat32, {3, 4}, 41);
  Tensor want2 = NaiveNormalize(
      x2, 4, 0, [](int64_t) { return 1.0; }, [](int64_t) { return 0.0; });
  EXPECT_TRUE(TensorsNear(Run1("MeanVarianceNormalization", {x2}, {{"axes", Attr::Ints({-1})}}, 13),
                          want2, 1e-4, 1e-5));
  EXPECT_FALSE(RunOp(Reg(), "MeanVarianceNormalization", {x2}).ok());  // axis 2 out of range
}

TEST(Lrn, HandComputedAndRandom) {
  // alpha / size = 1, beta = 1, bias = 1: y_c = x_c / (1 + sum of neighbouring squares).
  Tensor x = F32({1, 2, 3}, {1, 3, 1, 1});
  AttrMap attrs = {{"alpha", Attr::Float(3)}, {"beta", Attr::Float(1)}, {"size", Attr::Int(3)}};
  EXPECT_TRUE(
      TensorsNear(Run1("LRN", {x}, attrs), F32({1 / 6.f, 2 / 15.f, 3 / 14.f}, {1, 3, 1, 1})));
  // Even size 2: window [c, c + 1].
  attrs = {{"alpha", Attr::Float(2)}, {"beta", Attr::Float(1)}, {"size", Attr::Int(2)}};
  EXPECT_TRUE(
      TensorsNear(Run1("LRN", {x}, attrs), F32({1 / 6.f, 2 / 14.f, 3 / 10.f}, {1, 3, 1, 1})));

  Tensor r = RandomTensor(DataType::kFloat32, {2, 5, 3, 3}, 42, -2, 2);
  const float alpha = 2e-2f, beta = 0.5f, bias = 2.0f;
  const int size = 3;
  Tensor want = Tensor::Empty(DataType::kFloat32, r.dims());
  for (int64_t e = 0; e < r.num_elements(); ++e) {
    const int64_t c = (e / 9) % 5, base = e - c * 9;
    double sum = 0;
    for (int64_t k = std::max<int64_t>(0, c - 1); k <= std::min<int64_t>(4, c + 1); ++k) {
      sum += r.data<float>()[base + k * 9] * r.data<float>()[base + k * 9];
    }
    want.mutable_data<float>()[e] = r.data<float>()[e] / std::pow(bias + alpha / size * sum, beta);
  }
  EXPECT_TRUE(TensorsNear(Run1("LRN", {r},
                               {{"alpha", Attr::Float(alpha)},
                                {"beta", Attr::Float(beta)},
                                {"bias", Attr::Float(bias)},
                                {"size", Attr::Int(size)}}),
                          want));
  EXPECT_FALSE(RunOp(Reg(), "LRN", {r}).ok());  // size is required
  EXPECT_FALSE(RunOp(Reg(), "LRN", {r}, {{"size", Attr::Int(0)}}).ok());
}

// data_format="NHWC": Y(NHWC X) == NHWC(Y(NCHW X)); the per-channel inputs are unchanged.
void ExpectNormNhwcMatchesNchw(const std::string& op, const Tensor& x,
                               const std::vector<Tensor>& params, AttrMap attrs) {
  SCOPED_TRACE(op + " " + x.TypeString());
  std::vector<Tensor> in = {x};
  in.insert(in.end(), params.begin(), params.end());
  auto nchw = RunOp(Reg(), op, in, attrs);
  ASSERT_TRUE(nchw.ok()) << nchw.status();
  attrs["data_format"] = Attr::String("NHWC");
  in[0] = ToNhwc(x);
  auto nhwc = RunOp(Reg(), op, in, attrs);
  ASSERT_TRUE(nhwc.ok()) << nhwc.status();
  EXPECT_TRUE(TensorsNear((*nhwc)[0], ToNhwc((*nchw)[0]), 1e-5, 1e-6));
}

TEST(ChannelsLast, BatchInstanceNormAndLrnMatchChannelsFirst) {
  uint32_t seed = 700;
  for (const std::vector<int64_t>& dims : std::vector<std::vector<int64_t>>{
           {2, 3, 5}, {2, 5, 4, 3}, {1, 7, 3, 2, 4}, {3, 16, 1, 1}, {1, 9, 6, 6}}) {
    SCOPED_TRACE(DimsToString(dims));
    const int64_t c = dims[1];
    for (DataType dt : {DataType::kFloat32, DataType::kFloat64}) {
      Tensor x = RandomTensor(dt, dims, seed++, -2, 3);
      Tensor s = RandomTensor(dt, {c}, seed++), b = RandomTensor(dt, {c}, seed++);
      Tensor m = RandomTensor(dt, {c}, seed++);
      Tensor v = RandomTensor(dt, {c}, seed++, 0.2, 2);
      ExpectNormNhwcMatchesNchw("BatchNormalization", x, {s, b, m, v},
                                {{"epsilon", Attr::Float(1e-3f)}});
      ExpectNormNhwcMatchesNchw("InstanceNormalization", x, {s, b},
                                {{"epsilon", Attr::Float(1e-4f)}});
      for (int64_t size : {1, 2, 3, 5}) {
        ExpectNormNhwcMatchesNchw("LRN", x, {},
                                  {{"size", Attr::Int(size)},
                                   {"alpha", Attr::Float(0.3f)},
                                   {"beta", Attr::Float(0.6f)},
                                   {"bias", Attr::Float(1.5f)}});
      }
    }
  }
}

TEST(ChannelsLast, ErrorsAndShapes) {
  Tensor x = RandomTensor(DataType::kFloat32, {2, 4, 4, 3}, 1);
  Tensor p3 = RandomTensor(DataType::kFloat32, {3}, 2, 0.5, 1);
  Tensor p4 = RandomTensor(DataType::kFloat32, {4}, 3, 0.5, 1);
  const AttrMap nhwc = {{"data_format", Attr::String("NHWC")}};
  EXPECT_TRUE(RunOp(Reg(), "BatchNormalization", {x, p3, p3, p3, p3}, nhwc).ok());
  EXPECT_FALSE(RunOp(Reg(), "BatchNormalization", {x, p4, p4, p4, p4}, nhwc).ok());  // C is 3
  EXPECT_TRUE(RunOp(Reg(), "InstanceNormalization", {x, p3, p3}, nhwc).ok());
  EXPECT_FALSE(RunOp(Reg(), "InstanceNormalization", {x, p4, p4}, nhwc).ok());
  for (const char* bad : {"NCW", "NHCW", ""}) {
    const AttrMap a = {{"data_format", Attr::String(bad)}};
    EXPECT_FALSE(RunOp(Reg(), "BatchNormalization", {x, p4, p4, p4, p4}, a).ok()) << bad;
    EXPECT_FALSE(RunOp(Reg(), "InstanceNormalization", {x, p4, p4}, a).ok()) << bad;
    AttrMap l = a;
    l["size"] = Attr::Int(3);
    EXPECT_FALSE(RunOp(Reg(), "LRN", {x}, l).ok()) << bad;
  }
  // Opset-7 spatial=0 (per-element parameters) has no channels-last meaning.
  Tensor p48 = RandomTensor(DataType::kFloat32, {48}, 4, 0.5, 1);
  auto r = RunOp(Reg(), "BatchNormalization", {x, p48, p48, p48, p48},
                 {{"spatial", Attr::Int(0)}, {"data_format", Attr::String("NHWC")}}, 1, 7);
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented) << r.status();

  for (const char* op : {"BatchNormalization", "InstanceNormalization", "LRN"}) {
    Node n;
    n.name = "n";
    n.op_type = op;
    n.inputs = {"x"};
    n.outputs = {"y"};
    n.attrs["data_format"] = Attr::String("NHWC");
    std::vector<ValueInfo> in(5, {DataType::kFloat32, Shape({3})});
    in[0] = {DataType::kFloat32, Shape({1, -1, 5, 3})};
    n.inputs.resize(std::string(op) == "LRN"                  ? 1
                    : std::string(op) == "BatchNormalization" ? 5
                                                              : 3,
                    "p");
    in.resize(n.inputs.size());
    std::vector<ValueInfo> out;
    ASSERT_TRUE(RunInfer(*Reg().Find("", op), n, 17, in,
                         std::vector<const Tensor*>(in.size(), nullptr), &out)
                    .ok())
        << op;
    EXPECT_EQ(out[0].shape.ToString(), "[1,?,5,3]");
    n.attrs["data_format"] = Attr::String("CHWN");
    EXPECT_FALSE(RunInfer(*Reg().Find("", op), n, 17, in,
                          std::vector<const Tensor*>(in.size(), nullptr), &out)
                     .ok())
        << op;
  }
}

TEST(BatchNorm, TrainingModeUsesBatchStatisticsAndUpdatesRunningStats) {
  Tensor x = RandomTensor(DataType::kFloat32, {3, 2, 4}, 31);
  Tensor s = RandomTensor(DataType::kFloat32, {2}, 32), b = RandomTensor(DataType::kFloat32, {2}, 33);
  Tensor m = RandomTensor(DataType::kFloat32, {2}, 34);
  Tensor v = RandomTensor(DataType::kFloat32, {2}, 35, 0.5, 2);
  const float momentum = 0.7f, eps = 1e-3f;
  AttrMap attrs = {{"training_mode", Attr::Int(1)}, {"momentum", Attr::Float(momentum)},
                   {"epsilon", Attr::Float(eps)}};
  auto out = RunOp(Reg(), "BatchNormalization", {x, s, b, m, v}, attrs, 3, 15);
  ASSERT_TRUE(out.ok()) << out.status();
  Tensor want_y = Tensor::Empty(DataType::kFloat32, x.dims());
  for (int c = 0; c < 2; ++c) {
    double mean = 0, var = 0;
    for (int n = 0; n < 3; ++n) {
      for (int i = 0; i < 4; ++i) mean += x.data<float>()[(n * 2 + c) * 4 + i];
    }
    mean /= 12;
    for (int n = 0; n < 3; ++n) {
      for (int i = 0; i < 4; ++i) {
        const double d = x.data<float>()[(n * 2 + c) * 4 + i] - mean;
        var += d * d;
      }
    }
    var /= 12;
    for (int n = 0; n < 3; ++n) {
      for (int i = 0; i < 4; ++i) {
        const int e = (n * 2 + c) * 4 + i;
        want_y.mutable_data<float>()[e] = static_cast<float>(
            (x.data<float>()[e] - mean) / std::sqrt(var + eps) * s.data<float>()[c] +
            b.data<float>()[c]);
      }
    }
    EXPECT_NEAR((*out)[1].data<float>()[c], m.data<float>()[c] * momentum + mean * (1 - momentum),
                1e-5);
    EXPECT_NEAR((*out)[2].data<float>()[c], v.data<float>()[c] * momentum + var * (1 - momentum),
                1e-5);
  }
  EXPECT_TRUE(TensorsNear((*out)[0], want_y, 1e-4, 1e-5));
}

}  // namespace
}  // namespace kiln
