// Op family: nn_norm — BatchNormalization (training_mode too), InstanceNormalization,
// LayerNormalization, GroupNormalization, MeanVarianceNormalization, LRN.
//
// Statistics (mean, variance) are accumulated in double with a two-pass variance; the
// normalized output is computed as x * a + b with per-channel (or per-row) a, b.
// BatchNormalization, InstanceNormalization and LRN take the kiln extension attribute
// data_format ("NCHW" default; "NHWC" = channel axis last, for any spatial rank).
#include <algorithm>
#include <cmath>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/base/shape_util.h"
#include "ops/nn_window.h"

namespace kiln {
namespace {

int64_t Product(const std::vector<int64_t>& dims, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end && i < dims.size(); ++i) p *= dims[i];
  return p;
}

bool OutputRequested(const KernelContext& ctx, int i) {
  return i < ctx.num_outputs() && !ctx.node().outputs[i].empty();
}

// Reads a per-channel parameter (any float dtype) as doubles, checking its element count.
StatusOr<std::vector<double>> ReadParam(const KernelContext& ctx, int input, const char* name,
                                        int64_t expected) {
  const Tensor& t = ctx.input(input);
  if (t.num_elements() != expected) {
    return ctx.Error(std::string(name) + " has shape " + DimsToString(t.dims()) + ", expected " +
                     std::to_string(expected) + " elements");
  }
  return ReadDoubles(t);
}

// Mean and 1/sqrt(var + eps) of n values `stride` apart starting at p (two-pass variance).
template <typename T>
std::pair<double, double> MeanInvStd(const T* p, int64_t n, int64_t stride, double eps) {
  double sum = 0;
  for (int64_t k = 0; k < n; ++k) sum += static_cast<double>(p[k * stride]);
  const double mean = n > 0 ? sum / static_cast<double>(n) : 0.0;
  double sq = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double d = static_cast<double>(p[k * stride]) - mean;
    sq += d * d;
  }
  const double var = n > 0 ? sq / static_cast<double>(n) : 0.0;
  return {mean, 1.0 / std::sqrt(var + eps)};
}

// y[i] = x[i] * a + b over n contiguous elements.
template <typename T>
void Affine(const T* x, int64_t n, double a, double b, T* y) {
  const T ta = static_cast<T>(a), tb = static_cast<T>(b);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * ta + tb;
}

Status RequireRank(const KernelContext& ctx, const Tensor& x, int min_rank) {
  if (x.rank() < min_rank) {
    return ctx.Error("input must have rank >= " + std::to_string(min_rank) + ", got " +
                     x.TypeString());
  }
  return Status::OK();
}

// ----------------------------------------------------------------------------- BatchNorm

// y = scale * (x - mean) / sqrt(var + eps) + B per channel. With `spatial`=0 (opsets 7-8) the
// parameters have shape dims[1:] and apply per element of a sample. training_mode=1 normalizes
// with the batch's mean and (population) variance and outputs the updated running statistics
// (input * momentum + batch * (1 - momentum)), as ONNX's reference does.
Status BatchNormKernel(KernelContext& ctx) {
  const bool training = ctx.GetInt("training_mode") != 0;
  if (OutputRequested(ctx, 3) || OutputRequested(ctx, 4)) {
    return ctx.UnimplementedError(
        "saved_mean/saved_var outputs (opset <= 9 training) are not supported");
  }
  const Tensor& x = ctx.input(0);
  KILN_RETURN_IF_ERROR(RequireRank(ctx, x, 2));
  KILN_ASSIGN_OR_RETURN(const bool nhwc, ChannelsLast(ctx));
  const bool spatial = ctx.GetInt("spatial") != 0;
  if (training && !spatial) return ctx.UnimplementedError("training_mode=1 with spatial=0");
  if (nhwc && !spatial && x.rank() > 2) {
    return ctx.UnimplementedError("spatial=0 (opset < 9) with data_format NHWC");
  }
  // NHWC: channels-last rows; `n` counts them and `inner` is 1.
  const int64_t n = nhwc ? Product(x.dims(), 0, x.rank() - 1) : x.dim(0);
  const int64_t channels =
      nhwc ? x.dims().back() : (spatial ? x.dim(1) : Product(x.dims(), 1, x.rank()));
  const int64_t inner = spatial && !nhwc ? Product(x.dims(), 2, x.rank()) : 1;
  KILN_ASSIGN_OR_RETURN(auto scale, ReadParam(ctx, 1, "scale", channels));
  KILN_ASSIGN_OR_RETURN(auto bias, ReadParam(ctx, 2, "B", channels));
  KILN_ASSIGN_OR_RETURN(auto mean, ReadParam(ctx, 3, "input_mean", channels));
  KILN_ASSIGN_OR_RETURN(auto var, ReadParam(ctx, 4, "input_var", channels));
  const double eps = ctx.GetFloat("epsilon");
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.dims()));
  if (training) {
    const std::vector<double> xs = ReadDoubles(x);
    const double count = static_cast<double>(n * inner);
    std::vector<double> bmean(channels, 0.0), bvar(channels, 0.0);
    for (int64_t s = 0; s < n; ++s) {
      for (int64_t c = 0; c < channels; ++c) {
        for (int64_t i = 0; i < inner; ++i) bmean[c] += xs[(s * channels + c) * inner + i];
      }
    }
    for (auto& m : bmean) m /= count;
    for (int64_t s = 0; s < n; ++s) {
      for (int64_t c = 0; c < channels; ++c) {
        for (int64_t i = 0; i < inner; ++i) {
          const double d = xs[(s * channels + c) * inner + i] - bmean[c];
          bvar[c] += d * d;
        }
      }
    }
    for (auto& v : bvar) v /= count;
    const double momentum = ctx.GetFloat("momentum");
    for (int o = 1; o <= 2; ++o) {
      if (!OutputRequested(ctx, o)) continue;
      const std::vector<double>& running = o == 1 ? mean : var;
      const std::vector<double>& batch = o == 1 ? bmean : bvar;
      std::vector<double> updated(channels);
      for (int64_t c = 0; c < channels; ++c) {
        updated[c] = running[c] * momentum + batch[c] * (1 - momentum);
      }
      Tensor t = Tensor::FromVector<double>(updated, ctx.input(2 + o).dims(), /*dims_given=*/true);
      KILN_ASSIGN_OR_RETURN(Tensor converted, ConvertTensor(t, ctx.input(2 + o).dtype()));
      ctx.SetOutput(o, std::move(converted));
    }
    mean = std::move(bmean);
    var = std::move(bvar);
  } else {
    // In inference mode the running statistics pass through unchanged.
    if (OutputRequested(ctx, 1)) ctx.SetOutput(1, ctx.input(3));
    if (OutputRequested(ctx, 2)) ctx.SetOutput(2, ctx.input(4));
  }
  return DispatchFloat(x.dtype(), [&]<typename T>() -> Status {
    const T* p = x.data<T>();
    T* q = y->mutable_data<T>();
    if (inner == 1) {  // channels-last rows (NHWC, rank 2, or spatial=0)
      std::vector<T> a(channels), b(channels);
      for (int64_t c = 0; c < channels; ++c) {
        const double ad = scale[c] / std::sqrt(var[c] + eps);
        a[c] = static_cast<T>(ad);
        b[c] = static_cast<T>(bias[c] - mean[c] * ad);
      }
      for (int64_t s = 0; s < n; ++s) {
        const T* __restrict xr = p + s * channels;
        T* __restrict yr = q + s * channels;
        for (int64_t c = 0; c < channels; ++c) yr[c] = xr[c] * a[c] + b[c];
      }
      return Status::OK();
    }
    for (int64_t c = 0; c < channels; ++c) {
      const double a = scale[c] / std::sqrt(var[c] + eps);
      const double b = bias[c] - mean[c] * a;
      for (int64_t s = 0; s < n; ++s) {
        const int64_t off = (s * channels + c) * inner;
        Affine(p + off, inner, a, b, q + off);
      }
    }
    return Status::OK();
  });
}

Status InferBatchNorm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(ChannelsLast(ctx).status());
  ctx.SetOutput(0, ctx.input_dtype(0), ctx.input_shape(0));
  ctx.SetOutput(1, ctx.input_dtype(3), ctx.input_shape(3));
  ctx.SetOutput(2, ctx.input_dtype(4), ctx.input_shape(4));
  return Status::OK();
}

// ----------------------------------------------------------------------------- InstanceNorm

Status InstanceNormKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_RETURN_IF_ERROR(RequireRank(ctx, x, 2));
  KILN_ASSIGN_OR_RETURN(const bool nhwc, ChannelsLast(ctx));
  const int64_t n = x.dim(0), channels = nhwc ? x.dims().back() : x.dim(1);
  const int64_t inner = nhwc ? Product(x.dims(), 1, x.rank() - 1) : Product(x.dims(), 2, x.rank());
  KILN_ASSIGN_OR_RETURN(auto scale, ReadParam(ctx, 1, "scale", channels));
  KILN_ASSIGN_OR_RETURN(auto bias, ReadParam(ctx, 2, "B", channels));
  const double eps = ctx.GetFloat("epsilon");
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.dims()));
  return DispatchFloat(x.dtype(), [&]<typename T>() -> Status {
    if (nhwc) {  // per sample: two passes over `inner` rows of `channels` values
      std::vector<double> sum(channels), sq(channels);
      std::vector<T> a(channels), b(channels);
      for (int64_t s = 0; s < n; ++s) {
        const T* p = x.data<T>() + s * inner * channels;
        T* q = y->mutable_data<T>() + s * inner * channels;
        std::fill(sum.begin(), sum.end(), 0.0);
        std::fill(sq.begin(), sq.end(), 0.0);
        for (int64_t i = 0; i < inner; ++i) {
          for (int64_t c = 0; c < channels; ++c) sum[c] += static_cast<double>(p[i * channels + c]);
        }
        for (double& v : sum) v = inner > 0 ? v / static_cast<double>(inner) : 0.0;  // mean
        for (int64_t i = 0; i < inner; ++i) {
          for (int64_t c = 0; c < channels; ++c) {
            const double dv = static_cast<double>(p[i * channels + c]) - sum[c];
            sq[c] += dv * dv;
          }
        }
        for (int64_t c = 0; c < channels; ++c) {
          const double var = inner > 0 ? sq[c] / static_cast<double>(inner) : 0.0;
          const double ad = scale[c] / std::sqrt(var + eps);
          a[c] = static_cast<T>(ad);
          b[c] = static_cast<T>(bias[c] - sum[c] * ad);
        }
        for (int64_t i = 0; i < inner; ++i) {
          for (int64_t c = 0; c < channels; ++c) {
            q[i * channels + c] = p[i * channels + c] * a[c] + b[c];
          }
        }
      }
      return Status::OK();
    }
    for (int64_t s = 0; s < n; ++s) {
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t off = (s * channels + c) * inner;
        const auto [mean, inv_std] = MeanInvStd(x.data<T>() + off, inner, 1, eps);
        const double a = scale[c] * inv_std;
        Affine(x.data<T>() + off, inner, a, bias[c] - mean * a, y->mutable_data<T>() + off);
      }
    }
    return Status::OK();
  });
}

// ----------------------------------------------------------------------------- GroupNorm

// Opset 18: scale and bias have one value per group; opset 21 made them per channel. Both
// are accepted (they coincide when num_groups == C).
Status GroupNormKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_RETURN_IF_ERROR(RequireRank(ctx, x, 2));
  const int64_t groups = ctx.GetInt("num_groups");
  const int64_t n = x.dim(0), channels = x.dim(1), inner = Product(x.dims(), 2, x.rank());
  if (groups <= 0 || channels % groups != 0) {
    return ctx.Error("num_groups " + std::to_string(groups) + " must be positive and divide " +
                     "the channel count " + std::to_string(channels));
  }
  const int64_t per_group = channels / groups;
  const int64_t params = ctx.input(1).num_elements() == channels ? channels : groups;
  KILN_ASSIGN_OR_RETURN(auto scale, ReadParam(ctx, 1, "scale", params));
  KILN_ASSIGN_OR_RETURN(auto bias, ReadParam(ctx, 2, "bias", params));
  const double eps = ctx.GetFloat("epsilon");
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.dims()));
  return DispatchFloat(x.dtype(), [&]<typename T>() -> Status {
    for (int64_t s = 0; s < n; ++s) {
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t goff = (s * channels + g * per_group) * inner;
        const auto [mean, inv_std] = MeanInvStd(x.data<T>() + goff, per_group * inner, 1, eps);
        for (int64_t c = g * per_group; c < (g + 1) * per_group; ++c) {
          const int64_t pi = params == channels ? c : g;
          const int64_t off = (s * channels + c) * inner;
          const double a = scale[pi] * inv_std;
          Affine(x.data<T>() + off, inner, a, bias[pi] - mean * a, y->mutable_data<T>() + off);
        }
      }
    }
    return Status::OK();
  });
}

// ----------------------------------------------------------------------------- LayerNorm

// Normalizes over dims[axis:]; Scale and B broadcast (unidirectionally) to dims[axis:].
// Optional outputs Mean and InvStdDev have shape dims[:axis] + [1] * (rank - axis) and the
// stash type (float32 by default). Half inputs are computed in float32 here (not through
// PromoteHalfToFloat, so the statistics keep their float32 type).
Status LayerNormKernel(KernelContext& ctx) {
  const DataType dtype = ctx.input(0).dtype();
  const DataType stash = static_cast<DataType>(ctx.GetInt("stash_type"));
  if (stash != DataType::kFloat32 && stash != DataType::kFloat64) {
    return ctx.UnimplementedError("stash_type " + std::to_string(ctx.GetInt("stash_type")) +
                                  " is not supported (float32 or float64)");
  }
  const DataType compute = dtype == DataType::kFloat64 ? dtype : DataType::kFloat32;
  KILN_ASSIGN_OR_RETURN(Tensor x, ConvertTensor(ctx.input(0), compute));
  KILN_RETURN_IF_ERROR(RequireRank(ctx, x, 1));
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.GetInt("axis"), x.rank(), ctx.node()));
  const std::vector<int64_t> norm_dims(x.dims().begin() + axis, x.dims().end());
  const int64_t outer = Product(x.dims(), 0, axis), inner = Product(norm_dims, 0, norm_dims.size());

  // Expands Scale / B to one value per normalized element.
  auto expand = [&](int input, const char* name, double fill) -> StatusOr<std::vector<double>> {
    std::vector<double> out(static_cast<size_t>(inner), fill);
    if (!ctx.has_input(input)) return out;
    const Tensor& p = ctx.input(input);
    auto b = BroadcastDims({norm_dims, p.dims()});
    if (p.rank() > static_cast<int>(norm_dims.size()) || !b.ok() || *b != norm_dims) {
      return ctx.Error(std::string(name) + " of shape " + DimsToString(p.dims()) +
                       " does not broadcast to the normalized shape " + DimsToString(norm_dims));
    }
    const std::vector<double> v = ReadDoubles(p);
    ForEachBroadcast(norm_dims, {BroadcastStrides(p.dims(), norm_dims)},
                     [&](int64_t i, const int64_t* off) { out[i] = v[off[0]]; });
    return out;
  };
  KILN_ASSIGN_OR_RETURN(std::vector<double> scale, expand(1, "Scale", 1.0));
  KILN_ASSIGN_OR_RETURN(std::vector<double> bias, expand(2, "B", 0.0));

  std::vector<int64_t> stat_dims(x.dims().begin(), x.dims().begin() + axis);
  stat_dims.resize(x.rank(), 1);
  Tensor y = Tensor::Empty(compute, x.dims());
  Tensor mean_t = Tensor::Empty(DataType::kFloat64, stat_dims);
  Tensor inv_t = Tensor::Empty(DataType::kFloat64, stat_dims);
  const double eps = ctx.GetFloat("epsilon");
  KILN_RETURN_IF_ERROR(DispatchFloat(compute, [&]<typename T>() -> Status {
    for (int64_t o = 0; o < outer; ++o) {
      const T* p = x.data<T>() + o * inner;
      T* q = y.mutable_data<T>() + o * inner;
      const auto [mean, inv_std] = MeanInvStd(p, inner, 1, eps);
      mean_t.mutable_data<double>()[o] = mean;
      inv_t.mutable_data<double>()[o] = inv_std;
      for (int64_t i = 0; i < inner; ++i) {
        q[i] = static_cast<T>((static_cast<double>(p[i]) - mean) * inv_std * scale[i] + bias[i]);
      }
    }
    return Status::OK();
  }));
  KILN_ASSIGN_OR_RETURN(Tensor y_out, ConvertTensor(y, dtype));
  ctx.SetOutput(0, y_out);
  if (OutputRequested(ctx, 1)) {
    KILN_ASSIGN_OR_RETURN(Tensor m, ConvertTensor(mean_t, stash));
    ctx.SetOutput(1, m);
  }
  if (OutputRequested(ctx, 2)) {
    KILN_ASSIGN_OR_RETURN(Tensor s, ConvertTensor(inv_t, stash));
    ctx.SetOutput(2, s);
  }
  return Status::OK();
}

Status InferLayerNorm(InferContext& ctx) {
  const Shape& in = ctx.input_shape(0);
  ctx.SetOutput(0, ctx.input_dtype(0), in);
  const DataType stash = static_cast<DataType>(ctx.GetInt("stash_type"));
  Shape stats = Shape::UnknownRank();
  if (in.rank_known()) {
    KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.GetInt("axis"), in.rank(), ctx.node()));
    std::vector<int64_t> dims(in.dims().begin(), in.dims().begin() + axis);
    dims.resize(in.rank(), 1);
    stats = Shape(dims);
  }
  ctx.SetOutput(1, stash, stats);
  ctx.SetOutput(2, stash, stats);
  return Status::OK();
}

// ----------------------------------------------------------------------------- MVN

// ONNX's function body: (X - mean) / (sqrt(var) + 1e-9), statistics over `axes`.
Status MvnKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int rank = x.rank();
  std::vector<int64_t> stat_dims = x.dims();
  int64_t count = 1;
  for (int64_t a : ctx.GetInts("axes")) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, rank, ctx.node()));
    if (rank == 0 || stat_dims[ax] == 1) continue;
    count *= stat_dims[ax];
    stat_dims[ax] = 1;
  }
  const std::vector<std::vector<int64_t>> strides = {BroadcastStrides(stat_dims, x.dims())};
  KILN_ASSIGN_OR_RETURN(int64_t n_stats, CheckedNumElements(stat_dims));
  std::vector<double> mean(n_stats, 0.0), sq(n_stats, 0.0);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.dims()));
  return DispatchFloat(x.dtype(), [&]<typename T>() -> Status {
    const T* p = x.data<T>();
    T* q = y->mutable_data<T>();
    ForEachBroadcast(x.dims(), strides,
                     [&](int64_t i, const int64_t* s) { mean[s[0]] += static_cast<double>(p[i]); });
    for (double& m : mean) m /= static_cast<double>(count);
    ForEachBroadcast(x.dims(), strides, [&](int64_t i, const int64_t* s) {
      const double d = static_cast<double>(p[i]) - mean[s[0]];
      sq[s[0]] += d * d;
    });
    for (double& v : sq) v = 1.0 / (std::sqrt(v / static_cast<double>(count)) + 1e-9);
    ForEachBroadcast(x.dims(), strides, [&](int64_t i, const int64_t* s) {
      q[i] = static_cast<T>((static_cast<double>(p[i]) - mean[s[0]]) * sq[s[0]]);
    });
    return Status::OK();
  });
}

// ----------------------------------------------------------------------------- LRN

// y = x / (bias + alpha / size * sum of x^2 over channels [c - (size-1)/2, c + size/2])^beta.
Status LrnKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_RETURN_IF_ERROR(RequireRank(ctx, x, 2));
  const int64_t size = ctx.GetInt("size");
  if (size <= 0) return ctx.Error("size must be positive, got " + std::to_string(size));
  const double alpha = ctx.GetFloat("alpha"), beta = ctx.GetFloat("beta");
  const double bias = ctx.GetFloat("bias");
  KILN_ASSIGN_OR_RETURN(const bool nhwc, ChannelsLast(ctx));
  const int64_t n = x.dim(0), channels = x.dim(1), inner = Product(x.dims(), 2, x.rank());
  const int64_t before = (size - 1) / 2, after = size - 1 - before;
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.dims()));
  return DispatchFloat(x.dtype(), [&]<typename T>() -> Status {
    if (nhwc) {  // rows of `channels` contiguous values; the window runs along each row
      const int64_t ch = x.dims().back(), rows = ch == 0 ? 0 : x.num_elements() / ch;
      std::vector<double> sq(ch);
      for (int64_t i = 0; i < rows; ++i) {
        const T* p = x.data<T>() + i * ch;
        T* q = y->mutable_data<T>() + i * ch;
        for (int64_t c = 0; c < ch; ++c) sq[c] = static_cast<double>(p[c]) * p[c];
        for (int64_t c = 0; c < ch; ++c) {
          double sum = 0;
          for (int64_t k = std::max<int64_t>(0, c - before); k <= std::min(ch - 1, c + after);
               ++k) {
            sum += sq[k];
          }
          const double d = std::pow(bias + alpha / static_cast<double>(size) * sum, beta);
          q[c] = static_cast<T>(static_cast<double>(p[c]) / d);
        }
      }
      return Status::OK();
    }
    std::vector<double> sum(static_cast<size_t>(inner));
    for (int64_t s = 0; s < n; ++s) {
      const T* p = x.data<T>() + s * channels * inner;
      T* q = y->mutable_data<T>() + s * channels * inner;
      for (int64_t c = 0; c < channels; ++c) {
        std::fill(sum.begin(), sum.end(), 0.0);
        const int64_t lo = std::max<int64_t>(0, c - before);
        const int64_t hi = std::min(channels - 1, c + after);
        for (int64_t k = lo; k <= hi; ++k) {
          for (int64_t i = 0; i < inner; ++i) {
            const double v = static_cast<double>(p[k * inner + i]);
            sum[i] += v * v;
          }
        }
        for (int64_t i = 0; i < inner; ++i) {
          const double d = std::pow(bias + alpha / static_cast<double>(size) * sum[i], beta);
          q[c * inner + i] = static_cast<T>(static_cast<double>(p[c * inner + i]) / d);
        }
      }
    }
    return Status::OK();
  });
}

// Same type and shape as input 0, after checking data_format.
Status InferLayoutSameAsInput0(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(ChannelsLast(ctx).status());
  return InferSameAsInput0(ctx);
}

}  // namespace

void RegisterNormOps(OpRegistry& r) {
  MustRegister(r, OpSchema("BatchNormalization")
                      .Doc("Batch normalization with running statistics; training_mode=1 uses "
                           "the batch statistics and outputs the updated running mean/var.")
                      .Inputs(5, 5)
                      .Outputs(1, 5)
                      .AttrDefault("data_format", "NCHW")  // kiln: "NHWC" = channels-last
                      .AttrDefault("epsilon", 1e-5f)
                      .AttrDefault("momentum", 0.9f)
                      .AttrDefault("training_mode", int64_t{0})
                      .AttrDefault("spatial", int64_t{1})
                      .InputTypes(0, FloatTypes())
                      .InputTypes(1, FloatTypes())
                      .InputTypes(2, FloatTypes())
                      .InputTypes(3, FloatTypes())
                      .InputTypes(4, FloatTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferBatchNorm)
                      .Kernel(BatchNormKernel));
  MustRegister(r, OpSchema("InstanceNormalization")
                      .Doc("Per-(sample, channel) normalization over the spatial dims, then "
                           "scale and B per channel.")
                      .Inputs(3, 3)
                      .Outputs(1, 1)
                      .AttrDefault("data_format", "NCHW")  // kiln: "NHWC" = channels-last
                      .AttrDefault("epsilon", 1e-5f)
                      .InputTypes(0, FloatTypes())
                      .InputTypes(1, FloatTypes())
                      .InputTypes(2, FloatTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferLayoutSameAsInput0)
                      .Kernel(InstanceNormKernel));
  MustRegister(r, OpSchema("LayerNormalization")
                      .Doc("Normalization over dims[axis:], then Scale and optional B; optional "
                           "outputs Mean and InvStdDev in the stash type.")
                      .Inputs(2, 3)
                      .Outputs(1, 3)
                      .AttrDefault("axis", int64_t{-1})
                      .AttrDefault("epsilon", 1e-5f)
                      .AttrDefault("stash_type", int64_t{1})
                      .InputTypes(0, FloatTypes())
                      .InputTypes(1, FloatTypes())
                      .InputTypes(2, FloatTypes())
                      .Infer(InferLayerNorm)
                      .Kernel(LayerNormKernel));
  MustRegister(r, OpSchema("GroupNormalization")
                      .Doc("Normalization over groups of C / num_groups channels and the spatial "
                           "dims; scale and bias per group (opset 18) or per channel (opset 21).")
                      .Inputs(3, 3)
                      .Outputs(1, 1)
                      .AttrDefault("epsilon", 1e-5f)
                      .AttrNoDefault("num_groups", AttrType::kInt, /*required=*/true)
                      .AttrDefault("stash_type", int64_t{1})
                      .InputTypes(0, FloatTypes())
                      .InputTypes(1, FloatTypes())
                      .InputTypes(2, FloatTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferSameAsInput0)
                      .Kernel(GroupNormKernel));
  MustRegister(r, OpSchema("MeanVarianceNormalization")
                      .Doc("(X - mean) / (sqrt(variance) + 1e-9), statistics over `axes`.")
                      .Inputs(1, 1)
                      .Outputs(1, 1)
                      .AttrDefault("axes", std::vector<int64_t>{0, 2, 3})
                      .InputTypes(0, FloatTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferSameAsInput0)
                      .Kernel(MvnKernel));
  MustRegister(r, OpSchema("LRN")
                      .Doc("Local response normalization across `size` neighbouring channels.")
                      .Inputs(1, 1)
                      .Outputs(1, 1)
                      .AttrDefault("alpha", 1e-4f)
                      .AttrDefault("beta", 0.75f)
                      .AttrDefault("bias", 1.0f)
                      .AttrDefault("data_format", "NCHW")  // kiln: "NHWC" = channels-last
                      .AttrNoDefault("size", AttrType::kInt, /*required=*/true)
                      .InputTypes(0, FloatTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferLayoutSameAsInput0)
                      .Kernel(LrnKernel));
}

}  // namespace kiln
