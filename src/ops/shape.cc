// Op family: shape — ops that rearrange or describe a tensor's shape.
//
// Reshape Flatten Squeeze Unsqueeze Shape Size ConstantOfShape Range Transpose Expand Tile
// DepthToSpace SpaceToDepth EyeLike. Kernels that only move data work for every dtype (strings
// included) through data_movement::StridedCopy; Reshape, Flatten, Squeeze and Unsqueeze are
// zero-copy views of their input.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/base/shape_util.h"
#include "ops/data_movement.h"

namespace kiln {
namespace {

namespace dm = data_movement;
using dm::ConstantInts;
using dm::Dims;
using dm::IndexInput;
using dm::Str;

// Axes from input `index` when the node has it (newer opsets), else the "axes" attribute.
std::optional<Dims> AxesAtInference(const InferContext& ctx, int index) {
  if (ctx.has_input(index)) return ConstantInts(ctx, index);
  return ctx.GetInts("axes");
}

StatusOr<Dims> AxesInKernel(const KernelContext& ctx, int index) {
  if (ctx.has_input(index)) return IndexInput(ctx, index, "axes");
  return ctx.GetInts("axes");
}

// Maps axes into [0, rank), sorted; errors on out-of-range or repeated axes.
StatusOr<Dims> NormalizeAxes(const AttrReader& ctx, Dims axes, int64_t rank) {
  for (int64_t& a : axes) {
    if (a < -rank || a >= rank) {
      return ctx.Error("axis " + Str(a) + " is out of range for rank " + Str(rank));
    }
    if (a < 0) a += rank;
  }
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end()) {
    return ctx.Error("axes contain a repeated axis");
  }
  return axes;
}

StatusOr<int64_t> CheckedMul(const AttrReader& ctx, int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return ctx.Error("shape size overflows int64");
  return r;
}

// Output dims of Reshape. `in` may hold unknown (-1) dims at inference time; output dims that
// depend on them come out unknown.
StatusOr<Dims> ReshapeDims(const AttrReader& ctx, const Dims& in, const Dims& shape,
                           bool allowzero) {
  Dims out = shape;
  int infer = -1;
  bool has_zero = false, product_known = true;
  int64_t product = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t v = shape[i];
    if (v == -1) {
      if (infer >= 0) return ctx.Error("shape has more than one -1");
      infer = static_cast<int>(i);
      continue;
    }
    if (v < -1) return ctx.Error("shape has invalid dimension " + Str(v));
    if (v == 0 && !allowzero) {
      if (i >= in.size()) {
        return ctx.Error("shape[" + Str(i) + "] = 0 copies an input dim, but the input has rank " +
                         Str(in.size()));
      }
      out[i] = in[i];
    }
    has_zero |= v == 0;
    if (out[i] < 0) {
      product_known = false;
    } else {
      KILN_ASSIGN_OR_RETURN(product, CheckedMul(ctx, product, out[i]));
    }
  }
  if (allowzero && has_zero && infer >= 0) {
    return ctx.Error("shape has both 0 and -1 while allowzero = 1");
  }
  int64_t total = 1;
  for (int64_t d : in) {
    if (d < 0) return out;  // unknown input size: nothing more to check or infer
    total *= d;
  }
  if (infer >= 0) {
    if (!product_known) return out;
    if (product == 0) {
      if (total != 0) return ctx.Error("cannot infer the -1 dim of a shape with a 0 dim");
      out[infer] = 0;
    } else {
      if (total % product != 0) {
        return ctx.Error("cannot reshape " + DimsToString(in) + " to " + DimsToString(shape));
      }
      out[infer] = total / product;
    }
  } else if (product_known && product != total) {
    return ctx.Error("cannot reshape " + DimsToString(in) + " (" + Str(total) + " elements) to " +
                     DimsToString(out));
  }
  return out;
}

Status ReshapeKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(Dims shape, IndexInput(ctx, 1, "shape"));
  KILN_ASSIGN_OR_RETURN(Dims out, ReshapeDims(ctx, x.dims(), shape, ctx.GetInt("allowzero")));
  auto y = x.Reshaped(out);
  if (!y.ok()) return ctx.Error(y.status().message());
  ctx.SetOutput(0, std::move(y).value());
  return Status::OK();
}

Status ReshapeInfer(InferContext& ctx) {
  const DataType dt = ctx.input_dtype(0);
  auto shape = ConstantInts(ctx, 1);
  if (!shape) {
    const Shape& s = ctx.input_shape(1);
    if (s.rank_known() && s.rank() == 1 && s.dim(0) >= 0) {
      ctx.SetOutput(0, dt, Shape(Dims(s.dim(0), Shape::kUnknownDim)));
    } else {
      ctx.SetOutput(0, dt, Shape());
    }
    return Status::OK();
  }
  const Shape& in = ctx.input_shape(0);
  Dims in_dims = in.rank_known() ? in.dims() : Dims(shape->size(), Shape::kUnknownDim);
  // With unknown input rank, 0 entries copy unknown dims: make sure they don't fail the check.
  if (!in.rank_known()) in_dims.push_back(Shape::kUnknownDim);
  KILN_ASSIGN_OR_RETURN(Dims out, ReshapeDims(ctx, in_dims, *shape, ctx.GetInt("allowzero")));
  ctx.SetOutput(0, dt, Shape(out));
  return Status::OK();
}

// Flatten: [d0 .. d(axis-1)] x [d(axis) .. d(r-1)].
StatusOr<int64_t> FlattenAxis(const AttrReader& ctx, int64_t rank) {
  int64_t axis = ctx.GetInt("axis");
  if (axis < -rank || axis > rank) {
    return ctx.Error("axis " + Str(axis) + " is out of range for rank " + Str(rank));
  }
  return axis < 0 ? axis + rank : axis;
}

Status FlattenKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, FlattenAxis(ctx, x.rank()));
  Dims out = {1, 1};
  for (int i = 0; i < x.rank(); ++i) out[i < axis ? 0 : 1] *= x.dim(i);
  KILN_ASSIGN_OR_RETURN(Tensor y, x.Reshaped(out));
  ctx.SetOutput(0, std::move(y));
  return Status::OK();
}

Status FlattenInfer(InferContext& ctx) {
  const Shape& in = ctx.input_shape(0);
  if (!in.rank_known()) {
    ctx.SetOutput(0, ctx.input_dtype(0), Shape({-1, -1}));
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(int64_t axis, FlattenAxis(ctx, in.rank()));
  Dims out = {1, 1};
  for (int i = 0; i < in.rank(); ++i) {
    int64_t& o = out[i < axis ? 0 : 1];
    o = (o < 0 || in.dim(i) < 0) ? Shape::kUnknownDim : o * in.dim(i);
  }
  ctx.SetOutput(0, ctx.input_dtype(0), Shape(out));
  return Status::OK();
}

// Squeeze: removes the listed size-1 axes, or every size-1 axis when none are listed.
StatusOr<Dims> SqueezeDims(const AttrReader& ctx, const Dims& in, const Dims& raw_axes) {
  const int64_t rank = static_cast<int64_t>(in.size());
  KILN_ASSIGN_OR_RETURN(Dims axes, NormalizeAxes(ctx, raw_axes, rank));
  Dims out;
  for (int64_t i = 0; i < rank; ++i) {
    const bool listed = std::binary_search(axes.begin(), axes.end(), i);
    if (listed && in[i] != 1 && in[i] >= 0) {
      return ctx.Error("cannot squeeze axis " + Str(i) + " of size " + Str(in[i]));
    }
    if (listed || (axes.empty() && in[i] == 1)) continue;
    out.push_back(in[i]);
  }
  return out;
}

Status SqueezeKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(Dims axes, AxesInKernel(ctx, 1));
  KILN_ASSIGN_OR_RETURN(Dims out, SqueezeDims(ctx, x.dims(), axes));
  KILN_ASSIGN_OR_RETURN(Tensor y, x.Reshaped(out));
  ctx.SetOutput(0, std::move(y));
  return Status::OK();
}

Status SqueezeInfer(InferContext& ctx) {
  const Shape& in = ctx.input_shape(0);
  auto axes = AxesAtInference(ctx, 1);
  // Without axes, unknown dims might be 1: the output rank is unknown.
  if (!in.rank_known() || !axes || (axes->empty() && !in.fully_known())) {
    ctx.SetOutput(0, ctx.input_dtype(0), Shape());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(Dims out, SqueezeDims(ctx, in.dims(), *axes));
  ctx.SetOutput(0, ctx.input_dtype(0), Shape(out));
  return Status::OK();
}

// Unsqueeze: inserts size-1 axes at the listed positions of the output.
StatusOr<Dims> UnsqueezeDims(const AttrReader& ctx, const Dims& in, const Dims& raw_axes) {
  const int64_t out_rank = static_cast<int64_t>(in.size() + raw_axes.size());
  KILN_ASSIGN_OR_RETURN(Dims axes, NormalizeAxes(ctx, raw_axes, out_rank));
  Dims out;
  size_t next = 0;
  for (int64_t i = 0; i < out_rank; ++i) {
    out.push_back(std::binary_search(axes.begin(), axes.end(), i) ? 1 : in[next++]);
  }
  return out;
}

Status UnsqueezeKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(Dims axes, AxesInKernel(ctx, 1));
  if (axes.empty()) return ctx.Error("axes must not be empty");
  KILN_ASSIGN_OR_RETURN(Dims out, UnsqueezeDims(ctx, x.dims(), axes));
  KILN_ASSIGN_OR_RETURN(Tensor y, x.Reshaped(out));
  ctx.SetOutput(0, std::move(y));
  return Status::OK();
}

Status UnsqueezeInfer(InferContext& ctx) {
  const Shape& in = ctx.input_shape(0);
  auto axes = AxesAtInference(ctx, 1);
  if (!in.rank_known() || !axes) {
    ctx.SetOutput(0, ctx.input_dtype(0), Shape());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(Dims out, UnsqueezeDims(ctx, in.dims(), *axes));
  ctx.SetOutput(0, ctx.input_dtype(0), Shape(out));
  return Status::OK();
}

// Shape (opset 15 start/end): the [start, end) slice of the dims, clamped to [0, rank].
std::pair<int64_t, int64_t> ShapeRange(const AttrReader& ctx, int64_t rank) {
  auto clamp = [rank](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
  const int64_t start = clamp(ctx.HasAttr("start") ? ctx.GetInt("start") : 0);
  const int64_t end = clamp(ctx.HasAttr("end") ? ctx.GetInt("end") : rank);
  return {start, std::max(start, end)};
}

Status ShapeKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  auto [start, end] = ShapeRange(ctx, x.rank());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, DataType::kInt64, {end - start}));
  std::copy(x.dims().begin() + start, x.dims().begin() + end, y->mutable_data<int64_t>());
  return Status::OK();
}

Status ShapeInfer(InferContext& ctx) {
  const Shape& in = ctx.input_shape(0);
  int64_t n = Shape::kUnknownDim;
  if (in.rank_known()) {
    auto [start, end] = ShapeRange(ctx, in.rank());
    n = end - start;
  }
  ctx.SetOutput(0, DataType::kInt64, Shape({n}));
  return Status::OK();
}

Status SizeKernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, DataType::kInt64, {}));
  *y->mutable_data<int64_t>() = ctx.input(0).num_elements();
  return Status::OK();
}

// ConstantOfShape: the `value` attribute (one element; default float32 0) repeated.
Status ConstantOfShapeKernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Dims dims, IndexInput(ctx, 0, "shape"));
  for (int64_t d : dims) {
    if (d < 0) return ctx.Error("shape has negative dimension " + Str(d));
  }
  const Tensor* value = ctx.GetTensor("value");
  if (value == nullptr) {
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, DataType::kFloat32, dims));
    (void)y;  // zero-filled
    return Status::OK();
  }
  if (value->num_elements() != 1) {
    return ctx.Error("value must hold exactly one element, got " + value->TypeString());
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, value->dtype(), dims));
  dm::FillElements(y->dtype(), value->raw_data(), y->raw_mutable_data(), y->num_elements());
  return Status::OK();
}

Status ConstantOfShapeInfer(InferContext& ctx) {
  const Tensor* value = ctx.GetTensor("value");
  const DataType dt = value ? value->dtype() : DataType::kFloat32;
  if (auto dims = ConstantInts(ctx, 0)) {
    ctx.SetOutput(0, dt, Shape(*dims));
  } else if (const Shape& s = ctx.input_shape(0);
             s.rank_known() && s.rank() == 1 && s.dim(0) >= 0) {
    ctx.SetOutput(0, dt, Shape(Dims(s.dim(0), Shape::kUnknownDim)));
  } else {
    ctx.SetOutput(0, dt, Shape());
  }
  return Status::OK();
}

// Range: number of elements of [start, limit) in steps of delta.
template <typename T>
StatusOr<int64_t> RangeCount(const AttrReader& ctx, T start, T limit, T delta) {
  if (delta == T(0)) return ctx.Error("delta must not be zero");
  if constexpr (std::is_integral_v<T>) {
    const __int128 diff = static_cast<__int128>(limit) - start;
    const __int128 step = delta;
    if ((diff > 0) != (step > 0) || diff == 0) return int64_t{0};
    const __int128 n = (diff + step + (step > 0 ? -1 : 1)) / step;
    if (n > INT64_MAX) return ctx.Error("range has too many elements");
    return static_cast<int64_t>(n);
  } else {
    const double n = std::ceil((static_cast<double>(limit) - start) / delta);
    if (std::isnan(n)) return ctx.Error("start, limit and delta give an undefined count");
    if (n > 9.0e15) return ctx.Error("range has too many elements");
    return std::max<int64_t>(0, static_cast<int64_t>(n));
  }
}

template <typename F>
Status DispatchRangeType(DataType t, F&& f) {
  switch (t) {
    case DataType::kFloat32:
      return f.template operator()<float>();
    case DataType::kFloat64:
      return f.template operator()<double>();
    case DataType::kInt16:
      return f.template operator()<int16_t>();
    case DataType::kInt32:
      return f.template operator()<int32_t>();
    case DataType::kInt64:
      return f.template operator()<int64_t>();
    default:
      return DispatchUnsupported(t);
  }
}

Status RangeKernel(KernelContext& ctx) {
  const DataType dt = ctx.input(0).dtype();
  for (int i = 0; i < 3; ++i) {
    if (ctx.input(i).dtype() != dt || ctx.input(i).num_elements() != 1) {
      return ctx.Error("start, limit and delta must be one-element tensors of one type, got " +
                       ctx.input(0).TypeString() + ", " + ctx.input(1).TypeString() + ", " +
                       ctx.input(2).TypeString());
    }
  }
  return DispatchRangeType(dt, [&]<typename T>() -> Status {
    const T start = *ctx.input(0).data<T>(), delta = *ctx.input(2).data<T>();
    KILN_ASSIGN_OR_RETURN(int64_t n, RangeCount(ctx, start, *ctx.input(1).data<T>(), delta));
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, dt, {n}));
    T* out = y->mutable_data<T>();
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(start + static_cast<T>(i) * delta);
    return Status::OK();
  });
}

Status RangeInfer(InferContext& ctx) {
  const DataType dt = ctx.input_dtype(0);
  int64_t n = Shape::kUnknownDim;
  const Tensor *s = ctx.constant_input(0), *l = ctx.constant_input(1), *d = ctx.constant_input(2);
  if (s && l && d && s->num_elements() == 1 && l->num_elements() == 1 && d->num_elements() == 1 &&
      s->dtype() == dt && l->dtype() == dt && d->dtype() == dt) {
    KILN_RETURN_IF_ERROR(DispatchRangeType(dt, [&]<typename T>() -> Status {
      KILN_ASSIGN_OR_RETURN(n, RangeCount(ctx, *s->data<T>(), *l->data<T>(), *d->data<T>()));
      return Status::OK();
    }));
  }
  ctx.SetOutput(0, dt, Shape({n}));
  return Status::OK();
}

// Transpose: `perm` (default: reversed axes) must be a permutation of [0, rank).
StatusOr<Dims> TransposePerm(const AttrReader& ctx, int rank) {
  Dims perm = ctx.GetInts("perm");
  if (!ctx.HasAttr("perm")) {
    for (int i = rank - 1; i >= 0; --i) perm.push_back(i);
  }
  if (static_cast<int>(perm.size()) != rank) {
    return ctx.Error("perm has " + Str(perm.size()) + " entries for rank " + Str(rank));
  }
  std::vector<bool> seen(rank, false);
  for (int64_t& p : perm) {
    if (p < -rank || p >= rank) return ctx.Error("perm entry " + Str(p) + " is out of range");
    if (p < 0) p += rank;
    if (seen[p]) return ctx.Error("perm is not a permutation");
    seen[p] = true;
  }
  return perm;
}

// Copies `src` viewed with `view_dims` (contiguous), its axes permuted by `perm`, into `dst`.
void PermutedCopy(DataType t, const void* src, const Dims& view_dims, const Dims& perm, void* dst) {
  const Dims strides = ContiguousStrides(view_dims);
  Dims dims(perm.size()), perm_strides(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    dims[i] = view_dims[perm[i]];
    perm_strides[i] = strides[perm[i]];
  }
  dm::StridedCopy(t, src, dims, perm_strides, dst);
}

Status TransposeKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(Dims perm, TransposePerm(ctx, x.rank()));
  Dims out(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) out[i] = x.dim(static_cast<int>(perm[i]));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
  PermutedCopy(x.dtype(), x.raw_data(), x.dims(), perm, y->raw_mutable_data());
  return Status::OK();
}

Status TransposeInfer(InferContext& ctx) {
  const Shape& in = ctx.input_shape(0);
  if (!in.rank_known()) {
    const size_t n = ctx.GetInts("perm").size();
    ctx.SetOutput(0, ctx.input_dtype(0),
                  ctx.HasAttr("perm") ? Shape(Dims(n, Shape::kUnknownDim)) : Shape());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(Dims perm, TransposePerm(ctx, in.rank()));
  Dims out(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) out[i] = in.dim(static_cast<int>(perm[i]));
  ctx.SetOutput(0, ctx.input_dtype(0), Shape(out));
  return Status::OK();
}

// Expand: broadcasts the input to `shape` (numpy rules; the output may have more dims).
Status ExpandKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(Dims shape, IndexInput(ctx, 1, "shape"));
  for (int64_t d : shape) {
    if (d < 0) return ctx.Error("shape has negative dimension " + Str(d));
  }
  auto out = BroadcastDims({x.dims(), shape});
  if (!out.ok()) {
    return ctx.Error("cannot expand " + x.TypeString() + " to " + DimsToString(shape));
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), *out));
  dm::StridedCopy(x.dtype(), x.raw_data(), *out, BroadcastStrides(x.dims(), *out),
                  y->raw_mutable_data());
  return Status::OK();
}

Status ExpandInfer(InferContext& ctx) {
  const DataType dt = ctx.input_dtype(0);
  if (auto shape = ConstantInts(ctx, 1)) {
    ctx.SetOutput(0, dt, BroadcastShapes({ctx.input_shape(0), Shape(*shape)}));
    return Status::OK();
  }
  const Shape& in = ctx.input_shape(0);
  const Shape& s = ctx.input_shape(1);
  if (in.rank_known() && s.rank_known() && s.rank() == 1 && s.dim(0) >= 0) {
    const int64_t rank = std::max<int64_t>(in.rank(), s.dim(0));
    ctx.SetOutput(0, dt, Shape(Dims(rank, Shape::kUnknownDim)));
  } else {
    ctx.SetOutput(0, dt, Shape());
  }
  return Status::OK();
}

// Tile: output dim i = input dim i * repeats[i].
StatusOr<Dims> TileDims(const AttrReader& ctx, const Dims& in, const Dims& repeats) {
  if (repeats.size() != in.size()) {
    return ctx.Error("repeats has " + Str(repeats.size()) + " entries for rank " + Str(in.size()));
  }
  Dims out(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (repeats[i] < 0) return ctx.Error("repeats has negative entry " + Str(repeats[i]));
    if (in[i] < 0) {
      out[i] = repeats[i] == 0 ? 0 : Shape::kUnknownDim;
    } else {
      KILN_ASSIGN_OR_RETURN(out[i], CheckedMul(ctx, in[i], repeats[i]));
    }
  }
  return out;
}

Status TileKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(Dims repeats, IndexInput(ctx, 1, "repeats"));
  KILN_ASSIGN_OR_RETURN(Dims out, TileDims(ctx, x.dims(), repeats));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
  // The output viewed as [r0, d0, r1, d1, ...], where the repeat axes have stride 0.
  const Dims strides = ContiguousStrides(x.dims());
  Dims view_dims, view_strides;
  for (int i = 0; i < x.rank(); ++i) {
    view_dims.insert(view_dims.end(), {repeats[i], x.dim(i)});
    view_strides.insert(view_strides.end(), {0, strides[i]});
  }
  dm::StridedCopy(x.dtype(), x.raw_data(), view_dims, view_strides, y->raw_mutable_data());
  return Status::OK();
}

Status TileInfer(InferContext& ctx) {
  const Shape& in = ctx.input_shape(0);
  auto repeats = ConstantInts(ctx, 1);
  if (!in.rank_known()) {
    ctx.SetOutput(0, ctx.input_dtype(0),
                  repeats ? Shape(Dims(repeats->size(), Shape::kUnknownDim)) : Shape());
    return Status::OK();
  }
  if (!repeats) {
    ctx.SetOutput(0, ctx.input_dtype(0), Shape(Dims(in.rank(), Shape::kUnknownDim)));
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(Dims out, TileDims(ctx, in.dims(), *repeats));
  ctx.SetOutput(0, ctx.input_dtype(0), Shape(out));
  return Status::OK();
}

// DepthToSpace / SpaceToDepth on NCHW input with block size b.
struct BlockLayout {
  Dims out;   // output dims
  Dims view;  // the input viewed with these dims ...
  Dims perm;  // ... and these axes permuted gives the output
};

StatusOr<BlockLayout> DepthToSpaceLayout(const AttrReader& ctx, const Dims& in) {
  const int64_t b = ctx.GetInt("blocksize");
  if (in.size() != 4) return ctx.Error("input must be 4-D (NCHW), got rank " + Str(in.size()));
  if (b <= 0) return ctx.Error("blocksize must be positive, got " + Str(b));
  const int64_t n = in[0], c = in[1], h = in[2], w = in[3];
  if (c >= 0 && c % (b * b) != 0) {
    return ctx.Error("channels (" + Str(c) + ") must be divisible by blocksize^2");
  }
  auto mul = [b](int64_t d) { return d < 0 ? d : d * b; };
  const int64_t c2 = c < 0 ? c : c / (b * b);
  BlockLayout l;
  l.out = {n, c2, mul(h), mul(w)};
  if (ctx.GetString("mode") == "CRD") {
    l.view = {n, c2, b, b, h, w};
    l.perm = {0, 1, 4, 2, 5, 3};
  } else if (ctx.GetString("mode") == "DCR") {
    l.view = {n, b, b, c2, h, w};
    l.perm = {0, 3, 4, 1, 5, 2};
  } else {
    return ctx.Error("mode must be DCR or CRD, got '" + ctx.GetString("mode") + "'");
  }
  return l;
}

StatusOr<BlockLayout> SpaceToDepthLayout(const AttrReader& ctx, const Dims& in) {
  const int64_t b = ctx.GetInt("blocksize");
  if (in.size() != 4) return ctx.Error("input must be 4-D (NCHW), got rank " + Str(in.size()));
  if (b <= 0) return ctx.Error("blocksize must be positive, got " + Str(b));
  const int64_t n = in[0], c = in[1], h = in[2], w = in[3];
  if ((h >= 0 && h % b != 0) || (w >= 0 && w % b != 0)) {
    return ctx.Error("height and width (" + Str(h) + ", " + Str(w) +
                     ") must be divisible by blocksize " + Str(b));
  }
  auto div = [b](int64_t d) { return d < 0 ? d : d / b; };
  BlockLayout l;
  l.out = {n, c < 0 ? c : c * b * b, div(h), div(w)};
  l.view = {n, c, div(h), b, div(w), b};
  l.perm = {0, 3, 5, 1, 2, 4};
  return l;
}

using LayoutFn = StatusOr<BlockLayout> (*)(const AttrReader&, const Dims&);

KernelFn BlockKernel(LayoutFn layout) {
  return [layout](KernelContext& ctx) -> Status {
    const Tensor& x = ctx.input(0);
    KILN_ASSIGN_OR_RETURN(BlockLayout l, layout(ctx, x.dims()));
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), l.out));
    PermutedCopy(x.dtype(), x.raw_data(), l.view, l.perm, y->raw_mutable_data());
    return Status::OK();
  };
}

InferFn BlockInfer(LayoutFn layout) {
  return [layout](InferContext& ctx) -> Status {
    const Shape& in = ctx.input_shape(0);
    if (!in.rank_known()) {
      ctx.SetOutput(0, ctx.input_dtype(0), Shape(Dims(4, Shape::kUnknownDim)));
      return Status::OK();
    }
    KILN_ASSIGN_OR_RETURN(BlockLayout l, layout(ctx, in.dims()));
    ctx.SetOutput(0, ctx.input_dtype(0), Shape(l.out));
    return Status::OK();
  };
}

// EyeLike: a 2-D tensor of the input's shape with ones on diagonal k.
DataType EyeLikeType(const AttrReader& ctx, DataType input) {
  return ctx.HasAttr("dtype") ? static_cast<DataType>(ctx.GetInt("dtype")) : input;
}

Status EyeLikeKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 2) return ctx.Error("input must be 2-D, got " + x.TypeString());
  const DataType dt = EyeLikeType(ctx, x.dtype());
  if (dt == DataType::kString || !IsValidDataType(static_cast<int32_t>(dt))) {
    return ctx.Error("dtype " + Str(static_cast<int64_t>(dt)) + " is not supported");
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, dt, x.dims()));
  const int64_t rows = x.dim(0), cols = x.dim(1), k = ctx.GetInt("k");
  return DispatchAnyPod(dt, [&]<typename T>() -> Status {
    T one;
    if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
      one = T(1.0f);
    } else {
      one = static_cast<T>(1);
    }
    T* out = y->mutable_data<T>();
    for (int64_t i = std::max<int64_t>(0, -k); i < rows && i + k < cols; ++i) {
      out[i * cols + i + k] = one;
    }
    return Status::OK();
  });
}

Status EyeLikeInfer(InferContext& ctx) {
  ctx.SetOutput(0, EyeLikeType(ctx, ctx.input_dtype(0)), ctx.input_shape(0));
  return Status::OK();
}

}  // namespace

void RegisterShapeOps(OpRegistry& r) {
  MustRegister(r, OpSchema("Reshape")
                      .Doc("Returns the input with a new shape (0 copies a dim unless allowzero, "
                           "-1 is inferred). Zero-copy.")
                      .Inputs(2, 2)
                      .AttrDefault("allowzero", int64_t{0})
                      .InputTypes(1, IndexTypes())
                      .Infer(ReshapeInfer)
                      .Kernel(ReshapeKernel));
  MustRegister(r, OpSchema("Flatten")
                      .Doc("Reshapes the input to 2-D: the dims before `axis` and from `axis` on.")
                      .Inputs(1, 1)
                      .AttrDefault("axis", int64_t{1})
                      .Infer(FlattenInfer)
                      .Kernel(FlattenKernel));
  MustRegister(r, OpSchema("Squeeze")
                      .Doc("Removes size-1 axes (`axes` attribute before opset 13, input after; "
                           "all size-1 axes when none given).")
                      .Inputs(1, 2)
                      .AttrNoDefault("axes", AttrType::kInts)
                      .InputTypes(1, IndexTypes())
                      .Infer(SqueezeInfer)
                      .Kernel(SqueezeKernel));
  MustRegister(r, OpSchema("Unsqueeze")
                      .Doc("Inserts size-1 axes at the given output positions (`axes` attribute "
                           "before opset 13, input after).")
                      .Inputs(1, 2)
                      .AttrNoDefault("axes", AttrType::kInts)
                      .InputTypes(1, IndexTypes())
                      .Infer(UnsqueezeInfer)
                      .Kernel(UnsqueezeKernel));
  MustRegister(r, OpSchema("Shape")
                      .Doc("The input's dims as int64 (optionally the [start, end) slice).")
                      .Inputs(1, 1)
                      .AttrNoDefault("start", AttrType::kInt)
                      .AttrNoDefault("end", AttrType::kInt)
                      .Infer(ShapeInfer)
                      .Kernel(ShapeKernel));
  MustRegister(r, OpSchema("Size")
                      .Doc("The input's element count as an int64 scalar.")
                      .Inputs(1, 1)
                      .Infer([](InferContext& ctx) -> Status {
                        ctx.SetOutput(0, DataType::kInt64, Shape::Scalar());
                        return Status::OK();
                      })
                      .Kernel(SizeKernel));
  MustRegister(r, OpSchema("ConstantOfShape")
                      .Doc("A tensor of the given shape filled with `value` (default float 0).")
                      .Inputs(1, 1)
                      .AttrNoDefault("value", AttrType::kTensor)
                      .InputTypes(0, IndexTypes())
                      .Infer(ConstantOfShapeInfer)
                      .Kernel(ConstantOfShapeKernel));
  const TypeList range_types = {DataType::kFloat32, DataType::kFloat64, DataType::kInt16,
                                DataType::kInt32, DataType::kInt64};
  MustRegister(r, OpSchema("Range")
                      .Doc("start, start + delta, ... up to (excluding) limit.")
                      .Inputs(3, 3)
                      .InputTypes(0, range_types)
                      .InputTypes(1, range_types)
                      .InputTypes(2, range_types)
                      .Infer(RangeInfer)
                      .Kernel(RangeKernel));
  MustRegister(r, OpSchema("Transpose")
                      .Doc("Permutes the axes (`perm`, default reversed).")
                      .Inputs(1, 1)
                      .AttrNoDefault("perm", AttrType::kInts)
                      .Infer(TransposeInfer)
                      .Kernel(TransposeKernel));
  MustRegister(r, OpSchema("Expand")
                      .Doc("Broadcasts the input to `shape` (numpy rules).")
                      .Inputs(2, 2)
                      .InputTypes(1, IndexTypes())
                      .Infer(ExpandInfer)
                      .Kernel(ExpandKernel));
  MustRegister(r, OpSchema("Tile")
                      .Doc("Repeats the input `repeats[i]` times along each axis i.")
                      .Inputs(2, 2)
                      .InputTypes(1, IndexTypes())
                      .Infer(TileInfer)
                      .Kernel(TileKernel));
  MustRegister(r, OpSchema("DepthToSpace")
                      .Doc("Moves channel blocks into b x b spatial blocks (mode DCR or CRD).")
                      .Inputs(1, 1)
                      .AttrNoDefault("blocksize", AttrType::kInt, /*required=*/true)
                      .AttrDefault("mode", "DCR")
                      .Infer(BlockInfer(DepthToSpaceLayout))
                      .Kernel(BlockKernel(DepthToSpaceLayout)));
  MustRegister(r, OpSchema("SpaceToDepth")
                      .Doc("Moves b x b spatial blocks into channels.")
                      .Inputs(1, 1)
                      .AttrNoDefault("blocksize", AttrType::kInt, /*required=*/true)
                      .Infer(BlockInfer(SpaceToDepthLayout))
                      .Kernel(BlockKernel(SpaceToDepthLayout)));
  TypeList eye_types = NumericTypes();
  eye_types.push_back(DataType::kBool);
  MustRegister(r, OpSchema("EyeLike")
                      .Doc("Ones on diagonal k of a 2-D tensor shaped like the input; `dtype` "
                           "overrides the output type.")
                      .Inputs(1, 1)
                      .AttrNoDefault("dtype", AttrType::kInt)
                      .AttrDefault("k", int64_t{0})
                      .InputTypes(0, eye_types)
                      .Infer(EyeLikeInfer)
                      .Kernel(EyeLikeKernel));
}

}  // namespace kiln
