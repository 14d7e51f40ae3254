// `kiln convert`: TF-TRT's create_inference_graph from the command line, and the engine part
// of `kiln inspect` (each EngineOp's layers, TensorRT engine-inspector style).
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "calib_data.h"
#include "cli_util.h"
#include "core/file_util.h"
#include "core/logging.h"
#include "convert/convert_internal.h"
#include "kiln/convert.h"
#include "kiln/session.h"
#include "runtime/model_loader.h"

namespace kiln::cli {
namespace {

const char* kConvertHelp = R"(usage: kiln convert MODEL -o OUT [options]

Converts MODEL: clean-up passes, then every segment of nodes the engine backend supports
becomes one kiln.EngineOp whose engine is built now (static mode, for --max-batch-size) and
embedded in OUT (ONNX), with the original nodes kept as its native fallback. Prints a summary:
each engine's node count, op histogram, inputs/outputs and build time, the share of nodes
converted, and why the other nodes were not.

options:
  -o, --output OUT             where to write the converted model (required)
  --precision P                fp32 (default), fp16 or bf16: each layer runs in the fastest
                               precision the mode allows that has a kernel on this machine
                               (docs/precision.md); `kiln inspect` shows what each layer got;
                               int8: conv / matmul layers in INT8 from calibration ranges;
                               fp8 (--device cuda, compute 8.9+): matmuls in FP8 E4M3 from
                               the same ranges (the --calib-* options apply), the rest FP16
  --calib-data PATH            int8 / fp8: calibration batches: a directory of .npz files
                               (one batch each, an array per input) or of .npy files
                               (single-input model), or one .npz. fp16 / bf16 with
                               --max-accuracy-loss: the batches the error is measured on
  --calib-method M             int8 / fp8: entropy (default), minmax or percentile
  --calib-percentile P         int8 / fp8: the percentile calibrator's percentile (default
                               99.99)
  --calib-cache FILE           int8 / fp8: calibration table: read when FILE exists (no data
                               needed), written after calibrating otherwise
  --max-accuracy-loss X        with --calib-data: keep the layers whose reduced precision
                               hurts most in higher precision until the outputs' rel. L2 error
                               vs FP32 on that data is at most X (reports them). int8: layers
                               out of INT8, then in FP32 if that is not enough; fp16 / bf16:
                               layers in FP32 (the data only measures the error)
  --fp32-layers a,b            conv / matmul nodes (by name) whose layers stay in FP32 in an
                               fp16 / bf16 / int8 engine (TensorRT's per-layer precision)
  --device D                   engine backend: cpu (default), cuda or cuda:N (GPU N; built
                               when CMake found CUDA + cuDNN)
  --max-batch-size N           largest batch the engines serve (default 1); larger batches
                               run the native segment
  --minimum-segment-size N     smallest segment worth an engine (default 3; -1: convert nothing)
  --max-workspace-size BYTES   scratch memory one engine layer may use (default 1 GiB)
  --input-shape NAME=d0,d1,.. declare an input's shape (-1: unknown, e.g. the batch); static
                               mode needs every non-batch input dimension known (repeatable)
  --outputs a,b                values to keep as outputs (never absorbed into engines)
  --denylist Op1,Op2           ops never put into engines (also KILN_OP_DENYLIST)
  --dynamic                    build engines at run time for the shapes seen (is_dynamic_op)
  --max-cached-engines N       engines kept per EngineOp in dynamic mode (default 1)
  --cached-engine-batches B,.. dynamic mode: build engines for these batches now (embedded)
  --no-runtime-build           dynamic mode: unseen shapes run the native segment instead of
                               building an engine (allow_build_at_runtime=false)
  --time-tactics               time each conv/matmul layer's oneDNN implementations and keep
                               the fastest (KILN_TACTIC_TIMING=1; slower builds)
  --timing-cache FILE          remember the timed choices in FILE (implies --time-tactics;
                               KILN_TIMING_CACHE): the next build skips the timing. The
                               CUDA backend (which always times) keeps its own in FILE.cudaN
  --engine-cache DIR           disk engine cache: reuse engines built before with the same
                               segment, config, device and kiln (default KILN_ENGINE_CACHE;
                               `kiln cache --help`)
  --json-summary FILE          also write the summary as JSON
  --tags a,b                   SavedModel MODEL: the MetaGraph's tag set (default serve)
  --signature KEY              SavedModel MODEL: the signature to convert (default
                               serving_default)
  --help                       show this help

OUT's form picks the format: .onnx -> ONNX; .pb / .pbtxt -> TensorFlow GraphDef (TF models);
anything else -> a SavedModel directory for TF models (engines in OUT/assets), ONNX otherwise.
)";

int Usage(const std::string& message) {
  std::cerr << "kiln: " << message << "\n\n" << kConvertHelp;
  return 2;
}

bool ParseInt(const std::string& text, int64_t* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

std::string Ms(double ms) {
  if (ms < 0) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f ms", ms);
  return buf;
}

}  // namespace

int ConvertCommand(int argc, char** argv) {
  std::vector<std::string> storage;
  for (int i = 0; i < argc; ++i)
    storage.push_back(argv[i] == std::string("-o") ? "--output" : argv[i]);
  std::vector<char*> rewritten;
  for (auto& s : storage) rewritten.push_back(s.data());
  auto parsed = Args::Parse(
      static_cast<int>(rewritten.size()), rewritten.data(),
      {"output", "precision", "device", "max-batch-size", "minimum-segment-size",
       "max-workspace-size", "outputs", "json-summary", "denylist", "max-cached-engines",
       "input-shape",
       "engine-cache", "cached-engine-batches", "timing-cache", "tags", "signature", "calib-data",
       "calib-method", "calib-cache", "calib-percentile", "max-accuracy-loss", "fp32-layers"},
      {"help", "dynamic", "no-runtime-build", "time-tactics"});
  if (!parsed.ok()) return Usage(parsed.status().message());
  const Args& args = *parsed;
  if (args.Has("help")) {
    std::cout << kConvertHelp;
    return 0;
  }
  if (args.positionals().size() != 1) return Usage("convert needs exactly one MODEL");
  if (!args.Has("output")) return Usage("convert needs -o OUT");
  ConversionParams params;
  struct IntOption {
    const char* name;
    int64_t* target;
  };
  int64_t min_segment = params.minimum_segment_size;
  int64_t max_cached = params.maximum_cached_engines;
  for (IntOption o : {IntOption{"max-batch-size", &params.max_batch_size},
                      IntOption{"minimum-segment-size", &min_segment},
                      IntOption{"max-workspace-size", &params.max_workspace_size_bytes},
                      IntOption{"max-cached-engines", &max_cached}}) {
    if (auto v = args.Get(o.name); v && !ParseInt(*v, o.target)) {
      return Usage(std::string("--") + o.name + " takes an integer, got '" + *v + "'");
    }
  }
  params.minimum_segment_size = static_cast<int>(min_segment);
  params.maximum_cached_engines = static_cast<int>(max_cached);
  if (auto v = args.Get("precision")) params.precision_mode = *v;
  if (auto v = args.Get("device")) params.backend = *v;  // "cpu" (default), "cuda", "cuda:N"
  if (auto v = args.Get("outputs")) params.outputs = SplitList(*v);
  if (auto v = args.Get("denylist")) params.op_denylist = SplitList(*v);
  if (auto v = args.Get("fp32-layers")) params.fp32_layers = SplitList(*v);
  params.is_dynamic_op = args.Has("dynamic");
  params.allow_build_at_runtime = !args.Has("no-runtime-build");
  // Tactic timing is read by the CPU backend from the environment (backends/cpu/tactics.h).
  if (args.Has("time-tactics")) setenv("KILN_TACTIC_TIMING", "1", 1);
  if (auto v = args.Get("timing-cache")) setenv("KILN_TIMING_CACHE", v->c_str(), 1);
  if (auto v = args.Get("engine-cache")) params.engine_cache_dir = *v;
  if (auto v = args.Get("cached-engine-batches")) {
    for (const auto& b : SplitList(*v)) {
      int64_t batch = 0;
      if (!ParseInt(b, &batch)) return Usage("--cached-engine-batches: bad batch '" + b + "'");
      params.cached_engine_batches.push_back(batch);
    }
  }
  for (const auto& spec : args.GetAll("input-shape")) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos)
      return Usage("--input-shape takes NAME=d0,d1,..., got '" + spec + "'");
    std::vector<int64_t> dims;
    for (const auto& d : SplitList(spec.substr(eq + 1))) {
      int64_t v = 0;
      if (!ParseInt(d, &v))
        return Usage("--input-shape: bad dimension '" + d + "' in '" + spec + "'");
      dims.push_back(v);
    }
    params.input_shapes[spec.substr(0, eq)] = dims;
  }

  const std::string model = args.positionals()[0];
  const LoadOptions load = LoadOptionsFromArgs(args);
  params.input_saved_model_tags = load.saved_model_tags;
  params.input_saved_model_signature_key = load.saved_model_signature_key;
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
  };
  const auto t_load = Clock::now();
  auto graph = DetectModelFormat(model) == ModelFormat::kSavedModel
                   ? LoadGraphForConversion(model, params)
                   : LoadModelGraph(model);
  if (!graph.ok()) {
    std::cerr << "kiln: error: " << graph.status().ToString() << "\n";
    return 1;
  }
  KILN_LOG(DEBUG) << model << ": conversion phase: load " << ms_since(t_load) << " ms";
  auto calib_read_error = std::make_shared<Status>();  // INT8 (calib_data.h)
  if (Status st = ApplyCalibrationArgs(args, *graph, &params, calib_read_error); !st.ok()) {
    return Usage(st.message());
  }
  {
    std::string mode = params.precision_mode;
    for (auto& ch : mode) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (args.Get("calib-data") && mode != "int8" && mode != "fp8" &&
        !args.Get("max-accuracy-loss")) {
      std::cerr << "kiln: note: --calib-data is read by int8 / fp8 and by --max-accuracy-loss; "
                   "ignored here\n";
    }
  }
  auto converted = CreateInferenceGraph(std::move(graph).value(), params);
  if (!calib_read_error->ok()) converted = *calib_read_error;
  if (!converted.ok()) {
    std::cerr << "kiln: error: " << converted.status().ToString() << "\n";
    return 1;
  }
  const std::string out = *args.Get("output");
  const auto t_save = Clock::now();
  if (Status st = converted->Save(out); !st.ok()) {
    std::cerr << "kiln: error: " << st.ToString() << "\n";
    return 1;
  }
  KILN_LOG(DEBUG) << out << ": conversion phase: save " << ms_since(t_save) << " ms";
  std::cout << converted->summary().ToString() << "\nwrote " << out << "\n";
  if (auto json = args.Get("json-summary")) {
    if (Status st = WriteFileAtomically(*json, converted->summary().ToJson()); !st.ok()) {
      std::cerr << "kiln: error: --json-summary: " << st.ToString() << "\n";
      return 1;
    }
  }
  return 0;
}

void PrintEngines(const ModelInfo& info) {
  for (const auto& e : info.engines) {
    std::printf("\nengine %s (backend %s, %s, max batch %lld, native segment '%s' of %lld nodes)\n",
                e.node.c_str(), e.backend.c_str(), e.precision.c_str(),
                static_cast<long long>(e.max_batch_size), e.segment_func.c_str(),
                static_cast<long long>(e.segment_nodes));
    std::string specs;
    for (const auto& s : e.input_specs) specs += (specs.empty() ? "" : ", ") + s;
    std::printf("  status: %s\n  built for: %s\n", e.status.c_str(),
                specs.empty() ? "-" : specs.c_str());
    if (e.layers.empty()) continue;
    const bool timed = e.profiled_ms >= 0;
    std::printf("  %-4s %-28s %-36s %-6s %-28s%s\n", "#", "layer", "op", "prec", "implementation",
                timed ? " time" : "");
    for (size_t k = 0; k < e.layers.size(); ++k) {
      const auto& l = e.layers[k];
      std::printf("  %-4zu %-28s %-36s %-6s %-28s %s\n", k, l.name.c_str(), l.op.c_str(),
                  l.precision.c_str(), l.implementation.c_str(), timed ? Ms(l.ms).c_str() : "");
    }
    if (timed) std::printf("  engine total: %s per run\n", Ms(e.profiled_ms).c_str());
  }
}

std::string EnginesJson(const ModelInfo& info) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < info.engines.size(); ++i) {
    const auto& e = info.engines[i];
    os << (i ? ", " : "") << "{\"node\": " << JsonEscape(e.node)
       << ", \"backend\": " << JsonEscape(e.backend)
       << ", \"precision\": " << JsonEscape(e.precision)
       << ", \"max_batch_size\": " << e.max_batch_size
       << ", \"segment_func\": " << JsonEscape(e.segment_func)
       << ", \"segment_nodes\": " << e.segment_nodes << ", \"status\": " << JsonEscape(e.status)
       << ", \"profiled_ms\": " << (e.profiled_ms >= 0 ? std::to_string(e.profiled_ms) : "null")
       << ", \"layers\": [";
    for (size_t k = 0; k < e.layers.size(); ++k) {
      const auto& l = e.layers[k];
      os << (k ? ", " : "") << "{\"name\": " << JsonEscape(l.name)
         << ", \"op\": " << JsonEscape(l.op) << ", \"precision\": " << JsonEscape(l.precision)
         << ", \"implementation\": " << JsonEscape(l.implementation)
         << ", \"ms\": " << (l.ms >= 0 ? std::to_string(l.ms) : "null") << "}";
    }
    os << "]}";
  }
  os << "]";
  return os.str();
}

}  // namespace kiln::cli
