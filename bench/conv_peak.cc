// kiln_conv_peak — the machine's measured oneDNN FP32 convolution peak (a tiny benchdnn).
//
//   build-bench/bin/kiln_conv_peak [--threads N] [--seconds S]
//
// Times forward-inference 3x3 convolutions (stride 1, pad 1) of ResNet shapes with oneDNN
// choosing the layouts (format_tag::any) and reordering weights and activations once, outside
// the timed loop, so only the convolution kernel is measured. Prints GFLOP/s per shape (2 FLOPs
// per multiply-add) and the best, which docs/performance.md calls "the measured oneDNN FP32 conv
// peak". Threads: oneDNN's OpenMP pool (--threads calls omp_set_num_threads; default: the
// OpenMP default).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "omp_threads.h"

namespace {

struct ConvShape {
  const char* name;
  int n, c, k, hw;
};

double TimeConv(dnnl::engine& eng, dnnl::stream& strm, const ConvShape& s, double seconds) {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  const dnnl::memory::dims src_d{s.n, s.c, s.hw, s.hw}, wei_d{s.k, s.c, 3, 3},
      dst_d{s.n, s.k, s.hw, s.hw}, bias_d{s.k}, strides{1, 1}, pad{1, 1};
  dnnl::memory::desc src_any(src_d, dt::f32, tag::any), wei_any(wei_d, dt::f32, tag::any),
      dst_any(dst_d, dt::f32, tag::any), bias_md(bias_d, dt::f32, tag::a);
  dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                       dnnl::algorithm::convolution_direct, src_any, wei_any,
                                       bias_md, dst_any, strides, pad, pad);
  dnnl::convolution_forward::primitive_desc pd(desc, eng);
  dnnl::memory src(pd.src_desc(), eng), wei(pd.weights_desc(), eng), bias(bias_md, eng),
      dst(pd.dst_desc(), eng);
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (dnnl::memory* m : {&src, &wei, &bias}) {
    float* p = static_cast<float*>(m->get_data_handle());
    for (size_t i = 0; i < m->get_desc().get_size() / sizeof(float); ++i) p[i] = u(rng);
  }
  dnnl::convolution_forward conv(pd);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, dst}};
  for (int i = 0; i < 3; ++i) conv.execute(strm, args);
  strm.wait();
  const double flops = 2.0 * s.n * s.k * s.hw * s.hw * s.c * 9;
  std::vector<double> ms;
  const auto start = std::chrono::steady_clock::now();
  while (ms.size() < 5 ||
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() <
             seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    conv.execute(strm, args);
    strm.wait();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  const double gflops = flops / (median * 1e6);
  std::printf("%-28s %-14s median %8.3f ms  min %8.3f ms  %7.1f GFLOP/s (best run %.1f)\n", s.name,
              pd.impl_info_str(), median, ms.front(), gflops, flops / (ms.front() * 1e6));
  return gflops;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  double seconds = 2.0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: kiln_conv_peak [--threads N] [--seconds S]\n");
      return 2;
    }
  }
  const int omp_threads = SetOmpThreads(threads);
  const dnnl::version_t* v = dnnl_version();
  std::printf("oneDNN %d.%d.%d (%s), CPU ISA %#x, threads %d\n", v->major, v->minor, v->patch,
              v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime",
              static_cast<int>(dnnl::get_effective_cpu_isa()), omp_threads);
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const ConvShape shapes[] = {
      {"3x3 64->64 56x56 n1", 1, 64, 64, 56},     {"3x3 128->128 28x28 n1", 1, 128, 128, 28},
      {"3x3 256->256 14x14 n1", 1, 256, 256, 14}, {"3x3 256->256 56x56 n1", 1, 256, 256, 56},
      {"3x3 256->256 28x28 n8", 8, 256, 256, 28}, {"3x3 512->512 14x14 n8", 8, 512, 512, 14},
  };
  double best = 0;
  for (const auto& s : shapes) best = std::max(best, TimeConv(eng, strm, s, seconds));
  std::printf("peak  %.1f GFLOP/s (best median over the shapes above)\n", best);
  return 0;
}
