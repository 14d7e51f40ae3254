#include "io/tf/graphdef_export.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/text_format.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <unordered_map>

#include "core/file_util.h"
#include "io/onnx/onnx_import.h"
#include "io/tf/engine_op_graphdef.h"
#include "io/tf/tf_tensor.h"
#include "core/logging.h"
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

// "node" / "node:K" (TF input syntax, no '^') -> "node:K".
std::string CanonicalValue(const std::string& tf_input) {
  size_t colon = tf_input.rfind(':');
  if (colon != std::string::npos && colon + 1 < tf_input.size() &&
      tf_input.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
    return tf_input;
  }
  return tf_input + ":0";
}

std::string EngineAssetName(const std::string& node) {
  std::string s;
  for (char c : node) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    s += ok ? c : '_';
  }
  return "kiln-engine." + s + ".plan";
}

class Exporter {
 public:
  Exporter(const Graph& g, const GraphDefExportOptions& options,
           std::map<std::string, std::string>* engine_assets)
      : g_(g), options_(options), engine_assets_(engine_assets), producer_(g.ProducerIndex()) {
    for (const auto& n : g.nodes) {
      const bool engine = IsEngineOpNode(n);
      for (size_t k = 0; k < n.outputs.size(); ++k) {
        if (n.outputs[k].empty()) continue;
        if (engine) {
          engine_out_[n.outputs[k]] = k == 0 ? n.name : n.name + ":" + std::to_string(k);
        } else {
          produced_.insert(n.outputs[k]);
        }
      }
    }
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
    KILN_RETURN_IF_ERROR(AliasEngineOutputs());
    // Consts nothing reads any more are kept (the user's graph had them), except in a
    // converted graph, where they moved into engines' native segments.
    for (const auto& [value, prov] : g_.initializer_provenance) {
      if (engine_out_.empty() && IsTfProvenance(prov)) {
        KILN_RETURN_IF_ERROR(WriteByName(prov->original_name));
      }
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
    {  // no dangling reads
      for (const auto& def : gd_.node()) {
        for (const auto& in : def.input()) {
          if (!in.empty() && in[0] != '^' && !written_.count(NodeOf(in))) {
            return Unimplemented("cannot export node " + Quote(def.name()) + " (" + def.op() +
                                 "): it reads " + Quote(in) +
                                 ", which is not a node of the exported graph");
          }
        }
      }
    }
    return std::move(gd_);
  }

 private:
  // Appends a recorded NodeDef, after the Consts and Placeholders it reads. `ir` is the IR
  // node it was recorded for (null for Consts and Placeholders).
  Status AddSerialized(const std::string& serialized, const std::string& name,
                       const Node* ir = nullptr) {
    tfpb::NodeDef def;
    if (!def.ParseFromString(serialized)) {
      return InvalidArgument("the recorded NodeDef of " + Quote(name) + " is corrupt");
    }
    written_.insert(def.name());
    KILN_RETURN_IF_ERROR(RewriteInputs(ir, &def));
    for (const auto& d : def.input()) {
      if (!d.empty() && d[0] != '^') KILN_RETURN_IF_ERROR(WriteByName(NodeOf(d)));
    }
    *gd_.add_node() = std::move(def);
    return Status::OK();
  }

  bool Available(const std::string& value) const {
    return produced_.count(value) || g_.IsGraphInput(value) || g_.IsInitializer(value);
  }

  // Converted graphs: data inputs naming an EngineOp output read the EngineOp; inputs that no
  // longer exist read what the IR node reads now (header comment).
  Status RewriteInputs(const Node* ir_node, tfpb::NodeDef* def) {
    static const Node kNone;
    const Node& ir = ir_node != nullptr ? *ir_node : kNone;
    std::vector<int> data;
    for (int k = 0; k < def->input_size(); ++k) {
      if (!def->input(k).empty() && def->input(k)[0] != '^') data.push_back(k);
    }
    const bool aligned =
        ir_node != nullptr && ir.name == def->name() && data.size() == ir.inputs.size();
    for (size_t j = 0; j < data.size(); ++j) {
      std::string& in = *def->mutable_input(data[j]);
      const std::string original = CanonicalValue(in);
      std::string value = original;
      if (!engine_out_.count(value) && !Available(value) && def->op() == "IdentityN") {
        // One IR Identity per output: output j reads what that Identity reads now.
        auto p = producer_.find(def->name() + ":" + std::to_string(j));
        if (p != producer_.end() && g_.nodes[p->second].inputs.size() == 1) {
          value = g_.nodes[p->second].inputs[0];
        }
      }
      if (!engine_out_.count(value) && !Available(value) && aligned) {
        const std::string& now = ir.inputs[j];
        // Not a constant the handler made for this node (e.g. the OIHW copy of a filter): that
        // has another meaning than the NodeDef's input.
        const bool handler_const = g_.IsInitializer(now) &&
                                   !IsTfProvenance(g_.initializer_provenance.count(now)
                                                       ? g_.initializer_provenance.at(now)
                                                       : nullptr) &&
                                   now.rfind(def->name() + "/", 0) == 0;
        if (!now.empty() && !handler_const) value = now;
      }
      if (auto e = engine_out_.find(value); e != engine_out_.end()) {
        in = e->second;
        continue;
      }
      if (value != original) {
        const std::string tf = TfInputName(value);
        if (tf.empty()) continue;  // reported as dangling at the end
        in = tf;
      }
      if (g_.IsInitializer(value)) KILN_RETURN_IF_ERROR(WriteConst(value));
    }
    return Status::OK();
  }

  Status WriteEngineOp(const Node& node) {
    std::vector<std::string> inputs;
    std::vector<DataType> types;
    for (const auto& in : node.inputs) {
      if (auto e = engine_out_.find(in); e != engine_out_.end()) {
        inputs.push_back(e->second);
      } else {
        const std::string tf = TfInputName(in);
        if (tf.empty()) {
          return Unimplemented("cannot export " + node.Describe() + ": input " + Quote(in) +
                               " is not a TF tensor name");
        }
        if (g_.IsInitializer(in)) {
          KILN_RETURN_IF_ERROR(WriteConst(in));
        } else {
          KILN_RETURN_IF_ERROR(WriteByName(NodeOf(tf)));
        }
        inputs.push_back(tf);
      }
      DataType t = DataType::kUndefined;
      if (g_.IsInitializer(in)) {
        t = g_.initializers.at(in).dtype();
      } else if (const ValueInfo* vi = g_.FindValueInfo(in)) {
        t = vi->dtype;
      }
      types.push_back(t);
    }
    std::string asset;
    if (options_.engines_as_assets) {
      const Attr* plan = node.FindAttr("serialized_engine");
      if (plan != nullptr && !plan->s.empty()) {
        asset = EngineAssetName(node.name);
        if (engine_assets_ != nullptr) (*engine_assets_)[asset] = plan->s;
      }
    }
    KILN_ASSIGN_OR_RETURN(tfpb::NodeDef def, EngineOpToNodeDef(node, g_, inputs, types, asset));
    written_.insert(def.name());
    *gd_.add_node() = std::move(def);
    return Status::OK();
  }

  // EngineOp outputs that are graph outputs keep their names through Identity / IdentityN.
  Status AliasEngineOutputs() {
    std::map<std::string, std::map<int, std::string>> by_node;  // node -> index -> engine ref
    for (const auto& out : g_.outputs) {
      auto e = engine_out_.find(out);
      if (e == engine_out_.end()) continue;
      const std::string tf = TfInputName(out);
      if (tf.empty()) {
        return Unimplemented("cannot export graph output " + Quote(out) +
                             ": not a TF tensor name (node:K)");
      }
      const size_t colon = out.rfind(':');
      by_node[out.substr(0, colon)][std::stoi(out.substr(colon + 1))] = e->second;
    }
    for (const auto& [name, refs] : by_node) {
      if (written_.count(name)) {
        return Unimplemented("cannot export graph output of node " + Quote(name) +
                             ": the name is taken by another node of the converted graph");
      }
      tfpb::NodeDef def;
      def.set_name(name);
      const int n = refs.rbegin()->first + 1;
      if (static_cast<int>(refs.size()) != n) {
        return Unimplemented("cannot export the outputs of node " + Quote(name) +
                             ": only some of its outputs come from an engine");
      }
      auto dtype = [&, &name = name](int k) {  // clang < 16 cannot capture a binding by [&]
        const ValueInfo* vi = g_.FindValueInfo(name + ":" + std::to_string(k));
        return DataTypeToTf(vi != nullptr ? vi->dtype : DataType::kUndefined);
      };
      if (n == 1) {
        def.set_op("Identity");
        def.add_input(refs.at(0));
        (*def.mutable_attr())["T"].set_type(dtype(0));
      } else {
        def.set_op("IdentityN");
        auto* types = (*def.mutable_attr())["T"].mutable_list();
        for (int k = 0; k < n; ++k) {
          def.add_input(refs.at(k));
          types->add_type(dtype(k));
        }
      }
      written_.insert(name);
      *gd_.add_node() = std::move(def);
    }
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
    // A node the clean-up passes removed that a written NodeDef still names (convert.cc).
    auto r = g_.metadata.find("tf.removed_node:" + name);
    if (r != g_.metadata.end() && !produced_.count(name + ":0")) {
      return AddSerialized(r->second, name);
    }
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
    if (IsEngineOpNode(node)) return WriteEngineOp(node);
    if (IsTfProvenance(node.provenance)) {
      if (written_.count(node.provenance->original_name)) return Status::OK();
      return AddSerialized(node.provenance->serialized, node.provenance->original_name, &node);
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
  GraphDefExportOptions options_;
  std::map<std::string, std::string>* engine_assets_;
  std::map<std::string, std::string> engine_out_;  // EngineOp output value -> "engine:k"
  std::set<std::string> produced_;                 // outputs of the other IR nodes
  std::unordered_map<std::string, int> producer_;  // value -> IR node index
  tfpb::GraphDef gd_;
  std::set<std::string> written_;
  std::map<std::string, std::string> const_by_name_;        // NodeDef name -> initializer
  std::map<std::string, std::string> placeholder_by_name_;  // NodeDef name -> graph input
};

// True when `value` is a TF tensor name in `graph`: a graph input or constant, an EngineOp
// output, or output "X:k" of an IR node recorded from NodeDef X (not a temporary a handler made
// while splitting one NodeDef into several IR nodes).
bool IsTfNameable(const Graph& graph, const std::unordered_map<std::string, int>& producer,
                  const std::string& value) {
  if (graph.IsGraphInput(value) || graph.IsInitializer(value)) return true;
  auto it = producer.find(value);
  if (it == producer.end()) return graph.initializer_provenance.count(value) > 0;
  const Node& p = graph.nodes[it->second];
  if (IsEngineOpNode(p)) return true;
  return IsTfProvenance(p.provenance) && p.provenance->original_name == NodeOf(value);
}

// An EngineOp whose boundary cuts through the IR nodes of one TF NodeDef (its inputs or outputs
// are values TF cannot name) cannot be a KilnEngineOp NodeDef: it is written as its native
// segment's NodeDefs instead (the engine is dropped from the file, with a warning). Returns
// false when every EngineOp can be written.
bool InlineUnnameableEngines(const Graph& graph, Graph* out) {
  bool changed = false;
  std::vector<std::string> names;
  std::string why;
  Graph g = graph;
  for (int round = 0; round < 16; ++round) {
    const auto producer = g.ProducerIndex();
    std::vector<Node> nodes;
    bool inlined = false;
    for (const auto& n : g.nodes) {  // copied, not moved: `producer` indexes g.nodes
      const Attr* key = IsEngineOpNode(n) ? n.FindAttr("segment_func") : nullptr;
      auto fn = key != nullptr ? g.functions.find(key->s) : g.functions.end();
      if (fn == g.functions.end() || fn->second == nullptr) {
        nodes.push_back(n);
        continue;
      }
      const Graph& seg = *fn->second;
      bool ok = true;
      for (const auto& in : n.inputs) {
        if (ok && !in.empty() && !IsTfNameable(g, producer, in)) {
          ok = false;
          why = in;
        }
      }
      const auto seg_producer = seg.ProducerIndex();
      for (const auto& out_value : seg.outputs) {
        auto p = seg_producer.find(out_value);
        if (ok && !(p != seg_producer.end() && IsTfProvenance(seg.nodes[p->second].provenance) &&
                    seg.nodes[p->second].provenance->original_name == NodeOf(out_value))) {
          ok = false;
          why = out_value;
        }
      }
      if (ok) {
        nodes.push_back(n);
        continue;
      }
      names.push_back(n.name);
      for (const auto& sn : seg.nodes) nodes.push_back(sn);
      for (const auto& [name, t] : seg.initializers) g.initializers.emplace(name, t);
      for (const auto& [name, vi] : seg.value_info) g.value_info.emplace(name, vi);
      inlined = changed = true;
    }
    g.nodes = std::move(nodes);
    if (!inlined) break;
  }
  if (changed) {
    KILN_LOG(WARNING) << "GraphDef export: " << names.size() << " EngineOp(s) ('" << names[0]
                      << "'" << (names.size() > 1 ? ", ..." : "")
                      << ") written as their native segments: their boundaries split a "
                         "TensorFlow node into IR nodes TF cannot name (e.g. value '"
                      << why << "'); the file has no engines for them";
    *out = std::move(g);
  }
  return changed;
}

}  // namespace

// EngineOps inside If / Loop bodies (convert/convert_bodies.h), nested ones included.
int BodyEngineCount(const Graph& g, bool top) {
  int n = 0;
  for (const auto& node : g.nodes) {
    n += !top && IsEngineOpNode(node) ? 1 : 0;
    for (const auto& [name, attr] : node.attrs) {
      if (attr.type == AttrType::kGraph && attr.g != nullptr) n += BodyEngineCount(*attr.g, false);
    }
  }
  return n;
}

StatusOr<tfpb::GraphDef> ExportGraphDefProto(const Graph& graph,
                                             const GraphDefExportOptions& options,
                                             std::map<std::string, std::string>* engine_assets) {
  // Engines inside control-flow bodies are not written: the If / While NodeDefs come back from
  // their provenance and their bodies from the original function library ("tf.library"), so
  // those bodies run natively after a GraphDef / SavedModel round trip.
  if (const int body_engines = BodyEngineCount(graph, true); body_engines > 0) {
    KILN_LOG(WARNING) << "GraphDef export: " << body_engines
                      << " engine(s) inside If / While bodies are not written (TensorFlow "
                         "functions keep their native nodes); those bodies run natively when "
                         "the file is loaded";
  }
  bool has_engines = false;
  for (const auto& n : graph.nodes) has_engines |= IsEngineOpNode(n);
  Graph expanded;
  const bool inlined = has_engines && InlineUnnameableEngines(graph, &expanded);
  Exporter exporter(inlined ? expanded : graph, options, engine_assets);
  return exporter.Run();
}

StatusOr<std::string> ExportGraphDef(const Graph& graph, bool text) {
  KILN_ASSIGN_OR_RETURN(tfpb::GraphDef gd, ExportGraphDefProto(graph, {}, nullptr));
  std::string out;
  if (text) {
    if (!google::protobuf::TextFormat::PrintToString(gd, &out)) {
      return Internal("GraphDef text serialization failed");
    }
  } else {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);  // attr maps in key order: same bytes each time
    if (!gd.SerializeToCodedStream(&coded)) {
      return ResourceExhausted("GraphDef serialization failed (over 2 GiB?)");
    }
  }
  return out;
}

Status WriteGraphDefFile(const Graph& graph, const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  const bool text = ext == ".pbtxt" || ext == ".txt" || ext == ".prototxt";
  KILN_ASSIGN_OR_RETURN(std::string bytes, ExportGraphDef(graph, text));
  return WriteFileAtomically(path, bytes);
}

}  // namespace kiln
