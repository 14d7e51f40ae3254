// Op family: logical — comparisons (Equal Less Greater LessOrEqual GreaterOrEqual), boolean
// And Or Xor Not, and the integer BitwiseAnd/Or/Xor/Not (opset 18). All binary ops broadcast
// multidirectionally. (Where lives in elementwise.cc.)
#include <string>
#include <utility>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/base/shape_util.h"
#include "ops/elementwise_util.h"

namespace kiln {
namespace {

TypeList NumericAndBool() {
  TypeList t = NumericTypes();
  t.push_back(DataType::kBool);
  return t;
}

const TypeList& IntegerTypes() {
  static const TypeList t = {DataType::kInt8,   DataType::kInt16, DataType::kInt32,
                             DataType::kInt64,  DataType::kUInt8, DataType::kUInt16,
                             DataType::kUInt32, DataType::kUInt64};
  return t;
}

// A comparison: numeric and bool inputs (strings too when `strings`), bool output. `cmp` is a
// generic lambda (a, b) -> bool.
template <typename Cmp>
void Comparison(OpRegistry& r, const char* name, const char* doc, bool strings, Cmp cmp) {
  TypeList types = strings ? AllTypes() : NumericAndBool();
  MustRegister(r, OpSchema(name)
                      .Doc(doc)
                      .Inputs(2, 2)
                      .Outputs(1, 1)
                      .InputTypes(0, types)
                      .InputTypes(1, types)
                      .PromoteHalfToFloat()
                      .Infer(InferBroadcastBool)
                      .Kernel([cmp](KernelContext& ctx) -> Status {
                        KILN_RETURN_IF_ERROR(ew::CheckSameType(ctx, 0, 1));
                        return DispatchAll(ctx.input(0).dtype(), [&]<typename T>() {
                          return ew::BinaryToOutput<T, T, bool>(
                              ctx, [&cmp](const T& a, const T& b) -> bool { return cmp(a, b); });
                        });
                      }));
}

// Calls f<T>() with T = bool (kBool) or the integer type of `t` (Bitwise*).
template <bool kBool, typename F>
Status DispatchLogical(DataType t, F&& f) {
  if constexpr (kBool) {
    if (t != DataType::kBool) return DispatchUnsupported(t);
    return f.template operator()<bool>();
  } else {
    return DispatchInteger(t, std::forward<F>(f));
  }
}

// A binary op on bool (And/Or/Xor, kBool) or on integers (Bitwise*); both inputs one type.
template <bool kBool, typename F>
void SameTypeBinary(OpRegistry& r, const char* name, const char* doc, const TypeList& types, F f) {
  MustRegister(r, OpSchema(name)
                      .Doc(doc)
                      .Inputs(2, 2)
                      .Outputs(1, 1)
                      .InputTypes(0, types)
                      .InputTypes(1, types)
                      .Infer(InferBroadcast)  // bool in, bool out for And/Or/Xor
                      .Kernel([f](KernelContext& ctx) -> Status {
                        KILN_RETURN_IF_ERROR(ew::CheckSameType(ctx, 0, 1));
                        return DispatchLogical<kBool>(ctx.input(0).dtype(), [&]<typename T>() {
                          return ew::BinaryToOutput<T, T, T>(
                              ctx, [&f](T a, T b) { return static_cast<T>(f(a, b)); });
                        });
                      }));
}

template <bool kBool, typename F>
void SameTypeUnary(OpRegistry& r, const char* name, const char* doc, const TypeList& types, F f) {
  MustRegister(r, OpSchema(name)
                      .Doc(doc)
                      .Inputs(1, 1)
                      .Outputs(1, 1)
                      .InputTypes(0, types)
                      .Infer(InferSameAsInput0)
                      .Kernel([f](KernelContext& ctx) -> Status {
                        return DispatchLogical<kBool>(ctx.input(0).dtype(), [&]<typename T>() {
                          return ew::MapToOutput<T, T>(ctx,
                                                       [&f](T a) { return static_cast<T>(f(a)); });
                        });
                      }));
}

}  // namespace

void RegisterLogicalOps(OpRegistry& r) {
  Comparison(r, "Equal", "A == B (numeric, bool or string).", /*strings=*/true,
             [](const auto& a, const auto& b) { return a == b; });
  Comparison(r, "Less", "A < B.", false, [](const auto& a, const auto& b) { return a < b; });
  Comparison(r, "Greater", "A > B.", false, [](const auto& a, const auto& b) { return b < a; });
  Comparison(r, "LessOrEqual", "A <= B (false where either is NaN).", false,
             [](const auto& a, const auto& b) { return a <= b; });
  Comparison(r, "GreaterOrEqual", "A >= B (false where either is NaN).", false,
             [](const auto& a, const auto& b) { return a >= b; });

  const TypeList kBoolType = {DataType::kBool};
  SameTypeBinary<true>(r, "And", "Logical A and B.", kBoolType,
                       [](auto a, auto b) { return a && b; });
  SameTypeBinary<true>(r, "Or", "Logical A or B.", kBoolType,
                       [](auto a, auto b) { return a || b; });
  SameTypeBinary<true>(r, "Xor", "Logical A xor B.", kBoolType,
                       [](auto a, auto b) { return a != b; });
  SameTypeUnary<true>(r, "Not", "Logical not.", kBoolType, [](auto a) { return !a; });

  SameTypeBinary<false>(r, "BitwiseAnd", "Bitwise A & B of integers.", IntegerTypes(),
                        [](auto a, auto b) { return a & b; });
  SameTypeBinary<false>(r, "BitwiseOr", "Bitwise A | B of integers.", IntegerTypes(),
                        [](auto a, auto b) { return a | b; });
  SameTypeBinary<false>(r, "BitwiseXor", "Bitwise A ^ B of integers.", IntegerTypes(),
                        [](auto a, auto b) { return a ^ b; });
  SameTypeUnary<false>(r, "BitwiseNot", "Bitwise ~A of integers.", IntegerTypes(),
                       [](auto a) { return ~a; });
}

}  // namespace kiln
