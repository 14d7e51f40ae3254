// The CPU engine: a fused layer program plus its oneDNN instances.
//
// Batch policy (static mode): the engine is built eagerly for BuildConfig::input_shapes (batch =
// max_batch_size). A smaller batch gets its own Instance (primitives created for that batch,
// lazily, once, cached per batch under a mutex); weights reordered for one instance are shared
// with the others through the WeightCache. Primitives, weights and instances are immutable
// after creation; each Execute takes a per-call arena from its instance's pool, so concurrent
// Execute calls are safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>

#include "backends/cpu/layers.h"
#include "backends/cpu/lean_weights.h"
#include "engine/engine.h"

namespace kiln::cpu {

class CpuEngine : public Engine {
 public:
  // Builds the engine for config.input_shapes (the program is already fused).
  static StatusOr<std::unique_ptr<CpuEngine>> Create(Program program, const BuildConfig& config);

  Status Execute(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
                 std::vector<LayerInfo>* profile) const override;
  bool Accepts(const std::vector<std::vector<int64_t>>& input_dims) const override;
  std::vector<LayerInfo> Layers() const override;
  StatusOr<std::string> SerializePayload() const override;

  const Program& program() const { return prog_; }
  // Lean plans (lean_weights.h): where each constant came from (Build sets it); without it, or
  // with KILN_PLAN_SELF_CONTAINED=1, SerializePayload writes every constant's bytes.
  void SetConstSources(std::vector<ConstSource> sources) { sources_ = std::move(sources); }
  // Warm start (docs/design.md "Lean plans and warm starts"): allocates and touches one arena
  // of the main instance, so the first Execute after a load does not fault its pages in; with
  // `run`, also runs the engine once on zero inputs (oneDNN kernels and OpenMP threads started).
  Status WarmUp(bool run) const;
  // Bytes of the per-call arena (activations) and scratchpad at the build batch.
  size_t arena_bytes() const { return main_->arena_bytes; }
  size_t scratch_bytes() const { return main_->scratch_bytes; }

 private:
  CpuEngine(Program p, const BuildConfig& c) : prog_(std::move(p)), cfg_(c) {}
  StatusOr<std::shared_ptr<Instance>> InstanceFor(const std::vector<Dims>& dims) const;

  Program prog_;
  BuildConfig cfg_;
  std::shared_ptr<Instance> main_;
  mutable WeightCache cache_;
  mutable std::mutex mu_;
  mutable std::map<std::vector<Dims>, std::shared_ptr<Instance>> instances_;
  std::vector<ConstSource> sources_;
};

}  // namespace kiln::cpu
