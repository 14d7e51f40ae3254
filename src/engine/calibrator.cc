#include "engine/calibrator.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "core/file_util.h"

namespace kiln {

StatusOr<CalibrationMethod> ParseCalibrationMethod(const std::string& text) {
  std::string v;
  for (char c : text) v += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (v == "entropy") return CalibrationMethod::kEntropy;
  if (v == "minmax" || v == "min-max" || v == "max") return CalibrationMethod::kMinMax;
  if (v == "percentile") return CalibrationMethod::kPercentile;
  return InvalidArgument("calibration method '" + text +
                         "' is not one of entropy, minmax, percentile");
}

const char* CalibrationMethodName(CalibrationMethod m) {
  switch (m) {
    case CalibrationMethod::kEntropy:
      return "entropy";
    case CalibrationMethod::kMinMax:
      return "minmax";
    case CalibrationMethod::kPercentile:
      return "percentile";
  }
  return "?";
}

// ------------------------------------------------------------------ histogram

Histogram::Histogram(int bins) : counts_(std::max(bins, 2), 0.0) {}

float Histogram::amax() const { return std::max(std::fabs(min_), std::fabs(max_)); }

void Histogram::Grow(double need) {
  const size_t n = counts_.size();
  while (range_ < need) {
    for (size_t i = 0; i < n / 2; ++i) counts_[i] = counts_[2 * i] + counts_[2 * i + 1];
    if (n % 2) counts_[n / 2] = counts_[n - 1];
    std::fill(counts_.begin() + (n + 1) / 2, counts_.end(), 0.0);
    range_ *= 2;
  }
}

void Histogram::Add(const float* data, int64_t n) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (int64_t i = 0; i < n; ++i) {
    const float v = data[i];
    if (!std::isfinite(v)) {
      ++nonfinite_;
      continue;
    }
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (hi < lo) return;  // nothing finite
  if (count_ == 0) {
    min_ = lo;
    max_ = hi;
  } else {
    min_ = std::min(min_, lo);
    max_ = std::max(max_, hi);
  }
  const double batch_amax = std::max(std::fabs(lo), std::fabs(hi));
  if (range_ == 0) {
    range_ = batch_amax > 0 ? batch_amax : 0;
  } else if (batch_amax > range_) {
    Grow(batch_amax);
  }
  const int64_t nb = static_cast<int64_t>(counts_.size());
  for (int64_t i = 0; i < n; ++i) {
    const float v = data[i];
    if (!std::isfinite(v)) continue;
    ++count_;
    if (range_ == 0) {
      counts_[0] += 1;
      continue;
    }
    int64_t b = static_cast<int64_t>(std::fabs(v) / range_ * static_cast<double>(nb));
    counts_[std::min(b, nb - 1)] += 1;
  }
}

// ------------------------------------------------------------------ calibrators

float MinMaxAmax(const Histogram& h) { return h.amax(); }

float PercentileAmax(const Histogram& h, double percentile) {
  const auto& c = h.counts();
  double total = 0;
  for (double v : c) total += v;
  if (total == 0 || h.range() == 0) return h.amax();
  const double want = std::clamp(percentile, 0.0, 100.0) / 100.0 * total;
  double cum = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    cum += c[i];
    if (cum >= want) {
      return std::min(h.amax(), static_cast<float>((i + 1) * h.bin_width()));
    }
  }
  return h.amax();
}

float EntropyAmax(const Histogram& h, int levels) {
  std::vector<double> bins = h.counts();
  const int n = static_cast<int>(bins.size());
  if (h.range() == 0 || n <= levels) return h.amax();
  // The first bin holds the exact zeros (half of a ReLU's output): as TensorRT /
  // pytorch-quantization, it counts like its neighbour, or the spike dominates the divergence
  // and the threshold comes out far too small.
  bins[0] = bins[1];
  // Suffix sums: the outliers beyond each threshold.
  std::vector<double> tail(n + 1, 0.0);
  for (int i = n - 1; i >= 0; --i) tail[i] = tail[i + 1] + bins[i];
  double best = std::numeric_limits<double>::infinity();
  int best_i = n;
  std::vector<double> p, q;
  for (int i = levels; i <= n; ++i) {
    // Reference: bins [0, i) with the outliers folded into the last one.
    p.assign(bins.begin(), bins.begin() + i);
    p[i - 1] += tail[i];
    // Candidate: bins [0, i) merged into `levels` groups, each group's count spread evenly over
    // its non-empty bins (empty bins stay empty).
    q.assign(i, 0.0);
    for (int j = 0; j < levels; ++j) {
      const int start = static_cast<int>(static_cast<int64_t>(j) * i / levels);
      const int stop = static_cast<int>(static_cast<int64_t>(j + 1) * i / levels);
      double sum = 0;
      int nonzero = 0;
      for (int k = start; k < stop; ++k) {
        sum += bins[k];
        nonzero += bins[k] != 0;
      }
      if (nonzero == 0) continue;
      const double each = sum / nonzero;
      for (int k = start; k < stop; ++k) {
        if (bins[k] != 0) q[k] = each;
      }
    }
    double ps = 0, qs = 0;
    for (int k = 0; k < i; ++k) {
      ps += p[k];
      qs += q[k];
    }
    if (ps == 0 || qs == 0) continue;
    double kl = 0;
    bool infinite = false;
    for (int k = 0; k < i; ++k) {
      if (p[k] == 0) continue;
      if (q[k] == 0) {
        infinite = true;
        break;
      }
      const double pk = p[k] / ps, qk = q[k] / qs;
      kl += pk * std::log(pk / qk);
    }
    if (infinite) continue;
    if (kl <= best) {  // ties: the larger threshold (as TensorRT's last argmin)
      best = kl;
      best_i = i;
    }
  }
  return std::min(h.amax(), static_cast<float>(best_i * h.bin_width()));
}

float CalibratedAmax(const Histogram& h, CalibrationMethod m, double percentile) {
  switch (m) {
    // Unsigned tensors (nothing negative seen, e.g. after a ReLU) get u8's 256 levels. Too few
    // samples for a 2048-bin histogram (a squeeze-excitation FC's few values per input) make the
    // divergence noise: such a tensor keeps its max |x| (kEntropyMinSamples, calibrator.h).
    case CalibrationMethod::kEntropy:
      if (h.count() < kEntropyMinSamples) return MinMaxAmax(h);
      return EntropyAmax(h, h.min() >= 0 ? 256 : 128);
    case CalibrationMethod::kMinMax:
      return MinMaxAmax(h);
    case CalibrationMethod::kPercentile:
      return PercentileAmax(h, percentile);
  }
  return MinMaxAmax(h);
}

std::vector<float> PerChannelAmax(const float* w, int64_t channels, int64_t per_channel) {
  std::vector<float> out(std::max<int64_t>(channels, 0), 0.f);
  for (int64_t c = 0; c < channels; ++c) {
    float m = 0;
    for (int64_t k = 0; k < per_channel; ++k) m = std::max(m, std::fabs(w[c * per_channel + k]));
    out[c] = m;
  }
  return out;
}

// ------------------------------------------------------------------ table

namespace {

std::string FloatText(float v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", static_cast<double>(v));
  return buf;
}

bool ParseFloat(const std::string& s, float* v) {
  if (s.empty()) return false;
  char* end = nullptr;
  *v = std::strtof(s.c_str(), &end);
  return end != nullptr && *end == '\0' && std::isfinite(*v);
}

std::string NameList(const std::vector<std::string>& names) {
  std::string s;
  const size_t shown = std::min<size_t>(names.size(), 20);
  for (size_t i = 0; i < shown; ++i) s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > shown) s += " and " + std::to_string(names.size() - shown) + " more";
  return s;
}

}  // namespace

std::string CalibrationTable::ToText() const {
  std::string s = "kiln-calibration-table 1\n";
  s += "kiln_version " + kiln_version + "\n";
  s += "calibrator " + calibrator + "\n";
  for (const auto& [name, r] : ranges) {
    s += "range " + FloatText(r.amax) + " " + FloatText(r.min) + " " + FloatText(r.max) + " " +
         name + "\n";
  }
  return s;
}

StatusOr<CalibrationTable> CalibrationTable::Parse(const std::string& text,
                                                   const std::string& where) {
  CalibrationTable t;
  t.kiln_version.clear();
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  auto bad = [&](const std::string& why) {
    return InvalidArgument(where + ": line " + std::to_string(lineno) + ": " + why);
  };
  bool header = false;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (!header) {
      if (line != "kiln-calibration-table 1") {
        return bad("not a kiln calibration table (expected 'kiln-calibration-table 1')");
      }
      header = true;
      continue;
    }
    const size_t sp = line.find(' ');
    const std::string key = line.substr(0, sp);
    const std::string rest = sp == std::string::npos ? "" : line.substr(sp + 1);
    if (key == "kiln_version") {
      t.kiln_version = rest;
    } else if (key == "calibrator") {
      auto m = ParseCalibrationMethod(rest);
      if (!m.ok()) return bad(m.status().message());
      t.calibrator = CalibrationMethodName(*m);
    } else if (key == "range") {
      std::string f[3];
      size_t at = 0;
      for (int k = 0; k < 3; ++k) {
        const size_t e = rest.find(' ', at);
        if (e == std::string::npos) return bad("a range line needs amax, min, max and a name");
        f[k] = rest.substr(at, e - at);
        at = e + 1;
      }
      const std::string name = rest.substr(at);
      TensorRange r;
      if (name.empty() || !ParseFloat(f[0], &r.amax) || !ParseFloat(f[1], &r.min) ||
          !ParseFloat(f[2], &r.max) || r.amax < 0) {
        return bad("bad range line '" + line + "'");
      }
      if (!t.ranges.emplace(name, r).second) return bad("tensor '" + name + "' listed twice");
    } else {
      return bad("unknown key '" + key + "'");
    }
  }
  if (!header) return InvalidArgument(where + ": empty calibration table");
  if (t.calibrator.empty()) return InvalidArgument(where + ": the table names no calibrator");
  return t;
}

Status CalibrationTable::WriteFile(const std::string& path) const {
  Status st = WriteFileAtomically(path, ToText());
  if (!st.ok()) return InvalidArgument("cannot write the calibration table: " + st.message());
  return Status::OK();
}

StatusOr<CalibrationTable> CalibrationTable::ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot read the calibration table");
  std::ostringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

Status CalibrationTable::CheckMatches(const std::set<std::string>& needed,
                                      const std::string& where,
                                      const std::set<std::string>* optional) const {
  std::vector<std::string> missing, extra;
  for (const auto& n : needed) {
    if (!ranges.count(n)) missing.push_back(n);
  }
  for (const auto& [n, r] : ranges) {
    if (!needed.count(n) && (optional == nullptr || !optional->count(n))) extra.push_back(n);
  }
  if (missing.empty() && extra.empty()) return Status::OK();
  std::string msg = where + ": the calibration table does not match the graph";
  if (!missing.empty()) msg += "; no range for " + NameList(missing);
  if (!extra.empty()) msg += "; not tensors the graph's INT8 layers read: " + NameList(extra);
  return InvalidArgument(msg);
}

std::set<std::string> Int8TensorsOf(const Graph& segment, const std::vector<int>* nodes) {
  std::set<std::string> out;
  const size_t count = nodes != nullptr ? nodes->size() : segment.nodes.size();
  for (size_t k = 0; k < count; ++k) {
    const Node& n = segment.nodes[nodes != nullptr ? (*nodes)[k] : k];
    if (!n.domain.empty() && n.domain != "ai.onnx") continue;
    if (n.op_type != "Conv" && n.op_type != "MatMul" && n.op_type != "Gemm") continue;
    if (n.inputs.empty() || n.inputs[0].empty()) continue;
    const std::string& x = n.inputs[0];
    if (segment.IsInitializer(x) && !segment.IsGraphInput(x)) continue;
    const ValueInfo* vi = segment.FindValueInfo(x);
    if (vi != nullptr && vi->dtype != DataType::kFloat32) continue;
    out.insert(x);
  }
  return out;
}

std::set<std::string> Int8ResidualTensorsOf(const Graph& segment, const std::vector<int>* nodes) {
  const std::set<std::string> inputs = Int8TensorsOf(segment, nodes);
  std::map<std::string, const Node*> producer;
  const size_t count = nodes != nullptr ? nodes->size() : segment.nodes.size();
  auto node = [&](size_t k) -> const Node& {
    return segment.nodes[nodes != nullptr ? (*nodes)[k] : k];
  };
  auto onnx = [](const Node& n) { return n.domain.empty() || n.domain == "ai.onnx"; };
  for (size_t k = 0; k < count; ++k) {
    const Node& n = node(k);
    if (onnx(n) && n.op_type == "Conv" && !n.outputs.empty()) producer[n.outputs[0]] = &n;
  }
  std::set<std::string> out;
  for (size_t k = 0; k < count; ++k) {
    const Node& n = node(k);
    if (!onnx(n) || n.op_type != "Add" || n.inputs.size() != 2) continue;
    for (const std::string& x : n.inputs) {
      if (!producer.count(x) || inputs.count(x)) continue;
      const ValueInfo* vi = segment.FindValueInfo(x);
      if (vi != nullptr && vi->dtype != DataType::kFloat32) continue;
      out.insert(x);
    }
  }
  return out;
}

// ------------------------------------------------------------------ collectors

void CalibrationCollector::Add(const std::string& tensor, const Tensor& value) {
  if (value.dtype() != DataType::kFloat32) return;
  std::lock_guard<std::mutex> lock(mu_);
  hists_[tensor].Add(value.data<float>(), value.num_elements());
}

void CalibrationCollector::NoteBatch() {
  std::lock_guard<std::mutex> lock(mu_);
  ++batches_;
}

int64_t CalibrationCollector::batches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return batches_;
}

CalibrationTable CalibrationCollector::Table(CalibrationMethod method, double percentile) const {
  std::lock_guard<std::mutex> lock(mu_);
  CalibrationTable t;
  t.calibrator = CalibrationMethodName(method);
  for (const auto& [name, h] : hists_) {
    TensorRange r;
    r.amax = CalibratedAmax(h, method, percentile);
    r.min = h.min();
    r.max = h.max();
    t.ranges[name] = r;
  }
  return t;
}

namespace {
std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, std::shared_ptr<CalibrationCollector>>& Registry() {
  static auto* r = new std::map<std::string, std::shared_ptr<CalibrationCollector>>();
  return *r;
}
}  // namespace

std::shared_ptr<CalibrationCollector> GetCalibrationCollector(const std::string& id) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto& c = Registry()[id];
  if (c == nullptr) c = std::make_shared<CalibrationCollector>();
  return c;
}

std::shared_ptr<CalibrationCollector> FindCalibrationCollector(const std::string& id) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto it = Registry().find(id);
  return it == Registry().end() ? nullptr : it->second;
}

void ResetCalibrationCollector(const std::string& id) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry().erase(id);
}

}  // namespace kiln
