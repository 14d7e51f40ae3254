// INT8 layer policy (int8_policy.h).
#include "backends/cpu/int8_policy.h"

#include <cstdlib>
#include <string>

#include "core/logging.h"

namespace kiln::cpu {

bool ParseInt8MinDot(const char* text, Int8MinDot* out) {
  if (text == nullptr) return false;
  const std::string s = text;
  const size_t comma = s.find(',');
  if (comma == std::string::npos) return false;
  auto num = [](const std::string& v, int64_t* x) {
    if (v.empty() || v.size() > 12) return false;
    for (char c : v) {
      if (c < '0' || c > '9') return false;
    }
    *x = std::stoll(v);
    return true;
  };
  Int8MinDot t;
  if (!num(s.substr(0, comma), &t.k) || !num(s.substr(comma + 1), &t.n)) return false;
  *out = t;
  return true;
}

namespace {
struct Override {
  bool on = false;
  Int8MinDot value;
};
Override& TheOverride() {
  static Override o;
  return o;
}
}  // namespace

Int8MinDot Int8Thresholds() {
  static const Int8MinDot from_env = [] {
    Int8MinDot v;
    const char* text = std::getenv("KILN_CPU_INT8_MIN_DOT");
    if (text != nullptr && !ParseInt8MinDot(text, &v)) {
      KILN_LOG(WARNING) << "KILN_CPU_INT8_MIN_DOT='" << text
                        << "' ignored: expected K,N (non-negative integers, e.g. 64,64; 0,0 turns "
                           "the INT8 layer policy off); using "
                        << v.k << "," << v.n;
    }
    return v;
  }();
  return TheOverride().on ? TheOverride().value : from_env;
}

ScopedInt8Thresholds::ScopedInt8Thresholds(Int8MinDot t)
    : had_(TheOverride().on), saved_(TheOverride().value) {
  TheOverride().on = true;
  TheOverride().value = t;
}

ScopedInt8Thresholds::~ScopedInt8Thresholds() {
  TheOverride().on = had_;
  TheOverride().value = saved_;
}

}  // namespace kiln::cpu
