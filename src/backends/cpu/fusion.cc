// Engine-internal fusion passes on the layer program (ARCHITECTURE §2: fusion happens inside
// the engine builder, never on the user's graph). Run in this order, each to a fixed point:
//
//  1. FoldBatchNorm   Conv / ConvTranspose / 2-D MatMul with constant weights followed by an
//                     inference BatchNormalization on its output channels (and nothing else
//                     reading the conv's output): the BN's scale goes into the weights, its shift
//                     into the bias. Exact up to float rounding.
//  2. FuseBias        MatMul with a constant 2-D B followed by Add of a constant per-column
//                     vector: the vector becomes the matmul's bias.
//  3. FuseEltwiseChains  an eltwise layer whose only consumer is an eltwise layer: one chain
//                     (adjacent linear ops composed into one).
//  4. FuseHardSwish  x * G(x) [* k], with G an eltwise chain linear(a, b), clip(0, hi)
//                     [, linear(k')] on the same x, whose product is x * clip(x/6 + 1/2, 0, 1)
//                     (PaddleOCR's x * clip(x + 3, 0, 6) / 6, and x * HardSigmoid(x) with alpha
//                     1/6, beta 1/2): one eltwise_hardswish on x, so that the producer of x
//                     (usually a Conv+BN) then takes it as a post-op. Exact up to rounding.
//  5. FuseGelu      x * G(x) [* k], with G the eltwise chain linear(1/sqrt(2), 0), Erf, linear(p,
//  q)
//                     and x optionally scaled first (x * s, an eltwise layer used only there),
//                     whose product is x * 0.5 * (1 + erf(x / sqrt(2))) (PyTorch's / TF's exact
//                     GELU): one eltwise_gelu_erf on x, then a post-op of x's producer. Erf
//                     exists only as a marker (lowering.h kAlgErfMarker) for this pass.
//  6. FusePostOps     Conv / ConvTranspose / MatMul / Binary whose only consumer is an eltwise
//                     layer (its chain appended as eltwise post-ops), or, for the first three, a
//                     binary layer: a same-shape non-constant Add operand becomes a sum post-op
//                     (the residual, summed in place when it dies there), any other operand that
//                     broadcasts onto the output a binary post-op (kept only when oneDNN builds
//                     it). The fused layer takes the consumer's place in the program, so the
//                     post-op operand is always computed before it. A Conv / ConvTranspose
//                     followed by PRelu with a constant per-channel slope: a prelu post-op.
//                     Never fused: a chain that
//                     repeats an eltwise algorithm with other parameters (InjectorSafe: a
//                     oneDNN 2.6 jit bug).
//  7. MergeSiblings   Convs (group 1, same kernel / strides / pads / dilations / layout) or
//                     MatMuls (constant 2-D B) reading the same tensor with the same eltwise
//                     post-ops: one primitive over the concatenated weights, each sibling's
//                     output a channel (column) range of the merged result (layers_conv.cc
//                     and layers_matmul.cc say when that is a view and when a copy).
//
// Every pass keeps the program topologically ordered and the fused layer's op string and node
// list (LayerInfo) complete.
#include <algorithm>
#include <cmath>
#include <map>

#include "backends/cpu/layers.h"
#include "backends/cpu/lowering.h"
#include "core/logging.h"

namespace kiln::cpu {
namespace {

using A = dnnl::algorithm;

struct Uses {
  std::vector<int> producer;                // tensor -> layer (-1: input / const)
  std::vector<std::vector<int>> consumers;  // tensor -> layers reading it
  std::vector<int> count;                   // Program::UseCounts
};

Uses Analyze(const Program& p) {
  Uses u;
  u.producer.assign(p.tensors.size(), -1);
  u.consumers.resize(p.tensors.size());
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const Layer& l = p.layers[i];
    if (l.dead) continue;
    for (int t : l.outputs) u.producer[t] = static_cast<int>(i);
    for (int t : l.inputs) {
      if (t >= 0) u.consumers[t].push_back(static_cast<int>(i));
    }
    for (const PostOp& po : l.post_ops) {
      if (po.tensor >= 0) u.consumers[po.tensor].push_back(static_cast<int>(i));
    }
  }
  u.count = p.UseCounts();
  return u;
}

// The single layer consuming t when t has exactly one use (engine outputs count as uses).
int SoleConsumer(const Uses& u, int t) {
  if (u.count[t] != 1 || u.consumers[t].size() != 1) return -1;
  return u.consumers[t][0];
}

bool ConstWeights(const Program& p, const Layer& l) {
  if (!p.tensors[l.inputs[1]].is_const) return false;
  return l.inputs.size() < 3 || l.inputs[2] < 0 || p.tensors[l.inputs[2]].is_const;
}

int AddConst(Program* p, const std::string& name, Tensor v) {
  TensorDef t;
  t.name = name;
  t.dims = v.dims();
  t.is_const = true;
  t.value = std::move(v);
  p->tensors.push_back(std::move(t));
  return static_cast<int>(p->tensors.size()) - 1;
}

void Absorb(Layer* into, const Layer& from) {
  into->op += "+" + from.op;
  into->nodes.insert(into->nodes.end(), from.nodes.begin(), from.nodes.end());
}

void Log(const Layer& l) { KILN_LOG(DEBUG) << "cpu fusion: " << l.op << " [" << l.nodes[0] << "]"; }

// ----------------------------------------------------------------------------- 1. BN folding

bool FoldBatchNorm(Program* p) {
  bool changed = false;
  Uses u = Analyze(*p);
  for (size_t i = 0; i < p->layers.size(); ++i) {
    Layer& bn = p->layers[i];
    if (bn.dead || bn.kind != LayerKind::kBatchNorm) continue;
    const int t = bn.inputs[0];
    const int pi = u.producer[t];
    if (pi < 0 || SoleConsumer(u, t) != static_cast<int>(i)) continue;
    Layer& prod = p->layers[pi];
    const bool conv = prod.kind == LayerKind::kConv || prod.kind == LayerKind::kDeconv;
    const bool mm = prod.kind == LayerKind::kMatMul && prod.Int("trans_b") == 0 &&
                    p->tensors[prod.inputs[1]].dims.size() == 2 && p->tensors[t].dims.size() == 2;
    if ((!conv && !mm) || !prod.post_ops.empty() || !prod.Ints("split").empty() ||
        !ConstWeights(*p, prod)) {
      continue;
    }
    if (conv && prod.Int("nhwc") != bn.Int("nhwc")) continue;
    const Tensor& w = p->tensors[prod.inputs[1]].value;
    const float* s = p->tensors[bn.inputs[1]].value.data<float>();
    const float* sh = p->tensors[bn.inputs[2]].value.data<float>();
    const float* mean = p->tensors[bn.inputs[3]].value.data<float>();
    const float* var = p->tensors[bn.inputs[4]].value.data<float>();
    const float eps = bn.Float("eps", 1e-5f);
    const Dims& wd = w.dims();
    const int64_t out_ch = prod.kind == LayerKind::kConv     ? wd[0]
                           : prod.kind == LayerKind::kDeconv ? wd[1] * prod.Int("group", 1)
                                                             : wd[1];
    if (p->tensors[bn.inputs[1]].value.num_elements() != out_ch) continue;
    std::vector<float> scale(out_ch);
    for (int64_t c = 0; c < out_ch; ++c) scale[c] = s[c] / std::sqrt(var[c] + eps);
    Tensor nw = w.Clone();
    float* pw = nw.mutable_data<float>();
    if (prod.kind == LayerKind::kConv) {
      const int64_t per = w.num_elements() / out_ch;
      for (int64_t o = 0; o < out_ch; ++o) {
        for (int64_t k = 0; k < per; ++k) pw[o * per + k] *= scale[o];
      }
    } else if (prod.kind == LayerKind::kDeconv) {  // [I, O/g, k]
      const int64_t g = prod.Int("group", 1), og = wd[1], ig = wd[0] / g;
      const int64_t ks = w.num_elements() / (wd[0] * wd[1]);
      for (int64_t i = 0; i < wd[0]; ++i) {
        for (int64_t o = 0; o < og; ++o) {
          const float sc = scale[(i / ig) * og + o];
          for (int64_t k = 0; k < ks; ++k) pw[(i * og + o) * ks + k] *= sc;
        }
      }
    } else {  // [K, N]
      for (int64_t k = 0; k < wd[0]; ++k) {
        for (int64_t n = 0; n < wd[1]; ++n) pw[k * wd[1] + n] *= scale[n];
      }
    }
    Tensor nb = Tensor::Empty(DataType::kFloat32, {out_ch});
    const float* ob = prod.inputs.size() > 2 && prod.inputs[2] >= 0
                          ? p->tensors[prod.inputs[2]].value.data<float>()
                          : nullptr;
    for (int64_t c = 0; c < out_ch; ++c) {
      nb.mutable_data<float>()[c] = ((ob ? ob[c] : 0.f) - mean[c]) * scale[c] + sh[c];
    }
    const std::string base = p->tensors[prod.inputs[1]].name;
    prod.inputs.resize(3);
    prod.inputs[1] = AddConst(p, base + "/bn_folded", std::move(nw));
    prod.inputs[2] = AddConst(p, base + "/bn_bias", std::move(nb));
    prod.outputs = bn.outputs;
    Absorb(&prod, bn);
    bn.dead = true;
    Log(prod);
    changed = true;
    u = Analyze(*p);
  }
  return changed;
}

// ----------------------------------------------------------------------------- 2. bias

bool FuseBias(Program* p) {
  bool changed = false;
  Uses u = Analyze(*p);
  for (size_t i = 0; i < p->layers.size(); ++i) {
    Layer& mm = p->layers[i];
    if (mm.dead || mm.kind != LayerKind::kMatMul || mm.inputs.size() > 2 || !mm.post_ops.empty() ||
        !p->tensors[mm.inputs[1]].is_const || p->tensors[mm.inputs[1]].dims.size() != 2 ||
        mm.Int("trans_b") != 0 || !mm.Ints("split").empty()) {
      continue;
    }
    const int t = mm.outputs[0];
    const int ci = SoleConsumer(u, t);
    if (ci < 0) continue;
    Layer& add = p->layers[ci];
    if (add.kind != LayerKind::kBinary || add.Int("alg") != static_cast<int>(A::binary_add) ||
        add.inputs[0] != t || !add.post_ops.empty()) {
      continue;
    }
    const TensorDef& b = p->tensors[add.inputs[1]];
    const int64_t n = p->tensors[mm.inputs[1]].dims[1];
    if (!b.is_const || b.value.num_elements() != n || b.dims.empty() || b.dims.back() != n) {
      continue;
    }
    Layer fused = mm;
    fused.inputs.push_back(add.inputs[1]);
    fused.outputs = add.outputs;
    Absorb(&fused, add);
    mm.dead = true;
    add = std::move(fused);
    Log(add);
    changed = true;
    u = Analyze(*p);
  }
  return changed;
}

// ----------------------------------------------------------------------------- 3. eltwise chains

bool IsLinear(const PostOp& po) {
  return po.kind == PostOp::kEltwise && po.alg == static_cast<int32_t>(A::eltwise_linear);
}

// Appends `po` to a chain, composing it with a linear op it follows:
// a2 (a1 x + b1) + b2 = (a2 a1) x + (a2 b1 + b2).
void AppendEltwise(std::vector<PostOp>* chain, const PostOp& po) {
  if (!chain->empty() && IsLinear(chain->back()) && IsLinear(po)) {
    PostOp& last = chain->back();
    last.beta = po.alpha * last.beta + po.beta;
    last.alpha = po.alpha * last.alpha;
    return;
  }
  chain->push_back(po);
}

// oneDNN 2.6's jit post-ops injector keeps one eltwise injector per algorithm, set up with the
// first post-op's alpha / beta: a second post-op of the same algorithm with other parameters
// computes with the first one's (conv+linear(1,0.5)+linear(1.5,0) was wrong by 30%). A chain
// is safe inside one primitive when no algorithm repeats with different parameters.
bool InjectorSafe(const std::vector<PostOp>& ops) {
  for (size_t i = 0; i < ops.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (ops[i].kind == PostOp::kEltwise && ops[j].kind == PostOp::kEltwise &&
          ops[i].alg == ops[j].alg &&
          (ops[i].alpha != ops[j].alpha || ops[i].beta != ops[j].beta)) {
        return false;
      }
    }
  }
  return true;
}

bool FuseEltwiseChains(Program* p) {
  bool changed = false;
  Uses u = Analyze(*p);
  for (size_t i = 0; i < p->layers.size(); ++i) {
    Layer& prod = p->layers[i];
    if (prod.dead || prod.kind != LayerKind::kEltwise) continue;
    const int ci = SoleConsumer(u, prod.outputs[0]);
    if (ci < 0 || p->layers[ci].kind != LayerKind::kEltwise) continue;
    Layer& cons = p->layers[ci];
    Layer fused = prod;
    for (const PostOp& po : cons.post_ops) AppendEltwise(&fused.post_ops, po);
    fused.outputs = cons.outputs;
    Absorb(&fused, cons);
    prod.dead = true;
    cons = std::move(fused);
    Log(cons);
    changed = true;
    u = Analyze(*p);
  }
  return changed;
}

// ----------------------------------------------------------------------------- 4. hardswish

PostOp Elt(A alg) {
  PostOp po;
  po.alg = static_cast<int32_t>(alg);
  return po;
}

bool Near(float a, float b) { return std::fabs(a - b) <= 1e-6f * std::fabs(b); }
bool IsElt(const PostOp& po, A alg) {
  return po.kind == PostOp::kEltwise && po.alg == static_cast<int32_t>(alg);
}

// The factor k with k * G(x) == clip(x/6 + 1/2, 0, 1) for the gate chain G = linear(a, b),
// clip(0, hi), [linear(k', 0)] times `post` (a scale after the product), or 0 when G is not one.
float HardSigmoidScale(const std::vector<PostOp>& g, float post) {
  if (g.size() < 2 || g.size() > 3 || !IsElt(g[0], A::eltwise_linear) ||
      !IsElt(g[1], A::eltwise_clip_v2) || g[1].alpha != 0) {
    return 0;
  }
  float k = post;
  if (g.size() == 3) {
    if (!IsElt(g[2], A::eltwise_linear) || g[2].beta != 0) return 0;
    k *= g[2].alpha;
  }
  // k * clip(a x + b, 0, hi) == clip(k a x + k b, 0, k hi) for k > 0.
  if (!(k > 0) || !Near(k * g[0].alpha, 1.f / 6) || !Near(k * g[0].beta, 0.5f) ||
      !Near(k * g[1].beta, 1.f)) {
    return 0;
  }
  return k;
}

// The product's optional trailing scale: its sole consumer when that starts with linear(s, 0).
Layer* TrailingScale(Program* p, const Uses& u, const Layer& mul) {
  const int si = SoleConsumer(u, mul.outputs[0]);
  if (si < 0) return nullptr;
  Layer& l = p->layers[si];
  return l.kind == LayerKind::kEltwise && IsElt(l.post_ops[0], A::eltwise_linear) &&
                 l.post_ops[0].beta == 0
             ? &l
             : nullptr;
}

// Replaces gate [+ extra] + mul [+ scale] with one eltwise layer computing `alg` on x, written
// where the last of them was; the scale's further post-ops are kept. Named "Name(op+op+...)".
void ReplaceWithEltwise(Layer& gate, Layer* extra, Layer& mul, Layer* scale, int x, A alg,
                        const char* name) {
  Layer fused;
  fused.kind = LayerKind::kEltwise;
  fused.inputs = {x};
  fused.post_ops = {Elt(alg)};
  std::string op;
  for (Layer* l : {&gate, extra, &mul, scale}) {
    if (l == nullptr) continue;
    fused.nodes.insert(fused.nodes.end(), l->nodes.begin(), l->nodes.end());
    op += (op.empty() ? "" : "+") + l->op;
  }
  if (scale != nullptr) {
    fused.post_ops.insert(fused.post_ops.end(), scale->post_ops.begin() + 1, scale->post_ops.end());
    mul.dead = true;
  }
  if (extra != nullptr) extra->dead = true;
  Layer* last = scale != nullptr ? scale : &mul;
  fused.op = std::string(name) + "(" + op + ")";
  fused.outputs = last->outputs;
  gate.dead = true;
  *last = std::move(fused);
  Log(*last);
}

bool FuseHardSwish(Program* p) {
  bool changed = false;
  Uses u = Analyze(*p);
  for (size_t i = 0; i < p->layers.size(); ++i) {
    Layer& mul = p->layers[i];
    if (mul.dead || mul.kind != LayerKind::kBinary ||
        mul.Int("alg") != static_cast<int64_t>(A::binary_mul) || !mul.post_ops.empty()) {
      continue;
    }
    // One operand is x, the other G(x) used only here.
    int gi = -1, x = -1;
    for (int side = 0; side < 2 && gi < 0; ++side) {
      const int g = mul.inputs[side], other = mul.inputs[1 - side];
      const int pi = u.producer[g];
      if (pi < 0 || SoleConsumer(u, g) != static_cast<int>(i)) continue;
      const Layer& gl = p->layers[pi];
      if (gl.kind == LayerKind::kEltwise && gl.inputs[0] == other) {
        gi = pi;
        x = other;
      }
    }
    if (gi < 0) continue;
    Layer* scale = TrailingScale(p, u, mul);
    Layer& gate = p->layers[gi];
    bool with_scale = false;
    if (scale != nullptr && HardSigmoidScale(gate.post_ops, scale->post_ops[0].alpha) > 0) {
      with_scale = true;
    } else if (HardSigmoidScale(gate.post_ops, 1.f) <= 0) {
      continue;
    }
    ReplaceWithEltwise(gate, nullptr, mul, with_scale ? scale : nullptr, x, A::eltwise_hardswish,
                       "HardSwish");
    changed = true;
    u = Analyze(*p);
  }
  return changed;
}

// ----------------------------------------------------------------------------- 5. GELU

bool IsErf(const PostOp& po) { return po.kind == PostOp::kEltwise && po.alg == kAlgErfMarker; }

// The gate chain linear(a, 0), Erf, linear(p, q) with k * x * G(x) == gelu_erf(x).
bool GeluGate(const std::vector<PostOp>& g, float k) {
  if (g.size() != 3 || !IsElt(g[0], A::eltwise_linear) || g[0].beta != 0 || !IsErf(g[1]) ||
      !IsElt(g[2], A::eltwise_linear)) {
    return false;
  }
  return Near(g[0].alpha, static_cast<float>(M_SQRT1_2)) && Near(k * g[2].alpha, 0.5f) &&
         Near(k * g[2].beta, 0.5f);
}

bool FuseGelu(Program* p) {
  bool changed = false;
  Uses u = Analyze(*p);
  for (size_t i = 0; i < p->layers.size(); ++i) {
    Layer& mul = p->layers[i];
    if (mul.dead || mul.kind != LayerKind::kBinary ||
        mul.Int("alg") != static_cast<int64_t>(A::binary_mul) || !mul.post_ops.empty()) {
      continue;
    }
    // One operand is G(x) used only here, the other x or x * s (a layer used only here).
    int gi = -1, xi = -1, x = -1;
    float s = 1;
    for (int side = 0; side < 2 && gi < 0; ++side) {
      const int g = mul.inputs[side], other = mul.inputs[1 - side];
      const int pi = u.producer[g];
      if (pi < 0 || SoleConsumer(u, g) != static_cast<int>(i)) continue;
      const Layer& gl = p->layers[pi];
      if (gl.kind != LayerKind::kEltwise || gl.post_ops.size() != 3 || !IsErf(gl.post_ops[1])) {
        continue;
      }
      if (gl.inputs[0] == other) {
        gi = pi;
        x = other;
        continue;
      }
      const int oi = u.producer[other];
      if (oi < 0 || SoleConsumer(u, other) != static_cast<int>(i)) continue;
      const Layer& ol = p->layers[oi];
      if (ol.kind == LayerKind::kEltwise && ol.inputs[0] == gl.inputs[0] &&
          ol.post_ops.size() == 1 && IsElt(ol.post_ops[0], A::eltwise_linear) &&
          ol.post_ops[0].beta == 0) {
        gi = pi;
        xi = oi;
        x = gl.inputs[0];
        s = ol.post_ops[0].alpha;
      }
    }
    if (gi < 0) continue;
    Layer* scale = TrailingScale(p, u, mul);
    Layer& gate = p->layers[gi];
    bool with_scale = false;
    if (scale != nullptr && GeluGate(gate.post_ops, s * scale->post_ops[0].alpha)) {
      with_scale = true;
    } else if (!GeluGate(gate.post_ops, s)) {
      continue;
    }
    ReplaceWithEltwise(gate, xi >= 0 ? &p->layers[xi] : nullptr, mul, with_scale ? scale : nullptr,
                       x, A::eltwise_gelu_erf, "Gelu");
    changed = true;
    u = Analyze(*p);
  }
  return changed;
}

// ----------------------------------------------------------------------------- 6. post-ops

bool Buildable(const Program& p, const Layer& l, bool allow_reference = true) {
  Program probe;
  std::map<int, int> remap;
  auto take = [&](int t) {
    if (t < 0) return -1;
    auto it = remap.find(t);
    if (it != remap.end()) return it->second;
    probe.tensors.push_back(p.tensors[t]);
    const int id = static_cast<int>(probe.tensors.size()) - 1;
    remap[t] = id;
    return id;
  };
  Layer c = l;
  for (int& t : c.inputs) {
    t = take(t);
    if (t >= 0 && !probe.tensors[t].is_const &&
        std::find(probe.inputs.begin(), probe.inputs.end(), t) == probe.inputs.end()) {
      probe.inputs.push_back(t);
    }
  }
  for (PostOp& po : c.post_ops) {
    po.tensor = take(po.tensor);
    if (po.tensor >= 0 && !probe.tensors[po.tensor].is_const &&
        std::find(probe.inputs.begin(), probe.inputs.end(), po.tensor) == probe.inputs.end()) {
      probe.inputs.push_back(po.tensor);
    }
  }
  for (int& t : c.outputs) {
    t = take(t);
    probe.outputs.push_back(t);
  }
  probe.layers.push_back(std::move(c));
  BuildConfig cfg;
  cfg.max_workspace_size_bytes = std::numeric_limits<int64_t>::max();
  std::vector<std::string> impls;
  if (!ProbeProgram(probe, cfg, &impls).ok()) return false;
  // A fusion that only oneDNN's reference implementation can run is far slower than the
  // unfused layers (oneDNN 2.6 runs Conv + prelu post-op on ref:any).
  return allow_reference || impls.empty() || impls[0].rfind("ref", 0) != 0;
}

bool FusePostOps(Program* p) {
  bool changed = false;
  Uses u = Analyze(*p);
  for (size_t i = 0; i < p->layers.size(); ++i) {
    Layer& prod = p->layers[i];
    const bool compute = prod.kind == LayerKind::kConv || prod.kind == LayerKind::kDeconv ||
                         prod.kind == LayerKind::kMatMul;
    if (prod.dead || (!compute && prod.kind != LayerKind::kBinary) || prod.outputs.size() != 1) {
      continue;
    }
    const int t = prod.outputs[0];
    const int ci = SoleConsumer(u, t);
    if (ci < 0) continue;
    Layer& cons = p->layers[ci];
    Layer fused = prod;
    if (cons.kind == LayerKind::kEltwise) {
      for (const PostOp& po : cons.post_ops) AppendEltwise(&fused.post_ops, po);
      if (!InjectorSafe(fused.post_ops)) continue;
    } else if (compute && cons.kind == LayerKind::kBinary) {
      const auto alg = static_cast<A>(cons.Int("alg"));
      const bool comm = alg == A::binary_add || alg == A::binary_mul || alg == A::binary_max ||
                        alg == A::binary_min;
      const Dims& td = p->tensors[t].dims;
      if (prod.kind == LayerKind::kMatMul &&
          (td.size() < 2 || p->tensors[prod.inputs[0]].dims.size() < 2 ||
           p->tensors[prod.inputs[1]].dims.size() < 2)) {
        continue;
      }
      int other;
      if (cons.inputs[0] == t && cons.inputs[1] != t) {
        other = cons.inputs[1];
      } else if (cons.inputs[1] == t && comm && p->tensors[cons.inputs[0]].dims == td) {
        other = cons.inputs[0];
      } else {
        continue;
      }
      PostOp po;
      po.tensor = other;
      if (alg == A::binary_add && p->tensors[other].dims == td && !p->tensors[other].is_const) {
        po.kind = PostOp::kSum;
      } else {
        po.kind = PostOp::kBinary;
        po.alg = static_cast<int32_t>(alg);
      }
      fused.post_ops.push_back(po);
      fused.post_ops.insert(fused.post_ops.end(), cons.post_ops.begin(), cons.post_ops.end());
      fused.outputs = cons.outputs;
      Absorb(&fused, cons);
      if (!InjectorSafe(fused.post_ops)) continue;
      if (po.kind == PostOp::kBinary && !Buildable(*p, fused)) continue;
    } else if ((prod.kind == LayerKind::kConv || prod.kind == LayerKind::kDeconv) &&
               cons.kind == LayerKind::kPRelu && cons.inputs[0] == t) {
      // A constant per-output-channel (or one-element) slope: a prelu post-op.
      const TensorDef& slope = p->tensors[cons.inputs[1]];
      const Dims& td = p->tensors[t].dims;
      const size_t cax = prod.Int("nhwc") ? td.size() - 1 : 1;
      Dims sd = slope.dims;
      sd.insert(sd.begin(), td.size() - std::min(td.size(), sd.size()), 1);
      bool per_channel = slope.is_const && sd.size() == td.size();
      for (size_t d = 0; per_channel && d < sd.size(); ++d) per_channel = d == cax || sd[d] == 1;
      if (!per_channel) continue;
      PostOp po;
      po.kind = PostOp::kPRelu;
      po.tensor = cons.inputs[1];
      fused.post_ops.push_back(po);
      fused.outputs = cons.outputs;
      Absorb(&fused, cons);
      if (!Buildable(*p, fused, /*allow_reference=*/false)) continue;
    } else {
      continue;
    }
    if (cons.kind == LayerKind::kEltwise) {
      fused.outputs = cons.outputs;
      Absorb(&fused, cons);
    }
    prod.dead = true;
    cons = std::move(fused);
    Log(cons);
    changed = true;
    u = Analyze(*p);
  }
  return changed;
}

// ----------------------------------------------------------------------------- 7. siblings

// Parameters siblings must share to be merged (empty: not mergeable).
std::string MergeKey(const Program& p, const Layer& l) {
  if (l.kind != LayerKind::kConv && l.kind != LayerKind::kMatMul) return "";
  for (const PostOp& po : l.post_ops) {
    if (po.kind != PostOp::kEltwise) return "";
  }
  if (l.outputs.size() != 1 || !l.Ints("split").empty() || !ConstWeights(p, l)) return "";
  std::string key = std::to_string(static_cast<int>(l.kind)) + "|" + std::to_string(l.inputs[0]);
  if (l.kind == LayerKind::kConv) {
    if (l.Int("group", 1) != 1) return "";
    const Dims& wd = p.tensors[l.inputs[1]].dims;
    key += "|k" + DimsToString(Dims(wd.begin() + 1, wd.end()));
    for (const char* k : {"strides", "dilations", "pads_begin", "pads_end", "nhwc"}) {
      key += std::string("|") + k + DimsToString(l.Ints(k));
    }
  } else if (l.kind == LayerKind::kMatMul) {
    if (p.tensors[l.inputs[1]].dims.size() != 2 || l.Int("trans_b") != 0 ||
        p.tensors[l.inputs[0]].dims.size() < 2) {
      return "";
    }
    key += "|K" + std::to_string(p.tensors[l.inputs[1]].dims[0]) + "|ta" +
           std::to_string(l.Int("trans_a"));
  } else {
    return "";
  }
  for (const PostOp& po : l.post_ops) {
    key += "|e" + std::to_string(po.alg) + "," + std::to_string(po.alpha) + "," +
           std::to_string(po.beta);
  }
  return key;
}

bool MergeSiblings(Program* p) {
  std::map<std::string, std::vector<int>> groups;
  std::vector<std::string> order;
  for (size_t i = 0; i < p->layers.size(); ++i) {
    if (p->layers[i].dead) continue;
    const std::string key = MergeKey(*p, p->layers[i]);
    if (key.empty()) continue;
    if (groups[key].empty()) order.push_back(key);
    groups[key].push_back(static_cast<int>(i));
  }
  bool changed = false;
  for (const std::string& key : order) {
    const std::vector<int>& sib = groups[key];
    if (sib.size() < 2) continue;
    Layer merged = p->layers[sib[0]];
    const bool conv = merged.kind == LayerKind::kConv;
    std::vector<const Tensor*> ws, bs;
    std::vector<int64_t> split;
    int64_t total = 0;
    for (int i : sib) {
      const Layer& l = p->layers[i];
      ws.push_back(&p->tensors[l.inputs[1]].value);
      bs.push_back(l.inputs.size() > 2 && l.inputs[2] >= 0 ? &p->tensors[l.inputs[2]].value
                                                           : nullptr);
      const int64_t n = conv ? ws.back()->dim(0) : ws.back()->dim(1);
      split.push_back(n);
      total += n;
    }
    Dims wd = ws[0]->dims();
    (conv ? wd[0] : wd[1]) = total;
    Tensor w = Tensor::Empty(DataType::kFloat32, wd);
    Tensor b = Tensor::Empty(DataType::kFloat32, {total});
    float* pw = w.mutable_data<float>();
    float* pb = b.mutable_data<float>();
    int64_t off = 0;
    for (size_t s = 0; s < sib.size(); ++s) {
      const float* src = ws[s]->data<float>();
      if (conv) {  // rows [off, off + n) of [O, ...]
        std::copy(src, src + ws[s]->num_elements(), pw + off * (w.num_elements() / total));
      } else {  // columns of [K, N]
        for (int64_t k = 0; k < wd[0]; ++k) {
          std::copy(src + k * split[s], src + (k + 1) * split[s], pw + k * total + off);
        }
      }
      for (int64_t c = 0; c < split[s]; ++c) pb[off + c] = bs[s] ? bs[s]->data<float>()[c] : 0.f;
      off += split[s];
    }
    merged.inputs.resize(3);
    merged.inputs[1] = AddConst(p, p->tensors[merged.inputs[1]].name + "/merged", std::move(w));
    merged.inputs[2] = AddConst(p, p->tensors[merged.inputs[1]].name + "_bias", std::move(b));
    merged.outputs.clear();
    merged.nodes.clear();
    std::string op;
    for (size_t s = 0; s < sib.size(); ++s) {
      Layer& l = p->layers[sib[s]];
      merged.outputs.push_back(l.outputs[0]);
      merged.nodes.insert(merged.nodes.end(), l.nodes.begin(), l.nodes.end());
      op += (s ? " || " : "") + l.op;
      l.dead = true;
    }
    merged.op = op;
    merged.ints["split"] = split;
    p->layers[sib[0]] = std::move(merged);
    Log(p->layers[sib[0]]);
    changed = true;
  }
  return changed;
}

}  // namespace

void FuseProgram(Program* p) {
  while (FoldBatchNorm(p)) {
  }
  while (FuseBias(p)) {
  }
  while (FuseEltwiseChains(p)) {
  }
  while (FuseHardSwish(p)) {
  }
  while (FuseGelu(p)) {
  }
  while (FusePostOps(p)) {
  }
  MergeSiblings(p);
  p->Compact();
}

Status CheckFused(const Program& p) {
  for (const Layer& l : p.layers) {
    if (l.dead) continue;
    for (const PostOp& po : l.post_ops) {
      if (IsErf(po)) {
        return LayerError(l, Unimplemented("Erf outside an exact GELU x * 0.5 * (1 + Erf(x / "
                                           "sqrt(2))) (oneDNN 2.6 has no erf eltwise)"));
      }
    }
  }
  return Status::OK();
}

}  // namespace kiln::cpu
