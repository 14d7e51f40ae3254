// The engine builder's contract (ARCHITECTURE §5): a Backend answers Supports(node) — OK or
// the reason it cannot take the node — and Build(segment) -> Engine. Supports and Build are the
// same lowering code run in two modes (validate only / build), so they never disagree.
//
// A segment is a standalone Graph: its inputs are the segment's inputs (value_info gives their
// dtypes and shapes), its initializers the constant weights it reads, its outputs what the
// rest of the model consumes.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/build_config.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

// One layer of a built engine, as `kiln inspect` shows it (TensorRT's engine inspector).
struct LayerInfo {
  std::string name;            // the first fused node's name
  std::string op;              // e.g. "Conv+BatchNorm+Relu+Add"
  std::vector<std::string> nodes;  // every IR node folded into this layer
  std::string precision;       // "FP32", ...
  std::string implementation;  // e.g. "brg_conv_fwd:avx512_core"
  double ms = 0;               // filled when profiling
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Runs the engine. `inputs` in the segment's input order; `outputs` is resized to the
  // segment's outputs. Thread-safe: several runs may execute at once.
  virtual Status Execute(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
                         std::vector<LayerInfo>* profile = nullptr) const = 0;
  // The CUDA device whose memory this engine reads and writes directly, or -1 for a host
  // engine. A device engine's Execute takes inputs on the host or on that device.
  virtual int device() const { return -1; }
  // Execute, leaving output o in the device's memory (a Tensor::on_device) where
  // keep_on_device[o]; a host engine ignores the mask.
  virtual Status ExecutePlaced(const std::vector<const Tensor*>& inputs,
                               std::vector<Tensor>* outputs,
                               const std::vector<bool>& keep_on_device) const {
    (void)keep_on_device;
    return Execute(inputs, outputs);
  }
  // True when this engine can run inputs of these shapes (e.g. batch <= max in static mode).
  virtual bool Accepts(const std::vector<std::vector<int64_t>>& input_dims) const = 0;
  virtual std::vector<LayerInfo> Layers() const = 0;
  // Backend-specific payload stored in a plan (engine/plan.h adds the header and checksum).
  virtual StatusOr<std::string> SerializePayload() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;  // "cpu"
  // ISA features / device identity: a plan whose fingerprint differs is never executed.
  virtual std::string DeviceFingerprint() const = 0;
  // The CUDA device this backend's engines run on, or -1 (a host backend).
  virtual int device() const { return -1; }
  // True when the backend has a kernel computing in `p` on this machine (FP32: always); the
  // converter warns when a requested precision has none.
  virtual bool HasKernel(Precision p) const { return p == Precision::kFP32; }
  // The precision layers get when `p` was requested and HasKernel(p) is false.
  virtual Precision FallbackFor(Precision p) const {
    (void)p;
    return Precision::kFP32;
  }
  // OK, or the reason the backend cannot take `node` (op, dtype, shape, attribute value);
  // `graph` gives the node's input types and shapes (value_info, initializers).
  virtual Status Supports(const Node& node, const Graph& graph, const BuildConfig& config) const = 0;
  virtual StatusOr<std::unique_ptr<Engine>> Build(const Graph& segment,
                                                  const BuildConfig& config) const = 0;
  // Rebuilds an engine from a payload SerializePayload() wrote (same fingerprint checked by
  // the caller); `segment` is the EngineOp's native segment.
  virtual StatusOr<std::unique_ptr<Engine>> Deserialize(std::string_view payload,
                                                        const Graph& segment,
                                                        const BuildConfig& config) const = 0;
};

// Backends by name ("cpu"); nullptr when unknown or not built.
const Backend* FindBackend(const std::string& name);
std::vector<std::string> BackendNames();

}  // namespace kiln
