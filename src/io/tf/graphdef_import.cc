#include "io/tf/graphdef_import.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <filesystem>
#include <queue>
#include <set>
#include <unordered_map>

#include "io/onnx/onnx_import.h"
#include "io/tf/engine_op_graphdef.h"
#include "io/tf/freeze.h"
#include "io/tf/proto_util.h"
#include "io/tf/tf1_control_flow.h"
#include "io/tf/handlers/handler.h"
#include "io/tf/tf_tensor.h"
#include "ops/base/dispatch.h"

namespace kiln {
namespace tfimport {
namespace {

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::string DescribeDef(const tfpb::NodeDef& def) {
  return "node " + Quote(def.name()) + " (" + def.op() + ")";
}

// Ops whose outputs are never graph outputs: no data outputs, or bookkeeping.
bool IsSideEffectOnly(const std::string& op) {
  static const std::set<std::string> kOps = {
      "NoOp",      "Assert",       "SaveV2",       "Save",      "SaveSlices", "RestoreV2",
      "Restore",   "RestoreSlice", "MergeV2Checkpoints", "Print", "PrintV2",  "Placeholder",
      "Const",     "VarHandleOp",  "AssignVariableOp", "Assign"};
  return kOps.count(op) > 0;
}

// A NodeDef input "<kOuterMarker>node:K" inside a control-flow subgraph reads value "node:K"
// of an enclosing graph ('$' cannot occur in TF node names).
constexpr const char* kOuterMarker = "$outer$";

struct ParsedInput {
  std::string node;
  int index = 0;
  bool control = false;
};

bool ParseInput(const std::string& s, ParsedInput* out) {
  if (s.empty()) return false;
  if (s[0] == '^') {
    out->control = true;
    out->node = s.substr(1);
    out->index = 0;
    return !out->node.empty();
  }
  out->control = false;
  size_t colon = s.rfind(':');
  if (colon != std::string::npos && colon + 1 < s.size() &&
      std::all_of(s.begin() + colon + 1, s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (s.size() - colon - 1 > 6) return false;
    out->node = s.substr(0, colon);
    out->index = std::stoi(s.substr(colon + 1));
  } else {
    out->node = s;
    out->index = 0;
  }
  return !out->node.empty();
}

}  // namespace

class Importer {
 public:
  Importer(const tfpb::GraphDef& gd, const TfImportOptions& opts) : gd_(gd), opts_(opts) {
    where_ = opts.source.empty() ? std::string("GraphDef") : opts.source;
    for (const auto& f : gd.library().function()) funcs_[f.signature().name()] = &f;
  }

  StatusOr<Graph> Run();

  // ---- used by TfNodeContext ----
  std::string UniqueNodeName(const std::string& base) {
    std::string name = base;
    for (int k = 1; node_names_.count(name); ++k) name = base + "_" + std::to_string(k);
    node_names_.insert(name);
    return name;
  }
  Graph& graph() { return graph_; }
  std::map<std::string, DataType>& dtypes() { return dtypes_; }
  std::map<std::string, int>& ranks() { return ranks_; }
  bool OutputUsed(const std::string& value) const { return used_.count(value) > 0; }
  void NoteInitializer(const std::string& name) { added_initializers_.push_back(name); }
  const std::string& where() const { return where_; }
  const std::map<std::string, const tfpb::FunctionDef*>& funcs() const { return funcs_; }
  StatusOr<std::shared_ptr<Graph>> ImportSubgraph(const std::string& what,
                                                  const std::string& prefix,
                                                  const std::vector<TfNodeContext::SubgraphArg>& args,
                                                  std::vector<tfpb::NodeDef> nodes,
                                                  const std::vector<std::string>& rets);

 private:
  Status ImportNode(const tfpb::NodeDef& def, const std::vector<std::string>& inputs);
  Status AddUnmapped(const tfpb::NodeDef& def, const std::vector<std::string>& inputs,
                     const std::shared_ptr<const Provenance>& prov, const std::string& reason);
  Status ImportEngineOp(const tfpb::NodeDef& def, const std::vector<std::string>& inputs);

  const tfpb::GraphDef& gd_;
  TfImportOptions opts_;
  std::string where_;
  Graph graph_;
  std::set<std::string> node_names_;
  std::set<std::string> used_;  // "node:K" read as data by some NodeDef
  std::map<std::string, int> max_used_;  // node -> highest output index read
  std::map<std::string, DataType> dtypes_;
  std::map<std::string, int> ranks_;
  std::vector<std::string> added_initializers_;
  std::map<std::string, std::vector<std::string>> node_outputs_;  // NodeDef -> its "name:K" values
  std::map<std::string, const tfpb::FunctionDef*> funcs_;  // the library by name
  // Enclosing-scope values a control-flow subgraph reads (inputs kOuterMarker + value).
  std::map<std::string, DataType> outer_dtypes_;
  std::map<std::string, int> outer_ranks_;
};

// ---------------------------------------------------------------------------- TfNodeContext

TfNodeContext::TfNodeContext(Importer* importer, const tfpb::NodeDef& def,
                             std::vector<std::string> inputs,
                             std::shared_ptr<const Provenance> provenance)
    : importer_(importer), def_(&def), inputs_(std::move(inputs)),
      provenance_(std::move(provenance)) {}

const Tensor* TfNodeContext::const_input(int i) const {
  if (i < 0 || i >= num_inputs()) return nullptr;
  auto& inits = importer_->graph().initializers;
  auto it = inits.find(inputs_[i]);
  return it == inits.end() ? nullptr : &it->second;
}

DataType TfNodeContext::input_dtype(int i) const {
  if (i < 0 || i >= num_inputs()) return DataType::kUndefined;
  auto it = importer_->dtypes().find(inputs_[i]);
  return it == importer_->dtypes().end() ? DataType::kUndefined : it->second;
}

int TfNodeContext::input_rank(int i) const {
  if (i < 0 || i >= num_inputs()) return -1;
  if (const Tensor* t = const_input(i)) return t->rank();
  auto it = importer_->ranks().find(inputs_[i]);
  return it == importer_->ranks().end() ? -1 : it->second;
}

Status TfNodeContext::ExpectInputs(int min, int max) const {
  if (max < 0) max = min;
  if (num_inputs() < min || num_inputs() > max) {
    std::string want = min == max ? std::to_string(min)
                                  : std::to_string(min) + " to " + std::to_string(max);
    return Error("has " + std::to_string(num_inputs()) + " data inputs, expected " + want);
  }
  return Status::OK();
}

bool TfNodeContext::OutputUsed(int k) const { return importer_->OutputUsed(Output(k)); }

void TfNodeContext::SetOutputType(int k, DataType dtype, int rank) {
  if (dtype != DataType::kUndefined) importer_->dtypes()[Output(k)] = dtype;
  if (rank >= 0) importer_->ranks()[Output(k)] = rank;
}

namespace {
const tfpb::AttrValue* FindAttr(const tfpb::NodeDef& def, const std::string& a) {
  auto it = def.attr().find(a);
  return it == def.attr().end() ? nullptr : &it->second;
}
}  // namespace

int64_t TfNodeContext::Int(const std::string& a, int64_t dflt) const {
  const auto* v = FindAttr(*def_, a);
  return v && v->value_case() == tfpb::AttrValue::kI ? v->i() : dflt;
}
float TfNodeContext::Float(const std::string& a, float dflt) const {
  const auto* v = FindAttr(*def_, a);
  return v && v->value_case() == tfpb::AttrValue::kF ? v->f() : dflt;
}
bool TfNodeContext::Bool(const std::string& a, bool dflt) const {
  const auto* v = FindAttr(*def_, a);
  return v && v->value_case() == tfpb::AttrValue::kB ? v->b() : dflt;
}
std::string TfNodeContext::Str(const std::string& a, const std::string& dflt) const {
  const auto* v = FindAttr(*def_, a);
  return v && v->value_case() == tfpb::AttrValue::kS ? v->s() : dflt;
}
std::vector<int64_t> TfNodeContext::Ints(const std::string& a, std::vector<int64_t> dflt) const {
  const auto* v = FindAttr(*def_, a);
  if (!v || v->value_case() != tfpb::AttrValue::kList) return dflt;
  return std::vector<int64_t>(v->list().i().begin(), v->list().i().end());
}
std::vector<std::string> TfNodeContext::Strs(const std::string& a) const {
  const auto* v = FindAttr(*def_, a);
  if (!v || v->value_case() != tfpb::AttrValue::kList) return {};
  return std::vector<std::string>(v->list().s().begin(), v->list().s().end());
}
StatusOr<DataType> TfNodeContext::Type(const std::string& a, DataType dflt) const {
  const auto* v = FindAttr(*def_, a);
  if (!v || v->value_case() != tfpb::AttrValue::kType) {
    if (dflt == DataType::kUndefined) return Error("has no type attribute " + Quote(a));
    return dflt;
  }
  auto t = DataTypeFromTf(v->type());
  if (!t) return Unsupported("attribute " + a + " is " + TfDataTypeName(v->type()));
  return *t;
}

Node& TfNodeContext::Emit(const std::string& op_type, std::vector<std::string> inputs,
                          std::vector<std::string> outputs, AttrMap attrs,
                          const std::string& domain) {
  Node node;
  node.name = emitted_++ == 0 ? name() : importer_->UniqueNodeName(name() + "/" + op_type);
  node.op_type = op_type;
  node.domain = domain;
  node.inputs = std::move(inputs);
  node.outputs = std::move(outputs);
  node.attrs = std::move(attrs);
  node.provenance = provenance_;
  auto& nodes = importer_->graph().nodes;
  nodes.push_back(std::move(node));
  return nodes.back();
}

std::string TfNodeContext::Temp(const std::string& hint) {
  return importer_->UniqueNodeName(name() + "/" + hint) + ":0";
}

std::string TfNodeContext::EmitTemp(const std::string& op_type, std::vector<std::string> inputs,
                                    AttrMap attrs, const std::string& domain) {
  std::string out = Temp(op_type);
  Emit(op_type, std::move(inputs), {out}, std::move(attrs), domain);
  return out;
}

std::string TfNodeContext::Const(const std::string& hint, Tensor t) {
  std::string n = Temp(hint);
  importer_->dtypes()[n] = t.dtype();
  importer_->graph().initializers[n] = std::move(t);
  importer_->NoteInitializer(n);
  return n;
}

std::optional<std::vector<int64_t>> TfNodeContext::ConstInts(int i) const {
  const Tensor* t = const_input(i);
  if (t == nullptr || !IsInteger(t->dtype())) return std::nullopt;
  auto v = ReadInt64s(*t);
  if (!v.ok()) return std::nullopt;
  return *v;
}

std::string TfNodeContext::Int64Vector(int i) {
  if (auto v = ConstInts(i)) return Const("const_i64", Tensor::FromVector<int64_t>(*v));
  std::string x = input(i);
  if (input_dtype(i) != DataType::kInt64) {
    x = EmitTemp("Cast", {x}, {{"to", Attr::Int(static_cast<int64_t>(DataType::kInt64))}});
  }
  std::string shape = Const("shape", Tensor::FromVector<int64_t>({-1}));
  std::string out = EmitTemp("Reshape", {x, shape});
  importer_->dtypes()[out] = DataType::kInt64;
  return out;
}

StatusOr<const tfpb::FunctionDef*> TfNodeContext::FunctionAttr(const std::string& a,
                                                                int list_index) const {
  const auto* v = FindAttr(*def_, a);
  std::string fname;
  if (v != nullptr && list_index < 0 && v->value_case() == tfpb::AttrValue::kFunc) {
    fname = v->func().name();
  } else if (v != nullptr && list_index >= 0 && v->value_case() == tfpb::AttrValue::kList &&
             list_index < v->list().func_size()) {
    fname = v->list().func(list_index).name();
  } else {
    return Error("has no function attribute " + Quote(a) +
                 (list_index >= 0 ? "[" + std::to_string(list_index) + "]" : std::string()));
  }
  auto it = importer_->funcs().find(fname);
  if (it == importer_->funcs().end()) {
    return Error("attribute " + Quote(a) + " names function " + Quote(fname) +
                 ", which the function library does not contain");
  }
  return it->second;
}

const std::map<std::string, const tfpb::FunctionDef*>& TfNodeContext::Functions() const {
  return importer_->funcs();
}

std::string TfNodeContext::UniquePrefix(const std::string& hint) {
  return importer_->UniqueNodeName(name() + "/" + hint) + "/";
}

StatusOr<std::shared_ptr<Graph>> TfNodeContext::ImportSubgraph(
    const std::string& prefix, const std::vector<SubgraphArg>& args,
    std::vector<tfpb::NodeDef> nodes, const std::vector<std::string>& rets) {
  return importer_->ImportSubgraph(DescribeDef(*def_), prefix, args, std::move(nodes), rets);
}

void TfNodeContext::Splice(const Graph& g) {
  Graph& outer = importer_->graph();
  // The spliced nodes stand for this NodeDef (e.g. a While's first condition): they take its
  // provenance, so the GraphDef exporter writes this NodeDef once and not the function's nodes
  // at top level (which a re-import would create a second time).
  for (const Node& n : g.nodes) {
    outer.nodes.push_back(n);
    outer.nodes.back().provenance = provenance_;
  }
  for (const auto& [k, t] : g.initializers) {
    outer.initializers[k] = t;
    importer_->NoteInitializer(k);
  }
  for (const auto& [k, vi] : g.value_info) {
    outer.value_info.emplace(k, vi);
    if (vi.dtype != DataType::kUndefined) importer_->dtypes()[k] = vi.dtype;
  }
}

Status TfNodeContext::Error(const std::string& message) const {
  return InvalidArgument(DescribeDef(*def_) + ": " + message);
}
Status TfNodeContext::Unsupported(const std::string& message) const {
  return Unimplemented(DescribeDef(*def_) + ": " + message);
}

// ---------------------------------------------------------------------------- registry

void TfHandlerRegistry::Register(const std::string& tf_op, TfHandler handler) {
  handlers_[tf_op] = std::move(handler);
}
const TfHandler* TfHandlerRegistry::Find(const std::string& tf_op) const {
  auto it = handlers_.find(tf_op);
  return it == handlers_.end() ? nullptr : &it->second;
}
std::vector<std::string> TfHandlerRegistry::Ops() const {
  std::vector<std::string> ops;
  for (const auto& [k, v] : handlers_) ops.push_back(k);
  return ops;
}
const TfHandlerRegistry& TfHandlerRegistry::Global() {
  static const TfHandlerRegistry* registry = [] {
    auto* r = new TfHandlerRegistry();
    RegisterTfArrayHandlers(*r);
    RegisterTfMathHandlers(*r);
    RegisterTfNnHandlers(*r);
    RegisterTfMiscHandlers(*r);
    RegisterTfControlFlowHandlers(*r);
    RegisterTfTensorArrayHandlers(*r);
    return r;
  }();
  return *registry;
}

// ---------------------------------------------------------------------------- Importer

constexpr int kMaxFunctionDepth = 32;

StatusOr<std::shared_ptr<Graph>> Importer::ImportSubgraph(
    const std::string& what, const std::string& prefix,
    const std::vector<TfNodeContext::SubgraphArg>& args, std::vector<tfpb::NodeDef> nodes,
    const std::vector<std::string>& rets) {
  if (opts_.depth >= kMaxFunctionDepth) {
    return InvalidArgument(where_ + ": " + what + ": control-flow functions nested more than " +
                           std::to_string(kMaxFunctionDepth) + " deep (a recursive function?)");
  }
  tfpb::GraphDef sub;
  *sub.mutable_versions() = gd_.versions();
  *sub.mutable_library() = gd_.library();
  std::vector<std::string> inputs;
  for (const auto& a : args) {
    tfpb::NodeDef* n = sub.add_node();
    n->set_name(a.name);
    if (a.outer.empty()) {
      if (a.dtype == tfpb::DT_INVALID) {
        return InvalidArgument(where_ + ": " + what + ": function argument " + Quote(a.name) +
                               " has no known type");
      }
      n->set_op("Placeholder");
      (*n->mutable_attr())["dtype"].set_type(a.dtype);
      inputs.push_back(a.name + ":0");
    } else {
      // Read from the enclosing scope; resolved by the outer graph at run time.
      n->set_op("Identity");
      n->add_input(kOuterMarker + a.outer);
    }
  }
  for (auto& n : nodes) *sub.add_node() = std::move(n);
  std::vector<std::string> outputs;
  for (size_t k = 0; k < rets.size(); ++k) {
    tfpb::NodeDef* n = sub.add_node();
    n->set_name(prefix + "ret_" + std::to_string(k));
    n->set_op("Identity");
    n->add_input(rets[k]);
    outputs.push_back(n->name() + ":0");
  }
  TfImportOptions opts = opts_;
  opts.depth = opts_.depth + 1;
  opts.source = where_ + ": " + what + " body " + Quote(prefix);
  StatusOr<tfpb::GraphDef> flat = InlineCalls(sub);
  if (!flat.ok()) return flat.status().WithContext(where_ + ": " + what);
  Importer nested(*flat, opts);
  for (const auto& a : args) {
    if (!a.outer.empty()) {
      auto dt = dtypes_.find(a.outer);
      if (dt != dtypes_.end()) nested.outer_dtypes_[a.outer] = dt->second;
      auto rk = ranks_.find(a.outer);
      if (rk != ranks_.end()) nested.outer_ranks_[a.outer] = rk->second;
    }
  }
  for (const auto& [k, v] : outer_dtypes_) nested.outer_dtypes_.emplace(k, v);
  for (const auto& [k, v] : outer_ranks_) nested.outer_ranks_.emplace(k, v);
  KILN_ASSIGN_OR_RETURN(Graph g, nested.Run());
  for (const auto& o : outputs) {
    auto dt = nested.dtypes_.find(o);
    if (dt != nested.dtypes_.end()) g.value_info[o].dtype = dt->second;
  }
  g.inputs = inputs;
  g.outputs = outputs;
  g.metadata.clear();
  g.name = prefix;
  return std::make_shared<Graph>(std::move(g));
}

Status Importer::AddUnmapped(const tfpb::NodeDef& def, const std::vector<std::string>& inputs,
                             const std::shared_ptr<const Provenance>& prov,
                             const std::string& reason) {
  Node node;
  node.name = def.name();
  node.op_type = def.op();
  node.domain = "tf";
  node.inputs = inputs;
  auto it = max_used_.find(def.name());
  int n_out = it == max_used_.end() ? (IsSideEffectOnly(def.op()) ? 0 : 1) : it->second + 1;
  for (int k = 0; k < n_out; ++k) node.outputs.push_back(def.name() + ":" + std::to_string(k));
  if (!reason.empty()) node.attrs["_kiln_unmapped_reason"] = Attr::String(reason);
  node.provenance = prov;
  graph_.nodes.push_back(std::move(node));
  return Status::OK();
}

// A converted graph's KilnEngineOp (io/tf/engine_op_graphdef.h): a kiln.EngineOp node, its
// native segment into Graph::functions.
Status Importer::ImportEngineOp(const tfpb::NodeDef& def, const std::vector<std::string>& inputs) {
  KILN_ASSIGN_OR_RETURN(ImportedEngineOp e, EngineOpFromNodeDef(def, inputs, where_));
  auto [it, inserted] = graph_.functions.emplace(e.segment_key, e.segment);
  if (!inserted) {
    return InvalidArgument(where_ + ": " + DescribeDef(def) + ": segment_func " +
                           Quote(e.segment_key) + " is used by another engine node too");
  }
  auto used = max_used_.find(def.name());
  if (used != max_used_.end() && used->second >= static_cast<int>(e.node.outputs.size())) {
    return InvalidArgument(where_ + ": " + DescribeDef(def) + " has " +
                           std::to_string(e.node.outputs.size()) + " outputs, but another node "
                           "reads output " + std::to_string(used->second));
  }
  for (size_t k = 0; k < e.node.outputs.size(); ++k) dtypes_[e.node.outputs[k]] = e.output_types[k];
  node_outputs_[def.name()] = e.node.outputs;
  graph_.opset_imports["kiln"] = 1;
  graph_.nodes.push_back(std::move(e.node));
  return Status::OK();
}

Status Importer::ImportNode(const tfpb::NodeDef& def, const std::vector<std::string>& inputs) {
  auto prov = std::make_shared<Provenance>();
  prov->format = opts_.format;
  prov->original_op = def.op();
  prov->original_name = def.name();
  prov->serialized = SerializeDeterministic(def);
  const std::string out0 = def.name() + ":0";

  if (def.op() == "Const") {
    auto it = def.attr().find("value");
    if (it == def.attr().end() || it->second.value_case() != tfpb::AttrValue::kTensor) {
      return InvalidArgument(where_ + ": " + DescribeDef(def) + " has no tensor 'value'");
    }
    auto t = TensorFromTf(it->second.tensor(), DescribeDef(def));
    if (!t.ok()) return t.status().WithContext(where_);
    dtypes_[out0] = t->dtype();
    graph_.initializers[out0] = std::move(t).value();
    graph_.initializer_provenance[out0] = prov;
    return Status::OK();
  }
  if (def.op() == "Placeholder") {
    auto it = def.attr().find("dtype");
    if (it == def.attr().end() || it->second.value_case() != tfpb::AttrValue::kType) {
      return InvalidArgument(where_ + ": " + DescribeDef(def) + " has no 'dtype'");
    }
    auto dt = DataTypeFromTf(it->second.type());
    if (!dt) {
      return Unimplemented(where_ + ": " + DescribeDef(def) + " has dtype " +
                           TfDataTypeName(it->second.type()) + ", which kiln does not support");
    }
    ValueInfo vi;
    vi.dtype = *dt;
    auto sh = def.attr().find("shape");
    if (sh != def.attr().end() && sh->second.value_case() == tfpb::AttrValue::kShape) {
      vi.shape = ShapeFromTf(sh->second.shape());
    }
    graph_.inputs.push_back(out0);
    graph_.value_info[out0] = vi;
    dtypes_[out0] = *dt;
    if (vi.shape.rank_known()) ranks_[out0] = vi.shape.rank();
    graph_.metadata["tf.placeholder:" + out0] = prov->serialized;
    return Status::OK();
  }

  if (def.op() == kTfEngineOpType) return ImportEngineOp(def, inputs);
  const TfHandler* handler = TfHandlerRegistry::Global().Find(def.op());
  if (handler == nullptr) return AddUnmapped(def, inputs, prov, "");
  const size_t nodes_before = graph_.nodes.size();
  added_initializers_.clear();
  TfNodeContext ctx(this, def, inputs, prov);
  Status st = (*handler)(ctx);
  if (!st.ok()) {
    if (st.code() != StatusCode::kUnimplemented) return st.WithContext(where_);
    // Roll back what the handler emitted; keep the node unmapped, with the reason.
    graph_.nodes.resize(nodes_before);
    for (const auto& n : added_initializers_) graph_.initializers.erase(n);
    std::string reason = st.message();
    std::string prefix = DescribeDef(def) + ": ";
    if (reason.rfind(prefix, 0) == 0) reason = reason.substr(prefix.size());
    return AddUnmapped(def, inputs, prov, reason);
  }
  // Every output another NodeDef reads must have been produced.
  std::set<std::string> produced;
  for (size_t k = nodes_before; k < graph_.nodes.size(); ++k) {
    for (const auto& o : graph_.nodes[k].outputs) produced.insert(o);
  }
  auto it = max_used_.find(def.name());
  if (it != max_used_.end()) {
    for (int k = 0; k <= it->second; ++k) {
      std::string v = def.name() + ":" + std::to_string(k);
      if (used_.count(v) && !produced.count(v)) {
        return InvalidArgument(where_ + ": " + DescribeDef(def) + " has no output " +
                               std::to_string(k) + ", but another node reads " + Quote(v));
      }
    }
  }
  std::vector<std::string>& outs = node_outputs_[def.name()];
  for (int k = 0; k < 1024; ++k) {
    std::string v = def.name() + ":" + std::to_string(k);
    if (!produced.count(v)) break;
    outs.push_back(v);
  }
  return Status::OK();
}

StatusOr<Graph> Importer::Run() {
  const int n = gd_.node_size();
  std::unordered_map<std::string, int> index;
  for (int i = 0; i < n; ++i) {
    const auto& def = gd_.node(i);
    if (def.name().empty()) {
      return InvalidArgument(where_ + ": node #" + std::to_string(i) + " (" + def.op() +
                             ") has no name");
    }
    if (def.op().empty()) return InvalidArgument(where_ + ": " + Quote(def.name()) + " has no op");
    if (!index.emplace(def.name(), i).second) {
      return InvalidArgument(where_ + ": node name " + Quote(def.name()) + " is used twice");
    }
    node_names_.insert(def.name());
  }
  for (const auto& [k, v] : outer_dtypes_) dtypes_.emplace(k, v);
  for (const auto& [k, v] : outer_ranks_) ranks_.emplace(k, v);
  // Parse inputs; build the dependency graph.
  std::vector<std::vector<std::string>> data_inputs(n);
  std::vector<std::vector<int>> consumers(n);
  std::vector<int> indegree(n, 0);
  std::set<int> has_consumer;
  for (int i = 0; i < n; ++i) {
    const auto& def = gd_.node(i);
    for (int k = 0; k < def.input_size(); ++k) {
      if (def.input(k).rfind(kOuterMarker, 0) == 0) {  // an enclosing scope's value
        data_inputs[i].push_back(def.input(k).substr(std::string(kOuterMarker).size()));
        continue;
      }
      ParsedInput in;
      if (!ParseInput(def.input(k), &in)) {
        return InvalidArgument(where_ + ": " + DescribeDef(def) + " has a malformed input " +
                               Quote(def.input(k)));
      }
      auto it = index.find(in.node);
      if (it == index.end()) {
        return InvalidArgument(where_ + ": " + DescribeDef(def) + " input " + std::to_string(k) +
                               " names " + Quote(in.node) + ", which is not a node of the graph");
      }
      consumers[it->second].push_back(i);
      ++indegree[i];
      if (in.control) continue;
      has_consumer.insert(it->second);
      std::string v = in.node + ":" + std::to_string(in.index);
      used_.insert(v);
      int& mx = max_used_.try_emplace(in.node, -1).first->second;
      mx = std::max(mx, in.index);
      data_inputs[i].push_back(v);
    }
  }
  // Stable topological order (Kahn, ties by position).
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (int i = 0; i < n; ++i) {
    if (indegree[i] == 0) ready.push(i);
  }
  std::vector<int> order;
  while (!ready.empty()) {
    int i = ready.top();
    ready.pop();
    order.push_back(i);
    for (int c : consumers[i]) {
      if (--indegree[c] == 0) ready.push(c);
    }
  }
  if (static_cast<int>(order.size()) != n) {
    std::string names;
    int shown = 0;
    for (int i = 0; i < n && shown < 8; ++i) {
      if (indegree[i] > 0) names += (shown++ ? ", " : "") + Quote(gd_.node(i).name());
    }
    return InvalidArgument(where_ + ": the graph has a cycle (nodes on or after it: " + names +
                           "); kiln does not import TF1 control-flow loops");
  }
  graph_.name = where_;
  graph_.source_path = opts_.source;
  graph_.opset_imports[""] = 18;
  graph_.opset_imports["kiln"] = 1;
  for (int i : order) KILN_RETURN_IF_ERROR(ImportNode(gd_.node(i), data_inputs[i]));

  // Graph outputs: outputs of nodes nothing reads.
  for (int i : order) {
    const auto& def = gd_.node(i);
    if (has_consumer.count(i) || IsSideEffectOnly(def.op())) continue;
    auto it = node_outputs_.find(def.name());
    if (it != node_outputs_.end()) {
      for (const auto& v : it->second) graph_.outputs.push_back(v);
    } else {  // unmapped node
      for (const auto& node : graph_.nodes) {
        if (node.name == def.name()) {
          for (const auto& v : node.outputs) graph_.outputs.push_back(v);
        }
      }
    }
  }
  if (gd_.has_versions()) graph_.metadata["tf.versions"] = SerializeDeterministic(gd_.versions());
  if (gd_.has_library()) graph_.metadata["tf.library"] = SerializeDeterministic(gd_.library());
  if (gd_.has_debug_info()) graph_.metadata["tf.debug_info"] = SerializeDeterministic(gd_.debug_info());
  return std::move(graph_);
}

}  // namespace tfimport

StatusOr<Graph> ImportGraphDef(const tfpb::GraphDef& graph_def, const TfImportOptions& options) {
  // TF1 while frames become While nodes over new library functions first.
  if (HasTf1ControlFlow(graph_def)) {
    KILN_ASSIGN_OR_RETURN(
        tfpb::GraphDef lowered,
        LowerTf1ControlFlow(graph_def, options.source.empty() ? "GraphDef" : options.source));
    // A Switch/Merge the lowering leaves (no while/cond pattern around it) would recurse here
    // forever (found by fuzz/fuzz_graphdef_pb).
    if (HasTf1ControlFlow(lowered)) {
      return InvalidArgument((options.source.empty() ? "GraphDef" : options.source) +
                             ": TF1 control flow (Switch/Merge/Enter/Exit/NextIteration) outside "
                             "any while loop or cond that kiln can lower");
    }
    return ImportGraphDef(lowered, options);
  }
  // Function calls (StatefulPartitionedCall, PartitionedCall, a library function used as an op)
  // are inlined first; functional control flow (If, While, Case) keeps its functions, which the
  // control-flow handlers import as subgraphs.
  bool calls = false;
  if (graph_def.library().function_size() > 0) {
    std::set<std::string> fnames;
    for (const auto& f : graph_def.library().function()) fnames.insert(f.signature().name());
    for (const auto& n : graph_def.node()) {
      if (n.op() == "StatefulPartitionedCall" || n.op() == "PartitionedCall" ||
          fnames.count(n.op())) {
        calls = true;
        break;
      }
    }
  }
  if (calls) {
    auto flat = InlineCalls(graph_def);
    if (!flat.ok()) {
      return flat.status().WithContext(options.source.empty() ? "GraphDef" : options.source);
    }
    tfimport::Importer importer(*flat, options);
    return importer.Run();
  }
  tfimport::Importer importer(graph_def, options);
  return importer.Run();
}

Status ParseGraphDef(const std::string& bytes, bool text, const std::string& what,
                     tfpb::GraphDef* graph_def) {
  if (bytes.empty()) return InvalidArgument(what + ": the file is empty");
  if (text) {
    google::protobuf::TextFormat::Parser parser;
    // Silence protobuf's stderr logging; report our own error instead.
    struct Collector : google::protobuf::io::ErrorCollector {
      std::string first;
      void AddError(int line, int column, const std::string& message) override {
        if (first.empty()) {
          first = "line " + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " +
                  message;
        }
      }
    } collector;
    parser.RecordErrorsTo(&collector);
    parser.SetRecursionLimit(kTextProtoRecursionLimit);  // the text parser has none by default
    if (!parser.ParseFromString(bytes, graph_def)) {
      return InvalidArgument(what + ": not a valid text GraphDef (" + collector.first + ")");
    }
    return Status::OK();
  }
  if (!ParseProtoWithLimits(bytes, graph_def)) {
    return InvalidArgument(what + ": not a valid GraphDef (protobuf parsing failed; the file may "
                           "be truncated or not a TensorFlow graph)");
  }
  return Status::OK();
}

StatusOr<Graph> ImportGraphDefFile(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  std::string ext = std::filesystem::path(path).extension().string();
  bool text = ext == ".pbtxt" || ext == ".txt" || ext == ".prototxt";
  tfpb::GraphDef gd;
  KILN_RETURN_IF_ERROR(ParseGraphDef(bytes, text, path, &gd));
  TfImportOptions options;
  options.source = path;
  return ImportGraphDef(gd, options);
}

}  // namespace kiln
