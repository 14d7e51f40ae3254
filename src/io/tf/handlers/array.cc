// TF array / shape ops: Identity family, Reshape, Squeeze, ExpandDims, Transpose, Concat, Pack,
// Unpack, Split(V), Slice, StridedSlice, Pad family, Tile, Shape, Fill, Range, *Like, Gather,
// Cast, DepthToSpace / SpaceToDepth, SpaceToBatchND / BatchToSpaceND, BroadcastTo, Where.
#include <algorithm>
#include <limits>

#include "io/tf/handlers/handler.h"
#include "ops/base/dispatch.h"

namespace kiln::tfimport {
namespace {

constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();

Attr I(int64_t v) { return Attr::Int(v); }
Attr Is(std::vector<int64_t> v) { return Attr::Ints(std::move(v)); }
Attr DT(DataType t) { return Attr::Int(static_cast<int64_t>(t)); }

Status IdentityLike(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1));
  ctx.Emit("Identity", {ctx.input(0)}, {ctx.Output(0)});
  ctx.SetOutputType(0, ctx.input_dtype(0), ctx.input_rank(0));
  return Status::OK();
}

Status IdentityN(TfNodeContext& ctx) {
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    ctx.Emit("Identity", {ctx.input(i)}, {ctx.Output(i)});
    ctx.SetOutputType(i, ctx.input_dtype(i), ctx.input_rank(i));
  }
  return Status::OK();
}

Status NoOp(TfNodeContext&) { return Status::OK(); }

// A constant integer input required by the mapping (axis, perm, ...).
StatusOr<std::vector<int64_t>> RequireConstInts(TfNodeContext& ctx, int i, const char* what) {
  auto v = ctx.ConstInts(i);
  if (!v) return ctx.Unsupported(std::string(what) + " must be a constant");
  return *v;
}

StatusOr<int64_t> RequireConstScalar(TfNodeContext& ctx, int i, const char* what) {
  KILN_ASSIGN_OR_RETURN(auto v, RequireConstInts(ctx, i, what));
  if (v.size() != 1) return ctx.Error(std::string(what) + " must be a scalar");
  return v[0];
}

Status Reshape(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  std::string shape = ctx.Int64Vector(1);
  // TF: 0 is a zero-sized dimension, not "copy" -> allowzero.
  ctx.Emit("Reshape", {ctx.input(0), shape}, {ctx.Output(0)}, {{"allowzero", I(1)}});
  ctx.SetOutputType(0, ctx.input_dtype(0));
  return Status::OK();
}

Status Squeeze(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1));
  std::vector<int64_t> dims = ctx.Ints("squeeze_dims", ctx.Ints("axis"));
  std::vector<std::string> ins = {ctx.input(0)};
  if (!dims.empty()) ins.push_back(ctx.Const("axes", Tensor::FromVector<int64_t>(dims)));
  ctx.Emit("Squeeze", ins, {ctx.Output(0)});
  int r = ctx.input_rank(0);
  ctx.SetOutputType(0, ctx.input_dtype(0), r >= 0 && !dims.empty() ? r - int(dims.size()) : -1);
  return Status::OK();
}

Status ExpandDims(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  ctx.Emit("Unsqueeze", {ctx.input(0), ctx.Int64Vector(1)}, {ctx.Output(0)});
  int r = ctx.input_rank(0);
  ctx.SetOutputType(0, ctx.input_dtype(0), r >= 0 ? r + 1 : -1);
  return Status::OK();
}

Status Transpose(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  KILN_ASSIGN_OR_RETURN(auto perm, RequireConstInts(ctx, 1, "perm"));
  ctx.Emit("Transpose", {ctx.input(0)}, {ctx.Output(0)}, {{"perm", Is(perm)}});
  ctx.SetOutputType(0, ctx.input_dtype(0), static_cast<int>(perm.size()));
  return Status::OK();
}

// ConcatV2(values..., axis) and the old Concat(axis, values...).
Status Concat(TfNodeContext& ctx, bool axis_first) {
  if (ctx.num_inputs() < 2) return ctx.Error("needs at least one value and an axis");
  int axis_i = axis_first ? 0 : ctx.num_inputs() - 1;
  KILN_ASSIGN_OR_RETURN(int64_t axis, RequireConstScalar(ctx, axis_i, "axis"));
  std::vector<std::string> values;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (i != axis_i) values.push_back(ctx.input(i));
  }
  int first = axis_first ? 1 : 0;
  ctx.Emit("Concat", values, {ctx.Output(0)}, {{"axis", I(axis)}});
  ctx.SetOutputType(0, ctx.input_dtype(first), ctx.input_rank(first));
  return Status::OK();
}

Status Pack(TfNodeContext& ctx) {
  if (ctx.num_inputs() < 1) return ctx.Error("has no values");
  int64_t axis = ctx.Int("axis", 0);
  std::string axes = ctx.Const("axes", Tensor::FromVector<int64_t>({axis}));
  int r = ctx.input_rank(0);
  if (ctx.num_inputs() == 1) {
    ctx.Emit("Unsqueeze", {ctx.input(0), axes}, {ctx.Output(0)});
  } else {
    std::vector<std::string> parts;
    for (int i = 0; i < ctx.num_inputs(); ++i) parts.push_back(ctx.EmitTemp("Unsqueeze", {ctx.input(i), axes}));
    // A negative axis counts from the end of the output (rank + 1): Concat accepts it as is.
    ctx.Emit("Concat", parts, {ctx.Output(0)}, {{"axis", I(axis)}});
  }
  ctx.SetOutputType(0, ctx.input_dtype(0), r >= 0 ? r + 1 : -1);
  return Status::OK();
}

Status Unpack(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1));
  int64_t num = ctx.Int("num", -1);
  if (num < 1) return ctx.Error("attribute num must be >= 1");
  int64_t axis = ctx.Int("axis", 0);
  std::string sizes = ctx.Const("split", Tensor::FromVector<int64_t>(std::vector<int64_t>(num, 1)));
  std::vector<std::string> parts;
  for (int64_t k = 0; k < num; ++k) parts.push_back(ctx.Temp("part"));
  ctx.Emit("Split", {ctx.input(0), sizes}, parts, {{"axis", I(axis)}});
  std::string axes = ctx.Const("axes", Tensor::FromVector<int64_t>({axis}));
  int r = ctx.input_rank(0);
  for (int64_t k = 0; k < num; ++k) {
    ctx.Emit("Squeeze", {parts[k], axes}, {ctx.Output(static_cast<int>(k))});
    ctx.SetOutputType(static_cast<int>(k), ctx.input_dtype(0), r > 0 ? r - 1 : -1);
  }
  return Status::OK();
}

Status Split(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  KILN_ASSIGN_OR_RETURN(int64_t axis, RequireConstScalar(ctx, 0, "split_dim"));
  int64_t num = ctx.Int("num_split", -1);
  if (num < 1) return ctx.Error("attribute num_split must be >= 1");
  std::vector<std::string> outs;
  for (int64_t k = 0; k < num; ++k) outs.push_back(ctx.Output(static_cast<int>(k)));
  ctx.Emit("Split", {ctx.input(1)}, outs, {{"axis", I(axis)}, {"num_outputs", I(num)}});
  for (int64_t k = 0; k < num; ++k) {
    ctx.SetOutputType(static_cast<int>(k), ctx.input_dtype(1), ctx.input_rank(1));
  }
  return Status::OK();
}

Status SplitV(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(3));
  KILN_ASSIGN_OR_RETURN(int64_t axis, RequireConstScalar(ctx, 2, "split_dim"));
  KILN_ASSIGN_OR_RETURN(auto sizes, RequireConstInts(ctx, 1, "size_splits"));
  if (std::count(sizes.begin(), sizes.end(), -1) > 0) {
    return ctx.Unsupported("size_splits with an inferred (-1) size");
  }
  int64_t num = ctx.Int("num_split", static_cast<int64_t>(sizes.size()));
  if (num != static_cast<int64_t>(sizes.size())) return ctx.Error("num_split != len(size_splits)");
  std::vector<std::string> outs;
  for (int64_t k = 0; k < num; ++k) outs.push_back(ctx.Output(static_cast<int>(k)));
  ctx.Emit("Split", {ctx.input(0), ctx.Const("split", Tensor::FromVector<int64_t>(sizes))}, outs,
           {{"axis", I(axis)}});
  for (int64_t k = 0; k < num; ++k) {
    ctx.SetOutputType(static_cast<int>(k), ctx.input_dtype(0), ctx.input_rank(0));
  }
  return Status::OK();
}

// Slice(input, begin, size): size -1 = to the end.
Status Slice(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(3));
  auto begin = ctx.ConstInts(1);
  auto size = ctx.ConstInts(2);
  if (!begin || !size) return ctx.Unsupported("begin and size must be constants");
  if (begin->size() != size->size()) return ctx.Error("begin and size differ in length");
  std::vector<int64_t> ends(begin->size()), axes(begin->size());
  for (size_t i = 0; i < begin->size(); ++i) {
    ends[i] = (*size)[i] < 0 ? kI64Max : (*begin)[i] + (*size)[i];
    axes[i] = static_cast<int64_t>(i);
  }
  ctx.Emit("Slice",
           {ctx.input(0), ctx.Const("starts", Tensor::FromVector<int64_t>(*begin)),
            ctx.Const("ends", Tensor::FromVector<int64_t>(ends)),
            ctx.Const("axes", Tensor::FromVector<int64_t>(axes))},
           {ctx.Output(0)});
  ctx.SetOutputType(0, ctx.input_dtype(0), ctx.input_rank(0));
  return Status::OK();
}

// StridedSlice: constant begin/end/strides without ellipsis map to ONNX Slice (+ Squeeze for
// shrink_axis_mask, + Unsqueeze for new_axis_mask); everything else is kiln.StridedSlice.
Status StridedSlice(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(4));
  const int64_t begin_mask = ctx.Int("begin_mask", 0), end_mask = ctx.Int("end_mask", 0);
  const int64_t ellipsis_mask = ctx.Int("ellipsis_mask", 0);
  const int64_t new_axis_mask = ctx.Int("new_axis_mask", 0);
  const int64_t shrink_mask = ctx.Int("shrink_axis_mask", 0);
  auto b = ctx.ConstInts(1), e = ctx.ConstInts(2), s = ctx.ConstInts(3);
  const int in_rank = ctx.input_rank(0);
  if (b && e && s && ellipsis_mask == 0 && b->size() == e->size() && b->size() == s->size() &&
      std::find(s->begin(), s->end(), 0) == s->end()) {
    std::vector<int64_t> starts, ends, axes, steps, squeeze, unsqueeze;
    int64_t dense = 0, out_dims = 0;
    for (size_t i = 0; i < b->size(); ++i) {
      const int64_t bit = int64_t{1} << i;
      if (new_axis_mask & bit) {
        unsqueeze.push_back(out_dims++);
        continue;
      }
      const int64_t st = (*s)[i];
      if (shrink_mask & bit) {
        int64_t bi = (begin_mask & bit) ? (st > 0 ? 0 : -1) : (*b)[i];
        starts.push_back(bi);
        ends.push_back(bi == -1 ? kI64Max : bi + 1);
        steps.push_back(1);
        axes.push_back(dense);
        squeeze.push_back(dense++);
        continue;
      }
      starts.push_back((begin_mask & bit) ? (st > 0 ? 0 : kI64Max) : (*b)[i]);
      ends.push_back((end_mask & bit) ? (st > 0 ? kI64Max : kI64Min) : (*e)[i]);
      steps.push_back(st);
      axes.push_back(dense++);
      ++out_dims;
    }
    std::string x = ctx.input(0);
    const bool more = !squeeze.empty() || !unsqueeze.empty();
    std::string sliced = more ? ctx.Temp("Slice") : ctx.Output(0);
    ctx.Emit("Slice",
             {x, ctx.Const("starts", Tensor::FromVector<int64_t>(starts)),
              ctx.Const("ends", Tensor::FromVector<int64_t>(ends)),
              ctx.Const("axes", Tensor::FromVector<int64_t>(axes)),
              ctx.Const("steps", Tensor::FromVector<int64_t>(steps))},
             {sliced});
    if (!squeeze.empty()) {
      std::string out = unsqueeze.empty() ? ctx.Output(0) : ctx.Temp("Squeeze");
      ctx.Emit("Squeeze", {sliced, ctx.Const("axes", Tensor::FromVector<int64_t>(squeeze))},
               {out});
      sliced = out;
    }
    if (!unsqueeze.empty()) {
      ctx.Emit("Unsqueeze", {sliced, ctx.Const("axes", Tensor::FromVector<int64_t>(unsqueeze))},
               {ctx.Output(0)});
    }
    int r = in_rank >= 0 ? in_rank - static_cast<int>(squeeze.size()) +
                               static_cast<int>(unsqueeze.size())
                         : -1;
    ctx.SetOutputType(0, ctx.input_dtype(0), r);
    return Status::OK();
  }
  ctx.Emit("StridedSlice", {ctx.input(0), ctx.input(1), ctx.input(2), ctx.input(3)},
           {ctx.Output(0)},
           {{"begin_mask", I(begin_mask)},
            {"end_mask", I(end_mask)},
            {"ellipsis_mask", I(ellipsis_mask)},
            {"new_axis_mask", I(new_axis_mask)},
            {"shrink_axis_mask", I(shrink_mask)}},
           "kiln");
  ctx.SetOutputType(0, ctx.input_dtype(0));
  return Status::OK();
}

// TF paddings [rank, 2] -> ONNX pads [begin..., end...].
std::string PadsInput(TfNodeContext& ctx, int i) {
  if (auto p = ctx.ConstInts(i)) {
    size_t r = p->size() / 2;
    std::vector<int64_t> pads(2 * r);
    for (size_t k = 0; k < r; ++k) {
      pads[k] = (*p)[2 * k];
      pads[r + k] = (*p)[2 * k + 1];
    }
    return ctx.Const("pads", Tensor::FromVector<int64_t>(pads));
  }
  std::string x = ctx.input(i);
  if (ctx.input_dtype(i) != DataType::kInt64) x = ctx.EmitTemp("Cast", {x}, {{"to", DT(DataType::kInt64)}});
  std::string t = ctx.EmitTemp("Transpose", {x}, {{"perm", Is({1, 0})}});
  return ctx.EmitTemp("Reshape", {t, ctx.Const("shape", Tensor::FromVector<int64_t>({-1}))});
}

Status Pad(TfNodeContext& ctx) {
  const bool v2 = ctx.op() == "PadV2";
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(v2 ? 3 : 2));
  std::string mode = "constant";
  if (ctx.op() == "MirrorPad") {
    std::string m = ctx.Str("mode", "");
    if (m == "REFLECT") mode = "reflect";
    else return ctx.Unsupported("MirrorPad mode " + m + " (only REFLECT maps to ONNX Pad)");
  }
  std::vector<std::string> ins = {ctx.input(0), PadsInput(ctx, 1)};
  if (v2) ins.push_back(ctx.input(2));
  ctx.Emit("Pad", ins, {ctx.Output(0)}, {{"mode", Attr::String(mode)}});
  ctx.SetOutputType(0, ctx.input_dtype(0), ctx.input_rank(0));
  return Status::OK();
}

Status Tile(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  ctx.Emit("Tile", {ctx.input(0), ctx.Int64Vector(1)}, {ctx.Output(0)});
  ctx.SetOutputType(0, ctx.input_dtype(0), ctx.input_rank(0));
  return Status::OK();
}

Status ShapeOp(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1));
  KILN_ASSIGN_OR_RETURN(DataType out, ctx.Type("out_type", DataType::kInt32));
  if (out == DataType::kInt64) {
    ctx.Emit("Shape", {ctx.input(0)}, {ctx.Output(0)});
  } else {
    std::string s = ctx.EmitTemp("Shape", {ctx.input(0)});
    ctx.Emit("Cast", {s}, {ctx.Output(0)}, {{"to", DT(out)}});
  }
  ctx.SetOutputType(0, out, 1);
  return Status::OK();
}

Status SizeOp(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1));
  KILN_ASSIGN_OR_RETURN(DataType out, ctx.Type("out_type", DataType::kInt32));
  std::string s = ctx.EmitTemp("Size", {ctx.input(0)});
  ctx.Emit("Cast", {s}, {ctx.Output(0)}, {{"to", DT(out)}});
  ctx.SetOutputType(0, out, 0);
  return Status::OK();
}

Status RankOp(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1));
  std::string s = ctx.EmitTemp("Shape", {ctx.input(0)});
  std::string n = ctx.EmitTemp("Size", {s});
  ctx.Emit("Cast", {n}, {ctx.Output(0)}, {{"to", DT(DataType::kInt32)}});
  ctx.SetOutputType(0, DataType::kInt32, 0);
  return Status::OK();
}

// Fill(dims, value) = Expand(value, dims); BroadcastTo(x, shape) likewise.
Status Fill(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  const bool fill = ctx.op() == "Fill";
  int vi = fill ? 1 : 0, si = fill ? 0 : 1;
  ctx.Emit("Expand", {ctx.input(vi), ctx.Int64Vector(si)}, {ctx.Output(0)});
  ctx.SetOutputType(0, ctx.input_dtype(vi));
  return Status::OK();
}

Status Range(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(3));
  ctx.Emit("Range", {ctx.input(0), ctx.input(1), ctx.input(2)}, {ctx.Output(0)});
  ctx.SetOutputType(0, ctx.input_dtype(0), 1);
  return Status::OK();
}

Status FillLike(TfNodeContext& ctx, double value) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1));
  KILN_ASSIGN_OR_RETURN(DataType t, ctx.Type("T"));
  std::string shape = ctx.EmitTemp("Shape", {ctx.input(0)});
  ctx.Emit("Expand", {ctx.Const("value", ScalarOf(t, value)), shape}, {ctx.Output(0)});
  ctx.SetOutputType(0, t, ctx.input_rank(0));
  return Status::OK();
}

Status Gather(TfNodeContext& ctx) {
  const bool v2 = ctx.op() == "GatherV2";
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(v2 ? 3 : 2));
  int64_t axis = 0;
  if (v2) {
    KILN_ASSIGN_OR_RETURN(axis, RequireConstScalar(ctx, 2, "axis"));
  }
  if (ctx.Int("batch_dims", 0) != 0) return ctx.Unsupported("batch_dims != 0");
  ctx.Emit("Gather", {ctx.input(0), ctx.input(1)}, {ctx.Output(0)}, {{"axis", I(axis)}});
  ctx.SetOutputType(0, ctx.input_dtype(0));
  return Status::OK();
}

Status GatherNd(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(2));
  std::string idx = ctx.input(1);
  if (ctx.input_dtype(1) != DataType::kInt64) idx = ctx.EmitTemp("Cast", {idx}, {{"to", DT(DataType::kInt64)}});
  ctx.Emit("GatherND", {ctx.input(0), idx}, {ctx.Output(0)});
  ctx.SetOutputType(0, ctx.input_dtype(0));
  return Status::OK();
}

Status Cast(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1));
  KILN_ASSIGN_OR_RETURN(DataType to, ctx.Type("DstT"));
  ctx.Emit("Cast", {ctx.input(0)}, {ctx.Output(0)}, {{"to", DT(to)}});
  ctx.SetOutputType(0, to, ctx.input_rank(0));
  return Status::OK();
}

Status DepthSpace(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(1));
  std::string fmt = ctx.Str("data_format", "NHWC");
  if (fmt != "NHWC" && fmt != "NCHW") return ctx.Unsupported("data_format " + fmt);
  AttrMap attrs = {{"blocksize", I(ctx.Int("block_size", 0))},
                   {"data_format", Attr::String(fmt)}};
  if (ctx.op() == "DepthToSpace") attrs["mode"] = Attr::String("DCR");
  ctx.Emit(ctx.op(), {ctx.input(0)}, {ctx.Output(0)}, attrs);
  ctx.SetOutputType(0, ctx.input_dtype(0), 4);
  return Status::OK();
}

// SpaceToBatchND(input, block_shape, paddings) / BatchToSpaceND(input, block_shape, crops).
Status SpaceBatch(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(3));
  ctx.Emit(ctx.op(), {ctx.input(0), ctx.input(1), ctx.input(2)}, {ctx.Output(0)}, {}, "kiln");
  ctx.SetOutputType(0, ctx.input_dtype(0), ctx.input_rank(0));
  return Status::OK();
}

// Select (v1: a vector condition picks rows) and SelectV2 (broadcasting) -> Where.
Status Select(TfNodeContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.ExpectInputs(3));
  std::string cond = ctx.input(0);
  if (ctx.op() == "Select") {
    int rc = ctx.input_rank(0), rx = ctx.input_rank(1);
    if (rc < 0 || rx < 0) {
      if (rc != 0) return ctx.Unsupported("Select with a condition of unknown rank");
    } else if (rc == 1 && rx > 1) {
      std::vector<int64_t> axes;
      for (int k = 1; k < rx; ++k) axes.push_back(k);
      cond = ctx.EmitTemp("Unsqueeze", {cond, ctx.Const("axes", Tensor::FromVector<int64_t>(axes))});
    }
  }
  ctx.Emit("Where", {cond, ctx.input(1), ctx.input(2)}, {ctx.Output(0)});
  ctx.SetOutputType(0, ctx.input_dtype(1));
  return Status::OK();
}

}  // namespace

void RegisterTfArrayHandlers(TfHandlerRegistry& r) {
  for (const char* op : {"Identity", "StopGradient", "Snapshot", "PreventGradient",
                         "PlaceholderWithDefault", "EnsureShape", "CheckNumerics"}) {
    r.Register(op, IdentityLike);
  }
  r.Register("IdentityN", IdentityN);
  r.Register("NoOp", NoOp);
  r.Register("Reshape", Reshape);
  r.Register("Squeeze", Squeeze);
  r.Register("ExpandDims", ExpandDims);
  r.Register("Transpose", Transpose);
  r.Register("ConcatV2", [](TfNodeContext& c) { return Concat(c, false); });
  r.Register("Concat", [](TfNodeContext& c) { return Concat(c, true); });
  r.Register("Pack", Pack);
  r.Register("Unpack", Unpack);
  r.Register("Split", Split);
  r.Register("SplitV", SplitV);
  r.Register("Slice", Slice);
  r.Register("StridedSlice", StridedSlice);
  r.Register("Pad", Pad);
  r.Register("PadV2", Pad);
  r.Register("MirrorPad", Pad);
  r.Register("Tile", Tile);
  r.Register("Shape", ShapeOp);
  r.Register("Size", SizeOp);
  r.Register("Rank", RankOp);
  r.Register("Fill", Fill);
  r.Register("BroadcastTo", Fill);
  r.Register("Range", Range);
  r.Register("ZerosLike", [](TfNodeContext& c) { return FillLike(c, 0); });
  r.Register("OnesLike", [](TfNodeContext& c) { return FillLike(c, 1); });
  r.Register("GatherV2", Gather);
  r.Register("Gather", Gather);
  r.Register("GatherNd", GatherNd);
  r.Register("Cast", Cast);
  r.Register("DepthToSpace", DepthSpace);
  r.Register("SpaceToDepth", DepthSpace);
  r.Register("SpaceToBatchND", SpaceBatch);
  r.Register("BatchToSpaceND", SpaceBatch);
  r.Register("Select", Select);
  r.Register("SelectV2", Select);
}

}  // namespace kiln::tfimport
