// The CPU backend (cpu_backend.h): Supports = lowering in validation mode, Build = lowering +
// fusion + instance, Deserialize = parse the stored (already fused) program + instance, with
// each layer preferring the implementation recorded in the plan.
#include "backends/cpu/cpu_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <dnnl.hpp>

#include "backends/cpu/cpu_engine.h"
#include "backends/cpu/lean_weights.h"
#include "core/logging.h"
#include "backends/cpu/lowering.h"
#include "backends/cpu/precision.h"

namespace kiln {
namespace {

std::string IsaName(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic:
      return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "isa" + std::to_string(static_cast<int>(isa));
  }
}

class CpuBackendImpl : public Backend {
 public:
  const char* name() const override { return "cpu"; }

  std::string DeviceFingerprint() const override {
    const dnnl_version_t* v = dnnl_version();
    std::string f = "cpu;isa=" + IsaName(dnnl::get_effective_cpu_isa()) +
                    ";onednn=" + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                    std::to_string(v->patch) + ";features=";
    __builtin_cpu_init();
#define KILN_FEATURE(x) \
  if (__builtin_cpu_supports(x)) f += std::string(x) + ",";
    KILN_FEATURE("avx2")
    KILN_FEATURE("fma")
    KILN_FEATURE("avx512f")
    KILN_FEATURE("avx512bw")
    KILN_FEATURE("avx512vl")
    KILN_FEATURE("avx512vnni")
    KILN_FEATURE("avx512bf16")
#undef KILN_FEATURE
    return f;
  }

  bool HasKernel(Precision p) const override { return CpuHasKernel(p); }
  // What a layer computes in when `p` has no kernel here (FP8: BF16 with AMX / AVX512-BF16,
  // else FP32).
  Precision FallbackFor(Precision p) const override { return cpu::ComputePrecision(p); }

  Status Supports(const Node& node, const Graph& graph, const BuildConfig& config) const override {
    return cpu::LowerNodeForSupport(node, graph, config);
  }

  StatusOr<std::unique_ptr<Engine>> Build(const Graph& segment,
                                          const BuildConfig& config) const override {
    KILN_ASSIGN_OR_RETURN(cpu::Program p, cpu::LowerSegment(segment, config));
    cpu::FuseProgram(&p);
    KILN_RETURN_IF_ERROR(cpu::CheckFused(p));
    std::vector<cpu::ConstSource> sources = cpu::ClassifyConsts(p, segment);
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<cpu::CpuEngine> e,
                          cpu::CpuEngine::Create(std::move(p), config));
    e->SetConstSources(std::move(sources));
    return std::unique_ptr<Engine>(std::move(e));
  }

  StatusOr<std::unique_ptr<Engine>> Deserialize(std::string_view payload, const Graph& segment,
                                                const BuildConfig& config) const override {
    using Clock = std::chrono::steady_clock;
    auto ms = [](Clock::time_point a, Clock::time_point b) {
      return std::chrono::duration<double, std::milli>(b - a).count();
    };
    const auto t0 = Clock::now();
    std::vector<cpu::ConstSource> sources;
    KILN_ASSIGN_OR_RETURN(cpu::Program p, cpu::ParseProgram(payload, &sources));
    const bool lean = std::any_of(sources.begin(), sources.end(), [](const auto& s) {
      return s.kind != cpu::ConstSource::kInline;
    });
    const auto t1 = Clock::now();
    if (lean) KILN_RETURN_IF_ERROR(cpu::ResolveLeanConsts(&p, sources, segment, config));
    const auto t2 = Clock::now();
    if (Status s = cpu::CheckFused(p); !s.ok()) {
      return DataLoss("CPU engine payload: " + s.message());
    }
    if (p.inputs.size() != segment.inputs.size() || p.outputs.size() != segment.outputs.size()) {
      return DataLoss("CPU engine payload has " + std::to_string(p.inputs.size()) + " inputs and " +
                      std::to_string(p.outputs.size()) + " outputs; the segment has " +
                      std::to_string(segment.inputs.size()) + " and " +
                      std::to_string(segment.outputs.size()));
    }
    StatusOr<std::unique_ptr<cpu::CpuEngine>> e = cpu::CpuEngine::Create(std::move(p), config);
    if (!e.ok()) return e.status().WithContext("rebuilding the CPU engine from its plan");
    if (lean) (*e)->SetConstSources(std::move(sources));  // re-serializes lean
    const auto t3 = Clock::now();
    // Warm start: the arena is allocated and touched at load (KILN_ENGINE_WARMUP=run: one whole
    // run too; =0: neither). A failed warm-up is the engine's failure, as the first Execute's
    // would be.
    const char* warm = std::getenv("KILN_ENGINE_WARMUP");
    const std::string_view mode = warm == nullptr ? "" : warm;
    if (mode != "0") {
      if (Status s = (*e)->WarmUp(mode == "run"); !s.ok()) {
        return s.WithContext("warming up the CPU engine");
      }
    }
    KILN_LOG(INFO) << "CPU engine deserialized: parse " << ms(t0, t1) << " ms, "
                   << (lean ? "weights from the segment " : "self-contained ") << ms(t1, t2)
                   << " ms, instance (primitives, weight reorders) " << ms(t2, t3)
                   << " ms, warm-up " << ms(t3, Clock::now()) << " ms";
    return std::unique_ptr<Engine>(std::move(e).value());
  }
};

}  // namespace

const Backend& CpuBackend() {
  static const CpuBackendImpl* backend = new CpuBackendImpl();
  return *backend;
}

}  // namespace kiln
