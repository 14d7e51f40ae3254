// kiln's INT8 1x1 convolution for the CUDA engine (int8_conv.cu): a tensor-core GEMM over NHWC
// int8 activations with cuDNN's INT8 epilogue fused, for the pointwise convolutions of
// residual networks, where cuDNN 9's INT8 engines on Hopper are no faster than its FP16 ones
// (the convolutions are memory-bound; int8 halves the bytes only if the kernel streams them).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels.h"

namespace kiln::cuda {

// y[m, k] = epilogue(sum_c x[pixel(m), c] * w[k, c]) for the m < rows output pixels of a 1x1
// convolution with no padding and stride `stride`, where
//   v = acc * alpha[k] + beta[k] (+ gamma * z[m, k]), relu'd with `relu`,
//   y = saturate(round(v)) to [-128, 127] (out_int8) or v in `out_t`.
// x is NHWC int8 [n, h, w, c]; w is int8 [k, c]; z (or null) int8 [rows, k]; y [rows, k] with
// rows = n * oh * ow, oh = (h - 1) / stride + 1 (likewise ow). Requires c % 64 == 0,
// k % 64 == 0 and 16-byte aligned x, w, z, y, alpha and beta (Int8Conv1x1Supported).
struct Int8Conv1x1Args {
  const int8_t* x = nullptr;
  const int8_t* w = nullptr;
  const float* alpha = nullptr;
  const float* beta = nullptr;
  const int8_t* z = nullptr;
  float gamma = 1.f;
  bool relu = false;
  int64_t n = 0, h = 0, w_ = 0, c = 0, k = 0;
  int stride = 1;
  bool out_int8 = true;
  DType out_t = DType::kF16;  // when !out_int8
  void* y = nullptr;
  int form = 0;                    // kInt8Conv1x1Forms
  const int8_t* w_perm = nullptr;  // w through PermuteInt8Conv1x1Weights (form 1)
};
// The kernel's forms (timed against each other at build), 128 output pixels x 64 or 128
// channels per block of 4 or 8 warps: "tile" writes the accumulators through a shared int32
// tile (16 consecutive channels per thread); "perm" takes w_perm, whose row order makes each
// lane's accumulators 8 consecutive channels, and writes them straight from the registers. The
// 128-channel forms need k % 128 == 0 (Int8Conv1x1FormFits).
constexpr const char* kInt8Conv1x1Forms[] = {"tile", "perm", "tile128", "perm128"};
constexpr int kInt8Conv1x1NumForms = 4;
inline bool Int8Conv1x1FormFits(int form, int64_t k) { return k % (form >= 2 ? 128 : 64) == 0; }
// out [k, c] = w [k, c] with its rows reordered for the "perm" form (k % 32 == 0).
void PermuteInt8Conv1x1Weights(const int8_t* w, int64_t k, int64_t c, int8_t* out);
bool Int8Conv1x1Supported(int64_t c, int64_t k);
cudaError_t Int8Conv1x1(const Int8Conv1x1Args& a, cudaStream_t s);

}  // namespace kiln::cuda
