// Internal: the register-blocked matrix product of the attention kernel's tiles.
//
//   C (m × n) = alpha · A · B            (accumulate: C += alpha · A · B)
//   A(r, p) = a[r·a_row + p·a_step]      any strides: A's elements are broadcast one at a time
//   B(p, c) = b[p·ldb + c]               rows contiguous: loaded as SIMD vectors
//
// Both products of a tile fit this form without copying the inputs: S = K·Qᵀ with A = K
// as stored and B = Qᵀ packed once per block of queries, and O += P·V with A = Pᵀ (the
// tile as the softmax left it) and B = V as stored (docs/kernel.md). Keeping them here, not in
// BLAS, makes the kernel independent of the BLAS build's CPU detection (OpenBLAS 0.3.21
// runs its SSE3 kernels on CPUs newer than itself) and lets small k (E = 64) run at full
// speed: MR rows × NV vectors of C stay in registers for the whole of k.
#pragma once

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cstddef>

namespace attn::detail {

template <class T>
struct TileShape {
    using Batch = xsimd::batch<T>;
    static constexpr std::size_t kWidth = Batch::size;
    // 32 vector registers with AVX-512 (6 × 4 accumulators), 16 with AVX2 (6 × 2).
    static constexpr std::size_t kVectors = sizeof(T) * kWidth >= 64 ? 4 : 2;
    static constexpr std::size_t kRows = 6;
};

// MR rows × NV vectors of C, k split over Sets interleaved sets of accumulators (p even
// and odd with 2): each element's sum is then Sets shorter sums, added at the end, which
// halves its rounding error for the same instructions (the logits' dot products).
template <class T, std::size_t MR, std::size_t NV, std::size_t Sets>
inline void micro_tile(std::size_t k, const T* a, std::size_t a_row, std::size_t a_step, const T* b, std::size_t ldb,
                       T* c, std::size_t ldc, T alpha, bool accumulate) {
    using Batch = xsimd::batch<T>;
    constexpr std::size_t W = Batch::size;
    Batch acc[Sets][MR][NV];
#pragma GCC unroll 8
    for (std::size_t set = 0; set < Sets; ++set) {
#pragma GCC unroll 8
        for (std::size_t r = 0; r < MR; ++r) {
#pragma GCC unroll 8
            for (std::size_t v = 0; v < NV; ++v) acc[set][r][v] = Batch(T(0));
        }
    }
    auto step = [&](std::size_t set, std::size_t p) {
        Batch bv[NV];
#pragma GCC unroll 8
        for (std::size_t v = 0; v < NV; ++v) bv[v] = Batch::load_unaligned(b + p * ldb + v * W);
#pragma GCC unroll 8
        for (std::size_t r = 0; r < MR; ++r) {
            const Batch av(a[r * a_row + p * a_step]);
#pragma GCC unroll 8
            for (std::size_t v = 0; v < NV; ++v) acc[set][r][v] = xsimd::fma(av, bv[v], acc[set][r][v]);
        }
    };
    std::size_t p = 0;
    for (; p + Sets <= k; p += Sets) {
#pragma GCC unroll 2
        for (std::size_t set = 0; set < Sets; ++set) step(set, p + set);
    }
    for (; p < k; ++p) step(0, p);
    const Batch scale(alpha);
#pragma GCC unroll 8
    for (std::size_t r = 0; r < MR; ++r) {
#pragma GCC unroll 8
        for (std::size_t v = 0; v < NV; ++v) {
            T* out = c + r * ldc + v * W;
            Batch x = acc[0][r][v];
#pragma GCC unroll 2
            for (std::size_t set = 1; set < Sets; ++set) x += acc[set][r][v];
            x *= scale;
            if (accumulate) x += Batch::load_unaligned(out);
            x.store_unaligned(out);
        }
    }
}

// Up to TileShape::kRows rows of C over NV vectors of columns.
template <class T, std::size_t NV, std::size_t Sets>
inline void micro_rows(std::size_t rows, std::size_t k, const T* a, std::size_t a_row, std::size_t a_step, const T* b,
                       std::size_t ldb, T* c, std::size_t ldc, T alpha, bool accumulate) {
    static_assert(TileShape<T>::kRows == 6, "one case per row count");
    switch (rows) {
        case 1: micro_tile<T, 1, NV, Sets>(k, a, a_row, a_step, b, ldb, c, ldc, alpha, accumulate); break;
        case 2: micro_tile<T, 2, NV, Sets>(k, a, a_row, a_step, b, ldb, c, ldc, alpha, accumulate); break;
        case 3: micro_tile<T, 3, NV, Sets>(k, a, a_row, a_step, b, ldb, c, ldc, alpha, accumulate); break;
        case 4: micro_tile<T, 4, NV, Sets>(k, a, a_row, a_step, b, ldb, c, ldc, alpha, accumulate); break;
        case 5: micro_tile<T, 5, NV, Sets>(k, a, a_row, a_step, b, ldb, c, ldc, alpha, accumulate); break;
        default: micro_tile<T, 6, NV, Sets>(k, a, a_row, a_step, b, ldb, c, ldc, alpha, accumulate); break;
    }
}

// The columns of C beyond the last whole vector (fewer than a vector): plain loops.
// `b` and `c` point at the first of them.
template <class T>
inline void scalar_columns(std::size_t m, std::size_t count, std::size_t k, const T* a, std::size_t a_row,
                           std::size_t a_step, const T* b, std::size_t ldb, T* c, std::size_t ldc, T alpha,
                           bool accumulate) {
    for (std::size_t r = 0; r < m; ++r) {
        T* out = c + r * ldc;
        for (std::size_t j = 0; j < count; ++j) {
            T sum = 0;
            for (std::size_t p = 0; p < k; ++p) sum += a[r * a_row + p * a_step] * b[p * ldb + j];
            out[j] = accumulate ? out[j] + alpha * sum : alpha * sum;
        }
    }
}

// Sets = 2 trades half the columns of a micro-tile for the split sums (see micro_tile).
template <class T, std::size_t Sets = 1>
void tile_gemm(std::size_t m, std::size_t n, std::size_t k, const T* a, std::size_t a_row, std::size_t a_step,
               const T* b, std::size_t ldb, T* c, std::size_t ldc, T alpha, bool accumulate) {
    using Shape = TileShape<T>;
    constexpr std::size_t W = Shape::kWidth;
    constexpr std::size_t NV = Shape::kVectors / Sets;
    static_assert(NV >= 1, "more sets than accumulator columns");
    if (m == 0 || n == 0) return;
    if (k == 0) {  // an empty sum (E = 0): A and B may be empty, even null
        for (std::size_t r = 0; r < m && !accumulate; ++r) std::fill(c + r * ldc, c + r * ldc + n, T(0));
        return;
    }
    std::size_t col = 0;
    for (; col + NV * W <= n; col += NV * W) {
        for (std::size_t r = 0; r < m; r += Shape::kRows) {
            micro_rows<T, NV, Sets>(std::min(Shape::kRows, m - r), k, a + r * a_row, a_row, a_step, b + col, ldb,
                                    c + r * ldc + col, ldc, alpha, accumulate);
        }
    }
    for (; col + W <= n; col += W) {
        for (std::size_t r = 0; r < m; r += Shape::kRows) {
            micro_rows<T, 1, Sets>(std::min(Shape::kRows, m - r), k, a + r * a_row, a_row, a_step, b + col, ldb,
                                   c + r * ldc + col, ldc, alpha, accumulate);
        }
    }
    if (col < n) scalar_columns(m, n - col, k, a, a_row, a_step, b + col, ldb, c + col, ldc, alpha, accumulate);
}

}  // namespace attn::detail
