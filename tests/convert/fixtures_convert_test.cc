// Every model fixture (../shared/fixtures: frozen GraphDefs and TF.js graph models) and the
// bundled ONNX model converts, and the converted model's outputs match the unconverted
// model's on the fixture's real inputs within FP32 tolerance (rel. L2 <= 1e-5, no NaN).
// Prints a table: model, nodes, engines, % converted, rel. L2 error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/npy/npy.h"
#include "ir/graph.h"
#include "kiln/convert.h"
#include "kiln/session.h"
#include "runtime/model_loader.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

double RelL2(const Tensor& got, const Tensor& want, bool* nan) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    double g = got.GetAsDouble(i), w = want.GetAsDouble(i);
    if (std::isnan(g)) *nan = true;
    num += (g - w) * (g - w);
    den += w * w;
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

struct Case {
  std::string name;
  std::string model;                 // model file
  std::vector<std::pair<std::string, std::string>> inputs;  // name, .npy path
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  fs::path fixtures = EnvOr("KILN_FIXTURES_DIR", std::string(KILN_SOURCE_DIR) + "/../shared/fixtures");
  fs::path tfjs_models =
      EnvOr("KILN_TFJS_MODELS_DIR", std::string(KILN_SOURCE_DIR) + "/.cache/tfjs/package/models");
  for (const char* kind : {"graphdef", "tfjs"}) {
    if (!fs::is_directory(fixtures / kind)) continue;
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(fixtures / kind)) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    for (const auto& dir : dirs) {
      std::ifstream f(dir / "manifest.json");
      if (!f) continue;
      nlohmann::json m = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
      if (m.is_discarded()) continue;
      Case c;
      c.name = std::string(kind) + "/" + dir.filename().string();
      std::string model_path = m.value("model_path", "");
      if (std::string(kind) == "tfjs") {
        c.model = (tfjs_models / (dir.filename().string() + ".json")).string();
      } else {
        c.model = (dir / model_path).string();
      }
      if (!fs::exists(c.model)) continue;
      for (const auto& in : m["inputs"]) {
        c.inputs.emplace_back(in.value("name", ""), (dir / in.value("file", "")).string());
      }
      cases.push_back(c);
    }
  }
  return cases;
}

TEST(FixturesConvert, ConvertedOutputsMatchUnconverted) {
  auto cases = Cases();
  if (cases.empty()) GTEST_SKIP() << "no fixtures found (set KILN_FIXTURES_DIR)";
  std::printf("\n%-28s %6s %8s %10s %12s\n", "model", "nodes", "engines", "converted",
              "rel L2 err");
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto graph = LoadModelGraph(c.model);
    ASSERT_TRUE(graph.ok()) << graph.status();
    Feeds feeds;
    ConversionParams params;
    for (const auto& [name, file] : c.inputs) {
      auto t = ReadNpyFile(file);
      ASSERT_TRUE(t.ok()) << t.status();
      feeds.emplace_back(name, *t);
      params.input_shapes[name] = t->dims();
      if (t->rank() > 0) params.max_batch_size = std::max<int64_t>(params.max_batch_size, t->dim(0));
    }
    auto native = Session::FromGraph(*graph);
    ASSERT_TRUE(native.ok()) << native.status();
    auto converted = CreateInferenceGraph(*graph, params);
    ASSERT_TRUE(converted.ok()) << converted.status();
    auto engines = Session::FromGraph(converted->graph());
    ASSERT_TRUE(engines.ok()) << engines.status();
    auto want = (*native)->Run(feeds);
    ASSERT_TRUE(want.ok()) << want.status();
    auto got = (*engines)->Run(feeds);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), want->size());
    double worst = 0;
    bool nan = false;
    for (size_t k = 0; k < want->size(); ++k) {
      ASSERT_EQ((*got)[k].dims(), (*want)[k].dims());
      if (!IsFloatingPoint((*want)[k].dtype())) {
        EXPECT_TRUE((*got)[k].BitwiseEqual((*want)[k])) << "output " << k;
        continue;
      }
      worst = std::max(worst, RelL2((*got)[k], (*want)[k], &nan));
    }
    const auto& s = converted->summary();
    std::printf("%-28s %6d %8zu %9.1f%% %12.3g\n", c.name.c_str(), s.total_nodes, s.engines.size(),
                s.total_nodes ? 100.0 * s.converted_nodes / s.total_nodes : 0.0, worst);
    EXPECT_FALSE(nan);
    EXPECT_LE(worst, 1e-5);
  }
}

}  // namespace
}  // namespace kiln
