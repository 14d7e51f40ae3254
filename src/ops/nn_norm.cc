// Op family: nn_norm (being written).
#include "ops/base/op_schema.h"

namespace kiln {

void RegisterNormOps(OpRegistry& r) { (void)r; }

}  // namespace kiln
