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
  float alpha[4] = {};
  bool has_sum = false;
};

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

// ----------------------------------------------------------------------------- attention

// C[m, n] = A[m, k] . packed B on one thread, no epilogue.
template <int MR, int NV>
void GemmOneThread(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* bp,
                   float* c, int64_t ldc) {
  constexpr int kNr = 16 * NV;
  const Epi none;
  const int rem = static_cast<int>(n % 16);
  for (int64_t col = 0; col < n; col += kNr) {
    const int nvec = static_cast<int>(std::min<int64_t>(NV, (n - col + 15) / 16));
    const bool ragged = rem != 0 && col + nvec * 16 > n;
    const __mmask16 last = ragged ? static_cast<__mmask16>((1u << rem) - 1) : kAll;
    const float* b = bp + col * k;
    for (int64_t i = 0; i < m; i += MR) {
      const int rows = static_cast<int>(std::min<int64_t>(MR, m - i));
      kMicro<MR, NV>[rows - 1][0](k, a + i * lda, lda, b, c + i * ldc + col, ldc, none, nvec, last,
                                  nullptr, nullptr, false, true);
    }
  }
}

void GemmOneThread(Tile t, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                   const float* bp, float* c, int64_t ldc) {
  if (t.mr == 8) GemmOneThread<8, 3>(m, n, k, a, lda, bp, c, ldc);
  if (t.mr == 6) GemmOneThread<6, 4>(m, n, k, a, lda, bp, c, ldc);
  if (t.mr == 12) GemmOneThread<12, 2>(m, n, k, a, lda, bp, c, ldc);
}

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
  Epi e;
  e.n = static_cast<int>(std::min<size_t>(p.ops.size(), 4));
  for (int o = 0; o < e.n; ++o) {
    e.kind[o] = p.ops[o].kind;
    e.alpha[o] = p.ops[o].alpha;
  }
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

}  // namespace kiln::cpu::gemm
