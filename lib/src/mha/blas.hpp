// Internal: the BLAS calls of the library, kept out of every translation unit that
// includes xtensor-blas (its CBLAS enums clash with cblas.h, docs/debian.md).
#pragma once

#include <cstddef>

namespace attn::detail {

// C (m×n) = alpha · op(A) · op(B) + beta · C, row-major; op(X) = Xᵀ when trans_x.
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
          std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc);
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
          std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc);

// While alive, BLAS calls made outside our parallel regions (the projections of mha) use
// `threads` threads (0 = all cores); the previous setting comes back afterwards.
class BlasThreads {
public:
    explicit BlasThreads(int threads);
    ~BlasThreads();
    BlasThreads(const BlasThreads&) = delete;
    BlasThreads& operator=(const BlasThreads&) = delete;

private:
    int saved_omp_;
    int saved_blas_;
};

}  // namespace attn::detail
