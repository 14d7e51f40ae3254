#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "ops/base/gemm.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using testing::RandomTensor;
using testing::RunOp;
using testing::TensorsNear;

const OpRegistry& Reg() { return testing::FamilyRegistry<RegisterLinalgOps>(); }

std::vector<float> RandomVec(size_t n, uint32_t seed) {
  Tensor t = RandomTensor(DataType::kFloat32, {static_cast<int64_t>(n)}, seed);
  return std::vector<float>(t.data<float>(), t.data<float>() + n);
}

// C = alpha * op(A) op(B) + beta * C in double, the definition.
template <typename T>
void NaiveGemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const T* a,
               int64_t lda, const T* b, int64_t ldb, double beta, T* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) {
        s += double(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      }
      c[i * ldc + j] = static_cast<T>(alpha * s + (beta == 0 ? 0.0 : beta * c[i * ldc + j]));
    }
  }
}

TEST(GemmKernel, MatchesNaiveForOddSizesAndTransposes) {
  const std::vector<std::array<int64_t, 3>> sizes = {
      {1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {9, 40, 300}, {70, 37, 65}, {200, 130, 270}, {5, 1000, 3}};
  uint32_t seed = 1;
  for (auto [m, n, k] : sizes) {
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) +
                   " ta=" + std::to_string(ta) + " tb=" + std::to_string(tb));
      const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 5;
      auto a = RandomVec((ta ? k : m) * lda, seed++);
      auto b = RandomVec((tb ? n : k) * ldb, seed++);
      auto c0 = RandomVec(m * ldc, seed++);
      for (float beta : {0.0f, 1.0f, -0.5f}) {
        std::vector<float> c = c0, want = c0;
        if (beta == 0.0f) c[0] = std::numeric_limits<float>::quiet_NaN();  // must be ignored
        GemmF32(ta, tb, m, n, k, 1.5f, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
        NaiveGemm<float>(ta, tb, m, n, k, 1.5, a.data(), lda, b.data(), ldb, beta, want.data(),
                         ldc);
        for (int64_t i = 0; i < m * ldc; ++i) {
          ASSERT_NEAR(c[i], want[i], 1e-4 * (1 + std::sqrt(double(k)))) << "at " << i;
        }
        std::vector<double> a64(a.begin(), a.end()), b64(b.begin(), b.end());
        std::vector<double> c64(c0.begin(), c0.end()), want64 = c64;
        if (beta == 0.0f) c64[0] = std::numeric_limits<double>::quiet_NaN();
        GemmF64(ta, tb, m, n, k, 1.5, a64.data(), lda, b64.data(), ldb, beta, c64.data(), ldc);
        NaiveGemm<double>(ta, tb, m, n, k, 1.5, a64.data(), lda, b64.data(), ldb, beta,
                          want64.data(), ldc);
        for (int64_t i = 0; i < m * ldc; ++i) ASSERT_NEAR(c64[i], want64[i], 1e-9) << "at " << i;
      }
    }
  }
}

TEST(GemmKernel, Benchmark512) {
  const int64_t n = 512;
  auto a = RandomVec(n * n, 1), b = RandomVec(n * n, 2);
  std::vector<float> c(n * n);
  GemmF32(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  const int reps = 5;
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) {
    GemmF32(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("GemmF32 512x512x512: %.1f GFLOP/s\n", 2.0 * n * n * n * reps / s / 1e9);
  double ref = 0;
  for (int64_t p = 0; p < n; ++p) ref += double(a[7 * n + p]) * b[p * n + 11];
  EXPECT_NEAR(c[7 * n + 11], ref, 1e-3);
}

TEST(Gemm, AttributesAndBiasBroadcast) {
  Tensor a = RandomTensor(DataType::kFloat32, {4, 3}, 1);  // transA: A is [K, M]
  Tensor b = RandomTensor(DataType::kFloat32, {5, 4}, 2);  // transB: B is [N, K]
  for (std::vector<int64_t> cdims :
       std::vector<std::vector<int64_t>>{{}, {1}, {5}, {3, 1}, {1, 5}, {3, 5}}) {
    SCOPED_TRACE(DimsToString(cdims));
    Tensor c = RandomTensor(DataType::kFloat32, cdims, 3);
    auto y = RunOp(Reg(), "Gemm", {a, b, c},
                   {{"transA", Attr::Int(1)},
                    {"transB", Attr::Int(1)},
                    {"alpha", Attr::Float(0.25f)},
                    {"beta", Attr::Float(0.35f)}});
    ASSERT_TRUE(y.ok()) << y.status();
    std::vector<float> want(15);
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 5; ++j) {
        double s = 0;
        for (int p = 0; p < 4; ++p) s += a.data<float>()[p * 3 + i] * b.data<float>()[j * 4 + p];
        const int64_t ci = cdims.size() == 2
                               ? (cdims[0] == 1 ? 0 : i) * cdims[1] + (cdims[1] == 1 ? 0 : j)
                           : (cdims.empty() || cdims[0] == 1) ? 0
                                                              : j;
        want[i * 5 + j] = static_cast<float>(0.25 * s + 0.35 * c.data<float>()[ci]);
      }
    }
    EXPECT_TRUE(TensorsNear((*y)[0], Tensor::FromVector(want, {3, 5})));
  }
  auto noc = RunOp(Reg(), "Gemm", {a, b}, {{"transA", Attr::Int(1)}, {"transB", Attr::Int(1)}});
  ASSERT_TRUE(noc.ok()) << noc.status();
  EXPECT_EQ((*noc)[0].dims(), (std::vector<int64_t>{3, 5}));
  EXPECT_FALSE(RunOp(Reg(), "Gemm", {a, b}).ok());  // inner dims 3 vs 5
  EXPECT_FALSE(RunOp(Reg(), "Gemm", {a, b, RandomTensor(DataType::kFloat32, {2}, 1)},
                     {{"transA", Attr::Int(1)}, {"transB", Attr::Int(1)}})
                   .ok());
  // Integer Gemm.
  auto yi = RunOp(
      Reg(), "Gemm",
      {Tensor::FromVector<int32_t>({1, 2, 3, 4}, {2, 2}),
       Tensor::FromVector<int32_t>({5, 6, 7, 8}, {2, 2}), Tensor::FromVector<int32_t>({100})});
  ASSERT_TRUE(yi.ok()) << yi.status();
  EXPECT_TRUE(TensorsNear((*yi)[0], Tensor::FromVector<int32_t>({119, 122, 143, 150}, {2, 2})));
}

// out[b..., m, n] for numpy-broadcast batched matmul, straight from the definition.
Tensor NaiveMatMul(const Tensor& a, const Tensor& b, std::vector<int64_t> out_dims) {
  std::vector<int64_t> ad = a.dims(), bd = b.dims();
  if (ad.size() == 1) ad.insert(ad.begin(), 1);
  if (bd.size() == 1) bd.push_back(1);
  const int64_t m = ad[ad.size() - 2], k = ad.back(), n = bd.back();
  const size_t rank = std::max(ad.size(), bd.size());
  ad.insert(ad.begin(), rank - ad.size(), 1);
  bd.insert(bd.begin(), rank - bd.size(), 1);
  std::vector<int64_t> batch(rank - 2);
  int64_t nb = 1;
  for (size_t i = 0; i + 2 < rank; ++i) nb *= (batch[i] = std::max(ad[i], bd[i]));
  std::vector<double> out(nb * m * n);
  for (int64_t bi = 0; bi < nb; ++bi) {
    int64_t rem = bi, ao = 0, bo = 0, as = 1, bs = 1;
    for (int d = static_cast<int>(batch.size()) - 1; d >= 0; --d) {
      const int64_t idx = rem % batch[d];
      rem /= batch[d];
      ao += (ad[d] == 1 ? 0 : idx) * as;
      bo += (bd[d] == 1 ? 0 : idx) * bs;
      as *= ad[d];
      bs *= bd[d];
    }
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) {
          s += a.GetAsDouble(ao * m * k + i * k + p) * b.GetAsDouble(bo * k * n + p * n + j);
        }
        out[(bi * m + i) * n + j] = s;
      }
    }
  }
  Tensor t = Tensor::Empty(a.dtype(), out_dims);
  Status st = DispatchNumeric(a.dtype(), [&]<typename T>() -> Status {
    for (size_t i = 0; i < out.size(); ++i) t.mutable_data<T>()[i] = static_cast<T>(out[i]);
    return Status::OK();
  });
  EXPECT_TRUE(st.ok()) << st;
  return t;
}

TEST(MatMul, BroadcastBatchesAndVectors) {
  struct Case {
    std::vector<int64_t> a, b, out;
  };
  const std::vector<Case> cases = {
      {{3, 4}, {4, 5}, {3, 5}},
      {{2, 3, 4}, {4, 5}, {2, 3, 5}},
      {{4}, {4, 5}, {5}},
      {{3, 4}, {4}, {3}},
      {{4}, {4}, {}},
      {{2, 1, 3, 4}, {5, 4, 6}, {2, 5, 3, 6}},
      {{7, 40, 33}, {7, 33, 21}, {7, 40, 21}},
      {{3, 4}, {2, 4, 5}, {2, 3, 5}},
      {{2, 4}, {3, 1, 4, 2}, {3, 1, 2, 2}},
  };
  uint32_t seed = 10;
  for (const Case& c : cases) {
    SCOPED_TRACE(DimsToString(c.a) + " x " + DimsToString(c.b));
    for (DataType dt : {DataType::kFloat32, DataType::kFloat64, DataType::kInt32, DataType::kInt64,
                        DataType::kUInt64}) {
      Tensor a = RandomTensor(dt, c.a, seed++, 0, 9), b = RandomTensor(dt, c.b, seed++, 0, 9);
      auto y = RunOp(Reg(), "MatMul", {a, b});
      ASSERT_TRUE(y.ok()) << y.status();
      EXPECT_TRUE(TensorsNear((*y)[0], NaiveMatMul(a, b, c.out), 1e-5, 1e-4));
    }
  }
  EXPECT_FALSE(RunOp(Reg(), "MatMul",
                     {RandomTensor(DataType::kFloat32, {3, 4}, 1),
                      RandomTensor(DataType::kFloat32, {5, 2}, 2)})
                   .ok());
  EXPECT_FALSE(RunOp(Reg(), "MatMul",
                     {RandomTensor(DataType::kFloat32, {2, 3, 4}, 1),
                      RandomTensor(DataType::kFloat32, {3, 4, 2}, 2)})
                   .ok());
  auto h = RunOp(Reg(), "MatMul",
                 {*ConvertTensor(RandomTensor(DataType::kFloat32, {2, 3}, 1), DataType::kFloat16),
                  *ConvertTensor(RandomTensor(DataType::kFloat32, {3, 2}, 2), DataType::kFloat16)});
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ((*h)[0].dtype(), DataType::kFloat16);
}

TEST(MatMul, ShapeInference) {
  const OpSchema* s = Reg().Find("", "MatMul");
  Node n;
  n.name = "mm";
  n.op_type = "MatMul";
  n.inputs = {"a", "b"};
  n.outputs = {"y"};
  std::vector<ValueInfo> out;
  ASSERT_TRUE(RunInfer(*s, n, 17,
                       {{DataType::kFloat32, Shape({-1, 1, 8, 16})},
                        {DataType::kFloat32, Shape({4, 16, 32})}},
                       {nullptr, nullptr}, &out)
                  .ok());
  EXPECT_EQ(out[0].shape.ToString(), "[?,4,8,32]");
}

TEST(MatMulInteger, ZeroPoints) {
  // ONNX test_matmulinteger.
  Tensor a = Tensor::FromVector<uint8_t>({11, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0}, {4, 3});
  Tensor b = Tensor::FromVector<uint8_t>({1, 4, 2, 5, 3, 6}, {3, 2});
  auto y = RunOp(Reg(), "MatMulInteger",
                 {a, b, Tensor::FromVector<uint8_t>({12}), Tensor::FromVector<uint8_t>({0})});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(TensorsNear(
      (*y)[0], Tensor::FromVector<int32_t>({-38, -83, -44, -98, -50, -113, -56, -128}, {4, 2})));
  // Per-column zero points of B.
  y = RunOp(Reg(), "MatMulInteger", {a, b, Tensor(), Tensor::FromVector<uint8_t>({1, 2})});
  ASSERT_TRUE(y.ok()) << y.status();
  // Row 0: [11,7,3] x [[0,2],[1,3],[2,4]] = [13, 55].
  EXPECT_EQ((*y)[0].data<int32_t>()[0], 13);
  EXPECT_EQ((*y)[0].data<int32_t>()[1], 55);
}

TEST(Einsum, CommonForms) {
  Tensor a = RandomTensor(DataType::kFloat32, {2, 3, 4}, 1);
  Tensor b = RandomTensor(DataType::kFloat32, {2, 4, 5}, 2);
  auto bmm = RunOp(Reg(), "Einsum", {a, b}, {{"equation", Attr::String("bij,bjk->bik")}});
  ASSERT_TRUE(bmm.ok()) << bmm.status();
  EXPECT_TRUE(TensorsNear((*bmm)[0], NaiveMatMul(a, b, {2, 3, 5}), 1e-5, 1e-5));
  // Ellipsis + implicit output gives the same.
  auto ell = RunOp(Reg(), "Einsum", {a, b}, {{"equation", Attr::String("...ij,...jk")}});
  ASSERT_TRUE(ell.ok()) << ell.status();
  EXPECT_TRUE(TensorsNear((*ell)[0], (*bmm)[0], 1e-5, 1e-6));
  // Output in a permuted order: bik -> kbi.
  auto perm = RunOp(Reg(), "Einsum", {a, b}, {{"equation", Attr::String("bij, bjk -> kbi")}});
  ASSERT_TRUE(perm.ok()) << perm.status();
  ASSERT_EQ((*perm)[0].dims(), (std::vector<int64_t>{5, 2, 3}));
  for (int bb = 0; bb < 2; ++bb) {
    for (int i = 0; i < 3; ++i) {
      for (int k = 0; k < 5; ++k) {
        EXPECT_NEAR((*perm)[0].data<float>()[(k * 2 + bb) * 3 + i],
                    (*bmm)[0].data<float>()[(bb * 3 + i) * 5 + k], 1e-5);
      }
    }
  }
}

TEST(Einsum, TransposeSumDiagonalOuter) {
  Tensor x = RandomTensor(DataType::kFloat32, {3, 4}, 3);
  auto t = RunOp(Reg(), "Einsum", {x}, {{"equation", Attr::String("ij->ji")}});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].data<float>()[1 * 3 + 2], x.data<float>()[2 * 4 + 1]);
  auto s = RunOp(Reg(), "Einsum", {x}, {{"equation", Attr::String("ij->i")}});
  ASSERT_TRUE(s.ok()) << s.status();
  double row1 = 0;
  for (int j = 0; j < 4; ++j) row1 += x.data<float>()[4 + j];
  EXPECT_NEAR((*s)[0].data<float>()[1], row1, 1e-6);
  // Batch diagonal: ...ii->...i on [2, 3, 3].
  Tensor sq = RandomTensor(DataType::kFloat32, {2, 3, 3}, 4);
  auto d = RunOp(Reg(), "Einsum", {sq}, {{"equation", Attr::String("...ii ->...i")}});
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ((*d)[0].dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ((*d)[0].data<float>()[1 * 3 + 2], sq.data<float>()[1 * 9 + 2 * 3 + 2]);
  // Trace (implicit output is a scalar).
  auto tr = RunOp(Reg(), "Einsum", {sq}, {{"equation", Attr::String("bii")}});
  ASSERT_TRUE(tr.ok()) << tr.status();
  ASSERT_EQ((*tr)[0].dims(), (std::vector<int64_t>{2}));  // b appears once: kept
  // Inner product and outer product of vectors, three operands.
  Tensor u = Tensor::FromVector<float>({1, 2, 3}), v = Tensor::FromVector<float>({4, 5, 6});
  auto ip = RunOp(Reg(), "Einsum", {u, v}, {{"equation", Attr::String("i,i")}});
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ((*ip)[0].dims(), std::vector<int64_t>{});
  EXPECT_FLOAT_EQ((*ip)[0].data<float>()[0], 32.0f);
  auto op = RunOp(Reg(), "Einsum", {u, v, u}, {{"equation", Attr::String("i,j,k->ijk")}});
  ASSERT_TRUE(op.ok()) << op.status();
  EXPECT_FLOAT_EQ((*op)[0].data<float>()[(1 * 3 + 2) * 3 + 0], 2.0f * 6.0f * 1.0f);
  // A label summed inside one operand, on integers (general path).
  auto iv = RunOp(
      Reg(), "Einsum",
      {Tensor::FromVector<int64_t>({1, 2, 3, 4}, {2, 2}), Tensor::FromVector<int64_t>({5, 6})},
      {{"equation", Attr::String("ij,k->k")}});
  ASSERT_TRUE(iv.ok()) << iv.status();
  EXPECT_TRUE(TensorsNear((*iv)[0], Tensor::FromVector<int64_t>({50, 60})));
}

TEST(Einsum, ShapeInference) {
  const OpSchema* s = Reg().Find("", "Einsum");
  Node n;
  n.name = "e";
  n.op_type = "Einsum";
  n.inputs = {"a", "b"};
  n.outputs = {"y"};
  n.attrs["equation"] = Attr::String("...ij,jk");
  std::vector<ValueInfo> out;
  ASSERT_TRUE(
      RunInfer(*s, n, 17,
               {{DataType::kFloat32, Shape({-1, 3, 4})}, {DataType::kFloat32, Shape({4, 6})}},
               {nullptr, nullptr}, &out)
          .ok());
  EXPECT_EQ(out[0].shape.ToString(), "[?,3,6]");
}

TEST(Einsum, RejectsBadEquations) {
  Tensor x = RandomTensor(DataType::kFloat32, {3, 4}, 3);
  for (const char* eq : {"ij,jk->ik", "ijk->i", "ij->ik", "i.j->i", "ij->ii", "i1->i"}) {
    EXPECT_FALSE(RunOp(Reg(), "Einsum", {x}, {{"equation", Attr::String(eq)}}).ok()) << eq;
  }
  EXPECT_FALSE(RunOp(Reg(), "Einsum", {x, RandomTensor(DataType::kFloat32, {5, 2}, 1)},
                     {{"equation", Attr::String("ij,jk->ik")}})
                   .ok());
}

}  // namespace
}  // namespace kiln
