#include "io/tf/freeze.h"

#include <google/protobuf/text_format.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "io/tf/graphdef_export.h"
#include "io/tf/graphdef_import.h"
#include "io/onnx/onnx_import.h"  // ParseProtoWithLimits, kTextProtoRecursionLimit

namespace kiln {
namespace {

namespace fs = std::filesystem;

struct Ref {
  std::string node;
  int index = 0;
};

// Graph-level tensor reference "node" / "node:K" (control inputs are filtered by callers).
Ref ParseRef(const std::string& s) {
  const size_t colon = s.rfind(':');
  // At most 6 digits (as ParseTensorRef in graphdef_import.cc): std::stoi throws past INT_MAX.
  if (colon != std::string::npos && colon + 1 < s.size() && s.size() - colon - 1 <= 6 &&
      s.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
    return {s.substr(0, colon), std::stoi(s.substr(colon + 1))};
  }
  return {s, 0};
}
std::string RefName(const Ref& r) {
  return r.index == 0 ? r.node : r.node + ":" + std::to_string(r.index);
}

bool IsCallOp(const std::string& op) {
  return op == "StatefulPartitionedCall" || op == "PartitionedCall";
}

}  // namespace

// Flat output index of output arg `arg`[idx] for ops with several output args; others have
// one output arg (possibly a list) so the flat index is idx.
int FlatOutputIndex(const std::string& op, const std::string& arg, int idx,
                    const std::map<std::string, const tfpb::FunctionDef*>& funcs) {
  static const std::map<std::string, std::vector<std::string>> kMulti = {
      {"Unique", {"y", "idx"}},
      {"UniqueV2", {"y", "idx"}},
      {"UniqueWithCounts", {"y", "idx", "count"}},
      {"TopKV2", {"values", "indices"}},
      {"Switch", {"output_false", "output_true"}},
      {"Merge", {"output", "value_index"}},
      {"FusedBatchNorm",
       {"y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2"}},
      {"FusedBatchNormV2",
       {"y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2"}},
      {"FusedBatchNormV3",
       {"y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2",
        "reserve_space_3"}},
  };
  std::vector<std::string> args;
  if (auto it = kMulti.find(op); it != kMulti.end()) {
    args = it->second;
  } else if (auto f = funcs.find(op); f != funcs.end()) {
    for (const auto& a : f->second->signature().output_arg()) args.push_back(a.name());
  }
  for (size_t k = 0; k < args.size(); ++k) {
    if (args[k] == arg) return static_cast<int>(k) + idx;
  }
  return idx;
}

// Expands every function call into the graph (see freeze.h).
StatusOr<tfpb::GraphDef> InlineCalls(const tfpb::GraphDef& in) {
  std::map<std::string, const tfpb::FunctionDef*> funcs;
  for (const auto& f : in.library().function()) funcs[f.signature().name()] = &f;
  tfpb::GraphDef out;
  *out.mutable_versions() = in.versions();
  *out.mutable_library() = in.library();
  std::deque<std::pair<tfpb::NodeDef, int>> work;  // node, inlining depth
  for (const auto& n : in.node()) work.emplace_back(n, 0);
  while (!work.empty()) {
    auto [call, depth] = std::move(work.front());
    work.pop_front();
    std::string fname;
    if (IsCallOp(call.op())) {
      auto it = call.attr().find("f");
      if (it == call.attr().end())
        return InvalidArgument("call node '" + call.name() + "' has no f");
      fname = it->second.func().name();
    } else if (funcs.count(call.op())) {
      fname = call.op();
    } else {
      *out.add_node() = std::move(call);
      continue;
    }
    auto fit = funcs.find(fname);
    if (fit == funcs.end()) {
      return NotFound("node '" + call.name() + "' calls function '" + fname +
                      "', which the function library does not contain");
    }
    if (depth > 64) return InvalidArgument("function calls nested too deeply at " + call.name());
    const tfpb::FunctionDef& fn = *fit->second;
    std::vector<std::string> data_inputs;
    for (const auto& i : call.input()) {
      if (i.empty() || i[0] != '^') data_inputs.push_back(i);
    }
    const auto& sig = fn.signature();
    if (sig.input_arg_size() != static_cast<int>(data_inputs.size())) {
      return Unimplemented("node '" + call.name() + "' passes " +
                           std::to_string(data_inputs.size()) + " inputs to function '" + fname +
                           "', which declares " + std::to_string(sig.input_arg_size()) +
                           " input args (list-valued args are not supported)");
    }
    std::map<std::string, std::string> args;
    for (int i = 0; i < sig.input_arg_size(); ++i) args[sig.input_arg(i).name()] = data_inputs[i];
    std::map<std::string, std::string> body_ops;
    for (const auto& nd : fn.node_def()) body_ops[nd.name()] = nd.op();
    const std::string prefix = call.name() + "/";
    // FunctionDef-internal name -> graph name; "" for a control input on an argument.
    auto rewrite = [&](const std::string& ref) -> StatusOr<std::string> {
      if (!ref.empty() && ref[0] == '^') {
        return body_ops.count(ref.substr(1)) ? "^" + prefix + ref.substr(1) : std::string();
      }
      const size_t c1 = ref.find(':');
      if (c1 == std::string::npos) {
        auto a = args.find(ref);
        if (a == args.end()) {
          return InvalidArgument("function '" + fname + "' refers to unknown input '" + ref + "'");
        }
        return a->second;
      }
      const std::string node = ref.substr(0, c1);
      auto op = body_ops.find(node);
      if (op == body_ops.end()) {
        return InvalidArgument("function '" + fname + "' refers to unknown node '" + node + "'");
      }
      const size_t c2 = ref.find(':', c1 + 1);
      if (c2 == std::string::npos) return prefix + ref;  // "node:K" form
      int idx = 0;
      try {
        idx = std::stoi(ref.substr(c2 + 1));
      } catch (...) {
        return InvalidArgument("function '" + fname + "': bad tensor name '" + ref + "'");
      }
      const int flat = FlatOutputIndex(op->second, ref.substr(c1 + 1, c2 - c1 - 1), idx, funcs);
      return RefName({prefix + node, flat});
    };
    std::vector<tfpb::NodeDef> body;
    for (const auto& nd : fn.node_def()) {
      tfpb::NodeDef n = nd;
      n.set_name(prefix + nd.name());
      n.clear_input();
      for (const auto& i : nd.input()) {
        KILN_ASSIGN_OR_RETURN(std::string r, rewrite(i));
        if (!r.empty()) n.add_input(r);
      }
      body.push_back(std::move(n));
    }
    tfpb::NodeDef ident;
    ident.set_name(call.name());
    ident.set_op("IdentityN");
    auto* types = (*ident.mutable_attr())["T"].mutable_list();
    for (const auto& oa : sig.output_arg()) {
      auto r = fn.ret().find(oa.name());
      if (r == fn.ret().end()) {
        return InvalidArgument("function '" + fname + "' has no return value for '" + oa.name() +
                               "'");
      }
      KILN_ASSIGN_OR_RETURN(std::string ref, rewrite(r->second));
      ident.add_input(ref);
      tfpb::DataType t = oa.type();
      if (t == tfpb::DT_INVALID) {
        const int k = ident.input_size() - 1;
        auto tout = call.attr().find("Tout");
        if (tout != call.attr().end() && k < tout->second.list().type_size()) {
          t = tout->second.list().type(k);
        } else if (auto ta = call.attr().find(oa.type_attr()); ta != call.attr().end()) {
          t = ta->second.type();
        }
      }
      types->add_type(t);
    }
    if (ident.input_size() > 0) work.emplace_front(std::move(ident), depth);
    for (auto it = body.rbegin(); it != body.rend(); ++it)
      work.emplace_front(std::move(*it), depth + 1);
  }
  return out;
}

namespace {

bool IsVariableOp(const std::string& op) {
  return op == "VariableV2" || op == "Variable" || op == "VarHandleOp";
}

}  // namespace

std::string CanonicalTensorName(const std::string& name) {
  Ref r = ParseRef(name);
  return r.node + ":" + std::to_string(r.index);
}

Status CheckGraphHasValue(const Graph& g, const std::string& value, const std::string& what) {
  if (g.initializers.count(value)) return Status::OK();
  for (const auto& i : g.inputs) {
    if (i == value) return Status::OK();
  }
  for (const auto& n : g.nodes) {
    for (const auto& o : n.outputs) {
      if (o == value) return Status::OK();
    }
  }
  return NotFound(what + " names tensor '" + value + "', which the graph does not contain");
}

StatusOr<tfpb::GraphDef> FreezeGraphDef(const tfpb::GraphDef& graph,
                                        const TensorBundleReader* bundle,
                                        const std::vector<std::string>& outputs,
                                        const std::vector<std::string>& keep) {
  KILN_ASSIGN_OR_RETURN(tfpb::GraphDef flat, InlineCalls(graph));
  std::map<std::string, int> by_name;
  for (int i = 0; i < flat.node_size(); ++i) {
    if (!by_name.emplace(flat.node(i).name(), i).second) {
      return InvalidArgument("duplicate node name '" + flat.node(i).name() + "' after inlining");
    }
  }
  auto node_of = [&](const std::string& n) -> const tfpb::NodeDef* {
    auto it = by_name.find(n);
    return it == by_name.end() ? nullptr : &flat.node(it->second);
  };
  // Follows Identity / IdentityN chains back to the producing tensor.
  auto resolve = [&](std::string ref) {
    Ref r = ParseRef(ref);
    for (int guard = 0; guard < 1000; ++guard) {
      const tfpb::NodeDef* n = node_of(r.node);
      if (!n) break;
      int src = -1;
      if (n->op() == "Identity" && r.index == 0) src = 0;
      if (n->op() == "IdentityN") src = r.index;
      if (src < 0 || src >= n->input_size() || n->input(src).empty() || n->input(src)[0] == '^') {
        break;
      }
      r = ParseRef(n->input(src));
    }
    return r;
  };
  // Variable node -> checkpoint key, from the restore graph.
  std::map<std::string, std::string> var_key;
  for (const auto& n : flat.node()) {
    if ((n.op() != "Assign" && n.op() != "AssignVariableOp") || n.input_size() < 2) continue;
    const Ref var = resolve(n.input(0)), val = resolve(n.input(1));
    const tfpb::NodeDef* v = node_of(var.node);
    const tfpb::NodeDef* restore = node_of(val.node);
    if (!v || !IsVariableOp(v->op()) || !restore || restore->op() != "RestoreV2" ||
        restore->input_size() < 2) {
      continue;
    }
    const tfpb::NodeDef* names = node_of(resolve(restore->input(1)).node);
    if (!names || names->op() != "Const") continue;
    auto value = names->attr().find("value");
    if (value == names->attr().end()) continue;
    const auto& sv = value->second.tensor().string_val();
    if (val.index < sv.size()) var_key[v->name()] = sv[val.index];
  }
  // Checkpoint value of a variable node as a Const NodeDef named `name`.
  auto make_const = [&](const tfpb::NodeDef& var,
                        const std::string& name) -> StatusOr<tfpb::NodeDef> {
    std::vector<std::string> candidates;
    if (auto it = var_key.find(var.name()); it != var_key.end()) {
      candidates.push_back(it->second);
    } else {
      std::string base = var.name();
      if (var.op() == "VarHandleOp") {
        auto sn = var.attr().find("shared_name");
        if (sn != var.attr().end() && !sn->second.s().empty()) base = sn->second.s();
      }
      candidates = {base, base + "/.ATTRIBUTES/VARIABLE_VALUE"};
    }
    if (!bundle) {
      return FailedPrecondition("variable '" + var.name() + "' needs a checkpoint, but none given");
    }
    for (const auto& key : candidates) {
      if (!bundle->Contains(key)) continue;
      KILN_ASSIGN_OR_RETURN(tfpb::TensorProto value, bundle->ReadProto(key));
      tfpb::NodeDef c;
      c.set_name(name);
      c.set_op("Const");
      (*c.mutable_attr())["dtype"].set_type(value.dtype());
      *(*c.mutable_attr())["value"].mutable_tensor() = std::move(value);
      return c;
    }
    return NotFound("variable '" + var.name() + "': the checkpoint has no tensor '" +
                    candidates[0] + "'");
  };

  // Backward walk from the outputs over data inputs.
  std::map<std::string, tfpb::NodeDef> replaced;
  std::set<std::string> needed;
  std::vector<std::string> stack;
  for (const auto& o : outputs) {
    const std::string node = ParseRef(o).node;
    if (!node_of(node)) return NotFound("output '" + o + "': the graph has no node '" + node + "'");
    stack.push_back(node);
  }
  for (const auto& k : keep) {
    if (node_of(k)) stack.push_back(k);
  }
  while (!stack.empty()) {
    const std::string name = stack.back();
    stack.pop_back();
    if (!needed.insert(name).second) continue;
    const tfpb::NodeDef& n = *node_of(name);
    if (n.op() == "VariableV2" || n.op() == "Variable") {
      KILN_ASSIGN_OR_RETURN(replaced[name], make_const(n, name));
      continue;
    }
    if (n.op() == "ReadVariableOp") {
      const tfpb::NodeDef* v = n.input_size() ? node_of(resolve(n.input(0)).node) : nullptr;
      if (!v || v->op() != "VarHandleOp") {
        return Unimplemented("ReadVariableOp '" + name + "' does not read a VarHandleOp");
      }
      KILN_ASSIGN_OR_RETURN(replaced[name], make_const(*v, name));
      continue;
    }
    if (n.op() == "VarHandleOp") {
      return Unimplemented("resource variable '" + name +
                           "' is used other than through ReadVariableOp; cannot freeze it");
    }
    for (const auto& i : n.input()) {
      if (i.empty() || i[0] == '^') continue;
      const std::string in = ParseRef(i).node;
      if (!node_of(in)) {
        return NotFound("node '" + name + "' reads '" + i + "', which the graph does not contain");
      }
      stack.push_back(in);
    }
  }
  tfpb::GraphDef out;
  *out.mutable_versions() = flat.versions();
  *out.mutable_library() = flat.library();
  for (const auto& n : flat.node()) {
    if (!needed.count(n.name())) continue;
    tfpb::NodeDef* o = out.add_node();
    if (auto r = replaced.find(n.name()); r != replaced.end()) {
      *o = std::move(r->second);
      continue;
    }
    *o = n;
    o->clear_input();
    for (const auto& i : n.input()) {
      if (i.empty() || i[0] != '^') o->add_input(i);
    }
  }
  return out;
}

StatusOr<std::string> ResolveCheckpointPrefix(const std::string& prefix_or_dir) {
  std::error_code ec;
  if (!fs::is_directory(prefix_or_dir, ec)) {
    if (!fs::exists(prefix_or_dir + ".index", ec)) {
      return NotFound("checkpoint " + prefix_or_dir + ": no " + prefix_or_dir + ".index");
    }
    return prefix_or_dir;
  }
  const fs::path state_path = fs::path(prefix_or_dir) / "checkpoint";
  std::ifstream f(state_path);
  if (!f) {
    return NotFound("checkpoint directory " + prefix_or_dir + " has no 'checkpoint' state file");
  }
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  tfpb::CheckpointState state;
  google::protobuf::TextFormat::Parser parser;
  parser.AllowUnknownField(true);
  parser.SetRecursionLimit(kTextProtoRecursionLimit);
  if (!parser.ParseFromString(text, &state) || state.model_checkpoint_path().empty()) {
    return InvalidArgument(state_path.string() + ": not a valid checkpoint state file");
  }
  fs::path p(state.model_checkpoint_path());
  if (p.is_relative()) p = fs::path(prefix_or_dir) / p;
  return p.string();
}

StatusOr<Graph> FreezeMetaGraph(const std::string& meta_path,
                                const std::string& checkpoint_prefix_or_dir,
                                const std::vector<std::string>& outputs) {
  if (outputs.empty()) return InvalidArgument("FreezeMetaGraph: no outputs named");
  std::ifstream f(meta_path, std::ios::binary);
  if (!f) return NotFound("cannot open " + meta_path);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  tfpb::MetaGraphDef meta;
  if (!ParseProtoWithLimits(bytes, &meta)) {
    meta.Clear();
    google::protobuf::TextFormat::Parser parser;
    parser.SetRecursionLimit(kTextProtoRecursionLimit);
    if (!parser.ParseFromString(bytes, &meta)) {
      return InvalidArgument(meta_path + ": not a valid MetaGraphDef (binary or text)");
    }
  }
  KILN_ASSIGN_OR_RETURN(std::string prefix, ResolveCheckpointPrefix(checkpoint_prefix_or_dir));
  KILN_ASSIGN_OR_RETURN(TensorBundleReader bundle, TensorBundleReader::Open(prefix));
  auto frozen = FreezeGraphDef(meta.graph_def(), &bundle, outputs);
  if (!frozen.ok()) return frozen.status().WithContext(meta_path);
  TfImportOptions opts;
  opts.source = meta_path;
  KILN_ASSIGN_OR_RETURN(Graph g, ImportGraphDef(*frozen, opts));
  g.outputs.clear();
  for (const auto& o : outputs) {
    g.outputs.push_back(CanonicalTensorName(o));
    KILN_RETURN_IF_ERROR(CheckGraphHasValue(g, g.outputs.back(), meta_path + ": output"));
  }
  g.metadata["tf.checkpoint"] = prefix;
  return g;
}

Status FreezeMetaGraphToFile(const std::string& meta_path,
                             const std::string& checkpoint_prefix_or_dir,
                             const std::vector<std::string>& outputs,
                             const std::string& output_path) {
  KILN_ASSIGN_OR_RETURN(Graph g, FreezeMetaGraph(meta_path, checkpoint_prefix_or_dir, outputs));
  return WriteGraphDefFile(g, output_path);
}

}  // namespace kiln
