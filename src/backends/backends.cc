// The backend registry: every engine backend built into this kiln.
#include "backends/cpu/cpu_backend.h"
#include "engine/engine.h"
#ifdef KILN_HAVE_CUDA
#include "backends/cuda/cuda_backend.h"
#endif

namespace kiln {

const Backend* FindBackend(const std::string& name) {
  if (name == "cpu") return &CpuBackend();
#ifdef KILN_HAVE_CUDA
  if (const int device = ParseCudaBackendName(name); device >= 0) return CudaBackend(device);
#endif
  return nullptr;
}

std::vector<std::string> BackendNames() {
#ifdef KILN_HAVE_CUDA
  return {"cpu", "cuda"};
#else
  return {"cpu"};
#endif
}

}  // namespace kiln
