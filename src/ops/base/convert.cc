#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <type_traits>

#include "ops/base/dispatch.h"

namespace kiln {

void CopyElements(DataType t, const void* src, void* dst, int64_t count) {
  if (count <= 0) return;
  if (t == DataType::kString) {
    const auto* s = static_cast<const std::string*>(src);
    auto* d = static_cast<std::string*>(dst);
    for (int64_t i = 0; i < count; ++i) d[i] = s[i];
    return;
  }
  std::memcpy(dst, src, static_cast<size_t>(count) * DataTypeSize(t));
}

void CopyElement(const Tensor& src, int64_t src_index, Tensor* dst, int64_t dst_index) {
  if (src.dtype() == DataType::kString) {
    dst->mutable_data<std::string>()[dst_index] = src.data<std::string>()[src_index];
    return;
  }
  size_t sz = DataTypeSize(src.dtype());
  std::memcpy(static_cast<char*>(dst->raw_mutable_data()) + dst_index * sz,
              static_cast<const char*>(src.raw_data()) + src_index * sz, sz);
}

namespace {

template <typename T>
double ToDouble(T v) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
    return static_cast<float>(v);
  } else {
    return static_cast<double>(v);
  }
}

template <typename To>
To FromDouble(double v) {
  if constexpr (std::is_same_v<To, bool>) {
    return v != 0.0;
  } else if constexpr (std::is_same_v<To, Float16> || std::is_same_v<To, BFloat16>) {
    return To(static_cast<float>(v));
  } else if constexpr (std::is_floating_point_v<To>) {
    return static_cast<To>(v);
  } else {
    // Float -> integer: truncate toward zero; out-of-range and NaN are undefined in ONNX —
    // saturate so the result is at least deterministic and UB-free.
    if (std::isnan(v)) return To(0);
    double t = std::trunc(v);
    if (t <= static_cast<double>(std::numeric_limits<To>::lowest())) {
      return std::numeric_limits<To>::lowest();
    }
    if (t >= static_cast<double>(std::numeric_limits<To>::max())) {
      return std::numeric_limits<To>::max();
    }
    return static_cast<To>(t);
  }
}

template <typename From, typename To>
void ConvertLoop(const From* in, To* out, int64_t n) {
  constexpr bool kBothIntegral = std::is_integral_v<From> && std::is_integral_v<To> &&
                                 !std::is_same_v<To, bool>;
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (kBothIntegral) {
      out[i] = static_cast<To>(in[i]);  // two's complement wrap, as numpy and ORT do
    } else if constexpr (std::is_same_v<From, float> && std::is_same_v<To, double>) {
      out[i] = in[i];
    } else {
      out[i] = FromDouble<To>(ToDouble(in[i]));
    }
  }
}

template <typename T>
std::string FormatNumber(T v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "1" : "0";
  } else if constexpr (std::is_integral_v<T>) {
    return std::to_string(v);
  } else {
    double d = ToDouble(v);
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "INF" : "-INF";
    // Shortest text that reads back to the same value (as numpy prints it).
    char buf[64];
    std::to_chars_result r;
    if constexpr (std::is_same_v<T, double>) {
      r = std::to_chars(buf, buf + sizeof buf, d);
    } else {
      r = std::to_chars(buf, buf + sizeof buf, static_cast<float>(d));
    }
    return std::string(buf, r.ptr);
  }
}

double ParseNumber(const std::string& s) {
  std::string v = s;
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (v == "nan" || v == "+nan" || v == "-nan") return std::nan("");
  if (v == "inf" || v == "+inf" || v == "infinity" || v == "+infinity") {
    return std::numeric_limits<double>::infinity();
  }
  if (v == "-inf" || v == "-infinity") return -std::numeric_limits<double>::infinity();
  return std::strtod(s.c_str(), nullptr);
}

}  // namespace

StatusOr<Tensor> ConvertTensor(const Tensor& in, DataType to) {
  if (in.dtype() == to) return in;
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::Create(to, in.dims()));
  const int64_t n = in.num_elements();
  if (in.dtype() == DataType::kString) {
    const auto* s = in.data<std::string>();
    Status st = DispatchAnyPod(to, [&]<typename To>() -> Status {
      To* o = out.mutable_data<To>();
      for (int64_t i = 0; i < n; ++i) o[i] = FromDouble<To>(ParseNumber(s[i]));
      return Status::OK();
    });
    KILN_RETURN_IF_ERROR(st);
    return out;
  }
  if (to == DataType::kString) {
    auto* o = out.mutable_data<std::string>();
    Status st = DispatchAnyPod(in.dtype(), [&]<typename From>() -> Status {
      const From* p = in.data<From>();
      for (int64_t i = 0; i < n; ++i) o[i] = FormatNumber(p[i]);
      return Status::OK();
    });
    KILN_RETURN_IF_ERROR(st);
    return out;
  }
  Status st = DispatchAnyPod(in.dtype(), [&]<typename From>() -> Status {
    return DispatchAnyPod(to, [&]<typename To>() -> Status {
      ConvertLoop<From, To>(in.data<From>(), out.mutable_data<To>(), n);
      return Status::OK();
    });
  });
  KILN_RETURN_IF_ERROR(st);
  return out;
}

StatusOr<std::vector<int64_t>> ReadInt64s(const Tensor& t) {
  std::vector<int64_t> out(static_cast<size_t>(t.num_elements()));
  Status st = DispatchInteger(t.dtype(), [&]<typename T>() -> Status {
    const T* p = t.data<T>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int64_t>(p[i]);
    return Status::OK();
  });
  if (!st.ok()) {
    return InvalidArgument(std::string("expected an integer tensor, got ") + t.TypeString());
  }
  return out;
}

std::vector<double> ReadDoubles(const Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.num_elements()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = t.GetAsDouble(static_cast<int64_t>(i));
  return out;
}

}  // namespace kiln
