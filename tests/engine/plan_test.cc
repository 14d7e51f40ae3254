#include "engine/plan.h"

#include <gtest/gtest.h>

#include "engine/build_config.h"

namespace kiln {
namespace {

PlanHeader Header() {
  PlanHeader h;
  h.kiln_version = "0.1.0";
  h.backend = "cpu";
  h.device_fingerprint = "avx512_core;dnnl-2.6.3";
  h.precision = "FP32";
  h.content_hash = HashBytes("segment");
  h.input_specs = {"float32[8,3,224,224]"};
  h.output_specs = {"float32[8,1000]", "float32[8]"};
  h.build_config = "precision=FP32";
  return h;
}

TEST(Plan, RoundTrip) {
  std::string payload("\x00\x01weights\xff", 10);
  std::string plan = WritePlan(Header(), payload);
  auto read = ReadPlan(plan);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->second, payload);
  EXPECT_EQ(read->first.device_fingerprint, "avx512_core;dnnl-2.6.3");
  EXPECT_EQ(read->first.output_specs.size(), 2u);
  EXPECT_EQ(read->first.content_hash, HashBytes("segment"));
}

TEST(Plan, EveryFlippedByteOrTruncationIsRejected) {
  std::string plan = WritePlan(Header(), "payload bytes");
  for (size_t i = 0; i < plan.size(); ++i) {
    std::string bad = plan;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    EXPECT_FALSE(ReadPlan(bad).ok()) << "flipped byte " << i;
  }
  for (size_t n = 0; n < plan.size(); ++n) {
    EXPECT_FALSE(ReadPlan(std::string_view(plan).substr(0, n)).ok()) << "truncated to " << n;
  }
  EXPECT_EQ(ReadPlan("garbage").status().code(), StatusCode::kDataLoss);
}

TEST(Plan, OtherFormatVersionIsAFailedPrecondition) {
  std::string plan = WritePlan(Header(), "p");
  plan[8] = 9;  // format version field
  EXPECT_EQ(ReadPlan(plan).status().code(), StatusCode::kFailedPrecondition);
}

TEST(BuildConfig, PrecisionParsing) {
  EXPECT_EQ(*ParsePrecision("fp16"), Precision::kFP16);
  EXPECT_EQ(*ParsePrecision("Int8"), Precision::kINT8);
  auto bad = ParsePrecision("FP64");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("precision_mode"), std::string::npos);
  BuildConfig a, b;
  b.max_batch_size = 8;
  EXPECT_NE(a.Fingerprint(), b.Fingerprint());
  EXPECT_NE(HashBytes("a"), HashBytes("b"));
}

}  // namespace
}  // namespace kiln
