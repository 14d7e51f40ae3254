// The disk engine cache through the `kiln` binary: two processes converting the same model
// (the second loads its engine from the cache), `kiln run` of a dynamic-mode model building
// at run time then loading, a corrupted file rebuilt, `kiln cache ls` and `kiln cache clear`.
// Uses the oneDNN CPU backend on the bundled model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/cli_runner.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing::Kiln;

std::string ReadAll(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<fs::path> PlanFiles(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".kplan") out.push_back(e.path());
  }
  return out;
}

TEST(CliEngineCache, SecondProcessLoadsTheEngineCorruptFileIsRebuiltLsAndClear) {
  const fs::path dir = fs::temp_directory_path() / ("kiln_cli_cache_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path cache = dir / "engines";
  const std::string model = std::string(KILN_SOURCE_DIR) + "/models/ppocr_cls/model.onnx";
  const std::string common = model + " --max-batch-size 2 --input-shape x=-1,3,48,192" +
                             " --engine-cache " + cache.string();

  auto r = Kiln("convert " + common + " -o " + (dir / "a.onnx").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("loaded from the engine cache"), std::string::npos) << r.output;
  ASSERT_EQ(PlanFiles(cache).size(), 1u);

  r = Kiln("convert " + common + " -o " + (dir / "b.onnx").string());  // a second process
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("loaded from the engine cache"), std::string::npos) << r.output;
  EXPECT_TRUE(ReadAll(dir / "a.onnx") == ReadAll(dir / "b.onnx"));

  r = Kiln("cache ls --engine-cache " + cache.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1 engine(s)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("float32[2,3,48,192]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" ok"), std::string::npos) << r.output;

  // Corrupt the file: detected, rebuilt, overwritten; ls shows it before and after.
  const fs::path file = PlanFiles(cache).at(0);
  std::string bytes = ReadAll(file);
  bytes[bytes.size() / 3] ^= 0x40;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  r = Kiln("cache ls --json --engine-cache " + cache.string());
  EXPECT_NE(r.output.find("corrupt"), std::string::npos) << r.output;
  r = Kiln("convert " + common + " -o " + (dir / "c.onnx").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("rejected"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("checksum"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("loaded from the engine cache"), std::string::npos) << r.output;
  EXPECT_TRUE(ReadAll(dir / "a.onnx") == ReadAll(dir / "c.onnx"));
  r = Kiln("cache ls --engine-cache " + cache.string());
  EXPECT_EQ(r.output.find("corrupt"), std::string::npos) << r.output;

  // Dynamic mode: `kiln run` builds at run time and writes the cache; a second run loads it.
  ASSERT_EQ(Kiln("convert " + model + " --dynamic --input-shape x=-1,3,48,192 -o " +
                 (dir / "dyn.onnx").string())
                .exit_code,
            0);
  const std::string run = "run " + (dir / "dyn.onnx").string() + " --shape x=3,3,48,192 " +
                          "--engine-cache " + cache.string();
  r = Kiln(run);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t files = PlanFiles(cache).size();  // + one per engine built at run time
  EXPECT_GT(files, 1u);
  setenv("KILN_LOG_LEVEL", "INFO", 1);  // the load is logged at INFO
  r = Kiln(run);                        // a new process: loads, does not build
  unsetenv("KILN_LOG_LEVEL");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("loaded from the engine cache"), std::string::npos) << r.output;
  EXPECT_EQ(PlanFiles(cache).size(), files);  // nothing new was built

  r = Kiln("cache clear --engine-cache " + cache.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("removed " + std::to_string(files)), std::string::npos) << r.output;
  EXPECT_TRUE(PlanFiles(cache).empty());
  unsetenv("KILN_ENGINE_CACHE");
  EXPECT_EQ(Kiln("cache ls").exit_code, 1);  // no directory given
  EXPECT_EQ(Kiln("cache frobnicate --engine-cache " + cache.string()).exit_code, 2);
  fs::remove_all(dir);
}

TEST(CliEngineCache, TacticTimingAndTheTimingCache) {
  const fs::path dir = fs::temp_directory_path() / ("kiln_cli_tactics_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string model = std::string(KILN_SOURCE_DIR) + "/models/ppocr_cls/model.onnx";
  const fs::path timing = dir / "timing.txt";
  const std::string convert = "convert " + model + " --input-shape x=-1,3,48,192 -o " +
                              (dir / "out.onnx").string() + " --timing-cache " + timing.string();
  auto r = Kiln(convert);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t at = r.output.find("tactics: ");
  ASSERT_NE(at, std::string::npos) << r.output;
  EXPECT_NE(r.output.substr(at, 12), "tactics: 0 l") << r.output;  // some layers were timed
  ASSERT_TRUE(fs::exists(timing));
  const std::string table = ReadAll(timing);
  EXPECT_EQ(table.rfind("# kiln timing cache v1\tdevice=cpu;", 0), 0u) << table;
  EXPECT_NE(table.find("\nConv"), std::string::npos) << table;
  r = Kiln(convert);  // the second build takes every choice from the timing cache
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("tactics: 0 layers timed"), std::string::npos) << r.output;
  EXPECT_TRUE(ReadAll(timing) == table);
  // A timing cache of another device is ignored (timed again) and overwritten.
  std::ofstream(timing, std::ios::trunc)
      << "# kiln timing cache v1\tdevice=elsewhere\nConv|x\tnone\n";
  r = Kiln(convert);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("not a kiln timing cache for this device"), std::string::npos)
      << r.output;
  EXPECT_EQ(ReadAll(timing).find("elsewhere"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kiln
