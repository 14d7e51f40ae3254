#include "kiln/tensor.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <new>
#include <sstream>

#include "core/logging.h"

namespace kiln {

// ----------------------------------------------------------------------------- DataType

const char* DataTypeName(DataType t) {
  switch (t) {
    case DataType::kUndefined: return "undefined";
    case DataType::kFloat32: return "float32";
    case DataType::kUInt8: return "uint8";
    case DataType::kInt8: return "int8";
    case DataType::kUInt16: return "uint16";
    case DataType::kInt16: return "int16";
    case DataType::kInt32: return "int32";
    case DataType::kInt64: return "int64";
    case DataType::kString: return "string";
    case DataType::kBool: return "bool";
    case DataType::kFloat16: return "float16";
    case DataType::kFloat64: return "float64";
    case DataType::kUInt32: return "uint32";
    case DataType::kUInt64: return "uint64";
    case DataType::kBFloat16: return "bfloat16";
  }
  return "invalid";
}

std::optional<DataType> DataTypeFromName(const std::string& name) {
  static const std::pair<const char*, DataType> kNames[] = {
      {"float32", DataType::kFloat32}, {"float", DataType::kFloat32},
      {"float16", DataType::kFloat16}, {"half", DataType::kFloat16},
      {"bfloat16", DataType::kBFloat16}, {"float64", DataType::kFloat64},
      {"double", DataType::kFloat64}, {"int8", DataType::kInt8},
      {"int16", DataType::kInt16}, {"int32", DataType::kInt32},
      {"int64", DataType::kInt64}, {"uint8", DataType::kUInt8},
      {"uint16", DataType::kUInt16}, {"uint32", DataType::kUInt32},
      {"uint64", DataType::kUInt64}, {"bool", DataType::kBool},
      {"string", DataType::kString},
  };
  for (const auto& [n, t] : kNames) {
    if (name == n) return t;
  }
  return std::nullopt;
}

size_t DataTypeSize(DataType t) {
  switch (t) {
    case DataType::kFloat32: return 4;
    case DataType::kUInt8: return 1;
    case DataType::kInt8: return 1;
    case DataType::kUInt16: return 2;
    case DataType::kInt16: return 2;
    case DataType::kInt32: return 4;
    case DataType::kInt64: return 8;
    case DataType::kBool: return 1;
    case DataType::kFloat16: return 2;
    case DataType::kFloat64: return 8;
    case DataType::kUInt32: return 4;
    case DataType::kUInt64: return 8;
    case DataType::kBFloat16: return 2;
    case DataType::kString:
    case DataType::kUndefined: return 0;
  }
  return 0;
}

bool IsFloatingPoint(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat64 || t == DataType::kFloat16 ||
         t == DataType::kBFloat16;
}

bool IsSignedInteger(DataType t) {
  return t == DataType::kInt8 || t == DataType::kInt16 || t == DataType::kInt32 ||
         t == DataType::kInt64;
}

bool IsInteger(DataType t) {
  return IsSignedInteger(t) || t == DataType::kUInt8 || t == DataType::kUInt16 ||
         t == DataType::kUInt32 || t == DataType::kUInt64;
}

bool IsValidDataType(int32_t v) {
  return (v >= 1 && v <= 13) || v == 16;
}

// ----------------------------------------------------------------------------- half types

Float16::Float16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mant = x & 0x7fffffu;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xff);
  if (exp == 0xff) {  // inf or nan
    bits = static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0));
    return;
  }
  int32_t e = exp - 127 + 15;
  if (e >= 0x1f) {  // overflow -> inf
    bits = static_cast<uint16_t>(sign | 0x7c00u);
    return;
  }
  if (e <= 0) {  // subnormal or zero
    if (e < -10) {
      bits = static_cast<uint16_t>(sign);
      return;
    }
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half_mant = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1))) ++half_mant;
    bits = static_cast<uint16_t>(sign | half_mant);
    return;
  }
  uint32_t half = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;  // may carry into exponent: ok
  bits = static_cast<uint16_t>(half);
}

Float16::operator float() const {
  uint32_t sign = (bits & 0x8000u) << 16;
  uint32_t exp = (bits >> 10) & 0x1f;
  uint32_t mant = bits & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      x = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

BFloat16::BFloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) {  // nan: keep it a quiet nan
    bits = static_cast<uint16_t>((x >> 16) | 0x40u);
    return;
  }
  uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  bits = static_cast<uint16_t>((x + rounding) >> 16);
}

BFloat16::operator float() const {
  uint32_t x = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// ----------------------------------------------------------------------------- Shape

bool Shape::fully_known() const {
  if (!rank_known_) return false;
  for (int64_t d : dims_) {
    if (d < 0) return false;
  }
  return true;
}

int64_t Shape::num_elements() const {
  if (!fully_known()) return -1;
  auto n = CheckedNumElements(dims_);
  return n.ok() ? *n : -1;
}

bool Shape::Accepts(const std::vector<int64_t>& concrete) const {
  if (!rank_known_) return true;
  if (concrete.size() != dims_.size()) return false;
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (dims_[i] >= 0 && dims_[i] != concrete[i]) return false;
  }
  return true;
}

std::string Shape::ToString() const {
  if (!rank_known_) return "[*]";
  std::string s = "[";
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (i) s += ",";
    s += dims_[i] < 0 ? std::string("?") : std::to_string(dims_[i]);
  }
  return s + "]";
}

std::string DimsToString(const std::vector<int64_t>& dims) { return Shape(dims).ToString(); }

StatusOr<int64_t> CheckedNumElements(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return InvalidArgument("negative dimension in shape " + DimsToString(dims));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) {
      return ResourceExhausted("element count of shape " + DimsToString(dims) +
                               " overflows int64");
    }
    n *= d;
  }
  return n;
}

// ----------------------------------------------------------------------------- Tensor

int64_t MaxTensorBytes() {
  static const int64_t cap = [] {
    const char* env = std::getenv("KILN_MAX_TENSOR_BYTES");
    if (env != nullptr && *env != '\0') {
      char* end = nullptr;
      long long v = std::strtoll(env, &end, 10);
      if (end != env && v > 0) return static_cast<int64_t>(v);
    }
    return static_cast<int64_t>(16) << 30;
  }();
  return cap;
}

namespace {

std::shared_ptr<void> AllocateStorage(DataType dtype, int64_t n, void** data) {
  if (dtype == DataType::kString) {
    auto* strings = new std::string[static_cast<size_t>(n > 0 ? n : 1)];
    *data = strings;
    return std::shared_ptr<void>(strings, [](void* p) { delete[] static_cast<std::string*>(p); });
  }
  size_t bytes = static_cast<size_t>(n) * DataTypeSize(dtype);
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (p == nullptr) return nullptr;
  std::memset(p, 0, rounded);
  *data = p;
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

}  // namespace

StatusOr<Tensor> Tensor::Create(DataType dtype, std::vector<int64_t> dims) {
  if (dtype == DataType::kUndefined || !IsValidDataType(static_cast<int32_t>(dtype))) {
    return InvalidArgument("cannot create a tensor of undefined data type");
  }
  KILN_ASSIGN_OR_RETURN(int64_t n, CheckedNumElements(dims));
  size_t elem = dtype == DataType::kString ? sizeof(std::string) : DataTypeSize(dtype);
  if (n > MaxTensorBytes() / static_cast<int64_t>(elem)) {
    return ResourceExhausted("tensor " + std::string(DataTypeName(dtype)) + DimsToString(dims) +
                             " exceeds the size cap of " + std::to_string(MaxTensorBytes()) +
                             " bytes (KILN_MAX_TENSOR_BYTES)");
  }
  Tensor t;
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  t.num_elements_ = n;
  t.storage_ = AllocateStorage(dtype, n, &t.data_);
  if (!t.storage_) {
    return ResourceExhausted("out of memory allocating " + t.TypeString());
  }
  return t;
}

Tensor Tensor::Empty(DataType dtype, std::vector<int64_t> dims) {
  auto t = Create(dtype, std::move(dims));
  KILN_DCHECK(t.ok());
  return std::move(t).value();
}

Tensor Tensor::Wrap(DataType dtype, std::vector<int64_t> dims, void* data,
                    std::shared_ptr<void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  int64_t n = 1;
  for (int64_t d : t.dims_) n *= d;
  t.num_elements_ = n;
  t.storage_ = std::move(owner);
  t.data_ = data;
  return t;
}

Tensor Tensor::WrapDevice(DataType dtype, std::vector<int64_t> dims, void* device_data,
                          std::shared_ptr<void> owner, int device) {
  Tensor t = Wrap(dtype, std::move(dims), device_data, std::move(owner));
  t.device_ = device < 0 ? 0 : device;
  return t;
}

namespace {
std::mutex g_copiers_mu;
DeviceCopiers g_copiers;
DeviceCopiers Copiers() {
  std::lock_guard<std::mutex> lock(g_copiers_mu);
  return g_copiers;
}
}  // namespace

void RegisterDeviceCopiers(DeviceCopiers copiers) {
  std::lock_guard<std::mutex> lock(g_copiers_mu);
  g_copiers = copiers;
}

StatusOr<Tensor> Tensor::ToHost() const {
  if (!on_device()) return *this;
  if (dtype_ == DataType::kString) return Internal("a string tensor on a CUDA device");
  if (!is_tensor()) return Internal("a sequence or optional on a CUDA device");
  DeviceCopiers c = Copiers();
  if (c.to_host == nullptr) {
    return FailedPrecondition("tensor " + TypeString() + " lives on CUDA device " +
                              std::to_string(device_) + ", and this kiln has no CUDA backend");
  }
  KILN_ASSIGN_OR_RETURN(Tensor t, Create(dtype_, dims_));
  if (nbytes() > 0) {
    KILN_RETURN_IF_ERROR(c.to_host(t.data_, data_, nbytes(), device_));
  }
  return t;
}

StatusOr<Tensor> Tensor::ToDevice(int device) const {
  if (device < 0) return InvalidArgument("ToDevice: no device " + std::to_string(device));
  if (on_device() && device_ == device) return *this;
  if (!is_tensor() || dtype_ == DataType::kString) {
    return InvalidArgument("ToDevice: " + TypeString() + " cannot live on a CUDA device");
  }
  KILN_ASSIGN_OR_RETURN(Tensor host, ToHost());
  DeviceCopiers c = Copiers();
  if (c.to_device == nullptr) {
    return FailedPrecondition("ToDevice: this kiln has no CUDA backend");
  }
  return c.to_device(host, device);
}

Tensor Tensor::Sequence(DataType elem_type, std::vector<Tensor> items) {
  Tensor t;
  t.kind_ = Kind::kSequence;
  t.dtype_ = elem_type;
  t.dims_ = {0};
  t.items_ = std::make_shared<const std::vector<Tensor>>(std::move(items));
  return t;
}

Tensor Tensor::NoneOptional(DataType elem_type) {
  Tensor t;
  t.kind_ = Kind::kNone;
  t.dtype_ = elem_type;
  t.dims_ = {0};
  return t;
}

const std::vector<Tensor>& Tensor::sequence() const {
  static const std::vector<Tensor> kEmpty;
  return items_ ? *items_ : kEmpty;
}

StatusOr<Tensor> Tensor::Reshaped(std::vector<int64_t> dims) const {
  KILN_ASSIGN_OR_RETURN(int64_t n, CheckedNumElements(dims));
  if (n != num_elements_) {
    return InvalidArgument("cannot reshape " + TypeString() + " to " + DimsToString(dims));
  }
  Tensor t = *this;
  t.dims_ = std::move(dims);
  return t;
}

Tensor Tensor::Clone() const {
  if (!defined()) return Tensor();
  if (is_none()) return *this;
  if (is_sequence()) {
    std::vector<Tensor> items;
    for (const Tensor& item : sequence()) items.push_back(item.Clone());
    return Sequence(dtype_, std::move(items));
  }
  if (on_device()) {  // a host copy: Clone is a host operation
    StatusOr<Tensor> h = ToHost();
    if (!h.ok()) {
      KILN_LOG(ERROR) << "Tensor::Clone: " << h.status().message();
      return Tensor();
    }
    return *std::move(h);
  }
  Tensor t = Empty(dtype_, dims_);
  if (dtype_ == DataType::kString) {
    for (int64_t i = 0; i < num_elements_; ++i) {
      t.mutable_data<std::string>()[i] = data<std::string>()[i];
    }
  } else if (nbytes() > 0) {
    std::memcpy(t.data_, data_, nbytes());
  }
  return t;
}

bool Tensor::BitwiseEqual(const Tensor& o) const {
  if (kind_ != o.kind_ || dtype_ != o.dtype_ || dims_ != o.dims_) return false;
  if (on_device() || o.on_device()) {
    StatusOr<Tensor> a = ToHost(), b = o.ToHost();
    return a.ok() && b.ok() && a->BitwiseEqual(*b);
  }
  if (is_sequence()) {
    if (sequence().size() != o.sequence().size()) return false;
    for (size_t k = 0; k < sequence().size(); ++k) {
      if (!sequence()[k].BitwiseEqual(o.sequence()[k])) return false;
    }
    return true;
  }
  if (dtype_ == DataType::kString) {
    for (int64_t i = 0; i < num_elements_; ++i) {
      if (data<std::string>()[i] != o.data<std::string>()[i]) return false;
    }
    return true;
  }
  return nbytes() == 0 || std::memcmp(data_, o.data_, nbytes()) == 0;
}

double Tensor::GetAsDouble(int64_t i) const {
  switch (dtype_) {
    case DataType::kFloat32: return data<float>()[i];
    case DataType::kFloat64: return data<double>()[i];
    case DataType::kFloat16: return static_cast<float>(data<Float16>()[i]);
    case DataType::kBFloat16: return static_cast<float>(data<BFloat16>()[i]);
    case DataType::kInt8: return data<int8_t>()[i];
    case DataType::kInt16: return data<int16_t>()[i];
    case DataType::kInt32: return data<int32_t>()[i];
    case DataType::kInt64: return static_cast<double>(data<int64_t>()[i]);
    case DataType::kUInt8: return data<uint8_t>()[i];
    case DataType::kUInt16: return data<uint16_t>()[i];
    case DataType::kUInt32: return data<uint32_t>()[i];
    case DataType::kUInt64: return static_cast<double>(data<uint64_t>()[i]);
    case DataType::kBool: return data<bool>()[i] ? 1.0 : 0.0;
    default: return std::nan("");
  }
}

std::string Tensor::TypeString() const {
  if (is_sequence()) {
    return "seq(" + std::string(DataTypeName(dtype_)) + ")[" + std::to_string(sequence().size()) +
           " items]";
  }
  if (is_none()) return "optional(" + std::string(DataTypeName(dtype_)) + ")=none";
  return std::string(DataTypeName(dtype_)) + DimsToString(dims_);
}

std::string Tensor::DebugString(int max_values) const {
  if (on_device()) {
    StatusOr<Tensor> h = ToHost();
    return h.ok() ? h->DebugString(max_values) + " (on cuda:" + std::to_string(device_) + ")"
                  : TypeString() + " on cuda:" + std::to_string(device_);
  }
  std::ostringstream os;
  os << TypeString() << " {";
  int64_t n = std::min<int64_t>(num_elements_, max_values);
  for (int64_t i = 0; i < n; ++i) {
    if (i) os << ", ";
    if (dtype_ == DataType::kString) {
      os << '"' << data<std::string>()[i] << '"';
    } else {
      os << GetAsDouble(i);
    }
  }
  if (num_elements_ > n) os << ", ...";
  os << "}";
  return os.str();
}

}  // namespace kiln
