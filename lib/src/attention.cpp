// The attention kernel: per (matrix, block of query rows) two BLAS GEMMs with the
// softmax between them, in one OpenMP parallel region (kernel.md). Only the key columns
// the causal rule and key lengths leave visible are computed.
// GCC 12 reports false "may be used uninitialized" warnings inside its own AVX-512
// intrinsics (_mm512_undefined_ps) when xsimd code is inlined here. Clang has no such
// warning and warns about the unknown name instead.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <omp.h>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>

#include "attn/attention.hpp"
#include "detail/attention_problem.hpp"
#include "detail/blas.hpp"

namespace attn {

// ---- TensorScoreSink ---------------------------------------------------------------------

void TensorScoreSink::begin(DType dtype, const Shape& shape) {
    tensor_ = Tensor::empty(dtype, shape);
    row_size_ = shape.back();
    matrix_size_ = row_size_ * shape[shape.size() - 2];
}

template <class T>
void TensorScoreSink::copy_rows(std::size_t matrix, std::size_t row_begin, std::size_t row_count, const T* values) {
    T* out = tensor_.values<T>().data() + matrix * matrix_size_ + row_begin * row_size_;
    std::copy(values, values + row_count * row_size_, out);
}

void TensorScoreSink::write_rows(std::size_t matrix, std::size_t row_begin, std::size_t row_count,
                                 const float* values) {
    copy_rows(matrix, row_begin, row_count, values);
}

void TensorScoreSink::write_rows(std::size_t matrix, std::size_t row_begin, std::size_t row_count,
                                 const double* values) {
    copy_rows(matrix, row_begin, row_count, values);
}

Shape attention_output_shape(const Tensor& query, const Tensor& key, const Tensor& value,
                             const AttentionOptions& options) {
    return detail::check_attention_shapes(query.shape(), key.shape(), value.shape(), options);
}

namespace {

constexpr std::size_t kQueryBlock = 64;

// Adds the masks to row i of matrix b over columns [0, end) and hides [end, S).
template <class T>
void apply_masks(const detail::AttentionProblem<T>& p, std::size_t b, std::size_t i, std::size_t end, T* row) {
    for (const auto& term : p.terms) {
        const T* m = term.values.data() + term.matrix_offset[b] + i * term.row_stride;
        if (term.column_stride == 0) {
            for (std::size_t j = 0; j < end; ++j) row[j] += m[0];
        } else {
            for (std::size_t j = 0; j < end; ++j) row[j] += m[j];
        }
    }
}

// row[0, end) ← exp(row − max(row)), returning the sum: the unnormalised softmax.
// A row whose logits are all −inf (no visible key) becomes zeros with sum 0; NaN
// logits make the whole row and its sum NaN, as in PyTorch.
template <class T>
T exp_row(T* row, std::size_t end) {
    using Batch = xsimd::batch<T>;
    constexpr std::size_t kWidth = Batch::size;
    const T ninf = -std::numeric_limits<T>::infinity();
    std::size_t j = 0;
    Batch batch_max(ninf);
    for (; j + kWidth <= end; j += kWidth) batch_max = xsimd::max(batch_max, Batch::load_unaligned(row + j));
    alignas(64) T lanes[kWidth];  // xsimd 8.1 has no horizontal max
    batch_max.store_aligned(lanes);
    T max = *std::max_element(lanes, lanes + kWidth);
    for (; j < end; ++j) max = std::max(max, row[j]);
    if (max == ninf) {
        const bool nan = std::any_of(row, row + end, [](T x) { return std::isnan(x); });
        std::fill(row, row + end, nan ? std::numeric_limits<T>::quiet_NaN() : T(0));
        return nan ? std::numeric_limits<T>::quiet_NaN() : T(0);
    }
    const Batch batch_shift(max);
    Batch batch_sum(T(0));
    for (j = 0; j + kWidth <= end; j += kWidth) {
        const Batch e = xsimd::exp(Batch::load_unaligned(row + j) - batch_shift);
        e.store_unaligned(row + j);
        batch_sum += e;
    }
    T sum = xsimd::hadd(batch_sum);
    for (; j < end; ++j) {
        row[j] = std::exp(row[j] - max);
        sum += row[j];
    }
    return sum;
}

// The factor that normalises a row with this sum: 0 for an all-masked row.
template <class T>
T inverse_sum(T sum) {
    return sum == T(0) ? T(0) : T(1) / sum;
}

template <class T>
void run_kernel(const detail::AttentionProblem<T>& p, T* out, ScoreSink* weights, ScoreSink* logits, int threads) {
    const std::size_t blocks_per_matrix = (p.L + kQueryBlock - 1) / kQueryBlock;
    const std::size_t tasks = p.batches * blocks_per_matrix;
    const T ninf = -std::numeric_limits<T>::infinity();
    const bool full_rows = weights != nullptr || logits != nullptr;
    detail::BlasSingleThreaded single_threaded_blas;
    std::exception_ptr failure;
#pragma omp parallel num_threads(threads)
    {
        std::vector<T> scores(kQueryBlock * p.S);
        std::vector<T> raw(logits ? kQueryBlock * p.S : 0);
#pragma omp for schedule(dynamic, 1)
        for (std::size_t task = 0; task < tasks; ++task) {
            try {
                const std::size_t b = task / blocks_per_matrix;
                const std::size_t i0 = (task % blocks_per_matrix) * kQueryBlock;
                const std::size_t rows = std::min(kQueryBlock, p.L - i0);
                // Rows see growing prefixes of the keys: the last row's end bounds them all.
                std::size_t cols = 0;
                for (std::size_t r = 0; r < rows; ++r) cols = std::max(cols, p.visible_end(b, i0 + r));
                const std::size_t ld = full_rows ? p.S : std::max<std::size_t>(cols, 1);
                T* o = out + (b * p.L + i0) * p.Ev;
                detail::gemm(false, true, rows, cols, p.E, p.scale, p.q->data() + p.q_offset[b] + i0 * p.E, p.E,
                             p.k->data() + p.k_offset[b], p.E, T(0), scores.data(), ld);
                for (std::size_t r = 0; r < rows; ++r) {
                    T* row = scores.data() + r * ld;
                    const std::size_t end = p.visible_end(b, i0 + r);
                    apply_masks(p, b, i0 + r, end, row);
                    if (logits) {
                        std::copy(row, row + end, raw.data() + r * p.S);
                        std::fill(raw.data() + r * p.S + end, raw.data() + (r + 1) * p.S, ninf);
                    }
                    // Normalising P before P·V (not the output after it) keeps the float32
                    // error at or below PyTorch's (bench/accuracy.py).
                    const T inverse = inverse_sum(exp_row(row, end));
                    for (std::size_t j = 0; j < end; ++j) row[j] *= inverse;
                    std::fill(row + end, row + (full_rows ? p.S : cols), T(0));
                }
                detail::gemm(false, false, rows, p.Ev, cols, T(1), scores.data(), ld, p.v->data() + p.v_offset[b], p.Ev,
                             T(0), o, p.Ev);
                if (logits) logits->write_rows(b, i0, rows, raw.data());
                if (weights) weights->write_rows(b, i0, rows, scores.data());
            } catch (...) {
#pragma omp critical(attn_kernel_failure)
                if (!failure) failure = std::current_exception();
            }
        }
    }
    if (failure) std::rethrow_exception(failure);
}

template <class T>
Tensor attend(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionOptions& options,
              ScoreSink* weights, ScoreSink* logits) {
    const detail::AttentionProblem<T> p = detail::make_problem<T>(query, key, value, options);
    xt::xarray<T> out = xt::xarray<T>::from_shape(p.output_shape());
    if (weights) weights->begin(dtype_of<T>::value, p.score_shape());
    if (logits) logits->begin(dtype_of<T>::value, p.score_shape());
    run_kernel(p, out.data(), weights, logits, detail::resolve_threads(options.threads));
    return Tensor(std::move(out));
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const AttentionOptions& options, ScoreSink* weights, ScoreSink* logits) {
    if (detail::compute_dtype(query, key, value, options) == DType::Float64) {
        return attend<double>(query, key, value, options, weights, logits);
    }
    return attend<float>(query, key, value, options, weights, logits);
}

}  // namespace attn
