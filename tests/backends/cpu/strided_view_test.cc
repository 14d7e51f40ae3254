// Reshapes of strided FP32 tensors as views (layers_misc.cc BuildView): a reshape of a tensor
// that is not plain (a column range of merged siblings' output, a Transpose view) keeps the
// buffer when the new dims can be expressed on its strides and its readers take strided
// operands, and copies otherwise. Checked on a transformer attention block (the K / V head splits
// of the merged QKV matmul are read in place; Q, the A of Q.K^T, and the context's head merge
// copy) and on small graphs for the stride rule's edge cases, against the reference kernels.
// Also: layers that run on their input's layout (softmax, reduction, eltwise, pooling) reading
// a merged sibling's output at a non-zero offset (read plain: they computed wrong values there).
#include <gtest/gtest.h>

#include <set>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/gemm_f32.h"
#include "backends/cpu/layers.h"

namespace kiln {
namespace {

using testing_cpu::A;
using testing_cpu::Ints;
using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

// x[N,S,D] -> LayerNorm -> Q/K/V (MatMul+Add, merged into one matmul) -> heads [N,S,H,Dh] ->
// scaled QK^T -> Softmax -> @V -> Transpose + Reshape (head merge) -> out proj + residual.
SegmentBuilder AttentionBlock(int64_t batch) {
  SegmentBuilder b;
  testing_cpu::AddAttentionBlock(b, batch, "y");
  b.Out("y");
  return b;
}

// Builds `b` into one engine and compares every output with the reference kernels.
void ExpectMatchesReference(const SegmentBuilder& b, const std::vector<Tensor>& in) {
  StatusOr<std::unique_ptr<Engine>> e =
      CpuBackend().Build(b.graph(), testing_cpu::Config(b.shapes()));
  ASSERT_TRUE(e.ok()) << e.status();
  testing_cpu::ExpectEngineMatchesReference(**e, b.graph(), in);
}

// Names of the Reshape layers (first node) that run a step (a copy) in the built instance.
StatusOr<std::set<std::string>> CopyingReshapes(const SegmentBuilder& b) {
  const BuildConfig cfg = testing_cpu::Config(b.shapes());
  KILN_ASSIGN_OR_RETURN(cpu::Program p, cpu::LowerSegment(b.graph(), cfg));
  cpu::FuseProgram(&p);
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<cpu::Instance> inst,
                        cpu::BuildInstance(p, b.shapes(), cfg, nullptr));
  std::set<std::string> names;
  for (const cpu::Step& s : inst->steps) {
    if (s.layer < 0) continue;
    const cpu::Layer& l = p.layers[s.layer];
    if (l.kind == cpu::LayerKind::kView) names.insert(l.nodes[0]);
  }
  return names;
}

TEST(CpuStridedView, AttentionHeadSplitsReadTheMergedQkvInPlace) {
  SegmentBuilder b = AttentionBlock(2);
  StatusOr<std::set<std::string>> copying = CopyingReshapes(b);
  ASSERT_TRUE(copying.ok()) << copying.status();
  // k2 / v2 are views of the merged QKV output (their matmuls read them as B, reordered once).
  // With kiln's fused attention (gemm_f32.h, AVX-512) q2 is read in place too and the context
  // is written in the merged-heads layout, so nothing copies. With oneDNN's matmuls q2 feeds
  // Q.K^T as A, which is faster plain (a copy), and the head merge after the Transpose is not
  // expressible on strides and copies.
  const std::set<std::string> want = cpu::gemm::Available()
                                         ? std::set<std::string>()
                                         : std::set<std::string>({"q2_node", "ctxm_node"});
  EXPECT_EQ(*copying, want);
}

TEST(CpuStridedView, AttentionBlockMatchesReference) {
  for (const int64_t batch : {1, 2}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    SegmentBuilder b = AttentionBlock(batch);
    ExpectMatchesReference(b, {Random({batch, 16, 32}, 7 + static_cast<uint32_t>(batch))});
  }
}

// x[3,5,12] -> MatMul a (12 columns) and MatMul bb (8 columns), merged into one matmul whose
// output [3,5,20] holds a and bb as column ranges. bb's heads (at column 12) are the B operand
// of y[3,2,5,4] @ bb-heads^T (a view in every case); `reader` adds the reshapes of a.
// (bb has no other reader here: a softmax, eltwise or reduction reading a column range at a
// non-zero offset computes wrong values, with or without views: see docs/performance.md.)
enum class Reader { kViews, kSoftmax, kAOperand, kMergeRows };

SegmentBuilder ColumnRanges(Reader reader) {
  SegmentBuilder b;
  b.In("x", {3, 5, 12}).In("y", {3, 2, 5, 4});
  b.Init("wa", Random({12, 12}, 81, -0.4f, 0.4f)).Init("wb", Random({12, 8}, 82, -0.4f, 0.4f));
  b.Init("wc", Random({6, 7}, 83, -0.4f, 0.4f));
  b.Init("split", Ints({3, 5, 2, 6})).Init("split4", Ints({3, 5, 2, 4}));
  b.Init("rows", Ints({15, 12})).Init("flat", Ints({3, 60}));
  b.Op("MatMul", {"x", "wa"}, {"a"}).Op("MatMul", {"x", "wb"}, {"bb"});
  b.Op("Reshape", {"bb", "split4"}, {"b_split"})
      .Op("Transpose", {"b_split"}, {"bk"}, A({{"perm", Attr::Ints({0, 2, 3, 1})}}))
      .Op("MatMul", {"y", "bk"}, {"n"});  // [3,2,5,5]
  b.Out("n");
  switch (reader) {
    case Reader::kViews:  // heads of a as B; a's rows merged for an engine output
      b.Init("xsplit", Ints({3, 5, 2, 6}));
      b.Op("Reshape", {"x", "xsplit"}, {"xs"})
          .Op("Reshape", {"a", "split"}, {"a_split"})
          .Op("Transpose", {"a_split"}, {"a_t"}, A({{"perm", Attr::Ints({0, 1, 3, 2})}}))
          .Op("MatMul", {"xs", "a_t"}, {"g"})         // [3,5,2,2]
          .Op("Reshape", {"a", "rows"}, {"a_rows"});  // [15,12]
      b.Out("g").Out("a_rows");
      break;
    case Reader::kSoftmax:
      b.Op("Reshape", {"a", "rows"}, {"r"})
          .Op("Softmax", {"r"}, {"z"}, A({{"axis", Attr::Int(-1)}}));
      b.Out("z");
      break;
    case Reader::kAOperand:  // A of a matmul (constant weights or not): faster plain
      b.Op("Reshape", {"a", "split"}, {"r"}).Op("MatMul", {"r", "wc"}, {"z"});
      b.Op("Transpose", {"r"}, {"rt"}, A({{"perm", Attr::Ints({0, 1, 3, 2})}}));
      b.Op("MatMul", {"r", "rt"}, {"z2"});
      b.Out("z").Out("z2");
      break;
    case Reader::kMergeRows:  // [3,5,12] with row stride 20 -> [3,60]: not expressible
      b.Init("r_w", Random({60, 3}, 86));
      b.Op("Reshape", {"a", "flat"}, {"r"}).Op("MatMul", {"r", "r_w"}, {"z"});
      b.Out("z");
      break;
  }
  return b;
}

// Views: splitting the last dim for the B operand of a matmul of two activations (through a
// Transpose, at column offsets 12 and 0) and merging the leading dims for an engine output.
// Copies: a reshape read by a softmax (no strided reader) or as a matmul's A, and merging the
// row-strided dim into the last one (not expressible on strides).
TEST(CpuStridedView, ReshapesOfAColumnRangeMatchReference) {
  const std::pair<Reader, std::set<std::string>> cases[] = {
      {Reader::kViews, {}},
      {Reader::kSoftmax, {"r_node"}},
      {Reader::kAOperand, {"r_node"}},
      {Reader::kMergeRows, {"r_node"}},
  };
  for (const auto& [reader, copies] : cases) {
    SCOPED_TRACE("case " + std::to_string(static_cast<int>(reader)));
    SegmentBuilder b = ColumnRanges(reader);
    StatusOr<std::set<std::string>> copying = CopyingReshapes(b);
    ASSERT_TRUE(copying.ok()) << copying.status();
    EXPECT_EQ(*copying, copies);
    ExpectMatchesReference(b, {Random({3, 5, 12}, 84), Random({3, 2, 5, 4}, 85)});
  }
}

// Layers that read a column range at a non-zero offset in place of their input's layout (a
// softmax, a reduction, an eltwise chain): they used to compute wrong values there and now read
// it plain.
TEST(CpuStridedView, LayersOnAnOffsetColumnRangeMatchReference) {
  SegmentBuilder b;
  b.In("x", {3, 5, 12});
  b.Init("wa", Random({12, 12}, 91, -0.4f, 0.4f)).Init("wb", Random({12, 8}, 92, -0.4f, 0.4f));
  b.Op("MatMul", {"x", "wa"}, {"a"}).Op("MatMul", {"x", "wb"}, {"bb"});
  b.Op("ReduceMax", {"bb"}, {"m"}, A({{"axes", Attr::Ints({-1})}}))
      .Op("Softmax", {"bb"}, {"s"}, A({{"axis", Attr::Int(-1)}}))
      .Op("Softmax", {"a"}, {"sa"}, A({{"axis", Attr::Int(-1)}}))
      .Op("Sigmoid", {"bb"}, {"g"})
      .Op("Mul", {"g", "bb"}, {"silu"});
  b.Out("m").Out("s").Out("sa").Out("silu");
  ExpectMatchesReference(b, {Random({3, 5, 12}, 93)});
}

// The same for merged sibling convs: each sibling's output is a channel range of the merged
// output (a blocked sub-memory, or a channels-last view), read by eltwise layers and a pooling.
TEST(CpuStridedView, LayersOnSiblingConvChannelRangesMatchReference) {
  for (const int64_t c : {16, 24}) {  // 24: not block-aligned, channels-last views
    SCOPED_TRACE("channels " + std::to_string(c));
    SegmentBuilder b;
    b.In("x", {2, 8, 6, 6});
    b.Init("w1", Random({c, 8, 1, 1}, 94, -0.4f, 0.4f));
    b.Init("w2", Random({c, 8, 1, 1}, 95, -0.4f, 0.4f));
    b.Op("Conv", {"x", "w1"}, {"c1"}).Op("Conv", {"x", "w2"}, {"c2"});
    b.Op("Sigmoid", {"c2"}, {"g"})
        .Op("Mul", {"g", "c2"}, {"silu"})
        .Op("MaxPool", {"c2"}, {"p"},
            A({{"kernel_shape", Attr::Ints({2, 2})}, {"strides", Attr::Ints({2, 2})}}))
        .Op("Sigmoid", {"c1"}, {"g1"})
        .Op("Mul", {"g1", "c1"}, {"silu1"});
    b.Out("silu").Out("p").Out("silu1");
    ExpectMatchesReference(b, {Random({2, 8, 6, 6}, 96)});
  }
}

}  // namespace
}  // namespace kiln
