// Op family: reduce (being written).
#include "ops/base/op_schema.h"

namespace kiln {

void RegisterReduceOps(OpRegistry& r) { (void)r; }

}  // namespace kiln
