// Element-type-agnostic copies, plus the small index-input helpers, shared by the shape and tensor
// op families (header-only, so each family library stays self-contained).
//
// Kernels that only move elements (Transpose, Slice, Expand, Tile, DepthToSpace, ...) describe
// their output as a strided view of the input and call StridedCopy, which works for every dtype:
// fixed-size elements are moved as opaque bytes, strings as std::string objects.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kiln/tensor.h"
#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"

namespace kiln::data_movement {

using Dims = std::vector<int64_t>;

inline std::string Str(int64_t v) { return std::to_string(v); }

// Input i of the kernel, an integer (int32/int64) tensor of rank <= 1, as int64 values.
inline StatusOr<Dims> IndexInput(const KernelContext& ctx, int i, const std::string& what) {
  const Tensor& t = ctx.input(i);
  if (t.rank() > 1) return ctx.Error(what + " must be 1-D, got " + t.TypeString());
  auto v = ReadInt64s(t);
  if (!v.ok()) return ctx.Error(what + ": " + v.status().message());
  return v;
}

// The value of input i at inference time, when it is a known integer constant.
inline std::optional<Dims> ConstantInts(const InferContext& ctx, int i) {
  const Tensor* t = ctx.constant_input(i);
  if (t == nullptr) return std::nullopt;
  auto v = ReadInt64s(*t);
  if (!v.ok()) return std::nullopt;
  return *v;
}

// Bytes one element occupies in tensor storage (strings are stored as std::string objects).
inline size_t ElementBytes(DataType t) {
  return t == DataType::kString ? sizeof(std::string) : DataTypeSize(t);
}

// An opaque element of N bytes: copying it is a plain N-byte move, safe for any dtype.
template <size_t N>
struct Bytes {
  unsigned char b[N];
};

// Calls f.template operator()<T>() with a copyable element type of dtype `t`'s size.
template <typename F>
void DispatchByElementSize(DataType t, F&& f) {
  if (t == DataType::kString) return f.template operator()<std::string>();
  switch (DataTypeSize(t)) {
    case 1:
      return f.template operator()<Bytes<1>>();
    case 2:
      return f.template operator()<Bytes<2>>();
    case 4:
      return f.template operator()<Bytes<4>>();
    case 8:
      return f.template operator()<Bytes<8>>();
    default:
      return;  // kUndefined: nothing to copy
  }
}

namespace internal {

// dst[i0 * n1 + i1] = src[i0 * s0 + i1 * s1].
template <typename T>
void Copy2D(const T* src, int64_t n0, int64_t n1, int64_t s0, int64_t s1, T* dst) {
  if (s1 == 1) {
    for (int64_t i0 = 0; i0 < n0; ++i0) std::copy_n(src + i0 * s0, n1, dst + i0 * n1);
  } else if (s1 == 0) {  // broadcast innermost dim
    for (int64_t i0 = 0; i0 < n0; ++i0) std::fill_n(dst + i0 * n1, n1, src[i0 * s0]);
  } else if (s0 == 1 && n0 >= 8 && n1 >= 8) {
    // A true 2-D transpose: work in tiles so reads and writes both stay in cache.
    constexpr int64_t kTile = 32;
    for (int64_t b0 = 0; b0 < n0; b0 += kTile) {
      const int64_t e0 = std::min(n0, b0 + kTile);
      for (int64_t b1 = 0; b1 < n1; b1 += kTile) {
        const int64_t e1 = std::min(n1, b1 + kTile);
        for (int64_t i0 = b0; i0 < e0; ++i0) {
          for (int64_t i1 = b1; i1 < e1; ++i1) dst[i0 * n1 + i1] = src[i0 + i1 * s1];
        }
      }
    }
  } else {
    for (int64_t i0 = 0; i0 < n0; ++i0) {
      for (int64_t i1 = 0; i1 < n1; ++i1) dst[i0 * n1 + i1] = src[i0 * s0 + i1 * s1];
    }
  }
}

}  // namespace internal

// Writes the strided view of `src` described by `dims` and `strides` (in elements; 0 repeats an
// element, negative walks backwards) into contiguous `dst`: output element (i0, ..., ik) is
// src[i0 * strides[0] + ... + ik * strides[k]]. Every addressed element must lie inside src.
// Dims of size 1 are dropped and dims that are contiguous in src merged, so e.g. a transpose that
// keeps the innermost dim copies whole rows.
inline void StridedCopy(DataType t, const void* src, const std::vector<int64_t>& dims,
                        const std::vector<int64_t>& strides, void* dst) {
  std::vector<int64_t> d, s;  // coalesced, outermost first
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 0) return;
    if (dims[i] == 1) continue;
    if (!d.empty() && s.back() == strides[i] * dims[i]) {
      d.back() *= dims[i];
      s.back() = strides[i];
    } else {
      d.push_back(dims[i]);
      s.push_back(strides[i]);
    }
  }
  while (d.size() < 2) {
    d.insert(d.begin(), 1);
    s.insert(s.begin(), 0);
  }
  const int r = static_cast<int>(d.size());
  DispatchByElementSize(t, [&]<typename T>() {
    const T* in = static_cast<const T*>(src);
    T* out = static_cast<T*>(dst);
    const int64_t n0 = d[r - 2], n1 = d[r - 1];
    std::vector<int64_t> index(r - 2, 0);
    int64_t offset = 0;
    while (true) {
      internal::Copy2D(in + offset, n0, n1, s[r - 2], s[r - 1], out);
      out += n0 * n1;
      int k = r - 3;
      for (; k >= 0; --k) {
        offset += s[k];
        if (++index[k] < d[k]) break;
        offset -= s[k] * d[k];
        index[k] = 0;
      }
      if (k < 0) break;
    }
  });
}

// Sets dst[0, count) to copies of the element at `value` (same dtype).
inline void FillElements(DataType t, const void* value, void* dst, int64_t count) {
  DispatchByElementSize(t, [&]<typename T>() {
    std::fill_n(static_cast<T*>(dst), count, *static_cast<const T*>(value));
  });
}

// `base` advanced by `index` elements of dtype `t`.
inline const void* ElementAt(DataType t, const void* base, int64_t index) {
  return static_cast<const char*>(base) + index * static_cast<int64_t>(ElementBytes(t));
}
inline void* ElementAt(DataType t, void* base, int64_t index) {
  return static_cast<char*>(base) + index * static_cast<int64_t>(ElementBytes(t));
}

// Elements [begin, begin + count) along `axis` of `t` (any dtype) as a new tensor; the caller
// checks 0 <= begin <= begin + count <= t.dim(axis).
inline StatusOr<Tensor> SliceAlongAxis(const Tensor& t, int axis, int64_t begin, int64_t count) {
  Dims dims = t.dims();
  const int64_t len = dims[axis];
  int64_t outer = 1, inner = 1;
  for (int k = 0; k < axis; ++k) outer *= dims[k];
  for (size_t k = axis + 1; k < dims.size(); ++k) inner *= dims[k];
  dims[axis] = count;
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::Create(t.dtype(), dims));
  for (int64_t o = 0; o < outer; ++o) {
    CopyElements(t.dtype(), ElementAt(t.dtype(), t.raw_data(), (o * len + begin) * inner),
                 ElementAt(t.dtype(), out.raw_mutable_data(), o * count * inner), count * inner);
  }
  return out;
}

// `items` concatenated along `axis`: one dtype and rank, equal dims but along `axis`
// (InvalidArgument naming `who` otherwise). `items` must not be empty.
inline StatusOr<Tensor> ConcatAlongAxis(const std::vector<Tensor>& items, int axis,
                                        const std::string& who) {
  const Tensor& first = items.front();
  Dims dims = first.dims();
  int64_t total = 0;
  for (const Tensor& t : items) {
    bool same = t.is_tensor() && t.dtype() == first.dtype() && t.rank() == first.rank();
    for (int d = 0; same && d < first.rank(); ++d) same = d == axis || t.dim(d) == first.dim(d);
    if (!same) {
      return InvalidArgument(who + ": cannot concatenate " + first.TypeString() + " and " +
                             t.TypeString() + " along axis " + Str(axis));
    }
    total += t.dim(axis);
  }
  dims[axis] = total;
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::Create(first.dtype(), dims));
  int64_t outer = 1, inner = 1;
  for (int k = 0; k < axis; ++k) outer *= dims[k];
  for (size_t k = axis + 1; k < dims.size(); ++k) inner *= dims[k];
  int64_t offset = 0;
  for (int64_t o = 0; o < outer; ++o) {
    for (const Tensor& t : items) {
      const int64_t block = t.dim(axis) * inner;
      CopyElements(first.dtype(), ElementAt(first.dtype(), t.raw_data(), o * block),
                   ElementAt(first.dtype(), out.raw_mutable_data(), offset), block);
      offset += block;
    }
  }
  return out;
}

}  // namespace kiln::data_movement
