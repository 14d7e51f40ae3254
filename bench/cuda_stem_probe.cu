// Probe of kiln's fused image-stem kernel (src/backends/cuda/stem_conv.h): ResNet's 7x7
// stride-2 3 -> 64 convolution + bias + ReLU + 3x3 stride-2 max pool, FP16 and int8 outputs,
// checked against a direct float32 kernel and timed against a copy kernel that reads the
// float32 image and writes the FP16 pooled map (what the fused step must at least move).
//   nvcc -O3 -std=c++17 -arch=sm_90 -Isrc bench/cuda_stem_probe.cu \
//     src/backends/cuda/stem_conv.cu -o /tmp/stem && /tmp/stem 128
#include <cuda_fp16.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "backends/cuda/stem_conv.h"
#include "cuda_probe_util.h"

using kiln::cuda::StemConvArgs;
using kiln::cuda::StemConvShape;

// Direct reference: inputs and weights rounded to FP16 as the kernel sees them, float32 sums,
// the convolution's output rounded to FP16 before the pool (as the engine's FP16 path).
__global__ void Reference(StemConvShape g, const float* x, const float* w, const float* bias,
                          float* y) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= g.n * g.ph * g.pw * g.k) return;
  const int64_t k = i % g.k;
  int64_t r = i / g.k;
  const int64_t px = r % g.pw;
  r /= g.pw;
  const int64_t py = r % g.ph, b = r / g.ph;
  float m = -INFINITY;
  for (int kh = 0; kh < g.pk; ++kh) {
    const int64_t cy = py * g.ps - g.pp + kh;
    if (cy < 0 || cy >= g.oh) continue;
    for (int kw = 0; kw < g.pk; ++kw) {
      const int64_t cx = px * g.ps - g.pp + kw;
      if (cx < 0 || cx >= g.ow) continue;
      float acc = bias[k];
      for (int64_t c = 0; c < g.c; ++c)
        for (int rr = 0; rr < g.r; ++rr)
          for (int ss = 0; ss < g.s; ++ss) {
            const int64_t iy = cy * g.stride - g.pad + rr, ix = cx * g.stride - g.pad + ss;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
            const float xv =
                __half2float(__float2half_rn(x[((b * g.c + c) * g.h + iy) * g.w + ix]));
            const float wv =
                __half2float(__float2half_rn(w[((k * g.c + c) * g.r + rr) * g.s + ss]));
            acc += xv * wv;
          }
      acc = __half2float(__float2half_rn(fmaxf(acc, 0.f)));
      m = fmaxf(m, acc);
    }
  }
  y[i] = m;
}

__global__ void Copy(const float* x, int64_t nx, __half* y, int64_t ny) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  float acc = 0;
  for (int64_t j = i; j < nx / 4; j += stride) {
    const float4 v = reinterpret_cast<const float4*>(x)[j];
    acc += v.x + v.y + v.z + v.w;
  }
  for (int64_t j = i; j < ny; j += stride) y[j] = __float2half_rn(acc);
}

int main(int argc, char** argv) {
  StemConvShape g;
  g.n = argc > 1 ? std::atoi(argv[1]) : 128;
  g.c = 3;
  g.h = g.w = 224;
  g.k = 64;
  g.r = g.s = 7;
  g.stride = 2;
  g.pad = 3;
  g.oh = g.ow = 112;
  g.pk = 3;
  g.ps = 2;
  g.pp = 1;
  g.ph = g.pw = 56;
  if (!kiln::cuda::StemConvSupported(g)) {
    std::printf("shape not supported\n");
    return 1;
  }
  const int64_t nx = g.n * g.c * g.h * g.w, nw = g.k * g.c * g.r * g.s,
                ny = g.n * g.ph * g.pw * g.k;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> hx(nx), hw(nw), hb(g.k);
  for (auto& v : hx) v = nd(rng);
  for (auto& v : hw) v = 0.1f * nd(rng);
  for (auto& v : hb) v = 0.1f * nd(rng);
  const std::vector<uint16_t> packed = kiln::cuda::PackStemConvWeights(g, hw.data());
  float* dx = static_cast<float*>(ProbeAlloc(nx * 4));
  float* dw = static_cast<float*>(ProbeAlloc(nw * 4));
  float* db = static_cast<float*>(ProbeAlloc(g.k * 4));
  uint16_t* dp = static_cast<uint16_t*>(ProbeAlloc(packed.size() * 2));
  float* dref = static_cast<float*>(ProbeAlloc(ny * 4));
  __half* dy = static_cast<__half*>(ProbeAlloc(ny * 2));
  int8_t* dq = static_cast<int8_t*>(ProbeAlloc(ny));
  cudaMemcpy(dx, hx.data(), nx * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(dw, hw.data(), nw * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(db, hb.data(), g.k * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(dp, packed.data(), packed.size() * 2, cudaMemcpyHostToDevice);
  Reference<<<static_cast<unsigned>((ny + 255) / 256), 256>>>(g, dx, dw, db, dref);

  StemConvArgs a;
  a.g = g;
  a.x = dx;
  a.w = dp;
  a.bias = db;
  a.y = dy;
  cudaError_t e = kiln::cuda::StemConv(a, nullptr);
  StemConvArgs q = a;
  q.out_int8 = true;
  q.y = dq;
  float amax = 0;
  std::vector<float> ref(ny);
  cudaDeviceSynchronize();
  cudaMemcpy(ref.data(), dref, ny * 4, cudaMemcpyDeviceToHost);
  for (float v : ref) amax = std::fmax(amax, std::fabs(v));
  q.scale = 127.f / amax;
  if (e == cudaSuccess) e = kiln::cuda::StemConv(q, nullptr);
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    std::printf("kernel failed: %s\n", cudaGetErrorString(e));
    return 1;
  }
  std::vector<__half> got(ny);
  std::vector<int8_t> got8(ny);
  cudaMemcpy(got.data(), dy, ny * 2, cudaMemcpyDeviceToHost);
  cudaMemcpy(got8.data(), dq, ny, cudaMemcpyDeviceToHost);
  double num = 0, den = 0, maxd = 0;
  int bad8 = 0;
  for (int64_t i = 0; i < ny; ++i) {
    const double d = __half2float(got[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
    maxd = std::fmax(maxd, std::fabs(d));
    const float want8 = std::fmax(-127.f, std::fmin(127.f, std::rint(ref[i] * q.scale)));
    if (std::fabs(got8[i] - want8) > 1) ++bad8;
  }
  const double rel = std::sqrt(num / (den + 1e-30));
  std::printf("batch %lld: FP16 rel L2 %.3g, max abs %.3g; int8 off by > 1: %d of %lld\n",
              static_cast<long long>(g.n), rel, maxd, bad8, static_cast<long long>(ny));
  const float us16 = ProbeTimeUs([&] { kiln::cuda::StemConv(a, nullptr); }, 50);
  const float us8 = ProbeTimeUs([&] { kiln::cuda::StemConv(q, nullptr); }, 50);
  const float usc = ProbeTimeUs([&] { Copy<<<1056, 256>>>(dx, nx, dy, ny); }, 50);
  std::printf(
      "stem fused: FP16 out %.1f us, int8 out %.1f us; copy (image in, FP16 map out) %.1f us\n",
      us16, us8, usc);
  const bool ok = rel < 2e-3 && bad8 == 0;
  std::printf("%s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
