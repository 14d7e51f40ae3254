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
    os << "\n  " << e.name << ": " << e.num_nodes << " nodes, " << e.status;
    if (e.build_ms > 0) os << " in " << Ms(e.build_ms);
    os << "\n    ops:";
    for (const auto& [op, n] : e.op_histogram) os << " " << op << " x" << n;
    os << "\n    inputs:  " << Join(e.inputs) << "\n    outputs: " << Join(e.outputs) << "\n";
  }
  if (!not_converted.empty()) {
    os << "\n  not converted (op: count reason):\n";
    for (const auto& [op, reasons] : not_converted) {
      for (const auto& [reason, n] : reasons) {
        os << "    " << op << ": " << n << "  " << reason << "\n";
      }
    }
  }
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
       << ", \"build_ms\": " << JsonNumber(e.build_ms) << ", \"op_histogram\": {";
    bool first = true;
    for (const auto& [op, n] : e.op_histogram) {
      os << (first ? "" : ", ") << JsonQuote(op) << ": " << n;
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
     << ",\n  \"total_ms\": " << JsonNumber(total_ms) << "\n}\n";
  return os.str();
}

}  // namespace kiln
