// Internal: an attention call validated and laid out for the kernels.
//
// make_problem checks every shape once, converts the inputs to the compute type and
// turns broadcasting, grouped-query heads, masks, key padding, key lengths and the causal
// rule into per-matrix offsets and per-row visible key ranges, so that the kernels
// (reference and fast) only walk plain row-major matrices.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include <xtensor/xarray.hpp>

#include "attn/attention.hpp"

namespace attn::detail {

// A mask or key-padding bias added to the logits, kept in its own (broadcastable) shape.
template <class T>
struct AdditiveTerm {
    xt::xarray<T> values;
    std::vector<std::size_t> matrix_offset;  // per flat batch index
    std::size_t row_stride = 0;              // 0 when the term is the same for every query row
    std::size_t column_stride = 1;           // 0 when the term is the same for every key
};

template <class T>
struct AttentionProblem {
    Shape batch_shape;  // the broadcast batch dims of the output
    std::size_t batches = 1, L = 0, S = 0, E = 0, Ev = 0;
    // The inputs in the compute type: borrowed from the caller's tensors when they
    // already are, so they must outlive the problem.
    std::optional<ValuesAs<T>> q, k, v;
    std::vector<std::size_t> q_offset, k_offset, v_offset;  // element offset of each matrix
    T scale = 1;
    Causal causal = Causal::None;
    std::vector<AdditiveTerm<T>> terms;
    std::vector<std::size_t> key_length;  // per flat batch index: keys at or past it are ignored

    // Query row i of matrix b may attend only keys [0, visible_end(b, i)) (causal rule and
    // key lengths); masks may hide more of them.
    std::size_t visible_end(std::size_t b, std::size_t i) const {
        std::size_t end = key_length[b];
        if (causal == Causal::TopLeft) {
            end = std::min(end, i + 1);
        } else if (causal == Causal::BottomRight) {
            // i + S − L + 1 keys, none when that is not positive.
            end = i + S + 1 <= L ? 0 : std::min(end, i + S + 1 - L);
        }
        return end;
    }
    Shape score_shape() const {
        Shape s = batch_shape;
        s.push_back(L);
        s.push_back(S);
        return s;
    }
    Shape output_shape() const {
        Shape s = batch_shape;
        s.push_back(L);
        s.push_back(Ev);
        return s;
    }
};

// Checks every shape of a call (ErrorKind::Shape naming both shapes) and returns the
// output's shape, without touching any data.
Shape check_attention_shapes(const Shape& query, const Shape& key, const Shape& value, const AttentionOptions& options);

// Throws ErrorKind::Value (check_memory) when the output and the scores the sinks hold
// would not fit in memory together.
void check_result_memory(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionOptions& options,
                         const ScoreSink* weights, const ScoreSink* logits);

// The dtype the computation runs in.
DType compute_dtype(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionOptions& options);

template <class T>
AttentionProblem<T> make_problem(const Tensor& query, const Tensor& key, const Tensor& value,
                                 const AttentionOptions& options);

extern template AttentionProblem<float> make_problem<float>(const Tensor&, const Tensor&, const Tensor&,
                                                            const AttentionOptions&);
extern template AttentionProblem<double> make_problem<double>(const Tensor&, const Tensor&, const Tensor&,
                                                              const AttentionOptions&);

}  // namespace attn::detail
