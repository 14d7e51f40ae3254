// TensorFlow DataType / TensorProto / TensorShapeProto <-> kiln types (shared by the GraphDef
// importer, exporter and the TF.js importer).
#pragma once

#include <optional>
#include <string>

#include "kiln/status.h"
#include "kiln/tensor.h"
#include "tensorflow.pb.h"

namespace kiln {

// TF DataType (reference types DT_*_REF map like their base type) -> kiln; nullopt when kiln
// has no such type (complex, quantized, resource, variant, ...).
std::optional<DataType> DataTypeFromTf(int tf_dtype);
// kiln -> TF; DT_INVALID for kUndefined.
tfpb::DataType DataTypeToTf(DataType dtype);
// "DT_FLOAT" style name of a TF dtype number, for messages.
std::string TfDataTypeName(int tf_dtype);

// A TensorShapeProto as a partial Shape (unknown_rank -> unknown rank; size -1 -> unknown dim).
Shape ShapeFromTf(const tfpb::TensorShapeProto& shape);
void ShapeToTf(const Shape& shape, tfpb::TensorShapeProto* out);

// TensorProto -> Tensor: tensor_content (raw little-endian bytes) or the typed *_val fields,
// where fewer values than elements repeat the last one (TF's rule; none means zeros).
// `what` names the tensor in errors.
StatusOr<Tensor> TensorFromTf(const tfpb::TensorProto& proto, const std::string& what);
// Tensor -> TensorProto (tensor_content for fixed-size types, string_val for strings).
Status TensorToTf(const Tensor& t, tfpb::TensorProto* out);

}  // namespace kiln
