// kiln's fused attention kernel for the CUDA engine (attention.cu): for every (batch, head),
//   O = softmax(scale * Q K^T + mask) V
// with Q [sq, d], K and V [sk, d] read through strides (so the head split / transpose of a
// BERT-style encoder need no copies) and the scores kept on chip. FP16 / BF16 storage, FP32
// softmax and accumulation; head dims 16, 32, 64, 128.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels.h"

namespace kiln::cuda {

struct AttentionArgs {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* mask = nullptr;  // optional, the storage type; added to the scaled scores
  void* o = nullptr;
  // Element strides of (batch, head, row) for q, k, v, o; the head dim is contiguous. Each a
  // multiple of 8 elements and each pointer 16-byte aligned (16-byte loads and stores).
  int64_t qs[3] = {}, ks[3] = {}, vs[3] = {}, os[3] = {};
  int64_t ms[4] = {};  // mask strides of (batch, head, query, key); 0 broadcasts
  int b = 0, h = 0, sq = 0, sk = 0;
  int64_t d = 0;
  float scale = 1.f;
};

// Whether the kernel handles storage type `t` with head dim `d`.
bool AttentionSupported(DType t, int64_t d);
// Once per device before the first launch (at engine build): raises the kernel's shared
// memory limit.
cudaError_t AttentionPrepare(DType t, int64_t d);
// Enqueues the attention on `s`; cudaErrorInvalidValue when the arguments break the rules
// above.
cudaError_t Attention(DType t, const AttentionArgs& a, cudaStream_t s);

}  // namespace kiln::cuda
