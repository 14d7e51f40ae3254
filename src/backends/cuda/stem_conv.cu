// kiln's image-stem kernel (stem_conv.h). Each block of 8 warps loops over tiles of the pooled
// output (7 x 8 pixels x 64 channels for a 3x3 stride-2 pool) and, per tile:
//   1. loads the float32 image patch the tile needs into shared memory as FP16, NHWC with the
//      channels padded so that every pixel starts at an even offset;
//   2. computes the convolution over the tile's pooled window (15 x 17 = 255 pixels, at most
//      256) as an implicit GEMM with mma.sync m16n8k16: the K dimension is the filter rows'
//      s * c values, each row contiguous in the patch, so an A fragment's pairs are 32-bit
//      shared loads at a per-lane offset table; the weights stay in shared memory for the
//      block's life (B fragments by ldmatrix);
//   3. adds the bias, applies ReLU and writes the FP16 results to a shared tile;
//   4. max-pools that tile and writes the pooled pixels as FP16 or int8, 8 channels a thread.
// The 7x7 x 3-channel filter packs into 160 K values (7 rows of 22, 147 of them non-zero)
// instead of 224 with each row padded to whole k16 steps.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "backends/cuda/ptx.cuh"
#include "backends/cuda/stem_conv.h"

namespace kiln::cuda {
namespace {

constexpr int kThreads = 256;  // 8 warps, each 32 of the 256 GEMM rows x 64 channels
constexpr int kM = 256;        // convolution pixels per tile
constexpr int kN = 64;         // output channels per block
constexpr int kMaxK = 160;     // packed filter values
constexpr int kStLd = kN + 8;  // shared row stride of the convolution tile (halves)

// The shape in 32-bit ints (what the kernel indexes with; StemConvSupported bounds it).
struct IShape {
  int n, c, h, w, k, r, s, stride, pad, oh, ow, pk, ps, pp, ph, pw;
};

// The derived geometry (host-computed, passed by value).
struct Geo {
  IShape g;
  int cp = 0;      // channels per patch pixel (c, or c + 1 to keep pixels at even offsets)
  int rowlen = 0;  // packed values per filter row (s * cp rounded up to even)
  int kc = 0;      // k16 steps
  int wld = 0;     // shared row stride of the weights (halves): kc * 16 + 8
  int tph = 0, tpw = 0, cth = 0, ctw = 0;  // pooled tile, and the convolution tile under it
  int pth = 0, ptw = 0, prs = 0;           // patch rows, columns, row stride (halves)
  int fsw = 0;  // floats per fetched image row: the patch row from its 4-float boundary
  int tiles_y = 0, tiles_x = 0, kgroups = 0, tiles = 0;
  size_t off_koff = 0, off_rows = 0, off_bias = 0, off_patch = 0, off_st = 0, off_fsm = 0, smem = 0;
};

Geo MakeGeo(const StemConvShape& g) {
  Geo e;
  e.g = IShape{static_cast<int>(g.n),
               static_cast<int>(g.c),
               static_cast<int>(g.h),
               static_cast<int>(g.w),
               static_cast<int>(g.k),
               g.r,
               g.s,
               g.stride,
               g.pad,
               static_cast<int>(g.oh),
               static_cast<int>(g.ow),
               g.pk,
               g.ps,
               g.pp,
               static_cast<int>(g.ph),
               static_cast<int>(g.pw)};
  e.cp = static_cast<int>((g.stride * g.c) % 2 == 0 ? g.c : g.c + 1);
  e.rowlen = (g.s * e.cp + 1) / 2 * 2;
  e.kc = (g.r * e.rowlen + 15) / 16;
  e.wld = e.kc * 16 + 8;
  // The largest pooled tile (widest first) whose convolution window fits 256 pixels.
  int best = 0;
  for (int tw = 1; tw <= 32; ++tw) {
    const int cw = (tw - 1) * g.ps + g.pk;
    if (cw > kM) break;
    const int th = std::min(32, ((kM / cw) - g.pk) / g.ps + 1);
    if (th < 1 || (th - 1) * g.ps + g.pk > kM / cw) continue;
    if (th * tw > best || (th * tw == best && tw > e.tpw)) {
      best = th * tw;
      e.tph = th;
      e.tpw = tw;
    }
  }
  e.cth = (e.tph - 1) * g.ps + g.pk;
  e.ctw = (e.tpw - 1) * g.ps + g.pk;
  e.pth = (e.cth - 1) * g.stride + g.r;
  e.ptw = (e.ctw - 1) * g.stride + g.s + 1;  // + 1: a row's last pair may read one past s
  e.prs = (e.ptw * e.cp + 1) / 2 * 2;
  e.tiles_y = static_cast<int>((g.ph + e.tph - 1) / e.tph);
  e.tiles_x = static_cast<int>((g.pw + e.tpw - 1) / e.tpw);
  e.kgroups = static_cast<int>(g.k / kN);
  e.fsw = (e.ptw + 3 + 3) / 4 * 4;
  const int64_t tiles = g.n * e.tiles_y * e.tiles_x * e.kgroups;
  e.tiles = tiles < (int64_t{1} << 30) ? static_cast<int>(tiles) : 0;
  auto up16 = [](size_t b) { return (b + 15) / 16 * 16; };
  e.off_koff = up16(static_cast<size_t>(kN) * e.wld * 2);
  e.off_rows = up16(e.off_koff + static_cast<size_t>(e.kc) * 16 * 4);
  e.off_bias = up16(e.off_rows + static_cast<size_t>(e.cp) * e.pth * 4);
  e.off_patch = up16(e.off_bias + kN * 4);
  e.off_st = up16(e.off_patch + static_cast<size_t>(e.pth) * e.prs * 2);
  e.off_fsm = up16(e.off_st + static_cast<size_t>(kM) * kStLd * 2);
  e.smem = e.off_fsm + static_cast<size_t>(e.cp) * e.pth * e.fsw * 4;
  return e;
}

__device__ __forceinline__ void MmaF16(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ int8_t ToS8(float v) {  // as kernels.cu's Quantize
  return static_cast<int8_t>(fmaxf(-127.f, fminf(127.f, rintf(v))));
}

template <int kPK, bool kOut8>
__global__ void __launch_bounds__(kThreads, 2)
    StemConvKernel(Geo e, const float* __restrict__ x, const uint16_t* __restrict__ w,
                   const float* __restrict__ bias, bool relu, float scale, void* y) {
  extern __shared__ __align__(16) unsigned char smem[];
  __half* wsm = reinterpret_cast<__half*>(smem);
  int* koff = reinterpret_cast<int*>(smem + e.off_koff);
  int* rows = reinterpret_cast<int*>(smem + e.off_rows);
  float* bsm = reinterpret_cast<float*>(smem + e.off_bias);
  __half* patch = reinterpret_cast<__half*>(smem + e.off_patch);
  __half* st = reinterpret_cast<__half*>(smem + e.off_st);
  float* fsm = reinterpret_cast<float*>(smem + e.off_fsm);
  const IShape& g = e.g;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int gq = lane >> 2, tq = lane & 3;

  // Patch offset of each packed K position (positions past the filter read offset 0 against
  // zero weights).
  for (int p = tid; p < e.kc * 16; p += kThreads) {
    koff[p] = p < g.r * e.rowlen ? (p / e.rowlen) * e.prs + p % e.rowlen : 0;
  }
  // Fetched row q: its channel (high 16 bits) and patch row.
  for (int q = tid; q < e.cp * e.pth; q += kThreads) rows[q] = (q / e.pth) << 16 | (q % e.pth);
  __syncthreads();
  // This warp's GEMM rows (two m16 tiles): their patch offsets; rows past the window read
  // offset 0 and are never pooled.
  int base[2][2];
  const int cpix = e.cth * e.ctw;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int m = warp * 32 + i * 16 + h * 8 + gq;
      base[i][h] = m < cpix ? (m / e.ctw) * g.stride * e.prs + (m % e.ctw) * g.stride * e.cp : 0;
    }
  }
  const int per_group = static_cast<int>(g.n) * e.tiles_y * e.tiles_x;
  // Tile t: output-channel group, image, tile row and column.
  auto locate = [&](int t, int* kg, int* b, int* ty, int* tx) {
    *kg = t / per_group;
    int rest = t - *kg * per_group;
    const int r2 = rest / e.tiles_x;
    *tx = rest - r2 * e.tiles_x;
    *b = r2 / e.tiles_y;
    *ty = r2 - *b * e.tiles_y;
  };
  // Starts the copies of tile t's image rows into fsm: one row of one channel per warp, in
  // 16-byte pieces from the 4-float boundary at or before the patch's first column (w % 4 == 0,
  // so a piece is wholly inside the image or wholly outside, which reads as zeros).
  // Each thread's fixed place in the copy (row f_row of f_rows per step, 16-byte piece f_j) and
  // in the conversion (row c_row of c_rows per step, column c_px).
  const int npc = e.fsw / 4;
  const int f_rows = kThreads / npc, f_row = tid / npc, f_j = tid % npc;
  const int c_rows = kThreads / e.ptw, c_row = tid / e.ptw, c_px = tid % e.ptw;
  auto fetch = [&](int t) {
    int kg, b, ty, tx;
    locate(t, &kg, &b, &ty, &tx);
    const int iy0 = (ty * e.tph * g.ps - g.pp) * g.stride - g.pad;
    const int ix0 = (tx * e.tpw * g.ps - g.pp) * g.stride - g.pad;
    const int ix = ix0 - (((ix0 % 4) + 4) % 4) + 4 * f_j;
    const float* img = x + static_cast<int64_t>(b) * g.c * g.h * g.w;
    if (f_row < f_rows) {
      for (int q = f_row; q < e.cp * e.pth; q += f_rows) {
        const int ch = rows[q] >> 16, iy = iy0 + (rows[q] & 0xffff);
        const bool ok = ch < g.c && iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
        CpAsync16(fsm + q * e.fsw + 4 * f_j, ok ? img + (ch * g.h + iy) * g.w + ix : x, ok);
      }
    }
    CpAsyncCommit();
  };
  if (static_cast<int>(blockIdx.x) < e.tiles) fetch(blockIdx.x);
  int cur_kg = -1;
  for (int t = blockIdx.x; t < e.tiles; t += gridDim.x) {
    int kg, b, ty, tx;
    locate(t, &kg, &b, &ty, &tx);
    if (kg != cur_kg) {  // this block's weights and bias for output channels kg * 64 ...
      __syncthreads();
      const int vec = e.kc * 2;  // 16-byte vectors per weight row
      const uint4* src =
          reinterpret_cast<const uint4*>(w + static_cast<int64_t>(kg) * kN * e.kc * 16);
      for (int i = tid; i < kN * vec; i += kThreads) {
        const int row = i / vec, col = i % vec;
        *reinterpret_cast<uint4*>(wsm + row * e.wld + col * 8) = src[row * vec + col];
      }
      if (tid < kN) bsm[tid] = bias != nullptr ? bias[kg * kN + tid] : 0.f;
      cur_kg = kg;
    }
    // 1. The image patch: its float32 rows (fetched by cp.async during the previous tile's
    //    GEMM) converted to FP16 pixels of cp channels; then the next tile's rows are fetched.
    CpAsyncWait<0>();
    __syncthreads();
    {
      const int ix0 = (tx * e.tpw * g.ps - g.pp) * g.stride - g.pad;
      const int sh = ((ix0 % 4) + 4) % 4;
      if (c_row < c_rows) {
        for (int q = c_row; q < e.cp * e.pth; q += c_rows) {
          const int ch = rows[q] >> 16, py = rows[q] & 0xffff;
          patch[py * e.prs + c_px * e.cp + ch] = __float2half_rn(fsm[q * e.fsw + sh + c_px]);
        }
      }
    }
    __syncthreads();
    if (t + static_cast<int>(gridDim.x) < e.tiles) fetch(t + gridDim.x);
    const int cy0 = ty * e.tph * g.ps - g.pp, cx0 = tx * e.tpw * g.ps - g.pp;

    // 2. The convolution window as a 256 x 64 x (kc * 16) GEMM.
    float acc[2][8][4];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.f;
    const int bq = lane >> 3, br = lane & 7;
#pragma unroll 2
    for (int kk = 0; kk < e.kc; ++kk) {
      const int klo = koff[kk * 16 + 2 * tq], khi = koff[kk * 16 + 2 * tq + 8];
      uint32_t a[2][4];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        a[i][0] = *reinterpret_cast<const uint32_t*>(patch + base[i][0] + klo);
        a[i][1] = *reinterpret_cast<const uint32_t*>(patch + base[i][1] + klo);
        a[i][2] = *reinterpret_cast<const uint32_t*>(patch + base[i][0] + khi);
        a[i][3] = *reinterpret_cast<const uint32_t*>(patch + base[i][1] + khi);
      }
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t bf[4];
        Ldsm4(bf, wsm + (16 * np + 8 * (bq >> 1) + br) * e.wld + kk * 16 + 8 * (bq & 1));
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          MmaF16(acc[i][2 * np], a[i], bf[0], bf[1]);
          MmaF16(acc[i][2 * np + 1], a[i], bf[2], bf[3]);
        }
      }
    }
    // 3. The sums in FP16 into the shared tile. The bias and ReLU come after the pool: a
    //    per-channel constant and a monotonic function commute with the max.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int m0 = warp * 32 + i * 16 + gq;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int n = j * 8 + 2 * tq;
        *reinterpret_cast<__half2*>(st + m0 * kStLd + n) =
            __floats2half2_rn(acc[i][j][0], acc[i][j][1]);
        *reinterpret_cast<__half2*>(st + (m0 + 8) * kStLd + n) =
            __floats2half2_rn(acc[i][j][2], acc[i][j][3]);
      }
    }
    __syncthreads();

    // 4. Max pool over the tile, 8 channels per thread and step.
    for (int it = tid; it < e.tph * e.tpw * (kN / 8); it += kThreads) {
      const int c8 = it % (kN / 8), p = it / (kN / 8);
      const int ply = p / e.tpw, plx = p % e.tpw;
      const int py = ty * e.tph + ply, px = tx * e.tpw + plx;
      if (py >= g.ph || px >= g.pw) continue;
      __half2 m[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) m[u] = __half2half2(__ushort_as_half(0xfc00));  // -inf
#pragma unroll
      for (int kh = 0; kh < kPK; ++kh) {
        const int ly = ply * g.ps + kh;
        const bool row_in = static_cast<unsigned>(cy0 + ly) < static_cast<unsigned>(g.oh);
#pragma unroll
        for (int kw = 0; kw < kPK; ++kw) {
          const int lx = plx * g.ps + kw;
          if (!row_in || static_cast<unsigned>(cx0 + lx) >= static_cast<unsigned>(g.ow)) continue;
          const uint4 raw =
              *reinterpret_cast<const uint4*>(st + (ly * e.ctw + lx) * kStLd + c8 * 8);
          __half2 h[4];
          std::memcpy(h, &raw, 16);
#pragma unroll
          for (int u = 0; u < 4; ++u) m[u] = __hmax2(m[u], h[u]);
        }
      }
      const int64_t o =
          ((static_cast<int64_t>(b) * g.ph + py) * g.pw + px) * g.k + kg * kN + c8 * 8;
      float v[8];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const float2 f = __half22float2(m[u]);
        v[2 * u] = f.x + bsm[c8 * 8 + 2 * u];
        v[2 * u + 1] = f.y + bsm[c8 * 8 + 2 * u + 1];
      }
      if (relu) {
#pragma unroll
        for (int u = 0; u < 8; ++u) v[u] = fmaxf(v[u], 0.f);
      }
      if constexpr (kOut8) {
        int8_t q[8];
#pragma unroll
        for (int u = 0; u < 8; ++u) q[u] = ToS8(v[u] * scale);
        uint2 raw;
        std::memcpy(&raw, q, 8);
        *reinterpret_cast<uint2*>(static_cast<int8_t*>(y) + o) = raw;
      } else {
        __half2 h[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) h[u] = __floats2half2_rn(v[2 * u], v[2 * u + 1]);
        uint4 raw;
        std::memcpy(&raw, h, 16);
        *reinterpret_cast<uint4*>(static_cast<__half*>(y) + o) = raw;
      }
    }
    // The next tile's patch goes to its own region; the sync after it orders the pool's reads
    // of `st` before the next GEMM's writes.
  }
}

}  // namespace

bool StemConvSupported(const StemConvShape& g) {
  if (g.n < 1 || g.c < 1 || g.c > 4 || g.k < kN || g.k % kN != 0 || g.r < 1 || g.s < 1 ||
      g.stride < 1 || g.pad < 0 || g.pk < 1 || g.pk > 3 || g.ps < 1 || g.ps > g.pk || g.pp < 0 ||
      g.pp >= g.pk) {
    return false;
  }
  constexpr int64_t kBig = int64_t{1} << 30;  // the kernel indexes within an image in int
  if (g.n >= kBig || g.k >= kBig || g.h * g.w * g.c >= kBig || g.r > 64 || g.s > 64 ||
      g.stride > 64 || g.pad > 64) {
    return false;
  }
  if (g.oh != (g.h + 2 * g.pad - g.r) / g.stride + 1 ||
      g.ow != (g.w + 2 * g.pad - g.s) / g.stride + 1 || g.oh < 1 || g.ow < 1) {
    return false;
  }
  if (g.ph != (g.oh + 2 * g.pp - g.pk) / g.ps + 1 || g.pw != (g.ow + 2 * g.pp - g.pk) / g.ps + 1 ||
      g.ph < 1 || g.pw < 1) {
    return false;
  }
  const Geo e = MakeGeo(g);
  return g.w % 4 == 0 && e.ptw <= kThreads && e.fsw / 4 <= kThreads && e.tph >= 1 && e.tiles > 0 &&
         e.kc * 16 <= kMaxK && e.smem <= 200 * 1024;
}

int StemConvRowHalves(const StemConvShape& g) { return MakeGeo(g).kc * 16; }

std::vector<uint16_t> PackStemConvWeights(const StemConvShape& g, const float* w) {
  const Geo e = MakeGeo(g);
  const int row = e.kc * 16;
  std::vector<uint16_t> out(static_cast<size_t>(g.k) * row, 0);
  for (int64_t k = 0; k < g.k; ++k) {
    for (int64_t c = 0; c < g.c; ++c) {
      for (int r = 0; r < g.r; ++r) {
        for (int s = 0; s < g.s; ++s) {
          const float v = w[((k * g.c + c) * g.r + r) * g.s + s];
          const __half h = __float2half_rn(v);
          uint16_t bits;
          std::memcpy(&bits, &h, 2);
          out[k * row + r * e.rowlen + s * e.cp + c] = bits;
        }
      }
    }
  }
  return out;
}

cudaError_t StemConv(const StemConvArgs& a, cudaStream_t s) {
  if (!StemConvSupported(a.g) || a.x == nullptr || a.w == nullptr || a.y == nullptr ||
      reinterpret_cast<uintptr_t>(a.w) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(a.y) % (a.out_int8 ? 8 : 16) != 0) {
    return cudaErrorInvalidValue;
  }
  const Geo e = MakeGeo(a.g);
  int dev = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (err != cudaSuccess) return err;
  const int64_t grid = std::min<int64_t>(e.tiles, static_cast<int64_t>(sms) * 2);
  auto launch = [&](auto kernel) {
    cudaError_t r = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(e.smem));
    if (r != cudaSuccess) return r;
    kernel<<<static_cast<unsigned>(grid), kThreads, e.smem, s>>>(e, a.x, a.w, a.bias, a.relu,
                                                                 a.scale, a.y);
    return cudaGetLastError();
  };
  switch (a.g.pk) {
    case 1:
      return a.out_int8 ? launch(StemConvKernel<1, true>) : launch(StemConvKernel<1, false>);
    case 2:
      return a.out_int8 ? launch(StemConvKernel<2, true>) : launch(StemConvKernel<2, false>);
    default:
      return a.out_int8 ? launch(StemConvKernel<3, true>) : launch(StemConvKernel<3, false>);
  }
}

}  // namespace kiln::cuda
