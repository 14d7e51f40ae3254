#include "ir/verifier.h"

#include <set>
#include <unordered_map>
#include <unordered_set>

namespace kiln {

Status VerifyGraph(const Graph& graph, const VerifyOptions& options) {
  const std::string where = "graph '" + graph.name + "'";
  std::unordered_map<std::string, std::string> defined_by;  // value -> what defines it
  auto define = [&](const std::string& value, const std::string& by) -> Status {
    auto [it, inserted] = defined_by.emplace(value, by);
    if (!inserted) {
      return InvalidArgument(where + ": value '" + value + "' has two producers: " + it->second +
                             " and " + by);
    }
    return Status::OK();
  };
  for (const auto& in : graph.inputs) {
    if (in.empty()) return InvalidArgument(where + ": a graph input has an empty name");
    KILN_RETURN_IF_ERROR(define(in, "graph input"));
  }
  for (const auto& [name, tensor] : graph.initializers) {
    if (!tensor.defined()) {
      return InvalidArgument(where + ": initializer '" + name + "' has no value");
    }
    if (graph.IsGraphInput(name)) continue;  // an input with a default value (ONNX IR < 4)
    KILN_RETURN_IF_ERROR(define(name, "initializer"));
  }
  std::unordered_set<std::string> node_names;
  for (const auto& node : graph.nodes) {
    if (node.op_type.empty()) return InvalidArgument(where + ": a node has no op type");
    if (!node.name.empty() && !node_names.insert(node.name).second) {
      return InvalidArgument(where + ": two nodes are named '" + node.name + "'");
    }
    for (const auto& out : node.outputs) {
      if (!out.empty()) KILN_RETURN_IF_ERROR(define(out, node.Describe()));
    }
  }
  for (const auto& node : graph.nodes) {
    for (const auto& in : node.inputs) {
      if (!in.empty() && !defined_by.count(in)) {
        return InvalidArgument(where + ": " + node.Describe() + " reads '" + in +
                               "', which no node, input or initializer defines");
      }
    }
  }
  for (const auto& out : graph.outputs) {
    if (!defined_by.count(out)) {
      return InvalidArgument(where + ": graph output '" + out + "' is not defined");
    }
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int> order, graph.TopologicalOrder());
  if (options.check_node) {
    for (int k : order) KILN_RETURN_IF_ERROR(options.check_node(graph, graph.nodes[k]));
  }
  return Status::OK();
}

}  // namespace kiln
