// Op family: misc — TopK, NonMaxSuppression, Resize, Upsample.
//
// Semantics follow ONNX (opsets 7..18). Older forms handled where only the location of a value
// changed: TopK's `k` attribute (opset < 10) vs the K input; Resize-10 / Upsample's `scales`
// (attribute in Upsample-7, input after) with asymmetric coordinates; Resize-11+'s roi / scales /
// sizes inputs, and opset 18's `axes` and `keep_aspect_ratio_policy`.
//
// Resize / Upsample take the kiln extension attribute `data_format` ("NCHW" default; "NHWC" =
// channels-last: N, spatial..., C; anything else is an error). It does not change the math:
// scales / sizes / roi / axes always name the axes of X in X's own order (NHWC scales are
// [s_n, s_h, s_w, s_c]), and every axis is resized by its own scale — antialias, like ONNX,
// widens the kernel of each downscaled axis whatever its role — so an NHWC Resize equals the
// NCHW Resize of the transposed tensor, transposed back. It picks the fast kernels: for NHWC
// the inner loops run over the contiguous channels (see ResizeInterpolateNhwc2d and the block
// copy in ResizeNearest).
//
// For the TF importer (images NHWC, `size` = int32 [new_h, new_w]): emit Resize with
// data_format="NHWC", axes=[1, 2], sizes = Cast<int64>(size) (works for a non-constant size).
// TF sets half_pixel_centers=true with align_corners=true as an error; reject that pair.
//   ResizeBilinear (mode="linear"):
//     align_corners=0, half_pixel_centers=0 -> coordinate_transformation_mode="asymmetric"
//     align_corners=1                       -> "align_corners"  (output size 1 reads x = 0)
//     half_pixel_centers=1                  -> "half_pixel"  (not pytorch_half_pixel: TF maps a
//                                              size-1 output to x = in/2 - 0.5 too; TF clamps
//                                              the taps into the image, as ONNX does)
//   ResizeNearestNeighbor (mode="nearest"):
//     align_corners=0, half_pixel_centers=0 -> "asymmetric",  nearest_mode="floor"
//     align_corners=1                       -> "align_corners", nearest_mode="round_prefer_ceil"
//                                              (TF's roundf; coordinates are >= 0)
//     half_pixel_centers=1                  -> "tf_half_pixel_for_nn", nearest_mode="floor"
// TF computes its scale in float32 and we in double, so coordinates that land within float
// rounding of a rounding boundary may pick a different pixel / weight (last-ulp differences).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/base/shape_util.h"

namespace kiln {
namespace {

// Reads a scalar or one-element tensor as int64 / double.
StatusOr<int64_t> ScalarInt(const KernelContext& ctx, int i, const char* what) {
  const Tensor& t = ctx.input(i);
  if (t.num_elements() != 1) return ctx.Error(std::string(what) + " must have one element");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> v, ReadInt64s(t));
  return v[0];
}

StatusOr<double> ScalarFloat(const KernelContext& ctx, int i, const char* what) {
  const Tensor& t = ctx.input(i);
  if (t.num_elements() != 1) return ctx.Error(std::string(what) + " must have one element");
  if (!IsFloatingPoint(t.dtype())) return ctx.Error(std::string(what) + " must be a float");
  return t.GetAsDouble(0);
}

// ============================================================================= TopK

// NaN orders above every number, so the order is strict and weak (NaN is "largest").
template <typename T>
bool Before(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
  }
  return a < b;
}

// The K of the node: the K input (opset 10+) or the `k` attribute (opset < 10).
template <typename Ctx>
StatusOr<int64_t> TopKValue(const Ctx& ctx, const Tensor* k_input) {
  if (k_input != nullptr) {
    if (k_input->num_elements() != 1) return ctx.Error("K must have exactly one element");
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> k, ReadInt64s(*k_input));
    return k[0];
  }
  if (!ctx.HasAttr("k")) return ctx.Error("K is missing (no K input and no 'k' attribute)");
  return ctx.GetInt("k");
}

Status TopKKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() == 0) return ctx.Error("input must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.GetInt("axis"), x.rank(), ctx.node()));
  KILN_ASSIGN_OR_RETURN(int64_t k, TopKValue(ctx, ctx.has_input(1) ? &ctx.input(1) : nullptr));
  const int64_t n = x.dim(axis);
  if (k < 0 || k > n) {
    return ctx.Error("K = " + std::to_string(k) + " is out of range for axis " +
                     std::to_string(axis) + " of size " + std::to_string(n));
  }
  const bool largest = ctx.GetInt("largest") != 0;
  std::vector<int64_t> out_dims = x.dims();
  out_dims[axis] = k;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.dim(d);
  for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  return DispatchNumeric(x.dtype(), [&]<typename T>() -> Status {
    KILN_ASSIGN_OR_RETURN(Tensor * values, ctx.AllocateOutput(0, x.dtype(), out_dims));
    Tensor* indices = nullptr;
    if (ctx.num_outputs() > 1) {
      KILN_ASSIGN_OR_RETURN(indices, ctx.AllocateOutput(1, DataType::kInt64, out_dims));
    }
    const T* in = x.data<T>();
    T* vout = values->mutable_data<T>();
    int64_t* iout = indices ? indices->mutable_data<int64_t>() : nullptr;
    std::vector<int64_t> order(n);
    std::vector<T> row(n);
    // Ties go to the lower index, as ONNX specifies.
    auto cmp = [&](int64_t a, int64_t b) {
      if (largest ? Before(row[b], row[a]) : Before(row[a], row[b])) return true;
      if (Before(row[a], row[b]) || Before(row[b], row[a])) return false;
      return a < b;
    };
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const T* src = in + o * n * inner + i;
        for (int64_t j = 0; j < n; ++j) row[j] = src[j * inner];
        std::iota(order.begin(), order.end(), int64_t{0});
        std::partial_sort(order.begin(), order.begin() + k, order.end(), cmp);
        const int64_t base = o * k * inner + i;
        for (int64_t j = 0; j < k; ++j) {
          vout[base + j * inner] = row[order[j]];
          if (iout) iout[base + j * inner] = order[j];
        }
      }
    }
    return Status::OK();
  });
}

Status TopKInfer(InferContext& ctx) {
  const Shape& in = ctx.input_shape(0);
  Shape out = in;
  if (in.rank_known() && in.rank() > 0) {
    KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.GetInt("axis"), in.rank(), ctx.node()));
    out.set_dim(axis, Shape::kUnknownDim);
    const Tensor* k_input = ctx.has_input(1) ? ctx.constant_input(1) : nullptr;
    if (k_input != nullptr || (!ctx.has_input(1) && ctx.HasAttr("k"))) {
      KILN_ASSIGN_OR_RETURN(int64_t k, TopKValue(ctx, k_input));
      out.set_dim(axis, k);
    }
  }
  ctx.SetOutput(0, ctx.input_dtype(0), out);
  ctx.SetOutput(1, DataType::kInt64, out);
  return Status::OK();
}

// ============================================================================= NMS

struct Box {
  double x0, y0, x1, y1;
};

Box MakeBox(const double* b, bool center_point) {
  if (center_point) {  // [x_center, y_center, width, height]
    return {b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2};
  }
  // [y1, x1, y2, x2], either diagonal pair of corners.
  return {std::min(b[1], b[3]), std::min(b[0], b[2]), std::max(b[1], b[3]), std::max(b[0], b[2])};
}

// True when IOU(a, b) > threshold; degenerate boxes never suppress.
bool SuppressByIou(const Box& a, const Box& b, double threshold) {
  const double iw = std::min(a.x1, b.x1) - std::max(a.x0, b.x0);
  const double ih = std::min(a.y1, b.y1) - std::max(a.y0, b.y0);
  if (iw <= 0 || ih <= 0) return false;
  const double inter = iw * ih;
  const double area_a = (a.x1 - a.x0) * (a.y1 - a.y0);
  const double area_b = (b.x1 - b.x0) * (b.y1 - b.y0);
  const double uni = area_a + area_b - inter;
  if (area_a <= 0 || area_b <= 0 || uni <= 0) return false;
  return inter / uni > threshold;
}

Status NmsKernel(KernelContext& ctx) {
  const Tensor& boxes = ctx.input(0);
  const Tensor& scores = ctx.input(1);
  if (boxes.rank() != 3 || boxes.dim(2) != 4) {
    return ctx.Error("boxes must be [num_batches, spatial_dimension, 4], got " +
                     DimsToString(boxes.dims()));
  }
  if (scores.rank() != 3 || scores.dim(0) != boxes.dim(0) || scores.dim(2) != boxes.dim(1)) {
    return ctx.Error(
        "scores must be [num_batches, num_classes, spatial_dimension] matching boxes " +
        DimsToString(boxes.dims()) + ", got " + DimsToString(scores.dims()));
  }
  if (boxes.dtype() != scores.dtype()) return ctx.Error("boxes and scores must have one dtype");
  int64_t max_out = 0;
  double iou_threshold = 0;
  bool has_score_threshold = false;
  double score_threshold = 0;
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(max_out, ScalarInt(ctx, 2, "max_output_boxes_per_class"));
  }
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(iou_threshold, ScalarFloat(ctx, 3, "iou_threshold"));
    if (!(iou_threshold >= 0 && iou_threshold <= 1)) {
      return ctx.Error("iou_threshold must be in [0, 1], got " + std::to_string(iou_threshold));
    }
  }
  if (ctx.has_input(4)) {
    has_score_threshold = true;
    KILN_ASSIGN_OR_RETURN(score_threshold, ScalarFloat(ctx, 4, "score_threshold"));
  }
  const int64_t center = ctx.GetInt("center_point_box");
  if (center != 0 && center != 1) return ctx.Error("center_point_box must be 0 or 1");
  const int64_t num_batches = boxes.dim(0), num_boxes = boxes.dim(1), num_classes = scores.dim(1);
  const std::vector<double> box_values = ReadDoubles(boxes);
  const std::vector<double> score_values = ReadDoubles(scores);

  std::vector<int64_t> selected;  // triples
  std::vector<int64_t> order;
  std::vector<Box> kept;
  std::vector<Box> all(num_boxes);
  for (int64_t b = 0; b < num_batches && max_out > 0; ++b) {
    for (int64_t i = 0; i < num_boxes; ++i) {
      all[i] = MakeBox(&box_values[(b * num_boxes + i) * 4], center == 1);
    }
    for (int64_t c = 0; c < num_classes; ++c) {
      const double* s = &score_values[(b * num_classes + c) * num_boxes];
      order.clear();
      for (int64_t i = 0; i < num_boxes; ++i) {
        if (!has_score_threshold || s[i] > score_threshold) order.push_back(i);
      }
      // Highest score first; equal scores keep the lower box index first.
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t bb) { return s[a] > s[bb]; });
      kept.clear();
      for (int64_t i : order) {
        if (static_cast<int64_t>(kept.size()) >= max_out) break;
        bool suppressed = false;
        for (const Box& k : kept) {
          if (SuppressByIou(k, all[i], iou_threshold)) {
            suppressed = true;
            break;
          }
        }
        if (suppressed) continue;
        kept.push_back(all[i]);
        selected.insert(selected.end(), {b, c, i});
      }
    }
  }
  const int64_t n = static_cast<int64_t>(selected.size()) / 3;
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, DataType::kInt64, {n, 3}));
  std::copy(selected.begin(), selected.end(), out->mutable_data<int64_t>());
  return Status::OK();
}

// ============================================================================= Resize

enum class ResizeMode { kNearest, kLinear, kCubic };
enum class CoordMode {
  kHalfPixel,
  kHalfPixelSymmetric,
  kPytorchHalfPixel,
  kAlignCorners,
  kAsymmetric,
  kTfHalfPixelForNn,
  kTfCropAndResize
};
enum class NearestMode { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kLegacy };

struct ResizeParams {
  ResizeMode mode = ResizeMode::kNearest;
  CoordMode coord = CoordMode::kHalfPixel;
  NearestMode nearest = NearestMode::kRoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  bool antialias = false;
  double extrapolation = 0;
  std::vector<double> scales;     // per axis of X
  std::vector<int64_t> out_dims;  // per axis of X
  std::vector<double> roi;        // 2 * rank: starts then ends (tf_crop_and_resize only)
  bool channels_last = false;     // data_format="NHWC"
};

// One output axis: each output index reads `taps` input indices with weights; index -1 marks
// a point outside the input (tf_crop_and_resize), which gets the extrapolation value.
struct AxisPlan {
  int taps = 1;
  std::vector<int64_t> index;  // out_len * taps
  std::vector<double> weight;  // out_len * taps
  bool identity = false;
};

double CubicWeight(double d, double a) {  // Keys' cubic kernel at distance |d|
  d = std::fabs(d);
  if (d <= 1) return ((a + 2) * d - (a + 3)) * d * d + 1;
  if (d < 2) return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
  return 0;
}

AxisPlan PlanAxis(const ResizeParams& p, int axis, int64_t in_len) {
  const int64_t out_len = p.out_dims[axis];
  const double scale = p.scales[axis];
  // The ONNX reference uses the unrounded resized length (scale * input length).
  const double resized_len = scale * static_cast<double>(in_len);
  AxisPlan plan;
  // Linear and cubic read taps at floor(x) + first_tap + t. With antialias, a downscaling axis
  // stretches the kernel by 1 / scale (and normalizes the weights), as the ONNX reference does.
  const double kernel_scale = p.antialias ? std::min(scale, 1.0) : 1.0;
  const double radius = p.mode == ResizeMode::kLinear ? 1.0 : 2.0;
  const int64_t first_tap = static_cast<int64_t>(std::floor(-radius / kernel_scale)) + 1;
  plan.taps = p.mode == ResizeMode::kNearest ? 1 : static_cast<int>(2 - 2 * first_tap);
  plan.index.assign(out_len * plan.taps, 0);
  plan.weight.assign(out_len * plan.taps, 0.0);
  bool identity = out_len == in_len;
  for (int64_t o = 0; o < out_len; ++o) {
    const double xr = static_cast<double>(o);
    double x = 0;
    bool outside = false;
    switch (p.coord) {
      case CoordMode::kHalfPixel:
        x = (xr + 0.5) / scale - 0.5;
        break;
      case CoordMode::kHalfPixelSymmetric: {
        const double adjustment = static_cast<double>(out_len) / resized_len;
        const double center = static_cast<double>(in_len) / 2;
        x = center * (1 - adjustment) + (xr + 0.5) / scale - 0.5;
        break;
      }
      case CoordMode::kPytorchHalfPixel:
        x = resized_len > 1 ? (xr + 0.5) / scale - 0.5 : -0.5;
        break;
      case CoordMode::kAlignCorners:
        x = resized_len == 1 ? 0 : xr * (in_len - 1) / (resized_len - 1);
        break;
      case CoordMode::kAsymmetric:
        x = xr / scale;
        break;
      case CoordMode::kTfHalfPixelForNn:
        x = (xr + 0.5) / scale;
        break;
      case CoordMode::kTfCropAndResize: {
        const double start = p.roi[axis], end = p.roi[axis + p.out_dims.size()];
        x = resized_len > 1 ? xr * (end - start) * (in_len - 1) / (resized_len - 1)
                            : (end - start) * (in_len - 1) / 2;
        x += start * (in_len - 1);
        outside = x < 0 || x > in_len - 1;
        break;
      }
    }
    int64_t* idx = &plan.index[o * plan.taps];
    double* w = &plan.weight[o * plan.taps];
    if (outside) {
      for (int t = 0; t < plan.taps; ++t) idx[t] = -1;
      identity = false;
      continue;
    }
    const double fl = std::floor(x);
    const double r = x - fl;
    const int64_t base = static_cast<int64_t>(fl);
    if (p.mode == ResizeMode::kNearest) {
      int64_t i = base;
      if (r != 0) {
        switch (p.nearest) {
          case NearestMode::kRoundPreferFloor:
            i = r <= 0.5 ? base : base + 1;
            break;
          case NearestMode::kRoundPreferCeil:
            i = r < 0.5 ? base : base + 1;
            break;
          case NearestMode::kFloor:
            i = base;
            break;
          case NearestMode::kCeil:
            i = base + 1;
            break;
          // Resize-10 / Upsample: truncate when upsampling, ceil when downsampling.
          case NearestMode::kLegacy:
            i = scale < 1 ? base + 1 : base;
            break;
        }
      }
      idx[0] = std::clamp<int64_t>(i, 0, in_len - 1);
      w[0] = 1;
      identity = identity && idx[0] == o;
      continue;
    }
    double sum = 0;
    for (int t = 0; t < plan.taps; ++t) {
      idx[t] = base + first_tap + t;
      const double dist = (static_cast<double>(first_tap + t) - r) * kernel_scale;
      w[t] = p.mode == ResizeMode::kLinear ? std::max(0.0, 1 - std::fabs(dist))
                                           : CubicWeight(dist, p.cubic_a);
      sum += w[t];
    }
    if (p.antialias && sum != 0) {
      for (int t = 0; t < plan.taps; ++t) w[t] /= sum;
    }
    sum = 0;
    for (int t = 0; t < plan.taps; ++t) {
      if (idx[t] < 0 || idx[t] >= in_len) {
        if (p.exclude_outside) w[t] = 0;
        idx[t] = std::clamp<int64_t>(idx[t], 0, in_len - 1);
      }
      sum += w[t];
      identity = identity && (w[t] == 0 || (w[t] == 1 && idx[t] == o));
    }
    if (p.exclude_outside && sum != 0) {
      for (int t = 0; t < plan.taps; ++t) w[t] /= sum;
    }
  }
  plan.identity = identity;
  return plan;
}

template <typename T>
T FromDouble(double v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    v = std::nearbyint(v);
    v = std::clamp(v, static_cast<double>(std::numeric_limits<T>::lowest()),
                   static_cast<double>(std::numeric_limits<T>::max()));
    return static_cast<T>(v);
  }
}

// Row loops over n elements. Fixed-size blocks and __restrict let -O2's "very cheap" vectorizer
// take them (it refuses loops needing runtime alias checks or a scalar epilogue).
constexpr int64_t kBlock = 16;

template <typename S>
void AddScaled(double* __restrict dst, const S* __restrict src, double w, int64_t n) {
  int64_t k = 0;
  for (; k + kBlock <= n; k += kBlock) {
    for (int64_t j = 0; j < kBlock; ++j) dst[k + j] += w * static_cast<double>(src[k + j]);
  }
  for (; k < n; ++k) dst[k] += w * static_cast<double>(src[k]);
}

template <typename D, typename S>
void ConvertRow(D* __restrict dst, const S* __restrict src, int64_t n) {
  int64_t k = 0;
  for (; k + kBlock <= n; k += kBlock) {
    for (int64_t j = 0; j < kBlock; ++j) {
      dst[k + j] = FromDouble<D>(static_cast<double>(src[k + j]));
    }
  }
  for (; k < n; ++k) dst[k] = FromDouble<D>(static_cast<double>(src[k]));
}

// Nearest: a gather of one input element per output element (any dtype).
// The trailing axes it leaves unchanged (C in NHWC) are copied as contiguous blocks.
template <typename T>
Status ResizeNearest(const Tensor& x, const std::vector<AxisPlan>& plans, T extrapolation,
                     Tensor* out) {
  const int rank = x.rank();
  const std::vector<int64_t>& od = out->dims();
  const std::vector<int64_t> in_strides = ContiguousStrides(x.dims());
  const T* in = x.data<T>();
  T* dst = out->mutable_data<T>();
  if (out->num_elements() == 0) return Status::OK();
  int k = rank;  // axes [k, rank) are identities, copied `block` elements at a time
  int64_t block = 1;
  while (k > 0 && plans[k - 1].identity) block *= od[--k];
  if (k == 0) {
    std::copy_n(in, block, dst);
    return Status::OK();
  }
  // Per axis: input offset of each output index, or -1 when outside.
  std::vector<std::vector<int64_t>> offs(k);
  for (int d = 0; d < k; ++d) {
    offs[d].resize(od[d]);
    for (int64_t o = 0; o < od[d]; ++o) {
      const int64_t i = plans[d].index[o];
      offs[d][o] = i < 0 ? -1 : i * in_strides[d];
    }
  }
  std::vector<int64_t> pos(k, 0);
  const int64_t inner = od[k - 1];
  const std::vector<int64_t>& last = offs[k - 1];
  T* o = dst;
  while (true) {
    int64_t base = 0;
    bool outside = false;
    for (int d = 0; d < k - 1; ++d) {
      if (offs[d][pos[d]] < 0) outside = true;
      base += offs[d][pos[d]];
    }
    for (int64_t j = 0; j < inner; ++j, o += block) {
      if (outside || last[j] < 0) {
        std::fill_n(o, block, extrapolation);
      } else if (block == 1) {
        *o = in[base + last[j]];
      } else {
        std::copy_n(in + base + last[j], block, o);
      }
    }
    int d = k - 2;
    for (; d >= 0; --d) {
      if (++pos[d] < od[d]) break;
      pos[d] = 0;
    }
    if (d < 0) break;
  }
  return Status::OK();
}

// Linear / cubic: separable passes, one axis at a time, accumulated in double.
template <typename T>
void ResizeInterpolate(const Tensor& x, const std::vector<AxisPlan>& plans, double extrapolation,
                       Tensor* out) {
  const int rank = x.rank();
  std::vector<int64_t> cur = x.dims();
  std::vector<double> buf(x.num_elements());
  ConvertRow(buf.data(), x.data<T>(), x.num_elements());
  std::vector<double> next;
  for (int d = 0; d < rank; ++d) {
    const AxisPlan& plan = plans[d];
    if (plan.identity) continue;
    const int64_t in_len = cur[d], out_len = out->dim(d);
    int64_t outer = 1, inner = 1;
    for (int e = 0; e < d; ++e) outer *= cur[e];
    for (int e = d + 1; e < rank; ++e) inner *= cur[e];
    next.assign(outer * out_len * inner, 0.0);
    for (int64_t o = 0; o < outer; ++o) {
      const double* src = &buf[o * in_len * inner];
      for (int64_t j = 0; j < out_len; ++j) {
        double* dst = &next[(o * out_len + j) * inner];
        for (int t = 0; t < plan.taps; ++t) {
          const int64_t i = plan.index[j * plan.taps + t];
          const double w = plan.weight[j * plan.taps + t];
          if (i < 0 || w == 0) continue;
          if (inner == 1) {
            dst[0] += w * src[i];
          } else {
            AddScaled(dst, src + i * inner, w, inner);
          }
        }
      }
    }
    buf.swap(next);
    cur[d] = out_len;
  }
  // Points outside the crop box on any axis take the extrapolation value.
  std::vector<int64_t> strides = ContiguousStrides(cur);
  for (int d = 0; d < rank; ++d) {
    const AxisPlan& plan = plans[d];
    for (int64_t j = 0; j < cur[d]; ++j) {
      if (plan.index[j * plan.taps] >= 0) continue;
      const int64_t outer =
          buf.empty() ? 0 : static_cast<int64_t>(buf.size()) / (cur[d] * strides[d]);
      for (int64_t o = 0; o < outer; ++o) {
        double* p = &buf[(o * cur[d] + j) * strides[d]];
        std::fill(p, p + strides[d], extrapolation);
      }
    }
  }
  ConvertRow(out->mutable_data<T>(), buf.data(), static_cast<int64_t>(buf.size()));
}

// Linear / cubic on NHWC X with N and C unchanged (TF's ResizeBilinear): per output row, a
// vertical pass into a [W_in, C] row buffer, then a horizontal pass per output pixel; both inner
// loops run over contiguous channels. The arithmetic is ResizeInterpolate's, in its order (axis
// H then W, double accumulation from 0, zero-weight taps skipped), so results match it exactly.
template <typename T>
void ResizeInterpolateNhwc2d(const Tensor& x, const AxisPlan& ph, const AxisPlan& pw,
                             double extrapolation, Tensor* out) {
  const int64_t batch = x.dim(0), in_h = x.dim(1), c = x.dim(3);
  const int64_t out_h = out->dim(1), out_w = out->dim(2), row = x.dim(2) * c;
  const T fill = FromDouble<T>(extrapolation);
  std::vector<double> rowbuf(row), accbuf(c);
  double* tmp = rowbuf.data();
  double* acc = accbuf.data();
  T* o = out->mutable_data<T>();
  for (int64_t b = 0; b < batch; ++b) {
    const T* img = x.data<T>() + b * in_h * row;
    for (int64_t oh = 0; oh < out_h; ++oh) {
      if (ph.index[oh * ph.taps] < 0) {  // outside the crop box
        o = std::fill_n(o, out_w * c, fill);
        continue;
      }
      if (ph.identity) {
        ConvertRow(tmp, img + oh * row, row);
      } else {
        std::fill_n(tmp, row, 0.0);
        for (int t = 0; t < ph.taps; ++t) {
          const double w = ph.weight[oh * ph.taps + t];
          if (w != 0) AddScaled(tmp, img + ph.index[oh * ph.taps + t] * row, w, row);
        }
      }
      for (int64_t ow = 0; ow < out_w; ++ow, o += c) {
        if (pw.index[ow * pw.taps] < 0) {
          std::fill_n(o, c, fill);
          continue;
        }
        const double* src = tmp + ow * c;
        if (!pw.identity) {
          std::fill_n(acc, c, 0.0);
          for (int t = 0; t < pw.taps; ++t) {
            const double w = pw.weight[ow * pw.taps + t];
            if (w != 0) AddScaled(acc, tmp + pw.index[ow * pw.taps + t] * c, w, c);
          }
          src = acc;
        }
        ConvertRow(o, src, c);
      }
    }
  }
}

// data_format: "NCHW" -> false, "NHWC" -> true, anything else is an error.
StatusOr<bool> IsChannelsLast(const AttrReader& ctx) {
  const std::string f = ctx.GetString("data_format");
  if (f == "NCHW" || f == "NHWC") return f == "NHWC";
  return ctx.Error("data_format must be \"NCHW\" or \"NHWC\", got \"" + f + "\"");
}

Status ParseResizeModes(const KernelContext& ctx, bool legacy, ResizeParams* p) {
  std::string mode = ctx.GetString("mode");
  std::transform(mode.begin(), mode.end(), mode.begin(), ::tolower);
  if (mode == "nearest") {
    p->mode = ResizeMode::kNearest;
  } else if (mode == "linear" || (legacy && mode == "bilinear")) {
    p->mode = ResizeMode::kLinear;
  } else if (mode == "cubic" && !legacy) {
    p->mode = ResizeMode::kCubic;
  } else {
    return ctx.Error("unsupported mode '" + mode + "'");
  }
  KILN_ASSIGN_OR_RETURN(p->channels_last, IsChannelsLast(ctx));
  if (legacy) {
    p->coord = CoordMode::kAsymmetric;
    p->nearest = NearestMode::kLegacy;
    return Status::OK();
  }
  const std::string coord = ctx.GetString("coordinate_transformation_mode");
  if (coord == "half_pixel") {
    p->coord = CoordMode::kHalfPixel;
  } else if (coord == "half_pixel_symmetric") {
    p->coord = CoordMode::kHalfPixelSymmetric;
  } else if (coord == "pytorch_half_pixel") {
    p->coord = CoordMode::kPytorchHalfPixel;
  } else if (coord == "align_corners") {
    p->coord = CoordMode::kAlignCorners;
  } else if (coord == "asymmetric") {
    p->coord = CoordMode::kAsymmetric;
  } else if (coord == "tf_half_pixel_for_nn") {
    p->coord = CoordMode::kTfHalfPixelForNn;
  } else if (coord == "tf_crop_and_resize") {
    p->coord = CoordMode::kTfCropAndResize;
  } else {
    return ctx.Error("unsupported coordinate_transformation_mode '" + coord + "'");
  }
  const std::string nearest = ctx.GetString("nearest_mode");
  if (nearest == "round_prefer_floor") {
    p->nearest = NearestMode::kRoundPreferFloor;
  } else if (nearest == "round_prefer_ceil") {
    p->nearest = NearestMode::kRoundPreferCeil;
  } else if (nearest == "floor") {
    p->nearest = NearestMode::kFloor;
  } else if (nearest == "ceil") {
    p->nearest = NearestMode::kCeil;
  } else {
    return ctx.Error("unsupported nearest_mode '" + nearest + "'");
  }
  p->cubic_a = ctx.GetFloat("cubic_coeff_a");
  p->exclude_outside = ctx.GetInt("exclude_outside") != 0;
  p->extrapolation = ctx.GetFloat("extrapolation_value");
  p->antialias = ctx.GetInt("antialias") != 0;
  return Status::OK();
}

// Fills scales / out_dims / roi from the inputs. `legacy`: Resize-10 and Upsample (scales only).
Status ResolveResizeSizes(const KernelContext& ctx, bool legacy, ResizeParams* p) {
  const Tensor& x = ctx.input(0);
  const int rank = x.rank();
  std::vector<double> scales_in;
  std::vector<int64_t> sizes_in;
  const int scales_index = legacy ? 1 : 2;
  if (legacy && !ctx.has_input(1)) {
    if (!ctx.HasAttr("scales")) return ctx.Error("scales are missing");
    for (float s : ctx.GetFloats("scales")) scales_in.push_back(s);
  } else if (ctx.has_input(scales_index) && ctx.input(scales_index).num_elements() > 0) {
    const Tensor& s = ctx.input(scales_index);
    if (!IsFloatingPoint(s.dtype())) return ctx.Error("scales must be float");
    scales_in = ReadDoubles(s);
  }
  if (!legacy && ctx.has_input(3) && ctx.input(3).num_elements() > 0) {
    KILN_ASSIGN_OR_RETURN(sizes_in, ReadInt64s(ctx.input(3)));
  }
  if (scales_in.empty() == sizes_in.empty()) {
    return ctx.Error("exactly one of scales and sizes must be given");
  }
  // axes (opset 18): scales / sizes / roi name only these axes.
  std::vector<int> axes;
  if (!legacy && ctx.HasAttr("axes")) {
    for (int64_t a : ctx.GetInts("axes")) {
      KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(a, rank, ctx.node()));
      if (std::find(axes.begin(), axes.end(), axis) != axes.end()) {
        return ctx.Error("axes has a repeated axis");
      }
      axes.push_back(axis);
    }
  } else {
    for (int d = 0; d < rank; ++d) axes.push_back(d);
  }
  const size_t n = axes.size();
  const size_t given = scales_in.empty() ? sizes_in.size() : scales_in.size();
  if (given != n) {
    return ctx.Error(std::string(scales_in.empty() ? "sizes" : "scales") + " has " +
                     std::to_string(given) + " values, expected " + std::to_string(n));
  }
  p->scales.assign(rank, 1.0);
  p->out_dims = x.dims();
  if (!scales_in.empty()) {
    for (size_t i = 0; i < n; ++i) {
      if (!(scales_in[i] > 0)) return ctx.Error("scales must be positive");
      p->scales[axes[i]] = scales_in[i];
      const double len = scales_in[i] * static_cast<double>(x.dim(axes[i]));
      if (len > 9e18) return ctx.Error("output size overflows");
      p->out_dims[axes[i]] = static_cast<int64_t>(std::floor(len));
    }
  } else {
    const std::string policy = ctx.GetString("keep_aspect_ratio_policy");
    for (size_t i = 0; i < n; ++i) {
      if (sizes_in[i] < 0) return ctx.Error("sizes must be non-negative");
    }
    if (policy == "stretch") {
      for (size_t i = 0; i < n; ++i) {
        const int64_t in_len = x.dim(axes[i]);
        p->out_dims[axes[i]] = sizes_in[i];
        p->scales[axes[i]] =
            in_len == 0 ? 1.0 : static_cast<double>(sizes_in[i]) / static_cast<double>(in_len);
      }
    } else if (policy == "not_larger" || policy == "not_smaller") {
      double scale = policy == "not_larger" ? std::numeric_limits<double>::infinity() : 0.0;
      for (size_t i = 0; i < n; ++i) {
        const double s = static_cast<double>(sizes_in[i]) / static_cast<double>(x.dim(axes[i]));
        scale = policy == "not_larger" ? std::min(scale, s) : std::max(scale, s);
      }
      for (size_t i = 0; i < n; ++i) {
        p->scales[axes[i]] = scale;
        p->out_dims[axes[i]] =
            static_cast<int64_t>(std::floor(scale * static_cast<double>(x.dim(axes[i])) + 0.5));
      }
    } else {
      return ctx.Error("unsupported keep_aspect_ratio_policy '" + policy + "'");
    }
  }
  for (int d = 0; d < rank; ++d) {
    if (!(p->scales[d] > 0) || !std::isfinite(p->scales[d])) {
      return ctx.Error("cannot resize axis " + std::to_string(d) + " of size 0");
    }
  }
  p->roi.assign(2 * rank, 0.0);
  for (int d = 0; d < rank; ++d) p->roi[rank + d] = 1.0;
  if (p->coord == CoordMode::kTfCropAndResize) {
    if (!ctx.has_input(1) || ctx.input(1).num_elements() == 0) {
      return ctx.Error("tf_crop_and_resize needs roi");
    }
    const std::vector<double> roi = ReadDoubles(ctx.input(1));
    if (roi.size() != 2 * n) {
      return ctx.Error("roi has " + std::to_string(roi.size()) + " values, expected " +
                       std::to_string(2 * n));
    }
    for (size_t i = 0; i < n; ++i) {
      p->roi[axes[i]] = roi[i];
      p->roi[rank + axes[i]] = roi[n + i];
    }
  }
  return Status::OK();
}

Status ResizeCommon(KernelContext& ctx, bool legacy) {
  const Tensor& x = ctx.input(0);
  ResizeParams p;
  KILN_RETURN_IF_ERROR(ParseResizeModes(ctx, legacy, &p));
  KILN_RETURN_IF_ERROR(ResolveResizeSizes(ctx, legacy, &p));
  std::vector<AxisPlan> plans;
  for (int d = 0; d < x.rank(); ++d) {
    if (p.antialias && p.mode != ResizeMode::kNearest && p.scales[d] < 1e-4) {
      return ctx.Error("antialias kernel for scale " + std::to_string(p.scales[d]) +
                       " is too wide");
    }
    plans.push_back(PlanAxis(p, d, x.dim(d)));
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, x.dtype(), p.out_dims));
  if (out->num_elements() == 0) return Status::OK();
  if (x.num_elements() == 0) return ctx.Error("cannot resize an empty tensor to a non-empty one");
  if (p.mode == ResizeMode::kNearest) {
    if (x.dtype() == DataType::kString) {
      return ResizeNearest<std::string>(x, plans, std::string(), out);
    }
    return DispatchAnyPod(x.dtype(), [&]<typename T>() -> Status {
      T extrapolation{};
      if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
        extrapolation = T(static_cast<float>(p.extrapolation));
      } else if constexpr (std::is_same_v<T, bool>) {
        extrapolation = p.extrapolation != 0;
      } else {
        extrapolation = FromDouble<T>(p.extrapolation);
      }
      return ResizeNearest<T>(x, plans, extrapolation, out);
    });
  }
  const bool nhwc_2d = p.channels_last && x.rank() == 4 && plans[0].identity && plans[3].identity;
  return DispatchNumeric(x.dtype(), [&]<typename T>() -> Status {
    if (nhwc_2d) {
      ResizeInterpolateNhwc2d<T>(x, plans[1], plans[2], p.extrapolation, out);
    } else {
      ResizeInterpolate<T>(x, plans, p.extrapolation, out);
    }
    return Status::OK();
  });
}

// Output shape from constant scales / sizes where known; otherwise the rank of X.
Status ResizeInfer(InferContext& ctx, bool legacy) {
  KILN_RETURN_IF_ERROR(IsChannelsLast(ctx).status());
  const Shape& in = ctx.input_shape(0);
  Shape out = in;
  if (in.rank_known()) {
    std::vector<int64_t> dims(in.rank(), Shape::kUnknownDim);
    const bool all_axes = legacy || !ctx.HasAttr("axes");
    const Tensor* sizes = legacy ? nullptr : ctx.constant_input(3);
    const Tensor* scales = ctx.constant_input(legacy ? 1 : 2);
    if (sizes != nullptr && sizes->num_elements() == in.rank() && all_axes &&
        ctx.GetString("keep_aspect_ratio_policy") == "stretch") {
      KILN_ASSIGN_OR_RETURN(dims, ReadInt64s(*sizes));
    } else if (scales != nullptr && scales->num_elements() == in.rank() && all_axes &&
               IsFloatingPoint(scales->dtype())) {
      const std::vector<double> s = ReadDoubles(*scales);
      for (int d = 0; d < in.rank(); ++d) {
        if (in.dim(d) >= 0) dims[d] = static_cast<int64_t>(std::floor(s[d] * in.dim(d)));
      }
    } else if (legacy && !ctx.has_input(1) && ctx.HasAttr("scales")) {
      const std::vector<float> s = ctx.GetFloats("scales");
      for (int d = 0; d < in.rank() && d < static_cast<int>(s.size()); ++d) {
        if (in.dim(d) >= 0) dims[d] = static_cast<int64_t>(std::floor(double{s[d]} * in.dim(d)));
      }
    }
    out = Shape(dims);
  }
  ctx.SetOutput(0, ctx.input_dtype(0), out);
  return Status::OK();
}

}  // namespace

void RegisterMiscOps(OpRegistry& r) {
  MustRegister(r, OpSchema("TopK")
                      .Doc("The K largest (or smallest) elements along an axis and their indices; "
                           "ties go to the lower index. K is an input from opset 10, the 'k' "
                           "attribute before.")
                      .Inputs(1, 2)
                      .Outputs(1, 2)
                      .AttrDefault("axis", int64_t{-1})
                      .AttrDefault("largest", int64_t{1})
                      .AttrDefault("sorted", int64_t{1})
                      .AttrNoDefault("k", AttrType::kInt)
                      .InputTypes(0, NumericTypes())
                      .InputTypes(1, {DataType::kInt64})
                      .PromoteHalfToFloat()
                      .Infer(TopKInfer)
                      .Kernel(TopKKernel));

  MustRegister(r,
               OpSchema("NonMaxSuppression")
                   .Doc("Greedy per-class non-maximum suppression; outputs int64 [num_selected, 3] "
                        "rows (batch, class, box), by batch, class, then descending score.")
                   .Inputs(2, 5)
                   .Outputs(1, 1)
                   .AttrDefault("center_point_box", int64_t{0})
                   .InputTypes(0, FloatTypes())
                   .InputTypes(1, FloatTypes())
                   .InputTypes(2, {DataType::kInt64})
                   .InputTypes(3, FloatTypes())
                   .InputTypes(4, FloatTypes())
                   .PromoteHalfToFloat()
                   .Infer([](InferContext& ctx) -> Status {
                     ctx.SetOutput(0, DataType::kInt64, Shape({Shape::kUnknownDim, 3}));
                     return Status::OK();
                   })
                   .Kernel(NmsKernel));

  MustRegister(
      r, OpSchema("Resize")
             .Doc("Resizes X by scales or to sizes with nearest / linear / cubic interpolation. "
                  "Opset 10 takes (X, scales) with asymmetric coordinates; 11+ takes (X, roi, "
                  "scales, sizes); opset 18 adds axes, keep_aspect_ratio_policy and antialias. "
                  "kiln: data_format NCHW / NHWC (scales, sizes, roi, axes in X's own order).")
             .Inputs(1, 4)
             .Outputs(1, 1)
             .AttrDefault("mode", "nearest")
             .AttrDefault("coordinate_transformation_mode", "half_pixel")
             .AttrDefault("nearest_mode", "round_prefer_floor")
             .AttrDefault("cubic_coeff_a", -0.75f)
             .AttrDefault("exclude_outside", int64_t{0})
             .AttrDefault("extrapolation_value", 0.0f)
             .AttrDefault("antialias", int64_t{0})
             .AttrNoDefault("axes", AttrType::kInts)
             .AttrDefault("keep_aspect_ratio_policy", "stretch")
             .AttrDefault("data_format", "NCHW")  // kiln extension: "NHWC" = channels-last
             .InputTypes(0, AllTypes())
             .InputTypes(3, {DataType::kInt64})
             .PromoteHalfToFloat()
             .Infer([](InferContext& ctx) { return ResizeInfer(ctx, ctx.opset() < 11); })
             .Kernel([](KernelContext& ctx) { return ResizeCommon(ctx, ctx.opset() < 11); }));

  MustRegister(r, OpSchema("Upsample")
                      .Doc("Deprecated (opset 7..9): Resize with asymmetric coordinates; scales "
                           "is an attribute in opset 7, an input from opset 9.")
                      .Inputs(1, 2)
                      .Outputs(1, 1)
                      .AttrDefault("mode", "nearest")
                      .AttrNoDefault("scales", AttrType::kFloats)
                      .AttrDefault("data_format", "NCHW")  // kiln: "NHWC" = channels-last
                      .InputTypes(0, AllTypes())
                      .PromoteHalfToFloat()
                      .Infer([](InferContext& ctx) { return ResizeInfer(ctx, true); })
                      .Kernel([](KernelContext& ctx) { return ResizeCommon(ctx, true); }));
}

}  // namespace kiln
