#include "engine/engine_cache.h"

#include <array>
#include <atomic>
#include <cstdlib>

namespace kiln {
namespace {

std::array<std::atomic<int64_t>, 11>& Counters() {
  static std::array<std::atomic<int64_t>, 11> counters{};
  return counters;
}

std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, std::weak_ptr<EngineOpCache>>& Registry() {
  static auto* registry = new std::map<std::string, std::weak_ptr<EngineOpCache>>();
  return *registry;
}

}  // namespace

void CountCacheEvent(CacheEvent e) { ++Counters()[static_cast<size_t>(e)]; }

EngineCacheCounters GetEngineCacheCounters() {
  auto& c = Counters();
  auto at = [&c](CacheEvent e) { return c[static_cast<size_t>(e)].load(); };
  EngineCacheCounters r;
  r.builds = at(CacheEvent::kBuild);
  r.hits = at(CacheEvent::kHit);
  r.misses = at(CacheEvent::kMiss);
  r.evictions = at(CacheEvent::kEviction);
  r.failed_builds = at(CacheEvent::kFailedBuild);
  r.failure_hits = at(CacheEvent::kFailureHit);
  r.disk_hits = at(CacheEvent::kDiskHit);
  r.disk_misses = at(CacheEvent::kDiskMiss);
  r.disk_writes = at(CacheEvent::kDiskWrite);
  r.disk_rejected = at(CacheEvent::kDiskRejected);
  r.disk_evictions = at(CacheEvent::kDiskEviction);
  return r;
}

std::string FormatEngineCacheCounters(const EngineCacheCounters& c) {
  std::string s;
  auto add = [&s](const char* name, int64_t v) {
    if (v != 0) s += (s.empty() ? "" : ", ") + std::string(name) + " " + std::to_string(v);
  };
  add("builds", c.builds);
  add("hits", c.hits);
  add("misses", c.misses);
  add("evictions", c.evictions);
  add("failed builds", c.failed_builds);
  add("failure hits", c.failure_hits);
  add("disk hits", c.disk_hits);
  add("disk misses", c.disk_misses);
  add("disk writes", c.disk_writes);
  add("disk rejected", c.disk_rejected);
  add("disk evictions", c.disk_evictions);
  return s.empty() ? "none" : s;
}

// ------------------------------------------------------------------ EngineLru

EngineLru::Result EngineLru::GetOrBuild(const std::string& key, const BuildFn& build) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (auto f = failures_.find(key); f != failures_.end()) {
      ++stats_.failure_hits;
      Count(CacheEvent::kFailureHit);
      return {nullptr, f->second, false};
    }
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      ++stats_.hits;
      Count(CacheEvent::kHit);
      return {it->second->second, "", false};
    }
    if (!building_.count(key)) break;
    built_.wait(lock);  // another caller builds this key
  }
  ++stats_.misses;
  Count(CacheEvent::kMiss);
  building_.insert(key);
  lock.unlock();
  StatusOr<SharedEngine> engine = build();
  lock.lock();
  building_.erase(key);
  Result r;
  r.built = true;
  if (engine.ok() && *engine != nullptr) {
    ++stats_.builds;
    InsertLocked(key, *engine);
    r.engine = std::move(engine).value();
  } else {
    ++stats_.failed_builds;
    Count(CacheEvent::kFailedBuild);
    r.failure = engine.ok() ? "the build returned no engine" : engine.status().message();
    failures_[key] = r.failure;
  }
  lock.unlock();
  built_.notify_all();
  return r;
}

void EngineLru::Insert(const std::string& key, SharedEngine engine) {
  std::lock_guard<std::mutex> lock(mu_);
  failures_.erase(key);
  InsertLocked(key, std::move(engine));
}

void EngineLru::InsertLocked(const std::string& key, SharedEngine engine) {
  if (auto it = index_.find(key); it != index_.end()) {
    it->second->second = std::move(engine);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.emplace_front(key, std::move(engine));
  index_[key] = lru_.begin();
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
    ++stats_.evictions;
    Count(CacheEvent::kEviction);
  }
}

std::vector<std::string> EngineLru::Keys() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> keys;
  for (const auto& [k, e] : lru_) keys.push_back(k);
  return keys;
}

size_t EngineLru::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_.size();
}

EngineLru::Stats EngineLru::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

// ------------------------------------------------------------------ registry

std::shared_ptr<EngineOpCache> AcquireEngineOpCache(const std::string& id, size_t capacity) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto& reg = Registry();
  for (auto it = reg.begin(); it != reg.end();) {  // drop entries no Session holds any more
    it = it->second.expired() ? reg.erase(it) : std::next(it);
  }
  if (auto it = reg.find(id); it != reg.end()) {
    if (auto live = it->second.lock()) return live;
  }
  auto cache = std::make_shared<EngineOpCache>(capacity);
  reg[id] = cache;
  return cache;
}

size_t LiveEngineOpCaches() {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  size_t n = 0;
  for (const auto& [id, w] : Registry()) n += w.expired() ? 0 : 1;
  return n;
}

// ------------------------------------------------------------------ hashing and plans

uint64_t FnvUpdate(uint64_t h, std::string_view bytes) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string FnvHex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

Status CheckPlanHeader(const PlanHeader& h, const PlanExpectation& want, const BuildConfig& base,
                       BuildConfig* config) {
  if (want.backend == nullptr) return FailedPrecondition("no backend to run the plan");
  if (h.backend != want.backend->name()) {
    return FailedPrecondition("built for backend '" + h.backend + "', this node uses '" +
                              want.backend->name() + "'");
  }
  if (h.kiln_version != KILN_VERSION) {
    return FailedPrecondition("built by kiln " + h.kiln_version + ", this is kiln " + KILN_VERSION);
  }
  const std::string device = want.backend->DeviceFingerprint();
  if (h.device_fingerprint != device) {
    return FailedPrecondition("built for another device (" + h.device_fingerprint +
                              "; this machine: " + device + ")");
  }
  if (h.input_specs.size() != want.num_inputs) {
    return FailedPrecondition("it has " + std::to_string(h.input_specs.size()) +
                              " inputs, the node " + std::to_string(want.num_inputs));
  }
  BuildConfig c = base;
  KILN_ASSIGN_OR_RETURN(c.precision, ParsePrecision(h.precision));
  c.input_shapes.clear();
  for (const auto& spec : h.input_specs) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, DimsOfSpec(spec));
    c.input_shapes.push_back(std::move(dims));
  }
  c.exact_shapes = h.build_config.find(",exact=1,") != std::string::npos;
  if (c.Fingerprint() != h.build_config ||
      (!want.build_config.empty() && h.build_config != want.build_config)) {
    return FailedPrecondition(
        "its build config '" + h.build_config + "' does not match the node's '" +
        (want.build_config.empty() ? c.Fingerprint() : want.build_config) + "'");
  }
  if (FnvHex(FnvUpdate(want.segment_fnv, h.build_config)) != h.content_hash) {
    return FailedPrecondition("its content hash does not match the node's native segment");
  }
  *config = std::move(c);
  return Status::OK();
}

StatusOr<std::string> MakePlan(const Backend& backend, const Engine& engine, const Graph& segment,
                               uint64_t segment_fnv, const BuildConfig& config) {
  KILN_ASSIGN_OR_RETURN(std::string payload, engine.SerializePayload());
  PlanHeader h;
  h.kiln_version = KILN_VERSION;
  h.backend = backend.name();
  h.device_fingerprint = backend.DeviceFingerprint();
  h.precision = PrecisionName(config.precision);
  h.build_config = config.Fingerprint();
  h.content_hash = FnvHex(FnvUpdate(segment_fnv, h.build_config));
  auto spec = [&segment](const std::string& value, const std::string& dims) {
    const ValueInfo* vi = segment.FindValueInfo(value);
    return std::string(vi != nullptr ? DataTypeName(vi->dtype) : "?") + dims;
  };
  for (size_t i = 0; i < segment.inputs.size() && i < config.input_shapes.size(); ++i) {
    h.input_specs.push_back(spec(segment.inputs[i], DimsToString(config.input_shapes[i])));
  }
  for (const auto& out : segment.outputs) {
    const ValueInfo* vi = segment.FindValueInfo(out);
    h.output_specs.push_back(spec(out, vi != nullptr ? vi->shape.ToString() : ""));
  }
  return WritePlan(h, payload);
}

}  // namespace kiln
