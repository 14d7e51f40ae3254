// Internals of the CUDA engine (cuda_engine.h) shared by its source files: status / type /
// layout helpers, the per-engine and per-call runtime state (EngineShared, Ctx, Instance and its
// step list) and the Builder that lowers a fused program into GPU steps. The Builder's members are
// defined in cuda_engine.cc (buffers, layouts, operands, I/O, Build), cuda_build_conv.cc
// (convolution, pooling), cuda_build_matmul.cc (matmul) and cuda_build_ops.cc (the rest).
// Not a public header: include it only from src/backends/cuda.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <dnnl.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include "backends/cpu/layers.h"
#include "backends/cuda/cuda_engine.h"
#include "backends/cuda/cudnn_graph.h"
#include "backends/cuda/kernels.h"
#include "core/logging.h"

namespace kiln::cuda::internal {

using cpu::AttentionMatch;
using cpu::Layer;
using cpu::LayerKind;
using cpu::MatchAttention;
using cpu::PostOp;
using Dims = std::vector<int64_t>;

inline std::string DimsText(const Dims& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}
// A graph-API convolution spec with the geometry filled in: NCHW x, KCRS w and y dims, and
// the 2-D pads (begin = end), strides and dilations; types and fused stages are the caller's.
inline FusedConvSpec ConvGeometry(const Dims& x, const Dims& w, const Dims& y, const Dims& pads,
                                  const Dims& strides, const Dims& dils) {
  FusedConvSpec sp;
  for (int k = 0; k < 4; ++k) {
    sp.x[k] = x[k];
    sp.w[k] = w[k];
    sp.y[k] = y[k];
  }
  for (int k = 0; k < 2; ++k) {
    sp.pad[k] = pads[k];
    sp.stride[k] = strides[k];
    sp.dil[k] = dils[k];
  }
  return sp;
}
inline Status CudaStatus(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::OK();
  return Internal(std::string(what) + ": CUDA error " + cudaGetErrorName(e) + " (" +
                  cudaGetErrorString(e) + ")");
}
inline Status DnnStatus(cudnnStatus_t e, const char* what) {
  if (e == CUDNN_STATUS_SUCCESS) return Status::OK();
  return Internal(std::string(what) + ": cuDNN error " + cudnnGetErrorString(e));
}
inline Status LtStatus(cublasStatus_t e, const char* what) {
  if (e == CUBLAS_STATUS_SUCCESS) return Status::OK();
  return Internal(std::string(what) + ": cuBLASLt error " + std::to_string(static_cast<int>(e)));
}
#define KILN_CU(expr) KILN_RETURN_IF_ERROR(::kiln::cuda::internal::CudaStatus((expr), #expr))
#define KILN_DNN(expr) KILN_RETURN_IF_ERROR(::kiln::cuda::internal::DnnStatus((expr), #expr))
#define KILN_LT(expr) KILN_RETURN_IF_ERROR(::kiln::cuda::internal::LtStatus((expr), #expr))

inline int64_t Elements(const Dims& d) {
  int64_t n = 1;
  for (int64_t v : d) n *= v;
  return n;
}

inline StatusOr<std::shared_ptr<void>> DevAlloc(size_t bytes) {
  void* p = nullptr;
  if (bytes == 0) bytes = 256;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return ResourceExhausted("cudaMalloc of " + std::to_string(bytes) +
                             " bytes failed: " + cudaGetErrorString(e));
  }
  return std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
}

// A new device buffer holding `bytes` bytes copied from the host (packed weights).
inline StatusOr<std::shared_ptr<void>> UploadBytes(const void* host, size_t bytes) {
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> d, DevAlloc(bytes));
  KILN_CU(cudaMemcpy(d.get(), host, bytes, cudaMemcpyHostToDevice));
  return d;
}

// Storage type per precision (INT8, FP8: FP16, what the layers that do not run quantized use).
inline DType TypeFor(Precision p) {
  switch (p) {
    case Precision::kFP16:
    case Precision::kINT8:
    case Precision::kFP8:
      return DType::kF16;
    case Precision::kBF16:
      return DType::kBF16;
    default:
      return DType::kF32;
  }
}
inline cudnnDataType_t DnnType(DType t) {
  return t == DType::kF32   ? CUDNN_DATA_FLOAT
         : t == DType::kF16 ? CUDNN_DATA_HALF
                            : CUDNN_DATA_BFLOAT16;
}
inline cudaDataType_t LtType(DType t) {
  return t == DType::kF32 ? CUDA_R_32F : t == DType::kF16 ? CUDA_R_16F : CUDA_R_16BF;
}

// float32 host values -> a new device buffer of storage type t (constants; cuda_engine.cc).
StatusOr<std::shared_ptr<void>> Upload(const float* v, int64_t n, DType t);

// Row-major strides of dims.
inline Dims Contiguous(const Dims& d) {
  Dims s(d.size(), 1);
  for (int i = static_cast<int>(d.size()) - 2; i >= 0; --i) s[i] = s[i + 1] * d[i + 1];
  return s;
}
// Element strides of each logical dim of a tensor stored plain or NHWC (rank 4).
inline Dims LogicalStrides(const Dims& d, bool nhwc) {
  if (!nhwc) return Contiguous(d);
  const int64_t c = d[1], h = d[2], w = d[3];
  return {h * w * c, 1, w * c, c};
}
inline std::vector<int> PhysPerm(size_t rank, bool nhwc) {
  if (nhwc) return {0, 2, 3, 1};
  std::vector<int> p(rank);
  std::iota(p.begin(), p.end(), 0);
  return p;
}
// NHWC and NCHW are the same bytes when C == 1 or H * W == 1.
inline bool SameAsPlain(const Dims& d) { return d.size() == 4 && (d[1] == 1 || d[2] * d[3] == 1); }

struct EltMap {
  bool ok = false;
  int alg = 0;
};
// kernels.h algorithm of a oneDNN eltwise / binary algorithm; ok == false when it has none
// (cuda_engine.cc).
EltMap MapElt(int32_t a);
EltMap MapBin(int32_t a);

// A residual add post-op (sum, or binary add of a tensor): what a fused conv / matmul can take.
inline bool IsAdd(const PostOp& po) {
  return po.kind == PostOp::kSum ||
         (po.kind == PostOp::kBinary &&
          static_cast<dnnl::algorithm>(po.alg) == dnnl::algorithm::binary_add);
}

inline bool IsRelu0(const PostOp& po) {
  return po.kind == PostOp::kEltwise &&
         static_cast<dnnl::algorithm>(po.alg) == dnnl::algorithm::eltwise_relu && po.alpha == 0.f;
}

// ----------------------------------------------------------------------------- shared state

template <typename T>
T& PerDevice(int device);  // cuda_engine.cc

// Build-time tactic choices (TensorRT's timing cache): the convolution path and algorithm /
// graph-API engine, the cuBLASLt matmul algorithm, by a configuration key that names everything
// the choice depends on (dims, types, fusion, workspace limit, API mode). One per GPU for the
// process: a second engine with the same layer configuration on the same GPU reuses the first
// one's choice instead of timing again (the device fingerprint of a plan covers the rest).
class TacticCache {
 public:
  static TacticCache& For(int device);
  // Tactic timings this process ran (a graph-API candidate search, a legacy algorithm search or
  // a matmul candidate search counts one), for tests and logs.
  static std::atomic<int64_t>& Timings() {
    static std::atomic<int64_t> n{0};
    return n;
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    map_.clear();
  }
  bool Get(const std::string& key, std::string* value) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return false;
    *value = it->second;
    return true;
  }
  void Put(const std::string& key, const std::string& value) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it != map_.end() && it->second == value) return;
    map_[key] = value;
    SaveLocked();
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return map_.size();
  }

  // The file behind the cache: KILN_TIMING_CACHE (kiln --timing-cache FILE) + ".cuda<N>",
  // headed by the GPU's fingerprint; empty when the variable is unset.
  const std::string& path() const { return path_; }

 private:
  template <typename T>
  friend T& PerDevice(int device);
  explicit TacticCache(int device);  // loads path() when it names a cache for this GPU
  void SaveLocked() const;  // temporary file + rename
  mutable std::mutex mu_;
  std::map<std::string, std::string> map_;
  std::string path_, header_;
};

struct EngineShared {
  int device = 0;
  DType dt = DType::kF32;
  // INT8 builds: the calibrated ranges by tensor name (BuildConfig::int8_ranges); the layers
  // that have one for their input run in INT8 where cuDNN has a kernel (cuda_build_int8.cc),
  // the rest in `dt` (FP16).
  Precision precision = Precision::kFP32;
  std::map<std::string, TensorRange> int8_ranges;
  bool tf32 = true;
  int64_t ws_limit = int64_t{1} << 30;
  cublasLtHandle_t lt = nullptr;
  cudnnHandle_t build_dnn = nullptr;  // for algorithm search at build time (under mu)
  std::mutex mu;
  std::map<std::string, std::shared_ptr<void>> consts;  // uploaded weights
  std::map<std::string, std::vector<cudnnConvolutionFwdAlgoPerf_t>> conv_algos;
  struct FusedChoice {
    cudnnConvolutionFwdAlgo_t algo;
    size_t ws;
    float us;  // trial time of one fused call
  };
  std::map<std::string, FusedChoice> fused_choice;
  // Graph-API fused convolution plans per configuration (null: no graph engine runs it).
  std::map<std::string, std::shared_ptr<FusedConvPlan>> graph_plans;
  // cuBLASLt algorithm per matmul configuration, the fastest of the heuristic's candidates on
  // trial buffers (cuda_build_matmul.cc).
  std::map<std::string, cublasLtMatmulAlgo_t> matmul_algos;
  // Tactic choices: `preset` from the plan this engine was loaded from, `chosen` every choice
  // its builds made or reused (written into its plan, so loading the plan times nothing).
  std::map<std::string, std::string> preset, chosen;
  // The earlier choice for `key`: the plan's, else this process's on this GPU (caller holds mu).
  bool FindTactic(const std::string& key, std::string* value) const {
    static const bool reuse = [] {  // KILN_CUDA_REUSE_TACTICS=0: time every build
      const char* v = std::getenv("KILN_CUDA_REUSE_TACTICS");
      return v == nullptr || std::string(v) != "0";
    }();
    if (!reuse) return false;
    auto it = preset.find(key);
    if (it != preset.end()) {
      *value = it->second;
      return true;
    }
    return TacticCache::For(device).Get(key, value);
  }
  // Records a choice (made or reused) for the plan and the process (caller holds mu).
  void RecordTactic(const std::string& key, const std::string& value) {
    chosen[key] = value;
    TacticCache::For(device).Put(key, value);
  }
  ~EngineShared() {
    if (lt) cublasLtDestroy(lt);
    if (build_dnn) cudnnDestroy(build_dnn);
  }
};

// Device memory for engine intermediates and workspaces, pooled across every engine and shape
// instance of one GPU (issue 10: "planned and pooled across engines"). Each engine's plan says
// how many bytes one run needs (its lifetime-planned arena plus its largest workspace); a run
// leases a block at least that big for its duration and gives it back after its stream is
// synchronized. Engines that run one after another (the EngineOps of one graph, the shape
// instances of a dynamic engine) therefore share one block, sized to the largest of them,
// instead of each keeping its own; concurrent runs get one block each. A run prefers the block
// its CUDA graph was captured with; when it gets another (the pool grew, or another thread
// holds it) the graph is captured again.
class ArenaPool {
 public:
  static ArenaPool& For(int device);  // one per GPU, for the life of the process

  class Lease {
   public:
    Lease() = default;
    Lease(ArenaPool* pool, int block, void* ptr) : pool_(pool), block_(block), ptr_(ptr) {}
    Lease(Lease&& o) noexcept { *this = std::move(o); }
    Lease& operator=(Lease&& o) noexcept {
      if (this != &o) {
        Reset();
        std::swap(pool_, o.pool_);
        std::swap(block_, o.block_);
        std::swap(ptr_, o.ptr_);
      }
      return *this;
    }
    ~Lease() { Reset(); }
    void* ptr() const { return ptr_; }
    void Reset() {
      if (pool_ != nullptr) pool_->Give(block_);
      pool_ = nullptr;
      ptr_ = nullptr;
    }

   private:
    ArenaPool* pool_ = nullptr;
    int block_ = -1;
    void* ptr_ = nullptr;
  };

  // A free block of at least `bytes`: block `prefer` if it is free and big enough, else the
  // smallest that fits, else a new one (replacing the largest free block that is too small).
  StatusOr<Lease> Take(size_t bytes, const void* prefer);
  ArenaPoolStats stats() const;  // cuda_engine.h

 private:
  template <typename T>
  friend T& PerDevice(int device);
  explicit ArenaPool(int device) : device_(device) {}
  void Give(int block);
  struct Block {
    std::shared_ptr<void> mem;
    size_t bytes = 0;
    bool busy = false;
  };
  int device_;
  mutable std::mutex mu_;
  std::vector<Block> blocks_;  // never shrinks: a lease keeps its index
  ArenaPoolStats stats_;
};

// Per-call state: stream, cuDNN handle, leased arena and workspace, I/O staging (float32).
struct Ctx {
  cudaStream_t stream = nullptr;
  cudnnHandle_t dnn = nullptr;
  ArenaPool::Lease lease;     // held while a run uses arena / ws
  void* arena = nullptr;      // intermediates (the lifetime plan's offsets)
  void* ws = nullptr;         // cuDNN / cuBLASLt workspace, after the arena
  std::vector<std::shared_ptr<void>> in_stage, out_stage;
  std::vector<std::shared_ptr<void>> idx_stage;  // embedding indices, by engine input
  // Per engine input with a lookup: 1 + the element of the first out-of-range index the GPU
  // saw, 0 if none (mapped page-locked memory: written by GatherRows, read after the stream).
  std::shared_ptr<unsigned long long> bad_index;  // idx_stage.size() counters
  unsigned long long* bad_index_dev = nullptr;
  // Page-locked bounce buffers and their events for large pageable host inputs (two per
  // copy lane, made on first use; cuda_engine.cc UploadPageable).
  std::vector<std::shared_ptr<void>> bounce;
  std::vector<cudaEvent_t> bounce_ev;
  cudaGraphExec_t graph = nullptr;
  const void* graph_arena = nullptr;  // the arena `graph` was captured with
  bool graph_failed = false;
  ~Ctx() {
    for (cudaEvent_t e : bounce_ev) cudaEventDestroy(e);
    if (graph) cudaGraphExecDestroy(graph);
    if (dnn) cudnnDestroy(dnn);
    if (stream) cudaStreamDestroy(stream);
  }
};

struct Buf {
  enum Kind { kArena, kConst, kIn, kOut } kind = kArena;
  size_t bytes = 0;
  size_t offset = 0;
  const void* cptr = nullptr;
  int ext = -1;
  int first = -1, last = -1;
};

struct RunCtx {
  Ctx* c;
  const std::vector<Buf>* bufs;
  void* P(int b) const {
    const Buf& x = (*bufs)[b];
    switch (x.kind) {
      case Buf::kArena:
        return static_cast<char*>(c->arena) + x.offset;
      case Buf::kConst:
        return const_cast<void*>(x.cptr);
      case Buf::kIn:
        return c->in_stage[x.ext].get();
      case Buf::kOut:
        return c->out_stage[x.ext].get();
    }
    return nullptr;
  }
};

struct Step {
  int layer = -1;
  std::function<Status(const RunCtx&)> run;
};

struct Instance {
  int device = 0;
  DType dt = DType::kF32;
  std::vector<Buf> bufs;
  std::vector<Step> steps;
  size_t arena_bytes = 0, ws_bytes = 0;
  std::vector<Dims> in_dims, out_dims;  // program inputs (looked-up rows) and outputs
  std::vector<Dims> engine_in_dims;     // what Execute takes (indices where a lookup is)
  std::vector<size_t> idx_bytes;        // by engine input: bytes of its indices, 0: none
  std::vector<std::string> impl;  // per program layer
  // Per program layer: the precision it ran in when not the engine's (INT8 convolutions).
  std::vector<std::string> prec;
  std::vector<std::shared_ptr<void>> keep;
  std::shared_ptr<EngineShared> shared;

  // A context with its arena leased (ArenaPool); Release returns both.
  StatusOr<std::unique_ptr<Ctx>> Acquire() const {
    std::unique_ptr<Ctx> c;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!pool.empty()) {
        c = std::move(pool.back());
        pool.pop_back();
      }
    }
    if (c == nullptr) {
      c = std::make_unique<Ctx>();
      KILN_CU(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
      KILN_DNN(cudnnCreate(&c->dnn));
      KILN_DNN(cudnnSetStream(c->dnn, c->stream));
      for (const Dims& d : in_dims) {
        KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> p, DevAlloc(Elements(d) * 4));
        c->in_stage.push_back(p);
      }
      for (const Dims& d : out_dims) {
        KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> p, DevAlloc(Elements(d) * 4));
        c->out_stage.push_back(p);
      }
      for (size_t b : idx_bytes) {
        std::shared_ptr<void> p;
        if (b > 0) {
          KILN_ASSIGN_OR_RETURN(p, DevAlloc(b));
        }
        c->idx_stage.push_back(p);
      }
      if (std::any_of(idx_bytes.begin(), idx_bytes.end(), [](size_t b) { return b > 0; })) {
        void* h = nullptr;
        KILN_CU(cudaHostAlloc(&h, idx_bytes.size() * sizeof(unsigned long long),
                              cudaHostAllocMapped));
        c->bad_index.reset(static_cast<unsigned long long*>(h),
                           [](unsigned long long* q) { cudaFreeHost(q); });
        std::fill_n(c->bad_index.get(), idx_bytes.size(), 0ull);
        void* d = nullptr;
        KILN_CU(cudaHostGetDevicePointer(&d, h, 0));
        c->bad_index_dev = static_cast<unsigned long long*>(d);
      }
    }
    const size_t ws_offset = (arena_bytes + 255) / 256 * 256;
    KILN_ASSIGN_OR_RETURN(c->lease,
                          ArenaPool::For(device).Take(ws_offset + ws_bytes, c->graph_arena));
    c->arena = c->lease.ptr();
    c->ws = static_cast<char*>(c->arena) + ws_offset;
    return c;
  }
  // Back to the pool once the context's stream is idle (the caller synchronized it).
  void Release(std::unique_ptr<Ctx> c) const {
    c->lease.Reset();
    std::lock_guard<std::mutex> lock(mu);
    pool.push_back(std::move(c));
  }
  // Runs the steps on the context's stream; with `layer_ms` each step is bracketed by CUDA
  // events and its GPU time (queued behind a spin, so without the host's launch gaps) added
  // to its layer.
  Status RunSteps(Ctx* c, std::vector<double>* layer_ms) const {
    RunCtx rc{c, &bufs};
    if (layer_ms == nullptr) {
      for (const Step& s : steps) KILN_RETURN_IF_ERROR(s.run(rc));
      return Status::OK();
    }
    std::vector<cudaEvent_t> ev(steps.size() + 1);
    for (cudaEvent_t& e : ev) KILN_CU(cudaEventCreate(&e));
    Status st;
    // The steps queue up behind a spin of ~150 us per step, so the host's enqueue cost (up to
    // ~100 us for a legacy cuDNN call) does not show up as GPU time between the events.
    KILN_CU(Spin(150.0 * static_cast<double>(steps.size()), c->stream));
    KILN_CU(cudaEventRecord(ev[0], c->stream));
    for (size_t i = 0; i < steps.size() && st.ok(); ++i) {
      st = steps[i].run(rc);
      cudaEventRecord(ev[i + 1], c->stream);
    }
    cudaStreamSynchronize(c->stream);
    for (size_t i = 0; i < steps.size() && st.ok(); ++i) {
      float ms = 0;
      cudaEventElapsedTime(&ms, ev[i], ev[i + 1]);
      if (steps[i].layer >= 0) (*layer_ms)[steps[i].layer] += ms;
    }
    for (cudaEvent_t e : ev) cudaEventDestroy(e);
    return st;
  }
  // Runs the device steps: through a CUDA graph captured on first use when `use_graph`.
  Status Launch(Ctx* c, bool use_graph) const {
    if (use_graph && !c->graph_failed) {
      if (c->graph != nullptr && c->graph_arena != c->arena) {  // leased another block
        cudaGraphExecDestroy(c->graph);
        c->graph = nullptr;
      }
      if (c->graph == nullptr) {
        cudaGraph_t g = nullptr;
        Status s = CudaStatus(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal),
                              "cudaStreamBeginCapture");
        if (s.ok()) {
          Status r = RunSteps(c, nullptr);
          cudaError_t e = cudaStreamEndCapture(c->stream, &g);
          if (r.ok() && e == cudaSuccess && g != nullptr &&
              cudaGraphInstantiate(&c->graph, g, 0) == cudaSuccess) {
            cudaGraphDestroy(g);
            c->graph_arena = c->arena;
          } else {
            if (g) cudaGraphDestroy(g);
            c->graph = nullptr;
            c->graph_failed = true;
            cudaGetLastError();
            KILN_LOG(WARNING) << "CUDA engine: graph capture failed, running stream launches ("
                              << (r.ok() ? cudaGetErrorString(e) : r.message()) << ")";
          }
        } else {
          c->graph_failed = true;
          cudaGetLastError();
        }
      }
      if (c->graph != nullptr)
        return CudaStatus(cudaGraphLaunch(c->graph, c->stream), "cudaGraphLaunch");
    }
    return RunSteps(c, nullptr);
  }

  mutable std::mutex mu;
  mutable std::vector<std::unique_ptr<Ctx>> pool;
};

// ----------------------------------------------------------------------------- builder

class Builder {
 public:
  Builder(const cpu::Program& p, const std::vector<Dims>& dims, EngineShared* sh, Instance* out)
      : p_(p), dims_(dims), sh_(sh), out_(out), ts_(p.tensors.size()) {}

  Status Build();

 private:
  struct TS {
    int buf = -1;  // in the storage type dt(); -1 while only q_buf holds the tensor
    bool nhwc = false;
    // INT8 (cuda_build_int8.cc): the tensor quantized, NHWC int8 with real = q / q_scale,
    // written by an INT8 convolution or quantized for one; BufOf dequantizes it for readers
    // that want dt().
    int q_buf = -1;
    float q_scale = 0;
    // FP8 (cuda_build_matmul.cc): the tensor as E4M3 with real = q / f8_scale, for FP8 GEMMs.
    int f8_buf = -1;
    float f8_scale = 0;
    // An engine input not converted yet: its float32 staging buffer. The first reader converts
    // it to dt() in the layout it wants (one cast, or one cast + NHWC copy: Inputs()).
    int stage = -1;
    int plain_variant = -1, nhwc_variant = -1;
    // A Transpose output not copied yet: consumers materialize it (MatMul may take the
    // permutation with its last two axes swapped and transpose in the GEMM instead).
    int pending_src = -1;
    std::vector<int64_t> pending_perm;
  };
  const Layer& L() const { return p_.layers[layer_]; }
  DType dt() const { return sh_->dt; }
  size_t Bytes(int t) const { return Elements(dims_[t]) * SizeOf(dt()); }

  int NewBuf(size_t bytes) {
    Buf b;
    b.bytes = bytes;
    b.first = b.last = time_;
    out_->bufs.push_back(b);
    return static_cast<int>(out_->bufs.size()) - 1;
  }
  void Use(int buf) {
    Buf& b = out_->bufs[buf];
    if (b.kind != Buf::kArena) return;
    b.first = b.first < 0 ? time_ : std::min(b.first, time_);
    b.last = std::max(b.last, time_);
  }
  void Define(int t, int buf, bool nhwc) {
    ts_[t].buf = buf;
    ts_[t].nhwc = nhwc;
    Use(buf);
  }
  void AddStep(std::function<Status(const RunCtx&)> fn) {
    out_->steps.push_back(Step{layer_, std::move(fn)});
  }

  StatusOr<int> ConstBuf(int t, bool ohwi);
  // A new plain buffer holding tensor `src` permuted by `perm` (one strided copy step).
  StatusOr<int> CopyPermuted(int src, const std::vector<int64_t>& perm);
  // Buffer of tensor t stored plain / NHWC (a conversion step the first time it is needed).
  StatusOr<int> Plain(int t);
  StatusOr<int> Nhwc(int t);
  // A new buffer holding 4-D tensor t's buffer `b` converted NCHW -> NHWC (to_nhwc) or back
  // (one strided copy step).
  int LayoutCopy(int t, int b, bool to_nhwc);
  StatusOr<int> BufOf(int t) {
    if (p_.tensors[t].is_const) return ConstBuf(t, false);
    if (ts_[t].buf < 0 && ts_[t].pending_src >= 0) {
      KILN_ASSIGN_OR_RETURN(int nb, CopyPermuted(ts_[t].pending_src, ts_[t].pending_perm));
      Define(t, nb, false);
      return nb;
    }
    if (ts_[t].buf < 0 && ts_[t].q_buf >= 0) return Dequantized(t);
    if (ts_[t].buf < 0 && ts_[t].stage >= 0) return StagedInput(t, false);
    if (ts_[t].buf < 0) return Internal("tensor '" + p_.tensors[t].name + "' used before defined");
    Use(ts_[t].buf);
    return ts_[t].buf;
  }
  // INT8 (cuda_build_int8.cc). Tensor t (written only quantized) in dt(), NHWC: a dequantize
  // step, once.
  StatusOr<int> Dequantized(int t);
  // Engine input t (float32 staging buffer) cast to dt(), plain or NHWC: one step (cuda_engine.cc).
  StatusOr<int> StagedInput(int t, bool nhwc);
  // Tensor t as NHWC int8 with `scale` (real = q / scale): its quantized buffer, or a quantize
  // step from its dt() buffer (once per tensor).
  StatusOr<int> Quantized(int t, float scale);
  // Tensor t (plain) as FP8 E4M3 with `scale` (real = q / scale): a quantize step from its
  // dt() buffer, once per tensor and scale (cuda_build_matmul.cc).
  StatusOr<int> Fp8Of(int t, float scale);
  // Whether layer i is a matmul an FP8 build runs in FP8 (a calibrated input, constant float32
  // weights without batch dims, every dimension a multiple of 16), and whether tensor t is
  // read only by such matmuls, as their input (then its producer may write it FP8).
  bool Fp8Gemm(size_t i) const;
  bool Fp8OnlyReader(int t) const;
  // The calibrated range of tensor t in an INT8 or FP8 build (nullptr: none, or neither).
  const TensorRange* RangeOf(int t) const;
  // Whether layer i can be an INT8 convolution (static checks: kind, group, input range, const
  // weights, channel counts), and whether tensor t is read only by such convolutions (as
  // their input or as their residual), so that an INT8 convolution may write it quantized.
  bool Int8Candidate(size_t i) const;
  bool OnlyInt8Readers(int t) const;
  // The output tensor of a max pool that is the only reader of t (reading it as its input),
  // else -1: a max pool works on int8 values as they are, so t may be written int8 with the
  // pool output's range.
  int MaxPoolReaderOf(int t) const;
  // The current convolution (dims x, w, y; the residual tensor zt or -1, ReLU, post-ops
  // [0, pos) taken) built in INT8: false when it is not a candidate or cuDNN has no engine for
  // it (then it is built in dt()).
  StatusOr<bool> ConvInt8(const Dims& x, const Dims& wd, const Dims& y, int zt, bool relu,
                          size_t pos);
  // The current convolution (dims x, w; ReLU and post-ops [0, pos) taken) and the max pool
  // that is its only reader as one step of kiln's fused stem kernel (stem_conv.h,
  // cuda_build_stem.cc): false when the pair does not fit it (then each is built on its own).
  StatusOr<bool> StemConvPool(const Dims& x, const Dims& wd, bool relu, size_t pos);
  bool NhwcOf(int t) const { return !p_.tensors[t].is_const && ts_[t].nhwc; }

  // Element strides of operand tensor `t` per physical dim of an output with dims `y`, layout
  // `y_nhwc`; Unimplemented when t does not broadcast onto y.
  StatusOr<Operand> MakeOperand(int t, const Dims& y, bool y_nhwc);
  StatusOr<Operand> MakeOperandRaw(int buf, const Dims& d, bool nhwc, const Dims& y, bool y_nhwc);
  // Appends post-ops [from, end) of the layer as a chain step on `buf` (dims y, layout).
  Status ChainStep(int buf, const Dims& y, bool y_nhwc, size_t from, int in_buf = -1,
                   std::vector<ChainOp> pre = {});
  // A one-op chain xb -> yb (dims y, layout) whose operand pointer, buffer `ub`, is resolved
  // per call, then the layer's post-ops; `what` names the kernel in errors.
  Status LateOperandChain(const ChainOp& op, int xb, int ub, int yb, const Dims& y, bool nhwc,
                          const char* what);

  // A 4-D tensor read in place as [b, h, s, d] (its buffer, or the source of a pending
  // Transpose, plain): buffer and element strides; false when it is not such a view.
  struct View4 {
    int buf = -1;
    int64_t strides[4] = {};
  };
  StatusOr<bool> HeadView(int t, View4* v);
  // The layer and the next ones as one fused attention kernel (cuda_build_attention.cc):
  // false when they do not form that pattern (then each is built on its own).
  StatusOr<bool> Attention();

  Status Inputs();
  Status Outputs();
  Status Conv();
  Status Pool();
  Status MaxPool(const Dims& k, const Dims& pb, const Dims& st);  // cuda_build_conv.cc
  Status MatMul();
  Status Eltwise();
  Status Binary();
  Status PRelu();
  Status Softmax();
  Status LayerNormL();
  Status BatchNorm();
  Status Transpose();
  Status View();
  Status Concat();

  const cpu::Program& p_;
  const std::vector<Dims>& dims_;
  EngineShared* sh_;
  Instance* out_;
  std::vector<TS> ts_;
  std::map<std::string, int> const_bufs_;
  std::map<int, int> fused_into_;  // layer -> the layer whose step computes it
  int layer_ = -1;
  int time_ = 0;
};

}  // namespace kiln::cuda::internal
