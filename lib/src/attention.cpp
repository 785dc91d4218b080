// The attention kernel: per (matrix, block of query rows) two BLAS GEMMs with the
// softmax between them, in one OpenMP parallel region (kernel.md). Only the key columns
// the causal rule and key lengths leave visible are computed.
#include <omp.h>

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

// Softmax of row[0, end) in place; returns false (and zeroes the row) when no key is
// visible, i.e. every logit is −inf.
template <class T>
bool softmax_row(T* row, std::size_t end) {
    T max = -std::numeric_limits<T>::infinity();
    bool nan = false;
    for (std::size_t j = 0; j < end; ++j) {
        if (row[j] > max) max = row[j];
        nan |= std::isnan(row[j]);
    }
    if (max == -std::numeric_limits<T>::infinity() && !nan) {
        std::fill(row, row + end, T(0));
        return false;
    }
    double sum = 0;
    for (std::size_t j = 0; j < end; ++j) {
        row[j] = std::exp(row[j] - max);
        sum += row[j];
    }
    const T inv = static_cast<T>(1.0 / sum);
    for (std::size_t j = 0; j < end; ++j) row[j] *= inv;
    return true;
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
                    std::fill(row + end, row + (full_rows ? p.S : cols), ninf);
                    if (logits) std::copy(row, row + p.S, raw.data() + r * p.S);
                    softmax_row(row, end);
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
