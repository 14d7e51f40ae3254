// Shared by the oneDNN peak benches (conv_peak.cc, matmul_peak.cc): OpenMP's thread count, set
// and read through dlsym so the tools need no OpenMP headers or link flags of their own (oneDNN
// brings the runtime).
#pragma once

#include <dlfcn.h>

// Sets the OpenMP thread count when `threads` > 0 and an OpenMP runtime is loaded; returns the
// count in effect (-1: no OpenMP runtime).
inline int SetOmpThreads(int threads) {
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  if (auto set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
      set != nullptr && threads > 0) {
    set(threads);
  }
  auto get = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
  return get != nullptr ? get() : -1;
}
