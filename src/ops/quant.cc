// Op family: quant — QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear.
//
// Linear quantization q = saturate(round_half_even(x / scale) + zero_point), x = (q - zp) *
// scale. Scale and zero point are per tensor (one element) or per axis (1-D, one per slice of
// dims[axis]).
#include <cmath>
#include <limits>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/base/shape_util.h"

namespace kiln {
namespace {

// How scale/zero-point elements map onto x: element e uses parameter (e / inner) % channels.
struct ParamLayout {
  int64_t channels = 1, inner = 1;
  int64_t index(int64_t e) const { return channels == 1 ? 0 : (e / inner) % channels; }
};

// Validates the scale (input 1) and zero point (input 2, optional) against x and `axis`.
StatusOr<ParamLayout> GetLayout(const KernelContext& ctx, const Tensor& x) {
  const Tensor& scale = ctx.input(1);
  ParamLayout layout;
  if (scale.num_elements() != 1 || scale.rank() > 1) {
    if (scale.rank() != 1) {
      return ctx.Error("scale must be a scalar or 1-D, got " + scale.TypeString());
    }
    KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.GetInt("axis"), x.rank(), ctx.node()));
    if (x.rank() == 0 || scale.dim(0) != x.dim(axis)) {
      return ctx.Error("per-axis scale has " + std::to_string(scale.num_elements()) +
                       " elements but input " + x.TypeString() + " has " +
                       (x.rank() == 0 ? "no axis" : std::to_string(x.dim(axis))) + " along axis " +
                       std::to_string(axis));
    }
    layout.channels = scale.dim(0);
    for (int i = axis + 1; i < x.rank(); ++i) layout.inner *= x.dim(i);
  }
  if (ctx.has_input(2) && ctx.input(2).num_elements() != scale.num_elements()) {
    return ctx.Error("zero point shape " + DimsToString(ctx.input(2).dims()) +
                     " does not match scale shape " + DimsToString(scale.dims()));
  }
  return layout;
}

// Saturates an already rounded value to Q's range (NaN gives 0).
template <typename Q>
Q Saturate(double rounded_plus_zp) {
  if (std::isnan(rounded_plus_zp)) return 0;
  constexpr double lo = std::numeric_limits<Q>::lowest(), hi = std::numeric_limits<Q>::max();
  return static_cast<Q>(rounded_plus_zp < lo ? lo : rounded_plus_zp > hi ? hi : rounded_plus_zp);
}

template <typename Q>
Status Quantize(const KernelContext& ctx, const Tensor& x, const ParamLayout& layout,
                const std::vector<double>& zp, Tensor* y) {
  const float* scale = ctx.input(1).data<float>();
  Q* out = y->mutable_data<Q>();
  return DispatchAnyPod(x.dtype(), [&]<typename T>() -> Status {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, int32_t>) {
      const T* in = x.data<T>();
      for (int64_t e = 0; e < x.num_elements(); ++e) {
        const int64_t c = layout.index(e);
        // float inputs divide in float32 (as ONNX's reference does); int32 in double.
        double q;
        if constexpr (std::is_same_v<T, float>) {
          q = std::nearbyint(in[e] / scale[c]);
        } else {
          q = std::nearbyint(static_cast<double>(in[e]) / static_cast<double>(scale[c]));
        }
        out[e] = std::isnan(q) ? static_cast<Q>(zp[c]) : Saturate<Q>(q + zp[c]);
      }
      return Status::OK();
    }
    return ctx.UnimplementedError(std::string("input type ") + DataTypeName(x.dtype()));
  });
}

Status QuantizeLinearKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(ParamLayout layout, GetLayout(ctx, x));
  const DataType qtype = ctx.has_input(2) ? ctx.input(2).dtype() : DataType::kUInt8;
  std::vector<double> zp(static_cast<size_t>(ctx.input(1).num_elements()), 0.0);
  if (ctx.has_input(2)) zp = ReadDoubles(ctx.input(2));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, qtype, x.dims()));
  if (qtype == DataType::kInt8) return Quantize<int8_t>(ctx, x, layout, zp, y);
  return Quantize<uint8_t>(ctx, x, layout, zp, y);
}

Status InferQuantizeLinear(InferContext& ctx) {
  const auto& names = ctx.node().inputs;
  const bool has_zp = names.size() > 2 && !names[2].empty();
  ctx.SetOutput(0, has_zp ? ctx.input_dtype(2) : DataType::kUInt8, ctx.input_shape(0));
  return Status::OK();
}

// y = (x - zero_point) * scale in float32 (half scales are promoted by the runtime, which
// converts the result back: opset 19's output type follows the scale).
Status DequantizeLinearKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (ctx.has_input(2) && ctx.input(2).dtype() != x.dtype()) {
    return ctx.Error(std::string("zero point type ") + DataTypeName(ctx.input(2).dtype()) +
                     " differs from input type " + DataTypeName(x.dtype()));
  }
  KILN_ASSIGN_OR_RETURN(ParamLayout layout, GetLayout(ctx, x));
  const float* scale = ctx.input(1).data<float>();
  std::vector<int64_t> zp(static_cast<size_t>(ctx.input(1).num_elements()), 0);
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(zp, ReadInt64s(ctx.input(2)));
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, DataType::kFloat32, x.dims()));
  float* out = y->mutable_data<float>();
  return DispatchInteger(x.dtype(), [&]<typename T>() -> Status {
    const T* in = x.data<T>();
    for (int64_t e = 0; e < x.num_elements(); ++e) {
      const int64_t c = layout.index(e);
      out[e] = static_cast<float>(static_cast<int64_t>(in[e]) - zp[c]) * scale[c];
    }
    return Status::OK();
  });
}

Status InferDequantizeLinear(InferContext& ctx) {
  const DataType s = ctx.input_dtype(1);
  ctx.SetOutput(0, s == DataType::kUndefined ? DataType::kFloat32 : s, ctx.input_shape(0));
  return Status::OK();
}

// uint8 quantization with the range [min(0, min x), max(0, max x)] mapped onto [0, 255].
Status DynamicQuantizeLinearKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const float* in = x.data<float>();
  float lo = 0, hi = 0;
  for (int64_t e = 0; e < x.num_elements(); ++e) {
    lo = std::min(lo, in[e]);
    hi = std::max(hi, in[e]);
  }
  if (!std::isfinite(lo) || !std::isfinite(hi)) {
    return ctx.Error("input contains infinite values; no finite scale exists");
  }
  const float scale = (hi - lo) / 255.0f;
  // An all-zero input has scale 0: every value quantizes to the zero point 0.
  const double zp = scale == 0 ? 0.0 : Saturate<uint8_t>(std::nearbyint(0.0f - lo / scale));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, DataType::kUInt8, x.dims()));
  uint8_t* out = y->mutable_data<uint8_t>();
  for (int64_t e = 0; e < x.num_elements(); ++e) {
    out[e] = scale == 0 ? 0 : Saturate<uint8_t>(std::nearbyint(in[e] / scale) + zp);
  }
  KILN_ASSIGN_OR_RETURN(Tensor * s, ctx.AllocateOutput(1, DataType::kFloat32, {}));
  *s->mutable_data<float>() = scale;
  KILN_ASSIGN_OR_RETURN(Tensor * z, ctx.AllocateOutput(2, DataType::kUInt8, {}));
  *z->mutable_data<uint8_t>() = static_cast<uint8_t>(zp);
  return Status::OK();
}

Status InferDynamicQuantizeLinear(InferContext& ctx) {
  ctx.SetOutput(0, DataType::kUInt8, ctx.input_shape(0));
  ctx.SetOutput(1, DataType::kFloat32, Shape::Scalar());
  ctx.SetOutput(2, DataType::kUInt8, Shape::Scalar());
  return Status::OK();
}

}  // namespace

void RegisterQuantOps(OpRegistry& r) {
  const TypeList qtypes = {DataType::kUInt8, DataType::kInt8};
  const TypeList scale_types = {DataType::kFloat32, DataType::kFloat16, DataType::kBFloat16};
  MustRegister(r, OpSchema("QuantizeLinear")
                      .Doc("saturate(round_half_even(x / y_scale) + y_zero_point); the output "
                           "type is the zero point's (uint8 when absent). Per-tensor or per-axis.")
                      .Inputs(2, 3)
                      .Outputs(1, 1)
                      .AttrDefault("axis", int64_t{1})
                      .InputTypes(0, {DataType::kFloat32, DataType::kInt32, DataType::kFloat16,
                                      DataType::kBFloat16})
                      .InputTypes(1, scale_types)
                      .InputTypes(2, qtypes)
                      .PromoteHalfToFloat()
                      .Infer(InferQuantizeLinear)
                      .Kernel(QuantizeLinearKernel));
  MustRegister(r, OpSchema("DequantizeLinear")
                      .Doc("(x - x_zero_point) * x_scale as float32; per-tensor or per-axis.")
                      .Inputs(2, 3)
                      .Outputs(1, 1)
                      .AttrDefault("axis", int64_t{1})
                      .InputTypes(0, {DataType::kUInt8, DataType::kInt8, DataType::kInt32})
                      .InputTypes(1, scale_types)
                      .InputTypes(2, {DataType::kUInt8, DataType::kInt8, DataType::kInt32})
                      .PromoteHalfToFloat(/*type_input=*/1)
                      .Infer(InferDequantizeLinear)
                      .Kernel(DequantizeLinearKernel));
  MustRegister(r, OpSchema("DynamicQuantizeLinear")
                      .Doc("uint8 quantization of x with scale and zero point computed from its "
                           "range (which always includes 0); outputs y, y_scale, y_zero_point.")
                      .Inputs(1, 1)
                      .Outputs(3, 3)
                      .InputTypes(0, {DataType::kFloat32})
                      .Infer(InferDynamicQuantizeLinear)
                      .Kernel(DynamicQuantizeLinearKernel));
}

}  // namespace kiln
