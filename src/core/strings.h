// Small string helpers shared across layers.
#pragma once

#include <string>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

// Shapes as text, as EngineOp attributes and plan specs write them: "[-1,3,224,224]", unknown
// dimensions as -1 (the rank must be known). ParseShapeText is the inverse of FormatShapeText;
// anything else is InvalidArgument quoting the text.
std::string FormatShapeText(const Shape& shape);
StatusOr<Shape> ParseShapeText(const std::string& text);

// `s` as a JSON string literal, double quotes included: '"' and '\' are backslash-escaped,
// \n \t \r written as such, other control characters as \u00XX; other bytes (UTF-8 included)
// are copied unchanged.
std::string JsonEscape(const std::string& s);

}  // namespace kiln
