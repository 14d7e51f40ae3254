// Op family: tensor — ops that select, combine or rearrange elements.
//
// Concat Split Slice Gather GatherElements GatherND ScatterElements (and the deprecated Scatter)
// ScatterND Pad Compress Trilu ReverseSequence OneHot NonZero Unique. Kernels that only move data work
// for every dtype, strings included (element moves go through data_movement / CopyElements).
#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <type_traits>
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

int64_t Product(const Dims& d, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= d[i];
  return p;
}

// Maps `axis` into [0, rank); errors when out of range (rank 0 has no valid axis).
StatusOr<int> Axis(const AttrReader& ctx, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) {
    return ctx.Error("axis " + Str(axis) + " is out of range for rank " + Str(rank));
  }
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

// Checks that every index is in [-dim, dim) and maps negative ones into range.
Status NormalizeIndices(const AttrReader& ctx, Dims& indices, int64_t dim) {
  for (int64_t& i : indices) {
    if (i < -dim || i >= dim) {
      return ctx.Error("index " + Str(i) + " is out of range for a dim of size " + Str(dim));
    }
    if (i < 0) i += dim;
  }
  return Status::OK();
}

// Output dims and dtype as unknown-dims of the given rank (or unknown rank when rank < 0).
Shape UnknownDims(int64_t rank) {
  return rank < 0 ? Shape() : Shape(Dims(rank, Shape::kUnknownDim));
}

// y = x with `axis` replaced by the elements at `indices` (already validated) along it:
// y[o, j, i] = x[o, indices[j], i], where o runs over the dims before the axis, i after.
void GatherAlongAxis(const Tensor& x, int axis, const Dims& indices, Tensor* y) {
  const int64_t outer = Product(x.dims(), 0, axis), d = x.dim(axis);
  const int64_t inner = Product(x.dims(), axis + 1, x.rank());
  const int64_t n = static_cast<int64_t>(indices.size());
  dm::DispatchByElementSize(x.dtype(), [&]<typename T>() {
    const T* in = x.data<T>();
    T* out = y->mutable_data<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t j = 0; j < n; ++j, out += inner) {
        std::copy_n(in + (o * d + indices[j]) * inner, inner, out);
      }
    }
  });
}

// ----------------------------------------------------------------------------- Concat

Status ConcatKernel(KernelContext& ctx) {
  const Tensor& first = ctx.input(0);
  const int rank = first.rank();
  KILN_ASSIGN_OR_RETURN(int axis, Axis(ctx, ctx.GetInt("axis"), rank));
  Dims out = first.dims();
  out[axis] = 0;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) return ctx.Error("input " + Str(i) + " is missing");
    const Tensor& t = ctx.input(i);
    if (t.dtype() != first.dtype() || t.rank() != rank) {
      return ctx.Error("input " + Str(i) + " is " + t.TypeString() + ", input 0 is " +
                       first.TypeString());
    }
    for (int k = 0; k < rank; ++k) {
      if (k != axis && t.dim(k) != first.dim(k)) {
        return ctx.Error("input " + Str(i) + " " + t.TypeString() + " does not match input 0 " +
                         first.TypeString() + " outside axis " + Str(axis));
      }
    }
    out[axis] += t.dim(axis);
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, first.dtype(), out));
  const int64_t outer = Product(out, 0, axis), inner = Product(out, axis + 1, rank);
  char* dst = static_cast<char*>(y->raw_mutable_data());
  const int64_t elem = static_cast<int64_t>(dm::ElementBytes(first.dtype()));
  for (int64_t o = 0; o < outer; ++o) {
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      const Tensor& t = ctx.input(i);
      const int64_t block = t.dim(axis) * inner;
      CopyElements(t.dtype(), dm::ElementAt(t.dtype(), t.raw_data(), o * block), dst, block);
      dst += block * elem;
    }
  }
  return Status::OK();
}

Status ConcatInfer(InferContext& ctx) {
  const DataType dt = ctx.input_dtype(0);
  int64_t rank = -1;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (ctx.input_shape(i).rank_known()) rank = ctx.input_shape(i).rank();
  }
  if (rank < 0) {
    ctx.SetOutput(0, dt, Shape());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(int axis, Axis(ctx, ctx.GetInt("axis"), rank));
  Dims out(rank, Shape::kUnknownDim);
  out[axis] = 0;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    const Shape& s = ctx.input_shape(i);
    if (!s.rank_known()) {
      out[axis] = Shape::kUnknownDim;
      continue;
    }
    if (s.rank() != rank) return ctx.Error("inputs have different ranks");
    for (int k = 0; k < rank; ++k) {
      if (k == axis) {
        out[k] = (out[k] < 0 || s.dim(k) < 0) ? Shape::kUnknownDim : out[k] + s.dim(k);
      } else if (s.dim(k) >= 0) {
        if (out[k] >= 0 && out[k] != s.dim(k)) return ctx.Error("input dims do not match");
        out[k] = s.dim(k);
      }
    }
  }
  ctx.SetOutput(0, dt, Shape(out));
  return Status::OK();
}

// ----------------------------------------------------------------------------- Split

// Sizes of the pieces along an axis of size `dim`, from the `split` values when given, else
// from `num_outputs` (opset 18: ceil(dim / n) each, the last one smaller), else equal parts.
StatusOr<Dims> SplitSizes(const AttrReader& ctx, int64_t dim, int n,
                          const std::optional<Dims>& split) {
  Dims sizes;
  if (split) {
    sizes = *split;
    if (static_cast<int>(sizes.size()) != n) {
      return ctx.Error("split has " + Str(sizes.size()) + " entries for " + Str(n) + " outputs");
    }
  } else if (ctx.HasAttr("num_outputs")) {
    if (ctx.GetInt("num_outputs") != n) {
      return ctx.Error("num_outputs is " + Str(ctx.GetInt("num_outputs")) + " but the node has " +
                       Str(n) + " outputs");
    }
    const int64_t chunk = (dim + n - 1) / n;
    sizes.assign(n, chunk);
    sizes.back() = dim - chunk * (n - 1);
    if (sizes.back() < 0) {
      return ctx.Error("cannot split a dim of size " + Str(dim) + " into " + Str(n) + " parts");
    }
  } else {
    if (dim % n != 0) {
      return ctx.Error("cannot split a dim of size " + Str(dim) + " into " + Str(n) +
                       " equal parts");
    }
    sizes.assign(n, dim / n);
  }
  int64_t sum = 0;
  for (int64_t s : sizes) {
    if (s < 0) return ctx.Error("split has negative size " + Str(s));
    sum += s;
  }
  if (sum != dim) {
    return ctx.Error("split sizes sum to " + Str(sum) + ", the axis has size " + Str(dim));
  }
  return sizes;
}

Status SplitKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int axis, Axis(ctx, ctx.GetInt("axis"), x.rank()));
  std::optional<Dims> split;
  if (ctx.has_input(1) && ctx.input(1).num_elements() > 0) {
    KILN_ASSIGN_OR_RETURN(split, IndexInput(ctx, 1, "split"));
  } else if (ctx.HasAttr("split")) {
    split = ctx.GetInts("split");
  }
  const int n = ctx.num_outputs();
  const int64_t d = x.dim(axis);
  KILN_ASSIGN_OR_RETURN(Dims sizes, SplitSizes(ctx, d, n, split));
  const int64_t outer = Product(x.dims(), 0, axis), inner = Product(x.dims(), axis + 1, x.rank());
  int64_t offset = 0;
  for (int j = 0; j < n; ++j) {
    Dims dims = x.dims();
    dims[axis] = sizes[j];
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(j, x.dtype(), dims));
    const int64_t block = sizes[j] * inner;
    for (int64_t o = 0; o < outer; ++o) {
      CopyElements(x.dtype(), dm::ElementAt(x.dtype(), x.raw_data(), (o * d + offset) * inner),
                   dm::ElementAt(x.dtype(), y->raw_mutable_data(), o * block), block);
    }
    offset += sizes[j];
  }
  return Status::OK();
}

Status SplitInfer(InferContext& ctx) {
  const DataType dt = ctx.input_dtype(0);
  const Shape& in = ctx.input_shape(0);
  const int n = ctx.num_outputs();
  if (!in.rank_known()) {
    for (int j = 0; j < n; ++j) ctx.SetOutput(j, dt, Shape());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(int axis, Axis(ctx, ctx.GetInt("axis"), in.rank()));
  std::optional<Dims> split;
  if (ctx.has_input(1)) {
    split = ConstantInts(ctx, 1);
    if (split && split->empty()) split.reset();
  } else if (ctx.HasAttr("split")) {
    split = ctx.GetInts("split");
  }
  std::optional<Dims> sizes;
  if (in.dim(axis) < 0) {
    if (split && static_cast<int>(split->size()) == n) sizes = split;
  } else if (split || !ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(sizes, SplitSizes(ctx, in.dim(axis), n, split));
  }
  for (int j = 0; j < n; ++j) {
    Dims dims = in.dims();
    dims[axis] = sizes ? (*sizes)[j] : Shape::kUnknownDim;
    ctx.SetOutput(j, dt, Shape(dims));
  }
  return Status::OK();
}

// ----------------------------------------------------------------------------- Slice

struct SliceArgs {
  Dims starts, ends, axes, steps;
};

// Starts/ends/axes as attributes (opset < 10) or inputs 1..4 (opset >= 10), with defaults.
template <typename Ctx, typename ReadFn>
StatusOr<SliceArgs> GetSliceArgs(const Ctx& ctx, int64_t rank, ReadFn read) {
  SliceArgs a;
  if (ctx.HasAttr("starts") || !ctx.has_input(1)) {
    if (!ctx.HasAttr("starts") || !ctx.HasAttr("ends")) {
      return ctx.Error("starts and ends are required");
    }
    a.starts = ctx.GetInts("starts");
    a.ends = ctx.GetInts("ends");
    a.axes = ctx.GetInts("axes");
  } else {
    KILN_ASSIGN_OR_RETURN(a.starts, read(1, "starts"));
    KILN_ASSIGN_OR_RETURN(a.ends, read(2, "ends"));
    if (ctx.has_input(3)) {
      KILN_ASSIGN_OR_RETURN(a.axes, read(3, "axes"));
    }
    if (ctx.has_input(4)) {
      KILN_ASSIGN_OR_RETURN(a.steps, read(4, "steps"));
    }
  }
  const size_t n = a.starts.size();
  if (!ctx.has_input(3) && !ctx.HasAttr("axes")) {
    for (size_t i = 0; i < n; ++i) a.axes.push_back(static_cast<int64_t>(i));
  }
  if (a.steps.empty()) a.steps.assign(n, 1);
  if (a.ends.size() != n || a.axes.size() != n || a.steps.size() != n) {
    return ctx.Error("starts, ends, axes and steps must have the same length");
  }
  std::vector<bool> seen(rank, false);
  for (int64_t& axis : a.axes) {
    KILN_ASSIGN_OR_RETURN(int ax, Axis(ctx, axis, rank));
    if (seen[ax]) return ctx.Error("axes contain a repeated axis");
    seen[ax] = true;
    axis = ax;
  }
  for (int64_t s : a.steps) {
    if (s == 0) return ctx.Error("steps must not be zero");
  }
  return a;
}

// ONNX clamping of one sliced axis of size `dim`: the first index and the element count.
std::pair<int64_t, int64_t> SliceRange(int64_t start, int64_t end, int64_t step, int64_t dim) {
  if (dim == 0) return {0, 0};
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    return {start, end > start ? (end - start - 1) / step + 1 : 0};
  }
  start = std::clamp<int64_t>(start, 0, dim - 1);
  end = std::clamp<int64_t>(end, -1, dim - 1);
  const int64_t neg = step == INT64_MIN ? INT64_MAX : -step;
  return {start, start > end ? (start - end - 1) / neg + 1 : 0};
}

Status SliceKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  auto read = [&ctx](int i, const char* what) { return IndexInput(ctx, i, what); };
  KILN_ASSIGN_OR_RETURN(SliceArgs a, GetSliceArgs(ctx, x.rank(), read));
  Dims out = x.dims(), strides = ContiguousStrides(x.dims());
  int64_t offset = 0;
  for (size_t i = 0; i < a.axes.size(); ++i) {
    const int axis = static_cast<int>(a.axes[i]);
    auto [start, count] = SliceRange(a.starts[i], a.ends[i], a.steps[i], x.dim(axis));
    out[axis] = count;
    offset += start * strides[axis];
    strides[axis] *= count > 1 ? a.steps[i] : 1;  // one element: the step is never taken
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
  if (y->num_elements() == 0) return Status::OK();
  dm::StridedCopy(x.dtype(), dm::ElementAt(x.dtype(), x.raw_data(), offset), out, strides,
                  y->raw_mutable_data());
  return Status::OK();
}

Status SliceInfer(InferContext& ctx) {
  const DataType dt = ctx.input_dtype(0);
  const Shape& in = ctx.input_shape(0);
  if (!in.rank_known()) {
    ctx.SetOutput(0, dt, Shape());
    return Status::OK();
  }
  bool known = true;
  auto read = [&](int i, const char*) -> StatusOr<Dims> {
    auto v = ConstantInts(ctx, i);
    if (!v) known = false;
    return v ? *v : Dims();
  };
  auto args = GetSliceArgs(ctx, in.rank(), read);
  if (!known) {
    ctx.SetOutput(0, dt, UnknownDims(in.rank()));
    return Status::OK();
  }
  if (!args.ok()) return args.status();
  Dims out = in.dims();
  for (size_t i = 0; i < args->axes.size(); ++i) {
    const int axis = static_cast<int>(args->axes[i]);
    if (out[axis] >= 0) {
      out[axis] = SliceRange(args->starts[i], args->ends[i], args->steps[i], out[axis]).second;
    }
  }
  ctx.SetOutput(0, dt, Shape(out));
  return Status::OK();
}

// ----------------------------------------------------------------------------- Gather

Status GatherKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& idx = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(int axis, Axis(ctx, ctx.GetInt("axis"), x.rank()));
  KILN_ASSIGN_OR_RETURN(Dims indices, ReadInt64s(idx));
  KILN_RETURN_IF_ERROR(NormalizeIndices(ctx, indices, x.dim(axis)));
  Dims out(x.dims().begin(), x.dims().begin() + axis);
  out.insert(out.end(), idx.dims().begin(), idx.dims().end());
  out.insert(out.end(), x.dims().begin() + axis + 1, x.dims().end());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
  GatherAlongAxis(x, axis, indices, y);
  return Status::OK();
}

Status GatherInfer(InferContext& ctx) {
  const Shape& x = ctx.input_shape(0);
  const Shape& idx = ctx.input_shape(1);
  if (!x.rank_known() || !idx.rank_known()) {
    ctx.SetOutput(0, ctx.input_dtype(0), Shape());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(int axis, Axis(ctx, ctx.GetInt("axis"), x.rank()));
  Dims out(x.dims().begin(), x.dims().begin() + axis);
  out.insert(out.end(), idx.dims().begin(), idx.dims().end());
  out.insert(out.end(), x.dims().begin() + axis + 1, x.dims().end());
  ctx.SetOutput(0, ctx.input_dtype(0), Shape(out));
  return Status::OK();
}

// For each element of `index_dims` (the indices tensor of GatherElements / ScatterElements), its
// offset in the data tensor: the element's own position, with `axis` replaced by its index.
StatusOr<Dims> ElementOffsets(const AttrReader& ctx, const Tensor& data, const Tensor& indices,
                              int axis) {
  if (indices.rank() != data.rank()) {
    return ctx.Error("indices " + indices.TypeString() + " must have the rank of data " +
                     data.TypeString());
  }
  for (int k = 0; k < data.rank(); ++k) {
    if (k != axis && indices.dim(k) > data.dim(k)) {
      return ctx.Error("indices " + indices.TypeString() + " exceed data " + data.TypeString() +
                       " on axis " + Str(k));
    }
  }
  KILN_ASSIGN_OR_RETURN(Dims offsets, ReadInt64s(indices));
  KILN_RETURN_IF_ERROR(NormalizeIndices(ctx, offsets, data.dim(axis)));
  const Dims strides = ContiguousStrides(data.dims());
  const int r = data.rank();
  Dims pos(r, 0);
  int64_t base = 0;  // offset of `pos` without the axis term
  for (int64_t& off : offsets) {
    off = base + off * strides[axis];
    for (int k = r - 1; k >= 0; --k) {
      if (k != axis) base += strides[k];
      if (++pos[k] < indices.dim(k)) break;
      if (k != axis) base -= strides[k] * indices.dim(k);
      pos[k] = 0;
    }
  }
  return offsets;
}

Status GatherElementsKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int axis, Axis(ctx, ctx.GetInt("axis"), x.rank()));
  KILN_ASSIGN_OR_RETURN(Dims offsets, ElementOffsets(ctx, x, ctx.input(1), axis));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), ctx.input(1).dims()));
  dm::DispatchByElementSize(x.dtype(), [&]<typename T>() {
    const T* in = x.data<T>();
    T* out = y->mutable_data<T>();
    for (size_t i = 0; i < offsets.size(); ++i) out[i] = in[offsets[i]];
  });
  return Status::OK();
}

Status InferShapeOfInput1(InferContext& ctx) {
  ctx.SetOutput(0, ctx.input_dtype(0), ctx.input_shape(1));
  return Status::OK();
}

// ----------------------------------------------------------------------------- GatherND

// The shared layout of GatherND and ScatterND: data [B..., D...], indices [B..., N..., m].
struct NdLayout {
  int64_t batches = 1;       // product of the batch dims
  int64_t per_batch = 1;     // index tuples per batch (product of N...)
  int64_t m = 0;             // index tuple length
  int64_t slice = 1;         // elements addressed by one tuple
  int64_t batch_stride = 0;  // data elements per batch
  Dims strides;              // data strides of the m indexed dims
  Dims dims;                 // sizes of the m indexed dims
};

StatusOr<NdLayout> GetNdLayout(const AttrReader& ctx, const Tensor& data, const Tensor& indices,
                               int64_t batch_dims) {
  const int64_t r = data.rank(), q = indices.rank();
  if (q < 1) return ctx.Error("indices must have rank >= 1");
  if (batch_dims < 0 || batch_dims >= std::min(r, q)) {
    return ctx.Error("batch_dims " + Str(batch_dims) + " is out of range");
  }
  NdLayout l;
  l.m = indices.dim(static_cast<int>(q - 1));
  if (l.m < 1 || l.m > r - batch_dims) {
    return ctx.Error("index tuples of length " + Str(l.m) + " do not fit data " +
                     data.TypeString());
  }
  for (int k = 0; k < batch_dims; ++k) {
    if (data.dim(k) != indices.dim(k)) return ctx.Error("batch dims of data and indices differ");
    l.batches *= data.dim(k);
  }
  l.per_batch = Product(indices.dims(), batch_dims, q - 1);
  l.slice = Product(data.dims(), batch_dims + l.m, r);
  l.batch_stride = Product(data.dims(), batch_dims, r);
  const Dims strides = ContiguousStrides(data.dims());
  l.strides.assign(strides.begin() + batch_dims, strides.begin() + batch_dims + l.m);
  l.dims.assign(data.dims().begin() + batch_dims, data.dims().begin() + batch_dims + l.m);
  return l;
}

// Data offsets of every index tuple (batches x per_batch of them), validated.
StatusOr<Dims> NdOffsets(const AttrReader& ctx, const NdLayout& l, const Tensor& indices) {
  KILN_ASSIGN_OR_RETURN(Dims idx, ReadInt64s(indices));
  Dims offsets(l.batches * l.per_batch);
  for (int64_t t = 0; t < static_cast<int64_t>(offsets.size()); ++t) {
    int64_t off = (t / l.per_batch) * l.batch_stride;
    for (int64_t k = 0; k < l.m; ++k) {
      int64_t i = idx[t * l.m + k];
      if (i < -l.dims[k] || i >= l.dims[k]) {
        return ctx.Error("index " + Str(i) + " is out of range for a dim of size " +
                         Str(l.dims[k]));
      }
      off += (i < 0 ? i + l.dims[k] : i) * l.strides[k];
    }
    offsets[t] = off;
  }
  return offsets;
}

Status GatherNDKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  const int64_t b = ctx.GetInt("batch_dims");
  KILN_ASSIGN_OR_RETURN(NdLayout l, GetNdLayout(ctx, x, indices, b));
  KILN_ASSIGN_OR_RETURN(Dims offsets, NdOffsets(ctx, l, indices));
  Dims out(indices.dims().begin(), indices.dims().end() - 1);
  out.insert(out.end(), x.dims().begin() + b + l.m, x.dims().end());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
  dm::DispatchByElementSize(x.dtype(), [&]<typename T>() {
    T* dst = y->mutable_data<T>();
    for (int64_t off : offsets) dst = std::copy_n(x.data<T>() + off, l.slice, dst);
  });
  return Status::OK();
}

Status GatherNDInfer(InferContext& ctx) {
  const Shape& x = ctx.input_shape(0);
  const Shape& idx = ctx.input_shape(1);
  const int64_t b = ctx.GetInt("batch_dims");
  if (!x.rank_known() || !idx.rank_known() || idx.rank() < 1 || idx.dim(idx.rank() - 1) < 0) {
    ctx.SetOutput(0, ctx.input_dtype(0), Shape());
    return Status::OK();
  }
  const int64_t m = idx.dim(idx.rank() - 1);
  if (b < 0 || m < 1 || b + m > x.rank()) {
    return ctx.Error("index tuples of length " + Str(m) + " do not fit data of rank " +
                     Str(x.rank()));
  }
  Dims out(idx.dims().begin(), idx.dims().end() - 1);
  out.insert(out.end(), x.dims().begin() + b + m, x.dims().end());
  ctx.SetOutput(0, ctx.input_dtype(0), Shape(out));
  return Status::OK();
}

// ----------------------------------------------------------------------------- Scatter*

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

StatusOr<Reduction> GetReduction(const KernelContext& ctx, DataType dt) {
  const std::string r = ctx.GetString("reduction");
  Reduction red;
  if (r == "none") {
    red = Reduction::kNone;
  } else if (r == "add") {
    red = Reduction::kAdd;
  } else if (r == "mul") {
    red = Reduction::kMul;
  } else if (r == "max") {
    red = Reduction::kMax;
  } else if (r == "min") {
    red = Reduction::kMin;
  } else {
    return ctx.Error("unknown reduction '" + r + "'");
  }
  if (red != Reduction::kNone && (dt == DataType::kString || dt == DataType::kBool)) {
    return ctx.Error("reduction '" + r + "' needs a numeric type, got " + DataTypeName(dt));
  }
  return red;
}

template <typename T>
void Combine(Reduction r, T& dst, const T& src) {
  if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, bool>) {
    dst = src;  // GetReduction allows only kNone here
  } else if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
    float d = dst;
    Combine<float>(r, d, static_cast<float>(src));
    dst = T(d);
  } else {
    switch (r) {
      case Reduction::kNone:
        dst = src;
        break;
      case Reduction::kAdd:
        dst = static_cast<T>(dst + src);
        break;
      case Reduction::kMul:
        dst = static_cast<T>(dst * src);
        break;
      case Reduction::kMax:
        dst = std::max(dst, src);
        break;
      case Reduction::kMin:
        dst = std::min(dst, src);
        break;
    }
  }
}

// output = data; then each `slice`-element block of updates combines into output at offsets[i].
Status ScatterInto(KernelContext& ctx, const Tensor& data, const Tensor& updates,
                   const Dims& offsets, int64_t slice) {
  KILN_ASSIGN_OR_RETURN(Reduction red, GetReduction(ctx, data.dtype()));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, data.dtype(), data.dims()));
  CopyElements(data.dtype(), data.raw_data(), y->raw_mutable_data(), data.num_elements());
  return DispatchAll(data.dtype(), [&]<typename T>() -> Status {
    T* out = y->mutable_data<T>();
    const T* upd = updates.data<T>();
    for (size_t i = 0; i < offsets.size(); ++i) {
      for (int64_t j = 0; j < slice; ++j) Combine(red, out[offsets[i] + j], upd[i * slice + j]);
    }
    return Status::OK();
  });
}

Status ScatterElementsKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& updates = ctx.input(2);
  if (updates.dims() != ctx.input(1).dims() || updates.dtype() != x.dtype()) {
    return ctx.Error("updates " + updates.TypeString() + " must match indices " +
                     ctx.input(1).TypeString() + " in shape and data " + x.TypeString() +
                     " in type");
  }
  KILN_ASSIGN_OR_RETURN(int axis, Axis(ctx, ctx.GetInt("axis"), x.rank()));
  KILN_ASSIGN_OR_RETURN(Dims offsets, ElementOffsets(ctx, x, ctx.input(1), axis));
  return ScatterInto(ctx, x, updates, offsets, 1);
}

Status ScatterNDKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  const Tensor& updates = ctx.input(2);
  KILN_ASSIGN_OR_RETURN(NdLayout l, GetNdLayout(ctx, x, indices, 0));
  Dims want(indices.dims().begin(), indices.dims().end() - 1);
  want.insert(want.end(), x.dims().begin() + l.m, x.dims().end());
  if (updates.dims() != want || updates.dtype() != x.dtype()) {
    return ctx.Error("updates is " + updates.TypeString() + ", expected " +
                     DataTypeName(x.dtype()) + DimsToString(want));
  }
  KILN_ASSIGN_OR_RETURN(Dims offsets, NdOffsets(ctx, l, indices));
  return ScatterInto(ctx, x, updates, offsets, l.slice);
}

// ----------------------------------------------------------------------------- Pad

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

// The input coordinate output coordinate `o` reads along an axis of size `dim` padded by
// `before`, or -1 for the constant value.
int64_t PadSource(PadMode mode, int64_t o, int64_t before, int64_t dim) {
  const int64_t i = o - before;
  if (i >= 0 && i < dim) return i;
  switch (mode) {
    case PadMode::kConstant:
      return -1;
    case PadMode::kEdge:
      return i < 0 ? 0 : dim - 1;
    case PadMode::kWrap:
      return ((i % dim) + dim) % dim;
    case PadMode::kReflect: {
      if (dim == 1) return 0;
      const int64_t period = 2 * (dim - 1);
      const int64_t m = ((i % period) + period) % period;
      return m < dim ? m : period - m;
    }
  }
  return -1;
}

// The constant value of Pad as one element of `dt`: input 2 (opset >= 11) or the `value`
// attribute (opset < 11), default zero.
StatusOr<Tensor> PadValue(const KernelContext& ctx, DataType dt, bool attr_form) {
  if (!attr_form && ctx.has_input(2) && ctx.input(2).num_elements() > 0) {
    if (ctx.input(2).dtype() != dt || ctx.input(2).num_elements() != 1) {
      return ctx.Error("constant_value must be one element of the data type, got " +
                       ctx.input(2).TypeString());
    }
    return ctx.input(2);
  }
  Tensor v = Tensor::Empty(dt, {});
  const float f = attr_form ? ctx.GetFloat("value") : 0.0f;
  KILN_RETURN_IF_ERROR(DispatchAll(dt, [&]<typename T>() -> Status {
    if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
      *v.mutable_data<T>() = T(f);
    } else if constexpr (!std::is_same_v<T, std::string>) {
      *v.mutable_data<T>() = static_cast<T>(f);
    }
    return Status::OK();
  }));
  return v;
}

Status PadKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const DataType dt = x.dtype();
  const int r = x.rank();
  const bool attr_form = ctx.HasAttr("pads") || !ctx.has_input(1);
  Dims pads;
  if (attr_form) {
    pads = ctx.GetInts("pads");
  } else {
    KILN_ASSIGN_OR_RETURN(pads, IndexInput(ctx, 1, "pads"));
  }
  Dims axes;
  if (!attr_form && ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(axes, IndexInput(ctx, 3, "axes"));
  } else {
    for (int i = 0; i < r; ++i) axes.push_back(i);
  }
  const size_t n = axes.size();
  if (pads.size() != 2 * n) {
    return ctx.Error("pads has " + Str(pads.size()) + " entries, expected " + Str(2 * n));
  }
  Dims before(r, 0), after(r, 0);
  std::vector<bool> seen(r, false);
  for (size_t i = 0; i < n; ++i) {
    KILN_ASSIGN_OR_RETURN(int axis, Axis(ctx, axes[i], r));
    if (seen[axis]) return ctx.Error("axes contain a repeated axis");
    seen[axis] = true;
    before[axis] = pads[i];
    after[axis] = pads[i + n];
  }
  const std::string mode_name = ctx.GetString("mode");
  PadMode mode;
  if (mode_name == "constant") {
    mode = PadMode::kConstant;
  } else if (mode_name == "reflect") {
    mode = PadMode::kReflect;
  } else if (mode_name == "edge") {
    mode = PadMode::kEdge;
  } else if (mode_name == "wrap") {
    mode = PadMode::kWrap;
  } else {
    return ctx.Error("unknown mode '" + mode_name + "'");
  }
  Dims out(r);
  for (int k = 0; k < r; ++k) {
    if (__builtin_add_overflow(x.dim(k), before[k], &out[k]) ||
        __builtin_add_overflow(out[k], after[k], &out[k]) || out[k] < 0) {
      return ctx.Error("pads give axis " + Str(k) + " an invalid size");
    }
    if (mode != PadMode::kConstant && x.dim(k) == 0 && out[k] > 0) {
      return ctx.Error("cannot pad the empty axis " + Str(k) + " in mode " + mode_name);
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor value, PadValue(ctx, dt, attr_form));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, dt, out));
  if (y->num_elements() == 0) return Status::OK();
  if (r == 0) {
    CopyElements(dt, x.raw_data(), y->raw_mutable_data(), 1);
    return Status::OK();
  }
  dm::FillElements(dt, value.raw_data(), y->raw_mutable_data(), y->num_elements());
  // Row by row over the output: map the row's outer coordinates to an input row (or skip a
  // constant row), then copy the row's interior in one block and map its padded ends.
  const Dims in_strides = ContiguousStrides(x.dims());
  const int last = r - 1;
  const int64_t d = x.dim(last), row = out[last], b = before[last];
  const int64_t lo = std::clamp<int64_t>(b, 0, row), hi = std::clamp<int64_t>(b + d, lo, row);
  Dims pos(last, 0);
  dm::DispatchByElementSize(dt, [&]<typename T>() {
    const T* in = x.data<T>();
    T* dst = y->mutable_data<T>();
    while (true) {
      int64_t src = 0;
      bool constant_row = false;
      for (int k = 0; k < last && !constant_row; ++k) {
        const int64_t c = PadSource(mode, pos[k], before[k], x.dim(k));
        constant_row = c < 0;
        src += c * in_strides[k];
      }
      if (!constant_row) {
        std::copy_n(in + src + (lo - b), hi - lo, dst + lo);
        if (mode != PadMode::kConstant) {
          for (int64_t o = 0; o < lo; ++o) dst[o] = in[src + PadSource(mode, o, b, d)];
          for (int64_t o = hi; o < row; ++o) dst[o] = in[src + PadSource(mode, o, b, d)];
        }
      }
      dst += row;
      int k = last - 1;
      for (; k >= 0; --k) {
        if (++pos[k] < out[k]) break;
        pos[k] = 0;
      }
      if (k < 0) break;
    }
  });
  return Status::OK();
}

Status PadInfer(InferContext& ctx) {
  const DataType dt = ctx.input_dtype(0);
  const Shape& in = ctx.input_shape(0);
  if (!in.rank_known()) {
    ctx.SetOutput(0, dt, Shape());
    return Status::OK();
  }
  const bool attr_form = ctx.HasAttr("pads") || !ctx.has_input(1);
  std::optional<Dims> pads = attr_form ? ctx.GetInts("pads") : ConstantInts(ctx, 1);
  if (!pads || ctx.has_input(3) || pads->size() != 2 * static_cast<size_t>(in.rank())) {
    ctx.SetOutput(0, dt, UnknownDims(in.rank()));
    return Status::OK();
  }
  Dims out = in.dims();
  for (int k = 0; k < in.rank(); ++k) {
    if (out[k] >= 0) out[k] += (*pads)[k] + (*pads)[k + in.rank()];
  }
  ctx.SetOutput(0, dt, Shape(out));
  return Status::OK();
}

// ----------------------------------------------------------------------------- Compress

Status CompressKernel(KernelContext& ctx) {
  const Tensor& cond = ctx.input(1);
  if (cond.rank() != 1) return ctx.Error("condition must be 1-D, got " + cond.TypeString());
  Tensor x = ctx.input(0);
  int axis = 0;
  if (ctx.HasAttr("axis")) {
    KILN_ASSIGN_OR_RETURN(axis, Axis(ctx, ctx.GetInt("axis"), x.rank()));
  } else {
    KILN_ASSIGN_OR_RETURN(x, x.Reshaped({x.num_elements()}));
  }
  Dims selected;
  for (int64_t i = 0; i < cond.num_elements(); ++i) {
    if (!cond.data<bool>()[i]) continue;
    if (i >= x.dim(axis)) {
      return ctx.Error("condition selects index " + Str(i) + " of an axis of size " +
                       Str(x.dim(axis)));
    }
    selected.push_back(i);
  }
  Dims out = x.dims();
  out[axis] = static_cast<int64_t>(selected.size());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
  GatherAlongAxis(x, axis, selected, y);
  return Status::OK();
}

// ----------------------------------------------------------------------------- Trilu

Status TriluKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.Error("input must have rank >= 2, got " + x.TypeString());
  int64_t k = 0;
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(Dims kv, ReadInt64s(ctx.input(1)));
    if (kv.size() != 1) return ctx.Error("k must be a scalar");
    k = kv[0];
  }
  const bool upper = ctx.GetInt("upper") != 0;
  k = std::clamp<int64_t>(k, -x.num_elements() - 1, x.num_elements() + 1);  // no overflow below
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.dims()));
  const int64_t rows = x.dim(x.rank() - 2), cols = x.dim(x.rank() - 1);
  const int64_t matrices = rows * cols == 0 ? 0 : x.num_elements() / (rows * cols);
  for (int64_t m = 0; m < matrices; ++m) {
    for (int64_t i = 0; i < rows; ++i) {
      // Kept columns: j - i >= k (upper) or j - i <= k (lower); the rest stay zero.
      const int64_t lo = upper ? std::clamp<int64_t>(i + k, 0, cols) : 0;
      const int64_t hi = upper ? cols : std::clamp<int64_t>(i + k + 1, 0, cols);
      const int64_t base = (m * rows + i) * cols;
      if (hi > lo) {
        CopyElements(x.dtype(), dm::ElementAt(x.dtype(), x.raw_data(), base + lo),
                     dm::ElementAt(x.dtype(), y->raw_mutable_data(), base + lo), hi - lo);
      }
    }
  }
  return Status::OK();
}

// ----------------------------------------------------------------------------- ReverseSequence

Status ReverseSequenceKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.Error("input must have rank >= 2, got " + x.TypeString());
  const int64_t batch_axis = ctx.GetInt("batch_axis"), time_axis = ctx.GetInt("time_axis");
  if (!((batch_axis == 0 && time_axis == 1) || (batch_axis == 1 && time_axis == 0))) {
    return ctx.Error("batch_axis and time_axis must be 0 and 1 in some order");
  }
  KILN_ASSIGN_OR_RETURN(Dims lens, IndexInput(ctx, 1, "sequence_lens"));
  const int64_t batch = x.dim(static_cast<int>(batch_axis));
  const int64_t steps = x.dim(static_cast<int>(time_axis));
  if (static_cast<int64_t>(lens.size()) != batch) {
    return ctx.Error("sequence_lens has " + Str(lens.size()) + " entries for batch " + Str(batch));
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.dims()));
  CopyElements(x.dtype(), x.raw_data(), y->raw_mutable_data(), x.num_elements());
  const Dims strides = ContiguousStrides(x.dims());
  const int64_t inner = strides[1];
  for (int64_t b = 0; b < batch; ++b) {
    if (lens[b] < 0 || lens[b] > steps) {
      return ctx.Error("sequence length " + Str(lens[b]) + " is out of range [0, " + Str(steps) +
                       "]");
    }
    for (int64_t t = 0; t < lens[b]; ++t) {
      const int64_t src = b * strides[batch_axis] + (lens[b] - 1 - t) * strides[time_axis];
      const int64_t dst = b * strides[batch_axis] + t * strides[time_axis];
      CopyElements(x.dtype(), dm::ElementAt(x.dtype(), x.raw_data(), src),
                   dm::ElementAt(x.dtype(), y->raw_mutable_data(), dst), inner);
    }
  }
  return Status::OK();
}

// ----------------------------------------------------------------------------- OneHot

Status OneHotKernel(KernelContext& ctx) {
  const Tensor& indices = ctx.input(0);
  const Tensor& values = ctx.input(2);
  if (ctx.input(1).num_elements() != 1) return ctx.Error("depth must hold one value");
  const double depth_value = ctx.input(1).GetAsDouble(0);
  if (!(depth_value >= 1 && depth_value < 9.0e15)) {
    return ctx.Error("depth must be positive, got " + std::to_string(depth_value));
  }
  const int64_t depth = static_cast<int64_t>(depth_value);
  if (values.num_elements() != 2) {
    return ctx.Error("values must hold [off_value, on_value], got " + values.TypeString());
  }
  const int64_t r = indices.rank();
  KILN_ASSIGN_OR_RETURN(int axis, Axis(ctx, ctx.GetInt("axis"), r + 1));
  Dims out = indices.dims();
  out.insert(out.begin() + axis, depth);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, values.dtype(), out));
  const DataType dt = values.dtype();
  dm::FillElements(dt, values.raw_data(), y->raw_mutable_data(), y->num_elements());
  const void* on = dm::ElementAt(dt, values.raw_data(), 1);
  const int64_t outer = Product(indices.dims(), 0, axis);
  const int64_t inner = Product(indices.dims(), axis, r);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < inner; ++j) {
      const double v = indices.GetAsDouble(o * inner + j);
      if (!(v > -depth_value - 1 && v < depth_value)) continue;  // also skips NaN
      int64_t i = static_cast<int64_t>(v);
      if (i < 0) i += depth;
      if (i < 0 || i >= depth) continue;
      CopyElements(dt, on, dm::ElementAt(dt, y->raw_mutable_data(), (o * depth + i) * inner + j),
                   1);
    }
  }
  return Status::OK();
}

Status OneHotInfer(InferContext& ctx) {
  const Shape& in = ctx.input_shape(0);
  const DataType dt = ctx.input_dtype(2);
  if (!in.rank_known()) {
    ctx.SetOutput(0, dt, Shape());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(int axis, Axis(ctx, ctx.GetInt("axis"), in.rank() + 1));
  Dims out = in.dims();
  int64_t depth = Shape::kUnknownDim;
  if (const Tensor* d = ctx.constant_input(1); d && d->num_elements() == 1) {
    depth = static_cast<int64_t>(d->GetAsDouble(0));
  }
  out.insert(out.begin() + axis, depth);
  ctx.SetOutput(0, dt, Shape(out));
  return Status::OK();
}

// ----------------------------------------------------------------------------- NonZero

Status NonZeroKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Dims hits;
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    if (x.GetAsDouble(i) != 0) hits.push_back(i);
  }
  // A scalar counts as a 1-D tensor of one element (as numpy and onnxruntime do).
  const Dims dims = x.rank() == 0 ? Dims{1} : x.dims();
  const int64_t n = static_cast<int64_t>(hits.size()), r = static_cast<int64_t>(dims.size());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, DataType::kInt64, {r, n}));
  int64_t* out = y->mutable_data<int64_t>();
  const Dims strides = ContiguousStrides(dims);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t k = 0; k < r; ++k) out[k * n + j] = hits[j] / strides[k] % dims[k];
  }
  return Status::OK();
}

// ------------------------------------------------------------------------------ Unique

// A strict weak order on items of T: floating NaNs sort last and equal each other, so a NaN in
// the input cannot break the map or the sort.
template <typename T>
struct ItemLess {
  static bool Less(const T& a, const T& b) {
    if constexpr (std::is_floating_point_v<T> || std::is_same_v<T, Float16> ||
                  std::is_same_v<T, BFloat16>) {
      const double x = static_cast<double>(a), y = static_cast<double>(b);
      const bool nx = x != x, ny = y != y;
      if (nx || ny) return !nx && ny;
      return x < y;
    } else {
      return a < b;
    }
  }
  bool operator()(const std::vector<T>& a, const std::vector<T>& b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), Less);
  }
};

// Unique elements (no axis) or slices along `axis`: Y in ascending order (sorted=1) or in
// order of first occurrence, plus first-occurrence indices, inverse indices and counts.
template <typename T>
Status UniqueImpl(KernelContext& ctx, const Tensor& x, bool has_axis, int axis, bool sorted) {
  const Dims& dims = x.dims();
  const int64_t len = has_axis ? dims[axis] : x.num_elements();
  const int64_t outer = has_axis ? Product(dims, 0, axis) : 1;
  const int64_t inner = has_axis ? Product(dims, axis + 1, dims.size()) : 1;
  const T* p = x.data<T>();
  std::vector<std::vector<T>> items(len);
  for (int64_t k = 0; k < len; ++k) {
    items[k].reserve(outer * inner);
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) items[k].push_back(p[(o * len + k) * inner + i]);
    }
  }
  std::map<std::vector<T>, int64_t, ItemLess<T>> id_of;  // item -> id, first-occurrence order
  std::vector<int64_t> first;               // id -> first index
  std::vector<int64_t> inverse(len);
  for (int64_t k = 0; k < len; ++k) {
    auto [it, inserted] = id_of.emplace(items[k], static_cast<int64_t>(first.size()));
    if (inserted) first.push_back(k);
    inverse[k] = it->second;
  }
  const int64_t u = static_cast<int64_t>(first.size());
  std::vector<int64_t> order(u);  // output position -> id
  std::iota(order.begin(), order.end(), 0);
  if (sorted) {
    std::sort(order.begin(), order.end(),
              [&](int64_t a, int64_t b) { return ItemLess<T>()(items[first[a]], items[first[b]]); });
  }
  std::vector<int64_t> position(u);
  for (int64_t j = 0; j < u; ++j) position[order[j]] = j;
  Dims ydims = has_axis ? dims : Dims{u};
  if (has_axis) ydims[axis] = u;
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), ydims));
  T* q = y->mutable_data<T>();
  for (int64_t j = 0; j < u; ++j) {
    const std::vector<T>& item = items[first[order[j]]];
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) q[(o * u + j) * inner + i] = item[o * inner + i];
    }
  }
  std::vector<int64_t> indices(u), inv(len), counts(u, 0);
  for (int64_t j = 0; j < u; ++j) indices[j] = first[order[j]];
  for (int64_t k = 0; k < len; ++k) {
    inv[k] = position[inverse[k]];
    ++counts[inv[k]];
  }
  const std::vector<int64_t>* extra[] = {&indices, &inv, &counts};
  for (int o = 1; o < 4 && o < ctx.num_outputs(); ++o) {
    ctx.SetOutput(o, Tensor::FromVector<int64_t>(*extra[o - 1]));
  }
  return Status::OK();
}

Status UniqueKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const bool has_axis = ctx.HasAttr("axis");
  int axis = 0;
  if (has_axis) {
    if (x.rank() == 0) return ctx.Error("axis given for a scalar input");
    KILN_ASSIGN_OR_RETURN(axis, NormalizeAxis(ctx.GetInt("axis"), x.rank(), ctx.node()));
  }
  const bool sorted = ctx.GetInt("sorted") != 0;
  return DispatchAll(x.dtype(), [&]<typename T>() {
    return UniqueImpl<T>(ctx, x, has_axis, axis, sorted);
  });
}

}  // namespace

void RegisterTensorOps(OpRegistry& r) {
  MustRegister(r, OpSchema("Unique")
                      .Doc("Unique elements (or slices along axis), sorted or in order of first "
                           "occurrence; optional indices, inverse_indices and counts (int64).")
                      .Inputs(1, 1)
                      .Outputs(1, 4)
                      .AttrNoDefault("axis", AttrType::kInt)
                      .AttrDefault("sorted", int64_t{1})
                      .Infer([](InferContext& ctx) {
                        const Shape& s = ctx.input_shape(0);
                        Shape y({Shape::kUnknownDim});
                        if (ctx.HasAttr("axis") && s.rank_known()) {
                          auto axis = NormalizeAxis(ctx.GetInt("axis"), s.rank(), ctx.node());
                          if (!axis.ok()) return axis.status();
                          std::vector<int64_t> d = s.dims();
                          d[*axis] = Shape::kUnknownDim;
                          y = Shape(d);
                        }
                        ctx.SetOutput(0, ctx.input_dtype(0), y);
                        for (int o = 1; o < 4; ++o) {
                          ctx.SetOutput(o, DataType::kInt64, Shape({Shape::kUnknownDim}));
                        }
                        return Status::OK();
                      })
                      .Kernel(UniqueKernel));
  MustRegister(r, OpSchema("Concat")
                      .Doc("Joins the inputs along `axis`.")
                      .Inputs(1, OpSchema::kVariadic)
                      .AttrNoDefault("axis", AttrType::kInt, /*required=*/true)
                      .Infer(ConcatInfer)
                      .Kernel(ConcatKernel));
  MustRegister(r, OpSchema("Split")
                      .Doc("Splits the input along `axis` by `split` sizes (attribute before "
                           "opset 13, input after), into `num_outputs` parts (opset 18), or "
                           "into equal parts.")
                      .Inputs(1, 2)
                      .Outputs(1, OpSchema::kVariadic)
                      .AttrDefault("axis", int64_t{0})
                      .AttrNoDefault("split", AttrType::kInts)
                      .AttrNoDefault("num_outputs", AttrType::kInt)
                      .InputTypes(1, IndexTypes())
                      .Infer(SplitInfer)
                      .Kernel(SplitKernel));
  MustRegister(r, OpSchema("Slice")
                      .Doc("Elements [start, end) with step along the given axes (attributes "
                           "starts/ends/axes before opset 10, inputs after; negative steps).")
                      .Inputs(1, 5)
                      .AttrNoDefault("starts", AttrType::kInts)
                      .AttrNoDefault("ends", AttrType::kInts)
                      .AttrNoDefault("axes", AttrType::kInts)
                      .InputTypes(1, IndexTypes())
                      .InputTypes(2, IndexTypes())
                      .InputTypes(3, IndexTypes())
                      .InputTypes(4, IndexTypes())
                      .Infer(SliceInfer)
                      .Kernel(SliceKernel));
  MustRegister(r, OpSchema("Gather")
                      .Doc("Selects slices along `axis` at the given (possibly negative) indices.")
                      .Inputs(2, 2)
                      .AttrDefault("axis", int64_t{0})
                      .InputTypes(1, IndexTypes())
                      .Infer(GatherInfer)
                      .Kernel(GatherKernel));
  MustRegister(r, OpSchema("GatherElements")
                      .Doc("out[i][j][k] = data[index][j][k] for axis 0, etc.")
                      .Inputs(2, 2)
                      .AttrDefault("axis", int64_t{0})
                      .InputTypes(1, IndexTypes())
                      .Infer(InferShapeOfInput1)
                      .Kernel(GatherElementsKernel));
  MustRegister(r, OpSchema("GatherND")
                      .Doc("Gathers slices addressed by index tuples (the last indices dim), "
                           "after `batch_dims` shared leading dims.")
                      .Inputs(2, 2)
                      .AttrDefault("batch_dims", int64_t{0})
                      .InputTypes(1, {DataType::kInt64})
                      .Infer(GatherNDInfer)
                      .Kernel(GatherNDKernel));
  for (const char* name : {"ScatterElements", "Scatter"}) {
    MustRegister(r, OpSchema(name)
                        .Doc("A copy of data with updates written (or combined by `reduction`) "
                             "at the element positions given by indices along `axis`.")
                        .Inputs(3, 3)
                        .AttrDefault("axis", int64_t{0})
                        .AttrDefault("reduction", "none")
                        .InputTypes(1, IndexTypes())
                        .Infer(InferSameAsInput0)
                        .Kernel(ScatterElementsKernel));
  }
  MustRegister(r, OpSchema("ScatterND")
                      .Doc("A copy of data with update slices written (or combined by "
                           "`reduction`) at the index tuples.")
                      .Inputs(3, 3)
                      .AttrDefault("reduction", "none")
                      .InputTypes(1, {DataType::kInt64})
                      .Infer(InferSameAsInput0)
                      .Kernel(ScatterNDKernel));
  MustRegister(r, OpSchema("Pad")
                      .Doc("Pads (negative pads crop) in mode constant, reflect, edge or wrap. "
                           "pads/value attributes before opset 11; inputs pads, constant_value, "
                           "axes (opset 18) after.")
                      .Inputs(1, 4)
                      .AttrDefault("mode", "constant")
                      .AttrNoDefault("pads", AttrType::kInts)
                      .AttrDefault("value", 0.0f)
                      .InputTypes(1, IndexTypes())
                      .InputTypes(3, IndexTypes())
                      .Infer(PadInfer)
                      .Kernel(PadKernel));
  MustRegister(r, OpSchema("Compress")
                      .Doc("Keeps the slices along `axis` (or elements of the flattened input) "
                           "where condition is true.")
                      .Inputs(2, 2)
                      .AttrNoDefault("axis", AttrType::kInt)
                      .InputTypes(1, {DataType::kBool})
                      .Infer([](InferContext& ctx) -> Status {
                        const Shape& in = ctx.input_shape(0);
                        // Without an axis the input is flattened: the output is 1-D.
                        const int64_t rank =
                            ctx.HasAttr("axis") ? (in.rank_known() ? in.rank() : -1) : 1;
                        ctx.SetOutput(0, ctx.input_dtype(0), UnknownDims(rank));
                        return Status::OK();
                      })
                      .Kernel(CompressKernel));
  MustRegister(r, OpSchema("Trilu")
                      .Doc("Keeps the upper (or lower) triangle above diagonal k of the last two "
                           "dims; zeroes the rest.")
                      .Inputs(1, 2)
                      .AttrDefault("upper", int64_t{1})
                      .InputTypes(1, {DataType::kInt64})
                      .Infer(InferSameAsInput0)
                      .Kernel(TriluKernel));
  MustRegister(r, OpSchema("ReverseSequence")
                      .Doc("Reverses the first sequence_lens[b] steps of each batch entry.")
                      .Inputs(2, 2)
                      .AttrDefault("batch_axis", int64_t{1})
                      .AttrDefault("time_axis", int64_t{0})
                      .InputTypes(1, {DataType::kInt64})
                      .Infer(InferSameAsInput0)
                      .Kernel(ReverseSequenceKernel));
  MustRegister(r, OpSchema("OneHot")
                      .Doc("values[1] at each index along a new `axis` of size depth, values[0] "
                           "elsewhere (negative indices count from depth).")
                      .Inputs(3, 3)
                      .AttrDefault("axis", int64_t{-1})
                      .InputTypes(0, NumericTypes())
                      .InputTypes(1, NumericTypes())
                      .Infer(OneHotInfer)
                      .Kernel(OneHotKernel));
  TypeList nonzero_types = NumericTypes();
  nonzero_types.push_back(DataType::kBool);
  MustRegister(r, OpSchema("NonZero")
                      .Doc("Indices of the non-zero elements, as int64 [rank, count].")
                      .Inputs(1, 1)
                      .InputTypes(0, nonzero_types)
                      .Infer([](InferContext& ctx) -> Status {
                        const Shape& in = ctx.input_shape(0);
                        ctx.SetOutput(0, DataType::kInt64,
                                      Shape({in.rank_known() ? std::max(in.rank(), 1) : -1, -1}));
                        return Status::OK();
                      })
                      .Kernel(NonZeroKernel));
}

}  // namespace kiln
