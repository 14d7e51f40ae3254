// The CUDA engine backend for NVIDIA GPUs (cuDNN, cuBLASLt and kiln's own kernels).
// Built only when CMake finds the CUDA toolkit and cuDNN (KILN_HAVE_CUDA).
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "engine/engine.h"

namespace kiln {

// The backend for GPU `device` (name "cuda" for device 0, "cuda:N" otherwise); nullptr for a
// negative or absurd index. Backends exist for any index; one whose GPU is missing supports
// nothing and fails its builds with the reason.
const Backend* CudaBackend(int device = 0);
// Parses "cuda" / "cuda:N" into N; -1 for anything else.
int ParseCudaBackendName(const std::string& name);

// The tactic block of a KCUDA2 plan payload ("<count>\n", then count "key\tchoice\n" lines);
// advances `rest` past it. DataLoss on anything malformed (fuzzed in test_backend_cuda).
StatusOr<std::map<std::string, std::string>> ParsePlanTactics(std::string_view* rest);

}  // namespace kiln
