// Segmenter tests. Each graph is drawn in a comment: lower-case letters are graph inputs,
// upper-case names are nodes (a node's output value has the node's name); U* nodes are
// unsupported by the test backend, I* nodes are Identity.
#include "segment/segmenter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <random>

namespace kiln {
namespace {

// Builds a graph node by node; each node's single output is named after the node.
class GraphBuilder {
 public:
  GraphBuilder& Input(const std::string& name) {
    g_.inputs.push_back(name);
    return *this;
  }
  GraphBuilder& Node(const std::string& name, const std::string& op,
                     std::vector<std::string> inputs) {
    kiln::Node n;
    n.name = name;
    n.op_type = op;
    n.inputs = std::move(inputs);
    n.outputs = {name};
    g_.nodes.push_back(std::move(n));
    return *this;
  }
  GraphBuilder& Output(const std::string& name) {
    g_.outputs.push_back(name);
    return *this;
  }
  GraphBuilder& Initializer(const std::string& name) {
    g_.initializers[name] = Tensor::FromVector(std::vector<float>{1.f, 2.f});
    return *this;
  }
  Graph Build() const { return g_; }

 private:
  Graph g_;
};

// The test backend supports everything except ops named "Unsup".
Status TestSupports(const Node& node) {
  if (node.op_type == "Unsup") return Unimplemented(node.Describe() + ": op Unsup is unsupported");
  return Status::OK();
}

SegmenterOptions Options(int minimum_segment_size) {
  SegmenterOptions o;
  o.minimum_segment_size = minimum_segment_size;
  return o;
}

SegmentationResult Segment(const Graph& g, const SegmenterOptions& options) {
  auto result = SegmentGraph(g, TestSupports, options);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : SegmentationResult{};
}

// Node names of each segment, in the segment's (topological) order.
std::vector<std::vector<std::string>> Names(const Graph& g, const SegmentationResult& r) {
  std::vector<std::vector<std::string>> names;
  for (const auto& s : r.segments) {
    names.emplace_back();
    for (int k : s.nodes) names.back().push_back(g.nodes[k].name);
  }
  return names;
}

using Names2 = std::vector<std::vector<std::string>>;
using Strings = std::vector<std::string>;

// Replaces every segment by one node reading its inputs and writing its outputs: the result
// must still be acyclic, and no node outside may read a segment value not listed as output.
void ExpectContractedGraphValid(const Graph& g, const SegmentationResult& r) {
  Graph contracted = g;
  contracted.nodes.clear();
  std::vector<bool> in_segment(g.nodes.size(), false);
  std::set<std::string> hidden;  // values produced inside segments but not exported
  for (size_t s = 0; s < r.segments.size(); ++s) {
    kiln::Node engine;
    engine.name = "engine" + std::to_string(s);
    engine.op_type = "EngineOp";
    engine.inputs = r.segments[s].inputs;
    engine.outputs = r.segments[s].outputs;
    for (int k : r.segments[s].nodes) {
      EXPECT_FALSE(in_segment[k]) << "node in two segments: " << g.nodes[k].name;
      in_segment[k] = true;
      for (const auto& out : g.nodes[k].outputs) hidden.insert(out);
    }
    for (const auto& out : engine.outputs) hidden.erase(out);
    contracted.nodes.push_back(engine);
  }
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    if (in_segment[k]) continue;
    for (const auto& in : g.nodes[k].inputs) {
      EXPECT_FALSE(hidden.count(in)) << g.nodes[k].name << " reads unexported " << in;
    }
    contracted.nodes.push_back(g.nodes[k]);
  }
  for (const auto& out : g.outputs) EXPECT_FALSE(hidden.count(out)) << out;
  EXPECT_TRUE(contracted.TopologicalOrder().ok()) << contracted.Dump();
}

// x -> A -> B -> C -> (out)
TEST(Segmenter, ChainFullySupported) {
  Graph g = GraphBuilder()
                .Input("x")
                .Node("A", "Relu", {"x"})
                .Node("B", "Sigmoid", {"A"})
                .Node("C", "Relu", {"B"})
                .Output("C")
                .Build();
  SegmentationResult r = Segment(g, Options(3));
  ASSERT_EQ(Names(g, r), (Names2{{"A", "B", "C"}}));
  EXPECT_EQ(r.segments[0].inputs, Strings{"x"});
  EXPECT_EQ(r.segments[0].outputs, Strings{"C"});
  EXPECT_EQ(r.report.total_nodes, 3);
  EXPECT_EQ(r.report.converted_nodes, 3);
  EXPECT_TRUE(r.report.by_op.empty());
  ExpectContractedGraphValid(g, r);
}

// x -> A -> B -> U -> C -> D -> (out)      (w: an initializer read by C)
TEST(Segmenter, UnsupportedNodeSplitsChain) {
  Graph g = GraphBuilder()
                .Input("x")
                .Initializer("w")
                .Node("A", "Relu", {"x"})
                .Node("B", "Relu", {"A"})
                .Node("U", "Unsup", {"B"})
                .Node("C", "Add", {"U", "w"})
                .Node("D", "Relu", {"C"})
                .Output("D")
                .Build();
  SegmentationResult r = Segment(g, Options(2));
  ASSERT_EQ(Names(g, r), (Names2{{"A", "B"}, {"C", "D"}}));
  EXPECT_EQ(r.segments[0].outputs, Strings{"B"});
  // Initializers travel with the segment; only runtime values are inputs.
  EXPECT_EQ(r.segments[1].inputs, Strings{"U"});
  EXPECT_EQ(r.segments[1].outputs, Strings{"D"});
  EXPECT_EQ(r.report.by_op.at("Unsup").at("op Unsup is unsupported"), 1);
  EXPECT_EQ(r.report.converted_nodes, 4);
  ExpectContractedGraphValid(g, r);
}

// The classic cycle case: merging A and B would make A∪B -> U -> A∪B a cycle.
//
//   x -> A ---------> B -> (out)
//         \          ^
//          `-> U ---'
TEST(Segmenter, NeverMergesAcrossAnUnsupportedPath) {
  Graph g = GraphBuilder()
                .Input("x")
                .Node("A", "Relu", {"x"})
                .Node("U", "Unsup", {"A"})
                .Node("B", "Add", {"A", "U"})
                .Output("B")
                .Build();
  SegmentationResult r = Segment(g, Options(1));
  ASSERT_EQ(Names(g, r), (Names2{{"A"}, {"B"}}));
  EXPECT_EQ(r.segments[0].outputs, Strings{"A"});
  EXPECT_EQ(r.segments[1].inputs, (Strings{"A", "U"}));
  ExpectContractedGraphValid(g, r);
}

// The same through a longer unsupported detour, with supported nodes on both sides:
//
//   x -> A1 -> A2 ---------------> B1 -> B2 -> (out)
//               \                  ^
//                `-> U1 -> C -> U2'
//
// A* and B* must stay apart; C (between two unsupported nodes) is its own cluster.
TEST(Segmenter, NeverMergesAcrossALongerDetour) {
  Graph g = GraphBuilder()
                .Input("x")
                .Node("A1", "Relu", {"x"})
                .Node("A2", "Relu", {"A1"})
                .Node("U1", "Unsup", {"A2"})
                .Node("C", "Relu", {"U1"})
                .Node("U2", "Unsup", {"C"})
                .Node("B1", "Add", {"A2", "U2"})
                .Node("B2", "Relu", {"B1"})
                .Output("B2")
                .Build();
  SegmentationResult r = Segment(g, Options(1));
  ASSERT_EQ(Names(g, r), (Names2{{"A1", "A2"}, {"C"}, {"B1", "B2"}}));
  ExpectContractedGraphValid(g, r);
}

// A diamond, fully supported: one segment.
//
//        .-> B -.
//   x -> A       D -> (out)
//        `-> C -'
TEST(Segmenter, Diamond) {
  Graph g = GraphBuilder()
                .Input("x")
                .Node("A", "Relu", {"x"})
                .Node("B", "Relu", {"A"})
                .Node("C", "Sigmoid", {"A"})
                .Node("D", "Add", {"B", "C"})
                .Output("D")
                .Build();
  SegmentationResult r = Segment(g, Options(3));
  ASSERT_EQ(Names(g, r), (Names2{{"A", "B", "C", "D"}}));
  EXPECT_EQ(r.segments[0].inputs, Strings{"x"});
  EXPECT_EQ(r.segments[0].outputs, Strings{"D"});
}

// A diamond with one unsupported branch: A and B merge, D may not join them.
//
//        .-> B -.
//   x -> A       D -> (out)
//        `-> U -'
TEST(Segmenter, DiamondWithUnsupportedBranch) {
  Graph g = GraphBuilder()
                .Input("x")
                .Node("A", "Relu", {"x"})
                .Node("B", "Relu", {"A"})
                .Node("U", "Unsup", {"A"})
                .Node("D", "Add", {"B", "U"})
                .Output("D")
                .Build();
  SegmentationResult r = Segment(g, Options(1));
  ASSERT_EQ(Names(g, r), (Names2{{"A", "B"}, {"D"}}));
  EXPECT_EQ(r.segments[0].outputs, (Strings{"A", "B"}));
  ExpectContractedGraphValid(g, r);
}

// Identities do not count toward minimum_segment_size.
//
//   x -> A -> I1 -> I2 -> B -> (out)
TEST(Segmenter, MinimumSegmentSizeIgnoresIdentities) {
  Graph g = GraphBuilder()
                .Input("x")
                .Node("A", "Relu", {"x"})
                .Node("I1", "Identity", {"A"})
                .Node("I2", "Identity", {"I1"})
                .Node("B", "Relu", {"I2"})
                .Output("B")
                .Build();
  SegmentationResult small = Segment(g, Options(3));
  EXPECT_TRUE(small.segments.empty());
  const std::string reason = "segment too small (2 < minimum_segment_size 3)";
  EXPECT_EQ(small.report.by_op.at("Relu").at(reason), 2);
  EXPECT_EQ(small.report.by_op.at("Identity").at(reason), 2);
  EXPECT_EQ(small.report.converted_nodes, 0);

  SegmentationResult fits = Segment(g, Options(2));
  ASSERT_EQ(Names(g, fits), (Names2{{"A", "I1", "I2", "B"}}));
  EXPECT_EQ(fits.report.converted_nodes, 4);
}

// x -> A -> B -> C -> (out), with minimum_segment_size -1: nothing converts.
TEST(Segmenter, MinusOneDisablesConversion) {
  Graph g = GraphBuilder()
                .Input("x")
                .Node("A", "Relu", {"x"})
                .Node("B", "Relu", {"A"})
                .Node("C", "Relu", {"B"})
                .Output("C")
                .Build();
  bool called = false;
  auto result = SegmentGraph(
      g,
      [&](const Node&) {
        called = true;
        return Status::OK();
      },
      Options(-1));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->segments.empty());
  EXPECT_FALSE(called);
  EXPECT_EQ(result->report.converted_nodes, 0);
  EXPECT_EQ(result->report.by_op.at("Relu").at("conversion disabled (minimum_segment_size = -1)"),
            3);
}

// x -> A -> S -> C -> T -> D -> (out)      (S: Sigmoid, T: Tanh)
Graph DenylistGraph() {
  return GraphBuilder()
      .Input("x")
      .Node("A", "Relu", {"x"})
      .Node("S", "Sigmoid", {"A"})
      .Node("C", "Relu", {"S"})
      .Node("T", "Tanh", {"C"})
      .Node("D", "Relu", {"T"})
      .Output("D")
      .Build();
}

TEST(Segmenter, DenylistOption) {
  Graph g = DenylistGraph();
  SegmenterOptions o = Options(1);
  o.op_denylist = {"Sigmoid"};
  SegmentationResult r = Segment(g, o);
  ASSERT_EQ(Names(g, r), (Names2{{"A"}, {"C", "T", "D"}}));
  EXPECT_EQ(r.report.by_op.at("Sigmoid").at("denied by op denylist"), 1);
}

TEST(Segmenter, DenylistEnvironmentMergesWithOption) {
  Graph g = DenylistGraph();
  ASSERT_EQ(setenv("KILN_OP_DENYLIST", " Tanh ,,Softmax", 1), 0);
  SegmenterOptions o = Options(1);
  SegmentationResult env_only = Segment(g, o);
  o.op_denylist = {"Sigmoid"};
  SegmentationResult both = Segment(g, o);
  unsetenv("KILN_OP_DENYLIST");
  ASSERT_EQ(Names(g, env_only), (Names2{{"A", "S", "C"}, {"D"}}));
  EXPECT_EQ(env_only.report.by_op.at("Tanh").at("denied by op denylist"), 1);
  ASSERT_EQ(Names(g, both), (Names2{{"A"}, {"C"}, {"D"}}));
  EXPECT_EQ(both.report.by_op.at("Sigmoid").at("denied by op denylist"), 1);
}

// Three clusters of sizes 2, 3 and 3, split by unsupported nodes:
//
//   x -> A1 -> A2 -> U1 -> B1 -> B2 -> B3 -> U2 -> C1 -> C2 -> C3 -> (out)
Graph ThreeClusters() {
  return GraphBuilder()
      .Input("x")
      .Node("A1", "Relu", {"x"})
      .Node("A2", "Relu", {"A1"})
      .Node("U1", "Unsup", {"A2"})
      .Node("B1", "Relu", {"U1"})
      .Node("B2", "Relu", {"B1"})
      .Node("B3", "Relu", {"B2"})
      .Node("U2", "Unsup", {"B3"})
      .Node("C1", "Relu", {"U2"})
      .Node("C2", "Relu", {"C1"})
      .Node("C3", "Relu", {"C2"})
      .Output("C3")
      .Build();
}

TEST(Segmenter, MaxEnginesKeepsTheLargestThenTheFirst) {
  Graph g = ThreeClusters();
  SegmenterOptions o = Options(1);
  o.max_engines = 2;
  SegmentationResult two = Segment(g, o);
  ASSERT_EQ(Names(g, two), (Names2{{"B1", "B2", "B3"}, {"C1", "C2", "C3"}}));
  EXPECT_EQ(two.report.by_op.at("Relu").at("engine cap reached"), 2);

  o.max_engines = 1;  // B and C tie: the first one wins
  SegmentationResult one = Segment(g, o);
  ASSERT_EQ(Names(g, one), (Names2{{"B1", "B2", "B3"}}));
  EXPECT_EQ(one.report.by_op.at("Relu").at("engine cap reached"), 5);
  EXPECT_EQ(one.report.converted_nodes, 3);
}

// x -> A -> B -> C -> (out), with B's output kept outside engines.
TEST(Segmenter, KeepOutsideProducersAreNeverAbsorbed) {
  Graph g = GraphBuilder()
                .Input("x")
                .Node("A", "Relu", {"x"})
                .Node("B", "Relu", {"A"})
                .Node("C", "Relu", {"B"})
                .Output("C")
                .Build();
  SegmenterOptions o = Options(1);
  o.keep_outside = {"B"};
  SegmentationResult r = Segment(g, o);
  ASSERT_EQ(Names(g, r), (Names2{{"A"}, {"C"}}));
  EXPECT_EQ(r.report.by_op.at("Relu").at("output kept outside engines"), 1);
  ExpectContractedGraphValid(g, r);
}

// A graph mixing every case above, for determinism:
//
//   x -> A -> B ----------> D -> U2 -> E -> F -> (out1)
//        |    `-> U1 -> C -^          |
//        `-> G -> H -------------------`-> K -> (out2)
//
// (D = Add(B, C); K = Add(E, H))
Graph MixedGraph() {
  return GraphBuilder()
      .Input("x")
      .Node("A", "Relu", {"x"})
      .Node("B", "Relu", {"A"})
      .Node("U1", "Unsup", {"B"})
      .Node("C", "Relu", {"U1"})
      .Node("D", "Add", {"B", "C"})
      .Node("U2", "Unsup", {"D"})
      .Node("E", "Relu", {"U2"})
      .Node("F", "Relu", {"E"})
      .Node("G", "Sigmoid", {"A"})
      .Node("H", "Relu", {"G"})
      .Node("K", "Add", {"E", "H"})
      .Output("F")
      .Output("K")
      .Build();
}

// A segment by names only, independent of node positions.
struct CanonicalSegment {
  std::vector<std::string> nodes, inputs, outputs;
  bool operator<(const CanonicalSegment& o) const { return nodes < o.nodes; }
  bool operator==(const CanonicalSegment& o) const {
    return nodes == o.nodes && inputs == o.inputs && outputs == o.outputs;
  }
};

std::vector<CanonicalSegment> Canonical(const Graph& g, const SegmentationResult& r) {
  std::vector<CanonicalSegment> out;
  for (const auto& s : r.segments) {
    CanonicalSegment c{{}, s.inputs, s.outputs};
    for (int k : s.nodes) c.nodes.push_back(g.nodes[k].name);
    for (auto* v : {&c.nodes, &c.inputs, &c.outputs}) std::sort(v->begin(), v->end());
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Segmenter, DeterministicAcrossRunsAndNodeOrder) {
  Graph g = MixedGraph();
  SegmentationResult first = Segment(g, Options(1));
  SegmentationResult second = Segment(g, Options(1));
  ASSERT_EQ(first.segments.size(), second.segments.size());
  for (size_t s = 0; s < first.segments.size(); ++s) {
    EXPECT_EQ(first.segments[s].nodes, second.segments[s].nodes);
    EXPECT_EQ(first.segments[s].inputs, second.segments[s].inputs);
    EXPECT_EQ(first.segments[s].outputs, second.segments[s].outputs);
  }
  EXPECT_EQ(first.report.ToString(), second.report.ToString());
  ExpectContractedGraphValid(g, first);
  // B and D may not merge (B -> U1 -> C -> D), nor A's cluster and K (A -> ... U2 -> E -> K).
  const auto expected = Canonical(g, first);
  ASSERT_EQ(Names(g, first), (Names2{{"A", "B", "G", "H"}, {"C", "D"}, {"E", "F", "K"}}));

  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    Graph shuffled = g;
    std::shuffle(shuffled.nodes.begin(), shuffled.nodes.end(), rng);
    SegmentationResult r = Segment(shuffled, Options(1));
    EXPECT_EQ(Canonical(shuffled, r), expected) << "trial " << trial;
    EXPECT_EQ(r.report.ToString(), first.report.ToString()) << "trial " << trial;
    ExpectContractedGraphValid(shuffled, r);
  }
}

TEST(Segmenter, ReportCountsAndTable) {
  Graph g = MixedGraph();
  SegmenterOptions o = Options(3);
  o.op_denylist = {"Sigmoid"};
  SegmentationResult r = Segment(g, o);
  // Without G, H is cut off from A and joins E's cluster through K instead; {A, B} and {C, D}
  // are too small.
  ASSERT_EQ(Names(g, r), (Names2{{"E", "F", "H", "K"}}));
  EXPECT_EQ(r.report.total_nodes, 11);
  EXPECT_EQ(r.report.converted_nodes, 4);
  const auto& by_op = r.report.by_op;
  EXPECT_EQ(by_op.at("Unsup").at("op Unsup is unsupported"), 2);
  EXPECT_EQ(by_op.at("Sigmoid").at("denied by op denylist"), 1);
  EXPECT_EQ(by_op.at("Relu").at("segment too small (2 < minimum_segment_size 3)"), 3);
  EXPECT_EQ(by_op.at("Add").at("segment too small (2 < minimum_segment_size 3)"), 1);
  EXPECT_EQ(by_op.size(), 4u);
  int reported = 0;
  for (const auto& [op, reasons] : by_op) {
    for (const auto& [reason, count] : reasons) reported += count;
  }
  EXPECT_EQ(reported + r.report.converted_nodes, r.report.total_nodes);
  const std::string table = r.report.ToString();
  EXPECT_NE(table.find("Converted 4 of 11 nodes (36.4%)"), std::string::npos) << table;
  EXPECT_NE(table.find("Sigmoid"), std::string::npos) << table;
  EXPECT_NE(table.find("denied by op denylist"), std::string::npos) << table;
  EXPECT_NE(table.find("op Unsup is unsupported"), std::string::npos) << table;
}

TEST(Segmenter, RejectsBadOptionsAndCycles) {
  Graph g = ThreeClusters();
  EXPECT_EQ(SegmentGraph(g, TestSupports, Options(-2)).status().code(),
            StatusCode::kInvalidArgument);
  SegmenterOptions o = Options(1);
  o.max_engines = -1;
  EXPECT_EQ(SegmentGraph(g, TestSupports, o).status().code(), StatusCode::kInvalidArgument);
  Graph cyclic = GraphBuilder().Node("A", "Relu", {"B"}).Node("B", "Relu", {"A"}).Build();
  EXPECT_FALSE(SegmentGraph(cyclic, TestSupports, Options(1)).ok());
}

TEST(Segmenter, IdentityLike) {
  kiln::Node n;
  n.op_type = "Identity";
  EXPECT_TRUE(IsIdentityLike(n));
  n.domain = "kiln";
  EXPECT_FALSE(IsIdentityLike(n));
  n.domain = "";
  n.op_type = "Relu";
  EXPECT_FALSE(IsIdentityLike(n));
}

}  // namespace
}  // namespace kiln
