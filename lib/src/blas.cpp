#include "detail/blas.hpp"

#include <cblas.h>
#include <omp.h>

#include <climits>

namespace attn::detail {
namespace {

int to_int(std::size_t n) { return n > static_cast<std::size_t>(INT_MAX) ? INT_MAX : static_cast<int>(n); }

// BLAS rejects (and prints about) zero leading dimensions, which an empty inner
// dimension would give; C = beta·C is all a k = 0 product means.
template <class T>
bool scale_only(std::size_t m, std::size_t n, std::size_t k, T beta, T* c, std::size_t ldc) {
    if (m == 0 || n == 0) return true;
    if (k != 0) return false;
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    }
    return true;
}

}  // namespace

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
          std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
    if (scale_only(m, n, k, beta, c, ldc)) return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, to_int(m),
                to_int(n), to_int(k), alpha, a, to_int(lda), b, to_int(ldb), beta, c, to_int(ldc));
}

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
          std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc) {
    if (scale_only(m, n, k, beta, c, ldc)) return;
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, to_int(m),
                to_int(n), to_int(k), alpha, a, to_int(lda), b, to_int(ldb), beta, c, to_int(ldc));
}

int resolve_threads(int requested) { return requested > 0 ? requested : omp_get_num_procs(); }

// OpenBLAS's OpenMP build takes its thread count from omp_get_max_threads() at each
// call, overriding openblas_set_num_threads; the pthread build reads the latter.
BlasThreads::BlasThreads(int threads) : saved_omp_(omp_get_max_threads()), saved_blas_(openblas_get_num_threads()) {
    const int n = resolve_threads(threads);
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

BlasThreads::~BlasThreads() {
    omp_set_num_threads(saved_omp_);
    openblas_set_num_threads(saved_blas_);
}

}  // namespace attn::detail
