// cuda_gemm_probe: times ResNet-50's stride-1 1x1 convolutions (NHWC, batch N) as cuBLASLt
// GEMMs, for deciding whether the CUDA engine should run them through cuBLASLt instead of
// cuDNN: a 1x1 convolution of NHWC x [M = N*H*W, C] with weights [K, C] is D[K, M] (column-
// major) = W^T x, the "TN" form cuBLASLt's INT8 / FP8 kernels want. Per shape:
//   - fp16:  D = relu(W x + bias [+ z]) in FP16 (epilogue RELU_BIAS, residual through beta*C);
//   - int8:  D = relu(alpha[k] * (W x) + bias [+ beta * z]), int8 x, w, z and D, INT32
//            accumulation, per-channel alpha (pointer mode ALPHA_DEVICE_VECTOR_BETA_HOST), float
//            bias.
// Each candidate of the heuristic (up to 8) runs 20 times between CUDA events after a warm-up;
// the best is printed, "-" where cuBLASLt supports nothing. Correctness: the int8 result on
// small-integer inputs against a host reference (exact before the final rounding).
//
//   g++ -O2 -std=c++20 bench/cuda_gemm_probe.cc -I$CUDA_HOME/include -L$CUDA_HOME/lib64
//       -lcublasLt -lcudart -o gemm_probe && ./gemm_probe [batch]
#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "cuda_probe_util.h"

namespace {

struct Shape {
  int c, k, hw;
  bool residual;
  int count;  // in ResNet-50
};

// Best microseconds over the heuristic's candidates, -1 when none runs.
float TimeGemm(cublasLtHandle_t lt, bool int8, const Shape& s, int64_t m, const void* w,
               const void* x, const void* z, void* d, const void* bias, const void* alpha_vec,
               void* ws, size_t ws_bytes, cudaStream_t st, std::string* why) {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  const cudaDataType_t t = int8 ? CUDA_R_8I : CUDA_R_16F;
  cublasStatus_t r =
      cublasLtMatmulDescCreate(&op, int8 ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F, CUDA_R_32F);
  const cublasOperation_t tr = CUBLAS_OP_T, nt = CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tr, sizeof(tr));
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &nt, sizeof(nt));
  const cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_RELU_BIAS;
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof(ep));
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias));
  if (int8) {
    const cudaDataType_t bt = CUDA_R_32F;
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt));
    const cublasLtPointerMode_t pm = CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST;
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof(pm));
  }
  cublasLtMatrixLayoutCreate(&la, t, s.c, s.k, s.c);  // W^T: [C, K] column-major
  cublasLtMatrixLayoutCreate(&lb, t, s.c, m, s.c);    // x: [C, M]
  cublasLtMatrixLayoutCreate(&lc, t, s.k, m, s.k);    // z, D: [K, M]
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulPreferenceCreate(&pref);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                       sizeof(ws_bytes));
  cublasLtMatmulHeuristicResult_t res[8];
  int n = 0;
  r = cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 8, res, &n);
  float best = -1;
  const float one = 1.f, zero = 0.f, beta = s.residual ? 0.5f : 0.f;
  (void)zero;
  const void* a_ptr = int8 ? alpha_vec : static_cast<const void*>(&one);
  if (r != CUBLAS_STATUS_SUCCESS || n == 0) {
    *why = "heuristic " + std::to_string(static_cast<int>(r)) + " n=" + std::to_string(n);
  }
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  for (int i = 0; i < n; ++i) {
    auto call = [&]() {
      return cublasLtMatmul(lt, op, a_ptr, w, la, x, lb, &beta, s.residual ? z : d, lc, d, lc,
                            &res[i].algo, ws, ws_bytes, st);
    };
    if (call() != CUBLAS_STATUS_SUCCESS || cudaStreamSynchronize(st) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    cudaEventRecord(e0, st);
    for (int k = 0; k < 20; ++k) call();
    cudaEventRecord(e1, st);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    const float us = ms * 1000.f / 20.f;
    if (best < 0 || us < best) best = us;
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(op);
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int batch = argc > 1 ? std::atoi(argv[1]) : 128;
  const std::vector<Shape> shapes = {
      {64, 64, 56 * 56, false, 1},    {256, 64, 56 * 56, false, 2},   {64, 256, 56 * 56, true, 3},
      {64, 256, 56 * 56, false, 1},  // layer1 downsample
      {256, 128, 56 * 56, false, 1},  {512, 128, 28 * 28, false, 3},  {128, 512, 28 * 28, true, 4},
      {512, 256, 28 * 28, false, 1},  {1024, 256, 14 * 14, false, 5}, {256, 1024, 14 * 14, true, 6},
      {1024, 512, 14 * 14, false, 1}, {2048, 512, 7 * 7, false, 2},   {512, 2048, 7 * 7, true, 3},
  };
  cublasLtHandle_t lt;
  cublasLtCreate(&lt);
  cudaStream_t st;
  cudaStreamCreate(&st);
  const size_t ws_bytes = size_t{64} << 20;
  void* ws = ProbeAlloc(ws_bytes);
  std::printf("batch %d: shape (c>k hw residual) count | fp16 us | int8 us | int8 check\n", batch);
  double t16 = 0, t8 = 0;
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> di(-3, 3);
  for (const Shape& s : shapes) {
    const int64_t m = static_cast<int64_t>(batch) * s.hw;
    const size_t nx = static_cast<size_t>(m) * s.c, nw = static_cast<size_t>(s.k) * s.c,
                 ny = static_cast<size_t>(m) * s.k;
    // Small integers: exact in FP16 and INT8.
    std::vector<int8_t> hx(nx), hw(nw), hz(ny);
    for (auto& v : hx) v = static_cast<int8_t>(di(rng));
    for (auto& v : hw) v = static_cast<int8_t>(di(rng));
    for (auto& v : hz) v = static_cast<int8_t>(di(rng));
    std::vector<__half> hx16(nx), hw16(nw), hz16(ny);
    for (size_t i = 0; i < nx; ++i) hx16[i] = __float2half(hx[i]);
    for (size_t i = 0; i < nw; ++i) hw16[i] = __float2half(hw[i]);
    for (size_t i = 0; i < ny; ++i) hz16[i] = __float2half(hz[i]);
    void* dx8 = ProbeAlloc(nx);
    void* dw8 = ProbeAlloc(nw);
    void* dz8 = ProbeAlloc(ny);
    void* dy8 = ProbeAlloc(ny);
    void* dx16 = ProbeAlloc(nx * 2);
    void* dw16 = ProbeAlloc(nw * 2);
    void* dz16 = ProbeAlloc(ny * 2);
    void* dy16 = ProbeAlloc(ny * 2);
    cudaMemcpy(dx8, hx.data(), nx, cudaMemcpyHostToDevice);
    cudaMemcpy(dw8, hw.data(), nw, cudaMemcpyHostToDevice);
    cudaMemcpy(dz8, hz.data(), ny, cudaMemcpyHostToDevice);
    cudaMemcpy(dx16, hx16.data(), nx * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dw16, hw16.data(), nw * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dz16, hz16.data(), ny * 2, cudaMemcpyHostToDevice);
    std::vector<__half> hb16(s.k, __float2half(0.5f));
    std::vector<float> hbf(s.k, 0.5f), halpha(s.k);
    for (int k = 0; k < s.k; ++k) halpha[k] = 1.f / (4.f + static_cast<float>(k % 5));
    void* db16 = ProbeAlloc(s.k * 2);
    void* dbf = ProbeAlloc(s.k * 4);
    void* dal = ProbeAlloc(s.k * 4);
    cudaMemcpy(db16, hb16.data(), s.k * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dbf, hbf.data(), s.k * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dal, halpha.data(), s.k * 4, cudaMemcpyHostToDevice);
    std::string why16, why8;
    const float u16 =
        TimeGemm(lt, false, s, m, dw16, dx16, dz16, dy16, db16, nullptr, ws, ws_bytes, st, &why16);
    const float u8 =
        TimeGemm(lt, true, s, m, dw8, dx8, dz8, dy8, dbf, dal, ws, ws_bytes, st, &why8);
    // Check the int8 result on the first 64 columns (pixels).
    std::string check = "-";
    if (u8 >= 0) {
      std::vector<int8_t> got(ny);
      cudaMemcpy(got.data(), dy8, ny, cudaMemcpyDeviceToHost);
      int worst = 0;
      for (int64_t p = 0; p < std::min<int64_t>(m, 64); ++p) {
        for (int k = 0; k < s.k; ++k) {
          int acc = 0;
          for (int c = 0; c < s.c; ++c)
            acc += hx[p * s.c + c] * hw[static_cast<size_t>(k) * s.c + c];
          float v = halpha[k] * acc + 0.5f + (s.residual ? 0.5f * hz[p * s.k + k] : 0.f);
          v = std::max(0.f, v);
          const int want = static_cast<int>(std::max(-128.f, std::min(127.f, std::nearbyint(v))));
          worst = std::max(worst, std::abs(want - got[p * s.k + k]));
        }
      }
      check = "max diff " + std::to_string(worst);
    }
    std::printf("%4d>%-4d %5d %s x%d | %8.1f %s| %8.1f %s| %s\n", s.c, s.k, s.hw,
                s.residual ? "res" : "   ", s.count, u16, u16 < 0 ? why16.c_str() : "", u8,
                u8 < 0 ? why8.c_str() : "", check.c_str());
    if (u16 > 0) t16 += u16 * s.count;
    if (u8 > 0) t8 += u8 * s.count;
    for (void* p : {dx8, dw8, dz8, dy8, dx16, dw16, dz16, dy16, db16, dbf, dal}) cudaFree(p);
  }
  std::printf("weighted total: fp16 %.1f us, int8 %.1f us\n", t16, t8);
  cudaFree(ws);
  cublasLtDestroy(lt);
  return 0;
}
