// The CPU engine backend on oneDNN (x86: AVX2 / AVX-512 / AMX).
#pragma once

#include "engine/engine.h"

namespace kiln {

// The process-wide CPU backend.
const Backend& CpuBackend();

}  // namespace kiln
