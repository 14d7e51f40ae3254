// Where an EngineOp's engines come from (docs/design.md "Engine caches"): plans embedded at
// conversion time (pinned), the disk engine cache, or a build by the backend. The EngineOp
// kernel (src/runtime/engine_op.cc) calls these through its shared EngineOpCache.
#pragma once

#include <string>
#include <vector>

#include "engine/disk_cache.h"
#include "engine/engine_cache.h"

namespace kiln {

// Everything needed to load or build engines for one EngineOp's native segment.
struct EngineSource {
  const Backend* backend = nullptr;
  const Graph* segment = nullptr;
  uint64_t segment_fnv = 0;  // FnvUpdate(kFnvOffset, segment ONNX bytes)
  std::string calibration;   // the node's calibration_data (part of the disk key)
  std::string cache_dir;     // disk engine cache; empty: none
  std::string who;           // the node, for messages
  BuildConfig base;          // precision, batch, workspace (shapes are per engine)
};

// The engine for `config`: from the disk cache when it holds a valid plan for it (a rejected
// file is logged and rebuilt), else built by the backend (counted as a build) and, with a
// cache dir, written to the disk cache.
StatusOr<SharedEngine> LoadOrBuildEngine(const EngineSource& src, const BuildConfig& config);

// A plan's engine, deserialized once per process per EngineOp (EngineOpCache::pinned).
struct PinnedEngine {
  BuildConfig config;
  SharedEngine engine;
};
// Checks and deserializes `plans` (the cached_engines attribute); a plan that does not belong
// here is logged with its reason and skipped, never executed.
std::vector<PinnedEngine> LoadPinnedPlans(const std::vector<std::string>& plans,
                                          const EngineSource& src, EngineOpCache* cache);
// The pinned engine for `dims`: one built for exactly these shapes, else the one with the
// smallest batch among those whose non-batch dimensions match and that accept the batch.
SharedEngine PickPinned(const std::vector<PinnedEngine>& pinned,
                        const std::vector<std::vector<int64_t>>& dims);

}  // namespace kiln
