// Small helpers shared by the converter / EngineOp / engine-cache tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::testing {

// A float32 tensor of `dims` with values uniform in [-1, 1) from `seed`.
inline Tensor Random(std::vector<int64_t> dims, uint32_t seed) {
  Tensor t = Tensor::Empty(DataType::kFloat32, dims);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.mutable_data<float>()[i] = u(rng);
  return t;
}

// How often `what` occurs in `text` (overlapping occurrences count).
inline size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// ||got - want|| / ||want|| (L2 over all elements); infinity when `got` has a NaN.
inline double RelL2(const Tensor& got, const Tensor& want) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    const double g = got.GetAsDouble(i), w = want.GetAsDouble(i);
    if (std::isnan(g)) return INFINITY;
    num += (g - w) * (g - w);
    den += w * w;
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

}  // namespace kiln::testing
