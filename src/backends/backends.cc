// The backend registry: every engine backend built into this kiln.
#include "backends/cpu/cpu_backend.h"
#include "engine/engine.h"

namespace kiln {

const Backend* FindBackend(const std::string& name) {
  if (name == "cpu") return &CpuBackend();
  return nullptr;
}

std::vector<std::string> BackendNames() { return {"cpu"}; }

}  // namespace kiln
