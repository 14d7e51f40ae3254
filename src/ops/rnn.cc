// Op family: rnn (being written).
#include "ops/base/op_schema.h"

namespace kiln {

void RegisterRnnOps(OpRegistry& r) { (void)r; }

}  // namespace kiln
