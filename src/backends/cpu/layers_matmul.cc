// MatMul / Gemm layers: oneDNN matmul. A constant 2-D B is the weights operand (layout chosen by
// oneDNN, reordered once); a variable B and every A are read through strided views of their
// buffers, so transposes (Gemm transA/transB, a Transpose view) and split outputs of merged
// siblings cost no copy. With a constant B and a dense A, leading dims collapse into M (one 2-D
// GEMM instead of a batch of them).
#include <numeric>

#include "backends/cpu/layers.h"

namespace kiln::cpu {
namespace {

memory::dims StridesOf(const memory::desc& md) {
  const auto& s = md.data.format_desc.blocking.strides;
  return memory::dims(s, s + md.data.ndims);
}

bool IsStrided(const memory::desc& md) {
  return md.data.format_kind == dnnl_blocked && md.data.format_desc.blocking.inner_nblks == 0;
}

// `md` (strided) re-described with new dims and strides, keeping its offset.
memory::desc Restride(const memory::desc& md, const Dims& dims, const Dims& strides) {
  memory::desc out(memory::dims(dims.begin(), dims.end()), md.data_type(),
                   memory::dims(strides.begin(), strides.end()));
  out.data.offset0 = md.data.offset0;
  return out;
}

// Dims and strides of a strided tensor as an [..., rows, cols] operand of rank `rank`:
// 1-D operands get a unit dim (`vec_is_row`: [1,K], else [K,1]), `trans` swaps the last two.
void Operand(const Dims& d0, const memory::dims& s0, int rank, bool vec_is_row, bool trans,
             Dims* dims, Dims* strides) {
  Dims d = d0, s(s0.begin(), s0.end());
  if (d.size() == 1) {
    if (vec_is_row) {
      d.insert(d.begin(), 1);
      s.insert(s.begin(), d[1] * s[0]);
    } else {
      d.push_back(1);
      s.push_back(1);
    }
  }
  if (trans) {
    std::swap(d[d.size() - 1], d[d.size() - 2]);
    std::swap(s[s.size() - 1], s[s.size() - 2]);
  }
  while (static_cast<int>(d.size()) < rank) {
    s.insert(s.begin(), d[0] * s[0]);
    d.insert(d.begin(), 1);
  }
  *dims = d;
  *strides = s;
}

}  // namespace

Status BuildMatMul(Builder& b) {
  const Layer& l = b.L();
  const int a = l.inputs[0], w = l.inputs[1];
  const int bias = l.inputs.size() > 2 ? l.inputs[2] : -1;
  const bool ta = l.Int("trans_a") != 0, tb = l.Int("trans_b") != 0;
  const Dims& ad = b.dims[a];
  const Dims& bd = b.dims[w];
  const bool const_b = b.IsConst(w) && bd.size() == 2 && !tb;
  const std::vector<int64_t>& split = l.Ints("split");

  // A: its own strided layout when it has one in the layer's data type, else plain (a reorder,
  // converting the type at a precision boundary).
  const bool a_current = b.MdOf(a).data_type() == b.dt && IsStrided(b.MdOf(a));
  KILN_ASSIGN_OR_RETURN(const int a_buf, a_current ? StatusOr<int>(b.BufferOf(a))
                                                   : b.As(a, Builder::Plain(ad, b.dt)));
  const memory::desc a_md0 = a_current ? b.MdOf(a) : Builder::Plain(ad, b.dt);
  const int rank = static_cast<int>(std::max<size_t>({ad.size(), bd.size(), 2}));
  Dims a_dims, a_strides, b_dims, b_strides;
  Operand(ad, StridesOf(a_md0), rank, true, ta, &a_dims, &a_strides);
  const memory::desc b_plain = Builder::Plain(bd, b.dt);
  Operand(bd, StridesOf(b_plain), rank, false, tb, &b_dims, &b_strides);
  Dims dst_dims(rank);
  for (int i = 0; i < rank - 2; ++i) dst_dims[i] = std::max(a_dims[i], b_dims[i]);
  dst_dims[rank - 2] = a_dims[rank - 2];
  dst_dims[rank - 1] = b_dims[rank - 1];
  // Collapse leading dims of a dense A against a 2-D constant B. The plain dst [..., M, N] is
  // then the same buffer as a plain [M', N]; a sum post-op's residual is copied into that buffer
  // in the output's plain layout (DefineDst), and a binary operand is read through the same
  // [M', N'] view of its plain buffer (MakePostOps), which is only right when its leading dims
  // (padded to the output's rank) are all 1 or all the output's.
  bool collapse = const_b && rank > 2 && a_md0 == Builder::Plain(ad, b.dt) && !ta;
  for (const PostOp& po : l.post_ops) {
    if (po.kind == PostOp::kPRelu) collapse = false;
    if (po.kind != PostOp::kBinary || !collapse) continue;
    Dims od = b.dims[po.tensor];
    if (od.size() > dst_dims.size()) {
      collapse = false;
      continue;
    }
    od.insert(od.begin(), dst_dims.size() - od.size(), 1);
    bool ones = true, full = true;
    for (int i = 0; i < rank - 1; ++i) {
      ones = ones && od[i] == 1;
      full = full && od[i] == dst_dims[i];
    }
    collapse = ones || full;
  }
  if (collapse) {
    const int64_t m = std::accumulate(dst_dims.begin(), dst_dims.end() - 1, int64_t{1},
                                      std::multiplies<int64_t>());
    a_dims = {m, a_dims.back()};
    a_strides = {a_dims[1], 1};
    b_dims = {b_dims[rank - 2], b_dims[rank - 1]};
    dst_dims = {m, b_dims[1]};
  }
  const int prank = static_cast<int>(dst_dims.size());
  const memory::desc a_md = Restride(a_md0, a_dims, a_strides);
  const memory::data_type dst_dt = b.DstType();
  const memory::desc dst_md = Builder::Plain(dst_dims, dst_dt);

  std::vector<StepArg> args;
  int sum_tensor = -1;
  const Dims& out0 = b.dims[l.outputs[0]];
  const bool same_rank = static_cast<int>(out0.size()) == prank || split.size() > 1;
  if (!same_rank && !collapse) {
    for (const PostOp& po : l.post_ops) {
      if (po.kind != PostOp::kEltwise) return Unimplemented("post-op operand on a reshaped matmul");
    }
  }
  KILN_ASSIGN_OR_RETURN(dnnl::post_ops ops, MakePostOps(b, dst_md, {}, &args, &sum_tensor));
  dnnl::primitive_attr attr = ScratchAttr();
  attr.set_post_ops(ops);
  memory::desc bias_md;
  if (bias >= 0) {
    Dims bdims(prank, 1);
    bdims.back() = dst_dims.back();
    bias_md = Builder::Plain(bdims);
  }
  memory::desc w_md;
  if (const_b) {
    w_md = memory::desc(memory::dims(b_dims.begin(), b_dims.end()), b.dt, memory::format_tag::any);
  } else {
    w_md = Restride(b_plain, b_dims, b_strides);
  }
  dnnl::matmul::desc d = bias >= 0 ? dnnl::matmul::desc(a_md, w_md, bias_md, dst_md)
                                   : dnnl::matmul::desc(a_md, w_md, dst_md);
  dnnl::matmul::primitive_desc pd(d, attr, b.eng);
  KILN_RETURN_IF_ERROR(b.Choose(pd));
  args.push_back({DNNL_ARG_SRC, a_md, a_buf});
  if (const_b) {
    // The constant's own f32 data, converted once into the primitive's layout and type.
    const memory::desc src = Restride(Builder::Plain(bd), b_dims, {b_dims[1], 1});
    KILN_ASSIGN_OR_RETURN(int wb, b.Weights(1, w, src, pd.weights_desc()));
    args.push_back({DNNL_ARG_WEIGHTS, pd.weights_desc(), wb});
  } else {
    KILN_ASSIGN_OR_RETURN(int wb, b.As(w, b_plain));
    args.push_back({DNNL_ARG_WEIGHTS, w_md, wb});
  }
  if (bias >= 0) {
    KILN_ASSIGN_OR_RETURN(int bb, b.Weights(2, bias, bias_md, pd.bias_desc()));
    args.push_back({DNNL_ARG_BIAS, pd.bias_desc(), bb});
  }
  int dst_buf;
  if (split.empty()) {
    KILN_ASSIGN_OR_RETURN(
        dst_buf, DefineDst(b, l.outputs[0], Builder::Plain(out0, dst_dt), sum_tensor, args));
  } else {
    // Each sibling's output is a column range of the merged [..., N] result.
    dst_buf = b.NewBuffer(dst_md.get_size());
    const memory::desc full = Builder::Plain(dst_dims, dst_dt);
    int64_t off = 0;
    for (size_t i = 0; i < split.size(); ++i) {
      memory::dims sd(dst_dims.begin(), dst_dims.end()), so(dst_dims.size(), 0);
      sd.back() = split[i];
      so.back() = off;
      off += split[i];
      memory::desc view = full.submemory_desc(sd, so);
      const Dims& od = b.dims[l.outputs[i]];
      if (static_cast<int>(od.size()) != prank) {  // collapsed: restore the leading dims
        Dims st(od.size(), 1);
        st[od.size() - 1] = 1;
        for (int k = static_cast<int>(od.size()) - 2; k >= 0; --k) {
          st[k] = st[k + 1] * (k == static_cast<int>(od.size()) - 2 ? dst_dims.back() : od[k + 1]);
        }
        view = Restride(view, od, st);
      }
      b.Define(l.outputs[i], view, dst_buf);
    }
  }
  args.push_back({DNNL_ARG_DST, dst_md, dst_buf});
  b.AddStep(dnnl::primitive(pd), pd, std::move(args));
  return Status::OK();
}

}  // namespace kiln::cpu
