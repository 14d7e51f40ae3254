// Identity removal.
//
// Matches nodes that pass their single input through unchanged: ONNX Identity (which is also
// what the TF importers emit for Identity, StopGradient, Snapshot, PreventGradient, ...) and
// ONNX Dropout in inference form (no mask output, training_mode absent or a constant false).
// Rewires every consumer of the node's output to read the node's input and removes the node.
// Guarantees: a value that must keep its name — a graph output, a value in ctx.keep, or a name
// read implicitly by a subgraph — is never renamed, so such a node stays; consumers' other
// inputs, attributes and provenance are untouched. Runs before constant folding and the
// segmenter so that identities neither hide foldable constants nor split or pad segments.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

bool IsDefaultDomain(const Node& node) { return node.domain.empty() || node.domain == "ai.onnx"; }

bool IsConstantFalse(const Graph& graph, const std::string& value) {
  auto it = graph.initializers.find(value);
  return it != graph.initializers.end() && it->second.num_elements() == 1 &&
         it->second.GetAsDouble(0) == 0.0;
}

// True when `node` returns input 0 unchanged as its only output.
bool PassesThrough(const Graph& graph, const Node& node) {
  if (!IsDefaultDomain(node) || node.inputs.empty() || node.inputs[0].empty()) return false;
  if (node.outputs.empty() || node.outputs[0].empty()) return false;
  if (node.op_type == "Identity") return node.inputs.size() == 1 && node.outputs.size() == 1;
  if (node.op_type != "Dropout") return false;
  for (size_t k = 1; k < node.outputs.size(); ++k) {
    if (!node.outputs[k].empty()) return false;  // the mask is used: not a pass-through
  }
  if (const Attr* is_test = node.FindAttr("is_test"); is_test && is_test->i == 0) return false;
  return node.inputs.size() < 3 || node.inputs[2].empty() || IsConstantFalse(graph, node.inputs[2]);
}

class IdentityRemovalPass : public GraphPass {
 public:
  const char* name() const override { return "identity_removal"; }

  StatusOr<bool> Run(Graph& graph, const PassContext& ctx) override {
    std::set<std::string> pinned = passes::PinnedValues(graph, ctx.keep);
    for (const Node& node : graph.nodes) {
      std::set<std::string> reads = passes::SubgraphReads(node);
      pinned.insert(reads.begin(), reads.end());
    }

    // out -> in for every removable pass-through node.
    std::map<std::string, std::string> rename;
    for (const Node& node : graph.nodes) {
      if (PassesThrough(graph, node) && !pinned.count(node.outputs[0])) {
        rename[node.outputs[0]] = node.inputs[0];
      }
    }
    if (rename.empty()) return false;

    // Follows chains of identities (bounded, in case a malformed graph has a cycle).
    auto resolve = [&rename](std::string v) {
      for (size_t step = 0; step <= rename.size(); ++step) {
        auto it = rename.find(v);
        if (it == rename.end()) break;
        v = it->second;
      }
      return v;
    };
    std::vector<Node> kept;
    kept.reserve(graph.nodes.size());
    for (Node& node : graph.nodes) {
      if (!node.outputs.empty() && rename.count(node.outputs[0]) && PassesThrough(graph, node)) {
        graph.value_info.erase(node.outputs[0]);
        continue;
      }
      for (auto& in : node.inputs) {
        if (!in.empty()) in = resolve(in);
      }
      kept.push_back(std::move(node));
    }
    graph.nodes = std::move(kept);
    return true;
  }
};

}  // namespace

std::unique_ptr<GraphPass> CreateIdentityRemovalPass() {
  return std::make_unique<IdentityRemovalPass>();
}

}  // namespace kiln
