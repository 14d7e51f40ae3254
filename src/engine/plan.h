// Engine plans: a versioned, fingerprinted, checksummed binary container (ARCHITECTURE §5).
//
//   "KILNPLAN" | u32 format version | u32 header length | header (key=value lines) |
//   u64 payload length | payload | u32 CRC32 of everything before it
//
// A plan that fails its checksum, is from another format version, or was built for another
// device or backend is rejected with the reason — never executed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/build_config.h"
#include "kiln/status.h"

namespace kiln {

// 2: CPU payloads may reference the segment's initializers instead of copying them (lean plans).
// 3: content_hash derives from SegmentContentHash (convert/segment_hash.h: structure + a wide
//    hash of each weight) instead of FNV-1a over the segment's ONNX bytes.
inline constexpr uint32_t kPlanFormatVersion = 3;

struct PlanHeader {
  std::string kiln_version;
  std::string backend;
  std::string device_fingerprint;
  std::string precision;
  std::string content_hash;  // of the segment + build config (HashSegment)
  std::vector<std::string> input_specs;   // "float32[1,3,224,224]"
  std::vector<std::string> output_specs;
  std::string build_config;  // BuildConfig::Fingerprint()
};

std::string WritePlan(const PlanHeader& header, std::string_view payload);
// DataLoss for corruption (magic, length, checksum); FailedPrecondition for another version.
StatusOr<std::pair<PlanHeader, std::string>> ReadPlan(std::string_view bytes);

// The dimensions of a concrete tensor spec, "float32[8,3,48,192]" -> {8,3,48,192};
// InvalidArgument unless the spec parses and every dimension is known.
StatusOr<std::vector<int64_t>> DimsOfSpec(const std::string& spec);

// 64-bit FNV-1a of bytes, as 16 hex digits: content hashes and cache keys.
std::string HashBytes(std::string_view bytes);

}  // namespace kiln
