// Per-layer precision rules (precision.h) and the kernel-availability probe (cpu_backend.h).
#include "backends/cpu/precision.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "backends/cpu/cpu_backend.h"

namespace kiln {
namespace {

using dnnl::memory;

// True when the effective ISA (DNNL_MAX_CPU_ISA / ONEDNN_MAX_CPU_ISA honored) includes `want`:
// oneDNN's cpu_isa values are bit sets that contain the ISAs below them.
bool IsaHas(dnnl::cpu_isa want) {
  const auto have = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto w = static_cast<unsigned>(want);
  return (have & w) == w;
}

// Creates a small 3x3 convolution in the given data types; true when oneDNN has an optimized
// (non-reference) implementation for it.
bool ProbeConv(memory::data_type src, memory::data_type wei, memory::data_type dst) {
  try {
    const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    const memory::dims x = {1, 32, 8, 8}, w = {32, 32, 3, 3}, y = {1, 32, 8, 8};
    const auto any = memory::format_tag::any;
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                      dnnl::algorithm::convolution_direct,
                                      memory::desc(x, src, any), memory::desc(w, wei, any),
                                      memory::desc(y, dst, any), {1, 1}, {1, 1}, {1, 1});
    dnnl::convolution_forward::primitive_desc pd(d, eng);
    return std::string(pd.impl_info_str()).rfind("ref", 0) != 0;
  } catch (const dnnl::error&) {
    return false;
  }
}

bool Probe(Precision p) {
  switch (p) {
    case Precision::kFP32:
      return true;
    case Precision::kBF16:
      // Native bf16 dot products (avx512_bf16 / AMX); on plain AVX-512 oneDNN emulates bf16,
      // slower than FP32, so it does not count as a kernel here.
      return IsaHas(dnnl::cpu_isa::avx512_core_bf16) &&
             ProbeConv(memory::data_type::bf16, memory::data_type::bf16, memory::data_type::bf16);
    case Precision::kFP16:
      // oneDNN 2.6 has no FP16 compute on CPU (later versions need avx512_core_fp16); the
      // probe answers for whatever library is linked.
      return ProbeConv(memory::data_type::f16, memory::data_type::f16, memory::data_type::f16);
    case Precision::kINT8:
      return ProbeConv(memory::data_type::u8, memory::data_type::s8, memory::data_type::f32);
    case Precision::kFP8:
      return false;  // oneDNN 2.6 has no FP8 on CPU
  }
  return false;
}

}  // namespace

bool CpuHasKernel(Precision p) {
  static const bool has[5] = {Probe(Precision::kFP32), Probe(Precision::kFP16),
                              Probe(Precision::kBF16), Probe(Precision::kINT8),
                              Probe(Precision::kFP8)};
  const int i = static_cast<int>(p);
  return i >= 0 && i < 5 && has[i];
}

namespace cpu {

std::vector<Precision> AllowedPrecisions(Precision mode) {
  switch (mode) {
    case Precision::kFP32:
      return {Precision::kFP32};
    case Precision::kFP16:
      return {Precision::kFP16, Precision::kFP32};
    case Precision::kBF16:
      return {Precision::kBF16, Precision::kFP32};
    case Precision::kINT8:
      return {Precision::kINT8, Precision::kBF16, Precision::kFP16, Precision::kFP32};
    case Precision::kFP8:  // as INT8 allows every float type, FP8 allows the 16-bit ones
      return {Precision::kFP8, Precision::kBF16, Precision::kFP16, Precision::kFP32};
  }
  return {Precision::kFP32};
}

PrecisionRule RuleOf(LayerKind kind) {
  switch (kind) {
    case LayerKind::kConv:
    case LayerKind::kDeconv:
    case LayerKind::kMatMul:
      return PrecisionRule::kCompute;
    case LayerKind::kSoftmax:
    case LayerKind::kLayerNorm:
    case LayerKind::kReduce:
    case LayerKind::kRnn:
      return PrecisionRule::kFP32;
    default:
      return PrecisionRule::kFollow;
  }
}

bool ForcedFp32(const Layer& l, const BuildConfig& cfg) {
  for (const std::string& name : cfg.fp32_layers) {
    if (std::find(l.nodes.begin(), l.nodes.end(), name) != l.nodes.end()) return true;
  }
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    const char* env = std::getenv("KILN_CPU_FP32_LAYERS");
    std::string s = env != nullptr ? env : "";
    for (size_t pos = 0; pos <= s.size();) {
      size_t end = s.find(',', pos);
      if (end == std::string::npos) end = s.size();
      if (end > pos) k.push_back(s.substr(pos, end - pos));
      pos = end + 1;
    }
    return k;
  }();
  for (const std::string& k : keys) {
    if ((!l.nodes.empty() && l.nodes[0] == k) || l.op.find(k) != std::string::npos) return true;
  }
  return false;
}

Precision ComputePrecision(Precision mode) {
  for (Precision p : AllowedPrecisions(mode)) {
    if (p != Precision::kINT8 && p != Precision::kFP8 && CpuHasKernel(p)) return p;
  }
  return Precision::kFP32;
}

dnnl::memory::data_type ComputeDstType(const Program& p, const Layer& l,
                                       dnnl::memory::data_type compute,
                                       dnnl::memory::data_type sum_type) {
  const auto f32 = memory::data_type::f32;
  if (compute == f32) return f32;
  bool has_sum = false;
  for (const PostOp& po : l.post_ops) has_sum = has_sum || po.kind == PostOp::kSum;
  if (has_sum) return sum_type == f32 ? f32 : compute;
  for (int t : l.outputs) {
    for (const Layer& c : p.layers) {
      if (c.dead) continue;
      for (const PostOp& po : c.post_ops) {
        if (po.tensor == t) return compute;
      }
      for (int in : c.inputs) {
        if (in == t && RuleOf(c.kind) != PrecisionRule::kFP32) return compute;
      }
    }
  }
  return f32;  // read only by FP32 layers and engine outputs
}

dnnl::memory::data_type DataTypeOf(Precision p) {
  switch (p) {
    case Precision::kFP32:
      return memory::data_type::f32;
    case Precision::kFP16:
      return memory::data_type::f16;
    case Precision::kBF16:
      return memory::data_type::bf16;
    case Precision::kINT8:
      return memory::data_type::s8;
    case Precision::kFP8:  // no CPU FP8 type: never a compute type (ComputePrecision)
      return memory::data_type::f32;
  }
  return memory::data_type::f32;
}

const char* PrecisionNameOf(dnnl::memory::data_type t) {
  switch (t) {
    case memory::data_type::f32:
      return "FP32";
    case memory::data_type::bf16:
      return "BF16";
    case memory::data_type::f16:
      return "FP16";
    case memory::data_type::s8:
    case memory::data_type::u8:
      return "INT8";
    case memory::data_type::s32:
      return "INT32";
    default:
      return "?";
  }
}

}  // namespace cpu
}  // namespace kiln
