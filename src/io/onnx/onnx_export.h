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

}  // namespace kiln
