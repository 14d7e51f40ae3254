// The CUDA engine: a fused layer program (the same program the CPU backend lowers to, see
// backends/cpu/lowering.h) built into a sequence of GPU steps for one batch size.
//
// Tensors stay on the GPU between layers, in the engine's storage type (float for FP32, half
// for FP16, bfloat16 for BF16); 4-D tensors produced by convolutions and pools are NHWC
// (channels last, what cuDNN's tensor-core kernels want), everything else plain row-major.
// Engine inputs and outputs are float32 tensors on the host or on this GPU (Tensor::on_device):
// they cross at the edges (one upload or device copy + cast/layout step per input; one cast +
// download per output, or a device copy into a pooled buffer for an output kept on the GPU).
// Intermediates and the workspace live in one per-run block whose offsets a lifetime plan
// assigns (cpu::PlanMemory), leased from the GPU's arena pool, which every engine shares
// (ArenaPool in cuda_internal.h). Each Execute takes a context (stream, cuDNN handle, staging)
// from its instance's pool, so concurrent Execute calls are safe; each runs on its own stream.
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
struct Ctx;
}  // namespace internal

// An engine input holding embedding indices (int64 / int32) that the segment's Gather (axis 0)
// of a constant float32 table [rows, width] turned into the program's float input
// [..., width]: the engine looks the rows up on the GPU (kernels.h GatherRows) before its
// layers run (cuda_backend.cc splits these off the segment).
struct InputGather {
  int input = -1;  // engine input = program input index
  Tensor table;    // float32 [rows, width]
  DataType index_type = DataType::kInt64;
  std::string node;  // the Gather's name (the layer list shows it)
};

class CudaEngine : public Engine {
 public:
  // Builds the engine (program already fused) for config.input_shapes on GPU `device`.
  // `tf32`: FP32 layers may use TF32 tensor cores (as TensorRT's default TF32 flag).
  // `gathers`: engine inputs that are embedding indices; config.input_shapes gives the
  // indices' shapes, the program's inputs are the looked-up rows.
  // `tactics`: build-time choices recorded in the plan this engine is loaded from (key ->
  // choice, see TacticCache in cuda_internal.h): used without timing.
  static StatusOr<std::unique_ptr<CudaEngine>> Create(
      cpu::Program program, const BuildConfig& config, int device, bool tf32,
      std::vector<InputGather> gathers = {}, std::map<std::string, std::string> tactics = {});
  ~CudaEngine() override;

  Status Execute(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
                 std::vector<LayerInfo>* profile) const override;
  int device() const override { return device_; }
  Status ExecutePlaced(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
                       const std::vector<bool>& keep_on_device) const override;
  bool Accepts(const std::vector<std::vector<int64_t>>& input_dims) const override;
  std::vector<LayerInfo> Layers() const override;
  // "KCUDA2", the TF32 flag, the tactic choices ("<count>\n" then "key\tchoice\n" lines) and
  // the serialized program.
  StatusOr<std::string> SerializePayload() const override;
  // The tactic choices this engine's builds made or reused (what its plan records).
  std::map<std::string, std::string> Tactics() const;

  // Device-only timing of one run at the build shapes (inputs uploaded once before, no host
  // copies inside the timed region; embedding lookups are inside it): the median over `iters` runs in ms, each timed with CUDA
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
  // The input checks (dtype, device, shapes within the build) and the instance for them.
  StatusOr<std::shared_ptr<internal::Instance>> Prepare(
      const std::vector<const Tensor*>& inputs) const;
  // Copies the inputs into a context's staging buffers (upload or device copy).
  Status Stage(const std::vector<const Tensor*>& inputs, internal::Ctx* ctx) const;
  // After a run: InvalidArgument naming the first out-of-range embedding index the GPU saw.
  Status CheckLookups(const std::vector<const Tensor*>& inputs, internal::Ctx* ctx) const;
  // Program input dims (looked-up rows) for engine input dims (indices).
  std::vector<std::vector<int64_t>> ProgramDims(std::vector<std::vector<int64_t>> dims) const;

  cpu::Program prog_;
  BuildConfig cfg_;
  int device_;
  bool tf32_;
  struct Lookup {  // an InputGather with its table on the GPU
    bool active = false;
    bool idx64 = true;
    int64_t rows = 0, width = 0;
    std::shared_ptr<void> table;
    std::string node;
    int layer = -1;  // its entry in Layers(), after the program's layers
  };
  std::vector<Lookup> lookups_;       // by engine input
  std::vector<char> integer_inputs_;  // by engine input: 1 for indices
  std::shared_ptr<internal::EngineShared> shared_;
  std::shared_ptr<internal::Instance> main_;
  mutable std::mutex mu_;
  mutable std::map<std::vector<std::vector<int64_t>>, std::shared_ptr<internal::Instance>>
      instances_;
};

// A segment's engine as CudaBackend()->Build makes it (embedding lookups split off, the rest
// lowered and fused), for callers that want the CudaEngine itself (bench/cuda_suite.cc).
StatusOr<std::unique_ptr<CudaEngine>> BuildCudaEngine(const Graph& segment,
                                                      const BuildConfig& config, int device,
                                                      bool tf32);

// "cuda;gpu=...;cc=9.0;driver=...;cudart=...;cudnn=...;cublaslt=..." for `device`; an error
// when there is no such GPU.
StatusOr<std::string> DeviceFingerprint(int device);
int DeviceCount();
// Whether GPU `device` has FP8 tensor cores (compute capability 8.9 or later).
bool HasFp8(int device);

// A device buffer of `bytes` from GPU `device`'s stream-ordered memory pool (cudaMallocAsync on
// `stream`, freed back to the pool when the last reference goes). Engine outputs kept on the
// GPU and Tensor::ToDevice copies live in it, so repeated runs reuse memory instead of calling
// cudaMalloc / cudaFree (which synchronizes the device).
StatusOr<std::shared_ptr<void>> PooledDeviceAlloc(size_t bytes, int device, void* stream);

// A page-locked host buffer of `bytes` for an engine output returned on the host, reused from
// a process-wide cache of freed ones (an exact size match, which a steady inference loop always
// finds); nullptr when kiln already holds 4 GiB of them (the caller then uses ordinary memory).
// Page-locked memory is what the GPU copies into at full speed, and a reused buffer costs no
// page faults: a fresh 50 MB host tensor per run (BERT-base's output at batch 128) spent more
// time in page faults than the copy takes.
StatusOr<std::shared_ptr<void>> PinnedHostAlloc(size_t bytes);

// The arena pool of GPU `device` (cuda_internal.h, ArenaPool): every engine's intermediates and
// workspace come from it, one block per concurrent run.
struct ArenaPoolStats {
  int blocks = 0;           // allocated now
  size_t bytes = 0;         // allocated now
  int64_t runs = 0;         // leases served (engine runs, build-time timing included)
  int64_t allocations = 0;  // cudaMalloc calls the pool made
};
ArenaPoolStats GetArenaPoolStats(int device);

// Tactic choices remembered by this process for GPU `device` (TacticCache), tactic timings
// this process ran, and forgetting the choices (tests).
size_t TacticCacheSize(int device);
int64_t TacticTimings();
void ClearTacticCache(int device);

}  // namespace kiln::cuda
