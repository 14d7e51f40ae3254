#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace kiln::testing {
namespace {

// x -> Identity -> i1 -> Identity -> i2 -> Relu -> r -> Identity -> y (out)
//                                    `--> Add(i2, r) -> z (out)
Graph IdentityGraph() {
  return GraphBuilder()
      .Input("x", {2, 3})
      .Node("Identity", {"x"}, {"i1"})
      .Node("Identity", {"i1"}, {"i2"})
      .Node("Relu", {"i2"}, {"r"})
      .Node("Identity", {"r"}, {"y"})
      .Node("Add", {"i2", "r"}, {"z"})
      .Output("y")
      .Output("z")
      .Build();
}

TEST(IdentityRemoval, RewiresConsumersAndKeepsOutputNames) {
  Graph before = IdentityGraph();
  auto pass = CreateIdentityRemovalPass();
  Graph after = RunTwice(*pass, before);
  EXPECT_EQ(CountOps(after, "Identity"), 1);  // the one producing graph output y
  EXPECT_EQ(FindProducer(after, "y")->op_type, "Identity");
  EXPECT_EQ(FindProducer(after, "r")->inputs, (std::vector<std::string>{"x"}));
  EXPECT_EQ(FindProducer(after, "z")->inputs, (std::vector<std::string>{"x", "r"}));
  EXPECT_EQ(after.outputs, before.outputs);
  ExpectSameNumbers(before, after);
}

TEST(IdentityRemoval, KeepSetIsRespected) {
  Graph before = IdentityGraph();
  auto pass = CreateIdentityRemovalPass();
  PassContext ctx;
  ctx.keep = {"i2"};
  Graph after = RunTwice(*pass, before, ctx);
  EXPECT_EQ(CountOps(after, "Identity"), 2);
  EXPECT_EQ(FindProducer(after, "i2")->inputs, (std::vector<std::string>{"x"}));
  EXPECT_EQ(FindProducer(after, "r")->inputs, (std::vector<std::string>{"i2"}));
  ExpectSameNumbers(before, after);
}

TEST(IdentityRemoval, GraphInputToGraphOutputStays) {
  Graph g = GraphBuilder().Input("x", {4}).Node("Identity", {"x"}, {"y"}).Output("y").Build();
  auto pass = CreateIdentityRemovalPass();
  Graph after = RunTwice(*pass, g, {}, /*changes=*/false);
  EXPECT_EQ(after.Dump(), g.Dump());
}

// ONNX Dropout in inference form passes its input through; with its mask used it stays.
TEST(IdentityRemoval, InferenceDropout) {
  Graph g = GraphBuilder()
                .Input("x", {4})
                .Init("ratio", Tensor::Scalar<float>(0.5f))
                .Init("training", Tensor::Scalar<bool>(false))
                .Node("Dropout", {"x", "ratio", "training"}, {"d"})
                .Node("Dropout", {"d"}, {"e", "mask"})
                .Node("Relu", {"e"}, {"y"})
                .Output("y")
                .Output("mask")
                .Build();
  auto pass = CreateIdentityRemovalPass();
  Graph after = RunTwice(*pass, g);
  EXPECT_EQ(CountOps(after, "Dropout"), 1);
  EXPECT_EQ(FindProducer(after, "e")->inputs, (std::vector<std::string>{"x"}));
}

}  // namespace
}  // namespace kiln::testing
