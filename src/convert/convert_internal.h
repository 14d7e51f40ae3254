// Pieces of the converter that tests and the CLI reach directly.
#pragma once

#include "ir/graph.h"
#include "kiln/convert.h"
#include "kiln/status.h"

namespace kiln {

struct ConvertedModel::Impl {
  Graph graph;
  ConversionSummary summary;
  // INT8 calibration graph (runtime/calibration_flow.cc): the graph it was converted from and
  // the parameters, for CalibGraphToInferGraph; null otherwise.
  std::shared_ptr<const Graph> calibration_source;
  ConversionParams params;
};

// The converted model's internals, for the INT8 calibration flow (runtime/calibration_flow.cc).
struct ConvertedModelAccess {
  static ConvertedModel::Impl& Of(ConvertedModel& m) { return *m.impl_; }
  static const ConvertedModel::Impl& Of(const ConvertedModel& m) { return *m.impl_; }
};

// INT8 one-call form: runs the calibration inputs of `params` through `calib` and returns
// CalibGraphToInferGraph's result. Set by src/runtime/calibration_flow.cc (the runtime runs
// graphs; the converter library sits below it).
using CalibrationRunner = StatusOr<ConvertedModel> (*)(ConvertedModel calib,
                                                       const ConversionParams& params);
void SetCalibrationRunner(CalibrationRunner runner);
CalibrationRunner GetCalibrationRunner();  // null when the runtime is not linked

// FP16 / BF16 accuracy budget (ConversionParams::max_accuracy_loss with calibration inputs):
// converts `source` with the layers whose reduced precision hurts most kept in FP32 until the
// outputs are within the budget. Set by src/runtime/calibration_flow.cc, as above.
using PrecisionBudgetRunner = StatusOr<ConvertedModel> (*)(const Graph& source,
                                                           const ConversionParams& params);
void SetPrecisionBudgetRunner(PrecisionBudgetRunner runner);
PrecisionBudgetRunner GetPrecisionBudgetRunner();  // null when the runtime is not linked

// InvalidArgument naming the parameter for any invalid field (sizes, precision, backend);
// `outputs` is checked against the graph in CreateInferenceGraph.
Status ValidateConversionParams(const ConversionParams& params);

// The graph CreateInferenceGraph(path, params) converts: a SavedModel directory by the params'
// tags and signature (with the signature's declared input shapes), a .pb/.pbtxt GraphDef, or
// ONNX.
StatusOr<Graph> LoadGraphForConversion(const std::string& path, const ConversionParams& params);

// Short JSON string literal (quotes, backslash, control characters escaped).
std::string JsonQuote(const std::string& s);

}  // namespace kiln
