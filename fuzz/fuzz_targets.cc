// fuzz/fuzz_targets.cc — see fuzz_targets.h.
#include "fuzz/fuzz_targets.h"

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/lean_weights.h"
#include "backends/cpu/lowering.h"
#include "engine/calibrator.h"
#include "engine/plan.h"
#include "io/npy/npy.h"
#include "io/onnx/onnx_import.h"
#include "io/tf/graphdef_import.h"
#include "io/tf/saved_model.h"
#include "io/tf/tensor_bundle.h"
#include "io/tf/tfjs_import.h"
#include "tensorflow.pb.h"

namespace kiln::fuzz {
namespace {

namespace fs = std::filesystem;

// A per-process scratch directory under TMPDIR, removed at exit.
class Scratch {
 public:
  Scratch() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                          "/kiln-fuzz-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) root_ = pattern;
  }
  ~Scratch() {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }
  // An empty directory `name` inside the scratch directory (emptied on every call).
  std::string Fresh(const std::string& name) const {
    std::error_code ec;
    const fs::path dir = fs::path(root_) / name;
    fs::remove_all(dir, ec);
    fs::create_directories(dir, ec);
    return dir.string();
  }
  bool ok() const { return !root_.empty(); }

 private:
  std::string root_;
};

const Scratch& GetScratch() {
  static const Scratch scratch;
  return scratch;
}

bool WriteFile(const fs::path& path, std::string_view data) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  return static_cast<bool>(f);
}

bool SafeRelativeName(std::string_view name) {
  if (name.empty() || name.front() == '/') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '/';
    if (!ok) return false;
  }
  for (const auto& part : fs::path(std::string(name))) {
    if (part == "..") return false;
  }
  return true;
}

// Unpacks the archive format of fuzz_targets.h into `dir`.
void UnpackTree(std::string_view in, const std::string& dir) {
  size_t pos = 0;
  while (pos < in.size()) {
    const size_t name_len = static_cast<uint8_t>(in[pos++]);
    if (in.size() - pos < name_len) return;
    const std::string_view name = in.substr(pos, name_len);
    pos += name_len;
    uint32_t len = 0;
    for (int k = 0; k < 4 && pos < in.size(); ++k) {
      len |= static_cast<uint32_t>(static_cast<uint8_t>(in[pos++])) << (8 * k);
    }
    const size_t n = std::min<size_t>(len, in.size() - pos);
    if (SafeRelativeName(name)) WriteFile(fs::path(dir) / std::string(name), in.substr(pos, n));
    pos += n;
  }
}

Status NoScratch() { return Internal("fuzz harness: cannot create a scratch directory"); }

// ---------------------------------------------------------------------------- the targets

Status Onnx(std::string_view bytes) {
  const Scratch& s = GetScratch();
  if (!s.ok()) return NoScratch();
  // External data resolves against a directory holding one small file, so that the external
  // data code (offsets, lengths, path confinement) is reachable.
  const std::string dir = s.Fresh("onnx");
  std::string blob(4096, '\0');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 131 + 7);
  WriteFile(fs::path(dir) / "data.bin", blob);
  return ImportOnnxBytes(bytes, "fuzz.onnx", dir).status();
}

Status GraphDef(std::string_view bytes, bool text) {
  tfpb::GraphDef gd;
  KILN_RETURN_IF_ERROR(ParseGraphDef(std::string(bytes), text, text ? "fuzz.pbtxt" : "fuzz.pb", &gd));
  TfImportOptions options;
  options.source = text ? "fuzz.pbtxt" : "fuzz.pb";
  return ImportGraphDef(gd, options).status();
}
Status GraphDefPb(std::string_view bytes) { return GraphDef(bytes, false); }
Status GraphDefPbtxt(std::string_view bytes) { return GraphDef(bytes, true); }

Status Tfjs(std::string_view bytes) {
  const Scratch& s = GetScratch();
  if (!s.ok()) return NoScratch();
  const std::string dir = s.Fresh("tfjs");
  UnpackTree(bytes, dir);
  return ImportTfjsModel((fs::path(dir) / "model.json").string()).status();
}

Status SavedModel(std::string_view bytes) {
  const Scratch& s = GetScratch();
  if (!s.ok()) return NoScratch();
  const std::string dir = s.Fresh("saved_model");
  UnpackTree(bytes, dir);
  return LoadSavedModel(dir).status();
}

Status TensorBundle(std::string_view bytes) {
  const Scratch& s = GetScratch();
  if (!s.ok()) return NoScratch();
  const std::string dir = s.Fresh("bundle");
  UnpackTree(bytes, dir);
  KILN_ASSIGN_OR_RETURN(TensorBundleReader reader,
                        TensorBundleReader::Open((fs::path(dir) / "variables").string()));
  Status first;
  for (const std::string& key : reader.keys()) {
    auto t = reader.Read(key);
    if (!t.ok() && first.ok()) first = t.status();
  }
  if (reader.keys().empty()) return InvalidArgument("fuzz: bundle without tensors");
  return first;
}

Status Npy(std::string_view bytes) { return ParseNpy(bytes, "fuzz.npy").status(); }
Status Npz(std::string_view bytes) { return ParseNpz(bytes, "fuzz.npz").status(); }

// An engine plan ("KILNPLAN" container: ReadPlan) or a bare CPU engine payload; either way the
// payload goes through the CPU backend's Deserialize (ParseProgram, CheckFused, engine build),
// as the EngineOp does with a plan that passed its header checks.
Status Plan(std::string_view bytes) {
  std::string_view payload = bytes;
  std::pair<PlanHeader, std::string> plan;
  if (bytes.substr(0, 8) == "KILNPLAN") {
    KILN_ASSIGN_OR_RETURN(plan, ReadPlan(bytes));
    payload = plan.second;
  }
  std::vector<cpu::ConstSource> sources;  // lean plans: their constants come from the segment
  KILN_ASSIGN_OR_RETURN(cpu::Program p, cpu::ParseProgram(payload, &sources));
  BuildConfig config;
  int64_t elements = 0;
  for (int id : p.inputs) {
    if (id < 0 || static_cast<size_t>(id) >= p.tensors.size()) {
      return InvalidArgument("fuzz: input id out of range");
    }
    const auto& dims = p.tensors[static_cast<size_t>(id)].dims;
    int64_t n = 1;
    for (int64_t d : dims) {
      if (d <= 0 || d > (int64_t{1} << 20)) return InvalidArgument("fuzz: input dims too large");
      n *= d;
      if (n > (int64_t{1} << 20)) return InvalidArgument("fuzz: input too large");
    }
    elements += n;
    config.input_shapes.push_back(dims);
  }
  if (elements > (int64_t{1} << 22)) return InvalidArgument("fuzz: inputs too large");
  if (!config.input_shapes.empty() && !config.input_shapes[0].empty()) {
    config.max_batch_size = config.input_shapes[0][0];
  }
  Graph segment;
  segment.inputs.resize(p.inputs.size());
  segment.outputs.resize(p.outputs.size());
  return CpuBackend().Deserialize(payload, segment, config).status();
}

Status CalibrationTableText(std::string_view bytes) {
  return CalibrationTable::Parse(std::string(bytes), "fuzz.calib").status();
}

}  // namespace

const std::vector<Target>& Targets() {
  static const std::vector<Target> targets = {
      {"onnx", Onnx},
      {"graphdef_pb", GraphDefPb},
      {"graphdef_pbtxt", GraphDefPbtxt},
      {"tfjs", Tfjs},
      {"saved_model", SavedModel},
      {"tensor_bundle", TensorBundle},
      {"npy", Npy},
      {"npz", Npz},
      {"plan", Plan},
      {"calibration_table", CalibrationTableText},
  };
  return targets;
}

const Target* FindTarget(std::string_view name) {
  for (const Target& t : Targets()) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

void InitForFuzzing() {
  // 64 MiB per tensor: enough for every seed, small enough that a header promising a huge
  // tensor is rejected by the cap rather than tripping libFuzzer's malloc limit.
  setenv("KILN_MAX_TENSOR_BYTES", "67108864", 0);
  setenv("KILN_LOG_LEVEL", "ERROR", 0);
}

std::string PackTree(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string out;
  for (const auto& [name, data] : files) {
    out.push_back(static_cast<char>(name.size() & 0xff));
    out += name.substr(0, 255);
    const uint32_t n = static_cast<uint32_t>(data.size());
    for (int k = 0; k < 4; ++k) out.push_back(static_cast<char>((n >> (8 * k)) & 0xff));
    out += data;
  }
  return out;
}

}  // namespace kiln::fuzz
