// MatMul of a 3-D activation [B, S, H] by a constant [H, N] weight (BERT's dense layers), whose
// leading dims collapse into one 2-D GEMM, followed by post-ops that read another tensor: the
// bias Add, the residual Add (a sum post-op) and binary post-ops whose operand is read through
// the same collapsed [B*S, N] view (or, when it does not broadcast like that, no collapse).
#include <gtest/gtest.h>

#include "backends/cpu/cpu_test_util.h"

namespace kiln {
namespace {

using testing_cpu::A;
using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

std::string Ops(const Engine& e) {
  std::string s;
  for (const LayerInfo& l : e.Layers()) s += l.op + " [" + l.implementation + "]; ";
  return s;
}

// Builds `b` into one engine, checks its layer ops, and compares with the reference kernels.
void Check(const SegmentBuilder& b, const std::vector<std::string>& ops,
           const std::vector<Tensor>& in) {
  StatusOr<std::unique_ptr<Engine>> e =
      CpuBackend().Build(b.graph(), testing_cpu::Config(b.shapes()));
  ASSERT_TRUE(e.ok()) << e.status();
  const std::vector<LayerInfo> layers = (*e)->Layers();
  ASSERT_EQ(layers.size(), ops.size()) << Ops(**e);
  for (size_t i = 0; i < ops.size(); ++i) EXPECT_EQ(layers[i].op, ops[i]) << Ops(**e);
  testing_cpu::ExpectEngineMatchesReference(**e, b.graph(), in);
}

// y = x @ w + bias + r (the residual on either side of the Add).
SegmentBuilder BiasResidual(int64_t n, int64_t s, int64_t h, int64_t o, bool residual_first) {
  SegmentBuilder b;
  b.In("x", {n, s, h}).In("r", {n, s, o});
  b.Init("w", Random({h, o}, 1, -0.2f, 0.2f)).Init("bias", Random({o}, 2));
  b.Op("MatMul", {"x", "w"}, {"m"}).Op("Add", {"m", "bias"}, {"a"});
  if (residual_first) {
    b.Op("Add", {"r", "a"}, {"y"});
  } else {
    b.Op("Add", {"a", "r"}, {"y"});
  }
  b.Out("y");
  return b;
}

TEST(CpuMatMul3d, BiasResidualSum) {
  for (const bool first : {false, true}) {
    SCOPED_TRACE(first ? "Add(r, a)" : "Add(a, r)");
    SegmentBuilder b = BiasResidual(2, 7, 32, 48, first);
    Check(b, {"MatMul+Add+Add"}, {Random({2, 7, 32}, 5), Random({2, 7, 48}, 6)});
  }
}

TEST(CpuMatMul3d, BiasResidualSumBatchOne) {
  SegmentBuilder b = BiasResidual(1, 9, 64, 64, false);
  Check(b, {"MatMul+Add+Add"}, {Random({1, 9, 64}, 7), Random({1, 9, 64}, 8)});
}

// The residual read again after the sum (BERT: the attention output feeds the next LayerNorm
// and the next residual), so it cannot be summed in place.
TEST(CpuMatMul3d, ResidualStillLive) {
  SegmentBuilder b;
  b.In("x", {2, 5, 16}).In("r", {2, 5, 16});
  b.Init("w", Random({16, 16}, 1, -0.3f, 0.3f)).Init("bias", Random({16}, 2));
  b.Op("MatMul", {"x", "w"}, {"m"}).Op("Add", {"m", "bias"}, {"a"});
  b.Op("Add", {"a", "r"}, {"y"}).Op("Mul", {"r", "r"}, {"z"}).Out("y").Out("z");
  SCOPED_TRACE("residual live");
  const std::vector<Tensor> in = {Random({2, 5, 16}, 3), Random({2, 5, 16}, 4)};
  StatusOr<std::unique_ptr<Engine>> e =
      CpuBackend().Build(b.graph(), testing_cpu::Config(b.shapes()));
  ASSERT_TRUE(e.ok()) << e.status();
  testing_cpu::ExpectEngineMatchesReference(**e, b.graph(), in);
}

// Binary post-ops on the collapsed path: a full [B, S, N] operand (Mul, so not a sum), a
// broadcast [1, 1, N] one, a per-row [B, S, 1] one, and a [S, N] one with B > 1, which must not
// be read through the collapsed view (oneDNN 2.6 builds no uncollapsed matmul with that
// broadcast either, so the Mul stays a layer of its own).
TEST(CpuMatMul3d, BinaryOperands) {
  struct Case {
    const char* name;
    std::vector<int64_t> dims;
    std::vector<std::string> ops;
  };
  const std::vector<std::string> fused = {"MatMul+Add+Mul"};
  for (const Case& c : {Case{"full", {2, 6, 24}, fused}, Case{"row", {1, 1, 24}, fused},
                        Case{"column", {2, 6, 1}, fused},
                        Case{"per-position", {6, 24}, {"MatMul+Add", "Mul"}}}) {
    SCOPED_TRACE(c.name);
    SegmentBuilder b;
    b.In("x", {2, 6, 40}).In("g", c.dims).Init("w", Random({40, 24}, 1, -0.2f, 0.2f));
    b.Init("bias", Random({24}, 2));
    b.Op("MatMul", {"x", "w"}, {"m"}).Op("Add", {"m", "bias"}, {"a"});
    b.Op("Mul", {"a", "g"}, {"y"}).Out("y");
    Check(b, c.ops, {Random({2, 6, 40}, 5), Random(c.dims, 6, 0.5f, 1.5f)});
  }
}

}  // namespace
}  // namespace kiln
