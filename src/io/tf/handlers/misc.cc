// TF image, selection and quantization ops: ResizeBilinear / ResizeNearestNeighbor, TopKV2,
// NonMaxSuppressionV2..V5, FakeQuantWithMinMaxVars/Args, QuantizeAndDequantizeV2/V3/V4.
#include "io/tf/handlers/handler.h"

namespace kiln::tfimport {
namespace {

Attr I(int64_t v) { return Attr::Int(v); }
Attr Is(std::vector<int64_t> v) { return Attr::Ints(std::move(v)); }
Attr S(const std::string& v) { return Attr::String(v); }
Attr DT(DataType t) { return Attr::Int(static_cast<int64_t>(t)); }

// images are NHWC; `size` is [new_height, new_width]: Resize on axes 1 and 2.
Status Resize(TfNodeContext& ctx, bool bilinear) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  const bool align = ctx.Bool("align_corners", false);
  const bool half = ctx.Bool("half_pixel_centers", false);
  if (align && half) return ctx.Error("align_corners and half_pixel_centers are both set");
  AttrMap attrs = {{"axes", Is({1, 2})}, {"mode", S(bilinear ? "linear" : "nearest")}};
  if (bilinear) {
    attrs["coordinate_transformation_mode"] =
        S(align ? "align_corners" : half ? "half_pixel" : "asymmetric");
  } else {
    attrs["coordinate_transformation_mode"] =
        S(align ? "align_corners" : half ? "tf_half_pixel_for_nn" : "asymmetric");
    attrs["nearest_mode"] = S(align ? "round_prefer_ceil" : "floor");
  }
  std::string x = ctx.input(0);
  DataType in_t = ctx.input_dtype(0);
  // TF's ResizeBilinear always returns float32.
  if (bilinear && in_t != DataType::kFloat32 && in_t != DataType::kUndefined) {
    x = ctx.EmitTemp("Cast", {x}, {{"to", DT(DataType::kFloat32)}});
  }
  ctx.Emit("Resize", {x, "", "", ctx.Int64Vector(1)}, {ctx.Output(0)}, attrs);
  ctx.SetOutputType(0, bilinear ? DataType::kFloat32 : in_t, 4);
  return Status::OK();
}

Status TopK(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  std::string idx = ctx.Temp("indices");
  ctx.Emit("TopK", {ctx.input(0), ctx.Int64Vector(1)}, {ctx.Output(0), idx},
           {{"axis", I(-1)}, {"largest", I(1)}, {"sorted", I(1)}});
  ctx.Emit("Cast", {idx}, {ctx.Output(1)}, {{"to", DT(DataType::kInt32)}});
  ctx.SetOutputType(0, ctx.input_dtype(0), ctx.input_rank(0));
  ctx.SetOutputType(1, DataType::kInt32, ctx.input_rank(0));
  return Status::OK();
}

// A float input as a 1-element vector (ONNX NMS takes [1] thresholds).
std::string AsVector(TfNodeContext& ctx, int i) {
  std::string x = ctx.input(i);
  if (ctx.input_dtype(i) != DataType::kFloat32) {
    x = ctx.EmitTemp("Cast", {x}, {{"to", DT(DataType::kFloat32)}});
  }
  return ctx.EmitTemp("Reshape", {x, ctx.Const("shape", Tensor::FromVector<int64_t>({1}))});
}

Status Nms(TfNodeContext& ctx) {
  const std::string& op = ctx.op();
  const bool v2 = op == "NonMaxSuppressionV2", v5 = op == "NonMaxSuppressionV5";
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(v2 ? 4 : v5 ? 6 : 5));
  if (v5) {
    const Tensor* sigma = ctx.const_input(5);
    if (!sigma || sigma->num_elements() != 1 || sigma->GetAsDouble(0) != 0.0) {
      return ctx.Unsupported("soft NMS (soft_nms_sigma must be a constant 0)");
    }
  }
  std::string boxes = ctx.EmitTemp(
      "Unsqueeze", {ctx.input(0), ctx.Const("axes", Tensor::FromVector<int64_t>({0}))});
  std::string scores = ctx.EmitTemp(
      "Unsqueeze", {ctx.input(1), ctx.Const("axes", Tensor::FromVector<int64_t>({0, 1}))});
  std::string max_out = ctx.Int64Vector(2);
  std::vector<std::string> in = {boxes, scores, max_out, AsVector(ctx, 3)};
  if (!v2) in.push_back(AsVector(ctx, 4));
  std::string sel = ctx.EmitTemp("NonMaxSuppression", in, {{"center_point_box", I(0)}});
  std::string idx = ctx.EmitTemp(
      "Gather", {sel, ctx.Const("column", Tensor::Scalar<int64_t>(2))}, {{"axis", I(1)}});
  const bool pad = op == "NonMaxSuppressionV4" && ctx.Bool("pad_to_max_output_size", false);
  std::string count = ctx.EmitTemp("Shape", {idx});  // [1] int64
  if (pad) {  // zero-pad the indices to max_output_size
    std::string missing = ctx.EmitTemp("Sub", {max_out, count});
    std::string pads = ctx.EmitTemp(
        "Concat", {ctx.Const("zero", Tensor::FromVector<int64_t>({0})), missing}, {{"axis", I(0)}});
    idx = ctx.EmitTemp("Pad", {idx, pads}, {{"mode", S("constant")}});
  }
  ctx.Emit("Cast", {idx}, {ctx.Output(0)}, {{"to", DT(DataType::kInt32)}});
  ctx.SetOutputType(0, DataType::kInt32, 1);
  int valid_k = v5 ? 2 : 1;
  if (v5 && ctx.OutputUsed(1)) {
    ctx.Emit("Gather", {ctx.input(1), idx}, {ctx.Output(1)}, {{"axis", I(0)}});
  }
  if ((v5 || op == "NonMaxSuppressionV4") && ctx.OutputUsed(valid_k)) {
    std::string scalar = ctx.EmitTemp("Squeeze", {count});
    ctx.Emit("Cast", {scalar}, {ctx.Output(valid_k)}, {{"to", DT(DataType::kInt32)}});
  }
  return Status::OK();
}

Status FakeQuant(TfNodeContext& ctx, bool vars) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(vars ? 3 : 1));
  std::string lo, hi;
  if (vars) {
    lo = ctx.input(1);
    hi = ctx.input(2);
  } else {
    lo = ctx.Const("min", Tensor::Scalar<float>(ctx.Float("min", -6.0f)));
    hi = ctx.Const("max", Tensor::Scalar<float>(ctx.Float("max", 6.0f)));
  }
  ctx.Emit("FakeQuantWithMinMax", {ctx.input(0), lo, hi}, {ctx.Output(0)},
           {{"num_bits", I(ctx.Int("num_bits", 8))},
            {"narrow_range", I(ctx.Bool("narrow_range", false))}},
           "kiln");
  ctx.SetOutputType(0, DataType::kFloat32, ctx.input_rank(0));
  return Status::OK();
}

Status QuantizeAndDequantize(TfNodeContext& ctx) {
  const bool v3 = ctx.op() == "QuantizeAndDequantizeV3";
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(v3 ? 4 : 3));
  if (ctx.Int("axis", -1) != -1) return ctx.Unsupported("per-axis quantization (axis != -1)");
  std::string round = ctx.Str("round_mode", "HALF_TO_EVEN");
  if (round != "HALF_TO_EVEN" && round != "HALF_UP") return ctx.Unsupported("round_mode " + round);
  int64_t bits = ctx.Int("num_bits", 8);
  if (v3) {
    auto b = ctx.ConstInts(3);
    if (!b || b->size() != 1) return ctx.Unsupported("num_bits must be a constant");
    bits = (*b)[0];
  }
  ctx.Emit("QuantizeAndDequantize", {ctx.input(0), ctx.input(1), ctx.input(2)}, {ctx.Output(0)},
           {{"num_bits", I(bits)},
            {"signed_input", I(ctx.Bool("signed_input", true))},
            {"range_given", I(ctx.Bool("range_given", false))},
            {"narrow_range", I(ctx.Bool("narrow_range", false))},
            {"round_mode", S(round)}},
           "kiln");
  ctx.SetOutputType(0, ctx.input_dtype(0), ctx.input_rank(0));
  return Status::OK();
}

}  // namespace

void RegisterTfMiscHandlers(TfHandlerRegistry& r) {
  r.Register("ResizeBilinear", [](TfNodeContext& c) { return Resize(c, true); });
  r.Register("ResizeNearestNeighbor", [](TfNodeContext& c) { return Resize(c, false); });
  r.Register("TopKV2", TopK);
  for (const char* op : {"NonMaxSuppressionV2", "NonMaxSuppressionV3", "NonMaxSuppressionV4",
                         "NonMaxSuppressionV5"}) {
    r.Register(op, Nms);
  }
  r.Register("FakeQuantWithMinMaxVars", [](TfNodeContext& c) { return FakeQuant(c, true); });
  r.Register("FakeQuantWithMinMaxArgs", [](TfNodeContext& c) { return FakeQuant(c, false); });
  for (const char* op : {"QuantizeAndDequantizeV2", "QuantizeAndDequantizeV3",
                         "QuantizeAndDequantizeV4"}) {
    r.Register(op, QuantizeAndDequantize);
  }
}

}  // namespace kiln::tfimport
