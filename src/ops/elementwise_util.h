// Shared helpers for the element-wise op families (elementwise, activation, logical):
// broadcasting binary loops with fast paths, unary maps, UB-free integer arithmetic.
// Header-only so each family library stays self-contained.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/shape_util.h"

namespace kiln::ew {

// ----------------------------------------------------------------------------- integer helpers

// Integer arithmetic wraps (two's complement) instead of overflowing: computed in an unsigned
// type at least as wide as `unsigned`, so neither signed overflow nor int promotion is UB.
template <typename T>
using WrapType =
    std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;

template <typename T>
T WrapAdd(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(static_cast<WrapType<T>>(a) + static_cast<WrapType<T>>(b));
  } else {
    return a + b;
  }
}
template <typename T>
T WrapSub(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(static_cast<WrapType<T>>(a) - static_cast<WrapType<T>>(b));
  } else {
    return a - b;
  }
}
template <typename T>
T WrapMul(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(static_cast<WrapType<T>>(a) * static_cast<WrapType<T>>(b));
  } else {
    return a * b;
  }
}
template <typename T>
T WrapNeg(T a) {
  return WrapSub(T(0), a);
}

// double -> T: truncates toward zero for integers, saturating; NaN -> 0. No UB.
template <typename T>
T SaturateCast(double v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (std::isnan(v)) return T(0);
    v = std::trunc(v);
    if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) {
      return std::numeric_limits<T>::lowest();
    }
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) {
      return std::numeric_limits<T>::max();
    }
    return static_cast<T>(v);
  }
}

// True when any element of a numeric tensor is zero (integer divisors).
template <typename T>
bool AnyZero(const Tensor& t) {
  const T* p = t.data<T>();
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    if (p[i] == T(0)) return true;
  }
  return false;
}

// ----------------------------------------------------------------------------- broadcasting

namespace internal {

// Output dims and per-input strides with size-1 output dims dropped and adjacent dims merged
// where every input is either contiguous or broadcast across both, so the innermost loop is as
// long as possible (e.g. [N,C,H,W] + [1,C,1,1] becomes [N,C,H*W] with strides [0,1,0]).
struct CoalescedBroadcast {
  std::vector<int64_t> dims;
  std::vector<std::vector<int64_t>> strides;  // per input
};

inline CoalescedBroadcast Coalesce(const std::vector<int64_t>& out_dims,
                                   const std::vector<const std::vector<int64_t>*>& in_dims) {
  CoalescedBroadcast c;
  std::vector<std::vector<int64_t>> full;
  for (const auto* d : in_dims) full.push_back(BroadcastStrides(*d, out_dims));
  c.strides.resize(in_dims.size());
  for (size_t d = 0; d < out_dims.size(); ++d) {
    if (out_dims[d] == 1) continue;
    bool merge = !c.dims.empty();
    for (size_t k = 0; k < full.size() && merge; ++k) {
      int64_t prev = c.strides[k].back(), cur = full[k][d];
      merge = (prev == 0 && cur == 0) || (cur != 0 && prev == cur * out_dims[d]);
    }
    if (merge) {
      c.dims.back() *= out_dims[d];
      for (size_t k = 0; k < full.size(); ++k) c.strides[k].back() = full[k][d];
    } else {
      c.dims.push_back(out_dims[d]);
      for (size_t k = 0; k < full.size(); ++k) c.strides[k].push_back(full[k][d]);
    }
  }
  return c;
}

}  // namespace internal

// Row kernels. The project builds with -O2, whose "very cheap" vectorizer cost model only
// vectorizes loops that need neither runtime alias checks nor a scalar epilogue: __restrict
// parameters (outputs are always freshly allocated) and fixed-size blocks satisfy both.
constexpr int64_t kBlock = 16;

template <typename TA, typename TB, typename TO, typename F>
void RowVV(const TA* __restrict a, const TB* __restrict b, TO* __restrict o, int64_t n, F& f) {
  int64_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    for (int64_t j = 0; j < kBlock; ++j) o[i + j] = f(a[i + j], b[i + j]);
  }
  for (; i < n; ++i) o[i] = f(a[i], b[i]);
}
template <typename TA, typename TB, typename TO, typename F>
void RowVS(const TA* __restrict a, const TB s, TO* __restrict o, int64_t n, F& f) {
  int64_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    for (int64_t j = 0; j < kBlock; ++j) o[i + j] = f(a[i + j], s);
  }
  for (; i < n; ++i) o[i] = f(a[i], s);
}
template <typename TA, typename TB, typename TO, typename F>
void RowSV(const TA s, const TB* __restrict b, TO* __restrict o, int64_t n, F& f) {
  int64_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    for (int64_t j = 0; j < kBlock; ++j) o[i + j] = f(s, b[i + j]);
  }
  for (; i < n; ++i) o[i] = f(s, b[i]);
}
template <typename TI, typename TO, typename F>
void RowMap(const TI* __restrict in, TO* __restrict o, int64_t n, F& f) {
  int64_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    for (int64_t j = 0; j < kBlock; ++j) o[i + j] = f(in[i + j]);
  }
  for (; i < n; ++i) o[i] = f(in[i]);
}

// out[i] = f(a[ia], b[ib]) over the broadcast of a and b; `out` already has the broadcast dims
// and does not share storage with a or b. Same-shape and scalar operands run as flat loops;
// the general case runs rows of the coalesced innermost dimension with each operand either
// contiguous or a repeated scalar.
template <typename TA, typename TB, typename TO, typename F>
void BinaryLoop(const Tensor& a, const Tensor& b, Tensor* out, F&& f) {
  const TA* pa = a.data<TA>();
  const TB* pb = b.data<TB>();
  TO* po = out->mutable_data<TO>();
  const int64_t n = out->num_elements();
  if (n == 0) return;
  const int64_t na = a.num_elements(), nb = b.num_elements();
  if (na == n && nb == n) return RowVV(pa, pb, po, n, f);
  if (na == 1) return RowSV(pa[0], pb, po, n, f);
  if (nb == 1) return RowVS(pa, pb[0], po, n, f);
  internal::CoalescedBroadcast c = internal::Coalesce(out->dims(), {&a.dims(), &b.dims()});
  const int rank = static_cast<int>(c.dims.size());
  const auto& sa = c.strides[0];
  const auto& sb = c.strides[1];
  const int64_t inner = c.dims[rank - 1];
  const bool ia = sa[rank - 1] != 0, ib = sb[rank - 1] != 0;
  std::vector<int64_t> idx(rank, 0);
  int64_t oa = 0, ob = 0;
  for (int64_t o = 0; o < n; o += inner) {
    if (ia && ib) {
      RowVV(pa + oa, pb + ob, po + o, inner, f);
    } else if (ia) {
      RowVS(pa + oa, pb[ob], po + o, inner, f);
    } else if (ib) {
      RowSV(pa[oa], pb + ob, po + o, inner, f);
    } else {
      const TO v = f(pa[oa], pb[ob]);
      for (int64_t i = 0; i < inner; ++i) po[o + i] = v;
    }
    for (int d = rank - 2; d >= 0; --d) {
      ++idx[d];
      oa += sa[d];
      ob += sb[d];
      if (idx[d] < c.dims[d]) break;
      oa -= sa[d] * c.dims[d];
      ob -= sb[d] * c.dims[d];
      idx[d] = 0;
    }
  }
}

// A new tensor of dtype TO holding f over the broadcast of a and b (InvalidArgument when the
// shapes do not broadcast).
template <typename TA, typename TB, typename TO, typename F>
StatusOr<Tensor> BroadcastBinary(const Tensor& a, const Tensor& b, F&& f) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, BroadcastDims({a.dims(), b.dims()}));
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::Create(DataTypeOf<TO>::value, std::move(dims)));
  BinaryLoop<TA, TB, TO>(a, b, &out, std::forward<F>(f));
  return out;
}

// Runs BroadcastBinary on inputs 0 and 1 of `ctx` into output 0; errors name the node.
template <typename TA, typename TB, typename TO, typename F>
Status BinaryToOutput(KernelContext& ctx, F&& f) {
  StatusOr<Tensor> out =
      BroadcastBinary<TA, TB, TO>(ctx.input(0), ctx.input(1), std::forward<F>(f));
  if (!out.ok()) return out.status().WithContext(ctx.node().Describe());
  ctx.SetOutput(0, std::move(out).value());
  return Status::OK();
}

// Error unless inputs i and j have the same dtype (ONNX type constraint T on both).
inline Status CheckSameType(const KernelContext& ctx, int i, int j) {
  if (ctx.input(i).dtype() == ctx.input(j).dtype()) return Status::OK();
  return ctx.Error(std::string("inputs ") + std::to_string(i) + " and " + std::to_string(j) +
                   " must have the same type, got " + DataTypeName(ctx.input(i).dtype()) + " and " +
                   DataTypeName(ctx.input(j).dtype()));
}

// ----------------------------------------------------------------------------- unary maps

// Output 0 = f(x) element-wise over input 0, same dtype TI -> TO.
template <typename TI, typename TO, typename F>
Status MapToOutput(KernelContext& ctx, F&& f) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, DataTypeOf<TO>::value, x.dims()));
  RowMap(x.data<TI>(), out->mutable_data<TO>(), x.num_elements(), f);
  return Status::OK();
}

// f(x) over float32/float64 input 0 (half types arrive as float32 via PromoteHalfToFloat).
// `f` is a generic lambda: [](auto x) { using T = decltype(x); ... return T(...); }.
template <typename F>
Status MapFloat(KernelContext& ctx, F&& f) {
  return DispatchFloat(ctx.input(0).dtype(),
                       [&]<typename T>() -> Status { return MapToOutput<T, T>(ctx, f); });
}

// f(x) over any numeric input 0 (float32/64 and all integer types).
template <typename F>
Status MapNumeric(KernelContext& ctx, F&& f) {
  return DispatchNumeric(ctx.input(0).dtype(),
                         [&]<typename T>() -> Status { return MapToOutput<T, T>(ctx, f); });
}

// A one-input, one-output float op with half promotion and same-shape inference.
inline OpSchema FloatUnarySchema(const char* name, const char* doc) {
  OpSchema s(name);
  s.Doc(doc)
      .Inputs(1, 1)
      .Outputs(1, 1)
      .InputTypes(0, FloatTypes())
      .PromoteHalfToFloat()
      .Infer(InferSameAsInput0);
  return s;
}

}  // namespace kiln::ew
