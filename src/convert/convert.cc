// CreateInferenceGraph: TF-TRT's create_inference_graph on kiln's IR.
//
//   verify + infer shapes -> standard clean-up passes (keep = outputs) -> segment with the
//   backend's Supports -> each segment becomes a function (the native segment) and one
//   kiln.EngineOp node; in static mode the engine is built now and its plan embedded.
//   If / Loop / Scan bodies are segmented the same way first, each on its own
//   (convert/convert_bodies.h); their segment functions join the root's library.
//
// A segment whose engine cannot be built at conversion time (static mode with an unknown
// non-batch dimension, or a backend build failure) is reverted to its native nodes: the
// converted graph then runs those nodes exactly as the unconverted one would, with no
// EngineOp in the way, and the summary's non-conversion table says why. (TF-TRT keeps a
// TRTEngineOp that always falls back instead; reverting is simpler to read and never slower.)
//
// Everything that reaches the saved file is deterministic: names come from node positions and
// names, functions are keyed "<first node>_segment", plans hash only their content.
#include "kiln/convert.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "convert/convert_bodies.h"
#include "convert/convert_internal.h"
#include "convert/engine_plans.h"
#include "convert/engine_op_def.h"
#include "convert/int8.h"
#include "core/logging.h"
#include "engine/plan.h"
#include "io/onnx/onnx_export.h"
#include "io/onnx/onnx_import.h"
#include "io/tf/graphdef_import.h"
#include "io/tf/tfjs_import.h"
#include "io/tf/saved_model.h"
#include "io/tf/saved_model_writer.h"
#include "ir/graph.h"
#include "ops/base/verify.h"
#include "passes/pass.h"
#include "segment/segmenter.h"

namespace kiln {

// ------------------------------------------------------------------ EngineOp helpers

namespace {
std::mutex& TestBackendsMutex() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, const Backend*>& TestBackends() {
  static std::map<std::string, const Backend*> backends;
  return backends;
}
}  // namespace

const Backend* ResolveBackend(const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(TestBackendsMutex());
    auto it = TestBackends().find(name);
    if (it != TestBackends().end()) return it->second;
  }
  return FindBackend(name);
}

void RegisterBackendForTesting(const Backend* backend) {
  std::lock_guard<std::mutex> lock(TestBackendsMutex());
  TestBackends()[backend->name()] = backend;
}

void UnregisterBackendForTesting(const Backend* backend) {
  std::lock_guard<std::mutex> lock(TestBackendsMutex());
  auto it = TestBackends().find(backend->name());
  if (it != TestBackends().end() && it->second == backend) TestBackends().erase(it);
}

// ------------------------------------------------------------------ parameters

Status ValidateConversionParams(const ConversionParams& p) {
  if (p.max_batch_size < 1) {
    return InvalidArgument("max_batch_size must be at least 1, got " +
                           std::to_string(p.max_batch_size));
  }
  if (p.max_workspace_size_bytes < 0) {
    return InvalidArgument("max_workspace_size_bytes must not be negative, got " +
                           std::to_string(p.max_workspace_size_bytes));
  }
  if (p.minimum_segment_size < -1) {
    return InvalidArgument("minimum_segment_size must be -1 (no conversion) or more, got " +
                           std::to_string(p.minimum_segment_size));
  }
  if (p.maximum_cached_engines < 1) {
    return InvalidArgument("maximum_cached_engines must be at least 1, got " +
                           std::to_string(p.maximum_cached_engines));
  }
  if (p.max_engines < 0) {
    return InvalidArgument("max_engines must not be negative, got " +
                           std::to_string(p.max_engines));
  }
  for (int64_t b : p.cached_engine_batches) {
    if (b < 1) {
      return InvalidArgument("cached_engine_batches: batch sizes must be at least 1, got " +
                             std::to_string(b));
    }
  }
  if (static_cast<int64_t>(p.cached_engine_batches.size()) > p.maximum_cached_engines) {
    return InvalidArgument("cached_engine_batches lists " +
                           std::to_string(p.cached_engine_batches.size()) +
                           " batch sizes, more than maximum_cached_engines (" +
                           std::to_string(p.maximum_cached_engines) + ")");
  }
  KILN_RETURN_IF_ERROR(ParsePrecision(p.precision_mode).status());
  {  // INT8 (convert/int8.h)
    auto method = ParseCalibrationMethod(p.calibration_method);
    if (!method.ok()) return InvalidArgument("calibration_method: " + method.status().message());
    if (!(p.calibration_percentile > 0 && p.calibration_percentile <= 100)) {
      return InvalidArgument("calibration_percentile must be in (0, 100], got " +
                             std::to_string(p.calibration_percentile));
    }
  }
  if (ResolveBackend(p.backend) == nullptr) {
    std::string names;
    for (const auto& n : BackendNames()) names += (names.empty() ? "" : ", ") + n;
    return InvalidArgument("backend '" + p.backend +
                           "' is not built into this kiln (have: " + names + ")");
  }
  return Status::OK();
}

namespace {

using Clock = std::chrono::steady_clock;
double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string OpName(const Node& n) {
  return n.domain.empty() ? n.op_type : n.domain + "." + n.op_type;
}

std::string Sanitize(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    out += ok ? c : '_';
  }
  return out.empty() ? "node" : out;
}

// Every value `graph`'s nodes read, their subgraphs' reads included (outer-scope captures).
void CollectReads(const Graph& graph, std::set<std::string>* reads) {
  for (const auto& node : graph.nodes) {
    for (const auto& in : node.inputs) {
      if (!in.empty()) reads->insert(in);
    }
    for (const auto& [name, attr] : node.attrs) {
      if (attr.type == AttrType::kGraph && attr.g != nullptr) CollectReads(*attr.g, reads);
    }
  }
}

std::string ValueSpec(const Graph& g, const std::string& value) {
  const ValueInfo* vi = g.FindValueInfo(value);
  if (vi == nullptr) return "?";
  return std::string(DataTypeName(vi->dtype)) + vi->shape.ToString();
}

// The segment as a standalone graph (engine.h's contract).
Graph MakeSegmentGraph(const Graph& graph, const Segment& seg, const std::string& key) {
  Graph s;
  s.name = key;
  s.opset_imports = graph.opset_imports;
  s.inputs = seg.inputs;
  s.outputs = seg.outputs;
  for (int k : seg.nodes) s.nodes.push_back(graph.nodes[k]);
  std::set<std::string> reads;
  CollectReads(s, &reads);
  for (const auto& v : reads) {
    auto it = graph.initializers.find(v);
    if (it != graph.initializers.end() && !graph.IsGraphInput(v)) s.initializers.insert(*it);
  }
  auto copy_info = [&](const std::string& v) {
    if (v.empty()) return;
    const ValueInfo* vi = graph.FindValueInfo(v);
    if (vi != nullptr) s.value_info[v] = *vi;
  };
  for (const auto& in : s.inputs) copy_info(in);
  for (const auto& node : s.nodes) {
    for (const auto& out : node.outputs) copy_info(out);
  }
  return s;
}

// Static mode: the shapes to build for (dimension 0 unknown -> max_batch_size), or why not.
StatusOr<std::vector<std::vector<int64_t>>> StaticInputShapes(const Graph& seg, int64_t max_batch) {
  std::vector<std::vector<int64_t>> shapes;
  for (const auto& in : seg.inputs) {
    const ValueInfo* vi = seg.FindValueInfo(in);
    if (vi == nullptr || vi->dtype == DataType::kUndefined || !vi->shape.rank_known()) {
      return FailedPrecondition("static mode needs known input types and ranks (input '" + in +
                                "' is " + ValueSpec(seg, in) + ")");
    }
    std::vector<int64_t> dims = vi->shape.dims();
    for (size_t d = 0; d < dims.size(); ++d) {
      if (dims[d] >= 0) continue;
      if (d == 0) {
        dims[d] = max_batch;
      } else {
        return FailedPrecondition("static mode needs known non-batch dimensions (input '" + in +
                                  "' is " + ValueSpec(seg, in) + ")");
      }
    }
    shapes.push_back(std::move(dims));
  }
  return shapes;
}

struct EngineResult {
  std::string plan;  // empty in dynamic mode
  double build_ms = 0;
  std::map<std::string, int> layer_precisions;  // precision -> layers that got it
  std::vector<std::string> reduced_layers;      // layers below FP32, by first node
  std::vector<std::string> tactics;  // "layer: timed 3 implementations" (tactic timing)
  std::vector<std::string> cached_plans;  // cached_engines: engines built ahead (dynamic mode)
  bool from_engine_cache = false;         // `plan` came from the disk engine cache
};

// Builds and serializes the engine for `seg` (static mode).
StatusOr<EngineResult> BuildPlan(const Backend& backend, const Graph& seg,
                                 const BuildConfig& config, std::optional<uint64_t> seg_hash) {
  if (!seg_hash) {
    KILN_ASSIGN_OR_RETURN(uint64_t h, SegmentFnv(seg));  // engine_plans.h
    seg_hash = h;
  }
  EngineResult r;
  const auto t0 = Clock::now();
  auto engine = backend.Build(seg, config);
  if (!engine.ok()) return engine.status();
  KILN_ASSIGN_OR_RETURN(std::string payload, (*engine)->SerializePayload());
  r.build_ms = MsSince(t0);
  for (const LayerInfo& l : (*engine)->Layers()) {
    ++r.layer_precisions[l.precision];
    if (l.precision != "FP32") r.reduced_layers.push_back(l.name);
  }
  for (const LayerInfo& l : (*engine)->Layers()) {  // the CPU engine notes tactic timing in []
    const size_t at = l.implementation.rfind(" [");
    if (at == std::string::npos || l.implementation.back() != ']') continue;
    r.tactics.push_back(l.name + ": " +
                        l.implementation.substr(at + 2, l.implementation.size() - at - 3));
  }
  PlanHeader h;
  h.kiln_version = KILN_VERSION;
  h.backend = backend.name();
  h.device_fingerprint = backend.DeviceFingerprint();
  h.precision = PrecisionName(config.precision);
  h.build_config = config.Fingerprint();
  h.content_hash = FnvHex(FnvUpdate(*seg_hash, h.build_config));  // as MakePlan (engine_cache.h)
  for (size_t i = 0; i < seg.inputs.size(); ++i) {
    const ValueInfo* vi = seg.FindValueInfo(seg.inputs[i]);
    h.input_specs.push_back(std::string(DataTypeName(vi->dtype)) +
                            DimsToString(config.input_shapes[i]));
  }
  for (const auto& out : seg.outputs) h.output_specs.push_back(ValueSpec(seg, out));
  r.plan = WritePlan(h, payload);
  return r;
}

Node MakeEngineOp(const std::string& name, const Graph& seg, const std::string& key,
                  const EngineResult& built, const ConversionParams& p, bool has_engine) {
  Node n;
  n.name = name;
  n.op_type = kEngineOpType;
  n.domain = kEngineOpDomain;
  n.inputs = seg.inputs;
  n.outputs = seg.outputs;
  std::vector<std::string> in_shapes, out_shapes;
  std::vector<int64_t> out_types;
  for (const auto& in : seg.inputs) {
    const ValueInfo* vi = seg.FindValueInfo(in);
    in_shapes.push_back(vi != nullptr && vi->shape.rank_known() ? FormatShapeAttr(vi->shape) : "");
  }
  for (const auto& out : seg.outputs) {
    const ValueInfo* vi = seg.FindValueInfo(out);
    out_shapes.push_back(vi != nullptr && vi->shape.rank_known() ? FormatShapeAttr(vi->shape) : "");
    out_types.push_back(static_cast<int64_t>(vi != nullptr ? vi->dtype : DataType::kUndefined));
  }
  n.attrs["input_shapes"] = Attr::Strings(in_shapes);
  n.attrs["output_shapes"] = Attr::Strings(out_shapes);
  n.attrs["output_types"] = Attr::Ints(out_types);
  n.attrs["static_engine"] = Attr::Int(p.is_dynamic_op ? 0 : 1);
  n.attrs["segment_func"] = Attr::String(key);
  n.attrs["serialized_engine"] = Attr::String(has_engine ? built.plan : "");
  n.attrs["calibration_data"] = Attr::String("");
  n.attrs["max_cached_engines_count"] = Attr::Int(p.maximum_cached_engines);
  n.attrs["workspace_size_bytes"] = Attr::Int(p.max_workspace_size_bytes);
  n.attrs["max_batch_size"] = Attr::Int(p.max_batch_size);
  n.attrs["precision_mode"] = Attr::String(p.precision_mode);
  std::transform(n.attrs["precision_mode"].s.begin(), n.attrs["precision_mode"].s.end(),
                 n.attrs["precision_mode"].s.begin(), ::toupper);
  n.attrs["use_calibration"] = Attr::Int(p.use_calibration ? 1 : 0);
  n.attrs["allow_build_at_runtime"] =
      Attr::Int(p.is_dynamic_op && p.allow_build_at_runtime ? 1 : 0);
  if (!built.cached_plans.empty()) n.attrs["cached_engines"] = Attr::Strings(built.cached_plans);
  n.attrs["backend"] = Attr::String(p.backend);
  return n;
}

// TF graphs: a TF NodeDef the importer split into several IR nodes (Unpack -> Split +
// Squeezes) names only its own outputs; the values between its IR nodes have no TF name. A
// supported IR node that reads such a value from an unsupported one, or writes one that an
// unsupported node reads, would sit on an engine boundary at an unnameable value, and the
// converted graph could not be written as a GraphDef with that engine (graphdef_export.h); it
// stays native instead (a cheap node: Squeeze, Cast, Reshape of a split NodeDef).
class TfBoundaryCheck {
 public:
  explicit TfBoundaryCheck(const Graph& g) : g_(g) {
    for (const auto& n : g.nodes) {
      tf_ |= n.provenance && (n.provenance->format == "tf" || n.provenance->format == "tfjs");
    }
    if (!tf_) return;
    producer_ = g.ProducerIndex();
    for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
      for (const auto& in : g.nodes[i].inputs) consumers_[in].push_back(i);
    }
  }

  Status Check(const Node& node, const std::function<Status(const Node&)>& supports) const {
    if (!tf_) return Status::OK();
    for (const auto& in : node.inputs) {
      auto p = producer_.find(in);
      if (p == producer_.end() || Nameable(in)) continue;
      if (!supports(g_.nodes[p->second]).ok()) return Refuse(in);
    }
    for (const auto& out : node.outputs) {
      if (out.empty() || Nameable(out)) continue;
      auto c = consumers_.find(out);
      if (c == consumers_.end()) continue;
      for (int k : c->second) {
        if (!supports(g_.nodes[k]).ok()) return Refuse(out);
      }
    }
    return Status::OK();
  }

 private:
  // "X:k" written by an IR node recorded from NodeDef X.
  bool Nameable(const std::string& value) const {
    auto p = producer_.find(value);
    if (p == producer_.end()) return true;
    const auto& prov = g_.nodes[p->second].provenance;
    const size_t colon = value.rfind(':');
    return !prov || (colon != std::string::npos && prov->original_name == value.substr(0, colon));
  }
  Status Refuse(const std::string& value) const {
    return Unimplemented("value '" + value +
                         "' inside a split TensorFlow node would be an engine boundary");
  }

  const Graph& g_;
  bool tf_ = false;
  std::unordered_map<std::string, int> producer_;
  std::unordered_map<std::string, std::vector<int>> consumers_;
};

// Drops value_info of values the graph no longer has (they moved into segments) and
// initializers nothing reads any more.
void PruneMovedValues(Graph& graph, const std::set<std::string>& candidates) {
  std::set<std::string> reads;
  CollectReads(graph, &reads);
  reads.insert(graph.outputs.begin(), graph.outputs.end());
  for (const auto& c : candidates) {
    if (!reads.count(c) && !graph.IsGraphInput(c)) graph.initializers.erase(c);
  }
  std::set<std::string> live(graph.inputs.begin(), graph.inputs.end());
  live.insert(graph.outputs.begin(), graph.outputs.end());
  for (const auto& n : graph.nodes) live.insert(n.outputs.begin(), n.outputs.end());
  for (auto it = graph.value_info.begin(); it != graph.value_info.end();) {
    if (!live.count(it->first) && !graph.IsInitializer(it->first)) {
      it = graph.value_info.erase(it);
    } else {
      ++it;
    }
  }
}

// ConversionParams::input_shapes onto the graph's declared input shapes.
Status ApplyInputShapes(const ConversionParams& p, Graph& graph) {
  for (const auto& [asked, dims] : p.input_shapes) {
    const std::string name = graph.ResolveName(asked);
    if (!graph.IsGraphInput(name)) {
      return InvalidArgument("input_shapes: '" + asked + "' is not an input of the model");
    }
    ValueInfo& vi = graph.value_info[name];
    for (size_t d = 0; d < dims.size(); ++d) {
      const bool clash = vi.shape.rank_known() && d < static_cast<size_t>(vi.shape.rank()) &&
                         vi.shape.dim(static_cast<int>(d)) >= 0 && dims[d] >= 0 &&
                         vi.shape.dim(static_cast<int>(d)) != dims[d];
      if (dims[d] < -1 || clash) {
        return InvalidArgument("input_shapes: " + DimsToString(dims) +
                               " is not a valid shape for '" + name + "' (declared " +
                               vi.shape.ToString() + ")");
      }
    }
    if (vi.shape.rank_known() && vi.shape.rank() != static_cast<int>(dims.size())) {
      return InvalidArgument("input_shapes: '" + name + "' has rank " +
                             std::to_string(vi.shape.rank()) + ", got " + DimsToString(dims));
    }
    vi.shape = Shape(dims);
  }
  return Status::OK();
}

struct Converted {
  Graph graph;
  ConversionSummary summary;
};

StatusOr<Converted> Convert(Graph graph, const ConversionParams& params) {
  const auto t_start = Clock::now();
  KILN_RETURN_IF_ERROR(ValidateConversionParams(params));
  const Backend* backend = ResolveBackend(params.backend);
  const OpRegistry& registry = OpRegistry::Global();
  const std::string where = graph.source_path.empty() ? graph.name : graph.source_path;

  std::set<std::string> produced(graph.inputs.begin(), graph.inputs.end());
  for (const auto& [name, t] : graph.initializers) produced.insert(name);
  for (const auto& n : graph.nodes) produced.insert(n.outputs.begin(), n.outputs.end());
  for (const auto& out : params.outputs) {
    if (out.empty() || !produced.count(out)) {
      return InvalidArgument("outputs: '" + out + "' is not a value of the model " + where);
    }
  }
  KILN_RETURN_IF_ERROR(ApplyInputShapes(params, graph));
  {
    Status st = VerifyAndInferShapes(graph, registry);
    if (!st.ok()) return st.WithContext(where);
  }
  // INT8: where the ranges come from; Q/DQ / fake-quant ranges are read (and those nodes
  // bypassed) before clean-up (convert/int8.h).
  KILN_ASSIGN_OR_RETURN(Int8Setup int8, PrepareInt8(graph, params, where));

  Converted result;
  ConversionSummary& summary = result.summary;
  PassContext ctx;
  ctx.registry = &registry;
  ctx.keep.insert(graph.outputs.begin(), graph.outputs.end());
  ctx.keep.insert(params.outputs.begin(), params.outputs.end());
  PassManager passes = PassManager::Standard();
  // The passes drop the provenance of constants nothing reads any more; the GraphDef writer
  // still needs the Const NodeDefs that untouched TF nodes name (e.g. StridedSlice's `begin`,
  // which the importer turned into other constants), so it is kept (provenance only).
  // Likewise the NodeDefs of the nodes the passes removed (folded shape arithmetic, Identity):
  // metadata "tf.removed_node:<name>" (io/tf/graphdef_export.h).
  const auto const_provenance = graph.initializer_provenance;
  std::map<std::string, std::string> tf_nodes;
  for (const auto& n : graph.nodes) {
    if (n.provenance && (n.provenance->format == "tf" || n.provenance->format == "tfjs")) {
      tf_nodes.emplace(n.provenance->original_name, n.provenance->serialized);
    }
  }
  KILN_LOG(DEBUG) << where << ": conversion phase: shape inference " << MsSince(t_start) << " ms";
  const auto t_passes = Clock::now();
  KILN_RETURN_IF_ERROR(passes.Run(graph, ctx));
  KILN_LOG(DEBUG) << where << ": conversion phase: clean-up passes " << MsSince(t_passes) << " ms";
  for (const auto& [value, prov] : const_provenance) {
    graph.initializer_provenance.emplace(value, prov);
  }
  for (const auto& n : graph.nodes) {
    if (n.provenance) tf_nodes.erase(n.provenance->original_name);
  }
  for (auto& [name, bytes] : tf_nodes) graph.metadata["tf.removed_node:" + name] = std::move(bytes);
  for (const auto& s : passes.stats()) {  // the passes that changed something, in order
    if (s.nodes_before == s.nodes_after) continue;
    summary.passes.push_back(s.pass + ": " + std::to_string(s.nodes_before) + " -> " +
                             std::to_string(s.nodes_after) + " nodes");
  }
  if (summary.passes.empty()) summary.passes.push_back("(no clean-up pass changed the graph)");
  {
    Status st = VerifyAndInferShapes(graph, registry);
    if (!st.ok()) return st.WithContext(where + " (after clean-up)");
  }

  KILN_ASSIGN_OR_RETURN(Precision precision, ParsePrecision(params.precision_mode));
  if (precision != Precision::kFP32 && !backend->HasKernel(precision)) {
    summary.warnings.push_back(std::string("precision_mode ") + PrecisionName(precision) +
                               ": backend " + backend->name() + " has no " +
                               PrecisionName(precision) +
                               " kernel on this machine; those layers run in the next allowed "
                               "precision (" +
                               PrecisionName(backend->FallbackFor(precision)) + ")");
  }
  if (!params.fp32_layers.empty() && std::string(backend->name()) != "cpu") {
    summary.warnings.push_back(std::string("fp32_layers: backend ") + backend->name() +
                               " does not take per-layer precision constraints; ignored");
  }
  const std::set<std::string> fp32_layers(params.fp32_layers.begin(), params.fp32_layers.end());
  BuildConfig base;
  base.precision = precision;
  base.max_batch_size = params.max_batch_size;
  base.max_workspace_size_bytes = params.max_workspace_size_bytes;

  const PlanCache plan_cache = PlanCache::Open(params.engine_cache_dir);

  SegmenterOptions options;
  options.minimum_segment_size = params.minimum_segment_size;
  options.op_denylist.insert(params.op_denylist.begin(), params.op_denylist.end());
  options.max_engines = params.max_engines;
  options.keep_outside.insert(params.outputs.begin(), params.outputs.end());
  // Segments one scope (the top level, or an If / Loop / Scan body: convert/convert_bodies.h)
  // and replaces its segments with EngineOps; the native segments go to the root's library.
  Graph& root = graph;
  std::set<std::string> used_keys;
  for (const auto& [key, fn] : root.functions) used_keys.insert(key);
  std::set<std::string> used_engine_names;
  int engine_index = 0;
  auto segment_scope = [&](Graph& graph, const std::string& scope, std::set<std::string>* moved,
                           int* engines, int* converted) -> Status {
    const Graph& g = graph;
    auto backend_supports = [&](const Node& node) { return backend->Supports(node, g, base); };
    const TfBoundaryCheck tf_boundary(g);
    auto supports = [&](const Node& node) {
      Status st = backend_supports(node);
      return st.ok() ? tf_boundary.Check(node, backend_supports) : st;
    };
    const auto t_segment = Clock::now();
    KILN_ASSIGN_OR_RETURN(SegmentationResult seg_result, SegmentGraph(graph, supports, options));
    KILN_LOG(DEBUG) << where << ": conversion phase: segmentation " << MsSince(t_segment) << " ms";
    summary.total_nodes += seg_result.report.total_nodes;
    summary.converted_nodes += seg_result.report.converted_nodes;
    for (const auto& [op, reasons] : seg_result.report.by_op) {
      for (const auto& [reason, n] : reasons) summary.not_converted[op][reason] += n;
    }
    if (!scope.empty()) {
      KILN_LOG(INFO) << where << ": " << scope << ": " << seg_result.report.ToString();
    }
    if (int8.active && !int8.calibrating) {
      std::set<std::string> needed, optional;
      for (const Segment& seg : seg_result.segments) {
        const std::set<std::string> t = Int8TensorsOfNodes(graph, seg.nodes);
        needed.insert(t.begin(), t.end());
        const std::set<std::string> r = Int8ResidualTensorsOfNodes(graph, seg.nodes);
        optional.insert(r.begin(), r.end());
      }
      KILN_RETURN_IF_ERROR(CheckInt8Table(int8, needed, optional, where));
    }

    // Build every segment first (indices into graph.nodes stay valid), then rewrite.
    struct Replacement {
      const Segment* seg;
      Node engine_op;
      std::string key;
      std::shared_ptr<Graph> function;
    };
    std::vector<Replacement> replacements;
    std::set<std::string> used_names = used_engine_names;
    for (const auto& n : graph.nodes) used_names.insert(n.name);
    for (const Segment& seg : seg_result.segments) {
      if (seg.nodes.empty()) continue;
      std::string key = Sanitize(graph.nodes[seg.nodes.front()].name) + "_segment";
      for (int s = 1; used_keys.count(key); ++s) {
        key = Sanitize(graph.nodes[seg.nodes.front()].name) + "_segment_" + std::to_string(s);
      }
      auto fn = std::make_shared<Graph>(MakeSegmentGraph(graph, seg, key));
      EngineSummary es;
      for (int k : seg.nodes) ++es.op_histogram[OpName(graph.nodes[k])];
      es.num_nodes = static_cast<int>(seg.nodes.size());
      es.inputs = seg.inputs;
      es.outputs = seg.outputs;
      EngineResult built;
      bool has_engine = false;
      BuildConfig seg_base = base;  // INT8: plus the segment's ranges
      std::string calibration_data;
      KILN_RETURN_IF_ERROR(Int8ForSegment(int8, *fn, &seg_base, &calibration_data));
      for (const Node& n : fn->nodes) {  // the layers kept in FP32 that are in this segment
        if (fp32_layers.count(n.name)) seg_base.fp32_layers.push_back(n.name);
      }
      if (int8.calibrating) {
        es.status = "calibration: runs its native segment in FP32 and collects INT8 statistics";
      } else if (params.is_dynamic_op) {
        es.status = params.allow_build_at_runtime ? "dynamic: built at run time for the shapes seen"
                                                  : "dynamic: engines built ahead only";
        es.status += BuildBatchPlans(*backend, *fn, seg_base, params.cached_engine_batches,
                                     plan_cache, &built.cached_plans);
      } else {
        Status why;
        auto shapes = StaticInputShapes(*fn, params.max_batch_size);
        if (shapes.ok()) {
          BuildConfig config = seg_base;
          config.input_shapes = *shapes;
          // Through the disk engine cache when one is configured (engine_plans.h).
          std::optional<uint64_t> fnv;
          const auto t_hash = Clock::now();
          if (auto f = SegmentFnv(*fn); f.ok()) fnv = *f;
          const auto t_find = Clock::now();
          std::optional<std::string> cached;
          if (fnv && plan_cache.enabled()) {
            cached = plan_cache.Find(*backend, *fn, *fnv, config, "");
          }
          KILN_LOG(DEBUG) << where << ": conversion phase: segment '" << key << "' content hash "
                          << std::chrono::duration<double, std::milli>(t_find - t_hash).count()
                          << " ms, engine cache lookup " << MsSince(t_find) << " ms";
          EngineResult hit;
          if (cached) {
            hit.plan = std::move(*cached);
            hit.from_engine_cache = true;
          }
          StatusOr<EngineResult> r = cached ? StatusOr<EngineResult>(std::move(hit))
                                            : BuildPlan(*backend, *fn, config, fnv);
          if (r.ok() && !cached && fnv) plan_cache.Put(*backend, *fnv, config, "", r->plan);
          if (r.ok()) {
            built = std::move(r).value();
            has_engine = true;
          } else {
            why = r.status();
            why = Status(why.code(), "engine build failed: " + why.message());
          }
        } else {
          why = shapes.status();
        }
        if (!has_engine) {  // revert: the nodes stay native (file comment)
          KILN_LOG(INFO) << where << ": segment starting at "
                         << graph.nodes[seg.nodes.front()].Describe()
                         << " left native: " << why.message();
          for (int k : seg.nodes) ++summary.not_converted[OpName(graph.nodes[k])][why.message()];
          summary.converted_nodes -= es.num_nodes;
          continue;
        }
        es.status = "built";
        es.build_ms = built.build_ms;
        es.layer_precisions = built.layer_precisions;
        es.reduced_layers = built.reduced_layers;
        es.tactics = built.tactics;
        es.from_engine_cache = built.from_engine_cache;
      }
      used_keys.insert(key);
      std::string name = "kiln_engine_" + std::to_string(engine_index++);
      for (int s = 1; used_names.count(name); ++s) {
        name = "kiln_engine_" + std::to_string(engine_index - 1) + "_" + std::to_string(s);
      }
      used_names.insert(name);
      used_engine_names.insert(name);
      es.name = name;
      es.scope = scope;
      summary.engines.push_back(es);
      replacements.push_back(
          {&seg, MakeEngineOp(name, *fn, key, built, params, has_engine), key, fn});
      replacements.back().engine_op.attrs["calibration_data"] = Attr::String(calibration_data);
      if (!seg_base.fp32_layers.empty()) {
        replacements.back().engine_op.attrs["fp32_layers"] = Attr::Strings(seg_base.fp32_layers);
      }
    }

    if (!replacements.empty()) {
      std::map<int, const Replacement*> first_node;
      std::set<int> removed;
      std::set<std::string>& moved_initializers = *moved;
      for (const auto& r : replacements) {
        first_node[r.seg->nodes.front()] = &r;
        removed.insert(r.seg->nodes.begin(), r.seg->nodes.end());
        for (const auto& [name, t] : r.function->initializers) moved_initializers.insert(name);
      }
      std::vector<Node> nodes;
      for (int k = 0; k < static_cast<int>(graph.nodes.size()); ++k) {
        auto it = first_node.find(k);
        if (it != first_node.end()) nodes.push_back(it->second->engine_op);
        if (!removed.count(k)) nodes.push_back(std::move(graph.nodes[k]));
      }
      graph.nodes = std::move(nodes);
      for (auto& r : replacements) root.functions[r.key] = std::move(r.function);
      graph.opset_imports[kEngineOpDomain] = 1;
      KILN_RETURN_IF_ERROR(graph.SortTopologically());
      PruneMovedValues(graph, moved_initializers);
    }
    if (engines != nullptr) *engines = static_cast<int>(replacements.size());
    if (converted != nullptr) {
      *converted = 0;
      for (const auto& r : replacements) *converted += static_cast<int>(r.seg->nodes.size());
    }
    return Status::OK();
  };
  // Bodies first (INT8 keeps them native: its ranges and calibration are per top-level
  // segment), then the top level.
  std::set<std::string> moved_top;
  if (!int8.active) {
    KILN_RETURN_IF_ERROR(
        ConvertControlFlowBodies(graph, where, segment_scope, &summary, &moved_top));
  }
  KILN_RETURN_IF_ERROR(segment_scope(graph, "", &moved_top, nullptr, nullptr));
  if (!moved_top.empty()) PruneMovedValues(graph, moved_top);
  if (!used_engine_names.empty()) graph.opset_imports[kEngineOpDomain] = 1;
  summary.total_ms = MsSince(t_start);
  result.graph = std::move(graph);
  return result;
}

}  // namespace

StatusOr<Graph> LoadGraphForConversion(const std::string& path, const ConversionParams& params) {
  if (IsSavedModelDir(path)) {
    SavedModelOptions options;
    options.tags = {params.input_saved_model_tags.begin(), params.input_saved_model_tags.end()};
    options.signature_key = params.input_saved_model_signature_key;
    // Static engines are built for the signature's declared input shapes (TF-TRT's behaviour)
    // unless params.input_shapes names others; the written SavedModel relaxes them again when
    // loaded.
    KILN_ASSIGN_OR_RETURN(Graph graph, LoadSavedModel(path, options));
    std::set<std::string> declared;
    for (const auto& [name, dims] : params.input_shapes) declared.insert(name);
    RestoreDeclaredInputShapes(graph, declared);
    return graph;
  }
  std::string ext = std::filesystem::path(path).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".pb" || ext == ".pbtxt") return ImportGraphDefFile(path);
  if (ext == ".json") return ImportTfjsModel(path);  // a TF.js graph model's model.json
  return ImportOnnxFile(path);
}

// ------------------------------------------------------------------ ConvertedModel

// ConvertedModel::Impl is in convert_internal.h (BuildEngines, src/runtime/shape_profile.cc,
// reaches it too).
ConvertedModel::ConvertedModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ConvertedModel::~ConvertedModel() = default;
ConvertedModel::ConvertedModel(ConvertedModel&&) noexcept = default;
ConvertedModel& ConvertedModel::operator=(ConvertedModel&&) noexcept = default;
const ConversionSummary& ConvertedModel::summary() const { return impl_->summary; }
const Graph& ConvertedModel::graph() const { return impl_->graph; }

// By the path's form (io/tf/saved_model_writer.h): ONNX, GraphDef or SavedModel.
Status ConvertedModel::Save(const std::string& path) const {
  return SaveGraphByPath(impl_->graph, path);
}

namespace {
PrecisionBudgetRunner& BudgetRunner() {
  static PrecisionBudgetRunner runner = nullptr;
  return runner;
}
}  // namespace

void SetPrecisionBudgetRunner(PrecisionBudgetRunner runner) { BudgetRunner() = runner; }
PrecisionBudgetRunner GetPrecisionBudgetRunner() { return BudgetRunner(); }

StatusOr<ConvertedModel> CreateInferenceGraph(Graph graph, const ConversionParams& params) {
  // FP16 / BF16 with an accuracy budget: the runtime searches the layers to keep in FP32.
  if (auto precision = ParsePrecision(params.precision_mode);
      precision.ok() && (*precision == Precision::kFP16 || *precision == Precision::kBF16) &&
      params.max_accuracy_loss >= 0) {
    if (params.calibration_feeds.empty() && !params.calibration_input_fn) {
      return InvalidArgument(
          "max_accuracy_loss with precision_mode " + std::string(PrecisionName(*precision)) +
          " needs inputs to measure the error on (calibration_feeds or calibration_input_fn)");
    }
    const Backend* backend = ResolveBackend(params.backend);
    if (backend != nullptr && std::string(backend->name()) != "cpu") {
      return InvalidArgument("max_accuracy_loss with precision_mode " +
                             std::string(PrecisionName(*precision)) + ": backend " +
                             backend->name() +
                             " does not take per-layer precision constraints (fp32_layers)");
    }
    PrecisionBudgetRunner run = GetPrecisionBudgetRunner();
    if (run == nullptr) return FailedPrecondition("the accuracy budget needs the kiln runtime");
    return run(graph, params);
  }
  // INT8 calibration graph: keeps its source for CalibGraphToInferGraph (convert/int8.h).
  std::shared_ptr<const Graph> calibration_source;
  if (IsCalibrationConversion(params)) calibration_source = std::make_shared<Graph>(graph);
  KILN_ASSIGN_OR_RETURN(Converted c, Convert(std::move(graph), params));
  auto impl = std::make_unique<ConvertedModel::Impl>();
  impl->graph = std::move(c.graph);
  impl->summary = std::move(c.summary);
  impl->calibration_source = calibration_source;
  impl->params = params;
  ConvertedModel model(std::move(impl));
  if (calibration_source != nullptr &&
      (!params.calibration_feeds.empty() || params.calibration_input_fn)) {
    CalibrationRunner run = GetCalibrationRunner();  // the one-call form
    if (run == nullptr) return FailedPrecondition("INT8 calibration needs the kiln runtime");
    return run(std::move(model), params);
  }
  return model;
}

StatusOr<ConvertedModel> CreateInferenceGraph(const std::string& model_path,
                                              const ConversionParams& params) {
  KILN_RETURN_IF_ERROR(ValidateConversionParams(params));
  KILN_ASSIGN_OR_RETURN(Graph graph, LoadGraphForConversion(model_path, params));
  return CreateInferenceGraph(std::move(graph), params);
}

}  // namespace kiln
