// INT8 calibration (issue 5): activation histograms, the calibrators that turn a histogram into
// a symmetric range (entropy = TensorRT's entropy calibrator v2, min-max, percentile), the
// calibration table (tensor name -> range, calibrator, kiln version) with its file format, and
// the process-wide statistics store that calibration-mode EngineOps feed.
//
// Ranges are symmetric per tensor: an activation x is quantized as round(x * 127 / amax) (s8), or
// round(x * 255 / amax) (u8) when calibration never saw a negative value. Weights are quantized
// per output channel, symmetric, by the engine builder (PerChannelAmax).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "engine/build_config.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

enum class CalibrationMethod { kEntropy, kMinMax, kPercentile };

// "entropy" | "minmax" | "percentile" (case-insensitive); anything else is InvalidArgument.
StatusOr<CalibrationMethod> ParseCalibrationMethod(const std::string& text);
const char* CalibrationMethodName(CalibrationMethod m);

// Histogram of |x| over [0, range) in `bins` equal bins (TensorRT style). The range is set by the
// first non-zero batch (its max |x|) and grows by doubling when a later value exceeds it: bins are
// merged pairwise, so earlier counts stay exact at the coarser width. Also tracks min and max.
class Histogram {
 public:
  static constexpr int kDefaultBins = 2048;
  explicit Histogram(int bins = kDefaultBins);
  void Add(const float* data, int64_t n);

  int bins() const { return static_cast<int>(counts_.size()); }
  double range() const { return range_; }
  double bin_width() const { return range_ / counts_.size(); }
  const std::vector<double>& counts() const { return counts_; }
  float min() const { return min_; }
  float max() const { return max_; }
  float amax() const;  // max |x| seen
  int64_t count() const { return count_; }
  int64_t nonfinite() const { return nonfinite_; }  // NaN / inf values (not binned)

 private:
  void Grow(double need);
  std::vector<double> counts_;
  double range_ = 0;
  float min_ = 0, max_ = 0;
  int64_t count_ = 0, nonfinite_ = 0;
};

// The calibrators: amax for a histogram. Entropy: the threshold (from bin 128 to the last) whose
// clipped, 128-level quantized distribution has the smallest KL divergence from the clipped
// reference (outliers folded into the last bin), as TensorRT's entropy calibrator v2.
// Percentile: the smallest threshold that keeps `percentile` % of |x|. Min-max: max |x|.
float EntropyAmax(const Histogram& h, int levels = 128);
float PercentileAmax(const Histogram& h, double percentile);
float MinMaxAmax(const Histogram& h);
// Entropy needs data: a tensor with fewer than kEntropyMinSamples finite values over the whole
// calibration (16 per bin of the default histogram) gets its max |x| instead; its histogram is
// too sparse for the KL divergence to mean anything (e.g. a squeeze-excitation FC's input: C
// values per input), and a clipped gate of a few channels costs the whole network.
inline constexpr int64_t kEntropyMinSamples = 16 * Histogram::kDefaultBins;
float CalibratedAmax(const Histogram& h, CalibrationMethod m, double percentile = 99.99);

// Symmetric per-channel amax of weights laid out [channels, per_channel] (row-major).
std::vector<float> PerChannelAmax(const float* w, int64_t channels, int64_t per_channel);

// The calibration table and its file format (text):
//   kiln-calibration-table 1
//   kiln_version 0.1.0
//   calibrator entropy
//   range <amax> <min> <max> <tensor name to the end of the line>
struct CalibrationTable {
  std::string calibrator;
  std::string kiln_version = KILN_VERSION;
  std::map<std::string, TensorRange> ranges;

  std::string ToText() const;
  // `where` names the source in errors (a file name, "calibration_data of node 'x'").
  static StatusOr<CalibrationTable> Parse(const std::string& text, const std::string& where);
  // Atomic write: a temporary name in the same directory, then renamed.
  Status WriteFile(const std::string& path) const;
  static StatusOr<CalibrationTable> ReadFile(const std::string& path);
  // OK when the table has a range for exactly the tensors in `needed`, plus any of `optional`;
  // otherwise InvalidArgument naming the tensors without a range and the table's other tensors.
  Status CheckMatches(const std::set<std::string>& needed, const std::string& where,
                      const std::set<std::string>* optional = nullptr) const;
};

// The tensors an INT8 engine of `segment` needs ranges for: the non-constant float inputs of its
// Conv, MatMul and Gemm nodes (what the CPU backend can run in INT8); with `nodes`, of those
// nodes of the graph only.
std::set<std::string> Int8TensorsOf(const Graph& segment, const std::vector<int>* nodes = nullptr);

// Ranges an INT8 engine uses when it has them (calibration collects them; tables without them
// still match): the float outputs of Conv nodes that are an operand of a two-input Add, and not
// in Int8TensorsOf. With a range, a residual branch only the add reads (ResNet's downsample conv)
// is written INT8 and added by the INT8 conv the add fuses into.
std::set<std::string> Int8ResidualTensorsOf(const Graph& segment,
                                            const std::vector<int>* nodes = nullptr);

// Statistics of one calibration-mode EngineOp (one histogram per tensor it needs), filled by
// every run of the calibration graph. Thread-safe.
class CalibrationCollector {
 public:
  void Add(const std::string& tensor, const Tensor& value);
  int64_t batches() const;
  void NoteBatch();
  // The table for everything collected so far with `method`.
  CalibrationTable Table(CalibrationMethod method, double percentile) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, Histogram> hists_;
  int64_t batches_ = 0;
};

// Process-wide collectors by calibration id (the "calibrate:<id>" in a calibration graph's
// EngineOp calibration_data attribute). Reset drops an id's statistics (a fresh conversion).
std::shared_ptr<CalibrationCollector> GetCalibrationCollector(const std::string& id);
std::shared_ptr<CalibrationCollector> FindCalibrationCollector(const std::string& id);
void ResetCalibrationCollector(const std::string& id);
inline constexpr const char* kCalibratePrefix = "calibrate:";

}  // namespace kiln
