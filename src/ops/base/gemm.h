// Cache-blocked GEMM used by the reference Conv, ConvTranspose, MatMul and Gemm kernels.
//
// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, row-major, with leading dimensions
// lda/ldb/ldc in elements; op(X) is X or its transpose. beta == 0 ignores C's previous contents
// (NaNs in it included). Blocking and packing keep a ResNet-50-sized model in seconds on one
// core; this is a reference kernel, the engines use oneDNN.
#pragma once

#include <cstdint>

namespace kiln {

void GemmF32(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
             const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
             int64_t ldc);

void GemmF64(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
             const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
             int64_t ldc);

}  // namespace kiln
