#include "io/onnx/onnx_export.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/file_util.h"
#include "io/onnx/onnx_import.h"
#include "onnx.pb.h"

namespace kiln {
namespace {

using onnxpb::AttributeProto;

// The IR version a reader needs: local functions need 8, opset 19-20 is IR 9, opset 21 and
// FunctionProto.value_info are IR 10.
int64_t IrVersionFor(const Graph& graph) {
  int64_t ir = 8;
  const int64_t opset = graph.onnx_opset();
  if (opset >= 19) ir = 9;
  if (opset >= 21 || !graph.functions.empty()) ir = 10;
  auto it = graph.metadata.find("onnx.ir_version");
  if (it != graph.metadata.end()) ir = std::max<int64_t>(ir, std::atoll(it->second.c_str()));
  return ir;
}

void TensorToProto(const Tensor& t, const std::string& name, onnxpb::TensorProto* p) {
  if (!name.empty()) p->set_name(name);
  p->set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.dims()) p->add_dims(d);
  if (t.dtype() == DataType::kString) {
    const std::string* s = t.data<std::string>();
    for (int64_t i = 0; i < t.num_elements(); ++i) p->add_string_data(s[i]);
    return;
  }
  p->set_raw_data(static_cast<const char*>(t.raw_data()), t.nbytes());
}

void ShapeToProto(const ValueInfo& vi, onnxpb::TypeProto* type) {
  auto* tt = type->mutable_tensor_type();
  if (vi.dtype != DataType::kUndefined) tt->set_elem_type(static_cast<int32_t>(vi.dtype));
  if (!vi.shape.rank_known()) return;
  auto* shape = tt->mutable_shape();
  for (int64_t d : vi.shape.dims()) {
    auto* dim = shape->add_dim();
    if (d >= 0) dim->set_dim_value(d);
  }
}

// A ValueInfoProto for `value`, or nullptr-equivalent false when nothing is known of it.
bool ValueInfoToProto(const Graph& graph, const std::string& value, onnxpb::ValueInfoProto* p) {
  p->set_name(value);
  const ValueInfo* vi = graph.FindValueInfo(value);
  if (vi == nullptr || (vi->dtype == DataType::kUndefined && !vi->shape.rank_known())) {
    return false;
  }
  ShapeToProto(*vi, p->mutable_type());
  return true;
}

Status GraphToProto(const Graph& graph, onnxpb::GraphProto* p);

Status AttrToProto(const std::string& name, const Attr& a, AttributeProto* p) {
  p->set_name(name);
  switch (a.type) {
    case AttrType::kFloat:
      p->set_type(AttributeProto::FLOAT);
      p->set_f(a.f);
      break;
    case AttrType::kInt:
      p->set_type(AttributeProto::INT);
      p->set_i(a.i);
      break;
    case AttrType::kString:
      p->set_type(AttributeProto::STRING);
      p->set_s(a.s);
      break;
    case AttrType::kTensor:
      p->set_type(AttributeProto::TENSOR);
      TensorToProto(a.t, "", p->mutable_t());
      break;
    case AttrType::kGraph:
      p->set_type(AttributeProto::GRAPH);
      if (a.g == nullptr) return InvalidArgument("attribute '" + name + "' has no graph");
      KILN_RETURN_IF_ERROR(GraphToProto(*a.g, p->mutable_g()));
      break;
    case AttrType::kFloats:
      p->set_type(AttributeProto::FLOATS);
      for (float f : a.floats) p->add_floats(f);
      break;
    case AttrType::kInts:
      p->set_type(AttributeProto::INTS);
      for (int64_t i : a.ints) p->add_ints(i);
      break;
    case AttrType::kStrings:
      p->set_type(AttributeProto::STRINGS);
      for (const auto& s : a.strings) p->add_strings(s);
      break;
    case AttrType::kUndefined:
      return InvalidArgument("attribute '" + name + "' has no value");
  }
  return Status::OK();
}

bool HasGraphAttr(const Node& node) {
  for (const auto& [k, a] : node.attrs) {
    if (a.type == AttrType::kGraph) return true;
  }
  return false;
}

// The original NodeProto when `node` is unchanged since import (renamed to node.name when the
// original had no name); false otherwise.
bool OriginalNodeProto(const Node& node, onnxpb::NodeProto* p) {
  const Provenance* prov = node.provenance.get();
  if (prov == nullptr || prov->format != "onnx" || prov->serialized.empty() || HasGraphAttr(node)) {
    return false;
  }
  if (!ParseProtoWithLimits(prov->serialized, p)) return false;
  const std::string domain = p->domain() == "ai.onnx" ? "" : p->domain();
  if (p->op_type() != node.op_type || domain != node.domain ||
      (!p->name().empty() && p->name() != node.name) ||
      !std::equal(p->input().begin(), p->input().end(), node.inputs.begin(), node.inputs.end()) ||
      !std::equal(p->output().begin(), p->output().end(), node.outputs.begin(),
                  node.outputs.end())) {
    return false;
  }
  auto attrs = AttrsFromNodeProto(*p, "", node.Describe());
  if (!attrs.ok() || *attrs != node.attrs) return false;
  if (p->name().empty()) p->set_name(node.name);
  return true;
}

Status NodeToProto(const Node& node, onnxpb::NodeProto* p) {
  if (OriginalNodeProto(node, p)) return Status::OK();
  p->Clear();
  p->set_name(node.name);
  p->set_op_type(node.op_type);
  if (!node.domain.empty()) p->set_domain(node.domain);
  for (const auto& in : node.inputs) p->add_input(in);
  for (const auto& out : node.outputs) p->add_output(out);
  for (const auto& [name, attr] : node.attrs) {
    Status st = AttrToProto(name, attr, p->add_attribute());
    if (!st.ok()) return st.WithContext(node.Describe());
  }
  return Status::OK();
}

// value_info entries for values that are neither inputs, outputs nor initializers.
template <typename AddFn>
void IntermediateValueInfo(const Graph& graph, AddFn add) {
  std::set<std::string> io(graph.inputs.begin(), graph.inputs.end());
  io.insert(graph.outputs.begin(), graph.outputs.end());
  for (const auto& [name, vi] : graph.value_info) {
    if (io.count(name) || graph.IsInitializer(name)) continue;
    onnxpb::ValueInfoProto v;
    if (ValueInfoToProto(graph, name, &v)) *add() = std::move(v);
  }
}

Status GraphToProto(const Graph& graph, onnxpb::GraphProto* p) {
  p->set_name(graph.name);
  for (const auto& in : graph.inputs) ValueInfoToProto(graph, in, p->add_input());
  for (const auto& [name, t] : graph.initializers) TensorToProto(t, name, p->add_initializer());
  for (const auto& node : graph.nodes) KILN_RETURN_IF_ERROR(NodeToProto(node, p->add_node()));
  for (const auto& out : graph.outputs) ValueInfoToProto(graph, out, p->add_output());
  IntermediateValueInfo(graph, [p] { return p->add_value_info(); });
  return Status::OK();
}

void AddOpsets(const std::map<std::string, int64_t>& opsets, const Graph& graph,
               google::protobuf::RepeatedPtrField<onnxpb::OperatorSetIdProto>* out) {
  std::map<std::string, int64_t> all = opsets;
  for (const auto& node : graph.nodes) all.emplace(node.domain, 1);
  for (const auto& [domain, version] : all) {
    auto* op = out->Add();
    op->set_domain(domain);
    op->set_version(version);
  }
}

Status FunctionToProto(const std::string& key, const Graph& fn, const Graph& model,
                       onnxpb::FunctionProto* p) {
  if (!fn.functions.empty()) {
    return Unimplemented("function '" + key + "' has its own function library");
  }
  p->set_name(key);
  p->set_domain(kOnnxFunctionDomain);
  for (const auto& in : fn.inputs) p->add_input(in);
  for (const auto& out : fn.outputs) p->add_output(out);
  for (const auto& [name, t] : fn.initializers) {
    auto* c = p->add_node();
    c->set_name(name);
    c->set_op_type("Constant");
    c->set_doc_string(kOnnxInitializerDoc);
    c->add_output(name);
    auto* a = c->add_attribute();
    a->set_name("value");
    a->set_type(AttributeProto::TENSOR);
    TensorToProto(t, "", a->mutable_t());
  }
  for (const auto& node : fn.nodes) {
    Status st = NodeToProto(node, p->add_node());
    if (!st.ok()) return st.WithContext("function '" + key + "'");
  }
  std::map<std::string, int64_t> opsets =
      fn.opset_imports.empty() ? model.opset_imports : fn.opset_imports;
  opsets.emplace("", model.onnx_opset());
  AddOpsets(opsets, fn, p->mutable_opset_import());
  for (const auto& in : fn.inputs) {
    onnxpb::ValueInfoProto v;
    if (ValueInfoToProto(fn, in, &v)) *p->add_value_info() = std::move(v);
  }
  for (const auto& out : fn.outputs) {
    onnxpb::ValueInfoProto v;
    if (ValueInfoToProto(fn, out, &v)) *p->add_value_info() = std::move(v);
  }
  IntermediateValueInfo(fn, [p] { return p->add_value_info(); });
  return Status::OK();
}

StatusOr<std::string> Serialize(const onnxpb::ModelProto& model) {
  std::string bytes;
  // Deterministic serialization: map fields (none today) in key order, same bytes every time.
  {
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream out(&raw);
    out.SetSerializationDeterministic(true);
    if (!model.SerializeToCodedStream(&out)) {
      return ResourceExhausted("the model is too large for one ONNX protobuf (2 GiB); write "
                               "large tensors as external data (OnnxWriteOptions)");
    }
  }
  return bytes;
}

// Writes `bytes` to `target` through a temporary file in the same directory, renamed into place.
Status WriteAtomically(const std::string& bytes, const std::filesystem::path& target) {
  return WriteFileAtomically(target.string(), bytes);
}

// Moves the raw data of every top-level initializer of at least `threshold` bytes into
// `side` (offsets aligned to 64 bytes) and points the TensorProto at it.
void ExternalizeInitializers(onnxpb::GraphProto* g, int64_t threshold, const std::string& location,
                             std::string* side) {
  for (auto& t : *g->mutable_initializer()) {
    if (!t.has_raw_data() || static_cast<int64_t>(t.raw_data().size()) < threshold) continue;
    side->resize((side->size() + 63) / 64 * 64, '\0');
    const size_t offset = side->size();
    side->append(t.raw_data());
    const size_t length = t.raw_data().size();
    t.clear_raw_data();
    t.set_data_location(onnxpb::TensorProto::EXTERNAL);
    auto add = [&t](const std::string& key, const std::string& value) {
      auto* kv = t.add_external_data();
      kv->set_key(key);
      kv->set_value(value);
    };
    add("location", location);
    add("offset", std::to_string(offset));
    add("length", std::to_string(length));
  }
}

StatusOr<onnxpb::ModelProto> BuildModel(const Graph& graph) {
  onnxpb::ModelProto model;
  model.set_ir_version(IrVersionFor(graph));
  auto meta = [&graph](const std::string& key) -> const std::string* {
    auto it = graph.metadata.find(key);
    return it == graph.metadata.end() ? nullptr : &it->second;
  };
  const std::string* producer = meta("onnx.producer_name");
  model.set_producer_name(producer != nullptr ? *producer : "kiln");
  const std::string* producer_version = meta("onnx.producer_version");
  model.set_producer_version(producer_version != nullptr ? *producer_version : KILN_VERSION);
  const std::string prefix = "onnx.metadata_props.";
  for (auto it = graph.metadata.lower_bound(prefix);
       it != graph.metadata.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    auto* kv = model.add_metadata_props();
    kv->set_key(it->first.substr(prefix.size()));
    kv->set_value(it->second);
  }
  std::map<std::string, int64_t> opsets = graph.opset_imports;
  opsets.emplace("", graph.onnx_opset());
  if (!graph.functions.empty()) opsets.emplace(kOnnxFunctionDomain, 1);
  AddOpsets(opsets, graph, model.mutable_opset_import());
  KILN_RETURN_IF_ERROR(GraphToProto(graph, model.mutable_graph()));
  for (const auto& [key, fn] : graph.functions) {
    if (fn == nullptr) return InvalidArgument("function '" + key + "' is null");
    KILN_RETURN_IF_ERROR(FunctionToProto(key, *fn, graph, model.add_functions()));
  }
  return model;
}

}  // namespace

StatusOr<std::string> ExportOnnx(const Graph& graph) {
  KILN_ASSIGN_OR_RETURN(onnxpb::ModelProto model, BuildModel(graph));
  return Serialize(model);
}

Status WriteOnnxFile(const Graph& graph, const std::string& path) {
  return WriteOnnxFile(graph, path, OnnxWriteOptions{});
}

Status WriteOnnxFile(const Graph& graph, const std::string& path,
                     const OnnxWriteOptions& options) {
  namespace fs = std::filesystem;
  KILN_ASSIGN_OR_RETURN(onnxpb::ModelProto model, BuildModel(graph));
  const fs::path target(path);
  if (options.external_data_threshold > 0) {
    std::string location = options.external_data_file.empty()
                               ? target.filename().string() + ".data"
                               : options.external_data_file;
    const fs::path loc(location);
    if (location.empty() || loc.has_parent_path() || loc.is_absolute() || location == "." ||
        location == "..") {
      return InvalidArgument("external data file '" + location +
                             "' must be a plain file name (it is written next to the model)");
    }
    std::string side;
    ExternalizeInitializers(model.mutable_graph(), options.external_data_threshold, location,
                            &side);
    if (!side.empty()) {
      // The data first: a model that names a side file is only renamed into place after it.
      KILN_RETURN_IF_ERROR(WriteAtomically(side, target.parent_path() / loc));
    }
  }
  KILN_ASSIGN_OR_RETURN(std::string bytes, Serialize(model));
  return WriteAtomically(bytes, target);
}

}  // namespace kiln
