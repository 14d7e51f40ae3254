// The disk engine cache (kiln/engine_cache.h): DIR/<key>.kplan, one engine plan per key.
//
//   key = hash(segment ONNX bytes, BuildConfig::Fingerprint() (precision, batch, workspace,
//              shapes), calibration table, backend, device fingerprint, kiln version)
//
// Files are plans (engine/plan.h: checksummed, fingerprinted). A file that fails its checksum,
// is truncated, or whose header does not match the key's segment/config/device/version is
// logged, counted (disk_rejected) and treated as a miss: the engine is rebuilt and the file
// overwritten — it is never executed. Writes go to a temporary file in DIR, then rename, so
// readers (other processes included) see a whole file or none. A hit sets the file's mtime to
// now; after each write the least recently used files are removed until the directory's plans
// fit KILN_ENGINE_CACHE_MAX_BYTES (default 4 GiB).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "engine/engine_cache.h"

namespace kiln {

class DiskEngineCache {
 public:
  // `dir` is created when missing; an unusable dir is an error naming it.
  static StatusOr<DiskEngineCache> Open(const std::string& dir);

  static std::string Key(uint64_t segment_fnv, const BuildConfig& config,
                         const std::string& calibration, const Backend& backend);
  std::string PathOf(const std::string& key) const;
  const std::string& dir() const { return dir_; }
  int64_t max_bytes() const { return max_bytes_; }

  // A plan of the cache that passes ReadPlan and CheckPlanHeader(want, base) for `key`; a
  // rejected file is logged (naming `who`, the node or segment) and counted. nullopt on miss.
  struct Hit {
    std::string plan;     // the file's bytes
    std::string payload;  // the backend payload inside
    BuildConfig config;   // the plan's build config
  };
  std::optional<Hit> Load(const std::string& key, const PlanExpectation& want,
                          const BuildConfig& base, const std::string& who) const;
  // Writes `plan` under `key` (temporary file + rename), then enforces the size cap.
  Status Store(const std::string& key, std::string_view plan) const;
  // Logs and counts a file whose plan passed the checks but that the backend refused.
  void Reject(const std::string& key, const std::string& who, const std::string& why) const;

 private:
  DiskEngineCache(std::string dir, int64_t max_bytes)
      : dir_(std::move(dir)), max_bytes_(max_bytes) {}
  void EnforceCap() const;

  std::string dir_;
  int64_t max_bytes_;
};

}  // namespace kiln
