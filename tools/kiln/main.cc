// kiln — command-line front end.
//
//   kiln run MODEL [--input NAME=FILE.npy]... [--shape NAME=d0,d1,...]... [--outputs a,b]
//                  [--output-dir DIR] [--seed N] [--iterations N] [--profile]
//   kiln convert MODEL -o OUT [options]           (cmd_convert.cc)
//   kiln inspect MODEL [--json] [--profile]
//   kiln ops [--markdown]
//   kiln version
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>

#include "cli_util.h"
#include "commands.h"
#include "core/logging.h"
#include "io/npy/npy.h"
#include "ir/graph.h"
#include "kiln/session.h"
#include "ops/base/op_schema.h"

namespace kiln::cli {

void PrintEngines(const ModelInfo& info);               // cmd_convert.cc
std::string EnginesJson(const ModelInfo& info);         // cmd_convert.cc

namespace {

const char* kMainHelp = R"(kiln — an inference optimizer and runtime (the maintained successor of TF-TRT).

usage: kiln <command> [options]

commands:
  run       run a model on given or random inputs, print its outputs and time
  convert   convert a model: engines for the segments the CPU backend supports
  bench     time a model (converted, or --no-convert) like trtexec; --compare native
  inspect   describe a model: inputs, outputs, op histogram, ops kiln cannot run, engines
  ops       list kiln's op table
  cache     list or clear the disk engine cache (ls | clear)
  freeze    freeze a MetaGraph + checkpoint into a GraphDef (convert_variables_to_constants)
  serve     serve a model repository over KServe v2 HTTP (dynamic batching, /metrics)
  version   print kiln's version

`kiln <command> --help` shows a command's options.
Environment: KILN_LOG_LEVEL=DEBUG|INFO|WARNING|ERROR, KILN_MAX_TENSOR_BYTES=N,
KILN_ENGINE_CACHE=DIR, KILN_ENGINE_CACHE_MAX_BYTES=N, KILN_TACTIC_TIMING=1,
KILN_TIMING_CACHE=FILE (docs/engine_caches.md).
)";

const char* kRunHelp = R"(usage: kiln run MODEL [options]

Runs MODEL (.onnx) through kiln's runtime and prints each output and the time taken.

options:
  --input NAME=FILE.npy   feed input NAME from a .npy file (repeatable)
  --shape NAME=d0,d1,...  shape of a random input whose dimensions are not all known
                          (repeatable; unknown dimensions default to 1)
  --seed N                seed for random inputs (default 0); inputs not given with --input
                          get random, non-constant values
  --outputs a,b           fetch these values instead of the model's outputs
  --output-dir DIR        write each output to DIR/NAME.npy (characters outside
                          [A-Za-z0-9._-] in NAME become '_')
  --iterations N          run N times and report the median time (default 1)
  --profile               print the time of each node
  --engine-cache DIR      disk engine cache for engines built at run time (dynamic-mode
                          models; default KILN_ENGINE_CACHE; see `kiln cache --help`)
  --tags a,b              SavedModel directory: the MetaGraph's tag set (default serve)
  --signature KEY         SavedModel directory: the signature (default serving_default);
                          --input/--outputs accept its keys as well as tensor names
  --help                  show this help
)";

const char* kInspectHelp = R"(usage: kiln inspect MODEL [--json] [--profile]

Describes MODEL: format, opset, inputs and outputs with dtypes and shapes, the op histogram,
and every node kiln cannot run with the reason. Exits 0 even when some ops are unsupported.
For a converted model, each engine (kiln.EngineOp) with its layers: fused op, precision and
implementation, or why the engine would not run on this machine.

options:
  --json      print the same as JSON
  --profile   time each engine layer on random inputs (at the engine's build shapes)
  --tags a,b  SavedModel directory: the MetaGraph's tag set (default serve)
  --signature KEY  SavedModel directory: the signature (default serving_default)
  --help      show this help
)";

const char* kOpsHelp = R"(usage: kiln ops [--markdown]

Lists kiln's op table: each op, its input/output counts, attributes and allowed dtypes.

options:
  --markdown  print a Markdown table (as in docs/ops.md)
  --help      show this help
)";

int Fail(const Status& s) {
  std::cerr << "kiln: error: " << s.ToString() << "\n";
  return 1;
}

int Usage(const std::string& message, const char* help) {
  std::cerr << "kiln: " << message << "\n\n" << help;
  return 2;
}

int RunCommand(int argc, char** argv) {
  auto parsed = Args::Parse(argc, argv,
                            {"input", "shape", "seed", "outputs", "output-dir", "iterations",
                             "engine-cache", "tags", "signature"},
                            {"help", "profile"});
  if (!parsed.ok()) return Usage(parsed.status().message(), kRunHelp);
  const Args& args = *parsed;
  if (args.Has("help")) {
    std::cout << kRunHelp;
    return 0;
  }
  if (args.positionals().size() != 1) return Usage("run needs exactly one MODEL", kRunHelp);
  const std::string model = args.positionals()[0];
  uint32_t seed = 0;
  int iterations = 1;
  try {
    if (auto s = args.Get("seed")) seed = static_cast<uint32_t>(std::stoul(*s));
    if (auto s = args.Get("iterations")) iterations = std::stoi(*s);
  } catch (const std::exception&) {
    return Usage("--seed and --iterations take non-negative integers", kRunHelp);
  }
  if (iterations < 1) return Usage("--iterations must be at least 1", kRunHelp);

  const auto t0 = std::chrono::steady_clock::now();
  SessionOptions session_options;
  if (auto dir = args.Get("engine-cache")) session_options.engine_cache_dir = *dir;
  session_options.load = LoadOptionsFromArgs(args);
  auto session = Session::Load(model, session_options);
  if (!session.ok()) return Fail(session.status());
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const Graph& graph = (*session)->graph();
  auto feeds = MakeFeeds((*session)->inputs(), args.GetAll("input"), args.GetAll("shape"), seed,
                         [&graph](const std::string& n) { return graph.ResolveName(n); });
  if (!feeds.ok()) return Fail(feeds.status());
  std::vector<std::string> fetches;
  if (auto o = args.Get("outputs")) fetches = SplitList(*o);

  RunOptions options;
  options.profile = args.Has("profile");
  std::vector<double> times;
  StatusOr<std::vector<Tensor>> outputs = Status(InvalidArgument("not run"));
  RunStats stats;
  for (int i = 0; i < iterations; ++i) {
    stats = RunStats();
    outputs = (*session)->Run(*feeds, fetches, options, &stats);
    if (!outputs.ok()) return Fail(outputs.status());
    times.push_back(stats.total_ms);
  }
  std::printf("model   %s\n", model.c_str());
  for (const auto& [name, t] : *feeds) {
    std::printf("input   %s: %s\n", name.c_str(), t.TypeString().c_str());
  }
  const auto& names = fetches.empty() ? (*session)->graph_output_names() : fetches;
  for (size_t k = 0; k < outputs->size(); ++k) {
    std::printf("output  %s: %s\n", names[k].c_str(), SummarizeTensor((*outputs)[k]).c_str());
  }
  std::sort(times.begin(), times.end());
  std::printf("time    load %.1f ms, run %.2f ms%s\n", load_ms, times[times.size() / 2],
              iterations > 1 ? (" (median of " + std::to_string(iterations) + ")").c_str() : "");
  if (options.profile) {
    std::printf("\nprofile (last run):\n  %10s  %-20s %s\n", "ms", "op", "node");
    for (const auto& p : stats.nodes) {
      std::printf("  %10.3f  %-20s %s\n", p.ms, p.op_type.c_str(), p.node.c_str());
    }
  }
  if (auto dir = args.Get("output-dir")) {
    std::error_code ec;
    std::filesystem::create_directories(*dir, ec);
    if (ec) return Fail(InvalidArgument("cannot create --output-dir " + *dir + ": " + ec.message()));
    std::set<std::string> used;
    for (size_t k = 0; k < outputs->size(); ++k) {
      std::string file = SanitizeFileName(names[k]);
      for (int n = 1; used.count(file); ++n) file = SanitizeFileName(names[k]) + "_" + std::to_string(n);
      used.insert(file);
      std::string path = (std::filesystem::path(*dir) / (file + ".npy")).string();
      Status st = WriteNpyFile(path, (*outputs)[k]);
      if (!st.ok()) return Fail(st);
      std::printf("wrote   %s\n", path.c_str());
    }
  }
  return 0;
}

std::string InfoLine(const TensorInfo& t) {
  return std::string(DataTypeName(t.dtype)) + t.shape.ToString();
}

int InspectCommand(int argc, char** argv) {
  auto parsed = Args::Parse(argc, argv, {"tags", "signature"}, {"help", "json", "profile"});
  if (!parsed.ok()) return Usage(parsed.status().message(), kInspectHelp);
  const Args& args = *parsed;
  if (args.Has("help")) {
    std::cout << kInspectHelp;
    return 0;
  }
  if (args.positionals().size() != 1) return Usage("inspect needs exactly one MODEL", kInspectHelp);
  InspectOptions options;
  options.profile = args.Has("profile");
  options.load = LoadOptionsFromArgs(args);
  auto info = InspectModel(args.positionals()[0], options);
  if (!info.ok()) return Fail(info.status());
  if (args.Has("json")) {
    std::ostringstream os;
    auto tensors = [&os](const std::vector<TensorInfo>& v) {
      os << "[";
      for (size_t k = 0; k < v.size(); ++k) {
        os << (k ? ", " : "") << "{\"name\": " << JsonEscape(v[k].name)
           << ", \"dtype\": " << JsonEscape(DataTypeName(v[k].dtype)) << ", \"shape\": ";
        if (!v[k].shape.rank_known()) {
          os << "null";
        } else {
          os << "[";
          for (int d = 0; d < v[k].shape.rank(); ++d) {
            os << (d ? ", " : "");
            if (v[k].shape.dim(d) < 0) os << "null"; else os << v[k].shape.dim(d);
          }
          os << "]";
        }
        os << "}";
      }
      os << "]";
    };
    os << "{\n  \"path\": " << JsonEscape(info->path) << ",\n  \"format\": "
       << JsonEscape(info->format) << ",\n  \"opset\": " << info->opset
       << ",\n  \"nodes\": " << info->num_nodes << ",\n  \"initializers\": "
       << info->num_initializers << ",\n  \"parameter_bytes\": " << info->parameter_bytes
       << ",\n  \"inputs\": ";
    tensors(info->inputs);
    os << ",\n  \"outputs\": ";
    tensors(info->outputs);
    os << ",\n  \"op_histogram\": {";
    bool first = true;
    for (const auto& [op, n] : info->op_histogram) {
      os << (first ? "" : ", ") << JsonEscape(op) << ": " << n;
      first = false;
    }
    os << "},\n  \"runnable\": " << (info->unsupported.empty() ? "true" : "false")
       << ",\n  \"unsupported\": [";
    for (size_t k = 0; k < info->unsupported.size(); ++k) {
      const auto& u = info->unsupported[k];
      os << (k ? ", " : "") << "{\"node\": " << JsonEscape(u.node)
         << ", \"op\": " << JsonEscape(u.op_type) << ", \"reason\": " << JsonEscape(u.reason)
         << "}";
    }
    os << "],\n  \"engines\": " << EnginesJson(*info) << ",\n  \"control_flow\": [";
    for (size_t k = 0; k < info->control_flow.size(); ++k) {
      const auto& c = info->control_flow[k];
      os << (k ? ", " : "") << "{\"node\": " << JsonEscape(c.node) << ", \"op\": "
         << JsonEscape(c.op_type) << ", \"origin\": " << JsonEscape(c.origin)
         << ", \"depth\": " << c.depth << ", \"bodies\": {";
      for (size_t b = 0; b < c.bodies.size(); ++b) {
        os << (b ? ", " : "") << JsonEscape(c.bodies[b].first) << ": " << c.bodies[b].second;
      }
      os << "}, \"engines\": " << c.engines << ", \"unsupported\": " << c.unsupported << "}";
    }
    os << "]\n}\n";
    std::cout << os.str();
    return 0;
  }
  std::printf("model        %s\nformat       %s (opset %lld)\nnodes        %lld\n"
              "parameters   %lld tensors, %.2f MB\n",
              info->path.c_str(), info->format.c_str(), static_cast<long long>(info->opset),
              static_cast<long long>(info->num_nodes),
              static_cast<long long>(info->num_initializers), info->parameter_bytes / 1e6);
  std::printf("\ninputs\n");
  for (const auto& t : info->inputs) std::printf("  %-32s %s\n", t.name.c_str(), InfoLine(t).c_str());
  std::printf("\noutputs\n");
  for (const auto& t : info->outputs) std::printf("  %-32s %s\n", t.name.c_str(), InfoLine(t).c_str());
  std::printf("\nops\n");
  for (const auto& [op, n] : info->op_histogram) std::printf("  %-32s %lld\n", op.c_str(), static_cast<long long>(n));
  if (!info->control_flow.empty()) {  // loops and branches, nested ones indented
    std::printf("\ncontrol flow\n");
    for (const auto& c : info->control_flow) {
      std::string bodies;
      for (const auto& [attr, n] : c.bodies) {
        bodies += (bodies.empty() ? "" : ", ") + attr + " " + std::to_string(n) + " nodes";
      }
      std::printf("  %*s%s %s%s: %s; %s\n", 2 * c.depth, "", c.op_type.c_str(), c.node.c_str(),
                  c.origin.empty() ? "" : (" (from " + c.origin + ")").c_str(), bodies.c_str(),
                  c.unsupported > 0 ? (std::to_string(c.unsupported) + " node(s) kiln cannot run").c_str()
                  : c.engines > 0 ? (std::to_string(c.engines) + " engine(s) inside").c_str()
                                  : "bodies run on kiln's kernels, not converted to engines");
    }
  }
  if (info->unsupported.empty()) {
    std::printf("\nkiln can run every node of this model.\n");
  } else {
    std::printf("\nkiln cannot run %zu node(s):\n", info->unsupported.size());
    for (const auto& u : info->unsupported) {
      std::printf("  %s (%s): %s\n", u.node.c_str(), u.op_type.c_str(), u.reason.c_str());
    }
  }
  PrintEngines(*info);
  return 0;
}

int OpsCommand(int argc, char** argv) {
  auto parsed = Args::Parse(argc, argv, {}, {"help", "markdown"});
  if (!parsed.ok()) return Usage(parsed.status().message(), kOpsHelp);
  if (parsed->Has("help")) {
    std::cout << kOpsHelp;
    return 0;
  }
  const bool md = parsed->Has("markdown");
  const auto all = OpRegistry::Global().All();
  auto arity = [](int lo, int hi) {
    if (hi == OpSchema::kVariadic) return std::to_string(lo) + "+";
    return lo == hi ? std::to_string(lo) : std::to_string(lo) + "-" + std::to_string(hi);
  };
  if (md) {
    std::printf("# kiln op table\n\nGenerated by `kiln ops --markdown` from the op table "
                "(src/ops/). Semantics are ONNX's (opset 17+); every op has a reference kernel "
                "and a shape function.\n\n%zu ops.\n\n"
                "| op | inputs | outputs | attributes | input 0 dtypes |\n|---|---|---|---|---|\n",
                all.size());
  }
  for (const OpSchema* s : all) {
    std::string attrs;
    for (const auto& a : s->attrs()) {
      attrs += (attrs.empty() ? "" : ", ") + a.name;
      if (a.has_default) attrs += "=" + a.default_value.ToString();
      if (a.required) attrs += " (required)";
    }
    std::string types;
    if (const TypeList* t = s->input_types(0)) {
      for (DataType d : *t) types += (types.empty() ? "" : " ") + std::string(DataTypeName(d));
    } else {
      types = "any";
    }
    std::string name = s->domain().empty() ? s->name() : s->domain() + "." + s->name();
    if (md) {
      for (auto& c : attrs) if (c == '|') c = '/';
      std::printf("| %s | %s | %s | %s | %s |\n", name.c_str(),
                  arity(s->min_inputs(), s->max_inputs()).c_str(),
                  arity(s->min_outputs(), s->max_outputs()).c_str(), attrs.c_str(), types.c_str());
    } else {
      std::printf("%-28s in %-5s out %-5s %s\n", name.c_str(),
                  arity(s->min_inputs(), s->max_inputs()).c_str(),
                  arity(s->min_outputs(), s->max_outputs()).c_str(), attrs.c_str());
    }
  }
  return 0;
}

}  // namespace
}  // namespace kiln::cli

int main(int argc, char** argv) {
  using namespace kiln::cli;
  if (argc < 2) {
    std::cerr << kMainHelp;
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << kMainHelp;
    return 0;
  }
  if (cmd == "version" || cmd == "--version") {
    std::printf("kiln %s\n", kiln::Version());
    return 0;
  }
  if (cmd == "run") return RunCommand(argc - 2, argv + 2);
  if (cmd == "convert") return ConvertCommand(argc - 2, argv + 2);
  if (cmd == "bench") return BenchCommand(argc - 2, argv + 2);
  if (cmd == "inspect") return InspectCommand(argc - 2, argv + 2);
  if (cmd == "ops") return OpsCommand(argc - 2, argv + 2);
  if (cmd == "cache") return CacheCommand(argc - 2, argv + 2);
  if (cmd == "freeze") return FreezeCommand(argc - 2, argv + 2);
#ifdef KILN_NO_SERVE
  if (cmd == "serve") {
    std::fprintf(stderr,
                 "kiln: this kiln was built without `kiln serve` (-DKILN_BUILD_SERVE=OFF: no "
                 "cpp-httplib / gRPC on the build machine)\n");
    return 2;
  }
#else
  if (cmd == "serve") return ServeCommand(argc - 2, argv + 2);
#endif
  std::cerr << "kiln: unknown command '" << cmd << "'\n\n" << kMainHelp;
  return 2;
}
