// Freezing TensorFlow graphs with variables (TF's convert_variables_to_constants):
//   1. function calls (StatefulPartitionedCall / PartitionedCall / a library function used as
//      an op) are inlined recursively: body node B of call C becomes "C/B", FunctionDef tensor
//      names "node:out_arg:idx" become graph names, and C itself becomes an IdentityN of the
//      function's return values (so "C:k" keeps naming output k);
//   2. each variable (VariableV2 / VarHandleOp) is mapped to its checkpoint key by tracing the
//      Assign / AssignVariableOp nodes fed by RestoreV2 (the saver's restore graph, including
//      TF2's inlined restore function); without one, the key is the VariableV2 node name or the
//      VarHandleOp's shared_name (also tried with "/.ATTRIBUTES/VARIABLE_VALUE");
//   3. the graph is pruned to what the outputs need (control dependencies dropped, so
//      save/restore and training nodes go), VariableV2 and ReadVariableOp nodes become Const
//      NodeDefs holding the checkpoint values.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "io/tf/tensor_bundle.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "tensorflow.pb.h"

namespace kiln {

// Frozen GraphDef holding what `outputs` (tensor names "node:K" or node names) need, plus the
// Placeholders named in `keep` (node names). `bundle` may be null when the graph reads no
// variables. Errors name the missing node / variable / checkpoint key.
StatusOr<tfpb::GraphDef> FreezeGraphDef(const tfpb::GraphDef& graph,
                                        const TensorBundleReader* bundle,
                                        const std::vector<std::string>& outputs,
                                        const std::vector<std::string>& keep = {});

// A checkpoint prefix ("dir/model.ckpt") or a directory whose text `checkpoint` state file names
// the latest checkpoint (model_checkpoint_path, relative to the directory unless absolute).
StatusOr<std::string> ResolveCheckpointPrefix(const std::string& prefix_or_dir);

// MetaGraphDef (`model.ckpt.meta`, binary or text) + checkpoint -> frozen IR graph whose
// outputs are `outputs` ("node:K" or "node" = "node:0") and whose inputs are the Placeholders
// those outputs need.
StatusOr<Graph> FreezeMetaGraph(const std::string& meta_path,
                                const std::string& checkpoint_prefix_or_dir,
                                const std::vector<std::string>& outputs);

// `kiln freeze` / TF's convert_variables_to_constants as one call: FreezeMetaGraph, then the
// frozen graph is written to `output_path` as a GraphDef (.pbtxt / .txt: text, else binary)
// through a temporary file in the same directory, renamed into place. Nothing is written on
// error.
Status FreezeMetaGraphToFile(const std::string& meta_path,
                             const std::string& checkpoint_prefix_or_dir,
                             const std::vector<std::string>& outputs,
                             const std::string& output_path);

// Step 1 alone: every StatefulPartitionedCall / PartitionedCall / library-function-as-op node
// inlined (recursively, depth-limited); other nodes (If, While, Case, ...) are kept as they are.
StatusOr<tfpb::GraphDef> InlineCalls(const tfpb::GraphDef& graph);

// The flat output index of FunctionDef tensor "node:arg:idx" when `node` runs op `op`
// (ops with several output args: Switch, Merge, TopKV2, FusedBatchNorm*, Unique*, library
// functions); `funcs` maps library function names to their definitions.
int FlatOutputIndex(const std::string& op, const std::string& arg, int idx,
                    const std::map<std::string, const tfpb::FunctionDef*>& funcs);

// "node" -> "node:0"; "node:K" unchanged.
std::string CanonicalTensorName(const std::string& name);

// NotFound naming `what` unless `value` is a graph input, initializer or node output of `g`.
Status CheckGraphHasValue(const Graph& g, const std::string& value, const std::string& what);

}  // namespace kiln
