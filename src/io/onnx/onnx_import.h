// ONNX ModelProto -> kiln IR.
//
// The IR follows ONNX semantics, so import is close to identity: initializers become constant
// tensors, graph inputs/outputs/value_info become ValueInfo, nodes keep their attributes and
// their serialized NodeProto as provenance. Op support is not decided here (kiln inspect lists
// what the op table cannot run); the importer rejects what cannot be represented at all:
// malformed protobuf, non-tensor graph inputs, tensors whose data does not match their shape,
// opsets outside 7..21, external data outside the model's directory. Model-local functions in
// the kiln.functions domain (written by the exporter) become Graph::functions; ModelProto
// facts the exporter writes back are kept in Graph::metadata ("onnx.ir_version", ...).
#pragma once

#include <string>
#include <string_view>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {
namespace onnxpb {
class TensorProto;
class ModelProto;
class NodeProto;
}  // namespace onnxpb

// Domain of the model-local FunctionProtos that hold Graph::functions (an EngineOp's native
// segment). Their initializers travel as Constant nodes whose doc_string is
// kOnnxInitializerDoc, their value types in FunctionProto.value_info (ONNX IR 10).
inline constexpr const char* kOnnxFunctionDomain = "kiln.functions";
inline constexpr const char* kOnnxInitializerDoc = "kiln:initializer";

// Lowest and highest ai.onnx opset the importer accepts.
inline constexpr int64_t kMinOnnxOpset = 7;
inline constexpr int64_t kMaxOnnxOpset = 21;

StatusOr<Graph> ImportOnnxFile(const std::string& path);
// `what` names the source in errors; `base_dir` resolves external data ("" = no external data).
StatusOr<Graph> ImportOnnxBytes(std::string_view bytes, const std::string& what,
                                const std::string& base_dir);
StatusOr<Graph> ImportOnnxModel(const onnxpb::ModelProto& model, const std::string& what,
                                const std::string& base_dir);

// A TensorProto (raw_data, typed fields or external data) as a Tensor.
StatusOr<Tensor> TensorFromProto(const onnxpb::TensorProto& proto, const std::string& base_dir);
// A NodeProto's attributes as the importer reads them (`node` names it in errors).
StatusOr<AttrMap> AttrsFromNodeProto(const onnxpb::NodeProto& proto, const std::string& base_dir,
                                     const std::string& node);
// A serialized TensorProto file (as in ONNX's test data: input_0.pb).
StatusOr<Tensor> ReadTensorProtoFile(const std::string& path);
// Nesting limit kiln sets on protobuf text-format parsers (TextFormat::Parser has none by
// default, so a deeply nested .pbtxt would overflow the stack).
inline constexpr int kTextProtoRecursionLimit = 64;
// Parses any protobuf message with kiln's size and recursion limits.
bool ParseProtoWithLimits(std::string_view bytes, void* message /* google::protobuf::Message* */);

// Reads a whole file; NotFound / InvalidArgument with the path on failure.
StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace kiln
