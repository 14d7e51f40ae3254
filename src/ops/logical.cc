// Op family: logical (being written).
#include "ops/base/op_schema.h"

namespace kiln {

void RegisterLogicalOps(OpRegistry& r) { (void)r; }

}  // namespace kiln
