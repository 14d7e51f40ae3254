#include "engine/plan.h"

#include "core/strings.h"

#include <zlib.h>

#include <cstring>
#include <sstream>

namespace kiln {
namespace {

constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'P', 'L', 'A', 'N'};

void PutU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetLE(std::string_view s, size_t at, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(s[at + i])) << (8 * i);
  return v;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ";") + x;
  return s;
}
std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream ss(s);
  while (std::getline(ss, cur, ';')) out.push_back(cur);
  return out;
}

uint32_t Crc(std::string_view bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  size_t off = 0;
  while (off < bytes.size()) {
    uInt chunk = static_cast<uInt>(std::min<size_t>(bytes.size() - off, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + off), chunk);
    off += chunk;
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace

std::string WritePlan(const PlanHeader& h, std::string_view payload) {
  std::ostringstream hs;
  hs << "kiln_version=" << h.kiln_version << "\n"
     << "backend=" << h.backend << "\n"
     << "device=" << h.device_fingerprint << "\n"
     << "precision=" << h.precision << "\n"
     << "content_hash=" << h.content_hash << "\n"
     << "inputs=" << Join(h.input_specs) << "\n"
     << "outputs=" << Join(h.output_specs) << "\n"
     << "build_config=" << h.build_config << "\n";
  std::string header = hs.str();
  std::string out(kMagic, sizeof kMagic);
  PutU32(&out, kPlanFormatVersion);
  PutU32(&out, static_cast<uint32_t>(header.size()));
  out += header;
  PutU64(&out, payload.size());
  out.append(payload.data(), payload.size());
  PutU32(&out, Crc(out));
  return out;
}

StatusOr<std::pair<PlanHeader, std::string>> ReadPlan(std::string_view b) {
  if (b.size() < 8 + 4 + 4 + 8 + 4 || std::memcmp(b.data(), kMagic, 8) != 0) {
    return DataLoss("not a kiln engine plan (bad magic or too short)");
  }
  uint32_t version = static_cast<uint32_t>(GetLE(b, 8, 4));
  if (version != kPlanFormatVersion) {
    return FailedPrecondition("engine plan format version " + std::to_string(version) +
                              " is not supported (this kiln reads version " +
                              std::to_string(kPlanFormatVersion) + ")");
  }
  uint64_t header_len = GetLE(b, 12, 4);
  if (header_len > b.size() - 16 - 12) return DataLoss("engine plan is truncated (header)");
  size_t at = 16 + header_len;
  uint64_t payload_len = GetLE(b, at, 8);
  at += 8;
  if (payload_len > b.size() - at - 4 || at + payload_len + 4 != b.size()) {
    return DataLoss("engine plan is truncated or has trailing bytes (payload)");
  }
  uint32_t stored = static_cast<uint32_t>(GetLE(b, at + payload_len, 4));
  if (stored != Crc(b.substr(0, at + payload_len))) {
    return DataLoss("engine plan checksum mismatch: the plan is corrupted");
  }
  PlanHeader h;
  std::istringstream hs{std::string(b.substr(16, header_len))};
  std::string line;
  while (std::getline(hs, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    if (k == "kiln_version") h.kiln_version = v;
    else if (k == "backend") h.backend = v;
    else if (k == "device") h.device_fingerprint = v;
    else if (k == "precision") h.precision = v;
    else if (k == "content_hash") h.content_hash = v;
    else if (k == "inputs") h.input_specs = Split(v);
    else if (k == "outputs") h.output_specs = Split(v);
    else if (k == "build_config") h.build_config = v;
  }
  return std::make_pair(std::move(h), std::string(b.substr(at, payload_len)));
}

std::string HashBytes(std::string_view bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

StatusOr<std::vector<int64_t>> DimsOfSpec(const std::string& spec) {
  const size_t open = spec.find('[');
  if (open == std::string::npos) return InvalidArgument("bad tensor spec '" + spec + "'");
  KILN_ASSIGN_OR_RETURN(Shape shape, ParseShapeText(spec.substr(open)));
  if (!shape.fully_known()) return InvalidArgument("tensor spec '" + spec + "' is not concrete");
  return shape.dims();
}

}  // namespace kiln
