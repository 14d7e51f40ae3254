// ContentHash64 (content_hash.h).
#include "core/content_hash.h"

#include <cstdio>
#include <cstring>

namespace kiln {
namespace {

constexpr uint64_t kPrime32_1 = 0x9E3779B1u;
constexpr uint64_t kPrime64_1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kPrime64_2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kPrime64_3 = 0x165667B19E3779F9ull;
// Per-lane keys (hex digits of pi); the scramble keys are the same rotated by one lane.
constexpr uint64_t kKey[9] = {0x243f6a8885a308d3ull, 0x13198a2e03707344ull, 0xa4093822299f31d0ull,
                              0x082efa98ec4e6c89ull, 0x452821e638d01377ull, 0xbe5466cf34e90c6cull,
                              0xc0ac29b7c97c50ddull, 0x3f84d5b5b5470917ull, 0x9216d5d98979fb1bull};
constexpr size_t kStripe = 64;
constexpr size_t kStripesPerBlock = 16;  // scramble every 1 KiB

inline uint64_t Load64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline uint64_t Avalanche(uint64_t h) {
  h ^= h >> 33;
  h *= kPrime64_2;
  h ^= h >> 29;
  h *= kPrime64_3;
  h ^= h >> 32;
  return h;
}

inline uint64_t Mul128Fold(uint64_t a, uint64_t b) {
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(p) ^ static_cast<uint64_t>(p >> 64);
}

inline void Accumulate(uint64_t acc[8], const unsigned char* p, uint64_t seed) {
  for (int i = 0; i < 8; ++i) {
    const uint64_t v = Load64(p + 8 * i);
    const uint64_t k = v ^ (kKey[i] + seed);
    acc[i ^ 1] += v;
    acc[i] += (k & 0xffffffffull) * (k >> 32);
  }
}

inline void Scramble(uint64_t acc[8]) {
  for (int i = 0; i < 8; ++i) {
    uint64_t a = acc[i];
    a ^= a >> 47;
    a ^= kKey[i + 1];
    acc[i] = a * kPrime32_1;
  }
}

}  // namespace

uint64_t ContentHash64(const void* data, size_t n, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t acc[8] = {kPrime32_1, kPrime64_1, kPrime64_2, kPrime64_3,
                     kPrime64_1 ^ seed, kPrime64_2 + seed, kPrime64_3 - seed, kPrime32_1 * 3};
  size_t i = 0;
  const size_t block = kStripe * kStripesPerBlock;
  for (; i + block <= n; i += block) {
    for (size_t s = 0; s < kStripesPerBlock; ++s) Accumulate(acc, p + i + s * kStripe, seed);
    Scramble(acc);
  }
  for (; i + kStripe <= n; i += kStripe) Accumulate(acc, p + i, seed);
  // The tail (< 64 bytes), zero-padded, and its length: a shorter input is never a prefix
  // collision of a longer one.
  if (i < n) {
    unsigned char last[kStripe] = {};
    std::memcpy(last, p + i, n - i);
    Accumulate(acc, last, seed);
  }
  uint64_t h = static_cast<uint64_t>(n) * kPrime64_1 ^ seed;
  for (int l = 0; l < 8; l += 2) {
    h += Mul128Fold(acc[l] ^ kKey[l], acc[l + 1] ^ kKey[l + 1]);
    h = (h << 27 | h >> 37) * kPrime64_1;
  }
  return Avalanche(h);
}

std::string ContentHashHex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace kiln
