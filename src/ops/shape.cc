// Op family: shape (being written).
#include "ops/base/op_schema.h"

namespace kiln {

void RegisterShapeOps(OpRegistry& r) { (void)r; }

}  // namespace kiln
