// Structural verification of a Graph.
//
// VerifyGraph checks what holds for every graph whatever its ops: each value has a single
// producer (a node, a graph input or an initializer), every node input is defined, every graph
// output is defined, node names are unique where given, and there is no cycle. Op-specific
// checks (schema conformance, dtype/shape consistency) belong to the op table, which passes them
// in as `check_node` (see ops/base/verify.h) so that ir/ does not depend on ops/.
#pragma once

#include <functional>

#include "ir/graph.h"

namespace kiln {

struct VerifyOptions {
  // Called for each node in topological order after the structural checks pass.
  std::function<Status(const Graph&, const Node&)> check_node;
};

Status VerifyGraph(const Graph& graph, const VerifyOptions& options = {});

}  // namespace kiln
