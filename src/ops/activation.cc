// Op family: activation — Relu, LeakyRelu, PRelu, Elu, Selu, Celu, HardSigmoid, HardSwish,
// Sigmoid, Tanh, Softplus, Softsign, ThresholdedRelu, Mish, Gelu, Shrink, Clip.
//
// Float activations compute float16/bfloat16 in float32 (PromoteHalfToFloat). Attribute
// defaults are ONNX's. Relu, PRelu, Shrink and Clip also take integer types.
#include <cfloat>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/base/shape_util.h"
#include "ops/elementwise_util.h"

namespace kiln {
namespace {

using ew::FloatUnarySchema;
using ew::MapFloat;

// Numerically stable logistic function.
template <typename T>
T Sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

// Numerically stable log(1 + e^x).
template <typename T>
T Softplus(T x) {
  return x > T(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

// Registers a float activation whose kernel is built from the node's attributes:
// make(ctx) returns the element functor [](auto x) { ... }.
template <typename Make>
void Activation(OpRegistry& r, OpSchema schema, Make make) {
  MustRegister(r, std::move(schema).Kernel([make](KernelContext& ctx) {
    return MapFloat(ctx, make(static_cast<const AttrReader&>(ctx)));
  }));
}

void RegisterSimple(OpRegistry& r) {
  MustRegister(r, OpSchema("Relu")
                      .Doc("max(0, x).")
                      .Inputs(1, 1)
                      .Outputs(1, 1)
                      .InputTypes(0, {DataType::kFloat16, DataType::kBFloat16, DataType::kFloat32,
                                      DataType::kFloat64, DataType::kInt8, DataType::kInt16,
                                      DataType::kInt32, DataType::kInt64})
                      .PromoteHalfToFloat()
                      .Infer(InferSameAsInput0)
                      .Kernel([](KernelContext& ctx) {
                        return ew::MapNumeric(ctx, [](auto x) {
                          using T = decltype(x);
                          return x > T(0) ? x : T(0);
                        });
                      }));
  Activation(r, FloatUnarySchema("Sigmoid", "1 / (1 + e^-x)."),
             [](const AttrReader&) { return [](auto x) { return Sigmoid(x); }; });
  Activation(r, FloatUnarySchema("Tanh", "Hyperbolic tangent."),
             [](const AttrReader&) { return [](auto x) { return std::tanh(x); }; });
  Activation(r, FloatUnarySchema("Softplus", "log(1 + e^x)."),
             [](const AttrReader&) { return [](auto x) { return Softplus(x); }; });
  Activation(r, FloatUnarySchema("Softsign", "x / (1 + |x|)."), [](const AttrReader&) {
    return [](auto x) { return x / (decltype(x)(1) + std::fabs(x)); };
  });
  Activation(r, FloatUnarySchema("Mish", "x * tanh(softplus(x))."),
             [](const AttrReader&) { return [](auto x) { return x * std::tanh(Softplus(x)); }; });
  Activation(r, FloatUnarySchema("HardSwish", "x * max(0, min(1, x / 6 + 0.5))."),
             [](const AttrReader&) {
               return [](auto x) {
                 using T = decltype(x);
                 const T h = x / T(6) + T(0.5);
                 return x * (h < T(0) ? T(0) : (h > T(1) ? T(1) : h));
               };
             });
}

void RegisterParameterized(OpRegistry& r) {
  Activation(r,
             FloatUnarySchema("LeakyRelu", "x >= 0 ? x : alpha * x.").AttrDefault("alpha", 0.01f),
             [](const AttrReader& ctx) {
               const double alpha = ctx.GetFloat("alpha");
               return [alpha](auto x) {
                 using T = decltype(x);
                 return x >= T(0) ? x : static_cast<T>(alpha) * x;
               };
             });
  Activation(r,
             FloatUnarySchema("Elu", "x > 0 ? x : alpha * (e^x - 1).").AttrDefault("alpha", 1.0f),
             [](const AttrReader& ctx) {
               const double alpha = ctx.GetFloat("alpha");
               return [alpha](auto x) {
                 using T = decltype(x);
                 return x > T(0) ? x : static_cast<T>(alpha) * std::expm1(x);
               };
             });
  Activation(r,
             FloatUnarySchema("Selu", "gamma * (x > 0 ? x : alpha * (e^x - 1)).")
                 .AttrDefault("alpha", 1.67326319217681884765625f)
                 .AttrDefault("gamma", 1.05070102214813232421875f),
             [](const AttrReader& ctx) {
               const double alpha = ctx.GetFloat("alpha"), gamma = ctx.GetFloat("gamma");
               return [alpha, gamma](auto x) {
                 using T = decltype(x);
                 const T y = x > T(0) ? x : static_cast<T>(alpha) * std::expm1(x);
                 return static_cast<T>(gamma) * y;
               };
             });
  Activation(r,
             FloatUnarySchema("Celu", "max(0, x) + min(0, alpha * (e^(x/alpha) - 1)).")
                 .AttrDefault("alpha", 1.0f),
             [](const AttrReader& ctx) {
               const double alpha = ctx.GetFloat("alpha");
               return [alpha](auto x) {
                 using T = decltype(x);
                 const T a = static_cast<T>(alpha);
                 return x > T(0) ? x : a * std::expm1(x / a);
               };
             });
  Activation(r,
             FloatUnarySchema("HardSigmoid", "max(0, min(1, alpha * x + beta)).")
                 .AttrDefault("alpha", 0.2f)
                 .AttrDefault("beta", 0.5f),
             [](const AttrReader& ctx) {
               const double alpha = ctx.GetFloat("alpha"), beta = ctx.GetFloat("beta");
               return [alpha, beta](auto x) {
                 using T = decltype(x);
                 const T h = static_cast<T>(alpha) * x + static_cast<T>(beta);
                 return h < T(0) ? T(0) : (h > T(1) ? T(1) : h);
               };
             });
  Activation(r,
             FloatUnarySchema("ThresholdedRelu", "x > alpha ? x : 0.").AttrDefault("alpha", 1.0f),
             [](const AttrReader& ctx) {
               const double alpha = ctx.GetFloat("alpha");
               return [alpha](auto x) {
                 using T = decltype(x);
                 return x > static_cast<T>(alpha) ? x : T(0);
               };
             });
  Activation(r,
             FloatUnarySchema(
                 "Gelu", "x * Phi(x); approximate=\"tanh\" uses the tanh approximation (opset 20).")
                 .AttrDefault("approximate", "none"),
             [](const AttrReader& ctx) {
               const bool tanh_approx = ctx.GetString("approximate") == "tanh";
               return [tanh_approx](auto x) {
                 using T = decltype(x);
                 if (tanh_approx) {
                   const T k = static_cast<T>(0.7978845608028654);  // sqrt(2 / pi)
                   return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
                 }
                 return T(0.5) * x * (T(1) + std::erf(x * static_cast<T>(M_SQRT1_2)));
               };
             });
}

// PRelu: x < 0 ? slope * x : x, slope unidirectionally broadcast to x's shape.
Status PReluKernel(KernelContext& ctx) {
  KILN_RETURN_IF_ERROR(ew::CheckSameType(ctx, 0, 1));
  const Tensor& x = ctx.input(0);
  const Tensor& slope = ctx.input(1);
  StatusOr<std::vector<int64_t>> dims = BroadcastDims({x.dims(), slope.dims()});
  if (!dims.ok() || *dims != x.dims()) {
    return ctx.Error("slope shape " + DimsToString(slope.dims()) +
                     " does not broadcast to X shape " + DimsToString(x.dims()));
  }
  return DispatchNumeric(x.dtype(), [&]<typename T>() -> Status {
    return ew::BinaryToOutput<T, T, T>(ctx, [](T v, T s) {
      if constexpr (std::is_unsigned_v<T>) {
        (void)s;
        return v;
      } else {
        return v < T(0) ? ew::WrapMul(s, v) : v;
      }
    });
  });
}

// Reads a Clip bound input (a one-element tensor of x's type) into `value`.
template <typename T>
Status ReadBound(const KernelContext& ctx, int i, T* value) {
  if (!ctx.has_input(i)) return Status::OK();
  const Tensor& t = ctx.input(i);
  if (t.dtype() != ctx.input(0).dtype()) {
    return ctx.Error(std::string(i == 1 ? "min" : "max") + " has type " + DataTypeName(t.dtype()) +
                     ", expected " + DataTypeName(ctx.input(0).dtype()));
  }
  if (t.num_elements() != 1) {
    return ctx.Error(std::string(i == 1 ? "min" : "max") + " must be a scalar, got shape " +
                     DimsToString(t.dims()));
  }
  *value = t.data<T>()[0];
  return Status::OK();
}

// Clip: min/max are attributes before opset 11 and optional scalar inputs from opset 11.
// A bound above the other clamps everything to max (ONNX: min > max gives max). NaN passes.
Status ClipKernel(KernelContext& ctx) {
  return DispatchNumeric(ctx.input(0).dtype(), [&]<typename T>() -> Status {
    T lo = std::numeric_limits<T>::lowest();
    T hi = std::numeric_limits<T>::max();
    if (ctx.HasAttr("min") || ctx.HasAttr("max")) {
      if constexpr (!std::is_floating_point_v<T>) {
        return ctx.Error("min/max attributes (opset < 11) apply to float inputs only");
      } else {
        if (ctx.HasAttr("min")) lo = static_cast<T>(ctx.GetFloat("min"));
        if (ctx.HasAttr("max")) hi = static_cast<T>(ctx.GetFloat("max"));
      }
    }
    KILN_RETURN_IF_ERROR(ReadBound<T>(ctx, 1, &lo));
    KILN_RETURN_IF_ERROR(ReadBound<T>(ctx, 2, &hi));
    return ew::MapToOutput<T, T>(ctx, [lo, hi](T x) {
      const T y = x < lo ? lo : x;
      return y > hi ? hi : y;
    });
  });
}

void RegisterBinaryLike(OpRegistry& r) {
  MustRegister(r,
               OpSchema("Shrink")
                   .Doc("x < -lambd ? x + bias : (x > lambd ? x - bias : 0); integers computed in "
                        "double and truncated back.")
                   .Inputs(1, 1)
                   .Outputs(1, 1)
                   .AttrDefault("bias", 0.0f)
                   .AttrDefault("lambd", 0.5f)
                   .InputTypes(0, NumericTypes())
                   .PromoteHalfToFloat()
                   .Infer(InferSameAsInput0)
                   .Kernel([](KernelContext& ctx) {
                     const double bias = ctx.GetFloat("bias"), lambd = ctx.GetFloat("lambd");
                     return ew::MapNumeric(ctx, [bias, lambd](auto x) {
                       using T = decltype(x);
                       const double v = static_cast<double>(x);
                       const double y = v < -lambd ? v + bias : (v > lambd ? v - bias : 0.0);
                       return ew::SaturateCast<T>(y);
                     });
                   }));
  MustRegister(r, OpSchema("PRelu")
                      .Doc("x < 0 ? slope * x : x; slope broadcasts to X (unidirectional).")
                      .Inputs(2, 2)
                      .Outputs(1, 1)
                      .InputTypes(0, NumericTypes())
                      .InputTypes(1, NumericTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferSameAsInput0)
                      .Kernel(PReluKernel));
  MustRegister(r, OpSchema("Clip")
                      .Doc("Clamps to [min, max]: attributes before opset 11, optional scalar "
                           "inputs from opset 11 (integer types from opset 12).")
                      .Inputs(1, 3)
                      .Outputs(1, 1)
                      .AttrNoDefault("min", AttrType::kFloat)
                      .AttrNoDefault("max", AttrType::kFloat)
                      .InputTypes(0, NumericTypes())
                      .InputTypes(1, NumericTypes())
                      .InputTypes(2, NumericTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferSameAsInput0)
                      .Kernel(ClipKernel));
}

}  // namespace

void RegisterActivationOps(OpRegistry& r) {
  RegisterSimple(r);
  RegisterParameterized(r);
  RegisterBinaryLike(r);
}

}  // namespace kiln
