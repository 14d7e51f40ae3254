// The CUDA backend (cuda_backend.h). It shares the CPU backend's front half: Supports is the
// CPU lowering in validation mode restricted to the ops with a CUDA implementation, Build is
// the same lowering + engine-internal fusion (BN folding, bias / activation / residual post-ops,
// GELU, sibling merging), then the fused program becomes GPU steps (cuda_engine.cc). A plan
// payload is "KCUDA2", the TF32 flag, the build's tactic choices and the serialized program
// ("KCUDA1" plans, without choices, still load and time again).
//
// One op the CPU lowering has no layer for is taken here: an embedding lookup (Gather, axis 0,
// of a constant float32 table by int64 / int32 indices that are a model input). Build splits
// it off the segment (SplitInputGathers): the indices stay the engine's input, the looked-up
// rows become the program's float input, and the engine gathers them on the GPU first. So a
// BERT-style model is one engine from its token ids on, and nothing of it runs on the host.
#include "backends/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <map>
#include <set>
#include <string_view>

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

// Gather as an embedding lookup the engine does itself (see the top of the file); the reason
// when it is not one.
Status SupportsEmbeddingGather(const Node& node, const Graph& graph) {
  if (node.inputs.size() != 2 || node.outputs.size() != 1) {
    return Unimplemented("Gather: expects 2 inputs and 1 output");
  }
  auto table = graph.initializers.find(node.inputs[0]);
  if (table == graph.initializers.end() || table->second.dtype() != DataType::kFloat32 ||
      table->second.rank() != 2) {
    return Unimplemented("Gather: the CUDA engine takes embedding lookups only (a constant "
                         "float32 table of rank 2)");
  }
  auto axis = node.attrs.find("axis");
  if (axis != node.attrs.end() && axis->second.i != 0 && axis->second.i != -2) {
    return Unimplemented("Gather: axis " + std::to_string(axis->second.i) + " (the CUDA engine "
                         "takes axis 0)");
  }
  const std::string& idx = node.inputs[1];
  if (std::find(graph.inputs.begin(), graph.inputs.end(), idx) == graph.inputs.end()) {
    return Unimplemented("Gather: indices '" + idx + "' are not a model input");
  }
  const ValueInfo* vi = graph.FindValueInfo(idx);
  if (vi == nullptr || (vi->dtype != DataType::kInt64 && vi->dtype != DataType::kInt32)) {
    return Unimplemented("Gather: indices '" + idx + "' are not int64 / int32");
  }
  for (const Node& n : graph.nodes) {
    if (&n == &node) continue;
    if (std::find(n.inputs.begin(), n.inputs.end(), idx) != n.inputs.end()) {
      return Unimplemented("Gather: indices '" + idx + "' are also read by " + n.Describe());
    }
  }
  return Status::OK();
}

// The segment without its embedding Gathers (their outputs become segment inputs in place of
// their indices), the config with those inputs' shapes, and the lookups the engine does.
struct SplitSegment {
  Graph segment;
  BuildConfig config;
  std::vector<cuda::InputGather> gathers;
};

StatusOr<SplitSegment> SplitInputGathers(const Graph& seg, const BuildConfig& config) {
  SplitSegment out{seg, config, {}};
  out.segment.nodes.clear();
  for (const Node& n : seg.nodes) {
    if (n.op_type != "Gather" || !(n.domain.empty() || n.domain == "ai.onnx")) {
      out.segment.nodes.push_back(n);
      continue;
    }
    const std::string where = n.Describe() + ": ";
    if (n.inputs.size() != 2 || n.outputs.size() != 1) {
      return Unimplemented(where + "expects 2 inputs and 1 output");
    }
    auto table = seg.initializers.find(n.inputs[0]);
    if (table == seg.initializers.end() || table->second.dtype() != DataType::kFloat32 ||
        table->second.rank() != 2) {
      return Unimplemented(where + "not an embedding lookup (constant float32 [rows, width])");
    }
    auto axis = n.attrs.find("axis");
    if (axis != n.attrs.end() && axis->second.i != 0 && axis->second.i != -2) {
      return Unimplemented(where + "axis is not 0");
    }
    const std::string& idx = n.inputs[1];
    auto pos = std::find(seg.inputs.begin(), seg.inputs.end(), idx);
    if (pos == seg.inputs.end()) return Unimplemented(where + "indices are not a segment input");
    const size_t k = static_cast<size_t>(pos - seg.inputs.begin());
    int readers = 0;
    for (const Node& m : seg.nodes)
      readers += static_cast<int>(std::count(m.inputs.begin(), m.inputs.end(), idx));
    if (readers != 1 || std::count(seg.outputs.begin(), seg.outputs.end(), idx) > 0 ||
        std::count(seg.outputs.begin(), seg.outputs.end(), n.outputs[0]) > 0) {
      return Unimplemented(where + "its indices or rows are used elsewhere in the segment");
    }
    const ValueInfo* vi = seg.FindValueInfo(idx);
    if (vi == nullptr || (vi->dtype != DataType::kInt64 && vi->dtype != DataType::kInt32)) {
      return Unimplemented(where + "indices are not int64 / int32");
    }
    if (k >= config.input_shapes.size()) {
      return InvalidArgument(where + "the build config has no shape for input " + idx);
    }
    const int64_t width = table->second.dim(1);
    out.segment.inputs[k] = n.outputs[0];
    std::vector<int64_t> rows_dims =
        vi->shape.rank_known() ? vi->shape.dims() : config.input_shapes[k];
    rows_dims.push_back(width);
    out.segment.value_info[n.outputs[0]] = ValueInfo{DataType::kFloat32, Shape(rows_dims)};
    out.config.input_shapes[k].push_back(width);
    cuda::InputGather g;
    g.input = static_cast<int>(k);
    g.table = table->second;
    g.index_type = vi->dtype;
    g.node = n.name;
    out.gathers.push_back(std::move(g));
  }
  return out;
}

}  // namespace

StatusOr<std::map<std::string, std::string>> ParsePlanTactics(std::string_view* rest) {
  const size_t nl = rest->find('\n');
  if (nl == std::string_view::npos || nl == 0 || nl > 9) {
    return DataLoss("CUDA engine payload: bad tactic count");
  }
  int64_t count = 0;
  for (size_t i = 0; i < nl; ++i) {
    const char c = (*rest)[i];
    if (c < '0' || c > '9') return DataLoss("CUDA engine payload: bad tactic count");
    count = count * 10 + (c - '0');
  }
  rest->remove_prefix(nl + 1);
  std::map<std::string, std::string> out;
  for (int64_t i = 0; i < count; ++i) {
    const size_t end = rest->find('\n');
    const size_t tab = rest->substr(0, end).find('\t');
    if (end == std::string_view::npos || tab == std::string_view::npos || tab == 0) {
      return DataLoss("CUDA engine payload: tactic " + std::to_string(i) + " is malformed");
    }
    out[std::string(rest->substr(0, tab))] = std::string(rest->substr(tab + 1, end - tab - 1));
    rest->remove_prefix(end + 1);
  }
  return out;
}

namespace {

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
    return device_ < cuda::DeviceCount() && (p != Precision::kFP8 || cuda::HasFp8(device_));
  }
  // INT8 allows FP16 too (as TF-TRT's INT8 mode sets TensorRT's FP16 flag): in an INT8 build,
  // convolutions with a calibrated input run in INT8 (cuda_build_int8.cc), every other layer
  // in FP16. FP8 likewise: matmuls with a calibrated input in FP8 (cuda_build_matmul.cc), the
  // rest in FP16, which is also what an FP8 build gets on a GPU older than compute 8.9.
  Precision FallbackFor(Precision p) const override {
    return p == Precision::kINT8 || p == Precision::kFP8 ? Precision::kFP16 : Precision::kFP32;
  }

  Status Supports(const Node& node, const Graph& graph, const BuildConfig& config) const override {
    if (device_ >= cuda::DeviceCount()) {
      return Unimplemented("no CUDA device " + std::to_string(device_) + " on this machine");
    }
    if (node.op_type == "Gather" && node.domain.empty()) {
      return SupportsEmbeddingGather(node, graph);
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
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaEngine> e,
                          cuda::BuildCudaEngine(segment, config, device_, Tf32FromEnv()));
    return std::unique_ptr<Engine>(std::move(e));
  }

  StatusOr<std::unique_ptr<Engine>> Deserialize(std::string_view payload, const Graph& segment,
                                                const BuildConfig& config) const override {
    // "KCUDA1" (no tactics) or "KCUDA2" (tactics), the TF32 flag, then the program.
    if (payload.size() < 7 || (payload.substr(0, 6) != "KCUDA1" && payload.substr(0, 6) != "KCUDA2") ||
        (payload[6] != '0' && payload[6] != '1')) {
      return DataLoss("CUDA engine payload: bad magic");
    }
    const bool tf32 = payload[6] == '1';
    std::string_view rest = payload.substr(7);
    std::map<std::string, std::string> tactics;
    if (payload[5] == '2') {
      KILN_ASSIGN_OR_RETURN(tactics, ParsePlanTactics(&rest));
    }
    KILN_ASSIGN_OR_RETURN(cpu::Program p, cpu::ParseProgram(rest));
    // The embedding lookups are not in the program: split them off the segment again.
    KILN_ASSIGN_OR_RETURN(SplitSegment split, SplitInputGathers(segment, config));
    if (p.inputs.size() != segment.inputs.size() || p.outputs.size() != segment.outputs.size()) {
      return DataLoss("CUDA engine payload has " + std::to_string(p.inputs.size()) +
                      " inputs and " + std::to_string(p.outputs.size()) +
                      " outputs; the segment has " + std::to_string(segment.inputs.size()) +
                      " and " + std::to_string(segment.outputs.size()));
    }
    StatusOr<std::unique_ptr<cuda::CudaEngine>> e =
        cuda::CudaEngine::Create(std::move(p), config, device_, tf32, std::move(split.gathers),
                                 std::move(tactics));
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

namespace cuda {

StatusOr<std::unique_ptr<CudaEngine>> BuildCudaEngine(const Graph& segment,
                                                      const BuildConfig& config, int device,
                                                      bool tf32) {
  KILN_ASSIGN_OR_RETURN(SplitSegment split, SplitInputGathers(segment, config));
  KILN_ASSIGN_OR_RETURN(cpu::Program p, cpu::LowerSegment(split.segment, split.config));
  cpu::FuseProgram(&p);
  return CudaEngine::Create(std::move(p), config, device, tf32, std::move(split.gathers));
}

}  // namespace cuda

const Backend* CudaBackend(int device) {
  if (device < 0 || device >= 64) return nullptr;
  static std::mutex mu;
  static std::unique_ptr<CudaBackendImpl>* backends = new std::unique_ptr<CudaBackendImpl>[64];
  std::lock_guard<std::mutex> lock(mu);
  if (!backends[device]) backends[device] = std::make_unique<CudaBackendImpl>(device);
  return backends[device].get();
}

}  // namespace kiln
