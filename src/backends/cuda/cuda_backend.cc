// The CUDA backend (cuda_backend.h). It shares the CPU backend's front half: Supports is the
// CPU lowering in validation mode restricted to the ops with a CUDA implementation, Build is
// the same lowering + engine-internal fusion (BN folding, bias / activation / residual post-ops,
// GELU, sibling merging), then the fused program becomes GPU steps (cuda_engine.cc). A plan
// payload is "KCUDA1", the TF32 flag and the serialized program.
#include "backends/cuda/cuda_backend.h"

#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>

#include "backends/cpu/lowering.h"
#include "backends/cuda/cuda_engine.h"

namespace kiln {
namespace {

// Ops with a CUDA lowering (every layer kind they lower to is implemented by the Builder,
// cuda_engine.cc and cuda_build_*.cc).
const std::set<std::string>& CudaOps() {
  static const std::set<std::string> ops = {"Conv",
                                            "Gemm",
                                            "MatMul",
                                            "Relu",
                                            "LeakyRelu",
                                            "Elu",
                                            "Selu",
                                            "Sigmoid",
                                            "Tanh",
                                            "Clip",
                                            "HardSigmoid",
                                            "HardSwish",
                                            "Gelu",
                                            "Softplus",
                                            "Mish",
                                            "Exp",
                                            "Log",
                                            "Sqrt",
                                            "Erf",
                                            "Abs",
                                            "Neg",
                                            "Reciprocal",
                                            "Add",
                                            "Sub",
                                            "Mul",
                                            "Div",
                                            "Max",
                                            "Min",
                                            "PRelu",
                                            "MaxPool",
                                            "AveragePool",
                                            "GlobalAveragePool",
                                            "GlobalMaxPool",
                                            "Softmax",
                                            "LogSoftmax",
                                            "LayerNormalization",
                                            "BatchNormalization",
                                            "Concat",
                                            "Transpose",
                                            "Reshape",
                                            "Flatten",
                                            "Squeeze",
                                            "Unsqueeze",
                                            "Identity",
                                            "Dropout"};
  return ops;
}

bool Tf32FromEnv() {
  const char* v = std::getenv("KILN_CUDA_TF32");
  return v == nullptr || std::string(v) != "0";
}

class CudaBackendImpl : public Backend {
 public:
  explicit CudaBackendImpl(int device)
      : device_(device), name_(device == 0 ? "cuda" : "cuda:" + std::to_string(device)) {}

  const char* name() const override { return name_.c_str(); }

  std::string DeviceFingerprint() const override {
    StatusOr<std::string> f = cuda::DeviceFingerprint(device_);
    return f.ok() ? *f : "cuda;missing device " + std::to_string(device_);
  }

  int device() const override { return device_; }

  bool HasKernel(Precision p) const override {
    return p != Precision::kINT8 && device_ < cuda::DeviceCount();
  }

  Status Supports(const Node& node, const Graph& graph, const BuildConfig& config) const override {
    if (device_ >= cuda::DeviceCount()) {
      return Unimplemented("no CUDA device " + std::to_string(device_) + " on this machine");
    }
    if (config.precision == Precision::kINT8) {
      return Unimplemented("INT8 is not implemented by the CUDA engine yet");
    }
    if (!node.domain.empty() || CudaOps().count(node.op_type) == 0) {
      return Unimplemented("op " + node.op_type + " is not supported by the CUDA engine");
    }
    // 2-D convolutions and pools only (cuDNN's 4-D descriptors are what the engine uses).
    if (node.op_type == "Conv" || node.op_type.find("Pool") != std::string::npos) {
      auto it = graph.value_info.find(node.inputs.empty() ? "" : node.inputs[0]);
      if (it != graph.value_info.end() && it->second.shape.rank_known() &&
          it->second.shape.rank() != 4) {
        return Unimplemented(node.op_type + " on a rank-" +
                             std::to_string(it->second.shape.rank()) +
                             " input (the CUDA engine does 2-D only)");
      }
    }
    Status s = cpu::LowerNodeForSupport(node, graph, config);
    // The CPU lowering refuses a lone Erf (oneDNN has no erf eltwise); the GPU kernels have one.
    if (!s.ok() && node.op_type == "Erf") return Status::OK();
    return s;
  }

  StatusOr<std::unique_ptr<Engine>> Build(const Graph& segment,
                                          const BuildConfig& config) const override {
    KILN_ASSIGN_OR_RETURN(cpu::Program p, cpu::LowerSegment(segment, config));
    cpu::FuseProgram(&p);
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaEngine> e,
                          cuda::CudaEngine::Create(std::move(p), config, device_, Tf32FromEnv()));
    return std::unique_ptr<Engine>(std::move(e));
  }

  StatusOr<std::unique_ptr<Engine>> Deserialize(std::string_view payload, const Graph& segment,
                                                const BuildConfig& config) const override {
    if (payload.size() < 7 || payload.substr(0, 6) != "KCUDA1" ||
        (payload[6] != '0' && payload[6] != '1')) {
      return DataLoss("CUDA engine payload: bad magic");
    }
    const bool tf32 = payload[6] == '1';
    KILN_ASSIGN_OR_RETURN(cpu::Program p, cpu::ParseProgram(payload.substr(7)));
    if (p.inputs.size() != segment.inputs.size() || p.outputs.size() != segment.outputs.size()) {
      return DataLoss("CUDA engine payload has " + std::to_string(p.inputs.size()) +
                      " inputs and " + std::to_string(p.outputs.size()) +
                      " outputs; the segment has " + std::to_string(segment.inputs.size()) +
                      " and " + std::to_string(segment.outputs.size()));
    }
    StatusOr<std::unique_ptr<cuda::CudaEngine>> e =
        cuda::CudaEngine::Create(std::move(p), config, device_, tf32);
    if (!e.ok()) return e.status().WithContext("rebuilding the CUDA engine from its plan");
    return std::unique_ptr<Engine>(std::move(e).value());
  }

 private:
  int device_;
  std::string name_;
};

}  // namespace

int ParseCudaBackendName(const std::string& name) {
  if (name == "cuda") return 0;
  if (name.rfind("cuda:", 0) != 0 || name.size() == 5 || name.size() > 8) return -1;
  int n = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    n = n * 10 + (name[i] - '0');
  }
  return n;
}

const Backend* CudaBackend(int device) {
  if (device < 0 || device >= 64) return nullptr;
  static std::mutex mu;
  static std::unique_ptr<CudaBackendImpl>* backends = new std::unique_ptr<CudaBackendImpl>[64];
  std::lock_guard<std::mutex> lock(mu);
  if (!backends[device]) backends[device] = std::make_unique<CudaBackendImpl>(device);
  return backends[device].get();
}

}  // namespace kiln
