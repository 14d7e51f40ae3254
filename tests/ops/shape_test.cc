#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "ops/base/kernel_context.h"
#include "ops/base/shape_util.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using Dims = std::vector<int64_t>;
using testing::Values;

const OpRegistry& Reg() { return testing::FamilyRegistry<RegisterShapeOps>(); }

StatusOr<std::vector<Tensor>> Exec(const std::string& op, const std::vector<Tensor>& in,
                                   AttrMap attrs = {}, int64_t opset = 18) {
  return testing::RunOp(Reg(), op, in, std::move(attrs), 1, opset);
}

// Runs op and returns output 0, failing the test on error.
Tensor Run1(const std::string& op, const std::vector<Tensor>& in, AttrMap attrs = {},
            int64_t opset = 18) {
  return testing::RunFirst(Reg(), op, in, std::move(attrs), opset);
}

Tensor I64(std::vector<int64_t> v) { return Tensor::FromVector<int64_t>(v); }

std::vector<float> Iota(int64_t n) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), 0.0f);
  return v;
}

Tensor IotaTensor(Dims dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return Tensor::FromVector<float>(Iota(n), dims, true);
}

// Shape inference for one node with the given input infos and constants.
std::vector<ValueInfo> Infer(const std::string& op, std::vector<ValueInfo> inputs,
                             std::vector<const Tensor*> constants, AttrMap attrs = {}) {
  return testing::InferOp(Reg(), op, inputs, std::move(constants), std::move(attrs));
}

// ----------------------------------------------------------------------------- Reshape

TEST(Reshape, ZeroCopiesDimAndMinusOneIsInferred) {
  Tensor x = IotaTensor({2, 3, 4});
  Tensor y = Run1("Reshape", {x, I64({0, -1, 2})});
  EXPECT_EQ(y.dims(), (Dims{2, 6, 2}));
  EXPECT_EQ(y.raw_data(), x.raw_data());  // zero-copy
  EXPECT_EQ(Values<float>(y), Iota(24));
  EXPECT_EQ(Run1("Reshape", {x, I64({-1})}).dims(), (Dims{24}));
  EXPECT_EQ(Run1("Reshape", {x, Tensor::FromVector<int32_t>({4, 0, 2})}).dims(), (Dims{4, 3, 2}));
}

TEST(Reshape, AllowZeroKeepsZeroDims) {
  Tensor empty = Tensor::Empty(DataType::kFloat32, {0, 3});
  EXPECT_EQ(Run1("Reshape", {empty, I64({3, 0})}, {{"allowzero", Attr::Int(1)}}).dims(),
            (Dims{3, 0}));
  // Without allowzero, 0 copies the input dim: [0,3] -> [0, 3].
  EXPECT_EQ(Run1("Reshape", {empty, I64({0, 3})}).dims(), (Dims{0, 3}));
  EXPECT_EQ(Run1("Reshape", {empty, I64({-1, 3})}).dims(), (Dims{0, 3}));
  // ONNX test_reshape_allowzero_reordered: [0,3,4] -> [3,4,0].
  Tensor e3 = Tensor::Empty(DataType::kFloat32, {0, 3, 4});
  EXPECT_EQ(Run1("Reshape", {e3, I64({3, 4, 0})}, {{"allowzero", Attr::Int(1)}}).dims(),
            (Dims{3, 4, 0}));
  EXPECT_FALSE(Exec("Reshape", {e3, I64({3, 4, 0})}).ok());  // 0 copies dim 2 (=4): 48 != 0
  EXPECT_FALSE(Exec("Reshape", {e3, I64({0, -1})}, {{"allowzero", Attr::Int(1)}}).ok());
}

TEST(Reshape, Errors) {
  Tensor x = IotaTensor({2, 3});
  EXPECT_FALSE(Exec("Reshape", {x, I64({-1, -1})}).ok());
  EXPECT_FALSE(Exec("Reshape", {x, I64({4, -1})}).ok());
  EXPECT_FALSE(Exec("Reshape", {x, I64({5})}).ok());
  EXPECT_FALSE(Exec("Reshape", {x, I64({0, 0, 0})}).ok());  // 0 beyond the input rank
  EXPECT_FALSE(Exec("Reshape", {x, I64({-2, -3})}).ok());
  auto bad_type = Exec("Reshape", {x, Tensor::FromVector<float>({6})});
  EXPECT_FALSE(bad_type.ok());
}

TEST(Reshape, Strings) {
  Tensor s = Tensor::FromVector<std::string>({"a", "b", "c", "d"});
  Tensor y = Run1("Reshape", {s, I64({2, 2})});
  EXPECT_EQ(y.dims(), (Dims{2, 2}));
  EXPECT_EQ(y.data<std::string>()[3], "d");
}

TEST(Reshape, Infer) {
  Tensor shape = I64({0, -1});
  auto out = Infer("Reshape", {{DataType::kFloat32, Shape({-1, 3, 4})}, {DataType::kInt64, {2}}},
                   {nullptr, &shape});
  EXPECT_EQ(out[0].shape.ToString(), "[?,?]");
  out = Infer("Reshape", {{DataType::kFloat32, Shape({2, 3, 4})}, {DataType::kInt64, {2}}},
              {nullptr, &shape});
  EXPECT_EQ(out[0].shape.ToString(), "[2,12]");
  out = Infer("Reshape", {{DataType::kFloat32, Shape({2, 3, 4})}, {DataType::kInt64, {3}}}, {});
  EXPECT_EQ(out[0].shape.ToString(), "[?,?,?]");
}

// ----------------------------------------------------------------------------- Flatten

TEST(Flatten, Axes) {
  Tensor x = IotaTensor({2, 3, 4, 5});
  EXPECT_EQ(Run1("Flatten", {x}).dims(), (Dims{2, 60}));
  EXPECT_EQ(Run1("Flatten", {x}, {{"axis", Attr::Int(0)}}).dims(), (Dims{1, 120}));
  EXPECT_EQ(Run1("Flatten", {x}, {{"axis", Attr::Int(4)}}).dims(), (Dims{120, 1}));
  EXPECT_EQ(Run1("Flatten", {x}, {{"axis", Attr::Int(-1)}}).dims(), (Dims{24, 5}));
  EXPECT_EQ(Run1("Flatten", {x}, {{"axis", Attr::Int(-4)}}).dims(), (Dims{1, 120}));
  EXPECT_EQ(
      Run1("Flatten", {Tensor::Empty(DataType::kInt8, {3, 0, 2})}, {{"axis", Attr::Int(2)}}).dims(),
      (Dims{0, 2}));
  EXPECT_FALSE(Exec("Flatten", {x}, {{"axis", Attr::Int(5)}}).ok());
  EXPECT_FALSE(Exec("Flatten", {x}, {{"axis", Attr::Int(-5)}}).ok());
  auto out = Infer("Flatten", {{DataType::kFloat32, Shape({-1, 3, 4})}}, {});
  EXPECT_EQ(out[0].shape.ToString(), "[?,12]");
}

// ----------------------------------------------------------------------------- Squeeze

TEST(Squeeze, AttrAndInputForms) {
  Tensor x = IotaTensor({1, 3, 1, 2});
  EXPECT_EQ(Run1("Squeeze", {x}, {{"axes", Attr::Ints({0})}}, 11).dims(), (Dims{3, 1, 2}));
  EXPECT_EQ(Run1("Squeeze", {x, I64({-2, 0})}).dims(), (Dims{3, 2}));
  EXPECT_EQ(Run1("Squeeze", {x}).dims(), (Dims{3, 2}));
  EXPECT_EQ(Run1("Squeeze", {x}).raw_data(), x.raw_data());
  EXPECT_EQ(Run1("Squeeze", {IotaTensor({1})}).dims(), (Dims{}));
}

TEST(Squeeze, Errors) {
  Tensor x = IotaTensor({1, 3});
  EXPECT_FALSE(Exec("Squeeze", {x, I64({1})}).ok());      // size 3
  EXPECT_FALSE(Exec("Squeeze", {x, I64({2})}).ok());      // out of range
  EXPECT_FALSE(Exec("Squeeze", {x, I64({0, -2})}).ok());  // repeated
}

// ----------------------------------------------------------------------------- Unsqueeze

TEST(Unsqueeze, AttrAndInputForms) {
  Tensor x = IotaTensor({3, 4});
  EXPECT_EQ(Run1("Unsqueeze", {x}, {{"axes", Attr::Ints({0, 3})}}, 11).dims(), (Dims{1, 3, 4, 1}));
  EXPECT_EQ(Run1("Unsqueeze", {x, I64({-1})}).dims(), (Dims{3, 4, 1}));
  // ONNX test_unsqueeze_unsorted_axes: [3,4,5] axes [5,4,2] -> [3,4,1,5,1,1].
  EXPECT_EQ(Run1("Unsqueeze", {IotaTensor({3, 4, 5}), I64({5, 4, 2})}).dims(),
            (Dims{3, 4, 1, 5, 1, 1}));
  EXPECT_EQ(Run1("Unsqueeze", {Tensor::Scalar<float>(2.0f), I64({0})}).dims(), (Dims{1}));
  EXPECT_FALSE(Exec("Unsqueeze", {x, I64({4})}).ok());
  EXPECT_FALSE(Exec("Unsqueeze", {x, I64({1, 1})}).ok());
  EXPECT_FALSE(Exec("Unsqueeze", {x}).ok());  // no axes at all
  auto out =
      Infer("Unsqueeze", {{DataType::kFloat32, Shape({-1, 4})}}, {}, {{"axes", Attr::Ints({1})}});
  EXPECT_EQ(out[0].shape.ToString(), "[?,1,4]");
}

// ----------------------------------------------------------------------------- Shape, Size

TEST(ShapeOp, StartEnd) {
  Tensor x = Tensor::Empty(DataType::kString, {3, 4, 5});
  EXPECT_EQ(Values<int64_t>(Run1("Shape", {x})), (Dims{3, 4, 5}));
  EXPECT_EQ(Values<int64_t>(Run1("Shape", {x}, {{"start", Attr::Int(1)}})), (Dims{4, 5}));
  EXPECT_EQ(Values<int64_t>(Run1("Shape", {x}, {{"end", Attr::Int(-1)}})), (Dims{3, 4}));
  EXPECT_EQ(Values<int64_t>(Run1("Shape", {x}, {{"start", Attr::Int(-10)}})), (Dims{3, 4, 5}));
  EXPECT_EQ(Run1("Shape", {x}, {{"start", Attr::Int(2)}, {"end", Attr::Int(1)}}).dims(), (Dims{0}));
  EXPECT_EQ(Run1("Shape", {Tensor::Scalar<int32_t>(1)}).dims(), (Dims{0}));
  Tensor size = Run1("Size", {x});
  EXPECT_EQ(size.dims(), (Dims{}));
  EXPECT_EQ(*size.data<int64_t>(), 60);
}

// ----------------------------------------------------------------------------- ConstantOfShape

TEST(ConstantOfShape, ValueAndDefault) {
  Tensor y = Run1("ConstantOfShape", {I64({2, 3})});
  EXPECT_EQ(y.dtype(), DataType::kFloat32);
  EXPECT_EQ(Values<float>(y), std::vector<float>(6, 0.0f));
  y = Run1("ConstantOfShape", {I64({4})},
           {{"value", Attr::TensorValue(Tensor::FromVector<int64_t>({7}))}});
  EXPECT_EQ(Values<int64_t>(y), (Dims{7, 7, 7, 7}));
  y = Run1("ConstantOfShape", {I64({2, 0})},
           {{"value", Attr::TensorValue(Tensor::FromVector<int32_t>({1}))}});
  EXPECT_EQ(y.dims(), (Dims{2, 0}));
  EXPECT_EQ(Run1("ConstantOfShape", {I64({})}).dims(), (Dims{}));
}

TEST(ConstantOfShape, Errors) {
  EXPECT_FALSE(Exec("ConstantOfShape", {I64({2, -1})}).ok());
  auto huge = Exec("ConstantOfShape", {I64({1 << 30, 1 << 30, 1 << 30})});
  EXPECT_FALSE(huge.ok());
  auto overflow = Exec("ConstantOfShape", {I64({int64_t{1} << 40, int64_t{1} << 40})});
  EXPECT_FALSE(overflow.ok());
  EXPECT_FALSE(Exec("ConstantOfShape", {I64({2})},
                    {{"value", Attr::TensorValue(Tensor::FromVector<float>({1, 2}))}})
                   .ok());
}

// ----------------------------------------------------------------------------- Range

TEST(Range, FloatAndInt) {
  // ONNX test_range_float_type_positive_delta and test_range_int32_type_negative_delta.
  Tensor y =
      Run1("Range", {Tensor::Scalar<float>(1), Tensor::Scalar<float>(5), Tensor::Scalar<float>(2)});
  EXPECT_EQ(Values<float>(y), (std::vector<float>{1, 3}));
  y = Run1("Range",
           {Tensor::Scalar<int32_t>(10), Tensor::Scalar<int32_t>(6), Tensor::Scalar<int32_t>(-3)});
  EXPECT_EQ(Values<int32_t>(y), (std::vector<int32_t>{10, 7}));
  y = Run1("Range",
           {Tensor::Scalar<double>(0), Tensor::Scalar<double>(1), Tensor::Scalar<double>(0.25)});
  EXPECT_EQ(Values<double>(y), (std::vector<double>{0, 0.25, 0.5, 0.75}));
  y = Run1("Range",
           {Tensor::Scalar<int64_t>(5), Tensor::Scalar<int64_t>(1), Tensor::Scalar<int64_t>(1)});
  EXPECT_EQ(y.dims(), (Dims{0}));
  EXPECT_FALSE(Exec("Range", {Tensor::Scalar<int64_t>(0), Tensor::Scalar<int64_t>(3),
                              Tensor::Scalar<int64_t>(0)})
                   .ok());
  EXPECT_FALSE(Exec("Range", {Tensor::Scalar<int64_t>(0), Tensor::Scalar<int32_t>(3),
                              Tensor::Scalar<int64_t>(1)})
                   .ok());
  EXPECT_FALSE(Exec("Range", {Tensor::Scalar<int64_t>(INT64_MIN),
                              Tensor::Scalar<int64_t>(INT64_MAX), Tensor::Scalar<int64_t>(1)})
                   .ok());
}

// ----------------------------------------------------------------------------- Transpose

// Naive reference: out[i] = x[perm-mapped index].
Tensor NaiveTranspose(const Tensor& x, const Dims& perm) {
  Dims out_dims(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) out_dims[i] = x.dim(static_cast<int>(perm[i]));
  Tensor y = Tensor::Empty(x.dtype(), out_dims);
  Dims in_strides = ContiguousStrides(x.dims());
  Dims index(perm.size(), 0);
  for (int64_t o = 0; o < y.num_elements(); ++o) {
    int64_t off = 0;
    for (size_t i = 0; i < perm.size(); ++i) off += index[i] * in_strides[perm[i]];
    CopyElement(x, off, &y, o);
    for (int k = static_cast<int>(perm.size()) - 1; k >= 0; --k) {
      if (++index[k] < out_dims[k]) break;
      index[k] = 0;
    }
  }
  return y;
}

TEST(Transpose, AllPermutationsMatchNaive) {
  for (const Dims& dims : {Dims{2, 3, 4}, Dims{5, 1, 7, 3}, Dims{9, 40, 33}}) {
    Tensor x = testing::RandomTensor(DataType::kFloat32, dims, 7);
    Dims perm(dims.size());
    std::iota(perm.begin(), perm.end(), 0);
    do {
      Tensor y = Run1("Transpose", {x}, {{"perm", Attr::Ints(perm)}});
      EXPECT_TRUE(y.BitwiseEqual(NaiveTranspose(x, perm))) << DimsToString(perm);
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
}

TEST(Transpose, TwoDimTiledAndDefaultPerm) {
  Tensor x = testing::RandomTensor(DataType::kFloat64, {67, 45}, 3);
  Tensor y = Run1("Transpose", {x});
  EXPECT_EQ(y.dims(), (Dims{45, 67}));
  EXPECT_TRUE(y.BitwiseEqual(NaiveTranspose(x, {1, 0})));
  Tensor h = testing::RandomTensor(DataType::kFloat16, {2, 33, 17}, 4);
  EXPECT_TRUE(Run1("Transpose", {h}).BitwiseEqual(NaiveTranspose(h, {2, 1, 0})));
}

TEST(Transpose, StringsEmptyAndErrors) {
  Tensor s = Tensor::FromVector<std::string>({"a", "b", "c", "d", "e", "f"}, {2, 3}, true);
  Tensor y = Run1("Transpose", {s});
  EXPECT_EQ(Values<std::string>(y), (std::vector<std::string>{"a", "d", "b", "e", "c", "f"}));
  EXPECT_EQ(Run1("Transpose", {Tensor::Empty(DataType::kInt32, {0, 3})}).dims(), (Dims{3, 0}));
  Tensor x = IotaTensor({2, 3});
  EXPECT_FALSE(Exec("Transpose", {x}, {{"perm", Attr::Ints({0, 0})}}).ok());
  EXPECT_FALSE(Exec("Transpose", {x}, {{"perm", Attr::Ints({0, 1, 2})}}).ok());
  EXPECT_FALSE(Exec("Transpose", {x}, {{"perm", Attr::Ints({0, 2})}}).ok());
}

// ----------------------------------------------------------------------------- Expand

TEST(Expand, Broadcasts) {
  // ONNX test_expand_dim_changed: [3,1] to [2,1,6].
  Tensor x = Tensor::FromVector<float>({1, 2, 3}, {3, 1}, true);
  Tensor y = Run1("Expand", {x, I64({2, 1, 6})});
  EXPECT_EQ(y.dims(), (Dims{2, 3, 6}));
  std::vector<float> want;
  for (int r = 0; r < 2; ++r) {
    for (float v : {1.0f, 2.0f, 3.0f}) want.insert(want.end(), 6, v);
  }
  EXPECT_EQ(Values<float>(y), want);
  // test_expand_dim_unchanged: [3,1] to [3,4].
  EXPECT_EQ(Run1("Expand", {x, I64({3, 4})}).dims(), (Dims{3, 4}));
  // A shape smaller than the input keeps the input's dims.
  EXPECT_EQ(Run1("Expand", {x, I64({1})}).dims(), (Dims{3, 1}));
  Tensor s = Tensor::FromVector<std::string>({"x", "y"}, {2, 1}, true);
  EXPECT_EQ(Values<std::string>(Run1("Expand", {s, I64({2, 2})})),
            (std::vector<std::string>{"x", "x", "y", "y"}));
  EXPECT_FALSE(Exec("Expand", {x, I64({2, 4})}).ok());
  EXPECT_FALSE(Exec("Expand", {x, I64({-1, 4})}).ok());
  Tensor shape = I64({2, 1, 6});
  auto out = Infer("Expand", {{DataType::kFloat32, Shape({3, 1})}, {DataType::kInt64, {3}}},
                   {nullptr, &shape});
  EXPECT_EQ(out[0].shape.ToString(), "[2,3,6]");
}

// ----------------------------------------------------------------------------- Tile

TEST(Tile, Repeats) {
  // ONNX test_tile_precomputed.
  Tensor x = Tensor::FromVector<float>({0, 1, 2, 3}, {2, 2}, true);
  Tensor y = Run1("Tile", {x, I64({2, 2})});
  EXPECT_EQ(Values<float>(y), (std::vector<float>{0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3}));
  y = Run1("Tile", {Tensor::FromVector<int8_t>({1, 2, 3}), I64({3})});
  EXPECT_EQ(Values<int8_t>(y), (std::vector<int8_t>{1, 2, 3, 1, 2, 3, 1, 2, 3}));
  y = Run1("Tile", {x, I64({1, 0})});
  EXPECT_EQ(y.dims(), (Dims{2, 0}));
  Tensor s = Tensor::FromVector<std::string>({"p", "q"}, {2, 1}, true);
  EXPECT_EQ(Values<std::string>(Run1("Tile", {s, I64({1, 2})})),
            (std::vector<std::string>{"p", "p", "q", "q"}));
}

TEST(Tile, Errors) {
  Tensor x = IotaTensor({2, 2});
  EXPECT_FALSE(Exec("Tile", {x, I64({2})}).ok());
  EXPECT_FALSE(Exec("Tile", {x, I64({2, -1})}).ok());
  auto big = Exec("Tile", {x, I64({int64_t{1} << 40, int64_t{1} << 40})});
  EXPECT_FALSE(big.ok());
  auto overflow = Exec("Tile", {x, I64({INT64_MAX, 2})});
  EXPECT_FALSE(overflow.ok());
}

// ----------------------------------------------------------------------------- DepthToSpace

// The ONNX depthtospace_example input: x[0,c,h,w] = 9c + 3h + w, shape [1,8,2,3].
Tensor DepthToSpaceInput() {
  std::vector<float> v;
  for (int c = 0; c < 8; ++c) {
    for (int h = 0; h < 2; ++h) {
      for (int w = 0; w < 3; ++w) v.push_back(static_cast<float>(9 * c + 3 * h + w));
    }
  }
  return Tensor::FromVector<float>(v, {1, 8, 2, 3}, true);
}

TEST(DepthToSpace, OnnxExamples) {
  // Expected outputs from test_depthtospace_example / test_depthtospace_crd_mode_example.
  const std::vector<float> dcr = {0,  18, 1,  19, 2,  20, 36, 54, 37, 55, 38, 56, 3,  21, 4,  22,
                                  5,  23, 39, 57, 40, 58, 41, 59, 9,  27, 10, 28, 11, 29, 45, 63,
                                  46, 64, 47, 65, 12, 30, 13, 31, 14, 32, 48, 66, 49, 67, 50, 68};
  const std::vector<float> crd = {0,  9,  1,  10, 2,  11, 18, 27, 19, 28, 20, 29, 3,  12, 4,  13,
                                  5,  14, 21, 30, 22, 31, 23, 32, 36, 45, 37, 46, 38, 47, 54, 63,
                                  55, 64, 56, 65, 39, 48, 40, 49, 41, 50, 57, 66, 58, 67, 59, 68};
  Tensor x = DepthToSpaceInput();
  Tensor y = Run1("DepthToSpace", {x}, {{"blocksize", Attr::Int(2)}});
  EXPECT_EQ(y.dims(), (Dims{1, 2, 4, 6}));
  EXPECT_EQ(Values<float>(y), dcr);
  y = Run1("DepthToSpace", {x}, {{"blocksize", Attr::Int(2)}, {"mode", Attr::String("CRD")}});
  EXPECT_EQ(Values<float>(y), crd);
}

TEST(DepthToSpace, SpaceToDepthInvertsDcr) {
  Tensor x = testing::RandomTensor(DataType::kInt32, {2, 18, 3, 2}, 5, -100, 100);
  Tensor y = Run1("DepthToSpace", {x}, {{"blocksize", Attr::Int(3)}});
  EXPECT_EQ(y.dims(), (Dims{2, 2, 9, 6}));
  Tensor back = Run1("SpaceToDepth", {y}, {{"blocksize", Attr::Int(3)}});
  EXPECT_TRUE(back.BitwiseEqual(x));
  // Hand-checked SpaceToDepth: [1,1,2,2] -> [1,4,1,1] lists the 2x2 block row-major.
  Tensor s = Run1("SpaceToDepth", {IotaTensor({1, 1, 2, 2})}, {{"blocksize", Attr::Int(2)}});
  EXPECT_EQ(s.dims(), (Dims{1, 4, 1, 1}));
  EXPECT_EQ(Values<float>(s), (std::vector<float>{0, 1, 2, 3}));
}

TEST(DepthToSpace, Errors) {
  Tensor x = IotaTensor({1, 6, 2, 2});
  EXPECT_FALSE(Exec("DepthToSpace", {x}, {{"blocksize", Attr::Int(2)}}).ok());
  EXPECT_FALSE(Exec("DepthToSpace", {x}, {{"blocksize", Attr::Int(0)}}).ok());
  EXPECT_FALSE(
      Exec("DepthToSpace", {x}, {{"blocksize", Attr::Int(1)}, {"mode", Attr::String("XYZ")}}).ok());
  EXPECT_FALSE(Exec("DepthToSpace", {IotaTensor({4, 2, 2})}, {{"blocksize", Attr::Int(2)}}).ok());
  EXPECT_FALSE(
      Exec("SpaceToDepth", {IotaTensor({1, 1, 3, 2})}, {{"blocksize", Attr::Int(2)}}).ok());
  EXPECT_FALSE(Exec("DepthToSpace", {x}).ok());  // blocksize is required
}

// ----------------------------------------------------------------------------- EyeLike

TEST(EyeLike, DiagonalsAndDtype) {
  Tensor x = Tensor::Empty(DataType::kInt32, {3, 4});
  Tensor y = Run1("EyeLike", {x}, {{"k", Attr::Int(1)}});
  EXPECT_EQ(y.dtype(), DataType::kInt32);
  EXPECT_EQ(Values<int32_t>(y), (std::vector<int32_t>{0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}));
  y = Run1("EyeLike", {x}, {{"k", Attr::Int(-2)}, {"dtype", Attr::Int(11)}});
  EXPECT_EQ(y.dtype(), DataType::kFloat64);
  EXPECT_EQ(Values<double>(y), (std::vector<double>{0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}));
  EXPECT_EQ(Values<float>(Run1("EyeLike", {x}, {{"k", Attr::Int(9)}, {"dtype", Attr::Int(1)}})),
            std::vector<float>(12, 0.0f));
  EXPECT_FALSE(Exec("EyeLike", {IotaTensor({2})}).ok());
}

}  // namespace
}  // namespace kiln
