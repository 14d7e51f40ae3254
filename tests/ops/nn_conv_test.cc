#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <numeric>

#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/layout_test_util.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using testing::RandomTensor;
using testing::RunOp;
using testing::TensorsNear;
using testing::ToNhwc;
using testing::Unravel;

const OpRegistry& Reg() { return testing::FamilyRegistry<RegisterConvOps>(); }

int64_t Prod(const std::vector<int64_t>& d) {
  return std::accumulate(d.begin(), d.end(), int64_t{1}, std::multiplies<int64_t>());
}

struct Geo {
  std::vector<int64_t> strides, pads, dilations;  // pads: begins then ends
};

// Direct convolution in double: the definition, one output element at a time.
Tensor NaiveConv(const Tensor& x, const Tensor& w, const Tensor* b, int64_t group, const Geo& g) {
  const int r = x.rank() - 2;
  const int64_t n_img = x.dim(0), c_in = x.dim(1), m_out = w.dim(0), cg = c_in / group,
                mg = m_out / group;
  std::vector<int64_t> in(x.dims().begin() + 2, x.dims().end());
  std::vector<int64_t> k(w.dims().begin() + 2, w.dims().end()), out(r);
  for (int d = 0; d < r; ++d) {
    out[d] =
        (in[d] + g.pads[d] + g.pads[d + r] - ((k[d] - 1) * g.dilations[d] + 1)) / g.strides[d] + 1;
  }
  std::vector<int64_t> ydims = {n_img, m_out};
  ydims.insert(ydims.end(), out.begin(), out.end());
  Tensor y = Tensor::Empty(DataType::kFloat32, ydims);
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  for (int64_t yi = 0; yi < y.num_elements(); ++yi) {
    std::vector<int64_t> yidx = Unravel(yi, ydims);
    const int64_t n = yidx[0], m = yidx[1], grp = m / mg;
    double acc = b ? b->data<float>()[m] : 0.0;
    for (int64_t c = 0; c < cg; ++c) {
      for (int64_t ki = 0; ki < Prod(k); ++ki) {
        std::vector<int64_t> kidx = Unravel(ki, k);
        int64_t off = (n * c_in + grp * cg + c);
        bool inside = true;
        for (int d = 0; d < r; ++d) {
          const int64_t pos = yidx[2 + d] * g.strides[d] - g.pads[d] + kidx[d] * g.dilations[d];
          inside = inside && pos >= 0 && pos < in[d];
          off = off * in[d] + pos;
        }
        if (!inside) continue;
        acc += double(xp[off]) * wp[(m * cg + c) * Prod(k) + ki];
      }
    }
    y.mutable_data<float>()[yi] = static_cast<float>(acc);
  }
  return y;
}

// Direct transposed convolution: every input element scatters W into the output.
Tensor NaiveConvTranspose(const Tensor& x, const Tensor& w, int64_t group, const Geo& g,
                          const std::vector<int64_t>& out) {
  const int r = x.rank() - 2;
  const int64_t n_img = x.dim(0), c_in = x.dim(1), cg = c_in / group, mg = w.dim(1);
  std::vector<int64_t> in(x.dims().begin() + 2, x.dims().end());
  std::vector<int64_t> k(w.dims().begin() + 2, w.dims().end());
  std::vector<int64_t> ydims = {n_img, mg * group};
  ydims.insert(ydims.end(), out.begin(), out.end());
  std::vector<double> acc(Prod(ydims), 0.0);
  for (int64_t xi = 0; xi < x.num_elements(); ++xi) {
    std::vector<int64_t> xidx = Unravel(xi, x.dims());
    const int64_t n = xidx[0], c = xidx[1], grp = c / cg;
    for (int64_t m = 0; m < mg; ++m) {
      for (int64_t ki = 0; ki < Prod(k); ++ki) {
        std::vector<int64_t> kidx = Unravel(ki, k);
        int64_t off = n * ydims[1] + grp * mg + m;
        bool inside = true;
        for (int d = 0; d < r; ++d) {
          const int64_t pos = xidx[2 + d] * g.strides[d] - g.pads[d] + kidx[d] * g.dilations[d];
          inside = inside && pos >= 0 && pos < out[d];
          off = off * out[d] + pos;
        }
        if (inside)
          acc[off] += double(x.data<float>()[xi]) * w.data<float>()[(c * mg + m) * Prod(k) + ki];
      }
    }
  }
  std::vector<float> f(acc.begin(), acc.end());
  return Tensor::FromVector(f, ydims, true);
}

AttrMap GeoAttrs(const Geo& g, int64_t group) {
  return {{"strides", Attr::Ints(g.strides)},
          {"pads", Attr::Ints(g.pads)},
          {"dilations", Attr::Ints(g.dilations)},
          {"group", Attr::Int(group)}};
}

TEST(Conv, OnnxBasicWithAndWithoutPadding) {
  std::vector<float> xv(25);
  std::iota(xv.begin(), xv.end(), 0.0f);
  Tensor x = Tensor::FromVector(xv, {1, 1, 5, 5});
  Tensor w = Tensor::FromVector(std::vector<float>(9, 1.0f), {1, 1, 3, 3});
  auto y = RunOp(Reg(), "Conv", {x, w},
                 {{"kernel_shape", Attr::Ints({3, 3})}, {"pads", Attr::Ints({1, 1, 1, 1})}});
  ASSERT_TRUE(y.ok()) << y.status();
  Tensor want =
      Tensor::FromVector<float>({12,  21, 27, 33,  24,  33,  54,  63, 72,  51,  63,  99, 108,
                                 117, 81, 93, 144, 153, 162, 111, 72, 111, 117, 123, 84},
                                {1, 1, 5, 5});
  EXPECT_TRUE(TensorsNear((*y)[0], want));
  y = RunOp(Reg(), "Conv", {x, w});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(TensorsNear(
      (*y)[0], Tensor::FromVector<float>({54, 63, 72, 99, 108, 117, 144, 153, 162}, {1, 1, 3, 3})));
}

struct ConvCase {
  std::vector<int64_t> x, w;
  int64_t group;
  Geo g;
};

TEST(Conv, MatchesDirectConvolution) {
  const std::vector<ConvCase> cases = {
      {{2, 3, 9}, {4, 3, 3}, 1, {{2}, {1, 2}, {1}}},                         // 1-D
      {{1, 4, 11}, {4, 2, 2}, 2, {{1}, {0, 0}, {3}}},                        // 1-D grouped
      {{2, 3, 7, 8}, {5, 3, 3, 3}, 1, {{1, 1}, {1, 1, 1, 1}, {1, 1}}},       // 3x3 same
      {{1, 3, 9, 10}, {4, 3, 3, 2}, 1, {{2, 3}, {0, 1, 2, 0}, {1, 1}}},      // strided, asym
      {{1, 4, 9, 9}, {6, 2, 3, 3}, 2, {{1, 2}, {2, 2, 2, 2}, {2, 2}}},       // grouped dilated
      {{2, 6, 8, 7}, {6, 1, 3, 3}, 6, {{2, 2}, {1, 1, 1, 1}, {1, 1}}},       // depthwise
      {{1, 5, 6, 6}, {7, 5, 1, 1}, 1, {{1, 1}, {0, 0, 0, 0}, {1, 1}}},       // 1x1 direct
      {{1, 5, 6, 6}, {7, 5, 1, 1}, 1, {{2, 2}, {0, 0, 0, 0}, {1, 1}}},       // 1x1 strided
      {{1, 64, 12, 12}, {40, 64, 3, 3}, 1, {{1, 1}, {1, 1, 1, 1}, {1, 1}}},  // GEMM-sized
      {{1, 2, 5, 6, 4}, {3, 2, 3, 2, 2}, 1, {{1, 2, 1}, {1, 0, 1, 1, 1, 0}, {1, 1, 2}}},  // 3-D
  };
  uint32_t seed = 1;
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(DimsToString(c.x) + " * " + DimsToString(c.w));
    Tensor x = RandomTensor(DataType::kFloat32, c.x, seed++);
    Tensor w = RandomTensor(DataType::kFloat32, c.w, seed++);
    Tensor b = RandomTensor(DataType::kFloat32, {c.w[0]}, seed++);
    auto y = RunOp(Reg(), "Conv", {x, w, b}, GeoAttrs(c.g, c.group));
    ASSERT_TRUE(y.ok()) << y.status();
    EXPECT_TRUE(TensorsNear((*y)[0], NaiveConv(x, w, &b, c.group, c.g), 1e-4, 1e-4));
    // float64 through GemmF64 agrees too.
    auto x64 = ConvertTensor(x, DataType::kFloat64), w64 = ConvertTensor(w, DataType::kFloat64);
    auto y64 = RunOp(Reg(), "Conv", {*x64, *w64}, GeoAttrs(c.g, c.group));
    ASSERT_TRUE(y64.ok()) << y64.status();
    auto y64f = ConvertTensor((*y64)[0], DataType::kFloat32);
    EXPECT_TRUE(TensorsNear(*y64f, NaiveConv(x, w, nullptr, c.group, c.g), 1e-4, 1e-4));
  }
}

TEST(Conv, AutoPadSameUpperLowerAndValid) {
  Tensor x = RandomTensor(DataType::kFloat32, {1, 2, 7, 6}, 11);
  Tensor w = RandomTensor(DataType::kFloat32, {3, 2, 4, 3}, 12);
  // stride 2: out = ceil(7/2)=4, ceil(6/2)=3; total pad = (4-1)*2+4-7 = 3, (3-1)*2+3-6 = 1.
  auto up = RunOp(Reg(), "Conv", {x, w},
                  {{"auto_pad", Attr::String("SAME_UPPER")}, {"strides", Attr::Ints({2, 2})}});
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_TRUE(TensorsNear((*up)[0], NaiveConv(x, w, nullptr, 1, {{2, 2}, {1, 0, 2, 1}, {1, 1}}),
                          1e-4, 1e-5));
  auto lo = RunOp(Reg(), "Conv", {x, w},
                  {{"auto_pad", Attr::String("SAME_LOWER")}, {"strides", Attr::Ints({2, 2})}});
  ASSERT_TRUE(lo.ok()) << lo.status();
  EXPECT_TRUE(TensorsNear((*lo)[0], NaiveConv(x, w, nullptr, 1, {{2, 2}, {2, 1, 1, 0}, {1, 1}}),
                          1e-4, 1e-5));
  auto valid = RunOp(Reg(), "Conv", {x, w},
                     {{"auto_pad", Attr::String("VALID")}, {"pads", Attr::Ints({1, 1, 1, 1})}});
  ASSERT_TRUE(valid.ok()) << valid.status();
  EXPECT_EQ((*valid)[0].dims(), (std::vector<int64_t>{1, 3, 4, 4}));
}

TEST(Conv, HalfIsComputedInFloat) {
  Tensor x = RandomTensor(DataType::kFloat32, {1, 2, 5, 5}, 21);
  Tensor w = RandomTensor(DataType::kFloat32, {2, 2, 3, 3}, 22);
  auto xh = ConvertTensor(x, DataType::kFloat16), wh = ConvertTensor(w, DataType::kFloat16);
  auto y = RunOp(Reg(), "Conv", {*xh, *wh});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ((*y)[0].dtype(), DataType::kFloat16);
  auto yf = ConvertTensor((*y)[0], DataType::kFloat32);
  EXPECT_TRUE(
      TensorsNear(*yf, NaiveConv(x, w, nullptr, 1, {{1, 1}, {0, 0, 0, 0}, {1, 1}}), 2e-2, 2e-2));
}

TEST(Conv, RejectsBadInputs) {
  Tensor x = RandomTensor(DataType::kFloat32, {1, 4, 5, 5}, 1);
  Tensor w = RandomTensor(DataType::kFloat32, {2, 3, 3, 3}, 2);
  EXPECT_FALSE(RunOp(Reg(), "Conv", {x, w}).ok());  // 4 channels vs 3
  Tensor w2 = RandomTensor(DataType::kFloat32, {3, 2, 3, 3}, 3);
  EXPECT_FALSE(RunOp(Reg(), "Conv", {x, w2}, {{"group", Attr::Int(2)}}).ok());  // 3 % 2
  Tensor w3 = RandomTensor(DataType::kFloat32, {2, 4, 3, 3}, 4);
  EXPECT_FALSE(RunOp(Reg(), "Conv", {x, w3}, {{"kernel_shape", Attr::Ints({2, 2})}}).ok());
  EXPECT_FALSE(RunOp(Reg(), "Conv", {x, w3}, {{"strides", Attr::Ints({1})}}).ok());
  EXPECT_FALSE(RunOp(Reg(), "Conv", {x, w3}, {{"strides", Attr::Ints({0, 1})}}).ok());
  EXPECT_FALSE(RunOp(Reg(), "Conv", {x, w3}, {{"group", Attr::Int(0)}}).ok());
  EXPECT_FALSE(RunOp(Reg(), "Conv", {x, w3, RandomTensor(DataType::kFloat32, {3}, 5)}).ok());
  Tensor big_w = RandomTensor(DataType::kFloat32, {2, 4, 7, 7}, 6);
  EXPECT_FALSE(RunOp(Reg(), "Conv", {x, big_w}).ok());  // kernel larger than input
  EXPECT_FALSE(RunOp(Reg(), "Conv", {RandomTensor(DataType::kFloat32, {4, 5}, 7), w}).ok());
}

TEST(Conv, ShapeInference) {
  const OpSchema* s = Reg().Find("", "Conv");
  Node n;
  n.name = "c";
  n.op_type = "Conv";
  n.inputs = {"x", "w"};
  n.outputs = {"y"};
  n.attrs["strides"] = Attr::Ints({2, 2});
  n.attrs["pads"] = Attr::Ints({1, 1, 1, 1});
  std::vector<ValueInfo> out;
  ASSERT_TRUE(RunInfer(*s, n, 17,
                       {{DataType::kFloat32, Shape({-1, 3, 224, 224})},
                        {DataType::kFloat32, Shape({64, 3, 7, 7})}},
                       {nullptr, nullptr}, &out)
                  .ok());
  EXPECT_EQ(out[0].shape.ToString(), "[?,64,110,110]");
  ASSERT_TRUE(RunInfer(*s, n, 17,
                       {{DataType::kFloat32, Shape({1, 3, -1, 224})},
                        {DataType::kFloat32, Shape({64, 3, 7, 7})}},
                       {nullptr, nullptr}, &out)
                  .ok());
  EXPECT_EQ(out[0].shape.ToString(), "[1,64,?,110]");
}

TEST(ConvTranspose, OnnxOneD) {
  Tensor x = Tensor::FromVector<float>({0, 1, 2}, {1, 1, 3});
  Tensor w = Tensor::FromVector<float>(std::vector<float>(6, 1.0f), {1, 2, 3});
  auto y = RunOp(Reg(), "ConvTranspose", {x, w});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(
      TensorsNear((*y)[0], Tensor::FromVector<float>({0, 1, 3, 3, 2, 0, 1, 3, 3, 2}, {1, 2, 5})));
}

TEST(ConvTranspose, MatchesDirectScatter) {
  struct Case {
    std::vector<int64_t> x, w;
    int64_t group;
    Geo g;
    std::vector<int64_t> out_pad;
  };
  const std::vector<Case> cases = {
      {{1, 2, 5}, {2, 3, 3}, 1, {{2}, {1, 0}, {1}}, {1}},
      {{2, 3, 4, 5}, {3, 2, 3, 3}, 1, {{2, 2}, {1, 1, 1, 1}, {1, 1}}, {1, 0}},
      {{1, 4, 4, 3}, {4, 3, 2, 3}, 2, {{3, 1}, {0, 1, 2, 0}, {2, 1}}, {0, 0}},
      {{1, 32, 6, 6}, {32, 16, 4, 4}, 1, {{2, 2}, {1, 1, 1, 1}, {1, 1}}, {0, 0}},
      {{1, 2, 3, 4, 3}, {2, 2, 2, 3, 2}, 1, {{2, 1, 2}, {0, 1, 0, 0, 0, 1}, {1, 1, 1}}, {1, 0, 0}},
  };
  uint32_t seed = 100;
  for (const Case& c : cases) {
    SCOPED_TRACE(DimsToString(c.x) + " * " + DimsToString(c.w));
    const int r = static_cast<int>(c.x.size()) - 2;
    std::vector<int64_t> out(r);
    for (int d = 0; d < r; ++d) {
      out[d] = c.g.strides[d] * (c.x[d + 2] - 1) + c.out_pad[d] +
               (c.w[d + 2] - 1) * c.g.dilations[d] + 1 - c.g.pads[d] - c.g.pads[d + r];
    }
    Tensor x = RandomTensor(DataType::kFloat32, c.x, seed++);
    Tensor w = RandomTensor(DataType::kFloat32, c.w, seed++);
    AttrMap attrs = GeoAttrs(c.g, c.group);
    attrs["output_padding"] = Attr::Ints(c.out_pad);
    auto y = RunOp(Reg(), "ConvTranspose", {x, w}, attrs);
    ASSERT_TRUE(y.ok()) << y.status();
    EXPECT_TRUE(TensorsNear((*y)[0], NaiveConvTranspose(x, w, c.group, c.g, out), 1e-4, 1e-4));
  }
}

TEST(ConvTranspose, OutputShapeAndBias) {
  Tensor x = RandomTensor(DataType::kFloat32, {1, 1, 3, 3}, 7);
  Tensor w = RandomTensor(DataType::kFloat32, {1, 2, 3, 3}, 8);
  Tensor b = Tensor::FromVector<float>({0.5f, -1.0f});
  // output_shape 8x6, stride 3x2: natural size 9x7, total padding 1 -> pads (1, 0) per axis.
  auto y = RunOp(Reg(), "ConvTranspose", {x, w, b},
                 {{"strides", Attr::Ints({3, 2})}, {"output_shape", Attr::Ints({8, 6})}});
  ASSERT_TRUE(y.ok()) << y.status();
  Tensor want = NaiveConvTranspose(x, w, 1, {{3, 2}, {1, 1, 0, 0}, {1, 1}}, {8, 6});
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    want.mutable_data<float>()[i] += i < 48 ? 0.5f : -1.0f;
  }
  EXPECT_TRUE(TensorsNear((*y)[0], want, 1e-5, 1e-5));
  // Larger than the natural 9x7: total padding -1 splits as floor: (0, -1), extra rows at the end.
  y = RunOp(Reg(), "ConvTranspose", {x, w},
            {{"strides", Attr::Ints({3, 2})}, {"output_shape", Attr::Ints({10, 8})}});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(TensorsNear(
      (*y)[0], NaiveConvTranspose(x, w, 1, {{3, 2}, {0, 0, -1, -1}, {1, 1}}, {10, 8}), 1e-5, 1e-5));
  EXPECT_FALSE(RunOp(Reg(), "ConvTranspose", {RandomTensor(DataType::kFloat32, {1, 2, 3, 3}, 9), w})
                   .ok());  // channels
}

TEST(ConvInteger, OnnxBasic) {
  Tensor x = Tensor::FromVector<uint8_t>({2, 3, 4, 5, 6, 7, 8, 9, 10}, {1, 1, 3, 3});
  Tensor w = Tensor::FromVector<uint8_t>({1, 1, 1, 1}, {1, 1, 2, 2});
  Tensor xz = Tensor::Scalar<uint8_t>(1);
  auto y = RunOp(Reg(), "ConvInteger", {x, w, xz});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(TensorsNear((*y)[0], Tensor::FromVector<int32_t>({12, 16, 24, 28}, {1, 1, 2, 2})));
  // Padded positions count as the zero point (contribute 0).
  y = RunOp(Reg(), "ConvInteger", {x, w, xz}, {{"pads", Attr::Ints({1, 1, 1, 1})}});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(TensorsNear(
      (*y)[0], Tensor::FromVector<int32_t>({1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9},
                                           {1, 1, 4, 4})));
}

// data_format="NHWC": Y(NHWC X) == NHWC(Y(NCHW X)) for Conv and ConvTranspose, W unchanged.
struct LayoutCase {
  std::vector<int64_t> x, w;  // NCHW X, ONNX W
  int64_t group;
  Geo g;
  bool bias;
};

void ExpectNhwcMatchesNchw(const std::string& op, const std::vector<LayoutCase>& cases,
                           uint32_t seed) {
  for (const LayoutCase& c : cases) {
    SCOPED_TRACE(op + " " + DimsToString(c.x) + " * " + DimsToString(c.w) + " group " +
                 std::to_string(c.group));
    for (DataType dt : {DataType::kFloat32, DataType::kFloat64}) {
      Tensor x = RandomTensor(dt, c.x, seed++);
      Tensor w = RandomTensor(dt, c.w, seed++);
      const int64_t m = op == "Conv" ? c.w[0] : c.w[1] * c.group;
      Tensor b = c.bias ? RandomTensor(dt, {m}, seed++) : Tensor();
      AttrMap attrs = GeoAttrs(c.g, c.group);
      auto nchw = RunOp(Reg(), op, {x, w, b}, attrs);
      ASSERT_TRUE(nchw.ok()) << nchw.status();
      attrs["data_format"] = Attr::String("NHWC");
      auto nhwc = RunOp(Reg(), op, {ToNhwc(x), w, b}, attrs);
      ASSERT_TRUE(nhwc.ok()) << nhwc.status();
      EXPECT_TRUE(TensorsNear((*nhwc)[0], ToNhwc((*nchw)[0]), 1e-4, 1e-5));
    }
  }
}

TEST(Conv, ChannelsLastMatchesChannelsFirst) {
  ExpectNhwcMatchesNchw(
      "Conv",
      {
          {{2, 3, 9}, {4, 3, 3}, 1, {{2}, {1, 2}, {1}}, true},                         // 1-D
          {{2, 3, 7, 8}, {5, 3, 3, 3}, 1, {{1, 1}, {1, 1, 1, 1}, {1, 1}}, true},       // 3x3
          {{1, 3, 9, 10}, {4, 3, 3, 2}, 1, {{2, 3}, {0, 1, 2, 0}, {1, 1}}, false},     // strided
          {{1, 6, 9, 9}, {6, 2, 3, 3}, 3, {{1, 2}, {2, 2, 2, 2}, {2, 2}}, true},       // grouped
          {{2, 8, 8, 7}, {8, 1, 3, 3}, 8, {{2, 2}, {1, 1, 1, 1}, {1, 1}}, true},       // depthwise
          {{1, 19, 7, 6}, {19, 1, 5, 3}, 19, {{1, 1}, {2, 0, 1, 3}, {1, 2}}, false},   // dw dil.
          {{1, 4, 6, 5}, {8, 1, 3, 3}, 4, {{1, 1}, {1, 1, 1, 1}, {1, 1}}, true},       // dw x2
          {{3, 5, 6, 6}, {7, 5, 1, 1}, 1, {{1, 1}, {0, 0, 0, 0}, {1, 1}}, true},       // 1x1
          {{2, 6, 5, 4}, {4, 3, 1, 1}, 2, {{1, 1}, {0, 0, 0, 0}, {1, 1}}, false},      // 1x1 grp
          {{1, 5, 7, 6}, {7, 5, 1, 1}, 1, {{2, 2}, {0, 0, 0, 0}, {1, 1}}, true},       // 1x1 s2
          {{1, 5, 4, 4}, {3, 5, 1, 1}, 1, {{1, 1}, {1, 0, 0, 1}, {1, 1}}, false},      // 1x1 pad
          {{1, 32, 10, 10}, {40, 32, 3, 3}, 1, {{1, 1}, {1, 1, 1, 1}, {1, 1}}, true},  // GEMM
          {{1, 2, 5, 6, 4}, {3, 2, 3, 2, 2}, 1, {{1, 2, 1}, {1, 0, 1, 1, 1, 0}, {1, 1, 2}}, true},
          {{1, 4, 4, 5, 3}, {4, 1, 2, 3, 2}, 4, {{2, 1, 1}, {0, 1, 1, 1, 0, 0}, {1, 1, 1}}, true},
      },
      500);
}

TEST(ConvTranspose, ChannelsLastMatchesChannelsFirst) {
  ExpectNhwcMatchesNchw(
      "ConvTranspose",
      {
          {{1, 2, 5}, {2, 3, 3}, 1, {{2}, {1, 0}, {1}}, true},
          {{2, 3, 4, 5}, {3, 2, 3, 3}, 1, {{2, 2}, {1, 1, 1, 1}, {1, 1}}, true},
          {{1, 4, 4, 3}, {4, 3, 2, 3}, 2, {{3, 1}, {0, 1, 2, 0}, {2, 1}}, false},
          {{1, 6, 5, 5}, {6, 1, 3, 3}, 6, {{2, 2}, {1, 1, 1, 1}, {1, 1}}, true},  // depthwise
          {{1, 16, 6, 6}, {16, 8, 4, 4}, 1, {{2, 2}, {1, 1, 1, 1}, {1, 1}}, true},
          {{2, 5, 3, 4}, {5, 4, 1, 1}, 1, {{1, 1}, {0, 0, 0, 0}, {1, 1}}, true},  // 1x1
          {{1, 2, 3, 4, 3}, {2, 2, 2, 3, 2}, 1, {{2, 1, 2}, {0, 1, 0, 0, 0, 1}, {1, 1, 1}}, true},
      },
      600);
  // output_shape and auto_pad go through the same geometry.
  Tensor x = RandomTensor(DataType::kFloat32, {1, 2, 3, 4}, 7);
  Tensor w = RandomTensor(DataType::kFloat32, {2, 3, 3, 3}, 8);
  for (const AttrMap& base :
       {AttrMap{{"strides", Attr::Ints({3, 2})}, {"output_shape", Attr::Ints({8, 9})}},
        AttrMap{{"strides", Attr::Ints({2, 2})}, {"auto_pad", Attr::String("SAME_LOWER")}}}) {
    auto nchw = RunOp(Reg(), "ConvTranspose", {x, w}, base);
    AttrMap attrs = base;
    attrs["data_format"] = Attr::String("NHWC");
    auto nhwc = RunOp(Reg(), "ConvTranspose", {ToNhwc(x), w}, attrs);
    ASSERT_TRUE(nchw.ok() && nhwc.ok()) << nchw.status() << nhwc.status();
    EXPECT_TRUE(TensorsNear((*nhwc)[0], ToNhwc((*nchw)[0]), 1e-5, 1e-6));
  }
}

TEST(Conv, ChannelsLastAutoPadHalfIntegerAndErrors) {
  Tensor x = RandomTensor(DataType::kFloat32, {2, 4, 7, 6}, 31);
  Tensor w = RandomTensor(DataType::kFloat32, {6, 2, 4, 3}, 32);
  AttrMap attrs = {{"auto_pad", Attr::String("SAME_UPPER")},
                   {"strides", Attr::Ints({2, 2})},
                   {"group", Attr::Int(2)}};
  auto nchw = RunOp(Reg(), "Conv", {x, w}, attrs);
  attrs["data_format"] = Attr::String("NHWC");
  auto nhwc = RunOp(Reg(), "Conv", {ToNhwc(x), w}, attrs);
  ASSERT_TRUE(nchw.ok() && nhwc.ok()) << nchw.status() << nhwc.status();
  EXPECT_TRUE(TensorsNear((*nhwc)[0], ToNhwc((*nchw)[0]), 1e-5, 1e-6));
  // float16 is promoted around the NHWC kernel too.
  auto xh = ConvertTensor(x, DataType::kFloat16), wh = ConvertTensor(w, DataType::kFloat16);
  auto yh = RunOp(Reg(), "Conv", {ToNhwc(*xh), *wh}, attrs);
  ASSERT_TRUE(yh.ok()) << yh.status();
  auto yf = ConvertTensor((*yh)[0], DataType::kFloat32);
  EXPECT_TRUE(TensorsNear(*yf, ToNhwc((*nchw)[0]), 2e-2, 2e-2));
  // ConvInteger with zero points.
  Tensor xi = RandomTensor(DataType::kUInt8, {1, 3, 6, 5}, 33, 0, 255);
  Tensor wi = RandomTensor(DataType::kUInt8, {4, 3, 3, 2}, 34, 0, 255);
  std::vector<Tensor> in = {xi, wi, Tensor::Scalar<uint8_t>(3), Tensor::Scalar<uint8_t>(200)};
  AttrMap ia = {{"pads", Attr::Ints({1, 0, 1, 1})}, {"strides", Attr::Ints({1, 2})}};
  auto yi = RunOp(Reg(), "ConvInteger", in, ia);
  ia["data_format"] = Attr::String("NHWC");
  in[0] = ToNhwc(xi);
  auto yi_nhwc = RunOp(Reg(), "ConvInteger", in, ia);
  ASSERT_TRUE(yi.ok() && yi_nhwc.ok()) << yi.status() << yi_nhwc.status();
  EXPECT_TRUE((*yi_nhwc)[0].BitwiseEqual(ToNhwc((*yi)[0])));
  // Bad data_format values and NHWC channel mismatches are errors.
  for (const char* bad : {"NCDHW", "nhwc", "", "CHWN"}) {
    auto r = RunOp(Reg(), "Conv", {x, w}, {{"data_format", Attr::String(bad)}});
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("data_format"), std::string::npos) << r.status();
  }
  EXPECT_FALSE(
      RunOp(Reg(), "Conv", {x, w}, {{"group", Attr::Int(2)}, {"data_format", Attr::String("NHWC")}})
          .ok());  // x as NHWC has 6 channels, W expects 4
}

TEST(Conv, ChannelsLastShapeInference) {
  for (const char* op : {"Conv", "ConvTranspose"}) {
    const bool conv = std::string(op) == "Conv";
    const Shape ws = conv ? Shape({32, 64, 3, 3}) : Shape({64, 16, 3, 3});
    const OpSchema* s = Reg().Find("", op);
    Node n;
    n.name = "c";
    n.op_type = op;
    n.inputs = {"x", "w"};
    n.outputs = {"y"};
    n.attrs["strides"] = Attr::Ints({2, 2});
    n.attrs["pads"] = Attr::Ints({1, 1, 1, 1});
    n.attrs["data_format"] = Attr::String("NHWC");
    std::vector<ValueInfo> out;
    ASSERT_TRUE(RunInfer(*s, n, 17,
                         {{DataType::kFloat32, Shape({-1, 224, -1, 64})}, {DataType::kFloat32, ws}},
                         {nullptr, nullptr}, &out)
                    .ok());
    EXPECT_EQ(out[0].shape.ToString(), conv ? "[?,112,?,32]" : "[?,447,?,16]");
    n.attrs["data_format"] = Attr::String("NDHWC");
    EXPECT_FALSE(RunInfer(*s, n, 17,
                          {{DataType::kFloat32, Shape({1, 8, 8, 64})}, {DataType::kFloat32, ws}},
                          {nullptr, nullptr}, &out)
                     .ok());
  }
}

// Not asserted: ResNet-50's 3x3 conv (64 -> 64, 56x56, batch 1, pads 1) in both layouts.
TEST(Conv, ResNetThreeByThreeTiming) {
  Tensor x = RandomTensor(DataType::kFloat32, {1, 64, 56, 56}, 41);
  Tensor w = RandomTensor(DataType::kFloat32, {64, 64, 3, 3}, 42);
  Tensor b = RandomTensor(DataType::kFloat32, {64}, 43);
  const Tensor xl = ToNhwc(x);
  auto best_ms = [&](const Tensor& in, const char* layout) {
    AttrMap attrs = {{"pads", Attr::Ints({1, 1, 1, 1})}, {"data_format", Attr::String(layout)}};
    double best = 1e30;
    for (int i = 0; i < 5; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      auto y = RunOp(Reg(), "Conv", {in, w, b}, attrs);
      const auto t1 = std::chrono::steady_clock::now();
      EXPECT_TRUE(y.ok()) << y.status();
      best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    return best;
  };
  const double nchw = best_ms(x, "NCHW"), nhwc = best_ms(xl, "NHWC");
  std::printf("[ timing ] Conv 3x3 64->64 56x56 batch 1 (best of 5): NCHW %.2f ms, NHWC %.2f ms\n",
              nchw, nhwc);
}

}  // namespace
}  // namespace kiln
