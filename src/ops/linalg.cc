// Op family: linalg (being written).
#include "ops/base/op_schema.h"

namespace kiln {

void RegisterLinalgOps(OpRegistry& r) { (void)r; }

}  // namespace kiln
