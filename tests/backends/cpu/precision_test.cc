// Precision modes on the CPU engine (backends/cpu/precision.h): BF16 engines against the
// reference kernels (rel. L2 <= 1e-2, ARCHITECTURE §6) for a conv net and an attention block,
// the precision each layer got, FP16 on a CPU without FP16 kernels (FP32 layers), a plan
// rebuilt in BF16, and the mode parser. BF16 tests skip when this CPU has no bf16 kernel.
#include "backends/cpu/precision.h"

#include <gtest/gtest.h>

#include <set>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/layers.h"

namespace kiln {
namespace {

using testing_cpu::A;
using testing_cpu::Ints;
using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

#define SKIP_WITHOUT_BF16()                                                                    \
  if (!CpuHasKernel(Precision::kBF16)) {                                                       \
    GTEST_SKIP() << "this CPU has no bf16 kernel (needs avx512_bf16 or AMX): BF16 not tested"; \
  }

// x[N,8,12,12] -> Conv3x3+BN+Relu -> Conv3x3 + x1 (residual) -> Relu -> MaxPool -> depthwise
// Conv -> GlobalAveragePool -> Flatten -> Gemm -> (logits, Softmax probs).
SegmentBuilder ConvNet(int64_t batch) {
  SegmentBuilder b;
  b.In("x", {batch, 8, 12, 12});
  b.Init("w1", Random({16, 8, 3, 3}, 11, -0.3f, 0.3f)).Init("b1", Random({16}, 12));
  b.Init("g", Random({16}, 13, 0.5f, 1.5f)).Init("beta", Random({16}, 14));
  b.Init("mean", Random({16}, 15)).Init("var", Random({16}, 16, 0.5f, 2.f));
  b.Init("w2", Random({16, 16, 3, 3}, 17, -0.2f, 0.2f)).Init("b2", Random({16}, 18));
  b.Init("w3", Random({16, 1, 3, 3}, 19, -0.5f, 0.5f));
  b.Init("wf", Random({16, 10}, 20, -0.5f, 0.5f)).Init("bf", Random({10}, 21));
  const AttrMap conv3 = A({{"pads", Attr::Ints({1, 1, 1, 1})}});
  b.Op("Conv", {"x", "w1", "b1"}, {"c1"}, conv3)
      .Op("BatchNormalization", {"c1", "g", "beta", "mean", "var"}, {"n1"})
      .Op("Relu", {"n1"}, {"r1"})
      .Op("Conv", {"r1", "w2", "b2"}, {"c2"}, conv3)
      .Op("Add", {"c2", "r1"}, {"s2"})
      .Op("Relu", {"s2"}, {"r2"})
      .Op("MaxPool", {"r2"}, {"p"},
          A({{"kernel_shape", Attr::Ints({2, 2})}, {"strides", Attr::Ints({2, 2})}}))
      .Op("Conv", {"p", "w3"}, {"dw"},
          A({{"pads", Attr::Ints({1, 1, 1, 1})}, {"group", Attr::Int(16)}}))
      .Op("GlobalAveragePool", {"dw"}, {"gap"})
      .Op("Flatten", {"gap"}, {"f"})
      .Op("Gemm", {"f", "wf", "bf"}, {"logits"})
      .Op("Softmax", {"logits"}, {"probs"}, A({{"axis", Attr::Int(-1)}}));
  b.Out("logits").Out("probs");
  return b;
}

// One transformer encoder block, x[N,16,32]: LayerNorm, Q/K/V projections, 4 heads of 8,
// scaled QK^T, Softmax, attention @ V, output projection + residual, LayerNorm, FFN (Relu).
SegmentBuilder AttentionBlock(int64_t batch) {
  const int64_t d = 32;
  SegmentBuilder b;
  testing_cpu::AddAttentionBlock(b, batch, "res");
  b.Init("w_up", Random({d, 64}, 60, -0.3f, 0.3f)).Init("b_up", Random({64}, 61));
  b.Init("w_dn", Random({64, d}, 62, -0.3f, 0.3f)).Init("b_dn", Random({d}, 63));
  b.Init("ln2_s", Random({d}, 64, 0.5f, 1.5f)).Init("ln2_b", Random({d}, 65));
  const AttrMap ln = A({{"axis", Attr::Int(-1)}});
  b.Op("LayerNormalization", {"res", "ln2_s", "ln2_b"}, {"rn"}, ln)
      .Op("MatMul", {"rn", "w_up"}, {"u0"})
      .Op("Add", {"u0", "b_up"}, {"u1"})
      .Op("Relu", {"u1"}, {"u2"})
      .Op("MatMul", {"u2", "w_dn"}, {"d0"})
      .Op("Add", {"d0", "b_dn"}, {"d1"})
      .Op("Add", {"d1", "rn"}, {"y"});
  b.Out("y");
  return b;
}

struct EngineRun {
  std::vector<double> err;  // rel. L2 per output
  std::vector<LayerInfo> layers;
};

EngineRun BuildAndCompare(const SegmentBuilder& b, Precision p, const std::vector<Tensor>& in) {
  EngineRun r;
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  cfg.precision = p;
  StatusOr<std::unique_ptr<Engine>> e = CpuBackend().Build(b.graph(), cfg);
  EXPECT_TRUE(e.ok()) << e.status();
  if (!e.ok()) return r;
  r.layers = (*e)->Layers();
  StatusOr<std::vector<Tensor>> want = testing_cpu::RunReference(b.graph(), in);
  StatusOr<std::vector<Tensor>> got = testing_cpu::RunEngine(**e, in);
  EXPECT_TRUE(want.ok()) << want.status();
  EXPECT_TRUE(got.ok()) << got.status();
  if (!want.ok() || !got.ok()) return r;
  for (size_t i = 0; i < want->size(); ++i) {
    EXPECT_EQ((*got)[i].dtype(), DataType::kFloat32) << "engine outputs stay FP32";
    r.err.push_back(testing_cpu::RelL2((*got)[i], (*want)[i]));
  }
  return r;
}

// Precision of the (first) layer whose op starts with `op`.
std::set<std::string> PrecisionsOf(const std::vector<LayerInfo>& layers, const std::string& op) {
  std::set<std::string> s;
  for (const LayerInfo& l : layers) {
    if (l.op.rfind(op, 0) == 0) s.insert(l.precision);
  }
  return s;
}

std::string Table(const std::vector<LayerInfo>& layers) {
  std::string s;
  for (const LayerInfo& l : layers) s += l.op + " " + l.precision + " " + l.implementation + "\n";
  return s;
}

TEST(CpuPrecision, ParseModes) {
  EXPECT_EQ(*ParsePrecision("bf16"), Precision::kBF16);
  EXPECT_EQ(*ParsePrecision("Fp16"), Precision::kFP16);
  EXPECT_EQ(*ParsePrecision("FP32"), Precision::kFP32);
  EXPECT_EQ(*ParsePrecision("int8"), Precision::kINT8);
  EXPECT_EQ(*ParsePrecision("fp8"), Precision::kFP8);
  EXPECT_STREQ(PrecisionName(Precision::kFP8), "FP8");
  for (const char* bad : {"bfloat16", "fp64", "", "FP 16"}) {
    StatusOr<Precision> p = ParsePrecision(bad);
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find("precision_mode"), std::string::npos);
  }
}

TEST(CpuPrecision, ModesAllowFastestFirst) {
  using P = Precision;
  EXPECT_EQ(cpu::AllowedPrecisions(P::kFP32), std::vector<P>({P::kFP32}));
  EXPECT_EQ(cpu::AllowedPrecisions(P::kFP16), std::vector<P>({P::kFP16, P::kFP32}));
  EXPECT_EQ(cpu::AllowedPrecisions(P::kBF16), std::vector<P>({P::kBF16, P::kFP32}));
  EXPECT_EQ(cpu::AllowedPrecisions(P::kINT8).back(), P::kFP32);
  EXPECT_TRUE(CpuHasKernel(P::kFP32));
  EXPECT_EQ(cpu::ComputePrecision(P::kFP32), P::kFP32);
  EXPECT_EQ(cpu::ComputePrecision(P::kBF16), CpuHasKernel(P::kBF16) ? P::kBF16 : P::kFP32);
  EXPECT_EQ(cpu::RuleOf(cpu::LayerKind::kSoftmax), cpu::PrecisionRule::kFP32);
  EXPECT_EQ(cpu::RuleOf(cpu::LayerKind::kLayerNorm), cpu::PrecisionRule::kFP32);
  EXPECT_EQ(cpu::RuleOf(cpu::LayerKind::kConv), cpu::PrecisionRule::kCompute);
}

// FP8 (a CUDA mode) has no CPU kernel: an FP8 build computes in the fastest 16-bit type this
// CPU has (BF16 with AMX / AVX512-BF16), else FP32, and says so as its fallback.
TEST(CpuPrecision, Fp8FallsBackToWhatTheCpuHas) {
  using P = Precision;
  EXPECT_FALSE(CpuHasKernel(P::kFP8));
  EXPECT_FALSE(CpuBackend().HasKernel(P::kFP8));
  EXPECT_EQ(cpu::AllowedPrecisions(P::kFP8),
            std::vector<P>({P::kFP8, P::kBF16, P::kFP16, P::kFP32}));
  const P want = CpuHasKernel(P::kBF16) ? P::kBF16 : CpuHasKernel(P::kFP16) ? P::kFP16 : P::kFP32;
  EXPECT_EQ(cpu::ComputePrecision(P::kFP8), want);
  EXPECT_EQ(CpuBackend().FallbackFor(P::kFP8), want);
  SegmentBuilder b = ConvNet(2);
  const std::vector<Tensor> in = {Random({2, 8, 12, 12}, 120)};
  EngineRun r = BuildAndCompare(b, P::kFP8, in);
  ASSERT_EQ(r.err.size(), 2u);
  for (double e : r.err) EXPECT_LE(e, want == P::kFP32 ? 1e-5 : 1e-2);
  EXPECT_EQ(PrecisionsOf(r.layers, "Conv"), std::set<std::string>{PrecisionName(want)})
      << Table(r.layers);
}

TEST(CpuPrecision, Bf16ConvNetMatchesReference) {
  SKIP_WITHOUT_BF16();
  for (int64_t batch : {1, 3}) {
    SCOPED_TRACE(batch);
    SegmentBuilder b = ConvNet(batch);
    const std::vector<Tensor> in = {Random({batch, 8, 12, 12}, 100 + batch)};
    EngineRun r = BuildAndCompare(b, Precision::kBF16, in);
    ASSERT_EQ(r.err.size(), 2u);
    for (double e : r.err) EXPECT_LE(e, 1e-2);
    // Really computed in bf16 (an FP32 engine is within 1e-5).
    EXPECT_GT(r.err[0], 1e-5) << Table(r.layers);
    EXPECT_EQ(PrecisionsOf(r.layers, "Conv"), std::set<std::string>{"BF16"}) << Table(r.layers);
    EXPECT_EQ(PrecisionsOf(r.layers, "Gemm"), std::set<std::string>{"BF16"}) << Table(r.layers);
    EXPECT_EQ(PrecisionsOf(r.layers, "MaxPool"), std::set<std::string>{"BF16"}) << Table(r.layers);
    EXPECT_EQ(PrecisionsOf(r.layers, "Softmax"), std::set<std::string>{"FP32"}) << Table(r.layers);
  }
}

TEST(CpuPrecision, Bf16AttentionBlockMatchesReference) {
  SKIP_WITHOUT_BF16();
  SegmentBuilder b = AttentionBlock(2);
  const std::vector<Tensor> in = {Random({2, 16, 32}, 200, -2.f, 2.f)};
  EngineRun r = BuildAndCompare(b, Precision::kBF16, in);
  ASSERT_EQ(r.err.size(), 1u);
  EXPECT_LE(r.err[0], 1e-2) << Table(r.layers);
  EXPECT_GT(r.err[0], 1e-5) << Table(r.layers);
  EXPECT_EQ(PrecisionsOf(r.layers, "MatMul"), std::set<std::string>{"BF16"}) << Table(r.layers);
  EXPECT_EQ(PrecisionsOf(r.layers, "Softmax"), std::set<std::string>{"FP32"}) << Table(r.layers);
  EXPECT_EQ(PrecisionsOf(r.layers, "LayerNormalization"), std::set<std::string>{"FP32"})
      << Table(r.layers);
}

TEST(CpuPrecision, Fp16WithoutKernelRunsFp32) {
  if (CpuHasKernel(Precision::kFP16)) GTEST_SKIP() << "this CPU has FP16 kernels";
  SegmentBuilder b = ConvNet(2);
  const std::vector<Tensor> in = {Random({2, 8, 12, 12}, 300)};
  EngineRun r = BuildAndCompare(b, Precision::kFP16, in);
  ASSERT_EQ(r.err.size(), 2u);
  for (double e : r.err) EXPECT_LE(e, 1e-5);
  ASSERT_FALSE(r.layers.empty());
  for (const LayerInfo& l : r.layers) EXPECT_EQ(l.precision, "FP32") << l.op;
  EXPECT_TRUE(CpuBackend()
                  .Supports(b.graph().nodes[0], b.graph(),
                            [] {
                              BuildConfig c;
                              c.precision = Precision::kFP16;
                              return c;
                            }())
                  .ok());
}

TEST(CpuPrecision, Bf16PlanRebuildsInBf16) {
  SKIP_WITHOUT_BF16();
  SegmentBuilder b = ConvNet(2);
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  cfg.precision = Precision::kBF16;
  StatusOr<std::unique_ptr<Engine>> e = CpuBackend().Build(b.graph(), cfg);
  ASSERT_TRUE(e.ok()) << e.status();
  StatusOr<std::string> payload = (*e)->SerializePayload();
  ASSERT_TRUE(payload.ok()) << payload.status();
  StatusOr<std::unique_ptr<Engine>> d = CpuBackend().Deserialize(*payload, b.graph(), cfg);
  ASSERT_TRUE(d.ok()) << d.status();
  const std::vector<LayerInfo> l1 = (*e)->Layers(), l2 = (*d)->Layers();
  ASSERT_EQ(l1.size(), l2.size());
  for (size_t i = 0; i < l1.size(); ++i) EXPECT_EQ(l1[i].precision, l2[i].precision) << l1[i].op;
  const std::vector<Tensor> in = {Random({2, 8, 12, 12}, 400)};
  StatusOr<std::vector<Tensor>> o1 = testing_cpu::RunEngine(**e, in);
  StatusOr<std::vector<Tensor>> o2 = testing_cpu::RunEngine(**d, in);
  ASSERT_TRUE(o1.ok() && o2.ok());
  EXPECT_EQ(testing_cpu::RelL2((*o2)[0], (*o1)[0]), 0.0);
}

// Building an engine leaves the caller's OpenMP thread count as it was: a big conv (built with
// every thread) whose small blocked output is copied to the plain engine output with one thread
// once left it at 1, and every later build on that thread (kiln bench: conversion, then the
// session's plan load) made single-threaded layers.
TEST(CpuThreads, BuildRestoresTheCallersThreadCount) {
  SegmentBuilder b;
  b.In("x", {1, 64, 56, 56});
  b.Init("w", Random({64, 64, 3, 3}, 500, -0.1f, 0.1f));
  b.Op("Conv", {"x", "w"}, {"y"}, A({{"pads", Attr::Ints({1, 1, 1, 1})}})).Out("y");
  const int before = cpu::OmpMaxThreads();
  cpu::OmpSetThreads(2);
  if (cpu::OmpMaxThreads() != 2) GTEST_SKIP() << "oneDNN does not run on OpenMP here";
  for (Precision p : {Precision::kFP32, Precision::kBF16}) {
    BuildConfig cfg = testing_cpu::Config(b.shapes());
    cfg.precision = p;
    StatusOr<std::unique_ptr<Engine>> e = CpuBackend().Build(b.graph(), cfg);
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_EQ(cpu::OmpMaxThreads(), 2) << PrecisionName(p);
  }
  cpu::OmpSetThreads(before);
}

}  // namespace
}  // namespace kiln
