// The layer program's shape functions, compaction, and its byte form (the plan payload body).
//
// ShapeOf is the single place that says what a layer's parameters must look like; the instance
// builder relies on it, so a payload that parses but carries nonsense is refused here, never
// handed to oneDNN.
#include <algorithm>
#include <cstring>
#include <dnnl.hpp>
#include <numeric>
#include <set>

#include "backends/cpu/lowering.h"
#include "backends/cpu/lean_weights.h"
#include "backends/cpu/layers_rnn.h"

namespace kiln::cpu {

const char* LayerKindName(LayerKind k) {
  static const char* kNames[] = {"Conv",      "Deconv",  "MatMul",    "Eltwise",   "Binary",
                                 "Pool",      "Softmax", "LayerNorm", "BatchNorm", "Concat",
                                 "Transpose", "View",    "Resample",  "Reduce",    "PRelu",
                                 "Rnn"};
  const int i = static_cast<int>(k);
  return i >= 0 && i < static_cast<int>(LayerKind::kNumKinds) ? kNames[i] : "?";
}

int64_t Layer::Int(const std::string& key, int64_t dflt) const {
  auto it = ints.find(key);
  return it == ints.end() || it->second.empty() ? dflt : it->second[0];
}

const std::vector<int64_t>& Layer::Ints(const std::string& key) const {
  static const std::vector<int64_t> kEmpty;
  auto it = ints.find(key);
  return it == ints.end() ? kEmpty : it->second;
}

float Layer::Float(const std::string& key, float dflt) const {
  auto it = floats.find(key);
  return it == floats.end() || it->second.empty() ? dflt : it->second[0];
}

bool MatchAttention(const Program& p, const std::vector<std::vector<int64_t>>& dims, size_t i0,
                    AttentionMatch* m) {
  if (i0 + 2 >= p.layers.size()) return false;
  const Layer& l0 = p.layers[i0];
  const Layer& l1 = p.layers[i0 + 1];
  const Layer& l2 = p.layers[i0 + 2];
  if (l0.kind != LayerKind::kMatMul || l1.kind != LayerKind::kSoftmax ||
      l2.kind != LayerKind::kMatMul || l0.dead || l1.dead || l2.dead) {
    return false;
  }
  if (l0.Int("trans_a") != 0 || !l0.Ints("split").empty() ||
      (l0.inputs.size() > 2 && l0.inputs[2] >= 0)) {
    return false;
  }
  auto is = [](const PostOp& po, PostOp::Kind kind, dnnl::algorithm alg) {
    return po.kind == kind && static_cast<dnnl::algorithm>(po.alg) == alg;
  };
  *m = AttentionMatch();
  size_t pos = 0;
  if (pos < l0.post_ops.size() &&
      is(l0.post_ops[pos], PostOp::kEltwise, dnnl::algorithm::eltwise_linear) &&
      l0.post_ops[pos].beta == 0.f) {
    m->scale = l0.post_ops[pos].alpha;
    ++pos;
  }
  if (pos < l0.post_ops.size() &&
      is(l0.post_ops[pos], PostOp::kBinary, dnnl::algorithm::binary_add) &&
      l0.post_ops[pos].tensor >= 0) {
    m->mask = l0.post_ops[pos].tensor;
    ++pos;
  }
  if (pos != l0.post_ops.size()) return false;
  const std::vector<int> uses = p.UseCounts();
  const int s_t = l0.outputs[0];
  const int64_t axis = l1.Int("axis");
  if (l1.inputs[0] != s_t || uses[s_t] != 1 || l1.Int("log") != 0 || !l1.post_ops.empty() ||
      (axis != -1 && axis != 3)) {
    return false;
  }
  const int p_t = l1.outputs[0];
  if (l2.inputs[0] != p_t || uses[p_t] != 1 || l2.Int("trans_a") != 0 || l2.Int("trans_b") != 0 ||
      !l2.Ints("split").empty() || !l2.post_ops.empty() ||
      (l2.inputs.size() > 2 && l2.inputs[2] >= 0)) {
    return false;
  }
  const std::vector<int64_t>&q = dims[l0.inputs[0]], &kx = dims[l0.inputs[1]],
                         &vd = dims[l2.inputs[1]];
  if (q.size() != 4 || kx.size() != 4 || vd.size() != 4) return false;
  m->k_is_kt = l0.Int("trans_b") == 0;
  m->batch = q[0];
  m->heads = q[1];
  m->sq = q[2];
  m->d = q[3];
  m->sk = m->k_is_kt ? kx[3] : kx[2];
  return (m->k_is_kt ? kx[2] : kx[3]) == m->d && kx[0] == m->batch && kx[1] == m->heads &&
         vd[0] == m->batch && vd[1] == m->heads && vd[2] == m->sk && vd[3] == m->d;
}

std::vector<int> Program::UseCounts() const {
  std::vector<int> uses(tensors.size(), 0);
  for (const Layer& l : layers) {
    if (l.dead) continue;
    for (int t : l.inputs) {
      if (t >= 0) ++uses[t];
    }
    for (const PostOp& po : l.post_ops) {
      if (po.tensor >= 0) ++uses[po.tensor];
    }
  }
  for (int t : outputs) ++uses[t];
  return uses;
}

void Program::Compact() {
  std::erase_if(layers, [](const Layer& l) { return l.dead; });
  std::vector<int> keep(tensors.size(), 0);
  for (int t : inputs) keep[t] = 1;
  for (int t : outputs) keep[t] = 1;
  for (const Layer& l : layers) {
    for (int t : l.inputs) {
      if (t >= 0) keep[t] = 1;
    }
    for (int t : l.outputs) keep[t] = 1;
    for (const PostOp& po : l.post_ops) {
      if (po.tensor >= 0) keep[po.tensor] = 1;
    }
  }
  std::vector<int> remap(tensors.size(), -1);
  std::vector<TensorDef> kept;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!keep[i]) continue;
    remap[i] = static_cast<int>(kept.size());
    kept.push_back(std::move(tensors[i]));
  }
  tensors = std::move(kept);
  auto fix = [&](int& t) {
    if (t >= 0) t = remap[t];
  };
  for (int& t : inputs) fix(t);
  for (int& t : outputs) fix(t);
  for (Layer& l : layers) {
    for (int& t : l.inputs) fix(t);
    for (int& t : l.outputs) fix(t);
    for (PostOp& po : l.post_ops) fix(po.tensor);
  }
}

// ----------------------------------------------------------------------------- shapes

namespace {

using Dims = std::vector<int64_t>;

// Dense strides of `d` (Builder::Plain) fit in int64 and the tensor cap: the product of the
// non-zero dims does. CheckedNumElements alone passes {0, 2^40, 2^40} (0 elements).
bool StridesFit(const Dims& d) {
  Dims nonzero;
  for (int64_t v : d) nonzero.push_back(v == 0 ? 1 : v);
  StatusOr<int64_t> n = CheckedNumElements(nonzero);
  return n.ok() && *n <= MaxTensorBytes() / 4;
}

// ShapeOf's reasons name no layer (they are Supports reasons too); PropagateShapes adds it.
Status Bad(const Layer&, const std::string& msg) { return InvalidArgument(msg); }

Status NeedInts(const Layer& l, const char* key, size_t n) {
  if (l.Ints(key).size() != n) {
    return Bad(l,
               std::string("parameter '") + key + "' must have " + std::to_string(n) + " values");
  }
  return Status::OK();
}

bool IsPerm(const std::vector<int64_t>& p, size_t rank) {
  if (p.size() != rank) return false;
  std::vector<bool> seen(rank, false);
  for (int64_t v : p) {
    if (v < 0 || v >= static_cast<int64_t>(rank) || seen[v]) return false;
    seen[v] = true;
  }
  return true;
}

Dims ToFirst(Dims d) {  // [N, spatial..., C] -> [N, C, spatial...]
  if (d.size() >= 3) std::rotate(d.begin() + 1, d.end() - 1, d.end());
  return d;
}
Dims ToLast(Dims d) {
  if (d.size() >= 3) std::rotate(d.begin() + 1, d.begin() + 2, d.end());
  return d;
}

bool ValidEltwiseAlg(int32_t a) {
  using A = dnnl::algorithm;
  static const std::set<A> kOk = {A::eltwise_relu,      A::eltwise_tanh,     A::eltwise_elu,
                                  A::eltwise_abs,       A::eltwise_sqrt,     A::eltwise_linear,
                                  A::eltwise_soft_relu, A::eltwise_logistic, A::eltwise_exp,
                                  A::eltwise_gelu_tanh, A::eltwise_log,      A::eltwise_clip_v2,
                                  A::eltwise_pow,       A::eltwise_gelu_erf, A::eltwise_mish,
                                  A::eltwise_hardswish, A::eltwise_swish};
  return a == kAlgErfMarker || kOk.count(static_cast<A>(a)) > 0;
}

bool ValidBinaryAlg(int32_t a) {
  using A = dnnl::algorithm;
  static const std::set<A> kOk = {A::binary_add, A::binary_sub, A::binary_mul,
                                  A::binary_div, A::binary_max, A::binary_min};
  return kOk.count(static_cast<A>(a)) > 0;
}

// True when `small` broadcasts onto `big` without changing it (leading dims may be missing).
bool BroadcastsOnto(const Dims& small, const Dims& big) {
  if (small.size() > big.size()) return false;
  const size_t off = big.size() - small.size();
  for (size_t i = 0; i < small.size(); ++i) {
    if (small[i] != 1 && small[i] != big[off + i]) return false;
  }
  return true;
}

int64_t Elements(const Dims& d) {
  int64_t n = 1;
  for (int64_t v : d) n *= v;
  return n;
}

StatusOr<std::vector<Dims>> ConvShape(const Layer& l, const std::vector<Dims>& in, bool deconv) {
  if (in.size() < 2 || l.inputs.size() < 2 || l.inputs.size() > 3) {
    return Bad(l, "expects 2 or 3 inputs");
  }
  const Dims& x0 = in[0];
  const Dims& w = in[1];
  if (x0.size() < 3 || x0.size() > 5 || w.size() != x0.size()) {
    return Bad(l, "X must have rank 3..5 and W the same rank");
  }
  const size_t sp = x0.size() - 2;
  const int64_t nhwc = l.Int("nhwc");
  if (nhwc != 0 && nhwc != 1) return Bad(l, "nhwc must be 0 or 1");
  const Dims x = nhwc ? ToFirst(x0) : x0;
  for (const char* k : {"strides", "dilations", "pads_begin", "pads_end"}) {
    KILN_RETURN_IF_ERROR(NeedInts(l, k, sp));
  }
  const int64_t g = l.Int("group", 1);
  if (g <= 0) return Bad(l, "group must be positive");
  int64_t out_ch;
  if (!deconv) {
    if (x[1] != w[1] * g || w[0] % g != 0) return Bad(l, "channels do not match W and group");
    out_ch = w[0];
  } else {
    if (x[1] != w[0] || w[0] % g != 0) return Bad(l, "channels do not match W and group");
    out_ch = w[1] * g;
    KILN_RETURN_IF_ERROR(NeedInts(l, "out", sp));
  }
  if (l.inputs.size() == 3 && l.inputs[2] >= 0 && Elements(in[2]) != out_ch) {
    return Bad(l, "bias must have one value per output channel");
  }
  Dims y = {x[0], out_ch};
  for (size_t i = 0; i < sp; ++i) {
    const int64_t s = l.Ints("strides")[i], d = l.Ints("dilations")[i];
    const int64_t pb = l.Ints("pads_begin")[i], pe = l.Ints("pads_end")[i];
    if (s <= 0 || d <= 0 || s > (1 << 20) || d > (1 << 20)) {
      return Bad(l, "strides and dilations must be in [1, 2^20]");
    }
    if (std::abs(pb) > (1 << 20) || std::abs(pe) > (1 << 20)) return Bad(l, "pads out of range");
    const int64_t k_eff = (w[2 + i] - 1) * d + 1;
    int64_t o;
    if (!deconv) {
      if (pb < 0 || pe < 0) return Bad(l, "pads must be non-negative");
      const int64_t span = x[2 + i] + pb + pe - k_eff;
      if (span < 0) return Bad(l, "padded input is smaller than the kernel");
      o = span / s + 1;
    } else {
      o = l.Ints("out")[i];
      if (pb < 0 || o <= 0 || o != (x[2 + i] - 1) * s + k_eff - pb - pe) {
        return Bad(l, "output size does not match strides, kernel and pads");
      }
    }
    y.push_back(o);
  }
  std::vector<Dims> outs;
  const std::vector<int64_t>& split = l.Ints("split");
  if (split.empty()) {
    outs.push_back(y);
  } else {
    int64_t total = 0;
    for (int64_t c : split) {
      if (c <= 0) return Bad(l, "split sizes must be positive");
      total += c;
      Dims yi = y;
      yi[1] = c;
      outs.push_back(yi);
    }
    if (total != out_ch || deconv || g != 1) return Bad(l, "split does not cover the channels");
  }
  for (Dims& o : outs) {
    if (nhwc) o = ToLast(o);
  }
  return outs;
}

StatusOr<std::vector<Dims>> MatMulShape(const Layer& l, const std::vector<Dims>& in) {
  if (l.inputs.size() < 2 || l.inputs.size() > 3) return Bad(l, "expects 2 or 3 inputs");
  Dims a = in[0], b = in[1];
  if (a.empty() || b.empty() || a.size() > 12 || b.size() > 12) {
    return Bad(l, "operands must have rank 1..12");
  }
  const int64_t ta = l.Int("trans_a"), tb = l.Int("trans_b");
  if ((ta != 0 && (ta != 1 || a.size() != 2)) || (tb != 0 && (tb != 1 || b.size() != 2))) {
    return Bad(l, "trans_a / trans_b apply to 2-D operands only");
  }
  if (ta) std::swap(a[0], a[1]);
  if (tb) std::swap(b[0], b[1]);
  const bool a1 = a.size() == 1, b1 = b.size() == 1;
  if (a1) a.insert(a.begin(), 1);
  if (b1) b.push_back(1);
  if (a[a.size() - 1] != b[b.size() - 2]) return Bad(l, "inner dimensions differ");
  const size_t r = std::max(a.size(), b.size());
  Dims y(r);
  for (size_t i = 0; i + 2 < r; ++i) {
    const int64_t da = i + a.size() >= r ? a[i + a.size() - r] : 1;
    const int64_t db = i + b.size() >= r ? b[i + b.size() - r] : 1;
    if (da != db && da != 1 && db != 1) return Bad(l, "batch dimensions do not broadcast");
    y[i] = std::max(da, db);
  }
  y[r - 2] = a[a.size() - 2];
  y[r - 1] = b[b.size() - 1];
  if (l.inputs.size() == 3 && l.inputs[2] >= 0 && Elements(in[2]) != y[r - 1]) {
    return Bad(l, "bias must have N values");
  }
  std::vector<Dims> outs;
  const std::vector<int64_t>& split = l.Ints("split");
  if (!split.empty()) {
    if (a1 || b1 || in[1].size() != 2) return Bad(l, "split needs a 2-D B");
    int64_t total = 0;
    for (int64_t c : split) {
      if (c <= 0) return Bad(l, "split sizes must be positive");
      total += c;
      Dims yi = y;
      yi.back() = c;
      outs.push_back(yi);
    }
    if (total != y.back()) return Bad(l, "split does not cover N");
    return outs;
  }
  if (b1) y.pop_back();
  if (a1) y.erase(y.end() - (b1 ? 1 : 2));
  if (y.empty()) return Bad(l, "a rank-0 result is not supported");
  outs.push_back(y);
  return outs;
}

StatusOr<Dims> PoolShape(const Layer& l, const Dims& x0) {
  if (x0.size() < 3 || x0.size() > 5) return Bad(l, "input must have rank 3..5");
  const size_t sp = x0.size() - 2;
  for (const char* k : {"kernel", "strides", "dilations", "pads_begin", "pads_end"}) {
    KILN_RETURN_IF_ERROR(NeedInts(l, k, sp));
  }
  const auto alg = static_cast<dnnl::algorithm>(l.Int("alg"));
  if (alg != dnnl::algorithm::pooling_max && alg != dnnl::algorithm::pooling_avg_include_padding &&
      alg != dnnl::algorithm::pooling_avg_exclude_padding) {
    return Bad(l, "unknown pooling algorithm");
  }
  const int64_t nhwc = l.Int("nhwc");
  const Dims x = nhwc ? ToFirst(x0) : x0;
  Dims y = {x[0], x[1]};
  for (size_t i = 0; i < sp; ++i) {
    const int64_t k = l.Ints("kernel")[i], s = l.Ints("strides")[i], d = l.Ints("dilations")[i];
    const int64_t pb = l.Ints("pads_begin")[i], pe = l.Ints("pads_end")[i];
    if (k <= 0 || s <= 0 || d <= 0 || pb < 0 || pe < 0 || k > (1 << 20) || s > (1 << 20) ||
        d > (1 << 20) || pb > (1 << 20) || pe > (1 << 20)) {
      return Bad(l, "bad window parameters");
    }
    const int64_t span = x[2 + i] + pb + pe - ((k - 1) * d + 1);
    if (span < 0) return Bad(l, "padded input is smaller than the kernel");
    y.push_back(span / s + 1);
  }
  return nhwc ? ToLast(y) : y;
}

StatusOr<Dims> ViewShape(const Layer& l, const Dims& x) {
  const auto mode = static_cast<ViewMode>(l.Int("mode"));
  const std::vector<int64_t>& spec = l.Ints("spec");
  const int64_t r = static_cast<int64_t>(x.size());
  Dims y;
  switch (mode) {
    case ViewMode::kIdentity:
      y = x;
      break;
    case ViewMode::kReshape: {
      const bool allowzero = l.Int("allowzero") != 0;
      int infer = -1;
      int64_t known = 1;
      for (size_t i = 0; i < spec.size(); ++i) {
        int64_t v = spec[i];
        if (v == 0 && !allowzero) {
          if (static_cast<int64_t>(i) >= r) return Bad(l, "shape copies a missing dim");
          v = x[i];
        }
        if (v == -1) {
          if (infer >= 0) return Bad(l, "more than one -1 in shape");
          infer = static_cast<int>(i);
          y.push_back(-1);
          continue;
        }
        if (v <= 0) return Bad(l, "shape values must be positive (zero-size is not supported)");
        known *= v;
        if (known > (int64_t{1} << 40)) return Bad(l, "shape too large");
        y.push_back(v);
      }
      const int64_t n = Elements(x);
      if (infer >= 0) {
        if (n % known != 0) return Bad(l, "cannot infer the -1 dimension");
        y[infer] = n / known;
      }
      break;
    }
    case ViewMode::kFlatten: {
      const int64_t axis = l.Int("axis");
      if (axis < 0 || axis > r) return Bad(l, "flatten axis out of range");
      int64_t a = 1, b = 1;
      for (int64_t i = 0; i < r; ++i) (i < axis ? a : b) *= x[i];
      y = {a, b};
      break;
    }
    case ViewMode::kSqueeze: {
      std::vector<bool> drop(r, spec.empty());
      if (spec.empty()) {
        for (int64_t i = 0; i < r; ++i) drop[i] = x[i] == 1;
      }
      for (int64_t a : spec) {
        if (a < 0 || a >= r || x[a] != 1) return Bad(l, "squeezed axis must have size 1");
        drop[a] = true;
      }
      for (int64_t i = 0; i < r; ++i) {
        if (!drop[i]) y.push_back(x[i]);
      }
      break;
    }
    case ViewMode::kUnsqueeze: {
      const int64_t out_r = r + static_cast<int64_t>(spec.size());
      std::vector<bool> ins(out_r, false);
      for (int64_t a : spec) {
        if (a < 0 || a >= out_r || ins[a]) return Bad(l, "bad unsqueeze axes");
        ins[a] = true;
      }
      for (int64_t i = 0, j = 0; i < out_r; ++i) y.push_back(ins[i] ? 1 : x[j++]);
      break;
    }
    default:
      return Bad(l, "unknown view mode");
  }
  if (Elements(y) != Elements(x)) return Bad(l, "element count changes");
  return y;
}

}  // namespace

StatusOr<std::vector<Dims>> ShapeOf(const Layer& l, const std::vector<Dims>& in) {
  if (in.size() != l.inputs.size() || in.empty() || l.inputs[0] < 0) {
    return Bad(l, "input count mismatch");
  }
  for (size_t i = 0; i < in.size(); ++i) {
    if (l.inputs[i] < 0) continue;
    if (in[i].empty() || in[i].size() > 12) return Bad(l, "inputs must have rank 1..12");
    for (int64_t d : in[i]) {
      if (d <= 0) return Bad(l, "zero-size or unknown dimensions are not supported");
    }
  }
  const Dims& x = in[0];
  std::vector<Dims> out;
  for (const PostOp& po : l.post_ops) {
    if (po.kind == PostOp::kEltwise && !ValidEltwiseAlg(po.alg)) return Bad(l, "bad eltwise alg");
    if (po.kind == PostOp::kBinary && !ValidBinaryAlg(po.alg)) return Bad(l, "bad binary alg");
    if (po.kind != PostOp::kEltwise && po.kind != PostOp::kSum && po.kind != PostOp::kBinary &&
        po.kind != PostOp::kPRelu) {
      return Bad(l, "bad post-op");
    }
  }
  switch (l.kind) {
    case LayerKind::kConv:
    case LayerKind::kDeconv: {
      KILN_ASSIGN_OR_RETURN(out, ConvShape(l, in, l.kind == LayerKind::kDeconv));
      break;
    }
    case LayerKind::kMatMul: {
      KILN_ASSIGN_OR_RETURN(out, MatMulShape(l, in));
      break;
    }
    case LayerKind::kEltwise:
      if (l.inputs.size() != 1 || l.post_ops.empty()) return Bad(l, "expects 1 input");
      for (const PostOp& po : l.post_ops) {
        if (po.kind != PostOp::kEltwise) return Bad(l, "eltwise chain has a non-eltwise op");
      }
      out.push_back(x);
      break;
    case LayerKind::kBinary:
      if (l.inputs.size() != 2 || l.inputs[1] < 0) return Bad(l, "expects 2 inputs");
      if (!ValidBinaryAlg(static_cast<int32_t>(l.Int("alg", -1)))) return Bad(l, "bad alg");
      if (!BroadcastsOnto(in[1], x)) return Bad(l, "second operand does not broadcast");
      out.push_back(x);
      break;
    case LayerKind::kPRelu:
      if (l.inputs.size() != 2 || l.inputs[1] < 0) return Bad(l, "expects 2 inputs");
      if (!BroadcastsOnto(in[1], x)) return Bad(l, "slope does not broadcast onto X");
      out.push_back(x);
      break;
    case LayerKind::kPool: {
      if (l.inputs.size() != 1) return Bad(l, "expects 1 input");
      KILN_ASSIGN_OR_RETURN(Dims y, PoolShape(l, x));
      out.push_back(y);
      break;
    }
    case LayerKind::kSoftmax: {
      const int64_t axis = l.Int("axis", -1);
      if (l.inputs.size() != 1 || axis < 0 || axis >= static_cast<int64_t>(x.size())) {
        return Bad(l, "bad softmax axis");
      }
      out.push_back(x);
      break;
    }
    case LayerKind::kLayerNorm: {
      const int64_t axis = l.Int("axis", -1);
      if (l.inputs.size() < 2 || l.inputs.size() > 3 || l.inputs[1] < 0 || axis < 0 ||
          axis >= static_cast<int64_t>(x.size())) {
        return Bad(l, "bad layer norm parameters");
      }
      int64_t n = 1;
      for (size_t i = axis; i < x.size(); ++i) n *= x[i];
      if (Elements(in[1]) != n ||
          (l.inputs.size() == 3 && l.inputs[2] >= 0 && Elements(in[2]) != n)) {
        return Bad(l, "scale / bias must have the normalized shape's size");
      }
      out.push_back(x);
      break;
    }
    case LayerKind::kBatchNorm: {
      if (l.inputs.size() != 5 || x.size() < 2) return Bad(l, "expects 5 inputs, rank >= 2");
      const int64_t c = l.Int("nhwc") ? x.back() : x[1];
      for (int i = 1; i < 5; ++i) {
        if (l.inputs[i] < 0 || Elements(in[i]) != c) return Bad(l, "parameters must have C values");
      }
      out.push_back(x);
      break;
    }
    case LayerKind::kConcat: {
      const int64_t axis = l.Int("axis", -1);
      if (axis < 0 || axis >= static_cast<int64_t>(x.size())) return Bad(l, "bad concat axis");
      Dims y = x;
      for (size_t i = 1; i < in.size(); ++i) {
        if (l.inputs[i] < 0 || in[i].size() != x.size()) return Bad(l, "ranks differ");
        for (size_t d = 0; d < x.size(); ++d) {
          if (static_cast<int64_t>(d) != axis && in[i][d] != x[d]) return Bad(l, "dims differ");
        }
        y[axis] += in[i][axis];
      }
      out.push_back(y);
      break;
    }
    case LayerKind::kTranspose: {
      const std::vector<int64_t>& perm = l.Ints("perm");
      if (l.inputs.size() != 1 || !IsPerm(perm, x.size())) return Bad(l, "bad perm");
      Dims y(x.size());
      for (size_t k = 0; k < x.size(); ++k) y[k] = x[perm[k]];
      out.push_back(y);
      break;
    }
    case LayerKind::kView: {
      if (l.inputs.size() != 1) return Bad(l, "expects 1 input");
      KILN_ASSIGN_OR_RETURN(Dims y, ViewShape(l, x));
      if (y.empty() || y.size() > 12) return Bad(l, "result must have rank 1..12");
      out.push_back(y);
      break;
    }
    case LayerKind::kResample: {
      if (l.inputs.size() != 1 || x.size() < 3 || x.size() > 5) return Bad(l, "rank 3..5");
      KILN_RETURN_IF_ERROR(NeedInts(l, "out", x.size() - 2));
      const auto alg = static_cast<dnnl::algorithm>(l.Int("alg"));
      if (alg != dnnl::algorithm::resampling_nearest && alg != dnnl::algorithm::resampling_linear) {
        return Bad(l, "bad resampling algorithm");
      }
      if (!l.Ints("batch").empty() && l.Int("batch") != x[0]) {
        return Bad(l, "resize sizes fix the batch at " + std::to_string(l.Int("batch")));
      }
      Dims y = l.Int("nhwc") ? ToFirst(x) : x;
      for (size_t i = 0; i + 2 < x.size(); ++i) {
        const int64_t o = l.Ints("out")[i];
        if (o <= 0 || o > (int64_t{1} << 24)) return Bad(l, "bad output size");
        y[2 + i] = o;
      }
      out.push_back(l.Int("nhwc") ? ToLast(y) : y);
      break;
    }
    case LayerKind::kRnn: {
      if (!l.post_ops.empty()) return Bad(l, "rnn takes no post-ops");
      StatusOr<std::vector<Dims>> s = RnnShape(l, in);
      if (!s.ok()) return Bad(l, s.status().message());
      out = *s;
      break;
    }
    case LayerKind::kReduce: {
      const auto alg = static_cast<dnnl::algorithm>(l.Int("alg"));
      if (alg != dnnl::algorithm::reduction_sum && alg != dnnl::algorithm::reduction_mean &&
          alg != dnnl::algorithm::reduction_max && alg != dnnl::algorithm::reduction_min &&
          alg != dnnl::algorithm::reduction_mul) {
        return Bad(l, "bad reduction algorithm");
      }
      if (l.inputs.size() != 1) return Bad(l, "expects 1 input");
      std::vector<bool> mask(x.size(), false);
      for (int64_t a : l.Ints("axes")) {
        if (a < 0 || a >= static_cast<int64_t>(x.size()) || mask[a]) return Bad(l, "bad axes");
        mask[a] = true;
      }
      Dims y;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!mask[i]) {
          y.push_back(x[i]);
        } else if (l.Int("keepdims", 1)) {
          y.push_back(1);
        }
      }
      if (y.empty()) return Bad(l, "a rank-0 result is not supported");
      out.push_back(y);
      break;
    }
    default:
      return Bad(l, "unknown layer kind");
  }
  if (out.size() != l.outputs.size()) return Bad(l, "output count mismatch");
  // Post-op operands must broadcast onto the (single) output.
  for (const PostOp& po : l.post_ops) {
    if (po.kind == PostOp::kEltwise) continue;
    if (l.kind == LayerKind::kEltwise || out.size() != 1) return Bad(l, "bad post-op operand");
  }
  for (const Dims& o : out) {
    if (!StridesFit(o)) return Bad(l, "output too large");
  }
  return out;
}

Status LayerError(const Layer& l, const Status& s) {
  return Status(s.code(), "layer '" + (l.nodes.empty() ? l.op : l.nodes[0]) + "' (" + l.op +
                              "): " + s.message());
}

StatusOr<std::vector<Dims>> PropagateShapes(const Program& p, const std::vector<Dims>& input_dims) {
  if (input_dims.size() != p.inputs.size()) return InvalidArgument("input count mismatch");
  std::vector<Dims> dims(p.tensors.size());
  std::vector<bool> have(p.tensors.size(), false);
  for (size_t t = 0; t < p.tensors.size(); ++t) {
    if (p.tensors[t].is_const) {
      dims[t] = p.tensors[t].dims;
      have[t] = true;
    }
  }
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    if (!StridesFit(input_dims[i])) {
      return InvalidArgument("input " + std::to_string(i) + " dims " +
                             DimsToString(input_dims[i]) + " are too large");
    }
    dims[p.inputs[i]] = input_dims[i];
    have[p.inputs[i]] = true;
  }
  for (const Layer& l : p.layers) {
    std::vector<Dims> in;
    for (int t : l.inputs) {
      if (t >= 0 && !have[t]) return Internal("layer reads an undefined tensor");
      in.push_back(t >= 0 ? dims[t] : Dims{});
    }
    StatusOr<std::vector<Dims>> shaped = ShapeOf(l, in);
    if (!shaped.ok()) return LayerError(l, shaped.status());
    const std::vector<Dims>& out = *shaped;
    for (size_t i = 0; i < out.size(); ++i) {
      dims[l.outputs[i]] = out[i];
      have[l.outputs[i]] = true;
    }
    for (const PostOp& po : l.post_ops) {
      if (po.kind == PostOp::kEltwise) continue;
      if (!have[po.tensor]) return Internal("post-op reads an undefined tensor");
      const Dims& y = out[0];
      const Dims& o = dims[po.tensor];
      if (po.kind == PostOp::kSum ? o != y : !BroadcastsOnto(o, y)) {
        return LayerError(l, InvalidArgument("post-op operand " + DimsToString(o) +
                                             " does not fit " + DimsToString(y)));
      }
    }
  }
  return dims;
}

// ----------------------------------------------------------------------------- validation

Status ValidateProgram(const Program& p) {
  const int n = static_cast<int>(p.tensors.size());
  std::vector<int> defined(n, 0);
  for (const TensorDef& t : p.tensors) {
    if (!t.is_const) continue;
    if (t.value.dtype() != DataType::kFloat32 || t.value.dims() != t.dims) {
      return DataLoss("constant '" + t.name + "' does not match its dims");
    }
  }
  for (int t = 0; t < n; ++t) defined[t] = p.tensors[t].is_const ? 1 : 0;
  for (int t : p.inputs) {
    if (t < 0 || t >= n || defined[t]) return DataLoss("bad engine input id");
    defined[t] = 1;
  }
  for (const Layer& l : p.layers) {
    if (static_cast<int>(l.kind) < 0 || l.kind >= LayerKind::kNumKinds) {
      return DataLoss("unknown layer kind");
    }
    if (l.inputs.empty() || l.outputs.empty() || l.inputs.size() > 4096) {
      return DataLoss("layer '" + l.op + "' has no inputs or outputs");
    }
    for (int t : l.inputs) {
      if (t >= n || (t >= 0 && !defined[t])) return DataLoss("layer reads an undefined tensor");
    }
    for (const PostOp& po : l.post_ops) {
      if (po.kind != PostOp::kEltwise && (po.tensor < 0 || po.tensor >= n || !defined[po.tensor])) {
        return DataLoss("post-op reads an undefined tensor");
      }
    }
    // Weight operands are read as constants by the conv / matmul builders.
    auto need_const = [&](size_t i) {
      return i >= l.inputs.size() || l.inputs[i] < 0 || p.tensors[l.inputs[i]].is_const;
    };
    if ((l.kind == LayerKind::kConv || l.kind == LayerKind::kDeconv) &&
        (!need_const(1) || !need_const(2) || l.inputs.size() < 2 || l.inputs[1] < 0)) {
      return DataLoss("conv weights must be constants");
    }
    if (l.kind == LayerKind::kMatMul && !need_const(2)) return DataLoss("bias must be constant");
    if (l.kind == LayerKind::kRnn &&
        (l.inputs.size() < 4 || l.inputs[1] < 0 || l.inputs[2] < 0 || l.inputs[3] < 0 ||
         !need_const(1) || !need_const(2) || !need_const(3))) {
      return DataLoss("rnn weights must be constants");
    }
    for (int t : l.outputs) {
      if (t < 0 || t >= n || defined[t]) return DataLoss("layer output defined twice");
      defined[t] = 1;
    }
  }
  for (int t : p.outputs) {
    if (t < 0 || t >= n || !defined[t]) return DataLoss("bad engine output id");
  }
  return Status::OK();
}

// ----------------------------------------------------------------------------- byte form

namespace {

constexpr char kMagic[8] = {'K', 'C', 'P', 'U', 'P', 'R', 'G', '2'};  // 2: lean constants

class Writer {
 public:
  void U32(uint32_t v) { Raw(&v, 4); }
  void I64(int64_t v) { Raw(&v, 8); }
  void F32(float v) { Raw(&v, 4); }
  void Str(const std::string& s) {
    U32(static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  void I64s(const std::vector<int64_t>& v) {
    U32(static_cast<uint32_t>(v.size()));
    for (int64_t x : v) I64(x);
  }
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool Raw(void* p, size_t n) {
    if (n > b_.size() - pos_) return false;
    std::memcpy(p, b_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool U32(uint32_t* v) { return Raw(v, 4); }
  bool I64(int64_t* v) { return Raw(v, 8); }
  bool I32(int32_t* v) { return Raw(v, 4); }
  bool F32(float* v) { return Raw(v, 4); }
  // A count that the remaining bytes could hold at `min_bytes` each.
  bool Count(uint32_t* n, size_t min_bytes) {
    return U32(n) && static_cast<uint64_t>(*n) * min_bytes <= b_.size() - pos_;
  }
  bool Str(std::string* s) {
    uint32_t n;
    if (!Count(&n, 1)) return false;
    s->assign(b_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool I64s(std::vector<int64_t>* v) {
    uint32_t n;
    if (!Count(&n, 8)) return false;
    v->resize(n);
    for (auto& x : *v) I64(&x);
    return true;
  }
  bool done() const { return pos_ == b_.size(); }

 private:
  std::string_view b_;
  size_t pos_ = 0;
};

}  // namespace

std::string SerializeProgram(const Program& p, const std::vector<ConstSource>* sources) {
  Writer w;
  w.Raw(kMagic, 8);
  w.U32(static_cast<uint32_t>(p.tensors.size()));
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const TensorDef& t = p.tensors[i];
    w.Str(t.name);
    w.I64s(t.dims);
    // 0: not constant; ConstSource::Kind otherwise (lean_weights.h).
    const ConstSource* src =
        t.is_const && sources != nullptr && i < sources->size() ? &(*sources)[i] : nullptr;
    const uint32_t kind = !t.is_const     ? 0u
                          : src != nullptr ? static_cast<uint32_t>(src->kind)
                                           : static_cast<uint32_t>(ConstSource::kInline);
    w.U32(kind);
    if (kind == ConstSource::kInline) {
      w.I64(t.value.num_elements());
      w.Raw(t.value.raw_data(), t.value.nbytes());
    } else if (kind != 0) {
      w.Str(src->initializer);
      w.Str(src->hash);
    }
  }
  auto ids = [&](const std::vector<int>& v) {
    w.U32(static_cast<uint32_t>(v.size()));
    for (int x : v) w.U32(static_cast<uint32_t>(x));
  };
  ids(p.inputs);
  ids(p.outputs);
  w.U32(static_cast<uint32_t>(p.layers.size()));
  for (const Layer& l : p.layers) {
    w.U32(static_cast<uint32_t>(l.kind));
    w.Str(l.op);
    w.U32(static_cast<uint32_t>(l.nodes.size()));
    for (const std::string& n : l.nodes) w.Str(n);
    ids(l.inputs);
    ids(l.outputs);
    w.U32(static_cast<uint32_t>(l.ints.size()));
    for (const auto& [k, v] : l.ints) {
      w.Str(k);
      w.I64s(v);
    }
    w.U32(static_cast<uint32_t>(l.floats.size()));
    for (const auto& [k, v] : l.floats) {
      w.Str(k);
      w.U32(static_cast<uint32_t>(v.size()));
      for (float f : v) w.F32(f);
    }
    w.U32(static_cast<uint32_t>(l.post_ops.size()));
    for (const PostOp& po : l.post_ops) {
      w.U32(static_cast<uint32_t>(po.kind));
      w.U32(static_cast<uint32_t>(po.alg));
      w.F32(po.alpha);
      w.F32(po.beta);
      w.U32(static_cast<uint32_t>(po.tensor));
    }
    w.Str(l.impl);
  }
  return w.Take();
}

StatusOr<Program> ParseProgram(std::string_view bytes, std::vector<ConstSource>* sources) {
  const Status bad = DataLoss("CPU engine payload is truncated or malformed");
  Reader r(bytes);
  char magic[8];
  // Format 1 payloads (every constant inline) are a subset of format 2: both parse.
  if (!r.Raw(magic, 8) || std::memcmp(magic, kMagic, 7) != 0 ||
      (magic[7] != '1' && magic[7] != '2')) {
    return DataLoss("CPU engine payload has the wrong magic (not a kiln CPU program)");
  }
  Program p;
  uint32_t nt;
  if (!r.Count(&nt, 12)) return bad;
  p.tensors.resize(nt);
  if (sources != nullptr) sources->assign(nt, ConstSource());
  bool lean = false;
  for (uint32_t i = 0; i < nt; ++i) {
    TensorDef& t = p.tensors[i];
    uint32_t c;
    if (!r.Str(&t.name) || !r.I64s(&t.dims) || !r.U32(&c) || c > ConstSource::kDerived) return bad;
    t.is_const = c != 0;
    if (t.dims.size() > 12 || !StridesFit(t.dims)) return bad;
    if (!t.is_const) continue;
    if (c != ConstSource::kInline) {  // lean: the value comes from the segment
      if (sources == nullptr) {
        return DataLoss("CPU engine payload is a lean plan: its weights come from the segment");
      }
      ConstSource& s = (*sources)[i];
      s.kind = static_cast<ConstSource::Kind>(c);
      if (!r.Str(&s.initializer) || !r.Str(&s.hash) || s.hash.size() != 16) return bad;
      lean = true;
      continue;
    }
    int64_t n;
    if (!r.I64(&n)) return bad;
    StatusOr<int64_t> want = CheckedNumElements(t.dims);
    if (!want.ok() || *want != n || n < 0 || static_cast<uint64_t>(n) > bytes.size() / 4) {
      return bad;
    }
    StatusOr<Tensor> v = Tensor::Create(DataType::kFloat32, t.dims);
    if (!v.ok()) return bad;
    t.value = *v;
    if (!r.Raw(t.value.raw_mutable_data(), t.value.nbytes())) return bad;
  }
  auto ids = [&](std::vector<int>* v) {
    uint32_t n;
    if (!r.Count(&n, 4)) return false;
    v->resize(n);
    for (int& x : *v) {
      int32_t i;
      if (!r.I32(&i) || i < -1 || i >= static_cast<int32_t>(nt)) return false;
      x = i;
    }
    return true;
  };
  if (!ids(&p.inputs) || !ids(&p.outputs)) return bad;
  uint32_t nl;
  if (!r.Count(&nl, 40)) return bad;
  p.layers.resize(nl);
  for (Layer& l : p.layers) {
    uint32_t kind, n;
    if (!r.U32(&kind) || kind >= static_cast<uint32_t>(LayerKind::kNumKinds)) return bad;
    l.kind = static_cast<LayerKind>(kind);
    if (!r.Str(&l.op) || !r.Count(&n, 4)) return bad;
    l.nodes.resize(n);
    for (std::string& s : l.nodes) {
      if (!r.Str(&s)) return bad;
    }
    if (!ids(&l.inputs) || !ids(&l.outputs) || !r.Count(&n, 8)) return bad;
    for (uint32_t i = 0; i < n; ++i) {
      std::string k;
      std::vector<int64_t> v;
      if (!r.Str(&k) || !r.I64s(&v)) return bad;
      l.ints[k] = std::move(v);
    }
    if (!r.Count(&n, 8)) return bad;
    for (uint32_t i = 0; i < n; ++i) {
      std::string k;
      uint32_t m;
      if (!r.Str(&k) || !r.Count(&m, 4)) return bad;
      std::vector<float> v(m);
      for (float& f : v) r.F32(&f);
      l.floats[k] = std::move(v);
    }
    if (!r.Count(&n, 20)) return bad;
    l.post_ops.resize(n);
    for (PostOp& po : l.post_ops) {
      uint32_t k;
      if (!r.U32(&k) || k > 3 || !r.I32(&po.alg) || !r.F32(&po.alpha) || !r.F32(&po.beta) ||
          !r.I32(&po.tensor) || po.tensor < -1 || po.tensor >= static_cast<int32_t>(nt)) {
        return bad;
      }
      po.kind = static_cast<PostOp::Kind>(k);
    }
    if (!r.Str(&l.impl)) return bad;
  }
  if (!r.done()) return DataLoss("CPU engine payload has trailing bytes");
  if (!lean) KILN_RETURN_IF_ERROR(ValidateProgram(p));  // lean: after ResolveLeanConsts
  return p;
}

}  // namespace kiln::cpu
