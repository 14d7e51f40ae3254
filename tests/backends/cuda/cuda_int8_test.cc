// INT8 convolutions of the CUDA engine (cuda_build_int8.cc) against the FP32 reference kernels:
// a ResNet-style segment (a downsample residual block and an identity one) built in INT8 with
// exact ranges from a reference run, as calibration would give them. Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
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
  const std::vector<Tensor> calib = {Random({4, 3, 32, 32}, 3, -1.f, 1.f)};
  std::map<std::string, Tensor> all;
  ASSERT_TRUE(testing_cpu::RunReference(b.graph(), calib, &all).ok());
  b.InferValueInfo(all);
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  cfg.precision = Precision::kINT8;
  cfg.int8_ranges = testing_int8::ExactRanges(b.graph(), all);
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

}  // namespace
}  // namespace kiln
