#include "io/tf/saved_model.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/text_format.h>

#include <filesystem>
#include <fstream>

#include "io/onnx/onnx_import.h"  // ParseProtoWithLimits
#include "io/tf/freeze.h"
#include "io/tf/graphdef_import.h"
#include "io/tf/saved_model_writer.h"
#include "io/tf/tensor_bundle.h"
#include "io/tf/tf_tensor.h"
#include "tensorflow.pb.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::string JoinTags(const std::set<std::string>& tags) {
  std::string s;
  for (const auto& t : tags) s += (s.empty() ? "" : ",") + t;
  return s;
}

std::string NodeOf(const std::string& tensor) {
  const size_t c = tensor.rfind(':');
  return c == std::string::npos ? tensor : tensor.substr(0, c);
}

}  // namespace

bool IsSavedModelDir(const std::string& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && fs::is_regular_file(fs::path(dir) / "saved_model.pb", ec);
}

StatusOr<Graph> LoadSavedModel(const std::string& dir, const SavedModelOptions& options) {
  const std::string pb_path = (fs::path(dir) / "saved_model.pb").string();
  std::ifstream f(pb_path, std::ios::binary);
  if (!f) return NotFound("not a SavedModel directory: cannot open " + pb_path);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  tfpb::SavedModel sm;
  if (bytes.empty() || !ParseProtoWithLimits(bytes, &sm)) {
    return InvalidArgument(pb_path + ": not a valid SavedModel protobuf (truncated?)");
  }
  const tfpb::MetaGraphDef* meta = nullptr;
  std::string available;
  for (const auto& m : sm.meta_graphs()) {
    std::set<std::string> tags(m.meta_info_def().tags().begin(), m.meta_info_def().tags().end());
    if (tags == options.tags) meta = &m;
    available += std::string(available.empty() ? "" : ", ") + "{" + JoinTags(tags) + "}";
  }
  if (!meta) {
    return NotFound(pb_path + ": no MetaGraph with tags {" + JoinTags(options.tags) +
                    "}; available tag sets: " + (available.empty() ? "none" : available));
  }
  auto sig_it = meta->signature_def().find(options.signature_key);
  if (sig_it == meta->signature_def().end()) {
    std::string keys;
    for (const auto& [k, v] : meta->signature_def()) {
      if (k != "__saved_model_init_op") keys += (keys.empty() ? "" : ", ") + k;
    }
    return NotFound(pb_path + ": no signature '" + options.signature_key +
                    "'; available signatures: " + (keys.empty() ? "none" : keys));
  }
  const tfpb::SignatureDef& sig = sig_it->second;
  // std::map gives the sorted key order used for graph inputs/outputs.
  std::map<std::string, const tfpb::TensorInfo*> ins, outs;
  for (const auto& [k, v] : sig.inputs()) ins[k] = &v;
  for (const auto& [k, v] : sig.outputs()) outs[k] = &v;
  const std::string sig_what = pb_path + ": signature '" + options.signature_key + "'";
  for (const auto* group : {&ins, &outs}) {
    for (const auto& [k, v] : *group) {
      if (v->encoding_case() != tfpb::TensorInfo::kName) {
        return Unimplemented(sig_what + " tensor '" + k +
                             "' is sparse or composite; only dense tensors are supported");
      }
    }
  }
  std::vector<std::string> outputs, keep;
  for (const auto& [k, v] : outs) outputs.push_back(v->name());
  for (const auto& [k, v] : ins) keep.push_back(NodeOf(v->name()));
  for (const auto& [k, v] : outs) {
    bool found = false;
    for (const auto& n : meta->graph_def().node()) found |= n.name() == NodeOf(v->name());
    if (!found) {
      return NotFound(sig_what + " output '" + k + "' names tensor '" + v->name() +
                      "', which the graph does not contain");
    }
  }
  const std::string prefix = (fs::path(dir) / "variables" / "variables").string();
  std::optional<TensorBundleReader> bundle;
  std::error_code ec;
  if (fs::exists(prefix + ".index", ec)) {
    auto b = TensorBundleReader::Open(prefix);
    if (!b.ok()) return b.status();
    bundle = std::move(*b);
  }
  // A SavedModel kiln wrote: engine plans come from assets/ (saved_model_writer.h).
  tfpb::GraphDef graph_def = meta->graph_def();
  KILN_RETURN_IF_ERROR(AttachEngineAssets(dir, *meta, &graph_def));
  auto frozen = FreezeGraphDef(graph_def, bundle ? &*bundle : nullptr, outputs, keep);
  if (!frozen.ok()) return frozen.status().WithContext(sig_what);
  std::map<std::string, std::string> declared_shapes;
  if (options.relax_input_shapes) {
    for (auto& n : *frozen->mutable_node()) {
      if (n.op() != "Placeholder") continue;
      for (const auto& [k, v] : ins) {
        if (NodeOf(v->name()) != n.name()) continue;
        declared_shapes[k] = v->tensor_shape().ShortDebugString();
        n.mutable_attr()->erase("shape");
        n.mutable_attr()->erase("_output_shapes");
      }
    }
  }
  TfImportOptions opts;
  opts.source = pb_path;
  auto imported = ImportGraphDef(*frozen, opts);
  if (!imported.ok()) return imported.status().WithContext(sig_what);
  Graph g = std::move(imported).value();
  g.inputs.clear();
  g.outputs.clear();
  for (const auto& [k, v] : ins) {
    g.inputs.push_back(CanonicalTensorName(v->name()));
    KILN_RETURN_IF_ERROR(CheckGraphHasValue(g, g.inputs.back(), sig_what + " input '" + k + "'"));
    g.metadata["signature.input." + k] = g.inputs.back();
  }
  for (const auto& [k, v] : outs) {
    g.outputs.push_back(CanonicalTensorName(v->name()));
    KILN_RETURN_IF_ERROR(CheckGraphHasValue(g, g.outputs.back(), sig_what + " output '" + k + "'"));
    g.metadata["signature.output." + k] = g.outputs.back();
  }
  for (const auto& [k, s] : declared_shapes) g.metadata["signature.input_shape." + k] = s;
  g.metadata["signature.key"] = options.signature_key;
  g.metadata["saved_model.tags"] = JoinTags(options.tags);
  {  // kept for the SavedModel writer (saved_model_writer.h)
    std::string bytes;
    {
      google::protobuf::io::StringOutputStream stream(&bytes);
      google::protobuf::io::CodedOutputStream coded(&stream);
      coded.SetSerializationDeterministic(true);
      sig.SerializeToCodedStream(&coded);
    }
    g.metadata["tf.signature_def"] = std::move(bytes);
  }
  if (meta->has_meta_info_def()) {
    std::string info;
    {
      google::protobuf::io::StringOutputStream stream(&info);
      google::protobuf::io::CodedOutputStream coded(&stream);
      coded.SetSerializationDeterministic(true);
      meta->meta_info_def().SerializeToCodedStream(&coded);
    }
    g.metadata["tf.meta_info_def"] = std::move(info);
  }
  return g;
}

void RestoreDeclaredInputShapes(Graph& graph, const std::set<std::string>& except) {
  std::set<std::string> skip;
  for (const auto& e : except) skip.insert(graph.ResolveName(e));
  const std::string prefix = "signature.input_shape.";
  for (const auto& [k, text] : graph.metadata) {
    if (k.rfind(prefix, 0) != 0) continue;
    const std::string tensor = graph.ResolveName(k.substr(prefix.size()));
    if (skip.count(tensor) || !graph.IsGraphInput(tensor)) continue;
    tfpb::TensorShapeProto proto;
    if (!google::protobuf::TextFormat::ParseFromString(text, &proto)) continue;
    graph.value_info[tensor].shape = ShapeFromTf(proto);
  }
}

std::string ResolveSignatureName(const Graph& graph, const std::string& name) {
  return graph.ResolveName(name);
}

}  // namespace kiln
