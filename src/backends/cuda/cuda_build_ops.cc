// The CUDA engine Builder's lowerings to kiln's own kernels (kernels.h; cuda_internal.h):
// element-wise, binary and PReLU chains, softmax, layer norm, batch norm (folded into a chain),
// transpose (a strided copy at the consumer, CopyPermuted), views and concat.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "backends/cuda/cuda_internal.h"

namespace kiln::cuda::internal {

Status Builder::Eltwise() {
  const Layer& l = L();
  const int x = l.inputs[0];
  KILN_ASSIGN_OR_RETURN(int xb, BufOf(x));
  const bool nhwc = NhwcOf(x);
  const int yb = NewBuf(Bytes(l.outputs[0]));
  Define(l.outputs[0], yb, nhwc);
  out_->impl[layer_] = "kiln:chain";
  return ChainStep(yb, dims_[l.outputs[0]], nhwc, 0, xb);
}

Status Builder::Binary() {
  const Layer& l = L();
  const int x = l.inputs[0];
  if (p_.tensors[x].is_const) return Unimplemented("constant first operand");
  KILN_ASSIGN_OR_RETURN(int xb, BufOf(x));
  const bool nhwc = NhwcOf(x);
  const Dims& y = dims_[l.outputs[0]];
  if (y != dims_[x]) return Unimplemented("the first operand broadcasts");
  EltMap m = MapBin(static_cast<int32_t>(l.Int("alg")));
  if (!m.ok) return Unimplemented("binary algorithm");
  const int u = l.inputs[1];
  const bool same = NhwcOf(u) && nhwc && dims_[u] == y;
  int ub;
  if (same) {
    KILN_ASSIGN_OR_RETURN(ub, BufOf(u));
  } else {
    KILN_ASSIGN_OR_RETURN(ub, Plain(u));
  }
  ChainOp op;
  op.kind = 1;
  op.alg = m.alg;
  KILN_ASSIGN_OR_RETURN(op.operand, MakeOperandRaw(ub, dims_[u], same, y, nhwc));
  op.operand.ptr = nullptr;
  const int yb = NewBuf(Bytes(l.outputs[0]));
  Define(l.outputs[0], yb, nhwc);
  out_->impl[layer_] = "kiln:chain";
  // The operand pointer is resolved per call: wrap as a one-op pre-chain with a late pointer.
  return LateOperandChain(op, xb, ub, yb, y, nhwc, "binary kernel");
}

Status Builder::LateOperandChain(const ChainOp& op, int xb, int ub, int yb, const Dims& y,
                                 bool nhwc, const char* what) {
  Chain c;
  const std::vector<int> perm = PhysPerm(y.size(), nhwc);
  c.rank = static_cast<int>(y.size());
  for (int k = 0; k < c.rank; ++k) c.dims[k] = y[perm[k]];
  c.ops[0] = op;
  c.n = 1;
  const int64_t n = Elements(y);
  const DType ty = dt();
  AddStep([=](const RunCtx& r) {
    Chain cc = c;
    cc.ops[0].operand.ptr = r.P(ub);
    return CudaStatus(RunChain(ty, r.P(xb), r.P(yb), n, cc, r.c->stream), what);
  });
  return ChainStep(yb, y, nhwc, 0);
}

Status Builder::PRelu() {
  const Layer& l = L();
  const int x = l.inputs[0], u = l.inputs[1];
  KILN_ASSIGN_OR_RETURN(int xb, Plain(x));
  KILN_ASSIGN_OR_RETURN(int ub, Plain(u));
  const Dims& y = dims_[l.outputs[0]];
  ChainOp op;
  op.kind = 2;
  KILN_ASSIGN_OR_RETURN(op.operand, MakeOperandRaw(ub, dims_[u], false, y, false));
  const int yb = NewBuf(Bytes(l.outputs[0]));
  Define(l.outputs[0], yb, false);
  out_->impl[layer_] = "kiln:chain";
  return LateOperandChain(op, xb, ub, yb, y, false, "prelu kernel");
}

Status Builder::Softmax() {
  const Layer& l = L();
  const Dims& x = dims_[l.inputs[0]];
  int64_t axis = l.Int("axis");
  if (axis < 0) axis += static_cast<int64_t>(x.size());
  if (axis < 0 || axis >= static_cast<int64_t>(x.size())) return Unimplemented("softmax axis");
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x[i];
  for (size_t i = axis + 1; i < x.size(); ++i) inner *= x[i];
  const int64_t len = x[axis];
  KILN_ASSIGN_OR_RETURN(int xb, Plain(l.inputs[0]));
  const int yb = NewBuf(Bytes(l.outputs[0]));
  Define(l.outputs[0], yb, false);
  const bool log = l.Int("log") != 0;
  const DType ty = dt();
  out_->impl[layer_] = inner == 1 ? "kiln:softmax_rows" : "kiln:softmax_strided";
  AddStep([=](const RunCtx& r) {
    return CudaStatus(cuda::Softmax(ty, r.P(xb), r.P(yb), outer, len, inner, log, r.c->stream),
                      "softmax kernel");
  });
  return ChainStep(yb, dims_[l.outputs[0]], false, 0);
}

Status Builder::LayerNormL() {
  const Layer& l = L();
  const Dims& x = dims_[l.inputs[0]];
  int64_t axis = l.Int("axis");
  if (axis < 0) axis += static_cast<int64_t>(x.size());
  if (axis < 0 || axis >= static_cast<int64_t>(x.size())) return Unimplemented("layer norm axis");
  int64_t rows = 1, cols = 1;
  for (int64_t i = 0; i < axis; ++i) rows *= x[i];
  for (size_t i = axis; i < x.size(); ++i) cols *= x[i];
  const int s = l.inputs[1];
  const int b = l.inputs.size() > 2 ? l.inputs[2] : -1;
  if (Elements(dims_[s]) != cols || (b >= 0 && Elements(dims_[b]) != cols)) {
    return Unimplemented("layer norm scale / bias that broadcast");
  }
  KILN_ASSIGN_OR_RETURN(int xb, Plain(l.inputs[0]));
  KILN_ASSIGN_OR_RETURN(int sb, Plain(s));
  int bb = -1;
  if (b >= 0) {
    KILN_ASSIGN_OR_RETURN(bb, Plain(b));
  }
  const int yb = NewBuf(Bytes(l.outputs[0]));
  Define(l.outputs[0], yb, false);
  const float eps = l.Float("eps");
  const DType ty = dt();
  out_->impl[layer_] = "kiln:layernorm_rows";
  AddStep([=](const RunCtx& r) {
    return CudaStatus(cuda::LayerNorm(ty, r.P(xb), r.P(sb), bb >= 0 ? r.P(bb) : nullptr, r.P(yb),
                                      rows, cols, eps, r.c->stream),
                      "layer norm kernel");
  });
  return ChainStep(yb, dims_[l.outputs[0]], false, 0);
}

Status Builder::BatchNorm() {
  const Layer& l = L();
  if (l.Int("nhwc") != 0) return Unimplemented("channels-last batch norm");
  const Dims& x = dims_[l.inputs[0]];
  if (x.size() < 2) return Unimplemented("batch norm rank");
  for (int i = 1; i <= 4; ++i) {
    if (!p_.tensors[l.inputs[i]].is_const) return Unimplemented("non-constant batch norm params");
  }
  const int64_t C = x[1];
  const float* sc = p_.tensors[l.inputs[1]].value.data<float>();
  const float* bi = p_.tensors[l.inputs[2]].value.data<float>();
  const float* mn = p_.tensors[l.inputs[3]].value.data<float>();
  const float* vr = p_.tensors[l.inputs[4]].value.data<float>();
  const float eps = l.Float("eps");
  std::vector<float> a(C), c(C);
  for (int64_t i = 0; i < C; ++i) {
    a[i] = sc[i] / std::sqrt(vr[i] + eps);
    c[i] = bi[i] - mn[i] * a[i];
  }
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> da, Upload(a.data(), C, dt()));
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> dc, Upload(c.data(), C, dt()));
  out_->keep.push_back(da);
  out_->keep.push_back(dc);
  KILN_ASSIGN_OR_RETURN(int xb, BufOf(l.inputs[0]));
  const bool nhwc = NhwcOf(l.inputs[0]);
  Dims cd(x.size(), 1);
  cd[1] = C;
  std::vector<ChainOp> pre(2);
  for (int k = 0; k < 2; ++k) {
    pre[k].kind = 1;
    pre[k].alg = k == 0 ? kMul : kAdd;
    KILN_ASSIGN_OR_RETURN(pre[k].operand, MakeOperandRaw(-1, cd, false, x, nhwc));
    pre[k].operand.ptr = k == 0 ? da.get() : dc.get();
  }
  const int yb = NewBuf(Bytes(l.outputs[0]));
  Define(l.outputs[0], yb, nhwc);
  out_->impl[layer_] = "kiln:chain";
  return ChainStep(yb, x, nhwc, 0, xb, pre);
}

StatusOr<int> Builder::CopyPermuted(int src, const std::vector<int64_t>& perm) {
  const Dims& x = dims_[src];
  if (perm.size() != x.size() || x.size() > static_cast<size_t>(kMaxRank)) {
    return Unimplemented("transpose rank");
  }
  Dims y(x.size());
  for (size_t k = 0; k < x.size(); ++k) y[k] = x[perm[k]];
  KILN_ASSIGN_OR_RETURN(int xb, BufOf(src));
  const Dims xs = LogicalStrides(x, NhwcOf(src));
  const Dims ys = Contiguous(y);
  Strided s;
  s.rank = static_cast<int>(y.size());
  for (size_t k = 0; k < y.size(); ++k) {
    s.dims[k] = y[k];
    s.src[k] = xs[perm[k]];
    s.dst[k] = ys[k];
  }
  const int yb = NewBuf(Elements(y) * SizeOf(dt()));
  const DType ty = dt();
  AddStep([=](const RunCtx& r) {
    return CudaStatus(StridedCopy(ty, r.P(xb), ty, r.P(yb), s, r.c->stream), "transpose kernel");
  });
  return yb;
}

Status Builder::Transpose() {
  const Layer& l = L();
  const std::vector<int64_t>& perm = l.Ints("perm");
  if (perm.size() != dims_[l.inputs[0]].size() || perm.size() > static_cast<size_t>(kMaxRank)) {
    return Unimplemented("transpose rank");
  }
  out_->impl[layer_] = "kiln:strided_copy (at the consumer)";
  const int t = l.outputs[0];
  ts_[t].pending_src = l.inputs[0];
  ts_[t].pending_perm = perm;
  if (l.post_ops.empty()) return Status::OK();
  KILN_ASSIGN_OR_RETURN(int yb, BufOf(t));
  return ChainStep(yb, dims_[t], false, 0);
}

Status Builder::View() {
  const Layer& l = L();
  KILN_ASSIGN_OR_RETURN(int xb, Plain(l.inputs[0]));
  Define(l.outputs[0], xb, false);
  out_->impl[layer_] = "view (no copy)";
  if (!l.post_ops.empty()) return Unimplemented("post-ops on a view");
  return Status::OK();
}

Status Builder::Concat() {
  const Layer& l = L();
  const Dims& y = dims_[l.outputs[0]];
  const int64_t axis = l.Int("axis");
  if (y.size() > static_cast<size_t>(kMaxRank)) return Unimplemented("concat rank");
  const int yb = NewBuf(Bytes(l.outputs[0]));
  const Dims ys = Contiguous(y);
  int64_t off = 0;
  const DType ty = dt();
  for (int in : l.inputs) {
    if (in < 0) continue;
    const Dims& x = dims_[in];
    int xb;
    Dims xs;
    if (p_.tensors[in].is_const) {
      KILN_ASSIGN_OR_RETURN(xb, ConstBuf(in, false));
      xs = Contiguous(x);
    } else {
      KILN_ASSIGN_OR_RETURN(xb, BufOf(in));
      xs = LogicalStrides(x, NhwcOf(in));
    }
    Strided s;
    s.rank = static_cast<int>(x.size());
    for (size_t k = 0; k < x.size(); ++k) {
      s.dims[k] = x[k];
      s.src[k] = xs[k];
      s.dst[k] = ys[k];
    }
    const int64_t o = off * ys[axis];
    AddStep([=](const RunCtx& r) {
      return CudaStatus(StridedCopy(ty, r.P(xb), ty, static_cast<char*>(r.P(yb)) + o * SizeOf(ty),
                                    s, r.c->stream),
                        "concat copy");
    });
    off += x[axis];
  }
  Define(l.outputs[0], yb, false);
  out_->impl[layer_] = "kiln:strided_copy";
  return ChainStep(yb, y, false, 0);
}

}  // namespace kiln::cuda::internal
