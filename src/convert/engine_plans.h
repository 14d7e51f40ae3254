// Plans the converter builds (static engines, cached_engine_batches, BuildEngines' shape
// profiles), through the disk engine cache (engine/disk_cache.h) when one is configured.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/disk_cache.h"

namespace kiln {

// The disk cache of one conversion: ConversionParams::engine_cache_dir, else KILN_ENGINE_CACHE,
// else none. An unusable directory is logged once and the conversion builds without it.
class PlanCache {
 public:
  static PlanCache Open(const std::string& dir);
  bool enabled() const { return disk_.has_value(); }
  // The cached plan for (segment, config), validated (a bad file is logged and ignored).
  std::optional<std::string> Find(const Backend& backend, const Graph& segment, uint64_t fnv,
                                  const BuildConfig& config, const std::string& calibration) const;
  void Put(const Backend& backend, uint64_t fnv, const BuildConfig& config,
           const std::string& calibration, const std::string& plan) const;

 private:
  std::optional<DiskEngineCache> disk_;
};

// SegmentContentHash(segment) (convert/segment_hash.h): the content hash every plan check and
// cache key uses.
StatusOr<uint64_t> SegmentFnv(const Graph& segment);

struct BuiltPlan {
  std::string plan;
  double build_ms = 0;  // 0 when it came from the cache
  bool from_cache = false;
};
// The plan for `config`: from `cache` when it has it, else built (and stored in `cache`).
StatusOr<BuiltPlan> BuildOrFetchPlan(const Backend& backend, const Graph& segment, uint64_t fnv,
                                     const BuildConfig& config, const PlanCache& cache,
                                     const std::string& calibration = "");

// The segment's input shapes with dimension 0 = `batch` (other dimensions must be known), or
// why not.
StatusOr<std::vector<std::vector<int64_t>>> SegmentShapesAtBatch(const Graph& segment,
                                                                 int64_t batch);

// Dynamic mode's cached_engine_batches: one exact-shape plan per batch, appended to `plans`.
// Returns the summary's note ("; engines built ahead for batches 1, 8" or why not).
std::string BuildBatchPlans(const Backend& backend, const Graph& segment, const BuildConfig& base,
                            const std::vector<int64_t>& batches, const PlanCache& cache,
                            std::vector<std::string>* plans);

}  // namespace kiln
