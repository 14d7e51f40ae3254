// Test helper: two graphs are the same (inputs, outputs, nodes with attributes, initializer
// bytes, metadata) — what an import -> export -> import round trip must preserve.
#pragma once

#include <gtest/gtest.h>

#include "ir/graph.h"

namespace kiln::testing {

inline void ExpectSameGraph(const Graph& a, const Graph& b) {
  EXPECT_EQ(a.inputs, b.inputs);
  EXPECT_EQ(a.outputs, b.outputs);
  ASSERT_EQ(a.nodes.size(), b.nodes.size());
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const Node& x = a.nodes[i];
    const Node& y = b.nodes[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.op_type, y.op_type) << x.name;
    EXPECT_EQ(x.domain, y.domain) << x.name;
    EXPECT_EQ(x.inputs, y.inputs) << x.name;
    EXPECT_EQ(x.outputs, y.outputs) << x.name;
    EXPECT_TRUE(x.attrs == y.attrs) << x.name;
  }
  ASSERT_EQ(a.initializers.size(), b.initializers.size());
  for (const auto& [name, t] : a.initializers) {
    auto it = b.initializers.find(name);
    ASSERT_NE(it, b.initializers.end()) << name;
    EXPECT_TRUE(t.BitwiseEqual(it->second)) << name;
  }
  EXPECT_EQ(a.metadata, b.metadata);
}

}  // namespace kiln::testing
