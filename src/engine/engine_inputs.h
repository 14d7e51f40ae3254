// What every engine backend checks before it runs: the Execute inputs (count, present, float32)
// and the static-engine shape rule (same rank and non-batch dimensions as the build, batch 1..the
// built batch; exact_shapes: equal). Shared by the CPU and CUDA engines so both accept the same
// inputs and word their errors alike.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/build_config.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

// The input dims of an Execute call, or InvalidArgument naming `engine` ("CPU engine") when the
// count differs from `expected`, an input is missing or is not float32 (int64 / int32 where
// `integer_inputs` flags it: a CUDA engine's embedding indices), or lives on a CUDA device
// other than `device` (-1: a host engine, which reads host tensors only).
StatusOr<std::vector<std::vector<int64_t>>> EngineInputDims(
    const std::vector<const Tensor*>& inputs, size_t expected, const std::string& engine,
    int device = -1, const std::vector<char>* integer_inputs = nullptr);

// Whether `dims` fit what `cfg` was built for (the rule above; not whether the program's own
// shape constraints allow that batch, which the backend checks on top).
bool ShapesWithinBuild(const BuildConfig& cfg, const std::vector<std::vector<int64_t>>& dims);

// InvalidArgument "<engine> cannot run input shapes [..][..]".
Status ShapesRejected(const std::string& engine, const std::vector<std::vector<int64_t>>& dims);

}  // namespace kiln
