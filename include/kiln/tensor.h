// kiln/tensor.h — data types, shapes and tensors.
//
// DataType values are ONNX's TensorProto.DataType numbers, so the ONNX importer maps them 1:1.
// Shape is a possibly-partial shape (unknown rank, or unknown dimensions as -1) used by the IR;
// a Tensor always has a concrete shape. Tensor storage is 64-byte aligned and shared: copying a
// Tensor copies a reference, Clone() copies the data.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kiln/status.h"

namespace kiln {

enum class DataType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kBFloat16 = 16,
};

// "float32", "int64", ... ; "undefined" for kUndefined.
const char* DataTypeName(DataType t);
// Parses the names DataTypeName returns, plus numpy-style aliases ("float", "half", "double").
std::optional<DataType> DataTypeFromName(const std::string& name);
// Size in bytes of one element; 0 for kUndefined and kString (strings are stored as objects).
size_t DataTypeSize(DataType t);
bool IsFloatingPoint(DataType t);  // float16, bfloat16, float32, float64
bool IsInteger(DataType t);        // signed and unsigned integers (not bool)
bool IsSignedInteger(DataType t);
bool IsValidDataType(int32_t value);

// IEEE half precision, stored as its bit pattern. Arithmetic goes through float.
struct Float16 {
  uint16_t bits = 0;
  Float16() = default;
  explicit Float16(float f);
  operator float() const;  // NOLINT: implicit widening is exact
  static Float16 FromBits(uint16_t b) {
    Float16 h;
    h.bits = b;
    return h;
  }
};

// bfloat16 (the upper 16 bits of an IEEE float32), round-to-nearest-even on conversion.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  explicit BFloat16(float f);
  operator float() const;  // NOLINT: implicit widening is exact
  static BFloat16 FromBits(uint16_t b) {
    BFloat16 h;
    h.bits = b;
    return h;
  }
};

// Maps a C++ type to its DataType.
template <typename T>
struct DataTypeOf;
#define KILN_DATATYPE_OF(T, DT) \
  template <>                   \
  struct DataTypeOf<T> {        \
    static constexpr DataType value = DataType::DT; \
  };
KILN_DATATYPE_OF(float, kFloat32)
KILN_DATATYPE_OF(double, kFloat64)
KILN_DATATYPE_OF(Float16, kFloat16)
KILN_DATATYPE_OF(BFloat16, kBFloat16)
KILN_DATATYPE_OF(int8_t, kInt8)
KILN_DATATYPE_OF(int16_t, kInt16)
KILN_DATATYPE_OF(int32_t, kInt32)
KILN_DATATYPE_OF(int64_t, kInt64)
KILN_DATATYPE_OF(uint8_t, kUInt8)
KILN_DATATYPE_OF(uint16_t, kUInt16)
KILN_DATATYPE_OF(uint32_t, kUInt32)
KILN_DATATYPE_OF(uint64_t, kUInt64)
KILN_DATATYPE_OF(bool, kBool)
KILN_DATATYPE_OF(std::string, kString)
#undef KILN_DATATYPE_OF

// A possibly-partial shape: unknown rank, or known rank with some dims unknown (-1).
class Shape {
 public:
  static constexpr int64_t kUnknownDim = -1;

  Shape() = default;  // unknown rank
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)), rank_known_(true) {}
  Shape(std::initializer_list<int64_t> dims) : dims_(dims), rank_known_(true) {}
  static Shape UnknownRank() { return Shape(); }
  static Shape Scalar() { return Shape(std::vector<int64_t>{}); }

  bool rank_known() const { return rank_known_; }
  // Rank; only meaningful when rank_known().
  int rank() const { return static_cast<int>(dims_.size()); }
  const std::vector<int64_t>& dims() const { return dims_; }
  int64_t dim(int i) const { return dims_[i]; }
  void set_dim(int i, int64_t d) { dims_[i] = d; }
  // True when the rank and every dimension are known.
  bool fully_known() const;
  // Element count, or -1 when not fully known.
  int64_t num_elements() const;
  // True when `concrete` could be a value of this shape.
  bool Accepts(const std::vector<int64_t>& concrete) const;
  // "[1,3,?,224]" or "[*]" for unknown rank.
  std::string ToString() const;

  bool operator==(const Shape& o) const {
    return rank_known_ == o.rank_known_ && dims_ == o.dims_;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }

 private:
  std::vector<int64_t> dims_;
  bool rank_known_ = false;
};

// "[2,3]" for a concrete dims vector.
std::string DimsToString(const std::vector<int64_t>& dims);
// Product of dims; Status error on negative dims or int64 overflow.
StatusOr<int64_t> CheckedNumElements(const std::vector<int64_t>& dims);

class Tensor {
 public:
  Tensor() = default;  // undefined: no dtype, no storage

  // Allocates a zero-filled tensor. Errors on negative dims, overflow or a size above the
  // KILN_MAX_TENSOR_BYTES cap (default 16 GiB).
  static StatusOr<Tensor> Create(DataType dtype, std::vector<int64_t> dims);
  // Like Create for sizes already validated by the caller (kernels computing output shapes).
  // Aborts via KILN_DCHECK only on kiln's own bugs; use Create for user-controlled sizes.
  static Tensor Empty(DataType dtype, std::vector<int64_t> dims);
  // A tensor from values; dims defaults to a 1-D shape of values.size().
  template <typename T>
  static Tensor FromVector(const std::vector<T>& values, std::vector<int64_t> dims = {},
                           bool dims_given = false);
  template <typename T>
  static Tensor Scalar(T value) {
    Tensor t = Empty(DataTypeOf<T>::value, {});
    *t.mutable_data<T>() = value;
    return t;
  }
  // Wraps memory owned elsewhere; `owner` keeps it alive. No copy.
  static Tensor Wrap(DataType dtype, std::vector<int64_t> dims, void* data,
                     std::shared_ptr<void> owner);
  // Wraps the memory of CUDA device `device` (a device pointer; `owner` keeps it alive). Such a
  // tensor's data() is a device address: only engines of that device read it (a CUDA engine
  // takes it without a host round trip); Session::Run copies it to the host for anything else,
  // and ToHost() does so for the caller. Feeding and fetching device tensors: RunOptions.
  // `device` is the CUDA ordinal (a negative value is taken as device 0).
  static Tensor WrapDevice(DataType dtype, std::vector<int64_t> dims, void* device_data,
                           std::shared_ptr<void> owner, int device);
  // True when the bytes live in a CUDA device's memory; device() is its ordinal (-1: host).
  bool on_device() const { return device_ >= 0; }
  int device() const { return device_; }
  // This tensor, or for a device tensor a host copy of it (through the copiers the CUDA
  // backend registers; an error in a build without one).
  StatusOr<Tensor> ToHost() const;
  // A copy of this tensor in CUDA device `device`'s memory (this tensor if it is already
  // there); an error in a build without the CUDA backend or without that device.
  StatusOr<Tensor> ToDevice(int device) const;

  // ONNX's non-tensor values travel through the runtime as Tensors too, so feeds, executor
  // slots, kernels and fetches keep one value type. A sequence (seq(tensor)) holds its items;
  // an empty optional ("none") holds nothing. Both report their element type as dtype() and
  // have no elements of their own (dims [0]). Only kernels whose schema declares
  // NonTensorValues() are given one (RunKernel rejects it elsewhere).
  static Tensor Sequence(DataType elem_type, std::vector<Tensor> items);
  static Tensor NoneOptional(DataType elem_type);
  bool is_tensor() const { return kind_ == Kind::kTensor; }
  bool is_sequence() const { return kind_ == Kind::kSequence; }
  bool is_none() const { return kind_ == Kind::kNone; }
  // The items of a sequence; empty for anything else.
  const std::vector<Tensor>& sequence() const;

  bool defined() const { return dtype_ != DataType::kUndefined; }
  DataType dtype() const { return dtype_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  int rank() const { return static_cast<int>(dims_.size()); }
  int64_t dim(int i) const { return dims_[i]; }
  int64_t num_elements() const { return num_elements_; }
  size_t nbytes() const { return static_cast<size_t>(num_elements_) * DataTypeSize(dtype_); }
  Shape shape() const { return Shape(dims_); }

  template <typename T>
  const T* data() const {
    return static_cast<const T*>(data_);
  }
  template <typename T>
  T* mutable_data() {
    return static_cast<T*>(data_);
  }
  const void* raw_data() const { return data_; }
  void* raw_mutable_data() { return data_; }

  // Same storage, new dims (element count must match).
  StatusOr<Tensor> Reshaped(std::vector<int64_t> dims) const;
  // Deep copy.
  Tensor Clone() const;
  // True when both hold the same dtype, dims and bytes (strings compared by value).
  bool BitwiseEqual(const Tensor& other) const;
  // Element i converted to double (numeric and bool dtypes).
  double GetAsDouble(int64_t i) const;
  // "float32[2,3]"; "seq(float32)[3 items]" for a sequence, "optional(float32)=none".
  std::string TypeString() const;
  // A short human-readable preview of the values.
  std::string DebugString(int max_values = 8) const;

 private:
  enum class Kind : uint8_t { kTensor, kSequence, kNone };
  Kind kind_ = Kind::kTensor;
  std::shared_ptr<const std::vector<Tensor>> items_;  // a sequence's items
  DataType dtype_ = DataType::kUndefined;
  std::vector<int64_t> dims_;
  int64_t num_elements_ = 0;
  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
  int device_ = -1;  // CUDA device ordinal of data_, -1: host memory
};

// How ToHost / ToDevice move bytes; registered by the CUDA backend when it is linked.
struct DeviceCopiers {
  // Copies `bytes` from device `device`'s memory to the host, synchronously.
  Status (*to_host)(void* host, const void* device_data, size_t bytes, int device) = nullptr;
  // A device copy of host tensor `t` on device `device`.
  StatusOr<Tensor> (*to_device)(const Tensor& t, int device) = nullptr;
};
void RegisterDeviceCopiers(DeviceCopiers copiers);

template <typename T>
Tensor Tensor::FromVector(const std::vector<T>& values, std::vector<int64_t> dims,
                          bool dims_given) {
  if (!dims_given && dims.empty()) dims = {static_cast<int64_t>(values.size())};
  Tensor t = Empty(DataTypeOf<T>::value, std::move(dims));
  T* out = t.mutable_data<T>();
  for (size_t i = 0; i < values.size() && static_cast<int64_t>(i) < t.num_elements(); ++i) {
    out[i] = values[i];
  }
  return t;
}

// Maximum bytes one tensor may have (KILN_MAX_TENSOR_BYTES, default 16 GiB).
int64_t MaxTensorBytes();

}  // namespace kiln
