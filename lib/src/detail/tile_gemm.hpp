// Internal: the register-blocked matrix product of the attention kernel's tiles.
//
//   C (m × n) = alpha · A · B            (accumulate: C += alpha · A · B)
//   A(r, p) = a[r·a_row + p·a_step]      any strides: A's elements are broadcast one at a time
//   B(p, c) = b[p·ldb + c]               rows contiguous: loaded as SIMD vectors
//
// Both products of a tile fit this form without copying the inputs: S = K·Qᵀ with A = K
// as stored and B = Qᵀ packed once per block of queries, and O += P·V with A = Pᵀ (the
// tile as the softmax left it) and B = V as stored (kernel.md). Keeping them here, not in
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
    static constexpr std::size_t kColumns = kVectors * kWidth;  // C columns per micro-tile
};

// MR rows × NV vectors of C.
template <class T, std::size_t MR, std::size_t NV>
inline void micro_tile(std::size_t k, const T* a, std::size_t a_row, std::size_t a_step, const T* b, std::size_t ldb,
                       T* c, std::size_t ldc, T alpha, bool accumulate) {
    using Batch = xsimd::batch<T>;
    constexpr std::size_t W = Batch::size;
    Batch acc[MR][NV];
#pragma GCC unroll 8
    for (std::size_t r = 0; r < MR; ++r) {
#pragma GCC unroll 8
        for (std::size_t v = 0; v < NV; ++v) acc[r][v] = Batch(T(0));
    }
    for (std::size_t p = 0; p < k; ++p) {
        Batch bv[NV];
#pragma GCC unroll 8
        for (std::size_t v = 0; v < NV; ++v) bv[v] = Batch::load_unaligned(b + p * ldb + v * W);
#pragma GCC unroll 8
        for (std::size_t r = 0; r < MR; ++r) {
            const Batch av(a[r * a_row + p * a_step]);
#pragma GCC unroll 8
            for (std::size_t v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(av, bv[v], acc[r][v]);
        }
    }
    const Batch scale(alpha);
#pragma GCC unroll 8
    for (std::size_t r = 0; r < MR; ++r) {
#pragma GCC unroll 8
        for (std::size_t v = 0; v < NV; ++v) {
            T* out = c + r * ldc + v * W;
            Batch x = acc[r][v] * scale;
            if (accumulate) x += Batch::load_unaligned(out);
            x.store_unaligned(out);
        }
    }
}

// Up to TileShape::kRows rows of C over NV vectors of columns.
template <class T, std::size_t NV>
inline void micro_rows(std::size_t rows, std::size_t k, const T* a, std::size_t a_row, std::size_t a_step, const T* b,
                       std::size_t ldb, T* c, std::size_t ldc, T alpha, bool accumulate) {
    static_assert(TileShape<T>::kRows == 6, "one case per row count");
    switch (rows) {
        case 1: micro_tile<T, 1, NV>(k, a, a_row, a_step, b, ldb, c, ldc, alpha, accumulate); break;
        case 2: micro_tile<T, 2, NV>(k, a, a_row, a_step, b, ldb, c, ldc, alpha, accumulate); break;
        case 3: micro_tile<T, 3, NV>(k, a, a_row, a_step, b, ldb, c, ldc, alpha, accumulate); break;
        case 4: micro_tile<T, 4, NV>(k, a, a_row, a_step, b, ldb, c, ldc, alpha, accumulate); break;
        case 5: micro_tile<T, 5, NV>(k, a, a_row, a_step, b, ldb, c, ldc, alpha, accumulate); break;
        default: micro_tile<T, 6, NV>(k, a, a_row, a_step, b, ldb, c, ldc, alpha, accumulate); break;
    }
}

// Columns [c0, c0 + count) of C beyond the last whole vector: plain loops.
template <class T>
inline void scalar_columns(std::size_t m, std::size_t c0, std::size_t count, std::size_t k, const T* a,
                           std::size_t a_row, std::size_t a_step, const T* b, std::size_t ldb, T* c, std::size_t ldc,
                           T alpha, bool accumulate) {
    for (std::size_t r = 0; r < m; ++r) {
        for (std::size_t col = c0; col < c0 + count; ++col) {
            T sum = 0;
            for (std::size_t p = 0; p < k; ++p) sum += a[r * a_row + p * a_step] * b[p * ldb + col];
            T& out = c[r * ldc + col];
            out = accumulate ? out + alpha * sum : alpha * sum;
        }
    }
}

template <class T>
void tile_gemm(std::size_t m, std::size_t n, std::size_t k, const T* a, std::size_t a_row, std::size_t a_step,
               const T* b, std::size_t ldb, T* c, std::size_t ldc, T alpha, bool accumulate) {
    using Shape = TileShape<T>;
    constexpr std::size_t W = Shape::kWidth;
    std::size_t col = 0;
    for (; col + Shape::kColumns <= n; col += Shape::kColumns) {
        for (std::size_t r = 0; r < m; r += Shape::kRows) {
            micro_rows<T, Shape::kVectors>(std::min(Shape::kRows, m - r), k, a + r * a_row, a_row, a_step, b + col, ldb,
                                           c + r * ldc + col, ldc, alpha, accumulate);
        }
    }
    for (; col + W <= n; col += W) {
        for (std::size_t r = 0; r < m; r += Shape::kRows) {
            micro_rows<T, 1>(std::min(Shape::kRows, m - r), k, a + r * a_row, a_row, a_step, b + col, ldb,
                             c + r * ldc + col, ldc, alpha, accumulate);
        }
    }
    if (col < n) scalar_columns(m, col, n - col, k, a, a_row, a_step, b, ldb, c, ldc, alpha, accumulate);
}

}  // namespace attn::detail
