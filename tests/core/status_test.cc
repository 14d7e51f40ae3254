#include "kiln/status.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

StatusOr<int> Half(int x) {
  if (x % 2) return InvalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Status UseHalf(int x, int* out) {
  KILN_ASSIGN_OR_RETURN(*out, Half(x));
  return Status::OK();
}

TEST(Status, OkAndErrors) {
  EXPECT_TRUE(Status::OK().ok());
  Status s = NotFound("file 'a.onnx'");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NotFound: file 'a.onnx'");
  EXPECT_EQ(s.WithContext("loading").message(), "loading: file 'a.onnx'");
  EXPECT_TRUE(Status::OK().WithContext("x").ok());
}

TEST(StatusOr, ValueAndPropagation) {
  int v = 0;
  EXPECT_TRUE(UseHalf(8, &v).ok());
  EXPECT_EQ(v, 4);
  Status s = UseHalf(3, &v);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "odd: 3");
  StatusOr<int> bad = Status::OK();  // an OK status without a value is a bug, not a value
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace kiln
