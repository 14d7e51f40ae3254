#include "runtime/calibration_flow.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "convert/convert_internal.h"
#include "convert/engine_op_def.h"
#include "core/logging.h"
#include "engine/calibrator.h"
#include "kiln/convert.h"
#include "kiln/session.h"

namespace kiln {

Status ApplyCalibrationData(const std::string& data, const std::string& who, BuildConfig* config,
                            std::string* calibrate_id) {
  if (data.empty()) return Status::OK();
  if (data.rfind(kCalibratePrefix, 0) == 0) {
    *calibrate_id = data.substr(std::string(kCalibratePrefix).size());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(CalibrationTable table,
                        CalibrationTable::Parse(data, who + ": calibration_data"));
  config->int8_ranges = table.ranges;
  return Status::OK();
}

StatusOr<std::vector<Tensor>> RunCalibrationStep(const Executor& native, const Graph& segment,
                                                 const std::string& id,
                                                 const std::vector<std::pair<int, Tensor>>& feeds,
                                                 const std::vector<int>& fetch) {
  std::vector<int> slots = fetch;
  std::vector<std::string> names;
  std::set<std::string> tensors = Int8TensorsOf(segment);
  const std::set<std::string> residual = Int8ResidualTensorsOf(segment);
  tensors.insert(residual.begin(), residual.end());
  for (const std::string& t : tensors) {
    const int slot = native.SlotOf(t);
    if (slot < 0) continue;
    slots.push_back(slot);
    names.push_back(t);
  }
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, native.Run(feeds, slots, RunOptions{}, nullptr));
  std::shared_ptr<CalibrationCollector> c = GetCalibrationCollector(id);
  for (size_t k = 0; k < names.size(); ++k) c->Add(names[k], outs[fetch.size() + k]);
  c->NoteBatch();
  outs.resize(fetch.size());
  return outs;
}

namespace {

StatusOr<std::vector<std::vector<Tensor>>> RunAll(const Graph& g, const std::vector<Feeds>& feeds) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::FromGraph(g));
  std::vector<std::vector<Tensor>> out;
  for (const Feeds& f : feeds) {
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> y, session->Run(f));
    out.push_back(std::move(y));
  }
  return out;
}

// ||a - b|| / ||b|| over every float output of every batch.
double RelL2All(const std::vector<std::vector<Tensor>>& a,
                const std::vector<std::vector<Tensor>>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    for (size_t k = 0; k < a[i].size() && k < b[i].size(); ++k) {
      const Tensor& x = a[i][k];
      const Tensor& y = b[i][k];
      if (x.dtype() != DataType::kFloat32 || y.dtype() != DataType::kFloat32 ||
          x.num_elements() != y.num_elements()) {
        continue;
      }
      for (int64_t e = 0; e < x.num_elements(); ++e) {
        const double d = static_cast<double>(x.data<float>()[e]) - y.data<float>()[e];
        num += std::isfinite(d) ? d * d : 1e30;
        den += static_cast<double>(y.data<float>()[e]) * y.data<float>()[e];
      }
    }
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// `v` with 3 significant digits, for the budget summaries.
std::string Text3(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", v);
  return std::string(buf);
}

ConversionParams WithTable(ConversionParams p, const CalibrationTable& table) {
  p.calibration_table = table.ToText();
  p.calibration_feeds.clear();
  p.calibration_input_fn = nullptr;
  p.calibration_progress = nullptr;
  return p;
}

StatusOr<ConvertedModel> FloatWithinBudget(const Graph& source, const ConversionParams& params);

// The accuracy budget: the INT8 graph with the fewest layers kept in higher precision (most
// harmful first, by the error with only that layer kept) whose outputs on `eval` are within
// params.max_accuracy_loss (rel. L2) of the FP32 engines'. Those layers run in the mode's
// floating precision (BF16 where the CPU has it); when keeping every one still misses the budget,
// FloatWithinBudget keeps layers in FP32 next.
StatusOr<ConvertedModel> BuildWithinBudget(const Graph& source, const ConversionParams& params,
                                           const CalibrationTable& table,
                                           const std::vector<Feeds>& eval) {
  const double budget = params.max_accuracy_loss;
  ConversionParams fp32 = WithTable(params, table);
  fp32.precision_mode = "FP32";
  fp32.calibration_table.clear();
  KILN_ASSIGN_OR_RETURN(ConvertedModel reference, CreateInferenceGraph(source, fp32));
  KILN_ASSIGN_OR_RETURN(auto want, RunAll(reference.graph(), eval));
  auto build = [&](const std::vector<std::string>& keep, double* err) -> StatusOr<ConvertedModel> {
    ConversionParams p = WithTable(params, table);
    p.int8_keep_float = keep;
    KILN_ASSIGN_OR_RETURN(ConvertedModel m, CreateInferenceGraph(source, p));
    KILN_ASSIGN_OR_RETURN(auto got, RunAll(m.graph(), eval));
    *err = RelL2All(got, want);
    return m;
  };
  std::vector<std::string> keep = params.int8_keep_float;
  double err = 0;
  KILN_ASSIGN_OR_RETURN(ConvertedModel model, build(keep, &err));
  const double all_int8 = err;
  int int8_layers = 0;  // none (the layer policy chose BF16 for all): nothing to keep out
  for (const EngineSummary& e : model.summary().engines) {
    auto it = e.layer_precisions.find("INT8");
    if (it != e.layer_precisions.end()) int8_layers += it->second;
  }
  if (err > budget && int8_layers > 0) {
    std::vector<std::pair<double, std::string>> alone;  // error with only that layer kept
    for (const auto& [t, r] : table.ranges) {
      if (std::find(keep.begin(), keep.end(), t) != keep.end()) continue;
      std::vector<std::string> k = keep;
      k.push_back(t);
      double e = 0;
      KILN_RETURN_IF_ERROR(build(k, &e).status());
      alone.emplace_back(e, t);
    }
    std::sort(alone.begin(), alone.end());
    for (const auto& [e, t] : alone) {
      keep.push_back(t);
      KILN_ASSIGN_OR_RETURN(model, build(keep, &err));
      if (err <= budget) break;
    }
  }
  const bool reached = err <= budget;
  if (!reached) {
    ConversionParams next = WithTable(params, table);
    next.int8_keep_float = keep;
    next.calibration_feeds = eval;
    KILN_ASSIGN_OR_RETURN(model, FloatWithinBudget(source, next));
  }
  auto& impl = ConvertedModelAccess::Of(model);
  impl.summary.int8_kept_float.assign(keep.begin() + params.int8_keep_float.size(), keep.end());
  impl.summary.int8_accuracy = "rel. L2 of the outputs vs FP32 on " + std::to_string(eval.size()) +
                               " calibration batch(es): " + Text3(all_int8) +
                               " with every layer INT8, " + Text3(err) + " with " +
                               std::to_string(impl.summary.int8_kept_float.size()) +
                               " layer input(s) kept in higher precision (budget " + Text3(budget) +
                               (reached ? ")" : "; not reached: layers kept in FP32 next, below)");
  return model;
}

// The least time (ms) of `runs` alternated runs of `a` and of `b` on `feeds`, after one warm-up
// run each.
StatusOr<std::pair<double, double>> BestTimes(const Graph& a, const Graph& b, const Feeds& feeds,
                                              int runs) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> sa, Session::FromGraph(a));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> sb, Session::FromGraph(b));
  KILN_RETURN_IF_ERROR(sa->Run(feeds).status());
  KILN_RETURN_IF_ERROR(sb->Run(feeds).status());
  double ta = 1e30, tb = 1e30;
  for (int i = 0; i < runs; ++i) {
    for (auto [s, t] : {std::pair{sa.get(), &ta}, std::pair{sb.get(), &tb}}) {
      const auto t0 = std::chrono::steady_clock::now();
      KILN_RETURN_IF_ERROR(s->Run(feeds).status());
      *t = std::min(
          *t,
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  return std::pair{ta, tb};
}

// The layers of a converted model's engines that compute below FP32 (EngineSummary).
std::vector<std::string> ReducedLayers(const ConvertedModel& m) {
  std::vector<std::string> names;
  for (const EngineSummary& e : m.summary().engines) {
    names.insert(names.end(), e.reduced_layers.begin(), e.reduced_layers.end());
  }
  return names;
}

// The FP16 / BF16 accuracy budget. Ranks each reduced layer by the error of the model with only
// that layer reduced (the rest FP32: its own harm, which the error with only it kept in FP32 hides
// when the error is spread over many layers, as BF16's is), then keeps the most harmful in FP32:
// the fewest of them, found by bisection on that order, whose outputs on `eval` are within
// params.max_accuracy_loss (rel. L2) of the FP32 engines'. About N + log2(N) conversions for N
// reduced layers. A mixed engine pays a conversion at every precision boundary: when it is not
// faster than the FP32 engines on a calibration batch, every ranked layer is kept in FP32.
StatusOr<ConvertedModel> FloatWithinBudget(const Graph& source, const ConversionParams& params) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Feeds> eval(
      params.calibration_feeds.begin(),
      params.calibration_feeds.begin() + std::min<size_t>(params.calibration_feeds.size(), 8));
  if (params.calibration_input_fn) {
    Feeds f;
    while (eval.size() < 8 && params.calibration_input_fn(&f)) {
      eval.push_back(std::move(f));
      f.clear();
    }
  }
  if (eval.empty()) return InvalidArgument("accuracy budget: the inputs gave no batch");
  const double budget = params.max_accuracy_loss;
  ConversionParams base = params;
  base.max_accuracy_loss = -1;
  base.calibration_feeds.clear();
  base.calibration_input_fn = nullptr;
  base.calibration_progress = nullptr;
  ConversionParams fp32 = base;
  fp32.precision_mode = "FP32";
  fp32.calibration_table.clear();
  fp32.fp32_layers.clear();
  KILN_ASSIGN_OR_RETURN(ConvertedModel reference, CreateInferenceGraph(source, fp32));
  KILN_ASSIGN_OR_RETURN(auto want, RunAll(reference.graph(), eval));
  // Progress (calibration_progress) once the search starts: conversions done of about N + 1 +
  // log2(N + 1).
  int64_t builds = 0, planned = 0;
  auto build = [&](const std::vector<std::string>& keep, double* err) -> StatusOr<ConvertedModel> {
    ConversionParams p = base;
    p.fp32_layers = keep;
    KILN_ASSIGN_OR_RETURN(ConvertedModel m, CreateInferenceGraph(source, p));
    KILN_ASSIGN_OR_RETURN(auto got, RunAll(m.graph(), eval));
    *err = RelL2All(got, want);
    if (planned > 0 && params.calibration_progress) {
      params.calibration_progress(++builds, std::max(builds, planned));
    }
    return m;
  };
  const std::vector<std::string>& fixed = params.fp32_layers;  // given: always FP32
  double err = 0;
  KILN_ASSIGN_OR_RETURN(ConvertedModel model, build(fixed, &err));
  const double all_reduced = err;
  std::vector<std::string> kept;  // most harmful first
  std::string speed;              // the mixed engine's time against FP32's
  if (err > budget) {
    const std::vector<std::string> reduced = ReducedLayers(model);
    planned = 1 + static_cast<int64_t>(reduced.size()) +
              static_cast<int64_t>(std::ceil(std::log2(reduced.size() + 1.0)));
    std::vector<std::pair<double, std::string>> harm;  // error with only that layer reduced
    for (const std::string& c : reduced) {
      std::vector<std::string> keep = fixed;
      for (const std::string& o : reduced) {
        if (o != c) keep.push_back(o);
      }
      double e = 0;
      KILN_ASSIGN_OR_RETURN(ConvertedModel m, build(keep, &e));
      // A layer that cannot be kept by name (an eltwise layer following a reduced producer)
      // computes in FP32 once its producers do: nothing to rank.
      const std::vector<std::string> still = ReducedLayers(m);
      if (std::find(still.begin(), still.end(), c) != still.end()) harm.emplace_back(e, c);
    }
    std::sort(harm.begin(), harm.end(), [](const auto& a, const auto& b) { return a > b; });
    auto first = [&](size_t k) {
      std::vector<std::string> keep = fixed;
      for (size_t i = 0; i < k; ++i) keep.push_back(harm[i].second);
      return keep;
    };
    // Bisection for the fewest of the most harmful within the budget; every tried prefix is
    // measured, so the result is within the budget whether or not the error falls monotonically.
    size_t lo = 0, hi = harm.size();
    double hi_err = 0;
    KILN_ASSIGN_OR_RETURN(ConvertedModel best, build(first(hi), &hi_err));
    while (hi_err <= budget && hi - lo > 1) {
      const size_t mid = lo + (hi - lo) / 2;
      double e = 0;
      KILN_ASSIGN_OR_RETURN(ConvertedModel m, build(first(mid), &e));
      if (e <= budget) {
        hi = mid;
        hi_err = e;
        best = std::move(m);
      } else {
        lo = mid;
      }
    }
    model = std::move(best);
    err = hi_err;
    for (size_t i = 0; i < hi; ++i) kept.push_back(harm[i].second);
    if (hi > 0 && hi < harm.size()) {
      KILN_ASSIGN_OR_RETURN(auto t, BestTimes(model.graph(), reference.graph(), eval[0], 5));
      speed = "; " + Text3(t.first) + " ms per calibration batch vs FP32's " + Text3(t.second) +
              " ms (best of 5)";
      if (t.first >= t.second) {
        KILN_ASSIGN_OR_RETURN(model, build(first(harm.size()), &err));
        kept.clear();
        for (const auto& [e, name] : harm) kept.push_back(name);
        speed += ": not faster, so every ranked layer is kept in FP32";
      }
    }
    if (params.calibration_progress && builds > 0) params.calibration_progress(builds, builds);
  }
  auto& impl = ConvertedModelAccess::Of(model);
  impl.summary.fp32_kept_layers = kept;
  const std::string mode = PrecisionName(*ParsePrecision(params.precision_mode));
  impl.summary.precision_accuracy =
      mode + ": rel. L2 of the outputs vs FP32 on " + std::to_string(eval.size()) +
      " batch(es): " + Text3(all_reduced) + " before, " + Text3(err) + " with " +
      std::to_string(kept.size()) + " more layer(s) kept in FP32 (budget " + Text3(budget) +
      (err <= budget ? ")" : "; not reached)") + speed;
  impl.params.max_accuracy_loss = params.max_accuracy_loss;
  impl.summary.total_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return model;
}

// CalibGraphToInferGraph with the batches the accuracy budget is measured on.
StatusOr<ConvertedModel> ToInferGraph(const ConvertedModel& calib_graph,
                                      const std::vector<Feeds>& eval);

}  // namespace

StatusOr<ConvertedModel> CalibGraphToInferGraph(const ConvertedModel& calib_graph) {
  return ToInferGraph(calib_graph, ConvertedModelAccess::Of(calib_graph).params.calibration_feeds);
}

namespace {

StatusOr<ConvertedModel> ToInferGraph(const ConvertedModel& calib_graph,
                                      const std::vector<Feeds>& eval) {
  const auto& impl = ConvertedModelAccess::Of(calib_graph);
  if (impl.calibration_source == nullptr) {
    return InvalidArgument(
        "CalibGraphToInferGraph: the graph is not a calibration graph (convert with "
        "precision_mode INT8 or FP8 and use_calibration=true, without a calibration table)");
  }
  KILN_ASSIGN_OR_RETURN(CalibrationMethod method,
                        ParseCalibrationMethod(impl.params.calibration_method));
  CalibrationTable table;
  table.calibrator = CalibrationMethodName(method);
  std::vector<std::string> never;
  for (const Node& n : impl.graph.nodes) {
    if (n.op_type != kEngineOpType || n.domain != kEngineOpDomain) continue;
    const Attr* a = n.FindAttr("calibration_data");
    if (a == nullptr || a->s.rfind(kCalibratePrefix, 0) != 0) continue;
    const std::string id = a->s.substr(std::string(kCalibratePrefix).size());
    std::shared_ptr<CalibrationCollector> c = FindCalibrationCollector(id);
    if (c == nullptr || c->batches() == 0) {
      never.push_back(n.name);
      continue;
    }
    CalibrationTable part = c->Table(method, impl.params.calibration_percentile);
    table.ranges.insert(part.ranges.begin(), part.ranges.end());
  }
  if (!never.empty()) {
    std::string names;
    for (const auto& s : never) names += (names.empty() ? "'" : ", '") + s + "'";
    return FailedPrecondition(
        "CalibGraphToInferGraph: the calibration graph was never calibrated: its engine(s) " +
        names +
        " saw no data (run the calibration graph with Session on representative inputs first)");
  }
  StatusOr<ConvertedModel> converted =
      impl.params.max_accuracy_loss >= 0 && !eval.empty()
          ? BuildWithinBudget(
                *impl.calibration_source, impl.params, table,
                std::vector<Feeds>(eval.begin(), eval.begin() + std::min<size_t>(eval.size(), 8)))
          : CreateInferenceGraph(*impl.calibration_source, WithTable(impl.params, table));
  if (!converted.ok()) return converted.status();
  if (!impl.params.calibration_cache.empty()) {
    KILN_RETURN_IF_ERROR(table.WriteFile(impl.params.calibration_cache));
  }
  return converted;
}

// The one-call form: run the feeds through the calibration graph, then CalibGraphToInferGraph.
StatusOr<ConvertedModel> CalibrateWithFeeds(ConvertedModel calib, const ConversionParams& params) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::FromGraph(calib.graph()));
  const int64_t total =
      params.calibration_input_fn ? -1 : static_cast<int64_t>(params.calibration_feeds.size());
  int64_t done = 0;
  std::vector<Feeds> eval;  // the accuracy budget's batches (the first 8)
  auto run = [&](const Feeds& feeds) -> Status {
    if (params.max_accuracy_loss >= 0 && eval.size() < 8) eval.push_back(feeds);
    auto r = session->Run(feeds);
    if (!r.ok()) {
      return r.status().WithContext("calibration batch " + std::to_string(done + 1));
    }
    ++done;
    if (params.calibration_progress) params.calibration_progress(done, total);
    return Status::OK();
  };
  for (const Feeds& f : params.calibration_feeds) KILN_RETURN_IF_ERROR(run(f));
  if (params.calibration_input_fn) {
    Feeds f;
    while (params.calibration_input_fn(&f)) {
      KILN_RETURN_IF_ERROR(run(f));
      f.clear();
    }
  }
  if (done == 0) {
    return InvalidArgument("calibration: the calibration inputs gave no batch");
  }
  return ToInferGraph(calib, eval);
}

[[maybe_unused]] const bool registered = [] {
  SetCalibrationRunner(&CalibrateWithFeeds);
  SetPrecisionBudgetRunner(&FloatWithinBudget);
  return true;
}();

}  // namespace

}  // namespace kiln
