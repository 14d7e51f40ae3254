// kiln's INT8 1x1 convolution (int8_conv.h). A block of 4 or 8 warps computes a 128 x 64 or
// 128 x 128 tile of the [pixels, out channels] output as an int8 GEMM: the x rows (one per
// output pixel, strided for stride-2 projections) and the w rows stream through shared memory
// in 64-channel slices, double buffered by cp.async; each warp takes 64 x 32 of the tile with
// mma.sync m16n8k32 (s8 x s8 -> s32, fragments by ldmatrix from rows padded to 80 bytes, which
// makes the loads conflict-free). The residual tile is fetched into shared memory with the
// first slice. The epilogue (per-channel scale and bias, the scaled residual, ReLU, rounding)
// either goes through a shared int32 tile so that each thread writes 16 consecutive channels,
// or runs from the registers with the weights' rows permuted so that each lane holds 8
// consecutive channels. Most of these layers are memory-bound: what matters is how many bytes
// are in flight and how whole the accesses are.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "backends/cuda/int8_conv.h"
#include "backends/cuda/ptx.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBM = 128;       // output pixels per block
constexpr int kBK = 64;        // input channels per slice
constexpr int kLd = kBK + 16;  // shared row stride of x / w slices (bytes)

// BN output channels per block of 2 BN threads (warps of 64 x 32: 2 x BN / 32 of them).
template <int BN, bool kPerm>
struct alignas(16) Smem {
  static constexpr int kCLd = BN + 8;   // shared row stride of the int32 accumulator tile
  static constexpr int kZLd = BN + 16;  // shared row stride of the residual tile (bytes)
  union {
    struct {
      int8_t a[2][kBM * kLd];
      int8_t b[2][BN * kLd];
    } in;
    int32_t c[kPerm ? 4 : kBM * kCLd];  // the permuted form needs no accumulator tile
  };
  int8_t z[kBM * kZLd];  // the residual tile, fetched with the first slice
};

__device__ __forceinline__ void MmaS8(int32_t* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <typename T>
__device__ __forceinline__ T FromF(float v);
template <>
__device__ __forceinline__ __half FromF<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromF<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

__device__ __forceinline__ int8_t SatS8(float v) {
  return static_cast<int8_t>(max(-128, min(127, __float2int_rn(v))));
}

struct Shape {
  int64_t rows;  // output pixels
  int64_t ohw, ow, h, w, c, k;
  int stride;
};

// OutT: int8_t (saturated) or a 16-bit float type.
// kPerm: the epilogue runs from the accumulators, the weights permuted so that each lane holds
// 8 consecutive channels (8- or 16-byte stores); otherwise it goes through a shared int32 tile
// (16 consecutive channels per thread, 16-byte stores).
template <int BN, bool kPerm, typename OutT>
__global__ void __launch_bounds__(2 * BN, 256 / BN)
    Conv1x1S8(const int8_t* __restrict__ x, const int8_t* __restrict__ w,
              const float* __restrict__ alpha, const float* __restrict__ beta,
              const int8_t* __restrict__ z, float gamma, bool relu, Shape s, OutT* __restrict__ y) {
  using Sm = Smem<BN, kPerm>;
  constexpr int kT = 2 * BN;        // threads
  constexpr int kRowStep = kT / 4;  // x / w rows per copy pass (4 chunks of 16 bytes a row)
  constexpr int kXPass = kBM / kRowStep;
  constexpr int kWPass = BN / kRowStep;
  constexpr int kZChunks = BN / 16;  // 16-byte chunks per residual / output row
  constexpr int kWarpsN = BN / 32;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Sm& sm = *reinterpret_cast<Sm*>(smem_raw);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t ntiles = s.k / BN;
  const int64_t m0 = (blockIdx.x / ntiles) * kBM;
  const int64_t n0 = (blockIdx.x % ntiles) * BN;

  // This thread's copies: x rows tid / 4 + kRowStep j and w rows likewise, 16 bytes at column
  // (tid % 4) * 16 of each slice.
  const int col = (tid & 3) * 16;
  const int8_t* xa[kXPass];
  bool xv[kXPass];
#pragma unroll
  for (int j = 0; j < kXPass; ++j) {
    const int64_t m = m0 + tid / 4 + kRowStep * j;
    xv[j] = m < s.rows;
    int64_t pix = m;
    if (s.stride != 1 && xv[j]) {
      const int64_t img = m / s.ohw, r = m % s.ohw;
      const int64_t oh = r / s.ow, ow = r % s.ow;
      pix = (img * s.h + oh * s.stride) * s.w + ow * s.stride;
    }
    xa[j] = x + (xv[j] ? pix : 0) * s.c + col;
  }
  const int8_t* wa[kWPass];
#pragma unroll
  for (int j = 0; j < kWPass; ++j) wa[j] = w + (n0 + tid / 4 + kRowStep * j) * s.c + col;

  auto load = [&](int stage, int64_t k0) {
#pragma unroll
    for (int j = 0; j < kXPass; ++j) {
      CpAsync16(&sm.in.a[stage][(tid / 4 + kRowStep * j) * kLd + col], xa[j] + k0, xv[j]);
    }
#pragma unroll
    for (int j = 0; j < kWPass; ++j) {
      CpAsync16(&sm.in.b[stage][(tid / 4 + kRowStep * j) * kLd + col], wa[j] + k0, true);
    }
  };

  // Warp (wm, wn) computes rows [64 wm, 64 wm + 64) and columns [32 wn, 32 wn + 32).
  const int wm = warp / kWarpsN, wn = warp % kWarpsN;
  int32_t acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

  // ldmatrix addressing: A (16 x 32 bytes) as four 8 x 16-byte matrices — rows 0-7 / 8-15,
  // bytes 0-15 / 16-31 — gives a0..a3 of m16n8k32; B rows are output channels (w is [k, c],
  // i.e. the "col" operand): matrices (n 0-7, bytes 0-15), (n 0-7, 16-31), (n 8-15, 0-15),
  // (n 8-15, 16-31) give b0, b1 of two 8-channel groups.
  const int a_row = (lane & 7) + ((lane >> 3) & 1) * 8, a_col = (lane >> 4) * 16;
  const int b_row = (lane & 7) + (lane >> 4) * 8, b_col = ((lane >> 3) & 1) * 16;

  // The residual tile streams in with the first slice, so the epilogue of this memory-bound
  // layer reads it from shared memory instead of waiting on global loads one pass at a time.
  const int zcol = (tid % kZChunks) * 16;
  const int64_t slices = s.c / kBK;
  load(0, 0);
  if (z != nullptr) {
#pragma unroll
    for (int j = 0; j < kBM * kZChunks / kT; ++j) {
      const int r = tid / kZChunks + (kT / kZChunks) * j;
      const int64_t m = m0 + r;
      CpAsync16(&sm.z[r * Sm::kZLd + zcol], z + (m < s.rows ? m : 0) * s.k + n0 + zcol, m < s.rows);
    }
  }
  CpAsyncCommit();
  for (int64_t kt = 0; kt < slices; ++kt) {
    const int st = static_cast<int>(kt & 1);
    if (kt + 1 < slices) load(st ^ 1, (kt + 1) * kBK);
    CpAsyncCommit();
    CpAsyncWait<1>();
    __syncthreads();
    const int8_t* as = sm.in.a[st];
    const int8_t* bs = sm.in.b[st];
#pragma unroll
    for (int ks = 0; ks < kBK; ks += 32) {
      uint32_t af[4][4], bf[2][4];
#pragma unroll
      for (int i = 0; i < 4; ++i) Ldsm4(af[i], as + (wm * 64 + i * 16 + a_row) * kLd + ks + a_col);
#pragma unroll
      for (int j = 0; j < 2; ++j) Ldsm4(bf[j], bs + (wn * 32 + j * 16 + b_row) * kLd + ks + b_col);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
          MmaS8(acc[i][j], af[i], bf[j >> 1][(j & 1) * 2], bf[j >> 1][(j & 1) * 2 + 1]);
    }
    __syncthreads();
  }

  if constexpr (kPerm) {
    // The weights' rows were permuted (PermuteInt8Conv1x1Weights) so that within each 32-
    // channel group the accumulator pairs this lane holds, columns 8 j + 2 t, + 1 (j < 4),
    // are channels 8 t + 2 j, + 1: 8 consecutive channels of a pixel per lane and row.
    const int g = lane >> 2, t = lane & 3;
    const int64_t nb = n0 + wn * 32 + 8 * t;
    float al[8], be[8];
#pragma unroll
    for (int q = 0; q < 2; ++q) {
      const float4 a4 = __ldg(reinterpret_cast<const float4*>(alpha + nb) + q);
      const float4 b4 = __ldg(reinterpret_cast<const float4*>(beta + nb) + q);
      al[4 * q] = a4.x, al[4 * q + 1] = a4.y, al[4 * q + 2] = a4.z, al[4 * q + 3] = a4.w;
      be[4 * q] = b4.x, be[4 * q + 1] = b4.y, be[4 * q + 2] = b4.z, be[4 * q + 3] = b4.w;
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = wm * 64 + i * 16 + g + 8 * h;
        const int64_t m = m0 + r;
        if (m >= s.rows) continue;
        float v[8];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          v[2 * j] = static_cast<float>(acc[i][j][2 * h]) * al[2 * j] + be[2 * j];
          v[2 * j + 1] = static_cast<float>(acc[i][j][2 * h + 1]) * al[2 * j + 1] + be[2 * j + 1];
        }
        if (z != nullptr) {
          const int2 z8 = *reinterpret_cast<const int2*>(&sm.z[r * Sm::kZLd + wn * 32 + 8 * t]);
          const int8_t* zb = reinterpret_cast<const int8_t*>(&z8);
#pragma unroll
          for (int e = 0; e < 8; ++e) v[e] += gamma * static_cast<float>(zb[e]);
        }
        if (relu) {
#pragma unroll
          for (int e = 0; e < 8; ++e) v[e] = fmaxf(v[e], 0.f);
        }
        if constexpr (sizeof(OutT) == 1) {
          int2 o;
          int8_t* ob = reinterpret_cast<int8_t*>(&o);
#pragma unroll
          for (int e = 0; e < 8; ++e) ob[e] = SatS8(v[e]);
          *reinterpret_cast<int2*>(y + m * s.k + nb) = o;
        } else {
          int4 o;
          OutT* ob = reinterpret_cast<OutT*>(&o);
#pragma unroll
          for (int e = 0; e < 8; ++e) ob[e] = FromF<OutT>(v[e]);
          *reinterpret_cast<int4*>(y + m * s.k + nb) = o;
        }
      }
    return;
  }

  // Accumulators -> shared (c0, c1 at row g, columns 2 t, 2 t + 1; c2, c3 at row g + 8).
  {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int r = wm * 64 + i * 16 + g, cc = wn * 32 + j * 8 + 2 * t;
        *reinterpret_cast<int2*>(&sm.c[r * Sm::kCLd + cc]) = make_int2(acc[i][j][0], acc[i][j][1]);
        *reinterpret_cast<int2*>(&sm.c[(r + 8) * Sm::kCLd + cc]) =
            make_int2(acc[i][j][2], acc[i][j][3]);
      }
  }
  __syncthreads();

  // Epilogue: 16 consecutive channels of one pixel per thread and pass (a row of BN channels is
  // BN / 16 threads, so a warp's stores cover whole rows of the tile).
  float al[16], be[16];
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const float4 a4 = __ldg(reinterpret_cast<const float4*>(alpha + n0 + zcol) + q);
    const float4 b4 = __ldg(reinterpret_cast<const float4*>(beta + n0 + zcol) + q);
    al[4 * q] = a4.x, al[4 * q + 1] = a4.y, al[4 * q + 2] = a4.z, al[4 * q + 3] = a4.w;
    be[4 * q] = b4.x, be[4 * q + 1] = b4.y, be[4 * q + 2] = b4.z, be[4 * q + 3] = b4.w;
  }
#pragma unroll
  for (int p = 0; p < kBM * kZChunks / kT; ++p) {
    const int r = tid / kZChunks + (kT / kZChunks) * p;
    const int64_t m = m0 + r;
    if (m >= s.rows) break;
    float v[16];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int4 c4 = *reinterpret_cast<const int4*>(&sm.c[r * Sm::kCLd + zcol + 4 * q]);
      v[4 * q] = static_cast<float>(c4.x) * al[4 * q] + be[4 * q];
      v[4 * q + 1] = static_cast<float>(c4.y) * al[4 * q + 1] + be[4 * q + 1];
      v[4 * q + 2] = static_cast<float>(c4.z) * al[4 * q + 2] + be[4 * q + 2];
      v[4 * q + 3] = static_cast<float>(c4.w) * al[4 * q + 3] + be[4 * q + 3];
    }
    const int64_t off = m * s.k + n0 + zcol;
    if (z != nullptr) {
      const int4 z4 = *reinterpret_cast<const int4*>(&sm.z[r * Sm::kZLd + zcol]);
      const int8_t* zb = reinterpret_cast<const int8_t*>(&z4);
#pragma unroll
      for (int e = 0; e < 16; ++e) v[e] += gamma * static_cast<float>(zb[e]);
    }
    if (relu) {
#pragma unroll
      for (int e = 0; e < 16; ++e) v[e] = fmaxf(v[e], 0.f);
    }
    if constexpr (sizeof(OutT) == 1) {
      int4 o;
      int8_t* ob = reinterpret_cast<int8_t*>(&o);
#pragma unroll
      for (int e = 0; e < 16; ++e) ob[e] = SatS8(v[e]);
      *reinterpret_cast<int4*>(y + off) = o;
    } else {
      int4 o[2];
      OutT* ob = reinterpret_cast<OutT*>(o);
#pragma unroll
      for (int e = 0; e < 16; ++e) ob[e] = FromF<OutT>(v[e]);
      reinterpret_cast<int4*>(y + off)[0] = o[0];
      reinterpret_cast<int4*>(y + off)[1] = o[1];
    }
  }
}

template <int BN, bool kPerm, typename OutT>
cudaError_t Launch3(const Int8Conv1x1Args& a, const Shape& s, const int8_t* w, cudaStream_t st) {
  constexpr int kSmem = static_cast<int>(sizeof(Smem<BN, kPerm>));
  // Above 48 KiB a kernel must opt in; the attribute belongs to the current device's context,
  // so it is set per launch (a host-side call; engines replay their launches as CUDA graphs).
  if (kSmem > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(Conv1x1S8<BN, kPerm, OutT>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
    if (e != cudaSuccess) return e;
  }
  const int64_t blocks = (s.rows + kBM - 1) / kBM * (a.k / BN);
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  Conv1x1S8<BN, kPerm, OutT><<<static_cast<unsigned>(blocks), 2 * BN, kSmem, st>>>(
      a.x, w, a.alpha, a.beta, a.z, a.gamma, a.relu, s, static_cast<OutT*>(a.y));
  return cudaGetLastError();
}

template <int BN, bool kPerm>
cudaError_t Launch(const Int8Conv1x1Args& a, const Shape& s, cudaStream_t stream) {
  const int8_t* w = kPerm ? a.w_perm : a.w;
  if (w == nullptr || a.k % BN != 0) return cudaErrorInvalidValue;
  if (a.out_int8) return Launch3<BN, kPerm, int8_t>(a, s, w, stream);
  if (a.out_t == DType::kF16) return Launch3<BN, kPerm, __half>(a, s, w, stream);
  if (a.out_t == DType::kBF16) return Launch3<BN, kPerm, __nv_bfloat16>(a, s, w, stream);
  return cudaErrorInvalidValue;
}

}  // namespace

void PermuteInt8Conv1x1Weights(const int8_t* w, int64_t k, int64_t c, int8_t* out) {
  // Row L = 8 j + 2 t + e of each 32-row group takes channel 8 t + 2 j + e.
  for (int64_t base = 0; base < k; base += 32) {
    for (int j = 0; j < 4; ++j)
      for (int t = 0; t < 4; ++t)
        for (int e = 0; e < 2; ++e) {
          const int64_t l = base + 8 * j + 2 * t + e, p = base + 8 * t + 2 * j + e;
          for (int64_t i = 0; i < c; ++i) out[l * c + i] = w[p * c + i];
        }
  }
}

bool Int8Conv1x1Supported(int64_t c, int64_t k) {
  return c > 0 && k > 0 && c % kBK == 0 && k % 64 == 0;
}

cudaError_t Int8Conv1x1(const Int8Conv1x1Args& a, cudaStream_t stream) {
  if (!Int8Conv1x1Supported(a.c, a.k) || a.stride < 1 || a.n <= 0 || a.h <= 0 || a.w_ <= 0) {
    return cudaErrorInvalidValue;
  }
  Shape s;
  const int64_t oh = (a.h - 1) / a.stride + 1, ow = (a.w_ - 1) / a.stride + 1;
  s.ohw = oh * ow;
  s.ow = ow;
  s.rows = a.n * s.ohw;
  s.h = a.h;
  s.w = a.w_;
  s.c = a.c;
  s.k = a.k;
  s.stride = a.stride;
  switch (a.form) {
    case 0:
      return Launch<64, false>(a, s, stream);
    case 1:
      return Launch<64, true>(a, s, stream);
    case 2:
      return Launch<128, false>(a, s, stream);
    case 3:
      return Launch<128, true>(a, s, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace kiln::cuda
