// Op family: reduce — Reduce*, ArgMax/ArgMin, Softmax/LogSoftmax/Hardmax, CumSum.
//
// Every kernel here works on an (outer, n, inner) view of its input: for each of the
// outer * inner "lanes", n elements `inner` apart are combined. Reductions whose axes are
// contiguous (ignoring size-1 dims) use that view directly; others first gather the input into
// (kept..., reduced...) order so the reduced elements become one contiguous run.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <type_traits>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/base/shape_util.h"

namespace kiln {
namespace {

// ----------------------------------------------------------------------------- views

struct Span3 {
  int64_t outer = 1, n = 1, inner = 1;
};

// dims[0, begin) -> outer, dims[begin, end) -> n, dims[end, rank) -> inner.
Span3 SplitDims(const std::vector<int64_t>& dims, int begin, int end) {
  Span3 s;
  for (int i = 0; i < static_cast<int>(dims.size()); ++i) {
    (i < begin ? s.outer : i < end ? s.n : s.inner) *= dims[i];
  }
  return s;
}

// Calls f(first, stride) for every lane of `s`: its elements are first + k * stride, k < n.
template <typename F>
void ForEachLane(const Span3& s, F&& f) {
  for (int64_t o = 0; o < s.outer; ++o) {
    for (int64_t i = 0; i < s.inner; ++i) f(o * s.n * s.inner + i, s.inner);
  }
}

// Accumulator type: double for floating point, 64-bit integers of the same signedness else.
template <typename T>
using WideT = std::conditional_t<std::is_floating_point_v<T>, double,
                                 std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;

// double -> T; integer results of log/sqrt are truncated and saturated (NaN -> 0).
template <typename T>
T FromDouble(double v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (std::isnan(v)) return 0;
    if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) {
      return std::numeric_limits<T>::lowest();
    }
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) {
      return std::numeric_limits<T>::max();
    }
    return static_cast<T>(v);
  }
}

// ----------------------------------------------------------------------------- reducers
// A reducer has Acc, Init(), Add(Acc&, T) and Final(Acc, n) -> T. Reducing over an empty set
// gives Final(Init(), 0): 0 for sums, 1 for products, -inf/+inf (lowest/max) for Max/Min.

template <typename T>
struct SumR {
  using Acc = WideT<T>;
  static Acc Init() { return 0; }
  static void Add(Acc& a, T x) { a += static_cast<Acc>(x); }
  static T Final(Acc a, int64_t) { return static_cast<T>(a); }
};

template <typename T>
struct MeanR : SumR<T> {
  using Acc = WideT<T>;
  static T Final(Acc a, int64_t n) {
    if constexpr (std::is_floating_point_v<T>) {
      return static_cast<T>(a / static_cast<double>(n));
    } else {
      return n == 0 ? T(0) : static_cast<T>(a / static_cast<Acc>(n));
    }
  }
};

template <typename T>
struct SumSquareR : SumR<T> {
  using Acc = WideT<T>;
  static void Add(Acc& a, T x) { a += static_cast<Acc>(x) * static_cast<Acc>(x); }
};

template <typename T>
struct L1R : SumR<T> {
  using Acc = WideT<T>;
  static void Add(Acc& a, T x) {
    if constexpr (std::is_signed_v<T>) {
      a += x < 0 ? -static_cast<Acc>(x) : static_cast<Acc>(x);
    } else {
      a += static_cast<Acc>(x);
    }
  }
};

template <typename T>
struct L2R {
  using Acc = double;
  static Acc Init() { return 0; }
  static void Add(Acc& a, T x) { a += static_cast<double>(x) * static_cast<double>(x); }
  static T Final(Acc a, int64_t) { return FromDouble<T>(std::sqrt(a)); }
};

template <typename T>
struct LogSumR {
  using Acc = double;
  static Acc Init() { return 0; }
  static void Add(Acc& a, T x) { a += static_cast<double>(x); }
  static T Final(Acc a, int64_t) { return FromDouble<T>(std::log(a)); }
};

// Online log-sum-exp: m is the running max, s = sum exp(x - m). Stable for large inputs.
template <typename T>
struct LogSumExpR {
  struct Acc {
    double m, s;
  };
  static Acc Init() { return {-std::numeric_limits<double>::infinity(), 0.0}; }
  static void Add(Acc& a, T xv) {
    const double x = static_cast<double>(xv);
    if (x > a.m) {
      a.s = a.s * std::exp(a.m - x) + 1.0;
      a.m = x;
    } else if (x == a.m) {
      a.s += 1.0;  // also covers x == m == +/-inf, where exp(x - m) would be NaN
    } else if (!std::isnan(x)) {
      a.s += std::exp(x - a.m);
    } else {
      a.m = x;  // NaN propagates
    }
  }
  static T Final(Acc a, int64_t) { return FromDouble<T>(a.m + std::log(a.s)); }
};

template <typename T>
struct ProdR {
  using Acc = WideT<T>;
  static Acc Init() { return 1; }
  static void Add(Acc& a, T x) { a *= static_cast<Acc>(x); }
  static T Final(Acc a, int64_t) { return static_cast<T>(a); }
};

// Max/Min propagate NaN like numpy.
template <typename T, bool kMax>
struct ExtremumR {
  using Acc = T;
  static Acc Init() {
    if constexpr (std::is_floating_point_v<T>) {
      return kMax ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
    } else {
      return kMax ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
    }
  }
  static void Add(Acc& a, T x) {
    bool take = kMax ? x > a : x < a;
    if constexpr (std::is_floating_point_v<T>) take = take || std::isnan(x);
    if (take) a = x;
  }
  static T Final(Acc a, int64_t) { return a; }
};
template <typename T>
using MaxR = ExtremumR<T, true>;
template <typename T>
using MinR = ExtremumR<T, false>;

template <typename T, typename R>
void ReduceSpan(const T* x, const Span3& s, T* y) {
  if (s.inner == 1) {
    for (int64_t o = 0; o < s.outer; ++o) {
      typename R::Acc a = R::Init();
      const T* row = x + o * s.n;
      for (int64_t k = 0; k < s.n; ++k) R::Add(a, row[k]);
      y[o] = R::Final(a, s.n);
    }
    return;
  }
  // Walk rows of `inner` contiguous elements, keeping one accumulator per output.
  std::vector<typename R::Acc> acc(static_cast<size_t>(s.inner));
  for (int64_t o = 0; o < s.outer; ++o) {
    std::fill(acc.begin(), acc.end(), R::Init());
    for (int64_t k = 0; k < s.n; ++k) {
      const T* row = x + (o * s.n + k) * s.inner;
      for (int64_t i = 0; i < s.inner; ++i) R::Add(acc[i], row[i]);
    }
    T* out = y + o * s.inner;
    for (int64_t i = 0; i < s.inner; ++i) out[i] = R::Final(acc[i], s.n);
  }
}

// ----------------------------------------------------------------------------- axes

// Marks the reduced axes. Empty `axes` reduces everything, or nothing when noop_empty (the
// reduction over an empty set of axes: elementwise, e.g. ReduceSumSquare gives x*x).
StatusOr<std::vector<bool>> ReduceMask(const std::vector<int64_t>& axes, int rank, bool noop_empty,
                                       const Node& node) {
  std::vector<bool> mask(rank, axes.empty() && !noop_empty);
  if (rank == 0) return mask;
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, rank, node));
    mask[ax] = true;
  }
  return mask;
}

std::vector<int64_t> ReducedDims(const std::vector<int64_t>& dims, const std::vector<bool>& mask,
                                 bool keepdims) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (!mask[i]) {
      out.push_back(dims[i]);
    } else if (keepdims) {
      out.push_back(1);
    }
  }
  return out;
}

// The axes a Reduce* node names: its `axes` input (ReduceSum from opset 13, the others from
// 18) or, in older opsets, its `axes` attribute; empty when neither is given.
StatusOr<std::vector<int64_t>> KernelAxes(const KernelContext& ctx) {
  if (!ctx.has_input(1)) return ctx.GetInts("axes");
  auto axes = ReadInt64s(ctx.input(1));
  if (!axes.ok()) return ctx.Error("axes: " + axes.status().message());
  return axes;
}

// (outer, n, inner) plan for reducing `dims` over `mask`; `perm` is non-empty when the reduced
// axes are not contiguous and the input must first be transposed to (kept..., reduced...).
struct ReducePlan {
  Span3 span;
  std::vector<int> perm;
};

ReducePlan PlanReduction(const std::vector<int64_t>& dims, const std::vector<bool>& mask) {
  const int rank = static_cast<int>(dims.size());
  // Size-1 dims can be treated as kept or reduced: only the others decide contiguity.
  int first = -1, last = -1;
  bool contiguous = true;
  for (int i = 0; i < rank; ++i) {
    if (dims[i] == 1 || !mask[i]) continue;
    if (first < 0) first = i;
    last = i;
  }
  for (int i = first + 1; first >= 0 && i < last; ++i) {
    if (dims[i] != 1 && !mask[i]) contiguous = false;
  }
  ReducePlan plan;
  if (first < 0) {
    plan.span = SplitDims(dims, rank, rank);  // nothing reduced: n = 1
  } else if (contiguous) {
    plan.span = SplitDims(dims, first, last + 1);
  } else {
    for (int i = 0; i < rank; ++i) {
      if (!mask[i]) plan.perm.push_back(i);
    }
    const int kept = static_cast<int>(plan.perm.size());
    for (int i = 0; i < rank; ++i) {
      if (mask[i]) plan.perm.push_back(i);
    }
    std::vector<int64_t> permuted;
    for (int p : plan.perm) permuted.push_back(dims[p]);
    plan.span = SplitDims(permuted, kept, rank);
  }
  return plan;
}

// x (of `dims`) transposed by `perm`.
template <typename T>
std::vector<T> Transpose(const T* x, const std::vector<int64_t>& dims,
                         const std::vector<int>& perm) {
  const std::vector<int64_t> in_strides = ContiguousStrides(dims);
  std::vector<int64_t> out_dims, strides;
  int64_t total = 1;
  for (int p : perm) {
    out_dims.push_back(dims[p]);
    strides.push_back(in_strides[p]);
    total *= dims[p];
  }
  std::vector<T> out(static_cast<size_t>(total));
  ForEachBroadcast(out_dims, {strides}, [&](int64_t i, const int64_t* off) { out[i] = x[off[0]]; });
  return out;
}

template <template <typename> class R>
Status ReduceKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, KernelAxes(ctx));
  KILN_ASSIGN_OR_RETURN(
      std::vector<bool> mask,
      ReduceMask(axes, x.rank(), ctx.GetInt("noop_with_empty_axes") != 0, ctx.node()));
  KILN_ASSIGN_OR_RETURN(
      Tensor * y,
      ctx.AllocateOutput(0, x.dtype(), ReducedDims(x.dims(), mask, ctx.GetInt("keepdims") != 0)));
  const ReducePlan plan = PlanReduction(x.dims(), mask);
  return DispatchNumeric(x.dtype(), [&]<typename T>() -> Status {
    const T* src = x.data<T>();
    std::vector<T> gathered;
    if (!plan.perm.empty()) {
      gathered = Transpose(src, x.dims(), plan.perm);
      src = gathered.data();
    }
    ReduceSpan<T, R<T>>(src, plan.span, y->mutable_data<T>());
    return Status::OK();
  });
}

Status InferReduce(InferContext& ctx) {
  const DataType dtype = ctx.input_dtype(0);
  const Shape& in = ctx.input_shape(0);
  const bool keepdims = ctx.GetInt("keepdims") != 0;
  std::optional<std::vector<int64_t>> axes;
  const auto& names = ctx.node().inputs;
  if (names.size() < 2 || names[1].empty()) {
    axes = ctx.GetInts("axes");
  } else if (const Tensor* c = ctx.constant_input(1)) {
    auto a = ReadInt64s(*c);
    if (!a.ok()) return ctx.Error("axes: " + a.status().message());
    axes = *a;
  }
  if (!in.rank_known() || !axes) {
    ctx.SetOutput(0, dtype,
                  keepdims && in.rank_known()
                      ? Shape(std::vector<int64_t>(in.rank(), Shape::kUnknownDim))
                      : Shape::UnknownRank());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(
      std::vector<bool> mask,
      ReduceMask(*axes, in.rank(), ctx.GetInt("noop_with_empty_axes") != 0, ctx.node()));
  ctx.SetOutput(0, dtype, Shape(ReducedDims(in.dims(), mask, keepdims)));
  return Status::OK();
}

template <template <typename> class R>
void RegisterReduce(OpRegistry& r, const char* name, const char* doc) {
  MustRegister(r, OpSchema(name)
                      .Doc(doc)
                      .Inputs(1, 2)
                      .Outputs(1, 1)
                      .AttrNoDefault("axes", AttrType::kInts)
                      .AttrDefault("keepdims", int64_t{1})
                      .AttrDefault("noop_with_empty_axes", int64_t{0})
                      .InputTypes(0, NumericTypes())
                      .InputTypes(1, IndexTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferReduce)
                      .Kernel(ReduceKernel<R>));
}

// ----------------------------------------------------------------------------- ArgMax/ArgMin

Status InferArg(InferContext& ctx) {
  const Shape& in = ctx.input_shape(0);
  if (!in.rank_known()) {
    ctx.SetOutput(0, DataType::kInt64, Shape::UnknownRank());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.GetInt("axis"), in.rank(), ctx.node()));
  std::vector<bool> mask(in.rank(), false);
  if (in.rank() > 0) mask[axis] = true;
  ctx.SetOutput(0, DataType::kInt64,
                Shape(ReducedDims(in.dims(), mask, ctx.GetInt("keepdims") != 0)));
  return Status::OK();
}

template <bool kMax>
Status ArgKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() == 0) return ctx.Error("input must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.GetInt("axis"), x.rank(), ctx.node()));
  const Span3 s = SplitDims(x.dims(), axis, axis + 1);
  if (s.n == 0 && s.outer * s.inner > 0) {
    return ctx.Error("cannot take the index of an extremum over an empty axis");
  }
  std::vector<bool> mask(x.rank(), false);
  mask[axis] = true;
  KILN_ASSIGN_OR_RETURN(
      Tensor * y, ctx.AllocateOutput(0, DataType::kInt64,
                                     ReducedDims(x.dims(), mask, ctx.GetInt("keepdims") != 0)));
  const bool last = ctx.GetInt("select_last_index") != 0;
  int64_t* out = y->mutable_data<int64_t>();
  return DispatchNumeric(x.dtype(), [&]<typename T>() -> Status {
    const T* p = x.data<T>();
    ForEachLane(s, [&](int64_t first, int64_t stride) {
      T best = p[first];
      int64_t best_k = 0;
      for (int64_t k = 1; k < s.n; ++k) {
        const T v = p[first + k * stride];
        if ((kMax ? v > best : v < best) || (last && v == best)) {
          best = v;
          best_k = k;
        }
      }
      *out++ = best_k;
    });
    return Status::OK();
  });
}

void RegisterArg(OpRegistry& r, const char* name, bool is_max) {
  MustRegister(r, OpSchema(name)
                      .Doc(is_max ? "Indices of the maximum along `axis` (int64)."
                                  : "Indices of the minimum along `axis` (int64).")
                      .Inputs(1, 1)
                      .Outputs(1, 1)
                      .AttrDefault("axis", int64_t{0})
                      .AttrDefault("keepdims", int64_t{1})
                      .AttrDefault("select_last_index", int64_t{0})
                      .InputTypes(0, NumericTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferArg)
                      .Kernel(is_max ? ArgKernel<true> : ArgKernel<false>));
}

// ----------------------------------------------------------------------------- softmax family

// Opset < 13: the input is coerced to 2-D at `axis` (default 1), so a lane spans dims[axis:].
// Opset >= 13: a lane runs along dims[axis] alone (default -1).
StatusOr<Span3> SoftmaxSpan(const KernelContext& ctx, const std::vector<int64_t>& dims) {
  const int rank = static_cast<int>(dims.size());
  if (rank == 0) return Span3{};
  const bool old = ctx.opset() < 13;
  const int64_t axis_attr = old && !ctx.HasAttr("axis") ? 1 : ctx.GetInt("axis");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_attr, rank, ctx.node()));
  return old ? SplitDims(dims, axis, rank) : SplitDims(dims, axis, axis + 1);
}

enum class SoftmaxKind { kSoftmax, kLogSoftmax, kHardmax };

template <SoftmaxKind kKind>
Status SoftmaxKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(Span3 s, SoftmaxSpan(ctx, x.dims()));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.dims()));
  return DispatchFloat(x.dtype(), [&]<typename T>() -> Status {
    const T* p = x.data<T>();
    T* q = y->mutable_data<T>();
    ForEachLane(s, [&](int64_t first, int64_t stride) {
      const T* in = p + first;
      T* out = q + first;
      int64_t arg = 0;
      for (int64_t k = 1; k < s.n; ++k) {
        if (in[k * stride] > in[arg * stride]) arg = k;
      }
      if constexpr (kKind == SoftmaxKind::kHardmax) {
        for (int64_t k = 0; k < s.n; ++k) out[k * stride] = k == arg ? T(1) : T(0);
        return;
      }
      const double max = static_cast<double>(in[arg * stride]);
      if constexpr (kKind == SoftmaxKind::kSoftmax) {
        double sum = 0;
        for (int64_t k = 0; k < s.n; ++k) {
          const double e = std::exp(static_cast<double>(in[k * stride]) - max);
          out[k * stride] = static_cast<T>(e);
          sum += e;
        }
        const T inv = static_cast<T>(1.0 / sum);
        for (int64_t k = 0; k < s.n; ++k) out[k * stride] *= inv;
      } else {
        double sum = 0;
        for (int64_t k = 0; k < s.n; ++k)
          sum += std::exp(static_cast<double>(in[k * stride]) - max);
        const double shift = max + std::log(sum);
        for (int64_t k = 0; k < s.n; ++k) {
          out[k * stride] = static_cast<T>(static_cast<double>(in[k * stride]) - shift);
        }
      }
    });
    return Status::OK();
  });
}

template <SoftmaxKind kKind>
void RegisterSoftmax(OpRegistry& r, const char* name, const char* doc) {
  MustRegister(r, OpSchema(name)
                      .Doc(doc)
                      .Inputs(1, 1)
                      .Outputs(1, 1)
                      .AttrDefault("axis", int64_t{-1})
                      .InputTypes(0, FloatTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferSameAsInput0)
                      .Kernel(SoftmaxKernel<kKind>));
}

// ----------------------------------------------------------------------------- CumSum

Status CumSumKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& axis_t = ctx.input(1);
  if (axis_t.num_elements() != 1 || axis_t.rank() > 1) {
    return ctx.Error("axis must be a scalar, got " + axis_t.TypeString());
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axis_v, ReadInt64s(axis_t));
  if (x.rank() == 0) return ctx.Error("input must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_v[0], x.rank(), ctx.node()));
  const Span3 s = SplitDims(x.dims(), axis, axis + 1);
  const bool exclusive = ctx.GetInt("exclusive") != 0;
  const bool reverse = ctx.GetInt("reverse") != 0;
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.dims()));
  return DispatchNumeric(x.dtype(), [&]<typename T>() -> Status {
    const T* p = x.data<T>();
    T* q = y->mutable_data<T>();
    ForEachLane(s, [&](int64_t first, int64_t stride) {
      WideT<T> acc = 0;
      for (int64_t j = 0; j < s.n; ++j) {
        const int64_t at = first + (reverse ? s.n - 1 - j : j) * stride;
        if (exclusive) {
          q[at] = static_cast<T>(acc);
          acc += static_cast<WideT<T>>(p[at]);
        } else {
          acc += static_cast<WideT<T>>(p[at]);
          q[at] = static_cast<T>(acc);
        }
      }
    });
    return Status::OK();
  });
}

}  // namespace

void RegisterReduceOps(OpRegistry& r) {
  RegisterReduce<SumR>(r, "ReduceSum", "Sum over `axes` (attribute before opset 13, input after).");
  RegisterReduce<MeanR>(r, "ReduceMean", "Arithmetic mean over `axes`.");
  RegisterReduce<MaxR>(r, "ReduceMax", "Maximum over `axes` (NaN propagates).");
  RegisterReduce<MinR>(r, "ReduceMin", "Minimum over `axes` (NaN propagates).");
  RegisterReduce<ProdR>(r, "ReduceProd", "Product over `axes`.");
  RegisterReduce<L1R>(r, "ReduceL1", "Sum of absolute values over `axes`.");
  RegisterReduce<L2R>(r, "ReduceL2", "Square root of the sum of squares over `axes`.");
  RegisterReduce<LogSumR>(r, "ReduceLogSum", "log(sum(x)) over `axes`.");
  RegisterReduce<LogSumExpR>(r, "ReduceLogSumExp",
                             "log(sum(exp(x))) over `axes`, computed stably.");
  RegisterReduce<SumSquareR>(r, "ReduceSumSquare", "Sum of squares over `axes`.");
  RegisterArg(r, "ArgMax", true);
  RegisterArg(r, "ArgMin", false);
  RegisterSoftmax<SoftmaxKind::kSoftmax>(
      r, "Softmax",
      "exp(x - max) / sum(exp(x - max)) along `axis` (2-D coercion before opset 13).");
  RegisterSoftmax<SoftmaxKind::kLogSoftmax>(r, "LogSoftmax",
                                            "x - max - log(sum(exp(x - max))) along `axis`.");
  RegisterSoftmax<SoftmaxKind::kHardmax>(r, "Hardmax",
                                         "1 at the first maximum along `axis`, 0 elsewhere.");
  MustRegister(r, OpSchema("CumSum")
                      .Doc("Cumulative sum along the axis given by input 1 (a scalar); "
                           "`exclusive` leaves out the current element, `reverse` runs backwards.")
                      .Inputs(2, 2)
                      .Outputs(1, 1)
                      .AttrDefault("exclusive", int64_t{0})
                      .AttrDefault("reverse", int64_t{0})
                      .InputTypes(0, NumericTypes())
                      .InputTypes(1, IndexTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferSameAsInput0)
                      .Kernel(CumSumKernel));
}

}  // namespace kiln
