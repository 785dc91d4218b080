// The oracle: attention written as the formula reads, one query row at a time, with
// float64 sums and exp whatever the compute type. No BLAS, no blocking, no threads.
//
// It is independent of the fast kernel from the arguments up: it reads the caller's
// tensors and AttentionOptions itself and does its own broadcasting, grouped-query head
// mapping, masks, key padding, key lengths, causal rule, window, scale, ALiBi slopes and
// sinks, so that a mistake in the kernel's setup (problem.cpp) shows as a difference
// between the two. It shares with the kernel only the checks that refuse a call
// (attention/checks.hpp), so that both refuse the same calls with the same messages.
//
// It is PyTorch's math attention, softmax(Q·Kᵀ·scale + mask)·V, with the causal rule, key
// lengths and the window as an additive −inf mask (as torch turns is_causal and
// key_padding_mask into one) and every key and value row taking part. The variants come
// in the order of attn/attention.hpp: softcap, ALiBi, masks, hidden keys; a sink adds
// e^σ to the denominator only. So NaN and infinities propagate as in torch: a NaN logit
// stays NaN under a −inf mask, +inf + −inf is NaN, and a zero weight times a NaN value is
// NaN. A row whose logits are all −inf gets zero weights (PyTorch ≥ 2.5's _safe_softmax).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "attention/checks.hpp"
#include "attn/attention.hpp"

namespace attn {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// A tensor's values in float64 after rounding to the compute type T (as the kernel
// converts its inputs), with its shape, read by a multi-index of the output.
template <class T>
struct Input {
    Shape shape;
    std::vector<double> values;
    Input() = default;
    explicit Input(const Tensor& t) : shape(t.shape()) {
        const xt::xarray<T> cast = t.cast<T>();
        values.assign(cast.data(), cast.data() + cast.size());
    }
    // The flat index of the element that the last shape.size() entries of `index` name
    // (numpy's right alignment), where a dim of size 1 is read at 0 whatever the index.
    std::size_t flat(const std::vector<std::size_t>& index) const {
        const std::size_t skip = index.size() - shape.size();
        std::size_t f = 0;
        for (std::size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + (shape[d] == 1 ? 0 : index[skip + d]);
        return f;
    }
};

// The bool mask convention: bool `true_means_masked` -> −inf, the other -> 0; floats as
// they are (after rounding to T).
template <class T>
Input<T> additive_mask(const Tensor& mask, bool true_means_masked) {
    Input<T> in(mask);
    if (mask.dtype() == DType::Bool) {
        for (double& x : in.values) x = (x != 0) == true_means_masked ? kNegInf : 0.0;
    }
    return in;
}

// The ALiBi paper's get_slopes(n), as its authors wrote it in Python.
std::vector<double> paper_slopes(std::size_t n) {
    const auto power_of_two = [](std::size_t m) {
        const double start = std::pow(2.0, -std::pow(2.0, -(std::log2(double(m)) - 3)));
        std::vector<double> s;
        for (std::size_t i = 0; i < m; ++i) s.push_back(std::pow(start, double(i + 1)));
        return s;
    };
    if (n == 0) return {};
    const std::size_t closest = std::size_t(1) << std::size_t(std::floor(std::log2(double(n))));
    std::vector<double> s = power_of_two(closest);
    if (closest == n) return s;
    const std::vector<double> doubled = power_of_two(2 * closest);
    for (std::size_t i = 0; s.size() < n; i += 2) s.push_back(doubled[i]);
    return s;
}

// The index an input of batch dims `dims` reads for the output batch index `out`, dims
// aligned to the right; on the output's last batch dim, an input with fewer heads
// (neither 1 nor the output's count) is a grouped-query K/V: head h reads h / (H / Hkv).
std::vector<std::size_t> input_batch_index(const Shape& dims, const Shape& out_batch,
                                           const std::vector<std::size_t>& out) {
    std::vector<std::size_t> index(dims.size(), 0);
    const std::size_t skip = out_batch.size() - dims.size();
    for (std::size_t d = 0; d < dims.size(); ++d) {
        const std::size_t n = dims[d], total = out_batch[skip + d], i = out[skip + d];
        if (n == 1) continue;
        index[d] = n == total ? i : i / (total / n);
    }
    return index;
}

template <class T>
Tensor reference(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionOptions& options,
                 ScoreSink* weights, ScoreSink* logits, Tensor* lse) {
    const Input<T> q(query), k(key), v(value);
    const std::size_t L = q.shape[q.shape.size() - 2], E = q.shape.back();
    const std::size_t S = k.shape[k.shape.size() - 2], Ev = v.shape.back();
    const Shape bq(q.shape.begin(), q.shape.end() - 2), bk(k.shape.begin(), k.shape.end() - 2),
        bv(v.shape.begin(), v.shape.end() - 2);

    // The output's batch dims: numpy broadcasting, where on dim −3 the query's head count
    // wins over a K/V head count dividing it (the shapes were checked).
    const std::size_t rank = std::max({bq.size(), bk.size(), bv.size()});
    Shape batch(rank, 1);
    for (std::size_t r = 0; r < rank; ++r) {
        auto dim = [&](const Shape& b) -> std::size_t { return r < b.size() ? b[b.size() - 1 - r] : 1; };
        const std::size_t nq = dim(bq), nk = dim(bk), nv = dim(bv);
        batch[rank - 1 - r] = nq != 1 ? nq : nk != 1 ? nk : nv;
    }
    std::size_t batches = 1;
    for (std::size_t n : batch) batches *= n;
    const std::size_t heads = batch.empty() ? 1 : batch.back();

    const double scale = options.scale ? *options.scale : 1.0 / std::sqrt(double(E));

    std::vector<double> slopes;  // per head
    if (options.alibi) slopes = paper_slopes(heads);
    Input<double> given_slopes;
    if (options.alibi_slopes) given_slopes = Input<double>(*options.alibi_slopes);
    Input<double> sinks;
    if (options.sinks) sinks = Input<double>(*options.sinks);
    Input<T> mask, padding;
    if (options.mask) {
        mask = additive_mask<T>(*options.mask, false);
        while (mask.shape.size() < 2) mask.shape.insert(mask.shape.begin(), 1);  // a scalar or (S,) mask
    }
    if (options.key_padding_mask) padding = additive_mask<T>(*options.key_padding_mask, true);

    Shape score_shape = batch, out_shape = batch, lse_shape = batch;
    score_shape.insert(score_shape.end(), {L, S});
    out_shape.insert(out_shape.end(), {L, Ev});
    lse_shape.push_back(L);
    xt::xarray<T> out = xt::xarray<T>::from_shape(out_shape);
    xt::xarray<T> row_lse = xt::xarray<T>::from_shape(lse_shape);
    if (weights) weights->begin(dtype_of<T>::value, score_shape);
    if (logits) logits->begin(dtype_of<T>::value, score_shape);

    std::vector<double> logit(S), prob(S);
    std::vector<T> row_out(S);
    std::vector<std::size_t> b_index(rank, 0);  // the output batch index of flat matrix b
    for (std::size_t b = 0; b < batches; ++b) {
        if (b > 0) {
            for (std::size_t d = rank; d-- > 0;) {
                if (++b_index[d] < batch[d]) break;
                b_index[d] = 0;
            }
        }
        const std::size_t h = rank == 0 ? 0 : b_index[rank - 1];
        auto matrix_start = [&](const Input<T>& in, const Shape& dims) {
            std::vector<std::size_t> index = input_batch_index(dims, batch, b_index);
            index.insert(index.end(), {0, 0});
            return in.flat(index);
        };
        const double* qm = q.values.data() + matrix_start(q, bq);
        const double* km = k.values.data() + matrix_start(k, bk);
        const double* vm = v.values.data() + matrix_start(v, bv);

        double slope = 0;
        const bool has_alibi = options.alibi || options.alibi_slopes;
        if (options.alibi) slope = slopes[h];
        if (options.alibi_slopes) {
            // (H,) or (batch…, H): aligned to the right with the output's batch dims (one
            // head, index 0, when there are none).
            slope = given_slopes.values[given_slopes.flat(rank == 0 ? std::vector<std::size_t>{0} : b_index)];
        }
        const bool has_sink = options.sinks.has_value();
        const double sink = has_sink ? sinks.values[h] : 0.0;
        std::size_t key_length = S;
        if (!options.key_lengths.empty()) {
            key_length = options.key_lengths.size() == 1 ? options.key_lengths[0] : options.key_lengths[b_index[0]];
        }

        // Key padding (batch…, S): its dim d is the output's batch dim d (aligned left).
        std::size_t padding_row = 0;
        if (options.key_padding_mask) {
            std::vector<std::size_t> index(b_index.begin(), b_index.begin() + std::ptrdiff_t(padding.shape.size() - 1));
            index.push_back(0);
            padding_row = padding.flat(index);
        }
        std::vector<std::size_t> element_index = b_index;  // (batch…, i, j) for the mask
        element_index.insert(element_index.end(), {0, 0});

        for (std::size_t i = 0; i < L; ++i) {
            element_index[rank] = i;
            // The query's position aligned bottom-right (signed: negative when L > S).
            const std::int64_t position = std::int64_t(i) + std::int64_t(S) - std::int64_t(L);
            for (std::size_t j = 0; j < S; ++j) {
                double dot = 0;
                for (std::size_t e = 0; e < E; ++e) dot += qm[i * E + e] * km[j * E + e];
                // E = 0: PyTorch scales Q and K (empty) before their product, so the logit
                // is the empty sum 0 whatever the scale (1/√0 would make it 0·inf = NaN).
                double s = E == 0 ? 0.0 : dot * scale;
                if (options.softcap) s = *options.softcap * std::tanh(s / *options.softcap);
                if (has_alibi) s -= slope * std::abs(double(position) - double(j));
                if (options.mask) {
                    element_index.back() = j;
                    s += mask.values[mask.flat(element_index)];
                }
                if (options.key_padding_mask) s += padding.values[padding_row + j];
                const std::int64_t jj = std::int64_t(j);
                bool hidden = j >= key_length;
                if (options.causal == Causal::TopLeft) hidden |= j > i;
                if (options.causal == Causal::BottomRight) hidden |= jj > position;
                if (options.window && options.window->left >= 0) hidden |= jj < position - options.window->left;
                if (options.window && options.window->right >= 0) hidden |= jj > position + options.window->right;
                if (hidden) s += kNegInf;
                logit[j] = s;
            }
            double max = kNegInf;
            bool any_nan = false;
            for (double x : logit) {
                max = std::max(max, x);
                any_nan |= std::isnan(x);
            }
            // A row with no visible key gets zero weights and output, sink or not.
            const bool masked_row = max == kNegInf && !any_nan;
            if (has_sink && !masked_row) max = std::max(max, sink);
            double sum = has_sink && !masked_row ? std::exp(sink - max) : 0.0;
            for (std::size_t j = 0; j < S; ++j) {
                prob[j] = masked_row ? 0.0 : std::exp(logit[j] - max);
                sum += prob[j];
            }
            for (std::size_t j = 0; j < S; ++j) prob[j] = masked_row ? 0.0 : prob[j] / sum;
            const double row_sum_log = masked_row ? (has_sink ? sink : kNegInf) : max + std::log(sum);
            row_lse.data()[b * L + i] = static_cast<T>(row_sum_log);
            T* o = out.data() + (b * L + i) * Ev;
            for (std::size_t c = 0; c < Ev; ++c) {
                double acc = 0;
                for (std::size_t j = 0; j < S; ++j) acc += prob[j] * vm[j * Ev + c];
                o[c] = static_cast<T>(acc);
            }
            if (logits) {
                for (std::size_t j = 0; j < S; ++j) row_out[j] = static_cast<T>(logit[j]);
                logits->write_rows(b, i, 1, row_out.data());
            }
            if (weights) {
                for (std::size_t j = 0; j < S; ++j) row_out[j] = static_cast<T>(prob[j]);
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
    detail::check_result_memory(query, key, value, options, weights, logits);  // shapes, then memory
    detail::check_option_values(options);
    bool float64 = options.precision == Precision::Float64;
    if (options.precision == Precision::Auto) {
        for (const Tensor* t : {&query, &key, &value}) float64 |= t->dtype() == DType::Float64;
    }
    if (float64) return reference<double>(query, key, value, options, weights, logits, lse);
    return reference<float>(query, key, value, options, weights, logits, lse);
}

}  // namespace attn
