// kiln.EngineOp <-> TensorFlow NodeDef of op `KilnEngineOp` (TF-TRT's TRTEngineOp layout).
//
// The NodeDef carries TRTEngineOp-style attributes:
//   InT, OutT                      list(type): input / output dtypes
//   input_shapes, output_shapes    list(shape) (unknown rank where the IR attr is "")
//   static_engine, use_calibration, allow_build_at_runtime   bool
//   segment_func                   string: the native segment's name (Graph::functions key)
//   serialized_segment             string: the native segment as an ONNX ModelProto (kiln's IR
//                                  verbatim; the plan's content hash is taken over exactly this,
//                                  see docs/design.md "GraphDef and SavedModel export")
//   serialized_engine              string: the plan; empty when the plan is an asset
//   engine_asset                   string: asset file name (assets/<name>) holding the plan, in
//                                  a SavedModel; absent otherwise
//   calibration_data, precision_mode, backend   string
//   max_cached_engines_count, workspace_size_bytes, max_batch_size   int
// Outputs are "<node>:k", one per OutT entry.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "tensorflow.pb.h"

namespace kiln {

inline constexpr const char* kTfEngineOpType = "KilnEngineOp";
inline constexpr const char* kEngineAssetAttr = "engine_asset";

bool IsEngineOpNode(const Node& node);

// `node` (a kiln.EngineOp of `graph`) as a NodeDef named node.name. `inputs` are its data
// inputs in TF syntax ("node" / "node:k"), `in_types` their dtypes. With a non-empty
// `engine_asset`, serialized_engine is left empty and the attr engine_asset names the file.
StatusOr<tfpb::NodeDef> EngineOpToNodeDef(const Node& node, const Graph& graph,
                                          const std::vector<std::string>& inputs,
                                          const std::vector<DataType>& in_types,
                                          const std::string& engine_asset);

struct ImportedEngineOp {
  Node node;                               // kiln.EngineOp, outputs "<name>:k"
  std::vector<DataType> output_types;
  std::string segment_key;
  std::shared_ptr<const Graph> segment;    // parsed from serialized_segment
};

// The inverse; `inputs` are the IR values the NodeDef's data inputs name. Errors name
// `where` and the node.
StatusOr<ImportedEngineOp> EngineOpFromNodeDef(const tfpb::NodeDef& def,
                                               const std::vector<std::string>& inputs,
                                               const std::string& where);

}  // namespace kiln
