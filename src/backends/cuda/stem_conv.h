// kiln's image-stem kernel for the CUDA engine (stem_conv.cu): a convolution over an image of
// 1-4 channels with bias and ReLU, and the max pool that reads it, as one FP16 tensor-core
// kernel. cuDNN has no INT8 kernel for 3 channels and its FP16 ones run the stem of a residual
// network (7x7 stride 2, 3 -> 64 channels) at a fraction of the tensor cores' speed, writing a
// feature map 4x larger than the pool's output, which the pool then reads back. This kernel
// reads the float32 image once, keeps the convolution's output in shared memory, and writes
// only the pooled map (FP16, or int8 for an INT8 engine's next convolutions).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

namespace kiln::cuda {

// Geometry of the fused step: convolution x [n, c, h, w] * w [k, c, r, s] (stride, symmetric
// pad, no dilation) -> [n, k, oh, ow], then a max pool (pk x pk, stride ps, pad pp; pk = 1,
// ps = 1, pp = 0 for none) -> [n, k, ph, pw].
struct StemConvShape {
  int64_t n = 0, c = 0, h = 0, w = 0, k = 0;
  int r = 0, s = 0, stride = 1, pad = 0;
  int64_t oh = 0, ow = 0;
  int pk = 1, ps = 1, pp = 0;
  int64_t ph = 0, pw = 0;
};

// What the kernel takes: c <= 4, k % 64 == 0, a filter row of at most 160 packed values in
// total (r * s * c with each row's values padded to an even count), a pool window no larger
// than 3 with stride <= its size, and output dims that agree with the geometry.
bool StemConvSupported(const StemConvShape& g);

// The weights [k, c, r, s] (float32) as the kernel reads them: FP16, one row of
// StemConvRowHalves(g) values per output channel, in the kernel's packed order (each filter
// row's s * c values contiguous, rows at even offsets, zeros in between).
int StemConvRowHalves(const StemConvShape& g);
std::vector<uint16_t> PackStemConvWeights(const StemConvShape& g, const float* w);

struct StemConvArgs {
  StemConvShape g;
  const float* x = nullptr;     // NCHW float32 (the engine's input staging)
  const uint16_t* w = nullptr;  // PackStemConvWeights, on the device
  const float* bias = nullptr;  // [k] float32, or null
  bool relu = true;
  bool out_int8 = false;  // y int8 = saturate(round(v * scale)) (else FP16)
  float scale = 1.f;
  void* y = nullptr;  // NHWC [n, ph, pw, k]
};
cudaError_t StemConv(const StemConvArgs& a, cudaStream_t s);

}  // namespace kiln::cuda
