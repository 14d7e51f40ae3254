#include "engine/build_config.h"

#include <cctype>

#include "engine/plan.h"

namespace kiln {

StatusOr<Precision> ParsePrecision(const std::string& text) {
  std::string v;
  for (char c : text) v += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (v == "FP32") return Precision::kFP32;
  if (v == "FP16") return Precision::kFP16;
  if (v == "BF16") return Precision::kBF16;
  if (v == "INT8") return Precision::kINT8;
  if (v == "FP8") return Precision::kFP8;
  return InvalidArgument("precision_mode '" + text + "' is not one of FP32, FP16, BF16, INT8, FP8");
}

const char* PrecisionName(Precision p) {
  switch (p) {
    case Precision::kFP32: return "FP32";
    case Precision::kFP16: return "FP16";
    case Precision::kBF16: return "BF16";
    case Precision::kINT8: return "INT8";
    case Precision::kFP8: return "FP8";
  }
  return "?";
}

std::string BuildConfig::Fingerprint() const {
  std::string s = std::string("precision=") + PrecisionName(precision) +
                  ",max_batch=" + std::to_string(max_batch_size) +
                  ",workspace=" + std::to_string(max_workspace_size_bytes) +
                  ",exact=" + (exact_shapes ? "1" : "0") + ",shapes=";
  for (const auto& dims : input_shapes) s += DimsToString(dims);
  if (!int8_ranges.empty()) {  // INT8 ranges: a hash of their exact bits
    std::string bytes;
    for (const auto& [name, r] : int8_ranges) {
      bytes += name + '\0';
      bytes.append(reinterpret_cast<const char*>(&r), sizeof(r));
    }
    s += ",int8_ranges=" + HashBytes(bytes);
  }
  if (!fp32_layers.empty()) {
    std::string names;
    for (const auto& n : fp32_layers) names += n + '\0';
    s += ",fp32_layers=" + HashBytes(names);
  }
  return s;
}

}  // namespace kiln
