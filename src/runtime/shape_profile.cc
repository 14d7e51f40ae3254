// ConvertedModel::BuildEngines (kiln/convert.h): TF2's converter.build(input_fn).
//
//   copy of the graph with record_shapes=1 on every EngineOp -> Session -> run each sample
//   (EngineOps run their native segments and report their input shapes) -> per EngineOp, the
//   engines the strategy asks for (Range: one per distinct non-batch shape at the largest
//   batch seen; Optimal: one per exact shape) -> plans appended to the EngineOp's
//   cached_engines attribute (pinned at run time, engine/engine_loader.h).
//
// Only one BuildEngines records at a time in a process (a global mutex); other Sessions are
// not affected by a recording run.
#include "runtime/shape_profile.h"

#include <map>
#include <mutex>
#include <set>

#include "convert/convert_internal.h"
#include "convert/engine_op_def.h"
#include "convert/engine_plans.h"
#include "core/logging.h"
#include "engine/plan.h"

namespace kiln {
namespace {

using ShapeSet = std::set<std::vector<std::vector<int64_t>>>;

std::mutex& RecordingMutex() {  // one BuildEngines at a time
  static std::mutex mu;
  return mu;
}
std::mutex& ShapesMutex() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, ShapeSet>& RecordedShapes() {
  static auto* shapes = new std::map<std::string, ShapeSet>();
  return *shapes;
}

const char* StrategyName(ProfileStrategy s) {
  switch (s) {
    case ProfileStrategy::kRange:
      return "Range";
    case ProfileStrategy::kOptimal:
      return "Optimal";
    case ProfileStrategy::kRangeOptimal:
      return "Range+Optimal";
  }
  return "?";
}

// The build configs `strategy` asks for, given the shapes one EngineOp saw.
std::vector<BuildConfig> ProfileConfigs(const ShapeSet& seen, const BuildConfig& base,
                                        ProfileStrategy strategy) {
  std::vector<BuildConfig> configs;
  if (strategy != ProfileStrategy::kOptimal) {
    // Range: group by the non-batch dimensions; the largest batch of each group.
    std::map<std::vector<std::vector<int64_t>>, std::vector<std::vector<int64_t>>> groups;
    for (const auto& dims : seen) {
      std::vector<std::vector<int64_t>> rest;
      bool batched = true;
      for (const auto& d : dims) {
        if (d.empty()) batched = false;
        rest.emplace_back(d.empty() ? d.begin() : d.begin() + 1, d.end());
      }
      if (!batched) continue;  // a scalar input has no batch: Optimal covers it
      auto& best = groups[rest];
      if (best.empty() || dims[0][0] > best[0][0]) {
        best = dims;
        for (size_t i = 1; i < best.size(); ++i) best[i][0] = std::max(best[i][0], dims[i][0]);
      }
    }
    for (const auto& [rest, dims] : groups) {
      BuildConfig c = base;
      c.input_shapes = dims;
      c.exact_shapes = false;
      configs.push_back(std::move(c));
    }
  }
  if (strategy != ProfileStrategy::kRange) {
    for (const auto& dims : seen) {
      BuildConfig c = base;
      c.input_shapes = dims;
      c.exact_shapes = true;
      configs.push_back(std::move(c));
    }
  }
  return configs;
}

}  // namespace

void RecordEngineOpShapes(const std::string& node, const std::vector<std::vector<int64_t>>& dims) {
  std::lock_guard<std::mutex> lock(ShapesMutex());
  RecordedShapes()[node].insert(dims);
}

Status ConvertedModel::BuildEngines(const std::vector<Feeds>& samples, ProfileStrategy strategy) {
  if (samples.empty()) return InvalidArgument("BuildEngines: no samples given");
  Graph& graph = impl_->graph;
  std::lock_guard<std::mutex> recording(RecordingMutex());
  {
    std::lock_guard<std::mutex> lock(ShapesMutex());
    RecordedShapes().clear();
  }
  Graph copy = graph;
  int num_ops = 0;
  for (auto& node : copy.nodes) {
    if (node.domain != kEngineOpDomain || node.op_type != kEngineOpType) continue;
    node.attrs["record_shapes"] = Attr::Int(1);
    ++num_ops;
  }
  if (num_ops == 0) return FailedPrecondition("BuildEngines: the converted graph has no engines");
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::FromGraph(std::move(copy)));
  for (size_t k = 0; k < samples.size(); ++k) {
    auto r = session->Run(samples[k]);
    if (!r.ok()) return r.status().WithContext("BuildEngines: sample " + std::to_string(k));
  }
  session.reset();
  std::map<std::string, ShapeSet> seen;
  {
    std::lock_guard<std::mutex> lock(ShapesMutex());
    seen.swap(RecordedShapes());
  }

  const PlanCache cache = PlanCache::Open("");
  for (auto& node : graph.nodes) {
    if (node.domain != kEngineOpDomain || node.op_type != kEngineOpType) continue;
    EngineSummary* summary = nullptr;
    for (auto& e : impl_->summary.engines) {
      if (e.name == node.name) summary = &e;
    }
    auto attr = [&node](const char* name) { return node.FindAttr(name); };
    const auto it = seen.find(node.name);
    if (it == seen.end()) {
      if (summary) summary->status += "; no shape profile (the samples never reached it)";
      continue;
    }
    const Attr* fn_attr = attr("segment_func");
    auto fn = fn_attr != nullptr ? graph.functions.find(fn_attr->s) : graph.functions.end();
    if (fn == graph.functions.end() || fn->second == nullptr) {
      return InvalidArgument(node.Describe() + ": segment_func is not in the function library");
    }
    const Backend* backend = ResolveBackend(attr("backend") ? attr("backend")->s : "cpu");
    if (backend == nullptr) return FailedPrecondition(node.Describe() + ": unknown backend");
    BuildConfig base;
    if (const Attr* p = attr("precision_mode")) {
      KILN_ASSIGN_OR_RETURN(base.precision, ParsePrecision(p->s));
    }
    if (const Attr* b = attr("max_batch_size")) base.max_batch_size = b->i;
    if (const Attr* w = attr("workspace_size_bytes")) base.max_workspace_size_bytes = w->i;
    if (const Attr* f = attr("fp32_layers")) base.fp32_layers = f->strings;
    const std::string calibration = attr("calibration_data") ? attr("calibration_data")->s : "";
    KILN_ASSIGN_OR_RETURN(uint64_t fnv, SegmentFnv(*fn->second));

    std::set<std::string> have;  // build configs already embedded
    std::vector<std::string> plans;
    if (const Attr* c = attr("cached_engines")) plans = c->strings;
    for (const auto& bytes : plans) {
      if (auto p = ReadPlan(bytes); p.ok()) have.insert(p->first.build_config);
    }
    if (const Attr* e = attr("serialized_engine"); e != nullptr && !e->s.empty()) {
      if (auto p = ReadPlan(e->s); p.ok()) have.insert(p->first.build_config);
    }
    int built = 0, failed = 0;
    for (const BuildConfig& config : ProfileConfigs(it->second, base, strategy)) {
      if (!have.insert(config.Fingerprint()).second) continue;
      auto plan = BuildOrFetchPlan(*backend, *fn->second, fnv, config, cache, calibration);
      if (!plan.ok()) {
        ++failed;
        KILN_LOG(WARNING) << node.Describe() << ": shape profile engine for "
                          << config.Fingerprint() << " not built: " << plan.status().message();
        continue;
      }
      plans.push_back(std::move(plan->plan));
      ++built;
    }
    node.attrs["cached_engines"] = Attr::Strings(std::move(plans));
    if (summary != nullptr) {
      summary->status += "; shape profiles (" + std::string(StrategyName(strategy)) + ", " +
                         std::to_string(it->second.size()) +
                         " shapes seen): " + std::to_string(built) + " engines built" +
                         (failed ? ", " + std::to_string(failed) + " failed" : "");
    }
  }
  return Status::OK();
}

}  // namespace kiln
