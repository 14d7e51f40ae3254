// kiln's FP32 GEMM (gemm_f32.h): tile choice, B packing and the CPU check. The kernel itself is
// gemm_f32_avx512.cc.
#include "backends/cpu/gemm_f32.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>

namespace kiln::cpu::gemm {

void RunAvx512(const Problem& p);                           // gemm_f32_avx512.cc
void RunAttentionAvx512(const Attention& a);                // gemm_f32_avx512.cc
void RunInvertedResidualAvx512(const InvertedResidual& r);  // gemm_f32_avx512.cc

Tile TileFor(int64_t n) {
  const Tile tiles[] = {{8, 3}, {6, 4}, {12, 2}};
  Tile best = tiles[0];
  int64_t best_cols = INT64_MAX;
  for (const Tile& t : tiles) {
    const int64_t cols = (n + t.nr() - 1) / t.nr() * t.nr();
    if (cols < best_cols) {
      best = t;
      best_cols = cols;
    }
  }
  return best;
}

bool Available() {
  static const bool ok = [] {
    const char* env = std::getenv("KILN_CPU_GEMM");
    if (env != nullptr && std::strcmp(env, "0") == 0) return false;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512vl")) return false;
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    return isa == dnnl::cpu_isa::avx512_core || isa == dnnl::cpu_isa::avx512_core_vnni ||
           isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
  }();
  return ok;
}

size_t PackedFloats(int64_t k, int64_t n, Tile tile) {
  const int64_t nr = tile.nr();
  return static_cast<size_t>((n + nr - 1) / nr * k * nr);
}

void PackB(const float* b, int64_t k, int64_t n, int64_t ldb, Tile tile, float* out) {
  const int64_t nr = tile.nr();
  for (int64_t col = 0; col < n; col += nr) {
    const int64_t w = std::min(nr, n - col);
    for (int64_t r = 0; r < k; ++r) {
      float* dst = out + (col * k) + r * nr;
      std::memcpy(dst, b + r * ldb + col, static_cast<size_t>(w) * sizeof(float));
      if (w < nr) std::memset(dst + w, 0, static_cast<size_t>(nr - w) * sizeof(float));
    }
  }
}

void Run(const Problem& p) { RunAvx512(p); }

void RunAttention(const Attention& a) { RunAttentionAvx512(a); }

Tile BlockTileFor(int64_t n) { return n <= 16 ? Tile{16, 1} : TileFor(n); }

bool InvertedResidualFits(int64_t h, int64_t w, int64_t c, int64_t oh, int64_t ow, int stride,
                          int pad_t, int pad_l) {
  // Output pixel x reads padded input pixels x * stride - pad_l + 1 + (0..2), which must lie
  // within the row's w + 2; rows outside the image read zeros whatever the pads.
  return c > 0 && c % 16 == 0 && h > 0 && w > 0 && oh > 0 && ow > 0 &&
         (stride == 1 || stride == 2) && pad_t >= 0 && pad_t <= 1 && pad_l >= 0 && pad_l <= 1 &&
         (ow - 1) * stride - pad_l + 2 <= w;
}

void RunInvertedResidual(const InvertedResidual& r) { RunInvertedResidualAvx512(r); }

std::string ImplName(Tile tile) {
  return "kiln_gemm:avx512 (" + std::to_string(tile.mr) + "x" + std::to_string(tile.nr()) + ")";
}

}  // namespace kiln::cpu::gemm
