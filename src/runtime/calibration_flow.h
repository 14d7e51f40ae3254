// INT8 calibration at run time (issue 5; TF-TRT's calibration flow).
//
// A calibration graph is what CreateInferenceGraph returns for precision INT8 with
// use_calibration and no table: its EngineOps carry calibration_data "calibrate:<id>". When a
// Session runs it, each such EngineOp runs its native segment in FP32 and adds every tensor its
// INT8 layers need (engine/calibrator.h Int8TensorsOf) to the process-wide collector <id>.
// CalibGraphToInferGraph (kiln/convert.h) then turns the collectors into one calibration table
// and converts the original graph again with it: the INT8 engines are built and each EngineOp's
// calibration_data holds its part of the table.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "engine/build_config.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "runtime/executor.h"

namespace kiln {

// An EngineOp's calibration_data: "" -> nothing; "calibrate:<id>" -> *calibrate_id; otherwise a
// calibration table whose ranges go into config->int8_ranges. `who` names the node in errors.
Status ApplyCalibrationData(const std::string& data, const std::string& who, BuildConfig* config,
                            std::string* calibrate_id);

// One run of a calibration-mode EngineOp: the native segment with `feeds`, every tensor of
// Int8TensorsOf(segment) added to collector `id`; returns the `fetch` values.
StatusOr<std::vector<Tensor>> RunCalibrationStep(const Executor& native, const Graph& segment,
                                                 const std::string& id,
                                                 const std::vector<std::pair<int, Tensor>>& feeds,
                                                 const std::vector<int>& fetch);

}  // namespace kiln
