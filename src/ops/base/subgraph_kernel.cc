#include "ops/base/subgraph_kernel.h"

#include <map>
#include <mutex>

namespace kiln {
namespace {

std::mutex& FactoryMutex() {
  static std::mutex mu;
  return mu;
}

std::map<std::string, KernelFactory>& Factories() {
  static auto* factories = new std::map<std::string, KernelFactory>();
  return *factories;
}

}  // namespace

void SetSubgraphKernelFactory(const std::string& op, KernelFactory factory) {
  std::lock_guard<std::mutex> lock(FactoryMutex());
  Factories()[op] = std::move(factory);
}

StatusOr<std::unique_ptr<OpKernel>> CreateSubgraphKernel(const KernelInitContext& init) {
  KernelFactory factory;
  {
    std::lock_guard<std::mutex> lock(FactoryMutex());
    auto it = Factories().find(init.node.op_type);
    if (it != Factories().end()) factory = it->second;
  }
  if (!factory) {
    return FailedPrecondition(init.node.Describe() +
                              ": no kernel installed for this control-flow op (the runtime "
                              "installs it: RegisterControlFlowKernels)");
  }
  return factory(init);
}

ValueInfo SubgraphOutputInfo(const Graph& body, int k) {
  if (k < 0 || k >= static_cast<int>(body.outputs.size())) return ValueInfo();
  const ValueInfo* vi = body.FindValueInfo(body.outputs[k]);
  return vi ? *vi : ValueInfo();
}

}  // namespace kiln
