// Writing converted graphs as TensorFlow files, and the model-file save dispatch.
//
// WriteSavedModel writes a SavedModel directory:
//   saved_model.pb   one MetaGraphDef: the tags and meta_info_def of the SavedModel the graph
//                    was loaded from (metadata "saved_model.tags" / "tf.meta_info_def"; `serve`
//                    otherwise), the graph as a GraphDef (graphdef_export.h; EngineOps as
//                    KilnEngineOp NodeDefs), the SignatureDef it was loaded with, unchanged
//                    (metadata "tf.signature_def": keys, tensor names, dtypes and shapes;
//                    the converter never absorbs a signature output, and an EngineOp output
//                    that is one keeps its name through an Identity); a graph from a frozen
//                    .pb gets `serving_default` with its inputs and outputs keyed by node name and one asset_file_def per engine;
//   assets/kiln-engine.<node>.plan   each engine's plan. TF1 style: a string Const
//                    "<node>/engine_asset" holds the file name, asset_file_def names that Const
//                    and the file; the KilnEngineOp's attr engine_asset names the file and its
//                    serialized_engine is empty;
//   variables/       empty: the graph is frozen (TF's loader skips the restore when
//                    variables/variables.index does not exist).
// Everything goes into "<dir>.tmp.<pid>" next to `dir`, renamed to `dir` at the end; an
// existing `dir` is replaced only after everything was written. saved_model.pb is serialized
// deterministically: the same graph gives the same bytes.
#pragma once

#include <string>

#include "ir/graph.h"
#include "kiln/status.h"
#include "tensorflow.pb.h"

namespace kiln {

Status WriteSavedModel(const Graph& graph, const std::string& dir);

// True when the graph came from TensorFlow (GraphDef, SavedModel, MetaGraph, TF.js): its nodes
// or constants carry TF NodeDefs, or it has TF placeholders.
bool IsTfGraph(const Graph& graph);

// Saves `graph` by the path's form: ".onnx" -> ONNX; ".pb" / ".pbtxt" -> GraphDef (binary /
// text; TF graphs only); anything else (a directory) -> SavedModel for TF graphs, ONNX for
// ONNX graphs (the input's format family).
Status SaveGraphByPath(const Graph& graph, const std::string& path);

// Loader side: reads each KilnEngineOp's engine_asset file from `dir`/assets into its
// serialized_engine. NotFound naming the file when it is missing or not listed in the
// MetaGraphDef's asset_file_def.
Status AttachEngineAssets(const std::string& dir, const tfpb::MetaGraphDef& meta,
                          tfpb::GraphDef* graph_def);

}  // namespace kiln
