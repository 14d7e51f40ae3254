#include "io/tf/tf_tensor.h"

#include <cstring>

namespace kiln {

std::optional<DataType> DataTypeFromTf(int tf_dtype) {
  if (tf_dtype > 100) tf_dtype -= 100;  // DT_*_REF
  switch (tf_dtype) {
    case tfpb::DT_FLOAT: return DataType::kFloat32;
    case tfpb::DT_DOUBLE: return DataType::kFloat64;
    case tfpb::DT_INT32: return DataType::kInt32;
    case tfpb::DT_UINT8: return DataType::kUInt8;
    case tfpb::DT_INT16: return DataType::kInt16;
    case tfpb::DT_INT8: return DataType::kInt8;
    case tfpb::DT_STRING: return DataType::kString;
    case tfpb::DT_INT64: return DataType::kInt64;
    case tfpb::DT_BOOL: return DataType::kBool;
    case tfpb::DT_BFLOAT16: return DataType::kBFloat16;
    case tfpb::DT_UINT16: return DataType::kUInt16;
    case tfpb::DT_HALF: return DataType::kFloat16;
    case tfpb::DT_UINT32: return DataType::kUInt32;
    case tfpb::DT_UINT64: return DataType::kUInt64;
    default: return std::nullopt;
  }
}

tfpb::DataType DataTypeToTf(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32: return tfpb::DT_FLOAT;
    case DataType::kFloat64: return tfpb::DT_DOUBLE;
    case DataType::kInt32: return tfpb::DT_INT32;
    case DataType::kUInt8: return tfpb::DT_UINT8;
    case DataType::kInt16: return tfpb::DT_INT16;
    case DataType::kInt8: return tfpb::DT_INT8;
    case DataType::kString: return tfpb::DT_STRING;
    case DataType::kInt64: return tfpb::DT_INT64;
    case DataType::kBool: return tfpb::DT_BOOL;
    case DataType::kBFloat16: return tfpb::DT_BFLOAT16;
    case DataType::kUInt16: return tfpb::DT_UINT16;
    case DataType::kFloat16: return tfpb::DT_HALF;
    case DataType::kUInt32: return tfpb::DT_UINT32;
    case DataType::kUInt64: return tfpb::DT_UINT64;
    case DataType::kUndefined: break;
  }
  return tfpb::DT_INVALID;
}

std::string TfDataTypeName(int tf_dtype) {
  if (tfpb::DataType_IsValid(tf_dtype)) return tfpb::DataType_Name(static_cast<tfpb::DataType>(tf_dtype));
  return "DataType(" + std::to_string(tf_dtype) + ")";
}

Shape ShapeFromTf(const tfpb::TensorShapeProto& shape) {
  if (shape.unknown_rank()) return Shape();
  std::vector<int64_t> dims;
  for (const auto& d : shape.dim()) dims.push_back(d.size() >= 0 ? d.size() : Shape::kUnknownDim);
  return Shape(dims);
}

void ShapeToTf(const Shape& shape, tfpb::TensorShapeProto* out) {
  out->Clear();
  if (!shape.rank_known()) {
    out->set_unknown_rank(true);
    return;
  }
  for (int64_t d : shape.dims()) out->add_dim()->set_size(d);
}

namespace {

// Copies `field` into t's elements, repeating the last value (TF's rule for short fields).
template <typename T, typename Field, typename Conv>
Status FillTyped(const Field& field, Tensor* t, Conv conv, const std::string& what) {
  const int64_t n = t->num_elements();
  const int64_t m = field.size();
  if (m > n) {
    return InvalidArgument(what + " has " + std::to_string(m) + " values, its shape " +
                           DimsToString(t->dims()) + " holds " + std::to_string(n));
  }
  T* out = t->mutable_data<T>();
  for (int64_t i = 0; i < n; ++i) {
    if (m == 0) break;  // zeros
    out[i] = conv(field.Get(static_cast<int>(i < m ? i : m - 1)));
  }
  return Status::OK();
}

}  // namespace

StatusOr<Tensor> TensorFromTf(const tfpb::TensorProto& proto, const std::string& what) {
  auto dtype = DataTypeFromTf(proto.dtype());
  if (!dtype) {
    return Unimplemented(what + " has data type " + TfDataTypeName(proto.dtype()) +
                         ", which kiln does not support");
  }
  Shape shape = ShapeFromTf(proto.tensor_shape());
  if (!shape.fully_known()) return InvalidArgument(what + " has a partial shape " + shape.ToString());
  auto created = Tensor::Create(*dtype, shape.dims());
  if (!created.ok()) return created.status().WithContext(what);
  Tensor t = std::move(created).value();
  if (!proto.tensor_content().empty()) {
    if (*dtype == DataType::kString) {
      return InvalidArgument(what + ": string tensors cannot use tensor_content");
    }
    if (proto.tensor_content().size() != t.nbytes()) {
      return InvalidArgument(what + " has " + std::to_string(proto.tensor_content().size()) +
                             " bytes of tensor_content, its shape " + t.TypeString() + " needs " +
                             std::to_string(t.nbytes()));
    }
    std::memcpy(t.raw_mutable_data(), proto.tensor_content().data(), t.nbytes());
    if (*dtype == DataType::kBool) {
      auto* b = static_cast<uint8_t*>(t.raw_mutable_data());
      for (size_t i = 0; i < t.nbytes(); ++i) b[i] = b[i] != 0;
    }
    return t;
  }
  auto same = [](auto v) { return v; };
  switch (*dtype) {
    case DataType::kFloat32:
      KILN_RETURN_IF_ERROR(FillTyped<float>(proto.float_val(), &t, same, what));
      break;
    case DataType::kFloat64:
      KILN_RETURN_IF_ERROR(FillTyped<double>(proto.double_val(), &t, same, what));
      break;
    case DataType::kInt32:
      KILN_RETURN_IF_ERROR(FillTyped<int32_t>(proto.int_val(), &t, same, what));
      break;
    case DataType::kInt16:
      KILN_RETURN_IF_ERROR(FillTyped<int16_t>(
          proto.int_val(), &t, [](int32_t v) { return static_cast<int16_t>(v); }, what));
      break;
    case DataType::kInt8:
      KILN_RETURN_IF_ERROR(FillTyped<int8_t>(
          proto.int_val(), &t, [](int32_t v) { return static_cast<int8_t>(v); }, what));
      break;
    case DataType::kUInt8:
      KILN_RETURN_IF_ERROR(FillTyped<uint8_t>(
          proto.int_val(), &t, [](int32_t v) { return static_cast<uint8_t>(v); }, what));
      break;
    case DataType::kUInt16:
      KILN_RETURN_IF_ERROR(FillTyped<uint16_t>(
          proto.int_val(), &t, [](int32_t v) { return static_cast<uint16_t>(v); }, what));
      break;
    case DataType::kInt64:
      KILN_RETURN_IF_ERROR(FillTyped<int64_t>(proto.int64_val(), &t, same, what));
      break;
    case DataType::kUInt32:
      KILN_RETURN_IF_ERROR(FillTyped<uint32_t>(proto.uint32_val(), &t, same, what));
      break;
    case DataType::kUInt64:
      KILN_RETURN_IF_ERROR(FillTyped<uint64_t>(proto.uint64_val(), &t, same, what));
      break;
    case DataType::kBool:
      KILN_RETURN_IF_ERROR(FillTyped<bool>(proto.bool_val(), &t, same, what));
      break;
    case DataType::kFloat16:
      KILN_RETURN_IF_ERROR(FillTyped<Float16>(
          proto.half_val(), &t,
          [](int32_t v) { return Float16::FromBits(static_cast<uint16_t>(v)); }, what));
      break;
    case DataType::kBFloat16:
      KILN_RETURN_IF_ERROR(FillTyped<BFloat16>(
          proto.half_val(), &t,
          [](int32_t v) { return BFloat16::FromBits(static_cast<uint16_t>(v)); }, what));
      break;
    case DataType::kString:
      KILN_RETURN_IF_ERROR(FillTyped<std::string>(
          proto.string_val(), &t, [](const std::string& v) { return v; }, what));
      break;
    case DataType::kUndefined:
      break;
  }
  return t;
}

Status TensorToTf(const Tensor& t, tfpb::TensorProto* out) {
  out->Clear();
  if (!t.defined()) return InvalidArgument("cannot write an undefined tensor");
  out->set_dtype(DataTypeToTf(t.dtype()));
  ShapeToTf(t.shape(), out->mutable_tensor_shape());
  if (t.dtype() == DataType::kString) {
    const std::string* s = t.data<std::string>();
    for (int64_t i = 0; i < t.num_elements(); ++i) out->add_string_val(s[i]);
    return Status::OK();
  }
  out->set_tensor_content(std::string(static_cast<const char*>(t.raw_data()), t.nbytes()));
  return Status::OK();
}

}  // namespace kiln
