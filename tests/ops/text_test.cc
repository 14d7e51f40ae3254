// Tests for the text op family: StringNormalizer (stopwords, case, all-filtered) and
// TfIdfVectorizer (n-grams, skip-grams, modes) against hand-counted results.
#include <gtest/gtest.h>

#include "ops/base/op_schema.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using testing::RunOp;

class TextOps : public ::testing::Test {
 protected:
  TextOps() { RegisterTextOps(r_); }
  OpRegistry r_;
};

Tensor Strings(std::vector<std::string> v, std::vector<int64_t> dims) {
  return Tensor::FromVector<std::string>(v, std::move(dims), true);
}

TEST_F(TextOps, StringNormalizer) {
  Tensor x = Strings({"Monday", "tuesday", "MONDAY", "Wed"}, {4});
  auto out = RunOp(r_, "StringNormalizer", {x},
                   {{"stopwords", Attr::Strings({"monday"})},
                    {"case_change_action", Attr::String("UPPER")}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].BitwiseEqual(Strings({"TUESDAY", "WED"}, {2})));
  out = RunOp(r_, "StringNormalizer", {Strings({"Monday", "monday", "x"}, {1, 3})},
              {{"stopwords", Attr::Strings({"monday"})}, {"is_case_sensitive", Attr::Int(1)},
               {"case_change_action", Attr::String("LOWER")}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].BitwiseEqual(Strings({"monday", "x"}, {1, 2})));
  out = RunOp(r_, "StringNormalizer", {Strings({"a", "A"}, {2})},
              {{"stopwords", Attr::Strings({"a"})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].BitwiseEqual(Strings({""}, {1})));
  EXPECT_FALSE(RunOp(r_, "StringNormalizer", {Strings({"a", "b"}, {2, 1})}).ok());
  EXPECT_FALSE(RunOp(r_, "StringNormalizer", {Strings({"a"}, {1})},
                     {{"case_change_action", Attr::String("TITLE")}})
                   .ok());
}

TEST_F(TextOps, TfIdfCountsNgramsAndSkipGrams) {
  // Pool: 1-grams {2, 3}, 2-grams {(2,3), (3,4)}; output index = pool order reversed.
  AttrMap attrs = {{"min_gram_length", Attr::Int(1)}, {"max_gram_length", Attr::Int(2)},
                   {"max_skip_count", Attr::Int(1)},  {"mode", Attr::String("TF")},
                   {"ngram_counts", Attr::Ints({0, 2})},
                   {"ngram_indexes", Attr::Ints({3, 2, 1, 0})},
                   {"pool_int64s", Attr::Ints({2, 3, 2, 3, 3, 4})}};
  // Row: 2 3 4 2 5 3 -> 1-grams: 2 twice, 3 twice; bigrams (skip 0): (2,3) once, (3,4) once;
  // skip 1: pairs (2,4) (3,2) (4,5) (2,3) -> (2,3) once more.
  Tensor x = Tensor::FromVector<int32_t>({2, 3, 4, 2, 5, 3}, {1, 6}, true);
  auto out = RunOp(r_, "TfIdfVectorizer", {x}, attrs);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(testing::Values<float>((*out)[0]), (std::vector<float>{1, 2, 2, 2}));
  attrs["mode"] = Attr::String("TFIDF");
  attrs["weights"] = Attr::Floats({0.5f, 2, 3, 4});
  out = RunOp(r_, "TfIdfVectorizer", {x}, attrs);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(testing::Values<float>((*out)[0]), (std::vector<float>{4, 6, 4, 1}));
  attrs["mode"] = Attr::String("IDF");
  out = RunOp(r_, "TfIdfVectorizer", {Tensor::FromVector<int64_t>({9, 9, 3})}, attrs);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(testing::Values<float>((*out)[0]), (std::vector<float>{0, 0, 2, 0}));
  attrs["ngram_indexes"] = Attr::Ints({0, 1});  // does not match the pool
  EXPECT_FALSE(RunOp(r_, "TfIdfVectorizer", {x}, attrs).ok());
}

}  // namespace
}  // namespace kiln
