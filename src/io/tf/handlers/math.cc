// TF math ops: unary and binary elementwise math, comparisons and logic, AddN, reductions,
// ArgMax/ArgMin, Softmax/LogSoftmax, MatMul/BatchMatMul, activations, ClipByValue,
// RandomUniform.
#include <algorithm>

#include "io/tf/handlers/handler.h"

namespace kiln::tfimport {
namespace {

Attr I(int64_t v) { return Attr::Int(v); }
Attr DT(DataType t) { return Attr::Int(static_cast<int64_t>(t)); }

// Checks that every input whose dtype is known matches the node's T attribute.
StatusOr<DataType> CheckT(TfNodeContext& ctx, int first = 0, int count = -1) {
  auto t = ctx.Type("T", DataType::kUndefined);
  if (!t.ok()) {
    if (t.status().code() == StatusCode::kUnimplemented) return t.status();
    // No T attribute: take the first known input dtype.
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      if (ctx.input_dtype(i) != DataType::kUndefined) return ctx.input_dtype(i);
    }
    return DataType::kUndefined;
  }
  int end = count < 0 ? ctx.num_inputs() : std::min(ctx.num_inputs(), first + count);
  for (int i = first; i < end; ++i) {
    DataType d = ctx.input_dtype(i);
    if (d != DataType::kUndefined && d != *t) {
      return ctx.Error("input " + std::to_string(i) + " '" + ctx.input(i) + "' is " +
                       DataTypeName(d) + ", but the node's T is " + DataTypeName(*t));
    }
  }
  return *t;
}

int BroadcastRank(TfNodeContext& ctx) {
  int r = -1;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    int ri = ctx.input_rank(i);
    if (ri < 0) return -1;
    r = std::max(r, ri);
  }
  return r;
}

Status Unary(TfNodeContext& ctx, const std::string& onnx, AttrMap attrs = {}) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1));
  KILN_ASSIGN_OR_RETURN(DataType t, CheckT(ctx));
  ctx.Emit(onnx, {ctx.input(0)}, {ctx.Output(0)}, std::move(attrs));
  ctx.SetOutputType(0, t, ctx.input_rank(0));
  return Status::OK();
}

Status Binary(TfNodeContext& ctx, const std::string& onnx, bool bool_out = false,
              AttrMap attrs = {}) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  KILN_ASSIGN_OR_RETURN(DataType t, CheckT(ctx));
  ctx.Emit(onnx, {ctx.input(0), ctx.input(1)}, {ctx.Output(0)}, std::move(attrs));
  ctx.SetOutputType(0, bool_out ? DataType::kBool : t, BroadcastRank(ctx));
  return Status::OK();
}

Status NotEqual(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  KILN_RETURN_IF_ERROR(CheckT(ctx).status());
  std::string eq = ctx.EmitTemp("Equal", {ctx.input(0), ctx.input(1)});
  ctx.Emit("Not", {eq}, {ctx.Output(0)});
  ctx.SetOutputType(0, DataType::kBool, BroadcastRank(ctx));
  return Status::OK();
}

Status Rsqrt(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1));
  KILN_ASSIGN_OR_RETURN(DataType t, CheckT(ctx));
  std::string s = ctx.EmitTemp("Sqrt", {ctx.input(0)});
  ctx.Emit("Reciprocal", {s}, {ctx.Output(0)});
  ctx.SetOutputType(0, t, ctx.input_rank(0));
  return Status::OK();
}

Status Square(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1));
  KILN_ASSIGN_OR_RETURN(DataType t, CheckT(ctx));
  ctx.Emit("Mul", {ctx.input(0), ctx.input(0)}, {ctx.Output(0)});
  ctx.SetOutputType(0, t, ctx.input_rank(0));
  return Status::OK();
}

Status SquaredDifference(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  KILN_ASSIGN_OR_RETURN(DataType t, CheckT(ctx));
  std::string d = ctx.EmitTemp("Sub", {ctx.input(0), ctx.input(1)});
  ctx.Emit("Mul", {d, d}, {ctx.Output(0)});
  ctx.SetOutputType(0, t, BroadcastRank(ctx));
  return Status::OK();
}

// FloorDiv: floor(x / y) for floats (Div + Floor), kiln.FloorDiv for integers.
Status FloorDiv(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  KILN_ASSIGN_OR_RETURN(DataType t, CheckT(ctx));
  if (IsFloatingPoint(t)) {
    std::string q = ctx.EmitTemp("Div", {ctx.input(0), ctx.input(1)});
    ctx.Emit("Floor", {q}, {ctx.Output(0)});
  } else {
    ctx.Emit("FloorDiv", {ctx.input(0), ctx.input(1)}, {ctx.Output(0)}, {}, "kiln");
  }
  ctx.SetOutputType(0, t, BroadcastRank(ctx));
  return Status::OK();
}

// FloorMod: ONNX Mod (fmod=0: the sign of the divisor) for integers, kiln.FloorMod for floats.
Status FloorMod(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  KILN_ASSIGN_OR_RETURN(DataType t, CheckT(ctx));
  if (IsInteger(t)) {
    ctx.Emit("Mod", {ctx.input(0), ctx.input(1)}, {ctx.Output(0)}, {{"fmod", I(0)}});
  } else {
    ctx.Emit("FloorMod", {ctx.input(0), ctx.input(1)}, {ctx.Output(0)}, {}, "kiln");
  }
  ctx.SetOutputType(0, t, BroadcastRank(ctx));
  return Status::OK();
}

Status AddN(TfNodeContext& ctx) {
  if (ctx.num_inputs() < 1) return ctx.Error("has no inputs");
  KILN_ASSIGN_OR_RETURN(DataType t, CheckT(ctx));
  std::vector<std::string> ins;
  for (int i = 0; i < ctx.num_inputs(); ++i) ins.push_back(ctx.input(i));
  ctx.Emit(ins.size() == 1 ? "Identity" : "Sum", ins, {ctx.Output(0)});
  ctx.SetOutputType(0, t, ctx.input_rank(0));
  return Status::OK();
}

Status Reduce(TfNodeContext& ctx, const std::string& onnx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  KILN_ASSIGN_OR_RETURN(DataType t, CheckT(ctx, 0, 1));
  const bool keep = ctx.Bool("keep_dims", false);
  ctx.Emit(onnx, {ctx.input(0), ctx.Int64Vector(1)}, {ctx.Output(0)},
           {{"keepdims", I(keep ? 1 : 0)}, {"noop_with_empty_axes", I(1)}});
  int r = ctx.input_rank(0);
  auto axes = ctx.ConstInts(1);
  ctx.SetOutputType(0, t, keep ? r : (r >= 0 && axes ? r - static_cast<int>(axes->size()) : -1));
  return Status::OK();
}

Status ArgMinMax(TfNodeContext& ctx, const std::string& onnx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  auto axis = ctx.ConstInts(1);
  if (!axis || axis->size() != 1) return ctx.Unsupported("dimension must be a constant scalar");
  KILN_ASSIGN_OR_RETURN(DataType out, ctx.Type("output_type", DataType::kInt64));
  AttrMap attrs = {{"axis", I((*axis)[0])}, {"keepdims", I(0)}};
  if (out == DataType::kInt64) {
    ctx.Emit(onnx, {ctx.input(0)}, {ctx.Output(0)}, attrs);
  } else {
    std::string a = ctx.EmitTemp(onnx, {ctx.input(0)}, attrs);
    ctx.Emit("Cast", {a}, {ctx.Output(0)}, {{"to", DT(out)}});
  }
  int r = ctx.input_rank(0);
  ctx.SetOutputType(0, out, r > 0 ? r - 1 : -1);
  return Status::OK();
}

Status Softmax(TfNodeContext& ctx, const std::string& onnx) {
  return Unary(ctx, onnx, {{"axis", I(-1)}});
}

// MatMul (2-D): MatMul, or Gemm when an operand is transposed.
Status MatMul(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  KILN_ASSIGN_OR_RETURN(DataType t, CheckT(ctx));
  const bool ta = ctx.Bool("transpose_a", false), tb = ctx.Bool("transpose_b", false);
  if (!ta && !tb) {
    ctx.Emit("MatMul", {ctx.input(0), ctx.input(1)}, {ctx.Output(0)});
  } else {
    ctx.Emit("Gemm", {ctx.input(0), ctx.input(1)}, {ctx.Output(0)},
             {{"transA", I(ta)}, {"transB", I(tb)}});
  }
  ctx.SetOutputType(0, t, 2);
  return Status::OK();
}

// x with its last two axes swapped (rank must be known, or x constant).
StatusOr<std::string> SwapLastTwo(TfNodeContext& ctx, int i) {
  int r = ctx.input_rank(i);
  if (r < 2) return ctx.Unsupported("adjoint of an operand of unknown rank");
  std::vector<int64_t> perm;
  for (int k = 0; k < r; ++k) perm.push_back(k);
  std::swap(perm[r - 1], perm[r - 2]);
  return ctx.EmitTemp("Transpose", {ctx.input(i)}, {{"perm", Attr::Ints(perm)}});
}

Status BatchMatMul(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  KILN_ASSIGN_OR_RETURN(DataType t, ctx.Type("T", DataType::kFloat32));
  std::string a = ctx.input(0), b = ctx.input(1);
  if (ctx.Bool("adj_x", false)) {
    KILN_ASSIGN_OR_RETURN(a, SwapLastTwo(ctx, 0));
  }
  if (ctx.Bool("adj_y", false)) {
    KILN_ASSIGN_OR_RETURN(b, SwapLastTwo(ctx, 1));
  }
  ctx.Emit("MatMul", {a, b}, {ctx.Output(0)});
  int ra = ctx.input_rank(0), rb = ctx.input_rank(1);
  ctx.SetOutputType(0, t, ra >= 0 && rb >= 0 ? std::max(ra, rb) : -1);
  return Status::OK();
}

Status Activation(TfNodeContext& ctx, const std::string& act) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(act == "Prelu" ? 2 : 1));
  KILN_ASSIGN_OR_RETURN(DataType t, CheckT(ctx, 0, 1));
  KILN_RETURN_IF_ERROR(EmitActivation(ctx, act, ctx.input(0), ctx.Output(0), t,
                                      act == "Prelu" ? ctx.input(1) : ""));
  ctx.SetOutputType(0, t, ctx.input_rank(0));
  return Status::OK();
}

// ClipByValue(t, min, max) = min(max(t, min), max): Clip when both bounds are constant
// scalars, else Max + Min (TF broadcasts tensor bounds).
Status ClipByValue(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(3));
  KILN_ASSIGN_OR_RETURN(DataType t, CheckT(ctx));
  const Tensor* lo = ctx.const_input(1);
  const Tensor* hi = ctx.const_input(2);
  if (lo && hi && lo->num_elements() == 1 && hi->num_elements() == 1) {
    std::string l = ctx.input(1), h = ctx.input(2);
    if (lo->rank() != 0) l = ctx.Const("min", *lo->Reshaped({}));
    if (hi->rank() != 0) h = ctx.Const("max", *hi->Reshaped({}));
    ctx.Emit("Clip", {ctx.input(0), l, h}, {ctx.Output(0)});
  } else {
    std::string m = ctx.EmitTemp("Max", {ctx.input(0), ctx.input(1)});
    ctx.Emit("Min", {m, ctx.input(2)}, {ctx.Output(0)});
  }
  ctx.SetOutputType(0, t, ctx.input_rank(0));
  return Status::OK();
}

Status RandomUniform(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1));
  KILN_ASSIGN_OR_RETURN(DataType t, ctx.Type("dtype"));
  ctx.Emit("RandomUniform", {ctx.input(0)}, {ctx.Output(0)},
           {{"dtype", DT(t)}, {"seed", I(ctx.Int("seed", 0))}, {"seed2", I(ctx.Int("seed2", 0))}},
           "kiln");
  ctx.SetOutputType(0, t);
  return Status::OK();
}

}  // namespace

void RegisterTfMathHandlers(TfHandlerRegistry& r) {
  const std::pair<const char*, const char*> kUnary[] = {
      {"Neg", "Neg"},       {"Abs", "Abs"},           {"Exp", "Exp"},     {"Log", "Log"},
      {"Sqrt", "Sqrt"},     {"Reciprocal", "Reciprocal"}, {"Inv", "Reciprocal"},
      {"Erf", "Erf"},       {"Sin", "Sin"},           {"Cos", "Cos"},     {"Tan", "Tan"},
      {"Asin", "Asin"},     {"Acos", "Acos"},         {"Atan", "Atan"},   {"Sinh", "Sinh"},
      {"Cosh", "Cosh"},     {"Asinh", "Asinh"},       {"Acosh", "Acosh"}, {"Atanh", "Atanh"},
      {"Floor", "Floor"},   {"Ceil", "Ceil"},         {"Round", "Round"}, {"Sign", "Sign"},
      {"Softsign", "Softsign"}, {"LogicalNot", "Not"}, {"IsNan", "IsNaN"}};
  for (const auto& [tf, onnx] : kUnary) {
    std::string o = onnx;
    r.Register(tf, [o](TfNodeContext& c) { return Unary(c, o); });
  }
  const std::pair<const char*, const char*> kBinary[] = {
      {"Add", "Add"},     {"AddV2", "Add"},     {"Sub", "Sub"},         {"Mul", "Mul"},
      {"RealDiv", "Div"}, {"Div", "Div"},       {"Maximum", "Max"},     {"Minimum", "Min"},
      {"Pow", "Pow"},     {"LogicalAnd", "And"}, {"LogicalOr", "Or"}};
  for (const auto& [tf, onnx] : kBinary) {
    std::string o = onnx;
    r.Register(tf, [o](TfNodeContext& c) { return Binary(c, o); });
  }
  const std::pair<const char*, const char*> kCompare[] = {
      {"Equal", "Equal"},      {"Less", "Less"},
      {"Greater", "Greater"},  {"LessEqual", "LessOrEqual"},
      {"GreaterEqual", "GreaterOrEqual"}};
  for (const auto& [tf, onnx] : kCompare) {
    std::string o = onnx;
    r.Register(tf, [o](TfNodeContext& c) { return Binary(c, o, /*bool_out=*/true); });
  }
  r.Register("NotEqual", NotEqual);
  r.Register("Rsqrt", Rsqrt);
  r.Register("Square", Square);
  r.Register("SquaredDifference", SquaredDifference);
  r.Register("FloorDiv", FloorDiv);
  r.Register("FloorMod", FloorMod);
  r.Register("AddN", AddN);
  const std::pair<const char*, const char*> kReduce[] = {
      {"Mean", "ReduceMean"}, {"Sum", "ReduceSum"}, {"Max", "ReduceMax"},
      {"Min", "ReduceMin"},   {"Prod", "ReduceProd"}};
  for (const auto& [tf, onnx] : kReduce) {
    std::string o = onnx;
    r.Register(tf, [o](TfNodeContext& c) { return Reduce(c, o); });
  }
  r.Register("ArgMax", [](TfNodeContext& c) { return ArgMinMax(c, "ArgMax"); });
  r.Register("ArgMin", [](TfNodeContext& c) { return ArgMinMax(c, "ArgMin"); });
  r.Register("Softmax", [](TfNodeContext& c) { return Softmax(c, "Softmax"); });
  r.Register("LogSoftmax", [](TfNodeContext& c) { return Softmax(c, "LogSoftmax"); });
  r.Register("MatMul", MatMul);
  for (const char* op : {"BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"}) {
    r.Register(op, BatchMatMul);
  }
  for (const char* act : {"Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Sigmoid", "Tanh",
                          "Softplus", "Prelu"}) {
    std::string a = act;
    r.Register(act, [a](TfNodeContext& c) { return Activation(c, a); });
  }
  r.Register("ClipByValue", ClipByValue);
  r.Register("RandomUniform", RandomUniform);
}

}  // namespace kiln::tfimport
