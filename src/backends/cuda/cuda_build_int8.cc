// INT8 convolutions of the CUDA engine (cuda_internal.h Builder): in an INT8 build, a
// convolution whose input has a calibrated range (BuildConfig::int8_ranges) runs through one
// cuDNN graph-API operation graph with INT8 x and w, INT32 accumulation and a float epilogue:
//
//   y = relu(conv(x_q, w_q) * alpha[k] + beta[k] [+ z * gamma]),   written int8 or in dt()
//
// with symmetric quantization as TensorRT's: activations per tensor, x_q = round(x * sx),
// sx = 127 / amax (the calibrated range); weights per output channel, w_q = round(w * sw[k]),
// sw[k] = 127 / max|w[k]|. With s_out = sy = 127 / amax(y) when y is written int8 (else 1):
// alpha[k] = s_out / (sx * sw[k]), beta[k] = bias[k] * s_out, gamma = s_out / sz for an int8
// residual (s_out for one in dt()). ReLU commutes with the positive scale.
//
// A convolution writes its output int8 only when every reader is another INT8 candidate
// reading it as its input or its residual (Q/DQ at precision boundaries only, as TensorRT
// places them), so a ResNet keeps its activations int8 from one convolution to the next; any
// other reader gets a dequantized copy (one step, made once). A convolution whose graph cuDNN
// cannot run is built in dt() from the same tensors, so the choice never changes what is
// computed, only how fast.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/cuda/cuda_internal.h"
#include "backends/cuda/int8_conv.h"

namespace kiln::cuda::internal {

namespace {

// KILN_CUDA_INT8=0: INT8 builds keep every layer in FP16 (an A/B switch for benchmarks).
bool Int8Enabled() {
  static const bool on = [] {
    const char* v = std::getenv("KILN_CUDA_INT8");
    return v == nullptr || std::string(v) != "0";
  }();
  return on;
}

// KILN_CUDA_INT8_1X1: where kiln's INT8 1x1 convolution kernel (int8_conv.h) applies, "0"
// never takes it, a form's name (kInt8Conv1x1Forms) always takes that form (tests), and
// anything else (the default) times the forms against cuDNN's graph on the trial buffers and
// keeps the fastest. Returns kNever, kTimed or the forced form.
constexpr int kNever = -2, kTimed = -1;
int Int8Conv1x1Mode() {
  const char* v = std::getenv("KILN_CUDA_INT8_1X1");
  if (v == nullptr) return kTimed;
  const std::string m(v);
  if (m == "0") return kNever;
  for (int f = 0; f < kInt8Conv1x1NumForms; ++f) {
    if (m == kInt8Conv1x1Forms[f]) return f;
  }
  return kTimed;
}

}  // namespace

const TensorRange* Builder::RangeOf(int t) const {
  if ((sh_->precision != Precision::kINT8 && sh_->precision != Precision::kFP8) || t < 0 ||
      sh_->int8_ranges.empty()) {
    return nullptr;
  }
  auto it = sh_->int8_ranges.find(p_.tensors[t].name);
  if (it == sh_->int8_ranges.end()) return nullptr;
  const float a = it->second.amax;
  return a > 0 && std::isfinite(a) ? &it->second : nullptr;
}

bool Builder::Int8Candidate(size_t i) const {
  if (sh_->precision != Precision::kINT8 || !Int8Enabled() || i >= p_.layers.size()) return false;
  const Layer& l = p_.layers[i];
  if (l.dead || l.kind != LayerKind::kConv || l.Int("nhwc") != 0 || l.Int("group", 1) != 1 ||
      !l.Ints("split").empty() || l.inputs.size() < 2) {
    return false;
  }
  if (p_.tensors[l.inputs[0]].is_const || !p_.tensors[l.inputs[1]].is_const) return false;
  if (l.inputs.size() > 2 && l.inputs[2] >= 0 && !p_.tensors[l.inputs[2]].is_const) return false;
  const Tensor& w = p_.tensors[l.inputs[1]].value;
  if (w.dtype() != DataType::kFloat32 || w.rank() != 4) return false;
  // cuDNN's INT8 NHWC convolutions want channel counts that are multiples of 4 (a 3-channel
  // image stem stays in FP16).
  if (w.dim(0) % 4 != 0 || w.dim(1) % 4 != 0) return false;
  if (dims_[l.inputs[0]].size() != 4 || l.Ints("pads_begin") != l.Ints("pads_end")) return false;
  return RangeOf(l.inputs[0]) != nullptr;
}

bool Builder::OnlyInt8Readers(int t) const {
  for (int o : p_.outputs) {
    if (o == t) return false;
  }
  bool any = false;
  for (size_t j = 0; j < p_.layers.size(); ++j) {
    const Layer& c = p_.layers[j];
    if (c.dead) continue;
    for (size_t k = 0; k < c.inputs.size(); ++k) {
      if (c.inputs[k] != t) continue;
      if (k != 0) return false;
      const bool pool_ok = MaxPoolReaderOf(t) == c.outputs[0] && OnlyInt8Readers(c.outputs[0]);
      if (!Int8Candidate(j) && !pool_ok) return false;
      any = true;
    }
    for (size_t k = 0; k < c.post_ops.size(); ++k) {
      if (c.post_ops[k].tensor != t) continue;
      if (k != 0 || !IsAdd(c.post_ops[k]) || !Int8Candidate(j)) return false;
      any = true;
    }
  }
  return any;
}

int Builder::MaxPoolReaderOf(int t) const {
  int out = -1;
  for (const Layer& c : p_.layers) {
    if (c.dead) continue;
    for (size_t k = 0; k < c.inputs.size(); ++k) {
      if (c.inputs[k] != t) continue;
      const bool max_pool =
          k == 0 && out < 0 && c.kind == LayerKind::kPool && c.post_ops.empty() &&
          static_cast<dnnl::algorithm>(c.Int("alg")) == dnnl::algorithm::pooling_max &&
          c.Int("nhwc") == 0;
      if (!max_pool) return -1;
      out = c.outputs[0];
    }
    for (const PostOp& po : c.post_ops) {
      if (po.tensor == t) return -1;
    }
  }
  for (int o : p_.outputs) {
    if (o == t) return -1;
  }
  return out;
}

StatusOr<int> Builder::Dequantized(int t) {
  TS& s = ts_[t];
  const int q = s.q_buf;
  Use(q);
  const int nb = NewBuf(Bytes(t));
  const int64_t n = Elements(dims_[t]);
  const float inv = 1.f / s.q_scale;
  const DType ty = dt();
  AddStep([=](const RunCtx& r) {
    return CudaStatus(
        Dequantize(static_cast<const int8_t*>(r.P(q)), ty, r.P(nb), n, inv, r.c->stream),
        "dequantize");
  });
  Define(t, nb, true);
  return nb;
}

StatusOr<int> Builder::Quantized(int t, float scale) {
  if (ts_[t].q_buf >= 0 && ts_[t].q_scale == scale) {
    Use(ts_[t].q_buf);
    return ts_[t].q_buf;
  }
  KILN_ASSIGN_OR_RETURN(int b, Nhwc(t));
  const int64_t n = Elements(dims_[t]);
  const int qb = NewBuf(static_cast<size_t>(n));
  const DType ty = dt();
  AddStep([=](const RunCtx& r) {
    return CudaStatus(Quantize(ty, r.P(b), static_cast<int8_t*>(r.P(qb)), n, scale, r.c->stream),
                      "quantize");
  });
  if (ts_[t].q_buf < 0) {
    ts_[t].q_buf = qb;
    ts_[t].q_scale = scale;
  }
  return qb;
}

StatusOr<bool> Builder::ConvInt8(const Dims& x, const Dims& wd, const Dims& y, int zt, bool relu,
                                 size_t pos) {
  if (!Int8Candidate(static_cast<size_t>(layer_))) return false;
  const Layer& l = L();
  const int xt = l.inputs[0], yt = l.outputs[0];
  // An input already int8 (written by an INT8 convolution or max pool) is read at the scale
  // it was written with, without requantizing.
  const float sx = ts_[xt].q_buf >= 0 ? ts_[xt].q_scale : 127.f / RangeOf(xt)->amax;
  // An output only a max pool reads has no range of its own (calibration measures the inputs
  // of convolutions): the pool's output has the same largest magnitude.
  const TensorRange* ry = RangeOf(yt);
  if (ry == nullptr && MaxPoolReaderOf(yt) >= 0) ry = RangeOf(MaxPoolReaderOf(yt));
  const bool want_out8 = pos == l.post_ops.size() && ry != nullptr && OnlyInt8Readers(yt);
  const bool have_z8 = zt >= 0 && ts_[zt].buf < 0 && ts_[zt].q_buf >= 0;
  const int64_t K = wd[0], per = wd[1] * wd[2] * wd[3];

  // Weights: per output channel symmetric int8, KRSC; shared by the engine's instances.
  const Tensor& wv = p_.tensors[l.inputs[1]].value;
  std::vector<float> sw(static_cast<size_t>(K), 1.f);
  {
    const float* src = wv.data<float>();
    for (int64_t k = 0; k < K; ++k) {
      float amax = 0;
      for (int64_t i = 0; i < per; ++i) amax = std::max(amax, std::fabs(src[k * per + i]));
      sw[k] = amax > 0 ? 127.f / amax : 1.f;
    }
  }
  const std::string wkey = std::to_string(l.inputs[1]) + ":s8krsc";
  std::shared_ptr<void> wdev;
  {
    std::lock_guard<std::mutex> lock(sh_->mu);
    auto c = sh_->consts.find(wkey);
    if (c != sh_->consts.end()) wdev = c->second;
  }
  if (!wdev) {
    const float* src = wv.data<float>();
    const int64_t C = wd[1], R = wd[2], S = wd[3];
    std::vector<int8_t> q(static_cast<size_t>(K * per));
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t r = 0; r < R; ++r)
          for (int64_t s = 0; s < S; ++s) {
            const float v = std::nearbyint(src[((k * C + c) * R + r) * S + s] * sw[k]);
            q[((k * R + r) * S + s) * C + c] =
                static_cast<int8_t>(std::max(-127.f, std::min(127.f, v)));
          }
    KILN_ASSIGN_OR_RETURN(wdev, UploadBytes(q.data(), q.size()));
    std::lock_guard<std::mutex> lock(sh_->mu);
    sh_->consts[wkey] = wdev;
  }
  std::vector<float> bias(static_cast<size_t>(K), 0.f);
  if (l.inputs.size() > 2 && l.inputs[2] >= 0) {
    const Tensor& bv = p_.tensors[l.inputs[2]].value;
    if (bv.dtype() != DataType::kFloat32 || bv.num_elements() != K) return false;
    std::copy(bv.data<float>(), bv.data<float>() + K, bias.begin());
  }

  const DType ty = dt();
  const std::string key = DimsText(x) + DimsText(wd) + DimsText(l.Ints("strides")) +
                          DimsText(l.Ints("dilations")) + DimsText(l.Ints("pads_begin")) +
                          (relu ? "r" : "i");
  const size_t ws_limit = static_cast<size_t>(std::min<int64_t>(sh_->ws_limit, int64_t{1} << 30));

  // kiln's 1x1 kernel applies to pointwise convolutions without padding (x int8 NHWC, the
  // residual int8 when there is one, the output int8 or 16-bit).
  const Dims st = l.Ints("strides"), dl = l.Ints("dilations"), pb = l.Ints("pads_begin");
  if (st.size() != 2 || dl.size() != 2 || pb.size() != 2) return false;
  const int k1_mode = Int8Conv1x1Mode();
  const bool pointwise = k1_mode != kNever && wd[2] == 1 && wd[3] == 1 && st[0] == st[1] &&
                         dl[0] == 1 && dl[1] == 1 && pb[0] == 0 && pb[1] == 0 &&
                         Int8Conv1x1Supported(wd[1], K) && y[2] == (x[2] - 1) / st[0] + 1 &&
                         y[3] == (x[3] - 1) / st[1] + 1 && ty != DType::kF32;
  // Its "perm" form reads the weights with their rows reordered (int8_conv.h).
  std::shared_ptr<void> wperm;
  if (pointwise) {
    const std::string pkey = wkey + ":perm";
    {
      std::lock_guard<std::mutex> lock(sh_->mu);
      auto c = sh_->consts.find(pkey);
      if (c != sh_->consts.end()) wperm = c->second;
    }
    if (!wperm) {
      std::vector<int8_t> q(static_cast<size_t>(K * wd[1])), qp(q.size());
      KILN_CU(cudaMemcpy(q.data(), wdev.get(), q.size(), cudaMemcpyDeviceToHost));
      PermuteInt8Conv1x1Weights(q.data(), K, wd[1], qp.data());
      KILN_ASSIGN_OR_RETURN(wperm, UploadBytes(qp.data(), qp.size()));
      std::lock_guard<std::mutex> lock(sh_->mu);
      sh_->consts[pkey] = wperm;
    }
  }

  // kiln's kernel for this layer, but for the buffers a run binds (x, z, y) and the form.
  auto k1_args = [&](const std::shared_ptr<void>& al, const std::shared_ptr<void>& be, float gamma,
                     bool out8) {
    Int8Conv1x1Args a;
    a.w = static_cast<const int8_t*>(wdev.get());
    a.w_perm = static_cast<const int8_t*>(wperm.get());
    a.alpha = static_cast<const float*>(al.get());
    a.beta = static_cast<const float*>(be.get());
    a.gamma = gamma;
    a.relu = relu;
    a.n = x[0];
    a.c = x[1];
    a.h = x[2];
    a.w_ = x[3];
    a.k = K;
    a.stride = static_cast<int>(st[0]);
    a.out_int8 = out8;
    a.out_t = ty;
    return a;
  };

  // Attempts: as wanted (int8 out, the residual as it is stored), then all in dt() but x.
  struct Try {
    bool out8, z8;
  };
  std::vector<Try> tries = {{want_out8, have_z8}};
  if (want_out8 || have_z8) tries.push_back({false, false});
  std::shared_ptr<FusedConvPlan> gp;
  bool use_k1 = false;
  Try got{};
  std::string tkey;
  std::shared_ptr<void> alpha_dev, beta_dev, gamma_dev;
  float sy = 1.f, gamma_used = 1.f, k1_us = 0.f;
  int k1_form = 0;
  for (const Try& t : tries) {
    const float s_out = t.out8 ? 127.f / ry->amax : 1.f;
    const float gamma = zt < 0 ? 1.f : t.z8 ? s_out / ts_[zt].q_scale : s_out;
    FusedConvSpec sp = ConvGeometry(x, wd, y, pb, st, dl);
    sp.x_type = CUDNN_DATA_INT8;
    sp.compute = CUDNN_DATA_INT32;
    sp.scale = true;
    sp.bias_type = CUDNN_DATA_FLOAT;
    sp.y_type = t.out8 ? CUDNN_DATA_INT8 : DnnType(ty);
    sp.residual = zt >= 0;
    sp.z_type = t.z8 ? CUDNN_DATA_INT8 : DnnType(ty);
    sp.z_scale = zt >= 0 && gamma != 1.f;
    sp.relu = relu;
    std::vector<float> alpha(static_cast<size_t>(K)), beta(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) {
      alpha[k] = s_out / (sx * sw[k]);
      beta[k] = bias[k] * s_out;
    }
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> ad, Upload(alpha.data(), K, DType::kF32));
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> bd, Upload(beta.data(), K, DType::kF32));
    std::shared_ptr<void> gd;
    if (sp.z_scale) {
      std::vector<float> g(static_cast<size_t>(K), gamma);
      KILN_ASSIGN_OR_RETURN(gd, Upload(g.data(), K, DType::kF32));
    }
    const std::string k2 = "conv8|ws" + std::to_string(ws_limit) + (t.out8 ? "|o8" : "|o") +
                           std::to_string(static_cast<int>(ty)) +
                           (zt < 0 ? ""
                            : t.z8 ? "|z8"
                                   : "|z") +
                           (sp.z_scale ? "s|" : "|") + key;
    const bool k1_ok = pointwise && (zt < 0 || t.z8);
    const Int8Conv1x1Args k1 = k1_args(ad, bd, gamma, t.out8);

    std::string preset;
    std::shared_ptr<FusedConvPlan> plan;
    {
      std::lock_guard<std::mutex> lock(sh_->mu);
      sh_->FindTactic(k2, &preset);
      auto hit = sh_->graph_plans.find(k2);
      if (hit != sh_->graph_plans.end()) plan = hit->second;
    }
    bool take_k1 = false;
    float t_k1 = 0.f;
    int form_k1 = k1_mode >= 0 && !Int8Conv1x1FormFits(k1_mode, K) ? k1_mode & 1 : k1_mode;
    if (k1_ok &&
        (k1_mode >= 0 ||
         (std::sscanf(preset.c_str(), "kiln1x1:%d:%f", &form_k1, &t_k1) == 2 && form_k1 >= 0 &&
          form_k1 < kInt8Conv1x1NumForms && Int8Conv1x1FormFits(form_k1, K)))) {
      take_k1 = true;  // forced, or chosen by an earlier build of the same layer
    } else if (preset.rfind("kiln1x1:", 0) == 0) {
      preset.clear();  // a choice this build cannot take: time again
    }
    if (!take_k1 && !plan) {
      FusedConvPlan::Choice c;
      const bool use_preset = !preset.empty() && std::sscanf(preset.c_str(), "graph:%d:%d:%f",
                                                             &c.mode, &c.position, &c.us) == 3;
      std::string why;
      if (use_preset) {
        auto made = FusedConvPlan::Create(sh_->build_dnn, sp, static_cast<int64_t>(ws_limit),
                                          FusedConvArgs{}, 1, "INT8 convolution " + key, &c);
        if (made.ok()) plan = std::shared_ptr<FusedConvPlan>(std::move(*made));
      }
      if (!plan) {  // time the candidates (and kiln's 1x1 kernel) on trial buffers
        const size_t ysize = static_cast<size_t>(Elements(y)) * (t.out8 ? 1 : SizeOf(ty));
        KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> tx, DevAlloc(Elements(x)));
        KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> tyb, DevAlloc(ysize));
        KILN_CU(cudaMemset(tx.get(), 0x11, Elements(x)));
        KILN_CU(cudaMemset(tyb.get(), 0, ysize));
        std::shared_ptr<void> tz;
        if (zt >= 0) {
          const size_t zsize = static_cast<size_t>(Elements(y)) * (t.z8 ? 1 : SizeOf(ty));
          KILN_ASSIGN_OR_RETURN(tz, DevAlloc(zsize));
          KILN_CU(cudaMemset(tz.get(), 0x01, zsize));
        }
        FusedConvArgs ta;
        ta.x = tx.get();
        ta.w = wdev.get();
        ta.scale = ad.get();
        ta.bias = bd.get();
        ta.z = tz.get();
        ta.z_scale = gd.get();
        ta.y = tyb.get();
        std::lock_guard<std::mutex> lock(sh_->mu);
        ++TacticCache::Timings();
        auto made = FusedConvPlan::Create(sh_->build_dnn, sp, static_cast<int64_t>(ws_limit), ta,
                                          GraphConvTrials(), "INT8 convolution " + key);
        if (made.ok()) {
          plan = std::shared_ptr<FusedConvPlan>(std::move(*made));
        } else {
          why = made.status().message();
        }
        for (int form = 0; form < kInt8Conv1x1NumForms; ++form) {
          if (!k1_ok) break;
          if (!Int8Conv1x1FormFits(form, K)) continue;
          Int8Conv1x1Args a = k1;
          a.x = static_cast<const int8_t*>(tx.get());
          a.z = static_cast<const int8_t*>(tz.get());
          a.y = tyb.get();
          a.form = form;
          cudaStream_t stream = nullptr;
          cudnnGetStream(sh_->build_dnn, &stream);
          cudaEvent_t e0 = nullptr, e1 = nullptr;
          float us = -1;
          if (cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess &&
              Int8Conv1x1(a, stream) == cudaSuccess &&
              cudaStreamSynchronize(stream) == cudaSuccess) {
            us = TimeBehindSpin([&] { return Int8Conv1x1(a, stream) == cudaSuccess; }, e0, e1,
                                stream, 1000.0);
          }
          if (e0) cudaEventDestroy(e0);
          if (e1) cudaEventDestroy(e1);
          cudaGetLastError();
          KILN_LOG(DEBUG) << "CUDA engine: INT8 1x1 convolution " << key << ": kiln/"
                          << kInt8Conv1x1Forms[form] << " " << us << " us, cuDNN "
                          << (plan ? plan->choice().us : -1.f) << " us";
          if (us > 0 && (!plan || us < plan->choice().us) && (!take_k1 || us < t_k1)) {
            take_k1 = true;
            t_k1 = us;
            form_k1 = form;
          }
        }
      }
      if (!plan && !take_k1) {
        KILN_LOG(INFO) << "CUDA engine: no INT8 graph for " << key << (t.out8 ? " (int8 out)" : "")
                       << (t.z8 ? " (int8 residual)" : "") << ": " << why;
        continue;
      }
      if (plan) {
        std::lock_guard<std::mutex> lock(sh_->mu);
        sh_->graph_plans[k2] = plan;
      }
    }
    if (take_k1) {
      use_k1 = true;
      k1_us = t_k1;
      k1_form = form_k1;
    } else {
      gp = plan;
    }
    got = t;
    tkey = k2;
    alpha_dev = ad;
    beta_dev = bd;
    gamma_dev = gd;
    gamma_used = gamma;
    sy = s_out;
    break;
  }
  if (!gp && !use_k1) return false;  // built in dt() by the caller

  {
    char v[96];
    if (use_k1) {
      std::snprintf(v, sizeof(v), "kiln1x1:%d:%.3f", k1_form, k1_us);
    } else {
      const FusedConvPlan::Choice& c = gp->choice();
      std::snprintf(v, sizeof(v), "graph:%d:%d:%.3f", c.mode, c.position, c.us);
    }
    std::lock_guard<std::mutex> lock(sh_->mu);
    sh_->RecordTactic(tkey, v);
  }
  KILN_ASSIGN_OR_RETURN(int xq, Quantized(xt, sx));
  int zb = -1;
  if (zt >= 0) {
    if (got.z8) {
      zb = ts_[zt].q_buf;
      Use(zb);
    } else {
      KILN_ASSIGN_OR_RETURN(zb, Nhwc(zt));
    }
  }
  const int yb = NewBuf(static_cast<size_t>(Elements(y)) * (got.out8 ? 1 : SizeOf(ty)));
  for (const auto& k : {wdev, wperm, alpha_dev, beta_dev, gamma_dev}) {
    if (k) out_->keep.push_back(k);
  }
  const std::string what = std::string(",int8") + (got.out8 ? "->int8" : "") +
                           (relu ? ",relu" : "") +
                           (zt >= 0 ? (got.z8 ? ",int8 residual" : ",residual") : "");
  out_->prec[layer_] = "INT8";
  if (use_k1) {
    char us[48];
    const std::string tile = kInt8Conv1x1Forms[k1_form];
    std::snprintf(us, sizeof(us), "%s", tile.c_str());
    if (k1_us > 0) std::snprintf(us, sizeof(us), "%s,%.1fus", tile.c_str(), k1_us);
    out_->impl[layer_] = "kiln:conv1x1(" + std::string(us) + what + ")";
    Int8Conv1x1Args base = k1_args(alpha_dev, beta_dev, gamma_used, got.out8);
    base.form = k1_form;
    AddStep([=](const RunCtx& r) {
      Int8Conv1x1Args a = base;
      a.x = static_cast<const int8_t*>(r.P(xq));
      a.z = zb >= 0 ? static_cast<const int8_t*>(r.P(zb)) : nullptr;
      a.y = r.P(yb);
      return CudaStatus(Int8Conv1x1(a, r.c->stream), "INT8 1x1 convolution");
    });
  } else {
    out_->keep.push_back(gp);
    out_->ws_bytes = std::max(out_->ws_bytes, static_cast<size_t>(gp->workspace_bytes()));
    out_->impl[layer_] = "cudnn:graph(" + gp->engine_name() + what + ")";
    const FusedConvPlan* g = gp.get();
    const void* w = wdev.get();
    const void* a = alpha_dev.get();
    const void* b = beta_dev.get();
    const void* gz = gamma_dev.get();
    AddStep([=](const RunCtx& r) {
      FusedConvArgs fa;
      fa.x = r.P(xq);
      fa.w = w;
      fa.scale = a;
      fa.bias = b;
      fa.z = zb >= 0 ? r.P(zb) : nullptr;
      fa.z_scale = gz;
      fa.y = r.P(yb);
      fa.workspace = r.c->ws;
      return g->Run(r.c->dnn, fa);
    });
  }
  if (got.out8) {
    ts_[yt].q_buf = yb;
    ts_[yt].q_scale = sy;
    ts_[yt].nhwc = true;
    Use(yb);
    return true;
  }
  Define(yt, yb, true);
  if (pos < l.post_ops.size()) KILN_RETURN_IF_ERROR(ChainStep(yb, y, true, pos));
  return true;
}

}  // namespace kiln::cuda::internal
