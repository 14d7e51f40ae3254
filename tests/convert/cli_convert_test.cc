// `kiln convert` and the engine part of `kiln inspect`, end to end through the binary, on the
// bundled model with the oneDNN CPU backend.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/cli_runner.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

using Result = testing::CliResult;
using testing::Kiln;

std::string ReadAll(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(CliConvert, ConvertPrintsSummaryWritesModelAndJson) {
  const fs::path dir = fs::temp_directory_path() / ("kiln_cli_convert_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string model = std::string(KILN_SOURCE_DIR) + "/models/ppocr_cls/model.onnx";
  const std::string out = (dir / "out.onnx").string();
  const std::string common = model + " --max-batch-size 2 --input-shape x=-1,3,48,192";
  Result r =
      Kiln("convert " + common + " -o " + out + " --json-summary " + (dir / "s.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Conversion summary"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("kiln_engine_0:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("not converted"), std::string::npos) << r.output;
  const std::string json = ReadAll(dir / "s.json");
  EXPECT_NE(json.find("\"converted_nodes\""), std::string::npos) << json;
  // Deterministic: a second conversion writes the same bytes.
  ASSERT_EQ(Kiln("convert " + common + " --output " + (dir / "again.onnx").string()).exit_code, 0);
  EXPECT_TRUE(ReadAll(out) == ReadAll(dir / "again.onnx"));

  r = Kiln("inspect " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("engine kiln_engine_0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("status: ready"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("FP32"), std::string::npos) << r.output;
  r = Kiln("inspect " + out + " --profile");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(" ms per run"), std::string::npos) << r.output;
  r = Kiln("run " + out + " --shape x=3,3,48,192");  // batch 3 > 2: native fallback
  EXPECT_EQ(r.exit_code, 0) << r.output;
  fs::remove_all(dir);
}

TEST(CliConvert, BadParametersAreReported) {
  const std::string model = std::string(KILN_SOURCE_DIR) + "/models/ppocr_cls/model.onnx";
  // A path of this process's own: no other test run can create or remove it meanwhile.
  const fs::path never =
      fs::temp_directory_path() / ("kiln_never_" + std::to_string(getpid()) + ".onnx");
  const std::string out = " -o " + never.string();
  Result r = Kiln("convert " + model + out + " --precision half");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("precision_mode 'half' is not one of"), std::string::npos) << r.output;
  r = Kiln("convert " + model + out + " --max-batch-size -3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("max_batch_size"), std::string::npos) << r.output;
  r = Kiln("convert " + model + out + " --outputs nope");
  EXPECT_NE(r.output.find("outputs: 'nope'"), std::string::npos) << r.output;
  EXPECT_EQ(Kiln("convert " + model).exit_code, 2);  // no -o
  EXPECT_FALSE(fs::exists(never));
  r = Kiln("convert --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--max-workspace-size"), std::string::npos);
}

}  // namespace
}  // namespace kiln
