#include "kiln/session.h"

#include <algorithm>
#include <set>

#include "ir/graph.h"
#include "ops/base/op_schema.h"
#include "ops/base/verify.h"
#include "runtime/control_flow.h"
#include "runtime/engine_op.h"
#include "runtime/executor.h"
#include "runtime/inspect_control_flow.h"
#include "runtime/model_loader.h"

namespace kiln {

struct Session::Impl {
  Graph graph;
  std::vector<TensorInfo> inputs;
  std::vector<TensorInfo> outputs;
  std::unique_ptr<Executor> executor;
};

namespace {

std::string Where(const Graph& g) { return g.source_path.empty() ? g.name : g.source_path; }

std::string NameList(const std::vector<TensorInfo>& infos) {
  std::string s;
  for (const auto& i : infos) s += (s.empty() ? "" : ", ") + ("'" + i.name + "'");
  return s.empty() ? "(none)" : s;
}

}  // namespace

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;

StatusOr<std::unique_ptr<Session>> Session::Load(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(Graph graph, LoadModelGraph(path));
  return FromGraph(std::move(graph));
}

StatusOr<std::unique_ptr<Session>> Session::Load(const std::string& path,
                                                  const SessionOptions& options) {
  KILN_ASSIGN_OR_RETURN(Graph graph, LoadModelGraph(path, options.load));
  return FromGraph(std::move(graph), options);
}

StatusOr<std::unique_ptr<Session>> Session::FromGraph(Graph graph) {
  return FromGraph(std::move(graph), SessionOptions{});
}

StatusOr<std::unique_ptr<Session>> Session::FromGraph(Graph graph, const SessionOptions& options) {
  RegisterEngineOp();
  RegisterControlFlowKernels();
  const OpRegistry& registry = OpRegistry::Global();
  auto unsupported = FindUnsupportedNodes(graph, registry);
  if (!unsupported.empty()) {
    std::string msg = Where(graph) + ": kiln cannot run " + std::to_string(unsupported.size()) +
                      " node(s): ";
    for (size_t k = 0; k < unsupported.size() && k < 5; ++k) {
      msg += (k ? "; " : "") + ("node '" + unsupported[k].node + "' (" + unsupported[k].op_type +
                                "): " + unsupported[k].reason);
    }
    if (unsupported.size() > 5) msg += "; ...";
    return Unimplemented(msg);
  }
  KILN_RETURN_IF_ERROR(VerifyAndInferShapes(graph, registry));
  if (!options.engine_cache_dir.empty()) {  // read by each EngineOp kernel (engine_op.cc)
    for (auto& node : graph.nodes) {
      if (node.domain == "kiln" && node.op_type == "EngineOp") {
        node.attrs["engine_cache_dir"] = Attr::String(options.engine_cache_dir);
      }
    }
  }
  auto impl = std::make_unique<Impl>();
  impl->graph = std::move(graph);
  const Graph& g = impl->graph;
  for (const auto& in : g.inputs) {
    const ValueInfo* vi = g.FindValueInfo(in);
    impl->inputs.push_back({in, vi ? vi->dtype : DataType::kUndefined, vi ? vi->shape : Shape()});
  }
  for (const auto& out : g.outputs) {
    const ValueInfo* vi = g.FindValueInfo(out);
    impl->outputs.push_back({out, vi ? vi->dtype : DataType::kUndefined, vi ? vi->shape : Shape()});
  }
  KILN_ASSIGN_OR_RETURN(Executor ex, Executor::Compile(impl->graph, registry));
  impl->executor = std::make_unique<Executor>(std::move(ex));
  return std::unique_ptr<Session>(new Session(std::move(impl)));
}

const std::vector<TensorInfo>& Session::inputs() const { return impl_->inputs; }
const std::vector<TensorInfo>& Session::outputs() const { return impl_->outputs; }
const Graph& Session::graph() const { return impl_->graph; }
std::vector<std::string> Session::graph_output_names() const { return impl_->graph.outputs; }

StatusOr<std::vector<Tensor>> Session::Run(const Feeds& feeds,
                                           const std::vector<std::string>& fetches,
                                           const RunOptions& options, RunStats* stats) const {
  const Graph& g = impl_->graph;
  std::vector<std::pair<int, Tensor>> slot_feeds;
  std::set<std::string> fed;
  for (const auto& [asked, tensor] : feeds) {
    const std::string name = g.ResolveName(asked);
    auto it = std::find_if(impl_->inputs.begin(), impl_->inputs.end(),
                           [&](const TensorInfo& i) { return i.name == name; });
    if (it == impl_->inputs.end()) {
      return NotFound(Where(g) + ": '" + asked + "' is not an input of the model; inputs are " +
                      NameList(impl_->inputs));
    }
    if (!fed.insert(it->name).second) {
      return InvalidArgument(Where(g) + ": input '" + name + "' is fed twice");
    }
    if (!tensor.defined()) {
      return InvalidArgument(Where(g) + ": the feed for input '" + name + "' has no value");
    }
    if (it->dtype != DataType::kUndefined && tensor.dtype() != it->dtype) {
      return InvalidArgument(Where(g) + ": input '" + name + "' expects " +
                             DataTypeName(it->dtype) + it->shape.ToString() + ", got " +
                             tensor.TypeString());
    }
    if (!it->shape.Accepts(tensor.dims())) {
      return InvalidArgument(Where(g) + ": input '" + name + "' expects shape " +
                             it->shape.ToString() + ", got " + DimsToString(tensor.dims()));
    }
    slot_feeds.emplace_back(impl_->executor->SlotOf(it->name), tensor);
  }
  for (const auto& in : impl_->inputs) {
    if (!fed.count(in.name)) {
      return InvalidArgument(Where(g) + ": input '" + in.name + "' (" + DataTypeName(in.dtype) +
                             in.shape.ToString() + ") is not fed");
    }
  }
  std::vector<int> fetch_slots;
  const std::vector<std::string>& names = fetches.empty() ? g.outputs : fetches;
  for (const auto& name : names) {
    int s = impl_->executor->SlotOf(g.ResolveName(name));
    if (s < 0) return NotFound(Where(g) + ": cannot fetch '" + name + "': no such value");
    fetch_slots.push_back(s);
  }
  auto result = impl_->executor->Run(slot_feeds, fetch_slots, options, stats);
  if (!result.ok() && !g.source_path.empty()) return result.status().WithContext(g.source_path);
  return result;
}

StatusOr<ModelInfo> InspectModel(const std::string& path) { return InspectModel(path, {}); }

StatusOr<ModelInfo> InspectModel(const std::string& path, const InspectOptions& options) {
  RegisterEngineOp();
  RegisterControlFlowKernels();
  KILN_ASSIGN_OR_RETURN(Graph graph, LoadModelGraph(path, options.load));
  ModelInfo info;
  info.path = path;
  info.format = ModelFormatName(DetectModelFormat(path));
  info.opset = graph.onnx_opset();
  info.num_nodes = static_cast<int64_t>(graph.nodes.size());
  info.num_initializers = static_cast<int64_t>(graph.initializers.size());
  for (const auto& [name, t] : graph.initializers) {
    info.parameter_bytes += static_cast<int64_t>(t.nbytes());
  }
  const OpRegistry& registry = OpRegistry::Global();
  for (const auto& u : FindUnsupportedNodes(graph, registry)) {
    info.unsupported.push_back({u.node, u.op_type, u.reason});
  }
  if (info.unsupported.empty()) {
    // Fill in inferred types where the model leaves them out; a failure is reported, not fatal.
    Graph copy = graph;
    Status st = VerifyAndInferShapes(copy, registry);
    if (st.ok()) {
      graph = std::move(copy);
    } else {
      info.unsupported.push_back({"", "(graph)", st.message()});
    }
  }
  auto describe = [&graph](const std::string& name) {
    const ValueInfo* vi = graph.FindValueInfo(name);
    return TensorInfo{name, vi ? vi->dtype : DataType::kUndefined, vi ? vi->shape : Shape()};
  };
  for (const auto& in : graph.inputs) info.inputs.push_back(describe(in));
  for (const auto& out : graph.outputs) info.outputs.push_back(describe(out));
  for (const auto& node : graph.nodes) {
    ++info.op_histogram[node.domain.empty() ? node.op_type : node.domain + "." + node.op_type];
    if (node.domain == "kiln" && node.op_type == "EngineOp") {
      info.engines.push_back(InspectEngineOp(graph, node, options.profile, options.iterations));
    }
  }
  DescribeControlFlow(graph, registry, &info);
  return info;
}

const char* Version() { return KILN_VERSION; }

}  // namespace kiln
