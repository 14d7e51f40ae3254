// Layout helpers for data_format="NHWC" tests: move the channel axis of a test tensor between
// position 1 (NCHW) and last (NHWC), for any dtype and spatial rank.
#pragma once

#include <cstring>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::testing {

// x [N, C, s...] -> [N, s..., C] (to_last) or [N, s..., C] -> [N, C, s...].
inline Tensor MoveChannels(const Tensor& x, bool to_last) {
  const std::vector<int64_t>& d = x.dims();
  const int64_t n = d[0], c = to_last ? d[1] : d.back();
  const int64_t sp = n * c == 0 ? 0 : x.num_elements() / (n * c);
  std::vector<int64_t> out = d;
  if (to_last) {
    out.erase(out.begin() + 1);
    out.push_back(c);
  } else {
    out.pop_back();
    out.insert(out.begin() + 1, c);
  }
  Tensor y = Tensor::Empty(x.dtype(), out);
  const size_t es = DataTypeSize(x.dtype());
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(y.raw_mutable_data());
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t s = 0; s < sp; ++s) {
        const int64_t first = (b * c + ch) * sp + s, last = (b * sp + s) * c + ch;
        std::memcpy(dst + es * (to_last ? last : first), src + es * (to_last ? first : last), es);
      }
    }
  }
  return y;
}
inline Tensor ToNhwc(const Tensor& x) { return MoveChannels(x, true); }
inline Tensor ToNchw(const Tensor& x) { return MoveChannels(x, false); }

}  // namespace kiln::testing
