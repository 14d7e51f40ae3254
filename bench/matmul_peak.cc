// kiln_matmul_peak — what oneDNN's FP32 matmul reaches on BERT-base's GEMMs (batch 1, seq 128),
// the yardstick for kiln's per-layer profile of bench/models/bert_base.onnx.
//
//   build-bench/bin/kiln_matmul_peak [--threads N] [--iterations N] [--layers N]
//
// Three measurements, every matmul with its weights in the layout oneDNN picks
// (format_tag::any, reordered once outside the timed loop, as kiln's engine does) and a bias:
//
//  hot    one weight copy, run back to back: the weights stay in L3 (they do not fit L2).
//  cold   --layers distinct weight copies rotated (12 x 9.4 MB for the FFN: far above L3), the
//         way a BERT forward pass meets them: every weight byte comes from DRAM once per run.
//  chain  a BERT-base encoder built from oneDNN primitives alone, in kiln's order per layer:
//         QKV matmul (bias), Q.K^T (scale post-op), softmax, P.V, attention output (bias, sum
//         post-op = residual), layer norm, FFN1 (bias, gelu_erf), FFN2 (bias, sum), layer norm,
//         each layer its own weights. No copies, no framework: the floor of a oneDNN-primitive
//         engine on this machine, per kind and in total.
//
//  peak   the FP32 multiply-add peak of the cores themselves: each thread runs independent
//         AVX-512 (else AVX2) FMAs on registers only, no memory traffic; and the time BERT-base's
//         GEMM FLOPs would take at that peak, a floor no FP32 engine can beat on this machine.
//
// GFLOP/s count 2 FLOPs per multiply-add, on the median run (per kind: the median of its
// per-run sums). Run under `chrt -f 1`.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "omp_threads.h"

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;
using Clock = std::chrono::steady_clock;

constexpr int kSeq = 128, kHidden = 768, kHeads = 12, kHeadDim = 64, kFfn = 3072;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void Fill(const memory& m, float scale, std::mt19937* rng) {
  std::uniform_real_distribution<float> u(-scale, scale);
  float* p = static_cast<float*>(m.get_data_handle());
  for (size_t i = 0; i < m.get_desc().get_size() / sizeof(float); ++i) p[i] = u(*rng);
}

enum class Epilogue { kBias, kBiasGelu, kBiasSum };

// A [M,K] x [K,N] matmul with bias and `epi`; `lda` is A's row stride; weights per layer.
struct Gemm {
  int m, k, n;
  dnnl::matmul prim;
  memory bias;
  std::vector<memory> weights;
  std::string impl;
  double Flops() const { return 2.0 * m * k * n; }
};

Gemm MakeGemm(const dnnl::engine& eng, int m, int k, int n, int lda, Epilogue epi, int copies,
              std::mt19937* rng) {
  const memory::desc a({m, k}, dt::f32, memory::dims{lda, 1});
  const memory::desc w({k, n}, dt::f32, tag::any), d({m, n}, dt::f32, tag::ab),
      b({1, n}, dt::f32, tag::ab);
  dnnl::post_ops ops;
  if (epi == Epilogue::kBiasGelu) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0, 0);
  if (epi == Epilogue::kBiasSum) ops.append_sum(1.f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, w, b, d), attr, eng);
  Gemm g{m, k, n, dnnl::matmul(pd), memory(b, eng), {}, pd.impl_info_str()};
  Fill(g.bias, 0.1f, rng);
  for (int i = 0; i < copies; ++i) {
    g.weights.emplace_back(pd.weights_desc(), eng);
    Fill(g.weights.back(), 0.05f, rng);
  }
  return g;
}

void RunGemm(Gemm& g, int copy, const memory& src, const memory& dst, dnnl::stream& s) {
  g.prim.execute(s, {{DNNL_ARG_SRC, src},
                     {DNNL_ARG_WEIGHTS, g.weights[copy]},
                     {DNNL_ARG_BIAS, g.bias},
                     {DNNL_ARG_DST, dst}});
}

// hot / cold: median ms per matmul over `iterations` passes over `copies` weight copies.
void HotCold(const dnnl::engine& eng, dnnl::stream& s, int layers, int iterations,
             std::mt19937* rng) {
  struct Shape {
    const char* name;
    int k, n;
    Epilogue epi;
  };
  const Shape shapes[] = {{"QKV (bias)", kHidden, 3 * kHidden, Epilogue::kBias},
                          {"attn out (bias+sum)", kHidden, kHidden, Epilogue::kBiasSum},
                          {"FFN1 (bias+gelu)", kHidden, kFfn, Epilogue::kBiasGelu},
                          {"FFN2 (bias+sum)", kFfn, kHidden, Epilogue::kBiasSum}};
  std::printf("%-22s %-16s %-5s %9s %9s\n", "matmul M=128", "impl", "", "ms", "GFLOP/s");
  for (const Shape& sh : shapes) {
    Gemm g = MakeGemm(eng, kSeq, sh.k, sh.n, sh.k, sh.epi, layers, rng);
    memory src(memory::desc({kSeq, sh.k}, dt::f32, tag::ab), eng);
    memory dst(memory::desc({kSeq, sh.n}, dt::f32, tag::ab), eng);
    Fill(src, 1.f, rng);
    Fill(dst, 1.f, rng);
    for (int cold = 0; cold < 2; ++cold) {
      const int copies = cold ? layers : 1;
      const int reps = cold ? 1 : layers;
      std::vector<double> ms;
      for (int it = 0; it < iterations + 1; ++it) {
        const auto t0 = Clock::now();
        for (int r = 0; r < reps; ++r) {
          for (int c = 0; c < copies; ++c) RunGemm(g, c, src, dst, s);
        }
        s.wait();
        if (it > 0) ms.push_back(MsSince(t0) / (reps * copies));
      }
      const double med = Median(ms);
      std::printf("%-22s %-16s %-5s %9.3f %9.1f\n", sh.name, g.impl.c_str(), cold ? "cold" : "hot",
                  med, g.Flops() / (med * 1e6));
    }
  }
}

// chain: the encoder from oneDNN primitives; per-kind mean ms per run and the median total.
void Chain(const dnnl::engine& eng, dnnl::stream& s, int layers, int iterations,
           std::mt19937* rng) {
  const int qkv_n = 3 * kHidden;
  Gemm qkv = MakeGemm(eng, kSeq, kHidden, qkv_n, kHidden, Epilogue::kBias, layers, rng);
  Gemm out = MakeGemm(eng, kSeq, kHidden, kHidden, kHidden, Epilogue::kBiasSum, layers, rng);
  Gemm ffn1 = MakeGemm(eng, kSeq, kHidden, kFfn, kHidden, Epilogue::kBiasGelu, layers, rng);
  Gemm ffn2 = MakeGemm(eng, kSeq, kFfn, kHidden, kFfn, Epilogue::kBiasSum, layers, rng);

  // Attention on Q, K, V read in place from the QKV output [S, 3H] as [heads, S, D] views.
  const memory::desc q_md({kHeads, kSeq, kHeadDim}, dt::f32, memory::dims{kHeadDim, qkv_n, 1});
  memory::desc kt_md({kHeads, kHeadDim, kSeq}, dt::f32, memory::dims{kHeadDim, 1, qkv_n});
  kt_md.data.offset0 = kHidden;
  memory::desc v_md = q_md;
  v_md.data.offset0 = 2 * kHidden;
  const memory::desc sc_md({kHeads, kSeq, kSeq}, dt::f32, tag::abc);
  const memory::desc ctx_md({kHeads, kSeq, kHeadDim}, dt::f32,
                            memory::dims{kHeadDim, kHidden, 1});  // = [S, H] row-major
  dnnl::post_ops scale_op;
  scale_op.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, 0.125f, 0.f);
  dnnl::primitive_attr scale_attr;
  scale_attr.set_post_ops(scale_op);
  dnnl::matmul::primitive_desc qk_pd(dnnl::matmul::desc(q_md, kt_md, sc_md), scale_attr, eng);
  dnnl::matmul::primitive_desc av_pd(dnnl::matmul::desc(sc_md, v_md, ctx_md), eng);
  dnnl::softmax_v2_forward::primitive_desc sm_pd(
      dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference,
                                     dnnl::algorithm::softmax_accurate, sc_md, sc_md, 2),
      eng);
  const memory::desc x_md({kSeq, kHidden}, dt::f32, tag::ab);
  dnnl::layer_normalization_forward::primitive_desc ln_pd(
      dnnl::layer_normalization_forward::desc(
          dnnl::prop_kind::forward_inference, x_md, 1e-5f,
          dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift),
      eng);
  dnnl::matmul qk(qk_pd), av(av_pd);
  dnnl::softmax_v2_forward sm(sm_pd);
  dnnl::layer_normalization_forward ln(ln_pd);

  memory x(x_md, eng), qkv_buf(memory::desc({kSeq, qkv_n}, dt::f32, tag::ab), eng);
  memory h(memory::desc({kSeq, kFfn}, dt::f32, tag::ab), eng), ctx(x_md, eng), sc(sc_md, eng);
  memory gamma(memory::desc({kHidden}, dt::f32, tag::a), eng), beta(gamma.get_desc(), eng);
  Fill(x, 1.f, rng);
  Fill(gamma, 1.f, rng);
  Fill(beta, 0.1f, rng);
  const memory q(q_md, eng, qkv_buf.get_data_handle()), kt(kt_md, eng, qkv_buf.get_data_handle()),
      v(v_md, eng, qkv_buf.get_data_handle()), ctx_v(ctx_md, eng, ctx.get_data_handle());

  std::map<std::string, double> kind_ms;            // this run's
  std::map<std::string, std::vector<double>> runs;  // per kind, one entry per timed run
  std::vector<double> totals;
  auto timed = [&](const char* kind, auto&& f) {
    const auto t0 = Clock::now();
    f();
    s.wait();
    kind_ms[kind] += MsSince(t0);
  };
  auto norm = [&] {
    ln.execute(
        s, {{DNNL_ARG_SRC, x}, {DNNL_ARG_SCALE, gamma}, {DNNL_ARG_SHIFT, beta}, {DNNL_ARG_DST, x}});
  };
  for (int it = 0; it < iterations + 1; ++it) {
    kind_ms.clear();
    const auto t0 = Clock::now();
    for (int l = 0; l < layers; ++l) {
      timed("1 QKV matmul", [&] { RunGemm(qkv, l, x, qkv_buf, s); });
      timed("2 QK^T+scale", [&] {
        qk.execute(s, {{DNNL_ARG_SRC, q}, {DNNL_ARG_WEIGHTS, kt}, {DNNL_ARG_DST, sc}});
      });
      timed("3 softmax", [&] { sm.execute(s, {{DNNL_ARG_SRC, sc}, {DNNL_ARG_DST, sc}}); });
      timed("4 P.V", [&] {
        av.execute(s, {{DNNL_ARG_SRC, sc}, {DNNL_ARG_WEIGHTS, v}, {DNNL_ARG_DST, ctx_v}});
      });
      timed("5 attn out matmul", [&] { RunGemm(out, l, ctx, x, s); });
      timed("6 layer norm", norm);
      timed("7 FFN1+gelu", [&] { RunGemm(ffn1, l, x, h, s); });
      timed("8 FFN2+residual", [&] { RunGemm(ffn2, l, h, x, s); });
      timed("6 layer norm", norm);
    }
    if (it == 0) continue;
    totals.push_back(MsSince(t0));
    for (const auto& [kind, ms] : kind_ms) runs[kind].push_back(ms);
  }
  std::printf("\nchain: %d layers from oneDNN primitives (impl QK^T %s, P.V %s, softmax %s)\n",
              layers, qk_pd.impl_info_str(), av_pd.impl_info_str(), sm_pd.impl_info_str());
  for (const auto& [kind, ms] : runs) {
    std::printf("  %-22s %8.3f ms per run (median)\n", kind.c_str() + 2, Median(ms));
  }
  const double gemm_flops = layers * (qkv.Flops() + out.Flops() + ffn1.Flops() + ffn2.Flops() +
                                      4.0 * kHeads * kSeq * kSeq * kHeadDim);
  const double med = Median(totals);
  std::printf("  total (median)         %8.3f ms = %.1f GFLOP/s over %.2f GFLOP\n", med,
              gemm_flops / (med * 1e6), gemm_flops / 1e9);
}

// 12 independent FMA chains per thread hide the FMA latency (4 cycles x 2-3 pipes); returns the
// FLOPs done. The accumulators are folded into *sink so the loop cannot be optimized away.
__attribute__((target("avx512f"))) double FmaAvx512(int64_t reps, float* sink) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * static_cast<float>(i + 1));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t r = 0; r < reps; ++r) {
#pragma GCC unroll 12  // keeps acc[] in registers
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 t = acc[0];
  for (int i = 1; i < 12; ++i) t = _mm512_add_ps(t, acc[i]);
  float v[16];
  _mm512_storeu_ps(v, t);
  *sink = 0;
  for (float x : v) *sink += x;
  return 2.0 * 16 * 12 * static_cast<double>(reps);
}

__attribute__((target("avx2,fma"))) double FmaAvx2(int64_t reps, float* sink) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * static_cast<float>(i + 1));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t r = 0; r < reps; ++r) {
#pragma GCC unroll 12  // keeps acc[] in registers
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 t = acc[0];
  for (int i = 1; i < 12; ++i) t = _mm256_add_ps(t, acc[i]);
  float v[8];
  _mm256_storeu_ps(v, t);
  *sink = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
  return 2.0 * 8 * 12 * static_cast<double>(reps);
}

// The cores' FP32 FMA peak with `threads` threads (GFLOP/s, the best of 5 runs of ~0.2 s).
void Peak(int threads, int layers) {
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const int64_t reps = avx512 ? 20'000'000 : 40'000'000;
  double best = 0;
  for (int run = 0; run < 5; ++run) {
    std::vector<float> sink(static_cast<size_t>(threads) * 16);
    std::vector<double> flops(static_cast<size_t>(threads));
    std::vector<std::thread> pool;
    const auto t0 = Clock::now();
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        flops[t] = avx512 ? FmaAvx512(reps, &sink[t * 16]) : FmaAvx2(reps, &sink[t * 16]);
      });
    }
    for (auto& th : pool) th.join();
    const double ms = MsSince(t0);
    double total = 0;
    for (double f : flops) total += f;
    best = std::max(best, total / (ms * 1e6));
  }
  const double bert_gemm_flops =
      layers * (2.0 * kSeq * kHidden * (3 * kHidden + kHidden + 2 * kFfn) +
                4.0 * kHeads * kSeq * kSeq * kHeadDim);
  std::printf("\npeak: %s FMAs on registers, %d threads: %.1f GFLOP/s\n",
              avx512 ? "AVX-512" : "AVX2", threads, best);
  std::printf("  BERT-base GEMMs (%d layers, seq %d, %.2f GFLOP) at that peak: %.3f ms\n", layers,
              kSeq, bert_gemm_flops / 1e9, bert_gemm_flops / (best * 1e6));
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, iterations = 10, layers = 12;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--threads") && has_value) {
      threads = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--iterations") && has_value) {
      iterations = std::max(1, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--layers") && has_value) {
      layers = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: kiln_matmul_peak [--threads N] [--iterations N] [--layers N]\n");
      return 2;
    }
  }
  const int omp_threads = SetOmpThreads(threads);
  const dnnl::version_t* ver = dnnl_version();
  std::printf("oneDNN %d.%d.%d, CPU ISA %#x, threads %d, %d layers, %d iterations\n", ver->major,
              ver->minor, ver->patch, static_cast<int>(dnnl::get_effective_cpu_isa()), omp_threads,
              layers, iterations);
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  std::mt19937 rng(0);
  HotCold(eng, s, layers, iterations, &rng);
  Chain(eng, s, layers, iterations, &rng);
  Peak(omp_threads > 0 ? omp_threads : static_cast<int>(std::thread::hardware_concurrency()),
       layers);
  return 0;
}
