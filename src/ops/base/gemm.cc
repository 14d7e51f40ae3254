// Blocked GEMM (see gemm.h): Goto-style loops over cache blocks of B (KC x NC, in L3) and
// A (MC x KC, in L2), both packed into micro-panels, and a register-tiled micro-kernel
// computing an MR x NR tile of C. The micro-kernel is chosen once at run time: AVX-512 (8x32),
// AVX2+FMA (6x16) or a portable one (4x8) the compiler vectorizes for the baseline ISA.
// C is scaled by beta first (beta == 0 stores zeros), then each K block adds alpha * A * B.
#include "ops/base/gemm.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kiln {
namespace {

constexpr int64_t kKC = 256;   // K block: an A and a B micro-panel stay in L1
constexpr int64_t kMC = 192;   // M block: packed A (MC x KC) stays in L2
constexpr int64_t kNC = 2048;  // N block: packed B (KC x NC) stays in L3

// Adds alpha * A_panel * B_panel (kc steps) to the MR x NR tile at c (row stride ldc).
using MicroKernelF32 = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                float alpha);

template <typename T>
struct AlignedBuffer {
  explicit AlignedBuffer(size_t n)
      : p(static_cast<T*>(::operator new[](n * sizeof(T), std::align_val_t(64)))) {}
  ~AlignedBuffer() { ::operator delete[](p, std::align_val_t(64)); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  T* p;
};

template <int MR, int NR>
void MicroKernelPortable(int64_t kc, const float* __restrict a, const float* __restrict b,
                         float* __restrict c, int64_t ldc, float alpha) {
  float acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const float* __restrict bp = b + p * NR;
    const float* __restrict ap = a + p * MR;
    for (int i = 0; i < MR; ++i) {
      for (int j = 0; j < NR; ++j) acc[i][j] += ap[i] * bp[j];
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) c[i * ldc + j] += alpha * acc[i][j];
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void MicroKernelAvx2(int64_t kc, const float* __restrict a,
                                                         const float* __restrict b,
                                                         float* __restrict c, int64_t ldc,
                                                         float alpha) {
  constexpr int MR = 6;
  __m256 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(b + p * 16);
    const __m256 b1 = _mm256_load_ps(b + p * 16 + 8);
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + p * MR + i);
      acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
    }
  }
  const __m256 al = _mm256_set1_ps(alpha);
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    _mm256_storeu_ps(ci, _mm256_fmadd_ps(al, acc[i][0], _mm256_loadu_ps(ci)));
    _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(al, acc[i][1], _mm256_loadu_ps(ci + 8)));
  }
}

__attribute__((target("avx512f"))) void MicroKernelAvx512(int64_t kc, const float* __restrict a,
                                                          const float* __restrict b,
                                                          float* __restrict c, int64_t ldc,
                                                          float alpha) {
  constexpr int MR = 8;
  __m512 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_load_ps(b + p * 32);
    const __m512 b1 = _mm512_load_ps(b + p * 32 + 16);
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[p * MR + i]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
    }
  }
  const __m512 al = _mm512_set1_ps(alpha);
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    _mm512_storeu_ps(ci, _mm512_fmadd_ps(al, acc[i][0], _mm512_loadu_ps(ci)));
    _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(al, acc[i][1], _mm512_loadu_ps(ci + 16)));
  }
}
#endif

// Element (i, p) of op(A) and (p, j) of op(B).
template <typename T>
inline T ElemA(const T* a, int64_t lda, bool trans, int64_t i, int64_t p) {
  return trans ? a[p * lda + i] : a[i * lda + p];
}

// Packs rows [0, mc) x cols [0, kc) of op(A) (already offset) into MR-row panels,
// layout [panel][p][MR], zero-padding the last panel.
template <int MR>
void PackA(const float* a, int64_t lda, bool trans, int64_t mc, int64_t kc, float* out) {
  for (int64_t i0 = 0; i0 < mc; i0 += MR) {
    const int64_t rows = std::min<int64_t>(MR, mc - i0);
    float* dst = out + i0 * kc;
    if (trans) {  // op(A)(i, p) = a[p * lda + i]: rows of the panel are contiguous
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = a + p * lda + i0;
        int64_t i = 0;
        for (; i < rows; ++i) dst[p * MR + i] = src[i];
        for (; i < MR; ++i) dst[p * MR + i] = 0.0f;
      }
    } else {
      for (int64_t i = 0; i < MR; ++i) {
        if (i < rows) {
          const float* src = a + (i0 + i) * lda;
          for (int64_t p = 0; p < kc; ++p) dst[p * MR + i] = src[p];
        } else {
          for (int64_t p = 0; p < kc; ++p) dst[p * MR + i] = 0.0f;
        }
      }
    }
  }
}

// Packs rows [0, kc) x cols [0, nc) of op(B) into NR-column panels, layout [panel][p][NR].
template <int NR>
void PackB(const float* b, int64_t ldb, bool trans, int64_t kc, int64_t nc, float* out) {
  for (int64_t j0 = 0; j0 < nc; j0 += NR) {
    const int64_t cols = std::min<int64_t>(NR, nc - j0);
    float* dst = out + j0 * kc;
    if (!trans) {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = b + p * ldb + j0;
        int64_t j = 0;
        for (; j < cols; ++j) dst[p * NR + j] = src[j];
        for (; j < NR; ++j) dst[p * NR + j] = 0.0f;
      }
    } else {  // op(B)(p, j) = b[j * ldb + p]
      for (int64_t j = 0; j < NR; ++j) {
        if (j < cols) {
          const float* src = b + (j0 + j) * ldb;
          for (int64_t p = 0; p < kc; ++p) dst[p * NR + j] = src[p];
        } else {
          for (int64_t p = 0; p < kc; ++p) dst[p * NR + j] = 0.0f;
        }
      }
    }
  }
}

template <typename T>
void ScaleC(int64_t m, int64_t n, T beta, T* c, int64_t ldc) {
  if (beta == T(1)) return;
  for (int64_t i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    if (beta == T(0)) {
      std::fill(ci, ci + n, T(0));
    } else {
      for (int64_t j = 0; j < n; ++j) ci[j] *= beta;
    }
  }
}

// Small problems: packing costs more than it saves. C += alpha * op(A) * op(B), i-p-j order
// (contiguous inner loop when B is not transposed).
template <typename T>
void GemmSimple(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    T* __restrict ci = c + i * ldc;
    if (!trans_b) {
      for (int64_t p = 0; p < k; ++p) {
        const T av = alpha * ElemA(a, lda, trans_a, i, p);
        const T* __restrict bp = b + p * ldb;
        for (int64_t j = 0; j < n; ++j) ci[j] += av * bp[j];
      }
    } else {
      for (int64_t j = 0; j < n; ++j) {
        const T* bj = b + j * ldb;
        T sum = 0;
        for (int64_t p = 0; p < k; ++p) sum += ElemA(a, lda, trans_a, i, p) * bj[p];
        ci[j] += alpha * sum;
      }
    }
  }
}

template <int MR, int NR>
void GemmPacked(MicroKernelF32 kernel, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                int64_t ldc) {
  const int64_t kc_max = std::min(k, kKC);
  const int64_t mc_max = (std::min(m, kMC) + MR - 1) / MR * MR;
  const int64_t nc_max = (std::min(n, kNC) + NR - 1) / NR * NR;
  AlignedBuffer<float> pa(static_cast<size_t>(mc_max * kc_max));
  AlignedBuffer<float> pb(static_cast<size_t>(nc_max * kc_max));
  alignas(64) float tile[MR * NR];
  for (int64_t jc = 0; jc < n; jc += kNC) {
    const int64_t nc = std::min(kNC, n - jc);
    for (int64_t pc = 0; pc < k; pc += kKC) {
      const int64_t kc = std::min(kKC, k - pc);
      PackB<NR>(trans_b ? b + jc * ldb + pc : b + pc * ldb + jc, ldb, trans_b, kc, nc, pb.p);
      for (int64_t ic = 0; ic < m; ic += kMC) {
        const int64_t mc = std::min(kMC, m - ic);
        PackA<MR>(trans_a ? a + pc * lda + ic : a + ic * lda + pc, lda, trans_a, mc, kc, pa.p);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t nr = std::min<int64_t>(NR, nc - jr);
          const float* bpanel = pb.p + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = std::min<int64_t>(MR, mc - ir);
            float* ct = c + (ic + ir) * ldc + jc + jr;
            if (mr == MR && nr == NR) {
              kernel(kc, pa.p + ir * kc, bpanel, ct, ldc, alpha);
            } else {  // edge tile: compute into a scratch tile, add the valid part
              std::memset(tile, 0, sizeof(tile));
              kernel(kc, pa.p + ir * kc, bpanel, tile, NR, alpha);
              for (int64_t i = 0; i < mr; ++i) {
                for (int64_t j = 0; j < nr; ++j) ct[i * ldc + j] += tile[i * NR + j];
              }
            }
          }
        }
      }
    }
  }
}

enum class Isa { kPortable, kAvx2, kAvx512 };

Isa DetectIsa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kPortable;
}

}  // namespace

void GemmF32(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
             const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
             int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  ScaleC(m, n, beta, c, ldc);
  if (k <= 0 || alpha == 0.0f) return;
  if (static_cast<double>(m) * n * k < 16 * 16 * 16 || m < 4) {
    GemmSimple(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc);
    return;
  }
  static const Isa isa = DetectIsa();
  switch (isa) {
#if defined(__x86_64__)
    case Isa::kAvx512:
      GemmPacked<8, 32>(MicroKernelAvx512, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c,
                        ldc);
      return;
    case Isa::kAvx2:
      GemmPacked<6, 16>(MicroKernelAvx2, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc);
      return;
#endif
    default:
      GemmPacked<4, 8>(MicroKernelPortable<4, 8>, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                       c, ldc);
      return;
  }
}

// Double precision: blocked over K and N, op(B) copied contiguous when transposed, no
// micro-kernel (float64 is not on a hot path).
void GemmF64(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
             const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
             int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  ScaleC(m, n, beta, c, ldc);
  if (k <= 0 || alpha == 0.0) return;
  constexpr int64_t kKB = 128, kNB = 512;
  for (int64_t j0 = 0; j0 < n; j0 += kNB) {
    const int64_t nb = std::min(kNB, n - j0);
    for (int64_t p0 = 0; p0 < k; p0 += kKB) {
      const int64_t kb = std::min(kKB, k - p0);
      // Block of op(B): kb x nb, contiguous rows.
      std::unique_ptr<double[]> bblk(new double[kb * nb]);
      for (int64_t p = 0; p < kb; ++p) {
        for (int64_t j = 0; j < nb; ++j) {
          bblk[p * nb + j] = trans_b ? b[(j0 + j) * ldb + p0 + p] : b[(p0 + p) * ldb + j0 + j];
        }
      }
      const double* ablk = trans_a ? a + p0 * lda : a + p0;
      GemmSimple(trans_a, false, m, nb, kb, alpha, ablk, lda, bblk.get(), nb, c + j0, ldc);
    }
  }
}

}  // namespace kiln
