// Op family: loss — ONNX's loss functions, forward only.
//
//   NegativeLogLikelihoodLoss (12/13)  input [N,C,d1..dk] (log-probabilities), target
//                                      [N,d1..dk], optional weight [C]; reduction none / sum /
//                                      mean (weighted mean), ignore_index
//   SoftmaxCrossEntropyLoss (12/13)    the same on log_softmax(scores, axis 1); optional second
//                                      output log_prob
//
// Both accumulate in double. A target outside [0, C) that is not ignore_index is an error.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"

namespace kiln {
namespace {

struct LossShape {
  int64_t n = 0, c = 0, d = 1;  // batch, classes, product of the spatial dims
  std::vector<int64_t> out_dims;  // [N, d1..dk] for reduction "none"
};

StatusOr<LossShape> CheckShapes(const KernelContext& ctx, const Tensor& x, const Tensor& target) {
  if (x.rank() < 2) return ctx.Error("input must have rank >= 2 ([N, C, ...]), got " + x.TypeString());
  LossShape s;
  s.n = x.dim(0);
  s.c = x.dim(1);
  s.out_dims = {s.n};
  for (int k = 2; k < x.rank(); ++k) {
    s.d *= x.dim(k);
    s.out_dims.push_back(x.dim(k));
  }
  if (target.dims() != s.out_dims) {
    return ctx.Error("target shape " + DimsToString(target.dims()) + " does not match input " +
                     x.TypeString() + " (expected " + DimsToString(s.out_dims) + ")");
  }
  if (ctx.has_input(2)) {
    const Tensor& w = ctx.input(2);
    if (w.rank() != 1 || w.dim(0) != s.c) {
      return ctx.Error("weight must be [C] = [" + std::to_string(s.c) + "], got " + w.TypeString());
    }
  }
  return s;
}

// NLL over log-probabilities `logp` laid out [N, C, D]; writes output 0.
template <typename T>
Status NllLoss(KernelContext& ctx, const T* logp, const LossShape& s, const Tensor& target,
               DataType dtype) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> labels, ReadInt64s(target));
  const std::string reduction = ctx.GetString("reduction");
  if (reduction != "none" && reduction != "sum" && reduction != "mean") {
    return ctx.Error("reduction must be none, sum or mean, got '" + reduction + "'");
  }
  const bool has_ignore = ctx.HasAttr("ignore_index");
  const int64_t ignore = ctx.GetInt("ignore_index");
  std::vector<double> weight;
  if (ctx.has_input(2)) weight = ReadDoubles(ctx.input(2));
  std::vector<double> loss(static_cast<size_t>(s.n * s.d));
  double total = 0, weight_sum = 0;
  for (int64_t i = 0; i < s.n; ++i) {
    for (int64_t j = 0; j < s.d; ++j) {
      const int64_t at = i * s.d + j;
      const int64_t label = labels[at];
      if (has_ignore && label == ignore) {
        loss[at] = 0;
        continue;
      }
      if (label < 0 || label >= s.c) {
        return ctx.Error("target " + std::to_string(label) + " is outside [0, " +
                         std::to_string(s.c) + ")");
      }
      const double w = weight.empty() ? 1.0 : weight[label];
      loss[at] = -static_cast<double>(logp[(i * s.c + label) * s.d + j]) * w;
      total += loss[at];
      weight_sum += w;
    }
  }
  if (reduction == "none") {
    KILN_ASSIGN_OR_RETURN(Tensor* out, ctx.AllocateOutput(0, dtype, s.out_dims));
    T* o = out->mutable_data<T>();
    for (size_t k = 0; k < loss.size(); ++k) o[k] = static_cast<T>(loss[k]);
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(Tensor* out, ctx.AllocateOutput(0, dtype, {}));
  double v = total;
  if (reduction == "mean") {
    v = weight_sum != 0 ? total / weight_sum : std::numeric_limits<double>::quiet_NaN();
  }
  *out->mutable_data<T>() = static_cast<T>(v);
  return Status::OK();
}

Status NllKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(LossShape s, CheckShapes(ctx, x, ctx.input(1)));
  return DispatchFloat(x.dtype(), [&]<typename T>() {
    return NllLoss<T>(ctx, x.data<T>(), s, ctx.input(1), x.dtype());
  });
}

Status SoftmaxCrossEntropyKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(LossShape s, CheckShapes(ctx, x, ctx.input(1)));
  return DispatchFloat(x.dtype(), [&]<typename T>() -> Status {
    // log_softmax over the class axis (1), computed in double.
    Tensor logp = Tensor::Empty(x.dtype(), x.dims());
    const T* in = x.data<T>();
    T* lp = logp.mutable_data<T>();
    for (int64_t i = 0; i < s.n; ++i) {
      for (int64_t j = 0; j < s.d; ++j) {
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t c = 0; c < s.c; ++c) {
          mx = std::max(mx, static_cast<double>(in[(i * s.c + c) * s.d + j]));
        }
        double sum = 0;
        for (int64_t c = 0; c < s.c; ++c) sum += std::exp(in[(i * s.c + c) * s.d + j] - mx);
        const double lse = mx + std::log(sum);
        for (int64_t c = 0; c < s.c; ++c) {
          const int64_t at = (i * s.c + c) * s.d + j;
          lp[at] = static_cast<T>(in[at] - lse);
        }
      }
    }
    KILN_RETURN_IF_ERROR(NllLoss<T>(ctx, lp, s, ctx.input(1), x.dtype()));
    if (ctx.num_outputs() > 1) ctx.SetOutput(1, std::move(logp));
    return Status::OK();
  });
}

Status InferLoss(InferContext& ctx) {
  const DataType dt = ctx.input_dtype(0);
  const Shape& x = ctx.input_shape(0);
  if (ctx.GetString("reduction") != "none") {
    ctx.SetOutput(0, dt, Shape::Scalar());
  } else if (x.rank_known() && x.rank() >= 2) {
    std::vector<int64_t> dims = {x.dim(0)};
    for (int k = 2; k < x.rank(); ++k) dims.push_back(x.dim(k));
    ctx.SetOutput(0, dt, Shape(dims));
  } else {
    ctx.SetOutput(0, dt, Shape());
  }
  if (ctx.num_outputs() > 1) ctx.SetOutput(1, dt, x);
  return Status::OK();
}

}  // namespace

void RegisterLossOps(OpRegistry& r) {
  MustRegister(r, OpSchema("NegativeLogLikelihoodLoss")
                      .Doc("-input[n, target, d...] * weight[target]; reduction none/sum/mean "
                           "(weighted), ignore_index.")
                      .Inputs(2, 3)
                      .InputTypes(0, FloatTypes())
                      .InputTypes(1, IndexTypes())
                      .InputTypes(2, FloatTypes())
                      .AttrDefault("reduction", "mean")
                      .AttrNoDefault("ignore_index", AttrType::kInt)
                      .PromoteHalfToFloat()
                      .Infer(InferLoss)
                      .Kernel(NllKernel));
  MustRegister(r, OpSchema("SoftmaxCrossEntropyLoss")
                      .Doc("NegativeLogLikelihoodLoss of log_softmax(scores, axis 1); optional "
                           "output log_prob.")
                      .Inputs(2, 3)
                      .Outputs(1, 2)
                      .InputTypes(0, FloatTypes())
                      .InputTypes(1, IndexTypes())
                      .InputTypes(2, FloatTypes())
                      .AttrDefault("reduction", "mean")
                      .AttrNoDefault("ignore_index", AttrType::kInt)
                      .PromoteHalfToFloat()
                      .Infer(InferLoss)
                      .Kernel(SoftmaxCrossEntropyKernel));
}

}  // namespace kiln
