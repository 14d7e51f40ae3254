// Control flow: the kernels of the ONNX ops whose attributes hold subgraphs — If, Loop, Scan,
// SequenceMap. The ops themselves (schemas, shape inference) are in the op table
// (src/ops/control_flow.cc); their kernels run a subgraph through the executor, so they live in
// the runtime and are installed into the table's hook (ops/base/subgraph_kernel.h).
//
// Each node compiles its subgraphs once, when the enclosing graph is compiled: the subgraph is
// copied, the values it reads from enclosing scopes (OuterScopeReads) become extra inputs, then
// it is verified, shape-inferred and compiled to an Executor that every iteration reuses. The
// executor hands a control-flow kernel those outer values after the node's own inputs.
//
// Loops are capped: KILN_MAX_LOOP_ITERATIONS (default 10,000,000) stops a runaway Loop with an
// error naming the node. The converter builds engines inside bodies (convert/convert_bodies.h):
// a body's kiln.EngineOps are compiled with the body, once, and find their native segments in
// the enclosing graph's function library, which the body inherits here.
#pragma once

#include <cstdint>

namespace kiln {

// Installs the If, Loop, Scan and SequenceMap kernels (once, thread-safe). Session and
// InspectModel call it.
void RegisterControlFlowKernels();

// The iteration cap of one Loop run: KILN_MAX_LOOP_ITERATIONS, default 10,000,000.
int64_t MaxLoopIterations();

}  // namespace kiln
