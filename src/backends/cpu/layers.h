// Instances: a layer program built into oneDNN primitives for one batch size.
//
// The Builder walks the program in order. Each layer family (layers_conv.cc, layers_matmul.cc,
// layers_misc.cc) creates its primitive descriptor with the layouts it wants (format_tag::any
// for conv / deconv / matmul weights and activations), and asks the Builder for its inputs in
// those layouts: a tensor already in that layout is used as is, otherwise one reorder is
// inserted (and shared by every consumer wanting the same layout). Layouts therefore flow
// between layers and reorders appear only at edges. Constant operands (weights) are reordered
// once, at build, into the layout the primitive chose, and shared through a WeightCache by every
// instance of the engine.
//
// Buffers: engine inputs and outputs are the caller's tensors; every other activation lives in
// one per-call arena whose offsets the memory plan (memory_plan.cc) assigns by lifetime. Views
// (Reshape, Transpose, split outputs of merged siblings) share their source's buffer; a residual
// Add fused as a sum post-op writes in place into the residual's buffer when that tensor dies at
// the layer. The scratchpad of every layer is user-managed (one region per arena, sized for the
// largest layer), which keeps primitives stateless and Execute thread-safe.
#pragma once

#include <algorithm>
#include <dnnl.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/cpu/gemm_f32.h"
#include "backends/cpu/lowering.h"
#include "backends/cpu/tactics.h"
#include "engine/build_config.h"
#include "kiln/status.h"

namespace kiln::cpu {

using dnnl::memory;
using Dims = std::vector<int64_t>;

struct BufferDef {
  enum Where { kArena, kInput, kOutput, kConst } where = kArena;
  size_t bytes = 0;
  int ext = -1;                // kInput / kOutput: the engine I/O index
  const void* data = nullptr;  // kConst
  int first = -1, last = -1;   // kArena: steps using it
  size_t offset = 0;           // kArena: offset the memory plan gave it
};

struct StepArg {
  int arg;
  memory::desc md;
  int buffer;
};

// A step kiln computes itself instead of with a oneDNN primitive (gemm_f32.h's GEMM). Run gets
// the step's arguments bound to this call's buffers; it runs on the calling thread's OpenMP
// thread count, as a primitive would.
class CustomStep {
 public:
  virtual ~CustomStep() = default;
  virtual void Run(const std::unordered_map<int, memory>& args) const = 0;
};

struct Step {
  dnnl::primitive prim;
  std::shared_ptr<const CustomStep> custom;  // when set, runs instead of `prim`
  std::vector<StepArg> args;
  int layer = -1;           // the program layer it belongs to (-1: an output copy)
  memory::desc scratch_md;  // zero-size when the primitive needs no scratchpad
  int threads = 0;          // OpenMP threads it was created for (0: the caller's)
  // Per arg: bytes into its buffer (a batch slice of a sliced instance, batch_slice.cc); empty
  // when every arg starts at its buffer.
  std::vector<size_t> arg_offsets;
};

// Threads (instance.cc): the OpenMP thread count of the calling thread (1 when oneDNN does not
// run on OpenMP), and the count a layer gets: 1 when its work (multiply-adds, or 8 per element
// moved for memory-bound layers) is below ParallelWorkThreshold(), else `max_threads`.
// kParallelWork is about 10 us of one core's work (25 GMAC/s measured on brgconv), the cost of a
// parallel region on idle cores: MobileNetV2 at batch 1 takes 1.7 ms with it and 3.3 ms when
// every layer under 1 ms of work ran on one thread. On cores shared with other busy processes a
// parallel region can wait a scheduler slice (~8 ms measured) for a descheduled thread; there
// KILN_PARALLEL_WORK=3.2e7 (about 1 ms) keeps small layers on one thread. Read once.
int OmpMaxThreads();
void OmpSetThreads(int n);
inline constexpr double kParallelWork = 2.5e5;
double ParallelWorkThreshold();
int LayerThreads(const Layer& l, const std::vector<std::vector<int64_t>>& dims, int max_threads);

// Reordered constant operands shared by all instances of an engine.
class WeightCache {
 public:
  WeightCache() = default;
  // For support probes (ProbeProgram), whose instance is thrown away unrun: Get makes the
  // reorder primitive (so "supported" still means "builds") but neither allocates nor copies
  // the weights, and returns no data.
  struct DescribeOnly {};
  explicit WeightCache(DescribeOnly) : describe_only_(true) {}

  // The constant `data` (plain layout `src`) in layout `want`, reordered on first request.
  StatusOr<std::shared_ptr<void>> Get(int layer, int operand, const memory::desc& src,
                                      const void* data, const memory::desc& want,
                                      const dnnl::engine& eng);

 private:
  struct Entry {
    int layer, operand;
    memory::desc md;
    std::shared_ptr<void> data;
  };
  bool describe_only_ = false;
  std::mutex mu_;
  std::vector<Entry> entries_;
};

std::shared_ptr<void> AlignedAlloc(size_t bytes);

class Instance;

// Per-call state: the arena, the stream, and memory objects bound to them.
struct Arena {
  std::shared_ptr<void> storage;
  dnnl::stream stream;
  std::vector<std::unordered_map<int, memory>> args;  // per step
  struct Ext {
    size_t step;
    int arg;
    bool input;
    int index;
    size_t offset;  // bytes into the caller's tensor (Step::arg_offsets)
  };
  std::vector<Ext> ext;
};

class Instance {
 public:
  std::vector<Step> steps;
  std::vector<BufferDef> buffers;
  std::vector<Dims> out_dims;     // engine outputs at this batch
  std::vector<std::string> impl;  // per program layer: impl_info_str of its main primitive
  std::vector<std::string> precision;  // per program layer: "FP32", "BF16", ... (precision.h)
  std::vector<std::string> tactic;  // per program layer: "timed 3 implementations", ... or ""
  size_t arena_bytes = 0, scratch_bytes = 0;
  std::vector<std::shared_ptr<void>> keep;  // reordered weights in use
  dnnl::engine eng;
  // The engine outputs' layouts: plain, unless Finish(keep_layouts) (batch_slice.cc).
  std::vector<memory::desc> out_mds;

  // Runs the steps; `layer_ms` (size = program layers) gets per-layer times when non-null.
  Status Run(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
             std::vector<double>* layer_ms) const;
  // Allocates one pooled arena and touches its pages (warm start without a run).
  Status Prepare() const;

 private:
  std::unique_ptr<Arena> Acquire() const;
  void Release(std::unique_ptr<Arena> a) const;
  mutable std::mutex mu_;
  mutable std::vector<std::unique_ptr<Arena>> pool_;
};

// Builds an instance for these engine input dims. `cache` may be null (no sharing).
StatusOr<std::shared_ptr<Instance>> BuildInstance(const Program& p,
                                                  const std::vector<Dims>& input_dims,
                                                  const BuildConfig& cfg, WeightCache* cache);
// Batch slicing (batch_slice.cc): a batch-N instance whose leading, memory-bound layers run
// depth-first on sub-batches. BuildSlicedInstance returns nullptr when it does not apply (or a
// part fails to build: the whole build then runs and reports).
struct PartOptions {
  int layer_base = 0;                                    // Builder::layer_base
  const std::vector<memory::desc>* input_mds = nullptr;  // input layouts (null: plain)
  bool keep_output_layouts = false;                      // Builder::Finish(keep_layouts)
};
StatusOr<std::shared_ptr<Instance>> BuildPart(const Program& p, const std::vector<Dims>& input_dims,
                                              const BuildConfig& cfg, WeightCache* cache,
                                              const PartOptions& opt);
std::shared_ptr<Instance> BuildSlicedInstance(const Program& p, const std::vector<Dims>& input_dims,
                                              const BuildConfig& cfg, WeightCache* cache);
// True when `md` is batch-major and dense along the batch: sample n starts n * size / N bytes in.
bool BatchSliceable(const memory::desc& md);
// Whether slicing a prefix of p.layers[0, k) pays for an engine in `precision` on a CPU with
// (`amx`) or without AMX tiles: on AMX a BF16 prefix pays only with a depthwise conv in it
// (batch_slice.cc says why).
bool SlicePrefixPays(const Program& p, const std::vector<Dims>& dims, size_t k,
                     Precision precision, bool amx);
// Builds the program at its recorded dims and throws the result away (Supports' oneDNN check;
// its reasons name no layer).
// `impls` (optional) gets each layer's implementation (Instance::impl).
Status ProbeProgram(const Program& p, const BuildConfig& cfg,
                    std::vector<std::string>* impls = nullptr);

// Assigns arena offsets to kArena buffers by lifetime; returns the arena size.
size_t PlanMemory(std::vector<BufferDef>* buffers);

// ----------------------------------------------------------------------------- builder

class Builder {
 public:
  Builder(const Program& p, const std::vector<Dims>& dims, const BuildConfig& cfg,
          WeightCache* cache, Instance* out);

  const Program& prog;
  const std::vector<Dims>& dims;
  const BuildConfig& cfg;
  dnnl::engine eng;
  int layer = -1;
  int threads = 0;      // of the current layer's steps (set, with the OpenMP ICV, by the caller)
  int max_threads = 1;  // the caller's OpenMP thread count
  // Data type a compute layer (conv, deconv, matmul) of the current layer computes in; the other
  // layers follow their input's data type or stay f32 (precision.h).
  memory::data_type dt = memory::data_type::f32;
  // The output data type of the current compute layer (ComputeDstType, precision.h).
  memory::data_type DstType() const;

  const Layer& L() const { return prog.layers[layer]; }
  static memory::desc Plain(const Dims& d, memory::data_type t = memory::data_type::f32);
  // Current layout of tensor t.
  const memory::desc& MdOf(int t) const { return state_[t].md; }
  bool IsPlain(int t) const { return state_[t].md == Plain(dims[t]); }
  bool IsConst(int t) const { return prog.tensors[t].is_const; }
  // Buffer holding tensor t in layout `want` (a reorder step is added the first time).
  StatusOr<int> As(int t, const memory::desc& want);
  // Buffer of tensor t in its current layout.
  int BufferOf(int t) const { return state_[t].buffer; }
  // Defines tensor t (an output of the current layer) in layout `md`: a fresh arena buffer, or
  // `buffer` when given (in place / a view).
  int Define(int t, const memory::desc& md, int buffer = -1);
  // A fresh arena buffer (for a merged output whose pieces Define as sub-memories).
  int NewBuffer(size_t bytes);
  // Constant tensor t (plain `src` view of its data) reordered into `want`, shared via cache.
  StatusOr<int> Weights(int operand, int t, const memory::desc& src, const memory::desc& want);
  // Appends a step running `prim` (created from `pd`); the first step of a layer names its
  // implementation in LayerInfo.
  void AddStep(const dnnl::primitive& prim, const dnnl::primitive_desc_base& pd,
               std::vector<StepArg> args);
  // Appends a step kiln runs itself; `impl` names it in LayerInfo (and in plans).
  void AddCustomStep(std::shared_ptr<const CustomStep> step, const std::string& impl,
                     std::vector<StepArg> args);
  // Iterates implementations (next_impl) for the first whose scratchpad fits
  // max_workspace_size_bytes, preferring the layer's recorded `impl`.
  template <typename PD>
  Status Choose(PD& pd);
  // Whether this build times tactics (tactics.h), and the fastest of several primitive
  // descriptors of the current layer (timed, or from the timing cache).
  bool TimingTactics() const { return layer >= 0 && TacticTimingEnabled(); }
  size_t PickTacticOf(const std::vector<dnnl::primitive_desc>& candidates);
  // True when tensor t's buffer may be overwritten by the current layer (t and every tensor
  // sharing its buffer die here, none is an engine I/O).
  bool Reusable(int t) const;
  // Adds a copy (reorder) of `buffer`/`md` into a fresh buffer of layout `md_out`.
  StatusOr<int> Copy(const memory::desc& md, int buffer, const memory::desc& md_out);
  // INT8 (layers_int8.cc): tensor t quantized into `want` (u8 / s8) by a reorder step that
  // multiplies by `scale`; constant data made by the caller (plain `src`), reordered into `want`.
  // Shared by readers asking the same (scale, layout) unless `private_copy` (a buffer the caller
  // will write into, e.g. in place by a sum post-op).
  StatusOr<int> Quantized(int t, const memory::desc& want, float scale, bool private_copy = false);
  // Tensor t (an output of the current layer) is written quantized with `scale`.
  void SetQuantized(int t, float scale) { quant_scale_[t] = scale; }
  // The scale tensor t was written quantized with (real = q / scale), or nullptr: not quantized.
  const float* QuantScaleOf(int t) const {
    auto it = quant_scale_.find(t);
    return it == quant_scale_.end() ? nullptr : &it->second;
  }
  StatusOr<int> WeightsFromData(int operand, const memory::desc& src, const void* data,
                                const memory::desc& want);

  // `keep_layouts` (a part of a sliced instance, batch_slice.cc): engine outputs stay in their
  // producer's layout when it slices by batch (BatchSliceable), else become plain.
  Status Finish(bool keep_layouts = false);
  // Engine input i arrives in layout `md` instead of plain (batch_slice.cc).
  void SetInputLayout(size_t i, const memory::desc& md) { state_[prog.inputs[i]].md = md; }
  // Program layer index of this program's layer 0 (weight cache keys of a sliced instance's
  // parts, batch_slice.cc).
  int layer_base = 0;

 private:
  struct TState {
    memory::desc md;
    int buffer = -1;
    std::vector<std::pair<memory::desc, int>> variants;
  };
  Status ScratchError(size_t need, int impls) const;
  // Tactic timing (tactics.h): on for conv / deconv / matmul / inner product when enabled.
  bool TimesTactics(const dnnl::primitive_desc_base& pd) const;
  size_t ScratchOf(const dnnl::primitive_desc_base& pd) const;

  WeightCache* cache_;
  Instance* out_;
  std::vector<TState> state_;
  std::vector<int> last_use_;
  std::vector<std::vector<int>> buffer_tensors_;
  WeightCache local_cache_;
  // INT8 (layers_int8.cc): tensors an INT8 layer wrote quantized (u8 / s8), by their scale
  // (quantized = real * scale); As() dequantizes them for a reader wanting another type.
  std::unordered_map<int, float> quant_scale_;
  // Quantize / requantize reorders already made, by (tensor, scale): several INT8 readers of one
  // tensor (ResNet's conv1 + downsample, an inception block's branches) share one.
  std::map<std::pair<int, float>, std::vector<std::pair<memory::desc, int>>> quantized_;
};

template <typename PD>
Status Builder::Choose(PD& pd) {
  const std::string& want = L().impl;
  const size_t limit = static_cast<size_t>(std::max<int64_t>(0, cfg.max_workspace_size_bytes));
  // Pass 0 looks for the recorded implementation; pass 1 takes the first that fits, or with
  // tactic timing (tactics.h) the fastest of those that fit.
  for (int pass = want.empty() ? 1 : 0; pass < 2; ++pass) {
    PD probe = pd;
    size_t smallest = SIZE_MAX;
    int n = 0;
    const bool timed = pass == 1 && TimesTactics(probe);
    std::vector<PD> fits;
    do {
      ++n;
      const size_t s = ScratchOf(probe);
      smallest = std::min(smallest, s);
      if (s <= limit && (pass == 1 || probe.impl_info_str() == want)) {
        if (timed) {
          fits.push_back(probe);
          continue;
        }
        pd = probe;
        return Status::OK();
      }
    } while (probe.next_impl());
    if (fits.size() == 1) pd = fits[0];
    if (fits.size() > 1) {
      pd = fits[PickTacticOf(std::vector<dnnl::primitive_desc>(fits.begin(), fits.end()))];
    }
    if (!fits.empty()) return Status::OK();
    if (pass == 1) return ScratchError(smallest, n);
  }
  return Internal("unreachable");
}

dnnl::primitive_attr ScratchAttr();
// Post-ops of the current layer for a primitive whose logical dst is `dst` (in the primitive's
// axis order; `to_logical` permutes a tensor-space md into it, identity when empty). Binary
// operands are added to `args`; `sum_tensor` gets the residual of a sum post-op (or -1), which
// is added times `sum_scale` (1/scale for a residual read quantized into a quantized dst).
// `sum_as_binary`: the residual is read where it is, in its own type and layout, by a binary
// add instead (an FP32 residual into an INT8 layer's quantized dst); `sum_tensor` stays -1.
// `sum_type`: the residual's type when it differs from the dst's (s8 residual, u8 dst).
StatusOr<dnnl::post_ops> MakePostOps(Builder& b, const memory::desc& dst,
                                     const std::vector<int>& to_logical, std::vector<StepArg>* args,
                                     int* sum_tensor, float sum_scale = 1.f,
                                     bool sum_as_binary = false,
                                     memory::data_type sum_type = memory::data_type::undef);
// Defines the single output of the current layer with layout `md` (tensor space), honoring a
// sum post-op (in place into the residual when it dies here and `reads` (the step's other
// arguments) do not touch its buffer, else into a copy of it; a residual an INT8 layer wrote
// quantized is dequantized into that copy when `md` is of another type).
StatusOr<int> DefineDst(Builder& b, int out, const memory::desc& md, int sum_tensor,
                        const std::vector<StepArg>& reads);

// NHWC helpers: permutations between a channels-last tensor and the logical NCHW order.
std::vector<int> ToLogicalPerm(int rank);  // tensor [N,spatial..,C] -> logical [N,C,spatial..]
std::vector<int> ToTensorPerm(int rank);   // the inverse
memory::desc Permuted(const memory::desc& md, const std::vector<int>& perm);
// Tensor dims in logical NCHW order ([N,spatial..,C] -> [N,C,spatial..] when nhwc).
inline Dims LogicalDims(Dims d, bool nhwc) {
  if (nhwc && d.size() >= 3) std::rotate(d.begin() + 1, d.end() - 1, d.end());
  return d;
}

// kiln's FP32 GEMM (gemm_f32.h) as the current layer's step (layers_matmul.cc). GemmFits: the
// CPU runs it, the layer computes and writes FP32, its k x n weights are large enough
// (gemm::kMinWeights), its recorded implementation (a loaded plan) is none or kiln's, and its
// post-ops have a kiln form (sum, ReLU, GELU-erf: `ops`, with the residual in `sum_tensor`).
// GemmWeights: the problem of an m x k by k x n GEMM with dense rows (lda k, ldc n), its weights
// (constant `w` seen as `w_src` [k, n]) packed into `args`, and its bias (if `bias` >= 0).
// AddGemmStep: `args` holds SRC (dense rows of K), WEIGHTS, optionally BIAS, and DST.
bool GemmFits(const Builder& b, int64_t k, int64_t n, std::vector<gemm::Op>* ops,
              int* sum_tensor);
// Layer `l`'s post-ops as kiln GEMM epilogue ops (sum, ReLU, GELU-erf, clip; the residual in
// `sum_tensor`), or false when one of them has no kiln form (binary, PReLU, other eltwise kinds,
// two sums).
bool GemmOps(const Layer& l, std::vector<gemm::Op>* ops, int* sum_tensor);
StatusOr<gemm::Problem> GemmWeights(Builder& b, int64_t m, int64_t n, int64_t k,
                                    std::vector<gemm::Op> ops, int w, const memory::desc& w_src,
                                    int bias, const memory::desc& bias_md,
                                    std::vector<StepArg>* args);
// The same with the given tile (gemm::BlockTileFor) instead of gemm::TileFor(n).
StatusOr<gemm::Problem> GemmWeights(Builder& b, int64_t m, int64_t n, int64_t k,
                                    std::vector<gemm::Op> ops, int w, const memory::desc& w_src,
                                    int bias, const memory::desc& bias_md,
                                    std::vector<StepArg>* args, gemm::Tile tile);
void AddGemmStep(Builder& b, gemm::Problem proto, std::vector<StepArg> args);
// Scaled dot-product attention fused into one step (gemm::RunAttention) when the current layer
// starts MatMul(Q, K^T) [* scale] -> Softmax(last axis) -> MatMul(P, V) [-> Transpose(0,2,1,3)]
// on FP32 strided views with unit stride along the head dim: the number of layers it took (the
// current one and those after it), or 0 (build the layer as usual).
// StartsAttention: the layer pattern alone (layer i0 on), before any layout is known, with the
// match (optional).
StatusOr<int> BuildAttention(Builder& b);
bool StartsAttention(const Builder& b, size_t i0, AttentionMatch* match = nullptr);
// An inverted-residual block fused into one step (gemm::RunInvertedResidual) when the current
// layer starts [1x1 conv ->] 3x3 depthwise conv -> 1x1 conv on FP32 channels-last tensors, each
// read only by the next (the project conv may add the block's input): the number of layers it
// took, or 0 (build the layer as usual).
StatusOr<int> BuildInvertedResidual(Builder& b);
// Gives each GEMM step of a finished instance the next one's weights, to prefetch the start of
// while it computes its own last panel (gemm::Problem::next_b).
void LinkGemmPrefetch(Instance* inst);

// Per-family builders.
Status BuildConv(Builder& b);
Status BuildMatMul(Builder& b);
Status BuildMisc(Builder& b);
// INT8 (layers_int8.cc): the calibrated range of the current layer's input when it is a conv /
// matmul of an INT8-mode build with a range in BuildConfig::int8_ranges (else nullptr), and
// the layer built in INT8 (Unimplemented when it has no INT8 primitive: build it as usual).
const TensorRange* Int8RangeOf(const Builder& b);
Status BuildInt8(Builder& b, const TensorRange& range);
// A max pooling that runs on the INT8 values an INT8 conv wrote (its output quantized alike).
bool IsInt8MaxPool(const Layer& l);
// The largest magnitude of calibrated INT8 weights on this CPU: 127 with VNNI / AMX, 63 without
// (int16 saturation of vpmaddubsw; layers_int8.cc).
float Int8WeightLevels();

}  // namespace kiln::cpu
