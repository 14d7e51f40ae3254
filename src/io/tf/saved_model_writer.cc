#include "io/tf/saved_model_writer.h"

#include <google/protobuf/text_format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "io/onnx/onnx_export.h"
#include "io/onnx/onnx_import.h"
#include "io/tf/engine_op_graphdef.h"
#include "io/tf/graphdef_export.h"
#include "io/tf/proto_util.h"
#include "io/tf/tf_tensor.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::string NodeOf(const std::string& tensor) {
  const size_t c = tensor.rfind(':');
  return c == std::string::npos ? tensor : tensor.substr(0, c);
}

Status WriteFile(const fs::path& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return NotFound("cannot create " + Quote(path.string()));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) return DataLoss("error writing " + Quote(path.string()));
  return Status::OK();
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// TensorInfo for the signature entry naming `tensor` ("node:K").
Status FillTensorInfo(const Graph& g, const std::string& tensor, const std::string& shape_text,
                      tfpb::TensorInfo* info) {
  info->set_name(tensor);
  const ValueInfo* vi = g.FindValueInfo(tensor);
  DataType dtype = vi != nullptr ? vi->dtype : DataType::kUndefined;
  if (g.IsInitializer(tensor)) dtype = g.initializers.at(tensor).dtype();
  info->set_dtype(DataTypeToTf(dtype));
  if (!shape_text.empty() &&
      google::protobuf::TextFormat::ParseFromString(shape_text, info->mutable_tensor_shape())) {
    return Status::OK();
  }
  info->clear_tensor_shape();
  ShapeToTf(vi != nullptr ? vi->shape : Shape(), info->mutable_tensor_shape());
  return Status::OK();
}

// The signature the graph was loaded with (metadata, saved_model.h), or one made from its
// inputs and outputs keyed by node name.
StatusOr<std::pair<std::string, tfpb::SignatureDef>> MakeSignature(const Graph& g) {
  tfpb::SignatureDef sig;
  sig.set_method_name("tensorflow/serving/predict");
  auto meta = [&g](const std::string& key) {
    auto it = g.metadata.find(key);
    return it == g.metadata.end() ? std::string() : it->second;
  };
  std::string key = meta("signature.key");
  // The SignatureDef the graph was loaded with, as it was (TensorInfo shapes included).
  if (auto it = g.metadata.find("tf.signature_def"); it != g.metadata.end() && !key.empty()) {
    if (!sig.ParseFromString(it->second)) {
      return InvalidArgument("graph metadata tf.signature_def is corrupt");
    }
    return std::make_pair(key, std::move(sig));
  }
  bool any = false;
  for (const auto& [k, v] : g.metadata) {
    for (const std::string kind : {"signature.input.", "signature.output."}) {
      if (k.rfind(kind, 0) != 0) continue;
      any = true;
      const std::string name = k.substr(kind.size());
      const bool input = kind == "signature.input.";
      auto* map = input ? sig.mutable_inputs() : sig.mutable_outputs();
      KILN_RETURN_IF_ERROR(FillTensorInfo(
          g, v, input ? meta("signature.input_shape." + name) : std::string(), &(*map)[name]));
    }
  }
  if (!any) {
    key = key.empty() ? "serving_default" : key;
    for (const bool input : {true, false}) {
      const auto& values = input ? g.inputs : g.outputs;
      auto* map = input ? sig.mutable_inputs() : sig.mutable_outputs();
      for (const auto& v : values) {
        std::string name = NodeOf(v);
        if (map->count(name)) name = v;
        KILN_RETURN_IF_ERROR(FillTensorInfo(g, v, "", &(*map)[name]));
      }
    }
  }
  if (key.empty()) key = "serving_default";
  return std::make_pair(key, std::move(sig));
}

}  // namespace

bool IsTfGraph(const Graph& graph) {
  auto tf = [](const std::shared_ptr<const Provenance>& p) {
    return p && (p->format == "tf" || p->format == "tfjs");
  };
  for (const auto& n : graph.nodes) {
    if (tf(n.provenance)) return true;
  }
  for (const auto& [v, p] : graph.initializer_provenance) {
    if (tf(p)) return true;
  }
  for (const auto& [k, v] : graph.metadata) {
    if (k.rfind("tf.", 0) == 0) return true;
  }
  return false;
}

Status WriteSavedModel(const Graph& graph, const std::string& dir) {
  const std::string what = "SavedModel " + Quote(dir);
  std::map<std::string, std::string> assets;
  GraphDefExportOptions options;
  options.engines_as_assets = true;
  auto gd = ExportGraphDefProto(graph, options, &assets);
  if (!gd.ok()) return gd.status().WithContext(what);

  tfpb::SavedModel sm;
  sm.set_saved_model_schema_version(1);
  tfpb::MetaGraphDef* meta = sm.add_meta_graphs();
  if (auto it = graph.metadata.find("tf.meta_info_def"); it != graph.metadata.end()) {
    if (!meta->mutable_meta_info_def()->ParseFromString(it->second)) {
      return InvalidArgument(what + ": graph metadata tf.meta_info_def is corrupt");
    }
  }
  auto* info = meta->mutable_meta_info_def();
  // The op list of the original graph no longer describes this one.
  info->clear_stripped_op_list();
  info->clear_tags();
  std::string tags = "serve";
  if (auto it = graph.metadata.find("saved_model.tags"); it != graph.metadata.end()) {
    tags = it->second;
  }
  size_t at = 0;
  while (at <= tags.size()) {
    size_t comma = tags.find(',', at);
    if (comma == std::string::npos) comma = tags.size();
    if (comma > at) info->add_tags(tags.substr(at, comma - at));
    at = comma + 1;
  }
  if (info->meta_graph_version().empty()) info->set_meta_graph_version("kiln");

  // One string Const per engine asset, named by asset_file_def (TF1 style).
  std::set<std::string> names;
  for (const auto& n : gd->node()) names.insert(n.name());
  for (const auto& n : gd->node()) {
    auto a = n.attr().find(kEngineAssetAttr);
    if (n.op() != kTfEngineOpType || a == n.attr().end()) continue;
    const std::string file = a->second.s();
    std::string cname = n.name() + "/engine_asset";
    for (int k = 1; names.count(cname); ++k) {
      cname = n.name() + "/engine_asset_" + std::to_string(k);
    }
    names.insert(cname);
    tfpb::AssetFileDef* afd = meta->add_asset_file_def();
    afd->set_filename(file);
    afd->mutable_tensor_info()->set_name(cname + ":0");
    afd->mutable_tensor_info()->set_dtype(tfpb::DT_STRING);
    afd->mutable_tensor_info()->mutable_tensor_shape();
    tfpb::NodeDef c;
    c.set_name(cname);
    c.set_op("Const");
    (*c.mutable_attr())["dtype"].set_type(tfpb::DT_STRING);
    auto* t = (*c.mutable_attr())["value"].mutable_tensor();
    t->set_dtype(tfpb::DT_STRING);
    t->mutable_tensor_shape();
    t->add_string_val(file);
    *meta->mutable_graph_def()->add_node() = std::move(c);
  }
  for (auto& n : *gd->mutable_node()) *meta->mutable_graph_def()->add_node() = std::move(n);
  gd->clear_node();
  if (gd->has_versions()) *meta->mutable_graph_def()->mutable_versions() = gd->versions();
  if (gd->has_library()) *meta->mutable_graph_def()->mutable_library() = gd->library();
  if (gd->has_debug_info()) *meta->mutable_graph_def()->mutable_debug_info() = gd->debug_info();
  names.clear();
  for (const auto& n : meta->graph_def().node()) names.insert(n.name());

  KILN_ASSIGN_OR_RETURN(auto sig, MakeSignature(graph));
  for (const auto* group : {&sig.second.inputs(), &sig.second.outputs()}) {
    for (const auto& [k, v] : *group) {
      if (!names.count(NodeOf(v.name()))) {
        return InvalidArgument(what + ": signature '" + sig.first + "' entry '" + k +
                               "' names tensor " + Quote(v.name()) +
                               ", which the exported graph does not contain");
      }
    }
  }
  (*meta->mutable_signature_def())[sig.first] = std::move(sig.second);

  // Write everything next to the target, then rename.
  std::string trimmed = dir;  // "out/" names the directory "out"
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  const fs::path target = fs::path(trimmed);
  if (target.filename().empty() || target.filename() == "." || target.filename() == "..") {
    return InvalidArgument(what + ": not a directory name a SavedModel can be written to");
  }
  const std::string suffix = std::to_string(static_cast<long long>(::getpid()));
  fs::path tmp = target;
  tmp += ".tmp." + suffix;
  std::error_code ec;
  fs::remove_all(tmp, ec);
  auto fail = [&](Status st) {
    std::error_code ignore;
    fs::remove_all(tmp, ignore);
    return st;
  };
  if (!fs::create_directories(tmp / "assets", ec) || !fs::create_directories(tmp / "variables", ec)) {
    return fail(NotFound(what + ": cannot create " + Quote(tmp.string()) + ": " + ec.message()));
  }
  for (const auto& [file, bytes] : assets) {
    Status st = WriteFile(tmp / "assets" / file, bytes);
    if (!st.ok()) return fail(st);
  }
  Status st = WriteFile(tmp / "saved_model.pb", SerializeDeterministic(sm));
  if (!st.ok()) return fail(st);
  fs::path old;
  if (fs::exists(target, ec)) {
    old = target;
    old += ".old." + suffix;
    fs::remove_all(old, ec);
    fs::rename(target, old, ec);
    if (ec) {
      return fail(FailedPrecondition(what + ": cannot move the existing directory aside: " +
                                     ec.message()));
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignore;
    if (!old.empty()) fs::rename(old, target, ignore);
    return fail(FailedPrecondition(what + ": cannot rename " + Quote(tmp.string()) + ": " +
                                   ec.message()));
  }
  if (!old.empty()) fs::remove_all(old, ec);
  return Status::OK();
}

Status SaveGraphByPath(const Graph& graph, const std::string& path) {
  const std::string ext = Lower(fs::path(path).extension().string());
  if (ext == ".onnx") return WriteOnnxFile(graph, path);
  const bool tf = IsTfGraph(graph);
  if (ext == ".pb" || ext == ".pbtxt") {
    if (!tf) {
      return InvalidArgument("cannot write " + Quote(path) +
                             " as a TensorFlow GraphDef: the model was not imported from "
                             "TensorFlow (save it as .onnx)");
    }
    return WriteGraphDefFile(graph, path);
  }
  if (!tf) return WriteOnnxFile(graph, path);
  return WriteSavedModel(graph, path);
}

Status AttachEngineAssets(const std::string& dir, const tfpb::MetaGraphDef& meta,
                          tfpb::GraphDef* graph_def) {
  std::set<std::string> listed;
  for (const auto& a : meta.asset_file_def()) listed.insert(a.filename());
  for (auto& n : *graph_def->mutable_node()) {
    auto a = n.attr().find(kEngineAssetAttr);
    if (n.op() != kTfEngineOpType || a == n.attr().end()) continue;
    const std::string file = a->second.s();
    const fs::path path = fs::path(dir) / "assets" / file;
    if (file.empty() || file.find('/') != std::string::npos || file == ".." ||
        !listed.count(file)) {
      return InvalidArgument("SavedModel " + Quote(dir) + ": engine node " + Quote(n.name()) +
                             " names asset " + Quote(file) +
                             ", which the MetaGraph's asset_file_def does not list");
    }
    {  // a symbolic link in assets/ must not lead out of the SavedModel directory
      std::error_code ec;
      const fs::path base = fs::weakly_canonical(fs::path(dir), ec);
      const fs::path full = fs::weakly_canonical(path, ec);
      const auto [b, f] = std::mismatch(base.begin(), base.end(), full.begin(), full.end());
      if (ec || b != base.end()) {
        return InvalidArgument("SavedModel " + Quote(dir) + ": engine asset " + Quote(file) +
                               " of node " + Quote(n.name()) +
                               " resolves outside the SavedModel directory");
      }
    }
    auto bytes = ReadFileToString(path.string());
    if (!bytes.ok()) {
      return NotFound("SavedModel " + Quote(dir) + ": the engine asset " +
                      Quote(path.string()) + " of node " + Quote(n.name()) +
                      " is missing or unreadable (" + bytes.status().message() + ")");
    }
    (*n.mutable_attr())["serialized_engine"].set_s(std::move(bytes).value());
  }
  return Status::OK();
}

}  // namespace kiln
