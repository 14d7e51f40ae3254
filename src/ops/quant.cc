// Op family: quant (being written).
#include "ops/base/op_schema.h"

namespace kiln {

void RegisterQuantOps(OpRegistry& r) { (void)r; }

}  // namespace kiln
