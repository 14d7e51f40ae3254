// Tests for the sequence op family: sequence values built, read and changed; split/concat
// round trips on random tensors; bad positions and non-sequences are errors.
#include <gtest/gtest.h>

#include "ops/base/op_schema.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using testing::RunOp;

class SequenceOps : public ::testing::Test {
 protected:
  SequenceOps() { RegisterSequenceOps(r_); }
  Tensor Run1(const std::string& op, const std::vector<Tensor>& in, AttrMap attrs = {}) {
    auto out = RunOp(r_, op, in, std::move(attrs));
    EXPECT_TRUE(out.ok()) << op << ": " << out.status();
    return out.ok() ? (*out)[0] : Tensor();
  }
  OpRegistry r_;
};

TEST_F(SequenceOps, ConstructAtInsertEraseLength) {
  Tensor a = testing::RandomTensor(DataType::kFloat32, {2, 3}, 1);
  Tensor b = testing::RandomTensor(DataType::kFloat32, {4}, 2);
  Tensor c = testing::RandomTensor(DataType::kFloat32, {1}, 3);
  Tensor seq = Run1("SequenceConstruct", {a, b});
  ASSERT_TRUE(seq.is_sequence());
  EXPECT_EQ(seq.sequence().size(), 2u);
  EXPECT_TRUE(Run1("SequenceAt", {seq, Tensor::Scalar<int64_t>(-1)}).BitwiseEqual(b));
  Tensor ins = Run1("SequenceInsert", {seq, c, Tensor::Scalar<int64_t>(1)});
  ASSERT_EQ(ins.sequence().size(), 3u);
  EXPECT_TRUE(ins.sequence()[1].BitwiseEqual(c));
  EXPECT_TRUE(ins.sequence()[2].BitwiseEqual(b));
  EXPECT_EQ(seq.sequence().size(), 2u);  // the input sequence is not modified
  Tensor back = Run1("SequenceInsert", {seq, c});
  EXPECT_TRUE(back.sequence()[2].BitwiseEqual(c));
  Tensor erased = Run1("SequenceErase", {ins, Tensor::Scalar<int64_t>(0)});
  ASSERT_EQ(erased.sequence().size(), 2u);
  EXPECT_TRUE(erased.sequence()[0].BitwiseEqual(c));
  Tensor len = Run1("SequenceLength", {erased});
  EXPECT_EQ(*len.data<int64_t>(), 2);
  Tensor empty = Run1("SequenceEmpty", {}, {{"dtype", Attr::Int(7)}});
  EXPECT_TRUE(empty.is_sequence());
  EXPECT_EQ(empty.dtype(), DataType::kInt64);
  EXPECT_EQ(*Run1("SequenceLength", {empty}).data<int64_t>(), 0);
}

TEST_F(SequenceOps, BadPositionsAndNonSequencesAreErrors) {
  Tensor a = testing::RandomTensor(DataType::kFloat32, {3}, 4);
  Tensor seq = Run1("SequenceConstruct", {a});
  EXPECT_FALSE(RunOp(r_, "SequenceAt", {seq, Tensor::Scalar<int64_t>(1)}).ok());
  EXPECT_FALSE(RunOp(r_, "SequenceAt", {seq, Tensor::Scalar<int64_t>(-2)}).ok());
  EXPECT_FALSE(RunOp(r_, "SequenceAt", {a, Tensor::Scalar<int64_t>(0)}).ok());
  EXPECT_FALSE(RunOp(r_, "SequenceInsert", {seq, a, Tensor::Scalar<int64_t>(3)}).ok());
  Tensor empty = Run1("SequenceEmpty", {});
  EXPECT_FALSE(RunOp(r_, "SequenceErase", {empty}).ok());
  EXPECT_FALSE(RunOp(r_, "ConcatFromSequence", {empty}, {{"axis", Attr::Int(0)}}).ok());
  Tensor i32 = testing::RandomTensor(DataType::kInt32, {3}, 5, -5, 5);
  EXPECT_FALSE(RunOp(r_, "SequenceConstruct", {a, i32}).ok());  // mixed dtypes
}

TEST_F(SequenceOps, SplitThenConcatRoundTrips) {
  Tensor x = testing::RandomTensor(DataType::kFloat32, {3, 7}, 6);
  // Default split: chunks of 1 along axis 1; keepdims=0 squeezes them to [3].
  Tensor parts = Run1("SplitToSequence", {x}, {{"axis", Attr::Int(1)}, {"keepdims", Attr::Int(0)}});
  ASSERT_EQ(parts.sequence().size(), 7u);
  EXPECT_EQ(parts.sequence()[0].dims(), (std::vector<int64_t>{3}));
  for (int r = 0; r < 3; ++r) EXPECT_EQ(parts.sequence()[4].data<float>()[r], x.data<float>()[r * 7 + 4]);
  Tensor stacked = Run1("ConcatFromSequence", {parts}, {{"axis", Attr::Int(1)}, {"new_axis", Attr::Int(1)}});
  EXPECT_TRUE(stacked.BitwiseEqual(x));
  // Scalar split: chunks of 3, the last one shorter.
  Tensor chunks = Run1("SplitToSequence", {x, Tensor::Scalar<int64_t>(3)}, {{"axis", Attr::Int(-1)}});
  ASSERT_EQ(chunks.sequence().size(), 3u);
  EXPECT_EQ(chunks.sequence()[2].dims(), (std::vector<int64_t>{3, 1}));
  EXPECT_TRUE(Run1("ConcatFromSequence", {chunks}, {{"axis", Attr::Int(1)}}).BitwiseEqual(x));
  // 1-D split sizes must add up to the axis length.
  Tensor sized = Run1("SplitToSequence", {x, Tensor::FromVector<int64_t>({2, 5})}, {{"axis", Attr::Int(1)}});
  ASSERT_EQ(sized.sequence().size(), 2u);
  EXPECT_EQ(sized.sequence()[1].dims(), (std::vector<int64_t>{3, 5}));
  EXPECT_FALSE(RunOp(r_, "SplitToSequence", {x, Tensor::FromVector<int64_t>({2, 4})},
                     {{"axis", Attr::Int(1)}}).ok());
}

TEST_F(SequenceOps, OptionalValues) {
  Tensor a = testing::RandomTensor(DataType::kFloat32, {2}, 7);
  EXPECT_TRUE(*Run1("OptionalHasElement", {a}).data<bool>());
  EXPECT_FALSE(*Run1("OptionalHasElement", {Tensor::NoneOptional(DataType::kFloat32)}).data<bool>());
  EXPECT_TRUE(Run1("OptionalGetElement", {Run1("Optional", {a})}).BitwiseEqual(a));
  EXPECT_FALSE(RunOp(r_, "OptionalGetElement", {Tensor::NoneOptional(DataType::kFloat32)}).ok());
}

}  // namespace
}  // namespace kiln
