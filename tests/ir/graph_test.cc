#include "ir/graph.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

Node MakeNode(std::string name, std::string op, std::vector<std::string> in,
              std::vector<std::string> out) {
  Node n;
  n.name = std::move(name);
  n.op_type = std::move(op);
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

//   x ──▶ a ──▶ c ──▶ y
//    └──▶ b ──┘
// Nodes are stored out of order; the sort must be stable and deterministic.
TEST(Graph, StableTopologicalOrder) {
  Graph g;
  g.name = "diamond";
  g.inputs = {"x"};
  g.outputs = {"y"};
  g.nodes.push_back(MakeNode("c", "Add", {"a_out", "b_out"}, {"y"}));
  g.nodes.push_back(MakeNode("b", "Neg", {"x"}, {"b_out"}));
  g.nodes.push_back(MakeNode("a", "Relu", {"x"}, {"a_out"}));
  auto order = g.TopologicalOrder();
  ASSERT_TRUE(order.ok()) << order.status();
  EXPECT_EQ(*order, (std::vector<int>{1, 2, 0}));
  ASSERT_TRUE(g.SortTopologically().ok());
  EXPECT_EQ(g.nodes[0].name, "b");
  EXPECT_EQ(g.nodes[2].name, "c");
}

TEST(Graph, CycleIsAnErrorNamingNodes) {
  Graph g;
  g.name = "loop";
  g.nodes.push_back(MakeNode("p", "Relu", {"q_out"}, {"p_out"}));
  g.nodes.push_back(MakeNode("q", "Relu", {"p_out"}, {"q_out"}));
  auto order = g.TopologicalOrder();
  ASSERT_FALSE(order.ok());
  EXPECT_NE(order.status().message().find("cycle"), std::string::npos);
  EXPECT_NE(order.status().message().find("'p'"), std::string::npos);
}

TEST(Graph, DumpAndUniqueNames) {
  Graph g;
  g.name = "g";
  g.inputs = {"x"};
  g.value_info["x"] = ValueInfo{DataType::kFloat32, Shape({1, -1})};
  Node n = MakeNode("r", "LeakyRelu", {"x"}, {"y"});
  n.attrs["alpha"] = Attr::Float(0.5f);
  g.nodes.push_back(n);
  g.outputs = {"y"};
  std::string dump = g.Dump();
  EXPECT_NE(dump.find("input  %x : float32[1,?]"), std::string::npos) << dump;
  EXPECT_NE(dump.find("%y = LeakyRelu(%x) {alpha=0.5}"), std::string::npos) << dump;
  EXPECT_EQ(g.UniqueName("r"), "r_1");
  EXPECT_EQ(g.UniqueName("fresh"), "fresh");
}

TEST(Attr, EqualityAndText) {
  EXPECT_EQ(Attr::Ints({1, 2}).ToString(), "[1,2]");
  EXPECT_EQ(Attr::String("SAME").ToString(), "\"SAME\"");
  EXPECT_TRUE(Attr::Ints({1, 2}) == Attr::Ints({1, 2}));
  EXPECT_FALSE(Attr::Int(1) == Attr::Float(1));
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

TEST(Graph, ResolveNameAcceptsTfShortNamesAndSignatureKeys) {
  Graph g;
  g.inputs = {"serving_default_x:0"};
  Node n;
  n.name = "call";
  n.op_type = "Relu";
  n.inputs = {"serving_default_x:0"};
  n.outputs = {"call:0"};
  g.nodes.push_back(n);
  g.outputs = {"call:0"};
  g.metadata["signature.input.x"] = "serving_default_x:0";
  g.metadata["signature.output.y"] = "call:0";
  EXPECT_EQ(g.ResolveName("call:0"), "call:0");
  EXPECT_EQ(g.ResolveName("call"), "call:0");
  EXPECT_EQ(g.ResolveName("x"), "serving_default_x:0");
  EXPECT_EQ(g.ResolveName("y"), "call:0");
  EXPECT_EQ(g.ResolveName("nope"), "nope");
}

}  // namespace
}  // namespace kiln
