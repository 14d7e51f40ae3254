#include "runtime/engine_op.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>

#include "convert/engine_op_def.h"
#include "convert/segment_hash.h"
#include "core/logging.h"
#include "engine/engine_loader.h"
#include "engine/plan.h"
#include "io/onnx/onnx_export.h"
#include "ops/base/kernel_context.h"
#include "runtime/executor.h"
#include "runtime/calibration_flow.h"
#include "runtime/shape_profile.h"

namespace kiln {
namespace {

bool NativeFallbackAllowed() {
  const char* v = std::getenv("KILN_ALLOW_NATIVE_FALLBACK");
  return v == nullptr || std::string(v) != "0";
}

std::string DimsList(const std::vector<std::vector<int64_t>>& dims) {
  std::string s;
  for (const auto& d : dims) s += (s.empty() ? "" : ", ") + DimsToString(d);
  return s;
}

// What an EngineOp node says about itself, and its plan checked against this machine.
struct EngineOpSetup {
  std::shared_ptr<const Graph> segment;
  const Backend* backend = nullptr;
  BuildConfig config;  // of the embedded plan, or the base config for runtime builds
  bool allow_build = false;
  int64_t max_cached = 1;
  SharedEngine engine;
  // Engine caches (engine/engine_loader.h): shared with every Session running this node.
  std::shared_ptr<EngineOpCache> cache;
  EngineSource source;
  std::vector<PinnedEngine> pinned;  // the cached_engines attribute's plans
  // ConvertedModel::BuildEngines' recording run: report input shapes, run the native segment.
  bool record_shapes = false;
  // INT8 calibration graph (runtime/calibration_flow.h): the collector's id; empty otherwise.
  std::string calibrate_id;
  std::string name;
  std::vector<std::string> input_specs;
  std::string no_engine_reason;  // why `engine` is null
};

StatusOr<EngineOpSetup> SetUp(const Node& node, const Graph& graph) {
  EngineOpSetup s;
  auto str = [&node](const char* name) { return EngineOpStrAttr(node, name); };
  auto num = [&node](const char* name, int64_t def) { return EngineOpIntAttr(node, name, def); };
  const std::string key = str("segment_func");
  auto fn = graph.functions.find(key);
  if (fn == graph.functions.end() || fn->second == nullptr) {
    return InvalidArgument(node.Describe() + ": segment_func '" + key +
                           "' is not in the model's function library");
  }
  s.segment = fn->second;
  if (s.segment->inputs.size() != node.inputs.size() ||
      s.segment->outputs.size() != node.outputs.size()) {
    return InvalidArgument(node.Describe() + ": its native segment '" + key + "' has " +
                           std::to_string(s.segment->inputs.size()) + " inputs and " +
                           std::to_string(s.segment->outputs.size()) + " outputs, the node " +
                           std::to_string(node.inputs.size()) + " and " +
                           std::to_string(node.outputs.size()));
  }
  s.allow_build = num("allow_build_at_runtime", 0) != 0;
  s.record_shapes = num("record_shapes", 0) != 0;
  s.name = node.name;
  s.max_cached = std::max<int64_t>(1, num("max_cached_engines_count", 1));
  const std::string backend_name = str("backend").empty() ? "cpu" : str("backend");
  s.backend = ResolveBackend(backend_name);
  auto precision = ParsePrecision(str("precision_mode").empty() ? "FP32" : str("precision_mode"));
  s.config.precision = precision.ok() ? *precision : Precision::kFP32;
  s.config.max_batch_size = num("max_batch_size", 1);
  s.config.max_workspace_size_bytes = num("workspace_size_bytes", int64_t{1} << 30);
  if (const Attr* a = node.FindAttr("fp32_layers")) s.config.fp32_layers = a->strings;
  // INT8: calibration_data is the table (ranges into the config) or "calibrate:<id>".
  KILN_RETURN_IF_ERROR(
      ApplyCalibrationData(str("calibration_data"), node.Describe(), &s.config, &s.calibrate_id));
  if (s.backend == nullptr) {
    s.no_engine_reason = "backend '" + backend_name + "' is not built into this kiln";
    return s;
  }
  auto segment_hash = SegmentContentHash(*s.segment);  // convert/segment_hash.h
  if (!segment_hash.ok()) {
    s.no_engine_reason = "the native segment cannot be hashed: " + segment_hash.status().message();
    s.allow_build = false;
    return s;
  }
  s.source.backend = s.backend;
  s.source.segment = s.segment.get();
  s.source.segment_fnv = *segment_hash;
  s.source.calibration = str("calibration_data");
  s.source.cache_dir = ResolveEngineCacheDir(str("engine_cache_dir"));
  s.source.who = node.Describe();
  s.source.base = s.config;
  s.cache = AcquireEngineOpCache(node.name + "|" + FnvHex(s.source.segment_fnv) + "|" +
                                     s.backend->name() + "|" + s.config.Fingerprint() + "|" +
                                     std::to_string(s.max_cached) + "|" +
                                     FnvHex(FnvUpdate(kFnvOffset, s.source.calibration)),
                                 static_cast<size_t>(s.max_cached));
  if (const Attr* cached = node.FindAttr("cached_engines"); cached != nullptr) {
    s.pinned = LoadPinnedPlans(cached->strings, s.source, s.cache.get());
  }
  const std::string bytes = str("serialized_engine");
  if (bytes.empty()) {
    s.no_engine_reason = s.allow_build ? "no engine built yet" : "no engine was built";
    return s;
  }
  auto reject = [&s](const std::string& why) {
    s.no_engine_reason = "plan rejected: " + why;
    return std::move(s);
  };
  auto plan = ReadPlan(bytes);
  if (!plan.ok()) return reject(plan.status().message());
  const PlanHeader& h = plan->first;
  s.input_specs = h.input_specs;
  if (h.backend != s.backend->name()) {
    return reject("built for backend '" + h.backend + "', this node uses '" + s.backend->name() +
                  "'");
  }
  if (h.kiln_version != KILN_VERSION) {
    return reject("built by kiln " + h.kiln_version + ", this is kiln " + KILN_VERSION);
  }
  const std::string device = s.backend->DeviceFingerprint();
  if (h.device_fingerprint != device) {
    return reject("built for another device (" + h.device_fingerprint +
                  "; this machine: " + device + ")");
  }
  if (h.input_specs.size() != node.inputs.size()) {
    return reject("it has " + std::to_string(h.input_specs.size()) + " inputs, the node " +
                  std::to_string(node.inputs.size()));
  }
  BuildConfig config = s.config;
  auto plan_precision = ParsePrecision(h.precision);
  if (!plan_precision.ok()) return reject(plan_precision.status().message());
  config.precision = *plan_precision;
  for (const auto& spec : h.input_specs) {
    auto dims = DimsOfSpec(spec);
    if (!dims.ok()) return reject(dims.status().message());
    config.input_shapes.push_back(*dims);
  }
  if (config.Fingerprint() != h.build_config) {
    return reject("its build config '" + h.build_config + "' does not match the node's '" +
                  config.Fingerprint() + "'");
  }
  if (FnvHex(FnvUpdate(s.source.segment_fnv, h.build_config)) != h.content_hash) {
    return reject("its content hash does not match the node's native segment '" + key + "'");
  }
  // Deserialized once per process for every Session running this node (EngineOpCache::pinned).
  auto deserialize = [&]() -> StatusOr<SharedEngine> {
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<Engine> e,
                          s.backend->Deserialize(plan->second, *s.segment, config));
    return SharedEngine(std::move(e));
  };
  auto pinned = s.cache->pinned.GetOrBuild("plan|" + h.content_hash, deserialize);
  if (pinned.engine == nullptr) return reject(pinned.failure);
  s.engine = pinned.engine;
  s.config = config;
  return s;
}

class EngineOpKernel : public OpKernel {
 public:
  EngineOpKernel(const Node& node, EngineOpSetup setup, Executor native)
      : node_name_(node.Describe()), setup_(std::move(setup)), native_(std::move(native)) {
    for (const auto& out : setup_.segment->outputs) fetch_.push_back(native_.SlotOf(out));
    for (const auto& in : setup_.segment->inputs) feed_.push_back(native_.SlotOf(in));
    if (setup_.engine == nullptr && setup_.no_engine_reason.rfind("plan rejected", 0) == 0) {
      KILN_LOG(WARNING) << node_name_ << ": " << setup_.no_engine_reason;
    }
  }

  // A CUDA EngineOp reads its inputs where they are and may leave its outputs on the GPU.
  bool TakesDeviceTensors() const override {
    return setup_.backend != nullptr && setup_.backend->device() >= 0 &&
           setup_.calibrate_id.empty() && !setup_.record_shapes;
  }

  Status Compute(KernelContext& ctx) const override {
    std::vector<const Tensor*> inputs;
    std::vector<std::vector<int64_t>> dims;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      if (!ctx.has_input(i)) return ctx.Error("input " + std::to_string(i) + " has no value");
      inputs.push_back(&ctx.input(i));
      dims.push_back(ctx.input(i).dims());
    }
    // Device inputs this node's engine cannot read where they are (native fallback, another
    // GPU) are copied to the host here; `host` keeps those copies alive.
    std::vector<Tensor> host(inputs.size());
    auto to_host_except = [&](int device) -> Status {
      for (size_t i = 0; i < inputs.size(); ++i) {
        if (!inputs[i]->on_device() || inputs[i]->device() == device) continue;
        KILN_ASSIGN_OR_RETURN(host[i], inputs[i]->ToHost());
        inputs[i] = &host[i];
      }
      return Status::OK();
    };
    if (!setup_.calibrate_id.empty()) {  // INT8 calibration: native segment + statistics
      std::vector<std::pair<int, Tensor>> feeds;
      for (size_t i = 0; i < inputs.size(); ++i) feeds.emplace_back(feed_[i], *inputs[i]);
      auto outs = RunCalibrationStep(native_, *setup_.segment, setup_.calibrate_id, feeds, fetch_);
      if (!outs.ok()) return outs.status().WithContext(node_name_ + " (calibration)");
      for (size_t o = 0; o < outs->size(); ++o) ctx.SetOutput(static_cast<int>(o), (*outs)[o]);
      return Status::OK();
    }
    std::string reason = "recording input shapes (ConvertedModel::BuildEngines)";
    if (setup_.record_shapes) RecordEngineOpShapes(setup_.name, dims);
    const SharedEngine engine = setup_.record_shapes ? nullptr : FindEngine(dims, &reason);
    if (engine != nullptr) {
      KILN_RETURN_IF_ERROR(to_host_except(engine->device()).WithContext(node_name_));
      std::vector<bool> keep(ctx.num_outputs(), false);
      for (int o = 0; o < ctx.num_outputs(); ++o) keep[o] = ctx.may_keep_on_device(o);
      std::vector<Tensor> outs;
      Status st = engine->ExecutePlaced(inputs, &outs, keep);
      if (!st.ok()) return st.WithContext(node_name_);
      if (outs.size() != static_cast<size_t>(ctx.num_outputs())) {
        return Internal(node_name_ + ": the engine produced " + std::to_string(outs.size()) +
                        " outputs, expected " + std::to_string(ctx.num_outputs()));
      }
      for (size_t o = 0; o < outs.size(); ++o)
        ctx.SetOutput(static_cast<int>(o), std::move(outs[o]));
      return Status::OK();
    }
    if (!setup_.record_shapes && !NativeFallbackAllowed()) {
      return FailedPrecondition(node_name_ + ": no engine can run inputs " + DimsList(dims) + " (" +
                                reason +
                                ") and native fallback is disabled (KILN_ALLOW_NATIVE_FALLBACK=0)");
    }
    if (!setup_.record_shapes && !logged_fallback_.exchange(true)) {
      KILN_LOG(WARNING) << node_name_ << ": running the native segment '" << setup_.segment->name
                        << "' instead of the engine: " << reason;
    }
    KILN_RETURN_IF_ERROR(to_host_except(-1).WithContext(node_name_));
    std::vector<std::pair<int, Tensor>> feeds;
    for (size_t i = 0; i < inputs.size(); ++i) feeds.emplace_back(feed_[i], *inputs[i]);
    auto outs = native_.Run(feeds, fetch_, RunOptions{}, nullptr);
    if (!outs.ok()) return outs.status().WithContext(node_name_ + " (native segment)");
    for (size_t o = 0; o < outs->size(); ++o) ctx.SetOutput(static_cast<int>(o), (*outs)[o]);
    return Status::OK();
  }

 private:
  // The engine for these dims, or nullptr with the reason in `why`: the embedded engine, a
  // pinned one (cached_engines), else (allow_build_at_runtime) the shared run-time LRU, which
  // loads from the disk cache or builds once per shape key.
  SharedEngine FindEngine(const std::vector<std::vector<int64_t>>& dims, std::string* why) const {
    if (setup_.engine != nullptr && setup_.engine->Accepts(dims)) return setup_.engine;
    if (SharedEngine e = PickPinned(setup_.pinned, dims)) return e;
    if (!setup_.allow_build || setup_.backend == nullptr || setup_.cache == nullptr) {
      *why = setup_.no_engine_reason + (setup_.source.segment != nullptr && !setup_.allow_build
                                            ? " (allow_build_at_runtime is off)"
                                            : "");
      if (setup_.engine != nullptr || !setup_.pinned.empty()) {
        *why = "no engine was built for input shapes " + DimsList(dims) +
               (setup_.allow_build ? "" : " and allow_build_at_runtime is off");
        for (const auto& d : dims) {
          if (!d.empty() && d[0] > setup_.config.max_batch_size) {
            *why = "batch " + std::to_string(d[0]) + " is above max_batch_size " +
                   std::to_string(setup_.config.max_batch_size);
          }
        }
      }
      return nullptr;
    }
    // Dynamic mode: one engine per distinct input shapes, in the LRU shared between Sessions.
    BuildConfig config = setup_.source.base;
    config.input_shapes = dims;
    config.exact_shapes = true;
    auto r = setup_.cache->runtime.GetOrBuild(
        config.Fingerprint(), [&] { return LoadOrBuildEngine(setup_.source, config); });
    if (r.engine != nullptr) return r.engine;
    if (r.built) {  // reported once: the failure is remembered, never retried for this key
      KILN_LOG(WARNING) << node_name_ << ": engine build at run time for input shapes "
                        << DimsList(dims) << " failed (not retried): " << r.failure;
    }
    *why = "engine build at run time failed: " + r.failure;
    return nullptr;
  }

  std::string node_name_;
  EngineOpSetup setup_;
  Executor native_;
  std::vector<int> feed_, fetch_;
  mutable std::atomic<bool> logged_fallback_{false};
};

StatusOr<std::unique_ptr<OpKernel>> MakeEngineOpKernel(const KernelInitContext& init) {
  KILN_ASSIGN_OR_RETURN(EngineOpSetup setup, SetUp(init.node, init.graph));
  auto native = Executor::Compile(*setup.segment, OpRegistry::Global());
  if (!native.ok()) {
    return native.status().WithContext(init.node.Describe() + ": native segment");
  }
  return std::unique_ptr<OpKernel>(
      new EngineOpKernel(init.node, std::move(setup), std::move(native).value()));
}

Status InferEngineOp(InferContext& ctx) {
  const std::vector<std::string> shapes = ctx.GetStrings("output_shapes");
  const std::vector<int64_t> types = ctx.GetInts("output_types");
  for (int o = 0; o < ctx.num_outputs(); ++o) {
    DataType dtype =
        o < static_cast<int>(types.size()) && IsValidDataType(static_cast<int32_t>(types[o]))
            ? static_cast<DataType>(types[o])
            : DataType::kUndefined;
    Shape shape;
    if (o < static_cast<int>(shapes.size()) && !shapes[o].empty()) {
      auto parsed = ParseShapeAttr(shapes[o]);
      if (!parsed.ok()) return ctx.Error(parsed.status().message());
      shape = *parsed;
    }
    ctx.SetOutput(o, dtype, shape);
  }
  return Status::OK();
}

void AddEngineOp(OpRegistry& r) {
  MustRegister(
      r, OpSchema(kEngineOpType, kEngineOpDomain)
             .Doc("A segment compiled by an engine backend (TF-TRT's TRTEngineOp); falls back "
                  "to its native segment, Graph::functions[segment_func].")
             .Inputs(0, OpSchema::kVariadic)
             .Outputs(1, OpSchema::kVariadic)
             .AttrNoDefault("input_shapes", AttrType::kStrings)
             .AttrNoDefault("output_shapes", AttrType::kStrings)
             .AttrNoDefault("output_types", AttrType::kInts)
             .AttrDefault("static_engine", int64_t{1})
             .AttrNoDefault("segment_func", AttrType::kString, /*required=*/true)
             .AttrDefault("serialized_engine", "")
             .AttrDefault("calibration_data", "")
             .AttrDefault("max_cached_engines_count", int64_t{1})
             .AttrDefault("workspace_size_bytes", int64_t{1} << 30)
             .AttrDefault("max_batch_size", int64_t{1})
             .AttrDefault("precision_mode", "FP32")
             .AttrDefault("use_calibration", int64_t{0})
             .AttrDefault("allow_build_at_runtime", int64_t{0})
             .AttrDefault("backend", "cpu")
             .AttrNoDefault("fp32_layers", AttrType::kStrings)
             .AttrNoDefault("cached_engines", AttrType::kStrings)
             .AttrDefault("engine_cache_dir", "")
             .AttrDefault("record_shapes", int64_t{0})
             .Infer(InferEngineOp)
             .StatefulKernel(MakeEngineOpKernel));
}

Tensor RandomTensor(DataType dtype, const std::vector<int64_t>& dims, std::mt19937* rng) {
  Tensor t = Tensor::Empty(dtype, dims);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  if (dtype == DataType::kFloat32) {
    float* p = t.mutable_data<float>();
    for (int64_t i = 0; i < t.num_elements(); ++i) p[i] = u(*rng);
  } else if (dtype == DataType::kFloat64) {
    double* p = t.mutable_data<double>();
    for (int64_t i = 0; i < t.num_elements(); ++i) p[i] = u(*rng);
  }
  return t;  // other dtypes: zeros (indices stay in range)
}

}  // namespace

void RegisterEngineOp() { OpRegistry::AddGlobalOps("engine_op", AddEngineOp); }

EngineInfo InspectEngineOp(const Graph& graph, const Node& node, bool profile, int iterations) {
  EngineInfo info;
  info.node = node.name;
  const Attr* a = node.FindAttr("backend");
  info.backend = a != nullptr ? a->s : "cpu";
  a = node.FindAttr("segment_func");
  info.segment_func = a != nullptr ? a->s : "";
  a = node.FindAttr("max_batch_size");
  info.max_batch_size = a != nullptr ? a->i : 1;
  a = node.FindAttr("precision_mode");
  info.precision = a != nullptr ? a->s : "FP32";
  auto setup = SetUp(node, graph);
  if (!setup.ok()) {
    info.status = setup.status().message();
    return info;
  }
  info.segment_nodes = static_cast<int64_t>(setup->segment->nodes.size());
  info.input_specs = setup->input_specs;
  std::string ahead;  // engines built ahead (cached_engines): cached_engine_batches, profiles
  for (const auto& p : setup->pinned) {
    ahead += (ahead.empty() ? "; engines built ahead for " : " | ") +
             DimsList(p.config.input_shapes) + (p.config.exact_shapes ? "" : " (batch up to)");
  }
  if (setup->engine == nullptr) {
    info.status = setup->no_engine_reason + ahead;
    return info;
  }
  info.status = "ready" + ahead;
  std::vector<LayerInfo> layers = setup->engine->Layers();
  if (profile) {
    std::mt19937 rng(1234);
    std::vector<Tensor> inputs;
    std::vector<const Tensor*> ptrs;
    for (size_t i = 0; i < setup->segment->inputs.size(); ++i) {
      const ValueInfo* vi = setup->segment->FindValueInfo(setup->segment->inputs[i]);
      inputs.push_back(RandomTensor(vi != nullptr ? vi->dtype : DataType::kFloat32,
                                    setup->config.input_shapes[i], &rng));
    }
    for (const auto& t : inputs) ptrs.push_back(&t);
    std::vector<Tensor> outs;
    std::vector<LayerInfo> run;
    Status st = setup->engine->Execute(ptrs, &outs, &run);  // warm-up
    std::map<std::string, double> total;
    double whole = 0;
    const int n = std::max(1, iterations);
    for (int k = 0; st.ok() && k < n; ++k) {
      run.clear();
      const auto t0 = std::chrono::steady_clock::now();
      st = setup->engine->Execute(ptrs, &outs, &run);
      whole +=
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      for (const auto& l : run) total[l.name] += l.ms;
    }
    if (!st.ok()) {
      info.status = "ready; profiling failed: " + st.message();
    } else {
      info.profiled_ms = whole / n;
      for (auto& l : layers) {
        auto it = total.find(l.name);
        l.ms = it != total.end() ? it->second / n : -1;
      }
    }
  }
  for (const auto& l : layers) {
    info.layers.push_back(
        {l.name, l.op, l.nodes, l.precision, l.implementation, profile ? l.ms : -1});
  }
  return info;
}

}  // namespace kiln
