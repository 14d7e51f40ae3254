// Op family: extra — ONNX ops outside the core families.
//
//   Dropout                         inference semantics (identity, all-true mask); training with
//                                   ratio > 0 is Unimplemented (random outputs)
//   GridSample (16)                 4-D, bilinear/nearest/bicubic, zeros/border/reflection,
//                                   align_corners (PyTorch grid_sample semantics)
//   HannWindow HammingWindow BlackmanWindow (17), MelWeightMatrix (17)
//   DFT (17)                        real ([..., 1]) or complex ([..., 2]) input, dft_length,
//                                   inverse, onesided; STFT (17) with window/frame_length
//   Det                             batched LU with partial pivoting
//   MaxUnpool                       scatter by MaxPool's flat indices, optional output_shape
//   QLinearMatMul, QLinearConv      integer accumulation, requantized with round-half-even and
//                                   saturation; per-tensor or per-row/column/channel scales
//   LpNormalization                 p = 1 or 2 along an axis
#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/base/shape_util.h"
#include "ops/nn_window.h"

namespace kiln {
namespace {

constexpr double kPi = std::numbers::pi;

// Reads input i (a scalar or one-element tensor) as an integer.
StatusOr<int64_t> ScalarInt(const KernelContext& ctx, int i, const char* what) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> v, ReadInt64s(ctx.input(i)));
  if (v.size() != 1) return ctx.Error(std::string(what) + " must hold exactly one value");
  return v[0];
}

StatusOr<double> ScalarDouble(const KernelContext& ctx, int i, const char* what) {
  if (ctx.input(i).num_elements() != 1) {
    return ctx.Error(std::string(what) + " must hold exactly one value");
  }
  return ctx.input(i).GetAsDouble(0);
}

// The value of constant input i as one integer, when known.
bool ConstantScalarInt(const InferContext& ctx, int i, int64_t* v) {
  const Tensor* t = ctx.constant_input(i);
  if (t == nullptr || t->num_elements() != 1 || !IsInteger(t->dtype())) return false;
  *v = static_cast<int64_t>(t->GetAsDouble(0));
  return true;
}

// Sets output 0 to `values` (row-major, `dims`) converted to `dtype`.
Status SetDoubles(KernelContext& ctx, const std::vector<double>& values, std::vector<int64_t> dims,
                  DataType dtype) {
  Tensor t = Tensor::FromVector<double>(values, std::move(dims), /*dims_given=*/true);
  KILN_ASSIGN_OR_RETURN(Tensor out, ConvertTensor(t, dtype));
  ctx.SetOutput(0, std::move(out));
  return Status::OK();
}

StatusOr<DataType> OutputDatatype(const AttrReader& ctx) {
  const int64_t v = ctx.GetInt("output_datatype");
  if (v > INT32_MAX || v < 0 || !IsValidDataType(static_cast<int32_t>(v)) ||
      v == static_cast<int64_t>(DataType::kString) || v == static_cast<int64_t>(DataType::kBool) ||
      v == 0) {
    return ctx.Error("unsupported output_datatype " + std::to_string(v));
  }
  return static_cast<DataType>(v);
}

// ------------------------------------------------------------------------------ Dropout

Status DropoutKernel(KernelContext& ctx) {
  double ratio = ctx.GetFloat("ratio");
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(ratio, ScalarDouble(ctx, 1, "ratio"));
  }
  bool training = false;
  if (ctx.has_input(2)) {
    if (ctx.input(2).num_elements() != 1) return ctx.Error("training_mode must be a scalar");
    training = ctx.input(2).GetAsDouble(0) != 0;
  }
  if (!(ratio >= 0 && ratio < 1)) return ctx.Error("ratio must be in [0, 1)");
  if (training && ratio > 0) {
    return ctx.UnimplementedError("training_mode with ratio > 0 (random dropout) is not supported");
  }
  const Tensor& x = ctx.input(0);
  if (ctx.num_outputs() > 1) {
    KILN_ASSIGN_OR_RETURN(Tensor * mask, ctx.AllocateOutput(1, DataType::kBool, x.dims()));
    std::fill_n(mask->mutable_data<bool>(), mask->num_elements(), true);
    if (ctx.opset() < 10) {  // opset 7: the mask has the input's type
      KILN_ASSIGN_OR_RETURN(Tensor m, ConvertTensor(*mask, x.dtype()));
      ctx.SetOutput(1, std::move(m));
    }
  }
  ctx.SetOutput(0, x);
  return Status::OK();
}

Status DropoutInfer(InferContext& ctx) {
  ctx.SetOutput(0, ctx.input_dtype(0), ctx.input_shape(0));
  ctx.SetOutput(1, ctx.opset() < 10 ? ctx.input_dtype(0) : DataType::kBool, ctx.input_shape(0));
  return Status::OK();
}

// --------------------------------------------------------------------------- GridSample

// PyTorch's reflect_coordinates: reflects x into [twice_low / 2, twice_high / 2].
double Reflect(double x, double twice_low, double twice_high) {
  if (twice_low == twice_high) return 0;
  const double lo = twice_low / 2, span = (twice_high - twice_low) / 2;
  x = std::fabs(x - lo);
  const double extra = std::fmod(x, span);
  const int64_t flips = static_cast<int64_t>(std::floor(x / span));
  return flips % 2 == 0 ? extra + lo : span - extra + lo;
}

struct GridSampler {
  int mode;     // 0 bilinear, 1 nearest, 2 bicubic
  int padding;  // 0 zeros, 1 border, 2 reflection
  bool align;

  double Unnormalize(double g, int64_t size) const {
    return align ? (g + 1) / 2 * static_cast<double>(size - 1)
                 : ((g + 1) * static_cast<double>(size) - 1) / 2;
  }
  // Applies border/reflection padding to a coordinate (zeros: unchanged).
  double Pad(double x, int64_t size) const {
    if (padding == 0) return x;
    const double hi = static_cast<double>(size - 1);
    if (padding == 2) {
      x = align ? Reflect(x, 0, 2 * hi) : Reflect(x, -1, 2 * static_cast<double>(size) - 1);
    }
    return std::clamp(x, 0.0, hi);
  }
  // Value at integer (y, x) of one H x W plane; out of range reads 0 (after padding for
  // bicubic taps, which pad each tap coordinate like PyTorch).
  double At(const double* plane, int64_t h, int64_t w, int64_t y, int64_t x, bool pad) const {
    if (pad && padding != 0) {
      y = static_cast<int64_t>(Pad(static_cast<double>(y), h));
      x = static_cast<int64_t>(Pad(static_cast<double>(x), w));
    }
    if (y < 0 || y >= h || x < 0 || x >= w) return 0;
    return plane[y * w + x];
  }
  static void CubicCoeffs(double t, double c[4]) {
    constexpr double A = -0.75;
    auto near = [](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };
    auto far = [](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };
    c[0] = far(t + 1);
    c[1] = near(t);
    c[2] = near(1 - t);
    c[3] = far(2 - t);
  }
  double Sample(const double* plane, int64_t h, int64_t w, double gx, double gy) const {
    double x = Unnormalize(gx, w), y = Unnormalize(gy, h);
    if (mode == 2) {
      const double x0 = std::floor(x), y0 = std::floor(y);
      double cx[4], cy[4];
      CubicCoeffs(x - x0, cx);
      CubicCoeffs(y - y0, cy);
      double sum = 0;
      for (int i = 0; i < 4; ++i) {
        double row = 0;
        for (int j = 0; j < 4; ++j) {
          row += cx[j] * At(plane, h, w, static_cast<int64_t>(y0) - 1 + i,
                            static_cast<int64_t>(x0) - 1 + j, true);
        }
        sum += cy[i] * row;
      }
      return sum;
    }
    x = Pad(x, w);
    y = Pad(y, h);
    if (mode == 1) {
      return At(plane, h, w, static_cast<int64_t>(std::nearbyint(y)),
                static_cast<int64_t>(std::nearbyint(x)), false);
    }
    const double x0 = std::floor(x), y0 = std::floor(y);
    const double tx = x - x0, ty = y - y0;
    const auto ix = static_cast<int64_t>(x0), iy = static_cast<int64_t>(y0);
    return (1 - ty) * ((1 - tx) * At(plane, h, w, iy, ix, false) +
                       tx * At(plane, h, w, iy, ix + 1, false)) +
           ty * ((1 - tx) * At(plane, h, w, iy + 1, ix, false) +
                 tx * At(plane, h, w, iy + 1, ix + 1, false));
  }
};

Status GridSampleKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& grid = ctx.input(1);
  if (x.rank() != 4 || grid.rank() != 4 || grid.dim(3) != 2 || grid.dim(0) != x.dim(0)) {
    return ctx.Error("expected X [N,C,H,W] and grid [N,Hout,Wout,2], got " + x.TypeString() +
                     " and " + grid.TypeString());
  }
  GridSampler s{};
  const std::string mode = ctx.GetString("mode"), padding = ctx.GetString("padding_mode");
  if (mode == "bilinear")
    s.mode = 0;
  else if (mode == "nearest")
    s.mode = 1;
  else if (mode == "bicubic")
    s.mode = 2;
  else
    return ctx.Error("unknown mode '" + mode + "'");
  if (padding == "zeros")
    s.padding = 0;
  else if (padding == "border")
    s.padding = 1;
  else if (padding == "reflection")
    s.padding = 2;
  else
    return ctx.Error("unknown padding_mode '" + padding + "'");
  s.align = ctx.GetInt("align_corners") != 0;
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  const int64_t ho = grid.dim(1), wo = grid.dim(2);
  KILN_ASSIGN_OR_RETURN(int64_t total, CheckedNumElements({n, c, ho, wo}));
  const std::vector<double> xv = ReadDoubles(x), gv = ReadDoubles(grid);
  std::vector<double> out(static_cast<size_t>(total));
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t ch = 0; ch < c; ++ch) {
      const double* plane = xv.data() + (b * c + ch) * h * w;
      double* dst = out.data() + (b * c + ch) * ho * wo;
      const double* g = gv.data() + b * ho * wo * 2;
      for (int64_t i = 0; i < ho * wo; ++i) dst[i] = s.Sample(plane, h, w, g[2 * i], g[2 * i + 1]);
    }
  }
  return SetDoubles(ctx, out, {n, c, ho, wo}, x.dtype());
}

Status GridSampleInfer(InferContext& ctx) {
  const Shape& xs = ctx.input_shape(0);
  const Shape& gs = ctx.input_shape(1);
  Shape out({-1, -1, -1, -1});
  if (xs.rank_known() && xs.rank() == 4) {
    out.set_dim(0, xs.dim(0));
    out.set_dim(1, xs.dim(1));
  }
  if (gs.rank_known() && gs.rank() == 4) {
    out.set_dim(2, gs.dim(1));
    out.set_dim(3, gs.dim(2));
  }
  ctx.SetOutput(0, ctx.input_dtype(0), out);
  return Status::OK();
}

// ------------------------------------------------------------------------------ Windows

// w[n] = sum_k a_k cos(2 pi k n / N), N = size (periodic) or size - 1 (symmetric).
Status WindowKernel(KernelContext& ctx, const std::vector<double>& a) {
  KILN_ASSIGN_OR_RETURN(int64_t size, ScalarInt(ctx, 0, "size"));
  if (size < 0) return ctx.Error("size must be non-negative");
  KILN_ASSIGN_OR_RETURN(DataType dtype, OutputDatatype(ctx));
  const double denom = static_cast<double>(ctx.GetInt("periodic") != 0 ? size : size - 1);
  std::vector<double> w(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) {
    double v = 0;
    for (size_t k = 0; k < a.size(); ++k) {
      v += a[k] * (denom == 0 ? 1.0 : std::cos(2 * kPi * static_cast<double>(k * i) / denom));
    }
    w[i] = v;
  }
  return SetDoubles(ctx, w, {size}, dtype);
}

Status WindowInfer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DataType dtype, OutputDatatype(ctx));
  int64_t size = -1;
  ConstantScalarInt(ctx, 0, &size);
  ctx.SetOutput(0, dtype, Shape({size}));
  return Status::OK();
}

void RegisterWindow(OpRegistry& r, const char* name, std::vector<double> a) {
  MustRegister(r, OpSchema(name)
                      .Doc("Window function of length `size` (opset 17).")
                      .Inputs(1, 1)
                      .Outputs(1, 1)
                      .AttrDefault("output_datatype", int64_t{1})
                      .AttrDefault("periodic", int64_t{1})
                      .InputTypes(0, IndexTypes())
                      .Infer(WindowInfer)
                      .Kernel([a](KernelContext& ctx) { return WindowKernel(ctx, a); }));
}

// ------------------------------------------------------------------------- DFT and STFT

// One DFT of `n` complex points of `in` (stride `in_stride` complex elements, `in_len` of them
// present, the rest zero) into `out_len` points of `out` (stride `out_stride`).
void Dft1(const double* in, int64_t in_stride, int64_t in_len, int64_t n, bool inverse,
          int64_t out_len, double* out, int64_t out_stride, const std::vector<double>& cos_t,
          const std::vector<double>& sin_t) {
  const double sign = inverse ? 1.0 : -1.0;
  const double scale = inverse ? 1.0 / static_cast<double>(n) : 1.0;
  const int64_t len = std::min(in_len, n);
  for (int64_t f = 0; f < out_len; ++f) {
    double re = 0, im = 0;
    int64_t idx = 0;  // (f * k) mod n
    for (int64_t k = 0; k < len; ++k) {
      const double xr = in[2 * k * in_stride], xi = in[2 * k * in_stride + 1];
      const double c = cos_t[idx], s = sign * sin_t[idx];
      re += xr * c - xi * s;
      im += xr * s + xi * c;
      idx += f;
      if (idx >= n) idx -= n;
    }
    out[2 * f * out_stride] = re * scale;
    out[2 * f * out_stride + 1] = im * scale;
  }
}

void Twiddles(int64_t n, std::vector<double>* c, std::vector<double>* s) {
  c->resize(n);
  s->resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const double a = 2 * kPi * static_cast<double>(i) / static_cast<double>(n);
    (*c)[i] = std::cos(a);
    (*s)[i] = std::sin(a);
  }
}

// The input as interleaved complex doubles (a real input gets zero imaginary parts).
std::vector<double> ToComplex(const Tensor& t) {
  std::vector<double> v = ReadDoubles(t);
  if (t.dims().back() == 2) return v;
  std::vector<double> c(v.size() * 2, 0.0);
  for (size_t i = 0; i < v.size(); ++i) c[2 * i] = v[i];
  return c;
}

Status DftKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int r = x.rank();
  if (r < 2 || (x.dims().back() != 1 && x.dims().back() != 2)) {
    return ctx.Error("input must be [..., 1] (real) or [..., 2] (complex), got " + x.TypeString());
  }
  int64_t axis = ctx.GetInt("axis");
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r - 2) return ctx.Error("axis out of range");
  const int64_t n_in = x.dim(static_cast<int>(axis));
  int64_t n = n_in;
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(n, ScalarInt(ctx, 1, "dft_length"));
  }
  if (n <= 0) return ctx.Error("dft_length must be positive");
  const bool inverse = ctx.GetInt("inverse") != 0;
  const int64_t out_len = ctx.GetInt("onesided") != 0 ? n / 2 + 1 : n;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= x.dim(i);
  for (int i = static_cast<int>(axis) + 1; i < r - 1; ++i) inner *= x.dim(i);
  std::vector<int64_t> dims = x.dims();
  dims[axis] = out_len;
  dims.back() = 2;
  KILN_RETURN_IF_ERROR(CheckedNumElements(dims).status());
  const std::vector<double> in = ToComplex(x);
  std::vector<double> out(static_cast<size_t>(outer * out_len * inner * 2));
  std::vector<double> cos_t, sin_t;
  Twiddles(n, &cos_t, &sin_t);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      Dft1(in.data() + 2 * (o * n_in * inner + i), inner, n_in, n, inverse, out_len,
           out.data() + 2 * (o * out_len * inner + i), inner, cos_t, sin_t);
    }
  }
  return SetDoubles(ctx, out, dims, x.dtype());
}

Status DftInfer(InferContext& ctx) {
  const Shape& xs = ctx.input_shape(0);
  if (!xs.rank_known() || xs.rank() < 2) {
    ctx.SetOutput(0, ctx.input_dtype(0), Shape::UnknownRank());
    return Status::OK();
  }
  std::vector<int64_t> dims = xs.dims();
  int64_t axis = ctx.GetInt("axis");
  if (axis < 0) axis += xs.rank();
  if (axis < 0 || axis > xs.rank() - 2) return ctx.Error("axis out of range");
  int64_t n = dims[axis];
  if (ctx.has_input(1) && !ConstantScalarInt(ctx, 1, &n)) n = -1;
  dims[axis] = n < 0 ? -1 : (ctx.GetInt("onesided") != 0 ? n / 2 + 1 : n);
  dims.back() = 2;
  ctx.SetOutput(0, ctx.input_dtype(0), Shape(dims));
  return Status::OK();
}

Status StftKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 3 || (x.dim(2) != 1 && x.dim(2) != 2)) {
    return ctx.Error("signal must be [batch, length, 1 or 2], got " + x.TypeString());
  }
  KILN_ASSIGN_OR_RETURN(int64_t step, ScalarInt(ctx, 1, "frame_step"));
  if (step <= 0) return ctx.Error("frame_step must be positive");
  int64_t frame = -1;
  std::vector<double> window;
  if (ctx.has_input(2)) {
    if (ctx.input(2).rank() != 1) return ctx.Error("window must be 1-D");
    window = ReadDoubles(ctx.input(2));
    frame = static_cast<int64_t>(window.size());
  }
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(int64_t fl, ScalarInt(ctx, 3, "frame_length"));
    if (frame >= 0 && fl != frame) return ctx.Error("frame_length differs from window length");
    frame = fl;
  }
  if (frame <= 0) return ctx.Error("a window or a positive frame_length is required");
  const int64_t batch = x.dim(0), len = x.dim(1);
  if (frame > len) return ctx.Error("frame_length exceeds the signal length");
  const int64_t frames = (len - frame) / step + 1;
  const int64_t bins = ctx.GetInt("onesided") != 0 ? frame / 2 + 1 : frame;
  std::vector<double> in = ToComplex(x);
  std::vector<double> buf(static_cast<size_t>(2 * frame));
  std::vector<double> out(static_cast<size_t>(batch * frames * bins * 2));
  std::vector<double> cos_t, sin_t;
  Twiddles(frame, &cos_t, &sin_t);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t f = 0; f < frames; ++f) {
      const double* src = in.data() + 2 * (b * len + f * step);
      for (int64_t k = 0; k < frame; ++k) {
        const double w = window.empty() ? 1.0 : window[k];
        buf[2 * k] = src[2 * k] * w;
        buf[2 * k + 1] = src[2 * k + 1] * w;
      }
      Dft1(buf.data(), 1, frame, frame, false, bins, out.data() + 2 * (b * frames + f) * bins, 1,
           cos_t, sin_t);
    }
  }
  return SetDoubles(ctx, out, {batch, frames, bins, 2}, x.dtype());
}

Status StftInfer(InferContext& ctx) {
  const Shape& xs = ctx.input_shape(0);
  int64_t step = -1, frame = -1;
  ConstantScalarInt(ctx, 1, &step);
  if (ctx.has_input(2) && ctx.input_shape(2).rank_known() && ctx.input_shape(2).rank() == 1) {
    frame = ctx.input_shape(2).dim(0);
  }
  if (ctx.has_input(3)) ConstantScalarInt(ctx, 3, &frame);
  int64_t batch = -1, frames = -1, bins = -1;
  if (xs.rank_known() && xs.rank() == 3) {
    batch = xs.dim(0);
    if (xs.dim(1) >= 0 && step > 0 && frame > 0 && frame <= xs.dim(1)) {
      frames = (xs.dim(1) - frame) / step + 1;
    }
  }
  if (frame > 0) bins = ctx.GetInt("onesided") != 0 ? frame / 2 + 1 : frame;
  ctx.SetOutput(0, ctx.input_dtype(0), Shape({batch, frames, bins, 2}));
  return Status::OK();
}

// ----------------------------------------------------------------------- MelWeightMatrix

// The ONNX reference construction (triangular filters on mel-spaced FFT bins).
Status MelKernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t mels, ScalarInt(ctx, 0, "num_mel_bins"));
  KILN_ASSIGN_OR_RETURN(int64_t dft_length, ScalarInt(ctx, 1, "dft_length"));
  KILN_ASSIGN_OR_RETURN(int64_t rate, ScalarInt(ctx, 2, "sample_rate"));
  KILN_ASSIGN_OR_RETURN(double lo, ScalarDouble(ctx, 3, "lower_edge_hertz"));
  KILN_ASSIGN_OR_RETURN(double hi, ScalarDouble(ctx, 4, "upper_edge_hertz"));
  KILN_ASSIGN_OR_RETURN(DataType dtype, OutputDatatype(ctx));
  if (mels <= 0 || dft_length <= 0 || rate <= 0) {
    return ctx.Error("num_mel_bins, dft_length and sample_rate must be positive");
  }
  if (!(lo >= 0 && hi > lo)) return ctx.Error("need 0 <= lower_edge_hertz < upper_edge_hertz");
  const int64_t spec_bins = dft_length / 2 + 1;
  KILN_RETURN_IF_ERROR(CheckedNumElements({spec_bins, mels}).status());
  const double lo_mel = 2595 * std::log10(1 + lo / 700), hi_mel = 2595 * std::log10(1 + hi / 700);
  const double step = (hi_mel - lo_mel) / static_cast<double>(mels + 2);
  std::vector<int64_t> fb(static_cast<size_t>(mels + 2));
  for (int64_t i = 0; i < mels + 2; ++i) {
    const double hz = 700 * (std::pow(10.0, (static_cast<double>(i) * step + lo_mel) / 2595) - 1);
    fb[i] = static_cast<int64_t>(
        std::floor(static_cast<double>(dft_length + 1) * hz / static_cast<double>(rate)));
  }
  std::vector<double> out(static_cast<size_t>(spec_bins * mels), 0.0);
  auto set = [&](int64_t j, int64_t i, double v) {
    if (j >= 0 && j < spec_bins) out[j * mels + i] = v;
  };
  for (int64_t i = 0; i < mels; ++i) {
    const int64_t left = fb[i], center = fb[i + 1], right = fb[i + 2];
    if (center == left) {
      set(center, i, 1);
    } else {
      for (int64_t j = left; j <= center; ++j) {
        set(j, i, static_cast<double>(j - left) / static_cast<double>(center - left));
      }
    }
    for (int64_t j = center; j < right; ++j) {
      set(j, i, static_cast<double>(right - j) / static_cast<double>(right - center));
    }
  }
  return SetDoubles(ctx, out, {spec_bins, mels}, dtype);
}

Status MelInfer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DataType dtype, OutputDatatype(ctx));
  int64_t mels = -1, dft = -1;
  ConstantScalarInt(ctx, 0, &mels);
  ConstantScalarInt(ctx, 1, &dft);
  ctx.SetOutput(0, dtype, Shape({dft < 0 ? -1 : dft / 2 + 1, mels}));
  return Status::OK();
}

// ---------------------------------------------------------------------------------- Det

Status DetKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int r = x.rank();
  if (r < 2 || x.dim(r - 1) != x.dim(r - 2)) {
    return ctx.Error("input must be [..., M, M], got " + x.TypeString());
  }
  const int64_t m = x.dim(r - 1);
  std::vector<int64_t> dims(x.dims().begin(), x.dims().end() - 2);
  const std::vector<double> v = ReadDoubles(x);
  const int64_t batch = m == 0 ? x.num_elements() : x.num_elements() / (m * m);
  int64_t count = 1;
  for (int64_t d : dims) count *= d;
  std::vector<double> out(static_cast<size_t>(count), 1.0);
  std::vector<double> a(static_cast<size_t>(m * m));
  for (int64_t b = 0; b < batch && m > 0; ++b) {
    std::copy_n(v.begin() + b * m * m, m * m, a.begin());
    double det = 1;
    for (int64_t c = 0; c < m && det != 0; ++c) {
      int64_t p = c;
      for (int64_t i = c + 1; i < m; ++i) {
        if (std::fabs(a[i * m + c]) > std::fabs(a[p * m + c])) p = i;
      }
      if (a[p * m + c] == 0) {
        det = 0;
        break;
      }
      if (p != c) {
        std::swap_ranges(a.begin() + p * m, a.begin() + (p + 1) * m, a.begin() + c * m);
        det = -det;
      }
      det *= a[c * m + c];
      for (int64_t i = c + 1; i < m; ++i) {
        const double f = a[i * m + c] / a[c * m + c];
        for (int64_t j = c; j < m; ++j) a[i * m + j] -= f * a[c * m + j];
      }
    }
    out[b] = det;
  }
  return SetDoubles(ctx, out, dims, x.dtype());
}

Status DetInfer(InferContext& ctx) {
  const Shape& xs = ctx.input_shape(0);
  if (!xs.rank_known() || xs.rank() < 2) {
    ctx.SetOutput(0, ctx.input_dtype(0), Shape::UnknownRank());
    return Status::OK();
  }
  std::vector<int64_t> dims(xs.dims().begin(), xs.dims().end() - 2);
  ctx.SetOutput(0, ctx.input_dtype(0), Shape(dims));
  return Status::OK();
}

// ---------------------------------------------------------------------------- MaxUnpool

// The default output spatial dims: (in - 1) * stride + kernel - pad_begin - pad_end.
StatusOr<std::vector<int64_t>> UnpoolDims(const AttrReader& ctx, const std::vector<int64_t>& in) {
  const std::vector<int64_t> k = ctx.GetInts("kernel_shape");
  const size_t r = k.size();
  if (in.size() != r + 2) return ctx.Error("kernel_shape rank does not match the input");
  std::vector<int64_t> s = ctx.GetInts("strides"), p = ctx.GetInts("pads");
  if (s.empty()) s.assign(r, 1);
  if (p.empty()) p.assign(2 * r, 0);
  if (s.size() != r || p.size() != 2 * r) return ctx.Error("strides/pads size mismatch");
  std::vector<int64_t> out = {in[0], in[1]};
  for (size_t i = 0; i < r; ++i) {
    if (in[i + 2] < 0) {
      out.push_back(-1);
      continue;
    }
    const int64_t d = (in[i + 2] - 1) * s[i] + k[i] - p[i] - p[i + r];
    if (k[i] <= 0 || s[i] <= 0 || d < 0) return ctx.Error("invalid kernel/strides/pads");
    out.push_back(d);
  }
  return out;
}

// Indices are flat positions in the default-shaped output (what MaxPool produced); a larger
// output_shape pads at the end of each dim, so each index keeps its coordinates.
Status MaxUnpoolKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& idx = ctx.input(1);
  if (idx.dims() != x.dims()) return ctx.Error("I must have the shape of X");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> base, UnpoolDims(ctx, x.dims()));
  std::vector<int64_t> dims = base;
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(dims, ReadInt64s(ctx.input(2)));
    if (dims.size() != base.size()) return ctx.Error("output_shape rank mismatch");
    for (size_t d = 0; d < dims.size(); ++d) {
      if (dims[d] < base[d]) {
        return ctx.Error("output_shape " + DimsToString(dims) + " is smaller than the pooled " +
                         "input's unpooled shape " + DimsToString(base));
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(int64_t base_count, CheckedNumElements(base));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), dims));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> ind, ReadInt64s(idx));
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    if (ind[i] < 0 || ind[i] >= base_count) {
      return ctx.Error("index " + std::to_string(ind[i]) + " is out of range for " +
                       DimsToString(base));
    }
    int64_t rest = ind[i], out = 0, stride = 1;
    for (int d = static_cast<int>(base.size()) - 1; d >= 0; --d) {
      out += (rest % base[d]) * stride;
      rest /= base[d];
      stride *= dims[d];
    }
    CopyElement(x, i, y, out);
  }
  return Status::OK();
}

Status MaxUnpoolInfer(InferContext& ctx) {
  const Shape& xs = ctx.input_shape(0);
  if (ctx.has_input(2)) {
    const Tensor* c = ctx.constant_input(2);
    if (c == nullptr) {
      ctx.SetOutput(
          0, ctx.input_dtype(0),
          xs.rank_known() ? Shape(std::vector<int64_t>(xs.rank(), -1)) : Shape::UnknownRank());
      return Status::OK();
    }
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, ReadInt64s(*c));
    ctx.SetOutput(0, ctx.input_dtype(0), Shape(dims));
    return Status::OK();
  }
  if (!xs.rank_known()) {
    ctx.SetOutput(0, ctx.input_dtype(0), Shape::UnknownRank());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, UnpoolDims(ctx, xs.dims()));
  ctx.SetOutput(0, ctx.input_dtype(0), Shape(dims));
  return Status::OK();
}

// ------------------------------------------------------------------ QLinearMatMul / Conv

// round-half-even(v) + zero point, saturated to T.
template <typename T>
T Requantize(double v, int64_t zp) {
  const double q = std::nearbyint(v) + static_cast<double>(zp);
  return static_cast<T>(std::clamp(q, static_cast<double>(std::numeric_limits<T>::min()),
                                   static_cast<double>(std::numeric_limits<T>::max())));
}

// A per-tensor (one value) or per-slice (`n` values) quantization parameter.
StatusOr<std::vector<double>> QuantParam(const KernelContext& ctx, int i, int64_t n,
                                         const char* what) {
  std::vector<double> v = ReadDoubles(ctx.input(i));
  if (v.size() == 1) v.assign(static_cast<size_t>(n), v[0]);
  if (static_cast<int64_t>(v.size()) != n) {
    return ctx.Error(std::string(what) + " must have 1 or " + std::to_string(n) + " values");
  }
  return v;
}

template <typename Y>
Status WriteQuantized(KernelContext& ctx, const std::vector<double>& real,
                      std::vector<int64_t> dims, DataType dtype, int64_t zp) {
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, dtype, std::move(dims)));
  Y* p = y->mutable_data<Y>();
  for (size_t i = 0; i < real.size(); ++i) p[i] = Requantize<Y>(real[i], zp);
  return Status::OK();
}

Status WriteQuantizedAny(KernelContext& ctx, const std::vector<double>& real,
                         std::vector<int64_t> dims, int zp_input) {
  const Tensor& zpt = ctx.input(zp_input);
  if (zpt.num_elements() != 1) return ctx.Error("y_zero_point must be a scalar");
  const auto zp = static_cast<int64_t>(zpt.GetAsDouble(0));
  if (zpt.dtype() == DataType::kInt8) {
    return WriteQuantized<int8_t>(ctx, real, std::move(dims), zpt.dtype(), zp);
  }
  return WriteQuantized<uint8_t>(ctx, real, std::move(dims), zpt.dtype(), zp);
}

Status QLinearMatMulKernel(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(3);
  if (a.rank() < 1 || b.rank() < 1) return ctx.Error("inputs must not be scalars");
  std::vector<int64_t> ad = a.dims(), bd = b.dims();
  if (ad.size() == 1) ad.insert(ad.begin(), 1);
  if (bd.size() == 1) bd.push_back(1);
  const int64_t m = ad[ad.size() - 2], k = ad.back(), n = bd.back();
  if (bd[bd.size() - 2] != k) {
    return ctx.Error("inner dimensions differ: " + a.TypeString() + " x " + b.TypeString());
  }
  const std::vector<int64_t> abatch(ad.begin(), ad.end() - 2), bbatch(bd.begin(), bd.end() - 2);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> batch, BroadcastDims({abatch, bbatch}));
  KILN_ASSIGN_OR_RETURN(std::vector<double> as, QuantParam(ctx, 1, m, "a_scale"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> az, QuantParam(ctx, 2, m, "a_zero_point"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> bs, QuantParam(ctx, 4, n, "b_scale"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> bz, QuantParam(ctx, 5, n, "b_zero_point"));
  if (ctx.input(6).num_elements() != 1) return ctx.Error("y_scale must be a scalar");
  const double ys = ctx.input(6).GetAsDouble(0);
  if (!(ys > 0)) return ctx.Error("y_scale must be positive");
  const std::vector<double> av = ReadDoubles(a), bv = ReadDoubles(b);
  std::vector<int64_t> out_dims = batch;
  out_dims.push_back(m);
  out_dims.push_back(n);
  KILN_ASSIGN_OR_RETURN(int64_t total, CheckedNumElements(out_dims));
  std::vector<double> real(static_cast<size_t>(total));
  std::vector<int64_t> sa = BroadcastStrides(abatch, batch), sb = BroadcastStrides(bbatch, batch);
  ForEachBroadcast(batch, {sa, sb}, [&](int64_t o, const int64_t* off) {
    const double* ap = av.data() + off[0] * m * k;
    const double* bp = bv.data() + off[1] * k * n;
    double* yp = real.data() + o * m * n;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        int64_t acc = 0;
        for (int64_t t = 0; t < k; ++t) {
          acc += static_cast<int64_t>(ap[i * k + t] - az[i]) *
                 static_cast<int64_t>(bp[t * n + j] - bz[j]);
        }
        yp[i * n + j] = static_cast<double>(acc) * (as[i] * bs[j] / ys);
      }
    }
  });
  if (a.rank() == 1) out_dims.erase(out_dims.end() - 2);
  if (b.rank() == 1) out_dims.pop_back();
  return WriteQuantizedAny(ctx, real, out_dims, 7);
}

Status QLinearMatMulInfer(InferContext& ctx) {
  const Shape& as = ctx.input_shape(0);
  const Shape& bs = ctx.input_shape(3);
  Shape out = Shape::UnknownRank();
  if (as.rank_known() && bs.rank_known() && as.rank() >= 2 && bs.rank() >= 2) {
    std::vector<int64_t> ab(as.dims().begin(), as.dims().end() - 2);
    std::vector<int64_t> bb(bs.dims().begin(), bs.dims().end() - 2);
    out = BroadcastShapes({Shape(ab), Shape(bb)});
    std::vector<int64_t> d = out.dims();
    d.push_back(as.dim(as.rank() - 2));
    d.push_back(bs.dim(bs.rank() - 1));
    out = Shape(d);
  }
  ctx.SetOutput(0, ctx.input_dtype(7), out);
  return Status::OK();
}

// Conv geometry shared by kernel and shape function: the kernel's spatial dims come from the
// attribute when set, else from W.
StatusOr<WindowGeometry> QConvGeometry(const AttrReader& ctx, const std::vector<int64_t>& x,
                                       const std::vector<int64_t>& w) {
  if (x.size() < 3 || w.size() != x.size()) return ctx.Error("X and W must have equal rank >= 3");
  std::vector<int64_t> kernel(w.begin() + 2, w.end());
  if (ctx.HasAttr("kernel_shape") && ctx.GetInts("kernel_shape") != kernel) {
    return ctx.Error("kernel_shape does not match W");
  }
  return ComputeWindowGeometry(ctx, std::vector<int64_t>(x.begin() + 2, x.end()), kernel, false);
}

Status QLinearConvKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(3);
  KILN_ASSIGN_OR_RETURN(WindowGeometry g, QConvGeometry(ctx, x.dims(), w.dims()));
  const int64_t n = x.dim(0), c = x.dim(1), mo = w.dim(0), group = ctx.GetInt("group");
  if (group <= 0 || c % group != 0 || mo % group != 0 || w.dim(1) != c / group) {
    return ctx.Error("channel counts do not match group " + std::to_string(group));
  }
  if (ctx.input(1).num_elements() != 1 || ctx.input(2).num_elements() != 1) {
    return ctx.Error("x_scale and x_zero_point must be scalars");
  }
  const double xs = ctx.input(1).GetAsDouble(0), xz = ctx.input(2).GetAsDouble(0);
  KILN_ASSIGN_OR_RETURN(std::vector<double> ws, QuantParam(ctx, 4, mo, "w_scale"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> wz, QuantParam(ctx, 5, mo, "w_zero_point"));
  if (ctx.input(6).num_elements() != 1) return ctx.Error("y_scale must be a scalar");
  const double ys = ctx.input(6).GetAsDouble(0);
  if (!(ys > 0)) return ctx.Error("y_scale must be positive");
  std::vector<double> bias(static_cast<size_t>(mo), 0.0);
  if (ctx.has_input(8)) {
    if (ctx.input(8).num_elements() != mo) return ctx.Error("B must have M values");
    bias = ReadDoubles(ctx.input(8));
  }
  const int r = g.rank();
  std::vector<int64_t> out_dims = {n, mo};
  out_dims.insert(out_dims.end(), g.out.begin(), g.out.end());
  KILN_ASSIGN_OR_RETURN(int64_t total, CheckedNumElements(out_dims));
  const std::vector<double> xv = ReadDoubles(x), wv = ReadDoubles(w);
  const std::vector<int64_t> in(x.dims().begin() + 2, x.dims().end());
  const int64_t in_size = ProductOrUnknown(in), k_size = ProductOrUnknown(g.kernel);
  const int64_t out_size = ProductOrUnknown(g.out), cg = c / group, mg = mo / group;
  std::vector<double> real(static_cast<size_t>(total));
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t oc = 0; oc < mo; ++oc) {
      const int64_t grp = oc / mg;
      int64_t o = 0;
      ForEachIndex(g.out, [&](const std::vector<int64_t>& op) {
        int64_t acc = static_cast<int64_t>(bias[oc]);
        int64_t kflat = 0;
        ForEachIndex(g.kernel, [&](const std::vector<int64_t>& kp) {
          int64_t xoff = 0;
          bool inside = true;
          for (int d = 0; d < r && inside; ++d) {
            const int64_t pos = op[d] * g.strides[d] - g.pads_begin[d] + kp[d] * g.dilations[d];
            inside = pos >= 0 && pos < in[d];
            xoff = xoff * in[d] + pos;
          }
          if (inside) {
            for (int64_t ic = 0; ic < cg; ++ic) {
              const double xq = xv[((b * c) + grp * cg + ic) * in_size + xoff] - xz;
              const double wq = wv[(oc * cg + ic) * k_size + kflat] - wz[oc];
              acc += static_cast<int64_t>(xq) * static_cast<int64_t>(wq);
            }
          }
          ++kflat;
        });
        real[(b * mo + oc) * out_size + o++] = static_cast<double>(acc) * (xs * ws[oc] / ys);
      });
    }
  }
  return WriteQuantizedAny(ctx, real, out_dims, 7);
}

Status QLinearConvInfer(InferContext& ctx) {
  const Shape& xs = ctx.input_shape(0);
  const Shape& ws = ctx.input_shape(3);
  Shape out = Shape::UnknownRank();
  if (xs.rank_known() && ws.rank_known() && xs.rank() >= 3 && ws.rank() == xs.rank()) {
    bool kernel_known = true;
    for (int i = 2; i < ws.rank(); ++i) kernel_known = kernel_known && ws.dim(i) >= 0;
    std::vector<int64_t> d = {xs.dim(0), ws.dim(0)};
    if (kernel_known) {
      KILN_ASSIGN_OR_RETURN(WindowGeometry g, QConvGeometry(ctx, xs.dims(), ws.dims()));
      d.insert(d.end(), g.out.begin(), g.out.end());
    } else {
      d.resize(xs.rank(), -1);
    }
    out = Shape(d);
  }
  ctx.SetOutput(0, ctx.input_dtype(7), out);
  return Status::OK();
}

// ---------------------------------------------------------------------- LpNormalization

Status LpNormKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t p = ctx.GetInt("p");
  if (p != 1 && p != 2) return ctx.Error("p must be 1 or 2");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.GetInt("axis"), x.rank(), ctx.node()));
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= x.dim(i);
  for (int i = axis + 1; i < x.rank(); ++i) inner *= x.dim(i);
  const int64_t len = x.dim(axis);
  std::vector<double> v = ReadDoubles(x);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      double* base = v.data() + o * len * inner + i;
      double norm = 0;
      for (int64_t j = 0; j < len; ++j) {
        norm += p == 1 ? std::fabs(base[j * inner]) : base[j * inner] * base[j * inner];
      }
      if (p == 2) norm = std::sqrt(norm);
      if (norm == 0) continue;  // a zero vector stays zero
      for (int64_t j = 0; j < len; ++j) base[j * inner] /= norm;
    }
  }
  return SetDoubles(ctx, v, x.dims(), x.dtype());
}

}  // namespace

void RegisterExtraOps(OpRegistry& r) {
  MustRegister(r, OpSchema("Dropout")
                      .Doc("Inference-mode dropout: Y = X, mask all true. training_mode with "
                           "ratio > 0 is unsupported (its output is random).")
                      .Inputs(1, 3)
                      .Outputs(1, 2)
                      .AttrDefault("ratio", 0.5f)
                      .AttrNoDefault("seed", AttrType::kInt)
                      .InputTypes(0, FloatTypes())
                      .InputTypes(1, FloatTypes())
                      .InputTypes(2, {DataType::kBool})
                      .Infer(DropoutInfer)
                      .Kernel(DropoutKernel));
  MustRegister(r, OpSchema("GridSample")
                      .Doc("Samples X [N,C,H,W] at grid [N,Hout,Wout,2] (x, y in [-1, 1]).")
                      .Inputs(2, 2)
                      .Outputs(1, 1)
                      .AttrDefault("align_corners", int64_t{0})
                      .AttrDefault("mode", "bilinear")
                      .AttrDefault("padding_mode", "zeros")
                      .InputTypes(0, FloatTypes())
                      .InputTypes(1, FloatTypes())
                      .PromoteHalfToFloat()
                      .Infer(GridSampleInfer)
                      .Kernel(GridSampleKernel));
  RegisterWindow(r, "HannWindow", {0.5, -0.5});
  RegisterWindow(r, "HammingWindow", {25.0 / 46.0, -(1.0 - 25.0 / 46.0)});
  RegisterWindow(r, "BlackmanWindow", {0.42, -0.5, 0.08});
  MustRegister(r, OpSchema("DFT")
                      .Doc("Discrete Fourier transform along `axis` (opset 17); the last dim "
                           "is 1 (real) or 2 (complex); output is complex.")
                      .Inputs(1, 2)
                      .Outputs(1, 1)
                      .AttrDefault("axis", int64_t{1})
                      .AttrDefault("inverse", int64_t{0})
                      .AttrDefault("onesided", int64_t{0})
                      .InputTypes(0, FloatTypes())
                      .InputTypes(1, IndexTypes())
                      .PromoteHalfToFloat()
                      .Infer(DftInfer)
                      .Kernel(DftKernel));
  MustRegister(r, OpSchema("STFT")
                      .Doc("Short-time Fourier transform of signal [batch, length, 1|2].")
                      .Inputs(2, 4)
                      .Outputs(1, 1)
                      .AttrDefault("onesided", int64_t{1})
                      .InputTypes(0, FloatTypes())
                      .InputTypes(1, IndexTypes())
                      .InputTypes(2, FloatTypes())
                      .InputTypes(3, IndexTypes())
                      .PromoteHalfToFloat()
                      .Infer(StftInfer)
                      .Kernel(StftKernel));
  MustRegister(r, OpSchema("MelWeightMatrix")
                      .Doc("Mel filter bank matrix [dft_length / 2 + 1, num_mel_bins].")
                      .Inputs(5, 5)
                      .Outputs(1, 1)
                      .AttrDefault("output_datatype", int64_t{1})
                      .InputTypes(0, IndexTypes())
                      .InputTypes(1, IndexTypes())
                      .InputTypes(2, IndexTypes())
                      .InputTypes(3, FloatTypes())
                      .InputTypes(4, FloatTypes())
                      .Infer(MelInfer)
                      .Kernel(MelKernel));
  MustRegister(r, OpSchema("Det")
                      .Doc("Determinant of square matrices [..., M, M].")
                      .Inputs(1, 1)
                      .Outputs(1, 1)
                      .InputTypes(0, FloatTypes())
                      .PromoteHalfToFloat()
                      .Infer(DetInfer)
                      .Kernel(DetKernel));
  MustRegister(r, OpSchema("MaxUnpool")
                      .Doc("Scatters X into a zero tensor at MaxPool's flat indices I.")
                      .Inputs(2, 3)
                      .Outputs(1, 1)
                      .AttrNoDefault("kernel_shape", AttrType::kInts, /*required=*/true)
                      .AttrNoDefault("pads", AttrType::kInts)
                      .AttrNoDefault("strides", AttrType::kInts)
                      .InputTypes(0, FloatTypes())
                      .InputTypes(1, {DataType::kInt64})
                      .InputTypes(2, {DataType::kInt64})
                      .Infer(MaxUnpoolInfer)
                      .Kernel(MaxUnpoolKernel));
  const TypeList q8 = {DataType::kInt8, DataType::kUInt8};
  const TypeList scale = {DataType::kFloat32};
  MustRegister(r, OpSchema("QLinearMatMul")
                      .Doc("Quantized MatMul: int accumulation, requantized round-half-even.")
                      .Inputs(8, 8)
                      .Outputs(1, 1)
                      .InputTypes(0, q8)
                      .InputTypes(1, scale)
                      .InputTypes(2, q8)
                      .InputTypes(3, q8)
                      .InputTypes(4, scale)
                      .InputTypes(5, q8)
                      .InputTypes(6, scale)
                      .InputTypes(7, q8)
                      .Infer(QLinearMatMulInfer)
                      .Kernel(QLinearMatMulKernel));
  MustRegister(r, OpSchema("QLinearConv")
                      .Doc("Quantized Conv: int accumulation (+ int32 B), requantized "
                           "round-half-even; w_scale/w_zero_point per tensor or per channel.")
                      .Inputs(8, 9)
                      .Outputs(1, 1)
                      .AttrDefault("auto_pad", "NOTSET")
                      .AttrNoDefault("dilations", AttrType::kInts)
                      .AttrDefault("group", int64_t{1})
                      .AttrNoDefault("kernel_shape", AttrType::kInts)
                      .AttrNoDefault("pads", AttrType::kInts)
                      .AttrNoDefault("strides", AttrType::kInts)
                      .InputTypes(0, q8)
                      .InputTypes(1, scale)
                      .InputTypes(2, q8)
                      .InputTypes(3, q8)
                      .InputTypes(4, scale)
                      .InputTypes(5, q8)
                      .InputTypes(6, scale)
                      .InputTypes(7, q8)
                      .InputTypes(8, {DataType::kInt32})
                      .Infer(QLinearConvInfer)
                      .Kernel(QLinearConvKernel));
  MustRegister(r, OpSchema("LpNormalization")
                      .Doc("X / ||X||_p along `axis` (p = 1 or 2).")
                      .Inputs(1, 1)
                      .Outputs(1, 1)
                      .AttrDefault("axis", int64_t{-1})
                      .AttrDefault("p", int64_t{2})
                      .InputTypes(0, FloatTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferSameAsInput0)
                      .Kernel(LpNormKernel));
}

}  // namespace kiln
