// Op family: nn_pool — MaxPool (with Indices), AveragePool, LpPool, GlobalAveragePool,
// GlobalMaxPool, GlobalLpPool over any number of spatial axes; RoiAlign (NCHW).
//
// A pool precomputes, per spatial axis and output index, the input indices its window covers
// (padding and dilation applied), then walks the windows of every (n, c) plane.
// float16/bfloat16 are computed in float32.
//
// data_format="NHWC" (kiln extension, channels-last for any spatial rank) walks each output
// position once, vectorized over channels. MaxPool's Indices are then laid out like Y (NHWC) but
// hold the values ONNX gives for the equivalent NCHW input: ((n * C + c) * in_sp + spatial),
// spatial row-major or (storage_order=1) column-major, i.e. transpose(NCHW Indices).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/nn_window.h"

namespace kiln {
namespace {

enum class PoolKind { kMax, kAverage, kLp };

// Per axis d and output index o: the in-range input indices of the window, and (for
// count_include_pad) how many window positions fall inside the padded input.
struct PoolWindows {
  std::vector<std::vector<std::vector<int64_t>>> taps;  // [d][o] -> input indices
  std::vector<std::vector<int64_t>> padded_count;       // [d][o]
};

PoolWindows BuildWindows(const std::vector<int64_t>& in, const WindowGeometry& g) {
  PoolWindows w;
  const int r = g.rank();
  w.taps.resize(r);
  w.padded_count.resize(r);
  for (int d = 0; d < r; ++d) {
    w.taps[d].resize(g.out[d]);
    w.padded_count[d].resize(g.out[d]);
    for (int64_t o = 0; o < g.out[d]; ++o) {
      const int64_t start = o * g.strides[d] - g.pads_begin[d];
      for (int64_t k = 0; k < g.kernel[d]; ++k) {
        const int64_t x = start + k * g.dilations[d];
        if (x >= -g.pads_begin[d] && x < in[d] + g.pads_end[d]) ++w.padded_count[d][o];
        if (x >= 0 && x < in[d]) w.taps[d][o].push_back(x);
      }
    }
  }
  return w;
}

struct PoolArgs {
  PoolKind kind;
  bool count_include_pad = false;
  int64_t p = 2;
  bool column_major_indices = false;
};

template <typename T>
void PoolPlanes(const PoolArgs& a, const Tensor& xt, const WindowGeometry& g, T* y,
                int64_t* indices) {
  const std::vector<int64_t> in(xt.dims().begin() + 2, xt.dims().end());
  const int r = g.rank();
  const int64_t planes = xt.dim(0) * xt.dim(1);
  const int64_t in_sp = ProductOrUnknown(in), out_sp = ProductOrUnknown(g.out);
  std::vector<int64_t> strides(r, 1), col_strides(r, 1);
  for (int d = r - 2; d >= 0; --d) strides[d] = strides[d + 1] * in[d + 1];
  for (int d = 1; d < r; ++d) col_strides[d] = col_strides[d - 1] * in[d - 1];
  const PoolWindows w = BuildWindows(in, g);
  const T* x = xt.data<T>();
  const std::vector<int64_t> outer(g.out.begin(), g.out.end() - 1);
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * in_sp;
    int64_t out_i = pl * out_sp;
    ForEachIndex(outer, [&](const std::vector<int64_t>& o) {
      // Offsets of the outer window positions (all axes but the last).
      std::vector<int64_t> offs = {0}, col_offs = {0};
      int64_t padded = 1;
      for (int d = 0; d < r - 1; ++d) {
        std::vector<int64_t> next, next_col;
        for (size_t i = 0; i < offs.size(); ++i) {
          for (int64_t t : w.taps[d][o[d]]) {
            next.push_back(offs[i] + t * strides[d]);
            next_col.push_back(col_offs[i] + t * col_strides[d]);
          }
        }
        offs.swap(next);
        col_offs.swap(next_col);
        padded *= w.padded_count[d][o[d]];
      }
      for (int64_t ol = 0; ol < g.out[r - 1]; ++ol, ++out_i) {
        const std::vector<int64_t>& last = w.taps[r - 1][ol];
        if (a.kind == PoolKind::kMax) {
          T best = std::numeric_limits<T>::lowest();
          int64_t best_at = -1;
          for (size_t i = 0; i < offs.size(); ++i) {
            for (int64_t t : last) {
              const T v = xp[offs[i] + t];
              if (v > best || best_at < 0) {
                best = v;
                best_at =
                    a.column_major_indices ? col_offs[i] + t * col_strides[r - 1] : offs[i] + t;
              }
            }
          }
          y[out_i] = best;
          if (indices != nullptr) indices[out_i] = pl * in_sp + std::max<int64_t>(best_at, 0);
        } else {
          double sum = 0;
          for (int64_t off : offs) {
            for (int64_t t : last) {
              const double v = static_cast<double>(xp[off + t]);
              sum += a.kind == PoolKind::kAverage ? v
                     : a.p == 1                   ? std::fabs(v)
                     : a.p == 2                   ? v * v
                                                  : std::pow(std::fabs(v), double(a.p));
            }
          }
          if (a.kind == PoolKind::kLp) {
            y[out_i] = static_cast<T>(a.p == 1   ? sum
                                      : a.p == 2 ? std::sqrt(sum)
                                                 : std::pow(sum, 1.0 / double(a.p)));
          } else {
            const int64_t n = a.count_include_pad ? padded * w.padded_count[r - 1][ol]
                                                  : static_cast<int64_t>(offs.size() * last.size());
            y[out_i] = n > 0 ? static_cast<T>(sum / double(n)) : T(0);
          }
        }
      }
    });
  }
}

// Channels-last PoolPlanes: x [N, in..., C], y (and indices) [N, out..., C].
template <typename T>
void PoolChannelsLast(const PoolArgs& a, const Tensor& xt, const WindowGeometry& g, T* y,
                      int64_t* indices) {
  const std::vector<int64_t>& xd = xt.dims();
  const int r = g.rank();
  const int64_t C = xd.back();
  const std::vector<int64_t> in(xd.begin() + 1, xd.end() - 1);
  const int64_t in_sp = ProductOrUnknown(in), out_sp = ProductOrUnknown(g.out);
  std::vector<int64_t> strides(r, 1), col_strides(r, 1);
  for (int d = r - 2; d >= 0; --d) strides[d] = strides[d + 1] * in[d + 1];
  for (int d = 1; d < r; ++d) col_strides[d] = col_strides[d - 1] * in[d - 1];
  const PoolWindows w = BuildWindows(in, g);
  std::vector<int64_t> offs, idx, next, next_idx;  // in-range taps: flat offset, Indices value
  std::vector<double> acc(C);
  std::vector<T> best(C);
  std::vector<int64_t> arg(C);
  for (int64_t n = 0; n < xd[0]; ++n) {
    const T* xn = xt.data<T>() + n * in_sp * C;
    int64_t out_i = n * out_sp;
    ForEachIndex(g.out, [&](const std::vector<int64_t>& o) {
      offs.assign(1, 0);
      idx.assign(1, 0);
      int64_t padded = 1;
      for (int d = 0; d < r; ++d) {
        next.clear();
        next_idx.clear();
        for (size_t i = 0; i < offs.size(); ++i) {
          for (int64_t t : w.taps[d][o[d]]) {
            next.push_back(offs[i] + t * strides[d]);
            next_idx.push_back(idx[i] + t * (a.column_major_indices ? col_strides[d] : strides[d]));
          }
        }
        offs.swap(next);
        idx.swap(next_idx);
        padded *= w.padded_count[d][o[d]];
      }
      T* __restrict yp = y + out_i * C;
      if (a.kind == PoolKind::kMax) {
        if (offs.empty()) {
          std::fill(best.begin(), best.end(), std::numeric_limits<T>::lowest());
          std::fill(arg.begin(), arg.end(), 0);
        } else {
          std::copy(xn + offs[0] * C, xn + (offs[0] + 1) * C, best.begin());
          std::fill(arg.begin(), arg.end(), idx[0]);
        }
        for (size_t i = 1; i < offs.size(); ++i) {
          const T* __restrict xs = xn + offs[i] * C;
          if (indices == nullptr) {
            for (int64_t c = 0; c < C; ++c) best[c] = xs[c] > best[c] ? xs[c] : best[c];
            continue;
          }
          for (int64_t c = 0; c < C; ++c) {
            if (xs[c] > best[c]) {
              best[c] = xs[c];
              arg[c] = idx[i];
            }
          }
        }
        std::copy(best.begin(), best.end(), yp);
        if (indices != nullptr) {
          for (int64_t c = 0; c < C; ++c) indices[out_i * C + c] = (n * C + c) * in_sp + arg[c];
        }
      } else {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t off : offs) {
          const T* __restrict xs = xn + off * C;
          for (int64_t c = 0; c < C; ++c) {
            const double v = static_cast<double>(xs[c]);
            acc[c] += a.kind == PoolKind::kAverage ? v
                      : a.p == 1                   ? std::fabs(v)
                      : a.p == 2                   ? v * v
                                                   : std::pow(std::fabs(v), double(a.p));
          }
        }
        const int64_t cnt = a.count_include_pad ? padded : static_cast<int64_t>(offs.size());
        for (int64_t c = 0; c < C; ++c) {
          if (a.kind == PoolKind::kLp) {
            yp[c] = static_cast<T>(a.p == 1   ? acc[c]
                                   : a.p == 2 ? std::sqrt(acc[c])
                                              : std::pow(acc[c], 1.0 / double(a.p)));
          } else {
            yp[c] = cnt > 0 ? static_cast<T>(acc[c] / double(cnt)) : T(0);
          }
        }
      }
      ++out_i;
    });
  }
}

// The output dims [N, C, out...] of a pool on `xs`; spatial dims unknown where `xs`'s are.
template <typename Ctx>
StatusOr<WindowGeometry> PoolGeometry(const Ctx& ctx, const std::vector<int64_t>& x_dims) {
  if (x_dims.size() < 3) return ctx.Error("input must have rank >= 3 (N, C, spatial...)");
  const std::vector<int64_t> in(x_dims.begin() + 2, x_dims.end());
  const std::vector<int64_t> kernel = ctx.GetInts("kernel_shape");
  return ComputeWindowGeometry(ctx, in, kernel, ctx.GetInt("ceil_mode") != 0);
}

// [N, C, rest...] in the node's layout: channels-first dims are permuted when channels_last.
std::vector<int64_t> LayoutDims(int64_t n, int64_t c, const std::vector<int64_t>& rest,
                                bool channels_last) {
  std::vector<int64_t> dims = {n, c};
  dims.insert(dims.end(), rest.begin(), rest.end());
  return channels_last ? ToChannelsLast(dims) : dims;
}

Status InferPool(InferContext& ctx) {
  const Shape& xs = ctx.input_shape(0);
  const DataType dt = ctx.input_dtype(0);
  KILN_ASSIGN_OR_RETURN(const bool nhwc, ChannelsLast(ctx));
  if (!xs.rank_known()) {
    ctx.SetOutput(0, dt, Shape::UnknownRank());
    if (ctx.num_outputs() > 1) ctx.SetOutput(1, DataType::kInt64, Shape::UnknownRank());
    return Status::OK();
  }
  const std::vector<int64_t> xd = nhwc ? ToChannelsFirst(xs.dims()) : xs.dims();
  KILN_ASSIGN_OR_RETURN(WindowGeometry g, PoolGeometry(ctx, xd));
  const std::vector<int64_t> dims = LayoutDims(xd[0], xd[1], g.out, nhwc);
  ctx.SetOutput(0, dt, Shape(dims));
  if (ctx.num_outputs() > 1) ctx.SetOutput(1, DataType::kInt64, Shape(dims));
  return Status::OK();
}

Status PoolKernel(KernelContext& ctx, PoolArgs args) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(const bool nhwc, ChannelsLast(ctx));
  const std::vector<int64_t> xd = nhwc ? ToChannelsFirst(x.dims()) : x.dims();
  KILN_ASSIGN_OR_RETURN(WindowGeometry g, PoolGeometry(ctx, xd));
  const std::vector<int64_t> dims = LayoutDims(xd[0], xd[1], g.out, nhwc);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), dims));
  int64_t* indices = nullptr;
  if (ctx.num_outputs() > 1 && !ctx.node().outputs[1].empty()) {
    KILN_ASSIGN_OR_RETURN(Tensor * it, ctx.AllocateOutput(1, DataType::kInt64, dims));
    indices = it->mutable_data<int64_t>();
  }
  if (y->num_elements() == 0) return Status::OK();
  if (args.kind == PoolKind::kLp && args.p <= 0) return ctx.Error("p must be positive");
  args.column_major_indices = ctx.GetInt("storage_order") != 0;
  auto run = [&]<typename T>() -> Status {
    if (nhwc) {
      PoolChannelsLast<T>(args, x, g, y->mutable_data<T>(), indices);
    } else {
      PoolPlanes<T>(args, x, g, y->mutable_data<T>(), indices);
    }
    return Status::OK();
  };
  if (args.kind == PoolKind::kMax) {
    switch (x.dtype()) {
      case DataType::kInt8:
        return run.template operator()<int8_t>();
      case DataType::kUInt8:
        return run.template operator()<uint8_t>();
      default:
        break;
    }
  }
  return DispatchFloat(x.dtype(), run);
}

// Global pools: one window covering all spatial axes of each (n, c) plane.
Status GlobalPoolKernel(KernelContext& ctx, PoolKind kind) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3) return ctx.Error("input must have rank >= 3, got " + x.TypeString());
  KILN_ASSIGN_OR_RETURN(const bool nhwc, ChannelsLast(ctx));
  const int64_t channels = nhwc ? x.dims().back() : x.dim(1);
  const std::vector<int64_t> dims =
      LayoutDims(x.dim(0), channels, std::vector<int64_t>(x.rank() - 2, 1), nhwc);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), dims));
  const int64_t planes = x.dim(0) * channels;
  const int64_t sp = planes == 0 ? 0 : x.num_elements() / planes;
  const double p = kind == PoolKind::kLp ? static_cast<double>(ctx.GetInt("p")) : 0.0;
  if (kind == PoolKind::kLp && p <= 0) return ctx.Error("p must be positive");
  return DispatchFloat(x.dtype(), [&]<typename T>() -> Status {
    const T* xp = x.data<T>();
    T* yp = y->mutable_data<T>();
    if (nhwc) {  // per image: reduce sp rows of `channels` values
      std::vector<double> acc(channels);
      for (int64_t n = 0; n < x.dim(0) && sp > 0; ++n) {
        const T* xn = xp + n * sp * channels;
        T* __restrict yn = yp + n * channels;
        if (kind == PoolKind::kMax) std::copy(xn, xn + channels, yn);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t i = 0; i < sp; ++i) {
          const T* __restrict v = xn + i * channels;
          for (int64_t c = 0; c < channels; ++c) {
            if (kind == PoolKind::kMax) {
              yn[c] = v[c] > yn[c] ? v[c] : yn[c];
            } else {
              acc[c] +=
                  kind == PoolKind::kAverage ? double(v[c]) : std::pow(std::fabs(double(v[c])), p);
            }
          }
        }
        if (kind == PoolKind::kMax) continue;
        for (int64_t c = 0; c < channels; ++c) {
          yn[c] = static_cast<T>(kind == PoolKind::kAverage ? acc[c] / double(sp)
                                                            : std::pow(acc[c], 1.0 / p));
        }
      }
      return Status::OK();
    }
    for (int64_t pl = 0; pl < planes; ++pl) {
      const T* v = xp + pl * sp;
      if (kind == PoolKind::kMax) {
        T best = sp > 0 ? v[0] : T(0);
        for (int64_t i = 1; i < sp; ++i) best = v[i] > best ? v[i] : best;
        yp[pl] = best;
      } else {
        double sum = 0;
        for (int64_t i = 0; i < sp; ++i) {
          sum += kind == PoolKind::kAverage ? double(v[i]) : std::pow(std::fabs(double(v[i])), p);
        }
        yp[pl] = static_cast<T>(kind == PoolKind::kAverage ? (sp > 0 ? sum / double(sp) : 0.0)
                                                           : std::pow(sum, 1.0 / p));
      }
    }
    return Status::OK();
  });
}

Status InferGlobalPool(InferContext& ctx) {
  const Shape& xs = ctx.input_shape(0);
  KILN_ASSIGN_OR_RETURN(const bool nhwc, ChannelsLast(ctx));
  if (!xs.rank_known()) {
    ctx.SetOutput(0, ctx.input_dtype(0), Shape::UnknownRank());
    return Status::OK();
  }
  if (xs.rank() < 3) return ctx.Error("input must have rank >= 3");
  const std::vector<int64_t> dims = LayoutDims(xs.dim(0), nhwc ? xs.dims().back() : xs.dim(1),
                                               std::vector<int64_t>(xs.rank() - 2, 1), nhwc);
  ctx.SetOutput(0, ctx.input_dtype(0), Shape(dims));
  return Status::OK();
}

OpSchema& PoolAttrs(OpSchema& s) {
  return s.AttrDefault("auto_pad", "NOTSET")
      .AttrDefault("ceil_mode", int64_t{0})
      .AttrDefault("data_format", "NCHW")  // kiln extension: "NHWC" = channels-last
      .AttrNoDefault("dilations", AttrType::kInts)
      .AttrNoDefault("kernel_shape", AttrType::kInts, /*required=*/true)
      .AttrNoDefault("pads", AttrType::kInts)
      .AttrNoDefault("strides", AttrType::kInts)
      .Inputs(1, 1)
      .PromoteHalfToFloat()
      .Infer(InferPool);
}

// ------------------------------------------------------------------------------ RoiAlign

// ONNX RoiAlign (10, 16) as ONNX Runtime computes it: each output bin averages (or, mode=max,
// takes the largest weighted corner of) bilinear samples on a grid of sampling_ratio (or
// ceil(roi size / output size)) points per bin. coordinate_transformation_mode half_pixel
// shifts the ROI by -0.5 pixel; output_half_pixel (opset 10's behaviour) does not and makes
// ROIs at least 1 pixel.
Status RoiAlignKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& rois = ctx.input(1);
  const Tensor& batch_idx = ctx.input(2);
  if (x.rank() != 4) return ctx.Error("X must be [N, C, H, W], got " + x.TypeString());
  if (rois.rank() != 2 || rois.dim(1) != 4) return ctx.Error("rois must be [num_rois, 4]");
  const int64_t num_rois = rois.dim(0);
  if (batch_idx.num_elements() != num_rois) {
    return ctx.Error("batch_indices must have one entry per ROI");
  }
  const int64_t n = x.dim(0), channels = x.dim(1), height = x.dim(2), width = x.dim(3);
  const int64_t oh = ctx.GetInt("output_height"), ow = ctx.GetInt("output_width");
  const int64_t sampling = ctx.GetInt("sampling_ratio");
  if (oh <= 0 || ow <= 0 || sampling < 0) {
    return ctx.Error("output_height/output_width must be positive, sampling_ratio >= 0");
  }
  const double scale = ctx.GetFloat("spatial_scale");
  const std::string mode = ctx.GetString("mode");
  if (mode != "avg" && mode != "max") return ctx.Error("mode must be avg or max");
  std::string ctm = ctx.HasAttr("coordinate_transformation_mode")
                        ? ctx.GetString("coordinate_transformation_mode")
                        : (ctx.opset() >= 16 ? "half_pixel" : "output_half_pixel");
  if (ctm != "half_pixel" && ctm != "output_half_pixel") {
    return ctx.Error("coordinate_transformation_mode must be half_pixel or output_half_pixel");
  }
  const bool half_pixel = ctm == "half_pixel";
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> batches, ReadInt64s(batch_idx));
  const std::vector<double> r = ReadDoubles(rois);
  const std::vector<double> xs = ReadDoubles(x);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), {num_rois, channels, oh, ow}));
  std::vector<double> out(static_cast<size_t>(num_rois * channels * oh * ow));
  const double offset = half_pixel ? 0.5 : 0.0;
  for (int64_t k = 0; k < num_rois; ++k) {
    const int64_t b = batches[k];
    if (b < 0 || b >= n) return ctx.Error("batch index " + std::to_string(b) + " out of range");
    for (int j = 0; j < 4; ++j) {
      if (!std::isfinite(r[k * 4 + j] * scale)) {
        return ctx.Error("ROI " + std::to_string(k) + " has a non-finite coordinate");
      }
    }
    const double x0 = r[k * 4] * scale - offset, y0 = r[k * 4 + 1] * scale - offset;
    const double x1 = r[k * 4 + 2] * scale - offset, y1 = r[k * 4 + 3] * scale - offset;
    double roi_w = x1 - x0, roi_h = y1 - y0;
    if (!half_pixel) {
      roi_w = std::max(roi_w, 1.0);
      roi_h = std::max(roi_h, 1.0);
    }
    const double bin_h = roi_h / static_cast<double>(oh), bin_w = roi_w / static_cast<double>(ow);
    // Adaptive sampling takes ceil(bin size) points per bin; a bin of more than 4096 pixels
    // per side (a corrupt ROI) is refused rather than sampled for minutes.
    const double adaptive_h = std::ceil(roi_h / oh), adaptive_w = std::ceil(roi_w / ow);
    if (sampling == 0 && (adaptive_h > 4096 || adaptive_w > 4096)) {
      return ctx.Error("ROI " + std::to_string(k) + " is too large for adaptive sampling");
    }
    const int64_t grid_h = sampling > 0 ? sampling : static_cast<int64_t>(std::max(adaptive_h, 0.0));
    const int64_t grid_w = sampling > 0 ? sampling : static_cast<int64_t>(std::max(adaptive_w, 0.0));
    const double count = static_cast<double>(std::max<int64_t>(grid_h * grid_w, 1));
    for (int64_t c = 0; c < channels; ++c) {
      const double* plane = xs.data() + (b * channels + c) * height * width;
      for (int64_t ph = 0; ph < oh; ++ph) {
        for (int64_t pw = 0; pw < ow; ++pw) {
          double acc = 0;
          bool first = true;
          for (int64_t iy = 0; iy < grid_h; ++iy) {
            double yy = y0 + ph * bin_h + (iy + 0.5) * bin_h / static_cast<double>(grid_h);
            for (int64_t ix = 0; ix < grid_w; ++ix) {
              double xx = x0 + pw * bin_w + (ix + 0.5) * bin_w / static_cast<double>(grid_w);
              double v = 0;
              if (!(yy < -1.0 || yy > height || xx < -1.0 || xx > width)) {
                double sy = std::max(yy, 0.0), sx = std::max(xx, 0.0);
                int64_t ylo = static_cast<int64_t>(sy), xlo = static_cast<int64_t>(sx), yhi, xhi;
                if (ylo >= height - 1) {
                  yhi = ylo = height - 1;
                  sy = static_cast<double>(ylo);
                } else {
                  yhi = ylo + 1;
                }
                if (xlo >= width - 1) {
                  xhi = xlo = width - 1;
                  sx = static_cast<double>(xlo);
                } else {
                  xhi = xlo + 1;
                }
                const double ly = sy - ylo, lx = sx - xlo, hy = 1 - ly, hx = 1 - lx;
                const double c1 = hy * hx * plane[ylo * width + xlo];
                const double c2 = hy * lx * plane[ylo * width + xhi];
                const double c3 = ly * hx * plane[yhi * width + xlo];
                const double c4 = ly * lx * plane[yhi * width + xhi];
                v = mode == "avg" ? c1 + c2 + c3 + c4 : std::max({c1, c2, c3, c4});
              }
              if (mode == "avg") {
                acc += v;
              } else {
                acc = first ? v : std::max(acc, v);
              }
              first = false;
            }
          }
          out[((k * channels + c) * oh + ph) * ow + pw] = mode == "avg" ? acc / count : acc;
        }
      }
    }
  }
  return DispatchFloat(x.dtype(), [&]<typename T>() {
    T* q = y->mutable_data<T>();
    for (size_t i = 0; i < out.size(); ++i) q[i] = static_cast<T>(out[i]);
    return Status::OK();
  });
}

}  // namespace

void RegisterPoolOps(OpRegistry& r) {
  MustRegister(r, OpSchema("RoiAlign")
                      .Doc("Bilinear ROI pooling of NCHW X over rois [R, 4] (x1, y1, x2, y2) "
                           "with batch_indices [R]; avg or max; half_pixel / output_half_pixel.")
                      .Inputs(3, 3)
                      .InputTypes(0, FloatTypes())
                      .InputTypes(1, FloatTypes())
                      .InputTypes(2, IndexTypes())
                      .AttrNoDefault("coordinate_transformation_mode", AttrType::kString)
                      .AttrDefault("mode", "avg")
                      .AttrDefault("output_height", int64_t{1})
                      .AttrDefault("output_width", int64_t{1})
                      .AttrDefault("sampling_ratio", int64_t{0})
                      .AttrDefault("spatial_scale", 1.0f)
                      .PromoteHalfToFloat()
                      .Infer([](InferContext& ctx) {
                        const Shape& xs = ctx.input_shape(0);
                        const Shape& rs = ctx.input_shape(1);
                        const int64_t rois = rs.rank_known() && rs.rank() == 2 ? rs.dim(0)
                                                                               : Shape::kUnknownDim;
                        const int64_t c = xs.rank_known() && xs.rank() == 4 ? xs.dim(1)
                                                                            : Shape::kUnknownDim;
                        ctx.SetOutput(0, ctx.input_dtype(0),
                                      Shape({rois, c, ctx.GetInt("output_height"),
                                             ctx.GetInt("output_width")}));
                        return Status::OK();
                      })
                      .Kernel(RoiAlignKernel));
  const TypeList kFloat = FloatTypes();
  TypeList max_types = kFloat;
  max_types.push_back(DataType::kInt8);
  max_types.push_back(DataType::kUInt8);
  {
    OpSchema s("MaxPool");
    PoolAttrs(s)
        .Doc("Max over sliding windows; optional Indices (flat, row- or column-major).")
        .AttrDefault("storage_order", int64_t{0})
        .Outputs(1, 2)
        .InputTypes(0, max_types)
        .Kernel([](KernelContext& ctx) { return PoolKernel(ctx, {PoolKind::kMax}); });
    MustRegister(r, std::move(s));
  }
  {
    OpSchema s("AveragePool");
    PoolAttrs(s)
        .Doc("Mean over sliding windows; count_include_pad counts padded positions.")
        .AttrDefault("count_include_pad", int64_t{0})
        .Outputs(1, 1)
        .InputTypes(0, kFloat)
        .Kernel([](KernelContext& ctx) {
          PoolArgs a{PoolKind::kAverage};
          a.count_include_pad = ctx.GetInt("count_include_pad") != 0;
          return PoolKernel(ctx, a);
        });
    MustRegister(r, std::move(s));
  }
  {
    OpSchema s("LpPool");
    PoolAttrs(s)
        .Doc("Lp norm over sliding windows: (sum |x|^p)^(1/p).")
        .AttrDefault("p", int64_t{2})
        .Outputs(1, 1)
        .InputTypes(0, kFloat)
        .Kernel([](KernelContext& ctx) {
          PoolArgs a{PoolKind::kLp};
          a.p = ctx.GetInt("p");
          return PoolKernel(ctx, a);
        });
    MustRegister(r, std::move(s));
  }
  struct Global {
    const char* name;
    PoolKind kind;
  };
  for (const Global& gp :
       {Global{"GlobalAveragePool", PoolKind::kAverage}, Global{"GlobalMaxPool", PoolKind::kMax},
        Global{"GlobalLpPool", PoolKind::kLp}}) {
    OpSchema s(gp.name);
    s.Doc("Pool over all spatial axes; output [N, C, 1, ...] ([N, 1, ..., C] for NHWC).")
        .AttrDefault("data_format", "NCHW")  // kiln extension: "NHWC" = channels-last
        .Inputs(1, 1)
        .Outputs(1, 1)
        .InputTypes(0, kFloat)
        .PromoteHalfToFloat()
        .Infer(InferGlobalPool)
        .Kernel([kind = gp.kind](KernelContext& ctx) { return GlobalPoolKernel(ctx, kind); });
    if (gp.kind == PoolKind::kLp) s.AttrDefault("p", int64_t{2});
    MustRegister(r, std::move(s));
  }
}

}  // namespace kiln
