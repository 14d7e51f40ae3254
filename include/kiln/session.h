// kiln/session.h — load a model and run it.
//
//   auto session = kiln::Session::Load("model.onnx");
//   if (!session.ok()) { std::cerr << session.status() << "\n"; return 1; }
//   auto outputs = (*session)->Run({{"input", tensor}});
//
// Run() is const and safe to call from several threads at once: all per-run state lives in
// the call. Nodes run through kiln's reference kernels; the kiln.EngineOp nodes of a converted
// model (kiln/convert.h) run their engines.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

class Graph;

struct TensorInfo {
  std::string name;
  DataType dtype = DataType::kUndefined;
  Shape shape;
};

// Per-node time, collected when RunOptions::profile is set.
struct NodeProfile {
  std::string node;
  std::string op_type;
  double ms = 0;
};

struct RunOptions {
  bool profile = false;
  // Feeds may always be device tensors (Tensor::WrapDevice / ToDevice): a CUDA engine reads
  // them where they are, anything else gets a host copy. With outputs_on_device, a fetched
  // value that a CUDA engine produced stays in its GPU's memory (Tensor::on_device; call
  // ToHost() to read it); otherwise every fetch is a host tensor. Values passed from one CUDA
  // engine to another stay on the GPU either way.
  bool outputs_on_device = false;
};

struct RunStats {
  std::vector<NodeProfile> nodes;  // in execution order, when profiling
  double total_ms = 0;
};

using Feeds = std::vector<std::pair<std::string, Tensor>>;

// How Session::Load / InspectModel read a model. For a SavedModel directory: the MetaGraph
// with exactly these tags, and the signature whose inputs/outputs become the graph's (feeds
// and fetches then accept the signature keys as well as tensor names "node:K" / "node").
struct LoadOptions {
  std::vector<std::string> saved_model_tags = {"serve"};
  std::string saved_model_signature_key = "serving_default";
};

struct SessionOptions {
  // Disk engine cache (kiln/engine_cache.h) for engines the model's EngineOps build at run
  // time; empty: the environment's KILN_ENGINE_CACHE, else none.
  std::string engine_cache_dir;
  LoadOptions load;  // SavedModel tags and signature
};

class Session {
 public:
  // Loads a model file (ONNX; the format is chosen by extension and content).
  static StatusOr<std::unique_ptr<Session>> Load(const std::string& path);
  // Takes an already-built graph (verifies it and infers shapes first).
  static StatusOr<std::unique_ptr<Session>> FromGraph(Graph graph);
  static StatusOr<std::unique_ptr<Session>> Load(const std::string& path,
                                                 const SessionOptions& options);
  static StatusOr<std::unique_ptr<Session>> FromGraph(Graph graph, const SessionOptions& options);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const std::vector<TensorInfo>& inputs() const;
  const std::vector<TensorInfo>& outputs() const;
  // Names of outputs(), in order.
  std::vector<std::string> graph_output_names() const;
  const Graph& graph() const;

  // Feeds by input name; fetches by value name (empty = the graph's outputs). Returns the
  // fetched tensors in the order of `fetches`. Feeds are checked against the declared dtypes
  // and shapes; unknown feed names, missing feeds and mismatches are InvalidArgument/NotFound.
  StatusOr<std::vector<Tensor>> Run(const Feeds& feeds,
                                    const std::vector<std::string>& fetches = {},
                                    const RunOptions& options = {},
                                    RunStats* stats = nullptr) const;

 private:
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What `kiln inspect` reports about a model.
struct UnsupportedOp {
  std::string node;
  std::string op_type;
  std::string reason;
};

// One layer of a built engine (TensorRT's engine inspector): the fused op, its precision and
// the backend's implementation; `ms` is the mean time per run when profiled, else -1.
struct EngineLayerInfo {
  std::string name;
  std::string op;                  // e.g. "Conv+BatchNormalization+Relu"
  std::vector<std::string> nodes;  // the IR nodes folded into this layer
  std::string precision;
  std::string implementation;
  double ms = -1;
};

// One kiln.EngineOp of a converted model.
struct EngineInfo {
  std::string node;          // the EngineOp's name
  std::string backend;
  std::string segment_func;  // its native segment (Graph::functions key)
  int64_t segment_nodes = 0;
  int64_t max_batch_size = 0;
  std::string precision;
  // "ready", or why the engine would not run here ("no engine: ...", "plan rejected: ...").
  std::string status;
  std::vector<std::string> input_specs;  // what the engine was built for: "float32[8,3,48,192]"
  std::vector<EngineLayerInfo> layers;
  double profiled_ms = -1;  // whole-engine mean time per run when profiled
};

// A control-flow node (If / Loop / Scan / SequenceMap), nested ones included.
struct ControlFlowInfo {
  std::string node;    // nested: "<enclosing node>/<attribute>: <node>"
  std::string op_type;
  std::string origin;  // the source op it was imported from ("While", "StatelessIf", "Case",
                       // "TF1 while frame", ...); empty for ONNX models
  int depth = 0;       // 0: a node of the model's graph
  std::vector<std::pair<std::string, int64_t>> bodies;  // subgraph attribute -> its node count
  int64_t engines = 0;      // kiln.EngineOp nodes inside its subgraphs
  int64_t unsupported = 0;  // nodes inside its subgraphs that kiln cannot run
};

struct InspectOptions {
  bool profile = false;  // time each engine layer on random inputs
  int iterations = 10;
  LoadOptions load;      // SavedModel tags and signature
};

struct ModelInfo {
  std::string path;
  std::string format;  // "onnx"
  int64_t opset = 0;
  int64_t num_nodes = 0;
  int64_t num_initializers = 0;
  int64_t parameter_bytes = 0;
  std::vector<TensorInfo> inputs;
  std::vector<TensorInfo> outputs;
  std::map<std::string, int64_t> op_histogram;  // op type -> node count
  std::vector<UnsupportedOp> unsupported;       // nodes kiln cannot run, with the reason
  std::vector<EngineInfo> engines;              // kiln.EngineOp nodes (converted models)
  std::vector<ControlFlowInfo> control_flow;    // If / Loop / Scan nodes and their bodies
};

// Loads a model without requiring that kiln can run it, and describes it.
StatusOr<ModelInfo> InspectModel(const std::string& path);
StatusOr<ModelInfo> InspectModel(const std::string& path, const InspectOptions& options);

// kiln's version string.
const char* Version();

}  // namespace kiln
