// Engine caches (kiln/engine_cache.h; docs/design.md "Engine caches"): the in-memory LRU with
// build-once semantics, the process-wide registry that shares one cache per EngineOp between
// Sessions, and the plan helpers both the runtime and the disk cache use.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.h"
#include "engine/plan.h"
#include "kiln/engine_cache.h"

namespace kiln {

using SharedEngine = std::shared_ptr<const Engine>;

// Process-wide counters (kiln/engine_cache.h), incremented by the caches.
enum class CacheEvent {
  kBuild,
  kHit,
  kMiss,
  kEviction,
  kFailedBuild,
  kFailureHit,
  kDiskHit,
  kDiskMiss,
  kDiskWrite,
  kDiskRejected,
  kDiskEviction
};
void CountCacheEvent(CacheEvent e);

// An LRU of engines keyed by text (BuildConfig::Fingerprint() of the exact shapes, for the
// EngineOp's cache). GetOrBuild builds a missing key once: concurrent callers asking for the
// same key wait for that build. A failed build is remembered with its message and never
// retried for that key (failures do not count against the capacity). Engines are shared_ptrs:
// an evicted engine lives on while a run still uses it. Thread-safe.
class EngineLru {
 public:
  // `count_globally`: report hits/misses/evictions/failures to the process-wide counters.
  explicit EngineLru(size_t capacity, bool count_globally = true)
      : capacity_(capacity < 1 ? 1 : capacity), count_globally_(count_globally) {}

  struct Result {
    SharedEngine engine;  // null on failure
    std::string failure;  // the remembered build failure
    bool built = false;   // this call ran `build` (a miss)
  };
  using BuildFn = std::function<StatusOr<SharedEngine>()>;
  Result GetOrBuild(const std::string& key, const BuildFn& build);
  // Adds (or replaces) an engine without a build, as most recently used.
  void Insert(const std::string& key, SharedEngine engine);
  // Keys, most recently used first.
  std::vector<std::string> Keys() const;
  size_t size() const;
  size_t capacity() const { return capacity_; }

  struct Stats {
    int64_t hits = 0, misses = 0, builds = 0, failed_builds = 0, failure_hits = 0, evictions = 0;
  };
  Stats stats() const;

 private:
  void InsertLocked(const std::string& key, SharedEngine engine);
  void Count(CacheEvent e) const {
    if (count_globally_) CountCacheEvent(e);
  }

  const size_t capacity_;
  const bool count_globally_;
  mutable std::mutex mu_;
  std::condition_variable built_;
  std::list<std::pair<std::string, SharedEngine>> lru_;  // front = most recent
  std::map<std::string, std::list<std::pair<std::string, SharedEngine>>::iterator> index_;
  std::set<std::string> building_;
  std::map<std::string, std::string> failures_;
  Stats stats_;
};

// The state one kiln.EngineOp shares between every Session of the process that runs it:
// run-time engines (LRU of max_cached_engines_count) and the deserialized embedded plans
// (pinned: never evicted).
struct EngineOpCache {
  explicit EngineOpCache(size_t capacity) : runtime(capacity), pinned(1u << 20, false) {}
  EngineLru runtime;
  EngineLru pinned;
};

// The cache registered under `id` (node name + segment content hash + base build config), made
// with `capacity` when no live Session holds one. Entries are freed when the last holder drops
// its shared_ptr.
std::shared_ptr<EngineOpCache> AcquireEngineOpCache(const std::string& id, size_t capacity);
// How many registry entries are alive (tests: freed when no Session uses them).
size_t LiveEngineOpCaches();

// 64-bit FNV-1a as HashBytes (engine/plan.h) but streaming: HashBytes(a + b) ==
// FnvHex(FnvUpdate(FnvUpdate(kFnvOffset, a), b)). Lets the content hash of a segment with
// any build config be computed from the segment's bytes hashed once.
inline constexpr uint64_t kFnvOffset = 1469598103934665603ull;
uint64_t FnvUpdate(uint64_t state, std::string_view bytes);
std::string FnvHex(uint64_t state);

// What a plan must match to be run for a node: the checks shared by embedded plans, plans of
// `cached_engines` and disk-cache files.
struct PlanExpectation {
  const Backend* backend = nullptr;
  uint64_t segment_fnv = 0;  // FnvUpdate(kFnvOffset, segment ONNX bytes)
  size_t num_inputs = 0;
  std::string build_config;  // expected BuildConfig::Fingerprint(); empty: any
};
// OK, or why the plan does not belong here (backend, kiln version, device, inputs, content
// hash, build config). `config` receives the plan's BuildConfig (precision, input shapes and
// exact flag from the header; batch/workspace from `base`).
Status CheckPlanHeader(const PlanHeader& h, const PlanExpectation& want, const BuildConfig& base,
                       BuildConfig* config);

// A plan for an engine built for `segment` with `config` (the converter's BuildPlan header).
StatusOr<std::string> MakePlan(const Backend& backend, const Engine& engine, const Graph& segment,
                               uint64_t segment_fnv, const BuildConfig& config);

}  // namespace kiln
