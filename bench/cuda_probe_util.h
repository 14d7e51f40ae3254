// What the standalone CUDA probes (cuda_gemm_probe.cc, cuda_int8_probe.cc,
// cuda_int8_1x1_probe.cu) share: they are separate programs built by one compiler line each,
// so this is header-only.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

// Mean microseconds of one f() over `reps` calls on the default stream, between CUDA events,
// after one untimed call.
template <typename F>
float ProbeTimeUs(F&& f, int reps = 20) {
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  f();
  cudaEventRecord(e0);
  for (int i = 0; i < reps; ++i) f();
  cudaEventRecord(e1);
  cudaEventSynchronize(e1);
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return ms * 1000.f / static_cast<float>(reps);
}

// cudaMalloc that ends the probe with a message when the device is out of memory.
inline void* ProbeAlloc(size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    std::fprintf(stderr, "cudaMalloc %zu failed\n", bytes);
    std::exit(1);
  }
  return p;
}
