// MatMul / Gemm layers: oneDNN matmul. A constant 2-D B is the weights operand (layout chosen by
// oneDNN, reordered once); a variable B and every A are read through strided views of their
// buffers, so transposes (Gemm transA/transB, a Transpose view) and split outputs of merged
// siblings cost no copy. With a constant B and a dense A, leading dims collapse into M (one 2-D
// GEMM instead of a batch of them).
#include <algorithm>
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

// ----------------------------------------------------------------------------- kiln's GEMM

namespace {

// The packed B of gemm_f32.h as a oneDNN layout: [K, N] with N blocked by NR (outermost), zero
// padded to a multiple of NR, so the WeightCache's reorder packs it.
memory::desc GemmPackedWeights(int64_t k, int64_t n, gemm::Tile tile) {
  const int64_t nr = tile.nr();
  memory::desc md({k, n}, memory::data_type::f32, memory::format_tag::ab);
  dnnl_memory_desc_t& d = md.data;
  d.padded_dims[1] = (n + nr - 1) / nr * nr;
  d.format_desc.blocking.inner_nblks = 1;
  d.format_desc.blocking.inner_blks[0] = nr;
  d.format_desc.blocking.inner_idxs[0] = 1;
  d.format_desc.blocking.strides[0] = nr;
  d.format_desc.blocking.strides[1] = k * nr;
  return md;
}

class GemmStep final : public CustomStep {
 public:
  GemmStep(gemm::Problem proto, bool bias) : proto_(std::move(proto)), bias_(bias) {}
  const gemm::Problem& proto() const { return proto_; }
  // The engine's next GEMM (LinkGemmPrefetch): its packed weights and shape.
  void SetNext(const float* b, const gemm::Problem& next) {
    proto_.next_b = b;
    proto_.next_m = next.m;
    proto_.next_n = next.n;
    proto_.next_k = next.k;
    proto_.next_tile = next.tile;
  }
  void Run(const std::unordered_map<int, memory>& args) const override {
    gemm::Problem p = proto_;
    p.a = static_cast<const float*>(args.at(DNNL_ARG_SRC).get_data_handle());
    p.b = static_cast<const float*>(args.at(DNNL_ARG_WEIGHTS).get_data_handle());
    p.c = static_cast<float*>(args.at(DNNL_ARG_DST).get_data_handle());
    p.bias = bias_ ? static_cast<const float*>(args.at(DNNL_ARG_BIAS).get_data_handle()) : nullptr;
    gemm::Run(p);
  }

 private:
  gemm::Problem proto_;
  bool bias_;
};

}  // namespace

bool GemmOps(const Layer& l, std::vector<gemm::Op>* ops, int* sum_tensor) {
  *sum_tensor = -1;
  for (const PostOp& po : l.post_ops) {
    if (po.kind == PostOp::kSum) {
      if (*sum_tensor >= 0) return false;
      *sum_tensor = po.tensor;
      ops->push_back({gemm::OpKind::kSum, 0.f});
      continue;
    }
    if (po.kind != PostOp::kEltwise) return false;
    const auto alg = static_cast<dnnl::algorithm>(po.alg);
    if (alg == dnnl::algorithm::eltwise_relu) {
      ops->push_back({gemm::OpKind::kRelu, po.alpha});
    } else if (alg == dnnl::algorithm::eltwise_gelu_erf) {
      ops->push_back({gemm::OpKind::kGeluErf, 0.f});
    } else if (alg == dnnl::algorithm::eltwise_clip || alg == dnnl::algorithm::eltwise_clip_v2) {
      ops->push_back({gemm::OpKind::kClip, po.alpha, po.beta});
    } else if (alg == dnnl::algorithm::eltwise_bounded_relu) {
      ops->push_back({gemm::OpKind::kClip, 0.f, po.alpha});
    } else {
      return false;
    }
  }
  return static_cast<int>(ops->size()) <= 4;
}

bool GemmFits(const Builder& b, int64_t k, int64_t n, std::vector<gemm::Op>* ops, int* sum_tensor) {
  const Layer& l = b.L();
  // A loaded plan's layer keeps its recorded implementation: kiln's, or oneDNN's.
  const bool recorded_ok = l.impl.empty() || l.impl.rfind("kiln_gemm", 0) == 0;
  ops->clear();
  *sum_tensor = -1;
  return b.dt == memory::data_type::f32 && b.DstType() == memory::data_type::f32 &&
         k * n >= gemm::kMinWeights && recorded_ok && gemm::Available() &&
         GemmOps(l, ops, sum_tensor);
}

void LinkGemmPrefetch(Instance* inst) {
  GemmStep* prev = nullptr;
  for (const Step& s : inst->steps) {
    const auto* g = dynamic_cast<const GemmStep*>(s.custom.get());
    if (g == nullptr) continue;
    const float* w = nullptr;
    for (const StepArg& a : s.args) {
      const BufferDef& buf = inst->buffers[a.buffer];
      if (a.arg == DNNL_ARG_WEIGHTS && buf.where == BufferDef::kConst) {
        w = static_cast<const float*>(buf.data);
      }
    }
    if (prev != nullptr && w != nullptr) prev->SetNext(w, g->proto());
    prev = const_cast<GemmStep*>(g);  // made non-const by AddGemmStep; linked only at build
  }
}

// ----------------------------------------------------------------------------- attention

namespace {

class AttentionStep final : public CustomStep {
 public:
  AttentionStep(gemm::Attention proto, int64_t q_off, int64_t k_off, int64_t v_off)
      : proto_(proto), q_off_(q_off), k_off_(k_off), v_off_(v_off) {}
  void Run(const std::unordered_map<int, memory>& args) const override {
    gemm::Attention a = proto_;
    a.q = static_cast<const float*>(args.at(DNNL_ARG_SRC_0).get_data_handle()) + q_off_;
    a.k = static_cast<const float*>(args.at(DNNL_ARG_SRC_1).get_data_handle()) + k_off_;
    a.v = static_cast<const float*>(args.at(DNNL_ARG_SRC_2).get_data_handle()) + v_off_;
    a.o = static_cast<float*>(args.at(DNNL_ARG_DST).get_data_handle());
    gemm::RunAttention(a);
  }

 private:
  gemm::Attention proto_;
  int64_t q_off_, k_off_, v_off_;
};

// Strides (floats) and offset of an FP32 tensor's strided (non-blocked) layout of rank 4.
bool View4(const Builder& b, int t, int64_t strides[4], int64_t* offset) {
  const memory::desc& md = b.MdOf(t);
  if (md.data_type() != memory::data_type::f32 || !IsStrided(md) || md.data.ndims != 4) {
    return false;
  }
  for (int i = 0; i < 4; ++i) strides[i] = md.data.format_desc.blocking.strides[i];
  *offset = md.data.offset0;
  return true;
}

}  // namespace

bool StartsAttention(const Builder& b, size_t i0, AttentionMatch* match) {
  AttentionMatch m;
  const Layer& l0 = b.prog.layers[i0];
  // No mask, a positive scale (the softmax subtracts the row's max before scaling), and the
  // scores within a thread's scratch. A plan that recorded oneDNN's layers keeps them.
  if (!gemm::Available() || !MatchAttention(b.prog, b.dims, i0, &m) || m.mask >= 0 ||
      !(m.scale > 0.f) || m.sq * m.sk > gemm::kMaxAttentionScores ||
      !(l0.impl.empty() || l0.impl.rfind("kiln_attention", 0) == 0)) {
    return false;
  }
  if (match != nullptr) *match = m;
  return true;
}

StatusOr<int> BuildAttention(Builder& b) {
  const size_t i0 = static_cast<size_t>(b.layer);
  AttentionMatch m;
  if (b.dt != memory::data_type::f32 || !StartsAttention(b, i0, &m)) return 0;
  const Program& p = b.prog;
  const Layer& l0 = p.layers[i0];
  const Layer& l2 = p.layers[i0 + 2];
  int64_t qs[4], k4[4], vs[4], qo, ko, vo;
  if (!View4(b, l0.inputs[0], qs, &qo) || !View4(b, l0.inputs[1], k4, &ko) ||
      !View4(b, l2.inputs[1], vs, &vo)) {
    return 0;
  }
  int64_t ks[4] = {k4[0], k4[1], k4[2], k4[3]};  // K as [b, h, sk, d]
  if (m.k_is_kt) std::swap(ks[2], ks[3]);
  if (qs[3] != 1 || ks[3] != 1 || vs[3] != 1 || ks[2] * 16 >= (int64_t{1} << 31)) return 0;
  gemm::Attention a;
  a.batch = m.batch;
  a.heads = m.heads;
  a.sq = m.sq;
  a.sk = m.sk;
  a.d = m.d;
  a.scale = m.scale;
  for (int i = 0; i < 3; ++i) {
    a.qs[i] = qs[i];
    a.ks[i] = ks[i];
    a.vs[i] = vs[i];
  }
  // Output: the [b, sq, h, d] transpose that follows (written directly), or the context itself.
  const int o_t = l2.outputs[0];
  int out_t = o_t;
  size_t last = i0 + 2;
  a.os[0] = m.heads * m.sq * m.d;
  a.os[1] = m.sq * m.d;
  a.os[2] = m.d;
  if (i0 + 3 < p.layers.size() && p.UseCounts()[o_t] == 1) {
    const Layer& l3 = p.layers[i0 + 3];
    if (l3.kind == LayerKind::kTranspose && !l3.dead && l3.inputs[0] == o_t &&
        l3.post_ops.empty() && l3.Ints("perm") == std::vector<int64_t>{0, 2, 1, 3}) {
      out_t = l3.outputs[0];
      last = i0 + 3;
      a.os[0] = m.sq * m.heads * m.d;
      a.os[1] = m.d;
      a.os[2] = m.heads * m.d;
    }
  }
  std::vector<StepArg> args;
  args.push_back({DNNL_ARG_SRC_0, b.MdOf(l0.inputs[0]), b.BufferOf(l0.inputs[0])});
  args.push_back({DNNL_ARG_SRC_1, b.MdOf(l0.inputs[1]), b.BufferOf(l0.inputs[1])});
  args.push_back({DNNL_ARG_SRC_2, b.MdOf(l2.inputs[1]), b.BufferOf(l2.inputs[1])});
  const memory::desc out_md = Builder::Plain(b.dims[out_t]);
  const int out_buf = b.Define(out_t, out_md);
  args.push_back({DNNL_ARG_DST, out_md, out_buf});
  const std::string impl = "kiln_attention:avx512 (d=" + std::to_string(m.d) + ", with the next " +
                           std::to_string(last - i0) + " layers)";
  b.AddCustomStep(std::make_shared<AttentionStep>(a, qo, ko, vo), impl, std::move(args));
  return static_cast<int>(last - i0 + 1);
}

StatusOr<gemm::Problem> GemmWeights(Builder& b, int64_t m, int64_t n, int64_t k,
                                    std::vector<gemm::Op> ops, int w, const memory::desc& w_src,
                                    int bias, const memory::desc& bias_md,
                                    std::vector<StepArg>* args) {
  return GemmWeights(b, m, n, k, std::move(ops), w, w_src, bias, bias_md, args, gemm::TileFor(n));
}

StatusOr<gemm::Problem> GemmWeights(Builder& b, int64_t m, int64_t n, int64_t k,
                                    std::vector<gemm::Op> ops, int w, const memory::desc& w_src,
                                    int bias, const memory::desc& bias_md,
                                    std::vector<StepArg>* args, gemm::Tile tile) {
  gemm::Problem p;
  p.m = m;
  p.n = n;
  p.k = k;
  p.lda = k;
  p.ldc = n;
  p.ops = std::move(ops);
  p.tile = tile;
  const memory::desc packed = GemmPackedWeights(k, n, p.tile);
  KILN_ASSIGN_OR_RETURN(int wb, b.Weights(1, w, w_src, packed));
  args->push_back({DNNL_ARG_WEIGHTS, packed, wb});
  if (bias >= 0) {
    KILN_ASSIGN_OR_RETURN(int bb, b.Weights(2, bias, bias_md, bias_md));
    args->push_back({DNNL_ARG_BIAS, bias_md, bb});
  }
  return p;
}

void AddGemmStep(Builder& b, gemm::Problem proto, std::vector<StepArg> args) {
  const std::string impl = gemm::ImplName(proto.tile);
  const bool bias = std::any_of(args.begin(), args.end(),
                                [](const StepArg& a) { return a.arg == DNNL_ARG_BIAS; });
  b.AddCustomStep(std::make_shared<GemmStep>(std::move(proto), bias), impl, std::move(args));
}

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
  memory::desc bias_md;
  if (bias >= 0) {
    Dims bdims(prank, 1);
    bdims.back() = dst_dims.back();
    bias_md = Builder::Plain(bdims);
  }

  // The output: one tensor, or each merged sibling's column range of the [..., N] result.
  auto define_dst = [&]() -> StatusOr<int> {
    if (split.empty()) {
      return DefineDst(b, l.outputs[0], Builder::Plain(out0, dst_dt), sum_tensor, args);
    }
    const int dst_buf = b.NewBuffer(dst_md.get_size());
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
    return dst_buf;
  };

  // kiln's FP32 GEMM (gemm_f32.h): constant 2-D weights, a dense row-major A, a 2-D problem, and
  // post-ops it can apply (bias, residual sum, ReLU, GELU).
  std::vector<gemm::Op> gemm_ops;
  if (const_b && !ta && prank == 2 && a_md == Builder::Plain(a_dims, b.dt) &&
      GemmFits(b, a_dims[1], dst_dims[1], &gemm_ops, &sum_tensor)) {
    args.push_back({DNNL_ARG_SRC, a_md, a_buf});
    const memory::desc src = Restride(Builder::Plain(bd), b_dims, {b_dims[1], 1});
    KILN_ASSIGN_OR_RETURN(gemm::Problem p, GemmWeights(b, dst_dims[0], dst_dims[1], a_dims[1],
                                                       gemm_ops, w, src, bias, bias_md, &args));
    KILN_ASSIGN_OR_RETURN(const int dst_buf, define_dst());
    args.push_back({DNNL_ARG_DST, dst_md, dst_buf});
    AddGemmStep(b, std::move(p), std::move(args));
    return Status::OK();
  }
  sum_tensor = -1;

  KILN_ASSIGN_OR_RETURN(dnnl::post_ops ops, MakePostOps(b, dst_md, {}, &args, &sum_tensor));
  dnnl::primitive_attr attr = ScratchAttr();
  attr.set_post_ops(ops);
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
  KILN_ASSIGN_OR_RETURN(const int dst_buf, define_dst());
  args.push_back({DNNL_ARG_DST, dst_md, dst_buf});
  b.AddStep(dnnl::primitive(pd), pd, std::move(args));
  return Status::OK();
}

}  // namespace kiln::cpu
