#include "kiln/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace kiln {
namespace {

TEST(DataType, NamesAndSizes) {
  EXPECT_STREQ(DataTypeName(DataType::kFloat32), "float32");
  EXPECT_EQ(DataTypeSize(DataType::kBFloat16), 2u);
  EXPECT_EQ(DataTypeSize(DataType::kInt64), 8u);
  EXPECT_EQ(DataTypeFromName("half"), DataType::kFloat16);
  EXPECT_FALSE(DataTypeFromName("complex64").has_value());
  EXPECT_TRUE(IsFloatingPoint(DataType::kBFloat16));
  EXPECT_FALSE(IsInteger(DataType::kBool));
}

TEST(Float16, RoundTripsAndRounds) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f}) {
    EXPECT_EQ(static_cast<float>(Float16(f)), f) << f;
  }
  EXPECT_TRUE(std::isinf(static_cast<float>(Float16(70000.0f))));
  EXPECT_TRUE(std::isnan(static_cast<float>(Float16(std::nanf("")))));
  EXPECT_EQ(static_cast<float>(Float16(1.0f + 1.0f / 4096)), 1.0f);  // ties to even
  EXPECT_EQ(Float16(1.0f).bits, 0x3c00);
}

TEST(BFloat16, RoundTripsAndRounds) {
  EXPECT_EQ(static_cast<float>(BFloat16(1.0f)), 1.0f);
  EXPECT_EQ(static_cast<float>(BFloat16(-3.0f)), -3.0f);
  EXPECT_EQ(BFloat16(1.0f).bits, 0x3f80);
  EXPECT_NEAR(static_cast<float>(BFloat16(3.14159f)), 3.14159f, 0.01f);
  EXPECT_TRUE(std::isnan(static_cast<float>(BFloat16(std::nanf("")))));
}

TEST(Shape, PartialShapes) {
  Shape s({1, -1, 224});
  EXPECT_TRUE(s.rank_known());
  EXPECT_FALSE(s.fully_known());
  EXPECT_EQ(s.ToString(), "[1,?,224]");
  EXPECT_TRUE(s.Accepts({1, 3, 224}));
  EXPECT_FALSE(s.Accepts({2, 3, 224}));
  EXPECT_FALSE(s.Accepts({1, 3}));
  EXPECT_TRUE(Shape::UnknownRank().Accepts({5}));
  EXPECT_EQ(Shape({2, 3}).num_elements(), 6);
}

TEST(Tensor, AlignedZeroedShared) {
  auto t = Tensor::Create(DataType::kFloat32, {3, 5});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->raw_data()) % 64, 0u);
  EXPECT_EQ(t->num_elements(), 15);
  EXPECT_EQ(t->nbytes(), 60u);
  EXPECT_EQ(t->data<float>()[14], 0.0f);
  Tensor shared = *t;
  shared.mutable_data<float>()[0] = 7;
  EXPECT_EQ(t->data<float>()[0], 7);  // copies share storage
  Tensor deep = t->Clone();
  deep.mutable_data<float>()[0] = 1;
  EXPECT_EQ(t->data<float>()[0], 7);
  auto r = t->Reshaped({15});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->raw_data(), t->raw_data());
  EXPECT_FALSE(t->Reshaped({4, 4}).ok());
}

TEST(Tensor, RejectsBadSizes) {
  EXPECT_EQ(Tensor::Create(DataType::kFloat32, {-1}).status().code(),
            StatusCode::kInvalidArgument);
  int64_t big = std::numeric_limits<int64_t>::max() / 2;
  EXPECT_EQ(Tensor::Create(DataType::kFloat32, {big, big}).status().code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(Tensor::Create(DataType::kFloat32, {int64_t{1} << 40}).status().code(),
            StatusCode::kResourceExhausted);
  EXPECT_FALSE(Tensor::Create(DataType::kUndefined, {1}).ok());
}

TEST(Tensor, StringsAndEquality) {
  Tensor s = Tensor::FromVector<std::string>({"a", "bc"});
  EXPECT_EQ(s.dtype(), DataType::kString);
  EXPECT_TRUE(s.BitwiseEqual(s.Clone()));
  Tensor a = Tensor::FromVector<int64_t>({1, 2, 3});
  Tensor b = Tensor::FromVector<int64_t>({1, 2, 4});
  EXPECT_FALSE(a.BitwiseEqual(b));
  EXPECT_EQ(a.GetAsDouble(2), 3.0);
  EXPECT_EQ(Tensor::Scalar<float>(2.5f).rank(), 0);
}

}  // namespace
}  // namespace kiln
