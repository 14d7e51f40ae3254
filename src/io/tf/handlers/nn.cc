// TF neural-network ops: Conv2D, DepthwiseConv2dNative, Conv2DBackpropInput, BiasAdd, pools,
// FusedBatchNorm*, LRN, and the fused forms _FusedConv2D, (_)FusedDepthwiseConv2dNative,
// _FusedMatMul. NHWC stays an attribute (data_format="NHWC"); constant HWIO filters become
// OIHW initializers, others go through a Transpose node.
#include <cmath>
#include <cstring>
#include <numbers>

#include "io/tf/handlers/handler.h"
#include "ops/base/dispatch.h"

namespace kiln::tfimport {
namespace {

Attr I(int64_t v) { return Attr::Int(v); }
Attr Is(std::vector<int64_t> v) { return Attr::Ints(std::move(v)); }
Attr S(const std::string& v) { return Attr::String(v); }

// `t` with its axes permuted (any fixed-size dtype).
Tensor TransposeConst(const Tensor& t, const std::vector<int64_t>& perm) {
  const int r = t.rank();
  std::vector<int64_t> out_dims(r);
  for (int k = 0; k < r; ++k) out_dims[k] = t.dim(static_cast<int>(perm[k]));
  Tensor out = Tensor::Empty(t.dtype(), out_dims);
  std::vector<int64_t> in_strides(r, 1);
  for (int k = r - 2; k >= 0; --k) in_strides[k] = in_strides[k + 1] * t.dim(k + 1);
  const size_t es = DataTypeSize(t.dtype());
  const char* src = static_cast<const char*>(t.raw_data());
  char* dst = static_cast<char*>(out.raw_mutable_data());
  std::vector<int64_t> idx(r, 0);
  for (int64_t o = 0; o < out.num_elements(); ++o) {
    int64_t off = 0;
    for (int k = 0; k < r; ++k) off += idx[k] * in_strides[perm[k]];
    std::memcpy(dst + o * es, src + off * es, es);
    for (int k = r - 1; k >= 0; --k) {
      if (++idx[k] < out_dims[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

struct Layout {
  bool nhwc = true;
  int h = 1, w = 2, c = 3;  // positions in a 4-D TF attribute list
};

StatusOr<Layout> GetLayout(TfNodeContext& ctx) {
  std::string fmt = ctx.Str("data_format", "NHWC");
  if (fmt == "NHWC") return Layout{true, 1, 2, 3};
  if (fmt == "NCHW") return Layout{false, 2, 3, 1};
  return ctx.Unsupported("data_format " + fmt);
}

// strides / dilations / padding of a 2-D conv or pool as ONNX attributes.
Status SpatialAttrs(TfNodeContext& ctx, const Layout& l, AttrMap* attrs, bool dilations) {
  auto strides = ctx.Ints("strides", {1, 1, 1, 1});
  if (strides.size() != 4) return ctx.Error("strides must have 4 values");
  if (strides[0] != 1 || strides[l.c] != 1) {
    return ctx.Unsupported("strides on the batch or channel dimension");
  }
  (*attrs)["strides"] = Is({strides[l.h], strides[l.w]});
  if (dilations) {
    auto d = ctx.Ints("dilations", {1, 1, 1, 1});
    if (d.size() != 4) return ctx.Error("dilations must have 4 values");
    if (d[0] != 1 || d[l.c] != 1) return ctx.Unsupported("dilations on batch or channels");
    (*attrs)["dilations"] = Is({d[l.h], d[l.w]});
  }
  std::string padding = ctx.Str("padding", "");
  if (padding == "SAME") {
    (*attrs)["auto_pad"] = S("SAME_UPPER");
  } else if (padding == "VALID") {
    (*attrs)["pads"] = Is({0, 0, 0, 0});
  } else if (padding == "EXPLICIT") {
    auto p = ctx.Ints("explicit_paddings");
    if (p.size() != 8) return ctx.Error("explicit_paddings must have 8 values");
    (*attrs)["pads"] = Is({p[2 * l.h], p[2 * l.w], p[2 * l.h + 1], p[2 * l.w + 1]});
  } else {
    return ctx.Error("unknown padding '" + padding + "'");
  }
  if (l.nhwc) (*attrs)["data_format"] = S("NHWC");
  return Status::OK();
}

// The filter (input `i`, TF HWIO) as an ONNX OIHW weight; sets kernel_shape when known.
std::string ConvWeight(TfNodeContext& ctx, int i, AttrMap* attrs) {
  if (const Tensor* f = ctx.const_input(i); f && f->rank() == 4) {
    (*attrs)["kernel_shape"] = Is({f->dim(0), f->dim(1)});
    return ctx.Const("filter_oihw", TransposeConst(*f, {3, 2, 0, 1}));
  }
  return ctx.EmitTemp("Transpose", {ctx.input(i)}, {{"perm", Is({3, 2, 0, 1})}});
}

// Depthwise filter [H, W, C, M] -> [C*M, 1, H, W] (constant only); sets group.
StatusOr<std::string> DepthwiseWeight(TfNodeContext& ctx, int i, AttrMap* attrs) {
  const Tensor* f = ctx.const_input(i);
  if (!f || f->rank() != 4) return ctx.Unsupported("a non-constant depthwise filter");
  Tensor t = TransposeConst(*f, {2, 3, 0, 1});
  KILN_ASSIGN_OR_RETURN(Tensor w, t.Reshaped({f->dim(2) * f->dim(3), 1, f->dim(0), f->dim(1)}));
  (*attrs)["kernel_shape"] = Is({f->dim(0), f->dim(1)});
  (*attrs)["group"] = I(f->dim(2));
  return ctx.Const("filter_oihw", w);
}

StatusOr<DataType> TypeT(TfNodeContext& ctx) { return ctx.Type("T", DataType::kFloat32); }

// Applies the fused ops after the conv / matmul whose result is `y`; `bias_done` when a
// leading BiasAdd was folded into the main node. `args` are the fused-op arguments.
Status EmitFusedTail(TfNodeContext& ctx, std::string y, const std::vector<std::string>& ops,
                     const std::vector<std::string>& args, bool bias_done, const Layout& l,
                     DataType t) {
  size_t a = 0;
  auto next_arg = [&]() -> StatusOr<std::string> {
    if (a >= args.size()) return ctx.Error("fused_ops need more arguments than the node has");
    return args[a++];
  };
  for (size_t k = 0; k < ops.size(); ++k) {
    const std::string& op = ops[k];
    if (op == "BiasAdd" && k == 0 && bias_done) {  // folded into the main node's bias input
      KILN_RETURN_IF_ERROR(next_arg().status());
      continue;
    }
    const bool last = k + 1 == ops.size();
    std::string out = last ? ctx.Output(0) : ctx.Temp(op);
    if (op == "BiasAdd" || op == "Add" || op == "AddV2") {
      KILN_ASSIGN_OR_RETURN(std::string b, next_arg());
      if (op == "BiasAdd" && !l.nhwc) return ctx.Unsupported("fused NCHW BiasAdd after the first op");
      ctx.Emit("Add", {y, b}, {out});
    } else if (op == "FusedBatchNorm" || op == "FusedBatchNormV3") {
      std::vector<std::string> in = {y};
      for (int j = 0; j < 4; ++j) {
        KILN_ASSIGN_OR_RETURN(std::string v, next_arg());
        in.push_back(v);
      }
      AttrMap attrs = {{"epsilon", Attr::Float(ctx.Float("epsilon", 1e-4f))}};
      if (l.nhwc) attrs["data_format"] = S("NHWC");
      ctx.Emit("BatchNormalization", in, {out}, attrs);
    } else {
      std::string alpha;
      if (op == "Prelu") {
        KILN_ASSIGN_OR_RETURN(alpha, next_arg());
      }
      KILN_RETURN_IF_ERROR(EmitActivation(ctx, op, y, out, t, alpha));
    }
    y = out;
  }
  return Status::OK();
}

Status Conv(TfNodeContext& ctx, bool depthwise, bool fused) {
  if (ctx.num_inputs() < 2) return ctx.Error("needs an input and a filter");
  KILN_ASSIGN_OR_RETURN(DataType t, TypeT(ctx));
  KILN_ASSIGN_OR_RETURN(Layout l, GetLayout(ctx));
  AttrMap attrs;
  KILN_RETURN_IF_ERROR(SpatialAttrs(ctx, l, &attrs, true));
  std::string w;
  if (depthwise) {
    KILN_ASSIGN_OR_RETURN(w, DepthwiseWeight(ctx, 1, &attrs));
  } else {
    w = ConvWeight(ctx, 1, &attrs);
  }
  std::vector<std::string> ops = fused ? ctx.Strs("fused_ops") : std::vector<std::string>{};
  std::vector<std::string> args;
  for (int i = 2; i < ctx.num_inputs(); ++i) args.push_back(ctx.input(i));
  std::vector<std::string> in = {ctx.input(0), w};
  const bool bias = !ops.empty() && ops[0] == "BiasAdd" && !args.empty();
  if (bias) in.push_back(args[0]);
  const bool tail = !ops.empty() && !(ops.size() == 1 && bias);
  std::string y = tail ? ctx.Temp("Conv") : ctx.Output(0);
  ctx.Emit("Conv", in, {y}, attrs);
  if (tail) KILN_RETURN_IF_ERROR(EmitFusedTail(ctx, y, ops, args, bias, l, t));
  ctx.SetOutputType(0, t, 4);
  return Status::OK();
}

Status Conv2DBackpropInput(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(3));
  KILN_ASSIGN_OR_RETURN(DataType t, TypeT(ctx));
  KILN_ASSIGN_OR_RETURN(Layout l, GetLayout(ctx));
  AttrMap attrs;
  KILN_RETURN_IF_ERROR(SpatialAttrs(ctx, l, &attrs, true));
  auto sizes = ctx.ConstInts(0);
  if (!sizes || sizes->size() != 4) return ctx.Unsupported("input_sizes must be a constant [4]");
  attrs["output_shape"] = Is({(*sizes)[l.h], (*sizes)[l.w]});
  if (attrs.count("pads") && ctx.Str("padding", "") == "VALID") attrs.erase("pads");
  std::string w = ConvWeight(ctx, 1, &attrs);
  ctx.Emit("ConvTranspose", {ctx.input(2), w}, {ctx.Output(0)}, attrs);
  ctx.SetOutputType(0, t, 4);
  return Status::OK();
}

Status BiasAdd(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  KILN_ASSIGN_OR_RETURN(DataType t, TypeT(ctx));
  for (int i = 0; i < 2; ++i) {
    if (ctx.input_dtype(i) != DataType::kUndefined && ctx.input_dtype(i) != t) {
      return ctx.Error("input " + std::to_string(i) + " '" + ctx.input(i) + "' is " +
                       DataTypeName(ctx.input_dtype(i)) + ", but the node's T is " +
                       DataTypeName(t));
    }
  }
  std::string fmt = ctx.Str("data_format", "NHWC");
  std::string b = ctx.input(1);
  const int r = ctx.input_rank(0);
  if (fmt == "NCHW" && r != 2) {
    if (r < 0) return ctx.Unsupported("NCHW BiasAdd on an input of unknown rank");
    std::vector<int64_t> axes;
    for (int k = 1; k < r - 1; ++k) axes.push_back(k);
    b = ctx.EmitTemp("Unsqueeze", {b, ctx.Const("axes", Tensor::FromVector<int64_t>(axes))});
  } else if (fmt != "NHWC" && fmt != "NCHW") {
    return ctx.Unsupported("data_format " + fmt);
  }
  ctx.Emit("Add", {ctx.input(0), b}, {ctx.Output(0)});
  ctx.SetOutputType(0, t, r);
  return Status::OK();
}

Status Pool(TfNodeContext& ctx, const std::string& onnx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1, 3));
  KILN_ASSIGN_OR_RETURN(DataType t, TypeT(ctx));
  KILN_ASSIGN_OR_RETURN(Layout l, GetLayout(ctx));
  std::vector<int64_t> ksize = ctx.Ints("ksize");
  if (ctx.num_inputs() == 3) {  // MaxPoolV2: ksize and strides as inputs
    auto k = ctx.ConstInts(1);
    auto s = ctx.ConstInts(2);
    if (!k || !s) return ctx.Unsupported("ksize and strides must be constants");
    ksize = *k;
    if (s->size() != 4) return ctx.Error("strides must have 4 values");
    if ((*s)[0] != 1 || (*s)[l.c] != 1) return ctx.Unsupported("strides on batch or channels");
  }
  if (ksize.size() != 4) return ctx.Error("ksize must have 4 values");
  if (ksize[0] != 1 || ksize[l.c] != 1) return ctx.Unsupported("pooling over batch or channels");
  AttrMap attrs;
  KILN_RETURN_IF_ERROR(SpatialAttrs(ctx, l, &attrs, false));
  if (ctx.num_inputs() == 3) {
    auto s = *ctx.ConstInts(2);
    attrs["strides"] = Is({s[l.h], s[l.w]});
  }
  attrs["kernel_shape"] = Is({ksize[l.h], ksize[l.w]});
  ctx.Emit(onnx, {ctx.input(0)}, {ctx.Output(0)}, attrs);
  ctx.SetOutputType(0, t, 4);
  return Status::OK();
}

Status FusedBatchNorm(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(5));
  KILN_ASSIGN_OR_RETURN(DataType t, TypeT(ctx));
  if (ctx.Bool("is_training", true)) {
    return ctx.Unsupported("is_training=true (batch statistics); freeze the graph for inference");
  }
  std::string fmt = ctx.Str("data_format", "NHWC");
  AttrMap attrs = {{"epsilon", Attr::Float(ctx.Float("epsilon", 1e-4f))}};
  if (fmt == "NHWC" || fmt == "NDHWC") attrs["data_format"] = S("NHWC");
  else if (fmt != "NCHW" && fmt != "NCDHW") return ctx.Unsupported("data_format " + fmt);
  ctx.Emit("BatchNormalization",
           {ctx.input(0), ctx.input(1), ctx.input(2), ctx.input(3), ctx.input(4)},
           {ctx.Output(0)}, attrs);
  ctx.SetOutputType(0, t, ctx.input_rank(0));
  // Inference mode: batch_mean / batch_variance (and the reserve spaces) are the inputs.
  for (int k = 1; k <= 5; ++k) {
    if (!ctx.OutputUsed(k)) continue;
    int src = k == 1 || k == 3 ? 3 : 4;
    ctx.Emit("Identity", {ctx.input(src)}, {ctx.Output(k)});
  }
  return Status::OK();
}

Status Lrn(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1));
  KILN_ASSIGN_OR_RETURN(DataType t, TypeT(ctx));
  const int64_t radius = ctx.Int("depth_radius", 5);
  const int64_t size = 2 * radius + 1;
  // TF divides by (bias + alpha * sum)^beta; ONNX by (bias + alpha / size * sum)^beta.
  ctx.Emit("LRN", {ctx.input(0)}, {ctx.Output(0)},
           {{"size", I(size)},
            {"alpha", Attr::Float(ctx.Float("alpha", 1.0f) * static_cast<float>(size))},
            {"beta", Attr::Float(ctx.Float("beta", 0.5f))},
            {"bias", Attr::Float(ctx.Float("bias", 1.0f))},
            {"data_format", S("NHWC")}});
  ctx.SetOutputType(0, t, 4);
  return Status::OK();
}

Status FusedMatMul(TfNodeContext& ctx) {
  if (ctx.num_inputs() < 2) return ctx.Error("needs two operands");
  KILN_ASSIGN_OR_RETURN(DataType t, TypeT(ctx));
  std::vector<std::string> ops = ctx.Strs("fused_ops");
  std::vector<std::string> args;
  for (int i = 2; i < ctx.num_inputs(); ++i) args.push_back(ctx.input(i));
  const bool ta = ctx.Bool("transpose_a", false), tb = ctx.Bool("transpose_b", false);
  const bool bias = !ops.empty() && ops[0] == "BiasAdd" && !args.empty();
  const bool tail = !ops.empty() && !(ops.size() == 1 && bias);
  std::string y = tail ? ctx.Temp("Gemm") : ctx.Output(0);
  std::vector<std::string> in = {ctx.input(0), ctx.input(1)};
  if (bias) in.push_back(args[0]);
  if (!bias && !ta && !tb) {
    ctx.Emit("MatMul", in, {y});
  } else {
    ctx.Emit("Gemm", in, {y}, {{"transA", I(ta)}, {"transB", I(tb)}});
  }
  if (tail) KILN_RETURN_IF_ERROR(EmitFusedTail(ctx, y, ops, args, bias, Layout{}, t));
  ctx.SetOutputType(0, t, 2);
  return Status::OK();
}

}  // namespace

Tensor ScalarOf(DataType dtype, double v) {
  Tensor t = Tensor::Empty(dtype, {});
  if (dtype == DataType::kFloat16) {
    *t.mutable_data<Float16>() = Float16(static_cast<float>(v));
  } else if (dtype == DataType::kBFloat16) {
    *t.mutable_data<BFloat16>() = BFloat16(static_cast<float>(v));
  } else {
    (void)DispatchAnyPod(dtype, [&]<typename T>() -> Status {
      *t.mutable_data<T>() = static_cast<T>(v);
      return Status::OK();
    });
  }
  return t;
}

Status EmitActivation(TfNodeContext& ctx, const std::string& act, const std::string& x,
                      const std::string& out, DataType dtype, const std::string& alpha_value) {
  auto c = [&](const char* hint, double v) { return ctx.Const(hint, ScalarOf(dtype, v)); };
  if (act == "Relu" || act == "Sigmoid" || act == "Tanh" || act == "Softplus" ||
      act == "Selu") {
    ctx.Emit(act, {x}, {out});
  } else if (act == "Elu") {
    ctx.Emit("Elu", {x}, {out}, {{"alpha", Attr::Float(1.0f)}});
  } else if (act == "Relu6") {
    ctx.Emit("Clip", {x, c("zero", 0), c("six", 6)}, {out});
  } else if (act == "LeakyRelu") {
    float alpha = ctx.HasAttr("leakyrelu_alpha") ? ctx.Float("leakyrelu_alpha", 0.2f)
                                                 : ctx.Float("alpha", 0.2f);
    ctx.Emit("LeakyRelu", {x}, {out}, {{"alpha", Attr::Float(alpha)}});
  } else if (act == "Prelu") {
    if (alpha_value.empty()) return ctx.Error("Prelu needs an alpha input");
    ctx.Emit("PRelu", {x, alpha_value}, {out});
  } else if (act == "Swish") {
    std::string s = ctx.EmitTemp("Sigmoid", {x});
    ctx.Emit("Mul", {x, s}, {out});
  } else if (act == "GeluExact") {  // 0.5 x (1 + erf(x / sqrt 2))
    std::string d = ctx.EmitTemp("Mul", {x, c("rsqrt2", 1.0 / std::sqrt(2.0))});
    std::string e = ctx.EmitTemp("Erf", {d});
    std::string p = ctx.EmitTemp("Add", {e, c("one", 1)});
    std::string m = ctx.EmitTemp("Mul", {x, p});
    ctx.Emit("Mul", {m, c("half", 0.5)}, {out});
  } else if (act == "GeluApproximate") {  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    std::string x3 = ctx.EmitTemp("Pow", {x, c("three", 3)});
    std::string k = ctx.EmitTemp("Mul", {x3, c("coef", 0.044715)});
    std::string s = ctx.EmitTemp("Add", {x, k});
    std::string u = ctx.EmitTemp("Mul", {s, c("sqrt2pi", std::sqrt(2.0 / std::numbers::pi))});
    std::string th = ctx.EmitTemp("Tanh", {u});
    std::string p = ctx.EmitTemp("Add", {th, c("one", 1)});
    std::string m = ctx.EmitTemp("Mul", {x, p});
    ctx.Emit("Mul", {m, c("half", 0.5)}, {out});
  } else {
    return ctx.Unsupported("fused activation " + act);
  }
  return Status::OK();
}

void RegisterTfNnHandlers(TfHandlerRegistry& r) {
  r.Register("Conv2D", [](TfNodeContext& c) { return Conv(c, false, false); });
  r.Register("_FusedConv2D", [](TfNodeContext& c) { return Conv(c, false, true); });
  r.Register("DepthwiseConv2dNative", [](TfNodeContext& c) { return Conv(c, true, false); });
  r.Register("FusedDepthwiseConv2dNative", [](TfNodeContext& c) { return Conv(c, true, true); });
  r.Register("_FusedDepthwiseConv2dNative",
             [](TfNodeContext& c) { return Conv(c, true, true); });
  r.Register("Conv2DBackpropInput", Conv2DBackpropInput);
  r.Register("BiasAdd", BiasAdd);
  r.Register("BiasAddV1", BiasAdd);
  r.Register("MaxPool", [](TfNodeContext& c) { return Pool(c, "MaxPool"); });
  r.Register("MaxPoolV2", [](TfNodeContext& c) { return Pool(c, "MaxPool"); });
  r.Register("AvgPool", [](TfNodeContext& c) { return Pool(c, "AveragePool"); });
  for (const char* op : {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"}) {
    r.Register(op, FusedBatchNorm);
  }
  r.Register("LRN", Lrn);
  r.Register("_FusedMatMul", FusedMatMul);
}

}  // namespace kiln::tfimport
