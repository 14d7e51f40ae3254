// kiln's own CUDA kernels (kernels.h). Arithmetic is in float whatever the storage type.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>

#include "backends/cuda/kernels.h"

namespace kiln::cuda {
namespace {

template <typename T>
__device__ __forceinline__ float Load(const T* p, int64_t i);
template <>
__device__ __forceinline__ float Load<float>(const float* p, int64_t i) {
  return p[i];
}
template <>
__device__ __forceinline__ float Load<__half>(const __half* p, int64_t i) {
  return __half2float(p[i]);
}
template <>
__device__ __forceinline__ float Load<__nv_bfloat16>(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ void Store(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void Store(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ void Store(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16_rn(v);
}

__device__ __forceinline__ float Sigmoid(float x) { return 1.f / (1.f + expf(-x)); }
__device__ __forceinline__ float SoftRelu(float x) { return x > 20.f ? x : log1pf(expf(x)); }

__device__ float Elt(int alg, float x, float a, float b) {
  switch (alg) {
    case kRelu:
      return x > 0.f ? x : a * x;
    case kTanh:
      return tanhf(x);
    case kElu:
      return x > 0.f ? x : a * (expf(x) - 1.f);
    case kAbs:
      return fabsf(x);
    case kSqrt:
      return sqrtf(x);
    case kLinear:
      return a * x + b;
    case kSoftRelu:
      return SoftRelu(x);
    case kLogistic:
      return Sigmoid(x);
    case kExp:
      return expf(x);
    case kGeluTanh:
      return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case kLog:
      return logf(x);
    case kClip:
      return fminf(fmaxf(x, a), b);
    case kPow:
      return b == 1.f ? a * x : (b == -1.f ? a / x : a * powf(x, b));
    case kGeluErf:
      return 0.5f * x * (1.f + erff(x * 0.7071067811865476f));
    case kMish:
      return x * tanhf(SoftRelu(x));
    case kHardswish:
      if (a == 0.f) return x * fminf(fmaxf(x + 3.f, 0.f), 6.f) * (1.f / 6.f);
      return x * fminf(fmaxf(a * x + b, 0.f), 1.f);
    case kSwish:
      return x * Sigmoid(a * x);
    case kErf:
      return erff(x);
    default:
      return x;
  }
}

__device__ float Bin(int alg, float x, float y) {
  switch (alg) {
    case kAdd:
      return x + y;
    case kSub:
      return x - y;
    case kMul:
      return x * y;
    case kDiv:
      return x / y;
    case kMax:
      return fmaxf(x, y);
    case kMin:
      return fminf(x, y);
    default:
      return x;
  }
}

int Blocks(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(b > 65536 * 8 ? 65536 * 8 : (b < 1 ? 1 : b));
}

// I: the index type (32-bit when every index and offset fits: much cheaper division).
template <typename T, typename I>
__device__ __forceinline__ float LoadOperand(const Operand& o, I i, int rank, const int64_t* dims) {
  const T* p = static_cast<const T*>(o.ptr);
  if (o.mode == 1) return Load(p, i);
  if (o.mode == 2) return Load(p, (i / static_cast<I>(o.div)) % static_cast<I>(o.mod));
  I off = 0, r = i;
  for (int d = rank - 1; d >= 0; --d) {
    const I dim = static_cast<I>(dims[d]);
    const I q = r / dim;
    off += (r - q * dim) * static_cast<I>(o.strides[d]);
    r = q;
  }
  return Load(p, off);
}

template <typename T, typename I>
__global__ void ChainKernel(const T* x, T* y, I n, const Chain c) {
  for (I i = blockIdx.x * static_cast<I>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<I>(gridDim.x) * blockDim.x) {
    float v = Load(x, i);
    for (int k = 0; k < c.n; ++k) {
      const ChainOp& op = c.ops[k];
      if (op.kind == 0) {
        v = Elt(op.alg, v, op.alpha, op.beta);
      } else {
        const float w = LoadOperand<T, I>(op.operand, i, c.rank, c.dims);
        v = op.kind == 1 ? Bin(op.alg, v, w) : (v > 0.f ? v : v * w);
      }
    }
    Store(y, i, v);
  }
}

template <typename T>
void LaunchChain(const T* x, T* y, int64_t n, const Chain& c, int blocks, int th, cudaStream_t s) {
  if (n < (int64_t{1} << 31)) {
    ChainKernel<T, int32_t><<<blocks, th, 0, s>>>(x, y, static_cast<int32_t>(n), c);
  } else {
    ChainKernel<T, int64_t><<<blocks, th, 0, s>>>(x, y, n, c);
  }
}

template <typename S, typename D, typename I>
__global__ void CopyKernel(const S* src, D* dst, I n, const Strided s) {
  for (I i = blockIdx.x * static_cast<I>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<I>(gridDim.x) * blockDim.x) {
    I so = 0, dso = 0, r = i;
    for (int d = s.rank - 1; d >= 0; --d) {
      const I dim = static_cast<I>(s.dims[d]);
      const I q = r / dim;
      const I k = r - q * dim;
      so += k * static_cast<I>(s.src[d]);
      dso += k * static_cast<I>(s.dst[d]);
      r = q;
    }
    Store(dst, dso, Load(src, so));
  }
}

template <typename I>
__global__ void RawCopyKernel(const uint4* src, uint4* dst, I n, const Strided s) {
  for (I i = blockIdx.x * static_cast<I>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<I>(gridDim.x) * blockDim.x) {
    I so = 0, dso = 0, r = i;
    for (int d = s.rank - 1; d >= 0; --d) {
      const I dim = static_cast<I>(s.dims[d]);
      const I q = r / dim;
      const I k = r - q * dim;
      so += k * static_cast<I>(s.src[d]);
      dso += k * static_cast<I>(s.dst[d]);
      r = q;
    }
    dst[dso] = src[so];
  }
}

template <typename S, typename D>
void LaunchCopy(const S* src, D* dst, int64_t n, const Strided& s, cudaStream_t st) {
  const int th = 256;
  int64_t span = n;
  for (int d = 0; d < s.rank; ++d) {
    span = std::max(span, (s.dims[d] - 1) * std::max(s.src[d], s.dst[d]) + 1);
  }
  if (span < (int64_t{1} << 30)) {
    CopyKernel<S, D, int32_t><<<Blocks(n, th), th, 0, st>>>(src, dst, static_cast<int32_t>(n), s);
  } else {
    CopyKernel<S, D, int64_t><<<Blocks(n, th), th, 0, st>>>(src, dst, n, s);
  }
}

template <typename S>
cudaError_t CopyTo(const S* src, DType dt, void* dst, int64_t n, const Strided& s,
                   cudaStream_t st) {
  switch (dt) {
    case DType::kF32:
      LaunchCopy(src, static_cast<float*>(dst), n, s, st);
      break;
    case DType::kF16:
      LaunchCopy(src, static_cast<__half*>(dst), n, s, st);
      break;
    case DType::kBF16:
      LaunchCopy(src, static_cast<__nv_bfloat16*>(dst), n, s, st);
      break;
  }
  return cudaGetLastError();
}

__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One warp per row (inner == 1), the row held in registers (cols <= 32 * kPer): one read.
template <typename T, int kPer>
__global__ void SoftmaxRows(const T* x, T* y, int64_t rows, int64_t cols, bool log) {
  const int64_t row = blockIdx.x * int64_t{blockDim.x / 32} + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* xr = x + row * cols;
  T* yr = y + row * cols;
  float v[kPer];
  float m = -INFINITY;
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    const int64_t j = lane + 32 * k;
    v[k] = j < cols ? Load(xr, j) : -INFINITY;
    m = fmaxf(m, v[k]);
  }
  m = WarpMax(m);
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    v[k] = v[k] - m;
    s += lane + 32 * k < cols ? expf(v[k]) : 0.f;
  }
  s = WarpSum(s);
  const float ls = logf(s), inv = 1.f / s;
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    const int64_t j = lane + 32 * k;
    if (j < cols) Store(yr, j, log ? v[k] - ls : expf(v[k]) * inv);
  }
}

// One warp per row of any length (three passes over global memory).
template <typename T>
__global__ void SoftmaxLongRows(const T* x, T* y, int64_t rows, int64_t cols, bool log) {
  const int64_t row = blockIdx.x * int64_t{blockDim.x / 32} + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* xr = x + row * cols;
  T* yr = y + row * cols;
  float m = -INFINITY;
  for (int64_t j = lane; j < cols; j += 32) m = fmaxf(m, Load(xr, j));
  m = WarpMax(m);
  float s = 0.f;
  for (int64_t j = lane; j < cols; j += 32) s += expf(Load(xr, j) - m);
  s = WarpSum(s);
  const float ls = logf(s), inv = 1.f / s;
  for (int64_t j = lane; j < cols; j += 32) {
    const float e = Load(xr, j) - m;
    Store(yr, j, log ? e - ls : expf(e) * inv);
  }
}

// One thread per (outer, inner) pair.
template <typename T>
__global__ void SoftmaxStrided(const T* x, T* y, int64_t outer, int64_t axis, int64_t inner,
                               bool log) {
  const int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (t >= outer * inner) return;
  const int64_t o = t / inner, in = t % inner;
  const T* xr = x + o * axis * inner + in;
  T* yr = y + o * axis * inner + in;
  float m = -INFINITY;
  for (int64_t j = 0; j < axis; ++j) m = fmaxf(m, Load(xr, j * inner));
  float s = 0.f;
  for (int64_t j = 0; j < axis; ++j) s += expf(Load(xr, j * inner) - m);
  const float ls = logf(s), inv = 1.f / s;
  for (int64_t j = 0; j < axis; ++j) {
    const float e = Load(xr, j * inner) - m;
    Store(yr, j * inner, log ? e - ls : expf(e) * inv);
  }
}

// One warp per row: mean, then variance of (x - mean), then the normalized output.
template <typename T>
__global__ void LayerNormRows(const T* x, const T* scale, const T* bias, T* y, int64_t rows,
                              int64_t cols, float eps) {
  const int64_t row = blockIdx.x * int64_t{blockDim.x / 32} + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* xr = x + row * cols;
  T* yr = y + row * cols;
  float s = 0.f;
  for (int64_t j = lane; j < cols; j += 32) s += Load(xr, j);
  const float mean = WarpSum(s) / static_cast<float>(cols);
  float v = 0.f;
  for (int64_t j = lane; j < cols; j += 32) {
    const float d = Load(xr, j) - mean;
    v += d * d;
  }
  const float rstd = rsqrtf(WarpSum(v) / static_cast<float>(cols) + eps);
  for (int64_t j = lane; j < cols; j += 32) {
    float o = (Load(xr, j) - mean) * rstd * Load(scale, j);
    if (bias != nullptr) o += Load(bias, j);
    Store(yr, j, o);
  }
}

}  // namespace

cudaError_t RunChain(DType t, const void* x, void* y, int64_t n, const Chain& c, cudaStream_t s) {
  const int th = 256;
  const int blocks = Blocks(n, th);
  switch (t) {
    case DType::kF32:
      LaunchChain(static_cast<const float*>(x), static_cast<float*>(y), n, c, blocks, th, s);
      break;
    case DType::kF16:
      LaunchChain(static_cast<const __half*>(x), static_cast<__half*>(y), n, c, blocks, th, s);
      break;
    case DType::kBF16:
      LaunchChain(static_cast<const __nv_bfloat16*>(x), static_cast<__nv_bfloat16*>(y), n, c,
                  blocks, th, s);
      break;
  }
  return cudaGetLastError();
}

cudaError_t StridedCopy(DType src_t, const void* src, DType dst_t, void* dst, const Strided& s,
                        cudaStream_t stream) {
  int64_t n = 1;
  for (int i = 0; i < s.rank; ++i) n *= s.dims[i];
  if (n == 0) return cudaSuccess;
  // Same type with a contiguous innermost run of whole 16-byte units on both sides (BERT's
  // head transposes): copy uint4 units, eight halves per index computation.
  const int es = SizeOf(src_t);
  const int r = s.rank - 1;
  if (src_t == dst_t && s.src[r] == 1 && s.dst[r] == 1 && (s.dims[r] * es) % 16 == 0 &&
      reinterpret_cast<uintptr_t>(src) % 16 == 0 && reinterpret_cast<uintptr_t>(dst) % 16 == 0) {
    const int64_t vec = 16 / es;
    bool ok = true;
    Strided v = s;
    for (int i = 0; i < r; ++i) {
      if (s.src[i] % vec != 0 || s.dst[i] % vec != 0) ok = false;
      v.src[i] = s.src[i] / vec;
      v.dst[i] = s.dst[i] / vec;
    }
    v.dims[r] = s.dims[r] / vec;
    if (ok) {
      const int64_t nv = n / vec;
      const int th = 256;
      if (nv < (int64_t{1} << 30)) {
        RawCopyKernel<int32_t><<<Blocks(nv, th), th, 0, stream>>>(
            static_cast<const uint4*>(src), static_cast<uint4*>(dst), static_cast<int32_t>(nv), v);
      } else {
        RawCopyKernel<int64_t><<<Blocks(nv, th), th, 0, stream>>>(static_cast<const uint4*>(src),
                                                                  static_cast<uint4*>(dst), nv, v);
      }
      return cudaGetLastError();
    }
  }
  switch (src_t) {
    case DType::kF32:
      return CopyTo(static_cast<const float*>(src), dst_t, dst, n, s, stream);
    case DType::kF16:
      return CopyTo(static_cast<const __half*>(src), dst_t, dst, n, s, stream);
    case DType::kBF16:
      return CopyTo(static_cast<const __nv_bfloat16*>(src), dst_t, dst, n, s, stream);
  }
  return cudaErrorInvalidValue;
}

template <typename T>
cudaError_t SoftmaxT(const T* x, T* y, int64_t outer, int64_t axis, int64_t inner, bool log,
                     cudaStream_t s) {
  if (inner == 1) {
    const int warps = 8;
    const int64_t blocks = (outer + warps - 1) / warps;
    const unsigned b = static_cast<unsigned>(blocks);
    if (axis <= 128) {
      SoftmaxRows<T, 4><<<b, warps * 32, 0, s>>>(x, y, outer, axis, log);
    } else if (axis <= 1024) {
      SoftmaxRows<T, 32><<<b, warps * 32, 0, s>>>(x, y, outer, axis, log);
    } else {
      SoftmaxLongRows<<<b, warps * 32, 0, s>>>(x, y, outer, axis, log);
    }
  } else {
    const int64_t n = outer * inner;
    SoftmaxStrided<<<static_cast<unsigned>((n + 255) / 256), 256, 0, s>>>(x, y, outer, axis, inner,
                                                                          log);
  }
  return cudaGetLastError();
}

cudaError_t Softmax(DType t, const void* x, void* y, int64_t outer, int64_t axis, int64_t inner,
                    bool log, cudaStream_t s) {
  switch (t) {
    case DType::kF32:
      return SoftmaxT(static_cast<const float*>(x), static_cast<float*>(y), outer, axis, inner, log,
                      s);
    case DType::kF16:
      return SoftmaxT(static_cast<const __half*>(x), static_cast<__half*>(y), outer, axis, inner,
                      log, s);
    case DType::kBF16:
      return SoftmaxT(static_cast<const __nv_bfloat16*>(x), static_cast<__nv_bfloat16*>(y), outer,
                      axis, inner, log, s);
  }
  return cudaErrorInvalidValue;
}

template <typename T>
cudaError_t LayerNormT(const T* x, const T* scale, const T* bias, T* y, int64_t rows, int64_t cols,
                       float eps, cudaStream_t s) {
  const int warps = 8;
  const int64_t blocks = (rows + warps - 1) / warps;
  LayerNormRows<<<static_cast<unsigned>(blocks), warps * 32, 0, s>>>(x, scale, bias, y, rows, cols,
                                                                     eps);
  return cudaGetLastError();
}

cudaError_t LayerNorm(DType t, const void* x, const void* scale, const void* bias, void* y,
                      int64_t rows, int64_t cols, float eps, cudaStream_t s) {
  switch (t) {
    case DType::kF32:
      return LayerNormT(static_cast<const float*>(x), static_cast<const float*>(scale),
                        static_cast<const float*>(bias), static_cast<float*>(y), rows, cols, eps,
                        s);
    case DType::kF16:
      return LayerNormT(static_cast<const __half*>(x), static_cast<const __half*>(scale),
                        static_cast<const __half*>(bias), static_cast<__half*>(y), rows, cols, eps,
                        s);
    case DType::kBF16:
      return LayerNormT(static_cast<const __nv_bfloat16*>(x),
                        static_cast<const __nv_bfloat16*>(scale),
                        static_cast<const __nv_bfloat16*>(bias), static_cast<__nv_bfloat16*>(y),
                        rows, cols, eps, s);
  }
  return cudaErrorInvalidValue;
}

namespace {
__global__ void SpinKernel(long long cycles) {
  const long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
}
}  // namespace

namespace {
// One block per output row; float4 copies when the width allows.
template <typename I>
__global__ void GatherRowsKernel(const I* idx, int64_t n, const float* table, int64_t rows,
                                 int64_t width, float* out, unsigned long long* bad) {
  const int64_t r = blockIdx.x;
  if (r >= n) return;
  int64_t k = static_cast<int64_t>(idx[r]);
  if (k < 0) k += rows;
  float* o = out + r * width;
  const bool valid = k >= 0 && k < rows;
  if (!valid && bad != nullptr && threadIdx.x == 0)
    atomicCAS(bad, 0ull, static_cast<unsigned long long>(r) + 1);
  const float* src = table + (valid ? k : 0) * width;
  if ((width & 3) == 0) {
    const float4* s4 = reinterpret_cast<const float4*>(src);
    float4* o4 = reinterpret_cast<float4*>(o);
    for (int64_t j = threadIdx.x; j < width / 4; j += blockDim.x)
      o4[j] = valid ? s4[j] : make_float4(0.f, 0.f, 0.f, 0.f);
  } else {
    for (int64_t j = threadIdx.x; j < width; j += blockDim.x) o[j] = valid ? src[j] : 0.f;
  }
}
}  // namespace

cudaError_t GatherRows(const void* idx, bool idx64, int64_t n, const float* table, int64_t rows,
                       int64_t width, float* out, unsigned long long* bad, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  const int threads = width >= 512 ? 256 : 128;
  if (idx64) {
    GatherRowsKernel<<<static_cast<unsigned>(n), threads, 0, s>>>(
        static_cast<const int64_t*>(idx), n, table, rows, width, out, bad);
  } else {
    GatherRowsKernel<<<static_cast<unsigned>(n), threads, 0, s>>>(
        static_cast<const int32_t*>(idx), n, table, rows, width, out, bad);
  }
  return cudaGetLastError();
}

namespace {
__device__ __forceinline__ int8_t ToS8(float v) {
  return static_cast<int8_t>(fmaxf(-127.f, fminf(127.f, rintf(v))));
}
// Four elements per thread when n allows (the common case: NHWC tensors with C % 4 == 0).
template <typename T>
__global__ void QuantizeKernel(const T* x, int8_t* y, int64_t n, float scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if ((n & 3) == 0) {
    char4* y4 = reinterpret_cast<char4*>(y);
    for (int64_t i = i0; i < n / 4; i += stride) {
      char4 q;
      q.x = ToS8(Load(x, 4 * i) * scale);
      q.y = ToS8(Load(x, 4 * i + 1) * scale);
      q.z = ToS8(Load(x, 4 * i + 2) * scale);
      q.w = ToS8(Load(x, 4 * i + 3) * scale);
      y4[i] = q;
    }
  } else {
    for (int64_t i = i0; i < n; i += stride) y[i] = ToS8(Load(x, i) * scale);
  }
}
template <typename T>
__global__ void DequantizeKernel(const int8_t* x, T* y, int64_t n, float inv_scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if ((n & 3) == 0) {
    const char4* x4 = reinterpret_cast<const char4*>(x);
    for (int64_t i = i0; i < n / 4; i += stride) {
      const char4 q = x4[i];
      Store(y, 4 * i, q.x * inv_scale);
      Store(y, 4 * i + 1, q.y * inv_scale);
      Store(y, 4 * i + 2, q.z * inv_scale);
      Store(y, 4 * i + 3, q.w * inv_scale);
    }
  } else {
    for (int64_t i = i0; i < n; i += stride) Store(y, i, x[i] * inv_scale);
  }
}
unsigned ElementwiseBlocks(int64_t n) {
  const int64_t work = (n + 3) / 4;
  return static_cast<unsigned>(std::clamp<int64_t>((work + 255) / 256, 1, 65535));
}
}  // namespace

cudaError_t Quantize(DType t, const void* x, int8_t* y, int64_t n, float scale, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  const unsigned blocks = ElementwiseBlocks(n);
  switch (t) {
    case DType::kF32:
      QuantizeKernel<<<blocks, 256, 0, s>>>(static_cast<const float*>(x), y, n, scale);
      break;
    case DType::kF16:
      QuantizeKernel<<<blocks, 256, 0, s>>>(static_cast<const __half*>(x), y, n, scale);
      break;
    case DType::kBF16:
      QuantizeKernel<<<blocks, 256, 0, s>>>(static_cast<const __nv_bfloat16*>(x), y, n, scale);
      break;
  }
  return cudaGetLastError();
}

cudaError_t Dequantize(const int8_t* x, DType t, void* y, int64_t n, float inv_scale,
                       cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  const unsigned blocks = ElementwiseBlocks(n);
  switch (t) {
    case DType::kF32:
      DequantizeKernel<<<blocks, 256, 0, s>>>(x, static_cast<float*>(y), n, inv_scale);
      break;
    case DType::kF16:
      DequantizeKernel<<<blocks, 256, 0, s>>>(x, static_cast<__half*>(y), n, inv_scale);
      break;
    case DType::kBF16:
      DequantizeKernel<<<blocks, 256, 0, s>>>(x, static_cast<__nv_bfloat16*>(y), n, inv_scale);
      break;
  }
  return cudaGetLastError();
}

namespace {
__device__ __forceinline__ uint16_t Fp8x2(float a, float b) {
  return __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
}
// Eight elements per thread when n % 8 == 0 (8-byte stores), else one.
template <typename T>
__global__ void QuantizeFp8Kernel(const T* x, uint8_t* y, int64_t n, float scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if ((n & 7) == 0) {
    for (int64_t i = i0; i < n / 8; i += stride) {
      uint16_t q[4];
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        q[k] = Fp8x2(Load(x, 8 * i + 2 * k) * scale, Load(x, 8 * i + 2 * k + 1) * scale);
      }
      uint2 raw;
      memcpy(&raw, q, 8);
      reinterpret_cast<uint2*>(y)[i] = raw;
    }
  } else {
    for (int64_t i = i0; i < n; i += stride) {
      y[i] = __nv_cvt_float_to_fp8(Load(x, i) * scale, __NV_SATFINITE, __NV_E4M3);
    }
  }
}
}  // namespace

cudaError_t QuantizeFp8(DType t, const void* x, void* y, int64_t n, float scale, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  const unsigned blocks = ElementwiseBlocks(n);
  uint8_t* q = static_cast<uint8_t*>(y);
  switch (t) {
    case DType::kF32:
      QuantizeFp8Kernel<<<blocks, 256, 0, s>>>(static_cast<const float*>(x), q, n, scale);
      break;
    case DType::kF16:
      QuantizeFp8Kernel<<<blocks, 256, 0, s>>>(static_cast<const __half*>(x), q, n, scale);
      break;
    case DType::kBF16:
      QuantizeFp8Kernel<<<blocks, 256, 0, s>>>(static_cast<const __nv_bfloat16*>(x), q, n, scale);
      break;
  }
  return cudaGetLastError();
}

namespace {
__device__ __forceinline__ float ToF(float v) { return v; }
__device__ __forceinline__ float ToF(__half v) { return __half2float(v); }
__device__ __forceinline__ float ToF(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float ToF(int8_t v) { return static_cast<float>(v); }
__device__ __forceinline__ void Put(float* p, float v) { *p = v; }
__device__ __forceinline__ void Put(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void Put(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void Put(int8_t* p, float v) { *p = ToS8(v); }

// One thread per output pixel and group of V channels (V * sizeof(TI) == 16 when vectorized).
template <typename TI, typename TO, int V>
__global__ void MaxPoolKernel(const TI* x, TO* y, PoolArgs a, float scale) {
  const int64_t groups = a.c / V;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.n * a.oh * a.ow * groups) return;
  const int64_t g = i % groups;
  int64_t r = i / groups;
  const int64_t ox = r % a.ow;
  r /= a.ow;
  const int64_t oy = r % a.oh, n = r / a.oh;
  float m[V];
#pragma unroll
  for (int v = 0; v < V; ++v) m[v] = -INFINITY;
  for (int ky = 0; ky < a.kh; ++ky) {
    const int64_t iy = oy * a.sh - a.ph + ky;
    if (iy < 0 || iy >= a.h) continue;
    for (int kx = 0; kx < a.kw; ++kx) {
      const int64_t ix = ox * a.sw - a.pw + kx;
      if (ix < 0 || ix >= a.w) continue;
      const TI* p = x + ((n * a.h + iy) * a.w + ix) * a.c + g * V;
      TI vals[V];
      if constexpr (sizeof(TI) * V == 16) {
        const uint4 raw = *reinterpret_cast<const uint4*>(p);
        memcpy(vals, &raw, 16);
      } else {
#pragma unroll
        for (int v = 0; v < V; ++v) vals[v] = p[v];
      }
#pragma unroll
      for (int v = 0; v < V; ++v) m[v] = fmaxf(m[v], ToF(vals[v]));
    }
  }
  TO out[V];
#pragma unroll
  for (int v = 0; v < V; ++v) Put(&out[v], m[v] * scale);
  TO* q = y + ((n * a.oh + oy) * a.ow + ox) * a.c + g * V;
  if constexpr (sizeof(TO) * V == 16) {
    uint4 raw;
    memcpy(&raw, out, 16);
    *reinterpret_cast<uint4*>(q) = raw;
  } else if constexpr (sizeof(TO) * V == 8) {
    uint2 raw;
    memcpy(&raw, out, 8);
    *reinterpret_cast<uint2*>(q) = raw;
  } else {
#pragma unroll
    for (int v = 0; v < V; ++v) q[v] = out[v];
  }
}

template <typename TI, typename TO>
cudaError_t LaunchMaxPool(const void* x, void* y, const PoolArgs& a, float scale, cudaStream_t s) {
  constexpr int kV = 16 / sizeof(TI);
  const bool vec = a.c % kV == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(y) % (sizeof(TO) * kV) == 0;
  const int64_t n = a.n * a.oh * a.ow * (vec ? a.c / kV : a.c);
  if (n <= 0) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>((n + 255) / 256);
  if (vec) {
    MaxPoolKernel<TI, TO, kV>
        <<<blocks, 256, 0, s>>>(static_cast<const TI*>(x), static_cast<TO*>(y), a, scale);
  } else {
    MaxPoolKernel<TI, TO, 1>
        <<<blocks, 256, 0, s>>>(static_cast<const TI*>(x), static_cast<TO*>(y), a, scale);
  }
  return cudaGetLastError();
}

template <typename TI>
cudaError_t MaxPoolFrom(const void* x, bool out_int8, float scale, void* y, const PoolArgs& a,
                        cudaStream_t s) {
  if (out_int8) return LaunchMaxPool<TI, int8_t>(x, y, a, scale, s);
  return LaunchMaxPool<TI, TI>(x, y, a, 1.f, s);
}
}  // namespace

cudaError_t MaxPoolNhwc(DType t, bool in_int8, const void* x, bool out_int8, float out_scale,
                        void* y, const PoolArgs& a, cudaStream_t s) {
  if (in_int8) return LaunchMaxPool<int8_t, int8_t>(x, y, a, out_int8 ? out_scale : 1.f, s);
  switch (t) {
    case DType::kF32:
      return MaxPoolFrom<float>(x, out_int8, out_scale, y, a, s);
    case DType::kF16:
      return MaxPoolFrom<__half>(x, out_int8, out_scale, y, a, s);
    case DType::kBF16:
      return MaxPoolFrom<__nv_bfloat16>(x, out_int8, out_scale, y, a, s);
  }
  return cudaErrorInvalidValue;
}

namespace {
template <typename T>
__global__ void NchwToNhwcKernel(const float* x, T* y, int64_t n, int64_t c, int64_t hw) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * hw) return;
  const int64_t b = i / hw, p = i - b * hw;
  const float* src = x + b * c * hw + p;
  T* dst = y + i * c;
  for (int64_t k = 0; k < c; ++k) Store(dst, k, src[k * hw]);
}
}  // namespace

cudaError_t NchwToNhwc(const float* x, DType t, void* y, int64_t n, int64_t c, int64_t hw,
                       cudaStream_t s) {
  const int64_t total = n * hw;
  if (total <= 0) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>((total + 255) / 256);
  switch (t) {
    case DType::kF32:
      NchwToNhwcKernel<<<blocks, 256, 0, s>>>(x, static_cast<float*>(y), n, c, hw);
      break;
    case DType::kF16:
      NchwToNhwcKernel<<<blocks, 256, 0, s>>>(x, static_cast<__half*>(y), n, c, hw);
      break;
    case DType::kBF16:
      NchwToNhwcKernel<<<blocks, 256, 0, s>>>(x, static_cast<__nv_bfloat16*>(y), n, c, hw);
      break;
  }
  return cudaGetLastError();
}

cudaError_t Spin(double us, cudaStream_t s) {
  int khz = 0;
  int dev = 0;
  cudaGetDevice(&dev);
  if (cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, dev) != cudaSuccess || khz <= 0)
    khz = 2000000;
  SpinKernel<<<1, 1, 0, s>>>(static_cast<long long>(us * khz / 1000.0));
  return cudaGetLastError();
}

}  // namespace kiln::cuda
