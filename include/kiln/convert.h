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

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/session.h"
#include "kiln/status.h"

namespace kiln {

class Graph;

// How ConvertedModel::BuildEngines turns the input shapes seen into engines (TF2's converter
// build(input_fn)). kiln's CPU engines serve any batch up to the batch they were built for but
// only the exact non-batch dimensions, so:
//   kRange         one engine per distinct non-batch shape, built at the largest batch seen;
//   kOptimal       one engine per exact shape seen;
//   kRangeOptimal  both.
enum class ProfileStrategy { kRange, kOptimal, kRangeOptimal };

struct ConversionParams {
  std::vector<std::string> outputs;            // fetches to keep; default: the model's outputs
  int64_t max_batch_size = 1;
  int64_t max_workspace_size_bytes = int64_t{1} << 30;
  std::string precision_mode = "FP32";         // FP32 | FP16 | BF16 (INT8 with the INT8 work)
  int minimum_segment_size = 3;                // -1 disables conversion
  bool is_dynamic_op = false;
  int maximum_cached_engines = 1;
  // Dynamic mode: engines built at conversion time for these batches (exact shapes: the
  // segment's input dimensions with dimension 0 = the batch), embedded in the EngineOp.
  std::vector<int64_t> cached_engine_batches;
  // Dynamic mode: build engines for unseen shapes at run time; false: they run the native
  // segment (only engines built ahead serve).
  bool allow_build_at_runtime = true;
  // Disk engine cache (kiln/engine_cache.h) for the engines built now; empty: the environment's
  // KILN_ENGINE_CACHE, else none.
  std::string engine_cache_dir;
  bool use_calibration = true;
  // INT8 (precision_mode "INT8"; docs/precision.md). use_calibration=true: ranges come from
  // calibration: without a table, CreateInferenceGraph returns a *calibration graph* (run it
  // with Session on representative inputs, then CalibGraphToInferGraph), or give the inputs
  // here (calibration_feeds / calibration_input_fn: one call), or a table (calibration_table,
  // or calibration_cache when that file exists). use_calibration=false: ranges come from the
  // model's QuantizeLinear/DequantizeLinear pairs and TF fake-quant nodes.
  std::string calibration_method = "entropy";  // entropy | minmax | percentile
  double calibration_percentile = 99.99;       // the percentile calibrator's
  std::string calibration_table;               // a table's text (kiln-calibration-table 1)
  std::string calibration_cache;               // table file: read when it exists, else written
  std::vector<Feeds> calibration_feeds;
  std::function<bool(Feeds* next)> calibration_input_fn;  // false when there is no more
  std::function<void(int64_t done, int64_t total)> calibration_progress;  // total -1: unknown
  // INT8: tensors whose INT8 layers (the conv / matmul reading them) stay in higher precision.
  std::vector<std::string> int8_keep_float;
  // Per-layer precision constraint (TensorRT's layer precision with OBEY_PRECISION_CONSTRAINTS,
  // ONNX Runtime's fp16 node block list): conv / matmul nodes, by name, whose layers stay in FP32
  // in FP16 / BF16 / INT8 engines (the CPU backend; others warn and ignore it).
  std::vector<std::string> fp32_layers;
  // Accuracy budget (beyond TF-TRT), with calibration_feeds / calibration_input_fn (for FP16 /
  // BF16 they only measure the error): keeps the layers whose reduced precision hurts most in
  // higher precision until the rel. L2 error of the outputs vs FP32 on (up to 8 batches of) that
  // data is at most this; negative: off. INT8 keeps tensors' layers out of INT8
  // (int8_keep_float), then, if that is not enough, layers in FP32; FP16 / BF16 keep layers in
  // FP32 (fp32_layers; the CPU backend).
  double max_accuracy_loss = -1;
  std::vector<std::string> op_denylist;        // plus KILN_OP_DENYLIST
  int max_engines = 1000;
  std::string backend = "cpu";
  // Declared shapes for graph inputs (-1 = unknown, e.g. the batch), replacing the model's
  // where it leaves dimensions open: static mode builds engines only for segments whose input
  // dimensions other than the batch are known.
  std::map<std::string, std::vector<int64_t>> input_shapes;
  // CreateInferenceGraph(path) with a SavedModel directory: the MetaGraph's tag set and the
  // signature to convert (TF-TRT's input_saved_model_tags / input_saved_model_signature_key).
  std::vector<std::string> input_saved_model_tags = {"serve"};
  std::string input_saved_model_signature_key = "serving_default";
};

struct EngineSummary {
  std::string name;                            // the EngineOp node's name
  int num_nodes = 0;
  std::map<std::string, int> op_histogram;
  std::vector<std::string> inputs, outputs;
  double build_ms = 0;
  std::string status;                          // "built", or why the engine was not built
  std::map<std::string, int> layer_precisions;  // built: "BF16" -> layers computing in it
  // Built: the layers computing below FP32, by their first node's name (what fp32_layers names).
  std::vector<std::string> reduced_layers;
  bool from_engine_cache = false;              // the plan came from the disk engine cache
  // Tactic timing (KILN_TACTIC_TIMING / KILN_TIMING_CACHE): "layer: timed 3 implementations"
  // or "layer: timing cache" for each layer whose implementation was chosen by timing.
  std::vector<std::string> tactics;
  // Where the EngineOp sits: "" at the top level, else the body ("Loop 'x' body").
  std::string scope;
};

struct ConversionSummary {
  int total_nodes = 0;                         // after clean-up
  int converted_nodes = 0;
  std::vector<EngineSummary> engines;
  // op type -> reason -> count, for nodes left outside engines.
  std::map<std::string, std::map<std::string, int>> not_converted;
  std::vector<std::string> passes;             // "constant_folding: 120 -> 97 nodes"
  // E.g. a requested precision this machine has no kernel for (FP16 on most CPUs).
  std::vector<std::string> warnings;
  // One line per If / Loop / Scan body the converter segmented (nested ones too):
  // "Loop 'x' body: 1 engine, 12/14 nodes".
  std::vector<std::string> subgraphs;
  // INT8: what the accuracy budget did ("rel. L2 0.08 -> 0.01 with 3 layers kept"), and the
  // tensors whose layers it kept in higher precision (most harmful first).
  std::string int8_accuracy;
  std::vector<std::string> int8_kept_float;
  // The same for the layers the budget kept in FP32 (fp32_layers): FP16 / BF16, and INT8 when
  // keeping layers out of INT8 was not enough.
  std::string precision_accuracy;
  std::vector<std::string> fp32_kept_layers;
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
  // Writes the optimized model, by the path's form: ".onnx" -> ONNX; ".pb" / ".pbtxt" ->
  // TensorFlow GraphDef (TF input only); anything else (a directory) -> a SavedModel for TF
  // input (engines as assets/ files), ONNX for ONNX input. Written to a temporary name, then
  // renamed.
  Status Save(const std::string& path) const;
  // Runs `samples` through the converted graph (the EngineOps run their native segments),
  // records the input shapes each EngineOp sees and builds engines for them now, embedded in
  // the EngineOp (attribute cached_engines) so Save keeps them. Engines come from the disk
  // engine cache (KILN_ENGINE_CACHE) when it has them. Defined in src/runtime/shape_profile.cc.
  Status BuildEngines(const std::vector<Feeds>& samples,
                      ProfileStrategy strategy = ProfileStrategy::kRange);

 private:
  friend StatusOr<ConvertedModel> CreateInferenceGraph(Graph graph, const ConversionParams&);
  friend StatusOr<ConvertedModel> CalibGraphToInferGraph(const ConvertedModel& calib_graph);
  friend struct ConvertedModelAccess;  // INT8 calibration flow (convert/convert_internal.h)
  struct Impl;
  explicit ConvertedModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

StatusOr<ConvertedModel> CreateInferenceGraph(const std::string& model_path,
                                              const ConversionParams& params);
StatusOr<ConvertedModel> CreateInferenceGraph(Graph graph, const ConversionParams& params);

// INT8 (TF-TRT's calib_graph_to_infer_graph): `calib_graph` is a calibration graph that Session
// ran on representative inputs; builds the INT8 engines from the statistics its EngineOps
// collected and embeds the calibration table (each EngineOp's calibration_data); writes the
// table to calibration_cache when set. FailedPrecondition when it was never run.
// Defined in src/runtime/calibration_flow.cc.
StatusOr<ConvertedModel> CalibGraphToInferGraph(const ConvertedModel& calib_graph);

}  // namespace kiln
