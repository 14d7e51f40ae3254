// The content hash of an EngineOp's native segment (issue 6): what a plan's content_hash and
// a disk engine cache key are derived from, so a plan is only used for the segment it was
// built from. The converter, the EngineOp and shape profiles all compute it here.
//
// The segment's structure (nodes, attributes, inputs, outputs, value infos, opsets: its ONNX
// export without the numeric initializers) and every numeric initializer (name, dtype, dims
// and a ContentHash64 of its bytes, core/content_hash.h) go into the hash. The weights are
// hashed in place, never serialized: ~20x faster than FNV-1a over the segment's ONNX bytes
// (the hash before plan format 3). String initializers stay in the export.
#pragma once

#include <cstdint>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln {

// Version of the scheme; part of the hash, so a change gives every segment a new hash.
inline constexpr int kSegmentHashVersion = 2;

// Fails only when the segment's structure cannot be exported (a node attribute ONNX cannot
// hold); the message names the node.
StatusOr<uint64_t> SegmentContentHash(const Graph& segment);

}  // namespace kiln
