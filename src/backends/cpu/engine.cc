// CpuEngine (cpu_engine.h): instances per batch, execution, layer table, payload.
#include "backends/cpu/cpu_engine.h"

#include "engine/engine_inputs.h"

namespace kiln::cpu {

StatusOr<std::unique_ptr<CpuEngine>> CpuEngine::Create(Program program, const BuildConfig& config) {
  std::unique_ptr<CpuEngine> e(new CpuEngine(std::move(program), config));
  if (config.input_shapes.size() != e->prog_.inputs.size()) {
    return InvalidArgument("the engine has " + std::to_string(e->prog_.inputs.size()) +
                           " inputs but BuildConfig gives " +
                           std::to_string(config.input_shapes.size()) + " shapes");
  }
  KILN_ASSIGN_OR_RETURN(e->main_, BuildInstance(e->prog_, config.input_shapes, config, &e->cache_));
  e->instances_[config.input_shapes] = e->main_;
  return e;
}

StatusOr<std::shared_ptr<Instance>> CpuEngine::InstanceFor(const std::vector<Dims>& dims) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = instances_.find(dims);
  if (it != instances_.end()) return it->second;
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<Instance> inst, BuildInstance(prog_, dims, cfg_, &cache_));
  instances_[dims] = inst;
  return inst;
}

bool CpuEngine::Accepts(const std::vector<std::vector<int64_t>>& dims) const {
  // The batch must also be one the program's shapes allow (e.g. a Reshape to a fixed size).
  return ShapesWithinBuild(cfg_, dims) && InstanceFor(dims).ok();
}

Status CpuEngine::Execute(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
                          std::vector<LayerInfo>* profile) const {
  KILN_ASSIGN_OR_RETURN(std::vector<Dims> dims,
                        EngineInputDims(inputs, prog_.inputs.size(), "CPU engine"));
  if (!Accepts(dims)) return ShapesRejected("CPU engine", dims);
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<Instance> inst, InstanceFor(dims));
  if (profile == nullptr) return inst->Run(inputs, outputs, nullptr);
  std::vector<double> ms(prog_.layers.size(), 0.0);
  KILN_RETURN_IF_ERROR(inst->Run(inputs, outputs, &ms));
  *profile = Layers();
  for (size_t i = 0; i < profile->size(); ++i) (*profile)[i].ms = ms[i];
  return Status::OK();
}

std::vector<LayerInfo> CpuEngine::Layers() const {
  std::vector<LayerInfo> out;
  for (size_t i = 0; i < prog_.layers.size(); ++i) {
    const Layer& l = prog_.layers[i];
    LayerInfo info;
    info.name = l.nodes.empty() ? l.op : l.nodes[0];
    info.op = l.op;
    info.nodes = l.nodes;
    info.precision = main_->precision[i];
    info.implementation = main_->impl[i].empty() ? "view (no copy)" : main_->impl[i];
    if (i < main_->tactic.size() && !main_->tactic[i].empty()) {
      info.implementation += " [" + main_->tactic[i] + "]";  // tactic timing (tactics.h)
    }
    out.push_back(std::move(info));
  }
  return out;
}

StatusOr<std::string> CpuEngine::SerializePayload() const {
  Program p = prog_;
  for (size_t i = 0; i < p.layers.size(); ++i) p.layers[i].impl = main_->impl[i];
  if (sources_.size() != p.tensors.size() || SelfContainedPlans()) return SerializeProgram(p);
  std::vector<ConstSource> sources = sources_;
  FillHashes(p, &sources);
  return SerializeProgram(p, &sources);
}

Status CpuEngine::WarmUp(bool run) const {
  if (!run) return main_->Prepare();
  std::vector<Tensor> in;
  for (const Dims& d : cfg_.input_shapes) {
    KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::Create(DataType::kFloat32, d));
    in.push_back(std::move(t));
  }
  std::vector<const Tensor*> ptrs;
  for (const Tensor& t : in) ptrs.push_back(&t);
  std::vector<Tensor> out;
  return main_->Run(ptrs, &out, nullptr);
}

}  // namespace kiln::cpu
