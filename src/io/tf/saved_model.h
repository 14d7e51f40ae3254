// SavedModel directory (saved_model.pb + variables/variables.{index,data-*}) -> frozen IR graph.
//
// The MetaGraphDef is chosen by its tag set (exact set match; an error lists the available tag
// sets), the signature by key. The graph is frozen (freeze.h: TF1 VariableV2/Assign/RestoreV2
// and TF2 VarHandleOp/ReadVariableOp with StatefulPartitionedCall inlined) and imported with
// ImportGraphDef. Graph inputs/outputs are the signature's tensor names (sorted by signature
// key); metadata records:
//   "saved_model.tags"          comma-joined tag set
//   "signature.key"             the signature used
//   "signature.input.<key>"     tensor name of each signature input (likewise ".output.")
// TensorFlow does not check fed shapes against a Placeholder's declared shape, and SavedModel
// signatures often declare shapes the callers do not respect (e.g. [] fed with [3]); with
// `relax_input_shapes` the signature Placeholders lose their shape (rank unknown) and keep only
// the dtype; the declared shape is kept as "signature.input_shape.<key>" (TensorShapeProto text).
#pragma once

#include <set>
#include <string>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln {

struct SavedModelOptions {
  std::set<std::string> tags = {"serve"};
  std::string signature_key = "serving_default";
  bool relax_input_shapes = true;
};

// True when `dir` is a directory holding saved_model.pb.
bool IsSavedModelDir(const std::string& dir);

StatusOr<Graph> LoadSavedModel(const std::string& dir, const SavedModelOptions& options = {});

// Puts back the signature's declared input shapes ("signature.input_shape.<key>", recorded by
// relax_input_shapes) as the inputs' value_info shapes, except for inputs named in `except`
// (by signature key or tensor name). The converter uses this: engines are built for the
// declared shapes unless the caller declares others.
void RestoreDeclaredInputShapes(Graph& graph, const std::set<std::string>& except);

// Signature key -> tensor name through the metadata above ("x" -> "serving_default_x:0");
// any other name is returned unchanged. Input keys are looked up first.
std::string ResolveSignatureName(const Graph& graph, const std::string& name);

}  // namespace kiln
