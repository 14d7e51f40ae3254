// Op family: misc (being written).
#include "ops/base/op_schema.h"

namespace kiln {

void RegisterMiscOps(OpRegistry& r) { (void)r; }

}  // namespace kiln
