// Op family: sequence — ONNX's seq(tensor) and optional values (Tensor::Sequence,
// Tensor::NoneOptional; see kiln/tensor.h).
//
//   SequenceEmpty SequenceConstruct SequenceAt SequenceInsert SequenceErase SequenceLength
//   SplitToSequence (11)             split absent (chunks of 1, keepdims), scalar or 1-D
//   ConcatFromSequence (11)          axis, new_axis (stack)
//   Optional OptionalHasElement OptionalGetElement (15/18)
//
// SequenceMap, which runs a subgraph, is a control-flow op (src/runtime/control_flow.cc).
#include <algorithm>
#include <climits>
#include <string>
#include <vector>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/base/shape_util.h"
#include "ops/data_movement.h"

namespace kiln {
namespace {

StatusOr<const Tensor*> SequenceInput(const KernelContext& ctx, int i) {
  if (!ctx.has_input(i) || !ctx.input(i).is_sequence()) {
    return ctx.Error("input " + std::to_string(i) + " must be a sequence, got " +
                     (ctx.has_input(i) ? ctx.input(i).TypeString() : std::string("nothing")));
  }
  return &ctx.input(i);
}

StatusOr<const Tensor*> TensorInput(const KernelContext& ctx, int i) {
  if (!ctx.has_input(i) || !ctx.input(i).is_tensor()) {
    return ctx.Error("input " + std::to_string(i) + " must be a tensor");
  }
  return &ctx.input(i);
}

// Reads a position input (one integer) and maps it into [0, limit] (negative counts from
// `size`); InvalidArgument when outside [-size, limit].
StatusOr<int64_t> Position(const KernelContext& ctx, int i, int64_t size, int64_t limit) {
  KILN_ASSIGN_OR_RETURN(const Tensor* t, TensorInput(ctx, i));
  if (t->num_elements() != 1 || !IsInteger(t->dtype())) {
    return ctx.Error("position must be one integer, got " + t->TypeString());
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> v, ReadInt64s(*t));
  const int64_t p = v[0];
  if (p < -size || p > limit) {
    return ctx.Error("position " + std::to_string(p) + " is out of range for a sequence of " +
                     std::to_string(size) + " items");
  }
  return p < 0 ? p + size : p;
}

Status InferElementType(InferContext& ctx) {
  ctx.SetOutput(0, ctx.input_dtype(0), Shape());
  return Status::OK();
}

// ------------------------------------------------------------------------------ kernels

Status SequenceEmptyKernel(KernelContext& ctx) {
  const int64_t dt = ctx.GetInt("dtype");
  if (dt <= 0 || dt > INT32_MAX || !IsValidDataType(static_cast<int32_t>(dt))) {
    return ctx.Error("unsupported dtype " + std::to_string(dt));
  }
  ctx.SetOutput(0, Tensor::Sequence(static_cast<DataType>(dt), {}));
  return Status::OK();
}

Status SequenceConstructKernel(KernelContext& ctx) {
  std::vector<Tensor> items;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    KILN_ASSIGN_OR_RETURN(const Tensor* t, TensorInput(ctx, i));
    if (t->dtype() != ctx.input(0).dtype()) {
      return ctx.Error("all inputs must have one dtype (" + ctx.input(0).TypeString() + " and " +
                       t->TypeString() + ")");
    }
    items.push_back(*t);
  }
  ctx.SetOutput(0, Tensor::Sequence(ctx.input(0).dtype(), std::move(items)));
  return Status::OK();
}

Status SequenceAtKernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* seq, SequenceInput(ctx, 0));
  const int64_t n = static_cast<int64_t>(seq->sequence().size());
  KILN_ASSIGN_OR_RETURN(int64_t p, Position(ctx, 1, n, n - 1));
  ctx.SetOutput(0, seq->sequence()[p]);
  return Status::OK();
}

Status SequenceInsertKernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* seq, SequenceInput(ctx, 0));
  KILN_ASSIGN_OR_RETURN(const Tensor* t, TensorInput(ctx, 1));
  std::vector<Tensor> items = seq->sequence();
  if (!items.empty() && t->dtype() != seq->dtype()) {
    return ctx.Error("cannot insert " + t->TypeString() + " into " + seq->TypeString());
  }
  const int64_t n = static_cast<int64_t>(items.size());
  int64_t p = n;
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(p, Position(ctx, 2, n, n));
  }
  items.insert(items.begin() + p, *t);
  ctx.SetOutput(0, Tensor::Sequence(t->dtype(), std::move(items)));
  return Status::OK();
}

Status SequenceEraseKernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* seq, SequenceInput(ctx, 0));
  std::vector<Tensor> items = seq->sequence();
  const int64_t n = static_cast<int64_t>(items.size());
  if (n == 0) return ctx.Error("cannot erase from an empty sequence");
  int64_t p = n - 1;
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(p, Position(ctx, 1, n, n - 1));
  }
  items.erase(items.begin() + p);
  ctx.SetOutput(0, Tensor::Sequence(seq->dtype(), std::move(items)));
  return Status::OK();
}

Status SequenceLengthKernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* seq, SequenceInput(ctx, 0));
  ctx.SetOutput(0, Tensor::Scalar<int64_t>(static_cast<int64_t>(seq->sequence().size())));
  return Status::OK();
}

Status SplitToSequenceKernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, TensorInput(ctx, 0));
  if (x->rank() == 0) return ctx.Error("input must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.GetInt("axis"), x->rank(), ctx.node()));
  const int64_t len = x->dim(axis);
  std::vector<int64_t> sizes;
  bool squeeze = false;
  if (!ctx.has_input(1)) {
    sizes.assign(len, 1);
    squeeze = ctx.GetInt("keepdims") == 0;
  } else {
    KILN_ASSIGN_OR_RETURN(const Tensor* split, TensorInput(ctx, 1));
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> v, ReadInt64s(*split));
    if (split->rank() == 0) {
      if (v[0] <= 0) return ctx.Error("split must be positive");
      for (int64_t at = 0; at < len; at += v[0]) sizes.push_back(std::min(v[0], len - at));
    } else {
      int64_t sum = 0;
      for (int64_t s : v) {
        if (s < 0) return ctx.Error("split sizes must be non-negative");
        sum += s;
      }
      if (sum != len) {
        return ctx.Error("split sizes add up to " + std::to_string(sum) + ", axis has " +
                         std::to_string(len));
      }
      sizes = v;
    }
  }
  std::vector<Tensor> items;
  int64_t at = 0;
  for (int64_t s : sizes) {
    KILN_ASSIGN_OR_RETURN(Tensor part, data_movement::SliceAlongAxis(*x, axis, at, s));
    if (squeeze) {
      std::vector<int64_t> dims = part.dims();
      dims.erase(dims.begin() + axis);
      KILN_ASSIGN_OR_RETURN(part, part.Reshaped(dims));
    }
    items.push_back(std::move(part));
    at += s;
  }
  ctx.SetOutput(0, Tensor::Sequence(x->dtype(), std::move(items)));
  return Status::OK();
}

Status ConcatFromSequenceKernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* seq, SequenceInput(ctx, 0));
  const auto& items = seq->sequence();
  if (items.empty()) return ctx.Error("cannot concatenate an empty sequence");
  const bool new_axis = ctx.GetInt("new_axis") != 0;
  const int rank = items[0].rank() + (new_axis ? 1 : 0);
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.GetInt("axis"), rank, ctx.node()));
  if (!new_axis) {
    KILN_ASSIGN_OR_RETURN(Tensor out, data_movement::ConcatAlongAxis(items, axis, ctx.node().Describe()));
    ctx.SetOutput(0, std::move(out));
    return Status::OK();
  }
  std::vector<Tensor> expanded;
  for (const Tensor& t : items) {
    std::vector<int64_t> dims = t.dims();
    if (axis > static_cast<int>(dims.size())) return ctx.Error("items differ in rank");
    dims.insert(dims.begin() + axis, 1);
    KILN_ASSIGN_OR_RETURN(Tensor e, t.Reshaped(dims));
    expanded.push_back(std::move(e));
  }
  KILN_ASSIGN_OR_RETURN(Tensor out, data_movement::ConcatAlongAxis(expanded, axis, ctx.node().Describe()));
  ctx.SetOutput(0, std::move(out));
  return Status::OK();
}

Status OptionalKernel(KernelContext& ctx) {
  if (ctx.has_input(0)) {
    ctx.SetOutput(0, ctx.input(0));
    return Status::OK();
  }
  return ctx.UnimplementedError("Optional without an input needs its 'type' attribute, which "
                                "kiln does not read");
}

Status OptionalHasElementKernel(KernelContext& ctx) {
  const bool has = ctx.has_input(0) && !ctx.input(0).is_none();
  ctx.SetOutput(0, Tensor::Scalar<bool>(has));
  return Status::OK();
}

Status OptionalGetElementKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || ctx.input(0).is_none()) {
    return ctx.Error("the optional input is empty");
  }
  ctx.SetOutput(0, ctx.input(0));
  return Status::OK();
}

}  // namespace

void RegisterSequenceOps(OpRegistry& r) {
  MustRegister(r, OpSchema("SequenceEmpty")
                      .Doc("An empty sequence of element type dtype (default float32).")
                      .Inputs(0, 0)
                      .AttrDefault("dtype", int64_t{1})
                      .NonTensorValues()
                      .Infer([](InferContext& ctx) {
                        const int64_t dt = ctx.GetInt("dtype");
                        if (dt > 0 && dt <= INT32_MAX && IsValidDataType(static_cast<int32_t>(dt))) {
                          ctx.SetOutput(0, static_cast<DataType>(dt), Shape());
                        }
                        return Status::OK();
                      })
                      .Kernel(SequenceEmptyKernel));
  MustRegister(r, OpSchema("SequenceConstruct")
                      .Doc("A sequence of the input tensors (one dtype).")
                      .Inputs(1, OpSchema::kVariadic)
                      .NonTensorValues()
                      .Infer(InferElementType)
                      .Kernel(SequenceConstructKernel));
  MustRegister(r, OpSchema("SequenceAt")
                      .Doc("Item `position` of the sequence (negative counts from the end).")
                      .Inputs(2, 2)
                      .InputTypes(1, IndexTypes())
                      .NonTensorValues()
                      .Infer(InferElementType)
                      .Kernel(SequenceAtKernel));
  MustRegister(r, OpSchema("SequenceInsert")
                      .Doc("The sequence with a tensor inserted at `position` (default: end).")
                      .Inputs(2, 3)
                      .InputTypes(2, IndexTypes())
                      .NonTensorValues()
                      .Infer(InferElementType)
                      .Kernel(SequenceInsertKernel));
  MustRegister(r, OpSchema("SequenceErase")
                      .Doc("The sequence without item `position` (default: the last).")
                      .Inputs(1, 2)
                      .InputTypes(1, IndexTypes())
                      .NonTensorValues()
                      .Infer(InferElementType)
                      .Kernel(SequenceEraseKernel));
  MustRegister(r, OpSchema("SequenceLength")
                      .Doc("The number of items, as an int64 scalar.")
                      .Inputs(1, 1)
                      .NonTensorValues()
                      .Infer([](InferContext& ctx) {
                        ctx.SetOutput(0, DataType::kInt64, Shape::Scalar());
                        return Status::OK();
                      })
                      .Kernel(SequenceLengthKernel));
  MustRegister(r, OpSchema("SplitToSequence")
                      .Doc("Splits along axis into a sequence: chunks of 1 (keepdims=0 squeezes "
                           "them) without split, chunks of a scalar split, or 1-D split sizes.")
                      .Inputs(1, 2)
                      .InputTypes(1, IndexTypes())
                      .AttrDefault("axis", int64_t{0})
                      .AttrDefault("keepdims", int64_t{1})
                      .NonTensorValues()
                      .Infer(InferElementType)
                      .Kernel(SplitToSequenceKernel));
  MustRegister(r, OpSchema("ConcatFromSequence")
                      .Doc("Concatenates the items along axis (new_axis=1 stacks them).")
                      .Inputs(1, 1)
                      .AttrNoDefault("axis", AttrType::kInt, /*required=*/true)
                      .AttrDefault("new_axis", int64_t{0})
                      .NonTensorValues()
                      .Infer(InferElementType)
                      .Kernel(ConcatFromSequenceKernel));
  MustRegister(r, OpSchema("Optional")
                      .Doc("An optional holding the input (an empty one needs the TypeProto "
                           "attribute 'type', not read yet).")
                      .Inputs(0, 1)
                      .NonTensorValues()
                      .Infer(InferElementType)
                      .Kernel(OptionalKernel));
  MustRegister(r, OpSchema("OptionalHasElement")
                      .Doc("True when the input is given and not an empty optional.")
                      .Inputs(0, 1)
                      .NonTensorValues()
                      .Infer([](InferContext& ctx) {
                        ctx.SetOutput(0, DataType::kBool, Shape::Scalar());
                        return Status::OK();
                      })
                      .Kernel(OptionalHasElementKernel));
  MustRegister(r, OpSchema("OptionalGetElement")
                      .Doc("The value inside the optional (a tensor or sequence passes through); "
                           "an empty optional is an error.")
                      .Inputs(1, 1)
                      .NonTensorValues()
                      .Infer(InferElementType)
                      .Kernel(OptionalGetElementKernel));
}

}  // namespace kiln
