#include "io/tf/engine_op_graphdef.h"

#include <cstdlib>
#include <set>

#include "convert/engine_op_def.h"
#include "core/strings.h"
#include "io/onnx/onnx_export.h"
#include "io/onnx/onnx_import.h"
#include "io/tf/tf_tensor.h"

namespace kiln {
namespace {

// The EngineOp's IR shape text "[-1,3,224,224]" ("" = unknown rank) <-> Shape
// (core/strings.h's format, plus "" for a shape of unknown rank).
StatusOr<Shape> ParseShapeOrUnknown(const std::string& text) {
  if (text.empty()) return Shape();
  return ParseShapeText(text);
}

std::string ShapeText(const Shape& shape) {
  return shape.rank_known() ? FormatShapeText(shape) : "";
}

// Attributes with a fixed mapping above; any other IR attribute (e.g. cached_engines) travels
// under its own name with its natural TF type, except the Session-only ones.
bool IsMappedAttr(const std::string& name) {
  static const std::set<std::string> kMapped = {
      "input_shapes", "output_shapes", "output_types", "static_engine", "use_calibration",
      "allow_build_at_runtime", "segment_func", "serialized_segment", "serialized_engine",
      "engine_asset", "calibration_data", "precision_mode", "backend", "max_cached_engines_count",
      "workspace_size_bytes", "max_batch_size", "InT", "OutT"};
  return kMapped.count(name) > 0;
}
bool IsSessionOnlyAttr(const std::string& name) {
  return name == "engine_cache_dir" || name == "record_shapes";
}

const tfpb::AttrValue* Find(const tfpb::NodeDef& def, const char* name) {
  auto it = def.attr().find(name);
  return it == def.attr().end() ? nullptr : &it->second;
}

}  // namespace

bool IsEngineOpNode(const Node& node) {
  return node.domain == "kiln" && node.op_type == "EngineOp";
}

StatusOr<tfpb::NodeDef> EngineOpToNodeDef(const Node& node, const Graph& graph,
                                          const std::vector<std::string>& inputs,
                                          const std::vector<DataType>& in_types,
                                          const std::string& engine_asset) {
  const std::string what = "cannot export " + node.Describe();
  auto str = [&node](const char* name) { return EngineOpStrAttr(node, name); };
  auto num = [&node](const char* name, int64_t def) { return EngineOpIntAttr(node, name, def); };
  const std::string key = str("segment_func");
  auto fn = graph.functions.find(key);
  if (fn == graph.functions.end() || fn->second == nullptr) {
    return InvalidArgument(what + ": its segment_func '" + key +
                           "' is not in the graph's function library");
  }
  tfpb::NodeDef def;
  def.set_name(node.name);
  def.set_op(kTfEngineOpType);
  for (const auto& in : inputs) def.add_input(in);
  auto& attr = *def.mutable_attr();
  auto* in_t = attr["InT"].mutable_list();
  for (DataType t : in_types) {
    if (t == DataType::kUndefined) return InvalidArgument(what + ": an input has no known dtype");
    in_t->add_type(DataTypeToTf(t));
  }
  auto* out_t = attr["OutT"].mutable_list();
  const Attr* types = node.FindAttr("output_types");
  if (types == nullptr || types->ints.size() != node.outputs.size()) {
    return InvalidArgument(what + ": output_types does not list every output");
  }
  for (int64_t t : types->ints) {
    if (!IsValidDataType(static_cast<int32_t>(t)) || t == 0) {
      return InvalidArgument(what + ": output_types holds an invalid dtype " + std::to_string(t));
    }
    out_t->add_type(DataTypeToTf(static_cast<DataType>(t)));
  }
  for (const char* name : {"input_shapes", "output_shapes"}) {
    auto* list = attr[name].mutable_list();
    const Attr* a = node.FindAttr(name);
    if (a == nullptr) continue;
    for (const auto& text : a->strings) {
      KILN_ASSIGN_OR_RETURN(Shape shape, ParseShapeOrUnknown(text));
      ShapeToTf(shape, list->add_shape());
    }
  }
  attr["static_engine"].set_b(num("static_engine", 1) != 0);
  attr["use_calibration"].set_b(num("use_calibration", 0) != 0);
  attr["allow_build_at_runtime"].set_b(num("allow_build_at_runtime", 0) != 0);
  attr["segment_func"].set_s(key);
  KILN_ASSIGN_OR_RETURN(std::string segment, ExportOnnx(*fn->second));
  attr["serialized_segment"].set_s(std::move(segment));
  attr["serialized_engine"].set_s(engine_asset.empty() ? str("serialized_engine") : "");
  if (!engine_asset.empty()) attr[kEngineAssetAttr].set_s(engine_asset);
  attr["calibration_data"].set_s(str("calibration_data"));
  attr["precision_mode"].set_s(str("precision_mode").empty() ? "FP32" : str("precision_mode"));
  attr["backend"].set_s(str("backend").empty() ? "cpu" : str("backend"));
  attr["max_cached_engines_count"].set_i(num("max_cached_engines_count", 1));
  attr["workspace_size_bytes"].set_i(num("workspace_size_bytes", int64_t{1} << 30));
  attr["max_batch_size"].set_i(num("max_batch_size", 1));
  for (const auto& [name, a] : node.attrs) {
    if (IsMappedAttr(name) || IsSessionOnlyAttr(name)) continue;
    tfpb::AttrValue& v = attr[name];
    switch (a.type) {
      case AttrType::kInt: v.set_i(a.i); break;
      case AttrType::kFloat: v.set_f(a.f); break;
      case AttrType::kString: v.set_s(a.s); break;
      case AttrType::kInts:
        for (int64_t x : a.ints) v.mutable_list()->add_i(x);
        break;
      case AttrType::kFloats:
        for (float x : a.floats) v.mutable_list()->add_f(x);
        break;
      case AttrType::kStrings:
        for (const auto& x : a.strings) v.mutable_list()->add_s(x);
        break;
      default:
        return Unimplemented(what + ": attribute '" + name + "' of type " +
                             AttrTypeName(a.type) + " has no TensorFlow form");
    }
  }
  return def;
}

StatusOr<ImportedEngineOp> EngineOpFromNodeDef(const tfpb::NodeDef& def,
                                               const std::vector<std::string>& inputs,
                                               const std::string& where) {
  const std::string what = where + ": node '" + def.name() + "' (" + def.op() + ")";
  auto need = [&](const char* name, tfpb::AttrValue::ValueCase kind)
      -> StatusOr<const tfpb::AttrValue*> {
    const tfpb::AttrValue* a = Find(def, name);
    if (a == nullptr || a->value_case() != kind) {
      return InvalidArgument(what + ": attribute '" + std::string(name) +
                             "' is missing or has the wrong type");
    }
    return a;
  };
  ImportedEngineOp out;
  Node& n = out.node;
  n.name = def.name();
  n.op_type = "EngineOp";
  n.domain = "kiln";
  n.inputs = inputs;
  KILN_ASSIGN_OR_RETURN(const tfpb::AttrValue* in_t, need("InT", tfpb::AttrValue::kList));
  KILN_ASSIGN_OR_RETURN(const tfpb::AttrValue* out_t, need("OutT", tfpb::AttrValue::kList));
  if (in_t->list().type_size() != static_cast<int>(inputs.size())) {
    return InvalidArgument(what + ": InT lists " + std::to_string(in_t->list().type_size()) +
                           " types for " + std::to_string(inputs.size()) + " data inputs");
  }
  if (out_t->list().type_size() == 0) return InvalidArgument(what + ": OutT is empty");
  std::vector<int64_t> out_types;
  for (int k = 0; k < out_t->list().type_size(); ++k) {
    auto t = DataTypeFromTf(out_t->list().type(k));
    if (!t) {
      return Unimplemented(what + ": output " + std::to_string(k) + " has dtype " +
                           TfDataTypeName(out_t->list().type(k)));
    }
    out.output_types.push_back(*t);
    out_types.push_back(static_cast<int64_t>(*t));
    n.outputs.push_back(def.name() + ":" + std::to_string(k));
  }
  for (const char* name : {"input_shapes", "output_shapes"}) {
    KILN_ASSIGN_OR_RETURN(const tfpb::AttrValue* a, need(name, tfpb::AttrValue::kList));
    const size_t want = name[0] == 'i' ? inputs.size() : n.outputs.size();
    if (a->list().shape_size() != static_cast<int>(want)) {
      return InvalidArgument(what + ": " + name + " lists " +
                             std::to_string(a->list().shape_size()) + " shapes, expected " +
                             std::to_string(want));
    }
    std::vector<std::string> texts;
    for (const auto& s : a->list().shape()) texts.push_back(ShapeText(ShapeFromTf(s)));
    n.attrs[name] = Attr::Strings(std::move(texts));
  }
  n.attrs["output_types"] = Attr::Ints(std::move(out_types));
  auto flag = [&](const char* name, bool dflt) {
    const tfpb::AttrValue* a = Find(def, name);
    return Attr::Int(a != nullptr && a->value_case() == tfpb::AttrValue::kB ? a->b() : dflt);
  };
  n.attrs["static_engine"] = flag("static_engine", true);
  n.attrs["use_calibration"] = flag("use_calibration", false);
  n.attrs["allow_build_at_runtime"] = flag("allow_build_at_runtime", false);
  auto text = [&](const char* name, const std::string& dflt) {
    const tfpb::AttrValue* a = Find(def, name);
    return Attr::String(a != nullptr && a->value_case() == tfpb::AttrValue::kS ? a->s() : dflt);
  };
  n.attrs["serialized_engine"] = text("serialized_engine", "");
  n.attrs["calibration_data"] = text("calibration_data", "");
  n.attrs["precision_mode"] = text("precision_mode", "FP32");
  n.attrs["backend"] = text("backend", "cpu");
  auto integer = [&](const char* name, int64_t dflt) {
    const tfpb::AttrValue* a = Find(def, name);
    return Attr::Int(a != nullptr && a->value_case() == tfpb::AttrValue::kI ? a->i() : dflt);
  };
  n.attrs["max_cached_engines_count"] = integer("max_cached_engines_count", 1);
  n.attrs["workspace_size_bytes"] = integer("workspace_size_bytes", int64_t{1} << 30);
  n.attrs["max_batch_size"] = integer("max_batch_size", 1);
  for (const auto& [name, v] : def.attr()) {
    if (IsMappedAttr(name) || IsSessionOnlyAttr(name)) continue;
    switch (v.value_case()) {
      case tfpb::AttrValue::kI: n.attrs[name] = Attr::Int(v.i()); break;
      case tfpb::AttrValue::kF: n.attrs[name] = Attr::Float(v.f()); break;
      case tfpb::AttrValue::kS: n.attrs[name] = Attr::String(v.s()); break;
      case tfpb::AttrValue::kB: n.attrs[name] = Attr::Int(v.b() ? 1 : 0); break;
      case tfpb::AttrValue::kList:
        if (v.list().i_size() > 0) {
          n.attrs[name] = Attr::Ints({v.list().i().begin(), v.list().i().end()});
        } else if (v.list().f_size() > 0) {
          n.attrs[name] = Attr::Floats({v.list().f().begin(), v.list().f().end()});
        } else {
          n.attrs[name] = Attr::Strings({v.list().s().begin(), v.list().s().end()});
        }
        break;
      default:
        return InvalidArgument(what + ": attribute '" + name + "' has an unsupported type");
    }
  }
  KILN_ASSIGN_OR_RETURN(const tfpb::AttrValue* key, need("segment_func", tfpb::AttrValue::kS));
  if (key->s().empty()) return InvalidArgument(what + ": segment_func is empty");
  out.segment_key = key->s();
  n.attrs["segment_func"] = Attr::String(key->s());
  KILN_ASSIGN_OR_RETURN(const tfpb::AttrValue* seg,
                        need("serialized_segment", tfpb::AttrValue::kS));
  auto segment = ImportOnnxBytes(seg->s(), what + " serialized_segment", "");
  if (!segment.ok()) return segment.status();
  if (segment->inputs.size() != inputs.size() || segment->outputs.size() != n.outputs.size()) {
    return InvalidArgument(what + ": its native segment has " +
                           std::to_string(segment->inputs.size()) + " inputs and " +
                           std::to_string(segment->outputs.size()) + " outputs, the node " +
                           std::to_string(inputs.size()) + " and " +
                           std::to_string(n.outputs.size()));
  }
  out.segment = std::make_shared<const Graph>(std::move(segment).value());
  return out;
}

}  // namespace kiln
