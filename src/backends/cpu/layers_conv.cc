// Conv and ConvTranspose layers: oneDNN convolution / deconvolution with layouts chosen by
// oneDNN (format_tag::any), weights reordered once, bias and post-ops fused.
//
// Algorithm: FP32 3x3 stride-1 convolutions (no groups, no dilation) use oneDNN's Winograd
// kernels (F(4x4,3x3) / F(2x2,3x3) on AVX-512) when it has one for the layer, as TensorRT's and
// cuDNN's Winograd tactics do: here they run 1.3-2.6x faster than the direct kernels at batch 1-8
// on 2 threads (docs/performance.md). Their transforms round differently from the direct GEMM
// (rel. error ~1e-6 per layer, within the FP32 engine tolerance). KILN_CPU_WINOGRAD=0 keeps every
// conv direct; with tactic timing on (tactics.h) Winograd and direct are timed against each other.
// A plan records the implementation, and so the algorithm, of each layer.
//
// A horizontally merged conv (`split`) computes all siblings' channels in one primitive; each
// sibling's output is a sub-memory (channel offset) of the merged dst. Sub-memories of a blocked
// layout are only valid at block-aligned offsets: when the chosen layout does not allow that,
// the primitive is re-created with a channels-last dst, where any channel range is a view.
#include "backends/cpu/layer_views.h"
#include "backends/cpu/layers.h"

#include <cstdlib>
#include <cstring>

namespace kiln::cpu {
namespace {

bool WinogradAllowed() {
  const char* v = std::getenv("KILN_CPU_WINOGRAD");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

bool IsWinogradImpl(const std::string& impl) { return impl.find("wino") != std::string::npos; }

// Pixels (batch x height x width) up to which a channels-last 1x1 conv runs on kiln's GEMM.
constexpr int64_t kGemmMaxConvPixels = 512;

}  // namespace

Status BuildConv(Builder& b) {
  const Layer& l = b.L();
  const bool deconv = l.kind == LayerKind::kDeconv;
  const int x = l.inputs[0], w = l.inputs[1];
  const int bias = l.inputs.size() > 2 ? l.inputs[2] : -1;
  const Dims& xd = b.dims[x];
  const int r = static_cast<int>(xd.size());
  const bool nhwc = l.Int("nhwc") != 0;
  const std::vector<int> to_logical = nhwc ? ToLogicalPerm(r) : std::vector<int>();
  const std::vector<int> to_tensor = nhwc ? ToTensorPerm(r) : std::vector<int>();
  const Dims xl = LogicalDims(xd, nhwc);
  const Dims& wd = b.dims[w];
  const int64_t g = l.Int("group", 1);
  const int64_t ksize = [&] {
    int64_t k = 1;
    for (int i = 2; i < r; ++i) k *= wd[i];
    return k;
  }();
  // oneDNN weights: [O, I, k...] or grouped [g, O/g, I/g, k...]; `wsrc` views the IR tensor.
  const int64_t out_ch = deconv ? wd[1] * g : wd[0];
  const int64_t in_ch = xl[1];
  Dims wdims = {out_ch / g, in_ch / g};
  wdims.insert(wdims.end(), wd.begin() + 2, wd.end());
  memory::dims wstrides(wdims.size(), 1);
  for (int i = r - 2; i >= 2; --i) wstrides[i] = wstrides[i + 1] * wdims[i + 1];
  if (!deconv) {  // [O, I/g, k]: o -> (I/g)*K, i -> K
    wstrides[0] = wdims[1] * ksize;
    wstrides[1] = ksize;
  } else {  // [I, O/g, k]: o -> K, i -> (O/g)*K
    wstrides[0] = ksize;
    wstrides[1] = wdims[0] * ksize;
  }
  if (g > 1) {
    wdims.insert(wdims.begin(), g);
    wstrides.insert(wstrides.begin(), (out_ch / g) * (in_ch / g) * ksize);
  }
  const memory::desc wsrc(memory::dims(wdims.begin(), wdims.end()), memory::data_type::f32,
                          wstrides);

  // Output (merged when split).
  const ConvGeometry geo = ConvOutputGeometry(l, xl, b.dims[l.outputs[0]], out_ch, nhwc);
  const Dims& yl = geo.yl;
  const memory::dims &strides = geo.strides, &dil = geo.dil, &pl = geo.pl, &pr = geo.pr;
  std::vector<StepArg> args;
  int sum_tensor = -1;
  const memory::data_type dst_dt = b.DstType();
  KILN_ASSIGN_OR_RETURN(dnnl::post_ops ops,
                        MakePostOps(b, Any(yl, dst_dt), to_logical, &args, &sum_tensor));
  dnnl::primitive_attr attr = ScratchAttr();
  attr.set_post_ops(ops);
  const memory::desc bias_md = bias >= 0 ? Builder::Plain({out_ch}) : memory::desc();
  const auto prop = dnnl::prop_kind::forward_inference;

  // Winograd candidates: FP32, 2-D, 3x3, stride 1, no dilation, no groups; a recorded
  // implementation (plan) decides, else the default / tactic timing (header comment).
  const bool wino_shape = !deconv && b.dt == memory::data_type::f32 && r == 4 && g == 1 &&
                          wd[2] == 3 && wd[3] == 3 && strides[0] == 1 && strides[1] == 1 &&
                          dil[0] == 0 && dil[1] == 0 && WinogradAllowed();
  const bool recorded = !l.impl.empty();
  auto make_conv = [&](const memory::desc& dst_md,
                       dnnl::algorithm alg) -> StatusOr<dnnl::primitive_desc> {
    dnnl::convolution_forward::desc d(prop, alg, Any(xl, b.dt), Any(wdims, b.dt), bias_md, dst_md,
                                      strides, dil, pl, pr);
    dnnl::convolution_forward::primitive_desc pd(d, attr, b.eng);
    KILN_RETURN_IF_ERROR(b.Choose(pd));
    return dnnl::primitive_desc(pd);
  };
  // The Winograd primitive for `dst_md`, or an error when oneDNN has none for this layer (its
  // post-ops, layout or shape).
  auto make_wino = [&](const memory::desc& dst_md) -> StatusOr<dnnl::primitive_desc> {
    try {
      return make_conv(dst_md, dnnl::algorithm::convolution_winograd);
    } catch (const dnnl::error& e) {
      return Unimplemented(std::string("no Winograd kernel: ") + e.what());
    }
  };
  auto make = [&](const memory::desc& dst_md) -> StatusOr<dnnl::primitive_desc> {
    if (!deconv) {
      if (wino_shape && (!recorded || IsWinogradImpl(l.impl))) {
        StatusOr<dnnl::primitive_desc> wino = make_wino(dst_md);
        if (wino.ok() && (recorded || !b.TimingTactics())) return wino;
        if (wino.ok()) {  // tactic timing: Winograd against the best direct implementation
          KILN_ASSIGN_OR_RETURN(dnnl::primitive_desc direct,
                                make_conv(dst_md, dnnl::algorithm::convolution_direct));
          std::vector<dnnl::primitive_desc> both{*wino, direct};
          return both[b.PickTacticOf(both)];
        }
      }
      return make_conv(dst_md, dnnl::algorithm::convolution_direct);
    }
    dnnl::deconvolution_forward::desc d(prop, dnnl::algorithm::deconvolution_direct, Any(xl, b.dt),
                                        Any(wdims, b.dt), bias_md, dst_md, strides, dil, pl, pr);
    dnnl::deconvolution_forward::primitive_desc pd(d, attr, b.eng);
    KILN_RETURN_IF_ERROR(b.Choose(pd));
    return dnnl::primitive_desc(pd);
  };
  KILN_ASSIGN_OR_RETURN(dnnl::primitive_desc pd, make(Any(yl, dst_dt)));
  const std::vector<int64_t>& split = l.Ints("split");
  std::vector<memory::desc> views;
  if (!split.empty() && !SplitViews(pd.dst_desc(), split, &views)) {
    const memory::desc cl(memory::dims(yl.begin(), yl.end()), dst_dt, ChannelsLastTag(yl.size()));
    KILN_ASSIGN_OR_RETURN(pd, make(cl));
    if (!SplitViews(pd.dst_desc(), split, &views)) return Internal("cannot split channels");
  }
  const memory::desc src_md = pd.src_desc(), w_md = pd.weights_desc(), dst_md = pd.dst_desc();

  // A 1x1 stride-1 convolution that oneDNN lays out channels-last is a GEMM of the pixels
  // [N*H*W, C_in] by the weights [C_in, C_out]: kiln's FP32 GEMM runs it (gemm_f32.h), on the
  // same layouts, so nothing around it changes. Only with few pixels (kGemmMaxConvPixels) and
  // large weights (GemmFits), where streaming the weights dominates and kiln's GEMM is 8-15%
  // faster (ResNet-50's 14x14 and 7x7 stages at batch 1); with many pixels oneDNN's brgconv_1x1
  // is as fast or faster (docs/design.md).
  std::vector<gemm::Op> gemm_ops;
  int gemm_sum = -1;
  auto channels_last = [](const Dims& d) {
    return memory::desc(memory::dims(d.begin(), d.end()), memory::data_type::f32,
                        memory::format_tag::acdb);
  };
  if (!deconv && g == 1 && r == 4 && ksize == 1 && strides[0] == 1 && strides[1] == 1 &&
      pl[0] == 0 && pl[1] == 0 && pr[0] == 0 && pr[1] == 0 &&
      xl[0] * xl[2] * xl[3] <= kGemmMaxConvPixels && src_md == channels_last(xl) &&
      dst_md == channels_last(yl) && GemmFits(b, in_ch, out_ch, &gemm_ops, &gemm_sum)) {
    KILN_ASSIGN_OR_RETURN(int src_buf, b.As(x, Permuted(src_md, to_tensor)));
    args.push_back({DNNL_ARG_SRC, src_md, src_buf});
    const memory::desc wt({in_ch, out_ch}, memory::data_type::f32, memory::dims{1, in_ch});
    KILN_ASSIGN_OR_RETURN(gemm::Problem p,
                          GemmWeights(b, xl[0] * xl[2] * xl[3], out_ch, in_ch, gemm_ops, w, wt,
                                      bias, bias_md, &args));
    KILN_RETURN_IF_ERROR(DefineConvDst(b, l, dst_md, split, views, to_tensor, sum_tensor, &args));
    AddGemmStep(b, std::move(p), std::move(args));
    return Status::OK();
  }

  KILN_ASSIGN_OR_RETURN(int src_buf, b.As(x, Permuted(src_md, to_tensor)));
  KILN_ASSIGN_OR_RETURN(int w_buf, b.Weights(1, w, wsrc, w_md));
  args.push_back({DNNL_ARG_SRC, src_md, src_buf});
  args.push_back({DNNL_ARG_WEIGHTS, w_md, w_buf});
  if (bias >= 0) {
    KILN_ASSIGN_OR_RETURN(int bb, b.Weights(2, bias, bias_md, pd.weights_desc(1)));
    args.push_back({DNNL_ARG_BIAS, pd.weights_desc(1), bb});
  }
  KILN_RETURN_IF_ERROR(DefineConvDst(b, l, dst_md, split, views, to_tensor, sum_tensor, &args));
  b.AddStep(dnnl::primitive(pd), pd, std::move(args));
  return Status::OK();
}

}  // namespace kiln::cpu
