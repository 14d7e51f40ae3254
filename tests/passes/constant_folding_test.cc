#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace kiln::testing {
namespace {

Tensor Int64s(std::vector<int64_t> v) { return Tensor::FromVector(v); }

// w1, w2, w3 initializers; c = Add(w1, w2); d = Mul(c, w3); k = Constant;
// y = Add(x, d) + k (out). c, d and k fold; y's nodes read x and stay.
Graph ConstGraph() {
  Tensor k = RandomTensor(DataType::kFloat32, {2, 3}, 24);
  return GraphBuilder()
      .Input("x", {2, 3})
      .Init("w1", RandomTensor(DataType::kFloat32, {2, 3}, 21))
      .Init("w2", RandomTensor(DataType::kFloat32, {3}, 22))
      .Init("w3", RandomTensor(DataType::kFloat32, {2, 1}, 23))
      .Node("Add", {"w1", "w2"}, {"c"})
      .Node("Mul", {"c", "w3"}, {"d"})
      .Node("Constant", {}, {"k"}, {{"value", Attr::TensorValue(k)}})
      .Node("Add", {"x", "d"}, {"e"})
      .Node("Add", {"e", "k"}, {"y"})
      .Output("y")
      .Build();
}

TEST(ConstantFolding, FoldsChainsThroughReferenceKernels) {
  Graph before = ConstGraph();
  before.initializer_provenance["w1"] = std::make_shared<Provenance>();
  auto pass = CreateConstantFoldingPass();
  Graph after = RunTwice(*pass, before);
  EXPECT_EQ(after.nodes.size(), 2u);
  ASSERT_TRUE(after.IsInitializer("d"));
  ASSERT_TRUE(after.IsInitializer("k"));
  EXPECT_EQ(after.initializers.at("d").dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_FALSE(after.initializer_provenance.count("d"));
  // The expected value, computed independently: (w1 + w2) * w3.
  const Tensor& w1 = before.initializers.at("w1");
  const Tensor& w2 = before.initializers.at("w2");
  const Tensor& w3 = before.initializers.at("w3");
  const float* d = after.initializers.at("d").data<float>();
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 3; ++j) {
      float want = (w1.data<float>()[i * 3 + j] + w2.data<float>()[j]) * w3.data<float>()[i];
      EXPECT_FLOAT_EQ(d[i * 3 + j], want);
    }
  }
  ExpectSameNumbers(before, after);
}

TEST(ConstantFolding, KeepSetAndGraphOutputsAreNotFolded) {
  Graph before = ConstGraph();
  before.outputs.push_back("c");
  auto pass = CreateConstantFoldingPass();
  PassContext ctx;
  ctx.keep = {"k"};
  Graph after = RunTwice(*pass, before, ctx, /*changes=*/false);
  EXPECT_FALSE(after.IsInitializer("c"));
  EXPECT_FALSE(after.IsInitializer("k"));
  EXPECT_EQ(FindProducer(after, "c")->op_type, "Add");
  EXPECT_EQ(FindProducer(after, "k")->op_type, "Constant");
  EXPECT_FALSE(after.IsInitializer("d"));  // reads c, which is no longer a constant
  ExpectSameNumbers(before, after);
}

// s = Shape(x) folds when x's shape is fully known; t = Shape(x, start=1, end=-1) too, and the
// Cast reading t in the same run; u = Shape(v) with a dynamic dim does not.
TEST(ConstantFolding, ShapeOfAStaticShape) {
  Graph before = GraphBuilder()
                     .Input("x", {2, 3, 4})
                     .Input("v", {-1, 4})
                     .Node("Shape", {"x"}, {"s"})
                     .Node("Reshape", {"x", "s"}, {"y"})
                     .Node("Shape", {"x"}, {"t"}, {{"start", Attr::Int(1)}, {"end", Attr::Int(-1)}})
                     .Node("Cast", {"t"}, {"t2"},
                           {{"to", Attr::Int(static_cast<int64_t>(DataType::kFloat32))}})
                     .Node("Add", {"x", "t2"}, {"y2"})
                     .Node("Shape", {"v"}, {"u"})
                     .Node("Neg", {"v"}, {"z"})
                     .Output("y")
                     .Output("y2")
                     .Output("u")
                     .Output("z")
                     .Build();
  ASSERT_TRUE(VerifyAndInferShapes(before, OpRegistry::Global()).ok());
  auto pass = CreateConstantFoldingPass();
  Graph after = RunTwice(*pass, before);
  ASSERT_TRUE(after.IsInitializer("s"));
  EXPECT_TRUE(after.initializers.at("s").BitwiseEqual(Int64s({2, 3, 4})));
  ASSERT_TRUE(after.IsInitializer("t"));
  EXPECT_TRUE(after.initializers.at("t").BitwiseEqual(Int64s({3})));
  EXPECT_TRUE(after.IsInitializer("t2"));  // the Cast of a folded Shape folds in the same run
  EXPECT_FALSE(after.IsInitializer("u"));
  EXPECT_EQ(CountOps(after, "Shape"), 1);
  Graph fixed_v = before;  // Session feeds v with its declared dims: give it a concrete one
  fixed_v.value_info["v"].shape = Shape({5, 4});
  Graph fixed_after = after;
  fixed_after.value_info["v"].shape = Shape({5, 4});
  ExpectSameNumbers(fixed_v, fixed_after);
}

TEST(ConstantFolding, NeverFoldsRandomOpsFedInitializersOrHugeResults) {
  Graph before = GraphBuilder()
                     .Input("x", {2})
                     .Input("w", {2})  // an initializer that is also an input: its value can be fed
                     .Init("w", RandomTensor(DataType::kFloat32, {2}, 31))
                     .Init("shape", Int64s({2}))
                     .Init("big", Int64s({4096, 4096, 2}))
                     .Init("one", Tensor::Scalar<float>(1.f))
                     .Node("RandomUniform", {"shape"}, {"r"}, {}, "kiln")
                     .Node("Relu", {"w"}, {"rw"})
                     .Node("Expand", {"one", "big"}, {"huge"})  // 128 MiB > the 64 MiB cap
                     .Node("ReduceSum", {"huge"}, {"total"}, {{"keepdims", Attr::Int(0)}})
                     .Node("Add", {"x", "r"}, {"y0"})
                     .Node("Add", {"y0", "rw"}, {"y"})
                     .Output("y")
                     .Output("total")
                     .Build();
  auto pass = CreateConstantFoldingPass();
  Graph after = RunTwice(*pass, before, {}, /*changes=*/false);
  EXPECT_EQ(after.Dump(), before.Dump());
}

}  // namespace
}  // namespace kiln::testing
