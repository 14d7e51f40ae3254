// Batch slicing (src/backends/cpu/batch_slice.cc): the leading per-sample layers of a batch-N
// instance run depth-first on sub-batches. Checked on MobileNetV2 inverted-residual blocks
// (1x1 expand + ReLU6, 3x3 depthwise stride 1 / 2 + ReLU6, 1x1 project, residual add) and a
// head that mixes samples (Flatten + Gemm): the same numbers as the reference kernels and as the
// unsliced instance, the slicing shown in the layer list, and a plan round trip.
#include <gtest/gtest.h>

#include <cstdlib>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/gemm_f32.h"
#include "backends/cpu/layers.h"
#include "backends/cpu/lowering.h"

namespace kiln {
namespace {

using testing_cpu::A;
using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

Attr Is(std::vector<int64_t> v) { return Attr::Ints(std::move(v)); }

// Sets KILN_CPU_BATCH_SLICE for a scope.
class SliceEnv {
 public:
  explicit SliceEnv(const char* v) { setenv("KILN_CPU_BATCH_SLICE", v, 1); }
  ~SliceEnv() { unsetenv("KILN_CPU_BATCH_SLICE"); }
};

// One inverted residual block on `x` (c_in channels): expand x t, depthwise stride `s`, project
// to c_out; + x when s == 1 and c_in == c_out.
std::string Block(SegmentBuilder& b, const std::string& x, const std::string& p, int64_t c_in,
                  int64_t c_out, int64_t t, int64_t s, uint32_t seed) {
  const int64_t c = c_in * t;
  b.Init(p + "_we", Random({c, c_in, 1, 1}, seed, -0.3f, 0.3f))
      .Init(p + "_be", Random({c}, seed + 1))
      .Init(p + "_wd", Random({c, 1, 3, 3}, seed + 2, -0.5f, 0.5f))
      .Init(p + "_bd", Random({c}, seed + 3))
      .Init(p + "_wp", Random({c_out, c, 1, 1}, seed + 4, -0.2f, 0.2f))
      .Init(p + "_bp", Random({c_out}, seed + 5));
  b.Op("Conv", {x, p + "_we", p + "_be"}, {p + "_e"});
  b.Op("Clip", {p + "_e", "zero", "six"}, {p + "_er"});
  b.Op("Conv", {p + "_er", p + "_wd", p + "_bd"}, {p + "_d"},
       A({{"group", Attr::Int(c)}, {"pads", Is({1, 1, 1, 1})}, {"strides", Is({s, s})}}));
  b.Op("Clip", {p + "_d", "zero", "six"}, {p + "_dr"});
  b.Op("Conv", {p + "_dr", p + "_wp", p + "_bp"}, {p + "_p"});
  if (s != 1 || c_in != c_out) return p + "_p";
  b.Op("Add", {p + "_p", x}, {p + "_y"});
  return p + "_y";
}

// Stem conv 3x3 stride 2, a stride-1 residual block, a stride-2 block, a residual block, then
// GlobalAveragePool + Flatten + Gemm (per-sample slicing stops at the Flatten).
SegmentBuilder MobileNetLike(int64_t n, int64_t hw) {
  SegmentBuilder b;
  b.In("x", {n, 3, hw, hw});
  b.Init("zero", Tensor::Scalar(0.f)).Init("six", Tensor::Scalar(6.f));
  b.Init("w0", Random({16, 3, 3, 3}, 1, -0.4f, 0.4f)).Init("b0", Random({16}, 2));
  b.Op("Conv", {"x", "w0", "b0"}, {"c0"}, A({{"pads", Is({1, 1, 1, 1})}, {"strides", Is({2, 2})}}));
  b.Op("Clip", {"c0", "zero", "six"}, {"r0"});
  std::string y = Block(b, "r0", "b1", 16, 16, 4, 1, 10);
  y = Block(b, y, "b2", 16, 24, 4, 2, 20);
  y = Block(b, y, "b3", 24, 24, 4, 1, 30);
  b.Init("wf", Random({10, 24}, 40, -0.3f, 0.3f)).Init("bf", Random({10}, 41));
  b.Op("GlobalAveragePool", {y}, {"gap"});
  b.Op("Flatten", {"gap"}, {"flat"});
  b.Op("Gemm", {"flat", "wf", "bf"}, {"logits"}, A({{"transB", Attr::Int(1)}})).Out("logits");
  return b;
}

std::unique_ptr<Engine> MustBuild(const SegmentBuilder& b, const BuildConfig& cfg) {
  StatusOr<std::unique_ptr<Engine>> e = CpuBackend().Build(b.graph(), cfg);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? std::move(e).value() : nullptr;
}

// Layers whose implementation names the slicing, e.g. "brgconv:avx512_core [4 sub-batches of 1]".
int SlicedLayers(const Engine& e, const std::string& note) {
  int n = 0;
  for (const LayerInfo& l : e.Layers()) n += l.implementation.find(note) != std::string::npos;
  return n;
}

std::string Ops(const Engine& e) {
  std::string s;
  for (const LayerInfo& l : e.Layers()) s += l.op + " [" + l.implementation + "]; ";
  return s;
}

// On 224x224 inputs the first blocks' expanded tensors (112x112x64) are large enough for the
// fused inverted-residual step (layers_conv.cc): inside the sliced prefix it runs per sample,
// on byte offsets into the batch's tensors, and matches the reference kernels.
TEST(CpuBatchSlice, FusedBlocksRunPerSample) {
  if (!cpu::gemm::Available()) GTEST_SKIP() << "the fused block needs AVX-512";
  SegmentBuilder b = MobileNetLike(2, 224);
  std::unique_ptr<Engine> e;
  {
    SliceEnv env("1048576");
    e = MustBuild(b, testing_cpu::Config(b.shapes()));
  }
  ASSERT_NE(e, nullptr);
  int fused_sliced = 0;
  for (const LayerInfo& l : e->Layers()) {
    fused_sliced += l.implementation.rfind("kiln_mbconv:avx512", 0) == 0 &&
                    l.implementation.find("[2 sub-batches of 1]") != std::string::npos;
  }
  EXPECT_GE(fused_sliced, 1) << Ops(*e);
  testing_cpu::ExpectEngineMatchesReference(*e, b.graph(), {Random({2, 3, 224, 224}, 7)});
}

TEST(CpuBatchSlice, MobileNetBlocksMatchReferenceAndUnsliced) {
  SegmentBuilder b = MobileNetLike(4, 32);
  const BuildConfig cfg = testing_cpu::Config(b.shapes());
  // Sliced where a tensor reaches 64 KiB at batch 4: the stem and the first blocks (the stem's
  // output is 16x16x16 floats = 16 KiB a sample, 64 KiB at batch 4).
  std::unique_ptr<Engine> sliced, whole;
  {
    SliceEnv env("65536");
    sliced = MustBuild(b, cfg);
  }
  {
    SliceEnv env("0");
    whole = MustBuild(b, cfg);
  }
  ASSERT_NE(sliced, nullptr);
  ASSERT_NE(whole, nullptr);
  // Sub-batch: the largest proper divisor of 4 whose tensors stay under 32 KiB: 2 samples of the
  // 16x16x64 expand output are 128 KiB, so 1.
  const int n_sliced = SlicedLayers(*sliced, "4 sub-batches of 1");
  EXPECT_GT(n_sliced, 3) << Ops(*sliced);
  EXPECT_LT(n_sliced, static_cast<int>(sliced->Layers().size()) - 2) << Ops(*sliced);
  EXPECT_EQ(SlicedLayers(*whole, "sub-batches"), 0) << Ops(*whole);
  // The slicing changes no layer's fusion.
  ASSERT_EQ(sliced->Layers().size(), whole->Layers().size());
  for (size_t i = 0; i < whole->Layers().size(); ++i) {
    EXPECT_EQ(sliced->Layers()[i].op, whole->Layers()[i].op);
  }

  const std::vector<Tensor> in = {Random({4, 3, 32, 32}, 7, -2.f, 2.f)};
  StatusOr<std::vector<Tensor>> want = testing_cpu::RunReference(b.graph(), in);
  ASSERT_TRUE(want.ok()) << want.status();
  StatusOr<std::vector<Tensor>> got = testing_cpu::RunEngine(*sliced, in);
  StatusOr<std::vector<Tensor>> plain = testing_cpu::RunEngine(*whole, in);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_LE(testing_cpu::RelL2((*got)[0], (*want)[0]), 1e-5);
  EXPECT_LE(testing_cpu::RelL2((*got)[0], (*plain)[0]), 1e-6);
  // Every sample is its own: a batch of one sample gives that sample's row.
  for (int64_t s = 0; s < 4; ++s) {
    Tensor one = Tensor::Empty(DataType::kFloat32, {1, 3, 32, 32});
    std::copy(in[0].data<float>() + s * 3 * 32 * 32, in[0].data<float>() + (s + 1) * 3 * 32 * 32,
              one.mutable_data<float>());
    StatusOr<std::vector<Tensor>> row = testing_cpu::RunEngine(*sliced, {one});
    ASSERT_TRUE(row.ok()) << row.status();
    Tensor want_row = Tensor::Empty(DataType::kFloat32, {1, 10});
    std::copy((*got)[0].data<float>() + s * 10, (*got)[0].data<float>() + (s + 1) * 10,
              want_row.mutable_data<float>());
    EXPECT_LE(testing_cpu::RelL2((*row)[0], want_row), 1e-5) << "sample " << s;
  }
  // Repeated runs reuse the pooled arena: the same result again.
  StatusOr<std::vector<Tensor>> again = testing_cpu::RunEngine(*sliced, in);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)[0].BitwiseEqual((*got)[0]));
}

TEST(CpuBatchSlice, SubBatchesOfTwoAndPlanRoundTrip) {
  SegmentBuilder b = MobileNetLike(8, 16);
  const BuildConfig cfg = testing_cpu::Config(b.shapes());
  SliceEnv env("65536");  // 8x16x8x8 stem output = 32 KiB: the 8x64x8x8 expand (128 KiB) slices
  std::unique_ptr<Engine> e = MustBuild(b, cfg);
  ASSERT_NE(e, nullptr);
  // The largest per-sample tensor is 64x8x8 floats = 16 KiB: 2 samples fit 32 KiB, 4 do not.
  EXPECT_GT(SlicedLayers(*e, "4 sub-batches of 2"), 0) << Ops(*e);
  const std::vector<Tensor> in = {Random({8, 3, 16, 16}, 9, -2.f, 2.f)};
  StatusOr<std::vector<Tensor>> want = testing_cpu::RunReference(b.graph(), in);
  StatusOr<std::vector<Tensor>> got = testing_cpu::RunEngine(*e, in);
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_LE(testing_cpu::RelL2((*got)[0], (*want)[0]), 1e-5);

  // The plan records the program, not the slicing: loaded, the engine slices the same way and
  // computes the same bits.
  StatusOr<std::string> payload = e->SerializePayload();
  ASSERT_TRUE(payload.ok()) << payload.status();
  StatusOr<std::unique_ptr<Engine>> d = CpuBackend().Deserialize(*payload, b.graph(), cfg);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(Ops(**d), Ops(*e));
  StatusOr<std::vector<Tensor>> loaded = testing_cpu::RunEngine(**d, in);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE((*loaded)[0].BitwiseEqual((*got)[0]));
  // Smaller batches get their own instances (3 does not divide: sub-batch 1, or none).
  const std::vector<Tensor> three = {Random({3, 3, 16, 16}, 11, -2.f, 2.f)};
  StatusOr<std::vector<Tensor>> want3 = testing_cpu::RunReference(b.graph(), three);
  StatusOr<std::vector<Tensor>> got3 = testing_cpu::RunEngine(**d, three);
  ASSERT_TRUE(want3.ok() && got3.ok()) << got3.status();
  EXPECT_LE(testing_cpu::RelL2((*got3)[0], (*want3)[0]), 1e-5);
}

TEST(CpuBatchSlice, BatchOneAndSampleMixingLayersAreNotSliced) {
  SliceEnv env("1");  // everything counts as big
  SegmentBuilder one = MobileNetLike(1, 16);
  std::unique_ptr<Engine> e1 = MustBuild(one, testing_cpu::Config(one.shapes()));
  ASSERT_NE(e1, nullptr);
  EXPECT_EQ(SlicedLayers(*e1, "sub-batches"), 0) << Ops(*e1);
  // A segment starting with a layer that mixes samples (softmax over the batch axis) has no
  // per-sample prefix.
  SegmentBuilder b;
  b.In("x", {4, 8});
  b.Op("Softmax", {"x"}, {"s"}, A({{"axis", Attr::Int(0)}}));
  b.Op("Relu", {"s"}, {"y"}).Out("y");
  std::unique_ptr<Engine> e = MustBuild(b, testing_cpu::Config(b.shapes()));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(SlicedLayers(*e, "sub-batches"), 0) << Ops(*e);
  const std::vector<Tensor> in = {Random({4, 8}, 3)};
  StatusOr<std::vector<Tensor>> want = testing_cpu::RunReference(b.graph(), in);
  StatusOr<std::vector<Tensor>> got = testing_cpu::RunEngine(*e, in);
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_LE(testing_cpu::RelL2((*got)[0], (*want)[0]), 1e-5);
}

// On AMX a BF16 prefix is sliced only when it holds a depthwise conv (SlicePrefixPays): a
// MobileNet-like prefix still slices there, a ResNet-like one (dense convs only) does not;
// without AMX, or in other precisions, both slice.
TEST(CpuBatchSlice, AmxBf16SlicesOnlyDepthwisePrefixes) {
  SegmentBuilder mobile = MobileNetLike(8, 16);
  SegmentBuilder dense;
  dense.In("x", {8, 8, 16, 16})
      .Init("w0", Random({16, 8, 3, 3}, 5, -0.3f, 0.3f))
      .Init("w1", Random({16, 16, 1, 1}, 6, -0.3f, 0.3f))
      .Op("Conv", {"x", "w0"}, {"c0"}, A({{"pads", Is({1, 1, 1, 1})}}))
      .Op("Relu", {"c0"}, {"r0"})
      .Op("Conv", {"r0", "w1"}, {"y"})
      .Out("y");
  for (SegmentBuilder* b : {&mobile, &dense}) {
    const BuildConfig cfg = testing_cpu::Config(b->shapes());
    StatusOr<cpu::Program> p = cpu::LowerSegment(b->graph(), cfg);
    ASSERT_TRUE(p.ok()) << p.status();
    cpu::FuseProgram(&*p);
    StatusOr<std::vector<std::vector<int64_t>>> dims = cpu::PropagateShapes(*p, b->shapes());
    ASSERT_TRUE(dims.ok()) << dims.status();
    const size_t k = p->layers.size();
    const bool depthwise = b == &mobile;
    EXPECT_EQ(cpu::SlicePrefixPays(*p, *dims, k, Precision::kBF16, /*amx=*/true), depthwise);
    EXPECT_TRUE(cpu::SlicePrefixPays(*p, *dims, k, Precision::kBF16, /*amx=*/false));
    EXPECT_TRUE(cpu::SlicePrefixPays(*p, *dims, k, Precision::kFP32, /*amx=*/true));
  }
}

}  // namespace
}  // namespace kiln
