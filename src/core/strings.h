// Small string helpers shared across layers.
#pragma once

#include <string>

namespace kiln {

// `s` as a JSON string literal, double quotes included: '"' and '\' are backslash-escaped,
// \n \t \r written as such, other control characters as \u00XX; other bytes (UTF-8 included)
// are copied unchanged.
std::string JsonEscape(const std::string& s);

}  // namespace kiln
