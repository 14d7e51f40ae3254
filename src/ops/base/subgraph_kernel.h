// Kernels of the ops whose attributes hold subgraphs (If, Loop, Scan, SequenceMap).
//
// The op table declares these ops (src/ops/control_flow.cc: inputs, attributes, shape
// inference), so importers, the verifier and the converter know them. Their kernels run the
// subgraphs through the executor, which lives above ops/ (ARCHITECTURE §4): the runtime installs
// one factory per op here (RegisterControlFlowKernels, src/runtime/control_flow.h) before it
// compiles a graph. The schemas' StatefulKernel is CreateSubgraphKernel, which looks the
// factory up; with none installed a node fails to compile with FailedPrecondition.
#pragma once

#include <memory>
#include <string>

#include "ops/base/op_schema.h"

namespace kiln {

// Installs (or replaces) the kernel factory for `op` (thread-safe).
void SetSubgraphKernelFactory(const std::string& op, KernelFactory factory);
// The installed factory's kernel for init.node.
StatusOr<std::unique_ptr<OpKernel>> CreateSubgraphKernel(const KernelInitContext& init);

// What subgraph `body` declares for its output k (dtype and shape, possibly unknown).
ValueInfo SubgraphOutputInfo(const Graph& body, int k);

// The control_flow op family (src/ops/control_flow.cc).
void RegisterControlFlowOps(OpRegistry& r);

}  // namespace kiln
