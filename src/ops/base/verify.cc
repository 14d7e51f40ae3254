#include "ops/base/verify.h"

#include "ir/verifier.h"
#include "ops/base/kernel_context.h"

namespace kiln {
namespace {

std::string QualifiedOp(const Node& node) {
  return node.domain.empty() ? node.op_type : node.domain + "." + node.op_type;
}

Status CheckNodeAgainstTable(const Graph& graph, const Node& node, const OpRegistry& registry) {
  const OpSchema* schema = registry.Find(node.domain, node.op_type);
  if (schema == nullptr && (node.domain == "tf" || node.domain == "tfjs")) {
    // Kept by the TensorFlow importer for an op it cannot map (graphdef_import.h).
    const Attr* why = node.FindAttr("_kiln_unmapped_reason");
    return Unimplemented(node.Describe() + ": TF op " + node.op_type + " has no kiln mapping" +
                         (why != nullptr ? " (" + why->s + ")" : std::string()));
  }
  if (schema == nullptr) {
    return Unimplemented(node.Describe() + ": op " + QualifiedOp(node) +
                         " is not in kiln's op table");
  }
  KILN_RETURN_IF_ERROR(schema->CheckNode(node));
  std::vector<DataType> dtypes;
  for (const auto& in : node.inputs) {
    DataType t = DataType::kUndefined;
    if (!in.empty()) {
      auto it = graph.initializers.find(in);
      if (it != graph.initializers.end()) {
        t = it->second.dtype();
      } else if (const ValueInfo* vi = graph.FindValueInfo(in)) {
        t = vi->dtype;
      }
    }
    dtypes.push_back(t);
  }
  return schema->CheckInputTypes(node, dtypes);
}

// Merges `inferred` into `declared`; a contradiction is an error.
Status Merge(const std::string& value, const Node& node, const ValueInfo& inferred,
             ValueInfo* declared) {
  if (inferred.dtype != DataType::kUndefined) {
    if (declared->dtype != DataType::kUndefined && declared->dtype != inferred.dtype) {
      return InvalidArgument(node.Describe() + " produces '" + value + "' as " +
                             DataTypeName(inferred.dtype) + ", but the model declares it " +
                             DataTypeName(declared->dtype));
    }
    declared->dtype = inferred.dtype;
  }
  const Shape& s = inferred.shape;
  if (!s.rank_known()) return Status::OK();
  if (!declared->shape.rank_known()) {
    declared->shape = s;
    return Status::OK();
  }
  if (declared->shape.rank() != s.rank()) {
    return InvalidArgument(node.Describe() + " produces '" + value + "' with shape " +
                           s.ToString() + ", but the model declares " +
                           declared->shape.ToString());
  }
  for (int i = 0; i < s.rank(); ++i) {
    int64_t d = declared->shape.dim(i), e = s.dim(i);
    if (d >= 0 && e >= 0 && d != e) {
      return InvalidArgument(node.Describe() + " produces '" + value + "' with shape " +
                             s.ToString() + ", but the model declares " +
                             declared->shape.ToString());
    }
    if (d < 0) declared->shape.set_dim(i, e);
  }
  return Status::OK();
}

}  // namespace

std::vector<UnsupportedNode> FindUnsupportedNodes(const Graph& graph, const OpRegistry& registry) {
  std::vector<UnsupportedNode> out;
  for (const auto& node : graph.nodes) {
    Status st = CheckNodeAgainstTable(graph, node, registry);
    if (!st.ok()) {
      std::string reason = st.message();
      std::string prefix = node.Describe() + ": ";
      if (reason.rfind(prefix, 0) == 0) reason = reason.substr(prefix.size());
      out.push_back({node.name, QualifiedOp(node), reason});
    }
  }
  return out;
}

Status VerifyAndInferShapes(Graph& graph, const OpRegistry& registry) {
  for (const auto& [name, tensor] : graph.initializers) {
    ValueInfo& vi = graph.value_info[name];
    vi.dtype = tensor.dtype();
    vi.shape = tensor.shape();
  }
  VerifyOptions options;
  const int64_t opset = graph.onnx_opset();
  options.check_node = [&](const Graph& g, const Node& node) -> Status {
    KILN_RETURN_IF_ERROR(CheckNodeAgainstTable(g, node, registry));
    const OpSchema* schema = registry.Find(node.domain, node.op_type);
    std::vector<ValueInfo> inputs;
    std::vector<const Tensor*> constants;
    for (const auto& in : node.inputs) {
      const ValueInfo* vi = in.empty() ? nullptr : g.FindValueInfo(in);
      inputs.push_back(vi ? *vi : ValueInfo());
      auto it = in.empty() ? g.initializers.end() : g.initializers.find(in);
      constants.push_back(it == g.initializers.end() ? nullptr : &it->second);
    }
    std::vector<ValueInfo> outputs;
    Status st = RunInfer(*schema, node, opset, inputs, constants, &outputs);
    if (!st.ok()) {
      std::string prefix = node.Describe();
      return st.message().rfind(prefix, 0) == 0 ? st : st.WithContext(prefix);
    }
    for (size_t k = 0; k < node.outputs.size() && k < outputs.size(); ++k) {
      if (node.outputs[k].empty()) continue;
      // Safe: check_node runs on a graph we own mutably; value_info is not iterated here.
      ValueInfo& declared = graph.value_info[node.outputs[k]];
      KILN_RETURN_IF_ERROR(Merge(node.outputs[k], node, outputs[k], &declared));
    }
    return Status::OK();
  };
  Status st = VerifyGraph(graph, options);
  if (!st.ok() && !graph.source_path.empty()) return st.WithContext(graph.source_path);
  return st;
}

}  // namespace kiln
