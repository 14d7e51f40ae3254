// Op family: tensor (being written).
#include "ops/base/op_schema.h"

namespace kiln {

void RegisterTensorOps(OpRegistry& r) { (void)r; }

}  // namespace kiln
