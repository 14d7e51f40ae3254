// `kiln convert --precision int8` calibration options (issue 5): --calib-data PATH (a directory
// of .npz files, one batch each with an array per input, or of .npy files, one batch each for
// a single-input model; or one .npz file), --calib-method entropy|minmax|percentile,
// --calib-percentile P, --calib-cache FILE, --max-accuracy-loss X. Batches are read lazily,
// with a progress bar on stderr.
#pragma once

#include <memory>
#include <string>

#include "cli_util.h"
#include "ir/graph.h"
#include "kiln/convert.h"

namespace kiln::cli {

// Sets params' calibration fields from the options; `graph` (the model) names the inputs of
// .npy batches. `read_error` receives the first batch that could not be read (the converter
// then stops calibrating): check it after CreateInferenceGraph.
Status ApplyCalibrationArgs(const Args& args, const Graph& graph, ConversionParams* params,
                            std::shared_ptr<Status> read_error);

}  // namespace kiln::cli
