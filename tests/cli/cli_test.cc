// End-to-end tests of the `kiln` binary: exit codes and messages for good and bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cli/cli_runner.h"
#include "io/npy/npy.h"
#include "ops/op_test_util.h"
#include "runtime/onnx_builder.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

using Result = testing::CliResult;
using testing::Kiln;

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_cli_" + std::to_string(getpid()));
    fs::create_directories(dir_);
    testing::OnnxBuilder b;
    b.Input("x", 1, {-1, 3}).Output("out/0:1", 1, {-1, 3});
    b.Node("Relu", {"x"}, {"r"}, "relu");
    b.Node("Neg", {"r"}, {"out/0:1"}, "neg");
    Write("good.onnx", b.Serialize());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& bytes) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::string Path(const std::string& name) { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(Cli, HelpAndUsage) {
  EXPECT_EQ(Kiln("--help").exit_code, 0);
  Result run_help = Kiln("run --help");
  EXPECT_EQ(run_help.exit_code, 0);
  EXPECT_NE(run_help.output.find("--output-dir"), std::string::npos);
  EXPECT_EQ(Kiln("inspect --help").exit_code, 0);
  EXPECT_EQ(Kiln("").exit_code, 2);
  EXPECT_EQ(Kiln("run").exit_code, 2);
  Result bad = Kiln("run " + Path("good.onnx") + " --bogus");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.output.find("unknown option --bogus"), std::string::npos);
}

TEST_F(Cli, RunsWritesSanitizedOutputsAndIsDeterministic) {
  Result r = Kiln("run " + Path("good.onnx") + " --shape x=4,3 --seed 7 --output-dir " +
                  Path("out"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("float32[4,3]"), std::string::npos) << r.output;
  auto t = ReadNpyFile(Path("out/out_0_1.npy"));
  ASSERT_TRUE(t.ok()) << t.status() << "\n" << r.output;
  EXPECT_EQ(t->dims(), (std::vector<int64_t>{4, 3}));
  bool any_negative = false;
  for (int i = 0; i < 12; ++i) {
    EXPECT_LE(t->data<float>()[i], 0.0f);
    any_negative |= t->data<float>()[i] < 0;
  }
  EXPECT_TRUE(any_negative);  // random inputs are not constant
  Result again = Kiln("run " + Path("good.onnx") + " --shape x=4,3 --seed 7 --output-dir " +
                      Path("out2"));
  ASSERT_EQ(again.exit_code, 0);
  auto t2 = ReadNpyFile(Path("out2/out_0_1.npy"));
  ASSERT_TRUE(t2.ok());
  EXPECT_TRUE(t->BitwiseEqual(*t2));
}

TEST_F(Cli, FeedsFromNpy) {
  Tensor x = Tensor::FromVector<float>({-1, 2, -3, 4, -5, 6}, {2, 3}, true);
  ASSERT_TRUE(WriteNpyFile(Path("x.npy"), x).ok());
  Result r = Kiln("run " + Path("good.onnx") + " --input x=" + Path("x.npy") + " --output-dir " +
                  Path("o"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto y = ReadNpyFile(Path("o/out_0_1.npy"));
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(y->data<float>()[1], -2.0f);
  EXPECT_EQ(y->data<float>()[0], 0.0f);
}

TEST_F(Cli, BadModelsFailCleanly) {
  std::string good;
  {
    std::ifstream f(Path("good.onnx"), std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(f), {});
  }
  Write("truncated.onnx", good.substr(0, good.size() - 7));
  Write("garbage.onnx", "this is not a model at all");
  testing::OnnxBuilder b;
  b.Input("x", 1, {2}).Output("y", 1, {2});
  b.Node("Frobnicate", {"x"}, {"y"}, "frob");
  Write("unknown_op.onnx", b.Serialize());
  struct Case {
    std::string args, expect;
  } cases[] = {
      {"run " + Path("truncated.onnx"), "truncated.onnx"},
      {"run " + Path("garbage.onnx"), "garbage.onnx"},
      {"run " + Path("missing.onnx"), "does not exist"},
      {"run " + Path("unknown_op.onnx"), "node 'frob' (Frobnicate)"},
      {"inspect " + Path("garbage.onnx"), "garbage.onnx"},
  };
  for (const auto& c : cases) {
    Result r = Kiln(c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find("kiln: error:"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << "\n" << r.output;
  }
  Result inspect = Kiln("inspect " + Path("unknown_op.onnx"));
  EXPECT_EQ(inspect.exit_code, 0);
  EXPECT_NE(inspect.output.find("frob (Frobnicate): op Frobnicate is not in kiln's op table"),
            std::string::npos)
      << inspect.output;
  Result json = Kiln("inspect --json " + Path("unknown_op.onnx"));
  EXPECT_NE(json.output.find("\"runnable\": false"), std::string::npos) << json.output;
}

TEST_F(Cli, BadFeedsFailCleanly) {
  ASSERT_TRUE(WriteNpyFile(Path("int.npy"), Tensor::FromVector<int32_t>({1, 2, 3}, {1, 3}, true)).ok());
  ASSERT_TRUE(WriteNpyFile(Path("wide.npy"), Tensor::FromVector<float>({1, 2, 3, 4}, {1, 4}, true)).ok());
  std::string npy;
  {
    auto s = SerializeNpy(Tensor::FromVector<float>({1, 2, 3}, {1, 3}, true));
    ASSERT_TRUE(s.ok());
    npy = *s;
  }
  Write("truncated.npy", npy.substr(0, npy.size() - 5));
  struct Case {
    std::string args, expect;
  } cases[] = {
      {"--input x=" + Path("int.npy"), "expects float32[?,3], got int32[1,3]"},
      {"--input x=" + Path("wide.npy"), "expects shape [?,3], got [1,4]"},
      {"--input x=" + Path("truncated.npy"), "truncated.npy"},
      {"--input nope=" + Path("int.npy"), "no input of that name"},
      {"--shape x=2,two", "bad dimension"},
  };
  for (const auto& c : cases) {
    Result r = Kiln("run " + Path("good.onnx") + " " + c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_LT(r.exit_code, 128) << "crashed: " << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << "\n" << r.output;
  }
}

TEST_F(Cli, BenchReportsLatencyAndComparison) {
  std::string json = Path("bench.json");
  Result r = Kiln("bench " + std::string(KILN_SOURCE_DIR) +
                  "/models/ppocr_cls/model.onnx --shape x=2,3,48,192 --iterations 3 --warmup 1"
                  " --compare native --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The --shape batch (2) is the batch the engines are built for: no native fallback.
  EXPECT_EQ(r.output.find("running the native segment"), std::string::npos) << r.output;
  std::ifstream f(json);
  std::string text((std::istreambuf_iterator<char>(f)), {});
  for (const char* key : {"\"model\"", "\"batch\"", "\"precision\"", "\"threads\"",
                          "\"latency_ms\"", "\"median\"", "\"p99\"", "\"throughput_per_s\"",
                          "\"compare\"", "\"rel_l2_error\"", "\"speedup\""}) {
    EXPECT_NE(text.find(key), std::string::npos) << key << " missing in " << text;
  }
  Result bad = Kiln("bench " + Path("good.onnx") + " --precision fp64");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("precision_mode 'FP64'"), std::string::npos) << bad.output;
}

TEST_F(Cli, RunsTheBundledModel) {
  Result r = Kiln("run " + std::string(KILN_SOURCE_DIR) +
                  "/models/ppocr_cls/model.onnx --shape x=1,3,48,192");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("softmax_0.tmp_0: float32[1,2]"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace kiln
