// The AVX-512 part of kiln's FP32 GEMM (gemm_f32.h). This file alone is compiled with
// -mavx512f -mavx512vl -mfma -fopenmp (CMakeLists.txt); nothing in it runs unless Available().
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "backends/cpu/gemm_f32.h"

namespace kiln::cpu::gemm {
namespace {

// g++ 12's _mm512_max_ps / _mm512_roundscale_ps / _mm512_scalef_ps start from
// _mm512_undefined_ps() and trip -Wmaybe-uninitialized (GCC bug 105593); their zero-masked forms
// with a full mask are the same instructions without it.
constexpr __mmask16 kAll = 0xFFFF;

// The epilogue's post-ops, by value in the kernel's arguments.
struct Epi {
  int n = 0;
  OpKind kind[4] = {};
  float alpha[4] = {}, beta[4] = {};
};

Epi EpiOf(const std::vector<Op>& ops) {
  Epi e;
  e.n = static_cast<int>(std::min<size_t>(ops.size(), 4));
  for (int o = 0; o < e.n; ++o) {
    e.kind[o] = ops[o].kind;
    e.alpha[o] = ops[o].alpha;
    e.beta[o] = ops[o].beta;
  }
  return e;
}

// e^x for x <= 0 (GELU's e^(-x^2), softmax): x = n ln2 + r, |r| <= ln2 / 2, the degree-7 Taylor
// polynomial in r (truncation below 1e-8, so FP32 rounding dominates), times 2^n. Below -87 the
// result is ~1e-38 instead of 0.
inline __m512 ExpNeg(__m512 x) {
  x = _mm512_maskz_max_ps(kAll, x, _mm512_set1_ps(-87.f));
  const __m512 n =
      _mm512_maskz_roundscale_ps(kAll, _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_maskz_scalef_ps(kAll, p, n);
}

// GELU(x) = x/2 (1 + erf(x / sqrt 2)), erf by Abramowitz & Stegun 7.1.26 (absolute error
// below 1.5e-7), the formula oneDNN's gelu_erf uses.
inline __m512 GeluErf(__m512 x) {
  const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f));
  const __m512 az = _mm512_abs_ps(z);
  // t = 1 / d by rcp14 and one Newton step (relative error ~1e-8, a tenth of a division's cost).
  const __m512 d = _mm512_fmadd_ps(az, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.f));
  const __m512 r0 = _mm512_maskz_rcp14_ps(kAll, d);
  const __m512 t = _mm512_mul_ps(r0, _mm512_fnmadd_ps(d, r0, _mm512_set1_ps(2.f)));
  __m512 q = _mm512_set1_ps(1.061405429f);
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(-1.453152027f));
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(1.421413741f));
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(-0.284496736f));
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(0.254829592f));
  q = _mm512_mul_ps(q, t);
  const __m512 e = ExpNeg(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), az), az));
  __m512 erf = _mm512_fnmadd_ps(q, e, _mm512_set1_ps(1.f));  // erf(|z|)
  // erf(z) has the sign of z.
  const __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
  erf = _mm512_mask_sub_ps(erf, neg, _mm512_setzero_ps(), erf);
  const __m512 half_x = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
  return _mm512_fmadd_ps(half_x, erf, half_x);
}

// One MR x (16 NV) tile of C over k_total values of K. `nvec` vectors of the panel are real
// columns (the last one masked by `last`); `pf` (when kPrefetch) is the next panel's slice this
// call pulls into L2, one cache line per k. `load_c`: start from C's content (a K block after
// the first, or a leading residual sum) instead of zero; `finish`: apply the bias and `e` (the
// last K block), else store the partial sums.
template <int MR, int NV, bool kPrefetch>
void Micro(int64_t k_total, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
           const Epi& e, int nvec, __mmask16 last, const float* bias, const float* pf, bool load_c,
           bool finish) {
  constexpr int kNr = 16 * NV;
  auto mask_of = [&](int v) { return v == nvec - 1 ? last : kAll; };
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      acc[i][v] = load_c && v < nvec ? _mm512_maskz_loadu_ps(mask_of(v), c + i * ldc + v * 16)
                                     : _mm512_setzero_ps();
    }
  }
  for (int64_t k = 0; k < k_total; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      bv[v] = _mm512_loadu_ps(b + k * kNr + v * 16);
      // Keep B in registers: g++ otherwise folds the load into every row's FMA (MR loads of
      // each vector per k instead of one), which makes the loop load-bound.
      asm("" : "+v"(bv[v]));
    }
    if constexpr (kPrefetch) _mm_prefetch(reinterpret_cast<const char*>(pf + k * 16), _MM_HINT_T1);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
  // Epilogue, one post-op at a time over the whole tile (the op's branch outside the loops).
  if (finish && bias != nullptr) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if (v >= nvec) break;
      const __m512 bb = _mm512_maskz_loadu_ps(mask_of(v), bias + v * 16);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) acc[i][v] = _mm512_add_ps(acc[i][v], bb);
    }
  }
  for (int o = 0; finish && o < e.n; ++o) {
    switch (e.kind[o]) {
      case OpKind::kSum:
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) {
            if (v < nvec) {
              acc[i][v] =
                  _mm512_add_ps(acc[i][v], _mm512_maskz_loadu_ps(mask_of(v), c + i * ldc + v * 16));
            }
          }
        }
        break;
      case OpKind::kRelu:
        if (e.alpha[o] == 0.f) {
#pragma GCC unroll 16
          for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) {
              acc[i][v] = _mm512_maskz_max_ps(kAll, acc[i][v], _mm512_setzero_ps());
            }
          }
        } else {
          const __m512 alpha = _mm512_set1_ps(e.alpha[o]);
          for (int i = 0; i < MR; ++i) {
            for (int v = 0; v < NV; ++v) {
              const __mmask16 neg = _mm512_cmp_ps_mask(acc[i][v], _mm512_setzero_ps(), _CMP_LT_OQ);
              acc[i][v] = _mm512_mask_mul_ps(acc[i][v], neg, acc[i][v], alpha);
            }
          }
        }
        break;
      case OpKind::kGeluErf:
        for (int i = 0; i < MR; ++i) {
          for (int v = 0; v < NV; ++v) acc[i][v] = GeluErf(acc[i][v]);
        }
        break;
      case OpKind::kClip: {
        const __m512 lo = _mm512_set1_ps(e.alpha[o]), hi = _mm512_set1_ps(e.beta[o]);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) {
            acc[i][v] = _mm512_maskz_min_ps(kAll, _mm512_maskz_max_ps(kAll, acc[i][v], lo), hi);
          }
        }
        break;
      }
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if (v < nvec) _mm512_mask_storeu_ps(c + i * ldc + v * 16, mask_of(v), acc[i][v]);
    }
  }
}

using MicroFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, const Epi&,
                         int, __mmask16, const float*, const float*, bool, bool);

// kMicro<MR, NV>[rows - 1][prefetch]: the kernels for 1..MR rows.
template <int MR, int NV, size_t... I>
constexpr std::array<std::array<MicroFn, 2>, MR> MakeTable(std::index_sequence<I...>) {
  return {{{&Micro<I + 1, NV, false>, &Micro<I + 1, NV, true>}...}};
}
template <int MR, int NV>
constexpr std::array<std::array<MicroFn, 2>, MR> kMicro =
    MakeTable<MR, NV>(std::make_index_sequence<MR>());

// Thread tid's share of the work: panels [p0, p1) and rows [r0, r1). Many panels: each thread
// takes whole panels (its own share of the weights); few: each takes a range of rows and every
// panel.
struct Share {
  int64_t p0, p1, r0, r1;
};
Share ShareOf(int64_t m, int64_t n, Tile t, int tid, int nt) {
  const int64_t panels = (n + t.nr() - 1) / t.nr();
  const int64_t mblocks = (m + t.mr - 1) / t.mr;
  if (panels >= 2 * nt || (panels >= nt && panels % nt == 0)) {
    return {panels * tid / nt, panels * (tid + 1) / nt, 0, m};
  }
  return {0, panels, std::min(m, mblocks * tid / nt * t.mr),
          std::min(m, mblocks * (tid + 1) / nt * t.mr)};
}

// K blocks: with K above 1024 a panel (K x NR) and A's rows no longer fit in L2 together, and the
// next panel prefetched beside them would be evicted before use (BERT's FFN2, K = 3072, ran 11%
// slower with its weights cold than hot). Blocks of at most 768 keep a sub-panel, A's block and
// the next sub-panel in L2; C holds the partial sums between blocks. A residual sum must then
// come first (it becomes the first block's starting value); one after an eltwise op keeps K
// whole (`later_sum`).
int64_t KBlockOf(int64_t k, bool later_sum) {
  const int64_t blocks = k > 1024 && !later_sum ? (k + 767) / 768 : 1;
  return (k + blocks - 1) / blocks;
}

// The first sub-panel thread tid computes in a GEMM, and its size in cache lines.
const float* FirstSubPanel(int64_t m, int64_t n, int64_t k, Tile t, const float* b, int tid, int nt,
                           int64_t* lines) {
  const Share s = ShareOf(m, n, t, tid, nt);
  if (s.p0 >= s.p1 || s.r0 >= s.r1) return nullptr;
  *lines = KBlockOf(k, false) * t.nv;
  return b + s.p0 * k * t.nr();
}

template <int MR, int NV>
void RunTile(const Problem& p, const Epi& e, int tid, int nt) {
  constexpr int kNr = 16 * NV;
  const auto [p0, p1, r0, r1] = ShareOf(p.m, p.n, Tile{MR, NV}, tid, nt);
  if (p0 >= p1 || r0 >= r1) return;
  bool later_sum = false;
  for (int o = 1; o < e.n; ++o) later_sum = later_sum || e.kind[o] == OpKind::kSum;
  const int64_t kc = KBlockOf(p.k, later_sum);
  const int64_t kblocks = (p.k + kc - 1) / kc;
  const bool sum_first = kblocks > 1 && e.n > 0 && e.kind[0] == OpKind::kSum;
  Epi tail = e;  // the ops after a leading sum that the first block's load of C applied
  if (sum_first) {
    tail.n = e.n - 1;
    for (int o = 0; o < tail.n; ++o) {
      tail.kind[o] = e.kind[o + 1];
      tail.alpha[o] = e.alpha[o + 1];
      tail.beta[o] = e.beta[o + 1];
    }
  }
  // Rows per chunk: all of them while A's rows fit in L2 beside a panel, else ~256 KB of A, so
  // that a chunk of A stays in L2 while every panel passes over it.
  const int64_t row_bytes = kc * static_cast<int64_t>(sizeof(float));
  int64_t mc = r1 - r0;
  if (mc * row_bytes > (int64_t{1} << 20)) {
    mc = std::max<int64_t>(MR, (int64_t{256} << 10) / row_bytes / MR * MR);
  }
  const int64_t panel_floats = p.k * kNr;
  const int rem = static_cast<int>(p.n % 16);
  for (int64_t c0 = r0; c0 < r1; c0 += mc) {
    const int64_t c1 = std::min(r1, c0 + mc);
    for (int64_t kb = 0; kb < kblocks; ++kb) {
      const int64_t k0 = kb * kc, kn = std::min(kc, p.k - k0);
      const bool load_c = kb > 0 || sum_first, finish = kb + 1 == kblocks;
      const Epi& ops = kblocks > 1 ? tail : e;
      for (int64_t q = p0; q < p1; ++q) {
        const float* bp = p.b + q * panel_floats + k0 * kNr;
        // The sub-panel computed next: panel q + 1's, else this thread's first panel's for the
        // next K block or row chunk, else (its last panel) its first one of the engine's next
        // GEMM; and how many cache lines of it to prefetch.
        const float* next = nullptr;
        int64_t next_lines = 0;
        if (q + 1 < p1) {
          next = bp + panel_floats;
          next_lines = kn * NV;
        } else if (kb + 1 < kblocks) {
          next = p.b + p0 * panel_floats + (k0 + kc) * kNr;
          next_lines = std::min(kc, p.k - k0 - kc) * NV;
        } else if (c1 < r1) {
          next = p.b + p0 * panel_floats;
          next_lines = kc * NV;
        } else if (p.next_b != nullptr) {
          next = FirstSubPanel(p.next_m, p.next_n, p.next_k, p.next_tile, p.next_b, tid, nt,
                               &next_lines);
        }
        const int64_t col = q * kNr;
        const int nvec = static_cast<int>(std::min<int64_t>(NV, (p.n - col + 15) / 16));
        const bool ragged = rem != 0 && col + nvec * 16 > p.n;
        const __mmask16 last = ragged ? static_cast<__mmask16>((1u << rem) - 1) : kAll;
        const float* bias = p.bias != nullptr ? p.bias + col : nullptr;
        int call = 0;
        for (int64_t i = c0; i < c1; i += MR, ++call) {
          const int rows = static_cast<int>(std::min<int64_t>(MR, c1 - i));
          // Each call prefetches kn lines (one per k): as many calls as the next sub-panel has.
          const bool pf = next != nullptr && (call + 1) * kn <= next_lines;
          kMicro<MR, NV>[rows - 1][pf](
              kn, p.a + i * p.lda + k0, p.lda, bp, p.c + i * p.ldc + col, p.ldc, ops, nvec, last,
              bias, pf ? next + static_cast<int64_t>(call) * kn * 16 : nullptr, load_c, finish);
        }
      }
    }
  }
}

// ----------------------------------------------------------------------------- one-thread GEMMs

// The inverted-residual block's GEMMs have a short K (16-960) and a simple epilogue, where Micro's
// prologue and epilogue (its accumulators pass through the stack) cost 20-30% at K = 16: here C
// starts as bias [+ C, the residual], and ends clamped to [lo, hi] (ReLU, ReLU6, or none).
struct Lean {
  bool ok = false;   // the ops have this form
  bool sum = false;  // start from C (the residual)
  float lo = -INFINITY, hi = INFINITY;
};
Lean LeanOf(const Epi& e) {
  Lean l;
  int o = 0;
  if (o < e.n && e.kind[o] == OpKind::kSum) {
    l.sum = true;
    ++o;
  }
  if (o < e.n && e.kind[o] == OpKind::kClip) {
    l.lo = e.alpha[o];
    l.hi = e.beta[o];
    ++o;
  } else if (o < e.n && e.kind[o] == OpKind::kRelu && e.alpha[o] == 0.f) {
    l.lo = 0.f;
    ++o;
  }
  l.ok = o == e.n;
  return l;
}

// kHalf: the tile's last vector holds 8 columns (24 = 16 + 8 channels, MobileNetV2's project
// layers) and is computed in a ymm register: a zmm multiply-add of 8 valid lanes costs a full one
// (twice a ymm's on CPUs that split 512-bit operations, such as Zen 4).
template <int MR, int NV, bool kHalf>
void MicroLean(int64_t k_total, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
               int nvec, __mmask16 last, const float* bias, bool sum, float lo_f, float hi_f) {
  constexpr int kNr = 16 * NV;
  constexpr int kFull = kHalf ? NV - 1 : NV;  // zmm vectors
  const __m512 lo = _mm512_set1_ps(lo_f), hi = _mm512_set1_ps(hi_f);
  __m512 acc[MR][NV];
  __m256 half[MR];
#pragma GCC unroll 4
  for (int v = 0; v < kFull; ++v) {
    const __mmask16 m = v == nvec - 1 ? last : v < nvec ? kAll : 0;
    const __m512 bb = _mm512_maskz_loadu_ps(m, bias + v * 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      acc[i][v] = sum ? _mm512_add_ps(bb, _mm512_maskz_loadu_ps(m, c + i * ldc + v * 16)) : bb;
    }
  }
  if constexpr (kHalf) {
    const __m256 bb = _mm256_loadu_ps(bias + kFull * 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      half[i] = sum ? _mm256_add_ps(bb, _mm256_loadu_ps(c + i * ldc + kFull * 16)) : bb;
    }
  }
  for (int64_t k = 0; k < k_total; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < kFull; ++v) {
      bv[v] = _mm512_loadu_ps(b + k * kNr + v * 16);
      asm("" : "+v"(bv[v]));  // as in Micro: one load of B per k
    }
    __m256 bh = _mm256_setzero_ps();
    if constexpr (kHalf) {
      bh = _mm256_loadu_ps(b + k * kNr + kFull * 16);
      asm("" : "+v"(bh));
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < kFull; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
      if constexpr (kHalf) half[i] = _mm256_fmadd_ps(_mm256_set1_ps(a[i * lda + k]), bh, half[i]);
    }
  }
#pragma GCC unroll 4
  for (int v = 0; v < kFull; ++v) {
    const __mmask16 m = v == nvec - 1 ? last : v < nvec ? kAll : 0;
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      _mm512_mask_storeu_ps(
          c + i * ldc + v * 16, m,
          _mm512_maskz_min_ps(kAll, _mm512_maskz_max_ps(kAll, acc[i][v], lo), hi));
    }
  }
  if constexpr (kHalf) {
    const __m256 lo8 = _mm256_set1_ps(lo_f), hi8 = _mm256_set1_ps(hi_f);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      _mm256_storeu_ps(c + i * ldc + kFull * 16, _mm256_min_ps(_mm256_max_ps(half[i], lo8), hi8));
    }
  }
}

using LeanFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, int,
                        __mmask16, const float*, bool, float, float);
template <int MR, int NV, bool kHalf, size_t... I>
constexpr std::array<LeanFn, MR> MakeLeanTable(std::index_sequence<I...>) {
  return {{&MicroLean<I + 1, NV, kHalf>...}};
}
template <int MR, int NV, bool kHalf>
constexpr std::array<LeanFn, MR> kLean =
    MakeLeanTable<MR, NV, kHalf>(std::make_index_sequence<MR>());

// C[m, n] = epilogue(A[m, k] . packed B + bias) on one thread (K whole, no prefetch): on the
// lean kernel when `lean` is given (the ops in its form, and a bias), else on Micro.
template <int MR, int NV>
void GemmOneThread(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* bp,
                   float* c, int64_t ldc, const float* bias, const Epi& e, const Lean* lean) {
  constexpr int kNr = 16 * NV;
  const int rem = static_cast<int>(n % 16);
  for (int64_t col = 0; col < n; col += kNr) {
    const int nvec = static_cast<int>(std::min<int64_t>(NV, (n - col + 15) / 16));
    const bool ragged = rem != 0 && col + nvec * 16 > n;
    const __mmask16 last = ragged ? static_cast<__mmask16>((1u << rem) - 1) : kAll;
    const float* b = bp + col * k;
    const float* bias_col = bias != nullptr ? bias + col : nullptr;
    // A last vector of 8 columns in a tile's last slot: the lean kernel's ymm form.
    const bool half = NV > 1 && nvec == NV && last == 0x00FF;
    for (int64_t i = 0; i < m; i += MR) {
      const int rows = static_cast<int>(std::min<int64_t>(MR, m - i));
      if (lean != nullptr) {
        (half ? kLean<MR, NV, NV != 1> : kLean<MR, NV, false>)[rows - 1](
            k, a + i * lda, lda, b, c + i * ldc + col, ldc, nvec, last, bias_col, lean->sum,
            lean->lo, lean->hi);
      } else {
        kMicro<MR, NV>[rows - 1][0](k, a + i * lda, lda, b, c + i * ldc + col, ldc, e, nvec, last,
                                    bias_col, nullptr, false, true);
      }
    }
  }
}

// `lean`: the lean kernel's form of `e`, used when it has that form and there is a bias.
void GemmOneThread(Tile t, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                   const float* bp, float* c, int64_t ldc, const float* bias = nullptr,
                   const Epi& e = Epi(), const Lean& lean = Lean()) {
  const Lean* l = lean.ok && bias != nullptr ? &lean : nullptr;
  if (t.mr == 8) GemmOneThread<8, 3>(m, n, k, a, lda, bp, c, ldc, bias, e, l);
  if (t.mr == 6) GemmOneThread<6, 4>(m, n, k, a, lda, bp, c, ldc, bias, e, l);
  if (t.mr == 12) GemmOneThread<12, 2>(m, n, k, a, lda, bp, c, ldc, bias, e, l);
  if (t.mr == 16) GemmOneThread<16, 1>(m, n, k, a, lda, bp, c, ldc, bias, e, l);
}

// ----------------------------------------------------------------------------- attention

// Horizontal max / sum of 16 lanes (g++ 12's _mm512_reduce_* trip -Wmaybe-uninitialized too).
float LaneMax(__m512 v) {
  alignas(64) float l[16];
  _mm512_store_ps(l, v);
  float m = l[0];
  for (int i = 1; i < 16; ++i) m = std::max(m, l[i]);
  return m;
}
float LaneSum(__m512 v) {
  alignas(64) float l[16];
  _mm512_store_ps(l, v);
  float s = 0;
  for (int i = 0; i < 16; ++i) s += l[i];
  return s;
}

// Row-wise softmax of scale * x over n values, in place.
void SoftmaxRow(float* x, int64_t n, float scale) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) mx = _mm512_maskz_max_ps(kAll, mx, _mm512_loadu_ps(x + j));
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - j)) - 1);
  if (j < n) mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, x + j));
  const __m512 m = _mm512_set1_ps(LaneMax(mx));
  const __m512 sc = _mm512_set1_ps(scale);
  __m512 sum = _mm512_setzero_ps();
  for (j = 0; j + 16 <= n; j += 16) {
    const __m512 e = ExpNeg(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j), m), sc));
    sum = _mm512_add_ps(sum, e);
    _mm512_storeu_ps(x + j, e);
  }
  if (j < n) {
    const __m512 e =
        ExpNeg(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + j), m), sc));
    sum = _mm512_mask_add_ps(sum, tail, sum, e);
    _mm512_mask_storeu_ps(x + j, tail, e);
  }
  const __m512 inv = _mm512_set1_ps(1.f / LaneSum(sum));
  for (j = 0; j + 16 <= n; j += 16)
    _mm512_storeu_ps(x + j, _mm512_mul_ps(_mm512_loadu_ps(x + j), inv));
  if (j < n)
    _mm512_mask_storeu_ps(x + j, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + j), inv));
}

// One (batch, head): pack K^T and V, scores, softmax, O.
void AttentionHead(const Attention& a, int64_t bi, int64_t hi, std::vector<float>* scratch) {
  const Tile ts = TileFor(a.sk), to = TileFor(a.d);
  const int64_t sk_pad = (a.sk + ts.nr() - 1) / ts.nr() * ts.nr();
  const int64_t d_pad = (a.d + to.nr() - 1) / to.nr() * to.nr();
  const size_t need = static_cast<size_t>(sk_pad * a.d + a.sq * sk_pad + d_pad * a.sk);
  if (scratch->size() < need) scratch->resize(need);
  float* kp = scratch->data();
  float* s = kp + sk_pad * a.d;
  float* vp = s + a.sq * sk_pad;
  const float* q = a.q + bi * a.qs[0] + hi * a.qs[1];
  const float* k = a.k + bi * a.ks[0] + hi * a.ks[1];
  const float* v = a.v + bi * a.vs[0] + hi * a.vs[1];
  float* o = a.o + bi * a.os[0] + hi * a.os[1];
  // K^T packed in panels of ts.nr() positions: [panel][d][nr], 16 positions per gather.
  const int nr = ts.nr();
  const __m512i idx =
      _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                         _mm512_set1_epi32(static_cast<int>(a.ks[2])));
  for (int64_t j0 = 0; j0 < sk_pad; j0 += 16) {
    const int64_t valid = std::min<int64_t>(16, a.sk - j0);
    float* dst = kp + (j0 / nr) * a.d * nr + (j0 % nr);
    if (valid <= 0) {
      for (int64_t dd = 0; dd < a.d; ++dd) _mm512_storeu_ps(dst + dd * nr, _mm512_setzero_ps());
      continue;
    }
    const __mmask16 mk = static_cast<__mmask16>(valid == 16 ? 0xFFFF : (1u << valid) - 1);
    const float* src = k + j0 * a.ks[2];
    for (int64_t dd = 0; dd < a.d; ++dd) {
      _mm512_storeu_ps(dst + dd * nr,
                       _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, idx, src + dd, 4));
    }
  }
  // V packed in panels of to.nr() head-dim values: [panel][sk][nr].
  for (int64_t c0 = 0; c0 < a.d; c0 += to.nr()) {
    const int64_t w = std::min<int64_t>(to.nr(), a.d - c0);
    float* dst = vp + c0 * a.sk;
    for (int64_t j = 0; j < a.sk; ++j) {
      std::memcpy(dst + j * to.nr(), v + j * a.vs[2] + c0, static_cast<size_t>(w) * sizeof(float));
      if (w < to.nr()) {
        std::memset(dst + j * to.nr() + w, 0, static_cast<size_t>(to.nr() - w) * sizeof(float));
      }
    }
  }
  GemmOneThread(ts, a.sq, a.sk, a.d, q, a.qs[2], kp, s, sk_pad);
  for (int64_t i = 0; i < a.sq; ++i) SoftmaxRow(s + i * sk_pad, a.sk, a.scale);
  GemmOneThread(to, a.sq, a.d, a.sk, s, sk_pad, vp, o, a.os[2]);
}

}  // namespace

void RunAttentionAvx512(const Attention& a) {
  const int64_t tasks = a.batch * a.heads;
  const int nt = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), tasks));
  auto run = [&](int tid, int n) {
    thread_local std::vector<float> scratch;
    for (int64_t t = tasks * tid / n; t < tasks * (tid + 1) / n; ++t) {
      AttentionHead(a, t / a.heads, t % a.heads, &scratch);
    }
  };
  if (nt <= 1) {
    run(0, 1);
    return;
  }
#pragma omp parallel num_threads(nt)
  run(omp_get_thread_num(), omp_get_num_threads());
}

void RunAvx512(const Problem& p) {
  const Epi e = EpiOf(p.ops);
  auto run = [&](int tid, int nt) {
    if (p.tile.mr == 8 && p.tile.nv == 3) RunTile<8, 3>(p, e, tid, nt);
    if (p.tile.mr == 6 && p.tile.nv == 4) RunTile<6, 4>(p, e, tid, nt);
    if (p.tile.mr == 12 && p.tile.nv == 2) RunTile<12, 2>(p, e, tid, nt);
  };
  const int nt = omp_get_max_threads();
  if (nt <= 1) {
    run(0, 1);
    return;
  }
#pragma omp parallel num_threads(nt)
  run(omp_get_thread_num(), omp_get_num_threads());
}

// ----------------------------------------------------------------------------- inverted residual

namespace {

// The depthwise conv's post-ops on one vector: none or one ReLU / clip as a clamp to [lo, hi]
// (the common case, two instructions), else each op in turn (leaky ReLU, several ops).
struct DwAct {
  explicit DwAct(const Epi& e) : e_(e) {
    if (e.n == 0) {
      clamp_ = true;
    } else if (e.n == 1 && e.kind[0] == OpKind::kClip) {
      clamp_ = true;
      lo_ = _mm512_set1_ps(e.alpha[0]);
      hi_ = _mm512_set1_ps(e.beta[0]);
    } else if (e.n == 1 && e.kind[0] == OpKind::kRelu && e.alpha[0] == 0.f) {
      clamp_ = true;
      lo_ = _mm512_setzero_ps();
    }
  }
  __m512 operator()(__m512 v) const {
    if (clamp_) return _mm512_maskz_min_ps(kAll, _mm512_maskz_max_ps(kAll, v, lo_), hi_);
    for (int o = 0; o < e_.n; ++o) {
      if (e_.kind[o] == OpKind::kClip) {
        v = _mm512_maskz_min_ps(kAll, _mm512_maskz_max_ps(kAll, v, _mm512_set1_ps(e_.alpha[o])),
                                _mm512_set1_ps(e_.beta[o]));
      } else if (e_.kind[o] == OpKind::kRelu) {
        const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
        v = _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(e_.alpha[o]));
      }
    }
    return v;
  }

 private:
  Epi e_;
  bool clamp_ = false;
  __m512 lo_ = _mm512_set1_ps(-INFINITY), hi_ = _mm512_set1_ps(INFINITY);
};

// kPix output pixels of one 16-channel group of a 3x3 depthwise row with stride S: each input
// pixel of the three rows is loaded once and feeds the (up to 3) outputs that read it.
// `in[kh]` points at the first input pixel's 16 channels, `c` floats between pixels.
template <int S, int kPix>
inline void DepthwisePixels(const float* const in[3], int64_t c, const __m512 wv[9], __m512 bv,
                            const DwAct& act, float* out) {
  constexpr int kIn = (kPix - 1) * S + 3;
  __m512 acc[kPix];
#pragma GCC unroll 8
  for (int i = 0; i < kPix; ++i) acc[i] = bv;
#pragma GCC unroll 3
  for (int kh = 0; kh < 3; ++kh) {
    const float* p = in[kh];
#pragma GCC unroll 17
    for (int j = 0; j < kIn; ++j) {
      const __m512 v = _mm512_loadu_ps(p);
      // One add per pixel: g++ otherwise precomputes all 51 pixel offsets and spills them.
      p += c;
      asm("" : "+r"(p));
#pragma GCC unroll 3
      for (int kw = 0; kw < 3; ++kw) {
        const int i = (j - kw) / S;
        if (j >= kw && (j - kw) % S == 0 && i < kPix) {
          acc[i] = _mm512_fmadd_ps(v, wv[kh * 3 + kw], acc[i]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < kPix; ++i) _mm512_storeu_ps(out + i * c, act(acc[i]));
}

// One output row of a 3x3 depthwise conv over c channels (c % 16 == 0). rows[kh] are the input
// rows padded with a zero pixel at both ends ((w + 2) x c; a row outside the image is all
// zeros); output pixel x reads padded pixels x * S - pad_l + 1 + kw.
template <int S>
void DepthwiseRow(const float* const rows[3], int64_t ow, int64_t c, int pad_l, const float* wd,
                  const float* bd, const DwAct& act, float* out) {
  constexpr int kPix = 8;  // output pixels in flight: 8 independent chains of 9 FMAs
  for (int64_t g = 0; g < c; g += 16) {
    __m512 wv[9];
    for (int j = 0; j < 9; ++j) wv[j] = _mm512_loadu_ps(wd + j * c + g);
    const __m512 bv = bd != nullptr ? _mm512_loadu_ps(bd + g) : _mm512_setzero_ps();
    const int64_t base = (1 - pad_l) * c + g;
    int64_t x = 0;
    for (; x + kPix <= ow; x += kPix) {
      const float* in[3] = {rows[0] + base + x * S * c, rows[1] + base + x * S * c,
                            rows[2] + base + x * S * c};
      DepthwisePixels<S, kPix>(in, c, wv, bv, act, out + x * c + g);
    }
    for (; x < ow; ++x) {
      const float* in[3] = {rows[0] + base + x * S * c, rows[1] + base + x * S * c,
                            rows[2] + base + x * S * c};
      DepthwisePixels<S, 1>(in, c, wv, bv, act, out + x * c + g);
    }
  }
}

// Output rows [t0, t1) of the whole batch (row t is sample t / oh, row t % oh).
void InvertedResidualRows(const InvertedResidual& r, const Epi& e1, const Epi& ed, const Epi& e2,
                          int64_t t0, int64_t t1, std::vector<float>* scratch) {
  const DwAct act(ed);
  const Lean lean1 = LeanOf(e1), lean2 = LeanOf(e2);
  const int64_t padw = (r.w + 2) * r.cmid;
  // Project rows in bands of >= 32 pixels: the project GEMM's B is read once per band.
  const int64_t band = std::min<int64_t>(r.oh, (32 + r.ow - 1) / r.ow);
  scratch->resize(static_cast<size_t>(4 * padw + band * r.ow * r.cmid + 16));
  // 3 expanded rows, each padded; 64-byte aligned, so that no load or store of a pixel's 16
  // channels spans two cache lines.
  float* ring = scratch->data() + (16 - reinterpret_cast<uintptr_t>(scratch->data()) / 4 % 16) % 16;
  float* zero = ring + 3 * padw;  // the row above / below the image
  float* mid = zero + padw;       // the band's depthwise output
  std::fill(zero, zero + padw, 0.f);
  for (int s = 0; s < 3; ++s) {
    std::fill(ring + s * padw, ring + s * padw + r.cmid, 0.f);
    std::fill(ring + (s + 1) * padw - r.cmid, ring + (s + 1) * padw, 0.f);
  }
  bool residual = false;
  for (int o = 0; o < e2.n; ++o) residual = residual || e2.kind[o] == OpKind::kSum;
  int64_t in_slot[3] = {-1, -1, -1};  // the expanded row (n * h + row) each ring slot holds
  for (int64_t t = t0; t < t1;) {
    const int64_t n = t / r.oh, y0 = t % r.oh;
    const int64_t rows = std::min({band, t1 - t, r.oh - y0});
    for (int64_t j = 0; j < rows; ++j) {
      const float* in[3];
      for (int kh = 0; kh < 3; ++kh) {
        const int64_t e = (y0 + j) * r.stride - r.pad_t + kh;
        if (e < 0 || e >= r.h) {
          in[kh] = zero;
          continue;
        }
        // Rows e, e + 1, e + 2 are in distinct slots, so filling one never evicts another of
        // this output row's.
        const int s = static_cast<int>(e % 3);
        float* slot = ring + s * padw;
        const int64_t id = n * r.h + e;
        if (in_slot[s] != id) {
          const float* xr = r.x + id * r.w * r.cin;
          if (r.w1 != nullptr) {
            GemmOneThread(r.t1, r.w, r.cmid, r.cin, xr, r.cin, r.w1, slot + r.cmid, r.cmid, r.b1,
                          e1, lean1);
          } else {
            std::memcpy(slot + r.cmid, xr, static_cast<size_t>(r.w * r.cin) * sizeof(float));
          }
          in_slot[s] = id;
        }
        in[kh] = slot;
      }
      float* dw = mid + j * r.ow * r.cmid;
      if (r.stride == 1) {
        DepthwiseRow<1>(in, r.ow, r.cmid, r.pad_l, r.wd, r.bd, act, dw);
      } else {
        DepthwiseRow<2>(in, r.ow, r.cmid, r.pad_l, r.wd, r.bd, act, dw);
      }
    }
    float* yr = r.y + t * r.ow * r.cout;  // the band's rows are consecutive in Y
    if (residual) {  // the sum post-op adds C's content: the block input at the same pixels
      std::memcpy(yr, r.x + t * r.w * r.cin,
                  static_cast<size_t>(rows * r.ow * r.cout) * sizeof(float));
    }
    GemmOneThread(r.t2, rows * r.ow, r.cout, r.cmid, mid, r.cmid, r.w2, yr, r.cout, r.b2, e2,
                  lean2);
    t += rows;
  }
}

}  // namespace

void RunInvertedResidualAvx512(const InvertedResidual& r) {
  const Epi e1 = EpiOf(r.ops1), ed = EpiOf(r.opsd), e2 = EpiOf(r.ops2);
  const int64_t tasks = r.batch * r.oh;
  const int nt = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), tasks));
  auto run = [&](int tid, int n) {
    thread_local std::vector<float> scratch;
    InvertedResidualRows(r, e1, ed, e2, tasks * tid / n, tasks * (tid + 1) / n, &scratch);
  };
  if (nt <= 1) {
    run(0, 1);
    return;
  }
#pragma omp parallel num_threads(nt)
  run(omp_get_thread_num(), omp_get_num_threads());
}

}  // namespace kiln::cpu::gemm
