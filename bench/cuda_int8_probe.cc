// cuda_int8_probe: times ResNet-50's convolutions (NHWC, batch N) through cuDNN's graph API
// (cudnn_graph.h) in FP16, in INT8 (x, w int8, INT32 accumulation, per-channel float scale,
// bias, ReLU, INT8 or FP16 output) and in FP8 (E4M3 x, w, FP16 output), weighted by how often
// each shape occurs in ResNet-50, and checks the INT8 / FP8 results against the FP16 graph on
// the same small-integer inputs (exact in every one of these types). Standalone
// (no kiln engine), for deciding whether an INT8 ResNet-50 can reach 2x torch.compile FP16:
//
//   g++ -O2 -std=c++20 bench/cuda_int8_probe.cc src/backends/cuda/cudnn_graph.cc
//       src/core/status.cc -Iinclude -Isrc -I<cuda>/include -lcudnn -lcudart -o probe
//   ./probe [batch] [fast]      (fast: FP16 and INT8 -> INT8 only)
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda/cudnn_graph.h"

using kiln::StatusOr;
using kiln::cuda::FusedConvArgs;
using kiln::cuda::FusedConvPlan;
using kiln::cuda::FusedConvSpec;

namespace {

struct Shape {
  int c, k, hw, r, s;  // input channels, output channels, input H=W, kernel, stride
  int count;           // occurrences in ResNet-50 (torchvision v1.5)
};

void* Dev(size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    std::fprintf(stderr, "cudaMalloc %zu failed\n", bytes);
    std::exit(1);
  }
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 128;
  const bool fast = argc > 2 && std::string(argv[2]) == "fast";
  std::printf("cuDNN %zu\n", cudnnGetVersion());
  const std::vector<Shape> shapes = {
      {64, 64, 56, 1, 1, 1},    {64, 64, 56, 3, 1, 3},     {64, 256, 56, 1, 1, 4},
      {256, 64, 56, 1, 1, 2},   {256, 128, 56, 1, 1, 1},   {128, 128, 56, 3, 2, 1},
      {128, 512, 28, 1, 1, 4},  {256, 512, 56, 1, 2, 1},   {512, 128, 28, 1, 1, 3},
      {128, 128, 28, 3, 1, 3},  {512, 256, 28, 1, 1, 1},   {256, 256, 28, 3, 2, 1},
      {256, 1024, 14, 1, 1, 6}, {512, 1024, 28, 1, 2, 1},  {1024, 256, 14, 1, 1, 5},
      {256, 256, 14, 3, 1, 5},  {1024, 512, 14, 1, 1, 1},  {512, 512, 14, 3, 2, 1},
      {512, 2048, 7, 1, 1, 3},  {1024, 2048, 14, 1, 2, 1}, {2048, 512, 7, 1, 1, 2},
      {512, 512, 7, 3, 1, 2}};
  cudnnHandle_t h;
  if (cudnnCreate(&h) != CUDNN_STATUS_SUCCESS) return 1;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> di(-8, 8);
  double tot16 = 0, tot8 = 0, tot8h = 0, totf8 = 0;
  std::printf("%-24s %5s %8s %10s %11s %10s %8s %8s %s\n", "shape (c>k hw r s)", "count", "fp16 us",
              "int8>i8 us", "int8>f16 us", "fp8>f16 us", "i8 relL2", "f8 relL2",
              "engines fp16 | int8>i8 | int8>f16 | fp8>f16");
  for (const Shape& sh : shapes) {
    const int oh = (sh.hw + 2 * (sh.r / 2) - sh.r) / sh.s + 1;
    FusedConvSpec sp;
    const int64_t x[4] = {n, sh.c, sh.hw, sh.hw}, w[4] = {sh.k, sh.c, sh.r, sh.r},
                  y[4] = {n, sh.k, oh, oh};
    for (int i = 0; i < 4; ++i) {
      sp.x[i] = x[i];
      sp.w[i] = w[i];
      sp.y[i] = y[i];
    }
    sp.pad[0] = sp.pad[1] = sh.r / 2;
    sp.stride[0] = sp.stride[1] = sh.s;
    sp.relu = true;
    const size_t nx = static_cast<size_t>(n) * sh.c * sh.hw * sh.hw;
    const size_t nw = static_cast<size_t>(sh.k) * sh.c * sh.r * sh.r;
    const size_t ny = static_cast<size_t>(n) * sh.k * oh * oh;
    // Integer-valued inputs, exact in both FP16 and INT8.
    std::vector<int8_t> hx(nx), hw(nw);
    for (auto& v : hx) v = static_cast<int8_t>(di(rng));
    for (auto& v : hw) v = static_cast<int8_t>(di(rng));
    std::vector<__half> hx16(nx), hw16(nw), hb16(sh.k);
    std::vector<__nv_fp8_e4m3> hxf8(nx), hwf8(nw);
    for (size_t i = 0; i < nx; ++i) {
      hx16[i] = __float2half(hx[i]);
      hxf8[i] = __nv_fp8_e4m3(static_cast<float>(hx[i]));
    }
    for (size_t i = 0; i < nw; ++i) {
      hw16[i] = __float2half(hw[i]);
      hwf8[i] = __nv_fp8_e4m3(static_cast<float>(hw[i]));
    }
    std::vector<float> scale(sh.k), biasf(sh.k);
    std::uniform_real_distribution<float> du(0.5f, 1.5f), db(-50.f, 50.f);
    // Output scale so the INT8 result spans about +-100 (FP16 reference divided the same way).
    const float base = 1.f / (8.f * 8.f * std::sqrt(static_cast<float>(sh.c * sh.r * sh.r)));
    for (int k = 0; k < sh.k; ++k) {
      scale[k] = base * 40.f * du(rng);
      biasf[k] = db(rng) * 0.1f;
      hb16[k] = __float2half(biasf[k] / scale[k]);
    }
    void* dx8 = Dev(nx);
    void* dw8 = Dev(nw);
    void* dx16 = Dev(nx * 2);
    void* dw16 = Dev(nw * 2);
    void* db16 = Dev(sh.k * 2);
    void* dsc = Dev(sh.k * 4);
    void* dbf = Dev(sh.k * 4);
    void* dy8 = Dev(ny);
    void* dy16 = Dev(ny * 2);
    void* dyh = Dev(ny * 2);
    void* dxf8 = Dev(nx);
    void* dwf8 = Dev(nw);
    void* dyf8 = Dev(ny * 2);
    cudaMemcpy(dxf8, hxf8.data(), nx, cudaMemcpyHostToDevice);
    cudaMemcpy(dwf8, hwf8.data(), nw, cudaMemcpyHostToDevice);
    cudaMemcpy(dx8, hx.data(), nx, cudaMemcpyHostToDevice);
    cudaMemcpy(dw8, hw.data(), nw, cudaMemcpyHostToDevice);
    cudaMemcpy(dx16, hx16.data(), nx * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dw16, hw16.data(), nw * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(db16, hb16.data(), sh.k * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dsc, scale.data(), sh.k * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dbf, biasf.data(), sh.k * 4, cudaMemcpyHostToDevice);
    char name[64];
    std::snprintf(name, sizeof(name), "%d>%d %d %dx%d s%d", sh.c, sh.k, sh.hw, sh.r, sh.r, sh.s);
    // FP16: y16 = relu(conv + bias/scale) (unscaled, so y16 * scale is the reference).
    FusedConvArgs a16;
    a16.x = dx16;
    a16.w = dw16;
    a16.bias = db16;
    a16.y = dy16;
    auto p16 = FusedConvPlan::Create(h, sp, int64_t{1} << 30, a16, 3, name);
    // INT8 -> INT8 and INT8 -> FP16: y = relu(conv * scale + bias).
    FusedConvSpec s8 = sp;
    s8.x_type = CUDNN_DATA_INT8;
    s8.compute = CUDNN_DATA_INT32;
    s8.scale = true;
    s8.bias_type = CUDNN_DATA_FLOAT;
    s8.y_type = CUDNN_DATA_INT8;
    FusedConvArgs a8;
    a8.x = dx8;
    a8.w = dw8;
    a8.scale = dsc;
    a8.bias = dbf;
    a8.y = dy8;
    auto p8 = FusedConvPlan::Create(h, s8, int64_t{1} << 30, a8, 8, name);
    FusedConvSpec s8h = s8;
    s8h.y_type = CUDNN_DATA_HALF;
    FusedConvArgs a8h = a8;
    a8h.y = dyh;
    StatusOr<std::unique_ptr<FusedConvPlan>> p8h = kiln::NotFound("skipped (fast)");
    if (!fast) p8h = FusedConvPlan::Create(h, s8h, int64_t{1} << 30, a8h, 8, name);
    FusedConvSpec sf8 = s8h;
    sf8.x_type = CUDNN_DATA_FP8_E4M3;
    sf8.compute = CUDNN_DATA_FLOAT;
    FusedConvArgs af8 = a8h;
    af8.x = dxf8;
    af8.w = dwf8;
    af8.y = dyf8;
    StatusOr<std::unique_ptr<FusedConvPlan>> pf8 = kiln::NotFound("skipped (fast)");
    if (!fast) pf8 = FusedConvPlan::Create(h, sf8, int64_t{1} << 30, af8, 8, name);
    // rel. L2 of a low-precision result (FP16 out, y = relu(conv * scale + bias)) against the
    // FP16 graph's (relu(conv + bias / scale)) times scale; poisoned output first.
    auto check = [&](const FusedConvPlan& p, FusedConvArgs a, void* out) -> double {
      if (!p16.ok()) return -1;
      void* ws = Dev(static_cast<size_t>(
          std::max<int64_t>({(*p16)->workspace_bytes(), p.workspace_bytes(), int64_t{256}})));
      FusedConvArgs r = a16;
      r.workspace = a.workspace = ws;
      cudaMemset(out, 0xff, ny * 2);
      (void)(*p16)->Run(h, r);
      (void)p.Run(h, a);
      cudaDeviceSynchronize();
      std::vector<__half> r16(ny), r8(ny);
      cudaMemcpy(r16.data(), dy16, ny * 2, cudaMemcpyDeviceToHost);
      cudaMemcpy(r8.data(), out, ny * 2, cudaMemcpyDeviceToHost);
      cudaFree(ws);
      double num = 0, den = 0;
      for (size_t i = 0; i < ny; ++i) {
        const int k = static_cast<int>(i % sh.k);
        const double ref = static_cast<double>(__half2float(r16[i])) * scale[k];
        const double got = __half2float(r8[i]);
        if (!std::isfinite(got)) return 1e9;
        num += (got - ref) * (got - ref);
        den += ref * ref;
      }
      return den > 0 ? std::sqrt(num / den) : -1;
    };
    const double rel = p8h.ok() ? check(**p8h, a8h, dyh) : -1;
    const double relf8 = pf8.ok() ? check(**pf8, af8, dyf8) : -1;
    const float t16 = p16.ok() ? (*p16)->trial_us() : -1, t8 = p8.ok() ? (*p8)->trial_us() : -1,
                t8h = p8h.ok() ? (*p8h)->trial_us() : -1, tf8 = pf8.ok() ? (*pf8)->trial_us() : -1;
    auto eng = [](const auto& p) {
      return p.ok() ? p.value()->engine_name() : p.status().message().substr(0, 160);
    };
    std::printf("%-24s %5d %8.1f %10.1f %11.1f %10.1f %8.1e %8.1e %s | %s | %s | %s\n", name,
                sh.count, t16, t8, t8h, tf8, rel, relf8, eng(p16).c_str(), eng(p8).c_str(),
                eng(p8h).c_str(), eng(pf8).c_str());
    if (t16 > 0) tot16 += t16 * sh.count;
    if (t8 > 0) tot8 += t8 * sh.count;
    if (t8h > 0) tot8h += t8h * sh.count;
    if (tf8 > 0) totf8 += tf8 * sh.count;
    for (void* p : {dx8, dw8, dx16, dw16, db16, dsc, dbf, dy8, dy16, dyh, dxf8, dwf8, dyf8})
      cudaFree(p);
  }
  std::printf(
      "ResNet-50 conv total (batch %d, shape x count, stem excluded): fp16 %.3f ms, "
      "int8->int8 %.3f ms, int8->fp16 %.3f ms, fp8->fp16 %.3f ms\n",
      n, tot16 / 1000, tot8 / 1000, tot8h / 1000, totf8 / 1000);
  cudnnDestroy(h);
  return 0;
}
