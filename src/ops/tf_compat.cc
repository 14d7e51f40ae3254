// Op family: tf_compat — kiln-domain ops for TensorFlow semantics ONNX lacks.
//
//   kiln.StridedSlice(x, begin, end, strides)  TF StridedSlice: every mask, negative strides,
//                                              non-constant begin/end/strides
//   kiln.SpaceToBatchND(x, block_shape, paddings) / kiln.BatchToSpaceND(x, block_shape, crops)
//   kiln.FloorDiv(a, b), kiln.FloorMod(a, b)   floor division / modulo (sign of the divisor),
//                                              broadcasting, integer division by zero an error
//   kiln.RandomUniform(shape)                  uniform [0, 1) of `dtype` (deterministic seed)
//   kiln.FakeQuantWithMinMax(x, min, max)      TF FakeQuantWithMinMaxVars/Args (nudged range)
//   kiln.QuantizeAndDequantize(x, min, max)    TF QuantizeAndDequantizeV2/V3/V4, per tensor
#include <cmath>
#include <cstring>
#include <type_traits>
#include <limits>
#include <random>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/base/shape_util.h"

namespace kiln {
namespace {

constexpr char kDomain[] = "kiln";

// ------------------------------------------------------------------------- StridedSlice

struct DenseSlice {
  std::vector<int64_t> begin, stride, size;  // per input dim
  std::vector<int64_t> out_dims;             // final shape
};

// TF's StridedSlice canonicalisation (strided_slice_op.cc: BuildDenseSpec + canonical()).
StatusOr<DenseSlice> ComputeSlice(const AttrReader& ctx, const std::vector<int64_t>& dims,
                                  const std::vector<int64_t>& begin,
                                  const std::vector<int64_t>& end,
                                  const std::vector<int64_t>& strides) {
  const int64_t n0 = static_cast<int64_t>(begin.size());
  if (end.size() != begin.size() || strides.size() != begin.size()) {
    return ctx.Error("begin, end and strides must have the same length");
  }
  if (n0 > 62) return ctx.Error("too many slice dimensions");
  int64_t bm = ctx.GetInt("begin_mask"), em = ctx.GetInt("end_mask");
  int64_t ellipsis = ctx.GetInt("ellipsis_mask"), new_axis = ctx.GetInt("new_axis_mask");
  int64_t shrink = ctx.GetInt("shrink_axis_mask");
  if ((ellipsis & (ellipsis - 1)) != 0) return ctx.Error("more than one ellipsis");
  int64_t n = n0;
  if (ellipsis == 0) {  // an implicit ellipsis at the end
    ellipsis = int64_t{1} << n;
    ++n;
  }
  int64_t new_after_ellipsis = 0;
  bool seen = false;
  for (int64_t i = 0; i < n; ++i) {
    if (seen && (new_axis >> i & 1)) ++new_after_ellipsis;
    if (ellipsis >> i & 1) seen = true;
  }
  const int64_t rank = static_cast<int64_t>(dims.size());
  constexpr int64_t kNew = -1, kShrink = -2;
  std::vector<int64_t> db(rank, 0), de(rank, 0), ds(rank, 1), gather;
  std::vector<bool> dbm(rank, false), dem(rank, false), dsh(rank, false);
  int64_t full = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (ellipsis >> i & 1) {
      int64_t next = std::min(rank - (n - i) + 1 + new_after_ellipsis, rank);
      for (; full < next; ++full) {
        dbm[full] = dem[full] = true;
        gather.push_back(full);
      }
    } else if (new_axis >> i & 1) {
      gather.push_back(kNew);
    } else {
      if (full >= rank) return ctx.Error("slice index " + std::to_string(i) + " out of range");
      db[full] = begin[i];
      de[full] = end[i];
      ds[full] = strides[i];
      dbm[full] = bm >> i & 1;
      dem[full] = em >> i & 1;
      dsh[full] = shrink >> i & 1;
      gather.push_back(dsh[full] ? kShrink : full);
      ++full;
    }
  }
  DenseSlice out;
  out.begin.resize(rank);
  out.stride.resize(rank);
  out.size.resize(rank);
  for (int64_t d = 0; d < rank; ++d) {
    const int64_t dim = dims[d], st = ds[d];
    if (st == 0) return ctx.Error("strides[" + std::to_string(d) + "] is 0");
    int64_t b, e;
    if (dsh[d]) {
      b = db[d] < 0 ? dim + db[d] : db[d];
      if (b < 0 || b >= dim) {
        return ctx.Error("slice index " + std::to_string(db[d]) + " of dimension " +
                         std::to_string(d) + " out of bounds (size " + std::to_string(dim) + ")");
      }
      e = b + 1;
      out.stride[d] = 1;
    } else {
      const int64_t lo = st > 0 ? 0 : -1, hi = st > 0 ? dim : dim - 1;
      auto canon = [&](int64_t x, bool masked, int c) {
        if (masked) return (st > 0) == (c == 0) ? lo : hi;
        int64_t f = x < 0 ? dim + x : x;
        return f < lo ? lo : f > hi ? hi : f;
      };
      b = canon(db[d], dbm[d], 0);
      e = canon(de[d], dem[d], 1);
      out.stride[d] = st;
    }
    out.begin[d] = b;
    const int64_t len = e - b, s = out.stride[d];
    int64_t size = 0;
    if (len != 0 && (len < 0) == (s < 0)) size = len / s + (len % s != 0 ? 1 : 0);
    out.size[d] = size;
  }
  for (int64_t g : gather) {
    if (g == kNew) out.out_dims.push_back(1);
    else if (g >= 0) out.out_dims.push_back(out.size[g]);
  }
  return out;
}

Status StridedSliceKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<std::vector<int64_t>> v(3);
  for (int i = 0; i < 3; ++i) {
    auto r = ReadInt64s(ctx.input(i + 1));
    if (!r.ok()) return ctx.Error(r.status().message());
    v[i] = *r;
  }
  KILN_ASSIGN_OR_RETURN(DenseSlice s, ComputeSlice(ctx, x.dims(), v[0], v[1], v[2]));
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, x.dtype(), s.out_dims));
  const int rank = x.rank();
  if (out->num_elements() == 0) return Status::OK();
  std::vector<int64_t> in_strides = ContiguousStrides(x.dims());
  std::vector<int64_t> idx(rank, 0);
  for (int64_t o = 0; o < out->num_elements(); ++o) {
    int64_t off = 0;
    for (int d = 0; d < rank; ++d) off += (s.begin[d] + idx[d] * s.stride[d]) * in_strides[d];
    CopyElement(x, off, out, o);
    for (int d = rank - 1; d >= 0; --d) {
      if (++idx[d] < s.size[d]) break;
      idx[d] = 0;
    }
  }
  return Status::OK();
}

Status StridedSliceInfer(InferContext& ctx) {
  const Shape& in = ctx.input_shape(0);
  const Tensor* b = ctx.constant_input(1);
  const Tensor* e = ctx.constant_input(2);
  const Tensor* st = ctx.constant_input(3);
  if (in.fully_known() && b && e && st) {
    auto vb = ReadInt64s(*b), ve = ReadInt64s(*e), vs = ReadInt64s(*st);
    if (vb.ok() && ve.ok() && vs.ok()) {
      KILN_ASSIGN_OR_RETURN(DenseSlice s, ComputeSlice(ctx, in.dims(), *vb, *ve, *vs));
      ctx.SetOutput(0, ctx.input_dtype(0), Shape(s.out_dims));
      return Status::OK();
    }
  }
  ctx.SetOutput(0, ctx.input_dtype(0), Shape());
  return Status::OK();
}

// --------------------------------------------------------------- SpaceToBatch / BatchToSpace

struct BlockSpec {
  std::vector<int64_t> block, pad_begin, pad_end;  // per spatial dim
  int64_t prod = 1;
};

StatusOr<BlockSpec> ReadBlockSpec(const AttrReader& ctx, const Tensor& block_t,
                                  const Tensor& pads_t, int rank, bool crops) {
  auto block = ReadInt64s(block_t);
  auto pads = ReadInt64s(pads_t);
  if (!block.ok() || !pads.ok()) return ctx.Error("block_shape and paddings must be integers");
  const int64_t m = static_cast<int64_t>(block->size());
  if (block_t.rank() != 1 || m < 1) return ctx.Error("block_shape must be a non-empty vector");
  if (static_cast<int64_t>(pads->size()) != 2 * m) {
    return ctx.Error(std::string(crops ? "crops" : "paddings") + " must have shape [" +
                     std::to_string(m) + ", 2]");
  }
  if (rank < 1 + m) return ctx.Error("input rank is smaller than 1 + len(block_shape)");
  BlockSpec s;
  for (int64_t i = 0; i < m; ++i) {
    if ((*block)[i] < 1) return ctx.Error("block_shape values must be >= 1");
    if ((*pads)[2 * i] < 0 || (*pads)[2 * i + 1] < 0) {
      return ctx.Error(std::string(crops ? "crops" : "paddings") + " must be >= 0");
    }
    s.block.push_back((*block)[i]);
    s.pad_begin.push_back((*pads)[2 * i]);
    s.pad_end.push_back((*pads)[2 * i + 1]);
    s.prod *= (*block)[i];
  }
  return s;
}

// Walks the big (space) tensor: for every (batch b, block offset, blocked position) calls
// f(space_offset or -1 when in padding/crop, batch_offset), both in units of `inner` elements.
template <typename F>
void ForEachBlock(const std::vector<int64_t>& space_dims, const std::vector<int64_t>& batch_dims,
                  const BlockSpec& s, F&& f) {
  const int m = static_cast<int>(s.block.size());
  const int64_t batch = space_dims[0];
  // Strides (in `inner` units) of each spatial dim and of the batch dim, on both sides.
  std::vector<int64_t> sp_strides(m), bt_strides(m);
  int64_t sp_batch_stride = 1, bt_batch_stride = 1;
  for (int i = m - 1; i >= 0; --i) {
    sp_strides[i] = sp_batch_stride;
    sp_batch_stride *= space_dims[i + 1];
    bt_strides[i] = bt_batch_stride;
    bt_batch_stride *= batch_dims[i + 1];
  }
  std::vector<int64_t> off(m, 0);
  int64_t blocked = 1;
  for (int i = 0; i < m; ++i) blocked *= batch_dims[i + 1];
  for (int64_t ob = 0; ob < s.prod; ++ob) {
    int64_t r = ob;
    for (int i = m - 1; i >= 0; --i) {
      off[i] = r % s.block[i];
      r /= s.block[i];
    }
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t out_b = ob * batch + b;
      for (int64_t p = 0; p < blocked; ++p) {
        int64_t q = p, sp = b * sp_batch_stride, bt = out_b * bt_batch_stride;
        bool inside = true;
        for (int i = m - 1; i >= 0; --i) {
          int64_t pi = q % batch_dims[i + 1];
          q /= batch_dims[i + 1];
          int64_t y = pi * s.block[i] + off[i] - s.pad_begin[i];
          if (y < 0 || y >= space_dims[i + 1]) inside = false;
          sp += y * sp_strides[i];
          bt += pi * bt_strides[i];
        }
        f(inside ? sp : -1, bt);
      }
    }
  }
}

Status SpaceBatchKernel(KernelContext& ctx, bool to_batch) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(BlockSpec s, ReadBlockSpec(ctx, ctx.input(1), ctx.input(2), x.rank(),
                                                   !to_batch));
  const int m = static_cast<int>(s.block.size());
  std::vector<int64_t> space = x.dims(), batch = x.dims();
  if (to_batch) {
    batch[0] = x.dim(0) * s.prod;
    for (int i = 0; i < m; ++i) {
      int64_t padded = x.dim(i + 1) + s.pad_begin[i] + s.pad_end[i];
      if (padded % s.block[i] != 0) {
        return ctx.Error("padded spatial dimension " + std::to_string(i) + " (" +
                         std::to_string(padded) + ") is not a multiple of the block size " +
                         std::to_string(s.block[i]));
      }
      batch[i + 1] = padded / s.block[i];
    }
  } else {
    if (x.dim(0) % s.prod != 0) {
      return ctx.Error("batch " + std::to_string(x.dim(0)) +
                       " is not a multiple of the block size product " + std::to_string(s.prod));
    }
    space[0] = x.dim(0) / s.prod;
    for (int i = 0; i < m; ++i) {
      int64_t full = x.dim(i + 1) * s.block[i];
      if (s.pad_begin[i] + s.pad_end[i] > full) return ctx.Error("crops exceed the input size");
      space[i + 1] = full - s.pad_begin[i] - s.pad_end[i];
    }
  }
  int64_t inner = 1;
  for (int d = m + 1; d < x.rank(); ++d) inner *= x.dim(d);
  // ForEachBlock walks in units of `inner` elements; scale the leading dims accordingly.
  std::vector<int64_t> sp(space.begin(), space.begin() + m + 1);
  std::vector<int64_t> bt(batch.begin(), batch.begin() + m + 1);
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, x.dtype(), to_batch ? batch : space));
  if (out->num_elements() == 0) return Status::OK();
  const size_t es = DataTypeSize(x.dtype());
  if (es == 0) return ctx.UnimplementedError("string tensors");
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(out->raw_mutable_data());
  const size_t chunk = static_cast<size_t>(inner) * es;
  ForEachBlock(sp, bt, s, [&](int64_t sp_off, int64_t bt_off) {
    if (to_batch) {
      if (sp_off >= 0) std::memcpy(dst + bt_off * chunk, src + sp_off * chunk, chunk);
    } else if (sp_off >= 0) {
      std::memcpy(dst + sp_off * chunk, src + bt_off * chunk, chunk);
    }
  });
  return Status::OK();
}

Status SpaceBatchInfer(InferContext& ctx, bool to_batch) {
  const Shape& in = ctx.input_shape(0);
  const Tensor* b = ctx.constant_input(1);
  const Tensor* p = ctx.constant_input(2);
  if (!in.rank_known()) {
    ctx.SetOutput(0, ctx.input_dtype(0), Shape());
    return Status::OK();
  }
  std::vector<int64_t> dims(in.rank(), Shape::kUnknownDim);
  if (b && p) {
    KILN_ASSIGN_OR_RETURN(BlockSpec s, ReadBlockSpec(ctx, *b, *p, in.rank(), !to_batch));
    const int m = static_cast<int>(s.block.size());
    for (int d = m + 1; d < in.rank(); ++d) dims[d] = in.dim(d);
    if (in.dim(0) >= 0) dims[0] = to_batch ? in.dim(0) * s.prod : in.dim(0) / s.prod;
    for (int i = 0; i < m; ++i) {
      int64_t v = in.dim(i + 1);
      if (v < 0) continue;
      dims[i + 1] = to_batch ? (v + s.pad_begin[i] + s.pad_end[i]) / s.block[i]
                             : v * s.block[i] - s.pad_begin[i] - s.pad_end[i];
    }
  }
  ctx.SetOutput(0, ctx.input_dtype(0), Shape(dims));
  return Status::OK();
}

// ---------------------------------------------------------------------- FloorDiv / FloorMod

template <typename T>
StatusOr<T> FloorDivOne(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    return std::floor(a / b);
  } else {
    if (b == 0) return InvalidArgument("integer division by zero");
    if constexpr (std::is_signed_v<T>) {
      if (a == std::numeric_limits<T>::min() && b == T(-1)) return a;  // wraps like TF
      T q = a / b;
      if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
      return q;
    } else {
      return a / b;
    }
  }
}

template <typename T>
StatusOr<T> FloorModOne(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    T r = std::fmod(a, b);
    return (r != 0 && ((b < 0) != (r < 0))) ? r + b : r;
  } else {
    if (b == 0) return InvalidArgument("integer division by zero");
    if constexpr (std::is_signed_v<T>) {
      if (b == T(-1)) return T(0);
      T r = a % b;
      return (r != 0 && ((b < 0) != (r < 0))) ? static_cast<T>(r + b) : r;
    } else {
      return static_cast<T>(a % b);
    }
  }
}

Status FloorBinaryKernel(KernelContext& ctx, bool mod) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.dtype() != b.dtype()) return ctx.Error("inputs have different dtypes");
  auto dims = BroadcastDims({a.dims(), b.dims()});
  if (!dims.ok()) return ctx.Error(dims.status().message());
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, a.dtype(), *dims));
  auto sa = BroadcastStrides(a.dims(), *dims), sb = BroadcastStrides(b.dims(), *dims);
  return DispatchNumeric(a.dtype(), [&]<typename T>() -> Status {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out->mutable_data<T>();
    Status st;
    ForEachBroadcast(*dims, {sa, sb}, [&](int64_t o, const int64_t* off) {
      if (!st.ok()) return;
      auto r = mod ? FloorModOne<T>(pa[off[0]], pb[off[1]]) : FloorDivOne<T>(pa[off[0]], pb[off[1]]);
      if (r.ok()) po[o] = *r;
      else st = ctx.Error(r.status().message());
    });
    return st;
  });
}

// --------------------------------------------------------------------------- RandomUniform

Status RandomUniformKernel(KernelContext& ctx) {
  auto dims = ReadInt64s(ctx.input(0));
  if (!dims.ok()) return ctx.Error("shape: " + dims.status().message());
  DataType dtype = static_cast<DataType>(ctx.GetInt("dtype"));
  if (!IsFloatingPoint(dtype)) return ctx.Error("dtype must be a floating-point type");
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, dtype, *dims));
  // TF draws fresh randomness when both seeds are 0; kiln stays deterministic.
  uint64_t seed = static_cast<uint64_t>(ctx.GetInt("seed")) * 0x9E3779B97F4A7C15ull ^
                  static_cast<uint64_t>(ctx.GetInt("seed2"));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(0.0, 1.0);
  for (int64_t i = 0; i < out->num_elements(); ++i) {
    const double v = dist(rng);
    if (dtype == DataType::kFloat64) {
      out->mutable_data<double>()[i] = v;
      continue;
    }
    // Rounding to a narrower type may reach 1.0: step back to the largest value below it.
    const float f = static_cast<float>(v);
    if (dtype == DataType::kFloat32) {
      out->mutable_data<float>()[i] = f < 1.0f ? f : std::nextafter(1.0f, 0.0f);
    } else if (dtype == DataType::kFloat16) {
      Float16 h(f);
      out->mutable_data<Float16>()[i] = static_cast<float>(h) < 1.0f ? h : Float16::FromBits(0x3BFF);
    } else {
      BFloat16 h(f);
      out->mutable_data<BFloat16>()[i] = static_cast<float>(h) < 1.0f ? h : BFloat16::FromBits(0x3F7F);
    }
  }
  return Status::OK();
}

// --------------------------------------------------------------------------- quantization

StatusOr<float> ScalarFloat(const KernelContext& ctx, int i, const char* what) {
  const Tensor& t = ctx.input(i);
  if (t.num_elements() != 1) return ctx.Error(std::string(what) + " must be a scalar");
  return static_cast<float>(t.GetAsDouble(0));
}

// TF FakeQuantWithMinMaxArgs/Vars (fake_quant_ops_functor.h): nudge [min, max] so that 0 is
// representable, clamp, and round to the grid: floor((x - nmin) / scale + 0.5) * scale + nmin.
Status FakeQuantKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(float lo, ScalarFloat(ctx, 1, "min"));
  KILN_ASSIGN_OR_RETURN(float hi, ScalarFloat(ctx, 2, "max"));
  const int64_t bits = ctx.GetInt("num_bits");
  if (bits < 2 || bits > 16) return ctx.Error("num_bits must be in [2, 16]");
  if (!(lo <= hi)) return ctx.Error("min must be <= max");
  const float qmin = ctx.GetInt("narrow_range") ? 1.0f : 0.0f;
  const float qmax = static_cast<float>((int64_t{1} << bits) - 1);
  float nmin = 0, nmax = 0, scale = 1;
  if (hi > lo) {
    scale = (hi - lo) / (qmax - qmin);
    const float zp_from_min = qmin - lo / scale;
    const float zp = zp_from_min < qmin ? qmin : zp_from_min > qmax ? qmax : std::round(zp_from_min);
    nmin = (qmin - zp) * scale;
    nmax = (qmax - zp) * scale;
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, DataType::kFloat32, x.dims()));
  if (x.dtype() != DataType::kFloat32) return ctx.Error("input must be float32");
  const float* px = x.data<float>();
  float* po = out->mutable_data<float>();
  const float inv = 1.0f / scale;
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    if (hi == lo) {
      po[i] = 0;
      continue;
    }
    float c = std::min(std::max(px[i], nmin), nmax);
    po[i] = std::floor((c - nmin) * inv + 0.5f) * scale + nmin;
  }
  return Status::OK();
}

// TF QuantizeAndDequantizeV2/V4 (quantize_and_dequantize_op.h), per tensor.
Status QdqKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  return DispatchFloat(x.dtype(), [&]<typename T>() -> Status {
    const T* px = x.data<T>();
    const int64_t n = x.num_elements();
    double lo, hi;
    if (ctx.GetInt("range_given")) {
      KILN_ASSIGN_OR_RETURN(float a, ScalarFloat(ctx, 1, "input_min"));
      KILN_ASSIGN_OR_RETURN(float b, ScalarFloat(ctx, 2, "input_max"));
      lo = a;
      hi = b;
      if (lo > hi) return ctx.Error("input_min must be <= input_max");
    } else {
      lo = n ? static_cast<double>(px[0]) : 0.0;
      hi = lo;
      for (int64_t i = 0; i < n; ++i) {
        lo = std::min(lo, static_cast<double>(px[i]));
        hi = std::max(hi, static_cast<double>(px[i]));
      }
    }
    const int64_t bits = ctx.GetInt("num_bits");
    if (bits < 1 || bits > 62) return ctx.Error("num_bits out of range");
    const bool is_signed = ctx.GetInt("signed_input") != 0;
    const bool narrow = ctx.GetInt("narrow_range") != 0;
    double qmin, qmax;
    if (is_signed) {
      qmin = narrow ? -std::ldexp(1.0, bits - 1) + 1 : -std::ldexp(1.0, bits - 1);
      qmax = std::ldexp(1.0, bits - 1) - 1;
    } else {
      qmin = 0;
      qmax = std::ldexp(1.0, bits) - 1;
    }
    const double big = std::numeric_limits<T>::max();
    const double s_min = qmin * lo > 0 ? qmin / lo : big;
    const double s_max = qmax * hi > 0 ? qmax / hi : big;
    double scale, inv;
    if (s_min < s_max) {
      scale = s_min;
      inv = lo / qmin;
      hi = qmax * inv;
    } else {
      scale = s_max;
      inv = hi / qmax;
      lo = qmin * inv;
    }
    const bool half_up = ctx.GetString("round_mode") == "HALF_UP";
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, x.dtype(), x.dims()));
    T* po = out->mutable_data<T>();
    for (int64_t i = 0; i < n; ++i) {
      if (lo == 0 && hi == 0) {
        po[i] = 0;
        continue;
      }
      double c = std::min(std::max(static_cast<double>(px[i]), lo), hi) * scale;
      double r = half_up ? std::floor(c + 0.5) : std::nearbyint(c);
      po[i] = static_cast<T>(r * inv);
    }
    return Status::OK();
  });
}

}  // namespace

void RegisterTfCompatOps(OpRegistry& r) {
  const TypeList& idx = IndexTypes();
  MustRegister(r, OpSchema("StridedSlice", kDomain)
                      .Doc("TensorFlow StridedSlice: x[begin:end:strides] with TF's begin, end, "
                           "ellipsis, new-axis and shrink-axis bit masks.")
                      .Inputs(4, 4)
                      .InputTypes(1, idx)
                      .InputTypes(2, idx)
                      .InputTypes(3, idx)
                      .AttrDefault("begin_mask", int64_t{0})
                      .AttrDefault("end_mask", int64_t{0})
                      .AttrDefault("ellipsis_mask", int64_t{0})
                      .AttrDefault("new_axis_mask", int64_t{0})
                      .AttrDefault("shrink_axis_mask", int64_t{0})
                      .Infer(StridedSliceInfer)
                      .Kernel(StridedSliceKernel));
  for (bool to_batch : {true, false}) {
    MustRegister(
        r, OpSchema(to_batch ? "SpaceToBatchND" : "BatchToSpaceND", kDomain)
               .Doc(to_batch ? "TensorFlow SpaceToBatchND: zero-pads the spatial dims "
                               "[1, 1+M) and moves block_shape blocks into the batch."
                             : "TensorFlow BatchToSpaceND: the inverse of SpaceToBatchND, then "
                               "crops the spatial dims.")
               .Inputs(3, 3)
               .InputTypes(1, idx)
               .InputTypes(2, idx)
               .Infer([to_batch](InferContext& c) { return SpaceBatchInfer(c, to_batch); })
               .Kernel([to_batch](KernelContext& c) { return SpaceBatchKernel(c, to_batch); }));
  }
  for (bool mod : {false, true}) {
    MustRegister(r, OpSchema(mod ? "FloorMod" : "FloorDiv", kDomain)
                        .Doc(mod ? "a - floor(a / b) * b (the sign of b), broadcasting."
                                 : "floor(a / b), broadcasting.")
                        .Inputs(2, 2)
                        .InputTypes(0, NumericTypes())
                        .InputTypes(1, NumericTypes())
                        .PromoteHalfToFloat()
                        .Infer(InferBroadcast)
                        .Kernel([mod](KernelContext& c) { return FloorBinaryKernel(c, mod); }));
  }
  MustRegister(r, OpSchema("RandomUniform", kDomain)
                      .Doc("Uniform random values in [0, 1) of shape `shape` (TF RandomUniform). "
                           "Deterministic for given seeds.")
                      .Inputs(1, 1)
                      .InputTypes(0, idx)
                      .AttrDefault("dtype", static_cast<int64_t>(DataType::kFloat32))
                      .AttrDefault("seed", int64_t{0})
                      .AttrDefault("seed2", int64_t{0})
                      .Infer([](InferContext& c) {
                        DataType t = static_cast<DataType>(c.GetInt("dtype"));
                        const Tensor* s = c.constant_input(0);
                        auto dims = s ? ReadInt64s(*s) : StatusOr<std::vector<int64_t>>(
                                                             InvalidArgument("unknown"));
                        c.SetOutput(0, t, dims.ok() ? Shape(*dims) : Shape());
                        return Status::OK();
                      })
                      .Kernel(RandomUniformKernel));
  MustRegister(r, OpSchema("FakeQuantWithMinMax", kDomain)
                      .Doc("TF FakeQuantWithMinMaxVars/Args: quantize to num_bits on the nudged "
                           "[min, max] range and dequantize.")
                      .Inputs(3, 3)
                      .InputTypes(0, {DataType::kFloat32})
                      .AttrDefault("num_bits", int64_t{8})
                      .AttrDefault("narrow_range", int64_t{0})
                      .Infer(InferSameAsInput0)
                      .Kernel(FakeQuantKernel));
  MustRegister(r, OpSchema("QuantizeAndDequantize", kDomain)
                      .Doc("TF QuantizeAndDequantizeV2/V3/V4 (per tensor): the range is "
                           "[input_min, input_max] when range_given, else the input's min/max.")
                      .Inputs(3, 3)
                      .InputTypes(0, {DataType::kFloat32, DataType::kFloat64})
                      .AttrDefault("num_bits", int64_t{8})
                      .AttrDefault("signed_input", int64_t{1})
                      .AttrDefault("range_given", int64_t{0})
                      .AttrDefault("narrow_range", int64_t{0})
                      .AttrDefault("round_mode", "HALF_TO_EVEN")
                      .Infer(InferSameAsInput0)
                      .Kernel(QdqKernel));
}

}  // namespace kiln
