#include "runtime/executor.h"

#include <chrono>

#include "ops/base/kernel_context.h"

namespace kiln {

StatusOr<Executor> Executor::Compile(const Graph& graph, const OpRegistry& registry) {
  Executor ex;
  ex.graph_ = &graph;
  ex.opset_ = graph.onnx_opset();
  auto slot = [&ex](const std::string& name) {
    auto [it, inserted] = ex.slots_.emplace(name, static_cast<int>(ex.slots_.size()));
    return it->second;
  };
  for (const auto& in : graph.inputs) slot(in);
  for (const auto& [name, t] : graph.initializers) slot(name);
  KILN_ASSIGN_OR_RETURN(std::vector<int> order, graph.TopologicalOrder());
  for (int k : order) {
    const Node& node = graph.nodes[k];
    Step step;
    step.node = &node;
    step.schema = registry.Find(node.domain, node.op_type);
    if (step.schema == nullptr) {
      return Unimplemented(node.Describe() + ": op is not in kiln's op table");
    }
    if (step.schema->kernel_factory()) {
      KernelInitContext init{node, graph, ex.opset_};
      auto kernel = step.schema->kernel_factory()(init);
      if (!kernel.ok()) return kernel.status();
      step.kernel = std::shared_ptr<const OpKernel>(std::move(kernel).value());
    }
    for (const auto& in : node.inputs) step.inputs.push_back(in.empty() ? -1 : slot(in));
    // Control-flow nodes also read what their subgraphs take from this scope; those values
    // follow the node's own inputs (see OuterScopeReads), so liveness covers them.
    for (const auto& in : OuterScopeReads(node)) step.inputs.push_back(slot(in));
    for (const auto& out : node.outputs) step.outputs.push_back(out.empty() ? -1 : slot(out));
    ex.steps_.push_back(std::move(step));
  }
  const size_t n = ex.slots_.size();
  ex.constants_.assign(n, Tensor());
  for (const auto& [name, t] : graph.initializers) ex.constants_[ex.slots_[name]] = t;
  ex.producer_step_.assign(n, -1);
  ex.last_use_.assign(n, -1);
  ex.device_readers_.assign(n, 0);
  std::vector<char> host_reader(n, 0);
  for (size_t s = 0; s < ex.steps_.size(); ++s) {
    const Step& st = ex.steps_[s];
    const bool device = st.kernel != nullptr && st.kernel->TakesDeviceTensors();
    for (int o : st.outputs) {
      if (o >= 0) ex.producer_step_[o] = static_cast<int>(s);
    }
    for (int i : st.inputs) {
      if (i < 0) continue;
      ex.last_use_[i] = static_cast<int>(s);
      (device ? ex.device_readers_[i] : host_reader[i]) = 1;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (host_reader[i]) ex.device_readers_[i] = 0;
  }
  return ex;
}

int Executor::SlotOf(const std::string& value) const {
  auto it = slots_.find(value);
  return it == slots_.end() ? -1 : it->second;
}

StatusOr<std::vector<Tensor>> Executor::Run(const std::vector<std::pair<int, Tensor>>& feeds,
                                            const std::vector<int>& fetch_slots,
                                            const RunOptions& options, RunStats* stats) const {
  using Clock = std::chrono::steady_clock;
  const auto run_start = Clock::now();
  std::vector<Tensor> values = constants_;
  std::vector<char> fed(values.size(), 0);
  for (const auto& [s, t] : feeds) {
    values[s] = t;
    fed[s] = 1;
  }
  // Which steps do the fetches need? Walk back from the fetched slots.
  std::vector<char> needed(steps_.size(), 0);
  std::vector<char> keep(values.size(), 0);
  std::vector<int> stack;
  for (int f : fetch_slots) {
    keep[f] = 1;
    stack.push_back(f);
  }
  std::vector<char> visited(values.size(), 0);
  while (!stack.empty()) {
    int s = stack.back();
    stack.pop_back();
    if (visited[s]) continue;
    visited[s] = 1;
    int p = producer_step_[s];
    if (p < 0 || fed[s] || needed[p]) continue;
    needed[p] = 1;
    for (int i : steps_[p].inputs) {
      if (i >= 0) stack.push_back(i);
    }
  }
  std::vector<const Tensor*> args;
  std::vector<Tensor> outs;
  std::vector<bool> keep_on_device;
  for (size_t k = 0; k < steps_.size(); ++k) {
    if (!needed[k]) continue;
    const Step& step = steps_[k];
    const bool takes_device = step.kernel != nullptr && step.kernel->TakesDeviceTensors();
    args.clear();
    for (int i : step.inputs) {
      // A host kernel reads a device value: copy it to the host once (later readers share it).
      if (i >= 0 && !takes_device && values[i].on_device()) {
        auto host = values[i].ToHost();
        if (!host.ok()) return host.status().WithContext(step.node->Describe());
        values[i] = *std::move(host);
      }
      if (i >= 0 && !values[i].defined()) {
        std::string name = args.size() < step.node->inputs.size()
                               ? step.node->inputs[args.size()]
                               : "(outer-scope value)";
        for (const auto& [n, s] : slots_) {
          if (s == i) name = n;
        }
        return Internal(step.node->Describe() + ": input '" + name + "' has no value");
      }
      args.push_back(i >= 0 ? &values[i] : nullptr);
    }
    const auto t0 = Clock::now();
    if (step.kernel) {
      outs.assign(step.node->outputs.size(), Tensor());
      KernelContext ctx(*step.node, *step.schema, opset_, args, &outs);
      if (takes_device) {
        keep_on_device.assign(step.outputs.size(), false);
        for (size_t o = 0; o < step.outputs.size(); ++o) {
          const int out = step.outputs[o];
          keep_on_device[o] = out >= 0 && (device_readers_[out] || last_use_[out] < 0) &&
                              (!keep[out] || options.outputs_on_device);
        }
        ctx.set_keep_on_device(&keep_on_device);
      }
      KILN_RETURN_IF_ERROR(step.kernel->Compute(ctx));
    } else {
      KILN_RETURN_IF_ERROR(RunKernel(*step.schema, *step.node, opset_, args, &outs));
    }
    if (options.profile && stats != nullptr) {
      double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      stats->nodes.push_back({step.node->name, step.node->op_type, ms});
    }
    for (size_t o = 0; o < step.outputs.size(); ++o) {
      const int out = step.outputs[o];
      if (out < 0 || fed[out]) continue;
      // An output nothing reads and nobody fetched is dropped at once.
      if (last_use_[out] >= 0 || keep[out]) values[out] = std::move(outs[o]);
    }
    // Release what this step was the last reader of.
    for (int i : step.inputs) {
      if (i >= 0 && last_use_[i] == static_cast<int>(k) && !keep[i]) values[i] = Tensor();
    }
  }
  std::vector<Tensor> result;
  result.reserve(fetch_slots.size());
  for (size_t f = 0; f < fetch_slots.size(); ++f) {
    const Tensor& t = values[fetch_slots[f]];
    if (!t.defined()) {
      for (const auto& [name, s] : slots_) {
        if (s == fetch_slots[f]) return Internal("fetch '" + name + "' was not computed");
      }
    }
    if (t.on_device() && !options.outputs_on_device) {
      KILN_ASSIGN_OR_RETURN(Tensor host, t.ToHost());
      result.push_back(std::move(host));
      continue;
    }
    result.push_back(t);
  }
  if (stats != nullptr) {
    stats->total_ms = std::chrono::duration<double, std::milli>(Clock::now() - run_start).count();
  }
  return result;
}

}  // namespace kiln
