// kiln/engine_cache.h — what kiln's engine caches did, and the disk engine cache's contents.
//
// Two caches keep engines from being built twice (docs/design.md, "Engine caches"):
//   - in memory: each kiln.EngineOp keeps the engines it built at run time in an LRU of
//     max_cached_engines_count entries, shared by every Session of the process that runs the
//     same segment (same node name and segment content); freed when no Session uses it;
//   - on disk (`--engine-cache DIR`, env KILN_ENGINE_CACHE, ConversionParams::engine_cache_dir,
//     SessionOptions::engine_cache_dir): one plan file per key, where the key hashes the segment,
//     the build config, precision, calibration table, device fingerprint and kiln version. The
//     converter's static builds and run-time builds read and write it. Size cap:
//     KILN_ENGINE_CACHE_MAX_BYTES (default 4 GiB), least recently used files go first.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/status.h"

namespace kiln {

// Process-wide totals since start (never reset; tests compare before/after).
struct EngineCacheCounters {
  int64_t builds = 0;         // engines built by a backend at run time
  int64_t hits = 0;           // run-time lookups served by the in-memory cache
  int64_t misses = 0;         // run-time lookups that had to build or load an engine
  int64_t evictions = 0;      // engines dropped by the in-memory LRU
  int64_t failed_builds = 0;  // builds that failed (remembered: never retried for that key)
  int64_t failure_hits = 0;   // lookups answered by a remembered failure
  int64_t disk_hits = 0;      // plans loaded from the disk cache
  int64_t disk_misses = 0;
  int64_t disk_writes = 0;
  int64_t disk_rejected = 0;   // corrupt, truncated or foreign files (rebuilt and overwritten)
  int64_t disk_evictions = 0;  // files removed to keep the size cap
};
EngineCacheCounters GetEngineCacheCounters();
// "builds 1, hits 7, misses 1, ..., disk hits 0, ..." (fields that are not zero; "none").
std::string FormatEngineCacheCounters(const EngineCacheCounters& c);

// The disk cache directory in effect: `dir` when not empty, else KILN_ENGINE_CACHE, else "".
std::string ResolveEngineCacheDir(const std::string& dir);

// One file of the disk cache, as `kiln cache ls` shows it.
struct EngineCacheFile {
  std::string key;  // the file's name without ".kplan"
  std::string path;
  int64_t bytes = 0;
  double age_s = 0;  // since last use (mtime)
  std::string backend, precision, device;
  std::vector<std::string> input_specs;  // "float32[8,3,224,224]"
  std::string status;  // "ok", or why the file would be rejected (corrupt, foreign, ...)
};
// Files of the disk cache in `dir`, most recently used first; NotFound when `dir` is missing.
StatusOr<std::vector<EngineCacheFile>> ListEngineCache(const std::string& dir);
// Removes every cache file (and stale temporaries) of `dir`; returns how many were removed.
StatusOr<int64_t> ClearEngineCache(const std::string& dir);

}  // namespace kiln
