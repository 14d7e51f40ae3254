#include "io/onnx/onnx_import.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/message.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/logging.h"
#include "onnx.pb.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using onnxpb::AttributeProto;
using onnxpb::TensorProto;

constexpr int kProtoRecursionLimit = 64;

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// Resolves an external-data location inside `base_dir`; refuses absolute paths and any path
// that leaves the directory (ARCHITECTURE: files named by a model stay in its directory).
StatusOr<std::string> ResolveExternalPath(const std::string& base_dir, const std::string& location,
                                          const std::string& tensor) {
  if (base_dir.empty()) {
    return InvalidArgument("tensor " + Quote(tensor) +
                           " uses external data, but the model was not loaded from a file");
  }
  fs::path rel(location);
  if (location.empty() || rel.is_absolute()) {
    return InvalidArgument("tensor " + Quote(tensor) + ": external data location " +
                           Quote(location) + " must be a relative path");
  }
  fs::path base = fs::weakly_canonical(fs::path(base_dir));
  fs::path full = fs::weakly_canonical(base / rel);
  auto [b, f] = std::mismatch(base.begin(), base.end(), full.begin(), full.end());
  if (b != base.end()) {
    return InvalidArgument("tensor " + Quote(tensor) + ": external data location " +
                           Quote(location) + " escapes the model's directory");
  }
  return full.string();
}

StatusOr<std::string> ReadExternalData(const TensorProto& proto, const std::string& base_dir,
                                       size_t expected_bytes) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : proto.external_data()) {
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset" || kv.key() == "length") {
      char* end = nullptr;
      long long v = std::strtoll(kv.value().c_str(), &end, 10);
      if (end == kv.value().c_str() || v < 0) {
        return InvalidArgument("tensor " + Quote(proto.name()) + ": bad external data " +
                               kv.key() + " " + Quote(kv.value()));
      }
      (kv.key() == "offset" ? offset : length) = v;
    }
  }
  KILN_ASSIGN_OR_RETURN(std::string path, ResolveExternalPath(base_dir, location, proto.name()));
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound("tensor " + Quote(proto.name()) + ": cannot open external data " + path);
  f.seekg(0, std::ios::end);
  int64_t size = f.tellg();
  if (length < 0) length = size - offset;
  if (offset > size || length > size - offset) {
    return DataLoss("tensor " + Quote(proto.name()) + ": external data " + path +
                    " is shorter than offset+length");
  }
  if (static_cast<size_t>(length) != expected_bytes) {
    return InvalidArgument("tensor " + Quote(proto.name()) + ": external data has " +
                           std::to_string(length) + " bytes, shape needs " +
                           std::to_string(expected_bytes));
  }
  std::string data(static_cast<size_t>(length), '\0');
  f.seekg(offset);
  f.read(data.data(), length);
  if (!f) return DataLoss("tensor " + Quote(proto.name()) + ": cannot read " + path);
  return data;
}

template <typename Field, typename T, typename Conv>
Status CopyTyped(const Field& field, Tensor* t, Conv conv, const std::string& name) {
  if (static_cast<int64_t>(field.size()) != t->num_elements()) {
    return InvalidArgument("tensor " + Quote(name) + " has " + std::to_string(field.size()) +
                           " values, its shape " + DimsToString(t->dims()) + " needs " +
                           std::to_string(t->num_elements()));
  }
  T* out = t->mutable_data<T>();
  for (int i = 0; i < field.size(); ++i) out[i] = conv(field.Get(i));
  return Status::OK();
}

StatusOr<Attr> AttrFromProto(const AttributeProto& a, const std::string& base_dir,
                             const std::string& node);

StatusOr<Graph> GraphFromProto(const onnxpb::GraphProto& g, const std::string& what,
                               const std::string& base_dir,
                               const std::map<std::string, int64_t>& opsets, bool is_subgraph);

StatusOr<ValueInfo> ValueInfoFromProto(const onnxpb::ValueInfoProto& v, bool require_type) {
  ValueInfo info;
  if (!v.has_type() || v.type().value_case() == onnxpb::TypeProto::VALUE_NOT_SET) {
    if (require_type) return InvalidArgument("graph input " + Quote(v.name()) + " has no type");
    return info;
  }
  // seq(tensor(T)), optional(tensor(T)) and optional(seq(tensor(T))) are recorded by their
  // element type T with an unknown shape: the runtime carries them as sequence / optional
  // values (Tensor::Sequence, Tensor::NoneOptional) and only ops that take them see them.
  const onnxpb::TypeProto* type = &v.type();
  for (int depth = 0; depth < 4; ++depth) {
    if (type->has_sequence_type() && type->sequence_type().has_elem_type()) {
      type = &type->sequence_type().elem_type();
    } else if (type->has_optional_type() && type->optional_type().has_elem_type()) {
      type = &type->optional_type().elem_type();
    } else {
      break;
    }
  }
  if (type != &v.type() && type->has_tensor_type()) {
    const auto& et = type->tensor_type();
    if (et.has_elem_type() && IsValidDataType(et.elem_type())) {
      info.dtype = static_cast<DataType>(et.elem_type());
    }
    return info;
  }
  if (!type->has_tensor_type()) {
    const char* kind = type->has_sequence_type()   ? "a sequence of non-tensors"
                       : type->has_optional_type() ? "an optional of non-tensors"
                       : type->has_map_type()      ? "a map"
                                                   : "a sparse tensor";
    return Unimplemented("value " + Quote(v.name()) + " is " + kind +
                         "; kiln supports tensors, sequences of tensors and optionals");
  }
  const auto& tt = v.type().tensor_type();
  if (tt.has_elem_type()) {
    if (!IsValidDataType(tt.elem_type())) {
      return Unimplemented("value " + Quote(v.name()) + " has unsupported element type " +
                           std::to_string(tt.elem_type()));
    }
    info.dtype = static_cast<DataType>(tt.elem_type());
  }
  if (tt.has_shape()) {
    std::vector<int64_t> dims;
    for (const auto& d : tt.shape().dim()) {
      dims.push_back(d.has_dim_value() && d.dim_value() >= 0 ? d.dim_value() : Shape::kUnknownDim);
    }
    info.shape = Shape(dims);
  }
  return info;
}

StatusOr<Attr> AttrFromProto(const AttributeProto& a, const std::string& base_dir,
                             const std::string& node) {
  const std::string where = node + ": attribute " + Quote(a.name());
  if (!a.ref_attr_name().empty()) {
    return Unimplemented(where + " refers to a function attribute");
  }
  AttributeProto::AttributeType type = a.type();
  if (type == AttributeProto::UNDEFINED) {  // very old files: infer from the field set
    if (a.has_f()) type = AttributeProto::FLOAT;
    else if (a.has_i()) type = AttributeProto::INT;
    else if (a.has_s()) type = AttributeProto::STRING;
    else if (a.has_t()) type = AttributeProto::TENSOR;
    else if (a.has_g()) type = AttributeProto::GRAPH;
    else if (a.floats_size()) type = AttributeProto::FLOATS;
    else if (a.ints_size()) type = AttributeProto::INTS;
    else if (a.strings_size()) type = AttributeProto::STRINGS;
  }
  switch (type) {
    case AttributeProto::FLOAT: return Attr::Float(a.f());
    case AttributeProto::INT: return Attr::Int(a.i());
    case AttributeProto::STRING: return Attr::String(a.s());
    case AttributeProto::FLOATS:
      return Attr::Floats(std::vector<float>(a.floats().begin(), a.floats().end()));
    case AttributeProto::INTS:
      return Attr::Ints(std::vector<int64_t>(a.ints().begin(), a.ints().end()));
    case AttributeProto::STRINGS:
      return Attr::Strings(std::vector<std::string>(a.strings().begin(), a.strings().end()));
    case AttributeProto::TENSOR: {
      auto t = TensorFromProto(a.t(), base_dir);
      if (!t.ok()) return t.status().WithContext(where);
      return Attr::TensorValue(std::move(t).value());
    }
    case AttributeProto::GRAPH: {
      auto g = GraphFromProto(a.g(), where, base_dir, {}, /*is_subgraph=*/true);
      if (!g.ok()) return g.status();
      return Attr::GraphValue(std::make_shared<Graph>(std::move(g).value()));
    }
    default:
      return Unimplemented(where + " has type " + AttributeProto::AttributeType_Name(type) +
                           ", which kiln does not support");
  }
}

// One NodeProto as a Node with its provenance; an unnamed node gets "<op>_<index>" (made
// unique against `names`), so errors can name it.
StatusOr<Node> NodeFromProto(const onnxpb::NodeProto& n, int index, std::set<std::string>* names,
                             const std::string& what, const std::string& base_dir) {
  Node node;
  node.op_type = n.op_type();
  node.domain = n.domain() == "ai.onnx" ? "" : n.domain();
  node.name = n.name();
  if (node.name.empty()) {  // ONNX allows unnamed nodes; errors need a name
    std::string base = n.op_type() + "_" + std::to_string(index);
    node.name = base;
    for (int s = 1; names->count(node.name); ++s) node.name = base + "_" + std::to_string(s);
    names->insert(node.name);
  }
  if (node.op_type.empty()) return InvalidArgument(what + ": node " + Quote(node.name) + " has no op_type");
  node.inputs.assign(n.input().begin(), n.input().end());
  node.outputs.assign(n.output().begin(), n.output().end());
  auto attrs = AttrsFromNodeProto(n, base_dir, node.Describe());
  if (!attrs.ok()) return attrs.status().WithContext(what);
  node.attrs = std::move(attrs).value();
  auto prov = std::make_shared<Provenance>();
  prov->format = "onnx";
  prov->original_op = n.op_type();
  prov->original_name = n.name();
  prov->serialized = n.SerializeAsString();
  node.provenance = std::move(prov);
  return node;
}

StatusOr<Graph> GraphFromProto(const onnxpb::GraphProto& g, const std::string& what,
                               const std::string& base_dir,
                               const std::map<std::string, int64_t>& opsets, bool is_subgraph) {
  Graph graph;
  graph.name = g.name();
  graph.opset_imports = opsets;
  if (g.sparse_initializer_size() > 0) {
    return Unimplemented(what + ": sparse initializers are not supported");
  }
  for (const auto& init : g.initializer()) {
    if (init.name().empty()) return InvalidArgument(what + ": an initializer has no name");
    auto t = TensorFromProto(init, base_dir);
    if (!t.ok()) return t.status().WithContext(what);
    if (!graph.initializers.emplace(init.name(), std::move(t).value()).second) {
      return InvalidArgument(what + ": initializer " + Quote(init.name()) + " is defined twice");
    }
  }
  for (const auto& in : g.input()) {
    if (in.name().empty()) return InvalidArgument(what + ": a graph input has no name");
    bool is_init = graph.IsInitializer(in.name());
    // Subgraph (Loop/Scan body) inputs may leave their type to the enclosing op.
    auto vi = ValueInfoFromProto(in, /*require_type=*/!is_init && !is_subgraph);
    if (!vi.ok()) return vi.status().WithContext(what);
    graph.value_info[in.name()] = *vi;
    if (!is_init) graph.inputs.push_back(in.name());
  }
  for (const auto& v : g.value_info()) {
    auto vi = ValueInfoFromProto(v, false);
    if (vi.ok()) graph.value_info[v.name()] = *vi;  // non-tensor hints are only hints
  }
  for (const auto& out : g.output()) {
    if (out.name().empty()) return InvalidArgument(what + ": a graph output has no name");
    auto vi = ValueInfoFromProto(out, false);
    if (!vi.ok()) return vi.status().WithContext(what);
    graph.value_info[out.name()] = *vi;
    graph.outputs.push_back(out.name());
  }
  std::set<std::string> names;
  for (const auto& n : g.node()) {
    if (!n.name().empty()) names.insert(n.name());
  }
  graph.nodes.reserve(g.node_size());
  for (int k = 0; k < g.node_size(); ++k) {
    KILN_ASSIGN_OR_RETURN(Node node, NodeFromProto(g.node(k), k, &names, what, base_dir));
    graph.nodes.push_back(std::move(node));
  }
  return graph;
}

// A kiln.functions FunctionProto (exporter's form) as a Graph: marked Constant nodes become
// initializers, value_info gives the input and output types.
StatusOr<Graph> FunctionFromProto(const onnxpb::FunctionProto& f, const std::string& what,
                                  const std::string& base_dir,
                                  const std::map<std::string, int64_t>& model_opsets) {
  Graph graph;
  graph.name = f.name();
  if (f.opset_import_size() == 0) graph.opset_imports = model_opsets;
  for (const auto& op : f.opset_import()) {
    graph.opset_imports[op.domain() == "ai.onnx" ? "" : op.domain()] = op.version();
  }
  graph.inputs.assign(f.input().begin(), f.input().end());
  graph.outputs.assign(f.output().begin(), f.output().end());
  for (const auto& v : f.value_info()) {
    auto vi = ValueInfoFromProto(v, false);
    if (!vi.ok()) return vi.status().WithContext(what);
    graph.value_info[v.name()] = *vi;
  }
  std::set<std::string> names;
  for (const auto& n : f.node()) {
    if (!n.name().empty()) names.insert(n.name());
  }
  for (int k = 0; k < f.node_size(); ++k) {
    const auto& n = f.node(k);
    if (n.doc_string() == kOnnxInitializerDoc) {
      if (n.op_type() != "Constant" || n.output_size() != 1 || n.attribute_size() != 1 ||
          !n.attribute(0).has_t()) {
        return InvalidArgument(what + ": malformed initializer node " + Quote(n.name()));
      }
      auto t = TensorFromProto(n.attribute(0).t(), base_dir);
      if (!t.ok()) return t.status().WithContext(what);
      if (!graph.initializers.emplace(n.output(0), std::move(t).value()).second) {
        return InvalidArgument(what + ": initializer " + Quote(n.output(0)) + " is defined twice");
      }
      continue;
    }
    KILN_ASSIGN_OR_RETURN(Node node, NodeFromProto(n, k, &names, what, base_dir));
    graph.nodes.push_back(std::move(node));
  }
  return graph;
}

// Opsets below 7 are read only when every op of the model is one whose definition did not
// change between that opset and opset 7 (apart from the legacy `consumed_inputs` attribute,
// dropped at import). Ops whose semantics did change (broadcasting before 7, BatchNormalization,
// Dropout, Concat's default axis, Pad, Upsample, ...) keep the model unsupported.
bool IsLegacyCompatible(const onnxpb::GraphProto& g) {
  static const std::set<std::string> kUnchanged = {
      "Abs", "ArgMax", "ArgMin", "Ceil", "Elu", "Exp", "Flatten", "Floor",
      "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "HardSigmoid", "Hardmax", "Identity",
      "InstanceNormalization", "LeakyRelu", "Log", "LogSoftmax", "Neg", "Not", "Reciprocal",
      "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
      "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu", "Selu", "Shape",
      "Sigmoid", "Size", "Softmax", "Softplus", "Softsign", "Sqrt", "Tanh", "Transpose"};
  if (g.node_size() == 0) return false;
  for (const auto& n : g.node()) {
    if (!(n.domain().empty() || n.domain() == "ai.onnx") || !kUnchanged.count(n.op_type())) {
      return false;
    }
  }
  return true;
}

}  // namespace

StatusOr<AttrMap> AttrsFromNodeProto(const onnxpb::NodeProto& n, const std::string& base_dir,
                                     const std::string& node) {
  AttrMap attrs;
  for (const auto& a : n.attribute()) {
    if (a.name().empty()) return InvalidArgument(node + " has an attribute without a name");
    KILN_ASSIGN_OR_RETURN(attrs[a.name()], AttrFromProto(a, base_dir, node));
  }
  return attrs;
}

bool ParseProtoWithLimits(std::string_view bytes, void* message) {
  auto* msg = static_cast<google::protobuf::Message*>(message);
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) return false;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  in.SetRecursionLimit(kProtoRecursionLimit);
  in.SetTotalBytesLimit(INT32_MAX);
  return msg->ParseFromCodedStream(&in) && in.ConsumedEntireMessage();
}

StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound("file " + Quote(path) + " does not exist");
  if (fs::is_directory(path, ec)) return InvalidArgument(Quote(path) + " is a directory");
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound("cannot open " + Quote(path));
  // A regular file is read in one go into a buffer of its size (a model is 100s of MB: no
  // stream buffer growing and copying); anything else (a pipe) through a stream.
  const auto size = fs::is_regular_file(path, ec) ? fs::file_size(path, ec) : uintmax_t{0};
  if (!ec && size > 0 && size < static_cast<uintmax_t>(INT64_MAX)) {
    std::string bytes(static_cast<size_t>(size), '\0');
    f.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (f.bad() || f.gcount() != static_cast<std::streamsize>(bytes.size())) {
      return DataLoss("error reading " + Quote(path) + " (" + std::to_string(f.gcount()) + " of " +
                      std::to_string(bytes.size()) + " bytes)");
    }
    if (f.peek() == std::char_traits<char>::eof()) return bytes;
    f.clear();  // it grew while being read: the rest through the stream
    std::ostringstream rest;
    rest << f.rdbuf();
    return bytes + rest.str();
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return DataLoss("error reading " + Quote(path));
  return ss.str();
}

StatusOr<Tensor> TensorFromProto(const TensorProto& proto, const std::string& base_dir) {
  const std::string name = proto.name().empty() ? "<unnamed>" : proto.name();
  if (proto.has_segment()) return Unimplemented("tensor " + Quote(name) + " is segmented");
  if (!IsValidDataType(proto.data_type())) {
    return Unimplemented("tensor " + Quote(name) + " has unsupported data type " +
                         std::to_string(proto.data_type()));
  }
  DataType dtype = static_cast<DataType>(proto.data_type());
  std::vector<int64_t> dims(proto.dims().begin(), proto.dims().end());
  auto created = Tensor::Create(dtype, dims);
  if (!created.ok()) return created.status().WithContext("tensor " + Quote(name));
  Tensor t = std::move(created).value();
  const size_t nbytes = t.nbytes();

  std::string external;
  const std::string* raw = nullptr;
  if (proto.data_location() == TensorProto::EXTERNAL) {
    if (dtype == DataType::kString) {
      return Unimplemented("tensor " + Quote(name) + ": external string data");
    }
    KILN_ASSIGN_OR_RETURN(external, ReadExternalData(proto, base_dir, nbytes));
    raw = &external;
  } else if (proto.has_raw_data()) {
    raw = &proto.raw_data();
  }
  if (raw != nullptr) {
    if (dtype == DataType::kString) {
      return InvalidArgument("tensor " + Quote(name) + ": string tensors cannot use raw_data");
    }
    if (raw->size() != nbytes) {
      return InvalidArgument("tensor " + Quote(name) + " has " + std::to_string(raw->size()) +
                             " bytes of data, its shape " + t.TypeString() + " needs " +
                             std::to_string(nbytes));
    }
    if (nbytes) std::memcpy(t.raw_mutable_data(), raw->data(), nbytes);  // little-endian host
    if (dtype == DataType::kBool) {  // normalise to 0/1 so bool loads are well defined
      auto* b = static_cast<uint8_t*>(t.raw_mutable_data());
      for (size_t i = 0; i < nbytes; ++i) b[i] = b[i] != 0;
    }
    return t;
  }
  auto i32 = [](int32_t v) { return v; };
  switch (dtype) {
    case DataType::kFloat32:
      KILN_RETURN_IF_ERROR(CopyTyped<decltype(proto.float_data()), float>(
          proto.float_data(), &t, [](float v) { return v; }, name));
      break;
    case DataType::kFloat64:
      KILN_RETURN_IF_ERROR(CopyTyped<decltype(proto.double_data()), double>(
          proto.double_data(), &t, [](double v) { return v; }, name));
      break;
    case DataType::kInt64:
      KILN_RETURN_IF_ERROR(CopyTyped<decltype(proto.int64_data()), int64_t>(
          proto.int64_data(), &t, [](int64_t v) { return v; }, name));
      break;
    case DataType::kUInt64:
      KILN_RETURN_IF_ERROR(CopyTyped<decltype(proto.uint64_data()), uint64_t>(
          proto.uint64_data(), &t, [](uint64_t v) { return v; }, name));
      break;
    case DataType::kUInt32:
      KILN_RETURN_IF_ERROR(CopyTyped<decltype(proto.uint64_data()), uint32_t>(
          proto.uint64_data(), &t, [](uint64_t v) { return static_cast<uint32_t>(v); }, name));
      break;
    case DataType::kInt32:
      KILN_RETURN_IF_ERROR(
          CopyTyped<decltype(proto.int32_data()), int32_t>(proto.int32_data(), &t, i32, name));
      break;
    case DataType::kInt16:
      KILN_RETURN_IF_ERROR(CopyTyped<decltype(proto.int32_data()), int16_t>(
          proto.int32_data(), &t, [](int32_t v) { return static_cast<int16_t>(v); }, name));
      break;
    case DataType::kInt8:
      KILN_RETURN_IF_ERROR(CopyTyped<decltype(proto.int32_data()), int8_t>(
          proto.int32_data(), &t, [](int32_t v) { return static_cast<int8_t>(v); }, name));
      break;
    case DataType::kUInt16:
      KILN_RETURN_IF_ERROR(CopyTyped<decltype(proto.int32_data()), uint16_t>(
          proto.int32_data(), &t, [](int32_t v) { return static_cast<uint16_t>(v); }, name));
      break;
    case DataType::kUInt8:
      KILN_RETURN_IF_ERROR(CopyTyped<decltype(proto.int32_data()), uint8_t>(
          proto.int32_data(), &t, [](int32_t v) { return static_cast<uint8_t>(v); }, name));
      break;
    case DataType::kBool:
      KILN_RETURN_IF_ERROR(CopyTyped<decltype(proto.int32_data()), bool>(
          proto.int32_data(), &t, [](int32_t v) { return v != 0; }, name));
      break;
    case DataType::kFloat16:
      KILN_RETURN_IF_ERROR(CopyTyped<decltype(proto.int32_data()), Float16>(
          proto.int32_data(), &t,
          [](int32_t v) { return Float16::FromBits(static_cast<uint16_t>(v)); }, name));
      break;
    case DataType::kBFloat16:
      KILN_RETURN_IF_ERROR(CopyTyped<decltype(proto.int32_data()), BFloat16>(
          proto.int32_data(), &t,
          [](int32_t v) { return BFloat16::FromBits(static_cast<uint16_t>(v)); }, name));
      break;
    case DataType::kString:
      KILN_RETURN_IF_ERROR(CopyTyped<decltype(proto.string_data()), std::string>(
          proto.string_data(), &t, [](const std::string& v) { return v; }, name));
      break;
    default:
      return Unimplemented("tensor " + Quote(name) + " has unsupported data type");
  }
  return t;
}

StatusOr<Tensor> ReadTensorProtoFile(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  TensorProto proto;
  if (!ParseProtoWithLimits(bytes, &proto)) {
    return InvalidArgument(path + ": not a valid serialized ONNX TensorProto");
  }
  auto t = TensorFromProto(proto, fs::path(path).parent_path().string());
  if (!t.ok()) return t.status().WithContext(path);
  return t;
}

StatusOr<Graph> ImportOnnxModel(const onnxpb::ModelProto& model, const std::string& what,
                                const std::string& base_dir) {
  if (!model.has_graph()) return InvalidArgument(what + ": the model has no graph");
  std::map<std::string, int64_t> opsets;
  for (const auto& op : model.opset_import()) {
    std::string domain = op.domain() == "ai.onnx" ? "" : op.domain();
    opsets[domain] = op.version();
  }
  if (model.opset_import_size() == 0) opsets[""] = 1;  // ONNX: no import means opset 1
  auto it = opsets.find("");
  bool legacy = false;
  if (it != opsets.end() && it->second < kMinOnnxOpset && IsLegacyCompatible(model.graph())) {
    // Every op is defined as in opset 7; read the model as opset 7.
    KILN_LOG(INFO) << what << ": ONNX opset " << it->second << " read as opset " << kMinOnnxOpset
                   << " (its ops did not change)";
    it->second = kMinOnnxOpset;
    legacy = true;
  }
  if (it != opsets.end() && (it->second < kMinOnnxOpset || it->second > kMaxOnnxOpset)) {
    return Unimplemented(what + ": ONNX opset " + std::to_string(it->second) +
                         " is not supported (kiln reads opsets " + std::to_string(kMinOnnxOpset) +
                         " to " + std::to_string(kMaxOnnxOpset) + ")");
  }
  KILN_ASSIGN_OR_RETURN(Graph graph, GraphFromProto(model.graph(), what, base_dir, opsets, false));
  if (legacy) {
    for (Node& node : graph.nodes) node.attrs.erase("consumed_inputs");  // opset < 6 only
  }
  int other_functions = 0;
  for (const auto& f : model.functions()) {
    if (f.domain() != kOnnxFunctionDomain) {
      ++other_functions;
      continue;
    }
    auto fn = FunctionFromProto(f, what + ": function " + Quote(f.name()), base_dir, opsets);
    if (!fn.ok()) return fn.status();
    if (!graph.functions.emplace(f.name(), std::make_shared<const Graph>(std::move(fn).value()))
             .second) {
      return InvalidArgument(what + ": function " + Quote(f.name()) + " is defined twice");
    }
  }
  if (other_functions > 0) {
    KILN_LOG(INFO) << what << ": " << other_functions
                   << " model-local functions are not inlined yet";
  }
  graph.metadata["onnx.ir_version"] = std::to_string(model.ir_version());
  if (model.has_producer_name()) graph.metadata["onnx.producer_name"] = model.producer_name();
  if (model.has_producer_version()) {
    graph.metadata["onnx.producer_version"] = model.producer_version();
  }
  for (const auto& kv : model.metadata_props()) {
    graph.metadata["onnx.metadata_props." + kv.key()] = kv.value();
  }
  graph.source_path = what;
  return graph;
}

StatusOr<Graph> ImportOnnxBytes(std::string_view bytes, const std::string& what,
                                const std::string& base_dir) {
  onnxpb::ModelProto model;
  if (bytes.empty()) return InvalidArgument(what + ": the file is empty");
  if (!ParseProtoWithLimits(bytes, &model)) {
    return InvalidArgument(what + ": not a valid ONNX model (protobuf parsing failed; the file "
                           "may be truncated or not ONNX)");
  }
  return ImportOnnxModel(model, what, base_dir);
}

StatusOr<Graph> ImportOnnxFile(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  std::string dir = fs::path(path).parent_path().string();
  return ImportOnnxBytes(bytes, path, dir.empty() ? "." : dir);
}

}  // namespace kiln
