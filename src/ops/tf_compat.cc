// Op family: tf_compat (being written).
#include "ops/base/op_schema.h"

namespace kiln {

void RegisterTfCompatOps(OpRegistry& r) { (void)r; }

}  // namespace kiln
