#include "ops/base/shape_util.h"

#include <algorithm>

namespace kiln {

StatusOr<std::vector<int64_t>> BroadcastDims(const std::vector<std::vector<int64_t>>& dims) {
  size_t rank = 0;
  for (const auto& d : dims) rank = std::max(rank, d.size());
  std::vector<int64_t> out(rank, 1);
  for (const auto& d : dims) {
    size_t offset = rank - d.size();
    for (size_t i = 0; i < d.size(); ++i) {
      int64_t& o = out[offset + i];
      if (d[i] == o || d[i] == 1) continue;
      if (o == 1) {
        o = d[i];
        continue;
      }
      std::string shapes;
      for (const auto& s : dims) shapes += (shapes.empty() ? "" : " and ") + DimsToString(s);
      return InvalidArgument("shapes " + shapes + " cannot be broadcast together");
    }
  }
  return out;
}

Shape BroadcastShapes(const std::vector<Shape>& shapes) {
  size_t rank = 0;
  for (const auto& s : shapes) {
    if (!s.rank_known()) return Shape::UnknownRank();
    rank = std::max(rank, static_cast<size_t>(s.rank()));
  }
  std::vector<int64_t> out(rank, 1);
  std::vector<bool> unknown(rank, false);
  for (const auto& s : shapes) {
    size_t offset = rank - s.rank();
    for (int i = 0; i < s.rank(); ++i) {
      int64_t d = s.dim(i);
      size_t j = offset + i;
      if (d < 0) {
        if (out[j] == 1) unknown[j] = true;
      } else if (d != 1) {
        out[j] = d;
        unknown[j] = false;
      }
    }
  }
  for (size_t j = 0; j < rank; ++j) {
    if (unknown[j]) out[j] = Shape::kUnknownDim;
  }
  return Shape(out);
}

std::vector<int64_t> ContiguousStrides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> strides(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) {
    strides[i] = strides[i + 1] * dims[i + 1];
  }
  return strides;
}

std::vector<int64_t> BroadcastStrides(const std::vector<int64_t>& in_dims,
                                      const std::vector<int64_t>& out_dims) {
  std::vector<int64_t> strides(out_dims.size(), 0);
  std::vector<int64_t> in_strides = ContiguousStrides(in_dims);
  size_t offset = out_dims.size() - in_dims.size();
  for (size_t i = 0; i < in_dims.size(); ++i) {
    strides[offset + i] = in_dims[i] == 1 ? 0 : in_strides[i];
  }
  return strides;
}

StatusOr<int> NormalizeAxis(int64_t axis, int rank, const Node& node) {
  if (axis < -rank || axis >= std::max(rank, 1)) {
    if (!(rank == 0 && (axis == 0 || axis == -1))) {
      return InvalidArgument(node.Describe() + ": axis " + std::to_string(axis) +
                             " is out of range for rank " + std::to_string(rank));
    }
  }
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

Status InferSameAsInput0(InferContext& ctx) {
  ctx.SetOutput(0, ctx.input_dtype(0), ctx.input_shape(0));
  return Status::OK();
}

Status InferBroadcast(InferContext& ctx) {
  std::vector<Shape> shapes;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (ctx.has_input(i)) shapes.push_back(ctx.input_shape(i));
  }
  ctx.SetOutput(0, ctx.input_dtype(0), BroadcastShapes(shapes));
  return Status::OK();
}

Status InferBroadcastBool(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(InferBroadcast(ctx));
  std::vector<Shape> shapes;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (ctx.has_input(i)) shapes.push_back(ctx.input_shape(i));
  }
  ctx.SetOutput(0, DataType::kBool, BroadcastShapes(shapes));
  return Status::OK();
}

}  // namespace kiln
