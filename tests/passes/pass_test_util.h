// Helpers for whole-graph pass tests: build small graphs, run them through a Session on random
// inputs, check a pass preserves the numbers and is idempotent.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/session.h"
#include "ops/base/verify.h"
#include "ops/op_test_util.h"
#include "passes/pass.h"

namespace kiln::testing {

class GraphBuilder {
 public:
  GraphBuilder() { g_.name = "test"; }
  GraphBuilder& Input(const std::string& name, std::vector<int64_t> dims,
                      DataType dtype = DataType::kFloat32) {
    g_.inputs.push_back(name);
    g_.value_info[name] = ValueInfo{dtype, Shape(std::move(dims))};
    return *this;
  }
  GraphBuilder& Init(const std::string& name, Tensor value) {
    g_.initializers[name] = std::move(value);
    return *this;
  }
  GraphBuilder& Node(const std::string& op, std::vector<std::string> inputs,
                     std::vector<std::string> outputs, AttrMap attrs = {},
                     const std::string& domain = "") {
    kiln::Node n;
    n.name = "n" + std::to_string(g_.nodes.size()) + "_" + op;
    n.op_type = op;
    n.domain = domain;
    n.inputs = std::move(inputs);
    n.outputs = std::move(outputs);
    n.attrs = std::move(attrs);
    g_.nodes.push_back(std::move(n));
    return *this;
  }
  GraphBuilder& Output(const std::string& name) {
    g_.outputs.push_back(name);
    return *this;
  }
  Graph Build() const { return g_; }

 private:
  Graph g_;
};

// Random non-constant feeds for every graph input (from its value_info).
inline Feeds RandomFeeds(const Graph& g, uint32_t seed = 1) {
  Feeds feeds;
  for (const auto& in : g.inputs) {
    const ValueInfo& vi = g.value_info.at(in);
    feeds.emplace_back(in, RandomTensor(vi.dtype, vi.shape.dims(), seed++, -2.0, 2.0));
  }
  return feeds;
}

inline StatusOr<std::vector<Tensor>> RunGraph(const Graph& g, const Feeds& feeds) {
  KILN_ASSIGN_OR_RETURN(auto session, Session::FromGraph(g));
  return session->Run(feeds);
}

// `after` computes the same outputs as `before` on random inputs.
inline void ExpectSameNumbers(const Graph& before, const Graph& after) {
  Feeds feeds = RandomFeeds(before);
  auto want = RunGraph(before, feeds);
  ASSERT_TRUE(want.ok()) << want.status() << "\n" << before.Dump();
  auto got = RunGraph(after, feeds);
  ASSERT_TRUE(got.ok()) << got.status() << "\n" << after.Dump();
  ASSERT_EQ(got->size(), want->size());
  for (size_t k = 0; k < got->size(); ++k) {
    EXPECT_TRUE(TensorsNear((*got)[k], (*want)[k], 0, 0)) << before.outputs[k];
  }
}

// Runs `pass` once (expecting `changes`), then again: the second run must report no change
// and leave the same dump. Returns the graph after the first run.
inline Graph RunTwice(GraphPass& pass, Graph g, const PassContext& ctx = {}, bool changes = true) {
  auto first = pass.Run(g, ctx);
  EXPECT_TRUE(first.ok()) << first.status();
  if (first.ok()) {
    EXPECT_EQ(*first, changes) << pass.name();
  }
  const std::string dump = g.Dump();
  auto second = pass.Run(g, ctx);
  EXPECT_TRUE(second.ok()) << second.status();
  if (second.ok()) {
    EXPECT_FALSE(*second) << pass.name() << " is not idempotent";
  }
  EXPECT_EQ(g.Dump(), dump);
  return g;
}

inline const kiln::Node* FindProducer(const Graph& g, const std::string& value) {
  for (const auto& n : g.nodes) {
    for (const auto& o : n.outputs) {
      if (o == value) return &n;
    }
  }
  return nullptr;
}

inline int CountOps(const Graph& g, const std::string& op) {
  int count = 0;
  for (const auto& n : g.nodes) count += n.op_type == op;
  return count;
}

}  // namespace kiln::testing
