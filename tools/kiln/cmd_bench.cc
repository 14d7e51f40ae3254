// `kiln bench MODEL` — latency and throughput of a model, in the manner of trtexec.
//
// The model is converted (CreateInferenceGraph: engines for the segments the backend supports)
// and the converted graph is timed through a Session; --no-convert times the reference runtime
// alone; --compare native also times the unconverted graph on the same inputs and reports the
// output error and the speed-up. Statistics use every timed run: min/mean/median/p90/p95/p99
// (percentiles interpolated linearly between order statistics, as numpy's default), and the
// coefficient of variation (stddev / mean) flags a noisy run.
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <random>
#include <thread>

#include "cli_util.h"
#include "core/file_util.h"
#include "commands.h"
#include "io/npy/npy.h"
#include "ir/graph.h"
#include "kiln/convert.h"
#include "kiln/engine_cache.h"
#include "kiln/session.h"
#include "ops/base/dispatch.h"

namespace kiln::cli {
namespace {

const char* kBenchHelp = R"(usage: kiln bench MODEL [options]

Converts MODEL (engines for every segment the backend supports, as `kiln convert` does) and
times the converted graph: latency min/mean/median/p90/p95/p99 over the timed runs, throughput,
and a warning when the run was noisy (coefficient of variation above 10%).

options:
  --batch N               batch size: dimension 0 of every input whose batch dimension is not
                          fixed (default: 1, or the batch of the --input files)
  --shape NAME=d0,d1,...  full shape of input NAME (repeatable; overrides --batch for NAME;
                          other unknown dimensions default to 1)
  --input NAME=FILE.npy   feed input NAME from a .npy file (repeatable); other inputs get
                          random non-constant values (--seed N, default 0)
  --iterations N          timed runs (default 20)
  --warmup N              untimed runs first (default 3)
  --threads N             threads of the engine backend (oneDNN's OpenMP pool; default: the
                          OpenMP default, i.e. OMP_NUM_THREADS or every core). The reference
                          kernels are single-threaded.
  --precision P           engine precision: fp32 (default), fp16, bf16, int8, fp8 (CUDA);
                          passed to the converter (docs/precision.md)
  --calib-cache FILE      int8 / fp8: the calibration table (`kiln convert --calib-data ...
                          --calib-cache FILE` writes it); required with --precision int8 / fp8
  --fp32-layers a,b       conv / matmul nodes (by name) whose layers stay in FP32 (what
                          `kiln convert --max-accuracy-loss` reports as kept)
  --device D              engine backend: cpu (default), cuda or cuda:N
  --io host|device        where the timed runs' inputs and outputs live (default host: each
                          run uploads the inputs and downloads the outputs, as a host
                          application does). device (with --device cuda): the inputs are
                          copied to the GPU once and the CUDA engines' outputs stay there
                          (RunOptions::outputs_on_device), as a GPU pipeline feeds kiln
  --max-batch-size N      converter's max_batch_size (default: the bench batch: --batch, or
                          the largest dimension 0 of --shape / --input)
  --minimum-segment-size N  converter's minimum_segment_size (default 3)
  --max-workspace-size B  converter's max_workspace_size_bytes (default 1 GiB)
  --dynamic-op            build engines at run time (is_dynamic_op) instead of at conversion
  --engine-cache DIR      disk engine cache for the conversion and run-time builds (default
                          KILN_ENGINE_CACHE): a second bench of the same model loads its
                          engines instead of building them (`kiln cache --help`)
  --time-tactics          time each conv/matmul layer's implementations at build, keep the
                          fastest (KILN_TACTIC_TIMING=1)
  --timing-cache FILE     remember timed choices in FILE (KILN_TIMING_CACHE; the CUDA
                          backend's in FILE.cudaN)
  --batch-sweep           after the timed runs, run every batch 1..max-batch-size once in
                          random order (twice each) and report the engine builds it caused
  --compare native        also run the unconverted graph on the same inputs (timed runs
                          interleaved with the converted ones) and report the max abs error,
                          the relative L2 error (||converted - native|| / ||native||, the worst
                          output) and the speed-up of the medians
  --no-convert            time the reference runtime (unconverted graph) only
  --outputs a,b           fetch these values instead of the model's outputs
  --output-dir DIR        write the outputs of the last timed run to DIR/NAME.npy
  --tags a,b              SavedModel MODEL: the MetaGraph's tag set (default serve)
  --signature KEY         SavedModel MODEL: the signature (default serving_default)
  --json FILE             write the results as JSON: model, batch, precision, threads,
                          latency_ms {min, mean, median, p90, p95, p99, stddev},
                          throughput_per_s (samples/s = batch x runs/s), inferences_per_s, cv,
                          and compare {max_abs_error, rel_l2_error, speedup, native_median_ms}
  --help                  show this help

The first run is reported apart (engines built at run time, caches, page faults). Threads: the
OpenMP runtime reads OMP_NUM_THREADS when it is loaded, before main(), so --threads calls
omp_set_num_threads() on the process's OpenMP runtime (and sets OMP_NUM_THREADS for anything
loaded later).
)";

constexpr double kNoisyCv = 0.10;

int Fail(const Status& s) {
  std::cerr << "kiln: error: " << s.ToString() << "\n";
  return 1;
}

int Usage(const std::string& message) {
  std::cerr << "kiln bench: " << message << " (see `kiln bench --help`)\n";
  return 2;
}

// Sets the engine backend's thread count (see the help text) and returns the count in effect.
int ConfigureThreads(int requested) {
  if (requested > 0) setenv("OMP_NUM_THREADS", std::to_string(requested).c_str(), 1);
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  auto set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (set != nullptr && requested > 0) set(requested);
  auto get = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
  if (get != nullptr) return get();
  if (requested > 0) return requested;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

struct LatencyStats {
  double min = 0, mean = 0, median = 0, p90 = 0, p95 = 0, p99 = 0, stddev = 0;
  double cv() const { return mean > 0 ? stddev / mean : 0; }
};

// Linear interpolation between order statistics (numpy.percentile's default).
double Percentile(const std::vector<double>& sorted, double p) {
  const double pos = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

LatencyStats Summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  LatencyStats s;
  double sum = 0;
  for (double v : ms) sum += v;
  s.mean = sum / static_cast<double>(ms.size());
  double var = 0;
  for (double v : ms) var += (v - s.mean) * (v - s.mean);
  s.stddev = ms.size() > 1 ? std::sqrt(var / static_cast<double>(ms.size() - 1)) : 0;
  s.min = ms.front();
  s.median = Percentile(ms, 50);
  s.p90 = Percentile(ms, 90);
  s.p95 = Percentile(ms, 95);
  s.p99 = Percentile(ms, 99);
  return s;
}

struct OutputError {
  double max_abs = 0;
  double rel_l2 = 0;  // the worst output's ||a - b|| / ||b||
};

// Compares `got` against `want` output by output. NaN anywhere in `got` where `want` has a
// number makes both errors NaN.
StatusOr<OutputError> CompareOutputs(const std::vector<Tensor>& got,
                                     const std::vector<Tensor>& want,
                                     const std::vector<std::string>& names) {
  OutputError e;
  for (size_t k = 0; k < got.size(); ++k) {
    if (got[k].dims() != want[k].dims()) {
      return Internal("output '" + names[k] + "': converted graph gives " + got[k].TypeString() +
                      ", native graph " + want[k].TypeString());
    }
    if (got[k].dtype() == DataType::kString) continue;
    const std::vector<double> a = ReadDoubles(got[k]), b = ReadDoubles(want[k]);
    double diff2 = 0, ref2 = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const double d = a[i] - b[i];
      if (std::isnan(a[i]) != std::isnan(b[i])) {
        return OutputError{NAN, NAN};
      }
      if (std::isnan(d)) continue;
      e.max_abs = std::max(e.max_abs, std::fabs(d));
      diff2 += d * d;
      ref2 += b[i] * b[i];
    }
    const double rel = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
    e.rel_l2 = std::max(e.rel_l2, rel);
  }
  return e;
}

// Shape specs that give every input with an unfixed dimension 0 the bench batch; an input with
// a fixed batch other than `batch` is an error when --batch was given.
StatusOr<std::vector<std::string>> BatchShapeSpecs(const std::vector<TensorInfo>& inputs,
                                                   const Args& args, int64_t batch,
                                                   bool batch_given) {
  std::vector<std::string> specs = args.GetAll("shape");
  std::set<std::string> named;
  for (const auto& spec : args.GetAll("shape")) named.insert(spec.substr(0, spec.rfind('=')));
  for (const auto& spec : args.GetAll("input")) named.insert(spec.substr(0, spec.rfind('=')));
  for (const auto& in : inputs) {
    if (named.count(in.name) || !in.shape.rank_known() || in.shape.rank() == 0) continue;
    const int64_t d0 = in.shape.dim(0);
    if (d0 >= 0) {
      if (batch_given && d0 != batch) {
        return InvalidArgument("--batch " + std::to_string(batch) + ": input '" + in.name +
                               "' has a fixed batch of " + std::to_string(d0) + " (shape " +
                               in.shape.ToString() + ")");
      }
      continue;
    }
    std::string spec = in.name + "=" + std::to_string(batch);
    for (int d = 1; d < in.shape.rank(); ++d) {
      spec += "," + std::to_string(in.shape.dim(d) < 0 ? 1 : in.shape.dim(d));
    }
    specs.push_back(spec);
  }
  return specs;
}

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

struct Options {
  std::string model;
  int64_t batch = 1;
  bool batch_given = false;
  int iterations = 20, warmup = 3, threads = 0, min_segment = 3;
  int64_t max_batch = 0, workspace = int64_t{1} << 30;
  uint32_t seed = 0;
  std::string precision = "fp32";
  std::string device = "cpu";  // --device: the engine backend
  bool io_device = false;      // --io device
  bool convert = true, compare = false, dynamic_op = false, batch_sweep = false;
  std::string engine_cache;
  LoadOptions load;  // --tags / --signature
};

StatusOr<Options> ParseOptions(const Args& args) {
  Options o;
  if (args.positionals().size() != 1) return InvalidArgument("bench needs exactly one MODEL");
  o.model = args.positionals()[0];
  o.load = LoadOptionsFromArgs(args);
  auto integer = [&args](const char* name, int64_t min, int64_t* out) -> Status {
    auto v = args.Get(name);
    if (!v) return Status::OK();
    char* end = nullptr;
    long long x = std::strtoll(v->c_str(), &end, 10);
    if (end == v->c_str() || *end != '\0' || x < min) {
      return InvalidArgument(std::string("--") + name +
                             " takes an integer >= " + std::to_string(min) + ", got '" + *v + "'");
    }
    *out = x;
    return Status::OK();
  };
  int64_t iterations = o.iterations, warmup = o.warmup, threads = 0, seed = 0;
  int64_t min_segment = o.min_segment;
  KILN_RETURN_IF_ERROR(integer("batch", 1, &o.batch));
  KILN_RETURN_IF_ERROR(integer("iterations", 1, &iterations));
  KILN_RETURN_IF_ERROR(integer("warmup", 0, &warmup));
  KILN_RETURN_IF_ERROR(integer("threads", 1, &threads));
  KILN_RETURN_IF_ERROR(integer("seed", 0, &seed));
  KILN_RETURN_IF_ERROR(integer("max-batch-size", 1, &o.max_batch));
  KILN_RETURN_IF_ERROR(integer("minimum-segment-size", -1, &min_segment));
  KILN_RETURN_IF_ERROR(integer("max-workspace-size", 0, &o.workspace));
  o.batch_given = args.Has("batch");
  o.iterations = static_cast<int>(iterations);
  o.warmup = static_cast<int>(warmup);
  o.threads = static_cast<int>(threads);
  o.seed = static_cast<uint32_t>(seed);
  o.min_segment = static_cast<int>(min_segment);
  if (auto d = args.Get("device")) o.device = *d;
  if (auto io = args.Get("io")) {
    if (*io != "host" && *io != "device") {
      return InvalidArgument("--io takes host or device, got '" + *io + "'");
    }
    o.io_device = *io == "device";
    if (o.io_device && o.device.rfind("cuda", 0) != 0) {
      return InvalidArgument("--io device needs a GPU backend (--device cuda or cuda:N)");
    }
  }
  if (auto p = args.Get("precision")) {
    o.precision = *p;
    std::transform(o.precision.begin(), o.precision.end(), o.precision.begin(), ::tolower);
  }
  o.convert = !args.Has("no-convert");
  o.dynamic_op = args.Has("dynamic-op");
  o.batch_sweep = args.Has("batch-sweep");
  // Tactic timing is read by the CPU backend from the environment (backends/cpu/tactics.h).
  if (args.Has("time-tactics")) setenv("KILN_TACTIC_TIMING", "1", 1);
  if (auto t = args.Get("timing-cache")) setenv("KILN_TIMING_CACHE", t->c_str(), 1);
  if (auto d = args.Get("engine-cache")) o.engine_cache = *d;
  if (auto c = args.Get("compare")) {
    if (*c != "native") return InvalidArgument("--compare takes 'native', got '" + *c + "'");
    if (!o.convert) return InvalidArgument("--compare native needs conversion (drop --no-convert)");
    o.compare = true;
  }
  if (!o.convert && o.precision != "fp32") {
    return InvalidArgument("--precision " + o.precision +
                           ": the reference runtime (--no-convert) runs fp32 only");
  }
  return o;
}

std::string StatsJson(const LatencyStats& s) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"min\": %.6g, \"mean\": %.6g, \"median\": %.6g, \"p90\": %.6g, "
                "\"p95\": %.6g, \"p99\": %.6g, \"stddev\": %.6g}",
                s.min, s.mean, s.median, s.p90, s.p95, s.p99, s.stddev);
  return buf;
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

int BenchCommand(int argc, char** argv) {
  auto parsed = Args::Parse(argc, argv,
                            {"batch", "shape", "input", "iterations", "warmup", "threads",
                             "precision", "device", "io", "compare", "json", "seed", "outputs",
                             "output-dir",
                             "max-batch-size", "minimum-segment-size", "max-workspace-size",
                             "engine-cache", "tags", "signature", "calib-cache", "timing-cache",
                             "fp32-layers"},
                            {"help", "no-convert", "dynamic-op", "batch-sweep", "time-tactics"});
  if (!parsed.ok()) return Usage(parsed.status().message());
  const Args& args = *parsed;
  if (args.Has("help")) {
    std::cout << kBenchHelp;
    return 0;
  }
  auto opts = ParseOptions(args);
  if (!opts.ok()) return Usage(opts.status().message());
  const Options& o = *opts;
  const int threads = ConfigureThreads(o.threads);

  // The batch the converter must cover: --batch, else the largest dimension 0 of the --shape
  // specs and --input files (without this, `--shape x=8,...` built engines for batch 1 and
  // every run fell back to the native segment).
  int64_t batch = o.batch;
  if (!o.batch_given) {
    for (const auto& spec : args.GetAll("shape")) {
      auto dims = ParseDims(spec.substr(spec.rfind('=') + 1));
      if (dims.ok() && !dims->empty()) batch = std::max(batch, (*dims)[0]);
    }
    for (const auto& spec : args.GetAll("input")) {
      auto t = ReadNpyFile(spec.substr(spec.rfind('=') + 1));
      if (t.ok() && !t->dims().empty()) batch = std::max(batch, t->dims()[0]);
    }
  }

  const auto t_load = std::chrono::steady_clock::now();
  std::unique_ptr<Session> session, native;
  std::string conversion_line, conversion_json = "null";
  if (o.convert) {
    ConversionParams params;
    params.input_saved_model_tags = o.load.saved_model_tags;
    params.input_saved_model_signature_key = o.load.saved_model_signature_key;
    params.precision_mode = o.precision;
    params.backend = o.device;
    std::transform(params.precision_mode.begin(), params.precision_mode.end(),
                   params.precision_mode.begin(), ::toupper);
    params.max_batch_size = o.max_batch > 0 ? o.max_batch : batch;
    params.max_workspace_size_bytes = o.workspace;
    params.minimum_segment_size = o.min_segment;
    params.is_dynamic_op = o.dynamic_op;
    params.engine_cache_dir = o.engine_cache;
    if (auto v = args.Get("calib-cache")) params.calibration_cache = *v;  // INT8 / FP8
    if (auto v = args.Get("fp32-layers")) params.fp32_layers = SplitList(*v);
    if ((params.precision_mode == "INT8" || params.precision_mode == "FP8") &&
        (params.calibration_cache.empty() ||
         !std::filesystem::exists(params.calibration_cache))) {
      return Usage("--precision " + o.precision +
                   " needs --calib-cache FILE, an existing calibration table "
                   "(kiln convert --calib-data ... --calib-cache FILE writes one)");
    }
    if (auto outs = args.Get("outputs")) params.outputs = SplitList(*outs);
    // Shapes given for the bench are the shapes the engines are built for; dimension 0 stays
    // the batch, which static engines serve up to max_batch_size.
    auto declare = [&params](const std::string& name, std::vector<int64_t> dims) {
      if (!dims.empty()) dims[0] = -1;
      params.input_shapes[name] = std::move(dims);
    };
    for (const auto& spec : args.GetAll("shape")) {
      auto eq = spec.rfind('=');
      if (eq == std::string::npos) continue;  // MakeFeeds reports the malformed spec
      auto dims = ParseDims(spec.substr(eq + 1));
      if (dims.ok()) declare(spec.substr(0, eq), *dims);
    }
    for (const auto& spec : args.GetAll("input")) {
      auto eq = spec.rfind('=');
      if (eq == std::string::npos || params.input_shapes.count(spec.substr(0, eq))) continue;
      auto t = ReadNpyFile(spec.substr(eq + 1));
      if (t.ok()) declare(spec.substr(0, eq), t->dims());
    }
    auto converted = CreateInferenceGraph(o.model, params);
    if (!converted.ok()) return Fail(converted.status().WithContext("converting " + o.model));
    const ConversionSummary& sum = converted->summary();
    const double convert_ms = MsSince(t_load);
    SessionOptions session_options;
    session_options.engine_cache_dir = o.engine_cache;
    auto s = Session::FromGraph(Graph(converted->graph()), session_options);
    if (!s.ok()) return Fail(s.status().WithContext("loading the converted graph"));
    session = std::move(*s);
    char buf[256];
    std::snprintf(buf, sizeof buf, "%zu engine(s), %d of %d nodes in engines, conversion %.0f ms",
                  sum.engines.size(), sum.converted_nodes, sum.total_nodes, convert_ms);
    conversion_line = buf;
    int from_cache = 0;
    for (const auto& e : sum.engines) from_cache += e.from_engine_cache ? 1 : 0;
    if (from_cache > 0) {
      conversion_line += ", " + std::to_string(from_cache) + " from the engine cache";
    }
    std::snprintf(buf, sizeof buf,
                  "{\"engines\": %zu, \"converted_nodes\": %d, \"total_nodes\": %d, "
                  "\"ms\": %.1f}",
                  sum.engines.size(), sum.converted_nodes, sum.total_nodes, convert_ms);
    conversion_json = buf;
  }
  if (!o.convert || o.compare) {
    SessionOptions native_options;
    native_options.load = o.load;
    auto s = Session::Load(o.model, native_options);
    if (!s.ok()) return Fail(s.status());
    (o.convert ? native : session) = std::move(*s);
  }
  const double load_ms = MsSince(t_load);

  auto shape_specs = BatchShapeSpecs(session->inputs(), args, batch, o.batch_given);
  if (!shape_specs.ok()) return Fail(shape_specs.status());
  const Graph& graph = session->graph();
  auto feeds = MakeFeeds(session->inputs(), args.GetAll("input"), *shape_specs, o.seed,
                         [&graph](const std::string& n) { return graph.ResolveName(n); });
  if (!feeds.ok()) return Fail(feeds.status());
  if (!feeds->empty() && !feeds->front().second.dims().empty()) {
    batch = feeds->front().second.dims()[0];
  }
  std::vector<std::string> fetches;
  if (auto outs = args.Get("outputs")) fetches = SplitList(*outs);
  const std::vector<std::string> names = fetches.empty() ? session->graph_output_names() : fetches;

  // --io device: the converted graph's feeds copied to the GPU once; its fetches stay there.
  Feeds device_feeds;
  RunOptions device_run;
  if (o.io_device) {
    const int ordinal = o.device.size() > 5 ? std::atoi(o.device.c_str() + 5) : 0;
    for (const auto& [name, t] : *feeds) {
      auto d = t.ToDevice(ordinal);
      if (!d.ok()) return Fail(d.status().WithContext("--io device: input '" + name + "'"));
      device_feeds.emplace_back(name, *std::move(d));
    }
    device_run.outputs_on_device = true;
  }
  // One timed call of Session::Run (what an application sees: feed checks included).
  auto run_once = [&](const Session& s, std::vector<Tensor>* out, double* ms) -> Status {
    const bool on_device = o.io_device && &s == session.get();
    const auto t0 = std::chrono::steady_clock::now();
    auto r = on_device ? s.Run(device_feeds, fetches, device_run) : s.Run(*feeds, fetches);
    *ms = MsSince(t0);
    if (!r.ok()) return r.status();
    *out = std::move(*r);
    return Status::OK();
  };
  std::vector<Tensor> outputs, native_outputs;
  double first_ms = 0, native_first_ms = 0, ms = 0;
  Status st = run_once(*session, &outputs, &first_ms);
  if (!st.ok()) return Fail(st);
  if (native) {
    st = run_once(*native, &native_outputs, &native_first_ms);
    if (!st.ok()) return Fail(st.WithContext("native graph"));
  }
  for (int i = 1; i < o.warmup; ++i) {
    if (!(st = run_once(*session, &outputs, &ms)).ok()) return Fail(st);
    if (native && !(st = run_once(*native, &native_outputs, &ms)).ok()) return Fail(st);
  }
  std::vector<double> times, native_times;
  for (int i = 0; i < o.iterations; ++i) {
    if (!(st = run_once(*session, &outputs, &ms)).ok()) return Fail(st);
    times.push_back(ms);
    if (native) {
      if (!(st = run_once(*native, &native_outputs, &ms)).ok()) return Fail(st);
      native_times.push_back(ms);
    }
  }
  int outputs_on_gpu = 0;
  for (Tensor& t : outputs) {  // read back once, after the timing, for --compare / --output-dir
    if (!t.on_device()) continue;
    ++outputs_on_gpu;
    auto h = t.ToHost();
    if (!h.ok()) return Fail(h.status());
    t = *std::move(h);
  }
  const LatencyStats lat = Summarize(times);
  const double inferences_per_s = 1000.0 / lat.mean;
  const double samples_per_s = inferences_per_s * static_cast<double>(batch);

  std::printf("model       %s\n", o.model.c_str());
  std::printf("runtime     %s\n", o.convert ? ("kiln converted: " + conversion_line).c_str()
                                            : "kiln reference runtime (not converted)");
  std::printf("config      precision %s, threads %d, batch %lld, load %.0f ms\n",
              o.precision.c_str(), threads, static_cast<long long>(batch), load_ms);
  for (const auto& [name, t] : *feeds) {
    std::printf("input       %s: %s\n", name.c_str(), t.TypeString().c_str());
  }
  if (o.io_device) {
    std::printf("io          device: inputs on %s before timing, %d of %zu outputs left there\n",
                o.device.c_str(), outputs_on_gpu, outputs.size());
  }
  std::printf("runs        %d timed after %d warm-up; first run %.2f ms\n", o.iterations,
              std::max(o.warmup, 1), first_ms);
  std::printf(
      "latency     min %.3f  mean %.3f  median %.3f  p90 %.3f  p95 %.3f  p99 %.3f ms"
      "  (CV %.1f%%)\n",
      lat.min, lat.mean, lat.median, lat.p90, lat.p95, lat.p99, 100 * lat.cv());
  std::printf("throughput  %.2f inferences/s = %.2f samples/s\n", inferences_per_s, samples_per_s);
  if (lat.cv() > kNoisyCv) {
    std::printf(
        "warning: noisy run: the coefficient of variation of the latency is %.1f%% "
        "(> %.0f%%); other load on the machine? Use more --iterations or a quieter "
        "machine.\n",
        100 * lat.cv(), 100 * kNoisyCv);
  }
  if (o.convert) {
    // Run-time engine activity (builds, cache hits, ...). Engines built at conversion time and
    // embedded in the graph need none of it: say so instead of "none".
    const std::string counters = FormatEngineCacheCounters(GetEngineCacheCounters());
    std::printf("engines     %s\n",
                counters == "none" ? "no engine built or loaded while running"
                                   : counters.c_str());
  }
  if (o.batch_sweep && o.convert) {
    // Every batch up to the converter's max_batch_size, in random order, twice each: static
    // engines serve them all, so no engine should be built (issue 6).
    const int64_t max_batch = o.max_batch > 0 ? o.max_batch : batch;
    std::vector<int64_t> order;
    for (int64_t b = 1; b <= max_batch; ++b) order.push_back(b);
    std::mt19937 rng(o.seed + 17);
    std::shuffle(order.begin(), order.end(), rng);
    const EngineCacheCounters before = GetEngineCacheCounters();
    std::printf("batch sweep (random order; first and second run of each batch):\n");
    for (int64_t b : order) {
      auto specs = BatchShapeSpecs(session->inputs(), args, b, false);
      if (!specs.ok()) return Fail(specs.status());
      auto bf = MakeFeeds(session->inputs(), {}, *specs, o.seed + static_cast<uint32_t>(b),
                          [&graph](const std::string& n) { return graph.ResolveName(n); });
      if (!bf.ok()) return Fail(bf.status());
      double t[2];
      for (double& ms_b : t) {
        const auto t0 = std::chrono::steady_clock::now();
        auto r = session->Run(*bf, fetches);
        ms_b = MsSince(t0);
        if (!r.ok()) return Fail(r.status().WithContext("batch " + std::to_string(b)));
      }
      std::printf("  batch %3lld  %9.3f ms  %9.3f ms\n", static_cast<long long>(b), t[0], t[1]);
    }
    const EngineCacheCounters after = GetEngineCacheCounters();
    std::printf("  engine builds during the sweep: %lld (run-time cache misses %lld)\n",
                static_cast<long long>(after.builds - before.builds),
                static_cast<long long>(after.misses - before.misses));
  }

  std::string compare_json;
  if (native) {
    auto err = CompareOutputs(outputs, native_outputs, names);
    if (!err.ok()) return Fail(err.status());
    const LatencyStats nat = Summarize(native_times);
    const double speedup = nat.median / lat.median;
    std::printf("native      median %.3f ms (first run %.2f ms, CV %.1f%%); speed-up %.2fx\n",
                nat.median, native_first_ms, 100 * nat.cv(), speedup);
    std::printf("error       max abs %.3g, rel L2 %.3g (converted vs native, worst output)\n",
                err->max_abs, err->rel_l2);
    compare_json = ",\n  \"compare\": {\"max_abs_error\": " + JsonNumber(err->max_abs) +
                   ", \"rel_l2_error\": " + JsonNumber(err->rel_l2) +
                   ", \"speedup\": " + JsonNumber(speedup) +
                   ", \"native_median_ms\": " + JsonNumber(nat.median) +
                   ", \"native_latency_ms\": " + StatsJson(nat) + "}";
  }

  if (auto dir = args.Get("output-dir")) {
    std::error_code ec;
    std::filesystem::create_directories(*dir, ec);
    if (ec)
      return Fail(InvalidArgument("cannot create --output-dir " + *dir + ": " + ec.message()));
    std::set<std::string> used;
    for (size_t k = 0; k < outputs.size(); ++k) {
      std::string file = SanitizeFileName(names[k]);
      for (int n = 1; used.count(file); ++n)
        file = SanitizeFileName(names[k]) + "_" + std::to_string(n);
      used.insert(file);
      const std::string path = (std::filesystem::path(*dir) / (file + ".npy")).string();
      if (Status w = WriteNpyFile(path, outputs[k]); !w.ok()) return Fail(w);
    }
  }
  if (auto file = args.Get("json")) {
    std::ostringstream js;
    js << "{\n  \"model\": " << JsonEscape(o.model) << ",\n  \"batch\": " << batch
       << ",\n  \"precision\": " << JsonEscape(o.precision) << ",\n  \"threads\": " << threads
       << ",\n  \"device\": " << JsonEscape(o.device)
       << ",\n  \"io\": " << JsonEscape(o.io_device ? "device" : "host")
       << ",\n  \"converted\": " << (o.convert ? "true" : "false")
       << ",\n  \"conversion\": " << conversion_json << ",\n  \"iterations\": " << o.iterations
       << ",\n  \"warmup\": " << o.warmup << ",\n  \"first_run_ms\": " << JsonNumber(first_ms)
       << ",\n  \"latency_ms\": " << StatsJson(lat)
       << ",\n  \"throughput_per_s\": " << JsonNumber(samples_per_s)
       << ",\n  \"inferences_per_s\": " << JsonNumber(inferences_per_s)
       << ",\n  \"cv\": " << JsonNumber(lat.cv()) << compare_json << "\n}\n";
    if (Status st = WriteFileAtomically(*file, js.str()); !st.ok()) {
      return Fail(InvalidArgument("cannot write --json: " + st.message()));
    }
  }
  return 0;
}

}  // namespace kiln::cli
