// Op family: elementwise — broadcasting arithmetic (Add Sub Mul Div Pow Mod BitShift), variadic
// Max Min Sum Mean, unary math, Cast/CastLike, Identity, Constant and Where.
//
// Integer arithmetic wraps (two's complement) rather than overflowing; integer division or
// modulo by zero is an InvalidArgument error. Float math ops compute float16/bfloat16 in float32
// (PromoteHalfToFloat).
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

using ew::BinaryToOutput;
using ew::CheckSameType;
using ew::MapFloat;
using ew::MapNumeric;

const TypeList& SignedNumericTypes() {
  static const TypeList t = {DataType::kFloat16, DataType::kBFloat16, DataType::kFloat32,
                             DataType::kFloat64, DataType::kInt8,     DataType::kInt16,
                             DataType::kInt32,   DataType::kInt64};
  return t;
}
const TypeList& UnsignedTypes() {
  static const TypeList t = {DataType::kUInt8, DataType::kUInt16, DataType::kUInt32,
                             DataType::kUInt64};
  return t;
}

template <typename T>
constexpr bool kIsInt = std::is_integral_v<T>;

// NaN-propagating max/min (numpy maximum/minimum semantics).
template <typename T>
T MaxOf(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return a;
    if (std::isnan(b)) return b;
  }
  return a < b ? b : a;
}
template <typename T>
T MinOf(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return a;
    if (std::isnan(b)) return b;
  }
  return b < a ? b : a;
}

// Truncating integer division; the divisor is known non-zero. INT_MIN / -1 wraps to INT_MIN.
template <typename T>
T IntDiv(T a, T b) {
  if constexpr (std::is_signed_v<T>) {
    if (b == T(-1)) return ew::WrapNeg(a);
  }
  return static_cast<T>(a / b);
}

// Integer remainder, the divisor known non-zero: sign of the dividend when `fmod`, else of
// the divisor (Python %).
template <typename T>
T IntMod(T a, T b, bool fmod) {
  if constexpr (std::is_signed_v<T>) {
    if (b == T(-1)) return T(0);
    T r = static_cast<T>(a % b);
    if (!fmod && r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
    return r;
  } else {
    (void)fmod;
    return static_cast<T>(a % b);
  }
}

template <typename T>
T FloatMod(T a, T b, bool fmod) {
  T r = std::fmod(a, b);
  if (!fmod && r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

// base^exponent for an integer base and integer exponent, by squaring, wrapping on overflow.
// A negative exponent gives the truncated 1/base^|e|: 0 except for base 1 and -1.
template <typename TB, typename TE>
TB IntPow(TB base, TE e) {
  if constexpr (std::is_signed_v<TE>) {
    if (e < 0) {
      if (base == TB(1)) return TB(1);
      if constexpr (std::is_signed_v<TB>) {
        if (base == TB(-1)) return (e % 2 == 0) ? TB(1) : TB(-1);
      }
      return TB(0);
    }
  }
  TB result = 1;
  using UE = std::make_unsigned_t<TE>;
  for (UE u = static_cast<UE>(e); u != 0; u >>= 1) {
    if (u & 1) result = ew::WrapMul(result, base);
    base = ew::WrapMul(base, base);
  }
  return result;
}

template <typename TB, typename TE>
TB PowValue(TB a, TE e) {
  if constexpr (std::is_same_v<TB, float> && std::is_same_v<TE, float>) {
    return std::pow(a, e);
  } else if constexpr (kIsInt<TB> && kIsInt<TE>) {
    return IntPow(a, e);
  } else {
    return ew::SaturateCast<TB>(std::pow(static_cast<double>(a), static_cast<double>(e)));
  }
}

// ----------------------------------------------------------------------------- binary ops

// Pow widens half inputs itself rather than through PromoteHalfToFloat, which would also
// narrow a float32 result to half when only the exponent is half.
Status PowKernel(KernelContext& ctx) {
  auto widen = [](const Tensor& t) -> StatusOr<Tensor> {
    const bool half = t.dtype() == DataType::kFloat16 || t.dtype() == DataType::kBFloat16;
    return half ? ConvertTensor(t, DataType::kFloat32) : StatusOr<Tensor>(t);
  };
  KILN_ASSIGN_OR_RETURN(Tensor base, widen(ctx.input(0)));
  KILN_ASSIGN_OR_RETURN(Tensor exponent, widen(ctx.input(1)));
  Tensor result;
  Status st = DispatchNumeric(base.dtype(), [&]<typename TB>() -> Status {
    return DispatchNumeric(exponent.dtype(), [&]<typename TE>() -> Status {
      KILN_ASSIGN_OR_RETURN(result, ew::BroadcastBinary<TB, TE, TB>(
                                        base, exponent, [](TB a, TE e) { return PowValue(a, e); }));
      return Status::OK();
    });
  });
  if (!st.ok()) return st.WithContext(ctx.node().Describe());
  if (result.dtype() != ctx.input(0).dtype()) {
    KILN_ASSIGN_OR_RETURN(result, ConvertTensor(result, ctx.input(0).dtype()));
  }
  ctx.SetOutput(0, std::move(result));
  return Status::OK();
}

// A two-input broadcasting op whose inputs share one type T (the kernel checks they match).
OpSchema BinarySchema(const char* name, const char* doc, const TypeList& types) {
  OpSchema s(name);
  s.Doc(doc)
      .Inputs(2, 2)
      .Outputs(1, 1)
      .InputTypes(0, types)
      .InputTypes(1, types)
      .PromoteHalfToFloat()
      .Infer(InferBroadcast);
  return s;
}

// Opset < 7 broadcasting attributes (`broadcast`, `axis`) are not declared: kiln reads opset 7+.
void RegisterArithmetic(OpRegistry& r) {
  MustRegister(r, BinarySchema("Add", "A + B with multidirectional broadcasting.", NumericTypes())
                      .Kernel([](KernelContext& ctx) -> Status {
                        KILN_RETURN_IF_ERROR(CheckSameType(ctx, 0, 1));
                        return DispatchNumeric(ctx.input(0).dtype(), [&]<typename T>() {
                          return BinaryToOutput<T, T, T>(
                              ctx, [](T a, T b) { return ew::WrapAdd(a, b); });
                        });
                      }));
  MustRegister(r, BinarySchema("Sub", "A - B with multidirectional broadcasting.", NumericTypes())
                      .Kernel([](KernelContext& ctx) -> Status {
                        KILN_RETURN_IF_ERROR(CheckSameType(ctx, 0, 1));
                        return DispatchNumeric(ctx.input(0).dtype(), [&]<typename T>() {
                          return BinaryToOutput<T, T, T>(
                              ctx, [](T a, T b) { return ew::WrapSub(a, b); });
                        });
                      }));
  MustRegister(r, BinarySchema("Mul", "A * B with multidirectional broadcasting.", NumericTypes())
                      .Kernel([](KernelContext& ctx) -> Status {
                        KILN_RETURN_IF_ERROR(CheckSameType(ctx, 0, 1));
                        return DispatchNumeric(ctx.input(0).dtype(), [&]<typename T>() {
                          return BinaryToOutput<T, T, T>(
                              ctx, [](T a, T b) { return ew::WrapMul(a, b); });
                        });
                      }));
  MustRegister(r,
               BinarySchema("Div",
                            "A / B with multidirectional broadcasting. Integer division truncates; "
                            "an integer divisor of zero is an error.",
                            NumericTypes())
                   .Kernel([](KernelContext& ctx) -> Status {
                     KILN_RETURN_IF_ERROR(CheckSameType(ctx, 0, 1));
                     return DispatchNumeric(ctx.input(0).dtype(), [&]<typename T>() -> Status {
                       if constexpr (kIsInt<T>) {
                         if (ew::AnyZero<T>(ctx.input(1)))
                           return ctx.Error("integer division by zero");
                         return BinaryToOutput<T, T, T>(ctx, [](T a, T b) { return IntDiv(a, b); });
                       } else {
                         return BinaryToOutput<T, T, T>(ctx, [](T a, T b) { return a / b; });
                       }
                     });
                   }));
  MustRegister(r,
               BinarySchema("Mod",
                            "Remainder with broadcasting: sign of the divisor (fmod=0) or of the "
                            "dividend (fmod=1, C fmod). An integer divisor of zero is an error.",
                            NumericTypes())
                   .AttrDefault("fmod", int64_t{0})
                   .Kernel([](KernelContext& ctx) -> Status {
                     KILN_RETURN_IF_ERROR(CheckSameType(ctx, 0, 1));
                     const int64_t fmod_attr = ctx.GetInt("fmod");
                     if (fmod_attr != 0 && fmod_attr != 1) {
                       return ctx.Error("fmod must be 0 or 1, got " + std::to_string(fmod_attr));
                     }
                     const bool fmod = fmod_attr == 1;
                     return DispatchNumeric(ctx.input(0).dtype(), [&]<typename T>() -> Status {
                       if constexpr (kIsInt<T>) {
                         if (ew::AnyZero<T>(ctx.input(1)))
                           return ctx.Error("integer modulo by zero");
                         return BinaryToOutput<T, T, T>(
                             ctx, [fmod](T a, T b) { return IntMod(a, b, fmod); });
                       } else {
                         return BinaryToOutput<T, T, T>(
                             ctx, [fmod](T a, T b) { return FloatMod(a, b, fmod); });
                       }
                     });
                   }));
  MustRegister(
      r, OpSchema("Pow")
             .Doc("X ^ Y with broadcasting; Y may have another numeric type. The output has "
                  "X's type; integer powers are exact (wrapping), float exponents of an integer "
                  "base truncate.")
             .Inputs(2, 2)
             .Outputs(1, 1)
             .InputTypes(0, NumericTypes())
             .InputTypes(1, NumericTypes())
             .Infer(InferBroadcast)
             .Kernel(PowKernel));
  MustRegister(r, BinarySchema("BitShift",
                               "Bitwise shift of unsigned integers; `direction` is LEFT or RIGHT. "
                               "Shifting by the bit width or more gives 0.",
                               UnsignedTypes())
                      .AttrNoDefault("direction", AttrType::kString, /*required=*/true)
                      .Kernel([](KernelContext& ctx) -> Status {
                        KILN_RETURN_IF_ERROR(CheckSameType(ctx, 0, 1));
                        const std::string dir = ctx.GetString("direction");
                        if (dir != "LEFT" && dir != "RIGHT") {
                          return ctx.Error("direction must be LEFT or RIGHT, got '" + dir + "'");
                        }
                        const bool left = dir == "LEFT";
                        return DispatchInteger(ctx.input(0).dtype(), [&]<typename T>() -> Status {
                          if constexpr (std::is_unsigned_v<T>) {
                            return BinaryToOutput<T, T, T>(ctx, [left](T a, T b) -> T {
                              constexpr T kBits = sizeof(T) * 8;
                              if (b >= kBits) return T(0);
                              using W = ew::WrapType<T>;
                              return static_cast<T>(left ? static_cast<W>(a) << b : a >> b);
                            });
                          } else {
                            return DispatchUnsupported(DataTypeOf<T>::value);
                          }
                        });
                      }));
}

// ----------------------------------------------------------------------------- variadic ops

// Folds inputs pairwise with broadcasting: out = f(...f(f(x0, x1), x2)..., xn).
template <typename T, typename F>
StatusOr<Tensor> FoldInputs(KernelContext& ctx, F f) {
  Tensor acc = ctx.input(0);
  for (int i = 1; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) return ctx.Error("input " + std::to_string(i) + " is missing");
    KILN_RETURN_IF_ERROR(CheckSameType(ctx, 0, i));
    StatusOr<Tensor> next = ew::BroadcastBinary<T, T, T>(acc, ctx.input(i), f);
    if (!next.ok()) return next.status().WithContext(ctx.node().Describe());
    acc = std::move(next).value();
  }
  return acc;
}

OpSchema VariadicSchema(const char* name, const char* doc, const TypeList& types) {
  OpSchema s(name);
  s.Doc(doc)
      .Inputs(1, OpSchema::kVariadic)
      .Outputs(1, 1)
      .InputTypes(0, types)
      .PromoteHalfToFloat()
      .Infer(InferBroadcast);
  return s;
}

void RegisterVariadic(OpRegistry& r) {
  auto fold_op = [](auto f_for_type) {
    return [f_for_type](KernelContext& ctx) -> Status {
      return DispatchNumeric(ctx.input(0).dtype(), [&]<typename T>() -> Status {
        KILN_ASSIGN_OR_RETURN(Tensor out, FoldInputs<T>(ctx, f_for_type.template operator()<T>()));
        ctx.SetOutput(0, std::move(out));
        return Status::OK();
      });
    };
  };
  MustRegister(
      r, VariadicSchema("Max",
                        "Element-wise maximum of the inputs (broadcasting; NaN "
                        "propagates).",
                        NumericTypes())
             .Kernel(fold_op([]<typename T>() { return [](T a, T b) { return MaxOf(a, b); }; })));
  MustRegister(
      r, VariadicSchema("Min",
                        "Element-wise minimum of the inputs (broadcasting; NaN "
                        "propagates).",
                        NumericTypes())
             .Kernel(fold_op([]<typename T>() { return [](T a, T b) { return MinOf(a, b); }; })));
  MustRegister(
      r, VariadicSchema("Sum", "Element-wise sum of the inputs (broadcasting).", NumericTypes())
             .Kernel(
                 fold_op([]<typename T>() { return [](T a, T b) { return ew::WrapAdd(a, b); }; })));
  MustRegister(
      r, VariadicSchema("Mean", "Element-wise mean of the inputs (broadcasting).", FloatTypes())
             .Kernel([](KernelContext& ctx) -> Status {
               return DispatchFloat(ctx.input(0).dtype(), [&]<typename T>() -> Status {
                 KILN_ASSIGN_OR_RETURN(Tensor out,
                                       FoldInputs<T>(ctx, [](T a, T b) { return a + b; }));
                 if (ctx.num_inputs() > 1) {  // else `out` is input 0 itself: leave it alone
                   const T count = static_cast<T>(ctx.num_inputs());
                   T* p = out.mutable_data<T>();
                   for (int64_t i = 0; i < out.num_elements(); ++i) p[i] /= count;
                 }
                 ctx.SetOutput(0, std::move(out));
                 return Status::OK();
               });
             }));
}

// ----------------------------------------------------------------------------- unary ops

template <typename F>
void FloatUnary(OpRegistry& r, const char* name, const char* doc, F f) {
  MustRegister(r, ew::FloatUnarySchema(name, doc).Kernel(
                      [f](KernelContext& ctx) { return MapFloat(ctx, f); }));
}

void RegisterUnaryMath(OpRegistry& r) {
  FloatUnary(r, "Exp", "e^x.", [](auto x) { return std::exp(x); });
  FloatUnary(r, "Log", "Natural logarithm.", [](auto x) { return std::log(x); });
  FloatUnary(r, "Sqrt", "Square root.", [](auto x) { return std::sqrt(x); });
  FloatUnary(r, "Reciprocal", "1 / x.", [](auto x) { return decltype(x)(1) / x; });
  FloatUnary(r, "Floor", "Round toward -inf.", [](auto x) { return std::floor(x); });
  FloatUnary(r, "Ceil", "Round toward +inf.", [](auto x) { return std::ceil(x); });
  FloatUnary(r, "Round", "Round to nearest, ties to even.",
             [](auto x) { return std::nearbyint(x); });
  FloatUnary(r, "Erf", "Gauss error function.", [](auto x) { return std::erf(x); });
  FloatUnary(r, "Sin", "Sine.", [](auto x) { return std::sin(x); });
  FloatUnary(r, "Cos", "Cosine.", [](auto x) { return std::cos(x); });
  FloatUnary(r, "Tan", "Tangent.", [](auto x) { return std::tan(x); });
  FloatUnary(r, "Asin", "Arcsine.", [](auto x) { return std::asin(x); });
  FloatUnary(r, "Acos", "Arccosine.", [](auto x) { return std::acos(x); });
  FloatUnary(r, "Atan", "Arctangent.", [](auto x) { return std::atan(x); });
  FloatUnary(r, "Sinh", "Hyperbolic sine.", [](auto x) { return std::sinh(x); });
  FloatUnary(r, "Cosh", "Hyperbolic cosine.", [](auto x) { return std::cosh(x); });
  FloatUnary(r, "Asinh", "Inverse hyperbolic sine.", [](auto x) { return std::asinh(x); });
  FloatUnary(r, "Acosh", "Inverse hyperbolic cosine.", [](auto x) { return std::acosh(x); });
  FloatUnary(r, "Atanh", "Inverse hyperbolic tangent.", [](auto x) { return std::atanh(x); });

  auto numeric_unary = [&r](const char* name, const char* doc, const TypeList& types, auto f) {
    MustRegister(r, OpSchema(name)
                        .Doc(doc)
                        .Inputs(1, 1)
                        .Outputs(1, 1)
                        .InputTypes(0, types)
                        .PromoteHalfToFloat()
                        .Infer(InferSameAsInput0)
                        .Kernel([f](KernelContext& ctx) { return MapNumeric(ctx, f); }));
  };
  numeric_unary("Neg", "-x (integers wrap: -INT_MIN == INT_MIN).", SignedNumericTypes(),
                [](auto x) { return ew::WrapNeg(x); });
  numeric_unary("Abs", "|x| (integers wrap: |INT_MIN| == INT_MIN).", NumericTypes(), [](auto x) {
    using T = decltype(x);
    if constexpr (std::is_unsigned_v<T>) {
      return x;
    } else {
      return x < T(0) ? ew::WrapNeg(x) : x;
    }
  });
  numeric_unary("Sign", "-1, 0 or 1 by the sign of x (NaN stays NaN).", NumericTypes(), [](auto x) {
    using T = decltype(x);
    if constexpr (std::is_unsigned_v<T>) {
      return x > T(0) ? T(1) : T(0);
    } else {
      return x > T(0) ? T(1) : (x < T(0) ? static_cast<T>(-1) : x);
    }
  });

  auto float_predicate = [&r](OpSchema s, auto make_pred) {
    MustRegister(r, s.Inputs(1, 1)
                        .Outputs(1, 1)
                        .InputTypes(0, FloatTypes())
                        .PromoteHalfToFloat()
                        .Infer([](InferContext& ctx) {
                          ctx.SetOutput(0, DataType::kBool, ctx.input_shape(0));
                          return Status::OK();
                        })
                        .Kernel([make_pred](KernelContext& ctx) {
                          auto pred = make_pred(ctx);
                          return DispatchFloat(ctx.input(0).dtype(), [&]<typename T>() -> Status {
                            return ew::MapToOutput<T, bool>(ctx, pred);
                          });
                        }));
  };
  float_predicate(OpSchema("IsNaN").Doc("True where x is NaN."),
                  [](const KernelContext&) { return [](auto x) { return std::isnan(x); }; });
  float_predicate(OpSchema("IsInf")
                      .Doc("True where x is +inf (detect_positive) or -inf (detect_negative).")
                      .AttrDefault("detect_negative", int64_t{1})
                      .AttrDefault("detect_positive", int64_t{1}),
                  [](const KernelContext& ctx) {
                    const bool neg = ctx.GetInt("detect_negative") != 0;
                    const bool pos = ctx.GetInt("detect_positive") != 0;
                    return [neg, pos](auto x) { return std::isinf(x) && (x > 0 ? pos : neg); };
                  });
}

// ----------------------------------------------------------------------------- type / data ops

Status CheckCastTarget(const AttrReader& ctx, int64_t to) {
  if (to > std::numeric_limits<int32_t>::max() || to < 0 ||
      !IsValidDataType(static_cast<int32_t>(to)) ||
      static_cast<DataType>(to) == DataType::kUndefined) {
    return ctx.UnimplementedError("cannot cast to data type " + std::to_string(to));
  }
  return Status::OK();
}

// The tensor a Constant node holds, from whichever one value attribute it sets.
StatusOr<Tensor> ConstantValue(const AttrReader& ctx) {
  static const char* const kValueAttrs[] = {"value",         "value_float", "value_floats",
                                            "value_int",     "value_ints",  "value_string",
                                            "value_strings", "sparse_value"};
  int count = 0;
  for (const char* a : kValueAttrs) count += ctx.HasAttr(a) ? 1 : 0;
  if (count != 1) {
    return ctx.Error("exactly one value attribute must be set, got " + std::to_string(count));
  }
  if (ctx.HasAttr("sparse_value")) {
    return ctx.UnimplementedError("sparse_value (sparse tensor constants) is not supported");
  }
  if (const Tensor* t = ctx.GetTensor("value")) return *t;
  if (ctx.HasAttr("value")) return ctx.Error("attribute 'value' holds no tensor");
  if (ctx.HasAttr("value_float")) return Tensor::Scalar<float>(ctx.GetFloat("value_float"));
  if (ctx.HasAttr("value_floats")) return Tensor::FromVector<float>(ctx.GetFloats("value_floats"));
  if (ctx.HasAttr("value_int")) return Tensor::Scalar<int64_t>(ctx.GetInt("value_int"));
  if (ctx.HasAttr("value_ints")) return Tensor::FromVector<int64_t>(ctx.GetInts("value_ints"));
  if (ctx.HasAttr("value_string")) {
    return Tensor::Scalar<std::string>(ctx.GetString("value_string"));
  }
  return Tensor::FromVector<std::string>(ctx.GetStrings("value_strings"));
}

void RegisterDataOps(OpRegistry& r) {
  MustRegister(
      r, OpSchema("Cast")
             .Doc("Converts to the data type `to` (ONNX Cast semantics: float->int truncates, "
                  "x->bool is x != 0, strings parse/print numbers).")
             .Inputs(1, 1)
             .Outputs(1, 1)
             .AttrNoDefault("to", AttrType::kInt, /*required=*/true)
             .Infer([](InferContext& ctx) -> Status {
               const int64_t to = ctx.GetInt("to");
               KILN_RETURN_IF_ERROR(CheckCastTarget(ctx, to));
               ctx.SetOutput(0, static_cast<DataType>(to), ctx.input_shape(0));
               return Status::OK();
             })
             .Kernel([](KernelContext& ctx) -> Status {
               const int64_t to = ctx.GetInt("to");
               KILN_RETURN_IF_ERROR(CheckCastTarget(ctx, to));
               StatusOr<Tensor> out = ConvertTensor(ctx.input(0), static_cast<DataType>(to));
               if (!out.ok()) return out.status().WithContext(ctx.node().Describe());
               ctx.SetOutput(0, std::move(out).value());
               return Status::OK();
             }));
  MustRegister(r, OpSchema("CastLike")
                      .Doc("Casts input 0 to the data type of input 1 (Cast semantics).")
                      .Inputs(2, 2)
                      .Outputs(1, 1)
                      .Infer([](InferContext& ctx) {
                        ctx.SetOutput(0, ctx.input_dtype(1), ctx.input_shape(0));
                        return Status::OK();
                      })
                      .Kernel([](KernelContext& ctx) -> Status {
                        StatusOr<Tensor> out = ConvertTensor(ctx.input(0), ctx.input(1).dtype());
                        if (!out.ok()) return out.status().WithContext(ctx.node().Describe());
                        ctx.SetOutput(0, std::move(out).value());
                        return Status::OK();
                      }));
  MustRegister(r, OpSchema("Identity")
                      .Doc("Output = input (any type, sequences and optionals too; shares the "
                           "input's storage).")
                      .Inputs(1, 1)
                      .Outputs(1, 1)
                      .NonTensorValues()
                      .Infer(InferSameAsInput0)
                      .Kernel([](KernelContext& ctx) {
                        ctx.SetOutput(0, ctx.input(0));
                        return Status::OK();
                      }));
  MustRegister(r, OpSchema("Constant")
                      .Doc("A constant tensor from exactly one of value, value_float(s), "
                           "value_int(s), value_string(s). sparse_value is not supported.")
                      .Inputs(0, 0)
                      .Outputs(1, 1)
                      .AttrNoDefault("value", AttrType::kTensor)
                      .AttrNoDefault("value_float", AttrType::kFloat)
                      .AttrNoDefault("value_floats", AttrType::kFloats)
                      .AttrNoDefault("value_int", AttrType::kInt)
                      .AttrNoDefault("value_ints", AttrType::kInts)
                      .AttrNoDefault("value_string", AttrType::kString)
                      .AttrNoDefault("value_strings", AttrType::kStrings)
                      .AttrNoDefault("sparse_value", AttrType::kTensor)
                      .Infer([](InferContext& ctx) -> Status {
                        KILN_ASSIGN_OR_RETURN(Tensor t, ConstantValue(ctx));
                        ctx.SetOutput(0, t.dtype(), t.shape());
                        return Status::OK();
                      })
                      .Kernel([](KernelContext& ctx) -> Status {
                        KILN_ASSIGN_OR_RETURN(Tensor t, ConstantValue(ctx));
                        ctx.SetOutput(0, std::move(t));
                        return Status::OK();
                      }));
  MustRegister(
      r, OpSchema("Where")
             .Doc("condition ? X : Y element-wise, broadcasting all three (any X/Y type).")
             .Inputs(3, 3)
             .Outputs(1, 1)
             .InputTypes(0, {DataType::kBool})
             .Infer([](InferContext& ctx) {
               ctx.SetOutput(
                   0, ctx.input_dtype(1),
                   BroadcastShapes({ctx.input_shape(0), ctx.input_shape(1), ctx.input_shape(2)}));
               return Status::OK();
             })
             .Kernel([](KernelContext& ctx) -> Status {
               KILN_RETURN_IF_ERROR(CheckSameType(ctx, 1, 2));
               const Tensor& c = ctx.input(0);
               const Tensor& x = ctx.input(1);
               const Tensor& y = ctx.input(2);
               StatusOr<std::vector<int64_t>> dims = BroadcastDims({c.dims(), x.dims(), y.dims()});
               if (!dims.ok()) return dims.status().WithContext(ctx.node().Describe());
               KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, x.dtype(), *dims));
               return DispatchAll(x.dtype(), [&]<typename T>() -> Status {
                 const bool* pc = c.data<bool>();
                 const T* px = x.data<T>();
                 const T* py = y.data<T>();
                 T* po = out->mutable_data<T>();
                 const int64_t n = out->num_elements();
                 if (c.num_elements() == n && x.num_elements() == n && y.num_elements() == n) {
                   for (int64_t i = 0; i < n; ++i) po[i] = pc[i] ? px[i] : py[i];
                   return Status::OK();
                 }
                 ForEachBroadcast(
                     *dims,
                     {BroadcastStrides(c.dims(), *dims), BroadcastStrides(x.dims(), *dims),
                      BroadcastStrides(y.dims(), *dims)},
                     [&](int64_t i, const int64_t* off) {
                       po[i] = pc[off[0]] ? px[off[1]] : py[off[2]];
                     });
                 return Status::OK();
               });
             }));
}

}  // namespace

void RegisterElementwiseOps(OpRegistry& r) {
  RegisterArithmetic(r);
  RegisterVariadic(r);
  RegisterUnaryMath(r);
  RegisterDataOps(r);
}

}  // namespace kiln
