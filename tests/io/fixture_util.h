// The shared test fixtures (../shared/fixtures, or $KILN_FIXTURES_DIR; see its README) as the
// TensorFlow fixture tests find them.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <vector>

namespace kiln::testing {

// $KILN_FIXTURES_DIR, else the source tree's ../shared/fixtures.
inline std::string FixturesDir() {
  const char* env = std::getenv("KILN_FIXTURES_DIR");
  return env ? std::string(env) : std::string(KILN_SOURCE_DIR) + "/../shared/fixtures";
}

// The fixture directories (those with a manifest.json) under FixturesDir()/kind, sorted; empty
// when there is no such directory (the tests skip).
inline std::vector<std::filesystem::path> FixtureDirs(const std::string& kind) {
  namespace fs = std::filesystem;
  std::vector<fs::path> out;
  std::error_code ec;
  const fs::path root = fs::path(FixturesDir()) / kind;
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& e : fs::directory_iterator(root)) {
    if (fs::is_regular_file(e.path() / "manifest.json")) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A fixture directory's manifest.json.
inline nlohmann::json ReadManifest(const std::filesystem::path& dir) {
  std::ifstream f(dir / "manifest.json");
  return nlohmann::json::parse(f);
}

}  // namespace kiln::testing
