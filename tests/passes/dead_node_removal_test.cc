#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace kiln::testing {
namespace {

// x -> Relu -> a -> Add(a, w) -> y (out)
// x -> Sigmoid -> d1 -> Mul(d1, w_dead) -> d2          (dead)
// x -> Split -> s0 -> Neg -> z (out), s1 unused        (live, s1 keeps its name)
// w_unused: an initializer nobody reads; u: an input nobody reads (inputs stay)
Graph DeadGraph() {
  return GraphBuilder()
      .Input("x", {2, 4})
      .Input("u", {3})
      .Init("w", RandomTensor(DataType::kFloat32, {2, 4}, 11))
      .Init("w_dead", RandomTensor(DataType::kFloat32, {2, 4}, 12))
      .Init("w_unused", RandomTensor(DataType::kFloat32, {5}, 13))
      .Node("Relu", {"x"}, {"a"})
      .Node("Add", {"a", "w"}, {"y"})
      .Node("Sigmoid", {"x"}, {"d1"})
      .Node("Mul", {"d1", "w_dead"}, {"d2"})
      .Node("Split", {"x"}, {"s0", "s1"}, {{"axis", Attr::Int(1)}})
      .Node("Neg", {"s0"}, {"z"})
      .Output("y")
      .Output("z")
      .Build();
}

TEST(DeadNodeRemoval, RemovesDeadNodesAndInitializersOnly) {
  Graph before = DeadGraph();
  auto pass = CreateDeadNodeRemovalPass();
  Graph after = RunTwice(*pass, before);
  EXPECT_EQ(after.nodes.size(), 4u);
  EXPECT_EQ(CountOps(after, "Sigmoid"), 0);
  EXPECT_EQ(CountOps(after, "Mul"), 0);
  EXPECT_TRUE(after.IsInitializer("w"));
  EXPECT_FALSE(after.IsInitializer("w_dead"));
  EXPECT_FALSE(after.IsInitializer("w_unused"));
  EXPECT_EQ(after.inputs, before.inputs);
  // The live Split keeps its unused optional output, named as the user named it.
  const Node* split = FindProducer(after, "s0");
  ASSERT_NE(split, nullptr);
  EXPECT_EQ(split->outputs, (std::vector<std::string>{"s0", "s1"}));
  ExpectSameNumbers(before, after);
}

TEST(DeadNodeRemoval, KeepSetIsRespected) {
  Graph before = DeadGraph();
  auto pass = CreateDeadNodeRemovalPass();
  PassContext ctx;
  ctx.keep = {"d1", "w_unused"};
  Graph after = RunTwice(*pass, before, ctx);
  EXPECT_EQ(CountOps(after, "Sigmoid"), 1);
  EXPECT_EQ(CountOps(after, "Mul"), 0);
  EXPECT_TRUE(after.IsInitializer("w_unused"));
  EXPECT_FALSE(after.IsInitializer("w_dead"));
  ExpectSameNumbers(before, after);
}

TEST(DeadNodeRemoval, NothingToDoReportsNoChange) {
  Graph g = GraphBuilder().Input("x", {3}).Node("Relu", {"x"}, {"y"}).Output("y").Build();
  auto pass = CreateDeadNodeRemovalPass();
  Graph after = RunTwice(*pass, g, {}, /*changes=*/false);
  EXPECT_EQ(after.Dump(), g.Dump());
}

}  // namespace
}  // namespace kiln::testing
