#include "io/tf/graphdef_export.h"

#include <google/protobuf/text_format.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "io/onnx/onnx_import.h"
#include "io/tf/tf_tensor.h"
#include "tensorflow.pb.h"

namespace kiln {
namespace {

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// "node:K" -> TF input syntax ("node" for K = 0); empty when `value` is not of that form.
std::string TfInputName(const std::string& value) {
  size_t colon = value.rfind(':');
  if (colon == std::string::npos || colon + 1 == value.size()) return "";
  for (size_t i = colon + 1; i < value.size(); ++i) {
    if (value[i] < '0' || value[i] > '9') return "";
  }
  std::string k = value.substr(colon + 1);
  return k == "0" ? value.substr(0, colon) : value;
}

std::string NodeOf(const std::string& tf_input) {
  std::string s = !tf_input.empty() && tf_input[0] == '^' ? tf_input.substr(1) : tf_input;
  size_t colon = s.rfind(':');
  return colon == std::string::npos ? s : s.substr(0, colon);
}

bool IsTfProvenance(const std::shared_ptr<const Provenance>& p) {
  return p && (p->format == "tf" || p->format == "tfjs");
}

class Exporter {
 public:
  explicit Exporter(const Graph& g) : g_(g) {
    for (const auto& [value, prov] : g.initializer_provenance) {
      if (IsTfProvenance(prov)) const_by_name_[prov->original_name] = value;
    }
    for (const auto& in : g.inputs) {
      auto it = g.metadata.find("tf.placeholder:" + in);
      if (it != g.metadata.end()) placeholder_by_name_[NodeOf(TfInputName(in))] = in;
    }
  }

  StatusOr<tfpb::GraphDef> Run() {
    auto meta = [&](const char* key, google::protobuf::Message* msg) -> Status {
      auto it = g_.metadata.find(key);
      if (it != g_.metadata.end() && !msg->ParseFromString(it->second)) {
        return InvalidArgument(std::string("graph metadata ") + key + " is corrupt");
      }
      return Status::OK();
    };
    KILN_RETURN_IF_ERROR(meta("tf.versions", gd_.mutable_versions()));
    KILN_RETURN_IF_ERROR(meta("tf.library", gd_.mutable_library()));
    KILN_RETURN_IF_ERROR(meta("tf.debug_info", gd_.mutable_debug_info()));
    if (!g_.metadata.count("tf.versions")) gd_.clear_versions();
    if (!g_.metadata.count("tf.library")) gd_.clear_library();
    if (!g_.metadata.count("tf.debug_info")) gd_.clear_debug_info();

    for (const auto& in : g_.inputs) KILN_RETURN_IF_ERROR(WritePlaceholder(in));
    KILN_ASSIGN_OR_RETURN(std::vector<int> order, g_.TopologicalOrder());
    for (int i : order) KILN_RETURN_IF_ERROR(WriteNode(g_.nodes[i]));
    // Consts nothing reads any more are kept (the user's graph had them).
    for (const auto& [value, prov] : g_.initializer_provenance) {
      if (IsTfProvenance(prov)) KILN_RETURN_IF_ERROR(WriteByName(prov->original_name));
    }
    // Drop control inputs to nodes that are gone (e.g. NoOps, which map to nothing).
    for (auto& def : *gd_.mutable_node()) {
      auto* in = def.mutable_input();
      for (int k = in->size() - 1; k >= 0; --k) {
        if (!in->Get(k).empty() && in->Get(k)[0] == '^' && !written_.count(NodeOf(in->Get(k)))) {
          in->DeleteSubrange(k, 1);
        }
      }
    }
    return std::move(gd_);
  }

 private:
  // Appends a recorded NodeDef, after the Consts and Placeholders it reads.
  Status AddSerialized(const std::string& serialized, const std::string& name) {
    tfpb::NodeDef def;
    if (!def.ParseFromString(serialized)) {
      return InvalidArgument("the recorded NodeDef of " + Quote(name) + " is corrupt");
    }
    written_.insert(def.name());
    for (const auto& d : def.input()) {
      if (!d.empty() && d[0] != '^') KILN_RETURN_IF_ERROR(WriteByName(NodeOf(d)));
    }
    *gd_.add_node() = std::move(def);
    return Status::OK();
  }

  // Writes the Const or Placeholder NodeDef called `name`, if it is one and not yet written.
  Status WriteByName(const std::string& name) {
    if (written_.count(name)) return Status::OK();
    auto c = const_by_name_.find(name);
    if (c != const_by_name_.end()) {
      return AddSerialized(g_.initializer_provenance.at(c->second)->serialized, name);
    }
    auto p = placeholder_by_name_.find(name);
    if (p != placeholder_by_name_.end()) return WritePlaceholder(p->second);
    return Status::OK();
  }

  Status WritePlaceholder(const std::string& value) {
    std::string name = NodeOf(TfInputName(value));
    if (name.empty()) return InvalidArgument("cannot export graph input " + Quote(value) +
                                             ": not a TF tensor name (node:K)");
    if (written_.count(name)) return Status::OK();
    auto it = g_.metadata.find("tf.placeholder:" + value);
    if (it != g_.metadata.end()) return AddSerialized(it->second, name);
    tfpb::NodeDef* def = gd_.add_node();
    def->set_name(name);
    def->set_op("Placeholder");
    const ValueInfo* vi = g_.FindValueInfo(value);
    if (!vi || vi->dtype == DataType::kUndefined) {
      return InvalidArgument("cannot export graph input " + Quote(value) + ": unknown dtype");
    }
    (*def->mutable_attr())["dtype"].set_type(DataTypeToTf(vi->dtype));
    ShapeToTf(vi->shape, (*def->mutable_attr())["shape"].mutable_shape());
    written_.insert(name);
    return Status::OK();
  }

  Status WriteConst(const std::string& value) {
    auto prov = g_.initializer_provenance.find(value);
    if (prov != g_.initializer_provenance.end() && IsTfProvenance(prov->second)) {
      return WriteByName(prov->second->original_name);
    }
    std::string name = NodeOf(TfInputName(value));
    if (name.empty() || TfInputName(value) != name) {
      return InvalidArgument("cannot export constant " + Quote(value) + ": not named node:0");
    }
    if (written_.count(name)) return Status::OK();
    tfpb::NodeDef* def = gd_.add_node();
    def->set_name(name);
    def->set_op("Const");
    const Tensor& t = g_.initializers.at(value);
    (*def->mutable_attr())["dtype"].set_type(DataTypeToTf(t.dtype()));
    KILN_RETURN_IF_ERROR(TensorToTf(t, (*def->mutable_attr())["value"].mutable_tensor()));
    written_.insert(name);
    return Status::OK();
  }

  Status WriteNode(const Node& node) {
    if (IsTfProvenance(node.provenance)) {
      if (written_.count(node.provenance->original_name)) return Status::OK();
      return AddSerialized(node.provenance->serialized, node.provenance->original_name);
    }
    return Synthesize(node);
  }

  // A NodeDef for an IR node made after import (elementwise ops only for now).
  Status Synthesize(const Node& node) {
    static const std::map<std::string, std::string> kOps = {
        {"Add", "AddV2"},   {"Sub", "Sub"},       {"Mul", "Mul"},         {"Div", "RealDiv"},
        {"Max", "Maximum"}, {"Min", "Minimum"},   {"Pow", "Pow"},         {"Relu", "Relu"},
        {"Sigmoid", "Sigmoid"}, {"Tanh", "Tanh"}, {"Identity", "Identity"}, {"Neg", "Neg"},
        {"Abs", "Abs"},     {"Exp", "Exp"},       {"Log", "Log"},         {"Sqrt", "Sqrt"},
        {"Floor", "Floor"}, {"Ceil", "Ceil"},     {"Erf", "Erf"},         {"Reciprocal", "Reciprocal"},
        {"MatMul", "BatchMatMulV2"}};
    auto op = kOps.find(node.op_type);
    if (!node.domain.empty() || op == kOps.end() || node.outputs.size() != 1 ||
        node.outputs[0] != node.name + ":0") {
      return Unimplemented("cannot export " + node.Describe() +
                           ": it has no TensorFlow NodeDef (no provenance) and no TF equivalent");
    }
    tfpb::NodeDef def;
    def.set_name(node.name);
    def.set_op(op->second);
    DataType t = DataType::kUndefined;
    for (const auto& in : node.inputs) {
      std::string tf = TfInputName(in);
      if (tf.empty()) return Unimplemented("cannot export " + node.Describe() + ": input " +
                                           Quote(in) + " is not a TF tensor name");
      if (g_.IsInitializer(in)) KILN_RETURN_IF_ERROR(WriteConst(in));
      def.add_input(tf);
      if (t == DataType::kUndefined) {
        if (g_.IsInitializer(in)) t = g_.initializers.at(in).dtype();
        else if (const ValueInfo* vi = g_.FindValueInfo(in)) t = vi->dtype;
      }
    }
    if (t == DataType::kUndefined) {
      return Unimplemented("cannot export " + node.Describe() + ": unknown input dtype");
    }
    (*def.mutable_attr())["T"].set_type(DataTypeToTf(t));
    *gd_.add_node() = std::move(def);
    written_.insert(node.name);
    return Status::OK();
  }

  const Graph& g_;
  tfpb::GraphDef gd_;
  std::set<std::string> written_;
  std::map<std::string, std::string> const_by_name_;        // NodeDef name -> initializer
  std::map<std::string, std::string> placeholder_by_name_;  // NodeDef name -> graph input
};

}  // namespace

StatusOr<std::string> ExportGraphDef(const Graph& graph, bool text) {
  Exporter exporter(graph);
  KILN_ASSIGN_OR_RETURN(tfpb::GraphDef gd, exporter.Run());
  std::string out;
  if (text) {
    if (!google::protobuf::TextFormat::PrintToString(gd, &out)) {
      return Internal("GraphDef text serialization failed");
    }
  } else if (!gd.SerializeToString(&out)) {
    return ResourceExhausted("GraphDef serialization failed (over 2 GiB?)");
  }
  return out;
}

Status WriteGraphDefFile(const Graph& graph, const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  const bool text = ext == ".pbtxt" || ext == ".txt" || ext == ".prototxt";
  KILN_ASSIGN_OR_RETURN(std::string bytes, ExportGraphDef(graph, text));
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return NotFound("cannot create " + Quote(tmp));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      return DataLoss("error writing " + Quote(tmp));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    return InvalidArgument("cannot rename " + Quote(tmp) + " to " + Quote(path) + ": " +
                           ec.message());
  }
  return Status::OK();
}

}  // namespace kiln
