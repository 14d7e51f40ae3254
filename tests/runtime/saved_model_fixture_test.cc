// SavedModel and MetaGraph+checkpoint fixtures (../shared/fixtures/{saved_model,checkpoint}):
// each loads, freezes and matches its recorded outputs (manifest tolerance), fed and fetched
// both by tensor name and by signature key.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/fixture_util.h"
#include "io/npy/npy.h"
#include "io/tf/freeze.h"
#include "io/tf/saved_model.h"
#include "kiln/session.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

using testing::FixtureDirs;
using testing::FixturesDir;
using testing::ReadManifest;

// Runs `graph` on the fixture's inputs and compares with its outputs; "" on success.
std::string CheckFixture(Graph graph, const fs::path& dir, const nlohmann::json& m,
                         bool by_signature_key) {
  const Graph copy = graph;
  auto session = Session::FromGraph(std::move(graph));
  if (!session.ok()) return "load: " + session.status().ToString();
  Feeds feeds;
  for (const auto& in : m.at("inputs")) {
    auto t = ReadNpyFile((dir / in.at("file").get<std::string>()).string());
    if (!t.ok()) return t.status().ToString();
    std::string name = in.at("name").get<std::string>();
    if (by_signature_key) {
      name = ResolveSignatureName(copy, in.at("signature_key").get<std::string>());
      if (name != in.at("name").get<std::string>()) return "signature key resolved to " + name;
    }
    feeds.emplace_back(name, std::move(*t));
  }
  std::vector<std::string> fetches;
  for (const auto& o : m.at("outputs")) {
    fetches.push_back(by_signature_key
                          ? ResolveSignatureName(copy, o.at("signature_key").get<std::string>())
                          : o.at("name").get<std::string>());
  }
  auto got = (*session)->Run(feeds, fetches);
  if (!got.ok()) return "run: " + got.status().ToString();
  size_t k = 0;
  for (const auto& o : m.at("outputs")) {
    auto ref = ReadNpyFile((dir / o.at("file").get<std::string>()).string());
    if (!ref.ok()) return ref.status().ToString();
    const auto& tol = o.contains("tolerance") && !o.at("tolerance").is_null()
                          ? o.at("tolerance")
                          : m.at("suggested_tolerance");
    const double rtol = tol.at("rtol").get<double>(), atol = tol.at("atol").get<double>();
    const Tensor& g = (*got)[k++];
    if (g.dtype() != ref->dtype()) return "output " + fetches[k - 1] + ": dtype differs";
    if (g.dims() != ref->dims()) return "output " + fetches[k - 1] + ": shape differs";
    for (int64_t i = 0; i < ref->num_elements(); ++i) {
      const double a = g.GetAsDouble(i), b = ref->GetAsDouble(i);
      if (!(std::fabs(a - b) <= atol + rtol * std::fabs(b))) {
        return "output " + fetches[k - 1] + "[" + std::to_string(i) + "] = " + std::to_string(a) +
               ", reference " + std::to_string(b);
      }
    }
  }
  return "";
}

TEST(SavedModelFixtures, MatchReferenceOutputs) {
  auto dirs = FixtureDirs("saved_model");
  if (dirs.empty()) GTEST_SKIP() << "no fixtures under " << FixturesDir() << "/saved_model";
  for (const auto& dir : dirs) {
    SCOPED_TRACE(dir.string());
    const auto m = ReadManifest(dir);
    SavedModelOptions opts;
    opts.tags.clear();
    for (const auto& t : m.at("tags")) opts.tags.insert(t.get<std::string>());
    opts.signature_key = m.at("signature").get<std::string>();
    const fs::path model = dir / m.at("model_path").get<std::string>();
    auto g = LoadSavedModel(model.string(), opts);
    ASSERT_TRUE(g.ok()) << g.status();
    // Frozen: no variable or function-call op is left.
    for (const auto& n : g->nodes) {
      EXPECT_NE(n.op_type, "VariableV2");
      EXPECT_NE(n.op_type, "ReadVariableOp");
      EXPECT_NE(n.op_type, "StatefulPartitionedCall");
    }
    EXPECT_EQ(g->metadata["signature.key"], opts.signature_key);
    EXPECT_EQ(CheckFixture(*g, dir, m, /*by_signature_key=*/false), "");
    EXPECT_EQ(CheckFixture(*g, dir, m, /*by_signature_key=*/true), "");
  }
}

TEST(CheckpointFixtures, FreezeMetaGraphMatchesReference) {
  auto dirs = FixtureDirs("checkpoint");
  if (dirs.empty()) GTEST_SKIP() << "no fixtures under " << FixturesDir() << "/checkpoint";
  for (const auto& dir : dirs) {
    SCOPED_TRACE(dir.string());
    const auto m = ReadManifest(dir);
    std::vector<std::string> outputs;
    for (const auto& o : m.at("outputs")) outputs.push_back(o.at("name").get<std::string>());
    const std::string meta = (dir / m.at("model_path").get<std::string>()).string();
    // By explicit prefix and by directory (through the `checkpoint` state file).
    for (const std::string& ckpt :
         {(dir / m.at("checkpoint_prefix").get<std::string>()).string(), dir.string()}) {
      auto g = FreezeMetaGraph(meta, ckpt, outputs);
      ASSERT_TRUE(g.ok()) << g.status();
      EXPECT_EQ(CheckFixture(std::move(*g), dir, m, false), "");
    }
  }
}

}  // namespace
}  // namespace kiln
