#include "engine/engine_loader.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "core/logging.h"

namespace kiln {
namespace {

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

PlanExpectation ExpectationFor(const EngineSource& src, const std::string& build_config) {
  PlanExpectation want;
  want.backend = src.backend;
  want.segment_fnv = src.segment_fnv;
  want.num_inputs = src.segment->inputs.size();
  want.build_config = build_config;
  return want;
}

// 0 when `dims` does not fit an engine built for `config`, else the engine's batch (smaller
// is a better fit); exact matches rank first.
int64_t FitRank(const BuildConfig& config, const std::vector<std::vector<int64_t>>& dims) {
  const auto& built = config.input_shapes;
  if (built.size() != dims.size()) return 0;
  if (built == dims) return 1;
  if (config.exact_shapes) return 0;
  int64_t batch = 0;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i].size() != built[i].size() || dims[i].empty()) return 0;
    if (!std::equal(dims[i].begin() + 1, dims[i].end(), built[i].begin() + 1)) return 0;
    if (dims[i][0] < 1 || dims[i][0] > built[i][0]) return 0;
    batch = std::max(batch, built[i][0]);
  }
  return 2 + batch;
}

}  // namespace

StatusOr<SharedEngine> LoadOrBuildEngine(const EngineSource& src, const BuildConfig& config) {
  if (src.backend == nullptr || src.segment == nullptr) {
    return FailedPrecondition(src.who + ": no backend to build the engine");
  }
  std::optional<DiskEngineCache> disk;
  std::string key;
  const auto t0 = std::chrono::steady_clock::now();
  if (!src.cache_dir.empty()) {
    auto opened = DiskEngineCache::Open(src.cache_dir);
    if (!opened.ok()) {
      KILN_LOG(WARNING) << src.who << ": " << opened.status().message()
                        << "; building without the disk cache";
    } else {
      disk = std::move(opened).value();
      key = DiskEngineCache::Key(src.segment_fnv, config, src.calibration, *src.backend);
      if (auto hit =
              disk->Load(key, ExpectationFor(src, config.Fingerprint()), src.base, src.who)) {
        auto engine = src.backend->Deserialize(hit->payload, *src.segment, hit->config);
        if (engine.ok()) {
          KILN_LOG(INFO) << src.who << ": engine for " << config.Fingerprint()
                         << " loaded from the engine cache (" << disk->PathOf(key) << ") in "
                         << MsSince(t0) << " ms";
          return SharedEngine(std::move(engine).value());
        }
        disk->Reject(key, src.who, engine.status().message());
      }
    }
  }
  CountCacheEvent(CacheEvent::kBuild);
  auto built = src.backend->Build(*src.segment, config);
  if (!built.ok()) return built.status();
  SharedEngine engine(std::move(built).value());
  const double build_ms = MsSince(t0);
  if (disk) {
    auto plan = MakePlan(*src.backend, *engine, *src.segment, src.segment_fnv, config);
    Status st = plan.ok() ? disk->Store(key, *plan) : plan.status();
    if (!st.ok()) {
      KILN_LOG(WARNING) << src.who
                        << ": the engine was built but not cached on disk: " << st.message();
    }
  }
  KILN_LOG(INFO) << src.who << ": engine for " << config.Fingerprint() << " built in " << build_ms
                 << " ms"
                 << (disk ? " (+ " + std::to_string(MsSince(t0) - build_ms) +
                                " ms writing the engine cache)"
                          : std::string());
  return engine;
}

std::vector<PinnedEngine> LoadPinnedPlans(const std::vector<std::string>& plans,
                                          const EngineSource& src, EngineOpCache* cache) {
  std::vector<PinnedEngine> out;
  for (size_t k = 0; k < plans.size(); ++k) {
    const std::string which = src.who + ": cached_engines[" + std::to_string(k) + "]";
    auto plan = ReadPlan(plans[k]);
    BuildConfig config;
    Status st = plan.ok() ? CheckPlanHeader(plan->first, ExpectationFor(src, ""), src.base, &config)
                          : plan.status();
    if (st.ok()) {
      auto r = cache->pinned.GetOrBuild(
          "plan|" + plan->first.content_hash, [&]() -> StatusOr<SharedEngine> {
            KILN_ASSIGN_OR_RETURN(std::unique_ptr<Engine> e,
                                  src.backend->Deserialize(plan->second, *src.segment, config));
            return SharedEngine(std::move(e));
          });
      if (r.engine != nullptr) {
        out.push_back({config, r.engine});
        continue;
      }
      st = FailedPrecondition(r.failure);
    }
    KILN_LOG(WARNING) << which << ": plan rejected: " << st.message();
  }
  return out;
}

SharedEngine PickPinned(const std::vector<PinnedEngine>& pinned,
                        const std::vector<std::vector<int64_t>>& dims) {
  std::vector<std::pair<int64_t, const PinnedEngine*>> fits;
  for (const auto& p : pinned) {
    if (int64_t rank = FitRank(p.config, dims); rank > 0) fits.emplace_back(rank, &p);
  }
  std::sort(fits.begin(), fits.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [rank, p] : fits) {
    if (p->engine->Accepts(dims)) return p->engine;
  }
  return nullptr;
}

}  // namespace kiln
