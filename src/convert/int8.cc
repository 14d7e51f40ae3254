#include "convert/int8.h"

#include <cmath>
#include <filesystem>

#include "convert/convert_internal.h"
#include "core/logging.h"
#include "engine/plan.h"
#include "io/onnx/onnx_export.h"

namespace kiln {

namespace {
CalibrationRunner& Runner() {
  static CalibrationRunner runner = nullptr;
  return runner;
}

// INT8 and FP8 take the same ranges (calibrated, cached, or the model's Q/DQ): the scale of an
// int8 value is amax / 127, of an FP8 E4M3 one amax / 448.
bool IsInt8(const ConversionParams& p) {
  auto precision = ParsePrecision(p.precision_mode);
  return precision.ok() && (*precision == Precision::kINT8 || *precision == Precision::kFP8);
}

bool CacheExists(const ConversionParams& p) {
  std::error_code ec;
  return !p.calibration_cache.empty() && std::filesystem::exists(p.calibration_cache, ec);
}

// A scalar (or one-element) float constant of `graph`.
bool ScalarConst(const Graph& g, const std::string& name, double* v) {
  auto it = g.initializers.find(name);
  if (name.empty() || it == g.initializers.end() || it->second.num_elements() != 1) return false;
  const Tensor& t = it->second;
  switch (t.dtype()) {
    case DataType::kFloat32:
      *v = t.data<float>()[0];
      return true;
    case DataType::kFloat64:
      *v = t.data<double>()[0];
      return true;
    case DataType::kInt8:
      *v = t.data<int8_t>()[0];
      return true;
    case DataType::kUInt8:
      *v = t.data<uint8_t>()[0];
      return true;
    case DataType::kInt32:
      *v = t.data<int32_t>()[0];
      return true;
    default:
      return false;
  }
}

bool IsOp(const Node& n, const char* op, const char* domain) {
  return n.op_type == op && (n.domain == domain || (domain[0] == '\0' && n.domain == "ai.onnx"));
}

// use_calibration=false: ranges of the model's activation Q/DQ pairs and fake-quant nodes; each
// such node (pair) is bypassed: its consumers read its input, whose range it records.
Status RangesFromModel(Graph& graph, CalibrationTable* table, const std::string& where) {
  table->calibrator = "minmax";  // the model's own ranges
  std::map<std::string, std::vector<std::pair<int, int>>> consumers;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const auto& ins = graph.nodes[i].inputs;
    for (size_t k = 0; k < ins.size(); ++k) {
      if (!ins[k].empty()) consumers[ins[k]].push_back({static_cast<int>(i), static_cast<int>(k)});
    }
  }
  auto is_output = [&](const std::string& v) {
    return std::find(graph.outputs.begin(), graph.outputs.end(), v) != graph.outputs.end();
  };
  // Records `range` for `x` and rewires the readers of `y` to `x`.
  auto bypass = [&](const std::string& x, const std::string& y, TensorRange range) {
    if (is_output(y)) return;  // a graph output keeps its node
    auto it = table->ranges.find(x);
    if (it != table->ranges.end()) {  // two fake-quants of one tensor: the wider range
      range.amax = std::max(range.amax, it->second.amax);
      range.min = std::min(range.min, it->second.min);
      range.max = std::max(range.max, it->second.max);
    }
    table->ranges[x] = range;
    for (auto [node, slot] : consumers[y]) graph.nodes[node].inputs[slot] = x;
    consumers[x].insert(consumers[x].end(), consumers[y].begin(), consumers[y].end());
    consumers[y].clear();
  };
  auto from_min_max = [](double lo, double hi) {
    TensorRange r;
    r.min = static_cast<float>(std::min(lo, 0.0));
    r.max = static_cast<float>(std::max(hi, 0.0));
    r.amax = std::max(std::fabs(r.min), std::fabs(r.max));
    return r;
  };
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    if (n.outputs.empty() || n.inputs.empty() || n.inputs[0].empty()) continue;
    const std::string& x = n.inputs[0];
    if (graph.IsInitializer(x)) continue;  // weights: constant folding handles them
    if (IsOp(n, "QuantizeLinear", "")) {
      // x -> QuantizeLinear -> DequantizeLinear (same scale / zero point) -> y
      const auto& users = consumers[n.outputs[0]];
      if (users.size() != 1) continue;
      const Node& dq = graph.nodes[users[0].first];
      if (!IsOp(dq, "DequantizeLinear", "") || dq.outputs.empty()) continue;
      double scale = 0, zp = 0;
      if (n.inputs.size() < 2 || !ScalarConst(graph, n.inputs[1], &scale) || !(scale > 0)) {
        return InvalidArgument(where + ": " + n.Describe() +
                               ": INT8 from Q/DQ needs a constant per-tensor scale");
      }
      bool unsigned_q = true;
      if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
        if (!ScalarConst(graph, n.inputs[2], &zp)) {
          return InvalidArgument(where + ": " + n.Describe() +
                                 ": INT8 from Q/DQ needs a constant per-tensor zero point");
        }
        unsigned_q = graph.initializers.at(n.inputs[2]).dtype() == DataType::kUInt8;
      }
      const double qmin = unsigned_q ? 0 : -128, qmax = unsigned_q ? 255 : 127;
      TensorRange r = from_min_max(scale * (qmin - zp), scale * (qmax - zp));
      if (!unsigned_q && zp == 0) r.min = std::min(r.min, -r.amax);
      bypass(x, dq.outputs[0], r);
    } else if (IsOp(n, "FakeQuantWithMinMax", "kiln")) {
      double lo = 0, hi = 0;
      if (n.inputs.size() < 3 || !ScalarConst(graph, n.inputs[1], &lo) ||
          !ScalarConst(graph, n.inputs[2], &hi)) {
        continue;  // a per-channel or variable range: the tensor gets none
      }
      bypass(x, n.outputs[0], from_min_max(lo, hi));
    } else if (IsOp(n, "QuantizeAndDequantize", "kiln")) {
      const Attr* given = n.FindAttr("range_given");
      double lo = 0, hi = 0;
      if (given == nullptr || given->i == 0 || n.inputs.size() < 3 ||
          !ScalarConst(graph, n.inputs[1], &lo) || !ScalarConst(graph, n.inputs[2], &hi)) {
        continue;  // the range is the data's own at run time: none
      }
      bypass(x, n.outputs[0], from_min_max(lo, hi));
    }
  }
  return Status::OK();
}

}  // namespace

void SetCalibrationRunner(CalibrationRunner runner) { Runner() = runner; }
CalibrationRunner GetCalibrationRunner() { return Runner(); }

bool IsCalibrationConversion(const ConversionParams& p) {
  return IsInt8(p) && p.use_calibration && p.calibration_table.empty() && !CacheExists(p);
}

StatusOr<Int8Setup> PrepareInt8(Graph& graph, const ConversionParams& p, const std::string& where) {
  Int8Setup s;
  if (!IsInt8(p)) return s;
  s.active = true;
  s.keep_float.insert(p.int8_keep_float.begin(), p.int8_keep_float.end());
  if (!p.use_calibration) {
    s.from_model = true;
    s.table_source = where + " (its Q/DQ and fake-quant ranges)";
    KILN_RETURN_IF_ERROR(RangesFromModel(graph, &s.table, where));
    return s;
  }
  if (!p.calibration_table.empty()) {
    s.table_source = "calibration_table";
    KILN_ASSIGN_OR_RETURN(s.table, CalibrationTable::Parse(p.calibration_table, s.table_source));
    return s;
  }
  if (CacheExists(p)) {
    s.table_source = p.calibration_cache;
    KILN_ASSIGN_OR_RETURN(s.table, CalibrationTable::ReadFile(p.calibration_cache));
    if (s.table.kiln_version != KILN_VERSION) {
      KILN_LOG(WARNING) << p.calibration_cache << ": calibration table from kiln "
                        << s.table.kiln_version << ", this is kiln " << KILN_VERSION;
    }
    return s;
  }
  s.calibrating = true;
  return s;
}

Status CheckInt8Table(const Int8Setup& s, const std::set<std::string>& needed,
                      const std::set<std::string>& optional, const std::string& where) {
  if (!s.active || s.calibrating) return Status::OK();
  if (!s.from_model) return s.table.CheckMatches(needed, s.table_source, &optional);
  std::vector<std::string> missing;
  for (const auto& t : needed) {
    if (!s.table.ranges.count(t)) missing.push_back(t);
  }
  if (missing.empty()) return Status::OK();
  std::string names;
  for (size_t i = 0; i < missing.size() && i < 20; ++i) {
    names += (i ? ", '" : "'") + missing[i] + "'";
  }
  if (missing.size() > 20) names += " and " + std::to_string(missing.size() - 20) + " more";
  return InvalidArgument(where +
                         ": INT8 with use_calibration=false needs a range (Q/DQ or fake-quant) "
                         "for every tensor an INT8 layer reads; none for " +
                         names + " (calibrate instead: use_calibration=true)");
}

Status Int8ForSegment(const Int8Setup& s, const Graph& segment, BuildConfig* config,
                      std::string* calibration_data) {
  calibration_data->clear();
  if (!s.active) return Status::OK();
  if (s.calibrating) {
    KILN_ASSIGN_OR_RETURN(std::string onnx, ExportOnnx(segment));
    const std::string id = HashBytes(onnx) + "|" + segment.name;
    ResetCalibrationCollector(id);
    *calibration_data = kCalibratePrefix + id;
    return Status::OK();
  }
  CalibrationTable part;
  part.calibrator = s.table.calibrator;
  part.kiln_version = s.table.kiln_version;
  for (const std::string& t : Int8TensorsOf(segment)) {
    if (s.keep_float.count(t)) continue;  // its layers stay in higher precision
    auto it = s.table.ranges.find(t);
    if (it != s.table.ranges.end()) part.ranges[t] = it->second;
  }
  for (const std::string& t : Int8ResidualTensorsOf(segment)) {  // optional (calibrator.h)
    auto it = s.table.ranges.find(t);
    if (it != s.table.ranges.end()) part.ranges[t] = it->second;
  }
  if (part.ranges.empty()) return Status::OK();
  config->int8_ranges = part.ranges;
  *calibration_data = part.ToText();
  return Status::OK();
}

std::set<std::string> Int8TensorsOfNodes(const Graph& graph, const std::vector<int>& indices) {
  return Int8TensorsOf(graph, &indices);
}

std::set<std::string> Int8ResidualTensorsOfNodes(const Graph& graph,
                                                 const std::vector<int>& indices) {
  return Int8ResidualTensorsOf(graph, &indices);
}

}  // namespace kiln
