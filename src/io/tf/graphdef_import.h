// TensorFlow GraphDef -> kiln IR.
//
// A frozen GraphDef (binary .pb or text .pbtxt; TF.js model.json reuses ImportGraphDef) becomes
// an IR graph with ONNX semantics (ARCHITECTURE §3):
//   - values are named "node:K" for output K of NodeDef `node` (":0" included);
//   - Placeholder -> graph input; Const -> initializer (its NodeDef kept in
//     initializer_provenance); every other NodeDef -> one or more IR nodes made by the handler
//     for its op (src/io/tf/handlers/), all carrying the NodeDef as provenance;
//   - NHWC stays an attribute (data_format="NHWC" on layout ops); constant HWIO filters are
//     converted to OIHW initializers;
//   - a TF op without a handler (or whose attributes a handler cannot map) becomes a node of
//     domain "tf" with the TF op name: the import succeeds, `kiln inspect` lists it, and
//     Session::FromGraph refuses it ("TF op X has no kiln mapping");
//   - control dependencies ("^node") are dropped from the data inputs;
//   - graph outputs: the outputs of every node nothing consumes (NoOp, Assert, Save* and other
//     nodes without data outputs excluded);
//   - graph.metadata keeps "tf.versions", "tf.library" (and "tf.debug_info") serialized, and
//     "tf.placeholder:<value>" holds each Placeholder's NodeDef for export.
// Rejected with an error naming the file and node: malformed protobuf, duplicate node names, a
// data input naming a missing node or output, a cycle, a Const whose data does not match its
// shape, an input whose dtype contradicts the node's T attribute.
#pragma once

#include <string>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln {
namespace tfpb {
class GraphDef;
}  // namespace tfpb

struct TfImportOptions {
  std::string source;         // file name for errors
  std::string format = "tf";  // "tf" or "tfjs" (provenance format)
  int depth = 0;              // nesting of control-flow function bodies (limited)
};

StatusOr<Graph> ImportGraphDef(const tfpb::GraphDef& graph_def, const TfImportOptions& options);
// .pb binary or .pbtxt text (by extension; a file that is not valid binary is tried as text).
StatusOr<Graph> ImportGraphDefFile(const std::string& path);
// Parses binary or text GraphDef bytes; `what` names the source in errors.
Status ParseGraphDef(const std::string& bytes, bool text, const std::string& what,
                     tfpb::GraphDef* graph_def);

}  // namespace kiln
