// The instance builder (layers.h): layouts, edge reorders, constant reordering, post-ops, and
// running an instance with a pooled per-call arena.
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>

#include "backends/cpu/layers.h"
#include "backends/cpu/layers_rnn.h"
#include "backends/cpu/precision.h"

namespace kiln::cpu {

std::shared_ptr<void> AlignedAlloc(size_t bytes) {
  const size_t n = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, n);
  if (p == nullptr) return nullptr;
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

// ----------------------------------------------------------------------------- threads
//
// oneDNN runs on OpenMP here (Debian's libdnnl uses GOMP): every primitive is one parallel
// region. Its fork / join costs microseconds on idle cores, but on cores shared with other
// processes a region waits for a descheduled (or spinning) worker for a whole scheduler time
// slice: on a loaded 2-core machine (load 4-5) the 73 layers of PaddleOCR's classifier at batch 8
// took 2.1 ms with 1 thread, 1.7 ms with 2 in most runs, and 590 ms in some (8 ms per layer).
// Layers too small to gain from a second thread are therefore created and run with one thread
// (no parallel region at all); the others with the caller's OpenMP thread count. oneDNN fixes a
// primitive's work split when it is created, so the builder sets the count per layer and Run
// sets the same count around each step. omp_set_num_threads sets a per-thread ICV: Run restores
// the caller's, and concurrent Execute calls on other threads are unaffected. The OpenMP entry
// points are looked up at run time (libgomp is loaded by libdnnl), so kiln does not link it.

namespace {

struct OmpApi {
  int (*get)() = nullptr;
  void (*set)(int) = nullptr;
};

const OmpApi& Omp() {
  static const OmpApi api = [] {
    OmpApi a;
    a.get = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
    a.set = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
    if (a.get == nullptr || a.set == nullptr) a = OmpApi();
    return a;
  }();
  return api;
}

// Sets the calling thread's OpenMP thread count for a scope, restoring it at the end.
class ThreadScope {
 public:
  ThreadScope() : caller_(OmpMaxThreads()), current_(caller_) {}
  // Unconditional: Builder::Finish sets the count directly (outside Set), and an ICV left at 1
  // would make every later build on this thread single-threaded.
  ~ThreadScope() {
    if (caller_ > 0) OmpSetThreads(caller_);
  }
  void Set(int n) {
    if (n > 0 && n != current_) {
      OmpSetThreads(n);
      current_ = n;
    }
  }
  int caller() const { return caller_; }

 private:
  int caller_, current_;
};

double Elements(const Dims& d) {
  double n = 1;
  for (int64_t v : d) n *= static_cast<double>(v);
  return n;
}

}  // namespace

int OmpMaxThreads() { return Omp().get ? Omp().get() : 1; }
void OmpSetThreads(int n) {
  if (Omp().set) Omp().set(n);
}

double ParallelWorkThreshold() {
  static const double threshold = [] {
    const char* v = std::getenv("KILN_PARALLEL_WORK");
    if (v == nullptr || *v == '\0') return kParallelWork;
    char* end = nullptr;
    const double d = std::strtod(v, &end);
    return end != v && *end == '\0' && d >= 0 ? d : kParallelWork;
  }();
  return threshold;
}

int LayerThreads(const Layer& l, const std::vector<Dims>& dims, int max_threads) {
  if (max_threads <= 1) return 1;
  const Dims& x = dims[l.inputs[0]];
  double work = 0;
  if (l.kind == LayerKind::kConv || l.kind == LayerKind::kDeconv) {
    const Dims& w = dims[l.inputs[1]];
    const double k = Elements(Dims(w.begin() + 2, w.end()));
    if (l.kind == LayerKind::kConv) {
      for (int t : l.outputs) work += Elements(dims[t]) * static_cast<double>(w[1]) * k;
    } else {
      work = Elements(x) * static_cast<double>(w[1]) * k;
    }
  } else if (l.kind == LayerKind::kMatMul) {
    const double k = static_cast<double>(l.Int("trans_a") ? x[x.size() - 2] : x.back());
    for (int t : l.outputs) work += Elements(dims[t]) * k;
  } else if (l.kind == LayerKind::kRnn) {  // Y [T, D, N, H] x gates x (input + hidden)
    const Dims& w = dims[l.inputs[1]];
    work = Elements(dims[l.outputs[0]]) * static_cast<double>(w[3]) * (w[2] + w[4]);
  } else {
    for (int t : l.inputs) work += t >= 0 ? 8 * Elements(dims[t]) : 0;
    for (int t : l.outputs) work += 8 * Elements(dims[t]);
  }
  return work >= ParallelWorkThreshold() ? max_threads : 1;
}

namespace {

const dnnl::engine& CpuEngineHandle() {
  static const dnnl::engine* eng = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *eng;
}

}  // namespace

dnnl::primitive_attr ScratchAttr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

StatusOr<std::shared_ptr<void>> WeightCache::Get(int layer, int operand, const memory::desc& src,
                                                 const void* data, const memory::desc& want,
                                                 const dnnl::engine& eng) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Entry& e : entries_) {
    if (e.layer == layer && e.operand == operand && e.md == want) return e.data;
  }
  if (describe_only_) {
    // A probe: the reorder must exist (its primitive descriptor is made), it is not run and
    // its result is never read. (Making the primitive too bought nothing measurable at load,
    // and crashed inside oneDNN 2.6 under --time-tactics: design.md.)
    dnnl::reorder::primitive_desc pd(eng, src, eng, want);
    return std::shared_ptr<void>();
  }
  std::shared_ptr<void> dst = AlignedAlloc(want.get_size());
  if (dst == nullptr) return ResourceExhausted("cannot allocate weights");
  memory src_m(src, eng, const_cast<void*>(data));
  memory dst_m(want, eng, dst.get());
  dnnl::stream s(eng);
  dnnl::reorder(src_m, dst_m).execute(s, src_m, dst_m);
  s.wait();
  entries_.push_back({layer, operand, want, dst});
  return dst;
}

// ----------------------------------------------------------------------------- layouts

std::vector<int> ToLogicalPerm(int rank) {
  std::vector<int> p(rank);
  p[0] = 0;
  p[rank - 1] = 1;
  for (int i = 1; i < rank - 1; ++i) p[i] = i + 1;
  return p;
}

std::vector<int> ToTensorPerm(int rank) {
  std::vector<int> p(rank);
  p[0] = 0;
  p[1] = rank - 1;
  for (int i = 2; i < rank; ++i) p[i] = i - 1;
  return p;
}

memory::desc Permuted(const memory::desc& md, const std::vector<int>& perm) {
  return perm.empty() ? md : md.permute_axes(perm);
}

memory::desc Builder::Plain(const Dims& d, memory::data_type t) {
  memory::dims strides(d.size(), 1);
  for (int i = static_cast<int>(d.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * d[i + 1];
  return memory::desc(memory::dims(d.begin(), d.end()), t, strides);
}

Builder::Builder(const Program& p, const std::vector<Dims>& d, const BuildConfig& c,
                 WeightCache* cache, Instance* out)
    : prog(p),
      dims(d),
      cfg(c),
      eng(CpuEngineHandle()),
      cache_(cache ? cache : &local_cache_),
      out_(out) {
  state_.resize(p.tensors.size());
  last_use_.assign(p.tensors.size(), -1);
  for (size_t i = 0; i < p.layers.size(); ++i) {
    for (int t : p.layers[i].inputs) {
      if (t >= 0) last_use_[t] = static_cast<int>(i);
    }
    for (const PostOp& po : p.layers[i].post_ops) {
      if (po.tensor >= 0) last_use_[po.tensor] = static_cast<int>(i);
    }
  }
  for (int t : p.outputs) last_use_[t] = INT_MAX;
  out_->eng = eng;
  out_->impl.assign(p.layers.size(), "");
  out_->precision.assign(p.layers.size(), "FP32");
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    const int t = p.inputs[i];
    BufferDef b;
    b.where = BufferDef::kInput;
    b.ext = static_cast<int>(i);
    out_->buffers.push_back(b);
    buffer_tensors_.push_back({t});
    last_use_[t] = INT_MAX;
    state_[t].md = Plain(dims[t]);
    state_[t].buffer = static_cast<int>(out_->buffers.size()) - 1;
  }
  for (size_t t = 0; t < p.tensors.size(); ++t) {
    if (!p.tensors[t].is_const) continue;
    BufferDef b;
    b.where = BufferDef::kConst;
    b.data = p.tensors[t].value.raw_data();
    out_->buffers.push_back(b);
    buffer_tensors_.push_back({static_cast<int>(t)});
    state_[t].md = Plain(dims[t]);
    state_[t].buffer = static_cast<int>(out_->buffers.size()) - 1;
  }
}

memory::data_type Builder::DstType() const {
  memory::data_type sum_type = dt;
  for (const PostOp& po : L().post_ops) {
    if (po.kind == PostOp::kSum) sum_type = MdOf(po.tensor).data_type();
  }
  return ComputeDstType(prog, L(), dt, sum_type);
}

int Builder::NewBuffer(size_t bytes) {
  BufferDef b;
  b.bytes = bytes;
  out_->buffers.push_back(b);
  buffer_tensors_.emplace_back();
  return static_cast<int>(out_->buffers.size()) - 1;
}

int Builder::Define(int t, const memory::desc& md, int buffer) {
  if (buffer < 0) buffer = NewBuffer(md.get_size());
  state_[t].md = md;
  state_[t].buffer = buffer;
  state_[t].variants.clear();
  buffer_tensors_[buffer].push_back(t);
  return buffer;
}

StatusOr<int> Builder::Copy(const memory::desc& md, int buffer, const memory::desc& md_out) {
  const int nb = NewBuffer(md_out.get_size());
  dnnl::reorder::primitive_desc pd(eng, md, eng, md_out, ScratchAttr());
  Step s;
  s.prim = dnnl::reorder(pd);
  s.args = {{DNNL_ARG_FROM, md, buffer}, {DNNL_ARG_TO, md_out, nb}};
  s.layer = layer;
  s.scratch_md = pd.scratchpad_desc();
  s.threads = threads;
  out_->steps.push_back(std::move(s));
  return nb;
}

StatusOr<int> Builder::As(int t, const memory::desc& want) {
  TState& s = state_[t];
  if (s.md == want) return s.buffer;
  for (const auto& [md, buf] : s.variants) {
    if (md == want) return buf;
  }
  if (quant_scale_.count(t) && want.data_type() != s.md.data_type()) {
    // An INT8 layer's quantized output read in another type: dequantize (layers_int8.cc).
    KILN_ASSIGN_OR_RETURN(int nb, Quantized(t, want, 1.f));
    buffer_tensors_[nb].push_back(t);
    state_[t].variants.push_back({want, nb});
    return nb;
  }
  if (IsConst(t)) {
    // Constants are reordered once at build, never per call.
    KILN_ASSIGN_OR_RETURN(int buf, Weights(1000 + t, t, s.md, want));
    s.variants.push_back({want, buf});
    return buf;
  }
  KILN_ASSIGN_OR_RETURN(int nb, Copy(s.md, s.buffer, want));
  buffer_tensors_[nb].push_back(t);
  state_[t].variants.push_back({want, nb});
  return nb;
}

StatusOr<int> Builder::Weights(int operand, int t, const memory::desc& src,
                               const memory::desc& want) {
  const void* data = prog.tensors[t].value.raw_data();
  BufferDef b;
  b.where = BufferDef::kConst;
  if (src == want) {
    b.data = data;
  } else {
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> w,
                          cache_->Get(layer + layer_base, operand, src, data, want, eng));
    out_->keep.push_back(w);
    b.data = w.get();
  }
  out_->buffers.push_back(b);
  buffer_tensors_.push_back({t});
  return static_cast<int>(out_->buffers.size()) - 1;
}

size_t Builder::ScratchOf(const dnnl::primitive_desc_base& pd) const {
  return pd.scratchpad_desc().get_size();
}

Status Builder::ScratchError(size_t need, int impls) const {
  const Layer& l = L();
  return ResourceExhausted("layer '" + (l.nodes.empty() ? l.op : l.nodes[0]) + "' (" + l.op +
                           ") needs " + std::to_string(need) +
                           " bytes of scratchpad (the smallest of its " + std::to_string(impls) +
                           " implementations); max_workspace_size_bytes is " +
                           std::to_string(cfg.max_workspace_size_bytes));
}

void Builder::AddStep(const dnnl::primitive& prim, const dnnl::primitive_desc_base& pd,
                      std::vector<StepArg> args) {
  Step s;
  s.prim = prim;
  s.args = std::move(args);
  s.layer = layer;
  s.scratch_md = pd.scratchpad_desc();
  s.threads = threads;
  if (layer >= 0 && out_->impl[layer].empty()) out_->impl[layer] = pd.impl_info_str();
  out_->steps.push_back(std::move(s));
}

void Builder::AddCustomStep(std::shared_ptr<const CustomStep> step, const std::string& impl,
                            std::vector<StepArg> args) {
  Step s;
  s.custom = std::move(step);
  s.args = std::move(args);
  s.layer = layer;
  s.threads = threads;
  if (layer >= 0 && out_->impl[layer].empty()) out_->impl[layer] = impl;
  out_->steps.push_back(std::move(s));
}

bool Builder::Reusable(int t) const {
  const int b = state_[t].buffer;
  if (out_->buffers[b].where != BufferDef::kArena) return false;
  for (int u : buffer_tensors_[b]) {
    if (last_use_[u] > layer) return false;
  }
  return true;
}

Status Builder::Finish(bool keep_layouts) {
  layer = -1;
  // Engine outputs: hand the caller's tensor to the producer when the layout is plain and the
  // buffer is exclusively this output's; otherwise copy into it.
  std::vector<bool> claimed(out_->buffers.size(), false);
  for (size_t o = 0; o < prog.outputs.size(); ++o) {
    const int t = prog.outputs[o];
    const TState& s = state_[t];
    BufferDef& b = out_->buffers[s.buffer];
    const memory::desc plain =
        keep_layouts && BatchSliceable(s.md) ? s.md : Plain(dims[t]);  // batch_slice.cc
    out_->out_mds.push_back(plain);
    if (b.where == BufferDef::kArena && !claimed[s.buffer] && s.md == plain &&
        b.bytes == plain.get_size()) {
      b.where = BufferDef::kOutput;
      b.ext = static_cast<int>(o);
      claimed[s.buffer] = true;
      continue;
    }
    threads = 16 * Elements(dims[t]) >= ParallelWorkThreshold() ? max_threads : 1;
    OmpSetThreads(threads);
    KILN_ASSIGN_OR_RETURN(int nb, Copy(s.md, s.buffer, plain));
    out_->buffers[nb].where = BufferDef::kOutput;
    out_->buffers[nb].ext = static_cast<int>(o);
    claimed.resize(out_->buffers.size(), false);
    claimed[nb] = true;
  }
  for (size_t i = 0; i < out_->steps.size(); ++i) {
    const Step& s = out_->steps[i];
    out_->scratch_bytes = std::max(out_->scratch_bytes, s.scratch_md.get_size());
    for (const StepArg& a : s.args) {
      BufferDef& b = out_->buffers[a.buffer];
      if (b.first < 0) b.first = static_cast<int>(i);
      b.last = static_cast<int>(i);
    }
  }
  out_->arena_bytes = PlanMemory(&out_->buffers);
  LinkGemmPrefetch(out_);
  for (int t : prog.outputs) out_->out_dims.push_back(dims[t]);
  return Status::OK();
}

// ----------------------------------------------------------------------------- post-ops

StatusOr<dnnl::post_ops> MakePostOps(Builder& b, const memory::desc& dst,
                                     const std::vector<int>& to_logical, std::vector<StepArg>* args,
                                     int* sum_tensor, float sum_scale, bool sum_as_binary,
                                     memory::data_type sum_type) {
  dnnl::post_ops ops;
  *sum_tensor = -1;
  const Layer& l = b.L();
  const int rank = dst.data.ndims;
  for (const PostOp& po : l.post_ops) {
    switch (po.kind) {
      case PostOp::kEltwise:
        ops.append_eltwise(1.f, static_cast<dnnl::algorithm>(po.alg), po.alpha, po.beta);
        break;
      case PostOp::kSum:
        if (sum_as_binary) {
          const memory::desc md = Permuted(b.MdOf(po.tensor), to_logical);
          ops.append_binary(dnnl::algorithm::binary_add, md);
          args->push_back({DNNL_ARG_ATTR_MULTIPLE_POST_OP(ops.len() - 1) | DNNL_ARG_SRC_1, md,
                           b.BufferOf(po.tensor)});
          break;
        }
        if (*sum_tensor >= 0) return Unimplemented("two sum post-ops");
        *sum_tensor = po.tensor;
        ops.append_sum(sum_scale, sum_type);
        break;
      case PostOp::kPRelu: {
        // Weights of the dst's shape where `mask` has a bit, 1 elsewhere (plain).
        Dims d = b.dims[po.tensor];
        if (static_cast<int>(d.size()) > rank) return Unimplemented("prelu slope rank");
        d.insert(d.begin(), rank - d.size(), 1);
        KILN_ASSIGN_OR_RETURN(int buf, b.As(po.tensor, Builder::Plain(b.dims[po.tensor])));
        const memory::dims wd = Permuted(Builder::Plain(d), to_logical).dims();
        int mask = 0, non_one = 0;
        for (int i = 0; i < rank; ++i) {
          if (wd[i] != 1) {
            mask |= 1 << i;
            ++non_one;
          }
        }
        if (non_one > 1) return Unimplemented("prelu post-op slope varies along several axes");
        ops.append_prelu(mask);
        const memory::desc w_md = Builder::Plain(Dims(wd.begin(), wd.end()));
        args->push_back(
            {DNNL_ARG_ATTR_MULTIPLE_POST_OP(ops.len() - 1) | DNNL_ARG_WEIGHTS, w_md, buf});
        break;
      }
      case PostOp::kBinary: {
        // The operand, padded with leading 1s to the dst rank, in plain layout. One of higher
        // rank (a matmul's output collapsed to 2-D; the caller checks that the view broadcasts
        // like the operand) is read as its plain buffer with the leading dims merged.
        Dims d = b.dims[po.tensor];
        if (static_cast<int>(d.size()) > rank) {
          if (!to_logical.empty()) return Unimplemented("binary operand rank");
          const size_t lead = d.size() - rank + 1;
          const int64_t m = std::accumulate(d.begin(), d.begin() + lead, int64_t{1},
                                            std::multiplies<int64_t>());
          d.erase(d.begin(), d.begin() + lead);
          d.insert(d.begin(), m);
        }
        d.insert(d.begin(), rank - d.size(), 1);
        const memory::desc plain = Builder::Plain(b.dims[po.tensor]);
        KILN_ASSIGN_OR_RETURN(int buf, b.As(po.tensor, plain));
        const memory::desc md = Permuted(Builder::Plain(d), to_logical);
        ops.append_binary(static_cast<dnnl::algorithm>(po.alg), md);
        args->push_back({DNNL_ARG_ATTR_MULTIPLE_POST_OP(ops.len() - 1) | DNNL_ARG_SRC_1, md, buf});
        break;
      }
    }
  }
  return ops;
}

StatusOr<int> DefineDst(Builder& b, int out, const memory::desc& md, int sum_tensor,
                        const std::vector<StepArg>& reads) {
  if (sum_tensor < 0) return b.Define(out, md);
  const int rb = b.BufferOf(sum_tensor);
  const bool read_here =
      std::any_of(reads.begin(), reads.end(), [&](const StepArg& a) { return a.buffer == rb; });
  if (b.MdOf(sum_tensor) == md && b.Reusable(sum_tensor) && !read_here) {
    return b.Define(out, md, b.BufferOf(sum_tensor));  // in place
  }
  const auto dt = b.MdOf(sum_tensor).data_type();
  const bool int8 = [](memory::data_type t) {
    return t == memory::data_type::u8 || t == memory::data_type::s8;
  }(dt);
  if (b.QuantScaleOf(sum_tensor) != nullptr && int8 && dt != md.data_type() &&
      (md.data_type() == memory::data_type::u8 || md.data_type() == memory::data_type::s8)) {
    // An s8 residual into a u8 dst (or the reverse): the sum post-op reads the buffer in the
    // residual's type (MakePostOps' sum_type), so the dst shares its layout, not its type.
    memory::desc as_residual = md;
    as_residual.data.data_type = static_cast<dnnl_data_type_t>(dt);
    if (b.MdOf(sum_tensor) == as_residual && b.Reusable(sum_tensor) && !read_here) {
      return b.Define(out, md, b.BufferOf(sum_tensor));
    }
    KILN_ASSIGN_OR_RETURN(int src, b.As(sum_tensor, b.MdOf(sum_tensor)));
    KILN_ASSIGN_OR_RETURN(int nb, b.Copy(b.MdOf(sum_tensor), src, as_residual));
    return b.Define(out, md, nb);
  }
  if (b.QuantScaleOf(sum_tensor) != nullptr && b.MdOf(sum_tensor).data_type() != md.data_type()) {
    // Quantized residual, dst in another type: a dequantizing reorder into a private buffer.
    KILN_ASSIGN_OR_RETURN(int nb, b.Quantized(sum_tensor, md, 1.f, /*private_copy=*/true));
    return b.Define(out, md, nb);
  }
  KILN_ASSIGN_OR_RETURN(int src, b.As(sum_tensor, b.MdOf(sum_tensor)));
  KILN_ASSIGN_OR_RETURN(int nb, b.Copy(b.MdOf(sum_tensor), src, md));
  return b.Define(out, md, nb);
}

// ----------------------------------------------------------------------------- build / run

namespace {

// Builds the current layer in b.dt; a primitive oneDNN cannot create is Unimplemented.
Status BuildLayer(Builder& b) {
  try {
    switch (b.L().kind) {
      case LayerKind::kConv:
      case LayerKind::kDeconv:
        return BuildConv(b);
      case LayerKind::kMatMul:
        return BuildMatMul(b);
      case LayerKind::kRnn:
        return BuildRnn(b);
      default:
        return BuildMisc(b);
    }
  } catch (const dnnl::error& e) {
    return Unimplemented(std::string("oneDNN: ") + e.what());
  }
}

// `name_layers`: errors say which layer failed (build); off for probes of one node (Supports
// reasons name no node).
StatusOr<std::shared_ptr<Instance>> Build(const Program& p, const std::vector<Dims>& input_dims,
                                          const BuildConfig& cfg, WeightCache* cache,
                                          bool name_layers, const PartOptions& part = {}) {
  KILN_ASSIGN_OR_RETURN(std::vector<Dims> dims, PropagateShapes(p, input_dims));
  auto inst = std::make_shared<Instance>();
  ThreadScope scope;
  try {
    Builder b(p, dims, cfg, cache, inst.get());
    b.max_threads = scope.caller();
    b.layer_base = part.layer_base;
    for (size_t i = 0; part.input_mds != nullptr && i < part.input_mds->size(); ++i) {
      b.SetInputLayout(i, (*part.input_mds)[i]);
    }
    for (size_t i = 0; i < p.layers.size(); ++i) {
      b.layer = static_cast<int>(i);
      const Layer& l = p.layers[i];
      b.threads = LayerThreads(l, dims, scope.caller());
      scope.Set(b.threads);
      // INT8 conv / matmul with a calibrated input range (layers_int8.cc); the others, and one
      // whose INT8 primitive cannot be made, are built as below.
      const TensorRange* range = Int8RangeOf(b);
      if (range != nullptr && BuildInt8(b, *range).ok()) {
        inst->precision[i] = "INT8";
        continue;
      }
      // Compute layers in the mode's fastest precision with a kernel here, falling back to FP32
      // when oneDNN has no primitive for this one in it (precision.h).
      b.dt = DataTypeOf(RuleOf(l.kind) == PrecisionRule::kCompute && !ForcedFp32(l, cfg)
                            ? ComputePrecision(cfg.precision)
                            : Precision::kFP32);
      // Attention (Q K^T, softmax, P V) and inverted-residual blocks as one step of kiln's own
      // (layers_matmul.cc, layers_conv.cc).
      KILN_ASSIGN_OR_RETURN(const int attention, BuildAttention(b));
      KILN_ASSIGN_OR_RETURN(const int fused,
                            attention > 0 ? StatusOr<int>(attention) : BuildInvertedResidual(b));
      if (fused > 0) {
        const std::string kind = inst->impl[i].substr(0, inst->impl[i].find(':'));
        for (int j = 0; j < fused; ++j) inst->precision[i + j] = "FP32";
        for (int j = 1; j < fused; ++j) {
          inst->impl[i + j] =
              kind + " (fused into '" + (l.nodes.empty() ? l.op : l.nodes.front()) + "')";
        }
        i += static_cast<size_t>(fused - 1);
        continue;
      }
      Status s = BuildLayer(b);
      if (!s.ok() && b.dt != memory::data_type::f32 &&
          s.code() != StatusCode::kResourceExhausted) {
        b.dt = memory::data_type::f32;
        s = BuildLayer(b);
      }
      if (!s.ok()) {
        if (s.code() == StatusCode::kResourceExhausted || !name_layers) return s;
        return LayerError(l, s);
      }
      // What the layer computes in: compute layers may write f32 (ComputeDstType).
      inst->precision[i] = PrecisionNameOf(RuleOf(l.kind) == PrecisionRule::kCompute
                                               ? b.dt
                                               : b.MdOf(l.outputs[0]).data_type());
    }
    KILN_RETURN_IF_ERROR(b.Finish(part.keep_output_layouts));
  } catch (const dnnl::error& e) {
    return Unimplemented(std::string("oneDNN: ") + e.what());
  } catch (const std::exception& e) {
    return Internal(std::string("building the CPU engine failed: ") + e.what());
  }
  return inst;
}

}  // namespace

StatusOr<std::shared_ptr<Instance>> BuildInstance(const Program& p,
                                                  const std::vector<Dims>& input_dims,
                                                  const BuildConfig& cfg, WeightCache* cache) {
  // Leading memory-bound layers depth-first on sub-batches when that applies (batch_slice.cc).
  std::shared_ptr<Instance> sliced = BuildSlicedInstance(p, input_dims, cfg, cache);
  if (sliced != nullptr) return sliced;
  return Build(p, input_dims, cfg, cache, /*name_layers=*/true);
}

StatusOr<std::shared_ptr<Instance>> BuildPart(const Program& p, const std::vector<Dims>& input_dims,
                                              const BuildConfig& cfg, WeightCache* cache,
                                              const PartOptions& opt) {
  return Build(p, input_dims, cfg, cache, /*name_layers=*/true, opt);
}

Status ProbeProgram(const Program& p, const BuildConfig& cfg, std::vector<std::string>* impls) {
  std::vector<Dims> in;
  for (int t : p.inputs) in.push_back(p.tensors[t].dims);
  ScopedNoTacticTiming no_timing;  // a probe is thrown away: no tactic timing (tactics.h)
  WeightCache describe_only{WeightCache::DescribeOnly{}};  // nor weight reorders
  StatusOr<std::shared_ptr<Instance>> inst =
      Build(p, in, cfg, &describe_only, /*name_layers=*/false);
  if (!inst.ok()) return inst.status();
  if (impls != nullptr) *impls = (*inst)->impl;
  return Status::OK();
}

std::unique_ptr<Arena> Instance::Acquire() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!pool_.empty()) {
      auto a = std::move(pool_.back());
      pool_.pop_back();
      return a;
    }
  }
  auto a = std::make_unique<Arena>();
  a->storage = AlignedAlloc(arena_bytes + scratch_bytes);
  if (a->storage == nullptr) return nullptr;
  a->stream = dnnl::stream(eng);
  char* base = static_cast<char*>(a->storage.get());
  a->args.resize(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    for (size_t k = 0; k < s.args.size(); ++k) {
      const StepArg& arg = s.args[k];
      const size_t off = k < s.arg_offsets.size() ? s.arg_offsets[k] : 0;
      const BufferDef& b = buffers[arg.buffer];
      void* ptr = nullptr;
      if (b.where == BufferDef::kArena) ptr = base + b.offset + off;
      if (b.where == BufferDef::kConst) {
        ptr = const_cast<char*>(static_cast<const char*>(b.data)) + off;
      }
      a->args[i].emplace(arg.arg, memory(arg.md, eng, ptr));
      if (b.where == BufferDef::kInput || b.where == BufferDef::kOutput) {
        a->ext.push_back({i, arg.arg, b.where == BufferDef::kInput, b.ext, off});
      }
    }
    if (s.scratch_md.get_size() > 0) {
      a->args[i].emplace(DNNL_ARG_SCRATCHPAD, memory(s.scratch_md, eng, base + arena_bytes));
    }
  }
  return a;
}

Status Instance::Prepare() const {
  std::unique_ptr<Arena> a = Acquire();
  if (a == nullptr) return ResourceExhausted("cannot allocate the engine arena");
  std::memset(a->storage.get(), 0, arena_bytes + scratch_bytes);
  Release(std::move(a));
  return Status::OK();
}

void Instance::Release(std::unique_ptr<Arena> a) const {
  std::lock_guard<std::mutex> lock(mu_);
  pool_.push_back(std::move(a));
}

Status Instance::Run(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
                     std::vector<double>* layer_ms) const {
  outputs->assign(out_dims.size(), Tensor());
  for (size_t o = 0; o < out_dims.size(); ++o) {
    KILN_ASSIGN_OR_RETURN((*outputs)[o], Tensor::Create(DataType::kFloat32, out_dims[o]));
  }
  std::unique_ptr<Arena> a = Acquire();
  if (a == nullptr) return ResourceExhausted("cannot allocate the engine arena");
  try {
    for (const Arena::Ext& e : a->ext) {
      void* p = e.input ? const_cast<void*>(inputs[e.index]->raw_data())
                        : (*outputs)[e.index].raw_mutable_data();
      a->args[e.step].at(e.arg).set_data_handle(static_cast<char*>(p) + e.offset);
    }
    using Clock = std::chrono::steady_clock;
    ThreadScope scope;
    for (size_t i = 0; i < steps.size(); ++i) {
      const auto t0 = layer_ms ? Clock::now() : Clock::time_point();
      scope.Set(steps[i].threads);
      if (steps[i].custom) {
        steps[i].custom->Run(a->args[i]);
      } else {
        steps[i].prim.execute(a->stream, a->args[i]);
      }
      if (layer_ms != nullptr) {
        a->stream.wait();
        const int l = steps[i].layer;
        if (l >= 0 && l < static_cast<int>(layer_ms->size())) {
          (*layer_ms)[l] += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        }
      }
    }
    a->stream.wait();
  } catch (const dnnl::error& e) {
    return Internal(std::string("oneDNN execution failed: ") + e.what());
  }
  Release(std::move(a));
  return Status::OK();
}

}  // namespace kiln::cpu
