// Engines inside control-flow bodies (If branches, Loop and Scan bodies, nested ones too).
//
// Each body is prepared as a standalone graph — the values it reads from enclosing scopes
// become its inputs (with the enclosing graph's types and shapes) or, when they are
// initializers of the enclosing graph, its own initializers — then cleaned with the standard
// passes, shape-inferred and segmented by the caller's `SegmentScopeFn` with the converter's
// parameters. Afterwards the temporary inputs and the borrowed initializers are removed again:
// the body's native nodes and its EngineOps read those values from the enclosing scope as
// before (an EngineOp's segment then lists them among its inputs), and a borrowed weight that
// moved into a segment function is a candidate for pruning from the enclosing graph. A segment
// never spans a body boundary: the body's formal inputs, outputs and outer reads are segment
// boundaries by construction (the segmenter only sees the body's nodes).
//
// A Loop's loop-carried values often have no declared shape in the body; when the Loop node's
// initial value has a known rank, its type and shape (known dimensions only) are tried as the
// body input's and kept only if shape inference gives the matching body output a shape at
// least as specific (a fixed point: by induction every iteration's value fits it). An unknown
// dimension 0 is then the batch as at the top level (static engines built for
// max_batch_size); other unknown dimensions keep a static engine from being built, so that
// segment stays native (dynamic mode builds at run time). A loop-carried value of unknown rank
// keeps its readers out of engines in both modes (the CPU backend needs ranks).
// Scan (opset 9+) is seeded the same way: state variables from the node's initial states (a
// fixed point again), scan inputs from the node's inputs without their scan axis.
//
// A body that cannot be prepared (its shape inference or clean-up fails) is left unchanged,
// with a summary warning. The EngineOps' native segments go to the root graph's function
// library under model-wide unique keys; at run time a body compiled by the control-flow
// kernels sees its enclosing graph's functions (runtime/control_flow.cc).
#pragma once

#include <functional>
#include <set>
#include <string>

#include "ir/graph.h"
#include "kiln/convert.h"
#include "kiln/status.h"

namespace kiln {

// Segments `body` (already prepared) and replaces its segments with EngineOps; `scope` names
// it for messages and the summary ("Loop 'x' body"). Adds to *moved the initializers of `body`
// that moved into segment functions, and to *engines / *converted what it made.
using SegmentScopeFn = std::function<Status(Graph& body, const std::string& scope,
                                            std::set<std::string>* moved, int* engines,
                                            int* converted)>;

// Converts the bodies of `graph`'s If / Loop / Scan nodes (depth first, nested bodies before
// their enclosing body); `graph` must be shape-inferred. Adds one line per body to
// summary->subgraphs and warnings for bodies left unchanged; adds to *moved_outer the
// initializers of `graph` that a body's segment took over.
Status ConvertControlFlowBodies(Graph& graph, const std::string& where,
                                const SegmentScopeFn& segment, ConversionSummary* summary,
                                std::set<std::string>* moved_outer);

}  // namespace kiln
