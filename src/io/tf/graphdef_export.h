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

#include <string>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln {

// The serialized GraphDef: binary, or protobuf text format when `text`.
StatusOr<std::string> ExportGraphDef(const Graph& graph, bool text);
// Text for .pbtxt / .txt / .prototxt, binary otherwise; written to a temporary file in the same
// directory and renamed into place.
Status WriteGraphDefFile(const Graph& graph, const std::string& path);

}  // namespace kiln
