#include "ir/verifier.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

Graph Chain() {
  //  x ──▶ relu ──▶ r ──▶ neg ──▶ y
  Graph g;
  g.name = "chain";
  g.inputs = {"x"};
  g.outputs = {"y"};
  Node a;
  a.name = "relu";
  a.op_type = "Relu";
  a.inputs = {"x"};
  a.outputs = {"r"};
  Node b;
  b.name = "neg";
  b.op_type = "Neg";
  b.inputs = {"r"};
  b.outputs = {"y"};
  g.nodes = {a, b};
  return g;
}

TEST(Verifier, AcceptsWellFormedGraph) { EXPECT_TRUE(VerifyGraph(Chain()).ok()); }

TEST(Verifier, RejectsTwoProducers) {
  Graph g = Chain();
  g.nodes[1].outputs = {"r"};
  g.outputs = {"r"};
  Status s = VerifyGraph(g);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("two producers"), std::string::npos) << s;
}

TEST(Verifier, RejectsUndefinedInput) {
  Graph g = Chain();
  g.nodes[1].inputs = {"missing"};
  Status s = VerifyGraph(g);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("node 'neg' (Neg) reads 'missing'"), std::string::npos) << s;
}

TEST(Verifier, RejectsUndefinedOutputAndDuplicateNames) {
  Graph g = Chain();
  g.outputs = {"nope"};
  EXPECT_FALSE(VerifyGraph(g).ok());
  g = Chain();
  g.nodes[1].name = "relu";
  EXPECT_FALSE(VerifyGraph(g).ok());
}

TEST(Verifier, RejectsCycle) {
  Graph g = Chain();
  g.nodes[0].inputs = {"y"};
  EXPECT_FALSE(VerifyGraph(g).ok());
}

TEST(Verifier, RunsNodeChecks) {
  VerifyOptions opts;
  opts.check_node = [](const Graph&, const Node& n) {
    return n.op_type == "Neg" ? Unimplemented(n.Describe() + " is not allowed") : Status::OK();
  };
  Status s = VerifyGraph(Chain(), opts);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace kiln
