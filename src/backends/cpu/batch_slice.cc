// Batch slicing: the leading layers of a batch-N instance run depth-first on sub-batches.
//
// A CNN's first layers move the most bytes: MobileNetV2's 112x112x96 expand output is 4.8 MB a
// sample, 38.5 MB at batch 8, more than the L3 cache (32 MiB here), so at batch 8 every one of
// those layers streams its input and output through DRAM and runs at a third of the speed a
// sample takes alone. Running those layers sample by sample (all of them on sample 0, then on
// sample 1, ...) keeps each sample's activations in cache; the later layers, whose tensors are
// small and whose 1x1 convs gain from the batch, run once on the whole batch.
//
// The prefix is the longest run of leading layers that compute each sample on its own (conv,
// pooling, eltwise, binary, batch norm, concat off the batch axis, resampling, prelu; every
// non-constant tensor with the batch as its outermost dim) up to the last one touching a tensor
// of at least SliceBytes() at the full batch. The sub-batch is the largest proper divisor of N
// whose prefix tensors stay under half of SliceBytes() (1 for MobileNetV2).
//
// Build: the prefix is built as its own program at the sub-batch (outputs: the tensors the rest
// reads, kept in the producer's layout), the rest at batch N with those layouts as its inputs'.
// The two are stitched into one Instance: the prefix's steps repeated per sub-batch with byte
// offsets into the batch-N input and boundary buffers (Step::arg_offsets; the layouts are
// batch-major, so sample n starts n * size / N bytes in), then the rest's steps. The program and
// its plan are unchanged: slicing is decided per instance from the program and the batch.
// KILN_CPU_BATCH_SLICE=0 turns it off; another value sets SliceBytes() (bytes).
#include <cstdlib>
#include <cstring>

#include "backends/cpu/layers.h"
#include "core/logging.h"

namespace kiln::cpu {
namespace {

// About a quarter of this machine's L3 (32 MiB): at batch 8 MobileNetV2's 112x112 and 56x56
// stages (38.5 / 14.4 MB) are sliced, its 28x28 ones (4.8 MB) are not.
constexpr double kSliceBytes = 8.0 * (1 << 20);

// Read at each instance build (instances are built rarely; tests change it).
double SliceBytes() {
  const char* s = std::getenv("KILN_CPU_BATCH_SLICE");
  if (s == nullptr || *s == '\0') return kSliceBytes;
  char* end = nullptr;
  const double d = std::strtod(s, &end);
  return end != s && *end == '\0' && d >= 0 ? d : kSliceBytes;
}

double Bytes(const Dims& d) {
  double n = 4;
  for (int64_t v : d) n *= static_cast<double>(v);
  return n;
}

// Whether layer l computes each of the n samples on its own, its non-constant tensors batch-major
// with n samples and its constant operands the same for every sample.
bool PerSample(const Program& p, const std::vector<Dims>& dims, const Layer& l, int64_t n) {
  size_t params_from = l.inputs.size();  // inputs from here on: constant parameters
  switch (l.kind) {
    case LayerKind::kConv:
    case LayerKind::kDeconv:
    case LayerKind::kBatchNorm:
      params_from = 1;
      break;
    case LayerKind::kConcat:
      if (l.Int("axis", -1) <= 0) return false;
      break;
    case LayerKind::kEltwise:
    case LayerKind::kBinary:
    case LayerKind::kPool:
    case LayerKind::kResample:
    case LayerKind::kPRelu:
      break;
    default:
      return false;
  }
  const size_t rank = dims[l.outputs[0]].size();
  // Non-constant tensors have the output's rank (broadcasting aligns trailing dims: a [N] vector
  // would meet the last axis, not the batch) and N samples.
  auto batched = [&](int t) { return dims[t].size() == rank && rank > 0 && dims[t][0] == n; };
  // A constant data operand broadcasts over the batch: fewer dims than the output or a leading 1.
  auto operand_ok = [&](int t) {
    if (!p.tensors[t].is_const) return batched(t);
    return dims[t].size() < rank || (!dims[t].empty() && dims[t][0] == 1);
  };
  for (size_t i = 0; i < l.inputs.size(); ++i) {
    const int t = l.inputs[i];
    if (t < 0) continue;
    if (i >= params_from ? !p.tensors[t].is_const : !operand_ok(t)) return false;
  }
  for (const PostOp& po : l.post_ops) {
    if (po.tensor >= 0 && !operand_ok(po.tensor)) return false;
  }
  for (int t : l.outputs) {
    if (!batched(t)) return false;
  }
  return true;
}

// `md` with n samples (BatchSliceable layouts only).
memory::desc WithBatch(const memory::desc& md, int64_t n) {
  dnnl_memory_desc_t d = md.data;
  d.dims[0] = n;
  d.padded_dims[0] = n;
  return memory::desc(d);
}

// Appends `b` (unplaced) to `out`, returning its index.
int AddBuffer(Instance* out, BufferDef b) {
  b.first = b.last = -1;
  b.offset = 0;
  out->buffers.push_back(b);
  return static_cast<int>(out->buffers.size()) - 1;
}

// Appends `st` with its buffers mapped through `map` and offsets `slice` * `stride[buffer]`.
void AddStep(Instance* out, const Step& st, const std::vector<int>& map,
             const std::vector<size_t>& stride, size_t slice, int layer) {
  Step s = st;
  s.layer = st.layer >= 0 ? layer : -1;
  s.arg_offsets.assign(s.args.size(), 0);
  for (size_t k = 0; k < s.args.size(); ++k) {
    const int old = s.args[k].buffer;
    s.arg_offsets[k] = (k < st.arg_offsets.size() ? st.arg_offsets[k] : 0) + slice * stride[old];
    s.args[k].buffer = map[old];
  }
  out->steps.push_back(std::move(s));
}

}  // namespace

bool BatchSliceable(const memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.ndims < 1 || d.format_kind != dnnl_blocked || d.offset0 != 0 || d.extra.flags != 0 ||
      d.dims[0] < 1 || d.padded_dims[0] != d.dims[0] || d.padded_offsets[0] != 0) {
    return false;
  }
  const dnnl_blocking_desc_t& blk = d.format_desc.blocking;
  for (int i = 0; i < blk.inner_nblks; ++i) {
    if (blk.inner_idxs[i] == 0) return false;
  }
  return md.get_size() ==
         static_cast<size_t>(d.dims[0] * blk.strides[0]) * dnnl_data_type_size(d.data_type);
}

// On AMX, BF16 dense convs run on the tiles and are light on compute, and each sub-batch re-runs
// every prefix primitive (its weights streamed and its tiles set up again per slice): ResNet-50
// BF16 at batch 8 on the lent Xeon host (4 alternated rounds) took 41-44 ms unsliced against
// 44-110 ms sliced (medians 43 vs 92 ms). MobileNetV2, whose prefix is depthwise convs bound by
// memory, still gains there (11.1-12.7 vs 12.2-16.5 ms), and FP32 (no tiles) was even. So on AMX
// a BF16 prefix is sliced only when it holds a depthwise conv.
bool SlicePrefixPays(const Program& p, const std::vector<Dims>& dims, size_t k,
                     Precision precision, bool amx) {
  if (!amx || precision != Precision::kBF16) return true;
  for (size_t i = 0; i < k && i < p.layers.size(); ++i) {
    const Layer& l = p.layers[i];
    if (l.kind != LayerKind::kConv || l.Int("group", 1) <= 1 || l.inputs.size() < 2) continue;
    const Dims& w = dims[l.inputs[1]];
    if (w.size() > 1 && w[1] == 1) return true;  // depthwise: one input channel per group
  }
  return false;
}

std::shared_ptr<Instance> BuildSlicedInstance(const Program& p, const std::vector<Dims>& input_dims,
                                              const BuildConfig& cfg, WeightCache* cache) {
  const double limit = SliceBytes();
  // INT8 layers hand quantized tensors to their readers by scale (Builder::quant_scale_), which
  // does not cross the seam; keep those builds whole.
  if (limit <= 0 || p.inputs.empty() || cfg.precision == Precision::kINT8 ||
      !cfg.int8_ranges.empty()) {
    return nullptr;
  }
  const int64_t n = input_dims[0].empty() ? 0 : input_dims[0][0];
  if (n < 2) return nullptr;
  for (const Dims& d : input_dims) {
    if (d.empty() || d[0] != n) return nullptr;
  }
  StatusOr<std::vector<Dims>> shaped = PropagateShapes(p, input_dims);
  if (!shaped.ok()) return nullptr;  // the whole build reports it
  const std::vector<Dims>& dims = *shaped;

  // The prefix [0, k): per-sample layers up to the last touching a tensor of `limit` bytes.
  size_t k = 0;
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const Layer& l = p.layers[i];
    if (!PerSample(p, dims, l, n)) break;
    double big = 0;
    for (int t : l.inputs) {
      if (t >= 0 && !p.tensors[t].is_const) big = std::max(big, Bytes(dims[t]));
    }
    for (int t : l.outputs) big = std::max(big, Bytes(dims[t]));
    if (big >= limit) k = i + 1;
  }
  if (k == 0) return nullptr;
  static const bool amx = dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx512_core_amx;
  if (!SlicePrefixPays(p, dims, k, cfg.precision, amx)) return nullptr;
  double sample = 0;  // the prefix's largest tensor per sample
  for (size_t i = 0; i < k; ++i) {
    for (int t : p.layers[i].outputs) sample = std::max(sample, Bytes(dims[t]) / n);
  }
  int64_t sub = 1;
  for (int64_t d = n / 2; d > 1; --d) {
    if (n % d == 0 && d * sample <= limit / 2) {
      sub = d;
      break;
    }
  }
  const int64_t slices = n / sub;

  // Boundary: tensors the prefix makes that the rest (or the caller) reads, by id.
  std::vector<bool> made(p.tensors.size(), false), read_after(p.tensors.size(), false);
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const Layer& l = p.layers[i];
    for (int t : l.outputs) made[t] = made[t] || i < k;
    if (i < k) continue;
    for (int t : l.inputs) {
      if (t >= 0) read_after[t] = true;
    }
    for (const PostOp& po : l.post_ops) {
      if (po.tensor >= 0) read_after[po.tensor] = true;
    }
  }
  for (int t : p.outputs) read_after[t] = true;
  Program head, tail;
  head.tensors = tail.tensors = p.tensors;  // Tensor copies share their data
  head.layers.assign(p.layers.begin(), p.layers.begin() + k);
  tail.layers.assign(p.layers.begin() + k, p.layers.end());
  head.inputs = p.inputs;
  for (size_t t = 0; t < p.tensors.size(); ++t) {
    if (made[t] && read_after[t]) head.outputs.push_back(static_cast<int>(t));
  }
  tail.inputs = head.outputs;
  std::vector<int> tail_input_of;  // tail input i >= boundary count: engine input index
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    if (read_after[p.inputs[i]]) {
      tail.inputs.push_back(p.inputs[i]);
      tail_input_of.push_back(static_cast<int>(i));
    }
  }
  tail.outputs = p.outputs;
  const size_t nb = head.outputs.size();

  std::vector<Dims> head_dims = input_dims;
  for (Dims& d : head_dims) d[0] = sub;
  StatusOr<std::shared_ptr<Instance>> built =
      BuildPart(head, head_dims, cfg, cache, {0, nullptr, /*keep_output_layouts=*/true});
  if (!built.ok()) {
    KILN_LOG(DEBUG) << "cpu batch slicing: prefix not built: " << built.status().message();
    return nullptr;
  }
  const std::shared_ptr<Instance> h = *built;
  std::vector<Dims> tail_dims;
  std::vector<memory::desc> tail_mds;
  for (size_t i = 0; i < tail.inputs.size(); ++i) {
    const int t = tail.inputs[i];
    tail_dims.push_back(dims[t]);
    if (i >= nb) {
      tail_mds.push_back(Builder::Plain(dims[t]));
      continue;
    }
    const memory::desc& md = h->out_mds[i];
    const memory::desc full = WithBatch(md, n);
    if (!BatchSliceable(md) || md.data_type() == memory::data_type::s8 ||
        md.data_type() == memory::data_type::u8 || !BatchSliceable(full) ||
        full.get_size() != md.get_size() * static_cast<size_t>(slices)) {
      return nullptr;
    }
    tail_mds.push_back(full);
  }
  built = BuildPart(tail, tail_dims, cfg, cache, {static_cast<int>(k), &tail_mds, false});
  if (!built.ok()) {
    KILN_LOG(DEBUG) << "cpu batch slicing: rest not built: " << built.status().message();
    return nullptr;
  }
  const std::shared_ptr<Instance> r = *built;

  // Stitch: engine inputs, batch-N boundary buffers, then each part's own buffers.
  auto out = std::make_shared<Instance>();
  out->eng = h->eng;
  std::vector<int> in_buf, bound_buf;
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    BufferDef b;
    b.where = BufferDef::kInput;
    b.ext = static_cast<int>(i);
    in_buf.push_back(AddBuffer(out.get(), b));
  }
  for (size_t i = 0; i < nb; ++i) {
    BufferDef b;
    b.bytes = tail_mds[i].get_size();
    bound_buf.push_back(AddBuffer(out.get(), b));
  }
  std::vector<int> hmap(h->buffers.size()), rmap(r->buffers.size());
  std::vector<size_t> hstride(h->buffers.size(), 0), rstride(r->buffers.size(), 0);
  for (size_t i = 0; i < h->buffers.size(); ++i) {
    const BufferDef& b = h->buffers[i];
    if (b.where == BufferDef::kInput) {
      hmap[i] = in_buf[b.ext];
      hstride[i] = Builder::Plain(head_dims[b.ext]).get_size();
    } else if (b.where == BufferDef::kOutput) {
      hmap[i] = bound_buf[b.ext];
      hstride[i] = h->out_mds[b.ext].get_size();
    } else {
      hmap[i] = AddBuffer(out.get(), b);
    }
  }
  for (size_t i = 0; i < r->buffers.size(); ++i) {
    const BufferDef& b = r->buffers[i];
    if (b.where == BufferDef::kInput) {
      rmap[i] =
          static_cast<size_t>(b.ext) < nb ? bound_buf[b.ext] : in_buf[tail_input_of[b.ext - nb]];
    } else {
      rmap[i] = AddBuffer(out.get(), b);  // outputs keep their ext: tail.outputs == p.outputs
    }
  }
  for (int64_t s = 0; s < slices; ++s) {
    for (const Step& st : h->steps) AddStep(out.get(), st, hmap, hstride, s, st.layer);
  }
  for (const Step& st : r->steps) {
    AddStep(out.get(), st, rmap, rstride, 0, st.layer + static_cast<int>(k));
  }
  for (size_t i = 0; i < out->steps.size(); ++i) {
    const Step& s = out->steps[i];
    out->scratch_bytes = std::max(out->scratch_bytes, s.scratch_md.get_size());
    for (const StepArg& a : s.args) {
      BufferDef& b = out->buffers[a.buffer];
      if (b.first < 0) b.first = static_cast<int>(i);
      b.last = static_cast<int>(i);
    }
  }
  out->arena_bytes = PlanMemory(&out->buffers);
  LinkGemmPrefetch(out.get());
  out->out_dims = r->out_dims;
  out->out_mds = r->out_mds;
  for (const Instance* part : {h.get(), r.get()}) {
    const size_t layers = part == h.get() ? k : p.layers.size() - k;
    std::vector<std::string> tactic = part->tactic;
    tactic.resize(layers);
    out->impl.insert(out->impl.end(), part->impl.begin(), part->impl.end());
    out->precision.insert(out->precision.end(), part->precision.begin(), part->precision.end());
    out->tactic.insert(out->tactic.end(), tactic.begin(), tactic.end());
    out->keep.insert(out->keep.end(), part->keep.begin(), part->keep.end());
  }
  // `kiln inspect` shows it (LayerInfo::implementation "... [8 sub-batches of 1]").
  const std::string note = std::to_string(slices) + " sub-batches of " + std::to_string(sub);
  for (size_t i = 0; i < k; ++i) {
    out->tactic[i] = out->tactic[i].empty() ? note : out->tactic[i] + "; " + note;
  }
  KILN_LOG(DEBUG) << "cpu batch slicing: layers [0, " << k << ") of " << p.layers.size()
                  << " run on " << slices << " sub-batches of " << sub;
  return out;
}

}  // namespace kiln::cpu
