// TensorArrayV3 and TensorList* ops -> ONNX sequence ops.
//
// A TensorArray is a sequence carried by its *flow* value (TensorArrayV3 output 1, the flow_in
// input and flow_out output of the other ops); the resource handle (output 0) becomes a dummy
// int32 scalar that no kernel reads. TF lists are plain sequences.
//   TensorArrayV3(size)                    handle, SequenceEmpty(dtype)
//   TensorArrayWriteV3(h, i, v, flow)      SequenceInsert(flow, v, i): TF writes each index at
//                                          most once; in-order writes (as tf.while_loop and
//                                          map_fn make) append, an out-of-order write fails
//   TensorArrayReadV3(h, i, flow)          SequenceAt(flow, i)
//   TensorArrayGatherV3(h, idx, flow)      Gather(ConcatFromSequence(flow, new_axis=1), idx)
//   TensorArrayScatterV3(h, idx, v, flow)  SplitToSequence(v, keepdims=0): the unstack form,
//                                          idx = range(len(v)) on a fresh array
//   TensorArraySizeV3(h, flow)             int32(SequenceLength(flow)) (the written size)
//   TensorArrayCloseV3                     nothing
//   TensorListReserve / EmptyTensorList    SequenceEmpty(element_dtype)
//   TensorListSetItem(l, i, v)             SequenceInsert(l, v, i) (in-order, as above)
//   TensorListPushBack(l, v)               SequenceInsert(l, v)
//   TensorListGetItem(l, i, shape)         SequenceAt(l, i)
//   TensorListStack(l, shape)              ConcatFromSequence(l, axis 0, new_axis=1)
//   TensorListGather(l, idx, shape)        Gather(stack, idx)
//   TensorListFromTensor(t, shape)         SplitToSequence(t, keepdims=0)
//   TensorListLength(l)                    int32(SequenceLength(l))
// and Where(x) (the one-input form: indices of the non-zero elements, [n, rank] int64), which
// the TF.js loops around NonMaxSuppression use: Transpose(NonZero(x)).
#include "io/tf/handlers/handler.h"

namespace kiln::tfimport {
namespace {

Attr DT(DataType t) { return Attr::Int(static_cast<int64_t>(t)); }

Status NewArray(TfNodeContext& ctx, const std::string& type_attr, bool handle) {
  KILN_ASSIGN_OR_RETURN(DataType dt, ctx.Type(type_attr));
  int flow = 0;
  if (handle) {
    Tensor h = Tensor::Empty(DataType::kInt32, {});
    *h.mutable_data<int32_t>() = 0;
    ctx.Emit("Identity", {ctx.Const("handle", h)}, {ctx.Output(0)});
    ctx.SetOutputType(0, DataType::kInt32, 0);
    flow = 1;
  }
  ctx.Emit("SequenceEmpty", {}, {ctx.Output(flow)}, {{"dtype", DT(dt)}});
  ctx.SetOutputType(flow, dt);
  return Status::OK();
}

Status Insert(TfNodeContext& ctx, int seq, int value, int index) {
  std::vector<std::string> in = {ctx.input(seq), ctx.input(value)};
  if (index >= 0) in.push_back(ctx.input(index));
  ctx.Emit("SequenceInsert", in, {ctx.Output(0)});
  ctx.SetOutputType(0, ctx.input_dtype(seq));
  return Status::OK();
}

Status At(TfNodeContext& ctx, int seq, int index) {
  ctx.Emit("SequenceAt", {ctx.input(seq), ctx.input(index)}, {ctx.Output(0)});
  ctx.SetOutputType(0, ctx.input_dtype(seq));
  return Status::OK();
}

Status Stack(TfNodeContext& ctx, int seq, int indices) {
  if (indices < 0) {
    ctx.Emit("ConcatFromSequence", {ctx.input(seq)}, {ctx.Output(0)},
             {{"axis", Attr::Int(0)}, {"new_axis", Attr::Int(1)}});
  } else {
    std::string all = ctx.EmitTemp("ConcatFromSequence", {ctx.input(seq)},
                                   {{"axis", Attr::Int(0)}, {"new_axis", Attr::Int(1)}});
    ctx.Emit("Gather", {all, ctx.input(indices)}, {ctx.Output(0)}, {{"axis", Attr::Int(0)}});
  }
  ctx.SetOutputType(0, ctx.input_dtype(seq));
  return Status::OK();
}

Status Split(TfNodeContext& ctx, int value) {
  ctx.Emit("SplitToSequence", {ctx.input(value)}, {ctx.Output(0)},
           {{"axis", Attr::Int(0)}, {"keepdims", Attr::Int(0)}});
  ctx.SetOutputType(0, ctx.input_dtype(value));
  return Status::OK();
}

Status Length(TfNodeContext& ctx, int seq) {
  std::string n = ctx.EmitTemp("SequenceLength", {ctx.input(seq)});
  ctx.Emit("Cast", {n}, {ctx.Output(0)}, {{"to", DT(DataType::kInt32)}});
  ctx.SetOutputType(0, DataType::kInt32, 0);
  return Status::OK();
}

}  // namespace

void RegisterTfTensorArrayHandlers(TfHandlerRegistry& r) {
  r.Register("Where", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(1));
    std::string nz = c.EmitTemp("NonZero", {c.input(0)});
    c.Emit("Transpose", {nz}, {c.Output(0)}, {{"perm", Attr::Ints({1, 0})}});
    c.SetOutputType(0, DataType::kInt64, 2);
    return Status::OK();
  });
  r.Register("TensorArrayV3", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(1));
    return NewArray(c, "dtype", true);
  });
  r.Register("TensorArrayWriteV3", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(4));
    return Insert(c, 3, 2, 1);
  });
  r.Register("TensorArrayReadV3", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(3));
    return At(c, 2, 1);
  });
  r.Register("TensorArrayGatherV3", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(3));
    return Stack(c, 2, 1);
  });
  r.Register("TensorArrayScatterV3", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(4));
    return Split(c, 2);
  });
  r.Register("TensorArraySizeV3", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(2));
    return Length(c, 1);
  });
  r.Register("TensorArrayCloseV3", [](TfNodeContext&) { return Status::OK(); });
  r.Register("TensorListReserve", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(2));
    return NewArray(c, "element_dtype", false);
  });
  r.Register("EmptyTensorList", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(2));
    return NewArray(c, "element_dtype", false);
  });
  r.Register("TensorListSetItem", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(3));
    return Insert(c, 0, 2, 1);
  });
  r.Register("TensorListPushBack", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(2));
    return Insert(c, 0, 1, -1);
  });
  r.Register("TensorListGetItem", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(2, 3));
    return At(c, 0, 1);
  });
  r.Register("TensorListStack", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(1, 2));
    return Stack(c, 0, -1);
  });
  r.Register("TensorListGather", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(2, 3));
    return Stack(c, 0, 1);
  });
  r.Register("TensorListFromTensor", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(1, 2));
    return Split(c, 0);
  });
  r.Register("TensorListLength", [](TfNodeContext& c) {
    KILN_RETURN_IF_ERROR(c.ExpectInputs(1));
    return Length(c, 0);
  });
}

}  // namespace kiln::tfimport
