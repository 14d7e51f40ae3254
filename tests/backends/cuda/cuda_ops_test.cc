// The CUDA backend against the CPU reference kernels: every op the backend claims (single ops
// and the fused patterns ResNet-50 and BERT need), per precision, on random non-constant
// inputs. FP32 without TF32 within rel. L2 1e-5, FP32 with TF32 1e-3, FP16 1e-2, BF16 5e-2.
// Each case also runs at a smaller batch than it was built for. Skipped where no GPU is
// visible (CI builds this test but has no GPU; scripts/gpu_suite.sh runs it on one).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/lowering.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_engine.h"
#include "engine/plan.h"

namespace kiln {
namespace {

using testing_cpu::A;
using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

Attr I(int64_t v) { return Attr::Int(v); }
Attr Is(std::vector<int64_t> v) { return Attr::Ints(std::move(v)); }
Attr F(float v) { return Attr::Float(v); }

struct Case {
  std::string name;
  std::function<SegmentBuilder()> make;
  float lo = -1.f, hi = 1.f;
  bool small_batch = true;  // also run at batch 1
};

struct Mode {
  std::string name;
  Precision precision;
  bool tf32;
  double tol;
  // KILN_CUDA_CONV for the mode's engines: null = the default (auto: the faster of the cuDNN
  // graph-API plan and the legacy fused call per convolution, which depends on timing), so the
  // two fp16 modes below force each path once.
  const char* conv_api = nullptr;
};

void PrintTo(const Mode& m, std::ostream* os) { *os << m.name; }

const std::vector<Mode>& Modes() {
  static const std::vector<Mode> m = {{"fp32", Precision::kFP32, false, 1e-5},
                                      {"tf32", Precision::kFP32, true, 1e-3},
                                      {"fp16", Precision::kFP16, false, 1e-2},
                                      {"bf16", Precision::kBF16, false, 5e-2},
                                      {"fp16_graph", Precision::kFP16, false, 1e-2, "graph"},
                                      {"fp16_legacy", Precision::kFP16, false, 1e-2, "legacy"}};
  return m;
}

SegmentBuilder Unary(const std::string& op, AttrMap attrs = {},
                     std::vector<int64_t> dims = {2, 3, 5, 7}) {
  SegmentBuilder b;
  b.In("x", dims).Op(op, {"x"}, {"y"}, std::move(attrs)).Out("y");
  return b;
}

SegmentBuilder Conv(std::vector<int64_t> x, std::vector<int64_t> w, AttrMap attrs, bool bias) {
  SegmentBuilder b;
  b.In("x", x).Init("w", Random(w, 7, -0.5f, 0.5f));
  std::vector<std::string> in = {"x", "w"};
  if (bias) {
    b.Init("b", Random({w[0]}, 8));
    in.push_back("b");
  }
  b.Op("Conv", in, {"y"}, std::move(attrs)).Out("y");
  return b;
}

SegmentBuilder Bin(const std::string& op, std::vector<int64_t> a, std::vector<int64_t> c,
                   bool c_const = false) {
  SegmentBuilder b;
  b.In("a", a);
  if (c_const) {
    b.Init("c", Random(c, 11, 0.5f, 1.5f));
  } else {
    b.In("c", c);
  }
  b.Op(op, {"a", "c"}, {"y"}).Out("y");
  return b;
}

void AddBn(SegmentBuilder& b, const std::string& p, int64_t c, uint32_t seed) {
  b.Init(p + "_s", Random({c}, seed, 0.5f, 1.5f)).Init(p + "_b", Random({c}, seed + 1));
  b.Init(p + "_m", Random({c}, seed + 2)).Init(p + "_v", Random({c}, seed + 3, 0.5f, 2.f));
}

// BERT's attention + FFN block at small sizes (hidden 32, 2 heads, seq 8).
SegmentBuilder BertBlock() {
  const int64_t S = 8, H = 32, NH = 2, D = 16, FF = 64;
  SegmentBuilder b;
  b.In("x", {2, S, H});
  for (const char* n : {"q", "k", "v", "o"}) {
    b.Init(std::string("w") + n, Random({H, H}, n[0], -0.3f, 0.3f));
    b.Init(std::string("b") + n, Random({H}, n[0] + 100));
  }
  b.Init("w1", Random({H, FF}, 31, -0.3f, 0.3f)).Init("b1", Random({FF}, 32));
  b.Init("w2", Random({FF, H}, 33, -0.3f, 0.3f)).Init("b2", Random({H}, 34));
  b.Init("g1", Random({H}, 35, 0.8f, 1.2f)).Init("e1", Random({H}, 36));
  b.Init("g2", Random({H}, 37, 0.8f, 1.2f)).Init("e2", Random({H}, 38));
  b.Init("shape4", testing_cpu::Ints({-1, S, NH, D})).Init("shape3", testing_cpu::Ints({-1, S, H}));
  b.Init("sqrt_d", testing_cpu::Floats({4.f})).Init("sqrt2", testing_cpu::Floats({1.4142135f}));
  b.Init("one", testing_cpu::Floats({1.f})).Init("half", testing_cpu::Floats({0.5f}));
  for (const char* n : {"q", "k", "v"}) {
    const std::string s(n);
    b.Op("MatMul", {"x", "w" + s}, {s + "m"}).Op("Add", {s + "m", "b" + s}, {s + "a"});
    b.Op("Reshape", {s + "a", "shape4"}, {s + "r"});
  }
  b.Op("Transpose", {"qr"}, {"qt"}, A({{"perm", Is({0, 2, 1, 3})}}));
  b.Op("Transpose", {"kr"}, {"kt"}, A({{"perm", Is({0, 2, 3, 1})}}));
  b.Op("Transpose", {"vr"}, {"vt"}, A({{"perm", Is({0, 2, 1, 3})}}));
  b.Op("MatMul", {"qt", "kt"}, {"s"}).Op("Div", {"s", "sqrt_d"}, {"sd"});
  b.Op("Softmax", {"sd"}, {"p"}, A({{"axis", I(-1)}}));
  b.Op("MatMul", {"p", "vt"}, {"ctx"});
  b.Op("Transpose", {"ctx"}, {"ctxt"}, A({{"perm", Is({0, 2, 1, 3})}}));
  b.Op("Reshape", {"ctxt", "shape3"}, {"ctx3"});
  b.Op("MatMul", {"ctx3", "wo"}, {"om"}).Op("Add", {"om", "bo"}, {"oa"});
  b.Op("Add", {"x", "oa"}, {"res1"});
  b.Op("LayerNormalization", {"res1", "g1", "e1"}, {"ln1"},
       A({{"axis", I(-1)}, {"epsilon", F(1e-12f)}}));
  b.Op("MatMul", {"ln1", "w1"}, {"f1"}).Op("Add", {"f1", "b1"}, {"f1b"});
  b.Op("Div", {"f1b", "sqrt2"}, {"g0"}).Op("Erf", {"g0"}, {"g1e"});
  b.Op("Add", {"g1e", "one"}, {"g2a"}).Op("Mul", {"f1b", "g2a"}, {"g3"});
  b.Op("Mul", {"g3", "half"}, {"gelu"});
  b.Op("MatMul", {"gelu", "w2"}, {"f2"}).Op("Add", {"f2", "b2"}, {"f2b"});
  b.Op("Add", {"ln1", "f2b"}, {"res2"});
  b.Op("LayerNormalization", {"res2", "g2", "e2"}, {"y"},
       A({{"axis", I(-1)}, {"epsilon", F(1e-12f)}}));
  b.Out("y");
  return b;
}

std::vector<Case> Cases() {
  std::vector<Case> cs;
  const AttrMap pad1 = A({{"pads", Is({1, 1, 1, 1})}});
  cs.push_back({"conv3x3_pad1", [=] { return Conv({2, 8, 9, 9}, {16, 8, 3, 3}, pad1, true); }});
  cs.push_back({"conv_stride2_nobias", [] {
                  return Conv({2, 5, 11, 10}, {7, 5, 3, 3}, A({{"strides", Is({2, 2})}}), false);
                }});
  cs.push_back({"conv_groups2", [] {
                  return Conv({2, 8, 7, 7}, {6, 4, 3, 3},
                              A({{"group", I(2)}, {"pads", Is({1, 1, 1, 1})}}), true);
                }});
  cs.push_back({"conv_7x7_s2", [] {
                  return Conv({2, 3, 20, 20}, {8, 3, 7, 7},
                              A({{"strides", Is({2, 2})}, {"pads", Is({3, 3, 3, 3})}}), true);
                }});
  // Stride-2 convolutions of few channels run in space-to-depth form (FP16 / BF16): odd
  // sizes, other kernels and paddings.
  cs.push_back({"conv_3x3_s2_c4_odd", [] {
                  return Conv({2, 4, 15, 15}, {8, 4, 3, 3},
                              A({{"strides", Is({2, 2})}, {"pads", Is({1, 1, 1, 1})}}), true);
                }});
  cs.push_back({"conv_5x5_s2_c1", [] {
                  return Conv({2, 1, 17, 17}, {8, 1, 5, 5},
                              A({{"strides", Is({2, 2})}, {"pads", Is({2, 2, 2, 2})}}), false);
                }});
  cs.push_back({"conv_bn_relu_residual", [=] {
                  SegmentBuilder b;
                  const int64_t c = 16;
                  b.In("x", {2, c, 8, 8});
                  b.Init("w1", Random({c, c, 3, 3}, 1, -0.1f, 0.1f));
                  b.Init("w2", Random({c, c, 3, 3}, 2, -0.1f, 0.1f));
                  AddBn(b, "bn1", c, 10);
                  AddBn(b, "bn2", c, 20);
                  b.Op("Conv", {"x", "w1"}, {"c1"}, pad1);
                  b.Op("BatchNormalization", {"c1", "bn1_s", "bn1_b", "bn1_m", "bn1_v"}, {"n1"});
                  b.Op("Relu", {"n1"}, {"r1"});
                  b.Op("Conv", {"r1", "w2"}, {"c2"}, pad1);
                  b.Op("BatchNormalization", {"c2", "bn2_s", "bn2_b", "bn2_m", "bn2_v"}, {"n2"});
                  b.Op("Add", {"n2", "x"}, {"a"});
                  b.Op("Relu", {"a"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back({"conv_siblings_merged", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 16, 7, 7});
                  b.Init("wa", Random({8, 16, 1, 1}, 1)).Init("wb", Random({12, 16, 1, 1}, 2));
                  b.Op("Conv", {"x", "wa"}, {"ca"}).Op("Relu", {"ca"}, {"ya"});
                  b.Op("Conv", {"x", "wb"}, {"cb"}).Op("Relu", {"cb"}, {"yb"});
                  b.Out("ya").Out("yb");
                  return b;
                }});
  cs.push_back({"conv_sigmoid", [=] {
                  SegmentBuilder b = Conv({2, 4, 6, 6}, {8, 4, 3, 3}, pad1, true);
                  Graph& g = b.mutable_graph();
                  g.outputs = {"s"};
                  Node n;
                  n.name = "sig";
                  n.op_type = "Sigmoid";
                  n.inputs = {"y"};
                  n.outputs = {"s"};
                  g.nodes.push_back(n);
                  return b;
                }});
  cs.push_back(
      {"maxpool_3x3_s2_p1", [] {
         return Unary(
             "MaxPool",
             A({{"kernel_shape", Is({3, 3})}, {"strides", Is({2, 2})}, {"pads", Is({1, 1, 1, 1})}}),
             {2, 4, 9, 9});
       }});
  cs.push_back({"avgpool_2x2", [] {
                  return Unary("AveragePool",
                               A({{"kernel_shape", Is({2, 2})}, {"strides", Is({2, 2})}}),
                               {2, 4, 8, 8});
                }});
  cs.push_back({"global_avgpool", [] { return Unary("GlobalAveragePool", {}, {2, 6, 7, 7}); }});
  cs.push_back(
      {"resnet_tail", [] {  // GlobalAveragePool -> Flatten -> Gemm
         SegmentBuilder b;
         b.In("x", {2, 16, 4, 4}).Init("w", Random({10, 16}, 3)).Init("c", Random({10}, 4));
         b.Op("GlobalAveragePool", {"x"}, {"p"}).Op("Flatten", {"p"}, {"f"});
         b.Op("Gemm", {"f", "w", "c"}, {"y"}, A({{"transB", I(1)}})).Out("y");
         return b;
       }});
  cs.push_back({"gemm_alpha_beta", [] {
                  SegmentBuilder b;
                  b.In("a", {4, 6}).Init("w", Random({5, 6}, 3)).Init("c", Random({5}, 4));
                  b.Op("Gemm", {"a", "w", "c"}, {"y"},
                       A({{"transB", I(1)}, {"alpha", F(0.5f)}, {"beta", F(2.f)}}))
                      .Out("y");
                  return b;
                }});
  cs.push_back(
      {"matmul_bias_relu", [] {
         SegmentBuilder b;
         b.In("x", {2, 5, 32}).Init("w", Random({32, 48}, 1)).Init("bias", Random({48}, 2));
         b.Op("MatMul", {"x", "w"}, {"m"}).Op("Add", {"m", "bias"}, {"a"});
         b.Op("Relu", {"a"}, {"y"}).Out("y");
         return b;
       }});
  cs.push_back(
      {"matmul_bias_gelu",
       [] {
         SegmentBuilder b;
         b.In("x", {2, 5, 32}).Init("w", Random({32, 48}, 1)).Init("bias", Random({48}, 2));
         b.Op("MatMul", {"x", "w"}, {"m"}).Op("Add", {"m", "bias"}, {"a"});
         b.Op("Gelu", {"a"}, {"y"}).Out("y");
         return b;
       },
       -2.f, 2.f});
  cs.push_back({"matmul_bias_residual", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 5, 32}).In("r", {2, 5, 24});
                  b.Init("w", Random({32, 24}, 1)).Init("bias", Random({24}, 2));
                  b.Op("MatMul", {"x", "w"}, {"m"}).Op("Add", {"m", "bias"}, {"a"});
                  b.Op("Add", {"r", "a"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back({"matmul_batched_4d", [] {
                  SegmentBuilder b;
                  b.In("a", {2, 3, 5, 8}).In("c", {2, 3, 8, 6});
                  b.Op("MatMul", {"a", "c"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back({"softmax_last",
                [] {
                  return Unary("Softmax", A({{"axis", I(-1)}}), {2, 3, 5, 40});
                },
                -3.f, 3.f});
  cs.push_back({"softmax_axis1",
                [] {
                  return Unary("Softmax", A({{"axis", I(1)}}), {2, 6, 5});
                },
                -3.f, 3.f});
  cs.push_back({"logsoftmax", [] { return Unary("LogSoftmax", A({{"axis", I(-1)}}), {2, 10}); }});
  cs.push_back(
      {"layernorm", [] {
         SegmentBuilder b;
         b.In("x", {2, 5, 48}).Init("g", Random({48}, 1, 0.5f, 1.5f)).Init("e", Random({48}, 2));
         b.Op("LayerNormalization", {"x", "g", "e"}, {"y"}, A({{"axis", I(-1)}})).Out("y");
         return b;
       }});
  // Long rows (the layer-norm kernel loops over a row in three passes, any length).
  cs.push_back(
      {"layernorm_long_rows", [] {
         SegmentBuilder b;
         b.In("x", {2, 3, 2100})
             .Init("g", Random({2100}, 3, 0.5f, 1.5f))
             .Init("e", Random({2100}, 4));
         b.Op("LayerNormalization", {"x", "g", "e"}, {"y"}, A({{"axis", I(-1)}})).Out("y");
         return b;
       },
       -4.f, 4.f});
  for (const char* op :
       {"Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Erf", "Softplus", "Gelu", "HardSwish", "Mish"}) {
    cs.push_back({std::string("unary_") + op, [op] { return Unary(op); }, -2.f, 2.f});
  }
  cs.push_back({"unary_Exp", [] { return Unary("Exp"); }});
  cs.push_back({"unary_Sqrt", [] { return Unary("Sqrt"); }, 0.1f, 2.f});
  cs.push_back({"leaky_relu", [] { return Unary("LeakyRelu", A({{"alpha", F(0.1f)}})); }});
  cs.push_back({"elu", [] { return Unary("Elu", A({{"alpha", F(0.7f)}})); }});
  cs.push_back({"add_same", [] { return Bin("Add", {2, 3, 5, 7}, {2, 3, 5, 7}); }});
  cs.push_back({"add_bcast_last", [] { return Bin("Add", {2, 3, 5, 7}, {7}); }});
  cs.push_back({"mul_per_channel", [] { return Bin("Mul", {2, 3, 5, 7}, {1, 3, 1, 1}, true); }});
  cs.push_back({"sub_bcast_mid", [] { return Bin("Sub", {2, 3, 5, 7}, {3, 1, 7}); }});
  cs.push_back({"div_const", [] { return Bin("Div", {2, 3, 5, 7}, {5, 7}, true); }});
  cs.push_back({"max_same", [] { return Bin("Max", {4, 9}, {4, 9}); }});
  cs.push_back({"min_same", [] { return Bin("Min", {4, 9}, {4, 9}); }});
  cs.push_back({"transpose_0213", [] {
                  return Unary("Transpose", A({{"perm", Is({0, 2, 1, 3})}}), {2, 3, 5, 7});
                }});
  cs.push_back({"concat_axis1", [] {
                  SegmentBuilder b;
                  b.In("a", {2, 3, 4}).In("c", {2, 5, 4});
                  b.Op("Relu", {"a"}, {"ra"});
                  b.Op("Concat", {"ra", "c"}, {"y"}, A({{"axis", I(1)}})).Out("y");
                  return b;
                }});
  cs.push_back({"relu_batchnorm", [] {  // BN after a non-conv op: not folded
                  SegmentBuilder b;
                  b.In("x", {2, 4, 5, 5});
                  AddBn(b, "bn", 4, 40);
                  b.Op("Relu", {"x"}, {"r"});
                  b.Op("BatchNormalization", {"r", "bn_s", "bn_b", "bn_m", "bn_v"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back({"prelu_channel", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 3, 4, 5}).Init("s", Random({3, 1, 1}, 5, 0.1f, 0.3f));
                  b.Op("PRelu", {"x", "s"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back({"bert_block", [] { return BertBlock(); }});
  // Attention shapes the fused kernel (cuda_build_attention.cc) must get right: 130 rows and
  // keys (8-warp blocks of 128 rows, key tiles of 64, both with a partial last tile), a
  // broadcast additive mask, K given as K
  // (transposed by the graph) and the [B, S, H, D] output transpose; then cross attention
  // (Sq != Sk, 4-warp blocks), head dim 64, K^T from a head-split transpose, the plain
  // context as output.
  cs.push_back({"attention_mask", [] {
                  SegmentBuilder b;
                  b.In("q", {2, 3, 130, 32}).In("k", {2, 3, 130, 32}).In("v", {2, 3, 130, 32});
                  b.In("m", {2, 1, 1, 130});
                  b.Init("scale", testing_cpu::Floats({0.17f}));
                  b.Op("Transpose", {"k"}, {"kt"}, A({{"perm", Is({0, 1, 3, 2})}}));
                  b.Op("MatMul", {"q", "kt"}, {"s"}).Op("Mul", {"s", "scale"}, {"ss"});
                  b.Op("Add", {"ss", "m"}, {"sm"});
                  b.Op("Softmax", {"sm"}, {"p"}, A({{"axis", I(-1)}}));
                  b.Op("MatMul", {"p", "v"}, {"ctx"});
                  b.Op("Transpose", {"ctx"}, {"y"}, A({{"perm", Is({0, 2, 1, 3})}})).Out("y");
                  return b;
                },
                -2.f, 2.f});
  cs.push_back({"attention_cross", [] {
                  SegmentBuilder b;
                  b.In("q", {2, 2, 37, 64}).In("kr", {2, 100, 2, 64}).In("v", {2, 2, 100, 64});
                  b.Init("sqrt_d", testing_cpu::Floats({8.f}));
                  b.Op("Transpose", {"kr"}, {"kt"}, A({{"perm", Is({0, 2, 3, 1})}}));
                  b.Op("MatMul", {"q", "kt"}, {"s"}).Op("Div", {"s", "sqrt_d"}, {"sd"});
                  b.Op("Softmax", {"sd"}, {"p"}, A({{"axis", I(-1)}}));
                  b.Op("MatMul", {"p", "v"}, {"y"}).Out("y");
                  return b;
                },
                -3.f, 3.f});
  return cs;
}

bool HaveGpu() { return cuda::DeviceCount() > 0; }

StatusOr<std::unique_ptr<Engine>> BuildWith(const Graph& g, BuildConfig cfg, bool tf32) {
  KILN_ASSIGN_OR_RETURN(cpu::Program p, cpu::LowerSegment(g, cfg));
  cpu::FuseProgram(&p);
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaEngine> e,
                        cuda::CudaEngine::Create(std::move(p), cfg, 0, tf32));
  return std::unique_ptr<Engine>(std::move(e));
}

// One case in one mode; failures name the case (one test per mode keeps CI's ctest list short:
// without a GPU every case is a skip, and each ctest entry is a process start).
void CheckCase(const Case& c, const Mode& m) {
  SCOPED_TRACE(c.name + " " + m.name);
  SegmentBuilder b = c.make();
  {  // value_info of every intermediate (as the converter's shape inference gives Supports)
    std::vector<Tensor> probe;
    for (const auto& d : b.shapes()) probe.push_back(Random(d, 1, c.lo, c.hi));
    std::map<std::string, Tensor> values;
    ASSERT_TRUE(testing_cpu::RunReference(b.graph(), probe, &values).ok());
    b.InferValueInfo(values);
  }
  const Graph& g = b.graph();
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  cfg.precision = m.precision;
  for (const Node& n : g.nodes) {
    EXPECT_TRUE(CudaBackend()->Supports(n, g, cfg).ok())
        << n.op_type << ": " << CudaBackend()->Supports(n, g, cfg);
  }
  StatusOr<std::unique_ptr<Engine>> e = BuildWith(g, cfg, m.tf32);
  ASSERT_TRUE(e.ok()) << e.status();
  // FP16 / BF16 engines run these patterns as one fused attention kernel (so this checks it).
  if ((c.name.rfind("attention", 0) == 0 || c.name == "bert_block") &&
      m.precision != Precision::kFP32 && std::getenv("KILN_CUDA_FUSED_ATTENTION") == nullptr) {
    bool fused = false;
    for (const LayerInfo& li : (*e)->Layers())
      fused = fused || li.implementation.rfind("kiln:attention(", 0) == 0;
    EXPECT_TRUE(fused) << c.name << " " << m.name << ": attention not fused";
  }
  std::vector<int64_t> batches = {b.shapes()[0][0]};
  if (c.small_batch && batches[0] > 1) batches.push_back(1);
  uint32_t seed = 100;
  for (int64_t batch : batches) {
    std::vector<Tensor> in;
    for (auto d : b.shapes()) {
      if (d[0] == b.shapes()[0][0]) d[0] = batch;  // inputs sharing the batch dim follow it
      in.push_back(Random(d, seed++, c.lo, c.hi));
    }
    StatusOr<std::vector<Tensor>> want = testing_cpu::RunReference(g, in);
    ASSERT_TRUE(want.ok()) << want.status();
    StatusOr<std::vector<Tensor>> got = testing_cpu::RunEngine(**e, in);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), want->size());
    for (size_t i = 0; i < got->size(); ++i) {
      const double err = testing_cpu::RelL2((*got)[i], (*want)[i]);
      EXPECT_LE(err, m.tol) << c.name << " " << m.name << " batch " << batch << " output " << i;
      std::printf("  %-26s %-5s batch %lld output %zu rel L2 %.2e\n", c.name.c_str(),
                  m.name.c_str(), static_cast<long long>(batch), i, err);
    }
  }
}

class CudaOps : public testing::TestWithParam<Mode> {};

TEST_P(CudaOps, EveryCaseMatchesReference) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  if (GetParam().conv_api != nullptr) setenv("KILN_CUDA_CONV", GetParam().conv_api, 1);
  for (const Case& c : Cases()) CheckCase(c, GetParam());
  if (GetParam().conv_api != nullptr) unsetenv("KILN_CUDA_CONV");
}

INSTANTIATE_TEST_SUITE_P(All, CudaOps, testing::ValuesIn(Modes()),
                         [](const testing::TestParamInfo<Mode>& info) { return info.param.name; });

TEST(CudaBackend, Names) {
  EXPECT_EQ(ParseCudaBackendName("cuda"), 0);
  EXPECT_EQ(ParseCudaBackendName("cuda:3"), 3);
  EXPECT_EQ(ParseCudaBackendName("cuda:"), -1);
  EXPECT_EQ(ParseCudaBackendName("cuda:x"), -1);
  EXPECT_EQ(ParseCudaBackendName("cpu"), -1);
  ASSERT_NE(FindBackend("cuda"), nullptr);
  EXPECT_STREQ(FindBackend("cuda")->name(), "cuda");
  ASSERT_NE(FindBackend("cuda:1"), nullptr);
  EXPECT_STREQ(FindBackend("cuda:1")->name(), "cuda:1");
}

TEST(CudaBackend, FingerprintAndUnsupported) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  const std::string f = CudaBackend()->DeviceFingerprint();
  EXPECT_NE(f.find("gpu="), std::string::npos) << f;
  EXPECT_NE(f.find(";cc="), std::string::npos) << f;
  EXPECT_NE(f.find(";cudnn="), std::string::npos) << f;
  SegmentBuilder b = Unary("Round");
  EXPECT_FALSE(CudaBackend()->Supports(b.graph().nodes[0], b.graph(), BuildConfig()).ok());
}

TEST(CudaBackend, PlanRoundTripAndCorruption) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  SegmentBuilder b = Conv({2, 8, 9, 9}, {16, 8, 3, 3}, A({{"pads", Is({1, 1, 1, 1})}}), true);
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  cfg.precision = Precision::kFP16;
  StatusOr<std::unique_ptr<Engine>> e = CudaBackend()->Build(b.graph(), cfg);
  ASSERT_TRUE(e.ok()) << e.status();
  StatusOr<std::string> payload = (*e)->SerializePayload();
  ASSERT_TRUE(payload.ok());
  StatusOr<std::unique_ptr<Engine>> e2 = CudaBackend()->Deserialize(*payload, b.graph(), cfg);
  ASSERT_TRUE(e2.ok()) << e2.status();
  std::vector<Tensor> in = {Random({2, 8, 9, 9}, 3)};
  auto o1 = testing_cpu::RunEngine(**e, in), o2 = testing_cpu::RunEngine(**e2, in);
  ASSERT_TRUE(o1.ok() && o2.ok());
  EXPECT_EQ(testing_cpu::RelL2((*o1)[0], (*o2)[0]), 0.0);
  EXPECT_FALSE(CudaBackend()->Deserialize("KCUDA9xyz", b.graph(), cfg).ok());
  std::string bad = *payload;
  bad.resize(bad.size() / 2);
  EXPECT_FALSE(CudaBackend()->Deserialize(bad, b.graph(), cfg).ok());
  // A wrong-shaped input is refused, not run.
  std::vector<Tensor> wrong = {Random({2, 8, 7, 9}, 4)};
  EXPECT_FALSE(testing_cpu::RunEngine(**e, wrong).ok());
}

// The plan's tactic block parser on well-formed, truncated and randomly mutated input: a
// result or DataLoss, never a crash or a read past the end (no GPU needed; runs in CI).
TEST(CudaBackend, TacticBlockParserIsRobust) {
  const std::string good = "2\nconv|a\tgraph:0:1:2.500\nmm|b\tlt:00ff\nPROGRAM";
  std::string_view rest = good;
  auto t = ParsePlanTactics(&rest);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->size(), 2u);
  EXPECT_EQ(t->at("conv|a"), "graph:0:1:2.500");
  EXPECT_EQ(rest, "PROGRAM");
  for (const char* bad : {"", "\n", "x\n", "3\na\tb\n", "1\nno-tab\n", "1\n\tvalue\n",
                          "99999999999\n", "1\nkey\tvalue"}) {
    std::string_view r = bad;
    auto p = ParsePlanTactics(&r);
    EXPECT_FALSE(p.ok()) << "'" << bad << "'";
    if (!p.ok()) {
      EXPECT_EQ(p.status().code(), StatusCode::kDataLoss);
    }
  }
  std::mt19937 rng(5);
  for (int i = 0; i < 20000; ++i) {
    std::string m = good.substr(0, rng() % (good.size() + 1));
    for (int k = rng() % 4; k > 0 && !m.empty(); --k) m[rng() % m.size()] = static_cast<char>(rng());
    std::string_view r = m;
    auto p = ParsePlanTactics(&r);
    if (p.ok()) {
      EXPECT_LE(r.size(), m.size());
    }
  }
}

// Build-time tactic choices (TensorRT's timing cache): a plan records them, so loading it times
// nothing and gives the same engine; a second build of the same layers in this process reuses
// them; a choice that does not apply is timed again, not trusted.
TEST(CudaBackend, PlansCarryTacticChoices) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  // Shapes no other test uses (the process cache starts without them).
  SegmentBuilder b;
  b.In("x", {3, 24, 13, 13}).Init("w", Random({40, 24, 3, 3}, 71)).Init("bias", Random({40}, 72));
  b.Init("m", Random({13, 29}, 73));
  b.Op("Conv", {"x", "w", "bias"}, {"c"}, A({{"pads", Is({1, 1, 1, 1})}}));
  b.Op("Relu", {"c"}, {"r"}).Op("MatMul", {"r", "m"}, {"y"}).Out("y");
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  cfg.precision = Precision::kFP16;
  const int64_t t0 = cuda::TacticTimings();
  auto e = CudaBackend()->Build(b.graph(), cfg);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_GT(cuda::TacticTimings(), t0) << "the first build times its conv and matmul";
  auto payload = (*e)->SerializePayload();
  ASSERT_TRUE(payload.ok());
  ASSERT_EQ(payload->substr(0, 6), "KCUDA2");
  EXPECT_NE(payload->find("conv|"), std::string::npos);
  EXPECT_NE(payload->find("mm|"), std::string::npos);
  std::vector<Tensor> in = {Random({3, 24, 13, 13}, 74)};
  auto want = testing_cpu::RunEngine(**e, in);
  ASSERT_TRUE(want.ok()) << want.status();

  // From the plan, with the process's cache emptied: no timing, the same choices and outputs.
  cuda::ClearTacticCache(0);
  const int64_t t1 = cuda::TacticTimings();
  auto e2 = CudaBackend()->Deserialize(*payload, b.graph(), cfg);
  ASSERT_TRUE(e2.ok()) << e2.status();
  EXPECT_EQ(cuda::TacticTimings(), t1) << "a plan's choices are not timed again";
  EXPECT_EQ(static_cast<cuda::CudaEngine&>(**e2).Tactics(),
            static_cast<cuda::CudaEngine&>(**e).Tactics());
  auto got = testing_cpu::RunEngine(**e2, in);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(testing_cpu::RelL2((*got)[0], (*want)[0]), 0.0);
  for (size_t i = 0; i < (*e)->Layers().size(); ++i)
    EXPECT_EQ((*e2)->Layers()[i].implementation, (*e)->Layers()[i].implementation);

  // A second build in this process: the cache (refilled by the load) serves it.
  const int64_t t2 = cuda::TacticTimings();
  auto e3 = CudaBackend()->Build(b.graph(), cfg);
  ASSERT_TRUE(e3.ok()) << e3.status();
  EXPECT_EQ(cuda::TacticTimings(), t2);

  // Choices that cannot be used (an engine position cuDNN does not list, a garbled matmul
  // algorithm) are timed again, and the engine still computes the same values.
  std::string bad = *payload;
  for (const char* tag : {"\tgraph:", "\tlegacy:", "\tplain:"}) {
    const size_t at = bad.find(tag);
    if (at == std::string::npos) continue;
    const size_t end = bad.find('\n', at);
    bad.replace(at + 1, end - at - 1, "graph:0:9999:1.000");
  }
  const size_t mm = bad.find("\tlt:");
  ASSERT_NE(mm, std::string::npos);
  bad[mm + 4] = bad[mm + 4] == 'f' ? '0' : 'f';
  cuda::ClearTacticCache(0);
  const int64_t t3 = cuda::TacticTimings();
  auto e4 = CudaBackend()->Deserialize(bad, b.graph(), cfg);
  ASSERT_TRUE(e4.ok()) << e4.status();
  EXPECT_GT(cuda::TacticTimings(), t3);
  auto got4 = testing_cpu::RunEngine(**e4, in);
  ASSERT_TRUE(got4.ok()) << got4.status();
  auto ref = testing_cpu::RunReference(b.graph(), in);
  ASSERT_TRUE(ref.ok());
  EXPECT_LE(testing_cpu::RelL2((*got4)[0], (*ref)[0]), 1e-2);
  // A payload whose tactic block is cut short is refused.
  EXPECT_FALSE(CudaBackend()->Deserialize(payload->substr(0, 12), b.graph(), cfg).ok());
}

}  // namespace
}  // namespace kiln
