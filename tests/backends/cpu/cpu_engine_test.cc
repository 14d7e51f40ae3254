// CPU engine behaviour beyond single ops: fusion (what was fused, and that the numbers still
// match), Supports reasons, the workspace limit, plans (serialize -> deserialize, corrupted
// payloads), batches, concurrent Execute, and a timing print for a ResNet-style block.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

#include "backends/cpu/cpu_test_util.h"

namespace kiln {
namespace {

using testing_cpu::A;
using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

Attr Is(std::vector<int64_t> v) { return Attr::Ints(std::move(v)); }

void AddBn(SegmentBuilder& b, const std::string& p, int64_t c, uint32_t seed) {
  b.Init(p + "_s", Random({c}, seed, 0.5f, 1.5f)).Init(p + "_b", Random({c}, seed + 1));
  b.Init(p + "_m", Random({c}, seed + 2)).Init(p + "_v", Random({c}, seed + 3, 0.5f, 2.f));
}

// ResNet basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + x).
SegmentBuilder ResidualBlock(int64_t n, int64_t c, int64_t hw) {
  SegmentBuilder b;
  b.In("x", {n, c, hw, hw});
  b.Init("w1", Random({c, c, 3, 3}, 1, -0.1f, 0.1f))
      .Init("w2", Random({c, c, 3, 3}, 2, -0.1f, 0.1f));
  AddBn(b, "bn1", c, 10);
  AddBn(b, "bn2", c, 20);
  const AttrMap pads = A({{"pads", Is({1, 1, 1, 1})}});
  b.Op("Conv", {"x", "w1"}, {"c1"}, pads);
  b.Op("BatchNormalization", {"c1", "bn1_s", "bn1_b", "bn1_m", "bn1_v"}, {"n1"});
  b.Op("Relu", {"n1"}, {"r1"});
  b.Op("Conv", {"r1", "w2"}, {"c2"}, pads);
  b.Op("BatchNormalization", {"c2", "bn2_s", "bn2_b", "bn2_m", "bn2_v"}, {"n2"});
  b.Op("Add", {"n2", "x"}, {"a"});
  b.Op("Relu", {"a"}, {"y"}).Out("y");
  return b;
}

void ExpectMatches(const Graph& g, const Engine& e, const std::vector<Tensor>& in,
                   double tol = 1e-5) {
  StatusOr<std::vector<Tensor>> want = testing_cpu::RunReference(g, in);
  ASSERT_TRUE(want.ok()) << want.status();
  StatusOr<std::vector<Tensor>> got = testing_cpu::RunEngine(e, in);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), want->size());
  for (size_t i = 0; i < got->size(); ++i) {
    EXPECT_LE(testing_cpu::RelL2((*got)[i], (*want)[i]), tol) << "output " << i;
  }
}

std::unique_ptr<Engine> MustBuild(const SegmentBuilder& b, BuildConfig cfg) {
  StatusOr<std::unique_ptr<Engine>> e = CpuBackend().Build(b.graph(), cfg);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? std::move(e).value() : nullptr;
}

std::string Ops(const Engine& e) {
  std::string s;
  for (const LayerInfo& l : e.Layers()) s += l.op + " [" + l.implementation + "]; ";
  return s;
}

TEST(CpuFusion, ConvBnReluAddResidual) {
  SegmentBuilder b = ResidualBlock(2, 16, 8);
  auto e = MustBuild(b, testing_cpu::Config(b.shapes()));
  ASSERT_NE(e, nullptr);
  const std::vector<LayerInfo> layers = e->Layers();
  ASSERT_EQ(layers.size(), 2u) << Ops(*e);
  EXPECT_EQ(layers[0].op, "Conv+BatchNormalization+Relu");
  EXPECT_EQ(layers[1].op, "Conv+BatchNormalization+Add+Relu");
  EXPECT_EQ(layers[1].nodes.size(), 4u);
  EXPECT_EQ(layers[0].precision, "FP32");
  EXPECT_FALSE(layers[0].implementation.empty());
  ExpectMatches(b.graph(), *e, {Random({2, 16, 8, 8}, 5)});
}

TEST(CpuFusion, MatMulBiasGelu) {
  SegmentBuilder b;
  b.In("x", {2, 5, 32}).Init("w", Random({32, 48}, 1)).Init("bias", Random({48}, 2));
  b.Op("MatMul", {"x", "w"}, {"m"})
      .Op("Add", {"m", "bias"}, {"a"})
      .Op("Gelu", {"a"}, {"y"})
      .Out("y");
  auto e = MustBuild(b, testing_cpu::Config(b.shapes()));
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(e->Layers().size(), 1u) << Ops(*e);
  EXPECT_EQ(e->Layers()[0].op, "MatMul+Add+Gelu");
  ExpectMatches(b.graph(), *e, {Random({2, 5, 32}, 5, -2.f, 2.f)});
}

TEST(CpuFusion, GemmBiasResidualSum) {
  SegmentBuilder b;
  b.In("x", {4, 16}).In("r", {4, 8}).Init("w", Random({8, 16}, 1)).Init("c", Random({8}, 2));
  b.Op("Gemm", {"x", "w", "c"}, {"g"}, A({{"transB", Attr::Int(1)}}));
  b.Op("Add", {"r", "g"}, {"y"}).Out("y");
  auto e = MustBuild(b, testing_cpu::Config(b.shapes()));
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(e->Layers().size(), 1u) << Ops(*e);
  EXPECT_EQ(e->Layers()[0].op, "Gemm+Add");
  ExpectMatches(b.graph(), *e, {Random({4, 16}, 5), Random({4, 8}, 6)});
}

TEST(CpuFusion, SiblingConvsMerged) {
  SegmentBuilder b;
  b.In("x", {2, 32, 7, 7});
  b.Init("wa", Random({16, 32, 1, 1}, 1))
      .Init("wb", Random({24, 32, 1, 1}, 2))
      .Init("ba", Random({16}, 3));
  b.Init("wc", Random({8, 32, 1, 1}, 4));
  b.Op("Conv", {"x", "wa", "ba"}, {"ca"}).Op("Relu", {"ca"}, {"ya"});
  b.Op("Conv", {"x", "wb"}, {"cb"}).Op("Relu", {"cb"}, {"yb"});
  b.Op("Conv", {"x", "wc"}, {"yc"});  // no Relu: not mergeable with the others
  b.Op("MaxPool", {"yb"}, {"pb"}, A({{"kernel_shape", Is({2, 2})}}));
  b.Out("ya").Out("pb").Out("yc");
  auto e = MustBuild(b, testing_cpu::Config(b.shapes()));
  ASSERT_NE(e, nullptr);
  const std::vector<LayerInfo> layers = e->Layers();
  ASSERT_EQ(layers.size(), 3u) << Ops(*e);
  EXPECT_EQ(layers[0].op, "Conv+Relu || Conv+Relu");
  EXPECT_EQ(layers[0].nodes.size(), 4u);
  ExpectMatches(b.graph(), *e, {Random({2, 32, 7, 7}, 5)});
}

TEST(CpuFusion, SiblingMatMulsMergedQkv) {
  SegmentBuilder b;
  b.In("x", {2, 6, 32});
  for (const char* n : {"q", "k", "v"}) b.Init(std::string("w") + n, Random({32, 32}, n[0]));
  b.Init("bq", Random({32}, 9));
  b.Op("MatMul", {"x", "wq"}, {"mq"}).Op("Add", {"mq", "bq"}, {"q"});
  b.Op("MatMul", {"x", "wk"}, {"k"}).Op("MatMul", {"x", "wv"}, {"v"});
  b.Op("Transpose", {"k"}, {"kt"}, A({{"perm", Is({0, 2, 1})}}));
  b.Op("MatMul", {"q", "kt"}, {"s"}).Op("Softmax", {"s"}, {"p"});
  b.Op("MatMul", {"p", "v"}, {"y"}).Out("y");
  auto e = MustBuild(b, testing_cpu::Config(b.shapes()));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->Layers()[0].op, "MatMul+Add || MatMul || MatMul") << Ops(*e);
  ExpectMatches(b.graph(), *e, {Random({2, 6, 32}, 5)});
}

// PaddleOCR's HardSwish: t = BN(Conv(x)); y = t * Clip(t + 3, 0, 6) / 6 with rank-0 constants
// (opset 9 Clip attributes), as p2o writes it.
SegmentBuilder PaddleHardSwish(int64_t n) {
  SegmentBuilder b(9);
  b.In("x", {n, 3, 12, 16}).Init("w", Random({8, 3, 3, 3}, 1, -0.5f, 0.5f));
  AddBn(b, "bn", 8, 10);
  b.Init("three", Tensor::Scalar<float>(3.f)).Init("six", Tensor::Scalar<float>(6.f));
  b.Op("Conv", {"x", "w"}, {"c"}, A({{"pads", Is({1, 1, 1, 1})}, {"strides", Is({2, 1})}}));
  b.Op("BatchNormalization", {"c", "bn_s", "bn_b", "bn_m", "bn_v"}, {"t"});
  b.Op("Add", {"t", "three"}, {"a"});
  b.Op("Clip", {"a"}, {"cl"}, A({{"min", Attr::Float(0.f)}, {"max", Attr::Float(6.f)}}));
  b.Op("Mul", {"t", "cl"}, {"m"});
  b.Op("Div", {"m", "six"}, {"y"}).Out("y");
  return b;
}

TEST(CpuFusion, PaddleHardSwishBecomesAConvPostOp) {
  SegmentBuilder b = PaddleHardSwish(2);
  std::map<std::string, Tensor> values;
  ASSERT_TRUE(testing_cpu::RunReference(b.graph(), {Random({2, 3, 12, 16}, 1)}, &values).ok());
  b.InferValueInfo(values);
  for (const Node& n : b.graph().nodes) {
    EXPECT_TRUE(CpuBackend().Supports(n, b.graph(), testing_cpu::Config(b.shapes())).ok())
        << n.op_type;
  }
  auto e = MustBuild(b, testing_cpu::Config(b.shapes()));
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(e->Layers().size(), 1u) << Ops(*e);
  EXPECT_EQ(e->Layers()[0].op, "Conv+BatchNormalization+HardSwish(Add+Clip+Mul+Div)");
  EXPECT_EQ(e->Layers()[0].nodes.size(), 6u);
  ExpectMatches(b.graph(), *e, {Random({2, 3, 12, 16}, 5, -2.f, 2.f)});
}

// x * HardSigmoid(x) is HardSwish only for alpha 1/6, beta 1/2; any other gate stays a product.
TEST(CpuFusion, TimesHardSigmoidIsHardSwishOnlyForItsConstants) {
  for (const float alpha : {1.f / 6, 0.2f}) {
    SegmentBuilder b;
    b.In("x", {2, 4, 6, 6}).Init("w", Random({8, 4, 1, 1}, 1));
    b.Op("Conv", {"x", "w"}, {"c"});
    b.Op("HardSigmoid", {"c"}, {"g"},
         A({{"alpha", Attr::Float(alpha)}, {"beta", Attr::Float(0.5f)}}));
    b.Op("Mul", {"g", "c"}, {"y"}).Out("y");
    auto e = MustBuild(b, testing_cpu::Config(b.shapes()));
    ASSERT_NE(e, nullptr);
    if (alpha == 0.2f) {
      EXPECT_EQ(e->Layers().size(), 3u) << Ops(*e);
    } else {
      ASSERT_EQ(e->Layers().size(), 1u) << Ops(*e);
      EXPECT_EQ(e->Layers()[0].op, "Conv+HardSwish(HardSigmoid+Mul)");
    }
    ExpectMatches(b.graph(), *e, {Random({2, 4, 6, 6}, 5, -4.f, 4.f)});
  }
}

// Scalar-constant Add / Mul / Sub / Div and Clip after a conv: one eltwise chain of post-ops.
TEST(CpuFusion, ScalarArithmeticChainIsPostOps) {
  SegmentBuilder b;
  b.In("x", {2, 4, 6, 6}).Init("w", Random({8, 4, 3, 3}, 1));
  b.Init("k1", Tensor::Scalar<float>(0.5f)).Init("k2", testing_cpu::Floats({1.5f}));
  b.Init("k3", Tensor::Scalar<float>(2.f)).Init("lo", Tensor::Scalar<float>(-0.4f));
  b.Init("hi", Tensor::Scalar<float>(0.9f));
  b.Op("Conv", {"x", "w"}, {"c"});
  b.Op("Add", {"c", "k1"}, {"a"}).Op("Mul", {"k2", "a"}, {"m"});
  b.Op("Sub", {"k1", "m"}, {"s"}).Op("Div", {"s", "k3"}, {"d"});
  b.Op("Clip", {"d", "lo", "hi"}, {"y"}).Out("y");
  auto e = MustBuild(b, testing_cpu::Config(b.shapes()));
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(e->Layers().size(), 1u) << Ops(*e);
  EXPECT_EQ(e->Layers()[0].op, "Conv+Add+Mul+Sub+Div+Clip");
  ExpectMatches(b.graph(), *e, {Random({2, 4, 6, 6}, 5)});
}

// oneDNN 2.6's jit post-ops keep one injector per eltwise algorithm: conv + linear + relu +
// linear with other parameters computed the second linear with the first one's alpha / beta.
// Such a chain stays a separate eltwise layer; the numbers must match either way.
TEST(CpuFusion, RepeatedEltwiseAlgorithmIsNotOnePrimitive) {
  SegmentBuilder b;
  b.In("x", {2, 4, 6, 6}).Init("w", Random({8, 4, 3, 3}, 1));
  b.Init("k1", Tensor::Scalar<float>(0.5f)).Init("k2", testing_cpu::Floats({1.5f}));
  b.Op("Conv", {"x", "w"}, {"c"}).Op("Add", {"c", "k1"}, {"a"}).Op("Relu", {"a"}, {"r"});
  b.Op("Mul", {"r", "k2"}, {"y"}).Out("y");
  auto e = MustBuild(b, testing_cpu::Config(b.shapes()));
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(e->Layers().size(), 2u) << Ops(*e);
  EXPECT_EQ(e->Layers()[1].op, "Add+Relu+Mul");
  ExpectMatches(b.graph(), *e, {Random({2, 4, 6, 6}, 5)});
}

// Conv + PRelu with a constant per-channel slope ([C,1,1] NCHW, [C] NHWC): a prelu post-op where
// oneDNN has a real (non-reference) kernel for it, else two layers (oneDNN 2.6 runs a conv with
// a prelu post-op only on ref:any, far slower than conv + prelu apart); either way the conv
// does not run on a reference kernel; through a plan round trip too; a slope that varies over
// H stays a prelu layer.
TEST(CpuFusion, ConvPReluPerChannelIsPostOp) {
  for (const bool nhwc : {false, true}) {
    SegmentBuilder b;
    b.In("x", nhwc ? std::vector<int64_t>{2, 8, 8, 4} : std::vector<int64_t>{2, 4, 8, 8});
    b.Init("w", Random({8, 4, 3, 3}, 1));
    b.Init("s", nhwc ? Random({8}, 2, 0.f, 0.5f) : Random({8, 1, 1}, 2, 0.f, 0.5f));
    AttrMap attrs = A({{"pads", Is({1, 1, 1, 1})}});
    if (nhwc) attrs["data_format"] = Attr::String("NHWC");
    b.Op("Conv", {"x", "w"}, {"c"}, attrs).Op("PRelu", {"c", "s"}, {"y"}).Out("y");
    const BuildConfig cfg = testing_cpu::Config(b.shapes());
    auto e = MustBuild(b, cfg);
    ASSERT_NE(e, nullptr);
    if (e->Layers().size() == 1) {
      EXPECT_EQ(e->Layers()[0].op, "Conv+PRelu");
    } else {
      ASSERT_EQ(e->Layers().size(), 2u) << Ops(*e);
      EXPECT_EQ(e->Layers()[1].op, "PRelu");
    }
    EXPECT_NE(e->Layers()[0].implementation.rfind("ref", 0), 0u) << Ops(*e);  // the conv
    const std::vector<Tensor> in = {Random(b.shapes()[0], 5)};
    ExpectMatches(b.graph(), *e, in);
    StatusOr<std::unique_ptr<Engine>> d =
        CpuBackend().Deserialize(*e->SerializePayload(), b.graph(), cfg);
    ASSERT_TRUE(d.ok()) << d.status();
    ExpectMatches(b.graph(), **d, in);
  }
  SegmentBuilder b;
  b.In("x", {2, 4, 8, 8}).Init("w", Random({8, 4, 3, 3}, 1)).Init("s", Random({8, 6, 1}, 2));
  b.Op("Conv", {"x", "w"}, {"c"}).Op("PRelu", {"c", "s"}, {"y"}).Out("y");
  auto e = MustBuild(b, testing_cpu::Config(b.shapes()));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->Layers().size(), 2u) << Ops(*e);
  ExpectMatches(b.graph(), *e, {Random({2, 4, 8, 8}, 5)});
}

// Supports reasons name no node (the conversion report groups nodes by op type and reason);
// build errors do.
TEST(CpuSupports, ReasonsNameNoNode) {
  SegmentBuilder b;
  b.In("x", {2, 3, 4}).In("s", {});
  b.Op("Add", {"x", "s"}, {"a"});                            // a non-constant scalar
  b.Op("Relu", {"x"}, {"r"}, A({{"bogus", Attr::Int(1)}}));  // CheckNode's message
  b.Op("Div", {"x", "z"}, {"d"}).Init("z", Tensor::Scalar<float>(0.f));
  b.Op("Conv", {"x", "x"}, {"c"});
  Graph g = b.graph();
  const BuildConfig cfg = testing_cpu::Config({{2, 3, 4}, {}});
  for (const Node& n : g.nodes) {
    const Status s = CpuBackend().Supports(n, g, cfg);
    ASSERT_FALSE(s.ok()) << n.op_type;
    EXPECT_EQ(s.message().find(n.name), std::string::npos) << s;
    EXPECT_EQ(s.message().find("node '"), std::string::npos) << s;
    EXPECT_EQ(s.message().find("layer '"), std::string::npos) << s;
  }
  EXPECT_EQ(CpuBackend().Supports(g.nodes[0], g, cfg).message(),
            "a rank-0 (scalar) operand that is not a constant");
  EXPECT_EQ(CpuBackend().Supports(g.nodes[1], g, cfg).message(), "unknown attribute 'bogus'");
  EXPECT_EQ(CpuBackend().Supports(g.nodes[2], g, cfg).message(),
            "division by a constant 0 or a subnormal constant");
  // A build error names the node.
  SegmentBuilder one;
  one.In("x", {2, 3, 4}).Init("z", Tensor::Scalar<float>(0.f));
  one.Op("Div", {"x", "z"}, {"d"}).Out("d");
  StatusOr<std::unique_ptr<Engine>> e =
      CpuBackend().Build(one.graph(), testing_cpu::Config(one.shapes()));
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("node 'd_node' (Div): division by a constant 0"),
            std::string::npos)
      << e.status();
}

TEST(CpuSupports, Reasons) {
  SegmentBuilder b;
  b.In("x", {1, 3, 8, 8}).In("w", {4, 3, 3, 3}).In("i", {1, 3}, DataType::kInt64);
  b.Op("Conv", {"x", "w"}, {"c"});
  b.Op("Softmax", {"x"}, {"s"}, A({{"axis", Attr::Int(1)}}));
  b.Op("Resize", {"x", "", "sc"}, {"r"}, A({{"mode", Attr::String("cubic")}}));
  b.Op("Add", {"i", "i"}, {"ii"});
  b.Op("TopK", {"x", "k"}, {"t", "ti"});
  b.Init("sc", testing_cpu::Floats({1, 1, 2, 2})).Init("k", testing_cpu::Ints({2}));
  Graph g = b.graph();
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  auto reason = [&](int node) { return CpuBackend().Supports(g.nodes[node], g, cfg).message(); };
  EXPECT_NE(reason(0).find("W must be a constant"), std::string::npos) << reason(0);
  EXPECT_TRUE(CpuBackend().Supports(g.nodes[1], g, cfg).ok());  // opset 17: any axis
  EXPECT_NE(reason(2).find("mode 'cubic'"), std::string::npos) << reason(2);
  EXPECT_NE(reason(3).find("int64"), std::string::npos) << reason(3);
  EXPECT_NE(reason(4).find("TopK is not supported"), std::string::npos) << reason(4);
  g.opset_imports[""] = 11;
  EXPECT_NE(reason(1).find("opset < 13"), std::string::npos) << reason(1);
  BuildConfig fp16 = cfg;
  fp16.precision = Precision::kFP16;
  // FP16 mode builds (FP32 layers where there is no FP16 kernel): the same reasons as FP32.
  EXPECT_EQ(CpuBackend().Supports(g.nodes[1], g, fp16).message(), reason(1));
}

TEST(CpuEngine, WorkspaceLimitNamesTheLayer) {
  // oneDNN 2.6's only softmax over a non-innermost axis needs a scratchpad.
  SegmentBuilder b;
  b.In("x", {8, 64, 256});
  b.Op("Softmax", {"x"}, {"y"}, A({{"axis", Attr::Int(1)}})).Out("y");
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  cfg.max_workspace_size_bytes = 16;
  StatusOr<std::unique_ptr<Engine>> e = CpuBackend().Build(b.graph(), cfg);
  ASSERT_FALSE(e.ok()) << Ops(**e);
  EXPECT_EQ(e.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(e.status().message().find("layer 'y_node' (Softmax) needs "), std::string::npos)
      << e.status();
  EXPECT_NE(e.status().message().find("max_workspace_size_bytes is 16"), std::string::npos);
  // A limit that fits builds and still matches.
  cfg.max_workspace_size_bytes = int64_t{1} << 30;
  auto ok = MustBuild(b, cfg);
  ASSERT_NE(ok, nullptr);
  ExpectMatches(b.graph(), *ok, {Random({8, 64, 256}, 3)});
}

TEST(CpuPlan, SerializeDeserializeSameOutputs) {
  SegmentBuilder b = ResidualBlock(2, 16, 8);
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  auto e = MustBuild(b, cfg);
  ASSERT_NE(e, nullptr);
  StatusOr<std::string> payload = e->SerializePayload();
  ASSERT_TRUE(payload.ok());
  StatusOr<std::unique_ptr<Engine>> d = CpuBackend().Deserialize(*payload, b.graph(), cfg);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ((*d)->Layers().size(), e->Layers().size());
  for (size_t i = 0; i < e->Layers().size(); ++i) {
    EXPECT_EQ((*d)->Layers()[i].op, e->Layers()[i].op);
    EXPECT_EQ((*d)->Layers()[i].implementation, e->Layers()[i].implementation);
  }
  const std::vector<Tensor> in = {Random({2, 16, 8, 8}, 9)};
  auto a = testing_cpu::RunEngine(*e, in);
  auto c = testing_cpu::RunEngine(**d, in);
  ASSERT_TRUE(a.ok() && c.ok());
  EXPECT_TRUE((*a)[0].BitwiseEqual((*c)[0]));
}

TEST(CpuPlan, CorruptedPayloadRejected) {
  SegmentBuilder b = ResidualBlock(1, 8, 6);
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  auto e = MustBuild(b, cfg);
  ASSERT_NE(e, nullptr);
  const std::string payload = *e->SerializePayload();
  for (std::string bad : {std::string(), std::string("garbage"),
                          payload.substr(0, payload.size() / 2), payload + "x"}) {
    StatusOr<std::unique_ptr<Engine>> d = CpuBackend().Deserialize(bad, b.graph(), cfg);
    EXPECT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), StatusCode::kDataLoss) << d.status();
  }
  // Random byte flips: each is rejected or builds a working engine; none crashes.
  std::mt19937 rng(1);
  int rejected = 0;
  for (int i = 0; i < 300; ++i) {
    std::string m = payload;
    // Mostly the structure (header and layer table), where a flip matters most.
    const size_t pos = rng() % 2 ? rng() % std::min<size_t>(m.size(), 400)
                                 : m.size() - 1 - rng() % std::min<size_t>(m.size(), 600);
    m[pos] = static_cast<char>(m[pos] ^ (1 << (rng() % 8)));
    StatusOr<std::unique_ptr<Engine>> d = CpuBackend().Deserialize(m, b.graph(), cfg);
    if (!d.ok()) {
      ++rejected;
      EXPECT_FALSE(d.status().message().empty());
      continue;
    }
    std::vector<Tensor> out;
    const Tensor x = Random({1, 8, 6, 6}, 3);
    (void)(*d)->Execute({&x}, &out);
  }
  EXPECT_GT(rejected, 0);
}

TEST(CpuEngine, BatchesUpToMax) {
  SegmentBuilder b = ResidualBlock(4, 8, 6);
  auto e = MustBuild(b, testing_cpu::Config(b.shapes(), 4));
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->Accepts({{3, 8, 6, 6}}));
  EXPECT_FALSE(e->Accepts({{5, 8, 6, 6}}));
  EXPECT_FALSE(e->Accepts({{2, 8, 7, 6}}));
  EXPECT_FALSE(e->Accepts({{2, 8, 6}}));
  for (int64_t n : {4, 3, 1}) ExpectMatches(b.graph(), *e, {Random({n, 8, 6, 6}, n)});
}

TEST(CpuEngine, ConcurrentExecuteEqualsSerial) {
  SegmentBuilder b = ResidualBlock(2, 16, 10);
  auto e = MustBuild(b, testing_cpu::Config(b.shapes()));
  ASSERT_NE(e, nullptr);
  std::vector<Tensor> inputs, serial;
  for (int i = 0; i < 4; ++i) {
    inputs.push_back(Random({i % 2 ? 1 : 2, 16, 10, 10}, 40 + i));
    serial.push_back((*testing_cpu::RunEngine(*e, {inputs[i]}))[0]);
  }
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 10; ++rep) {
        const int i = (t + rep) % 4;
        auto out = testing_cpu::RunEngine(*e, {inputs[i]});
        if (!out.ok() || !(*out)[0].BitwiseEqual(serial[i])) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST(CpuEngine, ProfileFillsLayerTimes) {
  SegmentBuilder b = ResidualBlock(1, 8, 8);
  auto e = MustBuild(b, testing_cpu::Config(b.shapes()));
  ASSERT_NE(e, nullptr);
  const Tensor x = Random({1, 8, 8, 8}, 1);
  std::vector<Tensor> out;
  std::vector<LayerInfo> prof;
  ASSERT_TRUE(e->Execute({&x}, &out, &prof).ok());
  ASSERT_EQ(prof.size(), e->Layers().size());
  for (const LayerInfo& l : prof) EXPECT_GT(l.ms, 0.0) << l.op;
}

// FP32 3x3 stride-1 convs run on oneDNN's Winograd kernels where it has one (layers_conv.cc):
// same numbers as the reference within the FP32 tolerance, the algorithm kept by a plan, and
// KILN_CPU_WINOGRAD=0 keeping every conv direct.
bool AnyWinograd(const Engine& e) {
  for (const LayerInfo& l : e.Layers()) {
    if (l.implementation.find("wino") != std::string::npos) return true;
  }
  return false;
}

TEST(CpuConv, WinogradMatchesReferenceAndSurvivesThePlan) {
  SegmentBuilder b = ResidualBlock(2, 64, 28);
  const BuildConfig cfg = testing_cpu::Config(b.shapes());
  auto e = MustBuild(b, cfg);
  ASSERT_NE(e, nullptr);
  if (!AnyWinograd(*e)) GTEST_SKIP() << "oneDNN has no Winograd kernel on this CPU: " << Ops(*e);
  const std::vector<Tensor> in = {Random({2, 64, 28, 28}, 7, -2.f, 2.f)};
  ExpectMatches(b.graph(), *e, in);
  StatusOr<std::string> payload = e->SerializePayload();
  ASSERT_TRUE(payload.ok()) << payload.status();
  StatusOr<std::unique_ptr<Engine>> d = CpuBackend().Deserialize(*payload, b.graph(), cfg);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(Ops(**d), Ops(*e));
  auto a = testing_cpu::RunEngine(*e, in);
  auto c = testing_cpu::RunEngine(**d, in);
  ASSERT_TRUE(a.ok() && c.ok());
  EXPECT_TRUE((*a)[0].BitwiseEqual((*c)[0]));

  setenv("KILN_CPU_WINOGRAD", "0", 1);
  auto direct = MustBuild(b, cfg);
  unsetenv("KILN_CPU_WINOGRAD");
  ASSERT_NE(direct, nullptr);
  EXPECT_FALSE(AnyWinograd(*direct)) << Ops(*direct);
  ExpectMatches(b.graph(), *direct, in);
  // A plan made without Winograd stays direct when loaded where Winograd is allowed.
  StatusOr<std::unique_ptr<Engine>> dd =
      CpuBackend().Deserialize(*direct->SerializePayload(), b.graph(), cfg);
  ASSERT_TRUE(dd.ok()) << dd.status();
  EXPECT_FALSE(AnyWinograd(**dd)) << Ops(**dd);
}

// Narrow 3x3 convs (fewer than 32 input channels) stay direct: Winograd's transforms outweigh
// its GEMM savings there (layers_conv.cc, kWinogradMinIn).
TEST(CpuConv, NarrowConvsStayDirect) {
  SegmentBuilder wide = ResidualBlock(1, 64, 14);
  auto w = MustBuild(wide, testing_cpu::Config(wide.shapes()));
  ASSERT_NE(w, nullptr);
  if (!AnyWinograd(*w)) GTEST_SKIP() << "oneDNN has no Winograd kernel on this CPU: " << Ops(*w);
  SegmentBuilder b = ResidualBlock(2, 16, 28);
  auto e = MustBuild(b, testing_cpu::Config(b.shapes()));
  ASSERT_NE(e, nullptr);
  EXPECT_FALSE(AnyWinograd(*e)) << Ops(*e);
  ExpectMatches(b.graph(), *e, {Random({2, 16, 28, 28}, 9, -2.f, 2.f)});
}

// Tactic timing (tactics.h) runs each candidate on buffers it makes from the primitive's own
// argument descriptors: layers with eltwise, sum (residual) and PReLU post-ops must time and build
// correctly (it used to read an eltwise / sum entry as a binary operand's descriptor — a garbage
// size — and crash now and then; with a PReLU post-op it gave no slope buffer).
TEST(CpuTactics, TimingLayersWithPostOps) {
  setenv("KILN_TACTIC_TIMING", "1", 1);
  SegmentBuilder res = ResidualBlock(2, 16, 12);  // Conv+BN+Relu, Conv+BN+Add+Relu
  auto e = MustBuild(res, testing_cpu::Config(res.shapes()));
  SegmentBuilder pr;
  pr.In("x", {2, 16, 8, 8}).Init("w", Random({32, 16, 1, 1}, 1)).Init("s", Random({32, 1, 1}, 2));
  pr.Op("Conv", {"x", "w"}, {"c"})
      .Op("PRelu", {"c", "s"}, {"y"})
      .Out("y");
  auto p = MustBuild(pr, testing_cpu::Config(pr.shapes()));
  unsetenv("KILN_TACTIC_TIMING");
  ASSERT_NE(e, nullptr);
  ASSERT_NE(p, nullptr);
  // Some layer of each was really timed (the implementation names the tactic choice).
  EXPECT_NE(Ops(*e).find("timed "), std::string::npos) << Ops(*e);
  EXPECT_NE(Ops(*p).find("timed "), std::string::npos) << Ops(*p);
  ExpectMatches(res.graph(), *e, {Random({2, 16, 12, 12}, 3)});
  ExpectMatches(pr.graph(), *p, {Random({2, 16, 8, 8}, 4)});
}

// Not a pass/fail test: prints the engine vs the reference kernels on a ResNet-50 stage-2 block
// (64 channels, 56x56, two 3x3 convs with BN, residual add, ReLU).
TEST(CpuBench, ResNetBlockTiming) {
  SegmentBuilder b = ResidualBlock(1, 64, 56);
  auto e = MustBuild(b, testing_cpu::Config(b.shapes()));
  ASSERT_NE(e, nullptr);
  const std::vector<Tensor> in = {Random({1, 64, 56, 56}, 1)};
  ExpectMatches(b.graph(), *e, in);
  using Clock = std::chrono::steady_clock;
  auto time = [](auto&& f, int reps) {
    f();
    const auto t0 = Clock::now();
    for (int i = 0; i < reps; ++i) f();
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / reps;
  };
  const double ref = time([&] { (void)testing_cpu::RunReference(b.graph(), in); }, 3);
  const double eng = time([&] { (void)testing_cpu::RunEngine(*e, in); }, 20);
  std::printf("[ timing ] ResNet block 1x64x56x56: reference %.2f ms, CPU engine %.2f ms (%.1fx)\n",
              ref, eng, ref / eng);
  for (const LayerInfo& l : e->Layers()) {
    std::printf("[ timing ]   %s  %s\n", l.op.c_str(), l.implementation.c_str());
  }
}

}  // namespace
}  // namespace kiln
