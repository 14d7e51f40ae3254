// Fused scaled-dot-product attention (attention.h): softmax(scale * Q K^T + mask) V in one
// kernel, in the manner of FlashAttention-2. A block of 4 or 8 warps takes 64 or 128 query rows
// of one (batch, head), 16 per warp; it walks the keys in tiles of 64, staged in shared memory by
// cp.async and double buffered (the next tile loads while this one is computed). Each
// warp keeps its Q fragments, its scores and its output accumulator in registers: Q K^T and
// P V are tensor-core mma.sync m16n8k16 instructions (FP16 / BF16 in, FP32 accumulate), the
// scores' accumulator layout is reused as the A operand of P V, and the softmax runs online
// (running row max and sum, the accumulator rescaled when the max grows), so scores and
// probabilities never leave the registers.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "backends/cuda/attention.h"
#include "backends/cuda/ptx.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBN = 64;  // keys per tile; a block of W warps takes 16 * W query rows

__device__ __forceinline__ float ToF(__half v) { return __half2float(v); }
__device__ __forceinline__ float ToF(__nv_bfloat16 v) { return __bfloat162float(v); }

// Two floats as one 32-bit register of the storage type (lo in the low half).
template <typename T>
__device__ __forceinline__ uint32_t Pack(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t Pack<__half>(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t Pack<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

// c += a (16x16, row-major fragment) * b (16x8, column fragment), FP32 accumulate.
template <typename T>
__device__ __forceinline__ void Mma(float* c, const uint32_t* a, const uint32_t* b);
template <>
__device__ __forceinline__ void Mma<__half>(float* c, const uint32_t* a, const uint32_t* b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <>
__device__ __forceinline__ void Mma<__nv_bfloat16>(float* c, const uint32_t* a, const uint32_t* b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Shared memory of one block of W warps in bytes: the Q tile (16 W rows) and two K and two V
// tiles (double buffered), row stride D + 8 elements (16-byte aligned rows, conflict-free
// fragment loads).
template <int D, int W>
constexpr int SmemBytes() {
  return (16 * W + 4 * kBN) * (D + 8) * 2;
}

// Rows [r0, r0 + R) of a [rows, D] matrix at `base` (row stride `rs` elements, unit column
// stride, 16-byte aligned rows) into shared memory (row stride D + 8), asynchronously; rows
// >= `rows` are zero.
template <typename T, int D, int R>
__device__ __forceinline__ void LoadTile(T* dst, const T* base, int64_t rs, int r0, int rows) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  for (int i = threadIdx.x; i < R * kChunks; i += blockDim.x) {
    const int r = i / kChunks, c = i % kChunks;
    const bool valid = r0 + r < rows;
    CpAsync16(dst + r * (D + 8) + c * 8, base + (valid ? (r0 + r) * rs + c * 8 : 0), valid);
  }
}

template <typename T, int D, int W>
__global__ void __launch_bounds__(W * 32) AttentionKernel(const AttentionArgs a) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int kBM = 16 * W;  // query rows per block
  constexpr int kTile = kBN * (D + 8);
  T* qs = reinterpret_cast<T*>(smem);
  T* kbuf = qs + kBM * (D + 8);  // two K tiles
  T* vbuf = kbuf + 2 * kTile;    // two V tiles

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;  // mma fragment coordinates: row group, thread in quad
  const int q0 = blockIdx.x * kBM;
  const int h = blockIdx.y, b = blockIdx.z;
  const T* q = static_cast<const T*>(a.q) + b * a.qs[0] + h * a.qs[1];
  const T* k = static_cast<const T*>(a.k) + b * a.ks[0] + h * a.ks[1];
  const T* v = static_cast<const T*>(a.v) + b * a.vs[0] + h * a.vs[1];
  const T* mask = static_cast<const T*>(a.mask);
  const int tiles = (a.sk + kBN - 1) / kBN;

  // Q and the first K / V tile in one group; each later tile is fetched while the previous
  // one is computed.
  LoadTile<T, D, kBM>(qs, q, a.qs[2], q0, a.sq);
  LoadTile<T, D, kBN>(kbuf, k, a.ks[2], 0, a.sk);
  LoadTile<T, D, kBN>(vbuf, v, a.vs[2], 0, a.sk);
  CpAsyncCommit();

  uint32_t qa[D / 16][4];
  float o[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  // Per thread: rows g (index 0) and g + 8 (index 1) of the warp's 16.
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int qg[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};

  for (int it = 0; it < tiles; ++it) {
    const int k0 = it * kBN;
    if (it + 1 < tiles) {
      const int nb = (it + 1) & 1;
      LoadTile<T, D, kBN>(kbuf + nb * kTile, k, a.ks[2], k0 + kBN, a.sk);
      LoadTile<T, D, kBN>(vbuf + nb * kTile, v, a.vs[2], k0 + kBN, a.sk);
      CpAsyncCommit();
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    if (it == 0) {
      // Q A-fragments (16 rows x 16 of D each): rows g / g + 8, columns 2t, 2t + 1 (+ 8).
      const T* qw = qs + warp * 16 * (D + 8);
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const T* p0 = qw + g * (D + 8) + kk * 16 + 2 * t;
        const T* p1 = p0 + 8 * (D + 8);
        qa[kk][0] = *reinterpret_cast<const uint32_t*>(p0);
        qa[kk][1] = *reinterpret_cast<const uint32_t*>(p1);
        qa[kk][2] = *reinterpret_cast<const uint32_t*>(p0 + 8);
        qa[kk][3] = *reinterpret_cast<const uint32_t*>(p1 + 8);
      }
    }
    const T* ks = kbuf + (it & 1) * kTile;
    const T* vs = vbuf + (it & 1) * kTile;
    // S = Q K^T: 8 blocks of 8 keys; s[n][0..1] row g, s[n][2..3] row g + 8, keys
    // n * 8 + 2t, + 1.
    float s[kBN / 8][4];
#pragma unroll
    for (int n = 0; n < kBN / 8; ++n) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const T* kp = ks + (n * 8 + g) * (D + 8) + kk * 16 + 2 * t;
        const uint32_t kb[2] = {*reinterpret_cast<const uint32_t*>(kp),
                                *reinterpret_cast<const uint32_t*>(kp + 8)};
        Mma<T>(s[n], qa[kk], kb);
      }
    }
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < kBN / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int kg = k0 + n * 8 + 2 * t + (e & 1), r = e / 2;
        float x = -INFINITY;
        if (kg < a.sk) {
          x = s[n][e] * a.scale;
          if (mask != nullptr && qg[r] < a.sq)
            x += ToF(mask[b * a.ms[0] + h * a.ms[1] + qg[r] * a.ms[2] + kg * a.ms[3]]);
        }
        s[n][e] = x;
        mx[r] = fmaxf(mx[r], x);
      }
    }
    float corr[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m[r], mx[r]);
      // A row whose every score so far is -inf (fully masked) keeps p = 0, not NaN.
      corr[r] = m[r] == -INFINITY ? 0.f : __expf(m[r] - m_new);
      m[r] = m_new;
      l[r] *= corr[r];
    }
#pragma unroll
    for (int n = 0; n < kBN / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e / 2;
        const float p = m[r] == -INFINITY ? 0.f : __expf(s[n][e] - m[r]);
        s[n][e] = p;
        l[r] += p;  // this thread's part of the row sum; the quad adds up at the end
      }
    }
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      o[j][0] *= corr[0];
      o[j][1] *= corr[0];
      o[j][2] *= corr[1];
      o[j][3] *= corr[1];
    }
    // O += P V: the score blocks 2kk, 2kk + 1 are exactly the A fragment of keys
    // [16kk, 16kk + 16); ldmatrix .trans turns the row-major V tile into B fragments (keys
    // 2t, 2t + 1 (+ 8) of column g).
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) {
      const uint32_t pa[4] = {
          Pack<T>(s[2 * kk][0], s[2 * kk][1]), Pack<T>(s[2 * kk][2], s[2 * kk][3]),
          Pack<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]), Pack<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      const T* vrow = vs + (kk * 16 + (lane % 16)) * (D + 8);
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        uint32_t vb[2];
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                     : "=r"(vb[0]), "=r"(vb[1])
                     : "r"(SmemAddr(vrow + j * 8)));
        Mma<T>(o[j], pa, vb);
      }
    }
    __syncthreads();  // every warp is done with this tile's buffers before they are refilled
  }
  // O / l: rows g, g + 8, columns j * 8 + 2t, + 1 (one 32-bit store each).
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    if (qg[r] >= a.sq) continue;
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
    T* out = static_cast<T*>(a.o) + b * a.os[0] + h * a.os[1] + qg[r] * a.os[2] + 2 * t;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      *reinterpret_cast<uint32_t*>(out + j * 8) = Pack<T>(o[j][2 * r] * inv, o[j][2 * r + 1] * inv);
    }
  }
}

// a == nullptr: only raise the kernel's shared-memory limit (AttentionPrepare); else launch.
template <typename T, int D, int W>
cudaError_t Launch(const AttentionArgs* a, cudaStream_t s) {
  constexpr int kBytes = SmemBytes<D, W>();
  if (a == nullptr) {
    return cudaFuncSetAttribute(AttentionKernel<T, D, W>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes);
  }
  const dim3 grid((a->sq + 16 * W - 1) / (16 * W), a->h, a->b);
  AttentionKernel<T, D, W><<<grid, W * 32, kBytes, s>>>(*a);
  return cudaGetLastError();
}

// Blocks of 8 warps (128 query rows, so each block reads K and V for twice the rows) where
// the registers allow two such blocks per SM (head dim <= 64) and there are that many rows;
// KILN_CUDA_ATTENTION_WARPS=4 / 8 forces one.
int Warps(int64_t d, int sq) {
  static const int forced = [] {
    const char* e = std::getenv("KILN_CUDA_ATTENTION_WARPS");
    return e == nullptr ? 0 : std::atoi(e);
  }();
  if (forced == 4 || forced == 8) return forced;
  return d <= 64 && sq >= 128 ? 8 : 4;
}

template <typename T, int D>
cudaError_t LaunchD(const AttentionArgs* a, cudaStream_t s) {
  if (a == nullptr) {  // both block sizes
    const cudaError_t e = Launch<T, D, 4>(nullptr, s);
    return e != cudaSuccess ? e : Launch<T, D, 8>(nullptr, s);
  }
  return Warps(D, a->sq) == 8 ? Launch<T, D, 8>(a, s) : Launch<T, D, 4>(a, s);
}

template <typename T>
cudaError_t LaunchT(int64_t d, const AttentionArgs* a, cudaStream_t s) {
  switch (d) {
    case 16:
      return LaunchD<T, 16>(a, s);
    case 32:
      return LaunchD<T, 32>(a, s);
    case 64:
      return LaunchD<T, 64>(a, s);
    case 128:
      return LaunchD<T, 128>(a, s);
    default:
      return cudaErrorInvalidValue;
  }
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool AttentionSupported(DType t, int64_t d) {
  return (t == DType::kF16 || t == DType::kBF16) && (d == 16 || d == 32 || d == 64 || d == 128);
}

cudaError_t AttentionPrepare(DType t, int64_t d) {
  if (!AttentionSupported(t, d)) return cudaErrorInvalidValue;
  return t == DType::kF16 ? LaunchT<__half>(d, nullptr, nullptr)
                          : LaunchT<__nv_bfloat16>(d, nullptr, nullptr);
}

cudaError_t Attention(DType t, const AttentionArgs& a, cudaStream_t s) {
  if (!AttentionSupported(t, a.d) || a.b <= 0 || a.h <= 0 || a.sq <= 0 || a.sk <= 0 ||
      a.h > 65535 || a.b > 65535 || !Aligned16(a.q) || !Aligned16(a.k) || !Aligned16(a.v) ||
      !Aligned16(a.o)) {
    return cudaErrorInvalidValue;
  }
  for (int i = 0; i < 3; ++i) {
    if (a.qs[i] % 8 != 0 || a.ks[i] % 8 != 0 || a.vs[i] % 8 != 0 || a.os[i] % 8 != 0)
      return cudaErrorInvalidValue;
  }
  return t == DType::kF16 ? LaunchT<__half>(a.d, &a, s) : LaunchT<__nv_bfloat16>(a.d, &a, s);
}

}  // namespace kiln::cuda
