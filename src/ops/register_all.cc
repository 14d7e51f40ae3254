// The one place where op families are registered (STYLE: explicit registration).
#include <mutex>
#include <set>

#include "core/logging.h"
#include "ops/base/op_schema.h"
#include "ops/base/subgraph_kernel.h"

namespace kiln {

void RegisterAllOps(OpRegistry& r) {
  RegisterElementwiseOps(r);
  RegisterActivationOps(r);
  RegisterLogicalOps(r);
  RegisterConvOps(r);
  RegisterPoolOps(r);
  RegisterNormOps(r);
  RegisterLinalgOps(r);
  RegisterShapeOps(r);
  RegisterTensorOps(r);
  RegisterReduceOps(r);
  RegisterMiscOps(r);
  RegisterQuantOps(r);
  RegisterRnnOps(r);
  RegisterTfCompatOps(r);
  RegisterExtraOps(r);
  RegisterSequenceOps(r);
  RegisterLossOps(r);
  RegisterTextOps(r);
  RegisterControlFlowOps(r);
}

namespace {

std::mutex& GlobalMutex() {
  static std::mutex mu;
  return mu;
}

OpRegistry& MutableGlobal() {
  static OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    RegisterAllOps(*r);
    return r;
  }();
  return *registry;
}

}  // namespace

const OpRegistry& OpRegistry::Global() {
  std::lock_guard<std::mutex> lock(GlobalMutex());
  return MutableGlobal();
}

void OpRegistry::AddGlobalOps(const std::string& key,
                              const std::function<void(OpRegistry&)>& add) {
  static std::set<std::string>* added = new std::set<std::string>();
  std::lock_guard<std::mutex> lock(GlobalMutex());
  if (added->insert(key).second) add(MutableGlobal());
}

}  // namespace kiln
