// Shape profiles (ConvertedModel::BuildEngines, kiln/convert.h): a recording run reports the
// input shapes each EngineOp sees (EngineOp attribute record_shapes=1, set only on the
// recording Session's copy of the graph).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

// Called by the EngineOp kernel of a recording run.
void RecordEngineOpShapes(const std::string& node, const std::vector<std::vector<int64_t>>& dims);

}  // namespace kiln
