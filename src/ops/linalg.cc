// Op family: linalg — Gemm, MatMul, MatMulInteger, Einsum.
//
// float32/float64 products go through the blocked GemmF32/GemmF64 (base/gemm.h); integer
// products use a plain loop with wrapping (two's complement) arithmetic; float16/bfloat16 are
// computed in float32. Einsum maps two-operand contractions whose labels are each batch, row,
// column or contracted to a batched GEMM (after gathering the operands into [batch, M, K] and
// [batch, K, N]); every other form runs a general loop over output and contracted labels.
#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "ops/base/dispatch.h"
#include "ops/base/gemm.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/base/shape_util.h"

namespace kiln {
namespace {

// ----------------------------------------------------------------------------- arithmetic

// Integer arithmetic that wraps instead of overflowing (signed overflow is UB in C++).
template <typename T>
struct Wrap {
  using U = std::make_unsigned_t<std::common_type_t<T, int>>;
  static T Mul(T a, T b) { return static_cast<T>(static_cast<U>(a) * static_cast<U>(b)); }
  static T Add(T a, T b) { return static_cast<T>(static_cast<U>(a) + static_cast<U>(b)); }
};

template <typename T>
T MulT(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    return Wrap<T>::Mul(a, b);
  } else {
    return a * b;
  }
}
template <typename T>
T AddT(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    return Wrap<T>::Add(a, b);
  } else {
    return a + b;
  }
}

// C[m,n] = op(A)[m,k] * op(B)[k,n] (overwrites C). Floats use the blocked GEMM.
template <typename T>
void MatMulT(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
             int64_t ldb, T* c, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    GemmF32(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
  } else if constexpr (std::is_same_v<T, double>) {
    GemmF64(ta, tb, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc);
  } else {
    for (int64_t i = 0; i < m; ++i) {
      T* ci = c + i * ldc;
      std::fill(ci, ci + n, T(0));
      for (int64_t p = 0; p < k; ++p) {
        const T av = ta ? a[p * lda + i] : a[i * lda + p];
        for (int64_t j = 0; j < n; ++j) {
          ci[j] = AddT(ci[j], MulT(av, tb ? b[j * ldb + p] : b[p * ldb + j]));
        }
      }
    }
  }
}

const TypeList& MatMulTypes() {
  static const TypeList t = {DataType::kFloat16, DataType::kBFloat16, DataType::kFloat32,
                             DataType::kFloat64, DataType::kInt32,    DataType::kInt64,
                             DataType::kUInt32,  DataType::kUInt64};
  return t;
}

// Calls a generic lambda with float, double, int32, int64, uint32 or uint64.
template <typename F>
Status DispatchMatMul(DataType t, F&& f) {
  switch (t) {
    case DataType::kInt32:
      return f.template operator()<int32_t>();
    case DataType::kInt64:
      return f.template operator()<int64_t>();
    case DataType::kUInt32:
      return f.template operator()<uint32_t>();
    case DataType::kUInt64:
      return f.template operator()<uint64_t>();
    default:
      return DispatchFloat(t, std::forward<F>(f));
  }
}

// ----------------------------------------------------------------------------- Gemm

Status GemmKernel(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.rank() != 2 || b.rank() != 2) {
    return ctx.Error("A and B must be 2-D, got " + a.TypeString() + " and " + b.TypeString());
  }
  if (a.dtype() != b.dtype()) return ctx.Error("A and B dtypes differ");
  const bool ta = ctx.GetInt("transA") != 0, tb = ctx.GetInt("transB") != 0;
  const int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1);
  const int64_t kb = tb ? b.dim(1) : b.dim(0), n = tb ? b.dim(0) : b.dim(1);
  if (k != kb) {
    return ctx.Error("inner dimensions differ: " + a.TypeString() + " x " + b.TypeString());
  }
  const float alpha = ctx.GetFloat("alpha"), beta = ctx.GetFloat("beta");
  const bool has_c = ctx.has_input(2) && beta != 0.0f;
  std::vector<int64_t> c_strides;
  if (ctx.has_input(2)) {
    const Tensor& c = ctx.input(2);
    if (c.dtype() != a.dtype()) return ctx.Error("C dtype differs from A");
    if (c.rank() > 2 || (c.rank() >= 1 && c.dim(c.rank() - 1) != 1 && c.dim(c.rank() - 1) != n) ||
        (c.rank() == 2 && c.dim(0) != 1 && c.dim(0) != m)) {
      return ctx.Error("C " + c.TypeString() + " does not broadcast to [" + std::to_string(m) +
                       "," + std::to_string(n) + "]");
    }
    c_strides = BroadcastStrides(c.dims(), {m, n});
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, a.dtype(), {m, n}));
  return DispatchMatMul(a.dtype(), [&]<typename T>() -> Status {
    T* yp = y->mutable_data<T>();
    if (has_c) {
      const T* cp = ctx.input(2).data<T>();
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) yp[i * n + j] = cp[i * c_strides[0] + j * c_strides[1]];
      }
    }
    const int64_t lda = a.dim(1), ldb = b.dim(1);
    if constexpr (std::is_same_v<T, float>) {
      GemmF32(ta, tb, m, n, k, alpha, a.data<float>(), lda, b.data<float>(), ldb,
              has_c ? beta : 0.0f, yp, n);
    } else if constexpr (std::is_same_v<T, double>) {
      GemmF64(ta, tb, m, n, k, alpha, a.data<double>(), lda, b.data<double>(), ldb,
              has_c ? double(beta) : 0.0, yp, n);
    } else {
      // Integers: alpha and beta are applied as integers (ONNX leaves this unspecified).
      std::vector<T> ab(static_cast<size_t>(m * n));
      MatMulT<T>(ta, tb, m, n, k, a.data<T>(), lda, b.data<T>(), ldb, ab.data(), n);
      const T al = static_cast<T>(alpha), be = static_cast<T>(beta);
      for (int64_t i = 0; i < m * n; ++i) {
        yp[i] = AddT(MulT(al, ab[i]), has_c ? MulT(be, yp[i]) : T(0));
      }
    }
    return Status::OK();
  });
}

Status InferGemm(InferContext& ctx) {
  const Shape& as = ctx.input_shape(0);
  const Shape& bs = ctx.input_shape(1);
  int64_t m = -1, n = -1;
  if (as.rank_known()) {
    if (as.rank() != 2) return ctx.Error("A must be 2-D");
    m = ctx.GetInt("transA") ? as.dim(1) : as.dim(0);
  }
  if (bs.rank_known()) {
    if (bs.rank() != 2) return ctx.Error("B must be 2-D");
    n = ctx.GetInt("transB") ? bs.dim(0) : bs.dim(1);
  }
  ctx.SetOutput(0, ctx.input_dtype(0), Shape({m, n}));
  return Status::OK();
}

// ----------------------------------------------------------------------------- MatMul

// numpy matmul shapes: A [..., M, K] (1-D: [K], a row), B [..., K, N] (1-D: [K], a column).
struct MatMulDims {
  std::vector<int64_t> batch_a, batch_b, batch, out;
  int64_t m = 1, k = 1, n = 1;
};

StatusOr<MatMulDims> ComputeMatMulDims(const AttrReader& ctx, const std::vector<int64_t>& a,
                                       const std::vector<int64_t>& b) {
  if (a.empty() || b.empty()) return ctx.Error("MatMul operands must have rank >= 1");
  MatMulDims d;
  d.k = a.back();
  if (a.size() >= 2) {
    d.m = a[a.size() - 2];
    d.batch_a.assign(a.begin(), a.end() - 2);
  }
  const int64_t kb = b.size() >= 2 ? b[b.size() - 2] : b[0];
  if (b.size() >= 2) {
    d.n = b.back();
    d.batch_b.assign(b.begin(), b.end() - 2);
  }
  if (d.k >= 0 && kb >= 0 && d.k != kb) {
    return ctx.Error("inner dimensions differ: " + DimsToString(a) + " x " + DimsToString(b));
  }
  if (d.k < 0) d.k = kb;
  if (std::find(d.batch_a.begin(), d.batch_a.end(), -1) != d.batch_a.end() ||
      std::find(d.batch_b.begin(), d.batch_b.end(), -1) != d.batch_b.end()) {
    Shape s = BroadcastShapes({Shape(d.batch_a), Shape(d.batch_b)});
    d.batch = s.dims();
  } else {
    auto bd = BroadcastDims({d.batch_a, d.batch_b});
    if (!bd.ok()) return ctx.Error("batch dimensions do not broadcast: " + bd.status().message());
    d.batch = *bd;
  }
  d.out = d.batch;
  if (a.size() >= 2) d.out.push_back(d.m);
  if (b.size() >= 2) d.out.push_back(d.n);
  return d;
}

// Y = A x B over broadcast batches. When B has no batch, A's batches fold into M.
template <typename T>
void BatchedMatMul(const MatMulDims& d, const T* a, const T* b, T* y) {
  const int64_t sa = d.m * d.k, sb = d.k * d.n, sy = d.m * d.n;
  int64_t nb_b = 1;
  for (int64_t v : d.batch_b) nb_b *= v;
  if (nb_b == 1) {
    int64_t rows = d.m;
    for (int64_t v : d.batch) rows *= v;
    MatMulT<T>(false, false, rows, d.n, d.k, a, d.k, b, d.n, y, d.n);
    return;
  }
  auto st_a = BroadcastStrides(d.batch_a, d.batch), st_b = BroadcastStrides(d.batch_b, d.batch);
  ForEachBroadcast(d.batch, {st_a, st_b}, [&](int64_t i, const int64_t* off) {
    MatMulT<T>(false, false, d.m, d.n, d.k, a + off[0] * sa, d.k, b + off[1] * sb, d.n, y + i * sy,
               d.n);
  });
}

Status MatMulKernel(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.dtype() != b.dtype()) return ctx.Error("A and B dtypes differ");
  KILN_ASSIGN_OR_RETURN(MatMulDims d, ComputeMatMulDims(ctx, a.dims(), b.dims()));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, a.dtype(), d.out));
  if (y->num_elements() == 0) return Status::OK();
  return DispatchMatMul(a.dtype(), [&]<typename T>() -> Status {
    BatchedMatMul<T>(d, a.data<T>(), b.data<T>(), y->mutable_data<T>());
    return Status::OK();
  });
}

Status InferMatMul(InferContext& ctx) {
  const Shape& as = ctx.input_shape(0);
  const Shape& bs = ctx.input_shape(1);
  const DataType dt = ctx.node().op_type == "MatMulInteger" ? DataType::kInt32 : ctx.input_dtype(0);
  if (!as.rank_known() || !bs.rank_known()) {
    ctx.SetOutput(0, dt, Shape::UnknownRank());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(MatMulDims d, ComputeMatMulDims(ctx, as.dims(), bs.dims()));
  ctx.SetOutput(0, dt, Shape(d.out));
  return Status::OK();
}

// MatMulInteger: (A - a_zero_point) x (B - b_zero_point) in int32. a_zero_point is a scalar or
// one value per row of A ([M]); b_zero_point a scalar or one per column of B ([N]).
Status MatMulIntegerKernel(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(MatMulDims d, ComputeMatMulDims(ctx, a.dims(), b.dims()));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, DataType::kInt32, d.out));
  auto shifted = [&](const Tensor& t, int zp_index, int64_t per_len,
                     bool per_row) -> StatusOr<std::vector<int32_t>> {
    std::vector<int64_t> zp = {0};
    if (ctx.has_input(zp_index)) {
      const Tensor& z = ctx.input(zp_index);
      if (z.dtype() != t.dtype()) return ctx.Error("zero point dtype differs from its input");
      if (z.num_elements() != 1 && z.num_elements() != per_len) {
        return ctx.Error("zero point must be a scalar or have " + std::to_string(per_len) +
                         " values");
      }
      KILN_ASSIGN_OR_RETURN(zp, ReadInt64s(z));
    }
    std::vector<int32_t> out(static_cast<size_t>(t.num_elements()));
    const int64_t cols = t.rank() >= 1 ? t.dim(t.rank() - 1) : 1;
    for (int64_t i = 0; i < t.num_elements(); ++i) {
      int64_t z = zp[0];
      if (zp.size() > 1) z = per_row ? zp[(i / cols) % per_len] : zp[i % cols];
      out[i] = static_cast<int32_t>(static_cast<int64_t>(t.GetAsDouble(i)) - z);
    }
    return out;
  };
  KILN_ASSIGN_OR_RETURN(std::vector<int32_t> as, shifted(a, 2, d.m, true));
  KILN_ASSIGN_OR_RETURN(std::vector<int32_t> bs, shifted(b, 3, d.n, false));
  if (y->num_elements() > 0)
    BatchedMatMul<int32_t>(d, as.data(), bs.data(), y->mutable_data<int32_t>());
  return Status::OK();
}

// ----------------------------------------------------------------------------- Einsum

// Labels: 'A'..'Z' -> 0..25, 'a'..'z' -> 26..51 (so label order is ASCII order), ellipsis
// axes -> 52 + position among the right-aligned broadcast ellipsis axes.
constexpr int kEllipsisBase = 52;

struct EinsumSpec {
  std::vector<std::vector<int>> in_labels;  // per input, per axis
  std::vector<int> out_labels;
  std::vector<int64_t> size;  // per label (index = label), -1 when unused
};

// Parses one term into letter labels, with -1 marking the ellipsis position.
StatusOr<std::vector<int>> ParseTerm(const AttrReader& ctx, const std::string& term) {
  std::vector<int> labels;
  bool ellipsis = false;
  for (size_t i = 0; i < term.size(); ++i) {
    const char ch = term[i];
    if (ch == '.') {
      if (ellipsis || term.compare(i, 3, "...") != 0) return ctx.Error("bad ellipsis in equation");
      ellipsis = true;
      labels.push_back(-1);
      i += 2;
    } else if (ch >= 'A' && ch <= 'Z') {
      labels.push_back(ch - 'A');
    } else if (ch >= 'a' && ch <= 'z') {
      labels.push_back(26 + ch - 'a');
    } else {
      return ctx.Error(std::string("bad character '") + ch + "' in equation");
    }
  }
  return labels;
}

StatusOr<EinsumSpec> ParseEinsum(const AttrReader& ctx,
                                 const std::vector<std::vector<int64_t>>& dims) {
  std::string eq;
  for (char ch : ctx.GetString("equation")) {
    if (ch != ' ') eq.push_back(ch);
  }
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::vector<int>> terms;
  for (size_t start = 0;;) {
    const size_t comma = lhs.find(',', start);
    KILN_ASSIGN_OR_RETURN(std::vector<int> t, ParseTerm(ctx, lhs.substr(start, comma - start)));
    terms.push_back(std::move(t));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != dims.size()) {
    return ctx.Error("equation has " + std::to_string(terms.size()) + " operands, node has " +
                     std::to_string(dims.size()) + " inputs");
  }
  // Expand ellipses, right-aligned across operands.
  std::vector<int64_t> n_ell(terms.size(), 0);
  int64_t max_ell = 0;
  for (size_t i = 0; i < terms.size(); ++i) {
    const int64_t letters = static_cast<int64_t>(
        std::count_if(terms[i].begin(), terms[i].end(), [](int l) { return l >= 0; }));
    const bool has_ell = letters != static_cast<int64_t>(terms[i].size());
    const int64_t rank = static_cast<int64_t>(dims[i].size());
    if (has_ell ? rank < letters : rank != letters) {
      return ctx.Error("operand " + std::to_string(i) + " has rank " + std::to_string(rank) +
                       ", its term has " + std::to_string(letters) + " labels");
    }
    n_ell[i] = rank - letters;
    max_ell = std::max(max_ell, n_ell[i]);
  }
  auto expand = [&](const std::vector<int>& t, int64_t ne) {
    std::vector<int> out;
    for (int l : t) {
      if (l >= 0) {
        out.push_back(l);
      } else {
        for (int64_t e = 0; e < ne; ++e) out.push_back(kEllipsisBase + int(max_ell - ne + e));
      }
    }
    return out;
  };
  EinsumSpec s;
  s.size.assign(kEllipsisBase + max_ell, -1);
  std::vector<int> count(s.size.size(), 0);
  for (size_t i = 0; i < terms.size(); ++i) {
    s.in_labels.push_back(expand(terms[i], n_ell[i]));
    for (size_t ax = 0; ax < s.in_labels[i].size(); ++ax) {
      const int l = s.in_labels[i][ax];
      const int64_t dim = dims[i][ax];
      ++count[l];
      if (s.size[l] < 0 || s.size[l] == 1) {
        s.size[l] = std::max(s.size[l], dim);
      } else if (dim != s.size[l] && dim != 1) {
        return ctx.Error("label sizes differ (" + std::to_string(dim) + " vs " +
                         std::to_string(s.size[l]) + ")");
      }
    }
  }
  if (arrow != std::string::npos) {
    KILN_ASSIGN_OR_RETURN(std::vector<int> t, ParseTerm(ctx, eq.substr(arrow + 2)));
    s.out_labels = expand(t, max_ell);
    std::vector<bool> seen(s.size.size(), false);
    for (int l : s.out_labels) {
      if (l >= static_cast<int>(s.size.size()) || s.size[l] < 0 || seen[l]) {
        return ctx.Error("output label is repeated or not in any input");
      }
      seen[l] = true;
    }
  } else {  // implicit: broadcast axes, then labels used once, in ASCII order
    for (int64_t e = 0; e < max_ell; ++e) s.out_labels.push_back(kEllipsisBase + int(e));
    for (int l = 0; l < kEllipsisBase; ++l) {
      if (count[l] == 1) s.out_labels.push_back(l);
    }
  }
  return s;
}

// Element strides of operand i per label (repeated labels add up: diagonals; broadcast
// axes of size 1 get stride 0).
std::vector<int64_t> LabelStrides(const EinsumSpec& s, size_t i, const std::vector<int64_t>& dims) {
  std::vector<int64_t> st(s.size.size(), 0);
  const std::vector<int64_t> contiguous = ContiguousStrides(dims);
  for (size_t ax = 0; ax < dims.size(); ++ax) {
    if (dims[ax] != 1 || s.size[s.in_labels[i][ax]] == 1) {
      st[s.in_labels[i][ax]] += contiguous[ax];
    }
  }
  return st;
}

// Copies src (addressed by per-label strides) into dst, contiguous in `order`.
template <typename T>
void GatherLabels(const T* src, const std::vector<int>& order, const std::vector<int64_t>& size,
                  const std::vector<int64_t>& strides, T* dst) {
  std::vector<int64_t> dims, st;
  for (int l : order) {
    dims.push_back(size[l]);
    st.push_back(strides[l]);
  }
  ForEachBroadcast(dims, {st}, [&](int64_t i, const int64_t* off) { dst[i] = src[off[0]]; });
}

// Two operands whose labels are all batch (A, B, out), row (A, out), column (B, out) or
// contracted (A, B): gathered into [batch, M, K] x [batch, K, N] and multiplied.
template <typename T>
bool EinsumAsMatMul(const EinsumSpec& s, const std::vector<const Tensor*>& in, T* out) {
  if (in.size() != 2) return false;
  const int nl = static_cast<int>(s.size.size());
  std::vector<int> where(nl, 0);  // bit 0: in A, bit 1: in B, bit 2: in out
  for (int l : s.in_labels[0]) where[l] |= 1;
  for (int l : s.in_labels[1]) where[l] |= 2;
  for (int l : s.out_labels) where[l] |= 4;
  std::vector<int> batch, rows, cols, red;
  int64_t nb = 1, m = 1, n = 1, k = 1;
  for (int l = 0; l < nl; ++l) {
    switch (where[l]) {
      case 0:
        break;
      case 7:
        batch.push_back(l), nb *= s.size[l];
        break;
      case 5:
        rows.push_back(l), m *= s.size[l];
        break;
      case 6:
        cols.push_back(l), n *= s.size[l];
        break;
      case 3:
        red.push_back(l), k *= s.size[l];
        break;
      default:
        return false;  // a label summed within one operand
    }
  }
  std::vector<int> a_order = batch, b_order = batch, c_order = batch;
  a_order.insert(a_order.end(), rows.begin(), rows.end());
  a_order.insert(a_order.end(), red.begin(), red.end());
  b_order.insert(b_order.end(), red.begin(), red.end());
  b_order.insert(b_order.end(), cols.begin(), cols.end());
  c_order.insert(c_order.end(), rows.begin(), rows.end());
  c_order.insert(c_order.end(), cols.begin(), cols.end());
  std::vector<T> a(static_cast<size_t>(nb * m * k)), b(static_cast<size_t>(nb * k * n)),
      c(static_cast<size_t>(nb * m * n));
  GatherLabels(in[0]->data<T>(), a_order, s.size, LabelStrides(s, 0, in[0]->dims()), a.data());
  GatherLabels(in[1]->data<T>(), b_order, s.size, LabelStrides(s, 1, in[1]->dims()), b.data());
  for (int64_t i = 0; i < nb; ++i) {
    MatMulT<T>(false, false, m, n, k, a.data() + i * m * k, k, b.data() + i * k * n, n,
               c.data() + i * m * n, n);
  }
  std::vector<int64_t> c_strides(nl, 0);
  int64_t st = 1;
  for (int i = static_cast<int>(c_order.size()) - 1; i >= 0; --i) {
    c_strides[c_order[i]] = st;
    st *= s.size[c_order[i]];
  }
  GatherLabels(c.data(), s.out_labels, s.size, c_strides, out);
  return true;
}

// General form: out[o] = sum over contracted labels of the product of all operands.
template <typename T>
void EinsumGeneral(const EinsumSpec& s, const std::vector<const Tensor*>& in, T* out) {
  const int nl = static_cast<int>(s.size.size());
  std::vector<bool> is_out(nl, false);
  for (int l : s.out_labels) is_out[l] = true;
  std::vector<int> red;
  for (int l = 0; l < nl; ++l) {
    if (s.size[l] >= 0 && !is_out[l]) red.push_back(l);
  }
  std::vector<std::vector<int64_t>> st(in.size());
  for (size_t i = 0; i < in.size(); ++i) st[i] = LabelStrides(s, i, in[i]->dims());
  auto dims_of = [&](const std::vector<int>& labels) {
    std::vector<int64_t> d;
    for (int l : labels) d.push_back(s.size[l]);
    return d;
  };
  auto strides_of = [&](const std::vector<int>& labels) {
    std::vector<std::vector<int64_t>> r(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      for (int l : labels) r[i].push_back(st[i][l]);
    }
    return r;
  };
  const std::vector<int64_t> out_dims = dims_of(s.out_labels), red_dims = dims_of(red);
  const auto out_st = strides_of(s.out_labels), red_st = strides_of(red);
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;
  auto body = [&](int64_t oi, const int64_t* base) {
    Acc sum = 0;
    auto term = [&](int64_t, const int64_t* off) {
      Acc p = 1;
      for (size_t i = 0; i < in.size(); ++i) {
        p = MulT<Acc>(p, static_cast<Acc>(in[i]->data<T>()[base[i] + off[i]]));
      }
      sum = AddT<Acc>(sum, p);
    };
    ForEachBroadcast(red_dims, red_st, term);  // rank 0: one term
    out[oi] = static_cast<T>(sum);
  };
  ForEachBroadcast(out_dims, out_st, body);
}

Status EinsumKernel(KernelContext& ctx) {
  std::vector<std::vector<int64_t>> dims;
  std::vector<const Tensor*> in;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) return ctx.Error("Einsum inputs may not be absent");
    if (ctx.input(i).dtype() != ctx.input(0).dtype()) return ctx.Error("input dtypes differ");
    dims.push_back(ctx.input(i).dims());
    in.push_back(&ctx.input(i));
  }
  KILN_ASSIGN_OR_RETURN(EinsumSpec s, ParseEinsum(ctx, dims));
  std::vector<int64_t> out_dims;
  for (int l : s.out_labels) out_dims.push_back(s.size[l]);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, in[0]->dtype(), out_dims));
  // The contraction space may be far larger than any tensor: bound it.
  int64_t space = 1;
  for (int64_t v : s.size) {
    if (v > 0 && __builtin_mul_overflow(space, v, &space)) {
      return ResourceExhausted(ctx.node().Describe() + ": contraction is too large");
    }
  }
  for (const Tensor* t : in) {
    if (t->num_elements() == 0) return Status::OK();  // sums over nothing: zeros
  }
  return DispatchNumeric(in[0]->dtype(), [&]<typename T>() -> Status {
    if constexpr (std::is_floating_point_v<T>) {
      if (EinsumAsMatMul<T>(s, in, y->mutable_data<T>())) return Status::OK();
    }
    EinsumGeneral<T>(s, in, y->mutable_data<T>());
    return Status::OK();
  });
}

Status InferEinsum(InferContext& ctx) {
  std::vector<std::vector<int64_t>> dims;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.input_shape(i).rank_known()) {
      ctx.SetOutput(0, ctx.input_dtype(0), Shape::UnknownRank());
      return Status::OK();
    }
    dims.push_back(ctx.input_shape(i).dims());
  }
  // Unknown dims parse like size-1 (broadcastable) dims; mark the labels they touch unknown.
  std::vector<std::vector<int64_t>> known = dims;
  for (auto& d : known) {
    for (auto& v : d) v = v < 0 ? 1 : v;
  }
  KILN_ASSIGN_OR_RETURN(EinsumSpec s, ParseEinsum(ctx, known));
  std::vector<bool> unknown(s.size.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    for (size_t ax = 0; ax < dims[i].size(); ++ax) {
      if (dims[i][ax] < 0) unknown[s.in_labels[i][ax]] = true;
    }
  }
  std::vector<int64_t> out;
  for (int l : s.out_labels) out.push_back(unknown[l] && s.size[l] == 1 ? -1 : s.size[l]);
  ctx.SetOutput(0, ctx.input_dtype(0), Shape(out));
  return Status::OK();
}

}  // namespace

void RegisterLinalgOps(OpRegistry& r) {
  MustRegister(r, OpSchema("Gemm")
                      .Doc("Y = alpha * op(A) * op(B) + beta * C (C broadcast to [M, N]).")
                      .AttrDefault("alpha", 1.0f)
                      .AttrDefault("beta", 1.0f)
                      .AttrDefault("transA", int64_t{0})
                      .AttrDefault("transB", int64_t{0})
                      .Inputs(2, 3)
                      .Outputs(1, 1)
                      .InputTypes(0, MatMulTypes())
                      .InputTypes(1, MatMulTypes())
                      .InputTypes(2, MatMulTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferGemm)
                      .Kernel(GemmKernel));
  MustRegister(r, OpSchema("MatMul")
                      .Doc("numpy matmul: batched, broadcast batch dims, 1-D operands.")
                      .Inputs(2, 2)
                      .Outputs(1, 1)
                      .InputTypes(0, MatMulTypes())
                      .InputTypes(1, MatMulTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferMatMul)
                      .Kernel(MatMulKernel));
  const TypeList int8 = {DataType::kInt8, DataType::kUInt8};
  MustRegister(r, OpSchema("MatMulInteger")
                      .Doc("(A - a_zero_point) x (B - b_zero_point) in int32, numpy matmul shapes.")
                      .Inputs(2, 4)
                      .Outputs(1, 1)
                      .InputTypes(0, int8)
                      .InputTypes(1, int8)
                      .InputTypes(2, int8)
                      .InputTypes(3, int8)
                      .Infer(InferMatMul)
                      .Kernel(MatMulIntegerKernel));
  MustRegister(r, OpSchema("Einsum")
                      .Doc("Einstein summation: explicit/implicit output, diagonals, ellipsis.")
                      .AttrNoDefault("equation", AttrType::kString, /*required=*/true)
                      .Inputs(1, OpSchema::kVariadic)
                      .Outputs(1, 1)
                      .InputTypes(0, NumericTypes())
                      .PromoteHalfToFloat()
                      .Infer(InferEinsum)
                      .Kernel(EinsumKernel));
}

}  // namespace kiln
