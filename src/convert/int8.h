// The converter's INT8 side (issue 5): where the ranges come from, and what each EngineOp gets.
//
//   use_calibration=true,  a table (calibration_table, or calibration_cache when that file
//                          exists)      -> INT8 engines from the table; it must match the graph
//                                          (the tensors the INT8 layers read), else an error
//                                          naming the tensors that differ;
//   use_calibration=true,  no table     -> a calibration graph (runtime/calibration_flow.h);
//   use_calibration=false               -> ranges from the model's Q/DQ pairs and TF fake-quant
//                                          nodes, which are then removed (the engine quantizes
//                                          itself); a tensor an INT8 layer reads without a
//                                          range is an error naming it.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "engine/build_config.h"
#include "engine/calibrator.h"
#include "ir/graph.h"
#include "kiln/convert.h"
#include "kiln/status.h"

namespace kiln {

struct Int8Setup {
  bool active = false;               // precision_mode INT8
  bool calibrating = false;          // building a calibration graph
  bool from_model = false;           // ranges from Q/DQ / fake-quant (use_calibration=false)
  CalibrationTable table;            // when active and not calibrating
  std::string table_source;          // names the table in errors
  std::set<std::string> keep_float;  // ConversionParams::int8_keep_float
};

// True when CreateInferenceGraph(params) makes a calibration graph.
bool IsCalibrationConversion(const ConversionParams& params);

// Before clean-up: decides where the ranges come from; for use_calibration=false reads them
// from `graph`'s Q/DQ and fake-quant nodes and bypasses those nodes (dead-node removal drops
// them).
StatusOr<Int8Setup> PrepareInt8(Graph& graph, const ConversionParams& params,
                                const std::string& where);

// After segmentation: `needed` are the tensors the INT8 layers of all segments read, `optional`
// the residual branches a table may also have ranges for (Int8ResidualTensorsOf); checks the
// table against them.
Status CheckInt8Table(const Int8Setup& setup, const std::set<std::string>& needed,
                      const std::set<std::string>& optional, const std::string& where);

// Per segment: the ranges into `config` and the EngineOp's calibration_data (the segment's part
// of the table, or "calibrate:<id>" in a calibration graph, whose collector is reset here).
Status Int8ForSegment(const Int8Setup& setup, const Graph& segment, BuildConfig* config,
                      std::string* calibration_data);

// The tensors the INT8 layers of graph.nodes[indices] read (Int8TensorsOf on a node subset).
std::set<std::string> Int8TensorsOfNodes(const Graph& graph, const std::vector<int>& indices);
std::set<std::string> Int8ResidualTensorsOfNodes(const Graph& graph,
                                                 const std::vector<int>& indices);

}  // namespace kiln
