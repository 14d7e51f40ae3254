// What an engine is built for: precision, batch, workspace, shapes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

// FP8 (the CUDA engine on compute capability 8.9+): matmuls whose input has a calibrated range
// run in FP8 E4M3 with float32 accumulation, the rest in FP16; ranges come from calibration or
// Q/DQ as for INT8. A backend without FP8 kernels falls back as for any other mode.
enum class Precision { kFP32, kFP16, kBF16, kINT8, kFP8 };

// "FP32" | "FP16" | "BF16" | "INT8" | "FP8", case-insensitive; anything else is
// InvalidArgument naming the parameter (as TF-TRT's ValueError).
StatusOr<Precision> ParsePrecision(const std::string& text);
const char* PrecisionName(Precision p);  // "FP32", ...

// INT8 (issue 5): the calibrated symmetric range of one tensor (engine/calibrator.h).
struct TensorRange {
  float amax = 0;          // quantization threshold: x -> round(x * 127 / amax)
  float min = 0, max = 0;  // seen during calibration (min >= 0: unsigned quantization)
};

struct BuildConfig {
  Precision precision = Precision::kFP32;
  // Static mode: the engine serves any batch (dimension 0 of every input) up to this.
  int64_t max_batch_size = 1;
  // Scratch memory one layer may use; a layer whose implementations all need more fails
  // the build with a message saying how many bytes it needs.
  int64_t max_workspace_size_bytes = int64_t{1} << 30;
  // Shapes of the segment's inputs the engine is built for (batch = max_batch_size in
  // static mode). Unknown dimensions are not allowed here.
  std::vector<std::vector<int64_t>> input_shapes;
  // Build for exactly these shapes (dynamic mode) rather than "batch up to max".
  bool exact_shapes = false;
  // INT8 / FP8: ranges by tensor name (the calibration table); layers whose input has no range stay
  // in higher precision. Part of the fingerprint (as a hash) when not empty.
  std::map<std::string, TensorRange> int8_ranges;
  // Per-layer precision constraint (TensorRT's layer.precision = kFLOAT with
  // OBEY_PRECISION_CONSTRAINTS): compute layers (conv, matmul) that fold one of these IR nodes
  // stay in FP32 in an FP16 / BF16 / INT8 engine. ConversionParams::fp32_layers, the EngineOp's
  // "fp32_layers" attribute. Part of the fingerprint when not empty.
  std::vector<std::string> fp32_layers;

  // Stable text of every field, for content hashes and cache keys.
  std::string Fingerprint() const;
};

}  // namespace kiln
