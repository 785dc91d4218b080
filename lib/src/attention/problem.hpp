// Internal: an attention call validated and laid out for the fast kernel.
//
// make_problem checks every shape once, converts the inputs to the compute type and
// turns broadcasting, grouped-query heads, masks, key padding, key lengths, the causal
// rule and the window into per-matrix offsets and per-row visible key ranges, and ALiBi
// slopes and sinks into per-matrix values, so that the fast kernel only walks plain
// row-major matrices. The reference (reference.cpp) does not use it: it sets each call up
// on its own, so that a mistake here shows as a difference between the two.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include <cmath>

#include <xtensor/xarray.hpp>

#include "attention/checks.hpp"
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
    std::optional<Window> window;
    double softcap = 0;         // 0: none
    std::vector<double> slope;  // ALiBi slope per flat batch index; empty: no ALiBi
    std::vector<double> sink;   // sink logit per flat batch index; empty: no sinks

    struct KeyRange {
        std::size_t begin = 0, end = 0;  // empty when end <= begin
    };
    // Query row i of matrix b may attend only keys [begin, end) (causal rule, key lengths,
    // window); masks may hide more of them. An empty range has begin == end.
    KeyRange visible_keys(std::size_t b, std::size_t i) const {
        // Positions are signed: p_i = i + S − L is negative for the first queries when L > S.
        const std::int64_t position = std::int64_t(i) + std::int64_t(S) - std::int64_t(L);
        std::int64_t begin = 0, end = std::int64_t(key_length[b]);
        if (causal == Causal::TopLeft) end = std::min(end, std::int64_t(i) + 1);
        if (causal == Causal::BottomRight) end = std::min(end, position + 1);
        if (window && window->left >= 0) begin = std::max(begin, position - window->left);
        if (window && window->right >= 0) end = std::min(end, position + window->right + 1);
        if (end <= begin) return {0, 0};
        return {std::size_t(begin), std::size_t(end)};
    }
    // Whether any rule hides keys by position (the kernel skips what they hide).
    bool hides_keys() const {
        return causal != Causal::None || window.has_value() ||
               std::any_of(key_length.begin(), key_length.end(), [&](std::size_t n) { return n < S; });
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
    Shape lse_shape() const {
        Shape s = batch_shape;
        s.push_back(L);
        return s;
    }
};

template <class T>
AttentionProblem<T> make_problem(const Tensor& query, const Tensor& key, const Tensor& value,
                                 const AttentionOptions& options);

extern template AttentionProblem<float> make_problem<float>(const Tensor&, const Tensor&, const Tensor&,
                                                            const AttentionOptions&);
extern template AttentionProblem<double> make_problem<double>(const Tensor&, const Tensor&, const Tensor&,
                                                              const AttentionOptions&);

}  // namespace attn::detail
