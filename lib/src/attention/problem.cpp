#include "attention/problem.hpp"

#include <cmath>
#include <limits>
#include <string>

namespace attn::detail {
namespace {

Shape batch_dims(const Shape& shape) { return Shape(shape.begin(), shape.end() - 2); }

// Element offset of every matrix of the output batch in an array whose own batch dims
// `dims` are aligned to the output's `batch` starting at output dim `first`. A dim of
// size 1 broadcasts; on the output's last batch dim (−3) a size dividing the output's is
// a grouped-query head dim when `grouped` is set.
std::vector<std::size_t> matrix_offsets(const Shape& batch, const Shape& dims, std::size_t first,
                                        std::size_t matrix_size, bool grouped = false) {
    std::vector<std::size_t> stride(dims.size());
    std::size_t s = matrix_size;
    for (std::size_t d = dims.size(); d-- > 0;) {
        stride[d] = dims[d] == 1 ? 0 : s;
        s *= dims[d];
    }
    std::size_t count = 1;
    for (std::size_t n : batch) count *= n;
    std::vector<std::size_t> offsets(count, 0);
    Shape index(batch.size(), 0);
    for (std::size_t b = 0; b < count; ++b) {
        std::size_t offset = 0;
        for (std::size_t d = 0; d < dims.size(); ++d) {
            const std::size_t out_dim = first + d;
            std::size_t i = index[out_dim];
            if (grouped && out_dim + 1 == batch.size() && dims[d] != batch[out_dim] && dims[d] != 1) {
                i /= batch[out_dim] / dims[d];
            }
            offset += i * stride[d];
        }
        offsets[b] = offset;
        for (std::size_t d = batch.size(); d-- > 0;) {  // next row-major batch index
            if (++index[d] < batch[d]) break;
            index[d] = 0;
        }
    }
    return offsets;
}

// numpy's broadcast of two dims already known to fit (equal, or one of them 1): a 1
// gives way to the other, 0 included, so (1,) and (0,) broadcast to (0,), not (1,).
std::size_t broadcast_dim(std::size_t a, std::size_t b) { return a == 1 ? b : a; }

struct Shapes {
    Shape batch;
    std::size_t L, S, E, Ev;
};

std::string three_shapes(const Shape& q, const Shape& k, const Shape& v) {
    return "query " + shape_to_string(q) + ", key " + shape_to_string(k) + ", value " + shape_to_string(v);
}

Shapes check_shapes(const Shape& q, const Shape& k, const Shape& v) {
    for (auto [shape, arg] : {std::pair{&q, Arg::Query}, {&k, Arg::Key}, {&v, Arg::Value}}) {
        if (shape->size() < 2) {
            throw Error(ErrorKind::Shape, arg,
                        "expected rank >= 2 (…, length, features), found shape " + shape_to_string(*shape));
        }
    }
    Shapes s;
    s.L = q[q.size() - 2];
    s.E = q.back();
    s.S = k[k.size() - 2];
    s.Ev = v.back();
    if (k.back() != s.E) {
        throw Error(ErrorKind::Shape, Arg::Key,
                    "last dim must equal the query's E = " + std::to_string(s.E) + "; " + three_shapes(q, k, v));
    }
    if (v[v.size() - 2] != s.S) {
        throw Error(ErrorKind::Shape, Arg::Value,
                    "dim -2 must equal the key's S = " + std::to_string(s.S) + "; " + three_shapes(q, k, v));
    }
    const Shape bq = batch_dims(q), bk = batch_dims(k), bv = batch_dims(v);
    const std::size_t rank = std::max({bq.size(), bk.size(), bv.size()});
    s.batch.assign(rank, 1);
    for (std::size_t r = 0; r < rank; ++r) {  // r counts from the right
        auto dim = [&](const Shape& b) -> std::size_t { return r < b.size() ? b[b.size() - 1 - r] : 1; };
        const std::size_t nq = dim(bq), nk = dim(bk), nv = dim(bv);
        if (nk != nv && nk != 1 && nv != 1) {
            throw Error(ErrorKind::Shape, Arg::KeyValue, "batch dims do not broadcast; " + three_shapes(q, k, v));
        }
        const std::size_t nkv = broadcast_dim(nk, nv);
        const bool broadcast = nq == nkv || nq == 1 || nkv == 1;
        // Zero key/value heads divide no query head count (and 0 % 0 is undefined).
        const bool grouped = r == 0 && bq.size() >= 1 && nkv != 0 && nq > nkv && nq % nkv == 0;
        if (!broadcast && !grouped) {
            throw Error(ErrorKind::Shape, Arg::QueryKey,
                        "batch dims do not broadcast and " + std::to_string(nkv) + " key/value heads do not divide " +
                            std::to_string(nq) + " query heads; " + three_shapes(q, k, v));
        }
        s.batch[rank - 1 - r] = grouped ? nq : broadcast_dim(nq, nkv);
    }
    return s;
}

// The mask shape as (…, L or 1, S or 1), checked to broadcast to the scores.
Shape check_mask_shape(const Shape& mask, const Shape& scores) {
    Shape ms = mask;
    if (ms.size() < 2) ms.insert(ms.begin(), 2 - ms.size(), 1);  // a scalar or (S,) mask
    bool fits = ms.size() <= scores.size();
    for (std::size_t r = 0; fits && r < ms.size(); ++r) {
        const std::size_t m = ms[ms.size() - 1 - r], o = scores[scores.size() - 1 - r];
        fits = m == o || m == 1;
    }
    if (!fits) {
        throw Error(ErrorKind::Shape, Arg::Mask,
                    "shape " + shape_to_string(mask) + " does not broadcast to the scores " + shape_to_string(scores));
    }
    return ms;
}

// A key padding mask is (batch…, S), its dims aligned with the leading batch dims.
void check_padding_shape(const Shape& ps, const Shape& batch, std::size_t keys) {
    bool fits = !ps.empty() && ps.back() == keys && ps.size() - 1 <= batch.size();
    for (std::size_t d = 0; fits && d + 1 < ps.size(); ++d) fits = ps[d] == batch[d] || ps[d] == 1;
    if (!fits) {
        throw Error(ErrorKind::Shape, Arg::KeyPaddingMask,
                    "expected shape (batch…, S) with leading batch dims of " + shape_to_string(batch) +
                        " and S = " + std::to_string(keys) + ", found " + shape_to_string(ps));
    }
}

void check_key_lengths(const std::vector<std::size_t>& lengths, const Shape& batch, std::size_t keys) {
    if (lengths.empty()) return;
    const std::size_t first = batch.empty() ? 1 : batch[0];
    if (lengths.size() != 1 && lengths.size() != first) {
        throw Error(ErrorKind::Shape, Arg::KeyLengths,
                    "expected 1 or " + std::to_string(first) + " values (the first batch dim), found " +
                        std::to_string(lengths.size()));
    }
    for (std::size_t n : lengths) {
        if (n > keys) {
            throw Error(ErrorKind::Value, Arg::KeyLengths,
                        "length " + std::to_string(n) + " exceeds the number of keys S = " + std::to_string(keys));
        }
    }
}

// The additive form of a mask: bool true -> 0, false -> −inf; floats as they are.
template <class T>
xt::xarray<T> additive(const Tensor& mask, bool true_means_masked) {
    if (mask.dtype() == DType::Bool) {
        const auto& b = mask.values<bool>();
        xt::xarray<T> out = xt::xarray<T>::from_shape(b.shape());
        const T ninf = -std::numeric_limits<T>::infinity();
        for (std::size_t i = 0; i < b.size(); ++i) out.data()[i] = (b.data()[i] != true_means_masked) ? T(0) : ninf;
        return out;
    }
    return mask.cast<T>();  // floating: check_option_values refused any other dtype
}

// Query heads: dim −3 of the output, one head when the output has no batch dims. Per
// head values (slopes, sinks) are laid out against these dims, so a rank-2 problem has
// one head and takes values of shape (1,).
Shape head_dims(const Shape& batch) { return batch.empty() ? Shape{1} : batch; }

// ALiBi slopes (H,) or (batch…, H): dims aligned to the right with the output's batch
// dims, the last one exactly H, the others equal or 1.
void check_slopes_shape(const Shape& slopes, const Shape& batch) {
    const Shape heads = head_dims(batch);
    bool fits = !slopes.empty() && slopes.size() <= heads.size() && slopes.back() == heads.back();
    for (std::size_t r = 1; fits && r < slopes.size(); ++r) {
        const std::size_t d = slopes[slopes.size() - 1 - r];
        fits = d == 1 || d == heads[heads.size() - 1 - r];
    }
    if (!fits) {
        throw Error(ErrorKind::Shape, Arg::AlibiSlopes,
                    "expected shape (H,) or (batch…, H) with H = " + std::to_string(heads.back()) +
                        " query heads and batch dims of " + shape_to_string(heads) + ", found " +
                        shape_to_string(slopes));
    }
}

void check_sinks_shape(const Shape& sinks, const Shape& batch) {
    const std::size_t heads = head_dims(batch).back();
    if (sinks != Shape{heads}) {
        throw Error(
            ErrorKind::Shape, Arg::Sinks,
            "expected shape (" + std::to_string(heads) + ",), one per query head, found " + shape_to_string(sinks));
    }
}

// The values of a per-head tensor for every flat batch index, in float64.
std::vector<double> per_matrix_values(const Tensor& values, const Shape& batch) {
    const Shape heads = head_dims(batch);
    const Shape dims = values.shape();
    const std::vector<std::size_t> offset = matrix_offsets(heads, dims, heads.size() - dims.size(), 1);
    const ValuesAs<double> data(values);
    std::vector<double> out(offset.size());
    for (std::size_t b = 0; b < offset.size(); ++b) out[b] = data.data()[offset[b]];
    return out;
}

void check_finite_values(const Tensor& values, Arg arg) {
    const ValuesAs<double> data(values);
    for (std::size_t i = 0; i < data->size(); ++i) {
        if (!std::isfinite(data.data()[i])) {
            throw Error(
                ErrorKind::Value, arg,
                "expected finite values, found " + std::to_string(data.data()[i]) + " at index " + std::to_string(i));
        }
    }
}

void check_mask_dtype(const Tensor& mask, Arg subject) {
    if (mask.dtype() != DType::Bool && !is_floating(mask.dtype())) {
        throw Error(ErrorKind::Value, subject,
                    "expected a bool or float mask, found " + std::string(dtype_name(mask.dtype())));
    }
}

}  // namespace

void check_option_values(const AttentionOptions& options) {
    if (options.scale && !std::isfinite(*options.scale)) {
        throw Error(ErrorKind::Value, Arg::Scale, "expected a finite number, found " + std::to_string(*options.scale));
    }
    if (options.window && (options.window->left < -1 || options.window->right < -1)) {
        throw Error(ErrorKind::Value, Arg::Window,
                    "expected LEFT,RIGHT each >= -1 (-1: unbounded), found " + std::to_string(options.window->left) +
                        "," + std::to_string(options.window->right));
    }
    if (options.softcap && !(std::isfinite(*options.softcap) && *options.softcap > 0)) {
        throw Error(ErrorKind::Value, Arg::Softcap,
                    "expected a finite number > 0, found " + std::to_string(*options.softcap));
    }
    if (options.alibi && options.alibi_slopes) {
        throw Error(ErrorKind::Usage, Arg::Alibi, "the paper's slopes and given slopes cannot both be used");
    }
    if (options.alibi_slopes) check_finite_values(*options.alibi_slopes, Arg::AlibiSlopes);
    if (options.sinks) check_finite_values(*options.sinks, Arg::Sinks);
    if (options.mask) check_mask_dtype(*options.mask, Arg::Mask);
    if (options.key_padding_mask) check_mask_dtype(*options.key_padding_mask, Arg::KeyPaddingMask);
}

DType compute_dtype(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionOptions& options) {
    switch (options.precision) {
        case Precision::Float32: return DType::Float32;
        case Precision::Float64: return DType::Float64;
        case Precision::Auto: break;
    }
    for (const Tensor* t : {&query, &key, &value}) {
        if (t->dtype() == DType::Float64) return DType::Float64;
    }
    return DType::Float32;
}

Shape check_attention_shapes(const Shape& query, const Shape& key, const Shape& value,
                             const AttentionOptions& options) {
    const Shapes s = check_shapes(query, key, value);
    Shape scores = s.batch;
    scores.push_back(s.L);
    scores.push_back(s.S);
    if (options.mask) check_mask_shape(options.mask->shape(), scores);
    if (options.key_padding_mask) check_padding_shape(options.key_padding_mask->shape(), s.batch, s.S);
    check_key_lengths(options.key_lengths, s.batch, s.S);
    if (options.alibi_slopes) check_slopes_shape(options.alibi_slopes->shape(), s.batch);
    if (options.sinks) check_sinks_shape(options.sinks->shape(), s.batch);
    Shape out = s.batch;
    out.push_back(s.L);
    out.push_back(s.Ev);
    return out;
}

void check_result_memory(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionOptions& options,
                         const ScoreSink* weights, const ScoreSink* logits) {
    const Shape output = check_attention_shapes(query.shape(), key.shape(), value.shape(), options);
    const DType dtype = compute_dtype(query, key, value, options);
    Shape scores = output;
    scores.back() = key.shape()[key.rank() - 2];
    const std::size_t output_bytes = checked_element_count(output, Arg::Output) * dtype_size(dtype);
    const std::size_t weight_bytes = weights ? weights->bytes_to_hold(dtype, scores) : 0;
    const std::size_t logit_bytes = logits ? logits->bytes_to_hold(dtype, scores) : 0;
    std::string what = std::string(dtype_name(dtype)) + " output " + shape_to_string(output);
    Arg subject = Arg::Output;
    if (weight_bytes > 0) what += " + weights " + shape_to_string(scores);
    if (logit_bytes > 0) what += " + logits " + shape_to_string(scores);
    if (logit_bytes > 0) subject = Arg::Logits;
    if (weight_bytes > 0) subject = logit_bytes > 0 ? Arg::WeightsAndLogits : Arg::Weights;
    std::size_t total = output_bytes;
    for (std::size_t part : {weight_bytes, logit_bytes}) {
        if (part > std::numeric_limits<std::size_t>::max() - total) {
            throw Error(ErrorKind::Value, subject, "the " + what + " have too many elements");
        }
        total += part;
    }
    check_memory(total, subject, what);
}

template <class T>
AttentionProblem<T> make_problem(const Tensor& query, const Tensor& key, const Tensor& value,
                                 const AttentionOptions& options) {
    const Shape qs = query.shape(), ks = key.shape(), vs = value.shape();
    check_attention_shapes(qs, ks, vs, options);  // every shape, before any data is converted
    const Shapes s = check_shapes(qs, ks, vs);
    AttentionProblem<T> p;
    p.batch_shape = s.batch;
    p.L = s.L;
    p.S = s.S;
    p.E = s.E;
    p.Ev = s.Ev;
    p.batches = 1;
    for (std::size_t n : s.batch) p.batches *= n;
    const std::size_t nb = s.batch.size();
    p.q_offset = matrix_offsets(s.batch, batch_dims(qs), nb - (qs.size() - 2), s.L * s.E);
    p.k_offset = matrix_offsets(s.batch, batch_dims(ks), nb - (ks.size() - 2), s.S * s.E, true);
    p.v_offset = matrix_offsets(s.batch, batch_dims(vs), nb - (vs.size() - 2), s.S * s.Ev, true);
    p.q.emplace(query);
    p.k.emplace(key);
    p.v.emplace(value);
    check_option_values(options);
    // With E = 0 every logit is the empty sum 0 whatever the scale: PyTorch scales Q and K
    // (empty) before their product, so its weights are uniform. 1/√0 = inf would make the
    // reference's 0 · inf NaN where the fast kernel's empty GEMM gives 0.
    const double default_scale = s.E == 0 ? 1.0 : 1.0 / std::sqrt(static_cast<double>(s.E));
    p.scale = static_cast<T>(options.scale ? *options.scale : default_scale);
    p.causal = options.causal;
    p.window = options.window;
    p.softcap = options.softcap.value_or(0.0);
    if (options.alibi) {
        const std::vector<double> slopes = alibi_slopes(head_dims(s.batch).back());
        p.slope.resize(p.batches);
        for (std::size_t b = 0; b < p.batches; ++b) p.slope[b] = slopes[b % slopes.size()];
    }
    if (options.alibi_slopes) p.slope = per_matrix_values(*options.alibi_slopes, s.batch);
    if (options.sinks) p.sink = per_matrix_values(*options.sinks, s.batch);
    const Shape scores = p.score_shape();

    if (options.mask) {
        const Shape ms = check_mask_shape(options.mask->shape(), scores);
        AdditiveTerm<T> term;
        term.values = additive<T>(*options.mask, false);
        const std::size_t ml = ms[ms.size() - 2], mcols = ms.back();
        term.column_stride = mcols == 1 ? 0 : 1;
        term.row_stride = ml == 1 ? 0 : mcols;
        term.matrix_offset = matrix_offsets(s.batch, batch_dims(ms), nb - (ms.size() - 2), ml * mcols);
        p.terms.push_back(std::move(term));
    }

    if (options.key_padding_mask) {
        const Shape ps = options.key_padding_mask->shape();
        AdditiveTerm<T> term;
        term.values = additive<T>(*options.key_padding_mask, true);
        term.row_stride = 0;
        term.column_stride = 1;
        // Leading alignment: dim d of the mask is batch dim d.
        term.matrix_offset = matrix_offsets(s.batch, Shape(ps.begin(), ps.end() - 1), 0, s.S);
        p.terms.push_back(std::move(term));
    }

    p.key_length.assign(p.batches, s.S);
    if (!options.key_lengths.empty()) {
        const auto& lengths = options.key_lengths;
        const std::size_t first = nb == 0 ? 1 : s.batch[0];
        const std::size_t per_first = first == 0 ? 0 : p.batches / first;
        for (std::size_t b = 0; b < p.batches; ++b) {
            p.key_length[b] = lengths.size() == 1 ? lengths[0] : lengths[b / per_first];
        }
    }
    return p;
}

template AttentionProblem<float> make_problem<float>(const Tensor&, const Tensor&, const Tensor&,
                                                     const AttentionOptions&);
template AttentionProblem<double> make_problem<double>(const Tensor&, const Tensor&, const Tensor&,
                                                       const AttentionOptions&);

}  // namespace attn::detail

namespace attn {

std::vector<double> alibi_slopes(std::size_t heads) {
    if (heads == 0) return {};
    std::size_t n = 1;
    while (n * 2 <= heads) n *= 2;  // the largest power of two not above H
    std::vector<double> slopes;
    for (std::size_t h = 0; h < n; ++h) slopes.push_back(std::exp2(-8.0 * double(h + 1) / double(n)));
    for (std::size_t h = 0; slopes.size() < heads; h += 2) {
        slopes.push_back(std::exp2(-8.0 * double(h + 1) / double(2 * n)));
    }
    return slopes;
}

}  // namespace attn
