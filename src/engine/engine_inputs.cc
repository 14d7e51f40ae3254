#include "engine/engine_inputs.h"

#include <algorithm>

namespace kiln {

StatusOr<std::vector<std::vector<int64_t>>> EngineInputDims(
    const std::vector<const Tensor*>& inputs, size_t expected, const std::string& engine,
    int device, const std::vector<char>* integer_inputs) {
  if (inputs.size() != expected) {
    return InvalidArgument(engine + " expects " + std::to_string(expected) + " inputs, got " +
                           std::to_string(inputs.size()));
  }
  std::vector<std::vector<int64_t>> dims;
  dims.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const bool integer =
        integer_inputs != nullptr && i < integer_inputs->size() && (*integer_inputs)[i];
    if (inputs[i] == nullptr || !inputs[i]->is_tensor()) {
      return InvalidArgument(engine + " input " + std::to_string(i) + " is missing");
    }
    const DataType dt = inputs[i]->dtype();
    if (integer ? dt != DataType::kInt64 && dt != DataType::kInt32 : dt != DataType::kFloat32) {
      return InvalidArgument(engine + " input " + std::to_string(i) + " must be " +
                             (integer ? "int64 or int32" : "float32") + ", got " +
                             DataTypeName(dt));
    }
    if (inputs[i]->on_device() && inputs[i]->device() != device) {
      return InvalidArgument(engine + " input " + std::to_string(i) + " lives on CUDA device " +
                             std::to_string(inputs[i]->device()) +
                             (device < 0 ? "; this engine reads host tensors"
                                         : "; this engine runs on device " +
                                               std::to_string(device)));
    }
    dims.push_back(inputs[i]->dims());
  }
  return dims;
}

bool ShapesWithinBuild(const BuildConfig& cfg, const std::vector<std::vector<int64_t>>& dims) {
  const auto& built = cfg.input_shapes;
  if (dims.size() != built.size()) return false;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i].size() != built[i].size() || dims[i].empty()) return false;
    if (cfg.exact_shapes ? dims[i] != built[i]
                         : !std::equal(dims[i].begin() + 1, dims[i].end(), built[i].begin() + 1) ||
                               dims[i][0] < 1 || dims[i][0] > built[i][0]) {
      return false;
    }
  }
  return true;
}

Status ShapesRejected(const std::string& engine, const std::vector<std::vector<int64_t>>& dims) {
  std::string got;
  for (const auto& d : dims) got += DimsToString(d);
  return InvalidArgument(engine + " cannot run input shapes " + got);
}

}  // namespace kiln
