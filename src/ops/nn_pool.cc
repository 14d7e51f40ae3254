// Op family: nn_pool (being written).
#include "ops/base/op_schema.h"

namespace kiln {

void RegisterPoolOps(OpRegistry& r) { (void)r; }

}  // namespace kiln
