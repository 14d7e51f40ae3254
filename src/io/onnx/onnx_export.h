// kiln IR -> ONNX ModelProto (the save path of `kiln convert`).
//
// Untouched nodes export as the user's originals: a node with ONNX provenance whose op, inputs,
// outputs and attributes still match its original NodeProto is written from those bytes (an
// unnamed original gets the name the importer gave it, so names survive a round trip); any
// other node, and every node carrying a subgraph attribute, is rebuilt from the IR with its
// attributes in name order. Graph inputs, outputs and value_info carry the known dtypes and
// shapes (unknown dimensions without a value); initializers are written as raw data.
// Graph::functions become model-local FunctionProtos in the kiln.functions domain (see
// onnx_import.h): an EngineOp's native segment travels inside the model file. Opset imports
// are the graph's, plus version 1 of every other domain a node uses ("kiln" for kiln ops).
//
// The output is deterministic: the same Graph always gives the same bytes.
#pragma once

#include <string>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln {

StatusOr<std::string> ExportOnnx(const Graph& graph);
// Writes ExportOnnx(graph) to `path` through a temporary file in the same directory, renamed
// into place, so a reader never sees a half-written model.
Status WriteOnnxFile(const Graph& graph, const std::string& path);

struct OnnxWriteOptions {
  // Initializers of at least this many bytes are written to a side file as ONNX external data
  // (data_location EXTERNAL, location/offset/length; offsets 64-byte aligned). 0 = never.
  int64_t external_data_threshold = 0;
  // The side file: a plain file name in the model's directory; default "<model file>.data".
  std::string external_data_file;
};
// The same with options; the side file is also written through a temporary file and renamed
// into place, before the model that refers to it.
Status WriteOnnxFile(const Graph& graph, const std::string& path, const OnnxWriteOptions& options);

}  // namespace kiln
