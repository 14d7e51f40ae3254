// TF1 dataflow control flow -> TF2 functional control flow, before import (tf2onnx's approach).
//
// A TF1 while loop is a "frame": Enter nodes (attribute frame_name) bring values in, each loop
// variable runs Enter -> Merge <- NextIteration, Merge -> Switch(LoopCond) whose output 1 feeds
// the body and output 0 the Exit. LowerTf1ControlFlow rewrites every frame, innermost first,
// into one `While` NodeDef (named like the frame's LoopCond) with two new library functions:
//   cond(vars..., invariants...) -> the LoopCond's input
//   body(vars..., invariants...) -> the NextIteration inputs, invariants unchanged
// Loop variables are the Merges (initial value: the Enter's input); loop invariants are the
// other Enters (is_constant). Exit k becomes Identity(While:k). TensorArray handles (DT_RESOURCE
// Enters) are not carried: TensorArrays are sequences carried by their flow value (see
// handlers/tensor_array.cc), so inside the functions a handle is a dummy constant.
// The importer then maps While like any TF2 While (IR Loop with a body subgraph).
//
// Errors (InvalidArgument, naming the node): a NextIteration without a matching Merge, a Merge
// whose inputs are not an Enter and a NextIteration of its frame, an Exit outside any frame, a
// frame without exactly one LoopCond, a node that reads a value of a frame it is not in (other
// than through Enter / Exit), a Switch whose predicate is not the frame's LoopCond.
//
// tf.cond is lowered first, innermost first: the Switches on one predicate (in one enclosing
// branch context) and the Merges that join their two branches become one `If` NodeDef, named
// like the first Switch, whose inputs are the predicate, the Switches' data inputs and any other
// value a branch reads from outside; then_branch / else_branch are new library functions holding
// the nodes of the true / false side. Merge k becomes Identity(If:k). A loop inside a branch
// moves into the branch function; a cond inside a loop body becomes an If of the frame. Errors:
// a Merge that does not take one value from each branch, a read of a branch other than through
// its Merge, a read of Merge's value_index.
#pragma once

#include <string>

#include "kiln/status.h"
#include "tensorflow.pb.h"

namespace kiln {

// True when `graph` has any TF1 control-flow op (Enter, Exit, NextIteration, LoopCond, Switch,
// Merge).
bool HasTf1ControlFlow(const tfpb::GraphDef& graph);

// `graph` with every while frame rewritten into a While node (see above); `where` names the
// source in errors.
StatusOr<tfpb::GraphDef> LowerTf1ControlFlow(const tfpb::GraphDef& graph,
                                             const std::string& where);

}  // namespace kiln
