// Op family: activation (being written).
#include "ops/base/op_schema.h"

namespace kiln {

void RegisterActivationOps(OpRegistry& r) { (void)r; }

}  // namespace kiln
