// A tiny engine backend for converter and EngineOp tests: it "supports" a fixed set of float32
// ops and executes a segment node by node through the reference kernels (RunKernel), so a
// converted model's outputs are bit-identical to the unconverted one's. It counts executions
// (to tell an engine run from a native fallback) and can be told to fail builds or to claim
// another device fingerprint.
#pragma once

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "convert/engine_op_def.h"
#include "engine/engine.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"

namespace kiln::testing {

class TestEngine : public Engine {
 public:
  TestEngine(const Graph& segment, BuildConfig config, std::atomic<int>* runs)
      : segment_(segment), config_(std::move(config)), runs_(runs) {}

  Status Execute(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
                 std::vector<LayerInfo>* profile) const override {
    ++*runs_;
    std::map<std::string, Tensor> values = segment_.initializers;
    for (size_t i = 0; i < inputs.size(); ++i) values[segment_.inputs[i]] = *inputs[i];
    KILN_ASSIGN_OR_RETURN(std::vector<int> order, segment_.TopologicalOrder());
    for (int k : order) {
      const Node& node = segment_.nodes[k];
      const OpSchema* schema = OpRegistry::Global().Find(node.domain, node.op_type);
      if (schema == nullptr) return Internal("no schema for " + node.Describe());
      std::vector<const Tensor*> args;
      for (const auto& in : node.inputs) args.push_back(in.empty() ? nullptr : &values.at(in));
      std::vector<Tensor> outs;
      KILN_RETURN_IF_ERROR(RunKernel(*schema, node, segment_.onnx_opset(), args, &outs));
      for (size_t o = 0; o < outs.size(); ++o) {
        if (!node.outputs[o].empty()) values[node.outputs[o]] = std::move(outs[o]);
      }
      if (profile != nullptr)
        profile->push_back({node.name, node.op_type, {node.name}, "FP32", "reference", 0.01});
    }
    outputs->clear();
    for (const auto& out : segment_.outputs) outputs->push_back(values.at(out));
    return Status::OK();
  }

  bool Accepts(const std::vector<std::vector<int64_t>>& dims) const override {
    if (dims.size() != config_.input_shapes.size()) return false;
    for (size_t i = 0; i < dims.size(); ++i) {
      const auto& built = config_.input_shapes[i];
      if (dims[i].size() != built.size()) return false;
      for (size_t d = 0; d < built.size(); ++d) {
        const bool batch_ok = d == 0 && !config_.exact_shapes && dims[i][d] <= built[d];
        if (dims[i][d] != built[d] && !batch_ok) return false;
      }
    }
    return true;
  }

  std::vector<LayerInfo> Layers() const override {
    std::vector<LayerInfo> layers;
    for (const auto& n : segment_.nodes)
      layers.push_back({n.name, n.op_type, {n.name}, "FP32", "reference", 0});
    return layers;
  }

  StatusOr<std::string> SerializePayload() const override {
    return "kiln-test-engine\n" + config_.Fingerprint();
  }

 private:
  Graph segment_;
  BuildConfig config_;
  std::atomic<int>* runs_;
};

class TestBackend : public Backend {
 public:
  const char* name() const override { return "test"; }
  std::string DeviceFingerprint() const override { return fingerprint; }

  Status Supports(const Node& node, const Graph& graph, const BuildConfig&) const override {
    if (!ops.count(node.op_type) || !node.domain.empty()) {
      return Unimplemented("op " + node.op_type + " is not supported by the test backend");
    }
    const ValueInfo* vi = node.inputs.empty() ? nullptr : graph.FindValueInfo(node.inputs[0]);
    if (vi == nullptr && !node.inputs.empty() && graph.IsInitializer(node.inputs[0])) {
      return Status::OK();
    }
    if (vi == nullptr || vi->dtype != DataType::kFloat32)
      return Unimplemented("dtype is not float32");
    return Status::OK();
  }

  StatusOr<std::unique_ptr<Engine>> Build(const Graph& segment,
                                          const BuildConfig& config) const override {
    ++builds;
    if (build_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(build_delay_ms));
    if (fail_builds) return ResourceExhausted("layer needs 123 bytes of workspace");
    return std::unique_ptr<Engine>(new TestEngine(segment, config, &runs));
  }

  StatusOr<std::unique_ptr<Engine>> Deserialize(std::string_view payload, const Graph& segment,
                                                const BuildConfig& config) const override {
    const std::string expected = "kiln-test-engine\n" + config.Fingerprint();
    if (payload != expected) return DataLoss("not a test-engine payload for this config");
    return std::unique_ptr<Engine>(new TestEngine(segment, config, &runs));
  }

  std::set<std::string> ops = {
      "Conv",        "BatchNormalization", "Relu",   "Add", "Mul", "Div", "Clip",
      "HardSigmoid", "GlobalAveragePool",  "MaxPool"};
  std::string fingerprint = "test-device-1";
  bool fail_builds = false;
  int build_delay_ms = 0;  // makes concurrent builds overlap (engine cache tests)
  mutable std::atomic<int> runs{0};
  mutable std::atomic<int> builds{0};
};

// Registers a TestBackend for the test's lifetime.
struct ScopedTestBackend {
  ScopedTestBackend() { RegisterBackendForTesting(&backend); }
  ~ScopedTestBackend() { UnregisterBackendForTesting(&backend); }
  TestBackend backend;
};

}  // namespace kiln::testing
