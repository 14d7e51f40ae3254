// Graph verification against the op table, and static type/shape inference.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"
#include "ops/base/op_schema.h"

namespace kiln {

// A node the reference runtime cannot run, and why.
struct UnsupportedNode {
  std::string node;     // node name
  std::string op_type;  // with domain prefix when not the default domain
  std::string reason;
};

// Every node whose op is missing from `registry`, or whose arity, attributes or input dtypes
// the schema rejects (dtypes as far as value_info knows them). Does not stop at the first.
std::vector<UnsupportedNode> FindUnsupportedNodes(const Graph& graph, const OpRegistry& registry);

// Verifies `graph` structurally (ir/verifier.h) and against the op table, then runs shape
// inference in topological order: inferred dtypes and shapes are merged into
// graph.value_info, and an inferred dtype or known dimension that contradicts a declared one
// is an InvalidArgument naming the value and the node.
Status VerifyAndInferShapes(Graph& graph, const OpRegistry& registry);

}  // namespace kiln
