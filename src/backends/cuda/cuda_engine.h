// The CUDA engine: a fused layer program (the same program the CPU backend lowers to, see
// backends/cpu/lowering.h) built into a sequence of GPU steps for one batch size.
//
// Tensors stay on the GPU between layers, in the engine's storage type (float for FP32, half
// for FP16, bfloat16 for BF16); 4-D tensors produced by convolutions and pools are NHWC
// (channels last, what cuDNN's tensor-core kernels want), everything else plain row-major.
// Engine inputs and outputs are float32 tensors on the host or on this GPU (Tensor::on_device):
// they cross at the edges (one upload or device copy + cast/layout step per input, one cast +
// download per output, or a device copy into a pooled buffer for an output kept on the GPU). Intermediates live in one
// per-call device arena whose offsets a lifetime plan assigns (cpu::PlanMemory). Each Execute
// takes a context (stream, cuDNN handle, arena, workspace) from its instance's pool, so
// concurrent Execute calls are safe; each runs on its own CUDA stream.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/cpu/lowering.h"
#include "engine/engine.h"

namespace kiln::cuda {

namespace internal {  // cuda_internal.h
struct Instance;
struct EngineShared;
}  // namespace internal

class CudaEngine : public Engine {
 public:
  // Builds the engine (program already fused) for config.input_shapes on GPU `device`.
  // `tf32`: FP32 layers may use TF32 tensor cores (as TensorRT's default TF32 flag).
  static StatusOr<std::unique_ptr<CudaEngine>> Create(cpu::Program program,
                                                      const BuildConfig& config, int device,
                                                      bool tf32);
  ~CudaEngine() override;

  Status Execute(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
                 std::vector<LayerInfo>* profile) const override;
  int device() const override { return device_; }
  Status ExecutePlaced(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
                       const std::vector<bool>& keep_on_device) const override;
  bool Accepts(const std::vector<std::vector<int64_t>>& input_dims) const override;
  std::vector<LayerInfo> Layers() const override;
  StatusOr<std::string> SerializePayload() const override;

  // Device-only timing of one run at the build shapes (inputs uploaded once before, no host
  // copies inside the timed region): the median over `iters` runs in ms, each timed with CUDA
  // events; with `graph` the steps are captured once into a CUDA graph and replayed.
  StatusOr<double> TimeDevice(const std::vector<const Tensor*>& inputs, int warmup, int iters,
                              bool graph) const;

  const cpu::Program& program() const { return prog_; }
  bool tf32() const { return tf32_; }

 private:
  CudaEngine(cpu::Program p, const BuildConfig& c, int device, bool tf32);
  StatusOr<std::shared_ptr<internal::Instance>> InstanceFor(
      const std::vector<std::vector<int64_t>>& dims) const;
  Status Run(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
             const std::vector<bool>* keep_on_device, std::vector<LayerInfo>* profile) const;

  cpu::Program prog_;
  BuildConfig cfg_;
  int device_;
  bool tf32_;
  std::shared_ptr<internal::EngineShared> shared_;
  std::shared_ptr<internal::Instance> main_;
  mutable std::mutex mu_;
  mutable std::map<std::vector<std::vector<int64_t>>, std::shared_ptr<internal::Instance>>
      instances_;
};

// "cuda;gpu=...;cc=9.0;driver=...;cudart=...;cudnn=...;cublaslt=..." for `device`; an error
// when there is no such GPU.
StatusOr<std::string> DeviceFingerprint(int device);
int DeviceCount();

// A device buffer of `bytes` from GPU `device`'s stream-ordered memory pool (cudaMallocAsync on
// `stream`, freed back to the pool when the last reference goes). Engine outputs kept on the
// GPU and Tensor::ToDevice copies live in it, so repeated runs reuse memory instead of calling
// cudaMalloc / cudaFree (which synchronizes the device).
StatusOr<std::shared_ptr<void>> PooledDeviceAlloc(size_t bytes, int device, void* stream);

}  // namespace kiln::cuda
