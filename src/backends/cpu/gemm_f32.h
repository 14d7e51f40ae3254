// kiln's own FP32 GEMM for matmuls with constant weights (AVX-512), used by the CPU engine where
// it is faster than oneDNN 2.6's brgemm (docs/design.md, "kiln's FP32 GEMM").
//
//   C[M, N] = epilogue(A[M, K] . B[K, N] + bias[N])
//
// B is packed once, at build, into panels of NR columns ([ceil(N / NR)][K][NR], zero-padded):
// the micro-kernel keeps an MR x NR tile of C in 24 zmm registers, loads NR / 16 vectors of B
// and broadcasts MR values of A per k. While a thread computes one panel it prefetches the next
// into L2, so the weights' stream from DRAM (BERT-base reads 340 MB of them per run) overlaps
// the multiply-adds. Threads split the panels (many panels) or the rows of A (few panels).
// The epilogue applies oneDNN-style post-ops in order: a sum (C's previous content, the
// residual), ReLU / leaky ReLU, clip (ReLU6), or GELU (erf), so an engine layer keeps its fusion.
// The same micro-kernel also runs attention and MobileNet's inverted-residual blocks (below).
//
// The kernel is compiled for AVX-512 (gemm_f32_avx512.cc) and runs only where Available().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::cpu::gemm {

// Register tile shapes: MR rows x NV zmm vectors (NR = 16 * NV columns).
struct Tile {
  int mr = 8, nv = 3;
  int nr() const { return 16 * nv; }
};
// The tile for N columns: the fewest padded columns, ties to 8x48, then 6x64, then 12x32.
Tile TileFor(int64_t n);

enum class OpKind { kSum, kRelu, kGeluErf, kClip };
struct Op {
  OpKind kind = OpKind::kRelu;
  float alpha = 0;  // kRelu: the slope below zero; kClip: the lower bound
  float beta = 0;   // kClip: the upper bound (ReLU6: 0, 6)
};

struct Problem {
  int64_t m = 0, n = 0, k = 0;
  const float* a = nullptr;  // [m, k], row stride lda
  int64_t lda = 0;
  const float* b = nullptr;  // packed (PackB) with `tile`
  float* c = nullptr;        // [m, n], row stride ldc; read first when ops has a kSum
  int64_t ldc = 0;
  const float* bias = nullptr;  // [n] or null
  std::vector<Op> ops;
  Tile tile;
  // The engine's next GEMM (its packed B and shape), or null: while a thread computes its last
  // panel it prefetches its first one of the next GEMM into L2, so that GEMM does not start on
  // a cold DRAM stream (the layers between, layer norm, attention, are short).
  const float* next_b = nullptr;
  int64_t next_m = 0, next_n = 0, next_k = 0;
  Tile next_tile;
};

// The engine uses the kernel for weights of at least this many values (1 MB): there its
// prefetching of the weight stream wins; on smaller ones oneDNN's kernels are as fast.
inline constexpr int64_t kMinWeights = int64_t{1} << 18;

// True when this CPU runs the kernel: AVX-512F, and oneDNN's effective ISA is at least
// avx512_core (so ONEDNN_MAX_CPU_ISA=AVX2, which simulates an older CPU, turns it off too).
// KILN_CPU_GEMM=0 turns it off as well.
bool Available();

// Floats of a packed B of k x n with `tile` (n padded to a multiple of NR).
size_t PackedFloats(int64_t k, int64_t n, Tile tile);
// Packs the row-major B[k, n] (row stride ldb) into `out` (PackedFloats floats).
void PackB(const float* b, int64_t k, int64_t n, int64_t ldb, Tile tile, float* out);

// Runs the GEMM on the calling thread's OpenMP thread count (omp_get_max_threads). Requires
// Available(); the tile must be one TileFor can return.
void Run(const Problem& p);

// Scaled dot-product attention, one (batch, head) at a time: O = softmax(scale Q K^T) V, with
// the two products on the GEMM's micro-kernel (K^T and V packed per head into a thread's
// scratch, the scores in it too: 128 KB for BERT-base's 128 x 128 x 64 heads) and the softmax
// between them on the rows while they are in L1 / L2. Q, K, V and O are strided views (the
// head split of a merged QKV projection, the head merge after it) with unit stride along the
// head dim; strides are in floats, for [batch, head, position].
struct Attention {
  int64_t batch = 0, heads = 0, sq = 0, sk = 0, d = 0;
  float scale = 1.f;
  const float *q = nullptr, *k = nullptr, *v = nullptr;  // K as [b, h, sk, d]
  float* o = nullptr;
  int64_t qs[3] = {}, ks[3] = {}, vs[3] = {}, os[3] = {};
};
// Largest sq x sk scores matrix (a thread's scratch) the fused kernel takes.
inline constexpr int64_t kMaxAttentionScores = int64_t{1} << 20;
void RunAttention(const Attention& a);

// An inverted-residual block (MobileNetV2's, and MobileNetV1's depthwise-separable pair without
// the expand) on channels-last FP32 tensors:
//   Y = ops2(project(opsd(depthwise3x3(ops1(expand(X)))))) [+ X: ops2 holds a kSum]
// computed row by row: each thread keeps the three expanded rows a depthwise output row reads in
// a ring (each computed once, by the GEMM micro-kernel), runs the depthwise row from it and the
// project GEMM on a band of those rows, so the expanded tensor (4.8 MB at 112x112x96) never
// leaves L1 / L2 and the block is one step instead of three.
struct InvertedResidual {
  int64_t batch = 0, h = 0, w = 0, cin = 0;  // X [batch, h, w, cin], dense
  int64_t cmid = 0;                      // depthwise channels (cin without an expand), % 16 == 0
  int64_t oh = 0, ow = 0, cout = 0;      // Y [batch, oh, ow, cout], dense
  int stride = 1, pad_t = 1, pad_l = 1;  // the depthwise conv's (3x3, pads <= 1)
  const float* x = nullptr;
  float* y = nullptr;
  const float *w1 = nullptr, *b1 = nullptr;  // expand: packed [cin, cmid] (t1), bias; w1 null: none
  Tile t1;
  std::vector<Op> ops1;
  const float *wd = nullptr, *bd = nullptr;  // depthwise: [3][3][cmid], bias (or null)
  std::vector<Op> opsd;                      // ReLU / clip only
  const float *w2 = nullptr, *b2 = nullptr;  // project: packed [cmid, cout] (t2), bias
  Tile t2;
  std::vector<Op> ops2;  // a kSum adds X (stride 1, cin == cout, same size)
};
// The inverted-residual block's tile for a GEMM of n columns: 16x16 for n <= 16 (a 16-channel
// project would waste half of a 12x32 tile's multiply-adds), else TileFor(n).
Tile BlockTileFor(int64_t n);
// Whether the row-wise kernel takes a depthwise conv of this geometry (3x3, stride s, pads <= 1).
bool InvertedResidualFits(int64_t h, int64_t w, int64_t c, int64_t oh, int64_t ow, int stride,
                          int pad_t, int pad_l);
void RunInvertedResidual(const InvertedResidual& r);

// "kiln_gemm:avx512 (8x48)": the implementation name the engine records for a layer.
std::string ImplName(Tile tile);

}  // namespace kiln::cpu::gemm
