#include "runtime/model_loader.h"

#include <filesystem>
#include <fstream>

#include "io/onnx/onnx_import.h"
#include "io/tf/graphdef_import.h"
#include "io/tf/saved_model.h"
#include "io/tf/tfjs_import.h"

namespace kiln {

namespace {

// A SavedModel is named by its directory; its saved_model.pb names it too.
std::string SavedModelDirOf(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) return IsSavedModelDir(path) ? path : "";
  if (fs::path(path).filename() == "saved_model.pb") {
    std::string dir = fs::path(path).parent_path().string();
    return dir.empty() ? "." : dir;
  }
  return "";
}

}  // namespace

ModelFormat DetectModelFormat(const std::string& path) {
  if (!SavedModelDirOf(path).empty()) return ModelFormat::kSavedModel;
  std::string ext = std::filesystem::path(path).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".onnx") return ModelFormat::kOnnx;
  if (ext == ".json") return ModelFormat::kTfJs;  // a TF.js graph model's model.json
  const std::string file = std::filesystem::path(path).filename().string();
  if ((ext == ".pb" && file != "saved_model.pb") || ext == ".pbtxt") {
    return ModelFormat::kTfGraphDef;
  }
  // ONNX files start with field 1 (ir_version, varint: 0x08) in practice.
  std::ifstream f(path, std::ios::binary);
  char first = 0;
  if (f.get(first) && first == 0x08) return ModelFormat::kOnnx;
  // A frozen GraphDef starts with field 1 (node, length-delimited: 0x0a).
  if (first == 0x0a) return ModelFormat::kTfGraphDef;
  return ModelFormat::kUnknown;
}

const char* ModelFormatName(ModelFormat f) {
  switch (f) {
    case ModelFormat::kOnnx: return "onnx";
    case ModelFormat::kTfGraphDef: return "tf_graphdef";
    case ModelFormat::kTfJs: return "tfjs_graph_model";
    case ModelFormat::kSavedModel: return "saved_model";
    case ModelFormat::kUnknown: return "unknown";
  }
  return "unknown";
}

StatusOr<Graph> LoadModelGraph(const std::string& path) { return LoadModelGraph(path, {}); }

StatusOr<Graph> LoadModelGraph(const std::string& path, const LoadOptions& options) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return NotFound("model file '" + path + "' does not exist");
  switch (DetectModelFormat(path)) {
    case ModelFormat::kOnnx: return ImportOnnxFile(path);
    case ModelFormat::kTfGraphDef: return ImportGraphDefFile(path);
    case ModelFormat::kTfJs: return ImportTfjsModel(path);
    case ModelFormat::kSavedModel: {
      SavedModelOptions sm;
      sm.tags = {options.saved_model_tags.begin(), options.saved_model_tags.end()};
      sm.signature_key = options.saved_model_signature_key;
      return LoadSavedModel(SavedModelDirOf(path), sm);
    }
    case ModelFormat::kUnknown: break;
  }
  return InvalidArgument("'" + path +
                         "': unrecognised model format (kiln reads .onnx, frozen GraphDef "
                         ".pb/.pbtxt, SavedModel directories and TF.js model.json)");
}

}  // namespace kiln
