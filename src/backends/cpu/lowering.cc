// Lowering: IR nodes -> layer program (lowering.h). One function per op resolves the node's
// ONNX semantics (attributes, constant inputs, opset forms) into a Layer, or returns the reason
// the CPU engine cannot take it. The same functions run in build mode (a whole segment, shapes
// concrete) and in validation mode (Supports: one node, the shapes the graph knows; when they
// are all known the layer is also instantiated through oneDNN, so "supported" means "builds").
#include "backends/cpu/lowering.h"

#include <algorithm>
#include <cmath>
#include <dnnl.hpp>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>
#include <set>

#include "backends/cpu/layers.h"
#include "backends/cpu/layers_rnn.h"
#include "ops/base/kernel_context.h"
#include "ops/base/shape_util.h"
#include "ops/nn_window.h"

namespace kiln::cpu {
namespace {

using Dims = std::vector<int64_t>;
using A = dnnl::algorithm;

int32_t Alg(A a) { return static_cast<int32_t>(a); }

PostOp Elt(A alg, float alpha = 0, float beta = 0) {
  PostOp p;
  p.kind = PostOp::kEltwise;
  p.alg = Alg(alg);
  p.alpha = alpha;
  p.beta = beta;
  return p;
}

class Lowerer {
 public:
  Lowerer(const Graph& g, const BuildConfig& cfg, bool validate)
      : g_(g), cfg_(cfg), validate_(validate) {}

  const Graph& graph() const { return g_; }
  bool validate() const { return validate_; }
  Program& prog() { return prog_; }
  int64_t opset() const { return g_.onnx_opset(); }

  int AddTensor(const std::string& name, Dims dims) {
    TensorDef t;
    t.name = name;
    t.dims = std::move(dims);
    prog_.tensors.push_back(std::move(t));
    return static_cast<int>(prog_.tensors.size()) - 1;
  }
  int AddConst(const std::string& name, Tensor value) {
    const int id = AddTensor(name, value.dims());
    prog_.tensors[id].is_const = true;
    prog_.tensors[id].value = std::move(value);
    return id;
  }
  void Bind(const std::string& value, int id) { ids_[value] = id; }

  // Tensor id of a node input ("" or missing -> -1). Initializers become constants.
  StatusOr<int> In(const Node& n, size_t i) {
    if (i >= n.inputs.size() || n.inputs[i].empty()) return -1;
    const std::string& v = n.inputs[i];
    auto it = ids_.find(v);
    if (it != ids_.end()) return it->second;
    auto init = g_.initializers.find(v);
    if (init != g_.initializers.end()) {
      const int id = AddConst(v, init->second);
      ids_[v] = id;
      return id;
    }
    if (!validate_) return Internal("input '" + v + "' is not produced");
    const ValueInfo* vi = g_.FindValueInfo(v);
    if (vi == nullptr || !vi->shape.rank_known()) {
      return Unimplemented("input " + std::to_string(i) + " has an unknown rank");
    }
    Dims d = vi->shape.dims();
    if (!d.empty() && d[0] < 0) d[0] = std::max<int64_t>(1, cfg_.max_batch_size);
    const int id = AddTensor(v, d);
    dtypes_[id] = vi->dtype;
    ids_[v] = id;
    prog_.inputs.push_back(id);
    return id;
  }

  const Dims& Dims_(int id) const { return prog_.tensors[id].dims; }
  bool Known(int id) const {
    const Dims& d = Dims_(id);
    return std::all_of(d.begin(), d.end(), [](int64_t v) { return v > 0; });
  }
  const Tensor* Const(int id) const {
    return id >= 0 && prog_.tensors[id].is_const ? &prog_.tensors[id].value : nullptr;
  }
  DataType DType(int id) const {
    if (const Tensor* c = Const(id)) return c->dtype();
    auto it = dtypes_.find(id);
    return it == dtypes_.end() ? DataType::kFloat32 : it->second;
  }
  void SetDType(int id, DataType t) { dtypes_[id] = t; }

  // Emits `l` (inputs set, outputs to be created for `out_names`): shapes it, names outputs.
  Status Emit(const Node& n, Layer l, const std::vector<std::string>& out_names) {
    if (l.op.empty()) l.op = n.op_type;
    if (l.nodes.empty()) l.nodes = {n.name};
    bool known = true;
    std::vector<Dims> in;
    for (int t : l.inputs) {
      if (t >= 0 && !Known(t)) known = false;
      in.push_back(t >= 0 ? Dims_(t) : Dims{});
    }
    for (const PostOp& po : l.post_ops) {
      if (po.tensor >= 0 && !Known(po.tensor)) known = false;
    }
    std::vector<Dims> out(out_names.size());
    if (known) {
      for (size_t i = 0; i < out_names.size(); ++i) l.outputs.push_back(-1);
      StatusOr<std::vector<Dims>> s = ShapeOf(l, in);
      if (!s.ok()) return Unimplemented(s.status().message());
      out = *s;
      l.outputs.clear();
    } else if (!validate_) {
      return Internal("shapes are not known");
    }
    for (size_t i = 0; i < out_names.size(); ++i) {
      const int id = AddTensor(out_names[i], out[i]);
      dtypes_[id] = DataType::kFloat32;
      l.outputs.push_back(id);
      ids_[out_names[i]] = id;
    }
    prog_.layers.push_back(std::move(l));
    all_known_ = all_known_ && known;
    return Status::OK();
  }
  bool all_known() const { return all_known_; }

 private:
  const Graph& g_;
  const BuildConfig& cfg_;
  bool validate_;
  Program prog_;
  std::map<std::string, int> ids_;
  std::map<int, DataType> dtypes_;
  bool all_known_ = true;
};

struct OpCtx {
  Lowerer& L;
  const Node& n;
  const AttrReader& a;
  // A reason without the node's name (Supports reasons aggregate per op type; LowerSegment
  // adds the node in build mode).
  Status Fail(const std::string& why) const { return Unimplemented(why); }
  // Input i as a float32 tensor id (required unless `optional`).
  StatusOr<int> F32(size_t i, bool optional = false) const {
    KILN_ASSIGN_OR_RETURN(int id, L.In(n, i));
    if (id < 0) {
      if (optional) return -1;
      return Fail("input " + std::to_string(i) + " is missing");
    }
    if (L.DType(id) != DataType::kFloat32) {
      return Fail("input " + std::to_string(i) + " has dtype " + DataTypeName(L.DType(id)) +
                  " (only float32 is supported)");
    }
    return id;
  }
  // A constant input's value (any dtype), or an error saying it must be constant.
  StatusOr<const Tensor*> ConstIn(size_t i, const char* what) const {
    KILN_ASSIGN_OR_RETURN(int id, L.In(n, i));
    const Tensor* t = L.Const(id);
    if (t == nullptr) return Fail(std::string(what) + " must be a constant (initializer)");
    return t;
  }
  Status Emit(Layer l) const { return L.Emit(n, std::move(l), {n.outputs[0]}); }
  Status OnlyFirstOutput() const {
    for (size_t i = 1; i < n.outputs.size(); ++i) {
      if (!n.outputs[i].empty()) return Fail("optional output " + std::to_string(i) + " is used");
    }
    return Status::OK();
  }
};

Dims Spatial(const Dims& x, bool nhwc) {
  return nhwc ? Dims(x.begin() + 1, x.end() - 1) : Dims(x.begin() + 2, x.end());
}

// ----------------------------------------------------------------------------- conv family

Status LowerConv(const OpCtx& c) {
  const bool transpose = c.n.op_type == "ConvTranspose";
  KILN_ASSIGN_OR_RETURN(bool nhwc, ChannelsLast(c.a));
  KILN_ASSIGN_OR_RETURN(int x, c.F32(0));
  KILN_ASSIGN_OR_RETURN(int w, c.F32(1));
  KILN_ASSIGN_OR_RETURN(int b, c.F32(2, true));
  if (c.L.Const(w) == nullptr) return c.Fail("W must be a constant (initializer)");
  if (b >= 0 && c.L.Const(b) == nullptr) return c.Fail("B must be a constant (initializer)");
  const Dims& xd = c.L.Dims_(x);
  const Dims& wd = c.L.Dims_(w);
  if (xd.size() < 3 || xd.size() > 5) return c.Fail("only 1-D, 2-D and 3-D convolutions");
  if (wd.size() != xd.size()) return c.Fail("W rank does not match X");
  const Dims kernel(wd.begin() + 2, wd.end());
  if (c.a.HasAttr("kernel_shape") && c.a.GetInts("kernel_shape") != kernel) {
    return c.Fail("kernel_shape does not match W");
  }
  const Dims in = Spatial(xd, nhwc);
  KILN_ASSIGN_OR_RETURN(WindowGeometry g, ComputeWindowGeometry(c.a, in, kernel, false));
  Layer l;
  l.kind = transpose ? LayerKind::kDeconv : LayerKind::kConv;
  l.inputs = {x, w};
  if (b >= 0) l.inputs.push_back(b);
  l.ints["strides"] = g.strides;
  l.ints["dilations"] = g.dilations;
  l.ints["group"] = {c.a.GetInt("group")};
  l.ints["nhwc"] = {nhwc ? 1 : 0};
  l.ints["pads_begin"] = g.pads_begin;
  l.ints["pads_end"] = g.pads_end;
  if (transpose) {
    const size_t r = in.size();
    Dims out_pad = c.a.GetInts("output_padding");
    if (out_pad.empty()) out_pad.assign(r, 0);
    Dims out_shape = c.a.GetInts("output_shape");
    if (out_shape.size() == r + 2) out_shape.erase(out_shape.begin(), out_shape.begin() + 2);
    if (out_pad.size() != r || (!out_shape.empty() && out_shape.size() != r)) {
      return c.Fail("output_padding / output_shape do not match the spatial rank");
    }
    const std::string auto_pad = c.a.GetString("auto_pad");
    const bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
    Dims pb(r), pe(r), out(r);
    for (size_t i = 0; i < r; ++i) {
      const int64_t k_eff = (kernel[i] - 1) * g.dilations[i] + 1;
      const int64_t natural = (in[i] - 1) * g.strides[i] + k_eff + out_pad[i];
      if (auto_pad == "VALID") g.pads_begin[i] = g.pads_end[i] = 0;
      if (!out_shape.empty() || same) {
        out[i] = !out_shape.empty() ? out_shape[i] : in[i] * g.strides[i];
        const int64_t total = natural - out[i];
        const int64_t half = total >= 0 ? total / 2 : -((1 - total) / 2);
        pb[i] = auto_pad == "SAME_UPPER" ? half : total - half;
      } else {
        pb[i] = g.pads_begin[i];
        out[i] = natural - g.pads_begin[i] - g.pads_end[i];
      }
      // oneDNN's deconvolution has no output_padding: it is the end padding reduced by it.
      pe[i] = (in[i] - 1) * g.strides[i] + k_eff - pb[i] - out[i];
      if (pb[i] < 0) return c.Fail("negative begin padding is not supported");
    }
    l.ints["pads_begin"] = pb;
    l.ints["pads_end"] = pe;
    l.ints["out"] = out;
  }
  return c.Emit(std::move(l));
}

// ----------------------------------------------------------------------------- matmul family

Tensor Transpose2D(const Tensor& t) {
  Tensor r = Tensor::Empty(DataType::kFloat32, {t.dim(1), t.dim(0)});
  const float* s = t.data<float>();
  float* d = r.mutable_data<float>();
  for (int64_t i = 0; i < t.dim(0); ++i) {
    for (int64_t j = 0; j < t.dim(1); ++j) d[j * t.dim(0) + i] = s[i * t.dim(1) + j];
  }
  return r;
}

Status LowerMatMul(const OpCtx& c) {
  KILN_ASSIGN_OR_RETURN(int a, c.F32(0));
  KILN_ASSIGN_OR_RETURN(int b, c.F32(1));
  Layer l;
  l.kind = LayerKind::kMatMul;
  l.inputs = {a, b};
  return c.Emit(std::move(l));
}

// Gemm: alpha * op(A) op(B) + beta * C. A constant B is pre-transposed and pre-scaled; a
// constant C becomes the bias (when it is per-column) or a binary-add post-op operand.
Status LowerGemm(const OpCtx& c) {
  KILN_ASSIGN_OR_RETURN(int a, c.F32(0));
  KILN_ASSIGN_OR_RETURN(int b, c.F32(1));
  KILN_ASSIGN_OR_RETURN(int cc, c.F32(2, true));
  const float alpha = c.a.GetFloat("alpha"), beta = c.a.GetFloat("beta");
  const bool ta = c.a.GetInt("transA") != 0, tb = c.a.GetInt("transB") != 0;
  if (c.L.Dims_(a).size() != 2 || c.L.Dims_(b).size() != 2) return c.Fail("A and B must be 2-D");
  Layer l;
  l.kind = LayerKind::kMatMul;
  l.ints["trans_a"] = {ta ? 1 : 0};
  if (const Tensor* bt = c.L.Const(b)) {
    Tensor w = tb ? Transpose2D(*bt) : bt->Clone();
    if (alpha != 1) {
      float* p = w.mutable_data<float>();
      for (int64_t i = 0; i < w.num_elements(); ++i) p[i] *= alpha;
    }
    l.inputs = {a, c.L.AddConst(c.n.name + "/B", std::move(w))};
  } else {
    l.ints["trans_b"] = {tb ? 1 : 0};
    l.inputs = {a, b};
    if (alpha != 1) l.post_ops.push_back(Elt(A::eltwise_linear, alpha, 0));
  }
  if (cc >= 0 && beta != 0) {
    const int64_t n = c.L.Dims_(b)[tb ? 0 : 1];
    if (const Tensor* ct = c.L.Const(cc)) {
      Tensor s = ct->Clone();
      float* p = s.mutable_data<float>();
      for (int64_t i = 0; i < s.num_elements(); ++i) p[i] *= beta;
      const Dims& cd = ct->dims();
      const bool per_col =
          (cd.size() == 1 && cd[0] == n) || (cd.size() == 2 && cd[0] == 1 && cd[1] == n);
      if (per_col && c.L.Const(b) != nullptr) {
        l.inputs.push_back(c.L.AddConst(c.n.name + "/bias", std::move(s)));
      } else {
        PostOp po;
        po.kind = PostOp::kBinary;
        po.alg = Alg(A::binary_add);
        po.tensor = c.L.AddConst(c.n.name + "/C", std::move(s));
        l.post_ops.push_back(po);
      }
    } else {
      if (beta != 1) return c.Fail("beta != 1 with a non-constant C");
      PostOp po;
      po.kind = PostOp::kBinary;
      po.alg = Alg(A::binary_add);
      po.tensor = cc;
      l.post_ops.push_back(po);
    }
  }
  return c.Emit(std::move(l));
}

// ----------------------------------------------------------------------------- elementwise

StatusOr<float> ScalarBound(const OpCtx& c, size_t i, float dflt) {
  KILN_ASSIGN_OR_RETURN(int id, c.L.In(c.n, i));
  if (id < 0) return dflt;
  const Tensor* t = c.L.Const(id);
  if (t == nullptr) return c.Fail("min / max must be constants");
  if (t->dtype() != DataType::kFloat32 || t->num_elements() != 1) {
    return c.Fail("min / max must be float32 scalars");
  }
  return t->data<float>()[0];
}

Status LowerEltwise(const OpCtx& c) {
  const std::string& op = c.n.op_type;
  KILN_ASSIGN_OR_RETURN(int x, c.F32(0));
  Layer l;
  l.kind = LayerKind::kEltwise;
  l.inputs = {x};
  auto& p = l.post_ops;
  if (op == "Relu") {
    p.push_back(Elt(A::eltwise_relu, 0));
  } else if (op == "LeakyRelu") {
    p.push_back(Elt(A::eltwise_relu, c.a.GetFloat("alpha")));
  } else if (op == "Elu") {
    p.push_back(Elt(A::eltwise_elu, c.a.GetFloat("alpha")));
  } else if (op == "Selu") {
    p.push_back(Elt(A::eltwise_elu, c.a.GetFloat("alpha")));
    p.push_back(Elt(A::eltwise_linear, c.a.GetFloat("gamma"), 0));
  } else if (op == "Sigmoid") {
    p.push_back(Elt(A::eltwise_logistic));
  } else if (op == "Tanh") {
    p.push_back(Elt(A::eltwise_tanh));
  } else if (op == "Clip") {
    float lo = -std::numeric_limits<float>::max(), hi = std::numeric_limits<float>::max();
    if (c.a.HasAttr("min")) lo = c.a.GetFloat("min");
    if (c.a.HasAttr("max")) hi = c.a.GetFloat("max");
    KILN_ASSIGN_OR_RETURN(lo, ScalarBound(c, 1, lo));
    KILN_ASSIGN_OR_RETURN(hi, ScalarBound(c, 2, hi));
    if (!(lo <= hi)) return c.Fail("Clip with min > max or NaN bounds");
    p.push_back(Elt(A::eltwise_clip_v2, lo, hi));
  } else if (op == "HardSigmoid") {
    p.push_back(Elt(A::eltwise_linear, c.a.GetFloat("alpha"), c.a.GetFloat("beta")));
    p.push_back(Elt(A::eltwise_clip_v2, 0.f, 1.f));
  } else if (op == "HardSwish") {
    p.push_back(Elt(A::eltwise_hardswish));
  } else if (op == "Gelu") {
    const std::string approx = c.a.GetString("approximate");
    if (approx != "none" && approx != "tanh") return c.Fail("unknown approximate '" + approx + "'");
    p.push_back(Elt(approx == "tanh" ? A::eltwise_gelu_tanh : A::eltwise_gelu_erf));
  } else if (op == "Softplus") {
    p.push_back(Elt(A::eltwise_soft_relu));
  } else if (op == "Mish") {
    p.push_back(Elt(A::eltwise_mish));
  } else if (op == "Exp") {
    p.push_back(Elt(A::eltwise_exp));
  } else if (op == "Log") {
    p.push_back(Elt(A::eltwise_log));
  } else if (op == "Sqrt") {
    p.push_back(Elt(A::eltwise_sqrt));
  } else if (op == "Erf") {  // only inside a GELU pattern (SupportErf, fusion.cc FuseGelu)
    PostOp erf;
    erf.alg = kAlgErfMarker;
    p.push_back(erf);
  } else if (op == "Abs") {
    p.push_back(Elt(A::eltwise_abs));
  } else if (op == "Neg") {
    p.push_back(Elt(A::eltwise_linear, -1.f, 0.f));
  } else if (op == "Reciprocal") {
    p.push_back(Elt(A::eltwise_pow, 1.f, -1.f));
  } else {
    return c.Fail("not an eltwise op");
  }
  return c.Emit(std::move(l));
}

// The value of a constant operand holding exactly one element, if `t` is one.
std::optional<float> ScalarConst(const Lowerer& L, int t) {
  const Tensor* v = L.Const(t);
  if (v == nullptr || v->num_elements() != 1) return std::nullopt;
  return v->data<float>()[0];
}

// A binary op with a one-element constant operand `s` as an eltwise op on the other operand x
// (the output is x's shape when s's rank does not exceed x's): x+s, s+x, x-s = linear(1, +-s);
// s-x = linear(-1, s); x*s, s*x = linear(s, 0); x/s = linear(1/s, 0) (within 1 ulp of the
// division); s/x = pow(x; alpha s, beta -1); max / min = clip_v2 with one open bound.
Status LowerScalarBinary(const OpCtx& c, int x, float s, bool scalar_first) {
  const std::string& op = c.n.op_type;
  Layer l;
  l.kind = LayerKind::kEltwise;
  l.inputs = {x};
  constexpr float kInf = std::numeric_limits<float>::infinity();
  if (op == "Add") {
    l.post_ops.push_back(Elt(A::eltwise_linear, 1.f, s));
  } else if (op == "Sub") {
    l.post_ops.push_back(scalar_first ? Elt(A::eltwise_linear, -1.f, s)
                                      : Elt(A::eltwise_linear, 1.f, -s));
  } else if (op == "Mul") {
    l.post_ops.push_back(Elt(A::eltwise_linear, s, 0.f));
  } else if (op == "Div") {
    if (!scalar_first) {
      if (s == 0 || !std::isfinite(1.f / s)) {
        return c.Fail("division by a constant 0 or a subnormal constant");
      }
      l.post_ops.push_back(Elt(A::eltwise_linear, 1.f / s, 0.f));
    } else {
      l.post_ops.push_back(Elt(A::eltwise_pow, s, -1.f));
    }
  } else if (op == "Max") {
    if (std::isnan(s)) return c.Fail("Max with a NaN constant");
    l.post_ops.push_back(Elt(A::eltwise_clip_v2, s, kInf));
  } else if (op == "Min") {
    if (std::isnan(s)) return c.Fail("Min with a NaN constant");
    l.post_ops.push_back(Elt(A::eltwise_clip_v2, -kInf, s));
  } else {
    return c.Fail("not a binary op");
  }
  return c.Emit(std::move(l));
}

Status LowerBinary(const OpCtx& c) {
  static const std::map<std::string, std::pair<A, bool>> kOps = {
      {"Add", {A::binary_add, true}}, {"Sub", {A::binary_sub, false}},
      {"Mul", {A::binary_mul, true}}, {"Div", {A::binary_div, false}},
      {"Max", {A::binary_max, true}}, {"Min", {A::binary_min, true}}};
  const auto& [alg, commutative] = kOps.at(c.n.op_type);
  if (c.n.inputs.size() != 2) return c.Fail("only the two-input form is supported");
  KILN_ASSIGN_OR_RETURN(int a, c.F32(0));
  KILN_ASSIGN_OR_RETURN(int b, c.F32(1));
  if (c.L.Const(a) != nullptr && c.L.Const(b) != nullptr) return c.Fail("both inputs constant");
  for (const bool first : {false, true}) {
    const int x = first ? b : a, k = first ? a : b;
    const std::optional<float> s = ScalarConst(c.L, k);
    if (s && c.L.Dims_(k).size() <= c.L.Dims_(x).size()) {
      return LowerScalarBinary(c, x, *s, first);
    }
  }
  if (c.L.Dims_(a).empty() || c.L.Dims_(b).empty()) {
    return c.Fail("a rank-0 (scalar) operand that is not a constant");
  }
  Layer l;
  l.kind = LayerKind::kBinary;
  l.ints["alg"] = {Alg(alg)};
  l.inputs = {a, b};
  if (c.L.Known(a) && c.L.Known(b)) {
    StatusOr<Dims> out = BroadcastDims({c.L.Dims_(a), c.L.Dims_(b)});
    if (!out.ok()) return c.Fail("inputs do not broadcast");
    if (*out != c.L.Dims_(a)) {
      if (*out != c.L.Dims_(b))
        return c.Fail("both operands broadcast (neither has the output shape)");
      if (!commutative && alg != A::binary_sub) {
        return c.Fail("the first operand of " + c.n.op_type + " broadcasts");
      }
      l.inputs = {b, a};
      // a - b == -(b - a)
      if (alg == A::binary_sub) l.post_ops.push_back(Elt(A::eltwise_linear, -1.f, 0.f));
    }
  }
  return c.Emit(std::move(l));
}

// PRelu: a one-element constant slope is eltwise_relu with alpha = slope (a post-op candidate);
// any other slope that broadcasts onto X runs oneDNN's prelu primitive.
Status LowerPRelu(const OpCtx& c) {
  KILN_ASSIGN_OR_RETURN(int x, c.F32(0));
  KILN_ASSIGN_OR_RETURN(int s, c.F32(1));
  Layer l;
  l.inputs = {x};
  if (const std::optional<float> v = ScalarConst(c.L, s);
      v && c.L.Dims_(s).size() <= c.L.Dims_(x).size()) {
    l.kind = LayerKind::kEltwise;
    l.post_ops.push_back(Elt(A::eltwise_relu, *v));
    return c.Emit(std::move(l));
  }
  if (c.L.Dims_(x).empty() || c.L.Dims_(s).empty()) return c.Fail("a rank-0 X or slope");
  l.kind = LayerKind::kPRelu;
  l.inputs.push_back(s);
  return c.Emit(std::move(l));
}

// ----------------------------------------------------------------------------- pooling

Status LowerPool(const OpCtx& c) {
  const std::string& op = c.n.op_type;
  KILN_RETURN_IF_ERROR(c.OnlyFirstOutput());
  KILN_ASSIGN_OR_RETURN(bool nhwc, ChannelsLast(c.a));
  KILN_ASSIGN_OR_RETURN(int x, c.F32(0));
  const Dims& xd = c.L.Dims_(x);
  if (xd.size() < 3 || xd.size() > 5) return c.Fail("only 1-D, 2-D and 3-D pooling");
  const Dims in = Spatial(xd, nhwc);
  Layer l;
  l.kind = LayerKind::kPool;
  l.inputs = {x};
  l.ints["nhwc"] = {nhwc ? 1 : 0};
  const size_t r = in.size();
  if (op == "GlobalAveragePool" || op == "GlobalMaxPool") {
    l.ints["alg"] = {Alg(op == "GlobalMaxPool" ? A::pooling_max : A::pooling_avg_include_padding)};
    l.ints["kernel"] = in;
    l.ints["strides"] = Dims(r, 1);
    l.ints["dilations"] = Dims(r, 1);
    l.ints["pads_begin"] = Dims(r, 0);
    l.ints["pads_end"] = Dims(r, 0);
    return c.Emit(std::move(l));
  }
  const bool ceil_mode = c.a.GetInt("ceil_mode") != 0;
  KILN_ASSIGN_OR_RETURN(WindowGeometry g,
                        ComputeWindowGeometry(c.a, in, c.a.GetInts("kernel_shape"), ceil_mode));
  if (op == "MaxPool") {
    if (c.a.GetInt("storage_order") != 0 && c.n.outputs.size() > 1) {
      return c.Fail("storage_order=1");
    }
    l.ints["alg"] = {Alg(A::pooling_max)};
  } else {
    const bool include = c.a.GetInt("count_include_pad") != 0;
    if (include && ceil_mode) return c.Fail("count_include_pad=1 with ceil_mode=1");
    l.ints["alg"] = {
        Alg(include ? A::pooling_avg_include_padding : A::pooling_avg_exclude_padding)};
  }
  // oneDNN sizes the output with floor division: with ceil_mode, widen the end padding.
  for (size_t i = 0; i < r && in[i] > 0; ++i) {
    const int64_t k_eff = (g.kernel[i] - 1) * g.dilations[i] + 1;
    const int64_t need = (g.out[i] - 1) * g.strides[i] + k_eff - in[i] - g.pads_begin[i];
    g.pads_end[i] = std::max(g.pads_end[i], need);
    if (g.pads_begin[i] >= k_eff || g.pads_end[i] >= k_eff + g.strides[i]) {
      return c.Fail("padding larger than the window");
    }
  }
  l.ints["kernel"] = g.kernel;
  l.ints["strides"] = g.strides;
  l.ints["dilations"] = g.dilations;
  l.ints["pads_begin"] = g.pads_begin;
  l.ints["pads_end"] = g.pads_end;
  return c.Emit(std::move(l));
}

// ----------------------------------------------------------------------------- normalization

Status LowerSoftmax(const OpCtx& c) {
  KILN_ASSIGN_OR_RETURN(int x, c.F32(0));
  const int64_t r = static_cast<int64_t>(c.L.Dims_(x).size());
  const bool old = c.L.opset() < 13;
  int64_t axis = old && !c.a.HasAttr("axis") ? 1 : c.a.GetInt("axis");
  if (axis < -r || axis >= r) return c.Fail("axis out of range");
  if (axis < 0) axis += r;
  if (old && axis != r - 1) {
    return c.Fail("opset < 13 softmax over dims[axis:] with axis != last is not supported");
  }
  Layer l;
  l.kind = LayerKind::kSoftmax;
  l.inputs = {x};
  l.ints["axis"] = {axis};
  l.ints["log"] = {c.n.op_type == "LogSoftmax" ? 1 : 0};
  return c.Emit(std::move(l));
}

Status LowerLayerNorm(const OpCtx& c) {
  KILN_RETURN_IF_ERROR(c.OnlyFirstOutput());
  KILN_ASSIGN_OR_RETURN(int x, c.F32(0));
  KILN_ASSIGN_OR_RETURN(int s, c.F32(1));
  KILN_ASSIGN_OR_RETURN(int b, c.F32(2, true));
  if (c.L.Const(s) == nullptr || (b >= 0 && c.L.Const(b) == nullptr)) {
    return c.Fail("Scale and B must be constants");
  }
  const int64_t r = static_cast<int64_t>(c.L.Dims_(x).size());
  int64_t axis = c.a.GetInt("axis");
  if (axis < -r || axis >= r) return c.Fail("axis out of range");
  if (axis < 0) axis += r;
  Layer l;
  l.kind = LayerKind::kLayerNorm;
  l.inputs = {x, s};
  if (b >= 0) l.inputs.push_back(b);
  l.ints["axis"] = {axis};
  l.floats["eps"] = {c.a.GetFloat("epsilon")};
  return c.Emit(std::move(l));
}

Status LowerBatchNorm(const OpCtx& c) {
  KILN_RETURN_IF_ERROR(c.OnlyFirstOutput());
  if (c.a.GetInt("training_mode") != 0) return c.Fail("training_mode=1");
  if (c.a.HasAttr("spatial") && c.a.GetInt("spatial") == 0) return c.Fail("spatial=0");
  KILN_ASSIGN_OR_RETURN(bool nhwc, ChannelsLast(c.a));
  KILN_ASSIGN_OR_RETURN(int x, c.F32(0));
  Layer l;
  l.kind = LayerKind::kBatchNorm;
  l.inputs = {x};
  for (size_t i = 1; i < 5; ++i) {
    KILN_ASSIGN_OR_RETURN(int p, c.F32(i));
    if (c.L.Const(p) == nullptr) return c.Fail("scale, B, mean and var must be constants");
    l.inputs.push_back(p);
  }
  l.ints["nhwc"] = {nhwc ? 1 : 0};
  l.floats["eps"] = {c.a.GetFloat("epsilon")};
  return c.Emit(std::move(l));
}

// ----------------------------------------------------------------------------- data movement

Status LowerConcat(const OpCtx& c) {
  Layer l;
  l.kind = LayerKind::kConcat;
  for (size_t i = 0; i < c.n.inputs.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(int t, c.F32(i));
    l.inputs.push_back(t);
  }
  if (l.inputs.empty()) return c.Fail("no inputs");
  const int64_t r = static_cast<int64_t>(c.L.Dims_(l.inputs[0]).size());
  int64_t axis = c.a.GetInt("axis");
  if (axis < -r || axis >= r) return c.Fail("axis out of range");
  l.ints["axis"] = {axis < 0 ? axis + r : axis};
  return c.Emit(std::move(l));
}

Status LowerTranspose(const OpCtx& c) {
  KILN_ASSIGN_OR_RETURN(int x, c.F32(0));
  const int64_t r = static_cast<int64_t>(c.L.Dims_(x).size());
  Dims perm = c.a.GetInts("perm");
  if (perm.empty()) {
    for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
  }
  for (int64_t& p : perm) {
    if (p < 0) p += r;
  }
  Layer l;
  l.kind = LayerKind::kTranspose;
  l.inputs = {x};
  l.ints["perm"] = perm;
  return c.Emit(std::move(l));
}

// Axes from the attribute (older opsets) or a constant int input (newer).
StatusOr<Dims> AxesOf(const OpCtx& c, size_t input, bool* given) {
  *given = false;
  if (c.a.HasAttr("axes")) {
    *given = true;
    return c.a.GetInts("axes");
  }
  KILN_ASSIGN_OR_RETURN(int id, c.L.In(c.n, input));
  if (id < 0) return Dims{};
  const Tensor* t = c.L.Const(id);
  if (t == nullptr) return c.Fail("axes must be a constant");
  if (t->dtype() != DataType::kInt64 && t->dtype() != DataType::kInt32) {
    return c.Fail("axes must be int64");
  }
  *given = true;
  Dims v;
  for (int64_t i = 0; i < t->num_elements(); ++i)
    v.push_back(static_cast<int64_t>(t->GetAsDouble(i)));
  return v;
}

StatusOr<Dims> NormalizeAxes(const OpCtx& c, Dims axes, int64_t r) {
  for (int64_t& a : axes) {
    if (a < -r || a >= r) return c.Fail("axis out of range");
    if (a < 0) a += r;
  }
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end()) return c.Fail("repeated axis");
  return axes;
}

Status LowerView(const OpCtx& c) {
  const std::string& op = c.n.op_type;
  KILN_ASSIGN_OR_RETURN(int x, c.F32(0));
  const int64_t r = static_cast<int64_t>(c.L.Dims_(x).size());
  Layer l;
  l.kind = LayerKind::kView;
  l.inputs = {x};
  if (op == "Reshape") {
    KILN_ASSIGN_OR_RETURN(const Tensor* s, c.ConstIn(1, "shape"));
    if (s->dtype() != DataType::kInt64) return c.Fail("shape must be int64");
    l.ints["mode"] = {static_cast<int64_t>(ViewMode::kReshape)};
    l.ints["spec"] = Dims(s->data<int64_t>(), s->data<int64_t>() + s->num_elements());
    l.ints["allowzero"] = {c.a.GetInt("allowzero")};
  } else if (op == "Flatten") {
    int64_t axis = c.a.GetInt("axis");
    if (axis < -r || axis > r) return c.Fail("axis out of range");
    l.ints["mode"] = {static_cast<int64_t>(ViewMode::kFlatten)};
    l.ints["axis"] = {axis < 0 ? axis + r : axis};
  } else if (op == "Squeeze" || op == "Unsqueeze") {
    bool given;
    KILN_ASSIGN_OR_RETURN(Dims axes, AxesOf(c, 1, &given));
    const bool sq = op == "Squeeze";
    if (!sq && axes.empty()) return c.Fail("Unsqueeze needs axes");
    KILN_ASSIGN_OR_RETURN(axes,
                          NormalizeAxes(c, axes, sq ? r : r + static_cast<int64_t>(axes.size())));
    l.ints["mode"] = {static_cast<int64_t>(sq ? ViewMode::kSqueeze : ViewMode::kUnsqueeze)};
    l.ints["spec"] = axes;
  } else {  // Identity, Dropout (inference)
    if (op == "Dropout") {
      KILN_RETURN_IF_ERROR(c.OnlyFirstOutput());
      KILN_ASSIGN_OR_RETURN(int tm, c.L.In(c.n, 2));
      if (tm >= 0 && (c.L.Const(tm) == nullptr || c.L.Const(tm)->GetAsDouble(0) != 0)) {
        return c.Fail("training_mode must be a constant false");
      }
    }
    l.ints["mode"] = {static_cast<int64_t>(ViewMode::kIdentity)};
  }
  return c.Emit(std::move(l));
}

// ----------------------------------------------------------------------------- resampling

// ONNX's source index of output position o on one axis (nearest mode), or -2 when the mode
// is one this backend does not map.
int64_t OnnxNearest(const std::string& coord, const std::string& nearest, double scale,
                    int64_t in_len, int64_t out_len, int64_t o) {
  const double xr = static_cast<double>(o), resized = scale * static_cast<double>(in_len);
  double x;
  if (coord == "half_pixel") {
    x = (xr + 0.5) / scale - 0.5;
  } else if (coord == "pytorch_half_pixel") {
    x = resized > 1 ? (xr + 0.5) / scale - 0.5 : -0.5;
  } else if (coord == "align_corners") {
    x = resized == 1 ? 0 : xr * (in_len - 1) / (resized - 1);
  } else if (coord == "asymmetric") {
    x = xr / scale;
  } else if (coord == "tf_half_pixel_for_nn") {
    x = (xr + 0.5) / scale;
  } else {
    return -2;
  }
  const double fl = std::floor(x), r = x - fl;
  int64_t i = static_cast<int64_t>(fl);
  if (r != 0) {
    if (nearest == "round_prefer_floor") {
      i = r <= 0.5 ? i : i + 1;
    } else if (nearest == "round_prefer_ceil") {
      i = r < 0.5 ? i : i + 1;
    } else if (nearest == "ceil") {
      i = i + 1;
    } else if (nearest != "floor") {
      return -2;
    }
  }
  (void)out_len;
  return std::clamp<int64_t>(i, 0, in_len - 1);
}

// oneDNN's nearest index: round((o + 0.5) * in / out - 0.5), clamped; -1 on a rounding tie.
int64_t DnnlNearest(int64_t in_len, int64_t out_len, int64_t o) {
  const double x = (static_cast<double>(o) + 0.5) * in_len / out_len - 0.5;
  const double fr = x - std::floor(x);
  if (std::fabs(fr - 0.5) < 1e-4) return -1;
  return std::clamp<int64_t>(static_cast<int64_t>(std::lround(x)), 0, in_len - 1);
}

Status LowerResize(const OpCtx& c) {
  KILN_ASSIGN_OR_RETURN(bool nhwc, ChannelsLast(c.a));
  KILN_ASSIGN_OR_RETURN(int x, c.F32(0));
  const Dims xd = c.L.Dims_(x);
  if (xd.size() < 3 || xd.size() > 5) return c.Fail("only 1-D..3-D spatial resizing");
  const bool legacy = c.n.op_type == "Upsample" || c.L.opset() < 11;
  const std::string mode = c.a.GetString("mode");
  if (c.a.GetInt("antialias") != 0) return c.Fail("antialias=1");
  if (c.a.HasAttr("axes")) return c.Fail("the axes attribute");
  if (mode != "nearest" && mode != "linear" && mode != "bilinear") {
    return c.Fail("mode '" + mode + "' (oneDNN has nearest and linear only)");
  }
  const std::string coord = legacy ? "asymmetric" : c.a.GetString("coordinate_transformation_mode");
  const std::string nearest = legacy ? "floor" : c.a.GetString("nearest_mode");
  std::vector<double> scales;
  Dims sizes;
  if (c.n.op_type == "Upsample" && c.a.HasAttr("scales")) {
    for (float s : c.a.GetFloats("scales")) scales.push_back(s);
  } else {
    KILN_ASSIGN_OR_RETURN(int si, c.L.In(c.n, legacy ? 1 : 2));
    if (si >= 0) {
      const Tensor* st = c.L.Const(si);
      if (st == nullptr) return c.Fail("scales must be a constant");
      for (int64_t i = 0; i < st->num_elements(); ++i) scales.push_back(st->GetAsDouble(i));
    }
    if (!legacy) {
      KILN_ASSIGN_OR_RETURN(int zi, c.L.In(c.n, 3));
      if (zi >= 0) {
        const Tensor* zt = c.L.Const(zi);
        if (zt == nullptr) return c.Fail("sizes must be a constant");
        for (int64_t i = 0; i < zt->num_elements(); ++i) {
          sizes.push_back(static_cast<int64_t>(zt->GetAsDouble(i)));
        }
      }
    }
  }
  if (scales.empty() == sizes.empty()) return c.Fail("exactly one of scales and sizes is needed");
  const size_t r = xd.size();
  if ((!scales.empty() && scales.size() != r) || (!sizes.empty() && sizes.size() != r)) {
    return c.Fail("scales / sizes must name every axis");
  }
  if (!sizes.empty() && c.a.GetString("keep_aspect_ratio_policy") != "stretch") {
    return c.Fail("keep_aspect_ratio_policy other than stretch");
  }
  Dims out = xd;
  std::vector<double> sc(r, 1.0);
  for (size_t i = 0; i < r; ++i) {
    if (!scales.empty()) {
      if (!(scales[i] > 0)) return c.Fail("scales must be positive");
      sc[i] = scales[i];
      out[i] = static_cast<int64_t>(std::floor(scales[i] * static_cast<double>(xd[i])));
    } else {
      out[i] = sizes[i];
      sc[i] = static_cast<double>(sizes[i]) / static_cast<double>(xd[i]);
    }
    if (out[i] <= 0) return c.Fail("output size is zero");
  }
  const size_t cax = nhwc ? r - 1 : 1;
  if (out[0] != xd[0] || out[cax] != xd[cax]) return c.Fail("resizing N or C");
  Layer l;
  l.kind = LayerKind::kResample;
  l.inputs = {x};
  l.ints["nhwc"] = {nhwc ? 1 : 0};
  l.ints["alg"] = {Alg(mode == "nearest" ? A::resampling_nearest : A::resampling_linear)};
  Dims sp_out;
  for (size_t i = 1; i < r; ++i) {
    if (i == cax) continue;
    sp_out.push_back(out[i]);
    const int64_t in_len = xd[i], out_len = out[i];
    if (mode == "nearest") {
      for (int64_t o = 0; o < out_len; ++o) {
        const int64_t want = OnnxNearest(coord, nearest, sc[i], in_len, out_len, o);
        if (want == -2)
          return c.Fail("coordinate mode '" + coord + "' / nearest_mode '" + nearest + "'");
        if (want != DnnlNearest(in_len, out_len, o)) {
          return c.Fail("nearest indices of '" + coord + "' / '" + nearest +
                        "' differ from oneDNN's resampling for " + std::to_string(in_len) + " -> " +
                        std::to_string(out_len));
        }
      }
    } else {
      const bool half = coord == "half_pixel" || (coord == "pytorch_half_pixel" && out_len > 1);
      if (!half) return c.Fail("linear resize with '" + coord + "' (oneDNN uses half_pixel)");
      const double exact = static_cast<double>(out_len) / static_cast<double>(in_len);
      if (std::fabs(sc[i] - exact) > 1e-9 * exact) {
        return c.Fail("scale does not equal output / input size");
      }
    }
  }
  l.ints["out"] = sp_out;
  // `sizes` name the batch too: another batch would be resized (ShapeOf refuses it).
  if (!sizes.empty()) l.ints["batch"] = {xd[0]};
  return c.Emit(std::move(l));
}

// ----------------------------------------------------------------------------- reductions

Status LowerReduce(const OpCtx& c) {
  static const std::map<std::string, A> kAlgs = {{"ReduceSum", A::reduction_sum},
                                                 {"ReduceMean", A::reduction_mean},
                                                 {"ReduceMax", A::reduction_max},
                                                 {"ReduceMin", A::reduction_min},
                                                 {"ReduceProd", A::reduction_mul}};
  KILN_ASSIGN_OR_RETURN(int x, c.F32(0));
  const int64_t r = static_cast<int64_t>(c.L.Dims_(x).size());
  bool given;
  KILN_ASSIGN_OR_RETURN(Dims axes, AxesOf(c, 1, &given));
  Layer l;
  l.inputs = {x};
  if (axes.empty() && c.a.GetInt("noop_with_empty_axes") != 0) {
    l.kind = LayerKind::kView;
    l.ints["mode"] = {static_cast<int64_t>(ViewMode::kIdentity)};
    return c.Emit(std::move(l));
  }
  if (axes.empty()) {
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  }
  KILN_ASSIGN_OR_RETURN(axes, NormalizeAxes(c, axes, r));
  l.kind = LayerKind::kReduce;
  l.ints["alg"] = {Alg(kAlgs.at(c.n.op_type))};
  l.ints["axes"] = axes;
  l.ints["keepdims"] = {c.a.GetInt("keepdims")};
  return c.Emit(std::move(l));
}

// ----------------------------------------------------------------------------- rnn

// LSTM / GRU / RNN: the weights converted into oneDNN's form (layers_rnn.h) as constants.
Status LowerRnn(const OpCtx& c) {
  KILN_ASSIGN_OR_RETURN(int x, c.F32(0));
  KILN_ASSIGN_OR_RETURN(int w, c.F32(1));
  KILN_ASSIGN_OR_RETURN(int r, c.F32(2));
  KILN_ASSIGN_OR_RETURN(int b, c.F32(3, true));
  KILN_ASSIGN_OR_RETURN(int lens, c.L.In(c.n, 4));
  KILN_ASSIGN_OR_RETURN(int h0, c.F32(5, true));
  const bool lstm = c.n.op_type == "LSTM";
  int c0 = -1;
  if (lstm) {
    KILN_ASSIGN_OR_RETURN(c0, c.F32(6, true));
  }
  const bool peepholes = lstm && c.n.inputs.size() > 7 && !c.n.inputs[7].empty();
  if (c.L.Const(w) == nullptr || c.L.Const(r) == nullptr || (b >= 0 && c.L.Const(b) == nullptr)) {
    return c.Fail("W, R and B must be constants (initializers)");
  }
  Dims xd = c.L.Dims_(x);
  if (c.L.validate() && !xd.empty()) {  // In() guessed an unknown leading (sequence) dim
    const ValueInfo* vi = c.L.graph().FindValueInfo(c.n.inputs[0]);
    if (vi != nullptr && vi->shape.rank_known() && vi->shape.dims()[0] < 0) xd[0] = -1;
  }
  KILN_ASSIGN_OR_RETURN(RnnParams p, LowerRnnParams(c.n, c.a, xd, *c.L.Const(w), *c.L.Const(r),
                                                    c.L.Const(b), lens >= 0, c.L.Const(lens),
                                                    peepholes));
  Layer l;
  l.kind = LayerKind::kRnn;
  l.ints = std::move(p.ints);
  l.inputs = {x, c.L.AddConst(c.n.name + "/w_layer", std::move(p.w_layer)),
              c.L.AddConst(c.n.name + "/w_iter", std::move(p.w_iter)),
              c.L.AddConst(c.n.name + "/bias", std::move(p.bias)), h0, c0};
  // Every output gets a tensor (unused ones an internal name): the primitive writes them all.
  std::vector<std::string> outs;
  for (size_t i = 0; i < (lstm ? 3u : 2u); ++i) {
    const bool used = i < c.n.outputs.size() && !c.n.outputs[i].empty();
    outs.push_back(used ? c.n.outputs[i] : c.n.name + "/unused_output_" + std::to_string(i));
  }
  return c.L.Emit(c.n, std::move(l), outs);
}

using LowerFn = std::function<Status(const OpCtx&)>;

const std::map<std::string, LowerFn>& LowerTable() {
  static const auto* table = new std::map<std::string, LowerFn>{
      {"Conv", LowerConv},
      {"ConvTranspose", LowerConv},
      {"MatMul", LowerMatMul},
      {"Gemm", LowerGemm},
      {"Relu", LowerEltwise},
      {"LeakyRelu", LowerEltwise},
      {"Elu", LowerEltwise},
      {"Selu", LowerEltwise},
      {"Sigmoid", LowerEltwise},
      {"Tanh", LowerEltwise},
      {"Clip", LowerEltwise},
      {"HardSigmoid", LowerEltwise},
      {"HardSwish", LowerEltwise},
      {"Gelu", LowerEltwise},
      {"Softplus", LowerEltwise},
      {"Mish", LowerEltwise},
      {"Exp", LowerEltwise},
      {"Log", LowerEltwise},
      {"Sqrt", LowerEltwise},
      {"Erf", LowerEltwise},
      {"Abs", LowerEltwise},
      {"Neg", LowerEltwise},
      {"Reciprocal", LowerEltwise},
      {"PRelu", LowerPRelu},
      {"Add", LowerBinary},
      {"Sub", LowerBinary},
      {"Mul", LowerBinary},
      {"Div", LowerBinary},
      {"Max", LowerBinary},
      {"Min", LowerBinary},
      {"MaxPool", LowerPool},
      {"AveragePool", LowerPool},
      {"GlobalAveragePool", LowerPool},
      {"GlobalMaxPool", LowerPool},
      {"Softmax", LowerSoftmax},
      {"LogSoftmax", LowerSoftmax},
      {"LayerNormalization", LowerLayerNorm},
      {"BatchNormalization", LowerBatchNorm},
      {"Concat", LowerConcat},
      {"Transpose", LowerTranspose},
      {"Reshape", LowerView},
      {"Flatten", LowerView},
      {"Squeeze", LowerView},
      {"Unsqueeze", LowerView},
      {"Identity", LowerView},
      {"Dropout", LowerView},
      {"Resize", LowerResize},
      {"Upsample", LowerResize},
      {"ReduceSum", LowerReduce},
      {"ReduceMean", LowerReduce},
      {"ReduceMax", LowerReduce},
      {"ReduceMin", LowerReduce},
      {"ReduceProd", LowerReduce},
      {"LSTM", LowerRnn},
      {"GRU", LowerRnn},
      {"RNN", LowerRnn},
  };
  return *table;
}

// Lowers one node; reasons carry no node name (see OpCtx::Fail).
Status LowerNode(Lowerer& L, const Node& n) {
  if (!n.domain.empty() && n.domain != "ai.onnx") {
    return Unimplemented("domain '" + n.domain + "' is not supported");
  }
  auto it = LowerTable().find(n.op_type);
  if (it == LowerTable().end()) {
    return Unimplemented("op " + n.op_type + " is not supported by the CPU engine");
  }
  const OpSchema* schema = OpRegistry::Global().Find("", n.op_type);
  if (schema == nullptr) return Unimplemented("no schema");
  Status checked = schema->CheckNode(n);
  if (!checked.ok()) {  // its messages start with the node's Describe()
    std::string m = checked.message();
    const std::string who = n.Describe();
    if (m.compare(0, who.size(), who) == 0) m.erase(0, who.size());
    if (m.compare(0, 2, ": ") == 0 || m.compare(0, 1, " ") == 0) m.erase(0, m[0] == ':' ? 2 : 1);
    return Status(checked.code(), m);
  }
  const bool rnn = n.op_type == "LSTM" || n.op_type == "GRU" || n.op_type == "RNN";  // Y optional
  if (n.outputs.empty() || (n.outputs[0].empty() && !rnn)) return Unimplemented("no output");
  AttrReader a(n, *schema);
  return it->second(OpCtx{L, n, a});
}

// FP16 and BF16 modes build (each layer in the fastest allowed precision with a kernel here,
// precision.h); INT8 mode too: conv / matmul layers with a calibrated input range run in INT8
// (layers_int8.cc), the others as in the floating modes. Lowering itself is the same.
Status CheckPrecision(const BuildConfig& config) {
  (void)config;
  return Status::OK();
}

}  // namespace

StatusOr<Program> LowerSegment(const Graph& segment, const BuildConfig& config) {
  KILN_RETURN_IF_ERROR(CheckPrecision(config));
  Lowerer L(segment, config, /*validate=*/false);
  if (config.input_shapes.size() != segment.inputs.size()) {
    return InvalidArgument("BuildConfig has " + std::to_string(config.input_shapes.size()) +
                           " input shapes, the segment has " +
                           std::to_string(segment.inputs.size()) + " inputs");
  }
  for (size_t i = 0; i < segment.inputs.size(); ++i) {
    const std::string& name = segment.inputs[i];
    const ValueInfo* vi = segment.FindValueInfo(name);
    const DataType dt = vi ? vi->dtype : DataType::kUndefined;
    if (dt != DataType::kFloat32) {
      return Unimplemented("segment input '" + name + "' has dtype " + DataTypeName(dt) +
                           " (only float32 is supported)");
    }
    const Dims& d = config.input_shapes[i];
    if (d.empty()) return Unimplemented("segment input '" + name + "' is a scalar");
    for (int64_t v : d) {
      if (v <= 0)
        return InvalidArgument("input shape " + DimsToString(d) + " of '" + name +
                               "' has an unknown or zero dimension");
    }
    const int id = L.AddTensor(name, d);
    L.SetDType(id, DataType::kFloat32);
    L.Bind(name, id);
    L.prog().inputs.push_back(id);
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int> order, segment.TopologicalOrder());
  for (int i : order) {
    const Status s = LowerNode(L, segment.nodes[i]);
    if (!s.ok()) return Status(s.code(), segment.nodes[i].Describe() + ": " + s.message());
  }
  for (const std::string& out : segment.outputs) {
    Node fake;
    fake.name = "output";
    fake.inputs = {out};
    KILN_ASSIGN_OR_RETURN(int id, L.In(fake, 0));
    if (id < 0 || L.Const(id) != nullptr) {
      return Unimplemented("segment output '" + out + "' is a constant");
    }
    L.prog().outputs.push_back(id);
  }
  Program p = std::move(L.prog());
  p.Compact();  // drops constants only lowering read (shapes, axes, scales)
  KILN_RETURN_IF_ERROR(ValidateProgram(p));
  return p;
}

namespace {

// Erf is taken only inside a complete exact-GELU pattern. Supports sees one node, so the Erf's
// neighbourhood in `graph` (the op scaling its input, the Add / Sub / Mul / Div ops following it
// through single consumers, and the scalar Mul / Div of x feeding those) is lowered and fused
// exactly as Build does it; the Erf must end up inside an eltwise_gelu_erf. A segment that
// still cuts the pattern apart fails in Build (CheckFused) and stays native.
Status SupportErf(const Node& erf, const Graph& g, const BuildConfig& config) {
  const std::string why =
      "Erf is only supported inside an exact GELU x * 0.5 * (1 + Erf(x / sqrt(2)))";
  const auto producer = g.ProducerIndex();
  std::map<std::string, std::vector<int>> consumers;
  int self = -1;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].name == erf.name) self = static_cast<int>(i);
    for (const std::string& v : g.nodes[i].inputs) {
      if (!v.empty()) consumers[v].push_back(static_cast<int>(i));
    }
  }
  auto is_output = [&](const std::string& v) {
    return std::find(g.outputs.begin(), g.outputs.end(), v) != g.outputs.end();
  };
  auto prod = [&](const std::string& v) {
    auto it = producer.find(v);
    return it == producer.end() ? -1 : it->second;
  };
  if (self < 0 || erf.inputs.empty() || erf.outputs.empty()) return Unimplemented(why);
  const int pre = prod(erf.inputs[0]);
  if (pre < 0 || (g.nodes[pre].op_type != "Div" && g.nodes[pre].op_type != "Mul")) {
    return Unimplemented(why + " (its input is not x / sqrt(2))");
  }
  std::set<int> take = {pre, self};
  std::set<std::string> xs;  // candidates for x: pre's non-constant inputs
  for (const std::string& v : g.nodes[pre].inputs) {
    if (!v.empty() && !g.IsInitializer(v)) xs.insert(v);
  }
  static const std::set<std::string> kFollow = {"Add", "Sub", "Mul", "Div"};
  int cur = self;
  for (int step = 0; step < 4; ++step) {
    const std::string& out = g.nodes[cur].outputs[0];
    const auto it = consumers.find(out);
    if (it == consumers.end() || it->second.size() != 1 || is_output(out)) break;
    const int next = it->second[0];
    if (!kFollow.count(g.nodes[next].op_type)) break;
    take.insert(next);
    for (const std::string& v : g.nodes[next].inputs) {  // x * 0.5 feeding the product
      const int q = prod(v);
      if (v == out || q < 0 || take.count(q)) continue;
      const Node& qn = g.nodes[q];
      if ((qn.op_type == "Mul" || qn.op_type == "Div") &&
          std::any_of(qn.inputs.begin(), qn.inputs.end(),
                      [&](const std::string& in) { return xs.count(in) > 0; })) {
        take.insert(q);
      }
    }
    cur = next;
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int> order, g.TopologicalOrder());
  Lowerer L(g, config, /*validate=*/true);
  for (int i : order) {
    if (!take.count(i)) continue;
    const Status s = LowerNode(L, g.nodes[i]);
    if (!s.ok()) return Unimplemented(why + " (" + g.nodes[i].Describe() + ": " + s.message() + ")");
  }
  // Values read outside the neighbourhood stay program outputs (fusion must keep them).
  for (int i : take) {
    for (const std::string& v : g.nodes[i].outputs) {
      if (v.empty()) continue;
      bool outside = is_output(v);
      for (int c : consumers[v]) outside = outside || !take.count(c);
      if (!outside) continue;
      Node fake;
      fake.name = "output";
      fake.inputs = {v};
      KILN_ASSIGN_OR_RETURN(int id, L.In(fake, 0));
      L.prog().outputs.push_back(id);
    }
  }
  const bool known = L.all_known();
  Program p = std::move(L.prog());
  FuseProgram(&p);
  if (!CheckFused(p).ok()) return Unimplemented(why);
  if (!known) return Status::OK();
  BuildConfig probe = config;
  probe.max_workspace_size_bytes = std::numeric_limits<int64_t>::max();
  Status s = ProbeProgram(p, probe);
  if (!s.ok()) return Unimplemented(s.message());
  return Status::OK();
}

}  // namespace

Status LowerNodeForSupport(const Node& node, const Graph& graph, const BuildConfig& config) {
  KILN_RETURN_IF_ERROR(CheckPrecision(config));
  if (node.op_type == "Erf" && (node.domain.empty() || node.domain == "ai.onnx")) {
    return SupportErf(node, graph, config);
  }
  Lowerer L(graph, config, /*validate=*/true);
  KILN_RETURN_IF_ERROR(LowerNode(L, node));
  for (const TensorDef& t : L.prog().tensors) {
    if (!t.is_const && !t.dims.empty() && t.dims.size() > 12) {
      return Unimplemented("rank above 12");
    }
  }
  if (!L.all_known()) return Status::OK();
  // Shapes known: build the node's layer through oneDNN so "supported" means "builds".
  Program& p = L.prog();
  for (const Layer& l : p.layers) {
    for (int t : l.outputs) p.outputs.push_back(t);
  }
  BuildConfig probe = config;
  probe.max_workspace_size_bytes = std::numeric_limits<int64_t>::max();
  Status s = ProbeProgram(p, probe);
  if (!s.ok()) return Unimplemented(s.message());
  return Status::OK();
}

}  // namespace kiln::cpu
