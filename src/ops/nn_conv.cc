// Op family: nn_conv — Conv, ConvTranspose, ConvInteger (1-D, 2-D, 3-D and beyond).
//
// Conv lowers each (image, group) to im2col + GEMM: col[C/g * prod(kernel), prod(out)] and
// Y_g[M/g, prod(out)] = W_g[M/g, C/g * prod(kernel)] * col; a 1x1, stride-1, unpadded conv
// uses the input as col directly. ConvTranspose is the adjoint: col = W_g^T * X_g, then col2im
// accumulates col into Y. float32 uses the packed GemmF32, float64 GemmF64, float16/bfloat16
// are promoted to float32, ConvInteger computes in int32.
//
// data_format="NHWC" (kiln extension: X and Y channels-last, W stays OIHW / IOHW) runs GEMMs
// over all positions at once: Conv Y[out_sp, M/g] = col[out_sp, k * C/g] * W_g^T with an
// NHWC-order im2col (none for 1x1 stride-1 unpadded: X itself is A, lda = C), a direct
// channel-vectorized loop for depthwise (group == C == M); ConvTranspose col[in_sp, k * M/g] =
// X_g * W_g, scattered into Y.
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "ops/base/dispatch.h"
#include "ops/base/gemm.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/nn_window.h"

namespace kiln {
namespace {

// C[m,n] = op(A) * B (beta 0) in the element type.
void GemmT(bool ta, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float* c, int64_t ldc) {
  GemmF32(ta, false, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
}
void GemmT(bool ta, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda, const double* b,
           int64_t ldb, double* c, int64_t ldc) {
  GemmF64(ta, false, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc);
}
// int32 (ConvInteger): wrapping arithmetic, like the int32 accumulators it models.
void GemmT(bool ta, int64_t m, int64_t n, int64_t k, const int32_t* a, int64_t lda,
           const int32_t* b, int64_t ldb, int32_t* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    uint32_t* ci = reinterpret_cast<uint32_t*>(c + i * ldc);
    std::fill(ci, ci + n, 0u);
    for (int64_t p = 0; p < k; ++p) {
      const uint32_t av = static_cast<uint32_t>(ta ? a[p * lda + i] : a[i * lda + p]);
      const int32_t* bp = b + p * ldb;
      for (int64_t j = 0; j < n; ++j) ci[j] += av * static_cast<uint32_t>(bp[j]);
    }
  }
}

// Walks the (channel, kernel offset) rows of a col buffer whose columns are the positions of
// `cols` (conv: output positions; transposed conv: input positions) and maps them onto `img`
// (conv: the input image; transposed: the output image): position o maps to
// o * stride + k * dilation - pad_begin. For each run along the last axis calls
// seg(col_offset, img_offset, lo, hi, last_base, last_stride): columns [lo, hi) of the run map
// to img[img_offset + o * last_stride + last_base]; img_offset is -1 when the leading axes fall
// outside the image (the whole run is padding).
template <typename F>
void WalkWindows(int64_t channels, const std::vector<int64_t>& img,
                 const std::vector<int64_t>& cols, const WindowGeometry& g, F&& seg) {
  const int r = g.rank();
  const int64_t img_sp = ProductOrUnknown(img), col_sp = ProductOrUnknown(cols);
  const int64_t col_last = cols[r - 1], img_last = img[r - 1], s_last = g.strides[r - 1];
  std::vector<int64_t> img_strides(r, 1);
  for (int d = r - 2; d >= 0; --d) img_strides[d] = img_strides[d + 1] * img[d + 1];
  const std::vector<int64_t> outer(cols.begin(), cols.end() - 1);
  int64_t row = 0;
  for (int64_t c = 0; c < channels; ++c) {
    ForEachIndex(g.kernel, [&](const std::vector<int64_t>& k) {
      const int64_t base = k[r - 1] * g.dilations[r - 1] - g.pads_begin[r - 1];
      // Columns o with 0 <= o * s + base < img_last.
      int64_t lo = base >= 0 ? 0 : (-base + s_last - 1) / s_last;
      int64_t hi = img_last - 1 - base < 0 ? 0 : (img_last - 1 - base) / s_last + 1;
      lo = std::min(lo, col_last);
      hi = std::clamp(hi, lo, col_last);
      int64_t col_off = row * col_sp;
      ForEachIndex(outer, [&](const std::vector<int64_t>& o) {
        int64_t img_off = c * img_sp;
        for (int d = 0; d < r - 1 && img_off >= 0; ++d) {
          const int64_t x = o[d] * g.strides[d] + k[d] * g.dilations[d] - g.pads_begin[d];
          img_off = (x < 0 || x >= img[d]) ? -1 : img_off + x * img_strides[d];
        }
        seg(col_off, img_off, lo, hi, base, s_last);
        col_off += col_last;
      });
      ++row;
    });
  }
}

template <typename T>
void Im2Col(const T* x, int64_t channels, const std::vector<int64_t>& in,
            const std::vector<int64_t>& out, const WindowGeometry& g, T* col) {
  const int64_t col_last = out.back();
  WalkWindows(channels, in, out, g,
              [&](int64_t co, int64_t xo, int64_t lo, int64_t hi, int64_t base, int64_t s) {
                T* dst = col + co;
                if (xo < 0) {
                  std::fill(dst, dst + col_last, T(0));
                  return;
                }
                std::fill(dst, dst + lo, T(0));
                const T* src = x + xo + base;
                if (s == 1) {
                  std::copy(src + lo, src + hi, dst + lo);
                } else {
                  for (int64_t o = lo; o < hi; ++o) dst[o] = src[o * s];
                }
                std::fill(dst + hi, dst + col_last, T(0));
              });
}

template <typename T>
void Col2Im(const T* col, int64_t channels, const std::vector<int64_t>& out,
            const std::vector<int64_t>& in, const WindowGeometry& g, T* y) {
  WalkWindows(channels, out, in, g,
              [&](int64_t co, int64_t yo, int64_t lo, int64_t hi, int64_t base, int64_t s) {
                if (yo < 0) return;
                T* dst = y + yo + base;
                const T* src = col + co;
                for (int64_t o = lo; o < hi; ++o) dst[o * s] += src[o];
              });
}

// Sizes of one Conv / ConvTranspose evaluation.
struct ConvDims {
  int64_t batch = 0, in_ch = 0, out_ch = 0, group = 1;
  std::vector<int64_t> in, out;  // spatial
  WindowGeometry g;
};

// Scratch of `n` elements of T, or an error when it exceeds the tensor size cap.
template <typename T>
StatusOr<std::vector<T>> Scratch(const KernelContext& ctx, int64_t n) {
  if (n < 0 || MulOrUnknown(n, sizeof(T)) < 0 ||
      n * static_cast<int64_t>(sizeof(T)) > MaxTensorBytes()) {
    return ResourceExhausted(ctx.node().Describe() + ": im2col buffer is too large");
  }
  return std::vector<T>(static_cast<size_t>(n));
}

template <typename T>
Status ConvForward(const KernelContext& ctx, const ConvDims& d, const T* x, const T* w,
                   const T* bias, T* y) {
  const int64_t cg = d.in_ch / d.group, mg = d.out_ch / d.group;
  const int64_t kdim = MulOrUnknown(cg, ProductOrUnknown(d.g.kernel));
  const int64_t in_sp = ProductOrUnknown(d.in), out_sp = ProductOrUnknown(d.out);
  bool direct = true;  // 1x1, stride 1, no padding: the input is its own col buffer
  for (int i = 0; i < d.g.rank(); ++i) {
    direct = direct && d.g.kernel[i] == 1 && d.g.strides[i] == 1 && d.g.pads_begin[i] == 0 &&
             d.g.pads_end[i] == 0;
  }
  std::vector<T> col;
  if (!direct) {
    KILN_ASSIGN_OR_RETURN(col, Scratch<T>(ctx, MulOrUnknown(kdim, out_sp)));
  }
  for (int64_t n = 0; n < d.batch; ++n) {
    for (int64_t gi = 0; gi < d.group; ++gi) {
      const T* xg = x + (n * d.in_ch + gi * cg) * in_sp;
      if (!direct) Im2Col(xg, cg, d.in, d.out, d.g, col.data());
      T* yg = y + (n * d.out_ch + gi * mg) * out_sp;
      GemmT(false, mg, out_sp, kdim, w + gi * mg * kdim, kdim, direct ? xg : col.data(), out_sp, yg,
            out_sp);
      if (bias == nullptr) continue;
      for (int64_t m = 0; m < mg; ++m) {
        T* row = yg + m * out_sp;
        for (int64_t j = 0; j < out_sp; ++j) row[j] += bias[gi * mg + m];
      }
    }
  }
  return Status::OK();
}

template <typename T>
Status ConvTransposeForward(const KernelContext& ctx, const ConvDims& d, const T* x, const T* w,
                            const T* bias, T* y) {
  const int64_t cg = d.in_ch / d.group, mg = d.out_ch / d.group;
  const int64_t rows = MulOrUnknown(mg, ProductOrUnknown(d.g.kernel));
  const int64_t in_sp = ProductOrUnknown(d.in), out_sp = ProductOrUnknown(d.out);
  KILN_ASSIGN_OR_RETURN(std::vector<T> col, Scratch<T>(ctx, MulOrUnknown(rows, in_sp)));
  for (int64_t n = 0; n < d.batch; ++n) {
    T* yn = y + n * d.out_ch * out_sp;
    for (int64_t gi = 0; gi < d.group; ++gi) {
      // W is [C, M/g, k...]: group gi's block is [cg, rows]; col = W_g^T * X_g.
      GemmT(true, rows, in_sp, cg, w + gi * cg * rows, rows, x + (n * d.in_ch + gi * cg) * in_sp,
            in_sp, col.data(), in_sp);
      Col2Im(col.data(), mg, d.out, d.in, d.g, yn + gi * mg * out_sp);
    }
    if (bias == nullptr) continue;
    for (int64_t m = 0; m < d.out_ch; ++m) {
      for (int64_t j = 0; j < out_sp; ++j) yn[m * out_sp + j] += bias[m];
    }
  }
  return Status::OK();
}

// Channels-last Conv (see the file comment). W is regrouped per call into B matrices
// [taps * C/g, M/g] (row tap * C/g + c); col rows hold, per group, taps * C/g input values.
template <typename T>
Status ConvForwardNhwc(const KernelContext& ctx, const ConvDims& d, const T* x, const T* w,
                       const T* bias, T* y) {
  const int64_t C = d.in_ch, M = d.out_ch, cg = C / d.group, mg = M / d.group;
  const int64_t taps = ProductOrUnknown(d.g.kernel), kdim = MulOrUnknown(cg, taps);
  const int64_t in_sp = ProductOrUnknown(d.in), out_sp = ProductOrUnknown(d.out);
  const int64_t rows = MulOrUnknown(d.batch, out_sp);
  if constexpr (std::is_floating_point_v<T>) {
    if (cg == 1 && mg == 1) {  // depthwise: y[p, c] = sum_t x[off_t, c] * w[c, t]
      KILN_ASSIGN_OR_RETURN(std::vector<T> wt, Scratch<T>(ctx, MulOrUnknown(taps, C)));
      for (int64_t c = 0; c < C; ++c) {
        for (int64_t t = 0; t < taps; ++t) wt[t * C + c] = w[c * taps + t];
      }
      for (int64_t n = 0; n < d.batch; ++n) {
        const T* xn = x + n * in_sp * C;
        ForEachWindowTaps(d.g, d.out, d.in, [&](int64_t p, const std::vector<int64_t>& offs) {
          T* __restrict acc = y + (n * out_sp + p) * C;
          for (int64_t c = 0; c < C; ++c) acc[c] = bias != nullptr ? bias[c] : T(0);
          for (int64_t t = 0; t < taps; ++t) {
            if (offs[t] < 0) continue;
            const T* __restrict xs = xn + offs[t] * C;
            const T* __restrict ws = wt.data() + t * C;
            for (int64_t c = 0; c < C; ++c) acc[c] += xs[c] * ws[c];
          }
        });
      }
      return Status::OK();
    }
  }
  KILN_ASSIGN_OR_RETURN(std::vector<T> wt, Scratch<T>(ctx, MulOrUnknown(kdim, M)));
  for (int64_t gi = 0; gi < d.group; ++gi) {
    T* b = wt.data() + gi * kdim * mg;
    for (int64_t m = 0; m < mg; ++m) {
      const T* wm = w + (gi * mg + m) * kdim;  // [cg, taps]
      for (int64_t c = 0; c < cg; ++c) {
        for (int64_t t = 0; t < taps; ++t) b[(t * cg + c) * mg + m] = wm[c * taps + t];
      }
    }
  }
  bool direct = true;  // 1x1, stride 1, no padding: X [N * in_sp, C] is the col matrix
  for (int i = 0; i < d.g.rank(); ++i) {
    direct = direct && d.g.kernel[i] == 1 && d.g.strides[i] == 1 && d.g.pads_begin[i] == 0 &&
             d.g.pads_end[i] == 0;
  }
  if (direct) {
    for (int64_t gi = 0; gi < d.group; ++gi) {
      GemmT(false, rows, mg, cg, x + gi * cg, C, wt.data() + gi * kdim * mg, mg, y + gi * mg, M);
    }
  } else {
    // col[p, gi, t, c] = x[off_t(p), gi * cg + c]: group gi's A starts at gi * kdim, lda taps*C.
    const int64_t ld = MulOrUnknown(taps, C);
    KILN_ASSIGN_OR_RETURN(std::vector<T> col, Scratch<T>(ctx, MulOrUnknown(out_sp, ld)));
    for (int64_t n = 0; n < d.batch; ++n) {
      const T* xn = x + n * in_sp * C;
      ForEachWindowTaps(d.g, d.out, d.in, [&](int64_t p, const std::vector<int64_t>& offs) {
        T* row = col.data() + p * ld;
        for (int64_t gi = 0; gi < d.group; ++gi) {
          for (int64_t t = 0; t < taps; ++t, row += cg) {
            if (offs[t] < 0) {
              std::fill(row, row + cg, T(0));
            } else {
              std::copy(xn + offs[t] * C + gi * cg, xn + offs[t] * C + (gi + 1) * cg, row);
            }
          }
        }
      });
      for (int64_t gi = 0; gi < d.group; ++gi) {
        GemmT(false, out_sp, mg, kdim, col.data() + gi * kdim, ld, wt.data() + gi * kdim * mg, mg,
              y + n * out_sp * M + gi * mg, M);
      }
    }
  }
  if (bias != nullptr) {
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t m = 0; m < M; ++m) y[i * M + m] += bias[m];
    }
  }
  return Status::OK();
}

// Channels-last ConvTranspose: per group col[in_sp, taps * M/g] = X_g[in_sp, C/g] (lda C) *
// W_g[C/g, taps * M/g] (W regrouped from [C/g, M/g, taps]), then each (input position, tap)
// row segment of col is added to Y at its output position.
template <typename T>
Status ConvTransposeForwardNhwc(const KernelContext& ctx, const ConvDims& d, const T* x, const T* w,
                                const T* bias, T* y) {
  const int64_t C = d.in_ch, M = d.out_ch, cg = C / d.group, mg = M / d.group;
  const int64_t taps = ProductOrUnknown(d.g.kernel), cols = MulOrUnknown(taps, mg);
  const int64_t in_sp = ProductOrUnknown(d.in), out_sp = ProductOrUnknown(d.out);
  KILN_ASSIGN_OR_RETURN(std::vector<T> wr, Scratch<T>(ctx, MulOrUnknown(C, cols)));
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t m = 0; m < mg; ++m) {
      for (int64_t t = 0; t < taps; ++t) wr[c * cols + t * mg + m] = w[(c * mg + m) * taps + t];
    }
  }
  KILN_ASSIGN_OR_RETURN(std::vector<T> col, Scratch<T>(ctx, MulOrUnknown(in_sp, cols)));
  for (int64_t n = 0; n < d.batch; ++n) {
    T* yn = y + n * out_sp * M;
    for (int64_t gi = 0; gi < d.group; ++gi) {
      GemmT(false, in_sp, cols, cg, x + n * in_sp * C + gi * cg, C, wr.data() + gi * cg * cols,
            cols, col.data(), cols);
      ForEachWindowTaps(d.g, d.in, d.out, [&](int64_t p, const std::vector<int64_t>& offs) {
        for (int64_t t = 0; t < taps; ++t) {
          if (offs[t] < 0) continue;
          T* __restrict dst = yn + offs[t] * M + gi * mg;
          const T* __restrict src = col.data() + p * cols + t * mg;
          for (int64_t m = 0; m < mg; ++m) dst[m] += src[m];
        }
      });
    }
  }
  if (bias != nullptr) {
    for (int64_t i = 0; i < d.batch * out_sp; ++i) {
      for (int64_t m = 0; m < M; ++m) y[i * M + m] += bias[m];
    }
  }
  return Status::OK();
}

// Spatial kernel dims: the kernel_shape attribute when set (checked against W), else W's.
StatusOr<std::vector<int64_t>> KernelDims(const AttrReader& ctx, const Shape& w_shape,
                                          int spatial) {
  std::vector<int64_t> k;
  if (w_shape.rank_known()) {
    if (w_shape.rank() != spatial + 2) {
      return ctx.Error("W has rank " + std::to_string(w_shape.rank()) + ", expected " +
                       std::to_string(spatial + 2));
    }
    k.assign(w_shape.dims().begin() + 2, w_shape.dims().end());
  }
  if (ctx.HasAttr("kernel_shape")) {
    std::vector<int64_t> ks = ctx.GetInts("kernel_shape");
    if (static_cast<int>(ks.size()) != spatial) {
      return ctx.Error("kernel_shape has " + std::to_string(ks.size()) + " dims, expected " +
                       std::to_string(spatial));
    }
    for (size_t i = 0; i < k.size(); ++i) {
      if (k[i] >= 0 && k[i] != ks[i]) {
        return ctx.Error("kernel_shape " + DimsToString(ks) + " does not match W " +
                         w_shape.ToString());
      }
    }
    k = ks;
  }
  return k;
}

// ConvTranspose geometry: output size from output_shape, auto_pad or pads + output_padding.
StatusOr<WindowGeometry> ConvTransposeGeometry(const AttrReader& ctx,
                                               const std::vector<int64_t>& in,
                                               const std::vector<int64_t>& kernel) {
  const size_t r = in.size();
  // Strides, dilations and kernel are validated by the conv geometry (with a dummy input
  // large enough never to fail); pads and out are recomputed here.
  std::vector<int64_t> big(r, int64_t{1} << 40);
  KILN_ASSIGN_OR_RETURN(WindowGeometry g, ComputeWindowGeometry(ctx, big, kernel, false));
  std::vector<int64_t> out_pad = ctx.GetInts("output_padding");
  if (out_pad.empty()) out_pad.assign(r, 0);
  std::vector<int64_t> out_shape = ctx.GetInts("output_shape");
  if (out_shape.size() == r + 2) out_shape.erase(out_shape.begin(), out_shape.begin() + 2);
  if (out_pad.size() != r || (!out_shape.empty() && out_shape.size() != r)) {
    return ctx.Error("output_padding / output_shape do not match the spatial rank");
  }
  const std::string auto_pad = ctx.GetString("auto_pad");
  const bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
  if (auto_pad == "VALID") {
    std::fill(g.pads_begin.begin(), g.pads_begin.end(), 0);
    std::fill(g.pads_end.begin(), g.pads_end.end(), 0);
  }
  for (size_t i = 0; i < r; ++i) {
    if (out_pad[i] < 0) return ctx.Error("output_padding must be non-negative");
    const int64_t k_eff = (kernel[i] - 1) * g.dilations[i] + 1;
    if (in[i] < 0) {
      g.out[i] = out_shape.empty() ? -1 : out_shape[i];
      continue;
    }
    const int64_t full = MulOrUnknown(g.strides[i], in[i] - 1 < 0 ? 0 : in[i] - 1);
    if (full < 0) return ctx.Error("output size overflows");
    const int64_t natural = (in[i] == 0 ? 0 : full + k_eff) + out_pad[i];
    if (!out_shape.empty() || same) {
      g.out[i] = !out_shape.empty() ? out_shape[i] : in[i] * g.strides[i];
      const int64_t total = natural - g.out[i];
      const int64_t half = total >= 0 ? total / 2 : -((1 - total) / 2);  // floor(total / 2)
      g.pads_begin[i] = auto_pad == "SAME_UPPER" ? half : total - half;
      g.pads_end[i] = total - g.pads_begin[i];
    } else {
      g.out[i] = natural - g.pads_begin[i] - g.pads_end[i];
    }
    if (g.out[i] < 0) return ctx.Error("output size is negative");
  }
  return g;
}

template <typename Ctx>
StatusOr<ConvDims> ConvDimsFrom(const Ctx& ctx, const Shape& xs, const Shape& ws, bool transpose) {
  ConvDims d;
  d.group = ctx.GetInt("group");
  if (d.group <= 0) return ctx.Error("group must be positive");
  int spatial = xs.rank_known() ? xs.rank() - 2 : (ws.rank_known() ? ws.rank() - 2 : -1);
  if (spatial < 0 && ctx.HasAttr("kernel_shape")) {
    spatial = static_cast<int>(ctx.GetInts("kernel_shape").size());
  }
  if (spatial < 0) return d;  // rank unknown
  if (spatial < 1) return ctx.Error("input must have rank >= 3 (N, C, spatial...)");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> kernel, KernelDims(ctx, ws, spatial));
  std::vector<int64_t> x_dims =
      xs.rank_known() ? xs.dims() : std::vector<int64_t>(spatial + 2, Shape::kUnknownDim);
  if (static_cast<int>(x_dims.size()) != spatial + 2) return ctx.Error("X and W ranks differ");
  d.batch = x_dims[0];
  d.in_ch = x_dims[1];
  d.in.assign(x_dims.begin() + 2, x_dims.end());
  const int64_t w0 = ws.rank_known() ? ws.dim(0) : -1, w1 = ws.rank_known() ? ws.dim(1) : -1;
  if (!transpose) {
    d.out_ch = w0;
    if (d.in_ch >= 0 && w1 >= 0 && d.in_ch != w1 * d.group) {
      return ctx.Error("X has " + std::to_string(d.in_ch) + " channels but W expects " +
                       std::to_string(w1) + " x group " + std::to_string(d.group));
    }
    if (w0 >= 0 && w0 % d.group != 0) return ctx.Error("group does not divide output channels");
  } else {
    d.out_ch = MulOrUnknown(w1, d.group);
    if (d.in_ch >= 0 && w0 >= 0 && d.in_ch != w0) {
      return ctx.Error("X has " + std::to_string(d.in_ch) + " channels but W has " +
                       std::to_string(w0));
    }
    if (w0 >= 0 && w0 % d.group != 0) return ctx.Error("group does not divide input channels");
  }
  if (kernel.size() != static_cast<size_t>(spatial) ||
      std::any_of(kernel.begin(), kernel.end(), [](int64_t k) { return k < 0; })) {
    d.out.assign(spatial, -1);  // kernel unknown
    return d;
  }
  if (transpose) {
    KILN_ASSIGN_OR_RETURN(d.g, ConvTransposeGeometry(ctx, d.in, kernel));
  } else {
    KILN_ASSIGN_OR_RETURN(d.g, ComputeWindowGeometry(ctx, d.in, kernel, false));
  }
  d.out = d.g.out;
  return d;
}

// Y dims [N, M, out...], or [N, out..., M] channels-last.
std::vector<int64_t> OutputDims(const ConvDims& d, bool channels_last) {
  std::vector<int64_t> dims = {d.batch, d.out_ch};
  dims.insert(dims.end(), d.out.begin(), d.out.end());
  return channels_last ? ToChannelsLast(dims) : dims;
}

// X's shape in NCHW order.
Shape ChannelsFirstShape(const Shape& xs, bool channels_last) {
  return channels_last && xs.rank_known() ? Shape(ToChannelsFirst(xs.dims())) : xs;
}

Status InferConv(InferContext& ctx, bool transpose) {
  KILN_ASSIGN_OR_RETURN(const bool channels_last, ChannelsLast(ctx));
  KILN_ASSIGN_OR_RETURN(ConvDims d,
                        ConvDimsFrom(ctx, ChannelsFirstShape(ctx.input_shape(0), channels_last),
                                     ctx.input_shape(1), transpose));
  DataType dt = ctx.node().op_type == "ConvInteger" ? DataType::kInt32 : ctx.input_dtype(0);
  if (d.in.empty() && d.out.empty()) {
    ctx.SetOutput(0, dt, Shape::UnknownRank());
    return Status::OK();
  }
  ctx.SetOutput(0, dt, Shape(OutputDims(d, channels_last)));
  return Status::OK();
}

// Checks the runtime inputs of Conv/ConvTranspose/ConvInteger and allocates Y.
StatusOr<ConvDims> PrepareConv(KernelContext& ctx, bool transpose, bool channels_last,
                               DataType out_type, Tensor** y) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  if (x.rank() < 3) return ctx.Error("X must have rank >= 3, got " + x.TypeString());
  if (w.rank() != x.rank()) return ctx.Error("W " + w.TypeString() + " does not match X rank");
  KILN_ASSIGN_OR_RETURN(ConvDims d, ConvDimsFrom(ctx, ChannelsFirstShape(x.shape(), channels_last),
                                                 w.shape(), transpose));
  if (ctx.has_input(2) && ctx.node().op_type != "ConvInteger") {
    const Tensor& b = ctx.input(2);
    if (b.rank() != 1 || b.dim(0) != d.out_ch) {
      return ctx.Error("B must be [" + std::to_string(d.out_ch) + "], got " + b.TypeString());
    }
  }
  KILN_ASSIGN_OR_RETURN(*y, ctx.AllocateOutput(0, out_type, OutputDims(d, channels_last)));
  return d;
}

Status ConvKernel(KernelContext& ctx, bool transpose) {
  const Tensor& x = ctx.input(0);
  if (ctx.input(1).dtype() != x.dtype() ||
      (ctx.has_input(2) && ctx.input(2).dtype() != x.dtype())) {
    return ctx.Error("X, W and B must have the same dtype");
  }
  KILN_ASSIGN_OR_RETURN(const bool nhwc, ChannelsLast(ctx));
  Tensor* y = nullptr;
  KILN_ASSIGN_OR_RETURN(ConvDims d, PrepareConv(ctx, transpose, nhwc, x.dtype(), &y));
  if (y->num_elements() == 0) return Status::OK();
  return DispatchFloat(x.dtype(), [&]<typename T>() -> Status {
    const T* bias = ctx.has_input(2) ? ctx.input(2).data<T>() : nullptr;
    const T* w = ctx.input(1).data<T>();
    if (nhwc && transpose) {
      return ConvTransposeForwardNhwc(ctx, d, x.data<T>(), w, bias, y->mutable_data<T>());
    }
    if (nhwc) return ConvForwardNhwc(ctx, d, x.data<T>(), w, bias, y->mutable_data<T>());
    if (transpose) {
      return ConvTransposeForward(ctx, d, x.data<T>(), ctx.input(1).data<T>(), bias,
                                  y->mutable_data<T>());
    }
    return ConvForward(ctx, d, x.data<T>(), ctx.input(1).data<T>(), bias, y->mutable_data<T>());
  });
}

// int8/uint8 tensor minus its zero point as int32. `zp` is a scalar, or (per_axis0) one value
// per slice along axis 0.
StatusOr<std::vector<int32_t>> ShiftedInt32(const KernelContext& ctx, const Tensor& t,
                                            int zp_input) {
  std::vector<int64_t> zp = {0};
  if (ctx.has_input(zp_input)) {
    const Tensor& z = ctx.input(zp_input);
    if (z.dtype() != t.dtype()) return ctx.Error("zero point dtype differs from its tensor");
    if (z.num_elements() != 1 && (z.rank() != 1 || z.dim(0) != t.dim(0) || zp_input == 2)) {
      return ctx.Error("zero point must be a scalar or have one value per output channel");
    }
    KILN_ASSIGN_OR_RETURN(zp, ReadInt64s(z));
  }
  std::vector<int32_t> out(static_cast<size_t>(t.num_elements()));
  const int64_t per = t.dim(0) == 0 ? 0 : t.num_elements() / t.dim(0);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    const int64_t z = zp.size() == 1 ? zp[0] : zp[i / per];
    out[i] = static_cast<int32_t>(static_cast<int64_t>(t.GetAsDouble(i)) - z);
  }
  return out;
}

Status ConvIntegerKernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const bool nhwc, ChannelsLast(ctx));
  Tensor* y = nullptr;
  KILN_ASSIGN_OR_RETURN(ConvDims d, PrepareConv(ctx, false, nhwc, DataType::kInt32, &y));
  if (y->num_elements() == 0) return Status::OK();
  KILN_ASSIGN_OR_RETURN(std::vector<int32_t> x, ShiftedInt32(ctx, ctx.input(0), 2));
  KILN_ASSIGN_OR_RETURN(std::vector<int32_t> w, ShiftedInt32(ctx, ctx.input(1), 3));
  int32_t* yp = y->mutable_data<int32_t>();
  return nhwc ? ConvForwardNhwc<int32_t>(ctx, d, x.data(), w.data(), nullptr, yp)
              : ConvForward<int32_t>(ctx, d, x.data(), w.data(), nullptr, yp);
}

OpSchema& WindowAttrs(OpSchema& s) {
  return s.AttrDefault("auto_pad", "NOTSET")
      .AttrDefault("data_format", "NCHW")  // kiln extension: "NHWC" = X, Y channels-last
      .AttrNoDefault("dilations", AttrType::kInts)
      .AttrDefault("group", int64_t{1})
      .AttrNoDefault("kernel_shape", AttrType::kInts)
      .AttrNoDefault("pads", AttrType::kInts)
      .AttrNoDefault("strides", AttrType::kInts);
}

}  // namespace

void RegisterConvOps(OpRegistry& r) {
  const TypeList kFloat = {DataType::kFloat16, DataType::kBFloat16, DataType::kFloat32,
                           DataType::kFloat64};
  const TypeList kInt8 = {DataType::kInt8, DataType::kUInt8};
  {
    OpSchema s("Conv");
    WindowAttrs(s)
        .Doc("N-D convolution (im2col + blocked GEMM) with groups, dilations, strides, pads.")
        .Inputs(2, 3)
        .Outputs(1, 1)
        .InputTypes(0, kFloat)
        .InputTypes(1, kFloat)
        .InputTypes(2, kFloat)
        .PromoteHalfToFloat()
        .Infer([](InferContext& ctx) { return InferConv(ctx, false); })
        .Kernel([](KernelContext& ctx) { return ConvKernel(ctx, false); });
    MustRegister(r, std::move(s));
  }
  {
    OpSchema s("ConvTranspose");
    WindowAttrs(s)
        .Doc("N-D transposed convolution (GEMM + col2im) with output_padding / output_shape.")
        .AttrNoDefault("output_padding", AttrType::kInts)
        .AttrNoDefault("output_shape", AttrType::kInts)
        .Inputs(2, 3)
        .Outputs(1, 1)
        .InputTypes(0, kFloat)
        .InputTypes(1, kFloat)
        .InputTypes(2, kFloat)
        .PromoteHalfToFloat()
        .Infer([](InferContext& ctx) { return InferConv(ctx, true); })
        .Kernel([](KernelContext& ctx) { return ConvKernel(ctx, true); });
    MustRegister(r, std::move(s));
  }
  {
    OpSchema s("ConvInteger");
    WindowAttrs(s)
        .Doc("Integer convolution: (x - x_zero_point) * (w - w_zero_point) in int32.")
        .Inputs(2, 4)
        .Outputs(1, 1)
        .InputTypes(0, kInt8)
        .InputTypes(1, kInt8)
        .InputTypes(2, kInt8)
        .InputTypes(3, kInt8)
        .Infer([](InferContext& ctx) { return InferConv(ctx, false); })
        .Kernel(ConvIntegerKernel);
    MustRegister(r, std::move(s));
  }
}

}  // namespace kiln
