#include "io/tf/tfjs_import.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <vector>

#include "io/onnx/onnx_import.h"  // ReadFileToString
#include "io/tf/graphdef_import.h"
#include "tensorflow.pb.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;  // keeps the signature's key order, as TF.js does

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// One shard of a weight group, as loaded.
struct Shard {
  std::string path;  // as the manifest writes it
  size_t begin = 0;  // offset of its first byte in the group's concatenated data
  size_t size = 0;
};

// Where the weights of one group come from: its shards, concatenated in order.
struct GroupData {
  std::string bytes;
  std::vector<Shard> shards;
};

// A decoded weight: TensorFlow dtype, shape and little-endian tensor_content (or strings).
struct Weight {
  tfpb::DataType dtype = tfpb::DT_INVALID;
  std::vector<int64_t> shape;
  std::string content;
  std::vector<std::string> strings;  // DT_STRING only
};

const Json* Member(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

// Resolves a shard path inside `dir`; refuses absolute paths and any that leave it.
StatusOr<fs::path> ResolveShard(const fs::path& dir, const std::string& rel,
                                const std::string& where) {
  fs::path p(rel);
  if (rel.empty() || p.is_absolute() || p.has_root_name() || p.has_root_directory()) {
    return InvalidArgument(where + ": weight file " + Quote(rel) + " must be a relative path");
  }
  std::error_code ec;
  fs::path base = fs::weakly_canonical(dir, ec);
  if (ec) return InvalidArgument(where + ": cannot resolve " + dir.string() + ": " + ec.message());
  fs::path full = fs::weakly_canonical(base / p, ec);
  if (ec) return InvalidArgument(where + ": cannot resolve " + Quote(rel) + ": " + ec.message());
  auto [b, f] = std::mismatch(base.begin(), base.end(), full.begin(), full.end());
  if (b != base.end() || full == base) {
    return InvalidArgument(where + ": weight file " + Quote(rel) +
                           " escapes the model's directory");
  }
  return full;
}

StatusOr<GroupData> LoadGroup(const Json& paths, const fs::path& dir, const std::string& where) {
  if (!paths.is_array()) return InvalidArgument(where + ": 'paths' must be an array of strings");
  GroupData g;
  for (const Json& p : paths) {
    if (!p.is_string()) return InvalidArgument(where + ": 'paths' must be an array of strings");
    const std::string rel = p.get<std::string>();
    KILN_ASSIGN_OR_RETURN(fs::path full, ResolveShard(dir, rel, where));
    std::error_code ec;
    if (!fs::is_regular_file(full, ec)) {
      return NotFound(where + ": weight file " + Quote(rel) + " (" + full.string() +
                      ") does not exist or is not a regular file");
    }
    KILN_ASSIGN_OR_RETURN(std::string data, ReadFileToString(full.string()));
    if (data.size() > g.bytes.max_size() - g.bytes.size()) {
      return ResourceExhausted(where + ": weight files are too large");
    }
    g.shards.push_back({rel, g.bytes.size(), data.size()});
    g.bytes += data;
  }
  return g;
}

std::string DescribeShards(const GroupData& g) {
  std::string s;
  for (const Shard& sh : g.shards) {
    if (!s.empty()) s += ", ";
    s += Quote(sh.path) + " (" + std::to_string(sh.size) + " bytes)";
  }
  return s.empty() ? "no files" : s;
}

// The shard holding byte `offset` of the group (the last one when past the end).
const Shard* ShardAt(const GroupData& g, size_t offset) {
  for (const Shard& sh : g.shards) {
    if (offset < sh.begin + sh.size) return &sh;
  }
  return g.shards.empty() ? nullptr : &g.shards.back();
}

uint32_t LoadLE32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | uint32_t{u[1]} << 8 | uint32_t{u[2]} << 16 | uint32_t{u[3]} << 24;
}

void AppendLE32(std::string* out, uint32_t v) {
  const char b[4] = {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 24)};
  out->append(b, 4);
}

void AppendFloat(std::string* out, float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  AppendLE32(out, bits);
}

// The weight's TensorFlow dtype and element size for a manifest dtype name.
StatusOr<std::pair<tfpb::DataType, size_t>> ManifestDtype(const std::string& name,
                                                          const std::string& where) {
  if (name == "float32") return std::make_pair(tfpb::DT_FLOAT, size_t{4});
  if (name == "int32") return std::make_pair(tfpb::DT_INT32, size_t{4});
  if (name == "bool") return std::make_pair(tfpb::DT_BOOL, size_t{1});
  if (name == "string") return std::make_pair(tfpb::DT_STRING, size_t{0});
  return Unimplemented(where + ": weight dtype " + Quote(name) +
                       " is not supported (float32, int32, bool, string)");
}

// Decodes one weight at `*offset` in the group's data and advances the offset, following
// TF.js's io.decodeWeights: uint8/uint16 quantized values are value * scale + min (rounded
// for int32), float16 ones widen to float32.
StatusOr<Weight> DecodeWeight(const Json& spec, const GroupData& g, size_t* offset,
                              const std::string& where) {
  Weight w;
  const Json* shape = Member(spec, "shape");
  const Json* dtype = Member(spec, "dtype");
  if (shape == nullptr || !shape->is_array()) {
    return InvalidArgument(where + ": 'shape' must be an array of integers");
  }
  for (const Json& d : *shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) {
      return InvalidArgument(where + ": 'shape' must be an array of non-negative integers");
    }
    w.shape.push_back(d.get<int64_t>());
  }
  if (dtype == nullptr || !dtype->is_string()) {
    return InvalidArgument(where + ": 'dtype' must be a string");
  }
  auto count_or = CheckedNumElements(w.shape);
  if (!count_or.ok()) return InvalidArgument(where + ": " + count_or.status().message());
  const uint64_t count = static_cast<uint64_t>(*count_or);
  KILN_ASSIGN_OR_RETURN(auto dt, ManifestDtype(dtype->get<std::string>(), where));
  w.dtype = dt.first;

  // Bytes the weight occupies in the shards, and how they are stored.
  enum class Storage { kRaw, kUint8, kUint16, kFloat16, kStrings } storage = Storage::kRaw;
  size_t elem_size = dt.second;
  double scale = 1, min = 0;
  if (const Json* q = Member(spec, "quantization")) {
    const Json* qd = Member(*q, "dtype");
    if (qd == nullptr || !qd->is_string()) {
      return InvalidArgument(where + ": 'quantization.dtype' must be a string");
    }
    const std::string qdt = qd->get<std::string>();
    if (qdt == "uint8" || qdt == "uint16") {
      const Json* qs = Member(*q, "scale");
      const Json* qm = Member(*q, "min");
      if (qs == nullptr || !qs->is_number() || qm == nullptr || !qm->is_number()) {
        return InvalidArgument(where + ": " + qdt +
                               " quantization needs numeric 'scale' and 'min'");
      }
      scale = qs->get<double>();
      min = qm->get<double>();
      if (w.dtype != tfpb::DT_FLOAT && w.dtype != tfpb::DT_INT32) {
        return InvalidArgument(where + ": " + qdt + " quantization of a " +
                               dtype->get<std::string>() + " weight");
      }
      storage = qdt == "uint8" ? Storage::kUint8 : Storage::kUint16;
      elem_size = qdt == "uint8" ? 1 : 2;
    } else if (qdt == "float16") {
      if (w.dtype != tfpb::DT_FLOAT) {
        return InvalidArgument(where + ": float16 quantization of a " + dtype->get<std::string>() +
                               " weight (only float32 allowed)");
      }
      storage = Storage::kFloat16;
      elem_size = 2;
    } else {
      return Unimplemented(where + ": quantization dtype " + Quote(qdt) +
                           " is not supported (uint8, uint16, float16)");
    }
  } else if (w.dtype == tfpb::DT_STRING) {
    storage = Storage::kStrings;
  }

  const size_t available = g.bytes.size() - *offset;
  auto short_shard = [&](uint64_t needed) {
    const Shard* sh = ShardAt(g, *offset);
    return DataLoss(where + " needs " + std::to_string(needed) + " bytes at offset " +
                    std::to_string(*offset) + " of its weight group, but shard " +
                    (sh ? Quote(sh->path) : std::string("<none>")) +
                    " is shorter than the manifest says (the group's files: " + DescribeShards(g) +
                    ", " + std::to_string(g.bytes.size()) + " bytes)");
  };
  const char* src = g.bytes.data() + *offset;
  if (storage == Storage::kStrings) {  // per element: uint32 length, then the bytes
    size_t pos = 0;
    for (uint64_t i = 0; i < count; ++i) {
      if (available - pos < 4) return short_shard(pos + 4);
      const uint32_t len = LoadLE32(src + pos);
      pos += 4;
      if (available - pos < len) return short_shard(uint64_t{pos} + len);
      w.strings.emplace_back(src + pos, len);
      pos += len;
    }
    *offset += pos;
    return w;
  }
  if (count > std::numeric_limits<uint64_t>::max() / elem_size) {
    return InvalidArgument(where + ": size overflows");
  }
  const uint64_t nbytes = count * elem_size;
  if (nbytes > available) return short_shard(nbytes);
  const auto* u = reinterpret_cast<const unsigned char*>(src);
  switch (storage) {
    case Storage::kRaw:
      w.content.assign(src, nbytes);
      break;
    case Storage::kFloat16:
      w.content.reserve(count * 4);
      for (uint64_t i = 0; i < count; ++i) {
        const auto bits = static_cast<uint16_t>(u[2 * i] | u[2 * i + 1] << 8);
        AppendFloat(&w.content, static_cast<float>(Float16::FromBits(bits)));
      }
      break;
    case Storage::kUint8:
    case Storage::kUint16:
      w.content.reserve(count * 4);
      for (uint64_t i = 0; i < count; ++i) {
        const double q = storage == Storage::kUint8 ? u[i] : (u[2 * i] | u[2 * i + 1] << 8);
        const double v = q * scale + min;
        if (w.dtype == tfpb::DT_FLOAT) {
          AppendFloat(&w.content, static_cast<float>(v));
        } else {
          const double r = std::floor(v + 0.5);  // JavaScript's Math.round
          if (!(r >= std::numeric_limits<int32_t>::min() &&
                r <= std::numeric_limits<int32_t>::max())) {
            return InvalidArgument(where + ": dequantized value " + std::to_string(v) +
                                   " does not fit int32");
          }
          AppendLE32(&w.content, static_cast<uint32_t>(static_cast<int32_t>(r)));
        }
      }
      break;
    case Storage::kStrings:
      break;
  }
  *offset += nbytes;
  return w;
}

// int32 little-endian content -> int64 (the converter stores int64 constants as int32).
std::string WidenInt32(const std::string& content) {
  std::string out;
  out.reserve(content.size() * 2);
  for (size_t i = 0; i + 4 <= content.size(); i += 4) {
    const uint32_t v = LoadLE32(content.data() + i);
    const uint32_t hi = (v & 0x80000000u) ? 0xFFFFFFFFu : 0;
    AppendLE32(&out, v);
    AppendLE32(&out, hi);
  }
  return out;
}

// Writes `w` into the Const NodeDef's `value` (and `dtype`) attribute.
Status FillConst(tfpb::NodeDef* node, Weight w, const std::string& where) {
  auto& attrs = *node->mutable_attr();
  tfpb::DataType node_dtype = tfpb::DT_INVALID;
  if (auto it = attrs.find("dtype"); it != attrs.end()) node_dtype = it->second.type();
  if (node_dtype == tfpb::DT_INVALID) {
    node_dtype = w.dtype;
  } else if (node_dtype == tfpb::DT_INT64 && w.dtype == tfpb::DT_INT32) {
    w.content = WidenInt32(w.content);
    w.dtype = tfpb::DT_INT64;
  } else if (node_dtype != w.dtype) {
    return InvalidArgument(where + ": the weight is " + tfpb::DataType_Name(w.dtype) +
                           " but Const node " + Quote(node->name()) + " declares " +
                           tfpb::DataType_Name(node_dtype));
  }
  tfpb::TensorProto* t = attrs["value"].mutable_tensor();
  if (t->has_tensor_shape() && !t->tensor_shape().unknown_rank()) {
    std::vector<int64_t> declared;
    for (const auto& d : t->tensor_shape().dim()) declared.push_back(d.size());
    if (declared != w.shape) {
      return InvalidArgument(where + ": the manifest's shape " + DimsToString(w.shape) +
                             " differs from Const node " + Quote(node->name()) + "'s " +
                             DimsToString(declared));
    }
  }
  t->Clear();
  t->set_dtype(w.dtype);
  for (int64_t d : w.shape) t->mutable_tensor_shape()->add_dim()->set_size(d);
  if (w.dtype == tfpb::DT_STRING) {
    for (auto& s : w.strings) t->add_string_val(std::move(s));
  } else {
    t->set_tensor_content(std::move(w.content));
  }
  attrs["dtype"].set_type(w.dtype);
  return Status::OK();
}

// True when the Const's value tensor holds no values (TF.js leaves them to the weights).
bool HasNoValues(const tfpb::NodeDef& node) {
  auto it = node.attr().find("value");
  if (it == node.attr().end() || !it->second.has_tensor()) return true;
  tfpb::TensorProto t = it->second.tensor();
  int64_t count = 1;
  bool known = !t.tensor_shape().unknown_rank();
  for (const auto& d : t.tensor_shape().dim()) {
    if (d.size() < 0)
      known = false;
    else if (count <= std::numeric_limits<int64_t>::max() / std::max<int64_t>(d.size(), 1))
      count *= d.size();
  }
  if (known && count == 0) return false;
  t.clear_dtype();
  t.clear_tensor_shape();
  t.clear_version_number();
  return t.ByteSizeLong() == 0;
}

// "name" -> "name:0"; "name:K" unchanged.
std::string TensorName(const std::string& s) {
  const size_t colon = s.rfind(':');
  if (colon != std::string::npos && colon + 1 < s.size() &&
      s.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
    return s;
  }
  return s + ":0";
}

// Signature entries (key -> TensorInfo{name}) as tensor names, in the JSON's order.
StatusOr<std::vector<std::pair<std::string, std::string>>> SignatureEntries(
    const Json& sig, const char* which, const std::string& what) {
  std::vector<std::pair<std::string, std::string>> out;
  const Json* m = Member(sig, which);
  if (m == nullptr) return out;
  if (!m->is_object()) {
    return InvalidArgument(what + ": signature '" + which + "' must be an object");
  }
  for (auto it = m->begin(); it != m->end(); ++it) {
    const Json* name = Member(it.value(), "name");
    if (name != nullptr && !name->is_string()) {
      return InvalidArgument(what + ": signature " + which + " " + Quote(it.key()) +
                             " has a non-string 'name'");
    }
    out.emplace_back(it.key(), TensorName(name ? name->get<std::string>() : it.key()));
  }
  return out;
}

// Applies the signature: its outputs become the graph outputs; its inputs come first.
Status ApplySignature(const Json& sig, Graph* graph, const std::string& what) {
  KILN_ASSIGN_OR_RETURN(auto inputs, SignatureEntries(sig, "inputs", what));
  KILN_ASSIGN_OR_RETURN(auto outputs, SignatureEntries(sig, "outputs", what));
  std::set<std::string> produced(graph->inputs.begin(), graph->inputs.end());
  for (const Node& n : graph->nodes) produced.insert(n.outputs.begin(), n.outputs.end());
  if (!outputs.empty()) {
    std::vector<std::string> names;
    for (const auto& [key, name] : outputs) {
      if (!produced.count(name) && !graph->IsInitializer(name)) {
        return NotFound(what + ": signature output " + Quote(key) + " names tensor " + Quote(name) +
                        ", which the graph does not produce");
      }
      names.push_back(name);
    }
    graph->outputs = std::move(names);
  }
  std::vector<std::string> ordered;
  for (const auto& [key, name] : inputs) {
    if (!graph->IsGraphInput(name)) {
      return NotFound(what + ": signature input " + Quote(key) + " names tensor " + Quote(name) +
                      ", which is not a Placeholder of the graph");
    }
    if (std::find(ordered.begin(), ordered.end(), name) == ordered.end()) ordered.push_back(name);
  }
  for (const std::string& in : graph->inputs) {
    if (std::find(ordered.begin(), ordered.end(), in) == ordered.end()) ordered.push_back(in);
  }
  graph->inputs = std::move(ordered);
  return Status::OK();
}

// Deepest nesting of JSON arrays/objects in `text` (strings skipped), found without recursion:
// nlohmann's dump() and protobuf's JSON parser recurse per level.
size_t JsonNestingDepth(const std::string& text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// A GraphDef in JSON nests about 8 levels (node, attr, value, tensor, shape, dim).
constexpr size_t kMaxJsonDepth = 64;

StatusOr<Graph> ImportTfjsModelImpl(const std::string& path) {
  const std::string what = Quote(path);
  KILN_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  if (JsonNestingDepth(text) > kMaxJsonDepth) {
    return InvalidArgument(what + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                           " levels");
  }
  Json model;
  try {
    model = Json::parse(text);
  } catch (const Json::exception& e) {
    return InvalidArgument(what + " is not valid JSON: " + e.what());
  }
  text.clear();
  if (!model.is_object()) return InvalidArgument(what + ": model.json must hold a JSON object");

  const Json* topology = Member(model, "modelTopology");
  const Json* format = Member(model, "format");
  if (format != nullptr && (!format->is_string() || format->get<std::string>() != "graph-model")) {
    return InvalidArgument(what + ": format " +
                           (format->is_string() ? Quote(format->get<std::string>()) : "?") +
                           " is not a TF.js graph model (expected 'graph-model'; kiln does not "
                           "read TF.js layers models)");
  }
  if (topology == nullptr) return InvalidArgument(what + ": no 'modelTopology' (the GraphDef)");
  if (!topology->is_object()) return InvalidArgument(what + ": 'modelTopology' is not an object");
  if (format == nullptr && Member(*topology, "node") == nullptr) {
    return InvalidArgument(what +
                           ": no 'format' and 'modelTopology' has no nodes; "
                           "not a TF.js graph model");
  }
  if (const Json* init = Member(model, "modelInitializer");
      init != nullptr && init->is_object() && Member(*init, "node") != nullptr) {
    return Unimplemented(what +
                         ": 'modelInitializer' (table initialisation graph) is not "
                         "supported");
  }

  tfpb::GraphDef graph_def;
  {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;
    auto st = google::protobuf::util::JsonStringToMessage(topology->dump(), &graph_def, options);
    if (!st.ok()) {
      return InvalidArgument(what +
                             ": 'modelTopology' is not a GraphDef: " + std::string(st.message()));
    }
  }

  // TF.js has no float64: its converter stores DT_DOUBLE constants as float32 weights and its
  // kernels compute float64 ops in float32. Run them the same way.
  for (tfpb::NodeDef& n : *graph_def.mutable_node()) {
    for (auto& [k, v] : *n.mutable_attr()) {
      if (v.value_case() == tfpb::AttrValue::kType && v.type() == tfpb::DT_DOUBLE) {
        v.set_type(tfpb::DT_FLOAT);
      } else if (v.value_case() == tfpb::AttrValue::kList) {
        for (int i = 0; i < v.list().type_size(); ++i) {
          if (v.list().type(i) == tfpb::DT_DOUBLE) v.mutable_list()->set_type(i, tfpb::DT_FLOAT);
        }
      }
    }
  }

  std::map<std::string, tfpb::NodeDef*> by_name;
  for (tfpb::NodeDef& n : *graph_def.mutable_node()) by_name.emplace(n.name(), &n);

  std::set<std::string> filled;
  const fs::path dir =
      fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path();
  if (const Json* manifest = Member(model, "weightsManifest")) {
    if (!manifest->is_array()) return InvalidArgument(what + ": 'weightsManifest' is not an array");
    for (size_t gi = 0; gi < manifest->size(); ++gi) {
      const Json& group = (*manifest)[gi];
      const std::string gwhere = what + ": weightsManifest[" + std::to_string(gi) + "]";
      const Json* paths = Member(group, "paths");
      const Json* weights = Member(group, "weights");
      if (paths == nullptr || weights == nullptr || !weights->is_array()) {
        return InvalidArgument(gwhere + " needs 'paths' and a 'weights' array");
      }
      KILN_ASSIGN_OR_RETURN(GroupData data, LoadGroup(*paths, dir, gwhere));
      size_t offset = 0;
      for (const Json& spec : *weights) {
        const Json* name = Member(spec, "name");
        if (name == nullptr || !name->is_string()) {
          return InvalidArgument(gwhere + ": a weight has no 'name'");
        }
        const std::string wname = name->get<std::string>();
        const std::string wwhere = what + ": weight " + Quote(wname);
        KILN_ASSIGN_OR_RETURN(Weight w, DecodeWeight(spec, data, &offset, wwhere));
        if (!filled.insert(wname).second) {
          return InvalidArgument(wwhere + " appears twice in the weights manifest");
        }
        auto it = by_name.find(wname);
        if (it == by_name.end()) continue;  // TF.js ignores weights no node uses
        if (it->second->op() != "Const") {
          return InvalidArgument(wwhere + " names node " + Quote(wname) + ", which is a " +
                                 it->second->op() + ", not a Const");
        }
        KILN_RETURN_IF_ERROR(FillConst(it->second, std::move(w), wwhere));
      }
      if (offset != data.bytes.size()) {
        return DataLoss(gwhere + ": the weight files (" + DescribeShards(data) + ") hold " +
                        std::to_string(data.bytes.size()) + " bytes, the manifest describes " +
                        std::to_string(offset));
      }
    }
  }
  for (const tfpb::NodeDef& n : graph_def.node()) {
    if (n.op() == "Const" && !filled.count(n.name()) && HasNoValues(n)) {
      return InvalidArgument(what + ": Const node " + Quote(n.name()) +
                             " has no value and no weight in 'weightsManifest' names it");
    }
  }

  TfImportOptions options;
  options.source = path;
  options.format = "tfjs";
  auto imported = ImportGraphDef(graph_def, options);
  if (!imported.ok()) return imported.status();
  Graph graph = std::move(imported).value();
  graph.source_path = path;

  const Json* sig = nullptr;
  if (const Json* udm = Member(model, "userDefinedMetadata")) sig = Member(*udm, "signature");
  if (sig == nullptr) sig = Member(model, "signature");  // TF.js prefers the metadata's
  if (sig != nullptr) {
    if (!sig->is_object()) return InvalidArgument(what + ": 'signature' is not an object");
    KILN_RETURN_IF_ERROR(ApplySignature(*sig, &graph, what));
    graph.metadata["tfjs.signature"] = sig->dump();
  }
  for (const char* key : {"generatedBy", "convertedBy"}) {
    if (const Json* v = Member(model, key); v != nullptr && v->is_string()) {
      graph.metadata[std::string("tfjs.") + key] = v->get<std::string>();
    }
  }
  return graph;
}

}  // namespace

StatusOr<Graph> ImportTfjsModel(const std::string& model_json_path) {
  try {
    return ImportTfjsModelImpl(model_json_path);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted(Quote(model_json_path) + ": out of memory while importing");
  } catch (const std::exception& e) {
    return InvalidArgument(Quote(model_json_path) + ": " + e.what());
  }
}

}  // namespace kiln
