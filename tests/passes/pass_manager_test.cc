#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "passes/pass_test_util.h"

namespace kiln::testing {
namespace {

// Identities hide a constant subexpression; folding it leaves dead initializers behind.
//
//   w1 -> Identity -> a1 -> Add(a1, w2) -> c -> Mul(x, c) -> m -> Identity -> y (out)
//   x -> Sigmoid -> dead
Graph MixedGraph() {
  return GraphBuilder()
      .Input("x", {3, 4})
      .Init("w1", RandomTensor(DataType::kFloat32, {3, 4}, 41))
      .Init("w2", RandomTensor(DataType::kFloat32, {4}, 42))
      .Node("Identity", {"w1"}, {"a1"})
      .Node("Add", {"a1", "w2"}, {"c"})
      .Node("Mul", {"x", "c"}, {"m"})
      .Node("Identity", {"m"}, {"y"})
      .Node("Sigmoid", {"x"}, {"dead"})
      .Output("y")
      .Build();
}

TEST(PassManager, StandardCleansUpAndPreservesNumbers) {
  Graph before = MixedGraph();
  Graph after = before;
  PassManager pm = PassManager::Standard();
  ASSERT_TRUE(pm.Run(after, {}).ok());
  // Left: Mul(x, c) and the Identity that names the graph output.
  ASSERT_EQ(after.nodes.size(), 2u) << after.Dump();
  EXPECT_EQ(after.nodes[0].op_type, "Mul");
  EXPECT_EQ(after.initializers.size(), 1u);
  EXPECT_TRUE(after.IsInitializer("c"));
  ExpectSameNumbers(before, after);

  // Round 1 removes Sigmoid, the inner Identity and folds c; round 2 drops w1 and w2; round 3
  // confirms that nothing changes.
  ASSERT_EQ(pm.stats().size(), 9u);
  EXPECT_EQ(pm.stats()[0].pass, "dead_node_removal");
  EXPECT_EQ(pm.stats()[0].nodes_before, 5);
  EXPECT_EQ(pm.stats()[0].nodes_after, 4);
  EXPECT_EQ(pm.stats()[2].nodes_after, 2);
  EXPECT_EQ(pm.stats()[8].nodes_after, 2);

  Graph again = after;
  ASSERT_TRUE(PassManager::Standard().Run(again, {}).ok());
  EXPECT_EQ(again.Dump(), after.Dump());
}

TEST(PassManager, DumpsTheGraphAfterEachPass) {
  const auto dir = std::filesystem::path(::testing::TempDir()) / "kiln_pass_dump";
  std::filesystem::remove_all(dir);
  ASSERT_EQ(setenv("KILN_DUMP_GRAPH", dir.c_str(), 1), 0);
  Graph g = MixedGraph();
  Status st = PassManager::Standard().Run(g, {}, /*max_rounds=*/1);
  unsetenv("KILN_DUMP_GRAPH");
  ASSERT_TRUE(st.ok()) << st;
  for (const char* name : {"00_input.txt", "01_dead_node_removal.txt", "02_identity_removal.txt",
                           "03_constant_folding.txt"}) {
    EXPECT_TRUE(std::filesystem::exists(dir / name)) << name;
  }
  std::ifstream last(dir / "03_constant_folding.txt");
  std::stringstream text;
  text << last.rdbuf();
  EXPECT_EQ(text.str(), g.Dump());
  std::filesystem::remove_all(dir);
}

TEST(PassManager, ErrorsNameThePass) {
  Graph cyclic = GraphBuilder()
                     .Input("x", {2})
                     .Node("Add", {"x", "b"}, {"a"})
                     .Node("Relu", {"a"}, {"b"})
                     .Output("b")
                     .Build();
  Status st = PassManager::Standard().Run(cyclic, {});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("pass dead_node_removal"), std::string::npos) << st;
}

}  // namespace
}  // namespace kiln::testing
