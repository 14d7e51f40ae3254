// The other layer families: eltwise, binary, prelu, pooling, softmax, layer / batch normalization,
// concat, transpose and reshape views, resampling, reduction.
//
// Each runs on its input's current layout when oneDNN accepts it (blocked layouts flow through
// eltwise, binary, pooling, batch norm, resampling), else on the plain layout after one reorder.
// Transpose and the reshape family are views: no step, the output shares the input's buffer
// (Transpose permutes the layout descriptor; reshapes need the plain layout).
#include <numeric>
#include <optional>

#include "backends/cpu/layers.h"

namespace kiln::cpu {
namespace {

using A = dnnl::algorithm;
constexpr auto kInference = dnnl::prop_kind::forward_inference;

memory::desc AnyLike(const memory::desc& md, memory::data_type t = memory::data_type::f32) {
  return memory::desc(md.dims(), t, memory::format_tag::any);
}

// Calls f(md, buffer) with x's current layout (and data type: these layers follow their input's
// precision), then with the plain f32 layout when oneDNN refuses the first. `f` must create its
// primitive descriptor before changing the builder. `f32_only`: layers that stay FP32
// (precision.h) skip the first try when x is not f32.
template <typename F>
Status WithLayout(Builder& b, int x, F&& f, bool f32_only = false) {
  // A layout with an offset, e.g. a column (channel) range of merged siblings' output after the
  // first, is read plain: these layers computed wrong values on it (strided_view_test.cc:
  // softmax, reduction, eltwise, pooling), strided or blocked alike (AVX2's nChw8c sub-memories
  // of merged convs: rel. L2 0.4-1.3 before, found under ONEDNN_MAX_CPU_ISA=AVX2).
  const memory::desc& md = b.MdOf(x);
  const bool offset_view = md.data.offset0 != 0;
  if ((!f32_only || md.data_type() == memory::data_type::f32) && !offset_view) {
    try {
      return f(b.MdOf(x), b.BufferOf(x));
    } catch (const dnnl::error&) {
    }
  }
  const memory::desc plain = Builder::Plain(b.dims[x]);
  KILN_ASSIGN_OR_RETURN(int buf, b.As(x, plain));
  return f(plain, buf);
}

// WithLayout for the layers that stay FP32 (softmax, reductions; precision.h).
template <typename F>
Status WithF32Layout(Builder& b, int x, F&& f) {
  return WithLayout(b, x, std::forward<F>(f), /*f32_only=*/true);
}

// The output buffer for an op that may run in place on x (same layout, x dies here).
int InPlaceOr(Builder& b, int x, int x_buf, const memory::desc& md, int out) {
  if (b.BufferOf(x) == x_buf && b.MdOf(x) == md && b.Reusable(x)) return b.Define(out, md, x_buf);
  return b.Define(out, md);
}

Status BuildEltwise(Builder& b) {
  const Layer& l = b.L();
  const int x = l.inputs[0];
  return WithLayout(b, x, [&](const memory::desc& md, int buf) -> Status {
    std::vector<dnnl::eltwise_forward::primitive_desc> pds;
    for (const PostOp& po : l.post_ops) {
      dnnl::eltwise_forward::desc d(kInference, static_cast<A>(po.alg), md, po.alpha, po.beta);
      pds.emplace_back(d, ScratchAttr(), b.eng);
      KILN_RETURN_IF_ERROR(b.Choose(pds.back()));
    }
    const int out = InPlaceOr(b, x, buf, md, l.outputs[0]);
    for (size_t i = 0; i < pds.size(); ++i) {
      b.AddStep(dnnl::primitive(pds[i]), pds[i],
                {{DNNL_ARG_SRC, md, i == 0 ? buf : out}, {DNNL_ARG_DST, md, out}});
    }
    return Status::OK();
  });
}

Status BuildBinary(Builder& b) {
  const Layer& l = b.L();
  const int x = l.inputs[0], y = l.inputs[1];
  const Dims& xd = b.dims[x];
  return WithLayout(b, x, [&](const memory::desc& md, int buf) -> Status {
    // src1: x's layout when it has x's shape, else plain padded to x's rank.
    Dims yd = b.dims[y];
    memory::desc y_md, y_arg;
    if (yd == xd) {
      y_md = y_arg = md;
    } else {
      yd.insert(yd.begin(), xd.size() - yd.size(), 1);
      y_md = Builder::Plain(b.dims[y]);
      y_arg = Builder::Plain(yd);
    }
    std::vector<StepArg> args;
    int sum = -1;
    KILN_ASSIGN_OR_RETURN(dnnl::post_ops ops, MakePostOps(b, md, {}, &args, &sum));
    dnnl::primitive_attr attr = ScratchAttr();
    attr.set_post_ops(ops);
    dnnl::binary::desc d(static_cast<A>(l.Int("alg")), md, y_arg, md);
    dnnl::binary::primitive_desc pd(d, attr, b.eng);
    KILN_RETURN_IF_ERROR(b.Choose(pd));
    KILN_ASSIGN_OR_RETURN(int y_buf, b.As(y, y_md));
    args.push_back({DNNL_ARG_SRC_0, md, buf});
    args.push_back({DNNL_ARG_SRC_1, y_arg, y_buf});
    const int out =
        y_buf == buf ? b.Define(l.outputs[0], md) : InPlaceOr(b, x, buf, md, l.outputs[0]);
    args.push_back({DNNL_ARG_DST, md, out});
    b.AddStep(dnnl::primitive(pd), pd, std::move(args));
    return Status::OK();
  });
}

// PRelu on x's layout; the slope (plain, padded with leading 1s to x's rank) is reordered once
// into the layout the primitive wants when constant, else read in place.
Status BuildPRelu(Builder& b) {
  const Layer& l = b.L();
  const int x = l.inputs[0], s = l.inputs[1];
  Dims sd = b.dims[s];
  sd.insert(sd.begin(), b.dims[x].size() - sd.size(), 1);
  const memory::desc s_plain = Builder::Plain(sd);
  return WithLayout(b, x, [&](const memory::desc& md, int buf) -> Status {
    const memory::desc w_want = b.IsConst(s) ? AnyLike(s_plain) : s_plain;
    dnnl::prelu_forward::desc d(kInference, md, w_want);
    dnnl::prelu_forward::primitive_desc pd(d, ScratchAttr(), b.eng);
    KILN_RETURN_IF_ERROR(b.Choose(pd));
    const memory::desc w_md = pd.weights_desc();
    int w_buf;
    if (b.IsConst(s)) {
      KILN_ASSIGN_OR_RETURN(w_buf, b.Weights(1, s, s_plain, w_md));
    } else {
      KILN_ASSIGN_OR_RETURN(w_buf, b.As(s, Builder::Plain(b.dims[s])));
    }
    std::vector<StepArg> args = {{DNNL_ARG_SRC, md, buf}, {DNNL_ARG_WEIGHTS, w_md, w_buf}};
    const int out =
        w_buf == buf ? b.Define(l.outputs[0], md) : InPlaceOr(b, x, buf, md, l.outputs[0]);
    args.push_back({DNNL_ARG_DST, md, out});
    b.AddStep(dnnl::primitive(pd), pd, std::move(args));
    return Status::OK();
  });
}

Status BuildPool(Builder& b) {
  const Layer& l = b.L();
  const int x = l.inputs[0];
  const int r = static_cast<int>(b.dims[x].size());
  const bool nhwc = l.Int("nhwc") != 0;
  const std::vector<int> to_logical = nhwc ? ToLogicalPerm(r) : std::vector<int>();
  const std::vector<int> to_tensor = nhwc ? ToTensorPerm(r) : std::vector<int>();
  const Dims yd = LogicalDims(b.dims[l.outputs[0]], nhwc);
  memory::dims kernel, strides, dil, pl, pr;
  for (int i = 0; i < r - 2; ++i) {
    kernel.push_back(l.Ints("kernel")[i]);
    strides.push_back(l.Ints("strides")[i]);
    dil.push_back(l.Ints("dilations")[i] - 1);
    pl.push_back(l.Ints("pads_begin")[i]);
    pr.push_back(l.Ints("pads_end")[i]);
  }
  return WithLayout(b, x, [&](const memory::desc& tmd, int buf) -> Status {
    const memory::desc md = Permuted(tmd, to_logical);
    const memory::desc dst_any(memory::dims(yd.begin(), yd.end()), md.data_type(),
                               memory::format_tag::any);
    dnnl::pooling_v2_forward::desc d(kInference, static_cast<A>(l.Int("alg")), md, dst_any, strides,
                                     kernel, dil, pl, pr);
    dnnl::pooling_v2_forward::primitive_desc pd(d, ScratchAttr(), b.eng);
    KILN_RETURN_IF_ERROR(b.Choose(pd));
    const int out = b.Define(l.outputs[0], Permuted(pd.dst_desc(), to_tensor));
    b.AddStep(dnnl::primitive(pd), pd,
              {{DNNL_ARG_SRC, md, buf}, {DNNL_ARG_DST, pd.dst_desc(), out}});
    // Max pooling of INT8 values (layers_int8.cc: an INT8 conv wrote x for it): the same scale.
    const float* q = b.QuantScaleOf(x);
    if (q != nullptr && md.data_type() == b.MdOf(x).data_type() && IsInt8MaxPool(l)) {
      b.SetQuantized(l.outputs[0], *q);
    }
    return Status::OK();
  });
}

Status BuildSoftmax(Builder& b) {
  const Layer& l = b.L();
  const int x = l.inputs[0];
  return WithF32Layout(b, x, [&](const memory::desc& md, int buf) -> Status {
    dnnl::softmax_v2_forward::desc d(kInference,
                                     l.Int("log") ? A::softmax_log : A::softmax_accurate, md, md,
                                     static_cast<int>(l.Int("axis")));
    dnnl::softmax_v2_forward::primitive_desc pd(d, ScratchAttr(), b.eng);
    KILN_RETURN_IF_ERROR(b.Choose(pd));
    const int out = InPlaceOr(b, x, buf, md, l.outputs[0]);
    b.AddStep(dnnl::primitive(pd), pd, {{DNNL_ARG_SRC, md, buf}, {DNNL_ARG_DST, md, out}});
    return Status::OK();
  });
}

// Statistics a normalization primitive may want as outputs even in inference: scratch buffers.
void StatArgs(Builder& b, const dnnl::primitive_desc_base& pd, std::vector<StepArg>* args) {
  for (auto [arg, md] : {std::pair{DNNL_ARG_MEAN, pd.query_md(dnnl::query::dst_md, 1)},
                         std::pair{DNNL_ARG_VARIANCE, pd.query_md(dnnl::query::dst_md, 2)}}) {
    if (md.get_size() > 0) args->push_back({arg, md, b.NewBuffer(md.get_size())});
  }
}

Status BuildLayerNorm(Builder& b) {
  const Layer& l = b.L();
  const int x = l.inputs[0], s = l.inputs[1];
  const int sh = l.inputs.size() > 2 ? l.inputs[2] : -1;
  const Dims& xd = b.dims[x];
  const int64_t axis = l.Int("axis");
  const int64_t inner =
      std::accumulate(xd.begin() + axis, xd.end(), int64_t{1}, std::multiplies<int64_t>());
  const memory::desc plain = Builder::Plain(xd);
  KILN_ASSIGN_OR_RETURN(int buf, b.As(x, plain));
  // Normalized dims flattened into the last one (oneDNN normalizes the last axis).
  const int64_t outer =
      std::accumulate(xd.begin(), xd.begin() + axis, int64_t{1}, std::multiplies<int64_t>());
  const memory::desc md =
      axis == static_cast<int64_t>(xd.size()) - 1 ? plain : Builder::Plain({outer, inner});
  auto flags = dnnl::normalization_flags::use_scale;
  if (sh >= 0) flags = flags | dnnl::normalization_flags::use_shift;
  dnnl::layer_normalization_forward::desc d(kInference, md, l.Float("eps", 1e-5f), flags);
  dnnl::layer_normalization_forward::primitive_desc pd(d, ScratchAttr(), b.eng);
  KILN_RETURN_IF_ERROR(b.Choose(pd));
  const memory::desc c_md = Builder::Plain({inner});
  std::vector<StepArg> args = {{DNNL_ARG_SRC, md, buf}};
  KILN_ASSIGN_OR_RETURN(int sb, b.As(s, Builder::Plain(b.dims[s])));
  args.push_back({DNNL_ARG_SCALE, c_md, sb});
  if (sh >= 0) {
    KILN_ASSIGN_OR_RETURN(int hb, b.As(sh, Builder::Plain(b.dims[sh])));
    args.push_back({DNNL_ARG_SHIFT, c_md, hb});
  }
  StatArgs(b, pd, &args);
  const int out = InPlaceOr(b, x, buf, plain, l.outputs[0]);
  args.push_back({DNNL_ARG_DST, md, out});
  b.AddStep(dnnl::primitive(pd), pd, std::move(args));
  return Status::OK();
}

Status BuildBatchNorm(Builder& b) {
  const Layer& l = b.L();
  const int x = l.inputs[0];
  const int r = static_cast<int>(b.dims[x].size());
  const bool nhwc = l.Int("nhwc") != 0 && r >= 3;
  const std::vector<int> to_logical = nhwc ? ToLogicalPerm(r) : std::vector<int>();
  return WithLayout(b, x, [&](const memory::desc& tmd, int buf) -> Status {
    const memory::desc md = Permuted(tmd, to_logical);
    const auto flags = dnnl::normalization_flags::use_global_stats |
                       dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    dnnl::batch_normalization_forward::desc d(kInference, md, l.Float("eps", 1e-5f), flags);
    dnnl::batch_normalization_forward::primitive_desc pd(d, ScratchAttr(), b.eng);
    KILN_RETURN_IF_ERROR(b.Choose(pd));
    std::vector<StepArg> args = {{DNNL_ARG_SRC, md, buf}};
    const int kArgs[] = {DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE};
    for (int i = 0; i < 4; ++i) {
      const int t = l.inputs[1 + i];
      const memory::desc c_md = Builder::Plain({md.dims()[1]});
      KILN_ASSIGN_OR_RETURN(int pb, b.As(t, Builder::Plain(b.dims[t])));
      args.push_back({kArgs[i], c_md, pb});
    }
    const int out = InPlaceOr(b, x, buf, tmd, l.outputs[0]);
    args.push_back({DNNL_ARG_DST, md, out});
    b.AddStep(dnnl::primitive(pd), pd, std::move(args));
    return Status::OK();
  });
}

Status BuildConcat(Builder& b) {
  const Layer& l = b.L();
  const int axis = static_cast<int>(l.Int("axis"));
  auto attempt = [&](bool plain) -> Status {
    std::vector<memory::desc> mds;
    // The plain fallback converts every input to the first one's data type.
    const memory::data_type t0 = b.MdOf(l.inputs[0]).data_type();
    for (int t : l.inputs) mds.push_back(plain ? Builder::Plain(b.dims[t], t0) : b.MdOf(t));
    std::optional<dnnl::concat::primitive_desc> pd;
    if (plain) {
      pd.emplace(Builder::Plain(b.dims[l.outputs[0]], t0), axis, mds, b.eng, ScratchAttr());
    } else {
      pd.emplace(axis, mds, b.eng, ScratchAttr());
    }
    if (pd->scratchpad_desc().get_size() > static_cast<size_t>(b.cfg.max_workspace_size_bytes)) {
      return ResourceExhausted("concat needs " + std::to_string(pd->scratchpad_desc().get_size()) +
                               " bytes of scratchpad, above max_workspace_size_bytes");
    }
    std::vector<StepArg> args;
    for (size_t i = 0; i < l.inputs.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(int buf, b.As(l.inputs[i], mds[i]));
      args.push_back({DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i), mds[i], buf});
    }
    const int out = b.Define(l.outputs[0], pd->dst_desc());
    args.push_back({DNNL_ARG_DST, pd->dst_desc(), out});
    b.AddStep(dnnl::concat(*pd), *pd, std::move(args));
    return Status::OK();
  };
  try {
    return attempt(false);
  } catch (const dnnl::error&) {
  }
  return attempt(true);
}

Status BuildTranspose(Builder& b) {
  const Layer& l = b.L();
  const int x = l.inputs[0];
  const std::vector<int64_t>& perm = l.Ints("perm");
  std::vector<int> p(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) p[perm[k]] = static_cast<int>(k);
  b.Define(l.outputs[0], b.MdOf(x).permute_axes(p), b.BufferOf(x));
  return Status::OK();
}

// Strides of `out` as a view of a strided tensor `in` (dims, strides), or nullopt when the
// reshape merges dims that are not contiguous with each other (PyTorch's view rule, computeStride:
// dims are matched in groups whose products agree; a group of `in` must be contiguous within itself
// to be merged or re-split).
std::optional<Dims> StridedReshape(const Dims& in, const Dims& in_strides, const Dims& out) {
  for (int64_t d : in) {
    if (d <= 0) return std::nullopt;
  }
  Dims strides(out.size(), 0);
  int view_d = static_cast<int>(out.size()) - 1;
  int64_t base = in.empty() ? 1 : in_strides.back(), in_numel = 1, view_numel = 1;
  for (int d = static_cast<int>(in.size()) - 1; d >= 0; --d) {
    in_numel *= in[d];
    if (d == 0 || (in[d - 1] != 1 && in_strides[d - 1] != in_numel * base)) {
      while (view_d >= 0 && (view_numel < in_numel || out[view_d] == 1)) {
        strides[view_d] = view_numel * base;
        view_numel *= out[view_d];
        --view_d;
      }
      if (view_numel != in_numel) return std::nullopt;
      if (d > 0) {
        base = in_strides[d - 1];
        in_numel = view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return strides;
}

// True when every later reader of tensor t takes a strided layout at no extra cost: the B
// operand of a MatMul of two activations (reordered once into the layout the matmul wants, as a
// copy of the view would be), a post-op operand, another view, or a Transpose whose output is read
// that way. A strided A costs more than its copy (oneDNN 2.6 takes gemm:jit instead of brgemm:
// BERT's Q.K^T 80 us instead of 65 + 3 us), and other layers (eltwise, softmax, ...) would run a
// slow reference kernel on a non-dense layout.
bool ReadsStrided(const Builder& b, int t, int from) {
  const std::vector<Layer>& layers = b.prog.layers;
  for (size_t i = static_cast<size_t>(from) + 1; i < layers.size(); ++i) {
    const Layer& c = layers[i];
    if (c.dead || std::find(c.inputs.begin(), c.inputs.end(), t) == c.inputs.end()) continue;
    if (c.kind == LayerKind::kMatMul && c.inputs.size() >= 2 && c.inputs[0] != t &&
        c.inputs[1] == t) {
      continue;
    }
    // Q of a fused attention (BuildAttention) is read where it is, like K and V.
    if (c.kind == LayerKind::kMatMul && StartsAttention(b, i)) continue;
    if (c.kind == LayerKind::kView) continue;
    if (c.kind == LayerKind::kTranspose && ReadsStrided(b, c.outputs[0], static_cast<int>(i))) {
      continue;
    }
    return false;
  }
  return true;
}

Status BuildView(Builder& b) {
  const Layer& l = b.L();
  const int x = l.inputs[0], y = l.outputs[0];
  if (static_cast<ViewMode>(l.Int("mode")) == ViewMode::kIdentity) {
    b.Define(y, b.MdOf(x), b.BufferOf(x));
    return Status::OK();
  }
  // An FP32 strided tensor that is not plain (a column range of merged siblings' output, a
  // Transpose view) keeps its buffer when the reshape is expressible on its strides and its
  // readers take strided operands: BERT's K / V head splits are read from the merged QKV output
  // by the one reorder their matmul makes anyway, instead of a copy and then that reorder.
  const memory::desc& x_md = b.MdOf(x);
  if (x_md.data_type() == memory::data_type::f32 && x_md.data.format_kind == dnnl_blocked &&
      x_md.data.format_desc.blocking.inner_nblks == 0 && x_md != Builder::Plain(b.dims[x]) &&
      ReadsStrided(b, y, b.layer)) {
    const auto& st = x_md.data.format_desc.blocking.strides;
    const Dims in_strides(st, st + x_md.data.ndims);
    if (std::optional<Dims> out_strides = StridedReshape(b.dims[x], in_strides, b.dims[y])) {
      const Dims& yd = b.dims[y];
      memory::desc view(memory::dims(yd.begin(), yd.end()), memory::data_type::f32,
                        memory::dims(out_strides->begin(), out_strides->end()));
      view.data.offset0 = x_md.data.offset0;
      b.Define(y, view, b.BufferOf(x));
      return Status::OK();
    }
  }
  const memory::data_type t = b.MdOf(x).data_type();
  KILN_ASSIGN_OR_RETURN(int buf, b.As(x, Builder::Plain(b.dims[x], t)));
  b.Define(y, Builder::Plain(b.dims[y], t), buf);
  return Status::OK();
}

Status BuildResample(Builder& b) {
  const Layer& l = b.L();
  const int x = l.inputs[0];
  const int r = static_cast<int>(b.dims[x].size());
  const bool nhwc = l.Int("nhwc") != 0;
  const std::vector<int> to_logical = nhwc ? ToLogicalPerm(r) : std::vector<int>();
  const std::vector<int> to_tensor = nhwc ? ToTensorPerm(r) : std::vector<int>();
  const memory::desc y_logical = Permuted(Builder::Plain(b.dims[l.outputs[0]]), to_logical);
  return WithLayout(b, x, [&](const memory::desc& tmd, int buf) -> Status {
    const memory::desc md = Permuted(tmd, to_logical);
    dnnl::resampling_forward::desc d(kInference, static_cast<A>(l.Int("alg")), md,
                                     AnyLike(y_logical, md.data_type()));
    dnnl::resampling_forward::primitive_desc pd(d, ScratchAttr(), b.eng);
    KILN_RETURN_IF_ERROR(b.Choose(pd));
    const int out = b.Define(l.outputs[0], Permuted(pd.dst_desc(), to_tensor));
    b.AddStep(dnnl::primitive(pd), pd,
              {{DNNL_ARG_SRC, md, buf}, {DNNL_ARG_DST, pd.dst_desc(), out}});
    return Status::OK();
  });
}

Status BuildReduce(Builder& b) {
  const Layer& l = b.L();
  const int x = l.inputs[0];
  Dims kd = b.dims[x];
  for (int64_t a : l.Ints("axes")) kd[a] = 1;
  const memory::desc dst = Builder::Plain(kd);
  return WithF32Layout(b, x, [&](const memory::desc& md, int buf) -> Status {
    dnnl::reduction::desc d(static_cast<A>(l.Int("alg")), md, dst, 0.f, 0.f);
    dnnl::reduction::primitive_desc pd(d, ScratchAttr(), b.eng);
    KILN_RETURN_IF_ERROR(b.Choose(pd));
    const int out = b.Define(l.outputs[0], Builder::Plain(b.dims[l.outputs[0]]));
    b.AddStep(dnnl::primitive(pd), pd, {{DNNL_ARG_SRC, md, buf}, {DNNL_ARG_DST, dst, out}});
    return Status::OK();
  });
}

}  // namespace

Status BuildMisc(Builder& b) {
  switch (b.L().kind) {
    case LayerKind::kEltwise:
      return BuildEltwise(b);
    case LayerKind::kBinary:
      return BuildBinary(b);
    case LayerKind::kPool:
      return BuildPool(b);
    case LayerKind::kSoftmax:
      return BuildSoftmax(b);
    case LayerKind::kLayerNorm:
      return BuildLayerNorm(b);
    case LayerKind::kBatchNorm:
      return BuildBatchNorm(b);
    case LayerKind::kConcat:
      return BuildConcat(b);
    case LayerKind::kTranspose:
      return BuildTranspose(b);
    case LayerKind::kView:
      return BuildView(b);
    case LayerKind::kResample:
      return BuildResample(b);
    case LayerKind::kReduce:
      return BuildReduce(b);
    case LayerKind::kPRelu:
      return BuildPRelu(b);
    default:
      return Internal("not a misc layer");
  }
}

}  // namespace kiln::cpu
