// `kiln inspect` for control flow: every If / Loop / Scan / SequenceMap node, nested ones
// included, with the size of its subgraphs, where it came from (the TF op or TF1 while frame)
// and what inside them is converted (engines) or cannot run.
#pragma once

#include "ir/graph.h"
#include "kiln/session.h"
#include "ops/base/op_schema.h"

namespace kiln {

// Appends one ControlFlowInfo per control-flow node of `graph` and of its subgraphs (depth
// first) to info->control_flow, and the nodes inside subgraphs that kiln cannot run to
// info->unsupported (named "<enclosing node>/<attribute>: <node>").
void DescribeControlFlow(const Graph& graph, const OpRegistry& registry, ModelInfo* info);

}  // namespace kiln
