// A fast 64-bit content hash for large byte ranges (weights): what the engine caches use to
// tell whether a segment's initializers are the ones a plan was built from.
//
// Eight 64-bit lanes over 64-byte stripes, each lane a 32x32->64 multiply of the input word
// mixed with a per-lane key plus the neighbouring word (the accumulate step of XXH3), the lanes
// scrambled every 1 KiB and folded at the end. ~10x FNV-1a's speed: memory-bound on the CPUs
// kiln runs on. Not cryptographic; deterministic across runs, processes and machines of the
// same endianness (little-endian, like every target kiln builds for).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln {

// The hash of `n` bytes at `data`, seeded (different seeds give unrelated hashes).
uint64_t ContentHash64(const void* data, size_t n, uint64_t seed = 0);

// 16 lower-case hex digits.
std::string ContentHashHex(uint64_t h);

}  // namespace kiln
