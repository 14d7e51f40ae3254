// Precision modes through the converter (issue 5): a BF16 conversion of a real classifier
// (PaddleOCR's text-direction classifier) builds BF16 layers, reports per-engine precision
// counts, keeps its outputs within rel. L2 3e-2 of the unconverted model and its top-1, and
// `kiln inspect` (InspectModel) shows each layer's precision; FP16 on a CPU without FP16
// kernels builds FP32 layers and the summary warns.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "convert/convert_test_util.h"
#include "kiln/convert.h"
#include "kiln/session.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing::Random;
using testing::RelL2;

const std::string kModel = std::string(KILN_SOURCE_DIR) + "/models/ppocr_cls/model.onnx";

ConversionParams Params(const std::string& precision) {
  ConversionParams p;
  p.precision_mode = precision;
  p.max_batch_size = 4;
  p.input_shapes["x"] = {-1, 3, 48, 192};
  return p;
}

int Count(const std::map<std::string, int>& m, const std::string& k) {
  auto it = m.find(k);
  return it == m.end() ? 0 : it->second;
}

TEST(Precision, Bf16ConversionBuildsBf16LayersAndKeepsTop1) {
  if (!CpuHasKernel(Precision::kBF16)) {
    GTEST_SKIP() << "this CPU has no bf16 kernel (needs avx512_bf16 or AMX)";
  }
  auto conv = CreateInferenceGraph(kModel, Params("bf16"));
  ASSERT_TRUE(conv.ok()) << conv.status();
  const ConversionSummary& s = conv->summary();
  ASSERT_FALSE(s.engines.empty());
  int bf16 = 0;
  for (const auto& e : s.engines) {
    EXPECT_EQ(e.status, "built") << e.name;
    bf16 += Count(e.layer_precisions, "BF16");
  }
  EXPECT_GT(bf16, 0) << s.ToString();
  EXPECT_TRUE(s.warnings.empty()) << s.ToString();
  EXPECT_NE(s.ToString().find("layer precisions: BF16 x"), std::string::npos) << s.ToString();
  EXPECT_NE(s.ToJson().find("\"layer_precisions\": {\"BF16\""), std::string::npos);

  auto original = Session::Load(kModel);
  auto converted = Session::FromGraph(conv->graph());
  ASSERT_TRUE(original.ok() && converted.ok());
  const Tensor x = Random({4, 3, 48, 192}, 7);
  auto want = (*original)->Run({{"x", x}});
  auto got = (*converted)->Run({{"x", x}});
  ASSERT_TRUE(want.ok() && got.ok());
  ASSERT_EQ(want->size(), got->size());
  const Tensor& w = (*want)[0];
  const Tensor& g = (*got)[0];
  // 73 fused layers, each rounding its activations to bf16 (8-bit mantissa): the error of the
  // whole model random-walks to ~1-2.5% (docs/precision.md), above the 1e-2 that one engine
  // of a few layers keeps (tests/backends/cpu/precision_test.cc).
  EXPECT_LE(RelL2(g, w), 3e-2);
  EXPECT_GT(RelL2(g, w), 1e-5) << "the BF16 engine gave FP32's outputs";
  ASSERT_EQ(w.dims(), std::vector<int64_t>({4, 2}));
  for (int64_t i = 0; i < 4; ++i) {
    const bool top_w = w.data<float>()[2 * i] > w.data<float>()[2 * i + 1];
    const bool top_g = g.data<float>()[2 * i] > g.data<float>()[2 * i + 1];
    EXPECT_EQ(top_g, top_w) << "input " << i;
  }

  const fs::path dir = fs::temp_directory_path() / ("kiln_precision_" + std::to_string(getpid()));
  fs::create_directories(dir);
  ASSERT_TRUE(conv->Save((dir / "m.onnx").string()).ok());
  auto info = InspectModel((dir / "m.onnx").string());
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->engines.size(), s.engines.size());
  std::map<std::string, int> seen;
  for (const auto& e : info->engines) {
    EXPECT_EQ(e.status, "ready") << e.node;
    EXPECT_EQ(e.precision, "BF16");
    for (const auto& l : e.layers) ++seen[l.precision];
  }
  EXPECT_EQ(seen["BF16"], bf16);
  fs::remove_all(dir);
}

TEST(Precision, Fp16WithoutKernelWarnsAndRunsFp32) {
  if (CpuHasKernel(Precision::kFP16)) GTEST_SKIP() << "this CPU has FP16 kernels";
  auto conv = CreateInferenceGraph(kModel, Params("FP16"));
  ASSERT_TRUE(conv.ok()) << conv.status();
  const ConversionSummary& s = conv->summary();
  ASSERT_EQ(s.warnings.size(), 1u) << s.ToString();
  EXPECT_NE(s.warnings[0].find("no FP16 kernel"), std::string::npos) << s.warnings[0];
  EXPECT_NE(s.ToString().find("warning: precision_mode FP16"), std::string::npos);
  EXPECT_NE(s.ToJson().find("\"warnings\": [\"precision_mode FP16"), std::string::npos);
  ASSERT_FALSE(s.engines.empty());
  for (const auto& e : s.engines) {
    ASSERT_EQ(e.layer_precisions.size(), 1u) << s.ToString();
    EXPECT_GT(Count(e.layer_precisions, "FP32"), 0);
  }
  auto original = Session::Load(kModel);
  auto converted = Session::FromGraph(conv->graph());
  ASSERT_TRUE(original.ok() && converted.ok());
  const Tensor x = Random({2, 3, 48, 192}, 9);
  auto want = (*original)->Run({{"x", x}});
  auto got = (*converted)->Run({{"x", x}});
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_LE(RelL2((*got)[0], (*want)[0]), 1e-5);
}

TEST(Precision, UnknownModeIsInvalidArgument) {
  auto conv = CreateInferenceGraph(kModel, Params("half"));
  ASSERT_FALSE(conv.ok());
  EXPECT_EQ(conv.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(conv.status().message().find("precision_mode"), std::string::npos);
}

}  // namespace
}  // namespace kiln
