// INT8 convolutions of the CUDA engine (cuda_build_int8.cc), its fused image stem
// (cuda_build_stem.cc) and its FP8 matmuls (cuda_build_matmul.cc) against the FP32 reference
// kernels:
// a ResNet-style segment (a downsample residual block and an identity one) built in INT8 with
// exact ranges from a reference run, as calibration would give them. Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_engine.h"
#include "int8/int8_test_util.h"

namespace kiln {
namespace {

using testing_cpu::A;
using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

bool HaveGpu() { return cuda::DeviceCount() > 0; }

Attr Is(std::vector<int64_t> v) { return Attr::Ints(std::move(v)); }

// An INT8 build configuration for `b` with the exact ranges of a reference run on `calib` (what
// calibration on that input gives); completes b's value info.
BuildConfig CalibratedConfig(SegmentBuilder* b, const Tensor& calib) {
  std::map<std::string, Tensor> all;
  const auto ran = testing_cpu::RunReference(b->graph(), {calib}, &all);
  EXPECT_TRUE(ran.ok()) << ran.status();
  b->InferValueInfo(all);
  BuildConfig cfg = testing_cpu::Config(b->shapes());
  cfg.precision = Precision::kINT8;
  cfg.int8_ranges = testing_int8::ExactRanges(b->graph(), all);
  return cfg;
}

// image -> 7x7/2 stem + relu -> 3x3/2 max pool = x (ResNet's stem)
//   x -> conv3x3+relu -> conv3x3 (+ downsample 1x1 of x) -> relu = r
//   -> conv3x3+relu -> conv1x1 (+ r) -> relu -> conv1x1 head -> y
SegmentBuilder ResidualNet() {
  SegmentBuilder b;
  b.In("image", {4, 3, 32, 32});
  auto conv = [&](const std::string& in, const std::string& out, int64_t k, int64_t c, int64_t r,
                  uint32_t seed) {
    const float lim = 1.5f / std::sqrt(static_cast<float>(c * r * r));
    b.Init(out + "_w", Random({k, c, r, r}, seed, -lim, lim));
    b.Init(out + "_b", Random({k}, seed + 1, -0.1f, 0.1f));
    const int64_t p = r / 2;
    b.Op("Conv", {in, out + "_w", out + "_b"}, {out}, A({{"pads", Is({p, p, p, p})}}));
  };
  b.Init("stem_w", Random({16, 3, 7, 7}, 9, -0.2f, 0.2f));
  b.Init("stem_b", Random({16}, 10, -0.1f, 0.1f));
  b.Op("Conv", {"image", "stem_w", "stem_b"}, {"stem"},
       A({{"strides", Is({2, 2})}, {"pads", Is({3, 3, 3, 3})}}));
  b.Op("Relu", {"stem"}, {"stem_r"});
  b.Op("MaxPool", {"stem_r"}, {"x"},
       A({{"kernel_shape", Is({3, 3})}, {"strides", Is({2, 2})}, {"pads", Is({1, 1, 1, 1})}}));
  conv("x", "c1", 32, 16, 3, 11);
  b.Op("Relu", {"c1"}, {"c1r"});
  conv("c1r", "c2", 32, 32, 3, 13);
  conv("x", "d", 32, 16, 1, 15);
  b.Op("Add", {"c2", "d"}, {"s1"}).Op("Relu", {"s1"}, {"r"});
  conv("r", "c3", 32, 32, 3, 17);
  b.Op("Relu", {"c3"}, {"c3r"});
  conv("c3r", "c4", 32, 32, 1, 19);
  b.Op("Add", {"c4", "r"}, {"s2"}).Op("Relu", {"s2"}, {"r2"});
  conv("r2", "y", 8, 32, 1, 21);
  b.Out("y");
  return b;
}

TEST(CudaInt8, ResidualNetRunsInInt8) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  EXPECT_TRUE(CudaBackend()->HasKernel(Precision::kINT8));
  SegmentBuilder b = ResidualNet();
  BuildConfig cfg = CalibratedConfig(&b, Random({4, 3, 32, 32}, 3, -1.f, 1.f));
  for (const Node& n : b.graph().nodes) {
    EXPECT_TRUE(CudaBackend()->Supports(n, b.graph(), cfg).ok()) << n.name;
  }
  StatusOr<std::unique_ptr<Engine>> e = CudaBackend()->Build(b.graph(), cfg);
  ASSERT_TRUE(e.ok()) << e.status();
  int int8_layers = 0, int8_out = 0;
  for (const LayerInfo& li : (*e)->Layers()) {
    std::printf("  %-28s %-5s %s\n", li.op.c_str(), li.precision.c_str(),
                li.implementation.c_str());
    if (li.precision == "INT8") ++int8_layers;
    if (li.implementation.find("int8->int8") != std::string::npos) ++int8_out;
  }
  // The 3-channel stem stays FP16 (cuDNN's INT8 convolutions want channels in fours); the max
  // pool quantizes its output, and the six convolutions after it run in INT8 with c1 -> c2, d,
  // c3 -> c4 and the block outputs int8 between them.
  EXPECT_EQ(int8_layers, 7);
  EXPECT_GE(int8_out, 5);
  // Other inputs than the calibration one, at the build batch and below it.
  for (int64_t batch : {4, 1}) {
    const std::vector<Tensor> in = {Random({batch, 3, 32, 32}, 40 + batch, -1.f, 1.f)};
    auto want = testing_cpu::RunReference(b.graph(), in);
    auto got = testing_cpu::RunEngine(**e, in);
    ASSERT_TRUE(want.ok() && got.ok()) << got.status();
    const double err = testing_cpu::RelL2((*got)[0], (*want)[0]);
    std::printf("  INT8 residual net batch %lld rel L2 %.3e\n", static_cast<long long>(batch), err);
    EXPECT_LE(err, 5e-2) << "batch " << batch;
  }
  // The plan rebuilds the same engine without timing anything.
  StatusOr<std::string> payload = (*e)->SerializePayload();
  ASSERT_TRUE(payload.ok());
  const int64_t timings = cuda::TacticTimings();
  cuda::ClearTacticCache(0);
  StatusOr<std::unique_ptr<Engine>> e2 = CudaBackend()->Deserialize(*payload, b.graph(), cfg);
  ASSERT_TRUE(e2.ok()) << e2.status();
  EXPECT_EQ(cuda::TacticTimings(), timings);
  const std::vector<Tensor> in = {Random({4, 3, 32, 32}, 77, -1.f, 1.f)};
  auto o1 = testing_cpu::RunEngine(**e, in), o2 = testing_cpu::RunEngine(**e2, in);
  ASSERT_TRUE(o1.ok() && o2.ok());
  EXPECT_EQ(testing_cpu::RelL2((*o1)[0], (*o2)[0]), 0.0);
}

// Without ranges (no calibration) an INT8 build runs every layer in FP16, as INT8 mode allows
// FP16 (TF-TRT's INT8 mode sets TensorRT's FP16 flag too).
TEST(CudaInt8, WithoutRangesLayersRunInFp16) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  EXPECT_EQ(CudaBackend()->FallbackFor(Precision::kINT8), Precision::kFP16);
  SegmentBuilder b = ResidualNet();
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  cfg.precision = Precision::kINT8;
  StatusOr<std::unique_ptr<Engine>> e = CudaBackend()->Build(b.graph(), cfg);
  ASSERT_TRUE(e.ok()) << e.status();
  for (const LayerInfo& li : (*e)->Layers()) EXPECT_EQ(li.precision, "FP16") << li.op;
  std::vector<Tensor> in = {Random({4, 3, 32, 32}, 5)};
  auto want = testing_cpu::RunReference(b.graph(), in);
  auto got = testing_cpu::RunEngine(**e, in);
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_LE(testing_cpu::RelL2((*got)[0], (*want)[0]), 1e-2);
}

// Pointwise convolutions in a bottleneck (a reducing 1x1, a stride-2 projection, an expanding
// 1x1 with the int8 residual, a 1x1 whose output leaves the engine) on 9x9 and 5x5 maps, so
// the pixel count is no multiple of kiln's 128-row tiles:
//   x -> 1x1 64->64 + relu = a -> 3x3/2 + relu = c -> 1x1 64->128 (+ p) + relu = r
//   x -> 1x1/2 64->128 = p;   r -> 1x1 128->64 + relu = y
SegmentBuilder PointwiseNet() {
  SegmentBuilder b;
  b.In("x", {3, 64, 9, 9});
  auto conv = [&](const std::string& in, const std::string& out, int64_t k, int64_t c, int64_t r,
                  int64_t stride, uint32_t seed) {
    const float lim = 1.5f / std::sqrt(static_cast<float>(c * r * r));
    b.Init(out + "_w", Random({k, c, r, r}, seed, -lim, lim));
    b.Init(out + "_b", Random({k}, seed + 1, -0.1f, 0.1f));
    const int64_t p = r / 2;
    b.Op("Conv", {in, out + "_w", out + "_b"}, {out},
         A({{"pads", Is({p, p, p, p})}, {"strides", Is({stride, stride})}}));
  };
  conv("x", "a0", 64, 64, 1, 1, 31);
  b.Op("Relu", {"a0"}, {"a"});
  conv("a", "c0", 64, 64, 3, 2, 33);
  b.Op("Relu", {"c0"}, {"c"});
  conv("x", "p", 128, 64, 1, 2, 35);
  conv("c", "d", 128, 64, 1, 1, 37);
  b.Op("Add", {"d", "p"}, {"s"}).Op("Relu", {"s"}, {"r"});
  conv("r", "y0", 64, 128, 1, 1, 39);
  b.Op("Relu", {"y0"}, {"y"});
  b.Out("y");
  return b;
}

// kiln's INT8 1x1 kernel (int8_conv.h) against the reference kernels, in either form
// (KILN_CUDA_INT8_1X1=tile / perm / tile128 / perm128: bit-identical), against cuDNN's INT8 graph
// for the same layers (0), and chosen by timing (auto).
TEST(CudaInt8, PointwiseKernelMatchesCudnn) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  SegmentBuilder b = PointwiseNet();
  BuildConfig cfg = CalibratedConfig(&b, Random({3, 64, 9, 9}, 4, -1.f, 1.f));
  std::map<std::string, std::vector<Tensor>> outs;
  for (const std::string mode : {"tile", "perm", "tile128", "perm128", "0", "auto"}) {
    setenv("KILN_CUDA_INT8_1X1", mode.c_str(), 1);
    cuda::ClearTacticCache(0);
    StatusOr<std::unique_ptr<Engine>> e = CudaBackend()->Build(b.graph(), cfg);
    ASSERT_TRUE(e.ok()) << mode << ": " << e.status();
    int int8_layers = 0, kiln_layers = 0, form_layers = 0;
    for (const LayerInfo& li : (*e)->Layers()) {
      std::printf("  [%s] %-14s %-5s %s\n", mode.c_str(), li.op.c_str(), li.precision.c_str(),
                  li.implementation.c_str());
      if (li.precision == "INT8") ++int8_layers;
      if (li.implementation.rfind("kiln:conv1x1(", 0) == 0) ++kiln_layers;
      if (li.implementation.rfind("kiln:conv1x1(" + mode + ",", 0) == 0) ++form_layers;
    }
    EXPECT_EQ(int8_layers, 5) << mode;
    if (mode != "0" && mode != "auto") {
      EXPECT_EQ(kiln_layers, 4) << mode;
      // The 128-channel forms take the two layers with 128 outputs (the others fall back to
      // the 64-channel form of the same epilogue).
      EXPECT_EQ(form_layers, mode.find("128") != std::string::npos ? 2 : 4) << mode;
    } else if (mode == "0") {
      EXPECT_EQ(kiln_layers, 0);
    }
    for (int64_t batch : {3, 1}) {
      const std::vector<Tensor> in = {Random({batch, 64, 9, 9}, 50 + batch, -1.f, 1.f)};
      auto want = testing_cpu::RunReference(b.graph(), in);
      auto got = testing_cpu::RunEngine(**e, in);
      ASSERT_TRUE(want.ok() && got.ok()) << got.status();
      const double err = testing_cpu::RelL2((*got)[0], (*want)[0]);
      std::printf("  [%s] batch %lld rel L2 vs FP32 %.3e\n", mode.c_str(),
                  static_cast<long long>(batch), err);
      EXPECT_LE(err, 5e-2) << mode << " batch " << batch;
      outs[mode].push_back((*got)[0]);
    }
  }
  unsetenv("KILN_CUDA_INT8_1X1");
  for (size_t i = 0; i < 2; ++i) {
    for (const char* f : {"perm", "tile128", "perm128"}) {
      EXPECT_EQ(testing_cpu::RelL2(outs["tile"][i], outs[f][i]), 0.0) << f;
    }
    // Same quantized operands and epilogue: only float rounding differs from cuDNN's.
    const double d = testing_cpu::RelL2(outs["perm"][i], outs["0"][i]);
    std::printf("  kiln vs cuDNN rel L2 %.3e\n", d);
    EXPECT_LE(d, 1e-2);
  }
}

// One INT8 convolution at a time through cuDNN's graph (kiln's 1x1 kernel off), writing int8
// for a 3x3 convolution after it, or its own output: each configuration against the reference
// kernels, so a wrong engine is named by its layer.
TEST(CudaInt8, CudnnConvsMatchReference) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  struct Case {
    int64_t k, r, stride, hw;
    bool relu, chained;
  };
  const Case cases[] = {
      {64, 1, 1, 9, true, true},     {64, 1, 1, 9, false, true}, {128, 1, 2, 9, false, true},
      {128, 1, 1, 8, true, true},    {64, 1, 1, 9, true, false}, {128, 1, 2, 9, false, false},
      {64, 3, 1, 9, true, true},     {64, 3, 2, 9, true, false}, {64, 1, 1, 56, true, true},
      {256, 1, 1, 56, false, false},
  };
  setenv("KILN_CUDA_INT8_1X1", "0", 1);
  for (const Case& c : cases) {
    SegmentBuilder b;
    b.In("x", {2, 64, c.hw, c.hw});
    const float lim = 1.5f / std::sqrt(static_cast<float>(64 * c.r * c.r));
    b.Init("w", Random({c.k, 64, c.r, c.r}, 61, -lim, lim));
    b.Init("b", Random({c.k}, 62, -0.1f, 0.1f));
    const int64_t p = c.r / 2;
    b.Op("Conv", {"x", "w", "b"}, {"a0"},
         A({{"pads", Is({p, p, p, p})}, {"strides", Is({c.stride, c.stride})}}));
    std::string last = "a0";
    if (c.relu) {
      b.Op("Relu", {"a0"}, {"a"});
      last = "a";
    }
    if (c.chained) {
      b.Init("w2", Random({64, c.k, 3, 3}, 63, -0.05f, 0.05f));
      b.Op("Conv", {last, "w2"}, {"y"}, A({{"pads", Is({1, 1, 1, 1})}}));
      last = "y";
    }
    b.Out(last);
    BuildConfig cfg = CalibratedConfig(&b, Random({2, 64, c.hw, c.hw}, 4, -1.f, 1.f));
    cuda::ClearTacticCache(0);
    StatusOr<std::unique_ptr<Engine>> e = CudaBackend()->Build(b.graph(), cfg);
    ASSERT_TRUE(e.ok()) << e.status();
    std::string impls;
    for (const LayerInfo& li : (*e)->Layers()) impls += " | " + li.implementation;
    const std::vector<Tensor> in = {Random({2, 64, c.hw, c.hw}, 70, -1.f, 1.f)};
    auto want = testing_cpu::RunReference(b.graph(), in);
    auto got = testing_cpu::RunEngine(**e, in);
    ASSERT_TRUE(want.ok() && got.ok()) << got.status();
    const double err = testing_cpu::RelL2((*got)[0], (*want)[0]);
    char what[96];
    std::snprintf(what, sizeof(what), "k%lld r%lld s%lld hw%lld%s%s", static_cast<long long>(c.k),
                  static_cast<long long>(c.r), static_cast<long long>(c.stride),
                  static_cast<long long>(c.hw), c.relu ? " relu" : "", c.chained ? " ->3x3" : "");
    std::printf("  %-28s rel L2 %.3e%s\n", what, err, impls.c_str());
    EXPECT_LE(err, 5e-2) << what << impls;
  }
  unsetenv("KILN_CUDA_INT8_1X1");
}

// A convolution adding an int8 residual whose scale differs from its output's (the fused
// epilogue's z * gamma), through cuDNN's graph (kiln's 1x1 kernel off) and through kiln's.
TEST(CudaInt8, ScaledResidualMatchesReference) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  for (const char* mode : {"0", "perm"}) {
    for (int64_t r : {1, 3}) {
      for (float zmul : {1.f, 4.f, 0.25f}) {
        SegmentBuilder b;
        b.In("x", {2, 64, 9, 9});
        const float lim = 1.5f / 8.f;
        b.Init("wp", Random({128, 64, 1, 1}, 81, -lim * zmul, lim * zmul));
        b.Op("Conv", {"x", "wp"}, {"p"});
        const float lim2 = 1.5f / std::sqrt(static_cast<float>(64 * r * r));
        b.Init("wd", Random({128, 64, r, r}, 82, -lim2, lim2));
        b.Init("bd", Random({128}, 83, -0.1f, 0.1f));
        const int64_t pd = r / 2;
        b.Op("Conv", {"x", "wd", "bd"}, {"d"}, A({{"pads", Is({pd, pd, pd, pd})}}));
        b.Op("Add", {"d", "p"}, {"s"}).Op("Relu", {"s"}, {"y"});
        b.Out("y");
        BuildConfig cfg = CalibratedConfig(&b, Random({2, 64, 9, 9}, 4, -1.f, 1.f));
        setenv("KILN_CUDA_INT8_1X1", mode, 1);
        cuda::ClearTacticCache(0);
        StatusOr<std::unique_ptr<Engine>> e = CudaBackend()->Build(b.graph(), cfg);
        unsetenv("KILN_CUDA_INT8_1X1");
        ASSERT_TRUE(e.ok()) << e.status();
        std::string impls;
        for (const LayerInfo& li : (*e)->Layers()) impls += " | " + li.implementation;
        const std::vector<Tensor> in = {Random({2, 64, 9, 9}, 71, -1.f, 1.f)};
        auto want = testing_cpu::RunReference(b.graph(), in);
        auto got = testing_cpu::RunEngine(**e, in);
        ASSERT_TRUE(want.ok() && got.ok()) << got.status();
        const double err = testing_cpu::RelL2((*got)[0], (*want)[0]);
        std::printf("  [%s] r%lld residual x%.2f rel L2 %.3e%s\n", mode, static_cast<long long>(r),
                    zmul, err, impls.c_str());
        EXPECT_LE(err, 5e-2) << mode << " r" << r << " x" << zmul << impls;
      }
    }
  }
}

// image -> conv (the stem) [+ relu] -> max pool = x -> 1x1 conv 64 -> 32 + relu = y: the pair
// kiln's fused stem kernel (stem_conv.h) takes.
struct StemCase {
  int64_t c, r, stride, pool_k, pool_s, pool_p, h, w, batch;
  bool bias, relu;
};
SegmentBuilder StemNet(const StemCase& sc) {
  SegmentBuilder b;
  b.In("image", {sc.batch, sc.c, sc.h, sc.w});
  const float lim = 1.5f / std::sqrt(static_cast<float>(sc.c * sc.r * sc.r));
  b.Init("stem_w", Random({64, sc.c, sc.r, sc.r}, 91, -lim, lim));
  std::vector<std::string> in = {"image", "stem_w"};
  if (sc.bias) {
    b.Init("stem_b", Random({64}, 92, -0.2f, 0.2f));
    in.push_back("stem_b");
  }
  const int64_t p = sc.r / 2;
  b.Op("Conv", in, {"stem"},
       A({{"strides", Is({sc.stride, sc.stride})}, {"pads", Is({p, p, p, p})}}));
  std::string last = "stem";
  if (sc.relu) {
    b.Op("Relu", {"stem"}, {"stem_r"});
    last = "stem_r";
  }
  const int64_t q = sc.pool_p;
  b.Op("MaxPool", {last}, {"x"},
       A({{"kernel_shape", Is({sc.pool_k, sc.pool_k})},
          {"strides", Is({sc.pool_s, sc.pool_s})},
          {"pads", Is({q, q, q, q})}}));
  b.Init("h_w", Random({32, 64, 1, 1}, 93, -0.2f, 0.2f));
  b.Init("h_b", Random({32}, 94, -0.1f, 0.1f));
  b.Op("Conv", {"x", "h_w", "h_b"}, {"h"}).Op("Relu", {"h"}, {"y"});
  b.Out("y");
  return b;
}

// The fused stem against the reference kernels and against the two layers built on their own
// (KILN_CUDA_STEM=0): ResNet's 7x7/2 stem with bias, ReLU and a 3x3/2 max pool on a map whose
// pooled tiles are ragged, in FP16 and in INT8 (the pool's output written int8 for the next
// convolution); and a 1-channel 3x3/1 stem without bias or ReLU under a 2x2/2 pool (the
// kernel's channel padding and pool forms).
TEST(CudaStem, FusedStemMatchesReference) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  const StemCase cases[] = {{3, 7, 2, 3, 2, 1, 36, 40, 3, true, true},
                            {1, 3, 1, 2, 2, 0, 20, 24, 2, false, false}};
  for (const StemCase& sc : cases) {
    const std::string name = std::to_string(sc.c) + "ch " + std::to_string(sc.r) + "x" +
                             std::to_string(sc.r) + "/" + std::to_string(sc.stride);
    for (Precision prec : {Precision::kFP16, Precision::kINT8}) {
      if (prec == Precision::kINT8 && sc.c != 3) continue;
      std::vector<Tensor> outs;
      for (const char* stem : {"1", "0"}) {
        SegmentBuilder b = StemNet(sc);
        const Tensor calib = Random({sc.batch, sc.c, sc.h, sc.w}, 95, -1.f, 1.f);
        BuildConfig cfg = prec == Precision::kINT8 ? CalibratedConfig(&b, calib)
                                                   : testing_cpu::Config(b.shapes());
        cfg.precision = prec;
        setenv("KILN_CUDA_STEM", stem, 1);
        StatusOr<std::unique_ptr<Engine>> e = CudaBackend()->Build(b.graph(), cfg);
        unsetenv("KILN_CUDA_STEM");
        ASSERT_TRUE(e.ok()) << name << ": " << e.status();
        int stem_layers = 0, fused = 0;
        bool pool_int8 = false;
        for (const LayerInfo& li : (*e)->Layers()) {
          std::printf("  [%s %s stem=%s] %-8s %-5s %s\n", name.c_str(), PrecisionName(prec), stem,
                      li.op.c_str(), li.precision.c_str(), li.implementation.c_str());
          if (li.implementation.rfind("kiln:stem(", 0) == 0) {
            ++stem_layers;
            if (prec == Precision::kINT8) {
              EXPECT_NE(li.implementation.find("->int8"), std::string::npos);
            }
          }
          if (li.implementation.rfind("kiln:stem (fused into", 0) == 0) {
            ++fused;
            pool_int8 = li.precision == "INT8";
          }
        }
        EXPECT_EQ(stem_layers, stem[0] == '1' ? 1 : 0) << name;
        EXPECT_EQ(fused, stem_layers) << name;
        if (stem_layers == 1) {
          EXPECT_EQ(pool_int8, prec == Precision::kINT8) << name;
        }
        for (int64_t batch : {sc.batch, int64_t{1}}) {
          const std::vector<Tensor> in = {
              Random({batch, sc.c, sc.h, sc.w}, 96 + static_cast<uint32_t>(batch), -1.f, 1.f)};
          auto want = testing_cpu::RunReference(b.graph(), in);
          auto got = testing_cpu::RunEngine(**e, in);
          ASSERT_TRUE(want.ok() && got.ok()) << got.status();
          const double err = testing_cpu::RelL2((*got)[0], (*want)[0]);
          std::printf("  [%s %s stem=%s] batch %lld rel L2 vs FP32 %.3e\n", name.c_str(),
                      PrecisionName(prec), stem, static_cast<long long>(batch), err);
          EXPECT_LE(err, prec == Precision::kINT8 ? 5e-2 : 1e-2) << name << " batch " << batch;
          if (batch == sc.batch) outs.push_back((*got)[0]);
        }
      }
      // The fused step and the two layers on their own compute the same thing up to FP16
      // rounding (and, in INT8, the int8 rounding that follows it).
      const double d = testing_cpu::RelL2(outs[0], outs[1]);
      std::printf("  [%s %s] fused vs separate rel L2 %.3e\n", name.c_str(), PrecisionName(prec),
                  d);
      EXPECT_LE(d, prec == Precision::kINT8 ? 2e-2 : 3e-3) << name;
    }
  }
}

// x [2, 16, 64] -> MatMul 64 -> 128 + bias + relu -> MatMul 128 -> 64 + bias + x = f (a
// transformer's FFN), then f -> MatMul 64 -> 40 -> MatMul 40 -> 32 -> y (N, then K, no multiple
// of 16: these stay FP16).
SegmentBuilder FfnNet() {
  SegmentBuilder b;
  b.In("x", {2, 16, 64});
  b.Init("w1", Random({64, 128}, 101, -0.15f, 0.15f));
  b.Init("b1", Random({128}, 102, -0.1f, 0.1f));
  b.Init("w2", Random({128, 64}, 103, -0.1f, 0.1f));
  b.Init("b2", Random({64}, 104, -0.1f, 0.1f));
  b.Init("w3", Random({64, 40}, 105, -0.15f, 0.15f));
  b.Init("w4", Random({40, 32}, 106, -0.2f, 0.2f));
  b.Op("MatMul", {"x", "w1"}, {"h0"}).Op("Add", {"h0", "b1"}, {"h1"}).Op("Relu", {"h1"}, {"h"});
  b.Op("MatMul", {"h", "w2"}, {"f0"}).Op("Add", {"f0", "b2"}, {"f1"});
  b.Op("Add", {"f1", "x"}, {"f"});
  b.Op("MatMul", {"f", "w3"}, {"g"}).Op("MatMul", {"g", "w4"}, {"y"});
  b.Out("y");
  return b;
}

// FP8 matmuls (cuBLASLt E4M3, cuda_build_matmul.cc) against the reference kernels: the two
// FFN matmuls in FP8 (FFN1 writing its output FP8 for FFN2), the two after them in FP16; with
// fast accumulation (the default) and float32 accumulation; and KILN_CUDA_FP8=0 (every matmul
// FP16).
TEST(CudaFp8, FfnMatmulsMatchReference) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  if (!CudaBackend()->HasKernel(Precision::kFP8)) GTEST_SKIP() << "no FP8 tensor cores";
  EXPECT_EQ(CudaBackend()->FallbackFor(Precision::kFP8), Precision::kFP16);
  SegmentBuilder b = FfnNet();
  BuildConfig cfg = CalibratedConfig(&b, Random({2, 16, 64}, 107, -1.f, 1.f));
  cfg.precision = Precision::kFP8;
  for (const char* mode : {"fast", "float", "off"}) {
    // (set while the engine runs too: it builds its batch-1 instance on first use)
    setenv("KILN_CUDA_FP8_FAST_ACCUM", std::string(mode) == "float" ? "0" : "1", 1);
    setenv("KILN_CUDA_FP8", std::string(mode) == "off" ? "0" : "1", 1);
    StatusOr<std::unique_ptr<Engine>> e = CudaBackend()->Build(b.graph(), cfg);
    ASSERT_TRUE(e.ok()) << mode << ": " << e.status();
    int fp8 = 0, fp16 = 0, fp8_out = 0;
    for (const LayerInfo& li : (*e)->Layers()) {
      std::printf("  [%s] %-16s %-5s %s\n", mode, li.op.c_str(), li.precision.c_str(),
                  li.implementation.c_str());
      if (li.op.rfind("MatMul", 0) != 0) continue;
      if (li.precision == "FP8") {
        ++fp8;
        EXPECT_NE(li.implementation.find("FP8 E4M3"), std::string::npos);
        if (li.implementation.find("E4M3->E4M3") != std::string::npos) ++fp8_out;
      } else {
        EXPECT_EQ(li.precision, "FP16");
        ++fp16;
      }
    }
    const bool on = std::string(mode) != "off";
    EXPECT_EQ(fp8, on ? 2 : 0) << mode;
    EXPECT_EQ(fp16, on ? 2 : 4) << mode;
    // FFN1's output goes to FFN2 in FP8 straight from its GEMM.
    EXPECT_EQ(fp8_out, on ? 1 : 0) << mode;
    for (int64_t batch : {2, 1}) {
      const std::vector<Tensor> in = {Random({batch, 16, 64}, 110 + batch, -1.f, 1.f)};
      auto want = testing_cpu::RunReference(b.graph(), in);
      auto got = testing_cpu::RunEngine(**e, in);
      ASSERT_TRUE(want.ok() && got.ok()) << got.status();
      const double err = testing_cpu::RelL2((*got)[0], (*want)[0]);
      std::printf("  [%s] FP8 FFN batch %lld rel L2 vs FP32 %.3e\n", mode,
                  static_cast<long long>(batch), err);
      // E4M3 keeps 3 mantissa bits: ~2-4% per element, less after the sums.
      EXPECT_LE(err, on ? 8e-2 : 1e-2) << mode << " batch " << batch;
      EXPECT_GT(err, 0.0);
    }
    unsetenv("KILN_CUDA_FP8_FAST_ACCUM");
    unsetenv("KILN_CUDA_FP8");
  }
}

}  // namespace
}  // namespace kiln
