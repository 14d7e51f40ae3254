// Op family: nn_conv (being written).
#include "ops/base/op_schema.h"

namespace kiln {

void RegisterConvOps(OpRegistry& r) { (void)r; }

}  // namespace kiln
