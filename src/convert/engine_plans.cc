#include "convert/engine_plans.h"

#include <chrono>

#include "convert/segment_hash.h"
#include "core/logging.h"

namespace kiln {

PlanCache PlanCache::Open(const std::string& dir) {
  PlanCache c;
  const std::string resolved = ResolveEngineCacheDir(dir);
  if (resolved.empty()) return c;
  auto disk = DiskEngineCache::Open(resolved);
  if (!disk.ok()) {
    KILN_LOG(WARNING) << disk.status().message() << "; converting without the engine cache";
    return c;
  }
  c.disk_ = std::move(disk).value();
  return c;
}

std::optional<std::string> PlanCache::Find(const Backend& backend, const Graph& segment,
                                           uint64_t fnv, const BuildConfig& config,
                                           const std::string& calibration) const {
  if (!disk_) return std::nullopt;
  PlanExpectation want;
  want.backend = &backend;
  want.segment_fnv = fnv;
  want.num_inputs = segment.inputs.size();
  want.build_config = config.Fingerprint();
  auto hit = disk_->Load(DiskEngineCache::Key(fnv, config, calibration, backend), want, config,
                         "segment '" + segment.name + "'");
  if (!hit) return std::nullopt;
  return std::move(hit->plan);
}

void PlanCache::Put(const Backend& backend, uint64_t fnv, const BuildConfig& config,
                    const std::string& calibration, const std::string& plan) const {
  if (!disk_) return;
  Status st = disk_->Store(DiskEngineCache::Key(fnv, config, calibration, backend), plan);
  if (!st.ok()) {
    KILN_LOG(WARNING) << st.message() << " (the engine is built, just not cached)";
  }
}

StatusOr<uint64_t> SegmentFnv(const Graph& segment) { return SegmentContentHash(segment); }

StatusOr<BuiltPlan> BuildOrFetchPlan(const Backend& backend, const Graph& segment, uint64_t fnv,
                                     const BuildConfig& config, const PlanCache& cache,
                                     const std::string& calibration) {
  BuiltPlan r;
  if (auto plan = cache.Find(backend, segment, fnv, config, calibration)) {
    r.plan = std::move(*plan);
    r.from_cache = true;
    return r;
  }
  const auto t0 = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, backend.Build(segment, config));
  KILN_ASSIGN_OR_RETURN(r.plan, MakePlan(backend, *engine, segment, fnv, config));
  r.build_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  cache.Put(backend, fnv, config, calibration, r.plan);
  return r;
}

StatusOr<std::vector<std::vector<int64_t>>> SegmentShapesAtBatch(const Graph& segment,
                                                                 int64_t batch) {
  std::vector<std::vector<int64_t>> shapes;
  for (const auto& in : segment.inputs) {
    const ValueInfo* vi = segment.FindValueInfo(in);
    if (vi == nullptr || !vi->shape.rank_known() || vi->shape.rank() == 0) {
      return FailedPrecondition("input '" + in + "' of segment '" + segment.name +
                                "' has no known rank and batch dimension");
    }
    std::vector<int64_t> dims = vi->shape.dims();
    for (size_t d = 1; d < dims.size(); ++d) {
      if (dims[d] < 0) {
        return FailedPrecondition("input '" + in + "' of segment '" + segment.name + "' is " +
                                  vi->shape.ToString() + ": its non-batch dimensions are unknown");
      }
    }
    dims[0] = batch;
    shapes.push_back(std::move(dims));
  }
  return shapes;
}

std::string BuildBatchPlans(const Backend& backend, const Graph& segment, const BuildConfig& base,
                            const std::vector<int64_t>& batches, const PlanCache& cache,
                            std::vector<std::string>* plans) {
  if (batches.empty()) return "";
  auto fnv = SegmentFnv(segment);
  if (!fnv.ok()) return "; no engines built ahead: " + fnv.status().message();
  std::string built, failed;
  for (int64_t b : batches) {
    auto shapes = SegmentShapesAtBatch(segment, b);
    StatusOr<BuiltPlan> plan = shapes.status();
    if (shapes.ok()) {
      BuildConfig config = base;
      config.input_shapes = *shapes;
      config.exact_shapes = true;
      plan = BuildOrFetchPlan(backend, segment, *fnv, config, cache);
    }
    if (plan.ok()) {
      plans->push_back(std::move(plan->plan));
      built += (built.empty() ? "" : ", ") + std::to_string(b);
    } else {
      KILN_LOG(WARNING) << "segment '" << segment.name << "': no engine built ahead for batch " << b
                        << ": " << plan.status().message();
      failed += "; batch " + std::to_string(b) + " not built ahead: " + plan.status().message();
    }
  }
  return (built.empty() ? "" : "; engines built ahead for batches " + built) + failed;
}

}  // namespace kiln
