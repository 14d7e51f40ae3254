// Pieces of the converter that tests and the CLI reach directly.
#pragma once

#include "kiln/convert.h"
#include "kiln/status.h"

namespace kiln {

// InvalidArgument naming the parameter for any invalid field (sizes, precision, backend);
// `outputs` is checked against the graph in CreateInferenceGraph.
Status ValidateConversionParams(const ConversionParams& params);

// Short JSON string literal (quotes, backslash, control characters escaped).
std::string JsonQuote(const std::string& s);

}  // namespace kiln
