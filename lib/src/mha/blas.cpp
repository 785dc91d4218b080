// BLAS is opened on first use (dlopen), not linked: only mha's projections need it, and
// loading OpenBLAS costs every run about 1.5 ms of relocations — a third of the whole
// classic example. ATTN_BLAS_LIBRARY is the library CMake found; its soname is the
// fallback for a build carried to another machine with its libraries.
#include "mha/blas.hpp"
#include "common/threads.hpp"

#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>

#include <climits>
#include <string>

#include "attn/error.hpp"

namespace attn::detail {
namespace {

struct Blas {
    decltype(&cblas_sgemm) sgemm = nullptr;
    decltype(&cblas_dgemm) dgemm = nullptr;
    decltype(&openblas_set_num_threads) set_num_threads = nullptr;
    decltype(&openblas_get_num_threads) get_num_threads = nullptr;
};

template <class F>
void resolve(void* library, const char* name, F& f) {
    f = reinterpret_cast<F>(::dlsym(library, name));
    if (!f) throw Error(ErrorKind::Io, "BLAS", std::string("no ") + name + " in " + ATTN_BLAS_LIBRARY);
}

Blas open_blas() {
    void* library = ::dlopen(ATTN_BLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!library) library = ::dlopen(ATTN_BLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char* why = ::dlerror();
        throw Error(ErrorKind::Io, "BLAS", std::string("cannot load ") + ATTN_BLAS_LIBRARY + ": " + (why ? why : "?"));
    }
    Blas b;
    resolve(library, "cblas_sgemm", b.sgemm);
    resolve(library, "cblas_dgemm", b.dgemm);
    resolve(library, "openblas_set_num_threads", b.set_num_threads);
    resolve(library, "openblas_get_num_threads", b.get_num_threads);
    return b;
}

const Blas& blas() {
    static const Blas b = open_blas();  // thread-safe; a failure throws again next time
    return b;
}

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
    blas().sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, to_int(m),
                 to_int(n), to_int(k), alpha, a, to_int(lda), b, to_int(ldb), beta, c, to_int(ldc));
}

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
          std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc) {
    if (scale_only(m, n, k, beta, c, ldc)) return;
    blas().dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, to_int(m),
                 to_int(n), to_int(k), alpha, a, to_int(lda), b, to_int(ldb), beta, c, to_int(ldc));
}

// OpenBLAS's OpenMP build takes its thread count from omp_get_max_threads() at each
// call, overriding openblas_set_num_threads; the pthread build reads the latter.
BlasThreads::BlasThreads(int threads) : saved_omp_(omp_get_max_threads()), saved_blas_(blas().get_num_threads()) {
    const int n = resolve_threads(threads);
    omp_set_num_threads(n);
    blas().set_num_threads(n);
}

BlasThreads::~BlasThreads() {
    omp_set_num_threads(saved_omp_);
    blas().set_num_threads(saved_blas_);
}

}  // namespace attn::detail
