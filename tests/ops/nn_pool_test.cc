#include <gtest/gtest.h>

#include <cmath>
#include <limits>
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

const OpRegistry& Reg() { return testing::FamilyRegistry<RegisterPoolOps>(); }

Tensor Iota(std::vector<int64_t> dims, float start = 1.0f) {
  Tensor t = Tensor::Empty(DataType::kFloat32, dims);
  std::iota(t.mutable_data<float>(), t.mutable_data<float>() + t.num_elements(), start);
  return t;
}

enum class Kind { kMax, kAvg, kAvgPad, kL2 };

// Direct pooling from the definition, with explicit pads and output dims.
Tensor NaivePool(const Tensor& x, Kind kind, const std::vector<int64_t>& k,
                 const std::vector<int64_t>& s, const std::vector<int64_t>& pads,
                 const std::vector<int64_t>& dil, const std::vector<int64_t>& out) {
  const int r = static_cast<int>(k.size());
  std::vector<int64_t> in(x.dims().begin() + 2, x.dims().end());
  std::vector<int64_t> ydims = {x.dim(0), x.dim(1)};
  ydims.insert(ydims.end(), out.begin(), out.end());
  Tensor y = Tensor::Empty(DataType::kFloat32, ydims);
  int64_t kn = 1;
  for (int64_t v : k) kn *= v;
  for (int64_t yi = 0; yi < y.num_elements(); ++yi) {
    std::vector<int64_t> idx = Unravel(yi, ydims);
    double acc = kind == Kind::kMax ? -INFINITY : 0.0;
    int64_t valid = 0, padded = 0;
    for (int64_t ki = 0; ki < kn; ++ki) {
      std::vector<int64_t> kidx = Unravel(ki, k);
      int64_t off = idx[0] * x.dim(1) + idx[1];
      bool inside = true, in_pad = true;
      for (int d = 0; d < r; ++d) {
        const int64_t p = idx[2 + d] * s[d] - pads[d] + kidx[d] * dil[d];
        inside = inside && p >= 0 && p < in[d];
        in_pad = in_pad && p >= -pads[d] && p < in[d] + pads[d + r];
        off = off * in[d] + p;
      }
      padded += in_pad;
      if (!inside) continue;
      ++valid;
      const double v = x.data<float>()[off];
      acc = kind == Kind::kMax ? std::max(acc, v) : kind == Kind::kL2 ? acc + v * v : acc + v;
    }
    if (kind == Kind::kAvg) acc /= valid;
    if (kind == Kind::kAvgPad) acc /= padded;
    if (kind == Kind::kL2) acc = std::sqrt(acc);
    y.mutable_data<float>()[yi] = static_cast<float>(acc);
  }
  return y;
}

TEST(MaxPool, OnnxPrecomputedPadsAndCeil) {
  auto y = RunOp(Reg(), "MaxPool", {Iota({1, 1, 5, 5})},
                 {{"kernel_shape", Attr::Ints({5, 5})}, {"pads", Attr::Ints({2, 2, 2, 2})}});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(TensorsNear(
      (*y)[0], Tensor::FromVector<float>({13, 14, 15, 15, 15, 18, 19, 20, 20, 20, 23, 24, 25,
                                          25, 25, 23, 24, 25, 25, 25, 23, 24, 25, 25, 25},
                                         {1, 1, 5, 5})));
  y = RunOp(Reg(), "MaxPool", {Iota({1, 1, 4, 4})},
            {{"kernel_shape", Attr::Ints({3, 3})},
             {"strides", Attr::Ints({2, 2})},
             {"ceil_mode", Attr::Int(1)}});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(TensorsNear((*y)[0], Tensor::FromVector<float>({11, 12, 15, 16}, {1, 1, 2, 2})));
}

TEST(MaxPool, IndicesRowAndColumnMajor) {
  AttrMap attrs = {{"kernel_shape", Attr::Ints({2, 2})}, {"strides", Attr::Ints({2, 2})}};
  auto y = RunOp(Reg(), "MaxPool", {Iota({1, 2, 5, 5})}, attrs, 2);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(TensorsNear((*y)[0],
                          Tensor::FromVector<float>({7, 9, 17, 19, 32, 34, 42, 44}, {1, 2, 2, 2})));
  EXPECT_TRUE(TensorsNear(
      (*y)[1], Tensor::FromVector<int64_t>({6, 8, 16, 18, 31, 33, 41, 43}, {1, 2, 2, 2})));
  attrs["storage_order"] = Attr::Int(1);
  y = RunOp(Reg(), "MaxPool", {Iota({1, 1, 5, 5})}, attrs, 2);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(TensorsNear((*y)[1], Tensor::FromVector<int64_t>({6, 16, 8, 18}, {1, 1, 2, 2})));
}

TEST(AveragePool, OnnxPrecomputedPads) {
  AttrMap attrs = {{"kernel_shape", Attr::Ints({5, 5})}, {"pads", Attr::Ints({2, 2, 2, 2})}};
  auto y = RunOp(Reg(), "AveragePool", {Iota({1, 1, 5, 5})}, attrs);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(TensorsNear((*y)[0],
                          Tensor::FromVector<float>(
                              {7,  7.5,  8,  8.5,  9,  9.5,  10, 10.5, 11, 11.5, 12, 12.5, 13, 13.5,
                               14, 14.5, 15, 15.5, 16, 16.5, 17, 17.5, 18, 18.5, 19},
                              {1, 1, 5, 5})));
  attrs["count_include_pad"] = Attr::Int(1);
  y = RunOp(Reg(), "AveragePool", {Iota({1, 1, 5, 5})}, attrs);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(
      TensorsNear((*y)[0],
                  Tensor::FromVector<float>(
                      {2.52, 3.6, 4.8,  4.08, 3.24, 4.56,  6.4,  8.4,  7.04, 5.52, 7.2,  10,  13,
                       10.8, 8.4, 6.96, 9.6,  12.4, 10.24, 7.92, 6.12, 8.4,  10.8, 8.88, 6.84},
                      {1, 1, 5, 5}),
                  1e-5, 1e-5));
}

TEST(Pool, MatchesDirectPooling) {
  struct Case {
    std::vector<int64_t> x, k, s, pads, dil;
  };
  const std::vector<Case> cases = {
      {{2, 3, 11}, {3}, {2}, {1, 2}, {1}},
      {{1, 2, 9, 8}, {3, 2}, {2, 1}, {1, 0, 1, 1}, {1, 1}},
      {{1, 3, 10, 9}, {3, 3}, {1, 2}, {2, 1, 0, 2}, {2, 1}},
      {{2, 2, 5, 6, 7}, {2, 3, 2}, {1, 2, 2}, {1, 0, 1, 0, 1, 1}, {1, 1, 2}},
  };
  uint32_t seed = 5;
  for (const Case& c : cases) {
    SCOPED_TRACE(DimsToString(c.x) + " k=" + DimsToString(c.k));
    const int r = static_cast<int>(c.k.size());
    auto out_dims = [&](const std::vector<int64_t>& dil) {
      std::vector<int64_t> out(r);
      for (int d = 0; d < r; ++d) {
        out[d] = (c.x[d + 2] + c.pads[d] + c.pads[d + r] - (c.k[d] - 1) * dil[d] - 1) / c.s[d] + 1;
      }
      return out;
    };
    const std::vector<int64_t> out = out_dims(c.dil), one(r, 1), out1 = out_dims(one);
    Tensor x = RandomTensor(DataType::kFloat32, c.x, seed++);
    AttrMap attrs = {{"kernel_shape", Attr::Ints(c.k)},
                     {"strides", Attr::Ints(c.s)},
                     {"pads", Attr::Ints(c.pads)},
                     {"dilations", Attr::Ints(c.dil)}};
    auto y = RunOp(Reg(), "MaxPool", {x}, attrs);
    ASSERT_TRUE(y.ok()) << y.status();
    EXPECT_TRUE(TensorsNear((*y)[0], NaivePool(x, Kind::kMax, c.k, c.s, c.pads, c.dil, out)));
    y = RunOp(Reg(), "LpPool", {x}, attrs);
    ASSERT_TRUE(y.ok()) << y.status();
    EXPECT_TRUE(TensorsNear((*y)[0], NaivePool(x, Kind::kL2, c.k, c.s, c.pads, c.dil, out)));
    attrs.erase("dilations");  // AveragePool has no dilations before opset 19
    y = RunOp(Reg(), "AveragePool", {x}, attrs);
    ASSERT_TRUE(y.ok()) << y.status();
    EXPECT_TRUE(TensorsNear((*y)[0], NaivePool(x, Kind::kAvg, c.k, c.s, c.pads, one, out1)));
    attrs["count_include_pad"] = Attr::Int(1);
    y = RunOp(Reg(), "AveragePool", {x}, attrs);
    ASSERT_TRUE(y.ok()) << y.status();
    EXPECT_TRUE(TensorsNear((*y)[0], NaivePool(x, Kind::kAvgPad, c.k, c.s, c.pads, one, out1)));
  }
}

TEST(Pool, AutoPadSame) {
  Tensor x = RandomTensor(DataType::kFloat32, {1, 2, 7, 5}, 9);
  AttrMap attrs = {{"kernel_shape", Attr::Ints({3, 2})},
                   {"strides", Attr::Ints({2, 2})},
                   {"auto_pad", Attr::String("SAME_UPPER")}};
  // out = [4, 3]; total pads = (4-1)*2+3-7 = 2 -> (1, 1); (3-1)*2+2-5 = 1 -> (0, 1).
  auto y = RunOp(Reg(), "MaxPool", {x}, attrs);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(
      TensorsNear((*y)[0], NaivePool(x, Kind::kMax, {3, 2}, {2, 2}, {1, 0, 1, 1}, {1, 1}, {4, 3})));
  attrs["auto_pad"] = Attr::String("SAME_LOWER");
  y = RunOp(Reg(), "AveragePool", {x}, attrs);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(
      TensorsNear((*y)[0], NaivePool(x, Kind::kAvg, {3, 2}, {2, 2}, {1, 1, 1, 0}, {1, 1}, {4, 3})));
}

TEST(Pool, IntegerMaxAndHalf) {
  Tensor x = Tensor::FromVector<uint8_t>({1, 200, 3, 4, 5, 6, 7, 255, 9}, {1, 1, 3, 3});
  auto y = RunOp(Reg(), "MaxPool", {x}, {{"kernel_shape", Attr::Ints({2, 2})}});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(
      TensorsNear((*y)[0], Tensor::FromVector<uint8_t>({200, 200, 255, 255}, {1, 1, 2, 2})));
  Tensor xf = RandomTensor(DataType::kFloat32, {1, 1, 4, 4}, 3);
  auto xh = ConvertTensor(xf, DataType::kFloat16);
  y = RunOp(Reg(), "AveragePool", {*xh}, {{"kernel_shape", Attr::Ints({2, 2})}});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ((*y)[0].dtype(), DataType::kFloat16);
}

TEST(GlobalPool, AverageMaxLp) {
  Tensor x = RandomTensor(DataType::kFloat32, {2, 3, 4, 5}, 4);
  auto avg = RunOp(Reg(), "GlobalAveragePool", {x});
  auto mx = RunOp(Reg(), "GlobalMaxPool", {x});
  auto lp = RunOp(Reg(), "GlobalLpPool", {x});
  ASSERT_TRUE(avg.ok() && mx.ok() && lp.ok());
  EXPECT_EQ((*avg)[0].dims(), (std::vector<int64_t>{2, 3, 1, 1}));
  for (int64_t pl = 0; pl < 6; ++pl) {
    double s = 0, m = -INFINITY, sq = 0;
    for (int64_t i = 0; i < 20; ++i) {
      const double v = x.data<float>()[pl * 20 + i];
      s += v;
      m = std::max(m, v);
      sq += v * v;
    }
    EXPECT_NEAR((*avg)[0].data<float>()[pl], s / 20, 1e-6);
    EXPECT_EQ((*mx)[0].data<float>()[pl], static_cast<float>(m));
    EXPECT_NEAR((*lp)[0].data<float>()[pl], std::sqrt(sq), 1e-5);
  }
  EXPECT_FALSE(
      RunOp(Reg(), "GlobalAveragePool", {RandomTensor(DataType::kFloat32, {2, 3}, 1)}).ok());
}

TEST(Pool, RejectsBadAttributes) {
  Tensor x = RandomTensor(DataType::kFloat32, {1, 1, 4, 4}, 1);
  EXPECT_FALSE(RunOp(Reg(), "MaxPool", {x}).ok());  // kernel_shape is required
  EXPECT_FALSE(RunOp(Reg(), "MaxPool", {x}, {{"kernel_shape", Attr::Ints({2})}}).ok());
  EXPECT_FALSE(RunOp(Reg(), "MaxPool", {x}, {{"kernel_shape", Attr::Ints({5, 5})}}).ok());
  EXPECT_FALSE(RunOp(Reg(), "MaxPool", {x},
                     {{"kernel_shape", Attr::Ints({2, 2})}, {"pads", Attr::Ints({1, 1})}})
                   .ok());
  EXPECT_FALSE(RunOp(Reg(), "AveragePool", {x},
                     {{"kernel_shape", Attr::Ints({2, 2})}, {"auto_pad", Attr::String("X")}})
                   .ok());
  EXPECT_FALSE(RunOp(Reg(), "MaxPool", {RandomTensor(DataType::kFloat32, {4, 4}, 2)},
                     {{"kernel_shape", Attr::Ints({2})}})
                   .ok());
}

TEST(Pool, ShapeInference) {
  const OpSchema* s = Reg().Find("", "MaxPool");
  Node n;
  n.name = "p";
  n.op_type = "MaxPool";
  n.inputs = {"x"};
  n.outputs = {"y", "i"};
  n.attrs["kernel_shape"] = Attr::Ints({3, 3});
  n.attrs["strides"] = Attr::Ints({2, 2});
  n.attrs["pads"] = Attr::Ints({1, 1, 1, 1});
  std::vector<ValueInfo> out;
  ASSERT_TRUE(
      RunInfer(*s, n, 17, {{DataType::kFloat32, Shape({1, 64, 112, -1})}}, {nullptr}, &out).ok());
  EXPECT_EQ(out[0].shape.ToString(), "[1,64,56,?]");
  EXPECT_EQ(out[1].dtype, DataType::kInt64);
}

// data_format="NHWC": every output (Indices included) == NHWC(output of the NCHW op).
void ExpectPoolNhwcMatchesNchw(const std::string& op, const Tensor& x, AttrMap attrs,
                               int outputs = 1) {
  SCOPED_TRACE(op + " " + x.TypeString());
  auto nchw = RunOp(Reg(), op, {x}, attrs, outputs);
  ASSERT_TRUE(nchw.ok()) << nchw.status();
  attrs["data_format"] = Attr::String("NHWC");
  auto nhwc = RunOp(Reg(), op, {ToNhwc(x)}, attrs, outputs);
  ASSERT_TRUE(nhwc.ok()) << nhwc.status();
  for (int i = 0; i < outputs; ++i) {
    EXPECT_TRUE(TensorsNear((*nhwc)[i], ToNhwc((*nchw)[i]), 1e-6, 1e-7)) << "output " << i;
  }
}

TEST(Pool, ChannelsLastMatchesChannelsFirst) {
  struct Case {
    std::vector<int64_t> x, kernel, strides, pads, dilations;
    int64_t ceil_mode;
  };
  const std::vector<Case> cases = {
      {{2, 3, 11}, {3}, {2}, {1, 1}, {1}, 0},                                     // 1-D
      {{2, 5, 7, 8}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 0},                    // ResNet-style
      {{1, 4, 9, 10}, {2, 3}, {2, 3}, {0, 1, 1, 0}, {1, 1}, 1},                   // asym, ceil
      {{1, 3, 9, 9}, {3, 2}, {1, 2}, {2, 1, 2, 1}, {2, 3}, 0},                    // dilated
      {{1, 2, 5, 5}, {2, 2}, {1, 1}, {2, 2, 2, 2}, {1, 1}, 0},                    // all-pad windows
      {{1, 17, 6, 6}, {2, 2}, {2, 2}, {0, 0, 0, 0}, {1, 1}, 0},                   // wide C
      {{1, 2, 5, 6, 4}, {2, 3, 2}, {2, 1, 2}, {1, 0, 1, 0, 1, 0}, {1, 1, 1}, 1},  // 3-D
  };
  uint32_t seed = 300;
  for (const Case& c : cases) {
    SCOPED_TRACE(DimsToString(c.x) + " kernel " + DimsToString(c.kernel));
    const Tensor x = RandomTensor(DataType::kFloat32, c.x, seed++, -3, 3);
    const AttrMap geo = {{"kernel_shape", Attr::Ints(c.kernel)},
                         {"strides", Attr::Ints(c.strides)},
                         {"pads", Attr::Ints(c.pads)},
                         {"dilations", Attr::Ints(c.dilations)},
                         {"ceil_mode", Attr::Int(c.ceil_mode)}};
    for (int64_t order : {0, 1}) {
      AttrMap a = geo;
      a["storage_order"] = Attr::Int(order);
      ExpectPoolNhwcMatchesNchw("MaxPool", x, a, 2);
    }
    ExpectPoolNhwcMatchesNchw("MaxPool", *ConvertTensor(x, DataType::kFloat64), geo);
    for (int64_t include : {0, 1}) {
      AttrMap a = geo;
      a["count_include_pad"] = Attr::Int(include);
      ExpectPoolNhwcMatchesNchw("AveragePool", x, a);
    }
    for (int64_t p : {1, 2, 3}) {
      AttrMap a = geo;
      a.erase("ceil_mode");
      a["p"] = Attr::Int(p);
      ExpectPoolNhwcMatchesNchw("LpPool", x, a);
    }
  }
  // int8 MaxPool and auto_pad.
  const Tensor xi = RandomTensor(DataType::kInt8, {2, 3, 6, 7}, 9, -100, 100);
  ExpectPoolNhwcMatchesNchw("MaxPool", xi,
                            {{"kernel_shape", Attr::Ints({3, 3})},
                             {"auto_pad", Attr::String("SAME_UPPER")},
                             {"strides", Attr::Ints({2, 2})}},
                            2);
  ExpectPoolNhwcMatchesNchw("AveragePool", RandomTensor(DataType::kFloat32, {1, 3, 7, 6}, 10),
                            {{"kernel_shape", Attr::Ints({3, 2})},
                             {"auto_pad", Attr::String("SAME_LOWER")},
                             {"strides", Attr::Ints({2, 2})}});
}

TEST(GlobalPool, ChannelsLastMatchesChannelsFirst) {
  uint32_t seed = 400;
  for (const std::vector<int64_t>& dims :
       std::vector<std::vector<int64_t>>{{2, 3, 7}, {2, 5, 4, 3}, {1, 9, 2, 3, 4}, {3, 4, 1, 1}}) {
    const Tensor x = RandomTensor(DataType::kFloat32, dims, seed++, -2, 2);
    ExpectPoolNhwcMatchesNchw("GlobalAveragePool", x, {});
    ExpectPoolNhwcMatchesNchw("GlobalMaxPool", x, {});
    ExpectPoolNhwcMatchesNchw("GlobalLpPool", x, {{"p", Attr::Int(3)}});
    ExpectPoolNhwcMatchesNchw("GlobalAveragePool", *ConvertTensor(x, DataType::kFloat64), {});
  }
}

TEST(Pool, ChannelsLastErrorsAndShapeInference) {
  Tensor x = RandomTensor(DataType::kFloat32, {1, 4, 4, 2}, 1);
  for (const char* op : {"MaxPool", "AveragePool", "LpPool"}) {
    auto r = RunOp(Reg(), op, {x},
                   {{"kernel_shape", Attr::Ints({2, 2})}, {"data_format", Attr::String("NWHC")}});
    EXPECT_FALSE(r.ok()) << op;
  }
  EXPECT_FALSE(RunOp(Reg(), "GlobalMaxPool", {x}, {{"data_format", Attr::String("HWC")}}).ok());
  // NHWC kernel 3x3 on a 4x2 (H x W) image: W is too small.
  const Tensor narrow = RandomTensor(DataType::kFloat32, {1, 4, 2, 4}, 2);
  EXPECT_FALSE(RunOp(Reg(), "MaxPool", {narrow},
                     {{"kernel_shape", Attr::Ints({3, 3})}, {"data_format", Attr::String("NHWC")}})
                   .ok());

  Node n;
  n.name = "p";
  n.op_type = "MaxPool";
  n.inputs = {"x"};
  n.outputs = {"y", "i"};
  n.attrs["kernel_shape"] = Attr::Ints({3, 3});
  n.attrs["strides"] = Attr::Ints({2, 2});
  n.attrs["pads"] = Attr::Ints({1, 1, 1, 1});
  n.attrs["data_format"] = Attr::String("NHWC");
  std::vector<ValueInfo> out;
  ASSERT_TRUE(RunInfer(*Reg().Find("", "MaxPool"), n, 17,
                       {{DataType::kFloat32, Shape({1, 112, -1, 64})}}, {nullptr}, &out)
                  .ok());
  EXPECT_EQ(out[0].shape.ToString(), "[1,56,?,64]");
  EXPECT_EQ(out[1].shape.ToString(), "[1,56,?,64]");
  n.op_type = "GlobalAveragePool";
  n.outputs = {"y"};
  n.attrs = {{"data_format", Attr::String("NHWC")}};
  ASSERT_TRUE(RunInfer(*Reg().Find("", "GlobalAveragePool"), n, 17,
                       {{DataType::kFloat32, Shape({-1, 7, 7, 2048})}}, {nullptr}, &out)
                  .ok());
  EXPECT_EQ(out[0].shape.ToString(), "[?,1,1,2048]");
  n.attrs = {{"data_format", Attr::String("NCWH")}};
  EXPECT_FALSE(RunInfer(*Reg().Find("", "GlobalAveragePool"), n, 17,
                        {{DataType::kFloat32, Shape({-1, 7, 7, 2048})}}, {nullptr}, &out)
                   .ok());
}

TEST(RoiAlign, AveragesBilinearSamples) {
  // With sampling_ratio 1 and a 1x1 output, the value is one bilinear sample at the ROI centre.
  Tensor x = RandomTensor(DataType::kFloat32, {2, 3, 5, 6}, 51);
  Tensor rois = Tensor::FromVector<float>({0.5f, 1.0f, 3.5f, 3.0f, 1.0f, 0.5f, 4.0f, 2.5f}, {2, 4}, true);
  Tensor batch = Tensor::FromVector<int64_t>({1, 0});
  for (const char* mode : {"half_pixel", "output_half_pixel"}) {
    AttrMap attrs = {{"sampling_ratio", Attr::Int(1)},
                     {"coordinate_transformation_mode", Attr::String(mode)}};
    auto out = RunOp(Reg(), "RoiAlign", {x, rois, batch}, attrs, 1, 16);
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ((*out)[0].dims(), (std::vector<int64_t>{2, 3, 1, 1}));
    const double off = std::string(mode) == "half_pixel" ? 0.5 : 0.0;
    for (int r = 0; r < 2; ++r) {
      const float* roi = rois.data<float>() + r * 4;
      const double cx = (roi[0] + roi[2]) / 2 - off, cy = (roi[1] + roi[3]) / 2 - off;
      const int x0 = static_cast<int>(cx), y0 = static_cast<int>(cy);
      const double lx = cx - x0, ly = cy - y0;
      for (int c = 0; c < 3; ++c) {
        const float* p = x.data<float>() + ((batch.data<int64_t>()[r] * 3 + c) * 5) * 6;
        const double want = (1 - ly) * (1 - lx) * p[y0 * 6 + x0] + (1 - ly) * lx * p[y0 * 6 + x0 + 1] +
                            ly * (1 - lx) * p[(y0 + 1) * 6 + x0] + ly * lx * p[(y0 + 1) * 6 + x0 + 1];
        EXPECT_NEAR((*out)[0].data<float>()[r * 3 + c], want, 1e-5) << mode;
      }
    }
  }
  // A 2x2 output with the default sampling is the mean of its four bins' samples: check that
  // the mean over bins stays within the input's range and shapes follow the attributes.
  auto out = RunOp(Reg(), "RoiAlign", {x, rois, batch},
                   {{"output_height", Attr::Int(2)}, {"output_width", Attr::Int(3)}}, 1, 16);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].dims(), (std::vector<int64_t>{2, 3, 2, 3}));
  EXPECT_FALSE(RunOp(Reg(), "RoiAlign", {x, rois, Tensor::FromVector<int64_t>({0, 2})}, {}, 1, 16).ok());
  EXPECT_FALSE(RunOp(Reg(), "RoiAlign", {x, rois, Tensor::FromVector<int64_t>({0})}, {}, 1, 16).ok());
  const float inf = std::numeric_limits<float>::infinity();
  Tensor bad = Tensor::FromVector<float>({0, 0, inf, 1, 0, 0, 1e9f, 1}, {2, 4}, true);
  EXPECT_FALSE(RunOp(Reg(), "RoiAlign", {x, bad, batch}, {}, 1, 16).ok());
  Tensor huge = Tensor::FromVector<float>({0, 0, 1e9f, 1, 0, 0, 1, 1}, {2, 4}, true);
  EXPECT_FALSE(RunOp(Reg(), "RoiAlign", {x, huge, batch}, {}, 1, 16).ok());
}

}  // namespace
}  // namespace kiln
