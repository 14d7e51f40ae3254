// INT8 layers (issue 5): convolution and matmul with u8/s8 activations and s8 per-channel
// weights (VNNI dot products on AVX512-VNNI / AVX-VNNI, AMX where present).
//
// A conv / matmul layer runs in INT8 when the engine is built in INT8 mode and the calibration
// table (BuildConfig::int8_ranges) has a range for its input tensor. Then:
//   - the input is quantized by one reorder step with scale 127/amax (s8), or 255/amax (u8) when
//     calibration saw no negative value (e.g. after a ReLU);
//   - the weights are quantized once at build per output channel, symmetric
//     (q = round(w * 127 / amax_channel); 63 on CPUs without VNNI: Int8WeightLevels), and
//     reordered into the primitive's layout;
//   - the primitive computes in s32 and writes FP32 through per-channel output scales
//     (src_scale * weight_scale[c]); the bias is given pre-divided by that scale (oneDNN 2.x adds
//     the bias before the output scales), so fused ReLU / residual-sum / binary post-ops run on
//     dequantized values exactly as in FP32.
// So the Q/DQ pair of the IR (QuantizeLinear -> DequantizeLinear -> Conv) becomes one reorder
// and the output scales of one integer primitive. A layer whose INT8 primitive cannot be made
// (an unsupported shape or post-op) is built in the higher precision instead (per-layer
// fallback; instance.cc).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "backends/cpu/layer_views.h"
#include "backends/cpu/int8_policy.h"
#include "backends/cpu/layers.h"
#include "backends/cpu/precision.h"
#include "engine/calibrator.h"

namespace kiln::cpu {
namespace {

using dt = memory::data_type;

memory::desc Strided(const Dims& d, const Dims& strides, dt t, int64_t offset0 = 0) {
  memory::desc md(memory::dims(d.begin(), d.end()), t,
                  memory::dims(strides.begin(), strides.end()));
  md.data.offset0 = offset0;
  return md;
}

struct ActQuant {
  dt type;      // u8 or s8
  float scale;  // quantized = round(x * scale)
};

ActQuant ActivationQuant(const TensorRange& r) {
  const float amax = r.amax > 0 && std::isfinite(r.amax) ? r.amax : 1e-6f;
  if (r.min >= 0) return {dt::u8, 255.f / amax};
  return {dt::s8, 127.f / amax};
}

// Per-channel symmetric s8 weights of a [channels, per] row-major block; returns the scales
// (amax / levels) per channel.
std::vector<float> QuantizeRows(const float* w, int64_t channels, int64_t per, int8_t* q) {
  const float levels = Int8WeightLevels();
  std::vector<float> amax = PerChannelAmax(w, channels, per);
  std::vector<float> scale(channels);
  for (int64_t c = 0; c < channels; ++c) {
    scale[c] = amax[c] > 0 ? amax[c] / levels : 1.f;
    const float inv = 1.f / scale[c];
    for (int64_t k = 0; k < per; ++k) {
      const float v = std::nearbyint(w[c * per + k] * inv);
      q[c * per + k] = static_cast<int8_t>(std::fmax(-levels, std::fmin(levels, v)));
    }
  }
  return scale;
}

}  // namespace

// Integer levels of calibrated weights (layers.h): 127 where the CPU multiplies u8 x s8 with 32-bit
// accumulation (VNNI, AMX); 63 (7 bits) on AVX2 / AVX-512 without VNNI, whose vpmaddubsw adds
// pairs of u8 x s8 products in int16 and saturates with full-range weights (255 * 127 * 2 >
// 32767; ONNX Runtime's reduce_range, for the same reason). Read once, like oneDNN's ISA.
float Int8WeightLevels() {
  static const float levels = [] {
    using isa = dnnl::cpu_isa;
    const isa i = dnnl::get_effective_cpu_isa();
    const bool vnni = i == isa::avx512_core_vnni || i == isa::avx512_core_bf16 ||
                      i == isa::avx512_core_amx || i == isa::avx2_vnni;
    return vnni ? 127.f : 63.f;
  }();
  return levels;
}

StatusOr<int> Builder::Quantized(int t, const memory::desc& want, float scale,
                                 bool private_copy) {
  // t may already hold quantized values (an INT8 producer wrote them): rescale from those.
  auto q = quant_scale_.find(t);
  const float factor = q == quant_scale_.end() ? scale : scale / q->second;
  if (q != quant_scale_.end() && factor == 1.f && want.data_type() == state_[t].md.data_type()) {
    return As(t, want);  // the same quantization: a layout change at most
  }
  std::vector<std::pair<memory::desc, int>>& made = quantized_[{t, scale}];
  for (const auto& [md, buf] : made) {
    if (md == want && !private_copy) return buf;
  }
  const int nb = NewBuffer(want.get_size());
  if (!private_copy) made.push_back({want, nb});
  dnnl::primitive_attr attr = ScratchAttr();
  attr.set_output_scales(0, {factor});
  dnnl::reorder::primitive_desc pd(eng, state_[t].md, eng, want, attr);
  Step s;
  s.prim = dnnl::reorder(pd);
  s.args = {{DNNL_ARG_FROM, state_[t].md, state_[t].buffer}, {DNNL_ARG_TO, want, nb}};
  s.layer = layer;
  s.scratch_md = pd.scratchpad_desc();
  s.threads = threads;
  out_->steps.push_back(std::move(s));
  return nb;
}

StatusOr<int> Builder::WeightsFromData(int operand, const memory::desc& src, const void* data,
                                       const memory::desc& want) {
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> w,
                        cache_->Get(layer + layer_base, operand, src, data, want, eng));
  out_->keep.push_back(w);
  BufferDef b;
  b.where = BufferDef::kConst;
  b.data = w.get();
  out_->buffers.push_back(b);
  buffer_tensors_.emplace_back();
  return static_cast<int>(out_->buffers.size()) - 1;
}

namespace {

// Whether layer `l` can run in INT8 (its input's range aside): a conv with constant weights
// (not depthwise) or a matmul with a constant [K, N] B; the INT8 builders check the rest.
bool Int8Capable(const Builder& b, const Layer& l) {
  if (l.kind != LayerKind::kConv && l.kind != LayerKind::kMatMul) return false;
  if (l.inputs.size() < 2 || l.inputs[0] < 0 || b.IsConst(l.inputs[0])) return false;
  if (!b.IsConst(l.inputs[1])) return false;
  const Dims& wd = b.dims[l.inputs[1]];
  if (l.kind == LayerKind::kMatMul) {
    return wd.size() == 2 && l.Int("trans_b") == 0 && l.Int("trans_a") == 0 &&
           b.dims[l.inputs[0]].size() >= 2 && l.Ints("split").empty();
  }
  // Depthwise convs stay in floating point: memory-bound, so the quantize reorder in front of
  // them costs more than the INT8 kernel saves (MobileNetV2 batch 8 measured: INT8 depthwise
  // 18.5 ms vs BF16 11.1 ms), and per-tensor INT8 is least accurate there.
  return !(l.Int("group", 1) > 1 && wd.size() > 1 && wd[1] == 1);
}

// Int8Capable, and INT8 is the faster precision for it on this CPU (int8_policy.h: long and wide
// enough dot products), and not kept in FP32 (ForcedFp32: BuildConfig::fp32_layers,
// KILN_CPU_FP32_LAYERS).
bool Int8Chosen(const Builder& b, const Layer& l) {
  if (!Int8Capable(b, l) || ForcedFp32(l, b.cfg)) return false;
  const Dims& wd = b.dims[l.inputs[1]];
  int64_t k = 1, n = 1;
  if (l.kind == LayerKind::kMatMul) {
    k = wd[0];
    n = wd[1];
  } else {
    for (size_t i = 1; i < wd.size(); ++i) k *= wd[i];  // (C_in / group) * kernel volume
    n = wd[0] / std::max<int64_t>(l.Int("group", 1), 1);
  }
  return Int8Pays(k, n, Int8Thresholds());
}

}  // namespace

bool IsInt8MaxPool(const Layer& l) {
  return l.kind == LayerKind::kPool && l.post_ops.empty() && l.outputs.size() == 1 &&
         l.Int("alg") == static_cast<int64_t>(dnnl::algorithm::pooling_max);
}

const TensorRange* Int8RangeOf(const Builder& b) {
  if (b.cfg.precision != Precision::kINT8 || b.cfg.int8_ranges.empty()) return nullptr;
  const Layer& l = b.L();
  if (!Int8Chosen(b, l)) return nullptr;
  // An input a BF16 layer wrote would need oneDNN's bf16 -> int8 reorder, which costs more than
  // the INT8 kernel saves (MobileNetV2's 1x1 projections after BF16 depthwise convs, batch 8:
  // 0.18 ms INT8 vs 0.08 ms BF16): such a layer stays in BF16 too (int8_policy.h).
  if (b.MdOf(l.inputs[0]).data_type() == dt::bf16 && !Int8PolicyOff(Int8Thresholds())) {
    return nullptr;
  }
  auto it = b.cfg.int8_ranges.find(b.prog.tensors[l.inputs[0]].name);
  return it == b.cfg.int8_ranges.end() ? nullptr : &it->second;
}

namespace {

// Whether tensor t (a max pool's output, written by layer `from`) is read only as the input of
// INT8 convs / matmuls: other layers would read its INT8 values as real ones.
bool OnlyInt8Inputs(const Builder& b, int t, size_t from) {
  for (int o : b.prog.outputs) {
    if (o == t) return false;
  }
  for (size_t j = from + 1; j < b.prog.layers.size(); ++j) {
    const Layer& c = b.prog.layers[j];
    if (c.dead) continue;
    for (size_t k = 0; k < c.inputs.size(); ++k) {
      if (c.inputs[k] == t && (k != 0 || !Int8Chosen(b, c))) return false;
    }
    for (const PostOp& po : c.post_ops) {
      if (po.tensor == t) return false;
    }
  }
  return true;
}

// Q/DQ at precision boundaries only: the range the current conv writes its output with, INT8,
// when every reader of that output is an INT8-capable conv / matmul reading it as its input or
// an INT8-capable conv adding it as its residual (sum post-op; not an engine output, not a
// binary operand), and the layer's post-ops are eltwise ones plus at most a residual sum. A
// residual written quantized (a ResNet block's output feeding the next identity block: read by
// conv1, added by conv3; a calibrated downsample branch, s8 into a u8 block) is added by the sum
// post-op with `residual_scale`; an FP32 one (a downsample branch without a range) by a binary
// add where it is (`residual_binary`). nullptr: it
// writes FP32. A reader that still falls back to floating point gets a dequantizing reorder
// (Builder::As, DefineDst).
// A max pooling reader passes the INT8 values through (max commutes with the monotonic
// quantization; BuildPool marks its output quantized alike): the output then takes the pooled
// tensor's range when it has none of its own (ResNet's stem conv -> max pool -> convs).
// KILN_CPU_INT8_RESIDUAL=0 (diagnostics) keeps residual blocks in FP32 between INT8 layers.
const TensorRange* ChainedOutputRange(const Builder& b, const float** residual_scale,
                                      bool* residual_binary) {
  static const bool residual_chain = [] {
    const char* v = std::getenv("KILN_CPU_INT8_RESIDUAL");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  const Layer& l = b.L();
  *residual_scale = nullptr;
  *residual_binary = false;
  if (l.outputs.size() != 1 || !l.Ints("split").empty()) return nullptr;
  int sum = -1;
  for (const PostOp& po : l.post_ops) {
    if (po.kind == PostOp::kSum && sum < 0 && residual_chain) {
      sum = po.tensor;
      continue;
    }
    if (po.kind != PostOp::kEltwise) return nullptr;
  }
  const int t = l.outputs[0];
  for (int o : b.prog.outputs) {
    if (o == t) return nullptr;
  }
  auto range_of = [&](int tensor) -> const TensorRange* {
    auto it = b.cfg.int8_ranges.find(b.prog.tensors[tensor].name);
    return it == b.cfg.int8_ranges.end() ? nullptr : &it->second;
  };
  const TensorRange* range = range_of(t);
  bool read = false;
  for (size_t j = static_cast<size_t>(b.layer) + 1; j < b.prog.layers.size(); ++j) {
    const Layer& c = b.prog.layers[j];
    if (c.dead) continue;
    for (size_t k = 0; k < c.inputs.size(); ++k) {
      if (c.inputs[k] != t) continue;
      if (k == 0 && IsInt8MaxPool(c) && residual_chain &&
          OnlyInt8Inputs(b, c.outputs[0], j)) {
        if (range == nullptr) range = range_of(c.outputs[0]);
        read = true;
        continue;
      }
      if (k != 0 || !Int8Chosen(b, c)) return nullptr;
      read = true;
    }
    for (const PostOp& po : c.post_ops) {
      if (po.tensor != t) continue;
      if (po.kind != PostOp::kSum || c.kind != LayerKind::kConv || !Int8Chosen(b, c) ||
          !residual_chain) {
        return nullptr;
      }
      read |= range != nullptr;  // a residual branch with a range of its own (downsample)
    }
  }
  if (!read || range == nullptr) return nullptr;
  if (sum >= 0) {
    // A quantized residual is read by the sum post-op in its own type (ResidualType); an FP32
    // one cannot be (the sum reads the dst buffer), so a binary add reads it where it is.
    *residual_scale = b.QuantScaleOf(sum);
    if (*residual_scale == nullptr) {
      if (b.MdOf(sum).data_type() != dt::f32) return nullptr;
      *residual_binary = true;
    }
  }
  return range;
}

// The type the sum post-op reads a quantized residual in when it is not the dst's (s8 / u8).
dt ResidualType(const Builder& b, const float* residual_scale, dt dst) {
  if (residual_scale == nullptr) return dt::undef;
  for (const PostOp& po : b.L().post_ops) {
    if (po.kind == PostOp::kSum) {
      const dt r = b.MdOf(po.tensor).data_type();
      return r == dst ? dt::undef : r;
    }
  }
  return dt::undef;
}

Status BuildConvInt8(Builder& b, const TensorRange& range) {
  const Layer& l = b.L();
  const int x = l.inputs[0], w = l.inputs[1];
  const int bias = l.inputs.size() > 2 ? l.inputs[2] : -1;
  if (!b.IsConst(w) || (bias >= 0 && !b.IsConst(bias))) {
    return Unimplemented("INT8 conv needs constant weights");
  }
  const Dims& xd = b.dims[x];
  const int r = static_cast<int>(xd.size());
  const bool nhwc = l.Int("nhwc") != 0;
  const std::vector<int> to_logical = nhwc ? ToLogicalPerm(r) : std::vector<int>();
  const std::vector<int> to_tensor = nhwc ? ToTensorPerm(r) : std::vector<int>();
  const Dims xl = LogicalDims(xd, nhwc);
  const Dims& wd = b.dims[w];
  const int64_t g = l.Int("group", 1);
  int64_t ksize = 1;
  for (int i = 2; i < r; ++i) ksize *= wd[i];
  const int64_t out_ch = wd[0], in_ch = xl[1];
  Dims wdims = {out_ch / g, in_ch / g};
  wdims.insert(wdims.end(), wd.begin() + 2, wd.end());
  Dims wstrides(wdims.size(), 1);
  for (int i = r - 2; i >= 2; --i) wstrides[i] = wstrides[i + 1] * wdims[i + 1];
  wstrides[0] = wdims[1] * ksize;
  wstrides[1] = ksize;
  if (g > 1) {
    wdims.insert(wdims.begin(), g);
    wstrides.insert(wstrides.begin(), (out_ch / g) * (in_ch / g) * ksize);
  }
  // Quantized weights [O, I/g, k..] (the IR's layout) and the per-channel scales.
  const int64_t per = (in_ch / g) * ksize;
  std::vector<int8_t> wq(static_cast<size_t>(out_ch * per));
  const std::vector<float> wscale =
      QuantizeRows(b.prog.tensors[w].value.data<float>(), out_ch, per, wq.data());
  const memory::desc wsrc = Strided(wdims, wstrides, dt::s8);

  const ActQuant aq = ActivationQuant(range);
  std::vector<float> oscale(out_ch);
  for (int64_t c = 0; c < out_ch; ++c) oscale[c] = wscale[c] / aq.scale;

  const ConvGeometry geo = ConvOutputGeometry(l, xl, b.dims[l.outputs[0]], out_ch, nhwc);
  const Dims& yl = geo.yl;
  const memory::dims &strides = geo.strides, &dil = geo.dil, &pl = geo.pl, &pr = geo.pr;
  b.dt = dt::f32;  // post-ops and dst in FP32
  // INT8 output for INT8 readers: the last post-op scales into their quantization. A residual
  // read quantized (q_r = x_r * s_r, in the dst buffer) is added as q_r / s_r: the post-ops
  // still see real values.
  const float* residual_scale = nullptr;
  bool residual_binary = false;
  const TensorRange* out_range = ChainedOutputRange(b, &residual_scale, &residual_binary);
  const ActQuant oq = out_range != nullptr ? ActivationQuant(*out_range) : ActQuant{dt::f32, 1.f};
  std::vector<StepArg> args;
  int sum_tensor = -1;
  KILN_ASSIGN_OR_RETURN(
      dnnl::post_ops ops,
      MakePostOps(b, Any(yl, dt::f32), to_logical, &args, &sum_tensor,
                  residual_scale != nullptr ? 1.f / *residual_scale : 1.f, residual_binary,
                  ResidualType(b, residual_scale, oq.type)));
  if (out_range != nullptr) {
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, oq.scale, 0.f);
  }
  dnnl::primitive_attr attr = ScratchAttr();
  attr.set_post_ops(ops);
  attr.set_output_scales(1 << 1, oscale);
  const memory::desc bias_md = bias >= 0 ? Builder::Plain({out_ch}) : memory::desc();
  auto make = [&](const memory::desc& dst) -> StatusOr<dnnl::convolution_forward::primitive_desc> {
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                      dnnl::algorithm::convolution_direct, Any(xl, aq.type),
                                      Any(wdims, dt::s8), bias_md, dst, strides, dil, pl, pr);
    dnnl::convolution_forward::primitive_desc pd(d, attr, b.eng);
    KILN_RETURN_IF_ERROR(b.Choose(pd));
    return pd;
  };
  KILN_ASSIGN_OR_RETURN(dnnl::convolution_forward::primitive_desc pd, make(Any(yl, oq.type)));
  const std::vector<int64_t>& split = l.Ints("split");
  std::vector<memory::desc> views;
  if (!split.empty() && !SplitViews(pd.dst_desc(), split, &views)) {
    KILN_ASSIGN_OR_RETURN(pd, make(memory::desc(memory::dims(yl.begin(), yl.end()), dt::f32,
                                                ChannelsLastTag(yl.size()))));
    if (!SplitViews(pd.dst_desc(), split, &views)) return Unimplemented("cannot split channels");
  }
  if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) {
    return Unimplemented("no optimized INT8 convolution for this layer");
  }
  const memory::desc src_md = pd.src_desc(), w_md = pd.weights_desc(), dst_md = pd.dst_desc();
  KILN_ASSIGN_OR_RETURN(int src_buf, b.Quantized(x, Permuted(src_md, to_tensor), aq.scale));
  KILN_ASSIGN_OR_RETURN(int w_buf, b.WeightsFromData(101, wsrc, wq.data(), w_md));
  args.push_back({DNNL_ARG_SRC, src_md, src_buf});
  args.push_back({DNNL_ARG_WEIGHTS, w_md, w_buf});
  std::vector<float> bq;
  if (bias >= 0) {
    const float* bv = b.prog.tensors[bias].value.data<float>();
    bq.resize(out_ch);
    for (int64_t c = 0; c < out_ch; ++c) bq[c] = bv[c] / oscale[c];
    KILN_ASSIGN_OR_RETURN(int bb, b.WeightsFromData(102, bias_md, bq.data(), pd.bias_desc()));
    args.push_back({DNNL_ARG_BIAS, pd.bias_desc(), bb});
  }
  KILN_RETURN_IF_ERROR(DefineConvDst(b, l, dst_md, split, views, to_tensor, sum_tensor, &args));
  if (split.empty() && out_range != nullptr) b.SetQuantized(l.outputs[0], oq.scale);
  b.AddStep(dnnl::primitive(pd), pd, std::move(args));
  return Status::OK();
}

// MatMul / Gemm with a constant 2-D B ([K, N], not transposed) and a dense A.
Status BuildMatMulInt8(Builder& b, const TensorRange& range) {
  const Layer& l = b.L();
  const int a = l.inputs[0], w = l.inputs[1];
  const int bias = l.inputs.size() > 2 ? l.inputs[2] : -1;
  const bool ta = l.Int("trans_a") != 0, tb = l.Int("trans_b") != 0;
  const Dims& ad = b.dims[a];
  const Dims& bd = b.dims[w];
  if (!b.IsConst(w) || bd.size() != 2 || tb || ta || (bias >= 0 && !b.IsConst(bias))) {
    return Unimplemented("INT8 matmul needs a constant [K, N] B and an untransposed A");
  }
  if (!l.Ints("split").empty()) return Unimplemented("INT8 matmul of merged siblings");
  if (ad.size() < 2) return Unimplemented("INT8 matmul needs A of rank 2 or more");
  for (const PostOp& po : l.post_ops) {
    if (po.kind != PostOp::kEltwise && po.kind != PostOp::kSum) {
      return Unimplemented("INT8 matmul with a binary post-op");
    }
  }
  const Dims& out0 = b.dims[l.outputs[0]];
  int64_t m = 1;
  for (size_t i = 0; i + 1 < ad.size(); ++i) m *= ad[i];
  const int64_t k = ad.back(), n = bd[1];
  if (bd[0] != k) return Unimplemented("INT8 matmul: inner dims differ");
  int64_t out_elems = 1;
  for (int64_t v : out0) out_elems *= v;
  if (out_elems != m * n) return Unimplemented("INT8 matmul: unexpected output shape");

  // Weights: per-column (N) scales; quantize B^T rows then store [K, N].
  const float* wv = b.prog.tensors[w].value.data<float>();
  std::vector<float> wt(static_cast<size_t>(k * n));
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < n; ++j) wt[j * k + i] = wv[i * n + j];
  }
  std::vector<int8_t> qt(wt.size()), wq(wt.size());
  const std::vector<float> wscale = QuantizeRows(wt.data(), n, k, qt.data());
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < n; ++j) wq[i * n + j] = qt[j * k + i];
  }
  const ActQuant aq = ActivationQuant(range);
  std::vector<float> oscale(n);
  for (int64_t j = 0; j < n; ++j) oscale[j] = wscale[j] / aq.scale;

  const memory::desc a_q = Builder::Plain(ad, aq.type);  // the quantized A, plain
  const memory::desc a_md = Strided({m, k}, {k, 1}, aq.type);
  const memory::desc dst_md = Builder::Plain({m, n});
  b.dt = dt::f32;
  std::vector<StepArg> args;
  int sum_tensor = -1;
  KILN_ASSIGN_OR_RETURN(dnnl::post_ops ops, MakePostOps(b, dst_md, {}, &args, &sum_tensor));
  dnnl::primitive_attr attr = ScratchAttr();
  attr.set_post_ops(ops);
  attr.set_output_scales(1 << 1, oscale);
  const memory::desc w_any = Any({k, n}, dt::s8);
  const memory::desc bias_md = bias >= 0 ? Builder::Plain({1, n}) : memory::desc();
  dnnl::matmul::desc d = bias >= 0 ? dnnl::matmul::desc(a_md, w_any, bias_md, dst_md)
                                   : dnnl::matmul::desc(a_md, w_any, dst_md);
  dnnl::matmul::primitive_desc pd(d, attr, b.eng);
  KILN_RETURN_IF_ERROR(b.Choose(pd));
  if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) {
    return Unimplemented("no optimized INT8 matmul for this layer");
  }
  KILN_ASSIGN_OR_RETURN(int a_buf, b.Quantized(a, a_q, aq.scale));
  args.push_back({DNNL_ARG_SRC, a_md, a_buf});
  KILN_ASSIGN_OR_RETURN(int wb, b.WeightsFromData(101, Strided({k, n}, {n, 1}, dt::s8), wq.data(),
                                                  pd.weights_desc()));
  args.push_back({DNNL_ARG_WEIGHTS, pd.weights_desc(), wb});
  std::vector<float> bq;
  if (bias >= 0) {
    const float* bv = b.prog.tensors[bias].value.data<float>();
    bq.resize(n);
    for (int64_t j = 0; j < n; ++j) bq[j] = bv[j] / oscale[j];
    KILN_ASSIGN_OR_RETURN(int bb, b.WeightsFromData(102, bias_md, bq.data(), pd.bias_desc()));
    args.push_back({DNNL_ARG_BIAS, pd.bias_desc(), bb});
  }
  KILN_ASSIGN_OR_RETURN(int dst_buf,
                        DefineDst(b, l.outputs[0], Builder::Plain(out0), sum_tensor, args));
  args.push_back({DNNL_ARG_DST, dst_md, dst_buf});
  b.AddStep(dnnl::primitive(pd), pd, std::move(args));
  return Status::OK();
}

}  // namespace

Status BuildInt8(Builder& b, const TensorRange& range) {
  try {
    if (b.L().kind == LayerKind::kConv) return BuildConvInt8(b, range);
    if (b.L().kind == LayerKind::kMatMul) return BuildMatMulInt8(b, range);
  } catch (const dnnl::error& e) {
    return Unimplemented(std::string("oneDNN (INT8): ") + e.what());
  }
  return Unimplemented("no INT8 kernel for this layer kind");
}

}  // namespace kiln::cpu
