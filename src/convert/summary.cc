// ConversionSummary as text (what `kiln convert` prints, in the manner of TF-TRT's summary())
// and as JSON (`--json-summary`).
#include <cstdio>
#include <sstream>

#include "convert/convert_internal.h"
#include "core/strings.h"
#include "kiln/convert.h"

namespace kiln {

std::string JsonQuote(const std::string& s) { return JsonEscape(s); }

namespace {

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s.empty() ? "(none)" : s;
}

std::string Ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", ms);
  return buf;
}

std::string Percent(int part, int whole) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", whole > 0 ? 100.0 * part / whole : 0.0);
  return buf;
}

std::string JsonList(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + JsonQuote(v[i]);
  return s + "]";
}

std::string JsonNumber(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

}  // namespace

std::string ConversionSummary::ToString() const {
  std::ostringstream os;
  os << "Conversion summary\n";
  os << "  nodes after clean-up: " << total_nodes << ", converted: " << converted_nodes << " ("
     << Percent(converted_nodes, total_nodes) << ") into " << engines.size() << " engine(s)\n";
  if (!passes.empty()) {
    os << "  passes:\n";
    for (const auto& p : passes) os << "    " << p << "\n";
  }
  for (const auto& e : engines) {
    os << "\n  " << e.name << (e.scope.empty() ? "" : " (in " + e.scope + ")") << ": "
       << e.num_nodes << " nodes, " << e.status;
    if (e.build_ms > 0) os << " in " << Ms(e.build_ms);
    if (e.from_engine_cache) os << " (loaded from the engine cache)";
    if (!e.tactics.empty()) {
      int timed = 0;
      for (const auto& t : e.tactics) timed += t.find(": timed ") != std::string::npos ? 1 : 0;
      os << "\n    tactics: " << timed << " layers timed, "
         << static_cast<int>(e.tactics.size()) - timed << " from the timing cache or single";
    }
    os << "\n    ops:";
    for (const auto& [op, n] : e.op_histogram) os << " " << op << " x" << n;
    if (!e.layer_precisions.empty()) {
      os << "\n    layer precisions:";
      for (const auto& [p, n] : e.layer_precisions) os << " " << p << " x" << n;
    }
    os << "\n    inputs:  " << Join(e.inputs) << "\n    outputs: " << Join(e.outputs) << "\n";
  }
  if (!subgraphs.empty()) {  // If / Loop / Scan bodies (convert/convert_bodies.h)
    os << "\n  control-flow bodies:\n";
    for (const auto& line : subgraphs) os << "    " << line << "\n";
  }
  if (!not_converted.empty()) {
    os << "\n  not converted (op: count reason):\n";
    for (const auto& [op, reasons] : not_converted) {
      for (const auto& [reason, n] : reasons) {
        os << "    " << op << ": " << n << "  " << reason << "\n";
      }
    }
  }
  if (!int8_accuracy.empty()) {  // INT8 accuracy budget (runtime/calibration_flow.cc)
    os << "\n  INT8 accuracy budget: " << int8_accuracy << "\n";
    for (const auto& t : int8_kept_float) {
      os << "    kept in higher precision: the layer(s) reading '" << t << "'\n";
    }
  }
  if (!precision_accuracy.empty()) {  // FP16 / BF16 accuracy budget (calibration_flow.cc)
    os << "\n  accuracy budget: " << precision_accuracy << "\n";
    for (const auto& l : fp32_kept_layers) os << "    kept in FP32: layer '" << l << "'\n";
  }
  for (const auto& w : warnings) os << "\n  warning: " << w << "\n";
  os << "\n  total conversion time: " << Ms(total_ms) << "\n";
  return os.str();
}

std::string ConversionSummary::ToJson() const {
  std::ostringstream os;
  os << "{\n  \"total_nodes\": " << total_nodes << ",\n  \"converted_nodes\": " << converted_nodes
     << ",\n  \"converted_percent\": "
     << JsonNumber(total_nodes > 0 ? 100.0 * converted_nodes / total_nodes : 0.0)
     << ",\n  \"engines\": [";
  for (size_t i = 0; i < engines.size(); ++i) {
    const auto& e = engines[i];
    os << (i ? "," : "") << "\n    {\"name\": " << JsonQuote(e.name)
       << ", \"num_nodes\": " << e.num_nodes << ", \"status\": " << JsonQuote(e.status)
       << ", \"build_ms\": " << JsonNumber(e.build_ms)
       << ", \"from_engine_cache\": " << (e.from_engine_cache ? "true" : "false")
       << ", \"scope\": " << JsonQuote(e.scope)
       << ", \"tactics\": " << JsonList(e.tactics)
       << ", \"reduced_layers\": " << JsonList(e.reduced_layers)
       << ", \"op_histogram\": {";
    bool first = true;
    for (const auto& [op, n] : e.op_histogram) {
      os << (first ? "" : ", ") << JsonQuote(op) << ": " << n;
      first = false;
    }
    os << "}, \"layer_precisions\": {";
    first = true;
    for (const auto& [p, n] : e.layer_precisions) {
      os << (first ? "" : ", ") << JsonQuote(p) << ": " << n;
      first = false;
    }
    os << "}, \"inputs\": " << JsonList(e.inputs) << ", \"outputs\": " << JsonList(e.outputs)
       << "}";
  }
  os << (engines.empty() ? "" : "\n  ") << "],\n  \"not_converted\": {";
  bool first_op = true;
  for (const auto& [op, reasons] : not_converted) {
    os << (first_op ? "" : ",") << "\n    " << JsonQuote(op) << ": {";
    bool first = true;
    for (const auto& [reason, n] : reasons) {
      os << (first ? "" : ", ") << JsonQuote(reason) << ": " << n;
      first = false;
    }
    os << "}";
    first_op = false;
  }
  os << (not_converted.empty() ? "" : "\n  ") << "},\n  \"passes\": " << JsonList(passes)
     << ",\n  \"warnings\": " << JsonList(warnings)
     << ",\n  \"subgraphs\": " << JsonList(subgraphs)
     << ",\n  \"int8_accuracy\": " << JsonQuote(int8_accuracy)
     << ",\n  \"int8_kept_float\": " << JsonList(int8_kept_float)
     << ",\n  \"precision_accuracy\": " << JsonQuote(precision_accuracy)
     << ",\n  \"fp32_kept_layers\": " << JsonList(fp32_kept_layers)
     << ",\n  \"total_ms\": " << JsonNumber(total_ms) << "\n}\n";
  return os.str();
}

}  // namespace kiln
