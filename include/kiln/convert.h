// kiln/convert.h — the converter, in TF-TRT's words.
//
//   kiln::ConversionParams params;
//   params.precision_mode = "FP32";
//   params.max_batch_size = 8;
//   auto converted = kiln::CreateInferenceGraph("model.onnx", params);
//   converted->Save("model.kiln.onnx");
//
// Whole-graph clean-up, then segments of nodes the engine backend supports become EngineOps
// that keep their original subgraph as the native fallback; in static mode
// (is_dynamic_op=false) each engine is built now for max_batch_size and embedded.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/status.h"

namespace kiln {

class Graph;

struct ConversionParams {
  std::vector<std::string> outputs;            // fetches to keep; default: the model's outputs
  int64_t max_batch_size = 1;
  int64_t max_workspace_size_bytes = int64_t{1} << 30;
  std::string precision_mode = "FP32";         // FP32 (FP16/BF16/INT8 with the precision work)
  int minimum_segment_size = 3;                // -1 disables conversion
  bool is_dynamic_op = false;
  int maximum_cached_engines = 1;
  std::vector<int64_t> cached_engine_batches;
  bool use_calibration = true;
  std::vector<std::string> op_denylist;        // plus KILN_OP_DENYLIST
  int max_engines = 1000;
  std::string backend = "cpu";
  // Declared shapes for graph inputs (-1 = unknown, e.g. the batch), replacing the model's
  // where it leaves dimensions open: static mode builds engines only for segments whose input
  // dimensions other than the batch are known.
  std::map<std::string, std::vector<int64_t>> input_shapes;
};

struct EngineSummary {
  std::string name;                            // the EngineOp node's name
  int num_nodes = 0;
  std::map<std::string, int> op_histogram;
  std::vector<std::string> inputs, outputs;
  double build_ms = 0;
  std::string status;                          // "built", or why the engine was not built
};

struct ConversionSummary {
  int total_nodes = 0;                         // after clean-up
  int converted_nodes = 0;
  std::vector<EngineSummary> engines;
  // op type -> reason -> count, for nodes left outside engines.
  std::map<std::string, std::map<std::string, int>> not_converted;
  std::vector<std::string> passes;             // "constant_folding: 120 -> 97 nodes"
  double total_ms = 0;
  std::string ToString() const;                // what `kiln convert` prints
  std::string ToJson() const;
};

class ConvertedModel {
 public:
  ~ConvertedModel();
  ConvertedModel(ConvertedModel&&) noexcept;
  ConvertedModel& operator=(ConvertedModel&&) noexcept;
  const ConversionSummary& summary() const;
  const Graph& graph() const;
  // Writes the optimized model in the input's format family (ONNX for ONNX input), to a
  // temporary name then renamed.
  Status Save(const std::string& path) const;

 private:
  friend StatusOr<ConvertedModel> CreateInferenceGraph(Graph graph, const ConversionParams&);
  struct Impl;
  explicit ConvertedModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

StatusOr<ConvertedModel> CreateInferenceGraph(const std::string& model_path,
                                              const ConversionParams& params);
StatusOr<ConvertedModel> CreateInferenceGraph(Graph graph, const ConversionParams& params);

}  // namespace kiln
