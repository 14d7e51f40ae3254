#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "ops/base/kernel_context.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using Dims = std::vector<int64_t>;
using F = std::vector<float>;
using S = std::vector<std::string>;
using testing::Values;

const OpRegistry& Reg() { return testing::FamilyRegistry<RegisterTensorOps>(); }

StatusOr<std::vector<Tensor>> Exec(const std::string& op, const std::vector<Tensor>& in,
                                   AttrMap attrs = {}, int num_outputs = 1, int64_t opset = 18) {
  return testing::RunOp(Reg(), op, in, std::move(attrs), num_outputs, opset);
}

// Runs op and returns output 0, failing the test on error.
Tensor Run1(const std::string& op, const std::vector<Tensor>& in, AttrMap attrs = {},
            int64_t opset = 18) {
  return testing::RunFirst(Reg(), op, in, std::move(attrs), opset);
}

Tensor I64(std::vector<int64_t> v, Dims dims = {}) {
  if (dims.empty()) dims = {static_cast<int64_t>(v.size())};
  return Tensor::FromVector<int64_t>(v, dims, true);
}
Tensor Fl(F v, Dims dims) { return Tensor::FromVector<float>(v, dims, true); }
Tensor Iota(Dims dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  F v(n);
  std::iota(v.begin(), v.end(), 0.0f);
  return Fl(v, dims);
}

std::vector<ValueInfo> Infer(const std::string& op, std::vector<ValueInfo> inputs,
                             std::vector<const Tensor*> constants, AttrMap attrs = {},
                             int num_outputs = 1) {
  return testing::InferOp(Reg(), op, inputs, std::move(constants), std::move(attrs), num_outputs);
}

// ----------------------------------------------------------------------------- Concat

TEST(Concat, AxesAndEmptyInputs) {
  Tensor a = Fl({1, 2, 3, 4}, {2, 2}), b = Fl({5, 6}, {1, 2});
  Tensor y = Run1("Concat", {a, b}, {{"axis", Attr::Int(0)}});
  EXPECT_EQ(y.dims(), (Dims{3, 2}));
  EXPECT_EQ(Values<float>(y), (F{1, 2, 3, 4, 5, 6}));
  Tensor c = Fl({7, 8}, {2, 1});
  y = Run1("Concat", {a, c, Tensor::Empty(DataType::kFloat32, {2, 0})}, {{"axis", Attr::Int(-1)}});
  EXPECT_EQ(y.dims(), (Dims{2, 3}));
  EXPECT_EQ(Values<float>(y), (F{1, 2, 7, 3, 4, 8}));
  Tensor s =
      Run1("Concat",
           {Tensor::FromVector<std::string>({"a"}), Tensor::FromVector<std::string>({"b", "c"})},
           {{"axis", Attr::Int(0)}});
  EXPECT_EQ(Values<std::string>(s), (S{"a", "b", "c"}));
}

TEST(Concat, Errors) {
  Tensor a = Fl({1, 2, 3, 4}, {2, 2}), b = Fl({5, 6}, {1, 2});
  EXPECT_FALSE(Exec("Concat", {a, b}, {{"axis", Attr::Int(1)}}).ok());
  EXPECT_FALSE(Exec("Concat", {a, b}, {{"axis", Attr::Int(2)}}).ok());
  EXPECT_FALSE(Exec("Concat", {a, I64({1, 2}, {1, 2})}, {{"axis", Attr::Int(0)}}).ok());
  EXPECT_FALSE(Exec("Concat", {a, Fl({1, 2}, {2})}, {{"axis", Attr::Int(0)}}).ok());
  EXPECT_FALSE(Exec("Concat", {a, b}).ok());  // axis is required
  auto out = Infer("Concat", {{DataType::kFloat32, Shape({-1, 3})}, {DataType::kFloat32, {2, 4}}},
                   {}, {{"axis", Attr::Int(1)}});
  EXPECT_EQ(out[0].shape.ToString(), "[2,7]");
}

// ----------------------------------------------------------------------------- Split

TEST(Split, FormsOfSizes) {
  Tensor x = Iota({2, 6});
  auto out = Exec("Split", {x}, {{"axis", Attr::Int(1)}}, 3);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(Values<float>((*out)[1]), (F{2, 3, 8, 9}));
  out = Exec("Split", {x}, {{"axis", Attr::Int(-1)}, {"split", Attr::Ints({1, 5})}}, 2, 11);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(Values<float>((*out)[0]), (F{0, 6}));
  EXPECT_EQ((*out)[1].dims(), (Dims{2, 5}));
  out = Exec("Split", {x, I64({4, 2})}, {{"axis", Attr::Int(1)}}, 2);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(Values<float>((*out)[1]), (F{4, 5, 10, 11}));
  // num_outputs (opset 18): ceil(5 / 3) = 2, 2, then 1.
  out = Exec("Split", {Iota({5})}, {{"num_outputs", Attr::Int(3)}}, 3);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(Values<float>((*out)[2]), (F{4}));
  // ONNX test_split_zero_size_splits.
  out = Exec("Split", {Tensor::Empty(DataType::kFloat32, {0}), I64({0, 0, 0})}, {}, 3);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[2].dims(), (Dims{0}));
  Tensor s = Tensor::FromVector<std::string>({"a", "b", "c", "d"});
  out = Exec("Split", {s}, {}, 2);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(Values<std::string>((*out)[1]), (S{"c", "d"}));
}

TEST(Split, Errors) {
  Tensor x = Iota({2, 6});
  EXPECT_FALSE(Exec("Split", {x}, {{"axis", Attr::Int(1)}}, 4).ok());  // 6 % 4 != 0
  EXPECT_FALSE(Exec("Split", {x, I64({4, 3})}, {{"axis", Attr::Int(1)}}, 2).ok());
  EXPECT_FALSE(Exec("Split", {x, I64({7, -1})}, {{"axis", Attr::Int(1)}}, 2).ok());
  EXPECT_FALSE(Exec("Split", {x, I64({6})}, {{"axis", Attr::Int(1)}}, 2).ok());
  EXPECT_FALSE(Exec("Split", {x}, {{"axis", Attr::Int(2)}}, 2).ok());
  EXPECT_FALSE(Exec("Split", {x}, {{"num_outputs", Attr::Int(3)}}, 2).ok());
  Tensor split = I64({1, 5});
  auto out = Infer("Split", {{DataType::kFloat32, Shape({-1, 6})}, {DataType::kInt64, {2}}},
                   {nullptr, &split}, {{"axis", Attr::Int(1)}}, 2);
  EXPECT_EQ(out[1].shape.ToString(), "[?,5]");
}

// ----------------------------------------------------------------------------- Slice

TEST(Slice, BasicAndClamping) {
  Tensor x = Iota({3, 4});
  EXPECT_EQ(Values<float>(Run1("Slice", {x, I64({0, 1}), I64({2, 3})})), (F{1, 2, 5, 6}));
  // Out-of-range ends clamp; axes may be negative.
  Tensor y = Run1("Slice", {x, I64({1}), I64({1000}), I64({-1})});
  EXPECT_EQ(y.dims(), (Dims{3, 3}));
  EXPECT_EQ(Values<float>(y), (F{1, 2, 3, 5, 6, 7, 9, 10, 11}));
  // Start past the end: empty (ONNX test_slice_start_out_of_bounds).
  EXPECT_EQ(Run1("Slice", {x, I64({1000}), I64({1001}), I64({1})}).dims(), (Dims{3, 0}));
  // Steps of 2 on both axes.
  y = Run1("Slice", {x, I64({0, 0}), I64({3, 4}), I64({0, 1}), I64({2, 2})});
  EXPECT_EQ(Values<float>(y), (F{0, 2, 8, 10}));
  // int32 inputs.
  y = Run1("Slice", {x, Tensor::FromVector<int32_t>({2}), Tensor::FromVector<int32_t>({3})});
  EXPECT_EQ(Values<float>(y), (F{8, 9, 10, 11}));
}

TEST(Slice, NegativeSteps) {
  Tensor x = Iota({10});
  EXPECT_EQ(Values<float>(Run1("Slice", {x, I64({-1}), I64({INT64_MIN}), I64({0}), I64({-1})})),
            (F{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
  EXPECT_EQ(Values<float>(Run1("Slice", {x, I64({8}), I64({1}), I64({0}), I64({-3})})),
            (F{8, 5, 2}));
  EXPECT_EQ(Values<float>(Run1("Slice", {x, I64({100}), I64({-100}), I64({0}), I64({INT64_MIN})})),
            (F{9}));
  EXPECT_EQ(Run1("Slice", {x, I64({2}), I64({5}), I64({0}), I64({-1})}).dims(), (Dims{0}));
  // ONNX test_slice_neg_steps shape: [20,10,5] starts [20,10,4] ends [0,0,1] steps [-1,-3,-2].
  Tensor big = Iota({20, 10, 5});
  Tensor y =
      Run1("Slice", {big, I64({20, 10, 4}), I64({0, 0, 1}), I64({0, 1, 2}), I64({-1, -3, -2})});
  EXPECT_EQ(y.dims(), (Dims{19, 3, 2}));
  // y[0,0,0] = big[19,9,4], y[18,2,1] = big[1,3,2].
  EXPECT_EQ(y.data<float>()[0], 19 * 50 + 9 * 5 + 4);
  EXPECT_EQ(y.data<float>()[y.num_elements() - 1], 1 * 50 + 3 * 5 + 2);
}

TEST(Slice, AttributeFormStringsAndErrors) {
  Tensor x = Iota({3, 4});
  Tensor y =
      Run1("Slice", {x},
           {{"starts", Attr::Ints({1})}, {"ends", Attr::Ints({-1})}, {"axes", Attr::Ints({1})}}, 9);
  EXPECT_EQ(Values<float>(y), (F{1, 2, 5, 6, 9, 10}));
  Tensor s = Tensor::FromVector<std::string>({"a", "b", "c", "d"});
  EXPECT_EQ(Values<std::string>(Run1("Slice", {s, I64({-1}), I64({0}), I64({0}), I64({-2})})),
            (S{"d", "b"}));
  EXPECT_FALSE(Exec("Slice", {x, I64({0}), I64({1}), I64({0}), I64({0})}).ok());
  EXPECT_FALSE(Exec("Slice", {x, I64({0, 0}), I64({1, 1}), I64({1, -1})}).ok());
  EXPECT_FALSE(Exec("Slice", {x, I64({0, 0}), I64({1})}).ok());
  EXPECT_FALSE(Exec("Slice", {x, I64({0}), I64({1}), I64({2})}).ok());
  Tensor st = I64({1}), en = I64({3}), ax = I64({1});
  auto out = Infer("Slice",
                   {{DataType::kFloat32, Shape({-1, 4})},
                    {DataType::kInt64, {1}},
                    {DataType::kInt64, {1}},
                    {DataType::kInt64, {1}}},
                   {nullptr, &st, &en, &ax});
  EXPECT_EQ(out[0].shape.ToString(), "[?,2]");
}

// ----------------------------------------------------------------------------- Gather

TEST(Gather, AxesAndNegativeIndices) {
  Tensor x = Iota({3, 4});
  Tensor y = Run1("Gather", {x, I64({2, -3}, {2})});
  EXPECT_EQ(Values<float>(y), (F{8, 9, 10, 11, 0, 1, 2, 3}));
  y = Run1("Gather", {x, I64({-1, 0, 1, 1}, {2, 2})}, {{"axis", Attr::Int(1)}});
  EXPECT_EQ(y.dims(), (Dims{3, 2, 2}));
  EXPECT_EQ(Values<float>(y), (F{3, 0, 1, 1, 7, 4, 5, 5, 11, 8, 9, 9}));
  y = Run1("Gather", {x, Tensor::Scalar<int32_t>(1)}, {{"axis", Attr::Int(-1)}});
  EXPECT_EQ(y.dims(), (Dims{3}));
  EXPECT_EQ(Values<float>(y), (F{1, 5, 9}));
  Tensor s = Tensor::FromVector<std::string>({"x", "y", "z"});
  EXPECT_EQ(Values<std::string>(Run1("Gather", {s, I64({2, 2, 0})})), (S{"z", "z", "x"}));
  EXPECT_EQ(Run1("Gather", {x, I64({})}).dims(), (Dims{0, 4}));
  EXPECT_FALSE(Exec("Gather", {x, I64({3})}).ok());
  EXPECT_FALSE(Exec("Gather", {x, I64({-4})}).ok());
  EXPECT_FALSE(Exec("Gather", {x, I64({0})}, {{"axis", Attr::Int(2)}}).ok());
  EXPECT_FALSE(Exec("Gather", {x, Fl({0}, {1})}).ok());
}

TEST(GatherElements, OnnxExamples) {
  // test_gather_elements_0 and test_gather_elements_negative_indices.
  Tensor y = Run1("GatherElements", {Fl({1, 2, 3, 4}, {2, 2}), I64({0, 0, 1, 0}, {2, 2})},
                  {{"axis", Attr::Int(1)}});
  EXPECT_EQ(Values<float>(y), (F{1, 1, 4, 3}));
  y = Run1("GatherElements",
           {Fl({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3}), I64({-1, -2, 0, -2, 0, 0}, {2, 3})});
  EXPECT_EQ(Values<float>(y), (F{7, 5, 3, 4, 2, 3}));
  EXPECT_FALSE(
      Exec("GatherElements", {Fl({1, 2}, {1, 2}), I64({2}, {1, 1})}, {{"axis", Attr::Int(1)}})
          .ok());
  EXPECT_FALSE(
      Exec("GatherElements", {Fl({1, 2}, {1, 2}), I64({0, 0}, {2, 1})}, {{"axis", Attr::Int(1)}})
          .ok());  // indices larger than data outside the axis
}

TEST(GatherND, BatchDims) {
  Tensor x = Tensor::FromVector<int32_t>({0, 1, 2, 3}, {2, 2}, true);
  EXPECT_EQ(Values<int32_t>(Run1("GatherND", {x, I64({0, 0, 1, 1}, {2, 2})})),
            (std::vector<int32_t>{0, 3}));
  EXPECT_EQ(Values<int32_t>(Run1("GatherND", {x, I64({1, 0}, {2, 1})})),
            (std::vector<int32_t>{2, 3, 0, 1}));
  // test_gathernd_example_int32_batch_dim1.
  Tensor x3 = Tensor::FromVector<int32_t>({0, 1, 2, 3, 4, 5, 6, 7}, {2, 2, 2}, true);
  Tensor y = Run1("GatherND", {x3, I64({1, 0}, {2, 1})}, {{"batch_dims", Attr::Int(1)}});
  EXPECT_EQ(y.dims(), (Dims{2, 2}));
  EXPECT_EQ(Values<int32_t>(y), (std::vector<int32_t>{2, 3, 4, 5}));
  auto out = Infer("GatherND", {{DataType::kInt32, Shape({2, 2, 2})}, {DataType::kInt64, {2, 1}}},
                   {}, {{"batch_dims", Attr::Int(1)}});
  EXPECT_EQ(out[0].shape.ToString(), "[2,2]");
  EXPECT_FALSE(Exec("GatherND", {x, I64({2, 0}, {1, 2})}).ok());
  EXPECT_FALSE(Exec("GatherND", {x, I64({0, 0, 0}, {1, 3})}).ok());
}

// ----------------------------------------------------------------------------- Scatter

TEST(ScatterElements, ReductionsAndErrors) {
  Tensor data = Fl({1, 2, 3, 4, 5}, {1, 5});
  // test_scatter_elements_with_axis / _with_duplicate_indices.
  Tensor y = Run1("ScatterElements", {data, I64({1, 3}, {1, 2}), Fl({1.1f, 2.1f}, {1, 2})},
                  {{"axis", Attr::Int(1)}});
  EXPECT_TRUE(testing::TensorsNear(y, Fl({1, 1.1f, 3, 2.1f, 5}, {1, 5})));
  y = Run1("ScatterElements", {data, I64({1, 1}, {1, 2}), Fl({1.1f, 2.1f}, {1, 2})},
           {{"axis", Attr::Int(1)}, {"reduction", Attr::String("add")}});
  EXPECT_TRUE(testing::TensorsNear(y, Fl({1, 5.2f, 3, 4, 5}, {1, 5})));
  y = Run1("ScatterElements", {data, I64({-1, 0}, {1, 2}), Fl({9, 0}, {1, 2})},
           {{"axis", Attr::Int(1)}, {"reduction", Attr::String("max")}});
  EXPECT_EQ(Values<float>(y), (F{1, 2, 3, 4, 9}));
  // Deprecated Scatter (opset 9-10) is ScatterElements without reduction.
  y = Run1("Scatter",
           {Iota({3, 3}), I64({1, 0, 2, 0, 2, 1}, {2, 3}), Fl({-1, -2, -3, -4, -5, -6}, {2, 3})},
           {}, 10);
  EXPECT_EQ(Values<float>(y), (F{-4, -2, 2, -1, 4, -6, 6, -5, -3}));
  EXPECT_FALSE(
      Exec("ScatterElements", {data, I64({5}, {1, 1}), Fl({1}, {1, 1})}, {{"axis", Attr::Int(1)}})
          .ok());
  EXPECT_FALSE(Exec("ScatterElements", {data, I64({1, 2}, {1, 2}), Fl({1}, {1, 1})},
                    {{"axis", Attr::Int(1)}})
                   .ok());
  Tensor s = Tensor::FromVector<std::string>({"a", "b"});
  EXPECT_EQ(Values<std::string>(
                Run1("ScatterElements", {s, I64({0}), Tensor::FromVector<std::string>({"z"})})),
            (S{"z", "b"}));
  EXPECT_FALSE(Exec("ScatterElements", {s, I64({0}), Tensor::FromVector<std::string>({"z"})},
                    {{"reduction", Attr::String("add")}})
                   .ok());
}

TEST(ScatterND, OnnxExamples) {
  // test_scatternd.
  Tensor y = Run1("ScatterND", {Fl({1, 2, 3, 4, 5, 6, 7, 8}, {8}), I64({4, 3, 1, 7}, {4, 1}),
                                Fl({9, 10, 11, 12}, {4})});
  EXPECT_EQ(Values<float>(y), (F{1, 11, 3, 10, 9, 6, 7, 12}));
  // Rows 0 of a [3,2] scaled twice (as in test_scatternd_multiply, smaller).
  y = Run1("ScatterND", {Iota({3, 2}), I64({2, 2}, {2, 1}), Fl({2, 3, 5, 7}, {2, 2})},
           {{"reduction", Attr::String("mul")}});
  EXPECT_EQ(Values<float>(y), (F{0, 1, 2, 3, 40, 105}));
  EXPECT_FALSE(Exec("ScatterND", {Iota({3, 2}), I64({3}, {1, 1}), Fl({1, 1}, {1, 2})}).ok());
  EXPECT_FALSE(Exec("ScatterND", {Iota({3, 2}), I64({1}, {1, 1}), Fl({1}, {1, 1})}).ok());
}

// ----------------------------------------------------------------------------- Pad

TEST(Pad, Modes) {
  Tensor x = Fl({1, 2, 3}, {3});
  auto pad = [&](const char* mode, Dims pads) {
    return Values<float>(Run1("Pad", {x, I64(pads)}, {{"mode", Attr::String(mode)}}));
  };
  EXPECT_EQ(pad("constant", {2, 1}), (F{0, 0, 1, 2, 3, 0}));
  EXPECT_EQ(pad("reflect", {2, 2}), (F{3, 2, 1, 2, 3, 2, 1}));
  EXPECT_EQ(pad("edge", {2, 2}), (F{1, 1, 1, 2, 3, 3, 3}));
  EXPECT_EQ(pad("wrap", {2, 2}), (F{2, 3, 1, 2, 3, 1, 2}));
  EXPECT_EQ(pad("reflect", {-1, 1}), (F{2, 3, 2}));
  // 2-D reflect: one row before, one column after.
  Tensor m = Fl({1, 2, 3, 4}, {2, 2});
  Tensor y = Run1("Pad", {m, I64({1, 0, 0, 1})}, {{"mode", Attr::String("reflect")}});
  EXPECT_EQ(y.dims(), (Dims{3, 3}));
  EXPECT_EQ(Values<float>(y), (F{3, 4, 3, 1, 2, 1, 3, 4, 3}));
  y = Run1("Pad", {m, I64({0, 1, 1, 0})}, {{"mode", Attr::String("edge")}});
  EXPECT_EQ(Values<float>(y), (F{1, 1, 2, 3, 3, 4, 3, 3, 4}));
}

TEST(Pad, ValueFormsAxesAndCrop) {
  Tensor x = Fl({1, 2, 3}, {3});
  EXPECT_EQ(Values<float>(Run1("Pad", {x, I64({1, 2}), Tensor::Scalar<float>(9)})),
            (F{9, 1, 2, 3, 9, 9}));
  // Opset < 11: pads and value attributes.
  EXPECT_EQ(Values<float>(
                Run1("Pad", {x}, {{"pads", Attr::Ints({0, 1})}, {"value", Attr::Float(-1)}}, 10)),
            (F{1, 2, 3, -1}));
  // Opset 18 axes input.
  Tensor y = Run1("Pad", {Iota({2, 3}), I64({1, 1}), Tensor(), I64({-1})});
  EXPECT_EQ(Values<float>(y), (F{0, 0, 1, 2, 0, 0, 3, 4, 5, 0}));
  // Negative pads crop.
  y = Run1("Pad", {Iota({2, 4}), I64({0, -1, 0, -1})});
  EXPECT_EQ(Values<float>(y), (F{1, 2, 5, 6}));
  Tensor s = Tensor::FromVector<std::string>({"a", "b"});
  EXPECT_EQ(Values<std::string>(Run1("Pad", {s, I64({1, 0})})), (S{"", "a", "b"}));
  Tensor i = Tensor::FromVector<int32_t>({5});
  EXPECT_EQ(Values<int32_t>(Run1("Pad", {i, I64({1, 1}), Tensor::Scalar<int32_t>(-7)})),
            (std::vector<int32_t>{-7, 5, -7}));
}

TEST(Pad, Errors) {
  Tensor x = Fl({1, 2, 3}, {3});
  EXPECT_FALSE(Exec("Pad", {x, I64({1})}).ok());
  EXPECT_FALSE(Exec("Pad", {x, I64({-2, -2})}).ok());
  EXPECT_FALSE(Exec("Pad", {x, I64({1, 1})}, {{"mode", Attr::String("mirror")}}).ok());
  EXPECT_FALSE(Exec("Pad", {Tensor::Empty(DataType::kFloat32, {0}), I64({1, 1})},
                    {{"mode", Attr::String("reflect")}})
                   .ok());
  EXPECT_FALSE(Exec("Pad", {x, I64({1, 1}), Tensor::Scalar<double>(1)}).ok());
  EXPECT_FALSE(Exec("Pad", {x, I64({INT64_MAX, 1})}).ok());
}

// ----------------------------------------------------------------------------- Others

Tensor Bools(std::vector<bool> v) {
  Tensor t = Tensor::Empty(DataType::kBool, {static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); ++i) t.mutable_data<bool>()[i] = v[i];
  return t;
}

TEST(Compress, AxisAndFlattened) {
  // test_compress_0 and test_compress_default_axis.
  Tensor x = Fl({1, 2, 3, 4, 5, 6}, {3, 2});
  EXPECT_EQ(
      Values<float>(Run1("Compress", {x, Bools({false, true, true})}, {{"axis", Attr::Int(0)}})),
      (F{3, 4, 5, 6}));
  EXPECT_EQ(Values<float>(Run1("Compress", {x, Bools({false, true, false, false, true})})),
            (F{2, 5}));
  EXPECT_EQ(Run1("Compress", {x, Bools({false})}, {{"axis", Attr::Int(-1)}}).dims(), (Dims{3, 0}));
  EXPECT_FALSE(Exec("Compress", {x, Bools({0, 0, 1})}, {{"axis", Attr::Int(1)}}).ok());
}

TEST(Trilu, UpperLowerK) {
  // test_tril_neg.
  Tensor x = I64({5, 0, 3, 3, 7, 9, 3, 5, 2, 4, 7, 6, 8, 8, 1, 6, 7, 7, 8, 1}, {4, 5});
  EXPECT_EQ(
      Values<int64_t>(Run1("Trilu", {x, Tensor::Scalar<int64_t>(-1)}, {{"upper", Attr::Int(0)}})),
      (Dims{0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 7, 6, 0, 0, 0, 6, 7, 7, 0, 0}));
  EXPECT_EQ(Values<float>(Run1("Trilu", {Iota({2, 3, 3})})),
            (F{0, 1, 2, 0, 4, 5, 0, 0, 8, 9, 10, 11, 0, 13, 14, 0, 0, 17}));
  EXPECT_EQ(Values<float>(Run1("Trilu", {Iota({2, 2}), Tensor::Scalar<int64_t>(INT64_MIN)})),
            (F{0, 1, 2, 3}));
  EXPECT_EQ(Values<float>(Run1("Trilu", {Iota({2, 2}), Tensor::Scalar<int64_t>(INT64_MAX)})),
            (F{0, 0, 0, 0}));
  EXPECT_FALSE(Exec("Trilu", {Iota({3})}).ok());
}

TEST(ReverseSequence, OnnxBatchExample) {
  Tensor y = Run1("ReverseSequence", {Iota({4, 4}), I64({1, 2, 3, 4})},
                  {{"batch_axis", Attr::Int(0)}, {"time_axis", Attr::Int(1)}});
  EXPECT_EQ(Values<float>(y), (F{0, 1, 2, 3, 5, 4, 6, 7, 10, 9, 8, 11, 15, 14, 13, 12}));
  // Time-major [3, 2, 1]: batch 0 reverses 3 steps, batch 1 only 2.
  y = Run1("ReverseSequence", {Iota({3, 2, 1}), I64({3, 2})});
  EXPECT_EQ(Values<float>(y), (F{4, 3, 2, 1, 0, 5}));
  EXPECT_FALSE(Exec("ReverseSequence", {Iota({4, 4}), I64({5, 1, 1, 1})}).ok());
  EXPECT_FALSE(Exec("ReverseSequence", {Iota({4, 4}), I64({1, 1})}).ok());
}

TEST(OneHot, NegativeAxisAndIndices) {
  // test_onehot_with_negative_axis: indices [[1,9],[2,4]], depth 10, axis -2.
  Tensor y = Run1("OneHot", {Fl({1, 9, 2, 4}, {2, 2}), Tensor::Scalar<float>(10), Fl({1, 3}, {2})},
                  {{"axis", Attr::Int(-2)}});
  EXPECT_EQ(y.dims(), (Dims{2, 10, 2}));
  F want(40, 1);
  want[1 * 2 + 0] = 3;       // [0, 1, 0]
  want[9 * 2 + 1] = 3;       // [0, 9, 1]
  want[20 + 2 * 2 + 0] = 3;  // [1, 2, 0]
  want[20 + 4 * 2 + 1] = 3;  // [1, 4, 1]
  EXPECT_EQ(Values<float>(y), want);
  // Negative indices count from depth; out-of-range ones give all off values.
  y = Run1("OneHot", {I64({-1, 5, 0}), I64({3}), I64({0, 1})});
  EXPECT_EQ(Values<int64_t>(y), (Dims{0, 0, 1, 0, 0, 0, 1, 0, 0}));
  EXPECT_FALSE(Exec("OneHot", {I64({0}), I64({0}), I64({0, 1})}).ok());
  EXPECT_FALSE(Exec("OneHot", {I64({0}), I64({3}), I64({0, 1, 2})}).ok());
}

TEST(NonZero, Example) {
  Tensor x = Tensor::Empty(DataType::kBool, {2, 2});
  bool* p = x.mutable_data<bool>();
  p[0] = true, p[1] = false, p[2] = true, p[3] = true;
  Tensor y = Run1("NonZero", {x});
  EXPECT_EQ(y.dims(), (Dims{2, 3}));
  EXPECT_EQ(Values<int64_t>(y), (Dims{0, 1, 1, 0, 0, 1}));
  y = Run1("NonZero", {Fl({0, 2, 0, -1}, {4})});
  EXPECT_EQ(Values<int64_t>(y), (Dims{1, 3}));
  EXPECT_EQ(Run1("NonZero", {Fl({}, {0, 3})}).dims(), (Dims{2, 0}));
}

TEST(Unique, SortedUnsortedAndAlongAnAxis) {
  // Random small integers so that values repeat.
  Tensor x = testing::RandomTensor(DataType::kInt64, {12}, 41, 0, 5);
  auto out = Exec("Unique", {x}, {}, 4);
  ASSERT_TRUE(out.ok()) << out.status();
  const std::vector<int64_t> xs = Values<int64_t>(x);
  std::vector<int64_t> want = xs;
  std::sort(want.begin(), want.end());
  want.erase(std::unique(want.begin(), want.end()), want.end());
  EXPECT_EQ(Values<int64_t>((*out)[0]), want);
  const auto y = Values<int64_t>((*out)[0]), idx = Values<int64_t>((*out)[1]);
  const auto inv = Values<int64_t>((*out)[2]), cnt = Values<int64_t>((*out)[3]);
  for (size_t j = 0; j < y.size(); ++j) {
    EXPECT_EQ(xs[idx[j]], y[j]);  // first occurrence
    EXPECT_EQ(std::find(xs.begin(), xs.end(), y[j]) - xs.begin(), idx[j]);
    EXPECT_EQ(std::count(xs.begin(), xs.end(), y[j]), cnt[j]);
  }
  for (size_t k = 0; k < xs.size(); ++k) EXPECT_EQ(y[inv[k]], xs[k]);
  // sorted=0 keeps the order of first occurrence.
  auto unsorted = Exec("Unique", {x}, {{"sorted", Attr::Int(0)}}, 1);
  ASSERT_TRUE(unsorted.ok()) << unsorted.status();
  std::vector<int64_t> first;
  for (int64_t v : xs) {
    if (std::find(first.begin(), first.end(), v) == first.end()) first.push_back(v);
  }
  EXPECT_EQ(Values<int64_t>((*unsorted)[0]), first);
  // Along axis 0 of [4, 2] rows, two rows equal.
  Tensor rows = Tensor::FromVector<float>({1, 2, 0, 5, 1, 2, -1, 3}, {4, 2}, true);
  auto by_row = Exec("Unique", {rows}, {{"axis", Attr::Int(0)}}, 3);
  ASSERT_TRUE(by_row.ok()) << by_row.status();
  EXPECT_EQ(Values<float>((*by_row)[0]), (F{-1, 3, 0, 5, 1, 2}));
  EXPECT_EQ(Values<int64_t>((*by_row)[2]), (std::vector<int64_t>{2, 1, 2, 0}));
  EXPECT_FALSE(Exec("Unique", {rows}, {{"axis", Attr::Int(2)}}, 1).ok());
  // NaNs (which compare unequal to everything) sort last and cannot break the ordering.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto with_nan = Exec("Unique", {Tensor::FromVector<float>({2, nan, -1, nan, 2})}, {}, 1);
  ASSERT_TRUE(with_nan.ok()) << with_nan.status();
  const auto u = Values<float>((*with_nan)[0]);
  ASSERT_EQ(u.size(), 3u);
  EXPECT_EQ(u[0], -1);
  EXPECT_EQ(u[1], 2);
  EXPECT_TRUE(std::isnan(u[2]));
}

}  // namespace
}  // namespace kiln
