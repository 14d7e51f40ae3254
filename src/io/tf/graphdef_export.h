// kiln IR -> TensorFlow GraphDef.
//
// Nodes imported from a GraphDef are written back as the user's original NodeDefs (their
// provenance), each once even when it became several IR nodes; Placeholders and Consts come
// from graph.metadata["tf.placeholder:<value>"] and initializer_provenance; "tf.versions",
// "tf.library" and "tf.debug_info" are restored. NodeDefs are written in topological order,
// every Const / Placeholder before its first reader; control inputs naming a node that is no
// longer in the graph are dropped. IR nodes without provenance get a synthesized NodeDef for
// a small set of elementwise ops (T from value_info); any other is "cannot export node X".
// Provenance marks a node as untouched: a pass that changes a node must drop its provenance.
#pragma once

#include <map>
#include <string>

#include "ir/graph.h"
#include "kiln/status.h"
#include "tensorflow.pb.h"

namespace kiln {

// Converted graphs (kiln.EngineOp nodes, io/tf/engine_op_graphdef.h): an EngineOp becomes a
// KilnEngineOp NodeDef named like the IR node; every NodeDef that read one of its outputs
// ("relu:0") reads "<engine>:k" instead, and an EngineOp output that is a graph output gets an
// Identity (IdentityN for several outputs of one node) named like the original node, so the
// graph's output tensor names do not change. A recorded NodeDef whose data input no longer
// exists (an Identity the clean-up removed, a constant folded away) reads what its IR node
// reads now; folded constants become Const NodeDefs. Every data input of the result names a
// NodeDef of the result, else "cannot export".
struct GraphDefExportOptions {
  // Plans as files: each EngineOp's serialized_engine is left empty, its attr engine_asset
  // names "kiln-engine.<node>.plan", and the plan goes to `engine_assets` (file -> bytes).
  bool engines_as_assets = false;
};
StatusOr<tfpb::GraphDef> ExportGraphDefProto(const Graph& graph,
                                             const GraphDefExportOptions& options,
                                             std::map<std::string, std::string>* engine_assets);

// The serialized GraphDef: binary, or protobuf text format when `text`.
StatusOr<std::string> ExportGraphDef(const Graph& graph, bool text);
// Text for .pbtxt / .txt / .prototxt, binary otherwise; written to a temporary file in the same
// directory and renamed into place.
Status WriteGraphDefFile(const Graph& graph, const std::string& path);

}  // namespace kiln
