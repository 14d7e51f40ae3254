// Dead-node removal.
//
// Matches nodes none of whose outputs reaches a graph output or a value in ctx.keep (walking
// data edges backwards, subgraph reads included), and initializers that no remaining node, graph
// output or keep value reads. Removes them, with their value_info and provenance entries.
// Guarantees: graph inputs stay, surviving nodes are untouched (an unused optional output of a
// live node keeps its name — renaming it would change the user's node), node order is kept.
// Runs first and again after the other passes: identity removal and constant folding leave
// producers and initializers nobody reads, and later stages (segmenter, engine builder) should
// not see work the model never does.
#include <set>
#include <string>
#include <vector>

#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

class DeadNodeRemovalPass : public GraphPass {
 public:
  const char* name() const override { return "dead_node_removal"; }

  StatusOr<bool> Run(Graph& graph, const PassContext& ctx) override {
    KILN_ASSIGN_OR_RETURN(std::vector<int> order, graph.TopologicalOrder());
    std::set<std::string> live = passes::PinnedValues(graph, ctx.keep);
    std::vector<bool> keep_node(graph.nodes.size(), false);
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      const Node& node = graph.nodes[*it];
      bool used = false;
      for (const auto& out : node.outputs) used |= !out.empty() && live.count(out) > 0;
      if (!used) continue;
      keep_node[*it] = true;
      for (const auto& in : node.inputs) {
        if (!in.empty()) live.insert(in);
      }
      for (const auto& name : passes::SubgraphReads(node)) live.insert(name);
    }

    bool changed = false;
    std::vector<Node> kept;
    kept.reserve(graph.nodes.size());
    for (size_t k = 0; k < graph.nodes.size(); ++k) {
      if (keep_node[k]) {
        kept.push_back(std::move(graph.nodes[k]));
        continue;
      }
      changed = true;
      for (const auto& out : graph.nodes[k].outputs) {
        if (!out.empty() && !graph.IsGraphInput(out)) graph.value_info.erase(out);
      }
    }
    graph.nodes = std::move(kept);

    for (auto it = graph.initializers.begin(); it != graph.initializers.end();) {
      if (live.count(it->first) || graph.IsGraphInput(it->first)) {
        ++it;
        continue;
      }
      graph.initializer_provenance.erase(it->first);
      graph.value_info.erase(it->first);
      it = graph.initializers.erase(it);
      changed = true;
    }
    return changed;
  }
};

}  // namespace

std::unique_ptr<GraphPass> CreateDeadNodeRemovalPass() {
  return std::make_unique<DeadNodeRemovalPass>();
}

}  // namespace kiln
