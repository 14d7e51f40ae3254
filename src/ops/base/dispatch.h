// Type dispatch for kernels: call a generic lambda with the C++ type of a DataType.
//
//   return DispatchNumeric(t.dtype(), [&]<typename T>() -> Status { ...T... });
//
// Each Dispatch* returns Unimplemented for dtypes outside its set.
#pragma once

#include <string>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

#define KILN_DISPATCH_CASE(DT, T) \
  case DataType::DT:              \
    return f.template operator()<T>();

inline Status DispatchUnsupported(DataType t) {
  return Unimplemented(std::string("data type ") + DataTypeName(t) + " is not supported here");
}

// float32, float64.
template <typename F>
Status DispatchFloat(DataType t, F&& f) {
  switch (t) {
    KILN_DISPATCH_CASE(kFloat32, float)
    KILN_DISPATCH_CASE(kFloat64, double)
    default: return DispatchUnsupported(t);
  }
}

// float32, float64, float16, bfloat16 (half types as storage; convert to float to compute).
template <typename F>
Status DispatchFloatAndHalf(DataType t, F&& f) {
  switch (t) {
    KILN_DISPATCH_CASE(kFloat32, float)
    KILN_DISPATCH_CASE(kFloat64, double)
    KILN_DISPATCH_CASE(kFloat16, Float16)
    KILN_DISPATCH_CASE(kBFloat16, BFloat16)
    default: return DispatchUnsupported(t);
  }
}

// Integer types.
template <typename F>
Status DispatchInteger(DataType t, F&& f) {
  switch (t) {
    KILN_DISPATCH_CASE(kInt8, int8_t)
    KILN_DISPATCH_CASE(kInt16, int16_t)
    KILN_DISPATCH_CASE(kInt32, int32_t)
    KILN_DISPATCH_CASE(kInt64, int64_t)
    KILN_DISPATCH_CASE(kUInt8, uint8_t)
    KILN_DISPATCH_CASE(kUInt16, uint16_t)
    KILN_DISPATCH_CASE(kUInt32, uint32_t)
    KILN_DISPATCH_CASE(kUInt64, uint64_t)
    default: return DispatchUnsupported(t);
  }
}

// float32, float64 and integers: the types arithmetic kernels compute in directly.
template <typename F>
Status DispatchNumeric(DataType t, F&& f) {
  switch (t) {
    KILN_DISPATCH_CASE(kFloat32, float)
    KILN_DISPATCH_CASE(kFloat64, double)
    KILN_DISPATCH_CASE(kInt8, int8_t)
    KILN_DISPATCH_CASE(kInt16, int16_t)
    KILN_DISPATCH_CASE(kInt32, int32_t)
    KILN_DISPATCH_CASE(kInt64, int64_t)
    KILN_DISPATCH_CASE(kUInt8, uint8_t)
    KILN_DISPATCH_CASE(kUInt16, uint16_t)
    KILN_DISPATCH_CASE(kUInt32, uint32_t)
    KILN_DISPATCH_CASE(kUInt64, uint64_t)
    default: return DispatchUnsupported(t);
  }
}

// Every fixed-size type (numeric, half, bool): for kernels that only move elements.
template <typename F>
Status DispatchAnyPod(DataType t, F&& f) {
  switch (t) {
    KILN_DISPATCH_CASE(kFloat32, float)
    KILN_DISPATCH_CASE(kFloat64, double)
    KILN_DISPATCH_CASE(kFloat16, Float16)
    KILN_DISPATCH_CASE(kBFloat16, BFloat16)
    KILN_DISPATCH_CASE(kInt8, int8_t)
    KILN_DISPATCH_CASE(kInt16, int16_t)
    KILN_DISPATCH_CASE(kInt32, int32_t)
    KILN_DISPATCH_CASE(kInt64, int64_t)
    KILN_DISPATCH_CASE(kUInt8, uint8_t)
    KILN_DISPATCH_CASE(kUInt16, uint16_t)
    KILN_DISPATCH_CASE(kUInt32, uint32_t)
    KILN_DISPATCH_CASE(kUInt64, uint64_t)
    KILN_DISPATCH_CASE(kBool, bool)
    default: return DispatchUnsupported(t);
  }
}

// DispatchAnyPod plus std::string.
template <typename F>
Status DispatchAll(DataType t, F&& f) {
  if (t == DataType::kString) return f.template operator()<std::string>();
  return DispatchAnyPod(t, std::forward<F>(f));
}

#undef KILN_DISPATCH_CASE

// Moves `count` elements of any dtype (strings copied as objects, others with memcpy).
void CopyElements(DataType t, const void* src, void* dst, int64_t count);
// Copies element `src_index` of `src` into element `dst_index` of `dst` (same dtype).
void CopyElement(const Tensor& src, int64_t src_index, Tensor* dst, int64_t dst_index);

// ONNX Cast semantics: float->int truncates toward zero, x->bool is x != 0, bool->x is 0/1,
// strings parse/print numbers. Returns a new tensor (or `in` itself when dtypes match).
StatusOr<Tensor> ConvertTensor(const Tensor& in, DataType to);

// Reads an integer tensor (int32/int64/...) as int64 values.
StatusOr<std::vector<int64_t>> ReadInt64s(const Tensor& t);
// Reads a numeric tensor as doubles.
std::vector<double> ReadDoubles(const Tensor& t);

}  // namespace kiln
