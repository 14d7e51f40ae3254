// Every input a fuzzer crashed on (tests/data/fuzz_regressions/<target>/, issue 11) goes
// through the same entry point as the fuzzer (fuzz/fuzz_targets.h) and must give an error
// Status, never a crash (this binary also runs under ASan+UBSan: label robustness). Valid
// inputs through the same harness must still parse, so the harness cannot pass by failing
// everything.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "engine/calibrator.h"
#include "fuzz/fuzz_targets.h"
#include "io/npy/npy.h"
#include "io/onnx/onnx_import.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

const fs::path kRegressions = fs::path(KILN_SOURCE_DIR) / "tests" / "data" / "fuzz_regressions";

std::string Slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Inputs of a few hundred KB that compress to almost nothing (deep nesting) are kept gzipped.
std::string Gunzip(const std::string& in) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return "";
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[65536];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
  }
  inflateEnd(&z);
  return rc == Z_STREAM_END ? out : "";
}

std::string Input(const fs::path& p) {
  std::string bytes = Slurp(p);
  if (p.extension() == ".gz") {
    bytes = Gunzip(bytes);
    EXPECT_FALSE(bytes.empty()) << p << " does not gunzip";
  }
  return bytes;
}

TEST(FuzzRegressions, EveryKeptInputIsAnErrorNotACrash) {
  ASSERT_TRUE(fs::is_directory(kRegressions)) << kRegressions;
  int inputs = 0;
  for (const auto& dir : fs::directory_iterator(kRegressions)) {
    if (!dir.is_directory()) continue;
    const std::string name = dir.path().filename().string();
    const fuzz::Target* target = fuzz::FindTarget(name);
    ASSERT_NE(target, nullptr) << "tests/data/fuzz_regressions/" << name
                               << " names no fuzz target (fuzz/fuzz_targets.cc)";
    for (const auto& file : fs::directory_iterator(dir.path())) {
      if (!file.is_regular_file() || file.path().filename() == "README.md") continue;
      SCOPED_TRACE(name + "/" + file.path().filename().string());
      const Status s = target->run(Input(file.path()));
      EXPECT_FALSE(s.ok()) << "regression input parsed without an error";
      EXPECT_FALSE(s.message().empty());
      ++inputs;
    }
  }
  EXPECT_GT(inputs, 0);
}

TEST(FuzzRegressions, HarnessAcceptsValidInputs) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  std::vector<float> v(12);
  for (float& x : v) x = u(rng);
  Tensor t = Tensor::FromVector(v, {3, 4}, true);
  auto npy = SerializeNpy(t);
  ASSERT_TRUE(npy.ok()) << npy.status();
  EXPECT_TRUE(fuzz::FindTarget("npy")->run(*npy).ok());

  CalibrationTable table;
  table.calibrator = "entropy";
  table.ranges["x:0"] = TensorRange{std::fabs(v[0]) + 1.f, -std::fabs(v[1]), std::fabs(v[2])};
  EXPECT_TRUE(fuzz::FindTarget("calibration_table")->run(table.ToText()).ok());

  const std::string model = std::string(
      R"({"format":"graph-model","modelTopology":{"node":[)"
      R"({"name":"x","op":"Placeholder","attr":{"dtype":{"type":"DT_FLOAT"}}},)"
      R"({"name":"w","op":"Const","attr":{"dtype":{"type":"DT_FLOAT"},"value":{"tensor":)"
      R"({"dtype":"DT_FLOAT","tensorShape":{"dim":[{"size":"2"}]}}}}},)"
      R"({"name":"y","op":"AddV2","input":["x","w"],"attr":{"T":{"type":"DT_FLOAT"}}}]},)"
      R"("weightsManifest":[{"paths":["w.bin"],"weights":[{"name":"w","shape":[2],)"
      R"("dtype":"float32"}]}]})");
  const std::string w(reinterpret_cast<const char*>(v.data()), 8);
  EXPECT_TRUE(fuzz::FindTarget("tfjs")->run(fuzz::PackTree({{"model.json", model}, {"w.bin", w}})).ok());
  // The same model with its shard cut short is an error.
  EXPECT_FALSE(fuzz::FindTarget("tfjs")
                   ->run(fuzz::PackTree({{"model.json", model}, {"w.bin", w.substr(0, 5)}}))
                   .ok());

  auto onnx = ReadFileToString(std::string(KILN_SOURCE_DIR) + "/models/ppocr_cls/model.onnx");
  if (onnx.ok()) {
    EXPECT_TRUE(fuzz::FindTarget("onnx")->run(*onnx).ok());
  }
}

}  // namespace
}  // namespace kiln
