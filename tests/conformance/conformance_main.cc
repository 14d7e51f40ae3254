// kiln_conformance: runs ONNX backend test cases (Debian's libonnx-testdata) through the IR and
// the reference kernels and writes a table (case, result, reason).
//
// Each case runs in a forked child so a crash or hang is recorded as such instead of ending
// the run. A case is "unsupported" when its model uses an op that is not in kiln's op table
// (or a type kiln does not read), "excluded" when it tests a training-only op or compares
// random values (ExclusionReason). The pass rate that matters (--min-node-pass-rate) is over
// all node cases that are not excluded. Sequence and optional inputs/outputs are read as
// SequenceProto / OptionalProto, as the model's graph declares them.
//
//   kiln_conformance [--data DIR] [--filter REGEX] [--out FILE.md] [--min-node-pass-rate R]
//                    [--verbose]
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "io/onnx/onnx_import.h"
#include "ir/graph.h"
#include "kiln/session.h"
#include "onnx.pb.h"
#include "ops/base/op_schema.h"
#include "runtime/control_flow.h"
#include "runtime/model_loader.h"

namespace fs = std::filesystem;
using namespace kiln;

namespace {

struct CaseResult {
  std::string suite, name, result, reason, ops;
};

constexpr double kRtol = 1e-3;  // ONNX backend test defaults
constexpr double kAtol = 1e-7;

// Cases left out of the pass rate, with the reason. Training-only ops (ONNX's
// ai.onnx.preview.training domain) are outside an inference runtime; the random-valued cases
// compare against one draw of numpy's generator, which no other implementation reproduces (the
// ONNX test generator says so for Bernoulli).
std::string ExclusionReason(const std::string& name, const std::string& ops) {
  if (ops.find("ai.onnx.preview.training.") != std::string::npos) {
    return "training-only op (ai.onnx.preview.training)";
  }
  if (name.rfind("test_bernoulli", 0) == 0) {
    return "random output: ONNX's expected values are one numpy draw (informational only)";
  }
  if (name.rfind("test_training_dropout", 0) == 0 && name.find("zero_ratio") == std::string::npos) {
    return "random output: training-mode Dropout with ratio > 0 draws a random mask";
  }
  return "";
}

std::string CompareTensors(const Tensor& got, const Tensor& want) {
  if (want.is_none() || got.is_none()) {
    return want.is_none() && got.is_none() ? ""
                                           : "got " + got.TypeString() + ", expected " +
                                                 want.TypeString();
  }
  if (want.is_sequence() || got.is_sequence()) {
    if (!want.is_sequence() || !got.is_sequence()) {
      return "got " + got.TypeString() + ", expected " + want.TypeString();
    }
    if (got.sequence().size() != want.sequence().size()) {
      return "sequence of " + std::to_string(got.sequence().size()) + " items, expected " +
             std::to_string(want.sequence().size());
    }
    for (size_t k = 0; k < got.sequence().size(); ++k) {
      std::string d = CompareTensors(got.sequence()[k], want.sequence()[k]);
      if (!d.empty()) return "item " + std::to_string(k) + ": " + d;
    }
    return "";
  }
  if (got.dtype() != want.dtype()) {
    return std::string("dtype ") + DataTypeName(got.dtype()) + " != expected " +
           DataTypeName(want.dtype());
  }
  if (got.dims() != want.dims()) {
    return "shape " + DimsToString(got.dims()) + " != expected " + DimsToString(want.dims());
  }
  if (got.dtype() == DataType::kString) return got.BitwiseEqual(want) ? "" : "strings differ";
  for (int64_t i = 0; i < got.num_elements(); ++i) {
    double g = got.GetAsDouble(i), w = want.GetAsDouble(i);
    if (std::isnan(w) && std::isnan(g)) continue;
    if (std::isinf(w) && g == w) continue;
    if (!(std::fabs(g - w) <= kAtol + kRtol * std::fabs(w))) {
      std::ostringstream os;
      os << "element " << i << ": got " << g << ", expected " << w;
      return os.str();
    }
  }
  return "";
}

// ONNX 1.12's test data stores bfloat16 tensors as uint16 bit patterns (data_type 4).
Tensor FixBFloat16(Tensor t, DataType expected) {
  if (expected == DataType::kBFloat16 && t.dtype() == DataType::kUInt16) {
    return Tensor::Wrap(DataType::kBFloat16, t.dims(), t.raw_mutable_data(),
                        std::shared_ptr<void>(std::make_shared<Tensor>(t), t.raw_mutable_data()));
  }
  return t;
}

DataType DeclaredType(const Graph& g, const std::string& name) {
  const ValueInfo* vi = g.FindValueInfo(name);
  return vi ? vi->dtype : DataType::kUndefined;
}

// The declared types of the model's graph inputs and outputs (to read sequence values).
struct IoTypes {
  std::vector<onnxpb::TypeProto> inputs, outputs;
};

IoTypes ReadIoTypes(const fs::path& model_path) {
  IoTypes io;
  auto bytes = ReadFileToString(model_path.string());
  onnxpb::ModelProto model;
  if (!bytes.ok() || !ParseProtoWithLimits(*bytes, &model)) return io;
  std::set<std::string> inits;
  for (const auto& t : model.graph().initializer()) inits.insert(t.name());
  for (const auto& v : model.graph().input()) {
    if (!inits.count(v.name())) io.inputs.push_back(v.type());
  }
  for (const auto& v : model.graph().output()) io.outputs.push_back(v.type());
  return io;
}

// The innermost tensor element type of a (sequence / optional) type.
DataType ElementType(const onnxpb::TypeProto& type) {
  const onnxpb::TypeProto* t = &type;
  for (int depth = 0; depth < 4; ++depth) {
    if (t->has_sequence_type()) {
      t = &t->sequence_type().elem_type();
    } else if (t->has_optional_type()) {
      t = &t->optional_type().elem_type();
    } else {
      break;
    }
  }
  if (t->has_tensor_type() && IsValidDataType(t->tensor_type().elem_type())) {
    return static_cast<DataType>(t->tensor_type().elem_type());
  }
  return DataType::kUndefined;
}

StatusOr<Tensor> SequenceFromBytes(const std::string& bytes, const fs::path& path,
                                   const onnxpb::TypeProto& type);

// An OptionalProto (not in kiln's copy of onnx.proto), read field by field: elem_type (2),
// tensor_value (3), sequence_value (5). No value = an empty optional.
StatusOr<Tensor> OptionalFromBytes(const std::string& bytes, const fs::path& path,
                                   const onnxpb::TypeProto& type) {
  namespace pb = google::protobuf;
  pb::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                              static_cast<int>(bytes.size()));
  const onnxpb::TypeProto& elem = type.optional_type().elem_type();
  while (uint32_t tag = in.ReadTag()) {
    const uint32_t field = tag >> 3;
    if ((field == 3 || field == 5) &&
        pb::internal::WireFormatLite::GetTagWireType(tag) ==
            pb::internal::WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t len = 0;
      std::string value;
      if (!in.ReadVarint32(&len) || !in.ReadString(&value, static_cast<int>(len))) break;
      if (field == 5) return SequenceFromBytes(value, path, elem);
      onnxpb::TensorProto tp;
      if (!ParseProtoWithLimits(value, &tp)) break;
      return TensorFromProto(tp, path.parent_path().string());
    }
    if (!pb::internal::WireFormatLite::SkipField(&in, tag)) break;
  }
  if (!in.ConsumedEntireMessage()) return InvalidArgument(path.string() + ": not an OptionalProto");
  return Tensor::NoneOptional(ElementType(type));
}

// Reads a test value file: a SequenceProto or OptionalProto when `type` says so, else a
// TensorProto.
StatusOr<Tensor> ReadValueFile(const fs::path& path, const onnxpb::TypeProto* type) {
  if (type == nullptr || !(type->has_sequence_type() || type->has_optional_type())) {
    return ReadTensorProtoFile(path.string());
  }
  KILN_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path.string()));
  if (type->has_optional_type()) return OptionalFromBytes(bytes, path, *type);
  return SequenceFromBytes(bytes, path, *type);
}

StatusOr<Tensor> SequenceFromBytes(const std::string& bytes, const fs::path& path,
                                   const onnxpb::TypeProto& type) {
  onnxpb::SequenceProto seq;
  if (!ParseProtoWithLimits(bytes, &seq)) return InvalidArgument(path.string() + ": not a SequenceProto");
  std::vector<Tensor> items;
  for (const auto& tp : seq.tensor_values()) {
    KILN_ASSIGN_OR_RETURN(Tensor t, TensorFromProto(tp, path.parent_path().string()));
    items.push_back(std::move(t));
  }
  if (seq.sparse_tensor_values_size() || seq.sequence_values_size()) {
    return Unimplemented(path.string() + ": sequences of non-tensors");
  }
  DataType elem = ElementType(type);
  if (elem == DataType::kUndefined && !items.empty()) elem = items[0].dtype();
  return Tensor::Sequence(elem, std::move(items));
}

// Runs one case; returns "pass", or "fail|reason", or "unsupported|reason".
std::string RunCase(const fs::path& dir) {
  auto graph = LoadModelGraph((dir / "model.onnx").string());
  if (!graph.ok()) {
    return (graph.status().code() == StatusCode::kUnimplemented ? "unsupported|" : "fail|") +
           graph.status().message();
  }
  for (const auto& node : graph->nodes) {
    if (OpRegistry::Global().Find(node.domain, node.op_type) == nullptr) {
      return "unsupported|op " + (node.domain.empty() ? "" : node.domain + ".") + node.op_type +
             " is not in the op table";
    }
  }
  std::vector<std::string> input_names = graph->inputs;
  std::vector<std::string> output_names = graph->outputs;
  const IoTypes io = ReadIoTypes(dir / "model.onnx");
  auto type_of = [](const std::vector<onnxpb::TypeProto>& types, size_t k) {
    return k < types.size() ? &types[k] : nullptr;
  };
  auto session = Session::FromGraph(std::move(graph).value());
  if (!session.ok()) return "fail|" + session.status().ToString();
  int sets = 0;
  std::vector<fs::path> set_dirs;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) {
      set_dirs.push_back(e.path());
    }
  }
  std::sort(set_dirs.begin(), set_dirs.end());
  for (const auto& set : set_dirs) {
    Feeds feeds;
    for (size_t k = 0;; ++k) {
      fs::path p = set / ("input_" + std::to_string(k) + ".pb");
      if (!fs::exists(p)) break;
      auto t = ReadValueFile(p, type_of(io.inputs, k));
      if (!t.ok()) return "unsupported|input " + std::to_string(k) + ": " + t.status().message();
      if (k >= input_names.size()) return "fail|more input files than graph inputs";
      feeds.emplace_back(input_names[k],
                         FixBFloat16(std::move(t).value(),
                                     DeclaredType((*session)->graph(), input_names[k])));
    }
    auto out = (*session)->Run(feeds);
    if (!out.ok()) return "fail|" + out.status().ToString();
    for (size_t k = 0; k < output_names.size(); ++k) {
      fs::path p = set / ("output_" + std::to_string(k) + ".pb");
      if (!fs::exists(p)) continue;
      auto want = ReadValueFile(p, type_of(io.outputs, k));
      if (!want.ok()) return "unsupported|output " + std::to_string(k) + ": " + want.status().message();
      std::string diff =
          CompareTensors((*out)[k], FixBFloat16(*want, (*out)[k].dtype()));
      if (!diff.empty()) return "fail|output " + std::to_string(k) + " (" + output_names[k] + "): " + diff;
    }
    ++sets;
  }
  return sets > 0 ? "pass" : "fail|no test data sets";
}

std::string OpsOf(const fs::path& dir) {
  auto graph = ImportOnnxFile((dir / "model.onnx").string());
  if (!graph.ok()) return "";
  std::set<std::string> ops;
  for (const auto& n : graph->nodes) ops.insert(n.domain.empty() ? n.op_type : n.domain + "." + n.op_type);
  std::string s;
  for (const auto& o : ops) s += (s.empty() ? "" : " ") + o;
  return s;
}

CaseResult RunIsolated(const std::string& suite, const fs::path& dir) {
  CaseResult r{suite, dir.filename().string(), "", "", OpsOf(dir)};
  if (std::string why = ExclusionReason(r.name, r.ops); !why.empty()) {
    r.result = "excluded";
    r.reason = why;
    return r;
  }
  int fds[2];
  if (pipe(fds) != 0) {
    r.result = "fail";
    r.reason = "pipe failed";
    return r;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    alarm(120);
    std::string out = RunCase(dir);
    ssize_t w = write(fds[1], out.data(), out.size());
    (void)w;
    close(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  std::string msg;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    r.result = sig == SIGALRM ? "timeout" : "crash";
    r.reason = std::string("signal ") + strsignal(sig);
    return r;
  }
  auto bar = msg.find('|');
  r.result = msg.substr(0, bar);
  r.reason = bar == std::string::npos ? "" : msg.substr(bar + 1);
  if (r.result.empty()) {
    r.result = "crash";
    r.reason = "child exited without a result";
  }
  return r;
}

std::string Escape(std::string s) {
  for (auto& c : s) {
    if (c == '|') c = '/';
    if (c == '\n') c = ' ';
  }
  if (s.size() > 160) s = s.substr(0, 157) + "...";
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  RegisterControlFlowKernels();
  std::string data = "/usr/share/libonnx-testdata/data";
  std::string filter, out_path;
  double min_rate = -1;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--data") data = next();
    else if (a == "--filter") filter = next();
    else if (a == "--out") out_path = next();
    else if (a == "--min-node-pass-rate") min_rate = std::atof(next().c_str());
    else if (a == "--verbose" || a == "-v") verbose = true;
    else {
      std::cerr << "usage: kiln_conformance [--data DIR] [--filter REGEX] [--out FILE.md] "
                   "[--min-node-pass-rate R] [--verbose]\n";
      return 2;
    }
  }
  if (!fs::is_directory(data)) {
    std::cerr << "kiln_conformance: test data directory " << data
              << " not found (install Debian's libonnx-testdata)\n";
    return 2;
  }
  std::regex re(filter.empty() ? ".*" : filter);
  std::vector<CaseResult> results;
  const auto start = std::chrono::steady_clock::now();
  for (const char* suite : {"node", "simple", "pytorch-converted", "pytorch-operator"}) {
    fs::path sdir = fs::path(data) / suite;
    if (!fs::is_directory(sdir)) continue;
    std::vector<fs::path> cases;
    for (const auto& e : fs::directory_iterator(sdir)) {
      if (fs::exists(e.path() / "model.onnx") && std::regex_search(e.path().filename().string(), re)) {
        cases.push_back(e.path());
      }
    }
    std::sort(cases.begin(), cases.end());
    for (const auto& c : cases) {
      results.push_back(RunIsolated(suite, c));
      const auto& r = results.back();
      if (verbose || (!filter.empty() && r.result != "pass")) {
        std::cout << r.suite << "/" << r.name << ": " << r.result
                  << (r.reason.empty() ? "" : " — " + r.reason) << "\n";
      }
    }
  }
  std::map<std::string, std::map<std::string, int>> counts;
  for (const auto& r : results) ++counts[r.suite][r.result];
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ostringstream summary;
  summary << "| suite | cases | pass | fail | unsupported | crash | timeout | excluded | "
             "pass rate (cases not excluded) | pass rate (ops in table) |\n"
          << "|---|---|---|---|---|---|---|---|---|---|\n";
  double node_rate = 1;
  int crashes = 0;
  for (auto& [suite, c] : counts) {
    int total = 0;
    for (auto& [k, v] : c) total += v;
    const int counted = total - c["excluded"];
    int in_table = counted - c["unsupported"];
    double rate = in_table ? static_cast<double>(c["pass"]) / in_table : 1.0;
    double overall = counted ? static_cast<double>(c["pass"]) / counted : 1.0;
    if (suite == "node") node_rate = overall;
    crashes += c["crash"] + c["timeout"];
    char pct[32], all_pct[32];
    std::snprintf(pct, sizeof pct, "%.1f%%", 100 * rate);
    std::snprintf(all_pct, sizeof all_pct, "%.1f%%", 100 * overall);
    summary << "| " << suite << " | " << total << " | " << c["pass"] << " | " << c["fail"] << " | "
            << c["unsupported"] << " | " << c["crash"] << " | " << c["timeout"] << " | "
            << c["excluded"] << " | " << c["pass"] << "/" << counted << " = " << all_pct << " | "
            << c["pass"] << "/" << in_table << " = " << pct << " |\n";
  }
  std::cout << summary.str();
  std::printf("ran %zu cases in %.1f s\n", results.size(), secs);
  if (!out_path.empty()) {
    std::ofstream md(out_path + ".tmp");
    md << "# ONNX conformance\n\n"
       << "Generated by `kiln_conformance` (tests/conformance/) over Debian's `libonnx-testdata` "
          "(ONNX 1.12 backend test data), running every case through kiln's ONNX importer, IR "
          "verifier and reference kernels. Tolerance: rtol 1e-3, atol 1e-7 (ONNX's backend "
          "defaults). *unsupported* = the model uses an op that is not in kiln's op table (see "
          "`docs/ops.md`) or a type kiln does not read. *excluded* = training-only ops "
          "(ai.onnx.preview.training: Adagrad, Adam, Momentum, Gradient) and random-valued "
          "cases (Bernoulli, training-mode Dropout with ratio > 0), whose expected values are one "
          "numpy draw. The first pass rate counts every case not excluded (the target, and what "
          "`ctest -R onnx_conformance` checks); the second only cases whose ops are all in the "
          "table. Regenerate with `scripts/conformance.sh`.\n\n"
       << summary.str() << "\n";
    std::string current;
    for (const auto& r : results) {
      if (r.suite != current) {
        current = r.suite;
        md << "\n## " << current << "\n\n| case | result | ops | reason |\n|---|---|---|---|\n";
      }
      md << "| " << r.name << " | " << r.result << " | " << Escape(r.ops) << " | "
         << Escape(r.reason) << " |\n";
    }
    md.close();
    fs::rename(out_path + ".tmp", out_path);
  }
  if (crashes > 0) {
    std::cerr << crashes << " case(s) crashed or timed out\n";
    return 1;
  }
  if (min_rate >= 0 && node_rate < min_rate) {
    std::cerr << "node pass rate " << node_rate << " is below " << min_rate << "\n";
    return 1;
  }
  return 0;
}
