// Sliding-window geometry shared by the Conv and Pool families: reads the kernel_shape,
// strides, dilations, pads and auto_pad attributes of a node and computes the padding and
// output size of every spatial axis (ONNX semantics, including ceil_mode for pools).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "ops/base/kernel_context.h"

namespace kiln {

struct WindowGeometry {
  std::vector<int64_t> kernel, strides, dilations, pads_begin, pads_end, out;
  int rank() const { return static_cast<int>(kernel.size()); }
};

// a * b, or -1 when either is negative (unknown) or the product overflows int64.
inline int64_t MulOrUnknown(int64_t a, int64_t b) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) return -1;
  return r;
}

// Product of dims; -1 when one is unknown or it overflows.
inline int64_t ProductOrUnknown(const std::vector<int64_t>& dims, size_t begin = 0) {
  int64_t p = 1;
  for (size_t i = begin; i < dims.size(); ++i) p = MulOrUnknown(p, dims[i]);
  return p;
}

// Computes the window geometry for `in` (spatial input dims, -1 = unknown, giving an unknown
// output dim) and `kernel` (spatial kernel dims, all known). `ceil_mode` is the pools' flag.
inline StatusOr<WindowGeometry> ComputeWindowGeometry(const AttrReader& ctx,
                                                      const std::vector<int64_t>& in,
                                                      const std::vector<int64_t>& kernel,
                                                      bool ceil_mode) {
  const size_t r = in.size();
  WindowGeometry g;
  g.kernel = kernel;
  auto read = [&](const char* name, int64_t dflt, size_t want,
                  std::vector<int64_t>* out) -> Status {
    *out = ctx.HasAttr(name) ? ctx.GetInts(name) : std::vector<int64_t>();
    if (out->empty()) out->assign(want, dflt);
    if (out->size() != want) {
      return ctx.Error(std::string(name) + " has " + std::to_string(out->size()) +
                       " values, expected " + std::to_string(want));
    }
    return Status::OK();
  };
  if (kernel.size() != r) {
    return ctx.Error("kernel has " + std::to_string(kernel.size()) + " spatial dims, input has " +
                     std::to_string(r));
  }
  for (int64_t k : kernel) {
    if (k <= 0) return ctx.Error("kernel dims must be positive");
  }
  KILN_RETURN_IF_ERROR(read("strides", 1, r, &g.strides));
  KILN_RETURN_IF_ERROR(read("dilations", 1, r, &g.dilations));
  std::vector<int64_t> pads;
  KILN_RETURN_IF_ERROR(read("pads", 0, 2 * r, &pads));
  for (size_t i = 0; i < r; ++i) {
    if (g.strides[i] <= 0 || g.dilations[i] <= 0) {
      return ctx.Error("strides and dilations must be positive");
    }
    if (pads[i] < 0 || pads[i + r] < 0) return ctx.Error("pads must be non-negative");
  }
  const std::string auto_pad = ctx.GetString("auto_pad");
  g.pads_begin.assign(pads.begin(), pads.begin() + r);
  g.pads_end.assign(pads.begin() + r, pads.end());
  g.out.assign(r, -1);
  for (size_t i = 0; i < r; ++i) {
    const int64_t k_eff = MulOrUnknown(kernel[i] - 1, g.dilations[i]) + 1;
    if (k_eff <= 0) return ctx.Error("kernel extent overflows");
    const int64_t s = g.strides[i];
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      if (in[i] < 0) continue;
      g.out[i] = (in[i] + s - 1) / s;
      const int64_t total = std::max<int64_t>(0, (g.out[i] - 1) * s + k_eff - in[i]);
      const int64_t small = total / 2;
      g.pads_begin[i] = auto_pad == "SAME_UPPER" ? small : total - small;
      g.pads_end[i] = total - g.pads_begin[i];
    } else if (auto_pad == "VALID" || auto_pad == "NOTSET" || auto_pad.empty()) {
      if (auto_pad == "VALID") g.pads_begin[i] = g.pads_end[i] = 0;
      if (in[i] < 0) continue;
      const int64_t span = in[i] + g.pads_begin[i] + g.pads_end[i] - k_eff;
      if (span < 0) {
        return ctx.Error("input dim " + std::to_string(in[i]) + " (padded) is smaller than " +
                         "the kernel extent " + std::to_string(k_eff));
      }
      g.out[i] = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
      // A window may not start in the end padding (PyTorch/ONNX Runtime rule for ceil_mode).
      if (ceil_mode && (g.out[i] - 1) * s >= in[i] + g.pads_begin[i]) --g.out[i];
    } else {
      return ctx.Error("unknown auto_pad '" + auto_pad + "'");
    }
  }
  return g;
}

// The kiln extension attribute `data_format` of layout-carrying ops: "NCHW" (default, channels
// first: N, C, spatial...) gives false, "NHWC" (channels last for any spatial rank: N,
// spatial..., C) gives true; anything else is an error.
inline StatusOr<bool> ChannelsLast(const AttrReader& ctx) {
  const std::string f = ctx.GetString("data_format");
  if (f == "NCHW") return false;
  if (f == "NHWC") return true;
  return ctx.Error("data_format must be \"NCHW\" or \"NHWC\", got \"" + f + "\"");
}

// [N, spatial..., C] -> [N, C, spatial...] and back (identity for rank < 3).
inline std::vector<int64_t> ToChannelsFirst(std::vector<int64_t> d) {
  if (d.size() >= 3) std::rotate(d.begin() + 1, d.end() - 1, d.end());
  return d;
}
inline std::vector<int64_t> ToChannelsLast(std::vector<int64_t> d) {
  if (d.size() >= 3) std::rotate(d.begin() + 1, d.begin() + 2, d.end());
  return d;
}

// Calls f(index) for every multi-index in [0, dims) in row-major order.
template <typename F>
void ForEachIndex(const std::vector<int64_t>& dims, F&& f) {
  for (int64_t d : dims) {
    if (d <= 0) return;
  }
  std::vector<int64_t> idx(dims.size(), 0);
  while (true) {
    f(idx);
    int d = static_cast<int>(dims.size()) - 1;
    for (; d >= 0; --d) {
      if (++idx[d] < dims[d]) break;
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

// Sliding windows in flat index form, for channels-last kernels. Calls f(p, offs) for every
// position p (flat, row-major) of `positions`, where offs[t] is the flat row-major index into
// `image` of kernel tap t (taps row-major over g.kernel) at position * stride + k * dilation -
// pad_begin, or -1 when that falls outside the image (padding). Conv walks its output
// positions over the input image; ConvTranspose its input positions over the output image.
template <typename F>
void ForEachWindowTaps(const WindowGeometry& g, const std::vector<int64_t>& positions,
                       const std::vector<int64_t>& image, F&& f) {
  const int r = g.rank();
  std::vector<int64_t> tap_base;  // [tap][axis]: k * dilation - pad_begin
  ForEachIndex(g.kernel, [&](const std::vector<int64_t>& k) {
    for (int a = 0; a < r; ++a) tap_base.push_back(k[a] * g.dilations[a] - g.pads_begin[a]);
  });
  const size_t taps = tap_base.size() / r;
  std::vector<int64_t> offs(taps);
  int64_t p = 0;
  ForEachIndex(positions, [&](const std::vector<int64_t>& o) {
    for (size_t t = 0; t < taps; ++t) {
      int64_t off = 0;
      for (int a = 0; a < r && off >= 0; ++a) {
        const int64_t x = o[a] * g.strides[a] + tap_base[t * r + a];
        off = (x < 0 || x >= image[a]) ? -1 : off * image[a] + x;
      }
      offs[t] = off;
    }
    f(p++, offs);
  });
}

}  // namespace kiln
