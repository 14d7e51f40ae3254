// cuda_int8_1x1_probe: times kiln's INT8 1x1 convolution (src/backends/cuda/int8_conv.cu) on
// ResNet-50's memory-bound pointwise shapes at batch N, each form of the kernel against a plain
// streaming kernel that moves the same bytes (read x and the residual, write y, 16 bytes per
// thread): how far each form is from what the memory gives. Run it under `ncu` for the why.
//
//   nvcc -O3 -std=c++17 -arch=sm_90 -Isrc bench/cuda_int8_1x1_probe.cu
//        src/backends/cuda/int8_conv.cu -o int8_1x1_probe && ./int8_1x1_probe [batch]
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "backends/cuda/int8_conv.h"
#include "cuda_probe_util.h"

namespace {

void* Dev(size_t bytes) {
  void* p = ProbeAlloc(bytes);
  cudaMemset(p, 1, bytes);
  return p;
}

// Reads x (nx 16-byte chunks) and z (ny), writes y (ny): the conv's bytes with no math.
__global__ void Stream(const int4* x, int64_t nx, const int4* z, int4* y, int64_t ny) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int acc = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < nx;
       i += stride) {
    acc ^= x[i].x;
  }
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < ny;
       i += stride) {
    int4 v = z ? z[i] : make_int4(0, 0, 0, 0);
    v.x ^= acc;
    y[i] = v;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 128;
  struct S {
    int64_t c, k, hw;
    int stride;
    bool z;
  };
  const S shapes[] = {{64, 256, 56, 1, true},  {64, 256, 56, 1, false},  {64, 64, 56, 1, false},
                      {128, 512, 28, 1, true}, {256, 1024, 14, 1, true}, {256, 512, 56, 2, false}};
  std::printf("shape (batch %lld)\tMB\tstream us\t", static_cast<long long>(n));
  for (const char* f : kiln::cuda::kInt8Conv1x1Forms) std::printf("kiln/%s us\t", f);
  std::printf("\n");
  for (const S& s : shapes) {
    const int64_t oh = (s.hw - 1) / s.stride + 1;
    const int64_t m = n * oh * oh, xb = n * s.hw * s.hw * s.c, yb = m * s.k;
    void* x = Dev(static_cast<size_t>(xb));
    void* w = Dev(static_cast<size_t>(s.k * s.c));
    void* y = Dev(static_cast<size_t>(yb));
    void* z = s.z ? Dev(static_cast<size_t>(yb)) : nullptr;
    std::vector<float> ones(static_cast<size_t>(s.k), 0.01f);
    float* al = static_cast<float*>(Dev(ones.size() * 4));
    float* be = static_cast<float*>(Dev(ones.size() * 4));
    cudaMemcpy(al, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(be, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice);
    const double mb = (static_cast<double>(xb) + (s.z ? 2.0 : 1.0) * static_cast<double>(yb)) / 1e6;
    const float ts = ProbeTimeUs([&] {
      Stream<<<132 * 8, 256>>>(static_cast<const int4*>(x), xb / 16 / (s.stride * s.stride),
                               static_cast<const int4*>(z), static_cast<int4*>(y), yb / 16);
    });
    std::printf("c%lld k%lld hw%lld s%d%s\t%.1f\t%.1f (%.2f TB/s)\t", static_cast<long long>(s.c),
                static_cast<long long>(s.k), static_cast<long long>(s.hw), s.stride,
                s.z ? " +z" : "", mb, ts, mb / ts);
    for (int form = 0; form < kiln::cuda::kInt8Conv1x1NumForms; ++form) {
      kiln::cuda::Int8Conv1x1Args a;
      a.x = static_cast<const int8_t*>(x);
      a.w = static_cast<const int8_t*>(w);
      a.w_perm = a.w;  // the order does not change the time
      a.alpha = al;
      a.beta = be;
      a.z = static_cast<const int8_t*>(z);
      a.relu = true;
      a.n = n;
      a.h = a.w_ = s.hw;
      a.c = s.c;
      a.k = s.k;
      a.stride = s.stride;
      a.y = y;
      a.form = form;
      if (!kiln::cuda::Int8Conv1x1FormFits(form, s.k)) {
        std::printf("-\t");
        continue;
      }
      const float t = ProbeTimeUs([&] { kiln::cuda::Int8Conv1x1(a, nullptr); });
      std::printf("%.1f (%.2f TB/s)\t", t, mb / t);
    }
    std::printf("\n");
    for (void* p : {x, w, y, z, static_cast<void*>(al), static_cast<void*>(be)}) {
      if (p) cudaFree(p);
    }
  }
  const cudaError_t e = cudaDeviceSynchronize();
  std::printf("%s\n", cudaGetErrorString(e));
  return e == cudaSuccess ? 0 : 1;
}
