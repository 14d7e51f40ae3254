// Op family: control_flow — the ONNX ops whose attributes hold subgraphs, declared here with
// their shape inference:
//
//   If                     then_branch / else_branch by a one-element bool cond
//   Loop (11-16+)          M and cond optional, loop-carried values, scan outputs
//   Scan (8, 9-16+)        scan axes and directions; opset 8's batched form without
//                          sequence_lens
//   SequenceMap (17)       body over the items of one or more sequences
//
// Their kernels run the subgraphs through the executor, which lives above ops/: the runtime
// installs them (RegisterControlFlowKernels, src/runtime/control_flow.cc), and until it does a
// node of these ops fails to compile with a clear error (ops/base/subgraph_kernel.h).
#include <algorithm>
#include <string>
#include <vector>

#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/base/subgraph_kernel.h"

namespace kiln {
namespace {

const Graph* GraphAttr(const Node& node, const std::string& name) {
  const Attr* a = node.FindAttr(name);
  return a != nullptr && a->type == AttrType::kGraph ? a->g.get() : nullptr;
}

Status InferIf(InferContext& ctx) {
  const Graph* then_g = GraphAttr(ctx.node(), "then_branch");
  const Graph* else_g = GraphAttr(ctx.node(), "else_branch");
  if (then_g == nullptr || else_g == nullptr) return Status::OK();
  for (int k = 0; k < ctx.num_outputs(); ++k) {
    ValueInfo a = SubgraphOutputInfo(*then_g, k), b = SubgraphOutputInfo(*else_g, k);
    DataType dt = a.dtype != DataType::kUndefined ? a.dtype : b.dtype;
    ctx.SetOutput(k, dt, a.shape == b.shape ? a.shape : Shape());
  }
  return Status::OK();
}

Status InferLoop(InferContext& ctx) {
  const Graph* body = GraphAttr(ctx.node(), "body");
  const int carried = std::max(0, ctx.num_inputs() - 2);
  for (int k = 0; k < ctx.num_outputs(); ++k) {
    if (k < carried) {
      DataType dt = ctx.input_dtype(2 + k);
      if (dt == DataType::kUndefined && body) dt = SubgraphOutputInfo(*body, 1 + k).dtype;
      ctx.SetOutput(k, dt, Shape());
    } else if (body != nullptr) {
      ValueInfo vi = SubgraphOutputInfo(*body, 1 + k);
      Shape s;
      if (vi.shape.rank_known()) {
        std::vector<int64_t> dims = vi.shape.dims();
        dims.insert(dims.begin(), Shape::kUnknownDim);
        s = Shape(dims);
      }
      ctx.SetOutput(k, vi.dtype, s);
    }
  }
  return Status::OK();
}

Status InferScan(InferContext& ctx) {
  const Graph* body = GraphAttr(ctx.node(), "body");
  const int first = ctx.opset() < 9 ? 1 : 0;
  const int num_scan_in = static_cast<int>(ctx.GetInt("num_scan_inputs"));
  const int states = ctx.num_inputs() - first - num_scan_in;
  for (int k = 0; k < ctx.num_outputs(); ++k) {
    if (k < states) {
      ctx.SetOutput(k, ctx.input_dtype(first + k), ctx.input_shape(first + k));
    } else if (body != nullptr) {
      ctx.SetOutput(k, SubgraphOutputInfo(*body, k).dtype, Shape());
    }
  }
  return Status::OK();
}

Status InferSequenceMap(InferContext& ctx) {
  const Graph* body = GraphAttr(ctx.node(), "body");
  if (body == nullptr) return Status::OK();
  for (int k = 0; k < ctx.num_outputs(); ++k) ctx.SetOutput(k, SubgraphOutputInfo(*body, k).dtype, Shape());
  return Status::OK();
}

}  // namespace

void RegisterControlFlowOps(OpRegistry& r) {
  MustRegister(r, OpSchema("If")
                      .Doc("Runs then_branch or else_branch (subgraphs, compiled once) by a "
                           "one-element bool cond; branches may read outer-scope values.")
                      .Inputs(1, 1)
                      .Outputs(1, OpSchema::kVariadic)
                      .AttrNoDefault("then_branch", AttrType::kGraph, /*required=*/true)
                      .AttrNoDefault("else_branch", AttrType::kGraph, /*required=*/true)
                      .NonTensorValues()
                      .Infer(InferIf)
                      .StatefulKernel(CreateSubgraphKernel));
  MustRegister(r, OpSchema("Loop")
                      .Doc("Runs body while i < M and cond (both optional): loop-carried values "
                           "and stacked scan outputs. Capped by KILN_MAX_LOOP_ITERATIONS.")
                      .Inputs(0, OpSchema::kVariadic)  // M and cond are optional (may be "")
                      .Outputs(1, OpSchema::kVariadic)
                      .AttrNoDefault("body", AttrType::kGraph, /*required=*/true)
                      .NonTensorValues()
                      .Infer(InferLoop)
                      .StatefulKernel(CreateSubgraphKernel));
  MustRegister(r, OpSchema("Scan")
                      .Doc("Runs body over slices of the scan inputs (axes, directions), carrying "
                           "state; opset 8's batched form (no sequence_lens) too.")
                      .Inputs(0, OpSchema::kVariadic)  // opset 8: input 0 is optional
                      .Outputs(1, OpSchema::kVariadic)
                      .AttrNoDefault("body", AttrType::kGraph, /*required=*/true)
                      .AttrNoDefault("num_scan_inputs", AttrType::kInt, /*required=*/true)
                      .AttrNoDefault("scan_input_axes", AttrType::kInts)
                      .AttrNoDefault("scan_input_directions", AttrType::kInts)
                      .AttrNoDefault("scan_output_axes", AttrType::kInts)
                      .AttrNoDefault("scan_output_directions", AttrType::kInts)
                      .AttrNoDefault("directions", AttrType::kInts)
                      .Infer(InferScan)
                      .StatefulKernel(CreateSubgraphKernel));
  MustRegister(r, OpSchema("SequenceMap")
                      .Doc("Applies body to each element of the input sequence (and of the "
                           "additional sequences; tensors are passed whole).")
                      .Inputs(1, OpSchema::kVariadic)
                      .Outputs(1, OpSchema::kVariadic)
                      .AttrNoDefault("body", AttrType::kGraph, /*required=*/true)
                      .NonTensorValues()
                      .Infer(InferSequenceMap)
                      .StatefulKernel(CreateSubgraphKernel));
}

}  // namespace kiln
