#include "calib_data.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "io/npy/npy.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The batch files of PATH, sorted by name.
StatusOr<std::vector<std::string>> BatchFiles(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    if (Lower(fs::path(path).extension().string()) != ".npz") {
      return InvalidArgument("--calib-data " + path +
                             ": a file must be an .npz (one batch); use a directory of .npy "
                             "files for several");
    }
    return std::vector<std::string>{path};
  }
  if (!fs::is_directory(path, ec)) {
    return InvalidArgument("--calib-data " + path + ": no such file or directory");
  }
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    const std::string ext = Lower(e.path().extension().string());
    if (e.is_regular_file() && (ext == ".npy" || ext == ".npz")) files.push_back(e.path().string());
  }
  if (ec) return InvalidArgument("--calib-data " + path + ": " + ec.message());
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    return InvalidArgument("--calib-data " + path + ": no .npy or .npz files in the directory");
  }
  return files;
}

StatusOr<Feeds> ReadBatch(const std::string& file, const Graph& graph) {
  if (Lower(fs::path(file).extension().string()) == ".npz") {
    KILN_ASSIGN_OR_RETURN(NamedTensors arrays, ReadNpzFile(file));
    Feeds feeds;
    for (auto& [name, t] : arrays) feeds.emplace_back(graph.ResolveName(name), std::move(t));
    return feeds;
  }
  if (graph.inputs.size() != 1) {
    return InvalidArgument(file + ": a .npy batch feeds a single-input model; this one has " +
                           std::to_string(graph.inputs.size()) +
                           " inputs (use one .npz per batch, an array per input)");
  }
  KILN_ASSIGN_OR_RETURN(Tensor t, ReadNpyFile(file));
  return Feeds{{graph.inputs[0], std::move(t)}};
}

}  // namespace

Status ApplyCalibrationArgs(const Args& args, const Graph& graph, ConversionParams* params,
                            std::shared_ptr<Status> read_error) {
  if (auto v = args.Get("calib-method")) params->calibration_method = *v;
  if (auto v = args.Get("calib-cache")) params->calibration_cache = *v;
  if (auto v = args.Get("calib-percentile")) {
    char* end = nullptr;
    params->calibration_percentile = std::strtod(v->c_str(), &end);
    if (v->empty() || *end != '\0') {
      return InvalidArgument("--calib-percentile takes a number, got '" + *v + "'");
    }
  }
  if (auto v = args.Get("max-accuracy-loss")) {
    char* end = nullptr;
    params->max_accuracy_loss = std::strtod(v->c_str(), &end);
    if (v->empty() || *end != '\0' || params->max_accuracy_loss < 0) {
      return InvalidArgument("--max-accuracy-loss takes a non-negative number, got '" + *v + "'");
    }
  }
  auto data = args.Get("calib-data");
  if (!data) return Status::OK();
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> files, BatchFiles(*data));
  auto next = std::make_shared<size_t>(0);
  auto g = std::make_shared<const Graph>(graph);  // the caller's graph moves into the converter
  params->calibration_input_fn = [files, next, g, read_error](Feeds* feeds) {
    if (*next >= files.size() || !read_error->ok()) return false;
    auto batch = ReadBatch(files[(*next)++], *g);
    if (!batch.ok()) {
      *read_error = batch.status();
      return false;
    }
    *feeds = std::move(batch).value();
    return true;
  };
  // INT8 / FP8 calibrate on the batches; FP16 / BF16 (the accuracy budget) measure the error of
  // candidate conversions on them and report those (total: the converter's estimate).
  const std::string mode = Lower(params->precision_mode);
  const bool budget = mode == "fp16" || mode == "bf16";
  const int64_t files_total = static_cast<int64_t>(files.size());
  params->calibration_progress = [files_total, budget](int64_t done, int64_t total) {
    if (!budget) total = files_total;
    if (total <= 0) return;
    const int width = 30;
    const int filled = static_cast<int>(width * std::min(done, total) / total);
    std::fprintf(stderr, "\r%s [%s%s] %lld/%lld", budget ? "measuring layers" : "calibrating",
                 std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                 static_cast<long long>(done), static_cast<long long>(total));
    if (done >= total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
  return Status::OK();
}

}  // namespace kiln::cli
