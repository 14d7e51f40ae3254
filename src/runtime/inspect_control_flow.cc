#include "runtime/inspect_control_flow.h"

#include <string>

#include "ops/base/verify.h"
#include "runtime/engine_op.h"

namespace kiln {
namespace {

struct Counts {
  int64_t nodes = 0, engines = 0, unsupported = 0;
};

// `root` holds the function library every EngineOp's native segment is in (a body's EngineOps
// included: convert/convert_bodies.h).
void Walk(const Graph& root, const Graph& graph, const OpRegistry& registry,
          const std::string& path, int depth, ModelInfo* info, Counts* counts) {
  if (counts != nullptr) {
    counts->nodes += static_cast<int64_t>(graph.nodes.size());
    for (const auto& u : FindUnsupportedNodes(graph, registry)) {
      ++counts->unsupported;
      info->unsupported.push_back({path + u.node, u.op_type, u.reason});
    }
  }
  for (const auto& node : graph.nodes) {
    if (counts != nullptr && node.domain == "kiln" && node.op_type == "EngineOp") {
      ++counts->engines;
      // Listed with the top level's engines, named "<enclosing node>/<attribute>: <node>".
      EngineInfo e = InspectEngineOp(root, node, /*profile=*/false, 0);
      e.node = path + e.node;
      info->engines.push_back(std::move(e));
    }
    bool has_graph = false;
    for (const auto& [name, attr] : node.attrs) has_graph |= attr.type == AttrType::kGraph && attr.g;
    if (!has_graph) continue;
    ControlFlowInfo cf;
    cf.node = path + node.name;
    cf.op_type = node.op_type;
    cf.depth = depth;
    if (node.provenance) {
      cf.origin = node.provenance->original_op;
      // A TF1 frame lowered at import (io/tf/tf1_control_flow.h) is a While NodeDef marked
      // with the attribute _kiln_tf1_frame (map keys are stored verbatim when serialized).
      if (node.provenance->original_op == "While" &&
          node.provenance->serialized.find("_kiln_tf1_frame") != std::string::npos) {
        cf.origin = "TF1 while frame";
      }
    }
    const size_t index = info->control_flow.size();
    info->control_flow.push_back(cf);
    Counts inside;
    for (const auto& [name, attr] : node.attrs) {
      if (attr.type != AttrType::kGraph || !attr.g) continue;
      Counts body;
      Walk(root, *attr.g, registry, cf.node + "/" + name + ": ", depth + 1, info, &body);
      info->control_flow[index].bodies.push_back({name, static_cast<int64_t>(attr.g->nodes.size())});
      inside.engines += body.engines;
      inside.unsupported += body.unsupported;
      if (counts != nullptr) {
        counts->nodes += body.nodes;
        counts->engines += body.engines;
        counts->unsupported += body.unsupported;
      }
    }
    info->control_flow[index].engines = inside.engines;
    info->control_flow[index].unsupported = inside.unsupported;
  }
}

}  // namespace

void DescribeControlFlow(const Graph& graph, const OpRegistry& registry, ModelInfo* info) {
  // The top level's unsupported nodes are listed by InspectModel already.
  Walk(graph, graph, registry, "", 0, info, nullptr);
}

}  // namespace kiln
