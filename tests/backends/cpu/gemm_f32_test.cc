// kiln's FP32 GEMM (src/backends/cpu/gemm_f32.h): the kernel against a double-precision GEMM on
// random shapes (ragged rows and columns, K in blocks, every tile, 1 and 2 threads, each
// epilogue op, a residual sum before or after an eltwise op), its GELU against std::erf, and
// the engine layers that run on it (BERT-like matmuls, a 1x1 conv on few pixels, attention,
// MobileNet inverted-residual blocks) against the reference kernels, through a plan round trip.
// Skipped (with the reason) on CPUs without AVX-512.
#include "backends/cpu/gemm_f32.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/layers.h"

namespace kiln {
namespace {

namespace gemm = cpu::gemm;
using testing_cpu::Floats;
using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

#define SKIP_WITHOUT_GEMM() \
  if (!gemm::Available()) GTEST_SKIP() << "kiln's GEMM needs AVX-512 (or KILN_CPU_GEMM=0)"

std::vector<float> Vec(int64_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  Tensor t = Random({n}, seed, lo, hi);
  return std::vector<float>(t.data<float>(), t.data<float>() + n);
}

double Gelu(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }

// The GEMM with ops applied in order, in double.
std::vector<double> Naive(int64_t m, int64_t n, int64_t k, const std::vector<float>& a,
                          const std::vector<float>& b, const std::vector<float>* bias,
                          const std::vector<float>& c0, const std::vector<gemm::Op>& ops) {
  std::vector<double> c(m * n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = bias != nullptr ? (*bias)[j] : 0.0;
      for (int64_t q = 0; q < k; ++q) s += double(a[i * k + q]) * b[q * n + j];
      for (const gemm::Op& op : ops) {
        if (op.kind == gemm::OpKind::kSum) s += c0[i * n + j];
        if (op.kind == gemm::OpKind::kRelu && s < 0) s *= op.alpha;
        if (op.kind == gemm::OpKind::kGeluErf) s = Gelu(s);
        if (op.kind == gemm::OpKind::kClip) s = std::clamp<double>(s, op.alpha, op.beta);
      }
      c[i * n + j] = s;
    }
  }
  return c;
}

TEST(CpuGemm, KernelMatchesNaive) {
  SKIP_WITHOUT_GEMM();
  struct Shape {
    int64_t m, n, k;
  };
  // The last two have K above 1024: K blocks, with C holding partial sums between them.
  const std::vector<Shape> shapes = {{1, 16, 1},     {5, 40, 7},     {13, 64, 64},  {30, 100, 33},
                                     {49, 96, 300},  {128, 259, 96}, {200, 48, 17}, {7, 530, 128},
                                     {9, 100, 1100}, {20, 64, 2050}};
  const std::vector<std::vector<gemm::Op>> op_sets = {
      {},
      {{gemm::OpKind::kRelu, 0.f}},
      {{gemm::OpKind::kSum, 0.f}, {gemm::OpKind::kRelu, 0.f}},
      {{gemm::OpKind::kGeluErf, 0.f}},
      {{gemm::OpKind::kRelu, 0.1f}, {gemm::OpKind::kSum, 0.f}},
      {{gemm::OpKind::kSum, 0.f}, {gemm::OpKind::kClip, -0.5f, 0.5f}},
  };
  const int caller = cpu::OmpMaxThreads();
  uint32_t seed = 1;
  for (const gemm::Tile tile : {gemm::Tile{8, 3}, gemm::Tile{6, 4}, gemm::Tile{12, 2}}) {
    for (const Shape& s : shapes) {
      for (size_t o = 0; o < op_sets.size(); ++o) {
        for (const int threads : {1, 2}) {
          SCOPED_TRACE("tile " + gemm::ImplName(tile) + " m" + std::to_string(s.m) + " n" +
                       std::to_string(s.n) + " k" + std::to_string(s.k) + " ops #" +
                       std::to_string(o) + " threads " + std::to_string(threads));
          const std::vector<float> a = Vec(s.m * s.k, ++seed), b = Vec(s.k * s.n, ++seed);
          const std::vector<float> bias = Vec(s.n, ++seed), c0 = Vec(s.m * s.n, ++seed);
          const bool with_bias = o % 2 == 0;
          std::vector<float> packed(gemm::PackedFloats(s.k, s.n, tile), NAN);
          gemm::PackB(b.data(), s.k, s.n, s.n, tile, packed.data());
          std::vector<float> c = c0;
          gemm::Problem p;
          p.m = s.m;
          p.n = s.n;
          p.k = s.k;
          p.a = a.data();
          p.lda = s.k;
          p.b = packed.data();
          p.c = c.data();
          p.ldc = s.n;
          p.bias = with_bias ? bias.data() : nullptr;
          p.ops = op_sets[o];
          p.tile = tile;
          cpu::OmpSetThreads(threads);
          gemm::Run(p);
          cpu::OmpSetThreads(caller);
          const std::vector<double> want =
              Naive(s.m, s.n, s.k, a, b, with_bias ? &bias : nullptr, c0, op_sets[o]);
          double worst = 0;
          for (size_t i = 0; i < want.size(); ++i) {
            worst = std::max(worst, std::abs(c[i] - want[i]) / (1 + std::abs(want[i])));
          }
          EXPECT_LE(worst, 2e-6 * std::sqrt(double(s.k)));
        }
      }
    }
  }
}

// The epilogue's GELU (A&S 7.1.26 erf, a polynomial exp) against std::erf over [-10, 10].
TEST(CpuGemm, GeluMatchesErf) {
  SKIP_WITHOUT_GEMM();
  const gemm::Tile tile{8, 3};
  const int64_t n = 2001;
  std::vector<float> x(n);
  for (int64_t j = 0; j < n; ++j) x[j] = -10.f + 20.f * j / (n - 1);
  std::vector<float> packed(gemm::PackedFloats(1, n, tile));
  gemm::PackB(x.data(), 1, n, n, tile, packed.data());
  const float one = 1.f;
  std::vector<float> c(n);
  gemm::Problem p;
  p.m = 1;
  p.n = n;
  p.k = 1;
  p.a = &one;
  p.lda = 1;
  p.b = packed.data();
  p.c = c.data();
  p.ldc = n;
  p.ops = {{gemm::OpKind::kGeluErf, 0.f}};
  p.tile = tile;
  gemm::Run(p);
  for (int64_t j = 0; j < n; ++j) {
    EXPECT_NEAR(c[j], Gelu(x[j]), 3e-7 * std::max(1.f, std::abs(x[j]))) << "x = " << x[j];
  }
}

std::string Impls(const Engine& e) {
  std::string s;
  for (const LayerInfo& l : e.Layers()) s += l.op + " [" + l.implementation + "]; ";
  return s;
}

int KilnGemmLayers(const Engine& e) {
  int n = 0;
  for (const LayerInfo& l : e.Layers()) n += l.implementation.rfind("kiln_gemm", 0) == 0;
  return n;
}

// Layers that run as a fused step of `kind` ("kiln_attention", "kiln_mbconv").
int Fused(const Engine& e, const std::string& kind) {
  int n = 0;
  for (const LayerInfo& l : e.Layers()) n += l.implementation.rfind(kind + ":avx512", 0) == 0;
  return n;
}

// Builds `b`, expects `gemm_layers` of its layers on kiln's GEMM, compares with the reference
// kernels, and again after a plan round trip (same implementations, bit-identical outputs).
void CheckEngine(const SegmentBuilder& b, int gemm_layers, const std::vector<Tensor>& in) {
  const BuildConfig cfg = testing_cpu::Config(b.shapes());
  StatusOr<std::unique_ptr<Engine>> e = CpuBackend().Build(b.graph(), cfg);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(KilnGemmLayers(**e), gemm_layers) << Impls(**e);
  testing_cpu::ExpectEngineMatchesReference(**e, b.graph(), in);
  StatusOr<std::string> payload = (*e)->SerializePayload();
  ASSERT_TRUE(payload.ok()) << payload.status();
  StatusOr<std::unique_ptr<Engine>> d = CpuBackend().Deserialize(*payload, b.graph(), cfg);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(Impls(**d), Impls(**e));
  StatusOr<std::vector<Tensor>> x = testing_cpu::RunEngine(**e, in),
                                y = testing_cpu::RunEngine(**d, in);
  ASSERT_TRUE(x.ok() && y.ok());
  for (size_t i = 0; i < x->size(); ++i) EXPECT_TRUE((*x)[i].BitwiseEqual((*y)[i])) << i;
}

// A BERT-like FFN on [2, 20, 512]: MatMul + bias + GELU (erf, as PyTorch exports it), MatMul +
// bias + residual; and a matmul with 530 columns (ragged panels), without bias.
TEST(CpuGemm, MatMulLayersRunOnKilnGemm) {
  SKIP_WITHOUT_GEMM();
  const int64_t h = 512, f = 576, o = 530;
  SegmentBuilder b;
  b.In("x", {2, 20, h});
  b.Init("w1", Random({h, f}, 1, -0.1f, 0.1f)).Init("b1", Random({f}, 2));
  b.Init("w2", Random({f, h}, 3, -0.1f, 0.1f)).Init("b2", Random({h}, 4));
  b.Init("w3", Random({h, o}, 5, -0.1f, 0.1f));
  b.Init("sqrt2", Floats({1.4142135f})).Init("one", Floats({1.f})).Init("half", Floats({0.5f}));
  b.Op("MatMul", {"x", "w1"}, {"m1"}).Op("Add", {"m1", "b1"}, {"a1"});
  b.Op("Div", {"a1", "sqrt2"}, {"d"}).Op("Erf", {"d"}, {"e"}).Op("Add", {"e", "one"}, {"g"});
  b.Op("Mul", {"a1", "g"}, {"p"}).Op("Mul", {"p", "half"}, {"gelu"});
  b.Op("MatMul", {"gelu", "w2"}, {"m2"}).Op("Add", {"m2", "b2"}, {"a2"});
  b.Op("Add", {"a2", "x"}, {"y"});
  b.Op("MatMul", {"y", "w3"}, {"z"});
  b.Out("y").Out("z");
  CheckEngine(b, 3, {Random({2, 20, h}, 9)});
}

// A ResNet-like 1x1 conv on 7x7 pixels (channels-last in oneDNN, few pixels): conv + bias +
// residual + ReLU.
TEST(CpuGemm, Conv1x1OnFewPixelsRunsOnKilnGemm) {
  SKIP_WITHOUT_GEMM();
  const int64_t c = 512;
  SegmentBuilder b;
  b.In("x", {2, c, 7, 7}).In("r", {2, c, 7, 7});
  b.Init("w", Random({c, c, 1, 1}, 1, -0.08f, 0.08f)).Init("bias", Random({c}, 2));
  b.Op("Conv", {"x", "w", "bias"}, {"conv"}).Op("Add", {"conv", "r"}, {"s"});
  b.Op("Relu", {"s"}, {"y"}).Out("y");
  CheckEngine(b, 1, {Random({2, c, 7, 7}, 3), Random({2, c, 7, 7}, 4)});
}

// Attention on q, k, v [b, h, s, d]: MatMul(q, k^T) / sqrt(d), Softmax, MatMul(., v), and the
// head merge Transpose(0, 2, 1, 3) when `merge`: one fused step (ragged positions and head dims
// for the tiles), against the reference kernels.
TEST(CpuGemm, FusedAttentionMatchesReference) {
  SKIP_WITHOUT_GEMM();
  struct Case {
    int64_t b, h, s, d;
    bool merge;
  };
  for (const Case& c : {Case{1, 12, 128, 64, true}, Case{2, 3, 37, 20, false},
                        Case{2, 2, 70, 33, true}}) {
    SCOPED_TRACE("b" + std::to_string(c.b) + " h" + std::to_string(c.h) + " s" +
                 std::to_string(c.s) + " d" + std::to_string(c.d));
    SegmentBuilder b;
    const std::vector<int64_t> shape = {c.b, c.h, c.s, c.d};
    b.In("q", shape).In("k", shape).In("v", shape);
    b.Init("scale", Floats({std::sqrt(static_cast<float>(c.d))}));
    b.Op("Transpose", {"k"}, {"kt"}, testing_cpu::A({{"perm", Attr::Ints({0, 1, 3, 2})}}));
    b.Op("MatMul", {"q", "kt"}, {"qk"}).Op("Div", {"qk", "scale"}, {"sc"});
    b.Op("Softmax", {"sc"}, {"p"}, testing_cpu::A({{"axis", Attr::Int(-1)}}));
    b.Op("MatMul", {"p", "v"}, {"ctx"});
    if (c.merge) {
      b.Op("Transpose", {"ctx"}, {"y"}, testing_cpu::A({{"perm", Attr::Ints({0, 2, 1, 3})}}));
      b.Out("y");
    } else {
      b.Out("ctx");
    }
    // Scores of a few units, so the softmax is neither flat nor one-hot.
    CheckEngine(b, 0,
                {Random(shape, 1, -2.f, 2.f), Random(shape, 2, -2.f, 2.f), Random(shape, 3)});
    StatusOr<std::unique_ptr<Engine>> e =
        CpuBackend().Build(b.graph(), testing_cpu::Config(b.shapes()));
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_EQ(Fused(**e, "kiln_attention"), 1) << Impls(**e);
  }
}

// MobileNet blocks, each one fused step (gemm::RunInvertedResidual) against the reference
// kernels and through a plan round trip: V2's stride-1 block with ReLU6 and the residual (24
// channels: the 8-column ymm tail of the project); a stride-2 block with TF's SAME pads (0
// before, 1 after), ReLU and a 16-channel project (the 16x16 tile) on 3 samples of 45x45 (ragged
// rows; a thread's rows cross samples); V1's depthwise-separable pair (no expand) with no
// project bias and a leaky ReLU after it (the general micro-kernel). A block on 14x14 stays on
// oneDNN (its expanded tensor fits L2), and KILN_CPU_MBCONV=0 keeps every block there.
TEST(CpuGemm, InvertedResidualBlocksMatchReference) {
  SKIP_WITHOUT_GEMM();
  using testing_cpu::A;
  const auto is = [](std::vector<int64_t> v) { return Attr::Ints(std::move(v)); };
  struct Case {
    std::string name;
    int64_t n, cin, hw, mid, cout, stride;
    std::vector<int64_t> pads;  // of the depthwise conv
    bool expand, residual, clip, project_bias, leaky;
    int fused;  // steps expected
  };
  const std::vector<Case> cases = {
      {"v2 stride 1", 1, 24, 56, 144, 24, 1, {1, 1, 1, 1}, true, true, true, true, false, 1},
      {"v2 stride 2 SAME", 3, 16, 45, 96, 16, 2, {0, 0, 1, 1}, true, false, false, true, false, 1},
      {"v1 pair", 1, 32, 64, 32, 64, 1, {1, 1, 1, 1}, false, false, true, false, true, 1},
      {"v2 14x14", 1, 64, 14, 384, 64, 1, {1, 1, 1, 1}, true, true, true, true, false, 0},
  };
  uint32_t seed = 10;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    SegmentBuilder b;
    b.In("x", {c.n, c.cin, c.hw, c.hw});
    b.Init("zero", Floats({0.f})).Init("six", Floats({6.f}));
    auto act = [&](const std::string& in, const std::string& out) {
      if (c.clip) {
        b.Op("Clip", {in, "zero", "six"}, {out});
      } else {
        b.Op("Relu", {in}, {out});
      }
    };
    std::string t = "x";
    if (c.expand) {
      b.Init("w1", Random({c.mid, c.cin, 1, 1}, ++seed, -0.3f, 0.3f));
      b.Init("b1", Random({c.mid}, ++seed));
      b.Op("Conv", {"x", "w1", "b1"}, {"e"});
      act("e", "ea");
      t = "ea";
    }
    b.Init("wd", Random({c.mid, 1, 3, 3}, ++seed, -0.5f, 0.5f));
    b.Init("bd", Random({c.mid}, ++seed));
    b.Op("Conv", {t, "wd", "bd"}, {"d"},
         A({{"group", Attr::Int(c.mid)},
            {"pads", is(c.pads)},
            {"strides", is({c.stride, c.stride})}}));
    act("d", "da");
    b.Init("w2", Random({c.cout, c.mid, 1, 1}, ++seed, -0.2f, 0.2f));
    std::vector<std::string> pin = {"da", "w2"};
    if (c.project_bias) {
      b.Init("b2", Random({c.cout}, ++seed));
      pin.push_back("b2");
    }
    b.Op("Conv", pin, {"p"});
    std::string y = "p";
    if (c.residual) {
      b.Op("Add", {"p", "x"}, {"s"});
      y = "s";
    }
    if (c.leaky) {
      b.Op("LeakyRelu", {y}, {"l"}, A({{"alpha", Attr::Float(0.1f)}}));
      y = "l";
    }
    b.Out(y);
    const std::vector<Tensor> in = {Random({c.n, c.cin, c.hw, c.hw}, ++seed, -2.f, 2.f)};
    CheckEngine(b, 0, in);
    StatusOr<std::unique_ptr<Engine>> e =
        CpuBackend().Build(b.graph(), testing_cpu::Config(b.shapes()));
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_EQ(Fused(**e, "kiln_mbconv"), c.fused) << Impls(**e);
    if (c.fused == 0) continue;
    setenv("KILN_CPU_MBCONV", "0", 1);
    StatusOr<std::unique_ptr<Engine>> off =
        CpuBackend().Build(b.graph(), testing_cpu::Config(b.shapes()));
    unsetenv("KILN_CPU_MBCONV");
    ASSERT_TRUE(off.ok()) << off.status();
    EXPECT_EQ(Fused(**off, "kiln_mbconv"), 0) << Impls(**off);
  }
}

}  // namespace
}  // namespace kiln
