// What the standalone CUDA probes (cuda_gemm_probe.cc, cuda_int8_probe.cc,
// cuda_int8_1x1_probe.cu) share: they are separate programs built by one compiler line each,
// so this is header-only.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

// cudaMalloc that ends the probe with a message when the device is out of memory.
inline void* ProbeAlloc(size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    std::fprintf(stderr, "cudaMalloc %zu failed\n", bytes);
    std::exit(1);
  }
  return p;
}
