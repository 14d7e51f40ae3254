// Exact GELU as PyTorch's / TF's exporters write it, x * 0.5 * (1 + Erf(x / sqrt(2))) in its
// orderings, fused into one eltwise_gelu_erf (a post-op of the producing MatMul); Erf is taken
// only inside the complete pattern (Supports checks the neighbourhood, Build rejects a segment
// holding a stray Erf so that the converter keeps it native).
#include <gtest/gtest.h>

#include "backends/cpu/cpu_test_util.h"

namespace kiln {
namespace {

using testing_cpu::Floats;
using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

constexpr float kSqrt2 = 1.4142135f;

enum class Order { kTorch, kHalfFirst, kHalfInGate, kMulBySqrtHalf };

// m = x @ w + bias, y = GELU(m) in the given ONNX form; `half` replaces 0.5 (wrong: no GELU).
SegmentBuilder MatMulGelu(Order order, float half = 0.5f) {
  SegmentBuilder b;
  b.In("x", {2, 6, 24});
  b.Init("w", Random({24, 40}, 1, -0.4f, 0.4f)).Init("bias", Random({40}, 2));
  b.Init("sqrt2", Floats({kSqrt2})).Init("rsqrt2", Floats({0.70710677f}));
  b.Init("one", Floats({1.f})).Init("half", Floats({half}));
  b.Op("MatMul", {"x", "w"}, {"mm"}).Op("Add", {"mm", "bias"}, {"m"});
  if (order == Order::kMulBySqrtHalf) {
    b.Op("Mul", {"m", "rsqrt2"}, {"d"});
  } else {
    b.Op("Div", {"m", "sqrt2"}, {"d"});
  }
  b.Op("Erf", {"d"}, {"e"}).Op("Add", {"e", "one"}, {"g"});
  switch (order) {
    case Order::kTorch:
    case Order::kMulBySqrtHalf:
      b.Op("Mul", {"m", "g"}, {"p"}).Op("Mul", {"p", "half"}, {"y"});
      break;
    case Order::kHalfFirst:
      b.Op("Mul", {"m", "half"}, {"h"}).Op("Mul", {"h", "g"}, {"y"});
      break;
    case Order::kHalfInGate:
      b.Op("Mul", {"g", "half"}, {"h"}).Op("Mul", {"m", "h"}, {"y"});
      break;
  }
  b.Out("y");
  return b;
}

const Node& NodeOf(const Graph& g, const std::string& op) {
  for (const Node& n : g.nodes) {
    if (n.op_type == op) return n;
  }
  return g.nodes.front();
}

void ExpectClose(const Graph& g, const Engine& e, const std::vector<Tensor>& in) {
  StatusOr<std::vector<Tensor>> want = testing_cpu::RunReference(g, in);
  ASSERT_TRUE(want.ok()) << want.status();
  StatusOr<std::vector<Tensor>> got = testing_cpu::RunEngine(e, in);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), want->size());
  for (size_t i = 0; i < got->size(); ++i) {
    EXPECT_LE(testing_cpu::RelL2((*got)[i], (*want)[i]), 1e-5) << "output " << i;
  }
}

TEST(CpuGelu, FusedIntoMatMulInEveryOrdering) {
  for (const Order order :
       {Order::kTorch, Order::kHalfFirst, Order::kHalfInGate, Order::kMulBySqrtHalf}) {
    SCOPED_TRACE(static_cast<int>(order));
    SegmentBuilder b = MatMulGelu(order);
    const BuildConfig cfg = testing_cpu::Config(b.shapes());
    // Supports needs the intermediate shapes the converter infers: SupportsWithKnownShapes.
    StatusOr<std::unique_ptr<Engine>> e = CpuBackend().Build(b.graph(), cfg);
    ASSERT_TRUE(e.ok()) << e.status();
    const std::vector<LayerInfo> layers = (*e)->Layers();
    ASSERT_EQ(layers.size(), 1u) << layers[0].op;
    EXPECT_EQ(layers[0].op.rfind("MatMul+Add+Gelu(", 0), 0u) << layers[0].op;
    EXPECT_EQ(layers[0].nodes.size(), 7u) << layers[0].op;
    ExpectClose(b.graph(), **e, {Random({2, 6, 24}, 3, -2.f, 2.f)});
  }
}

// Known intermediate shapes (as the converter's shape inference records them): Supports also
// builds the fused layer through oneDNN.
TEST(CpuGelu, SupportsWithKnownShapes) {
  SegmentBuilder b = MatMulGelu(Order::kTorch);
  std::map<std::string, Tensor> all;
  ASSERT_TRUE(testing_cpu::RunReference(b.graph(), {Random({2, 6, 24}, 4)}, &all).ok());
  b.InferValueInfo(all);
  const BuildConfig cfg = testing_cpu::Config(b.shapes());
  EXPECT_TRUE(CpuBackend().Supports(NodeOf(b.graph(), "Erf"), b.graph(), cfg).ok());
}

// A stray Erf (wrong constant, an intermediate read elsewhere, Erf alone): not supported, and a
// segment holding one does not build (the converter keeps it native); the rest still builds.
TEST(CpuGelu, PartialPatternNotFused) {
  {
    SCOPED_TRACE("0.4 instead of 0.5");
    SegmentBuilder b = MatMulGelu(Order::kTorch, 0.4f);
    const BuildConfig cfg = testing_cpu::Config(b.shapes());
    EXPECT_FALSE(CpuBackend().Supports(NodeOf(b.graph(), "Erf"), b.graph(), cfg).ok());
    StatusOr<std::unique_ptr<Engine>> e = CpuBackend().Build(b.graph(), cfg);
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.status().message().find("Erf"), std::string::npos) << e.status();
  }
  {
    SCOPED_TRACE("1 + erf also an output");
    SegmentBuilder b = MatMulGelu(Order::kTorch);
    b.Out("g");
    const BuildConfig cfg = testing_cpu::Config(b.shapes());
    EXPECT_FALSE(CpuBackend().Supports(NodeOf(b.graph(), "Erf"), b.graph(), cfg).ok());
    EXPECT_FALSE(CpuBackend().Build(b.graph(), cfg).ok());
  }
  {
    SCOPED_TRACE("Erf alone");
    SegmentBuilder b;
    b.In("x", {3, 10}).Op("Erf", {"x"}, {"y"}).Out("y");
    const BuildConfig cfg = testing_cpu::Config(b.shapes());
    EXPECT_FALSE(CpuBackend().Supports(b.graph().nodes[0], b.graph(), cfg).ok());
    EXPECT_FALSE(CpuBackend().Build(b.graph(), cfg).ok());
  }
  {
    SCOPED_TRACE("the pattern without its Erf (the segment the converter would cut)");
    SegmentBuilder b;
    b.In("x", {2, 6, 24}).In("e", {2, 6, 24});
    b.Init("one", Floats({1.f})).Init("half", Floats({0.5f}));
    b.Op("Add", {"e", "one"}, {"g"}).Op("Mul", {"x", "g"}, {"p"});
    b.Op("Mul", {"p", "half"}, {"y"}).Out("y");
    const BuildConfig cfg = testing_cpu::Config(b.shapes());
    StatusOr<std::unique_ptr<Engine>> e = CpuBackend().Build(b.graph(), cfg);
    ASSERT_TRUE(e.ok()) << e.status();
    for (const LayerInfo& l : (*e)->Layers()) EXPECT_EQ(l.op.find("Gelu"), std::string::npos);
    ExpectClose(b.graph(), **e, {Random({2, 6, 24}, 5, -2.f, 2.f), Random({2, 6, 24}, 6)});
  }
}

}  // namespace
}  // namespace kiln
