// The oracle: attention written as the formula reads, one query row at a time, with
// float64 sums and exp whatever the compute type. No BLAS, no blocking, no threads.
//
// It is PyTorch's math attention, softmax(Q·Kᵀ·scale + mask)·V, with the causal rule, key
// lengths and the window as an additive −inf mask (as torch turns is_causal and
// key_padding_mask into one) and every key and value row taking part. The variants come
// in the order of attn/attention.hpp: softcap, ALiBi, masks, hidden keys; a sink adds
// e^σ to the denominator only. So NaN and infinities propagate as
// in torch: a NaN logit stays NaN under a −inf mask, +inf + −inf is NaN, and a zero
// weight times a NaN value is NaN. A row whose logits are all −inf gets zero weights
// (PyTorch ≥ 2.5's _safe_softmax).
#include <cmath>
#include <limits>
#include <vector>

#include "attention/problem.hpp"
#include "attn/attention.hpp"

namespace attn {
namespace {

template <class T>
Tensor reference(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionOptions& options,
                 ScoreSink* weights, ScoreSink* logits, Tensor* lse) {
    const detail::AttentionProblem<T> p = detail::make_problem<T>(query, key, value, options);
    xt::xarray<T> out = xt::xarray<T>::from_shape(p.output_shape());
    xt::xarray<T> row_lse = xt::xarray<T>::from_shape(p.lse_shape());
    if (weights) weights->begin(dtype_of<T>::value, p.score_shape());
    if (logits) logits->begin(dtype_of<T>::value, p.score_shape());
    const double ninf = -std::numeric_limits<double>::infinity();
    std::vector<double> logit(p.S), prob(p.S);
    std::vector<T> row_out(p.S);
    for (std::size_t b = 0; b < p.batches; ++b) {
        const T* q = p.q->data() + p.q_offset[b];
        const T* k = p.k->data() + p.k_offset[b];
        const T* v = p.v->data() + p.v_offset[b];
        for (std::size_t i = 0; i < p.L; ++i) {
            const auto visible = p.visible_keys(b, i);
            for (std::size_t j = 0; j < p.S; ++j) {
                double dot = 0;
                for (std::size_t e = 0; e < p.E; ++e) dot += double(q[i * p.E + e]) * double(k[j * p.E + e]);
                logit[j] = dot * double(p.scale);
                if (p.softcap > 0) logit[j] = p.softcap * std::tanh(logit[j] / p.softcap);
                if (!p.slope.empty()) logit[j] += p.alibi_bias(b, i, j);
                for (const auto& term : p.terms) {
                    logit[j] += double(
                        term.values.data()[term.matrix_offset[b] + i * term.row_stride + j * term.column_stride]);
                }
                if (j < visible.begin || j >= visible.end) logit[j] += ninf;  // hidden by position
            }
            double max = ninf;
            bool any_nan = false;
            for (double x : logit) {
                max = std::max(max, x);
                any_nan |= std::isnan(x);
            }
            // A row with no visible key gets zero weights and output, sink or not.
            const bool masked_row = max == ninf && !any_nan;
            const bool has_sink = !p.sink.empty();
            if (has_sink && !masked_row) max = std::max(max, p.sink[b]);
            double sum = has_sink && !masked_row ? std::exp(p.sink[b] - max) : 0.0;
            for (std::size_t j = 0; j < p.S; ++j) {
                prob[j] = masked_row ? 0.0 : std::exp(logit[j] - max);
                sum += prob[j];
            }
            for (std::size_t j = 0; j < p.S; ++j) prob[j] = masked_row ? 0.0 : prob[j] / sum;
            if (masked_row) {
                row_lse.data()[b * p.L + i] = static_cast<T>(has_sink ? p.sink[b] : ninf);
            } else {
                row_lse.data()[b * p.L + i] = static_cast<T>(max + std::log(sum));
            }
            T* o = out.data() + (b * p.L + i) * p.Ev;
            for (std::size_t c = 0; c < p.Ev; ++c) {
                double acc = 0;
                for (std::size_t j = 0; j < p.S; ++j) acc += prob[j] * double(v[j * p.Ev + c]);
                o[c] = static_cast<T>(acc);
            }
            if (logits) {
                for (std::size_t j = 0; j < p.S; ++j) row_out[j] = static_cast<T>(logit[j]);
                logits->write_rows(b, i, 1, row_out.data());
            }
            if (weights) {
                for (std::size_t j = 0; j < p.S; ++j) row_out[j] = static_cast<T>(prob[j]);
                weights->write_rows(b, i, 1, row_out.data());
            }
        }
    }
    if (lse) *lse = Tensor(std::move(row_lse));
    return Tensor(std::move(out));
}

}  // namespace

Tensor reference_attention(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionOptions& options,
                           ScoreSink* weights, ScoreSink* logits, Tensor* lse) {
    detail::check_result_memory(query, key, value, options, weights, logits);
    if (detail::compute_dtype(query, key, value, options) == DType::Float64) {
        return reference<double>(query, key, value, options, weights, logits, lse);
    }
    return reference<float>(query, key, value, options, weights, logits, lse);
}

}  // namespace attn
