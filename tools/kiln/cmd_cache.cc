// `kiln cache ls|clear`: the disk engine cache (kiln/engine_cache.h).
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli_util.h"
#include "commands.h"
#include "engine/engine.h"
#include "kiln/engine_cache.h"

namespace kiln::cli {
namespace {

const char* kCacheHelp = R"(usage: kiln cache ls|clear [--engine-cache DIR] [--json]

The disk engine cache: one plan file per engine, keyed by the segment, build config, precision,
calibration table, device and kiln version. `kiln convert`, `run` and `bench` use it with
--engine-cache DIR or KILN_ENGINE_CACHE; its size is capped by KILN_ENGINE_CACHE_MAX_BYTES
(default 4 GiB; least recently used files are removed first).

  ls      list the cached engines, most recently used first: key, size, age, backend,
          precision, input shapes, and whether this kiln on this machine would use the file
  clear   remove every cached engine

options:
  --engine-cache DIR   the cache directory (default: KILN_ENGINE_CACHE)
  --json               ls: print JSON
  --help               show this help
)";

std::string Age(double s) {
  char buf[32];
  if (s < 120)
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 7200)
    std::snprintf(buf, sizeof buf, "%.0fm", s / 60);
  else if (s < 172800)
    std::snprintf(buf, sizeof buf, "%.0fh", s / 3600);
  else
    std::snprintf(buf, sizeof buf, "%.0fd", s / 86400);
  return buf;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

int CacheCommand(int argc, char** argv) {
  auto parsed = Args::Parse(argc, argv, {"engine-cache"}, {"help", "json"});
  if (!parsed.ok()) {
    std::cerr << "kiln: " << parsed.status().message() << "\n\n" << kCacheHelp;
    return 2;
  }
  const Args& args = *parsed;
  if (args.Has("help")) {
    std::cout << kCacheHelp;
    return 0;
  }
  if (args.positionals().size() != 1 ||
      (args.positionals()[0] != "ls" && args.positionals()[0] != "clear")) {
    std::cerr << "kiln: cache needs ls or clear\n\n" << kCacheHelp;
    return 2;
  }
  const std::string dir = ResolveEngineCacheDir(args.Get("engine-cache").value_or(""));
  if (dir.empty()) {
    std::cerr << "kiln: error: no engine cache: give --engine-cache DIR or set KILN_ENGINE_CACHE\n";
    return 1;
  }
  if (args.positionals()[0] == "clear") {
    auto removed = ClearEngineCache(dir);
    if (!removed.ok()) {
      std::cerr << "kiln: error: " << removed.status().ToString() << "\n";
      return 1;
    }
    std::printf("removed %lld cached engine file(s) from %s\n", static_cast<long long>(*removed),
                dir.c_str());
    return 0;
  }
  auto files = ListEngineCache(dir);
  if (!files.ok()) {
    std::cerr << "kiln: error: " << files.status().ToString() << "\n";
    return 1;
  }
  int64_t total = 0;
  for (auto& f : *files) {
    total += f.bytes;
    const Backend* backend = f.status == "ok" ? FindBackend(f.backend) : nullptr;
    if (f.status == "ok" && backend == nullptr) f.status = "backend not built into this kiln";
    if (backend != nullptr && backend->DeviceFingerprint() != f.device) {
      f.status = "built for another device";
    }
  }
  if (args.Has("json")) {
    std::ostringstream os;
    os << "{\"dir\": " << JsonEscape(dir) << ", \"bytes\": " << total << ", \"engines\": [";
    for (size_t k = 0; k < files->size(); ++k) {
      const auto& f = (*files)[k];
      os << (k ? ", " : "") << "{\"key\": " << JsonEscape(f.key) << ", \"bytes\": " << f.bytes
         << ", \"age_s\": " << static_cast<int64_t>(f.age_s)
         << ", \"backend\": " << JsonEscape(f.backend)
         << ", \"precision\": " << JsonEscape(f.precision) << ", \"inputs\": [";
      for (size_t i = 0; i < f.input_specs.size(); ++i) {
        os << (i ? ", " : "") << JsonEscape(f.input_specs[i]);
      }
      os << "], \"status\": " << JsonEscape(f.status) << "}";
    }
    os << "]}\n";
    std::cout << os.str();
    return 0;
  }
  std::printf("engine cache %s: %zu engine(s), %.1f MB\n", dir.c_str(), files->size(),
              static_cast<double>(total) / 1e6);
  if (files->empty()) return 0;
  std::printf("  %-16s %10s %6s %-8s %-5s %-40s %s\n", "key", "size", "age", "backend", "prec",
              "inputs", "status");
  for (const auto& f : *files) {
    std::printf("  %-16s %9.1fM %6s %-8s %-5s %-40s %s\n", f.key.c_str(),
                static_cast<double>(f.bytes) / 1e6, Age(f.age_s).c_str(), f.backend.c_str(),
                f.precision.c_str(), Join(f.input_specs).c_str(), f.status.c_str());
  }
  return 0;
}

}  // namespace kiln::cli
