// The CPU engine backend on oneDNN (x86: AVX2 / AVX-512 / AMX).
#pragma once

#include "engine/engine.h"

namespace kiln {

// The process-wide CPU backend.
const Backend& CpuBackend();

// True when this machine (and the linked oneDNN) has an optimized kernel computing in `p`
// (probed once: a small conv primitive of that type, not the reference implementation; BF16
// also needs native avx512_bf16 or AMX). FP32 always. See backends/cpu/precision.h.
bool CpuHasKernel(Precision p);

}  // namespace kiln
