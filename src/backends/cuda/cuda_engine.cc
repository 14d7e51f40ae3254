// The CUDA engine (cuda_engine.h): instance building (one GPU step list per batch size),
// execution, plans. Convolutions run through cuDNN's legacy fused
// cudnnConvolutionBiasActivationForward or its graph API (conv + bias + residual + ReLU in one
// call, the faster per layer; cudnn_graph.h), matmuls through cuBLASLt with bias / ReLU
// epilogues and the residual as the C operand, everything else through kernels.cu.
//
// This file: the shared helpers Upload / MapElt / MapBin, the Builder's buffer, layout, operand
// and I/O helpers and Build(), DeviceCount, DeviceFingerprint and CudaEngine. The per-op
// lowerings are in cuda_build_conv.cc, cuda_build_matmul.cc and cuda_build_ops.cc; what they
// share is in cuda_internal.h.
#include "backends/cuda/cuda_engine.h"

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/cpu/layers.h"
#include "backends/cuda/cuda_internal.h"
#include "backends/cuda/kernels.h"
#include "core/file_util.h"
#include "core/logging.h"
#include "engine/engine_inputs.h"

namespace kiln::cuda {

namespace internal {

namespace {

// float32 host values -> storage type (host side, for constants).
std::vector<uint16_t> ToHalfBits(const float* v, int64_t n, DType t) {
  std::vector<uint16_t> out(n);
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, &v[i], 4);
    if (t == DType::kBF16) {
      if ((b & 0x7fffffffu) > 0x7f800000u) {
        out[i] = 0x7fc0;
      } else {
        out[i] = static_cast<uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
      }
      continue;
    }
    // float -> IEEE half, round to nearest even.
    const uint32_t sign = (b >> 16) & 0x8000u;
    const uint32_t absb = b & 0x7fffffffu;
    uint16_t h;
    if (absb > 0x7f800000u) {
      h = static_cast<uint16_t>(sign | 0x7e00u);
    } else if (absb >= 0x477ff000u) {  // overflows to inf (>= 65520)
      h = static_cast<uint16_t>(sign | 0x7c00u);
    } else if (absb < 0x38800000u) {  // subnormal or zero in half
      float f;
      const uint32_t a = absb;
      std::memcpy(&f, &a, 4);
      const float scaled = f * 16777216.f;  // 2^24
      uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));
      h = static_cast<uint16_t>(sign | m);
    } else {
      const uint32_t e = ((absb >> 23) - 112) << 10;
      const uint32_t m = absb & 0x7fffffu;
      uint32_t r = e | (m >> 13);
      const uint32_t rest = m & 0x1fffu;
      if (rest > 0x1000u || (rest == 0x1000u && (r & 1u))) ++r;
      h = static_cast<uint16_t>(sign | r);
    }
    out[i] = h;
  }
  return out;
}

}  // namespace

StatusOr<std::shared_ptr<void>> Upload(const float* v, int64_t n, DType t) {
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> d, DevAlloc(n * SizeOf(t)));
  if (t == DType::kF32) {
    KILN_CU(cudaMemcpy(d.get(), v, n * 4, cudaMemcpyHostToDevice));
  } else {
    std::vector<uint16_t> h = ToHalfBits(v, n, t);
    KILN_CU(cudaMemcpy(d.get(), h.data(), n * 2, cudaMemcpyHostToDevice));
  }
  return d;
}

EltMap MapElt(int32_t a) {
  using A = dnnl::algorithm;
  if (a == cpu::kAlgErfMarker) return {true, kErf};
  switch (static_cast<A>(a)) {
    case A::eltwise_relu:
      return {true, kRelu};
    case A::eltwise_tanh:
      return {true, kTanh};
    case A::eltwise_elu:
      return {true, kElu};
    case A::eltwise_abs:
      return {true, kAbs};
    case A::eltwise_sqrt:
      return {true, kSqrt};
    case A::eltwise_linear:
      return {true, kLinear};
    case A::eltwise_soft_relu:
      return {true, kSoftRelu};
    case A::eltwise_logistic:
      return {true, kLogistic};
    case A::eltwise_exp:
      return {true, kExp};
    case A::eltwise_gelu_tanh:
      return {true, kGeluTanh};
    case A::eltwise_log:
      return {true, kLog};
    case A::eltwise_clip_v2:
      return {true, kClip};
    case A::eltwise_pow:
      return {true, kPow};
    case A::eltwise_gelu_erf:
      return {true, kGeluErf};
    case A::eltwise_mish:
      return {true, kMish};
    case A::eltwise_hardswish:
      return {true, kHardswish};
    case A::eltwise_swish:
      return {true, kSwish};
    default:
      return {};
  }
}
EltMap MapBin(int32_t a) {
  using A = dnnl::algorithm;
  switch (static_cast<A>(a)) {
    case A::binary_add:
      return {true, kAdd};
    case A::binary_sub:
      return {true, kSub};
    case A::binary_mul:
      return {true, kMul};
    case A::binary_div:
      return {true, kDiv};
    case A::binary_max:
      return {true, kMax};
    case A::binary_min:
      return {true, kMin};
    default:
      return {};
  }
}

// ----------------------------------------------------------------------------- builder

StatusOr<int> Builder::ConstBuf(int t, bool ohwi) {
  const std::string key = std::to_string(t) + (ohwi ? ":ohwi" : "");
  auto it = const_bufs_.find(key);
  if (it != const_bufs_.end()) return it->second;
  std::shared_ptr<void> dev;
  {
    std::lock_guard<std::mutex> lock(sh_->mu);
    auto c = sh_->consts.find(key);
    if (c != sh_->consts.end()) dev = c->second;
  }
  const Tensor& v = p_.tensors[t].value;
  if (v.dtype() != DataType::kFloat32) {
    return Unimplemented("constant '" + p_.tensors[t].name + "' is not float32");
  }
  if (!dev) {
    const float* src = v.data<float>();
    std::vector<float> tmp;
    if (ohwi) {  // [O, I, kh, kw] -> [O, kh, kw, I]
      const Dims& d = v.dims();
      if (d.size() != 4) return Unimplemented("conv weights of rank " + std::to_string(d.size()));
      tmp.resize(v.num_elements());
      const int64_t O = d[0], I = d[1], H = d[2], W = d[3];
      for (int64_t o = 0; o < O; ++o)
        for (int64_t i = 0; i < I; ++i)
          for (int64_t h = 0; h < H; ++h)
            for (int64_t w = 0; w < W; ++w)
              tmp[((o * H + h) * W + w) * I + i] = src[((o * I + i) * H + h) * W + w];
      src = tmp.data();
    }
    KILN_ASSIGN_OR_RETURN(dev, Upload(src, v.num_elements(), dt()));
    std::lock_guard<std::mutex> lock(sh_->mu);
    sh_->consts[key] = dev;
  }
  out_->keep.push_back(dev);
  Buf b;
  b.kind = Buf::kConst;
  b.cptr = dev.get();
  b.bytes = v.num_elements() * SizeOf(dt());
  out_->bufs.push_back(b);
  const int id = static_cast<int>(out_->bufs.size()) - 1;
  const_bufs_[key] = id;
  return id;
}

StatusOr<int> Builder::Plain(int t) {
  if (p_.tensors[t].is_const) return ConstBuf(t, false);
  KILN_ASSIGN_OR_RETURN(int b, BufOf(t));
  if (!ts_[t].nhwc || SameAsPlain(dims_[t])) return b;
  if (ts_[t].plain_variant >= 0) {
    Use(ts_[t].plain_variant);
    return ts_[t].plain_variant;
  }
  const int nb = LayoutCopy(t, b, /*to_nhwc=*/false);
  ts_[t].plain_variant = nb;
  return nb;
}

int Builder::LayoutCopy(int t, int b, bool to_nhwc) {
  const Dims& d = dims_[t];
  Strided s;
  s.rank = 4;
  const Dims plain = Contiguous(d), nhwc = LogicalStrides(d, true);
  const Dims& src = to_nhwc ? plain : nhwc;
  const Dims& dst = to_nhwc ? nhwc : plain;
  for (int i = 0; i < 4; ++i) {
    s.dims[i] = d[i];
    s.src[i] = src[i];
    s.dst[i] = dst[i];
  }
  const int nb = NewBuf(Bytes(t));
  const DType ty = dt();
  const char* what = to_nhwc ? "NCHW->NHWC copy" : "NHWC->NCHW copy";
  AddStep([=](const RunCtx& r) {
    return CudaStatus(StridedCopy(ty, r.P(b), ty, r.P(nb), s, r.c->stream), what);
  });
  return nb;
}

StatusOr<int> Builder::Nhwc(int t) {
  if (dims_[t].size() != 4) return Unimplemented("NHWC needs a 4-D tensor");
  if (ts_[t].buf < 0 && ts_[t].stage >= 0) return StagedInput(t, true);
  KILN_ASSIGN_OR_RETURN(int b, BufOf(t));
  if (ts_[t].nhwc || SameAsPlain(dims_[t])) return b;
  if (ts_[t].nhwc_variant >= 0) {
    Use(ts_[t].nhwc_variant);
    return ts_[t].nhwc_variant;
  }
  const int nb = LayoutCopy(t, b, /*to_nhwc=*/true);
  ts_[t].nhwc_variant = nb;
  return nb;
}

StatusOr<Operand> Builder::MakeOperandRaw(int buf, const Dims& d0, bool nhwc, const Dims& y,
                                          bool y_nhwc) {
  const size_t r = y.size();
  if (d0.size() > r || r > static_cast<size_t>(kMaxRank)) {
    return Unimplemented("operand " + DimsText(d0) + " does not broadcast onto " + DimsText(y));
  }
  Dims d(r - d0.size(), 1);
  d.insert(d.end(), d0.begin(), d0.end());
  Dims ls = nhwc ? LogicalStrides(d0, true) : Contiguous(d);
  if (nhwc && d0.size() != r) return Unimplemented("NHWC operand of another rank");
  for (size_t i = 0; i < r; ++i) {
    if (d[i] != y[i] && d[i] != 1) {
      return Unimplemented("operand " + DimsText(d0) + " does not broadcast onto " + DimsText(y));
    }
    if (d[i] == 1) ls[i] = 0;
  }
  const std::vector<int> perm = PhysPerm(r, y_nhwc);
  Dims pd(r), ps(r);
  for (size_t k = 0; k < r; ++k) {
    pd[k] = y[perm[k]];
    ps[k] = ls[perm[k]];
  }
  Operand o;
  o.mode = 0;
  for (size_t k = 0; k < r; ++k) o.strides[k] = ps[k];
  // Fast forms: the operand's non-broadcast dims are one contiguous run [a, b] of physical dims.
  int a = -1, b = -1;
  for (size_t k = 0; k < r; ++k) {
    if (ps[k] != 0 && pd[k] != 1) {
      if (a < 0) a = static_cast<int>(k);
      b = static_cast<int>(k);
    }
  }
  if (a < 0) {
    o.mode = 2;
    o.div = 1;
    o.mod = 1;
  } else {
    bool run = true;
    int64_t expect = 1;
    for (int k = b; k >= a; --k) {
      if (pd[k] != 1 && ps[k] != expect) run = false;
      if (pd[k] != 1 && ps[k] == 0) run = false;
      expect *= pd[k];
    }
    if (run) {
      int64_t div = 1;
      for (size_t k = b + 1; k < r; ++k) div *= pd[k];
      if (a == 0 && div == 1) {
        o.mode = 1;
      } else {
        o.mode = 2;
        o.div = div;
        o.mod = expect;
      }
    }
  }
  o.ptr = nullptr;
  (void)buf;
  return o;
}

StatusOr<Operand> Builder::MakeOperand(int t, const Dims& y, bool y_nhwc) {
  return MakeOperandRaw(-1, dims_[t], NhwcOf(t), y, y_nhwc);
}

Status Builder::ChainStep(int buf, const Dims& y, bool y_nhwc, size_t from, int in_buf,
                          std::vector<ChainOp> pre) {
  const Layer& l = L();
  Chain c;
  const std::vector<int> perm = PhysPerm(y.size(), y_nhwc);
  c.rank = static_cast<int>(y.size());
  if (c.rank > kMaxRank) return Unimplemented("rank above 8");
  for (int k = 0; k < c.rank; ++k) c.dims[k] = y[perm[k]];
  std::vector<int> operand_bufs;
  for (ChainOp& op : pre) {
    if (c.n >= kMaxOps) return Unimplemented("more than 8 fused element-wise ops");
    c.ops[c.n++] = op;
    operand_bufs.push_back(-2);  // pointer already set
  }
  for (size_t i = from; i < l.post_ops.size(); ++i) {
    const PostOp& po = l.post_ops[i];
    if (c.n >= kMaxOps) return Unimplemented("more than 8 fused element-wise ops");
    ChainOp op;
    int ob = -1;
    if (po.kind == PostOp::kEltwise) {
      EltMap m = MapElt(po.alg);
      if (!m.ok) return Unimplemented("eltwise algorithm " + std::to_string(po.alg));
      op.kind = 0;
      op.alg = m.alg;
      op.alpha = po.alpha;
      op.beta = po.beta;
    } else {
      if (po.tensor < 0) return Unimplemented("post-op without operand");
      // Operand in the output's layout when it is a full-shape NHWC tensor, else plain.
      const bool same = NhwcOf(po.tensor) && y_nhwc && dims_[po.tensor] == y;
      if (same) {
        KILN_ASSIGN_OR_RETURN(ob, BufOf(po.tensor));
      } else {
        KILN_ASSIGN_OR_RETURN(ob, Plain(po.tensor));
      }
      KILN_ASSIGN_OR_RETURN(op.operand, MakeOperandRaw(ob, dims_[po.tensor], same, y, y_nhwc));
      if (po.kind == PostOp::kSum) {
        op.kind = 1;
        op.alg = kAdd;
      } else if (po.kind == PostOp::kBinary) {
        EltMap m = MapBin(po.alg);
        if (!m.ok) return Unimplemented("binary algorithm " + std::to_string(po.alg));
        op.kind = 1;
        op.alg = m.alg;
      } else {
        op.kind = 2;
      }
    }
    c.ops[c.n++] = op;
    operand_bufs.push_back(ob);
  }
  if (c.n == 0 && in_buf < 0) return Status::OK();
  const int64_t n = Elements(y);
  const DType ty = dt();
  const int src = in_buf >= 0 ? in_buf : buf;
  AddStep([=](const RunCtx& r) {
    Chain cc = c;
    for (int k = 0; k < cc.n; ++k) {
      if (operand_bufs[k] >= 0) cc.ops[k].operand.ptr = r.P(operand_bufs[k]);
    }
    return CudaStatus(RunChain(ty, r.P(src), r.P(buf), n, cc, r.c->stream), "element-wise kernel");
  });
  return Status::OK();
}

Status Builder::Inputs() {
  out_->in_dims.clear();
  for (size_t i = 0; i < p_.inputs.size(); ++i) {
    const int t = p_.inputs[i];
    out_->in_dims.push_back(dims_[t]);
    Buf b;
    b.kind = Buf::kIn;
    b.ext = static_cast<int>(i);
    b.bytes = Elements(dims_[t]) * 4;
    out_->bufs.push_back(b);
    const int sb = static_cast<int>(out_->bufs.size()) - 1;
    if (dt() == DType::kF32) {
      Define(t, sb, false);
      continue;
    }
    // Cast when first read (StagedInput), into the layout that reader wants: an image read by
    // a convolution goes NCHW float32 -> NHWC dt() in one step instead of a cast and a layout
    // copy (0.1 ms less for ResNet-50 at batch 128).
    ts_[t].stage = sb;
  }
  return Status::OK();
}

StatusOr<int> Builder::StagedInput(int t, bool nhwc) {
  const int sb = ts_[t].stage;
  const Dims& d = dims_[t];
  nhwc = nhwc && d.size() == 4 && !SameAsPlain(d);
  Strided s;
  if (nhwc) {
    s.rank = 4;
    const Dims plain = Contiguous(d), to = LogicalStrides(d, true);
    for (int i = 0; i < 4; ++i) {
      s.dims[i] = d[i];
      s.src[i] = plain[i];
      s.dst[i] = to[i];
    }
  } else {
    s.rank = 1;
    s.dims[0] = Elements(d);
    s.src[0] = s.dst[0] = 1;
  }
  const int nb = NewBuf(Bytes(t));
  const DType ty = dt();
  const char* what = nhwc ? "input cast to NHWC" : "input cast";
  if (nhwc && d[1] <= 8) {  // an image: one thread per pixel
    const int64_t n = d[0], c = d[1], hw = d[2] * d[3];
    AddStep([=](const RunCtx& r) {
      return CudaStatus(
          NchwToNhwc(static_cast<const float*>(r.P(sb)), ty, r.P(nb), n, c, hw, r.c->stream),
          what);
    });
    ts_[t].stage = -1;
    Define(t, nb, nhwc);
    return nb;
  }
  AddStep([=](const RunCtx& r) {
    return CudaStatus(StridedCopy(DType::kF32, r.P(sb), ty, r.P(nb), s, r.c->stream), what);
  });
  ts_[t].stage = -1;
  Define(t, nb, nhwc);
  return nb;
}

Status Builder::Outputs() {
  out_->out_dims.clear();
  for (size_t i = 0; i < p_.outputs.size(); ++i) {
    const int t = p_.outputs[i];
    const Dims& d = dims_[t];
    out_->out_dims.push_back(d);
    Buf b;
    b.kind = Buf::kOut;
    b.ext = static_cast<int>(i);
    b.bytes = Elements(d) * 4;
    out_->bufs.push_back(b);
    const int ob = static_cast<int>(out_->bufs.size()) - 1;
    int src;
    Dims ss;
    if (p_.tensors[t].is_const) {
      KILN_ASSIGN_OR_RETURN(src, ConstBuf(t, false));
      ss = Contiguous(d);
    } else {
      KILN_ASSIGN_OR_RETURN(src, BufOf(t));
      ss = LogicalStrides(d, ts_[t].nhwc);
    }
    if (d.size() > static_cast<size_t>(kMaxRank)) return Unimplemented("output rank above 8");
    Strided s;
    s.rank = static_cast<int>(d.size());
    const Dims ds = Contiguous(d);
    for (size_t k = 0; k < d.size(); ++k) {
      s.dims[k] = d[k];
      s.src[k] = ss[k];
      s.dst[k] = ds[k];
    }
    const DType ty = dt();
    AddStep([=](const RunCtx& r) {
      return CudaStatus(StridedCopy(ty, r.P(src), DType::kF32, r.P(ob), s, r.c->stream),
                        "output cast");
    });
  }
  return Status::OK();
}

Status Builder::Build() {
  out_->impl.assign(p_.layers.size(), "");
  out_->prec.assign(p_.layers.size(), "");
  time_ = 0;
  KILN_RETURN_IF_ERROR(Inputs());
  for (size_t i = 0; i < p_.layers.size(); ++i) {
    layer_ = static_cast<int>(i);
    time_ = layer_ + 1;
    const Layer& l = p_.layers[i];
    if (fused_into_.count(layer_) != 0) continue;  // computed by an earlier layer's step
    Status s;
    switch (l.kind) {
      case LayerKind::kConv:
        s = Conv();
        break;
      case LayerKind::kPool:
        s = Pool();
        break;
      case LayerKind::kMatMul: {
        StatusOr<bool> fused = Attention();
        if (!fused.ok()) {
          s = fused.status();
        } else if (!*fused) {
          s = MatMul();
        }
        break;
      }
      case LayerKind::kEltwise:
        s = Eltwise();
        break;
      case LayerKind::kBinary:
        s = Binary();
        break;
      case LayerKind::kPRelu:
        s = PRelu();
        break;
      case LayerKind::kSoftmax:
        s = Softmax();
        break;
      case LayerKind::kLayerNorm:
        s = LayerNormL();
        break;
      case LayerKind::kBatchNorm:
        s = BatchNorm();
        break;
      case LayerKind::kTranspose:
        s = Transpose();
        break;
      case LayerKind::kView:
        s = View();
        break;
      case LayerKind::kConcat:
        s = Concat();
        break;
      default:
        s = Unimplemented(std::string("layer kind ") + cpu::LayerKindName(l.kind) +
                          " has no CUDA implementation yet");
    }
    if (!s.ok()) return cpu::LayerError(l, s);
  }
  layer_ = -1;
  time_ = static_cast<int>(p_.layers.size()) + 1;
  KILN_RETURN_IF_ERROR(Outputs());
  // Lifetime plan of the arena buffers.
  std::vector<cpu::BufferDef> defs(out_->bufs.size());
  for (size_t i = 0; i < out_->bufs.size(); ++i) {
    const Buf& b = out_->bufs[i];
    defs[i].where = b.kind == Buf::kArena ? cpu::BufferDef::kArena : cpu::BufferDef::kConst;
    defs[i].bytes = b.bytes;
    defs[i].first = b.first;
    defs[i].last = b.last;
  }
  out_->arena_bytes = cpu::PlanMemory(&defs);
  for (size_t i = 0; i < out_->bufs.size(); ++i) out_->bufs[i].offset = defs[i].offset;
  return Status::OK();
}

// The one T of GPU `device` for the life of the process (leaked on purpose: engines and
// tensors using it may outlive static destruction).
template <typename T>
T& PerDevice(int device) {
  static std::mutex mu;
  static std::map<int, T*> all;
  std::lock_guard<std::mutex> lock(mu);
  T*& p = all[device];
  if (p == nullptr) p = new T(device);
  return *p;
}

TacticCache& TacticCache::For(int device) { return PerDevice<TacticCache>(device); }
ArenaPool& ArenaPool::For(int device) { return PerDevice<ArenaPool>(device); }

TacticCache::TacticCache(int device) {
  const char* v = std::getenv("KILN_TIMING_CACHE");
  if (v == nullptr || *v == '\0') return;
  path_ = std::string(v) + ".cuda" + std::to_string(device);
  StatusOr<std::string> fp = DeviceFingerprint(device);
  header_ = "# kiln cuda timing cache v1\tdevice=" + (fp.ok() ? *fp : std::string("?"));
  auto read = ReadKeyValueFile(path_, header_);
  if (read.ok()) {
    map_ = *std::move(read);
  } else if (read.status().code() != StatusCode::kNotFound) {  // NotFound: a new cache
    KILN_LOG(WARNING) << "timing cache " << path_
                      << " is not a kiln CUDA timing cache for this GPU and software; timing "
                         "again and overwriting it";
  }
}

void TacticCache::SaveLocked() const {
  if (path_.empty()) return;
  if (Status st = WriteKeyValueFile(path_, header_, map_); !st.ok()) {
    KILN_LOG(WARNING) << "cannot write the CUDA timing cache: " << st.message();
  }
}

StatusOr<ArenaPool::Lease> ArenaPool::Take(size_t bytes, const void* prefer) {
  constexpr size_t kGranule = size_t{2} << 20;  // fewer re-allocations as engines grow it
  bytes = std::max<size_t>(256, bytes);
  std::lock_guard<std::mutex> lock(mu_);
  int pick = -1;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& b = blocks_[i];
    if (b.busy || b.mem == nullptr || b.bytes < bytes) continue;
    if (b.mem.get() == prefer) {
      pick = static_cast<int>(i);
      break;
    }
    if (pick < 0 || b.bytes < blocks_[pick].bytes) pick = static_cast<int>(i);
  }
  if (pick < 0) {
    // None fits: replace the largest free block (too small) or add one. Runs still holding an
    // older block are unaffected; graphs captured with a replaced block are captured again.
    int largest = -1;
    for (size_t i = 0; i < blocks_.size(); ++i) {
      if (!blocks_[i].busy && (largest < 0 || blocks_[i].bytes > blocks_[largest].bytes))
        largest = static_cast<int>(i);
    }
    const size_t want = (bytes + kGranule - 1) / kGranule * kGranule;
    if (largest >= 0) {
      stats_.bytes -= blocks_[largest].bytes;
      stats_.blocks -= blocks_[largest].mem != nullptr ? 1 : 0;
      blocks_[largest].mem.reset();
      blocks_[largest].bytes = 0;
    }
    int prev = 0;
    cudaGetDevice(&prev);
    KILN_CU(cudaSetDevice(device_));
    StatusOr<std::shared_ptr<void>> mem = DevAlloc(want);
    cudaSetDevice(prev);
    if (!mem.ok()) return mem.status();
    if (largest < 0) {
      blocks_.emplace_back();
      largest = static_cast<int>(blocks_.size()) - 1;
    }
    blocks_[largest].mem = *std::move(mem);
    blocks_[largest].bytes = want;
    stats_.bytes += want;
    ++stats_.blocks;
    ++stats_.allocations;
    pick = largest;
  }
  blocks_[pick].busy = true;
  ++stats_.runs;
  return Lease(this, pick, blocks_[pick].mem.get());
}

void ArenaPool::Give(int block) {
  std::lock_guard<std::mutex> lock(mu_);
  if (block >= 0 && block < static_cast<int>(blocks_.size())) blocks_[block].busy = false;
}

ArenaPoolStats ArenaPool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace internal

using internal::Builder;
using internal::Ctx;
using internal::Dims;
using internal::EngineShared;
using internal::Instance;
using internal::Layer;
using internal::LayerKind;
using internal::TypeFor;

// ----------------------------------------------------------------------------- engine

int DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

bool HasFp8(int device) {
  int major = 0, minor = 0;
  if (device < 0 || device >= DeviceCount() ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return major * 10 + minor >= 89;
}

StatusOr<std::string> DeviceFingerprint(int device) {
  if (device < 0 || device >= DeviceCount()) {
    return FailedPrecondition("no CUDA device " + std::to_string(device) + " (" +
                              std::to_string(DeviceCount()) + " visible)");
  }
  cudaDeviceProp p{};
  KILN_CU(cudaGetDeviceProperties(&p, device));
  int drv = 0, rt = 0;
  cudaDriverGetVersion(&drv);
  cudaRuntimeGetVersion(&rt);
  return "cuda;gpu=" + std::string(p.name) + ";cc=" + std::to_string(p.major) + "." +
         std::to_string(p.minor) + ";sms=" + std::to_string(p.multiProcessorCount) +
         ";driver=" + std::to_string(drv) + ";cudart=" + std::to_string(rt) +
         ";cudnn=" + std::to_string(cudnnGetVersion()) +
         ";cublaslt=" + std::to_string(cublasLtGetVersion());
}

StatusOr<std::shared_ptr<void>> PooledDeviceAlloc(size_t bytes, int device, void* stream) {
  static std::once_flag once[64];
  if (device < 0 || device >= 64) return InvalidArgument("no CUDA device " + std::to_string(device));
  int prev = 0;
  cudaGetDevice(&prev);
  KILN_CU(cudaSetDevice(device));
  // The device's default pool keeps freed memory (no release threshold), so steady-state runs
  // allocate from it without touching the driver.
  std::call_once(once[device], [device] {
    cudaMemPool_t pool = nullptr;
    if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
      uint64_t keep = UINT64_MAX;
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    }
    cudaGetLastError();
  });
  auto s = static_cast<cudaStream_t>(stream);
  void* p = nullptr;
  cudaError_t e = cudaMallocAsync(&p, bytes == 0 ? 256 : bytes, s);
  cudaSetDevice(prev);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return ResourceExhausted("cudaMallocAsync of " + std::to_string(bytes) + " bytes on device " +
                             std::to_string(device) + " failed: " + cudaGetErrorString(e));
  }
  // Freed on the legacy default stream of its device, after whatever used it: every kiln
  // reader synchronizes its stream before it returns, and a caller holding a device tensor has
  // synchronized its own work on it (as with any CUDA allocation it frees).
  return std::shared_ptr<void>(p, [device](void* q) {
    int cur = 0;
    cudaGetDevice(&cur);
    cudaSetDevice(device);
    cudaFreeAsync(q, nullptr);
    cudaSetDevice(cur);
  });
}

StatusOr<std::shared_ptr<void>> PinnedHostAlloc(size_t bytes) {
  struct Pool {
    std::mutex mu;
    std::multimap<size_t, void*> free;  // by size
    size_t live = 0, cached = 0;
  };
  static Pool* pool = new Pool();  // leaked on purpose: tensors may outlive static destruction
  constexpr size_t kMaxLive = size_t{4} << 30, kMaxCached = size_t{2} << 30;
  if (bytes == 0) bytes = 64;
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(pool->mu);
    auto it = pool->free.find(bytes);
    if (it != pool->free.end()) {
      p = it->second;
      pool->free.erase(it);
      pool->cached -= bytes;
    } else if (pool->live + bytes > kMaxLive) {
      return std::shared_ptr<void>();
    }
    pool->live += bytes;
  }
  if (p == nullptr) {
    cudaError_t e = cudaHostAlloc(&p, bytes, cudaHostAllocPortable);
    if (e != cudaSuccess) {
      cudaGetLastError();
      std::lock_guard<std::mutex> lock(pool->mu);
      pool->live -= bytes;
      return std::shared_ptr<void>();  // not fatal: ordinary memory instead
    }
  }
  return std::shared_ptr<void>(p, [bytes](void* q) {
    std::vector<void*> evict;
    {
      std::lock_guard<std::mutex> lock(pool->mu);
      pool->live -= bytes;
      pool->free.emplace(bytes, q);
      pool->cached += bytes;
      // Over the cache limit: free the largest cached buffers.
      while (pool->cached > kMaxCached && !pool->free.empty()) {
        auto last = std::prev(pool->free.end());
        pool->cached -= last->first;
        evict.push_back(last->second);
        pool->free.erase(last);
      }
    }
    for (void* e : evict) cudaFreeHost(e);
  });
}

ArenaPoolStats GetArenaPoolStats(int device) { return internal::ArenaPool::For(device).stats(); }

namespace {

Status CopyToHost(void* host, const void* device_data, size_t bytes, int device) {
  int prev = 0;
  cudaGetDevice(&prev);
  KILN_CU(cudaSetDevice(device));
  cudaError_t e = cudaMemcpy(host, device_data, bytes, cudaMemcpyDeviceToHost);
  cudaSetDevice(prev);
  return internal::CudaStatus(e, "copying a device tensor to the host");
}

StatusOr<Tensor> CopyToDevice(const Tensor& t, int device) {
  if (device >= DeviceCount()) {
    return FailedPrecondition("no CUDA device " + std::to_string(device) + " (" +
                              std::to_string(DeviceCount()) + " visible)");
  }
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> buf, PooledDeviceAlloc(t.nbytes(), device, nullptr));
  int prev = 0;
  cudaGetDevice(&prev);
  KILN_CU(cudaSetDevice(device));
  // The pool allocation is ordered on the legacy stream; so is this copy (cudaMemcpy).
  cudaError_t e = cudaMemcpy(buf.get(), t.raw_data(), t.nbytes(), cudaMemcpyHostToDevice);
  cudaSetDevice(prev);
  KILN_RETURN_IF_ERROR(internal::CudaStatus(e, "copying a tensor to the device"));
  return Tensor::WrapDevice(t.dtype(), t.dims(), buf.get(), buf, device);
}

[[maybe_unused]] const bool kCopiersRegistered = [] {
  DeviceCopiers c;
  c.to_host = &CopyToHost;
  c.to_device = &CopyToDevice;
  RegisterDeviceCopiers(c);
  return true;
}();

}  // namespace

CudaEngine::CudaEngine(cpu::Program p, const BuildConfig& c, int device, bool tf32)
    : prog_(std::move(p)), cfg_(c), device_(device), tf32_(tf32) {}

CudaEngine::~CudaEngine() {
  cudaSetDevice(device_);
  instances_.clear();
  main_.reset();
  shared_.reset();
}

StatusOr<std::unique_ptr<CudaEngine>> CudaEngine::Create(cpu::Program program,
                                                         const BuildConfig& config, int device,
                                                         bool tf32,
                                                         std::vector<InputGather> gathers,
                                                         std::map<std::string, std::string> tactics) {
  if (device < 0 || device >= DeviceCount()) {
    return FailedPrecondition("CUDA engine: no CUDA device " + std::to_string(device));
  }
  KILN_CU(cudaSetDevice(device));
  const size_t n_in = program.inputs.size();
  std::unique_ptr<CudaEngine> e(new CudaEngine(std::move(program), config, device, tf32));
  e->lookups_.resize(n_in);
  e->integer_inputs_.assign(n_in, 0);
  std::sort(gathers.begin(), gathers.end(),
            [](const InputGather& a, const InputGather& b) { return a.input < b.input; });
  int next_layer = static_cast<int>(e->prog_.layers.size());
  for (const InputGather& g : gathers) {
    if (g.input < 0 || static_cast<size_t>(g.input) >= n_in || g.table.rank() != 2 ||
        g.table.dtype() != DataType::kFloat32 || e->lookups_[g.input].active) {
      return InvalidArgument("CUDA engine: bad embedding lookup for input " +
                             std::to_string(g.input));
    }
    Lookup& l = e->lookups_[g.input];
    l.active = true;
    l.idx64 = g.index_type == DataType::kInt64;
    l.rows = g.table.dim(0);
    l.width = g.table.dim(1);
    l.node = g.node;
    l.layer = next_layer++;
    KILN_ASSIGN_OR_RETURN(l.table, internal::Upload(g.table.data<float>(), g.table.num_elements(),
                                                    DType::kF32));
    e->integer_inputs_[g.input] = 1;
  }
  auto sh = std::make_shared<EngineShared>();
  sh->device = device;
  sh->dt = TypeFor(config.precision);
  sh->precision = config.precision;
  if (config.precision == Precision::kINT8 || config.precision == Precision::kFP8) {
    sh->int8_ranges = config.int8_ranges;
  }
  sh->tf32 = tf32;
  sh->ws_limit = config.max_workspace_size_bytes;
  sh->preset = std::move(tactics);
  KILN_LT(cublasLtCreate(&sh->lt));
  KILN_DNN(cudnnCreate(&sh->build_dnn));
  e->shared_ = sh;
  KILN_ASSIGN_OR_RETURN(e->main_, e->InstanceFor(config.input_shapes));
  return e;
}

std::vector<Dims> CudaEngine::ProgramDims(std::vector<Dims> dims) const {
  for (size_t i = 0; i < dims.size() && i < lookups_.size(); ++i) {
    if (lookups_[i].active) dims[i].push_back(lookups_[i].width);
  }
  return dims;
}

StatusOr<std::shared_ptr<Instance>> CudaEngine::InstanceFor(const std::vector<Dims>& dims) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = instances_.find(dims);
  if (it != instances_.end()) return it->second;
  KILN_CU(cudaSetDevice(device_));
  KILN_ASSIGN_OR_RETURN(std::vector<Dims> all, cpu::PropagateShapes(prog_, ProgramDims(dims)));
  auto inst = std::make_shared<Instance>();
  inst->device = device_;
  inst->dt = shared_->dt;
  inst->shared = shared_;
  Builder b(prog_, all, shared_.get(), inst.get());
  KILN_RETURN_IF_ERROR(b.Build());
  inst->engine_in_dims = dims;
  inst->idx_bytes.assign(dims.size(), 0);
  // Embedding lookups run first (captured in the CUDA graph with the layers): indices staged
  // by Stage() -> rows in the program input's float32 staging buffer.
  std::vector<internal::Step> lookups;
  for (size_t i = 0; i < dims.size() && i < lookups_.size(); ++i) {
    const Lookup& l = lookups_[i];
    if (!l.active) continue;
    const int64_t n = internal::Elements(dims[i]);
    inst->idx_bytes[i] = static_cast<size_t>(n) * (l.idx64 ? 8 : 4);
    inst->keep.push_back(l.table);
    const float* table = static_cast<const float*>(l.table.get());
    const bool idx64 = l.idx64;
    const int64_t rows = l.rows, width = l.width;
    lookups.push_back(internal::Step{l.layer, [=](const internal::RunCtx& r) -> Status {
      return internal::CudaStatus(
          GatherRows(r.c->idx_stage[i].get(), idx64, n, table, rows, width,
                     static_cast<float*>(r.c->in_stage[i].get()),
                     r.c->bad_index_dev != nullptr ? r.c->bad_index_dev + i : nullptr,
                     r.c->stream),
          "embedding lookup (GatherRows)");
    }});
  }
  inst->steps.insert(inst->steps.begin(), lookups.begin(), lookups.end());
  instances_[dims] = inst;
  return inst;
}

bool CudaEngine::Accepts(const std::vector<Dims>& dims) const {
  return ShapesWithinBuild(cfg_, dims) && InstanceFor(dims).ok();
}

namespace {
bool GraphsEnabled() {
  const char* v = std::getenv("KILN_CUDA_GRAPHS");
  return v == nullptr || std::string(v) != "0";
}
}  // namespace

Status CudaEngine::Execute(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
                           std::vector<LayerInfo>* profile) const {
  return Run(inputs, outputs, nullptr, profile);
}

Status CudaEngine::ExecutePlaced(const std::vector<const Tensor*>& inputs,
                                 std::vector<Tensor>* outputs,
                                 const std::vector<bool>& keep_on_device) const {
  return Run(inputs, outputs, &keep_on_device, nullptr);
}

StatusOr<std::shared_ptr<Instance>> CudaEngine::Prepare(
    const std::vector<const Tensor*>& inputs) const {
  KILN_ASSIGN_OR_RETURN(
      std::vector<Dims> dims,
      EngineInputDims(inputs, prog_.inputs.size(), "CUDA engine", device_, &integer_inputs_));
  if (!ShapesWithinBuild(cfg_, dims)) return ShapesRejected("CUDA engine", dims);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Lookup& l = lookups_[i];
    if (!l.active) continue;
    if ((inputs[i]->dtype() == DataType::kInt64) != l.idx64) {
      return InvalidArgument(std::string("CUDA engine input ") + std::to_string(i) +
                             " holds embedding indices of type " +
                             (l.idx64 ? "int64" : "int32") + ", got " +
                             DataTypeName(inputs[i]->dtype()));
    }
    if (inputs[i]->on_device()) continue;  // not checked: a zero row for a bad index
    for (int64_t k = 0; k < inputs[i]->num_elements(); ++k) {
      const int64_t v = l.idx64 ? inputs[i]->data<int64_t>()[k] : inputs[i]->data<int32_t>()[k];
      if (v < -l.rows || v >= l.rows) {
        return InvalidArgument("CUDA engine input " + std::to_string(i) + ": index " +
                               std::to_string(v) + " (element " + std::to_string(k) +
                               ") is outside the embedding table's " + std::to_string(l.rows) +
                               " rows");
      }
    }
  }
  KILN_CU(cudaSetDevice(device_));
  // Within the build shapes, an instance that cannot be built says why.
  return InstanceFor(dims);
}

namespace {

constexpr size_t kBounceChunk = size_t{4} << 20;     // bytes per bounce buffer
constexpr size_t kPipelinedUpload = size_t{8} << 20;  // pageable inputs from this size on

// A pageable host buffer -> device, enqueued on ctx's stream: `lanes` threads each copy their
// part in chunks into two page-locked bounce buffers (memcpy on the CPU) while the GPU copies
// the previous chunk (DMA). A plain cudaMemcpyAsync from pageable memory stages through the
// driver's own buffers one chunk at a time, at a third of the bus speed or less; several CPU
// copies in flight keep the DMA engine busy.
Status UploadPageable(const void* src, void* dst, size_t bytes, Ctx* ctx) {
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const size_t lanes =
      std::clamp<size_t>(std::min<size_t>(hw / 2, bytes / kPipelinedUpload), 1, 4);
  while (ctx->bounce.size() < 2 * lanes) {
    void* p = nullptr;
    KILN_CU(cudaHostAlloc(&p, kBounceChunk, cudaHostAllocPortable));
    ctx->bounce.emplace_back(p, [](void* q) { cudaFreeHost(q); });
    cudaEvent_t e = nullptr;
    KILN_CU(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    ctx->bounce_ev.push_back(e);
  }
  const size_t part = (bytes + lanes - 1) / lanes;
  std::vector<Status> st(lanes);
  auto lane = [&](size_t l) {
    const size_t begin = std::min(bytes, l * part), end = std::min(bytes, begin + part);
    int k = 0;
    for (size_t off = begin; off < end; off += kBounceChunk, k ^= 1) {
      const size_t n = std::min(kBounceChunk, end - off);
      cudaEvent_t ev = ctx->bounce_ev[2 * l + k];
      void* buf = ctx->bounce[2 * l + k].get();
      cudaError_t e = cudaEventSynchronize(ev);  // that buffer's previous copy is done
      if (e == cudaSuccess) {
        std::memcpy(buf, static_cast<const char*>(src) + off, n);
        e = cudaMemcpyAsync(static_cast<char*>(dst) + off, buf, n, cudaMemcpyHostToDevice,
                            ctx->stream);
      }
      if (e == cudaSuccess) e = cudaEventRecord(ev, ctx->stream);
      if (e != cudaSuccess) {
        st[l] = internal::CudaStatus(e, "pipelined input upload");
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t l = 1; l < lanes; ++l) threads.emplace_back(lane, l);
  lane(0);
  for (std::thread& t : threads) t.join();
  for (const Status& s : st) KILN_RETURN_IF_ERROR(s);
  return Status::OK();
}

}  // namespace

Status CudaEngine::CheckLookups(const std::vector<const Tensor*>& inputs, Ctx* ctx) const {
  if (ctx->bad_index == nullptr) return Status::OK();
  for (size_t i = 0; i < inputs.size() && i < lookups_.size(); ++i) {
    unsigned long long& flag = ctx->bad_index.get()[i];
    if (!lookups_[i].active || flag == 0) continue;
    const int64_t element = static_cast<int64_t>(flag) - 1;
    flag = 0;  // for the context's next run
    int64_t v = 0;
    const size_t es = lookups_[i].idx64 ? 8 : 4;
    if (cudaMemcpy(&v, static_cast<const char*>(ctx->idx_stage[i].get()) + element * es, es,
                   cudaMemcpyDeviceToHost) != cudaSuccess) {
      cudaGetLastError();
    }
    if (es == 4) v = static_cast<int32_t>(v & 0xffffffff);
    return InvalidArgument("CUDA engine input " + std::to_string(i) + ": index " +
                           std::to_string(v) + " (element " + std::to_string(element) +
                           ") is outside the embedding table's " +
                           std::to_string(lookups_[i].rows) + " rows (found on the GPU)");
  }
  return Status::OK();
}

Status CudaEngine::Stage(const std::vector<const Tensor*>& inputs, Ctx* ctx) const {
  // Into the context's staging buffers (the addresses its CUDA graph was captured with): an
  // upload from the host, or a device-to-device copy. Indices go to their own buffer.
  for (size_t i = 0; i < inputs.size(); ++i) {
    void* dst = lookups_[i].active ? ctx->idx_stage[i].get() : ctx->in_stage[i].get();
    const void* src = inputs[i]->raw_data();
    const size_t bytes = inputs[i]->nbytes();
    if (!inputs[i]->on_device() && bytes >= kPipelinedUpload) {
      cudaPointerAttributes attr{};
      const bool pinned = cudaPointerGetAttributes(&attr, src) == cudaSuccess &&
                          attr.type == cudaMemoryTypeHost;
      cudaGetLastError();
      if (!pinned) {
        KILN_RETURN_IF_ERROR(UploadPageable(src, dst, bytes, ctx));
        continue;
      }
    }
    KILN_CU(cudaMemcpyAsync(dst, src, bytes,
                            inputs[i]->on_device() ? cudaMemcpyDeviceToDevice
                                                   : cudaMemcpyHostToDevice,
                            ctx->stream));
  }
  return Status::OK();
}

Status CudaEngine::Run(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
                       const std::vector<bool>* keep_on_device,
                       std::vector<LayerInfo>* profile) const {
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<Instance> inst, Prepare(inputs));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Ctx> c, inst->Acquire());
  Ctx* ctx = c.get();
  auto run = [&]() -> Status {
    KILN_RETURN_IF_ERROR(Stage(inputs, ctx));
    std::vector<double> ms;
    if (profile != nullptr) {
      ms.assign(prog_.layers.size() + lookups_.size(), 0.0);
      KILN_RETURN_IF_ERROR(inst->RunSteps(ctx, &ms));
    } else {
      KILN_RETURN_IF_ERROR(inst->Launch(ctx, GraphsEnabled()));
    }
    outputs->clear();
    for (size_t i = 0; i < inst->out_dims.size(); ++i) {
      const size_t bytes = static_cast<size_t>(internal::Elements(inst->out_dims[i])) * 4;
      if (keep_on_device != nullptr && i < keep_on_device->size() && (*keep_on_device)[i]) {
        KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> buf,
                              PooledDeviceAlloc(bytes, device_, ctx->stream));
        KILN_CU(cudaMemcpyAsync(buf.get(), ctx->out_stage[i].get(), bytes,
                                cudaMemcpyDeviceToDevice, ctx->stream));
        outputs->push_back(Tensor::WrapDevice(DataType::kFloat32, inst->out_dims[i], buf.get(),
                                              buf, device_));
        continue;
      }
      // A reused page-locked buffer (PinnedHostAlloc), else ordinary memory.
      KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> hb, PinnedHostAlloc(bytes));
      Tensor t = hb ? Tensor::Wrap(DataType::kFloat32, inst->out_dims[i], hb.get(), hb)
                    : Tensor::Empty(DataType::kFloat32, inst->out_dims[i]);
      KILN_CU(cudaMemcpyAsync(t.raw_mutable_data(), ctx->out_stage[i].get(), bytes,
                              cudaMemcpyDeviceToHost, ctx->stream));
      outputs->push_back(std::move(t));
    }
    // Synchronized before returning: device outputs are complete when the caller gets them,
    // and the next engine (on its own stream) may read them at once.
    KILN_CU(cudaStreamSynchronize(ctx->stream));
    KILN_CU(cudaGetLastError());
    KILN_RETURN_IF_ERROR(CheckLookups(inputs, ctx));
    if (profile != nullptr) {
      *profile = Layers();
      for (size_t i = 0; i < profile->size() && i < ms.size(); ++i) (*profile)[i].ms = ms[i];
    }
    return Status::OK();
  };
  Status s = run();
  if (s.ok()) {
    inst->Release(std::move(c));
  } else {
    outputs->clear();
    cudaStreamSynchronize(ctx->stream);
    cudaGetLastError();
  }
  return s.WithContext("CUDA engine");
}

StatusOr<double> CudaEngine::TimeDevice(const std::vector<const Tensor*>& inputs, int warmup,
                                        int iters, bool graph) const {
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<Instance> inst, Prepare(inputs));
  if (inst != main_) return InvalidArgument("TimeDevice: build shapes only");
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Ctx> c, inst->Acquire());
  KILN_RETURN_IF_ERROR(Stage(inputs, c.get()));
  for (int i = 0; i < warmup; ++i) KILN_RETURN_IF_ERROR(inst->Launch(c.get(), graph));
  cudaEvent_t e0, e1;
  KILN_CU(cudaEventCreate(&e0));
  KILN_CU(cudaEventCreate(&e1));
  std::vector<double> ms;
  Status st;
  for (int i = 0; i < iters && st.ok(); ++i) {
    cudaEventRecord(e0, c->stream);
    st = inst->Launch(c.get(), graph);
    cudaEventRecord(e1, c->stream);
    cudaEventSynchronize(e1);
    float t = 0;
    cudaEventElapsedTime(&t, e0, e1);
    ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  KILN_RETURN_IF_ERROR(st);
  KILN_CU(cudaStreamSynchronize(c->stream));
  KILN_CU(cudaGetLastError());
  inst->Release(std::move(c));
  if (ms.empty()) return InvalidArgument("iters must be positive");
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

std::vector<LayerInfo> CudaEngine::Layers() const {
  std::vector<LayerInfo> out;
  for (size_t i = 0; i < prog_.layers.size(); ++i) {
    const Layer& l = prog_.layers[i];
    LayerInfo li;
    li.name = l.nodes.empty() ? l.op : l.nodes[0];
    li.op = l.op;
    li.nodes = l.nodes;
    // In INT8 builds, the convolutions with a calibrated input run in INT8 (cuda_build_int8.cc)
    // and the other layers in FP16 (CudaBackend's FallbackFor): say what each runs in.
    li.precision = PrecisionName(cfg_.precision == Precision::kINT8 ||
                                         cfg_.precision == Precision::kFP8
                                     ? Precision::kFP16
                                     : cfg_.precision);
    if (main_ && i < main_->prec.size() && !main_->prec[i].empty()) li.precision = main_->prec[i];
    if (cfg_.precision == Precision::kFP32 && tf32_ &&
        (l.kind == LayerKind::kConv || l.kind == LayerKind::kMatMul)) {
      li.precision = "TF32";
    }
    li.implementation = main_ && i < main_->impl.size() ? main_->impl[i] : "";
    out.push_back(std::move(li));
  }
  for (const Lookup& l : lookups_) {  // run first, listed last (their layer index)
    if (!l.active) continue;
    LayerInfo li;
    li.name = l.node;
    li.op = "Gather";
    li.nodes = {l.node};
    li.precision = "FP32";
    li.implementation = "kiln:gather_rows(embedding lookup, " + std::to_string(l.rows) + "x" +
                        std::to_string(l.width) + ")";
    out.push_back(std::move(li));
  }
  return out;
}

std::map<std::string, std::string> CudaEngine::Tactics() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->chosen;
}

StatusOr<std::string> CudaEngine::SerializePayload() const {
  const std::map<std::string, std::string> tactics = Tactics();
  std::string out = std::string("KCUDA2") + (tf32_ ? '1' : '0') + std::to_string(tactics.size()) +
                    "\n";
  for (const auto& [k, v] : tactics) out += k + "\t" + v + "\n";
  return out + cpu::SerializeProgram(prog_);
}

size_t TacticCacheSize(int device) { return internal::TacticCache::For(device).size(); }
int64_t TacticTimings() { return internal::TacticCache::Timings().load(); }
void ClearTacticCache(int device) { internal::TacticCache::For(device).Clear(); }

}  // namespace kiln::cuda
