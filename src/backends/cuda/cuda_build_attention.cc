// The CUDA engine Builder's fused attention (attention.h; cuda_internal.h): the layer chain
//   MatMul(Q, K^T) [* scale] [+ mask] -> Softmax(last axis) -> MatMul(P, V) [-> Transpose 0,2,1,3]
// of a BERT-style encoder becomes one kernel when the storage type is FP16 / BF16. Q, K and V
// are read where they lie (a pending head-split Transpose is only a set of strides), the
// scores never reach global memory, and when the context feeds the usual [B, S, H, D]
// transpose the kernel writes that layout directly. Anything else builds layer by layer.
#include <cstdlib>
#include <string>
#include <vector>

#include "backends/cuda/attention.h"
#include "backends/cuda/cuda_internal.h"

namespace kiln::cuda::internal {
namespace {

// KILN_CUDA_FUSED_ATTENTION=0 builds attention layer by layer (for A/B timing, diagnostics).
bool FusedAttentionOn() {
  static const bool on = [] {
    const char* e = std::getenv("KILN_CUDA_FUSED_ATTENTION");
    return e == nullptr || std::string(e) != "0";
  }();
  return on;
}

}  // namespace

StatusOr<bool> Builder::HeadView(int t, View4* v) {
  const Dims& d = dims_[t];
  if (d.size() != 4 || p_.tensors[t].is_const) return false;
  int src = t;
  std::vector<int64_t> perm = {0, 1, 2, 3};
  if (ts_[t].buf < 0 && ts_[t].stage >= 0) {  // an engine input: cast it (plain) now
    KILN_RETURN_IF_ERROR(StagedInput(t, false).status());
  }
  if (ts_[t].buf < 0 && ts_[t].pending_src >= 0) {
    src = ts_[t].pending_src;
    perm = ts_[t].pending_perm;
    if (perm.size() != 4 || p_.tensors[src].is_const) return false;
    if (ts_[src].buf < 0 && ts_[src].stage >= 0) {
      KILN_RETURN_IF_ERROR(StagedInput(src, false).status());
    }
    if (ts_[src].buf < 0) return false;
  } else if (ts_[t].buf < 0) {
    return false;
  }
  if (ts_[src].nhwc && !SameAsPlain(dims_[src])) return false;
  const Dims ss = Contiguous(dims_[src]);
  for (int i = 0; i < 4; ++i) v->strides[i] = ss[perm[i]];
  KILN_ASSIGN_OR_RETURN(v->buf, BufOf(src));
  return true;
}

StatusOr<bool> Builder::Attention() {
  const DType ty = dt();
  const size_t i0 = static_cast<size_t>(layer_);
  if (!FusedAttentionOn() || (ty != DType::kF16 && ty != DType::kBF16) ||
      i0 + 2 >= p_.layers.size()) {
    return false;
  }
  AttentionMatch m;  // the layer chain (lowering.h), shared with the CPU engine
  if (!MatchAttention(p_, dims_, i0, &m)) return false;
  const Layer& l0 = p_.layers[i0];
  const Layer& l2 = p_.layers[i0 + 2];
  const std::vector<int> uses = p_.UseCounts();
  const float scale = m.scale;
  const int mask_t = m.mask;
  const bool k_is_kt = m.k_is_kt;
  const int64_t B = m.batch, H = m.heads, Sq = m.sq, Sk = m.sk, D = m.d;
  if (!AttentionSupported(ty, D) || B > 65535 || H > 65535 || Sq > (int64_t{1} << 30) ||
      Sk > (int64_t{1} << 30)) {
    return false;
  }
  // The mask broadcasts onto the scores [B, H, Sq, Sk] (element strides, 0 where it
  // broadcasts, from the element-wise chains' operand rule).
  Operand mask_op;
  if (mask_t >= 0) {
    StatusOr<Operand> mo = MakeOperand(mask_t, {B, H, Sq, Sk}, false);
    if (!mo.ok()) return false;
    mask_op = *mo;
  }
  // Q, K, V views: unit stride along the head dim.
  View4 qv, kv, vv;
  KILN_ASSIGN_OR_RETURN(bool okq, HeadView(l0.inputs[0], &qv));
  KILN_ASSIGN_OR_RETURN(bool okk, HeadView(l0.inputs[1], &kv));
  KILN_ASSIGN_OR_RETURN(bool okv, HeadView(l2.inputs[1], &vv));
  if (!okq || !okk || !okv) return false;
  int64_t ks[4];  // K as [b, h, sk, d]
  if (k_is_kt) {
    ks[0] = kv.strides[0];
    ks[1] = kv.strides[1];
    ks[2] = kv.strides[3];
    ks[3] = kv.strides[2];
  } else {
    for (int i = 0; i < 4; ++i) ks[i] = kv.strides[i];
  }
  auto rows_ok = [](const int64_t* s) {
    return s[3] == 1 && s[0] % 8 == 0 && s[1] % 8 == 0 && s[2] % 8 == 0;
  };
  if (!rows_ok(qv.strides) || !rows_ok(ks) || !rows_ok(vv.strides)) return false;
  int mask_b = -1;
  if (mask_t >= 0) {
    KILN_ASSIGN_OR_RETURN(mask_b, BufOf(mask_t));  // in its own layout: the strides say how
  }
  // Output: the [B, S, H, D] transpose that follows (written directly), or the plain context.
  const int o_t = l2.outputs[0];
  int out_t = o_t;
  int64_t os[3] = {H * Sq * D, Sq * D, D};
  bool into_transpose = false;
  if (i0 + 3 < p_.layers.size() && uses[o_t] == 1) {
    const Layer& l3 = p_.layers[i0 + 3];
    if (l3.kind == LayerKind::kTranspose && l3.inputs[0] == o_t && l3.post_ops.empty() &&
        l3.Ints("perm") == std::vector<int64_t>{0, 2, 1, 3}) {
      into_transpose = true;
      out_t = l3.outputs[0];
      os[0] = Sq * H * D;
      os[1] = D;
      os[2] = H * D;
    }
  }
  KILN_RETURN_IF_ERROR(CudaStatus(AttentionPrepare(ty, D), "fused attention set-up"));
  const int ob = NewBuf(Bytes(out_t));
  Define(out_t, ob, false);
  AttentionArgs args;
  args.b = static_cast<int>(B);
  args.h = static_cast<int>(H);
  args.sq = static_cast<int>(Sq);
  args.sk = static_cast<int>(Sk);
  args.d = D;
  args.scale = scale;
  for (int i = 0; i < 3; ++i) {
    args.qs[i] = qv.strides[i];
    args.ks[i] = ks[i];
    args.vs[i] = vv.strides[i];
    args.os[i] = os[i];
  }
  for (int i = 0; i < 4; ++i) args.ms[i] = mask_op.strides[i];
  const int qb = qv.buf, kb = kv.buf, vb = vv.buf;
  AddStep([=](const RunCtx& r) {
    AttentionArgs a = args;
    a.q = r.P(qb);
    a.k = r.P(kb);
    a.v = r.P(vb);
    a.mask = mask_b >= 0 ? r.P(mask_b) : nullptr;
    a.o = r.P(ob);
    return CudaStatus(cuda::Attention(ty, a, r.c->stream), "fused attention kernel");
  });
  const int last = static_cast<int>(i0) + (into_transpose ? 3 : 2);
  out_->impl[i0] = std::string("kiln:attention(") + (mask_t >= 0 ? "mask," : "") +
                   "d=" + std::to_string(D) + ", with the next " +
                   std::to_string(last - static_cast<int>(i0)) + " layers)";
  for (int j = static_cast<int>(i0) + 1; j <= last; ++j) {
    out_->impl[j] =
        "kiln:attention (fused into '" + (l0.nodes.empty() ? l0.op : l0.nodes.front()) + "')";
    fused_into_[j] = static_cast<int>(i0);
  }
  return true;
}

}  // namespace kiln::cuda::internal
