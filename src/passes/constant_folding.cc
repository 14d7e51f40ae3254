// Constant folding.
//
// Matches (in topological order, so chains fold in one run) deterministic nodes whose inputs
// are all initializers — zero-input nodes such as Constant included — and Shape nodes whose
// input has a fully known static shape in value_info (as VerifyAndInferShapes leaves it).
// Evaluates them with the op table's reference kernel (RunKernel) and turns their outputs into
// initializers of the same names, with no provenance (they come from no user node).
// Guarantees: never folds a random op (kFoldDenylist), a stateful kernel, a node with a
// subgraph, an op taking or making sequences/optionals (NonTensorValues), an initializer that is also a graph input (its value can be fed), a node producing
// a graph output or a ctx.keep value, or an output above kMaxFoldedBytes (the graph must not
// grow by a materialized Expand/Tile); a kernel error leaves the node for the runtime to
// report. Runs after identity removal (identities would hide constant inputs) and before dead-
// node removal's second round, which drops the folded nodes' now-unused initializers.
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "core/logging.h"
#include "ops/base/kernel_context.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

constexpr size_t kMaxFoldedBytes = size_t{64} << 20;

// Ops whose outputs are not a function of their inputs (any domain).
const std::set<std::string>& FoldDenylist() {
  static const std::set<std::string> ops = {"RandomUniform",    "RandomNormal", "RandomUniformLike",
                                            "RandomNormalLike", "Multinomial",  "Bernoulli",
                                            "Dropout"};
  return ops;
}

bool IsConstant(const Graph& graph, const std::string& value) {
  return graph.IsInitializer(value) && !graph.IsGraphInput(value);
}

// dims[start:end] with ONNX Shape's clamping (opset 15 start/end attributes).
Tensor ShapeSlice(const std::vector<int64_t>& dims, const Node& node) {
  const int64_t rank = static_cast<int64_t>(dims.size());
  auto clamp = [rank](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
  const Attr* start_attr = node.FindAttr("start");
  const Attr* end_attr = node.FindAttr("end");
  int64_t start = clamp(start_attr ? start_attr->i : 0);
  int64_t end = clamp(end_attr ? end_attr->i : rank);
  std::vector<int64_t> slice;
  for (int64_t k = start; k < end; ++k) slice.push_back(dims[k]);
  return Tensor::FromVector(slice);
}

class ConstantFoldingPass : public GraphPass {
 public:
  const char* name() const override { return "constant_folding"; }

  StatusOr<bool> Run(Graph& graph, const PassContext& ctx) override {
    const OpRegistry& registry = ctx.registry ? *ctx.registry : OpRegistry::Global();
    const std::set<std::string> pinned = passes::PinnedValues(graph, ctx.keep);
    KILN_ASSIGN_OR_RETURN(std::vector<int> order, graph.TopologicalOrder());
    std::vector<bool> folded(graph.nodes.size(), false);
    for (int index : order) {
      const Node& node = graph.nodes[index];
      std::vector<Tensor> outputs;
      if (!Fold(graph, registry, pinned, node, &outputs)) continue;
      for (size_t k = 0; k < node.outputs.size(); ++k) {
        const std::string& out = node.outputs[k];
        if (out.empty()) continue;
        graph.value_info[out] = ValueInfo{outputs[k].dtype(), outputs[k].shape()};
        graph.initializer_provenance.erase(out);
        graph.initializers[out] = std::move(outputs[k]);
      }
      KILN_LOG(DEBUG) << "constant_folding: folded " << node.Describe();
      folded[index] = true;
    }
    if (std::find(folded.begin(), folded.end(), true) == folded.end()) return false;
    std::vector<Node> kept;
    kept.reserve(graph.nodes.size());
    for (size_t k = 0; k < graph.nodes.size(); ++k) {
      if (!folded[k]) kept.push_back(std::move(graph.nodes[k]));
    }
    graph.nodes = std::move(kept);
    return true;
  }

 private:
  // Evaluates `node` into `outputs` (one per node output) when it can and may be folded.
  static bool Fold(const Graph& graph, const OpRegistry& registry,
                   const std::set<std::string>& pinned, const Node& node,
                   std::vector<Tensor>* outputs) {
    if (FoldDenylist().count(node.op_type)) return false;
    bool any_output = false;
    for (const auto& out : node.outputs) {
      if (out.empty()) continue;
      if (pinned.count(out)) return false;
      any_output = true;
      // Skip before running when inference already says the result is too large.
      const ValueInfo* vi = graph.FindValueInfo(out);
      if (vi && vi->shape.fully_known() &&
          static_cast<size_t>(vi->shape.num_elements()) * DataTypeSize(vi->dtype) >
              kMaxFoldedBytes) {
        return false;
      }
    }
    if (!any_output) return false;
    for (const auto& [key, attr] : node.attrs) {
      if (attr.type == AttrType::kGraph) return false;
    }
    const OpSchema* schema = registry.Find(node.domain, node.op_type);
    if (schema == nullptr || !schema->kernel() || !schema->CheckNode(node).ok()) return false;
    // Sequence / optional values have no initializer form (ONNX initializers are tensors).
    if (schema->non_tensor_values()) return false;

    const bool default_domain = node.domain.empty() || node.domain == "ai.onnx";
    if (default_domain && node.op_type == "Shape" && node.inputs.size() == 1 &&
        !IsConstant(graph, node.inputs[0])) {
      const ValueInfo* vi = graph.FindValueInfo(node.inputs[0]);
      if (vi == nullptr || !vi->shape.fully_known()) return false;
      outputs->assign(1, ShapeSlice(vi->shape.dims(), node));
      return true;
    }

    std::vector<const Tensor*> inputs;
    for (const auto& in : node.inputs) {
      if (in.empty()) {
        inputs.push_back(nullptr);
        continue;
      }
      if (!IsConstant(graph, in)) return false;
      inputs.push_back(&graph.initializers.at(in));
    }
    Status st = RunKernel(*schema, node, graph.onnx_opset(), inputs, outputs);
    if (!st.ok()) {
      KILN_LOG(DEBUG) << "constant_folding: not folding " << node.Describe() << ": " << st;
      return false;
    }
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      if (node.outputs[k].empty()) continue;
      if (!(*outputs)[k].defined() || (*outputs)[k].nbytes() > kMaxFoldedBytes) return false;
    }
    return true;
  }
};

}  // namespace

std::unique_ptr<GraphPass> CreateConstantFoldingPass() {
  return std::make_unique<ConstantFoldingPass>();
}

}  // namespace kiln
