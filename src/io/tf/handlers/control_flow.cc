// TF2 functional control flow -> IR If / Loop with subgraphs.
//
//   If / StatelessIf          If(cond) with then/else branches: the library functions imported
//                             with the same handlers; their arguments read the If's inputs
//                             from the enclosing scope (branches of IR If take no inputs)
//   While / StatelessWhile    Loop("", cond0, vars...): the body subgraph runs the body
//                             function, then the cond function on its results (the loop's next
//                             condition); cond0 is the cond function inlined before the loop
//   Case                      a chain of Ifs: index == 0 ? b0 : (index == 1 ? b1 : ... b_last);
//                             an out-of-range index runs the last branch, as in TF
// PartitionedCall / StatefulPartitionedCall are inlined before import (ImportGraphDef).
// TF1 dataflow control flow (Switch / Merge / Enter / Exit / NextIteration) is rewritten into
// these ops before import (io/tf/tf1_control_flow.h).
#include <map>
#include <string>
#include <vector>

#include "io/tf/freeze.h"
#include "io/tf/handlers/handler.h"
#include "io/tf/tf_tensor.h"

namespace kiln::tfimport {
namespace {

std::string Q(const std::string& s) { return "'" + s + "'"; }

struct Instance {
  std::vector<tfpb::NodeDef> nodes;
  std::vector<std::string> rets;  // graph tensor refs of the output args, in signature order
};

// The body of `fn` as GraphDef nodes named prefix + node; input arg i reads `arg_refs[i]`.
StatusOr<Instance> Instantiate(const TfNodeContext& ctx, const tfpb::FunctionDef& fn,
                               const std::string& prefix,
                               const std::vector<std::string>& arg_refs) {
  const auto& sig = fn.signature();
  const std::string fname = sig.name();
  if (sig.input_arg_size() != static_cast<int>(arg_refs.size())) {
    return ctx.Error("passes " + std::to_string(arg_refs.size()) + " values to function " +
                     Q(fname) + ", which declares " + std::to_string(sig.input_arg_size()) +
                     " input args");
  }
  std::map<std::string, std::string> args;
  for (int i = 0; i < sig.input_arg_size(); ++i) args[sig.input_arg(i).name()] = arg_refs[i];
  std::map<std::string, std::string> body_ops;
  for (const auto& nd : fn.node_def()) body_ops[nd.name()] = nd.op();
  auto rewrite = [&](const std::string& ref) -> StatusOr<std::string> {
    if (!ref.empty() && ref[0] == '^') {
      return body_ops.count(ref.substr(1)) ? "^" + prefix + ref.substr(1) : std::string();
    }
    const size_t c1 = ref.find(':');
    if (c1 == std::string::npos) {
      auto a = args.find(ref);
      if (a == args.end()) {
        return ctx.Error("function " + Q(fname) + " refers to unknown input " + Q(ref));
      }
      return a->second;
    }
    const std::string node = ref.substr(0, c1);
    auto op = body_ops.find(node);
    if (op == body_ops.end()) {
      return ctx.Error("function " + Q(fname) + " refers to unknown node " + Q(node));
    }
    const size_t c2 = ref.find(':', c1 + 1);
    if (c2 == std::string::npos) return prefix + ref;  // "node:K"
    const std::string idx_s = ref.substr(c2 + 1);
    if (idx_s.empty() || idx_s.size() > 6 ||
        idx_s.find_first_not_of("0123456789") != std::string::npos) {
      return ctx.Error("function " + Q(fname) + ": bad tensor name " + Q(ref));
    }
    const int flat = FlatOutputIndex(op->second, ref.substr(c1 + 1, c2 - c1 - 1),
                                     std::stoi(idx_s), ctx.Functions());
    return prefix + node + ":" + std::to_string(flat);
  };
  Instance inst;
  for (const auto& nd : fn.node_def()) {
    tfpb::NodeDef n = nd;
    n.set_name(prefix + nd.name());
    n.clear_input();
    for (const auto& i : nd.input()) {
      KILN_ASSIGN_OR_RETURN(std::string r, rewrite(i));
      if (!r.empty()) n.add_input(r);
    }
    inst.nodes.push_back(std::move(n));
  }
  for (const auto& oa : sig.output_arg()) {
    auto r = fn.ret().find(oa.name());
    if (r == fn.ret().end()) {
      return ctx.Error("function " + Q(fname) + " has no return value for " + Q(oa.name()));
    }
    KILN_ASSIGN_OR_RETURN(std::string ref, rewrite(r->second));
    inst.rets.push_back(ref);
  }
  return inst;
}

// The node's list-of-types attribute `a`, else the dtypes of its inputs from `first`.
std::vector<tfpb::DataType> TypeList(const TfNodeContext& ctx, const std::string& a, int first) {
  std::vector<tfpb::DataType> types;
  auto it = ctx.def().attr().find(a);
  if (it != ctx.def().attr().end() && it->second.value_case() == tfpb::AttrValue::kList &&
      it->second.list().type_size() > 0) {
    for (int t : it->second.list().type()) types.push_back(static_cast<tfpb::DataType>(t));
    return types;
  }
  for (int i = first; i < ctx.num_inputs(); ++i) {
    DataType dt = ctx.input_dtype(i);
    types.push_back(dt == DataType::kUndefined ? tfpb::DT_INVALID : DataTypeToTf(dt));
  }
  return types;
}

// A function whose arguments read the enclosing-scope values `outer` (a branch of IR If).
StatusOr<std::shared_ptr<Graph>> BranchGraph(TfNodeContext& ctx, const tfpb::FunctionDef& fn,
                                             const std::string& hint,
                                             const std::vector<std::string>& outer,
                                             size_t num_outputs) {
  const std::string prefix = ctx.UniquePrefix(hint);
  std::vector<TfNodeContext::SubgraphArg> args;
  std::vector<std::string> refs;
  for (size_t i = 0; i < outer.size(); ++i) {
    args.push_back({prefix + "args/" + std::to_string(i), tfpb::DT_INVALID, outer[i]});
    refs.push_back(args.back().name + ":0");
  }
  KILN_ASSIGN_OR_RETURN(Instance inst, Instantiate(ctx, fn, prefix, refs));
  if (inst.rets.size() != num_outputs) {
    return ctx.Error("function " + Q(fn.signature().name()) + " returns " +
                     std::to_string(inst.rets.size()) + " values, the node has " +
                     std::to_string(num_outputs) + " outputs");
  }
  return ctx.ImportSubgraph(prefix, args, std::move(inst.nodes), inst.rets);
}

// The IR If condition for TF predicate input 0: bool as is, numbers != 0 (TF's rule for
// scalars). Non-scalar predicates (TF: "non-empty") are not mapped.
StatusOr<std::string> Predicate(TfNodeContext& ctx) {
  if (ctx.input_rank(0) > 0) {
    return ctx.Unsupported("a predicate of rank " + std::to_string(ctx.input_rank(0)) +
                           " (TF: true when non-empty) is not supported; kiln needs a scalar");
  }
  const DataType dt = ctx.input_dtype(0);
  if (dt == DataType::kBool) return ctx.input(0);
  if (dt == DataType::kString) return ctx.Error("the predicate is a string tensor");
  return ctx.EmitTemp("Cast", {ctx.input(0)},
                      {{"to", Attr::Int(static_cast<int64_t>(DataType::kBool))}});
}

void SetOutputTypes(TfNodeContext& ctx, const std::vector<tfpb::DataType>& types) {
  for (size_t k = 0; k < types.size(); ++k) {
    auto dt = DataTypeFromTf(types[k]);
    if (dt) ctx.SetOutputType(static_cast<int>(k), *dt);
  }
}

std::vector<std::string> Outputs(const TfNodeContext& ctx, size_t n) {
  std::vector<std::string> outs;
  for (size_t k = 0; k < n; ++k) outs.push_back(ctx.Output(static_cast<int>(k)));
  return outs;
}

Status If(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1, 1 << 20));
  KILN_ASSIGN_OR_RETURN(const tfpb::FunctionDef* then_fn, ctx.FunctionAttr("then_branch"));
  KILN_ASSIGN_OR_RETURN(const tfpb::FunctionDef* else_fn, ctx.FunctionAttr("else_branch"));
  std::vector<tfpb::DataType> tout = TypeList(ctx, "Tout", ctx.num_inputs());
  const size_t n_out = tout.empty() ? then_fn->signature().output_arg_size() : tout.size();
  std::vector<std::string> outer;
  for (int i = 1; i < ctx.num_inputs(); ++i) outer.push_back(ctx.input(i));
  KILN_ASSIGN_OR_RETURN(auto then_g, BranchGraph(ctx, *then_fn, "then", outer, n_out));
  KILN_ASSIGN_OR_RETURN(auto else_g, BranchGraph(ctx, *else_fn, "else", outer, n_out));
  if (ctx.HasAttr("_kiln_tf1_cond") && ctx.input_dtype(0) != DataType::kUndefined &&
      ctx.input_dtype(0) != DataType::kBool) {  // TF1 Switch takes a bool predicate
    return ctx.Error("the tf.cond predicate " + Q(ctx.input(0)) + " is " +
                     DataTypeName(ctx.input_dtype(0)) + ", not bool");
  }
  KILN_ASSIGN_OR_RETURN(std::string pred, Predicate(ctx));
  ctx.Emit("If", {pred}, Outputs(ctx, n_out),
           {{"then_branch", Attr::GraphValue(then_g)}, {"else_branch", Attr::GraphValue(else_g)}});
  SetOutputTypes(ctx, tout);
  return Status::OK();
}

Status Case(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1, 1 << 20));
  auto it = ctx.def().attr().find("branches");
  const int n = it == ctx.def().attr().end() ? 0 : it->second.list().func_size();
  if (n == 0) return ctx.Error("has no 'branches'");
  std::vector<tfpb::DataType> tout = TypeList(ctx, "Tout", ctx.num_inputs());
  KILN_ASSIGN_OR_RETURN(const tfpb::FunctionDef* first, ctx.FunctionAttr("branches", 0));
  const size_t n_out = tout.empty() ? first->signature().output_arg_size() : tout.size();
  std::vector<std::string> outer;
  for (int i = 1; i < ctx.num_inputs(); ++i) outer.push_back(ctx.input(i));
  const DataType idx_type =
      ctx.input_dtype(0) == DataType::kUndefined ? DataType::kInt32 : ctx.input_dtype(0);
  std::vector<std::shared_ptr<Graph>> branches;
  for (int b = 0; b < n; ++b) {
    KILN_ASSIGN_OR_RETURN(const tfpb::FunctionDef* fn, ctx.FunctionAttr("branches", b));
    KILN_ASSIGN_OR_RETURN(auto g, BranchGraph(ctx, *fn, "branch" + std::to_string(b), outer,
                                              n_out));
    branches.push_back(std::move(g));
  }
  // Chain from the back: else_of[b] runs branches b+1.. (the last one alone).
  std::shared_ptr<Graph> rest = branches.back();
  for (int b = n - 2; b >= 1; --b) {
    const std::string prefix = ctx.UniquePrefix("case" + std::to_string(b));
    auto g = std::make_shared<Graph>();
    g->name = prefix;
    g->opset_imports[""] = 18;
    const std::string k = prefix + "index:0", eq = prefix + "eq:0";
    g->initializers[k] = ScalarOf(idx_type, b);
    Node e;
    e.name = prefix + "eq";
    e.op_type = "Equal";
    e.inputs = {ctx.input(0), k};
    e.outputs = {eq};
    g->nodes.push_back(e);
    Node f;
    f.name = prefix + "if";
    f.op_type = "If";
    f.inputs = {eq};
    for (size_t j = 0; j < n_out; ++j) f.outputs.push_back(prefix + "out_" + std::to_string(j) + ":0");
    f.attrs["then_branch"] = Attr::GraphValue(branches[b]);
    f.attrs["else_branch"] = Attr::GraphValue(rest);
    g->outputs = f.outputs;
    g->nodes.push_back(std::move(f));
    rest = g;
  }
  std::string pred;
  if (n == 1) {
    Tensor t = ScalarOf(DataType::kBool, 1);
    pred = ctx.Const("true", t);
  } else {
    std::string zero = ctx.Const("index0", ScalarOf(idx_type, 0));
    pred = ctx.EmitTemp("Equal", {ctx.input(0), zero});
  }
  ctx.Emit("If", {pred}, Outputs(ctx, n_out),
           {{"then_branch", Attr::GraphValue(branches[0])}, {"else_branch", Attr::GraphValue(rest)}});
  SetOutputTypes(ctx, tout);
  return Status::OK();
}

Status While(TfNodeContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const tfpb::FunctionDef* cond_fn, ctx.FunctionAttr("cond"));
  KILN_ASSIGN_OR_RETURN(const tfpb::FunctionDef* body_fn, ctx.FunctionAttr("body"));
  std::vector<tfpb::DataType> types = TypeList(ctx, "T", 0);
  if (static_cast<int>(types.size()) != ctx.num_inputs()) {
    return ctx.Error("attribute 'T' lists " + std::to_string(types.size()) + " types for " +
                     std::to_string(ctx.num_inputs()) + " loop variables");
  }
  // TensorLists (DT_VARIANT) are sequences: their element type, as the producer recorded it.
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (types[i] == tfpb::DT_VARIANT && ctx.input_dtype(i) != DataType::kUndefined) {
      types[i] = DataTypeToTf(ctx.input_dtype(i));
    }
  }
  const bool tf1 = ctx.HasAttr("_kiln_tf1_frame");
  if (cond_fn->signature().output_arg_size() != 1) {
    return ctx.Error("cond function " + Q(cond_fn->signature().name()) + " returns " +
                     std::to_string(cond_fn->signature().output_arg_size()) +
                     " values, expected 1");
  }
  auto cond_to_bool = [&](Instance* inst, const std::string& prefix) {
    const tfpb::DataType t = cond_fn->signature().output_arg(0).type();
    if (t == tfpb::DT_BOOL) return;
    tfpb::NodeDef c;
    c.set_name(prefix + "cond_bool");
    c.set_op("Cast");
    (*c.mutable_attr())["DstT"].set_type(tfpb::DT_BOOL);
    if (t != tfpb::DT_INVALID) (*c.mutable_attr())["SrcT"].set_type(t);
    c.add_input(inst->rets[0]);
    inst->rets[0] = c.name() + ":0";
    inst->nodes.push_back(std::move(c));
  };
  // The first condition, on the initial values, in the enclosing graph.
  const std::string p0 = ctx.UniquePrefix("cond_init");
  std::vector<TfNodeContext::SubgraphArg> args0;
  std::vector<std::string> refs0;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    args0.push_back({p0 + "args/" + std::to_string(i), types[i], ctx.input(i)});
    refs0.push_back(args0.back().name + ":0");
  }
  KILN_ASSIGN_OR_RETURN(Instance c0, Instantiate(ctx, *cond_fn, p0, refs0));
  cond_to_bool(&c0, p0);
  KILN_ASSIGN_OR_RETURN(auto g0, ctx.ImportSubgraph(p0, args0, std::move(c0.nodes), c0.rets));
  if (tf1) {  // LoopCond takes a bool; TF2's While casts numbers instead
    const ValueInfo* vi = g0->FindValueInfo(g0->outputs[0]);
    if (vi != nullptr && vi->dtype != DataType::kUndefined && vi->dtype != DataType::kBool) {
      return ctx.Error("the loop condition of while frame " + Q(ctx.Str("_kiln_tf1_frame", "")) +
                       " is " + DataTypeName(vi->dtype) + ", not bool");
    }
  }
  // Body: (iteration, cond, vars...) -> (cond(body(vars)), body(vars)...).
  const std::string pb = ctx.UniquePrefix("body");
  std::vector<TfNodeContext::SubgraphArg> args = {{pb + "iteration", tfpb::DT_INT64, ""},
                                                  {pb + "cond", tfpb::DT_BOOL, ""}};
  std::vector<std::string> refs;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    args.push_back({pb + "args/" + std::to_string(i), types[i], ""});
    refs.push_back(args.back().name + ":0");
  }
  KILN_ASSIGN_OR_RETURN(Instance body, Instantiate(ctx, *body_fn, pb + "body/", refs));
  if (body.rets.size() != types.size()) {
    return ctx.Error("body function " + Q(body_fn->signature().name()) + " returns " +
                     std::to_string(body.rets.size()) + " values for " +
                     std::to_string(types.size()) + " loop variables");
  }
  KILN_ASSIGN_OR_RETURN(Instance cond, Instantiate(ctx, *cond_fn, pb + "cond/", body.rets));
  cond_to_bool(&cond, pb);
  std::vector<tfpb::NodeDef> nodes = std::move(body.nodes);
  for (auto& n : cond.nodes) nodes.push_back(std::move(n));
  std::vector<std::string> rets = {cond.rets[0]};
  for (const auto& r : body.rets) rets.push_back(r);
  KILN_ASSIGN_OR_RETURN(auto body_g, ctx.ImportSubgraph(pb, args, std::move(nodes), rets));

  ctx.Splice(*g0);
  std::vector<std::string> inputs = {"", g0->outputs[0]};
  for (int i = 0; i < ctx.num_inputs(); ++i) inputs.push_back(ctx.input(i));
  ctx.Emit("Loop", inputs, Outputs(ctx, types.size()), {{"body", Attr::GraphValue(body_g)}});
  SetOutputTypes(ctx, types);
  return Status::OK();
}

}  // namespace

void RegisterTfControlFlowHandlers(TfHandlerRegistry& r) {
  r.Register("If", If);
  r.Register("StatelessIf", If);
  r.Register("While", While);
  r.Register("StatelessWhile", While);
  r.Register("Case", Case);
  r.Register("StatelessCase", Case);
}

}  // namespace kiln::tfimport
