// Memory-descriptor helpers shared by the float and INT8 convolution layers (layers_conv.cc,
// layers_int8.cc): "any" layouts and channel sub-views of a merged (horizontally fused) dst.
#pragma once

#include <cstdint>
#include <vector>

#include "backends/cpu/layers.h"

namespace kiln::cpu {

// A descriptor of dims `d` and type `t` whose layout oneDNN chooses (format_tag::any).
inline memory::desc Any(const Dims& d, memory::data_type t) {
  return memory::desc(memory::dims(d.begin(), d.end()), t, memory::format_tag::any);
}

// The channels-last tag for a rank-3/4/5 tensor (any channel range is a view of it).
inline memory::format_tag ChannelsLastTag(size_t rank) {
  return rank == 3   ? memory::format_tag::acb
         : rank == 4 ? memory::format_tag::acdb
                     : memory::format_tag::acdeb;
}

// Sub-memories of `dst` (logical NCHW) for each split (merged siblings); false when the layout
// cannot express one (a blocked layout at a channel offset that is not block-aligned).
inline bool SplitViews(const memory::desc& dst, const std::vector<int64_t>& split,
                       std::vector<memory::desc>* views) {
  views->clear();
  memory::dims dims = dst.dims();
  int64_t off = 0;
  for (int64_t c : split) {
    memory::dims d = dims, o(dims.size(), 0);
    d[1] = c;
    o[1] = off;
    off += c;
    try {
      views->push_back(dst.submemory_desc(d, o));
    } catch (const dnnl::error&) {
      return false;
    }
  }
  return true;
}

// A conv layer's output and window geometry: the logical (NCHW) output dims (`out_ch` channels,
// the spatial dims of the layer's output `y_dims`) and oneDNN's strides, dilations (ONNX's
// minus 1) and begin / end pads.
struct ConvGeometry {
  Dims yl;
  memory::dims strides, dil, pl, pr;
};
inline ConvGeometry ConvOutputGeometry(const Layer& l, const Dims& xl, const Dims& y_dims,
                                       int64_t out_ch, bool nhwc) {
  const int r = static_cast<int>(xl.size());
  ConvGeometry g;
  g.yl = xl;
  g.yl[1] = out_ch;
  const Dims first = LogicalDims(y_dims, nhwc);
  for (int i = 2; i < r; ++i) g.yl[i] = first[i];
  for (int i = 0; i < r - 2; ++i) {
    g.strides.push_back(l.Ints("strides")[i]);
    g.dil.push_back(l.Ints("dilations")[i] - 1);
    g.pl.push_back(l.Ints("pads_begin")[i]);
    g.pr.push_back(l.Ints("pads_end")[i]);
  }
  return g;
}

// Defines a conv layer's output(s) on the primitive's `dst_md` and appends the DST argument:
// the single output (honoring a sum post-op; DefineDst), or, when merged (`split`), each
// sibling output as its channel view `views[i]` of one shared buffer.
inline Status DefineConvDst(Builder& b, const Layer& l, const memory::desc& dst_md,
                            const std::vector<int64_t>& split,
                            const std::vector<memory::desc>& views,
                            const std::vector<int>& to_tensor, int sum_tensor,
                            std::vector<StepArg>* args) {
  int dst_buf;
  if (split.empty()) {
    KILN_ASSIGN_OR_RETURN(
        dst_buf, DefineDst(b, l.outputs[0], Permuted(dst_md, to_tensor), sum_tensor, *args));
  } else {
    dst_buf = b.NewBuffer(dst_md.get_size());
    for (size_t i = 0; i < split.size(); ++i) {
      b.Define(l.outputs[i], Permuted(views[i], to_tensor), dst_buf);
    }
  }
  args->push_back({DNNL_ARG_DST, dst_md, dst_buf});
  return Status::OK();
}

}  // namespace kiln::cpu
