#include "core/strings.h"

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace kiln {

std::string FormatShapeText(const Shape& shape) {
  std::string s = "[";
  for (int i = 0; i < shape.rank(); ++i) {
    s += (i ? "," : "") + std::to_string(shape.dim(i) < 0 ? -1 : shape.dim(i));
  }
  return s + "]";
}

StatusOr<Shape> ParseShapeText(const std::string& text) {
  if (text.size() < 2 || text.front() != '[' || text.back() != ']') {
    return InvalidArgument("bad shape attribute '" + text + "'");
  }
  std::vector<int64_t> dims;
  const std::string body = text.substr(1, text.size() - 2);
  size_t at = 0;
  while (at < body.size()) {
    size_t comma = body.find(',', at);
    if (comma == std::string::npos) comma = body.size();
    const std::string item = body.substr(at, comma - at);
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < -1) {
      return InvalidArgument("bad shape attribute '" + text + "'");
    }
    dims.push_back(v < 0 ? Shape::kUnknownDim : v);
    at = comma + 1;
  }
  return Shape(dims);
}

std::string JsonEscape(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace kiln
