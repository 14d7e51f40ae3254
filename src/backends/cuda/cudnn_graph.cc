// cuDNN graph-API fused convolution (cudnn_graph.h).
#include "backends/cuda/cudnn_graph.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backends/cuda/kernels.h"

namespace kiln::cuda {

namespace {

// Owns one backend descriptor.
class Desc {
 public:
  Desc() = default;
  ~Desc() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  Desc(Desc&& o) noexcept : d_(o.d_) { o.d_ = nullptr; }
  Desc& operator=(Desc&& o) noexcept {
    if (this != &o) {
      if (d_) cudnnBackendDestroyDescriptor(d_);
      d_ = o.d_;
      o.d_ = nullptr;
    }
    return *this;
  }
  cudnnBackendDescriptor_t get() const { return d_; }
  cudnnBackendDescriptor_t* out() { return &d_; }
  cudnnBackendDescriptor_t release() {
    cudnnBackendDescriptor_t d = d_;
    d_ = nullptr;
    return d;
  }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

// Collects the first cuDNN error of a descriptor build with the attribute that failed.
struct Err {
  std::string what;
  std::string first;
  bool ok() const { return first.empty(); }
  void Check(cudnnStatus_t s, const char* step) {
    if (s != CUDNN_STATUS_SUCCESS && first.empty()) {
      first = what + ": cuDNN graph API " + step + ": " + cudnnGetErrorString(s);
    }
  }
};

void Set(Err* e, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t a,
         cudnnBackendAttributeType_t t, int64_t n, const void* v, const char* step) {
  if (!e->ok()) return;
  e->Check(cudnnBackendSetAttribute(d, a, t, n, v), step);
}

enum Uid : int64_t { kX = 1, kW, kY, kB, kZ, kS, kZS, kV0 = 100 };

// A 4-D tensor descriptor of logical NCHW dims stored NHWC ([1,C,1,1] for per-channel ones).
Desc Tensor(Err* e, int64_t uid, cudnnDataType_t t, const int64_t* d, bool is_virtual) {
  Desc desc;
  if (!e->ok()) return desc;
  e->Check(cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, desc.out()),
           "tensor create");
  if (!e->ok()) return desc;
  const int64_t dims[4] = {d[0], d[1], d[2], d[3]};
  const int64_t strides[4] = {d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]};
  const int64_t align = 16;
  const bool v = is_virtual;
  Set(e, desc.get(), CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &t, "tensor type");
  Set(e, desc.get(), CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims, "tensor dims");
  Set(e, desc.get(), CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides, "tensor strides");
  Set(e, desc.get(), CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor uid");
  Set(e, desc.get(), CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align,
      "tensor alignment");
  Set(e, desc.get(), CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &v, "tensor virtual");
  if (e->ok()) e->Check(cudnnBackendFinalize(desc.get()), "tensor finalize");
  return desc;
}

// A pointwise operation y = mode(x[, b]) with float math.
Desc Pointwise(Err* e, cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
               cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t y, std::vector<Desc>* keep) {
  Desc pw, op;
  if (!e->ok()) return op;
  e->Check(cudnnBackendCreateDescriptor(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, pw.out()),
           "pointwise create");
  const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
  Set(e, pw.get(), CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode,
      "pointwise mode");
  Set(e, pw.get(), CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec,
      "pointwise precision");
  if (e->ok()) e->Check(cudnnBackendFinalize(pw.get()), "pointwise finalize");
  if (!e->ok()) return op;
  e->Check(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, op.out()),
           "pointwise op create");
  cudnnBackendDescriptor_t p = pw.get();
  Set(e, op.get(), CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
      &p, "pointwise op desc");
  Set(e, op.get(), CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x,
      "pointwise op x");
  if (b != nullptr) {
    Set(e, op.get(), CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b,
        "pointwise op b");
  }
  Set(e, op.get(), CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y,
      "pointwise op y");
  if (e->ok()) e->Check(cudnnBackendFinalize(op.get()), "pointwise op finalize");
  keep->push_back(std::move(pw));
  return op;
}

// Every descriptor a plan was made from, kept alive as long as the plan.
struct Holder {
  std::vector<Desc> d;
};

// Executes `plan` with the spec's pointers.
cudnnStatus_t Execute(cudnnHandle_t h, cudnnBackendDescriptor_t plan, const FusedConvArgs& a,
                      bool scale, bool residual, bool z_scale) {
  int64_t uids[7] = {kX, kW, kB, kY, 0, 0, 0};
  void* ptrs[7] = {const_cast<void*>(a.x),
                   const_cast<void*>(a.w),
                   const_cast<void*>(a.bias),
                   a.y,
                   nullptr,
                   nullptr,
                   nullptr};
  int n = 4;
  if (scale) {
    uids[n] = kS;
    ptrs[n++] = const_cast<void*>(a.scale);
  }
  if (residual) {
    uids[n] = kZ;
    ptrs[n++] = const_cast<void*>(a.z);
  }
  if (residual && z_scale) {
    uids[n] = kZS;
    ptrs[n++] = const_cast<void*>(a.z_scale);
  }
  cudnnBackendDescriptor_t vp = nullptr;
  cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  void* ws = a.workspace;
  s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n,
                                 ptrs);
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1,
                                 &ws);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendFinalize(vp);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendExecute(h, plan, vp);
  cudnnBackendDestroyDescriptor(vp);
  return s;
}

}  // namespace

ConvApi ConvApiMode() {
  const char* v = std::getenv("KILN_CUDA_CONV");
  if (v == nullptr) return ConvApi::kAuto;
  const std::string m = v;
  return m == "legacy" ? ConvApi::kLegacy : m == "graph" ? ConvApi::kGraph : ConvApi::kAuto;
}

int GraphConvTrials() {
  const char* v = std::getenv("KILN_CUDA_CONV_TRIALS");
  if (v == nullptr) return 6;
  const int n = std::atoi(v);
  return std::clamp(n, 1, 64);
}

FusedConvPlan::~FusedConvPlan() {
  if (plan_) cudnnBackendDestroyDescriptor(plan_);
}

StatusOr<std::unique_ptr<FusedConvPlan>> FusedConvPlan::Create(
    cudnnHandle_t handle, const FusedConvSpec& sp, int64_t ws_limit, const FusedConvArgs& trial,
    int max_candidates, const std::string& what, const Choice* preset) {
  Err e{what, ""};
  auto hold = std::make_shared<Holder>();
  std::vector<Desc>& keep = hold->d;
  const int64_t bdims[4] = {1, sp.y[1], 1, 1};
  Desc x = Tensor(&e, kX, sp.x_type, sp.x, false);
  Desc w = Tensor(&e, kW, sp.x_type, sp.w, false);
  Desc y = Tensor(&e, kY, sp.y_type, sp.y, false);
  Desc b = Tensor(&e, kB, sp.bias_type, bdims, false);
  Desc s, z, zs;
  if (sp.scale) s = Tensor(&e, kS, CUDNN_DATA_FLOAT, bdims, false);
  if (sp.residual) z = Tensor(&e, kZ, sp.z_type, sp.y, false);
  if (sp.residual && sp.z_scale) zs = Tensor(&e, kZS, CUDNN_DATA_FLOAT, bdims, false);

  // conv -> v0 [-> *scale v1] -> +bias -> [+z (or + z*z_scale)] -> [relu] -> y; each
  // intermediate virtual float.
  Desc conv;
  if (e.ok()) {
    e.Check(cudnnBackendCreateDescriptor(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, conv.out()),
            "conv create");
    const int64_t nsp = 2;
    const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    Set(&e, conv.get(), CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &sp.compute,
        "conv compute type");
    Set(&e, conv.get(), CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode,
        "conv mode");
    Set(&e, conv.get(), CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &nsp,
        "conv spatial dims");
    Set(&e, conv.get(), CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, sp.dil,
        "conv dilations");
    Set(&e, conv.get(), CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, sp.stride,
        "conv strides");
    Set(&e, conv.get(), CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, sp.pad,
        "conv pre paddings");
    Set(&e, conv.get(), CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, sp.pad,
        "conv post paddings");
    if (e.ok()) e.Check(cudnnBackendFinalize(conv.get()), "conv finalize");
  }
  int64_t next_uid = kV0;
  const cudnnDataType_t acc = CUDNN_DATA_FLOAT;
  auto virt = [&]() { return Tensor(&e, next_uid++, acc, sp.y, true); };
  std::vector<Desc> ops;
  Desc cur = virt();
  {
    Desc op;
    if (e.ok()) {
      e.Check(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
                                           op.out()),
              "conv op create");
      cudnnBackendDescriptor_t xd = x.get(), wd = w.get(), yd = cur.get(), cd = conv.get();
      const float alpha = 1.f, beta = 0.f;
      Set(&e, op.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR,
          1, &xd, "conv op x");
      Set(&e, op.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR,
          1, &wd, "conv op w");
      Set(&e, op.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR,
          1, &yd, "conv op y");
      Set(&e, op.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
          CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cd, "conv op desc");
      Set(&e, op.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha,
          "conv op alpha");
      Set(&e, op.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta,
          "conv op beta");
      if (e.ok()) e.Check(cudnnBackendFinalize(op.get()), "conv op finalize");
    }
    ops.push_back(std::move(op));
  }
  // The remaining stages in order; the last one writes y.
  struct Stage {
    cudnnPointwiseMode_t mode;
    cudnnBackendDescriptor_t operand;
  };
  std::vector<Stage> stages;
  if (sp.scale) stages.push_back({CUDNN_POINTWISE_MUL, s.get()});
  stages.push_back({CUDNN_POINTWISE_ADD, b.get()});
  // A scaled residual: its own branch z * z_scale -> virtual float, then added.
  Desc zv;
  if (sp.residual && sp.z_scale) {
    zv = virt();
    ops.push_back(Pointwise(&e, CUDNN_POINTWISE_MUL, z.get(), zs.get(), zv.get(), &keep));
  }
  if (sp.residual) stages.push_back({CUDNN_POINTWISE_ADD, sp.z_scale ? zv.get() : z.get()});
  if (sp.relu) stages.push_back({CUDNN_POINTWISE_RELU_FWD, nullptr});
  for (size_t i = 0; i < stages.size() && e.ok(); ++i) {
    const bool last = i + 1 == stages.size();
    Desc nxt;
    if (!last) nxt = virt();
    ops.push_back(Pointwise(&e, stages[i].mode, cur.get(), stages[i].operand,
                            last ? y.get() : nxt.get(), &keep));
    keep.push_back(std::move(cur));
    cur = std::move(nxt);
  }
  Desc graph;
  if (e.ok()) {
    e.Check(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, graph.out()),
            "graph create");
    std::vector<cudnnBackendDescriptor_t> od;
    for (const Desc& o : ops) od.push_back(o.get());
    Set(&e, graph.get(), CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
        static_cast<int64_t>(od.size()), od.data(), "graph ops");
    Set(&e, graph.get(), CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle,
        "graph handle");
    if (e.ok()) e.Check(cudnnBackendFinalize(graph.get()), "graph finalize");
  }
  if (!e.ok()) return NotFound(e.first);
  for (Desc* d : {&x, &w, &y, &b, &s, &z, &zs, &zv, &conv, &cur}) keep.push_back(std::move(*d));
  for (Desc& d : ops) keep.push_back(std::move(d));

  // Heuristics (mode A), then a fallback list if A proposes nothing that finalizes.
  std::vector<std::pair<float, std::unique_ptr<FusedConvPlan>>> timed;
  std::string reasons;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
    if (e0) cudaEventDestroy(e0);
    cudaGetLastError();
    return Internal(what + ": cudaEventCreate failed");
  }
  cudaStream_t stream = nullptr;
  cudnnGetStream(handle, &stream);
  for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    if (!timed.empty()) break;
    const int mode_id = mode == CUDNN_HEUR_MODE_A ? 0 : 1;
    if (preset != nullptr && preset->mode != mode_id) continue;
    Desc heur;
    Err he{what, ""};
    he.Check(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, heur.out()),
             "heuristics create");
    cudnnBackendDescriptor_t gd = graph.get();
    Set(&he, heur.get(), CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
        &gd, "heuristics graph");
    Set(&he, heur.get(), CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode,
        "heuristics mode");
    if (he.ok()) he.Check(cudnnBackendFinalize(heur.get()), "heuristics finalize");
    int64_t count = 0;
    if (he.ok()) {
      he.Check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
               "heuristics count");
    }
    if (!he.ok() || count <= 0) {
      reasons += he.ok() ? " (no engine proposed)" : " (" + he.first + ")";
      continue;
    }
    std::vector<cudnnBackendDescriptor_t> raw;
    for (int64_t i = 0; i < count && he.ok(); ++i) {
      Desc c;
      he.Check(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, c.out()),
               "engine config create");
      raw.push_back(c.get());
      keep.push_back(std::move(c));
    }
    int64_t got = 0;
    if (he.ok()) {
      he.Check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, raw.data()),
               "heuristics results");
    }
    if (!he.ok()) {
      reasons += " (" + he.first + ")";
      continue;
    }
    keep.push_back(std::move(heur));
    int finalized = 0;
    for (int64_t i = 0; i < got && finalized < max_candidates; ++i) {
      if (preset != nullptr && i != preset->position) continue;
      Desc plan;
      if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, plan.out()) !=
          CUDNN_STATUS_SUCCESS)
        continue;
      cudnnBackendDescriptor_t cd = raw[i];
      if (cudnnBackendSetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE,
                                   1, &handle) != CUDNN_STATUS_SUCCESS ||
          cudnnBackendSetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                   CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cd) != CUDNN_STATUS_SUCCESS)
        continue;
      const cudnnStatus_t fs = cudnnBackendFinalize(plan.get());
      if (fs != CUDNN_STATUS_SUCCESS) {
        if (reasons.size() < 400) reasons += std::string(" ") + cudnnGetErrorString(fs);
        continue;
      }
      int64_t ws = 0, n = 0;
      cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                               CUDNN_TYPE_INT64, 1, &n, &ws);
      if (ws > ws_limit) continue;
      ++finalized;
      // Engine index for the name.
      int64_t index = -1;
      {
        Desc eng;
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, eng.out()) ==
            CUDNN_STATUS_SUCCESS) {
          cudnnBackendDescriptor_t ed = eng.get();
          if (cudnnBackendGetAttribute(cd, CUDNN_ATTR_ENGINECFG_ENGINE,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n,
                                       &ed) == CUDNN_STATUS_SUCCESS) {
            cudnnBackendGetAttribute(ed, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n,
                                     &index);
          }
        }
      }
      // cuDNN 9.14's engine 2 computes INT8 convolutions correctly when launched directly but
      // not always inside a captured CUDA graph, which is how kiln's engines replay: a 1x1
      // convolution adding the int8 output of another came out wrong (rel. L2 0.6-0.9; the
      // same engines with KILN_CUDA_GRAPHS=0 gave 9e-3; tests/backends/cuda/
      // cuda_int8_test.cc, ScaledResidualMatchesReference). Not offered for INT8 graphs.
      if (sp.x_type == CUDNN_DATA_INT8 && index == 2) continue;
      void* wsp = nullptr;
      if (ws > 0 && cudaMalloc(&wsp, static_cast<size_t>(ws)) != cudaSuccess) {
        cudaGetLastError();
        continue;
      }
      FusedConvArgs a = trial;
      a.workspace = wsp;
      // One warm-up, then the mean of 10 runs (CUDA events on the handle's stream, the runs
      // queued behind a spin so that their host cost is not what gets timed).
      auto run = [&] {
        return Execute(handle, plan.get(), a, sp.scale, sp.residual, sp.z_scale) ==
               CUDNN_STATUS_SUCCESS;
      };
      float us = -1;
      if (preset != nullptr) {
        us = preset->us;  // chosen before: finalized, not timed again
      } else if (run() && cudaStreamSynchronize(stream) == cudaSuccess) {
        us = TimeBehindSpin(run, e0, e1, stream, 1000.0);
      }
      if (wsp) cudaFree(wsp);
      cudaGetLastError();
      if (us < 0) continue;
      std::unique_ptr<FusedConvPlan> p(new FusedConvPlan());
      p->plan_ = plan.release();
      p->ws_ = ws;
      p->scale_ = sp.scale;
      p->residual_ = sp.residual;
      p->z_scale_ = sp.residual && sp.z_scale;
      p->hold_ = hold;
      p->us_ = us;
      p->choice_ = Choice{mode_id, static_cast<int>(i), us};
      char buf[64];
      std::snprintf(buf, sizeof(buf), "eng%lld,%.1fus", static_cast<long long>(index), us);
      p->name_ = buf;
      timed.emplace_back(us, std::move(p));
    }
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  keep.push_back(std::move(graph));
  if (timed.empty())
    return NotFound(what + ": no cuDNN graph-API engine runs this convolution" + reasons);
  auto best = std::min_element(timed.begin(), timed.end(),
                               [](const auto& a, const auto& b) { return a.first < b.first; });
  return std::move(best->second);
}

Status FusedConvPlan::Run(cudnnHandle_t handle, const FusedConvArgs& a) const {
  const cudnnStatus_t s = Execute(handle, plan_, a, scale_, residual_, z_scale_);
  if (s == CUDNN_STATUS_SUCCESS) return Status::OK();
  return Internal("cudnnBackendExecute (fused convolution " + name_ +
                  "): " + cudnnGetErrorString(s));
}

}  // namespace kiln::cuda
