// Small graph queries shared by the whole-graph passes (internal to src/passes/).
#pragma once

#include <set>
#include <string>

#include "ir/graph.h"

namespace kiln::passes {

// Every value name read anywhere inside `g` and its nested subgraphs. A subgraph (If/Loop/Scan
// body) may read values of the enclosing graph by name, so a pass must treat these names as
// read by the node that owns the subgraph. Over-approximates (names defined inside the
// subgraph are included too), which only ever keeps more alive.
inline void CollectSubgraphReads(const Graph& g, std::set<std::string>* names) {
  for (const Node& node : g.nodes) {
    for (const auto& in : node.inputs) {
      if (!in.empty()) names->insert(in);
    }
    for (const auto& [key, attr] : node.attrs) {
      if (attr.type == AttrType::kGraph && attr.g) CollectSubgraphReads(*attr.g, names);
    }
  }
  for (const auto& out : g.outputs) names->insert(out);
}

// The names `node`'s subgraph attributes read (empty for ordinary nodes).
inline std::set<std::string> SubgraphReads(const Node& node) {
  std::set<std::string> names;
  for (const auto& [key, attr] : node.attrs) {
    if (attr.type == AttrType::kGraph && attr.g) CollectSubgraphReads(*attr.g, &names);
  }
  return names;
}

// Values that must keep their name and producer: the graph's outputs and ctx.keep.
inline std::set<std::string> PinnedValues(const Graph& graph, const std::set<std::string>& keep) {
  std::set<std::string> pinned(keep.begin(), keep.end());
  pinned.insert(graph.outputs.begin(), graph.outputs.end());
  return pinned;
}

}  // namespace kiln::passes
