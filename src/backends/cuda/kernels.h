// kiln's own CUDA kernels for the CUDA engine backend (kernels.cu): elementwise chains with
// broadcast operands, strided copies with casts (layout changes, transposes, concat, split),
// softmax and layer normalization. Every entry point launches on `stream` and returns the
// launch error (cudaGetLastError) so the caller can turn it into a Status.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace kiln::cuda {

enum class DType : int { kF32 = 0, kF16, kBF16 };
inline int SizeOf(DType t) { return t == DType::kF32 ? 4 : 2; }

constexpr int kMaxRank = 8;
constexpr int kMaxOps = 8;

// Eltwise algorithms (mapped from the layer program's oneDNN algorithm values in lowering).
enum EltAlg : int {
  kRelu = 0,  // x > 0 ? x : alpha * x
  kTanh,
  kElu,  // x > 0 ? x : alpha * (exp(x) - 1)
  kAbs,
  kSqrt,
  kLinear,    // alpha * x + beta
  kSoftRelu,  // log(1 + exp(x))
  kLogistic,
  kExp,
  kGeluTanh,
  kLog,
  kClip,  // min(max(x, alpha), beta)
  kPow,   // alpha * x^beta
  kGeluErf,
  kMish,
  kHardswish,  // alpha == 0: x * relu6(x + 3) / 6; else x * clamp(alpha * x + beta, 0, 1)
  kSwish,      // x * sigmoid(alpha * x)
  kErf,
};
enum BinAlg : int { kAdd = 0, kSub, kMul, kDiv, kMax, kMin };

// How an operand element is found from the output's linear (physical) index i.
struct Operand {
  const void* ptr = nullptr;  // same dtype as the chain
  int mode = 0;               // 0: general (strides), 1: i, 2: (i / div) % mod
  int64_t div = 1, mod = 1;
  int64_t strides[kMaxRank] = {};  // mode 0: element stride per output (physical) dim
};

struct ChainOp {
  int kind = 0;  // 0 eltwise, 1 binary (x op operand), 2 prelu (x > 0 ? x : x * operand)
  int alg = 0;
  float alpha = 0, beta = 0;
  Operand operand;
};

struct Chain {
  int n = 0;
  ChainOp ops[kMaxOps];
  int rank = 1;
  int64_t dims[kMaxRank] = {};  // physical output dims (mode-0 operands decompose by these)
};

// y[i] = ops(x[i]) for i < n; y may equal x.
cudaError_t RunChain(DType t, const void* x, void* y, int64_t n, const Chain& c, cudaStream_t s);

// dst[sum idx*dst_strides] = cast(src[sum idx*src_strides]) over the index space `dims`.
struct Strided {
  int rank = 1;
  int64_t dims[kMaxRank] = {};
  int64_t src[kMaxRank] = {};
  int64_t dst[kMaxRank] = {};
};
cudaError_t StridedCopy(DType src_t, const void* src, DType dst_t, void* dst, const Strided& s,
                        cudaStream_t stream);

// Softmax over `axis` of a plain [outer, axis, inner] tensor (log: LogSoftmax).
cudaError_t Softmax(DType t, const void* x, void* y, int64_t outer, int64_t axis, int64_t inner,
                    bool log, cudaStream_t s);

// Layer normalization of `rows` rows of `cols` (scale, bias: `cols` values each; bias may be
// null).
cudaError_t LayerNorm(DType t, const void* x, const void* scale, const void* bias, void* y,
                      int64_t rows, int64_t cols, float eps, cudaStream_t s);

// INT8 activations (symmetric, per tensor): y[i] = saturate(round(x[i] * scale)) to [-127, 127]
// (Quantize; x of storage type t) and y[i] = x[i] * inv_scale (Dequantize; y of type t).
cudaError_t Quantize(DType t, const void* x, int8_t* y, int64_t n, float scale, cudaStream_t s);
cudaError_t Dequantize(const int8_t* x, DType t, void* y, int64_t n, float inv_scale,
                       cudaStream_t s);
// FP8 activations (per tensor): y[i] = E4M3(x[i] * scale), saturated to +-448 (x of storage
// type t; y one byte per element).
cudaError_t QuantizeFp8(DType t, const void* x, void* y, int64_t n, float scale, cudaStream_t s);

// Max pooling of NHWC [n, h, w, c] into NHWC [n, oh, ow, c]; window kh x kw, strides sh / sw,
// leading padding ph / pw (padding never wins). x is of type t, or int8 with `in_int8`; y is of
// type t, or int8 with `out_int8`: y = saturate(round(max * out_scale)) (int8 in and out: 1).
// 16 bytes of channels per thread when c allows.
struct PoolArgs {
  int64_t n = 0, h = 0, w = 0, c = 0, oh = 0, ow = 0;
  int kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
};
cudaError_t MaxPoolNhwc(DType t, bool in_int8, const void* x, bool out_int8, float out_scale,
                        void* y, const PoolArgs& a, cudaStream_t s);

// float32 NCHW [n, c, h * w] -> NHWC of type t, one thread per pixel (for few channels: an
// image entering the first convolution; the generic strided copy writes its 3-channel pixels
// element by element).
cudaError_t NchwToNhwc(const float* x, DType t, void* y, int64_t n, int64_t c, int64_t hw,
                       cudaStream_t s);

// Keeps the stream busy for about `us` microseconds (one thread spinning on clock64): the
// per-layer profile enqueues every step behind it, so the events between steps time the GPU
// work alone, without the host's launch gaps.
cudaError_t Spin(double us, cudaStream_t s);

// Embedding lookup (ONNX Gather, axis 0, of a float32 table [rows, width]):
// out[r, :] = table[idx[r], :] for r < n; idx is int64 (idx64) or int32; a negative index
// counts from the end; an index outside [-rows, rows) gives a row of zeros and, when `bad` is
// not null, stores 1 + its element number in *bad if *bad is still 0 (the first one seen; `bad`
// is device-accessible, e.g. mapped page-locked memory the host reads after the stream).
cudaError_t GatherRows(const void* idx, bool idx64, int64_t n, const float* table, int64_t rows,
                       int64_t width, float* out, unsigned long long* bad, cudaStream_t s);

// Microseconds per call of `call` (returns true when it ran), averaged over `reps` calls
// enqueued on `s` behind a spin of `spin_us`, so the events time the GPU alone and not the
// host's enqueue cost (build-time tactic trials); -1 when a call failed.
template <typename F>
float TimeBehindSpin(F&& call, cudaEvent_t e0, cudaEvent_t e1, cudaStream_t s, double spin_us,
                     int reps = 10) {
  Spin(spin_us, s);
  cudaEventRecord(e0, s);
  bool ran = true;
  for (int k = 0; k < reps && ran; ++k) ran = call();
  cudaEventRecord(e1, s);
  ran = cudaEventSynchronize(e1) == cudaSuccess && ran;
  float ms = 0;
  if (ran) cudaEventElapsedTime(&ms, e0, e1);
  return ran ? ms * 1000.f / static_cast<float>(reps) : -1.f;
}

}  // namespace kiln::cuda
