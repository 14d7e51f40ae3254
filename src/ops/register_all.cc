// The one place where op families are registered (STYLE: explicit registration).
#include "core/logging.h"
#include "ops/base/op_schema.h"

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
}

const OpRegistry& OpRegistry::Global() {
  static const OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    RegisterAllOps(*r);
    return r;
  }();
  return *registry;
}

}  // namespace kiln
