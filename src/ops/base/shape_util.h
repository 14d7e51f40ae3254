// Shape helpers shared by kernels and shape functions: broadcasting, axes, strides.
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"
#include "ops/base/kernel_context.h"

namespace kiln {

// Numpy / ONNX multidirectional broadcasting of concrete dims.
StatusOr<std::vector<int64_t>> BroadcastDims(const std::vector<std::vector<int64_t>>& dims);
// The same on partial shapes (unknown dims stay unknown unless another input fixes them).
Shape BroadcastShapes(const std::vector<Shape>& shapes);

// Row-major strides of `dims` in elements.
std::vector<int64_t> ContiguousStrides(const std::vector<int64_t>& dims);
// Strides of an input of `in_dims` viewed in the index space of `out_dims` (right-aligned;
// broadcast dimensions get stride 0).
std::vector<int64_t> BroadcastStrides(const std::vector<int64_t>& in_dims,
                                      const std::vector<int64_t>& out_dims);

// Calls f(out_index, offsets) for every element of `out_dims` in row-major order, where
// offsets[k] is the element offset in input k (given by its broadcast strides).
template <typename F>
void ForEachBroadcast(const std::vector<int64_t>& out_dims,
                      const std::vector<std::vector<int64_t>>& strides, F&& f) {
  const int rank = static_cast<int>(out_dims.size());
  const size_t n_in = strides.size();
  int64_t total = 1;
  for (int64_t d : out_dims) total *= d;
  if (total == 0) return;
  std::vector<int64_t> offsets(n_in, 0);
  if (rank == 0) {
    f(int64_t{0}, offsets.data());
    return;
  }
  std::vector<int64_t> index(rank, 0);
  const int64_t inner = out_dims[rank - 1];
  int64_t out = 0;
  while (true) {
    std::vector<int64_t> base = offsets;
    for (int64_t i = 0; i < inner; ++i) {
      f(out++, offsets.data());
      for (size_t k = 0; k < n_in; ++k) offsets[k] += strides[k][rank - 1];
    }
    offsets = base;
    int d = rank - 2;
    for (; d >= 0; --d) {
      ++index[d];
      for (size_t k = 0; k < n_in; ++k) offsets[k] += strides[k][d];
      if (index[d] < out_dims[d]) break;
      for (size_t k = 0; k < n_in; ++k) offsets[k] -= strides[k][d] * out_dims[d];
      index[d] = 0;
    }
    if (d < 0) break;
  }
}

// Maps a possibly negative axis into [0, rank); InvalidArgument when out of range.
StatusOr<int> NormalizeAxis(int64_t axis, int rank, const Node& node);

// Common shape functions.
Status InferSameAsInput0(InferContext& ctx);            // output 0 = input 0's type and shape
Status InferBroadcast(InferContext& ctx);               // dtype of input 0, broadcast shape
Status InferBroadcastBool(InferContext& ctx);           // bool, broadcast shape

}  // namespace kiln
