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
#include "backends/cpu/precision.h"

#include <cstdlib>
#include <cstring>

namespace kiln::cpu {
namespace {

bool WinogradAllowed() {
  const char* v = std::getenv("KILN_CPU_WINOGRAD");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

bool IsWinogradImpl(const std::string& impl) { return impl.find("wino") != std::string::npos; }

// Channels from which Winograd beats direct convolution. Its input and output transforms cost
// per tile in proportion to the channels, its GEMM to their product, so narrow convs lose: on
// the Zen 4 development machine (2 threads, 64x64 inputs, batch 1 / 8, alternated) direct won
// at 1->8 (0.10 vs 1.41 ms, gender's first conv), 8->8, 8->32, 16->16 and 16->32 (2.7 vs
// 3.1-3.4 ms), 256->7 (0.16 vs 0.28 ms) and 128->2; Winograd won from 32 inputs on (32->16 1.65
// vs 2.21 ms, 32->32, 32->64 0.80 vs 1.18 ms, ResNet-50's 64..512).
constexpr int64_t kWinogradMinIn = 32;
constexpr int64_t kWinogradMinOut = 16;

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

  // Winograd candidates: FP32, 2-D, 3x3, stride 1, no dilation, no groups, at least
  // kWinogradMinIn input and kWinogradMinOut output channels; a recorded implementation (plan)
  // decides, else the default / tactic timing (header comment).
  const bool wino_shape = !deconv && b.dt == memory::data_type::f32 && r == 4 && g == 1 &&
                          wd[2] == 3 && wd[3] == 3 && strides[0] == 1 && strides[1] == 1 &&
                          dil[0] == 0 && dil[1] == 0 && in_ch >= kWinogradMinIn &&
                          out_ch >= kWinogradMinOut && WinogradAllowed();
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

// ----------------------------------------------------------------------------- inverted residual

namespace {

// A conv layer's geometry, as the fused block needs it (logical NCHW dims).
struct ConvShape {
  bool nhwc = false;
  Dims xl, yl, wd;  // input, output, weights [O, I/g, kh, kw]
  int64_t group = 1;
  memory::dims strides, dil, pl, pr;
  int x = -1, w = -1, bias = -1, y = -1;
};

bool ConvShapeOf(const Builder& b, const Layer& l, ConvShape* s) {
  if (l.dead || l.kind != LayerKind::kConv || l.inputs.size() < 2 || l.outputs.size() != 1 ||
      !l.Ints("split").empty()) {
    return false;
  }
  s->x = l.inputs[0];
  s->w = l.inputs[1];
  s->bias = l.inputs.size() > 2 ? l.inputs[2] : -1;
  s->y = l.outputs[0];
  if (b.dims[s->x].size() != 4 || !b.IsConst(s->w) || (s->bias >= 0 && !b.IsConst(s->bias))) {
    return false;
  }
  s->wd = b.dims[s->w];
  if (s->wd.size() != 4) return false;
  s->nhwc = l.Int("nhwc") != 0;
  s->xl = LogicalDims(b.dims[s->x], s->nhwc);
  s->group = l.Int("group", 1);
  const ConvGeometry geo = ConvOutputGeometry(l, s->xl, b.dims[s->y], s->wd[0], s->nhwc);
  s->yl = geo.yl;
  s->strides = geo.strides;
  s->dil = geo.dil;
  s->pl = geo.pl;
  s->pr = geo.pr;
  return s->dil[0] == 0 && s->dil[1] == 0;
}

bool Pointwise(const ConvShape& s) {
  return s.group == 1 && s.wd[2] == 1 && s.wd[3] == 1 && s.strides[0] == 1 && s.strides[1] == 1 &&
         s.pl[0] == 0 && s.pl[1] == 0 && s.pr[0] == 0 && s.pr[1] == 0;
}

bool Depthwise3x3(const ConvShape& s) {
  return s.group == s.xl[1] && s.yl[1] == s.xl[1] && s.wd[1] == 1 && s.wd[2] == 3 &&
         s.wd[3] == 3 && s.strides[0] == s.strides[1];
}

// Post-ops the fused block's expand / depthwise layers may carry: ReLU, leaky ReLU, clip.
bool EltwiseOnly(const Layer& l, std::vector<gemm::Op>* ops) {
  int sum = -1;
  if (!GemmOps(l, ops, &sum) || sum >= 0) return false;
  return std::all_of(ops->begin(), ops->end(), [](const gemm::Op& o) {
    return o.kind == gemm::OpKind::kRelu || o.kind == gemm::OpKind::kClip;
  });
}

constexpr int64_t kMbconvMinMidBytes = int64_t{512} << 10;

// KILN_CPU_MBCONV=0 builds the block's layers one by one (oneDNN), as before.
bool InvertedResidualAllowed() {
  const char* v = std::getenv("KILN_CPU_MBCONV");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

// Argument ids of the fused step's constants (oneDNN's ids, for the engine's argument binding).
constexpr int kArgW1 = DNNL_ARG_WEIGHTS, kArgB1 = DNNL_ARG_BIAS;
constexpr int kArgWd = DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS;
constexpr int kArgBd = DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_BIAS;
constexpr int kArgW2 = DNNL_ARG_WEIGHTS_1, kArgB2 = DNNL_ARG_WEIGHTS_2;

class InvertedResidualStep final : public CustomStep {
 public:
  explicit InvertedResidualStep(gemm::InvertedResidual proto) : proto_(std::move(proto)) {}
  void Run(const std::unordered_map<int, memory>& args) const override {
    auto ptr = [&](int id) -> float* {
      const auto it = args.find(id);
      return it == args.end() ? nullptr : static_cast<float*>(it->second.get_data_handle());
    };
    gemm::InvertedResidual r = proto_;
    r.x = ptr(DNNL_ARG_SRC);
    r.y = ptr(DNNL_ARG_DST);
    r.w1 = ptr(kArgW1);
    r.b1 = ptr(kArgB1);
    r.wd = ptr(kArgWd);
    r.bd = ptr(kArgBd);
    r.w2 = ptr(kArgW2);
    r.b2 = ptr(kArgB2);
    gemm::RunInvertedResidual(r);
  }

 private:
  gemm::InvertedResidual proto_;
};

// A GEMM's packed weights and bias (GemmWeights) under the fused step's argument ids.
StatusOr<gemm::Problem> PackedOperands(Builder& b, int layer, int64_t k, int64_t n,
                                       const ConvShape& s, int w_arg, int b_arg,
                                       std::vector<StepArg>* args) {
  const int saved = b.layer;
  b.layer = layer;  // the weight cache's key is the layer's
  std::vector<StepArg> own;
  const memory::desc wt({k, n}, memory::data_type::f32, memory::dims{1, k});
  StatusOr<gemm::Problem> p = GemmWeights(b, 0, n, k, {}, s.w, wt, s.bias, Builder::Plain({n}),
                                          &own, gemm::BlockTileFor(n));
  b.layer = saved;
  if (!p.ok()) return p;
  for (StepArg& a : own) {
    a.arg = a.arg == DNNL_ARG_WEIGHTS ? w_arg : b_arg;
    args->push_back(a);
  }
  return p;
}

}  // namespace

StatusOr<int> BuildInvertedResidual(Builder& b) {
  const Program& p = b.prog;
  const size_t i0 = static_cast<size_t>(b.layer);
  const Layer& l0 = p.layers[i0];
  // FP32 builds only (an INT8 / BF16 layer inside would be lost); a plan that recorded oneDNN's
  // implementations for these layers keeps them.
  if (!InvertedResidualAllowed() || !gemm::Available() || b.dt != memory::data_type::f32 ||
      ComputePrecision(b.cfg.precision) != Precision::kFP32 ||
      !(l0.impl.empty() || l0.impl.rfind("kiln_mbconv", 0) == 0)) {
    return 0;
  }
  ConvShape s0, sd, sp;
  if (!ConvShapeOf(b, l0, &s0)) return 0;
  const bool expand = Pointwise(s0);
  const size_t id = expand ? i0 + 1 : i0;
  if (id + 1 >= p.layers.size()) return 0;
  const Layer& ld = p.layers[id];
  const Layer& lp = p.layers[id + 1];
  const std::vector<int> uses = p.UseCounts();
  if (expand) {
    if (!ConvShapeOf(b, ld, &sd) || sd.x != s0.y || uses[s0.y] != 1) return 0;
  } else {
    sd = s0;
  }
  if (!Depthwise3x3(sd) || !ConvShapeOf(b, lp, &sp) || !Pointwise(sp) || sp.x != sd.y ||
      uses[sd.y] != 1 || sp.nhwc != sd.nhwc || s0.nhwc != sd.nhwc) {
    return 0;
  }
  gemm::InvertedResidual r;
  const Dims& xl = expand ? s0.xl : sd.xl;
  r.cin = xl[1];
  r.h = xl[2];
  r.w = xl[3];
  r.cmid = sd.xl[1];
  r.oh = sd.yl[2];
  r.ow = sd.yl[3];
  r.cout = sp.yl[1];
  r.stride = static_cast<int>(sd.strides[0]);
  r.pad_t = static_cast<int>(sd.pl[0]);
  r.pad_l = static_cast<int>(sd.pl[1]);
  // Only where the expanded tensor of a sample would not stay in L2 between the layers (>= 512
  // KB: MobileNetV2's 112x112 to 28x28 blocks): there the fused step saves its round trip
  // through L3 / DRAM. On smaller blocks the row-wise expand reads its weights once per row of
  // few pixels, and oneDNN's separate layers were as fast or faster (docs/design.md).
  if (r.h * r.w * r.cmid * static_cast<int64_t>(sizeof(float)) < kMbconvMinMidBytes) return 0;
  int sum = -1;
  if (!gemm::InvertedResidualFits(r.h, r.w, r.cmid, r.oh, r.ow, r.stride, r.pad_t, r.pad_l) ||
      (expand && !EltwiseOnly(l0, &r.ops1)) || !EltwiseOnly(ld, &r.opsd) ||
      !GemmOps(lp, &r.ops2, &sum)) {
    return 0;
  }
  const int x = expand ? s0.x : sd.x;
  // A residual must be the block's input at the same pixels.
  if (sum >= 0 && (sum != x || r.stride != 1 || r.cin != r.cout || r.oh != r.h || r.ow != r.w)) {
    return 0;
  }

  // Channels-last in and out, the layout oneDNN's convolutions pick around it for these shapes.
  auto channels_last = [](const Dims& d) {
    return memory::desc(memory::dims(d.begin(), d.end()), memory::data_type::f32,
                        memory::format_tag::acdb);
  };
  const std::vector<int> to_tensor = sd.nhwc ? ToTensorPerm(4) : std::vector<int>();
  std::vector<StepArg> args;
  const memory::desc x_md = Permuted(channels_last(xl), to_tensor);
  KILN_ASSIGN_OR_RETURN(const int x_buf, b.As(x, x_md));
  args.push_back({DNNL_ARG_SRC, x_md, x_buf});
  if (expand) {
    KILN_ASSIGN_OR_RETURN(gemm::Problem g1,
                          PackedOperands(b, static_cast<int>(i0), r.cin, r.cmid, s0, kArgW1,
                                         kArgB1, &args));
    r.t1 = g1.tile;
  }
  {
    const int saved = b.layer;
    b.layer = static_cast<int>(id);
    // [C, 1, 3, 3] as [9, C]: the depthwise row reads 16 channels of one tap at a time.
    const memory::desc src({9, r.cmid}, memory::data_type::f32, memory::dims{1, 9});
    const memory::desc want = Builder::Plain({9, r.cmid});
    StatusOr<int> wb = b.Weights(1, sd.w, src, want);
    StatusOr<int> bb = sd.bias >= 0 ? b.Weights(2, sd.bias, Builder::Plain({r.cmid}),
                                                Builder::Plain({r.cmid}))
                                    : StatusOr<int>(-1);
    b.layer = saved;
    if (!wb.ok()) return wb.status();
    if (!bb.ok()) return bb.status();
    args.push_back({kArgWd, want, *wb});
    if (*bb >= 0) args.push_back({kArgBd, Builder::Plain({r.cmid}), *bb});
  }
  KILN_ASSIGN_OR_RETURN(gemm::Problem g2, PackedOperands(b, static_cast<int>(id + 1), r.cmid,
                                                         r.cout, sp, kArgW2, kArgB2, &args));
  r.t2 = g2.tile;
  r.batch = xl[0];
  const memory::desc y_md = Permuted(channels_last(sp.yl), to_tensor);
  args.push_back({DNNL_ARG_DST, y_md, b.Define(sp.y, y_md)});
  const size_t last = id + 1;
  const std::string impl = std::string("kiln_mbconv:avx512 (") + (expand ? "1x1 + " : "") +
                           "dw 3x3/" + std::to_string(r.stride) + " + 1x1" +
                           (sum >= 0 ? " + residual" : "") + ", with the next " +
                           (last - i0 == 1 ? "layer)" : std::to_string(last - i0) + " layers)");
  b.AddCustomStep(std::make_shared<InvertedResidualStep>(std::move(r)), impl, std::move(args));
  return static_cast<int>(last - i0 + 1);
}

}  // namespace kiln::cpu
