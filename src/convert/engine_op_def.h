// The kiln.EngineOp node as the converter writes it and the runtime reads it (ARCHITECTURE §5,
// TRTEngineOp's attributes), plus the backend lookup both use.
//
//   input_shapes / output_shapes  strings "[-1,3,224,224]" (-1: unknown), one per input/output
//   output_types                  ints, ONNX dtype of each output (the shape function's dtype)
//   static_engine                 1: the engine was built at conversion time (serialized_engine)
//   segment_func                  key into Graph::functions: the native segment
//   serialized_engine             a plan (engine/plan.h); empty when none was built
//   calibration_data, use_calibration, max_cached_engines_count, workspace_size_bytes,
//   max_batch_size, precision_mode, allow_build_at_runtime, backend ("cpu")
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/strings.h"
#include "engine/engine.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

inline constexpr const char* kEngineOpDomain = "kiln";
inline constexpr const char* kEngineOpType = "EngineOp";

// "[-1,3,224,224]" for a shape (unknown dims as -1; "[*]" is not used: rank must be known).
inline std::string FormatShapeAttr(const Shape& shape) { return FormatShapeText(shape); }
// Parses FormatShapeAttr's text; "-1" dims become unknown.
inline StatusOr<Shape> ParseShapeAttr(const std::string& text) { return ParseShapeText(text); }

// An EngineOp node's string / int attribute `name`: "" / `def` when the node lacks it (the
// runtime and the GraphDef exporter read the attributes above this way).
inline std::string EngineOpStrAttr(const Node& node, const char* name) {
  const Attr* a = node.FindAttr(name);
  return a != nullptr ? a->s : std::string();
}
inline int64_t EngineOpIntAttr(const Node& node, const char* name, int64_t def) {
  const Attr* a = node.FindAttr(name);
  return a != nullptr ? a->i : def;
}

// The backend named `name`: one registered with RegisterBackendForTesting first, then
// FindBackend (engine/engine.h). nullptr when unknown.
const Backend* ResolveBackend(const std::string& name);
// Makes `backend` findable under backend->name() by the converter and the runtime's EngineOp
// (tests: a small backend that "supports" a few ops). Pass the same pointer to unregister.
void RegisterBackendForTesting(const Backend* backend);
void UnregisterBackendForTesting(const Backend* backend);

}  // namespace kiln
