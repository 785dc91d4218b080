// Multi-head attention (torch.nn.MultiheadAttention, batch_first=True) on top of
// scaled_dot_product_attention.
#include "attn/mha.hpp"

#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>
#include <string_view>
#include <tuple>
#include <vector>

#include <xtensor/xmanipulation.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xview.hpp>

#include "attention/checks.hpp"
#include "attn/random.hpp"
#include "common/text.hpp"
#include "mha/blas.hpp"

namespace attn {
namespace {

// Rows [begin, begin + count) of a matrix or vector, as a tensor of the same dtype.
Tensor take_rows(const Tensor& t, std::size_t begin, std::size_t count) {
    return t.visit([&](const auto& a) {
        using T = typename std::decay_t<decltype(a)>::value_type;
        return Tensor(xt::xarray<T>(xt::view(a, xt::range(begin, begin + count))));
    });
}

// The tensors stacked along dim 0, in the dtype of the first (float32 for a half type).
Tensor concat_rows(const std::vector<const Tensor*>& parts) {
    return parts.front()->visit([&](const auto& first) {
        using V = typename std::decay_t<decltype(first)>::value_type;
        using T = std::conditional_t<is_half_v<V>, float, V>;
        xt::xarray<T> out = parts.front()->cast<T>();
        for (std::size_t i = 1; i < parts.size(); ++i) out = xt::concatenate(xt::xtuple(out, parts[i]->cast<T>()), 0);
        return Tensor(std::move(out));
    });
}

void expect_shape(const Tensor& t, const Shape& shape, const std::string& subject) {
    if (t.shape() != shape) {
        throw Error(ErrorKind::Shape, subject,
                    "expected shape " + shape_to_string(shape) + ", found " + shape_to_string(t.shape()));
    }
}

// Every parameter of a layer and each name a state_dict may hold it under: the one table
// the loader reads names from (docs/cli.md, "attn-cli mha", lists the same). A new naming
// scheme is one more name in each row it spells. A packed name (in_proj_weight,
// in_proj_bias), first in its rows, spells Q, K and V at once, stacked along dim 0.
enum class Param { QWeight, KWeight, VWeight, QBias, KBias, VBias, OutWeight, OutBias, BiasK, BiasV };

struct ParamNames {
    Param param;
    const char* what;                // as messages name the parameter
    std::vector<const char*> names;  // in order of preference when listed
};

const std::vector<ParamNames>& param_table() {
    static const std::vector<ParamNames> kTable = {
        {Param::QWeight, "query projection weight", {"in_proj_weight", "q_proj_weight", "q_proj.weight"}},
        {Param::KWeight, "key projection weight", {"in_proj_weight", "k_proj_weight", "k_proj.weight"}},
        {Param::VWeight, "value projection weight", {"in_proj_weight", "v_proj_weight", "v_proj.weight"}},
        {Param::QBias, "query projection bias", {"in_proj_bias", "q_proj.bias"}},
        {Param::KBias, "key projection bias", {"in_proj_bias", "k_proj.bias"}},
        {Param::VBias, "value projection bias", {"in_proj_bias", "v_proj.bias"}},
        {Param::OutWeight, "output projection weight", {"out_proj.weight", "o_proj.weight"}},
        {Param::OutBias, "output projection bias", {"out_proj.bias", "o_proj.bias"}},
        {Param::BiasK, "bias_k", {"bias_k"}},
        {Param::BiasV, "bias_v", {"bias_v"}},
    };
    return kTable;
}

const ParamNames& names_of(Param param) {
    for (const ParamNames& row : param_table()) {
        if (row.param == param) return row;
    }
    throw std::logic_error("mha: a parameter missing from the name table");
}

// The names of the Q, K and V projection weights, one alternative per column of the
// table ("in_proj_weight, or q_proj_weight/k_proj_weight/v_proj_weight, or …").
std::string expected_in_proj() {
    const auto& q = names_of(Param::QWeight).names;
    const auto& k = names_of(Param::KWeight).names;
    const auto& v = names_of(Param::VWeight).names;
    std::string text;
    for (std::size_t i = 0; i < q.size(); ++i) {
        const std::string qn = q[i], kn = k[i], vn = v[i];
        text += (i == 0 ? "" : ", or ") + (qn == kn && kn == vn ? qn : qn + "/" + kn + "/" + vn);
    }
    return text;
}

// "out_proj.weight (or o_proj.weight)": every name of one parameter.
std::string expected_one(Param param) {
    const auto& names = names_of(param).names;
    std::string text = names.front();
    for (std::size_t i = 1; i < names.size(); ++i) text += std::string(i == 1 ? " (or " : ", ") + names[i];
    return names.size() > 1 ? text + ")" : text;
}

class StateDict {
public:
    StateDict(const io::NamedTensors& tensors, std::string prefix, std::string source)
        : prefix_(std::move(prefix)), source_(std::move(source)) {
        for (const auto& [name, tensor] : tensors) {
            if (name.compare(0, prefix_.size(), prefix_) == 0) by_name_.emplace(name.substr(prefix_.size()), &tensor);
        }
        // A parameter given under two names is ambiguous: which one PyTorch would load
        // depends on the module, so neither is picked.
        for (const ParamNames& row : param_table()) {
            std::vector<std::string> present;
            for (const char* name : row.names) {
                if (by_name_.count(name) > 0) present.push_back(detail::printable(prefix_ + name));
            }
            if (present.size() < 2) continue;
            std::string listed = present.front();
            for (std::size_t i = 1; i < present.size(); ++i) {
                listed += (i + 1 == present.size() ? " and " : ", ") + present[i];
            }
            throw Error(ErrorKind::Format, source_,
                        "ambiguous weights: " + listed + (present.size() == 2 ? " both" : " all") + " give the " +
                            row.what + "; expected one of them");
        }
    }
    // The name `param` is held under, or nullptr when it is not there.
    const char* name_of(Param param) const {
        for (const char* name : names_of(param).names) {
            if (by_name_.count(name) > 0) return name;
        }
        return nullptr;
    }
    const Tensor* find(Param param) const {
        const char* name = name_of(param);
        return name ? by_name_.at(name) : nullptr;
    }
    std::optional<Tensor> optional(Param param) const {
        const Tensor* t = find(param);
        return t ? std::optional<Tensor>(*t) : std::nullopt;
    }
    std::string subject(const std::string& name) const { return source_ + ": " + detail::printable(prefix_ + name); }
    [[noreturn]] void missing(const std::string& expected) const {
        std::vector<std::string> found;
        for (const auto& [name, tensor] : by_name_) found.push_back(prefix_ + name);
        throw Error(ErrorKind::Format, source_,
                    "expected " + expected + (prefix_.empty() ? "" : " under prefix " + detail::quoted(prefix_)) +
                        "; found: " + detail::join_names(found, "no tensors"));
    }

private:
    std::string prefix_;
    std::string source_;
    std::map<std::string, const Tensor*> by_name_;
};

// Whether `name` is the packed spelling of `param` (the first of its row).
bool is_packed(Param param, const char* name) {
    return name != nullptr && std::string_view(name) == names_of(param).names.front();
}

}  // namespace

MhaWeights mha_weights_from_state_dict(const io::NamedTensors& tensors, const std::string& prefix,
                                       const std::string& source) {
    const StateDict dict(tensors, prefix, source);
    MhaWeights w;
    const char* in_name = dict.name_of(Param::QWeight);
    if (is_packed(Param::QWeight, in_name)) {
        const Tensor* packed = dict.find(Param::QWeight);
        const Shape s = packed->shape();
        if (s.size() != 2 || s[0] != 3 * s[1]) {
            throw Error(ErrorKind::Shape, dict.subject(in_name), "expected shape (3E, E), found " + shape_to_string(s));
        }
        const std::size_t e = s[1];
        w.q_weight = take_rows(*packed, 0, e);
        w.k_weight = take_rows(*packed, e, e);
        w.v_weight = take_rows(*packed, 2 * e, e);
    } else if (in_name && dict.find(Param::KWeight) && dict.find(Param::VWeight)) {
        w.q_weight = *dict.find(Param::QWeight);
        w.k_weight = *dict.find(Param::KWeight);
        w.v_weight = *dict.find(Param::VWeight);
    } else {
        dict.missing(expected_in_proj() + ", and " + expected_one(Param::OutWeight));
    }
    const char* out_name = dict.name_of(Param::OutWeight);
    if (!out_name) dict.missing(expected_one(Param::OutWeight));
    w.out_weight = *dict.find(Param::OutWeight);
    w.out_bias = dict.optional(Param::OutBias);
    w.bias_k = dict.optional(Param::BiasK);
    w.bias_v = dict.optional(Param::BiasV);

    // Shapes: Q (E, E), K/V (Ekv, kdim/vdim), out (E, E), biases to match.
    const std::pair<const Tensor*, std::string> matrices[] = {{&w.q_weight, "query projection"},
                                                              {&w.k_weight, "key projection"},
                                                              {&w.v_weight, "value projection"},
                                                              {&w.out_weight, out_name}};
    for (const auto& [t, name] : matrices) {
        if (t->rank() != 2)
            throw Error(ErrorKind::Shape, source + ": " + name,
                        "expected a matrix, found shape " + shape_to_string(t->shape()));
    }
    const std::size_t e = w.q_weight.shape()[0];
    const std::size_t ekv = w.k_weight.shape()[0];
    expect_shape(w.q_weight, {e, e}, source + ": query projection weight");
    if (w.v_weight.shape()[0] != ekv) {
        throw Error(
            ErrorKind::Shape, source + ": value projection weight",
            "expected " + std::to_string(ekv) + " rows like the key's, found " + shape_to_string(w.v_weight.shape()));
    }
    expect_shape(w.out_weight, {e, e}, dict.subject(out_name));
    const char* q_bias_name = dict.name_of(Param::QBias);
    if (is_packed(Param::QBias, q_bias_name)) {  // every bias at once
        const Tensor& packed_bias = *dict.find(Param::QBias);
        expect_shape(packed_bias, {e + 2 * ekv}, dict.subject(q_bias_name));
        w.q_bias = take_rows(packed_bias, 0, e);
        w.k_bias = take_rows(packed_bias, e, ekv);
        w.v_bias = take_rows(packed_bias, e + ekv, ekv);
    } else {
        w.q_bias = dict.optional(Param::QBias);
        w.k_bias = dict.optional(Param::KBias);
        w.v_bias = dict.optional(Param::VBias);
    }
    if (w.q_bias) expect_shape(*w.q_bias, {e}, source + ": query projection bias");
    if (w.k_bias) expect_shape(*w.k_bias, {ekv}, source + ": key projection bias");
    if (w.v_bias) expect_shape(*w.v_bias, {ekv}, source + ": value projection bias");
    if (w.out_bias) expect_shape(*w.out_bias, {e}, dict.subject(dict.name_of(Param::OutBias)));
    if (w.bias_k.has_value() != w.bias_v.has_value()) dict.missing("both bias_k and bias_v, or neither");
    if (w.bias_k) {
        expect_shape(*w.bias_k, {1, 1, ekv}, dict.subject("bias_k"));
        expect_shape(*w.bias_v, {1, 1, ekv}, dict.subject("bias_v"));
    }
    return w;
}

io::NamedTensors mha_state_dict(const MhaWeights& w) {
    const std::size_t e = w.embed_dim();
    const bool grouped = w.k_weight.shape()[0] != e;
    const bool in_bias_all = w.q_bias && w.k_bias && w.v_bias;
    const bool in_bias_none = !w.q_bias && !w.k_bias && !w.v_bias;
    io::NamedTensors dict;
    if (grouped || !(in_bias_all || in_bias_none)) {  // not a shape torch's module can hold
        const std::pair<const char*, std::pair<const Tensor*, const std::optional<Tensor>*>> linears[] = {
            {"q_proj", {&w.q_weight, &w.q_bias}},
            {"k_proj", {&w.k_weight, &w.k_bias}},
            {"v_proj", {&w.v_weight, &w.v_bias}}};
        for (const auto& [name, parts] : linears) {
            dict.emplace_back(std::string(name) + ".weight", *parts.first);
            if (*parts.second) dict.emplace_back(std::string(name) + ".bias", **parts.second);
        }
    } else {
        if (w.kdim() == e && w.vdim() == e) {
            dict.emplace_back("in_proj_weight", concat_rows({&w.q_weight, &w.k_weight, &w.v_weight}));
        } else {
            dict.emplace_back("q_proj_weight", w.q_weight);
            dict.emplace_back("k_proj_weight", w.k_weight);
            dict.emplace_back("v_proj_weight", w.v_weight);
        }
        if (in_bias_all) dict.emplace_back("in_proj_bias", concat_rows({&*w.q_bias, &*w.k_bias, &*w.v_bias}));
    }
    if (w.bias_k) {
        dict.emplace_back("bias_k", *w.bias_k);
        dict.emplace_back("bias_v", *w.bias_v);
    }
    dict.emplace_back("out_proj.weight", w.out_weight);
    if (w.out_bias) dict.emplace_back("out_proj.bias", *w.out_bias);
    return dict;
}

MhaWeights init_mha_weights(const MhaInit& init, std::uint64_t seed) {
    const std::size_t e = init.embed_dim;
    const std::size_t heads = init.heads;
    const std::size_t kv_heads = init.kv_heads == 0 ? heads : init.kv_heads;
    if (e == 0 || heads == 0 || e % heads != 0) {
        throw Error(
            ErrorKind::Usage, Arg::Heads,
            "embed dim " + std::to_string(e) + " must be a positive multiple of " + std::to_string(heads) + " heads");
    }
    if (heads % kv_heads != 0) {
        throw Error(ErrorKind::Usage, Arg::KvHeads,
                    std::to_string(kv_heads) + " must divide " + std::to_string(heads) + " heads");
    }
    const std::size_t ekv = kv_heads * (e / heads);
    const std::size_t kdim = init.kdim ? init.kdim : e;
    const std::size_t vdim = init.vdim ? init.vdim : e;
    TorchGenerator gen(seed);
    auto matrix = [](std::size_t rows, std::size_t cols) { return xt::xarray<float>::from_shape({rows, cols}); };
    MhaWeights w;
    // NonDynamicallyQuantizableLinear(E, E): kaiming_uniform_(a=√5) on the weight, then a
    // bias draw that MultiheadAttention later overwrites with zeros (it still uses the RNG).
    xt::xarray<float> out = matrix(e, e);
    {
        const double a = std::sqrt(5.0);
        const double gain = std::sqrt(2.0 / (1 + a * a));
        const double bound = std::sqrt(3.0) * (gain / std::sqrt(static_cast<double>(e)));
        gen.fill_uniform(out.data(), out.size(), -bound, bound);
        if (init.bias) {
            std::vector<float> discarded(e);
            const double bias_bound = 1.0 / std::sqrt(static_cast<double>(e));
            gen.fill_uniform(discarded.data(), e, -bias_bound, bias_bound);
        }
    }
    auto xavier_uniform = [&](xt::xarray<float>& m) {
        const double fan_out = static_cast<double>(m.shape()[0]), fan_in = static_cast<double>(m.shape()[1]);
        const double bound = std::sqrt(3.0) * std::sqrt(2.0 / (fan_in + fan_out));
        gen.fill_uniform(m.data(), m.size(), -bound, bound);
    };
    if (kdim == e && vdim == e && ekv == e) {  // one packed (3E, E) in_proj_weight
        xt::xarray<float> packed = matrix(3 * e, e);
        xavier_uniform(packed);
        const Tensor t(std::move(packed));
        w.q_weight = take_rows(t, 0, e);
        w.k_weight = take_rows(t, e, e);
        w.v_weight = take_rows(t, 2 * e, e);
    } else {
        xt::xarray<float> q = matrix(e, e), k = matrix(ekv, kdim), v = matrix(ekv, vdim);
        xavier_uniform(q);
        xavier_uniform(k);
        xavier_uniform(v);
        w.q_weight = Tensor(std::move(q));
        w.k_weight = Tensor(std::move(k));
        w.v_weight = Tensor(std::move(v));
    }
    w.out_weight = Tensor(std::move(out));
    if (init.bias) {
        w.q_bias = Tensor::zeros(DType::Float32, {e});
        w.k_bias = Tensor::zeros(DType::Float32, {ekv});
        w.v_bias = Tensor::zeros(DType::Float32, {ekv});
        w.out_bias = Tensor::zeros(DType::Float32, {e});
    }
    if (init.add_bias_kv) {  // xavier_normal_ on (1, 1, Ekv): fan_in = fan_out = Ekv
        const double std = std::sqrt(2.0 / (2.0 * static_cast<double>(ekv)));
        for (auto* target : {&w.bias_k, &w.bias_v}) {
            xt::xarray<float> b = xt::xarray<float>::from_shape({1, 1, ekv});
            gen.fill_normal(b.data(), b.size(), 0.0, std);
            *target = Tensor(std::move(b));
        }
    }
    return w;
}

namespace {

// y (rows, out) = x (rows, in) · Wᵀ + b, with every BLAS thread.
template <class T>
xt::xarray<T> linear(const T* x, std::size_t rows, std::size_t in, const Tensor& weight,
                     const std::optional<Tensor>& bias) {
    const ValuesAs<T> w(weight);
    const std::size_t out_features = w->shape()[0];
    xt::xarray<T> y = xt::xarray<T>::from_shape({rows, out_features});
    detail::gemm(false, true, rows, out_features, in, T(1), x, in, w.data(), in, T(0), y.data(), out_features);
    if (bias) {
        const ValuesAs<T> b(*bias);
        for (std::size_t r = 0; r < rows; ++r) {
            T* row = y.data() + r * out_features;
            for (std::size_t c = 0; c < out_features; ++c) row[c] += b.data()[c];
        }
    }
    return y;
}

// A mask tensor with `extra` columns appended that hide nothing (bool true, float 0);
// `true_hides` says what a true bool means for this kind of mask.
Tensor pad_columns(const Tensor& mask, std::size_t extra, bool true_hides) {
    if (extra == 0) return mask;
    if (is_half(mask.dtype())) return pad_columns(mask.to(DType::Float32), extra, true_hides);
    return mask.visit([&](const auto& a) -> Tensor {
        using T = typename std::decay_t<decltype(a)>::value_type;
        if constexpr (is_half_v<T>) {
            return Tensor();  // widened above
        } else {
            auto shape = a.shape();
            shape.back() = extra;
            xt::xarray<T> pad(shape, std::is_same_v<T, bool> ? T(!true_hides) : T(0));
            return Tensor(xt::xarray<T>(xt::concatenate(xt::xtuple(a, pad), a.dimension() - 1)));
        }
    });
}

// Combines two masks of the same convention into one (hidden if either hides).
Tensor combine(const Tensor& a, const Tensor& b, bool true_hides) {
    if (a.dtype() == DType::Bool && b.dtype() == DType::Bool) {
        const auto& x = a.values<bool>();
        const auto& y = b.values<bool>();
        if (true_hides) return Tensor(xt::xarray<bool>(x || y));
        return Tensor(xt::xarray<bool>(x && y));
    }
    auto additive = [&](const Tensor& t) -> xt::xarray<double> {
        if (t.dtype() != DType::Bool) return t.cast<double>();
        const auto& m = t.values<bool>();
        const double ninf = -std::numeric_limits<double>::infinity();
        const xt::xarray<bool> hidden = true_hides ? m : xt::xarray<bool>(!m);
        return xt::where(hidden, ninf, 0.0);
    };
    return Tensor(xt::xarray<double>(additive(a) + additive(b)));
}

// The sizes of one call, checked against the layer's weights.
struct MhaDims {
    bool unbatched = false;           // (L, E) input: N = 1, dropped again from every result
    std::size_t n = 0, l = 0, s = 0;  // batch, queries, keys (before any are appended)
    std::size_t e = 0, heads = 0, kv_heads = 0, hd = 0, ekv = 0;
    Shape output_shape() const { return unbatched ? Shape{l, e} : Shape{n, l, e}; }
};

// E, H, the kv heads and the K/V projections' width must fit together.
MhaDims check_heads(const MhaWeights& w, const MhaOptions& options) {
    MhaDims d;
    d.e = w.embed_dim();
    d.heads = options.heads;
    d.kv_heads = options.kv_heads == 0 ? d.heads : options.kv_heads;
    if (d.heads == 0 || d.e % d.heads != 0) {
        throw Error(ErrorKind::Usage, Arg::Heads,
                    "embed dim " + std::to_string(d.e) + " must divide by " + std::to_string(d.heads) + " heads");
    }
    if (d.heads % d.kv_heads != 0) {
        throw Error(ErrorKind::Usage, Arg::KvHeads,
                    std::to_string(d.kv_heads) + " must divide " + std::to_string(d.heads) + " heads");
    }
    d.hd = d.e / d.heads;
    d.ekv = d.kv_heads * d.hd;
    if (w.k_weight.shape()[0] != d.ekv) {
        // Unset, kv_heads is the head count: that is what to change when the weights are GQA.
        throw Error(ErrorKind::Shape, options.kv_heads == 0 ? Subject(Arg::KvHeads) : Subject(Arg::LayerWeights),
                    "key/value projections have " + std::to_string(w.k_weight.shape()[0]) + " outputs; " +
                        std::to_string(d.kv_heads) + " kv heads of " + std::to_string(d.hd) + " need " +
                        std::to_string(d.ekv) + (options.kv_heads == 0 ? " (kv heads default to the heads)" : ""));
    }
    return d;
}

// Q, K and V must be (N, L, E), (N, S, kdim), (N, S, vdim), or all unbatched.
void check_inputs(const Tensor& query, const Tensor& key, const Tensor& value, const MhaWeights& w, MhaDims& d) {
    d.unbatched = query.rank() == 2;
    const Shape qs = query.shape(), ks = key.shape(), vs = value.shape();
    for (auto [shape, name, dim] :
         {std::tuple{&qs, Arg::Query, d.e}, {&ks, Arg::Key, w.kdim()}, {&vs, Arg::Value, w.vdim()}}) {
        if (shape->size() != (d.unbatched ? 2u : 3u) || shape->back() != dim) {
            throw Error(ErrorKind::Shape, name,
                        std::string("expected ") + (d.unbatched ? "(L, " : "(N, L, ") + std::to_string(dim) +
                            ") like the query and the weights, found " + shape_to_string(*shape));
        }
    }
    d.n = d.unbatched ? 1 : qs[0];
    d.l = qs[qs.size() - 2];
    d.s = ks[ks.size() - 2];
    if ((!d.unbatched && (ks[0] != d.n || vs[0] != d.n)) || vs[vs.size() - 2] != d.s) {
        throw Error(ErrorKind::Shape, Arg::KeyValue,
                    "batch and length must agree: query " + shape_to_string(qs) + ", key " + shape_to_string(ks) +
                        ", value " + shape_to_string(vs));
    }
}

// Q projected (N·L, E); K and V projected (N, S + extra, Ekv), with bias_k/bias_v and
// the zero key of add_zero_attn appended after the S real keys.
template <class T>
struct Projected {
    xt::xarray<T> q, k, v;
    std::size_t extra = 0;  // key columns appended after the S real ones
};

template <class T>
void append_key(Projected<T>& p, const xt::xarray<T>& key, const xt::xarray<T>& value) {
    p.k = xt::concatenate(xt::xtuple(p.k, key), 1);
    p.v = xt::concatenate(xt::xtuple(p.v, value), 1);
    ++p.extra;
}

template <class T>
Projected<T> project_inputs(const Tensor& query, const Tensor& key, const Tensor& value, const MhaWeights& w,
                            bool add_zero_attn, const MhaDims& d) {
    const ValuesAs<T> q_in(query), k_in(key), v_in(value);
    Projected<T> p;
    p.q = linear<T>(q_in.data(), d.n * d.l, d.e, w.q_weight, w.q_bias);
    p.k = linear<T>(k_in.data(), d.n * d.s, w.kdim(), w.k_weight, w.k_bias);
    p.v = linear<T>(v_in.data(), d.n * d.s, w.vdim(), w.v_weight, w.v_bias);
    p.k.reshape({d.n, d.s, d.ekv});
    p.v.reshape({d.n, d.s, d.ekv});
    const std::vector<std::size_t> one_key{d.n, std::size_t(1), d.ekv};
    if (w.bias_k) {
        append_key<T>(p, xt::broadcast(w.bias_k->cast<T>(), one_key), xt::broadcast(w.bias_v->cast<T>(), one_key));
    }
    if (add_zero_attn) {
        const xt::xarray<T> zeros = xt::zeros<T>(one_key);
        append_key(p, zeros, zeros);
    }
    return p;
}

// (N, len, h·hd) -> (N, h, len, hd)
template <class T>
Tensor split_heads(const xt::xarray<T>& x, const MhaDims& d, std::size_t len, std::size_t h) {
    return Tensor(xt::xarray<T>(xt::transpose(xt::reshape_view(x, {d.n, len, h, d.hd}), {0, 2, 1, 3})));
}

// The same elements in a new shape.
Tensor reshaped(const Tensor& t, const Shape& shape) {
    return t.visit([&](const auto& a) {
        using M = typename std::decay_t<decltype(a)>::value_type;
        return Tensor(xt::xarray<M>(xt::reshape_view(a, shape)));
    });
}

// PyTorch's attn_mask shapes in the kernel's terms: (N·H, L, S), or (H, L, S) for
// unbatched input, becomes (N, H, L, S); other shapes broadcast as they are.
Tensor head_mask(const Tensor& given, const MhaDims& d) {
    Tensor mask = given;
    const Shape ms = mask.shape();
    if (ms.size() == 3 && ms[0] == d.n * d.heads && d.n * d.heads != 1) {  // PyTorch's (N·H, L, S)
        mask = reshaped(mask, {d.n, d.heads, ms[1], ms[2]});
    }
    if (d.unbatched && mask.rank() == 3 && mask.shape()[0] == d.heads) {
        mask = reshaped(mask, {std::size_t(1), d.heads, ms[1], ms[2]});
    }
    if (mask.rank() >= 1 && mask.shape().back() != d.s) {
        throw Error(ErrorKind::Shape, Arg::Mask,
                    "last dim must be S = " + std::to_string(d.s) + ", found shape " + shape_to_string(ms));
    }
    return mask;
}

// The key padding mask must be (N, S), or (S) for unbatched input; it becomes (N, S).
Tensor batched_key_padding(const Tensor& padding, const MhaDims& d) {
    const Shape ps = padding.shape();
    const Shape want = d.unbatched ? Shape{d.s} : Shape{d.n, d.s};
    if (ps != want)
        throw Error(ErrorKind::Shape, Arg::KeyPaddingMask,
                    "expected shape " + shape_to_string(want) + ", found " + shape_to_string(ps));
    return d.unbatched ? reshaped(padding, {std::size_t(1), d.s}) : padding;
}

// Key lengths as a bool key padding mask (N, S), true past each length.
Tensor lengths_as_padding(const std::vector<std::size_t>& lengths, const MhaDims& d) {
    if (lengths.size() != 1 && lengths.size() != d.n) {
        throw Error(ErrorKind::Shape, Arg::KeyLengths,
                    "expected 1 or " + std::to_string(d.n) + " values, found " + std::to_string(lengths.size()));
    }
    xt::xarray<bool> padding = xt::xarray<bool>::from_shape({d.n, d.s});
    for (std::size_t b = 0; b < d.n; ++b) {
        const std::size_t len = lengths.size() == 1 ? lengths[0] : lengths[b];
        if (len > d.s)
            throw Error(ErrorKind::Value, Arg::KeyLengths,
                        "length " + std::to_string(len) + " exceeds S = " + std::to_string(d.s));
        for (std::size_t j = 0; j < d.s; ++j) padding(b, j) = j >= len;
    }
    return Tensor(std::move(padding));
}

// The causal rule as a bool mask (L, S), true where a query may attend.
Tensor causal_as_mask(Causal causal, const MhaDims& d) {
    xt::xarray<bool> allowed = xt::xarray<bool>::from_shape({d.l, d.s});
    for (std::size_t i = 0; i < d.l; ++i) {
        for (std::size_t j = 0; j < d.s; ++j) allowed(i, j) = causal == Causal::TopLeft ? j <= i : j + d.l <= i + d.s;
    }
    return Tensor(std::move(allowed));
}

// The appended keys are always visible (PyTorch pads attn_mask and key_padding_mask with
// zero columns). The kernel's rules are prefixes of the keys and would hide them, and it
// has no way to exempt trailing keys, so here the causal rule and key lengths become
// explicit masks over the S real keys, and the kernel computes the keys they hide.
void keep_appended_keys_visible(AttentionOptions& a, const MhaDims& d, std::size_t extra) {
    if (!a.key_lengths.empty()) {
        const Tensor lengths_mask = lengths_as_padding(a.key_lengths, d);
        a.key_padding_mask = a.key_padding_mask ? combine(*a.key_padding_mask, lengths_mask, true) : lengths_mask;
        a.key_lengths.clear();
    }
    if (a.causal != Causal::None) {
        const Tensor causal_mask = causal_as_mask(a.causal, d);
        a.mask = a.mask ? combine(*a.mask, causal_mask, false) : causal_mask;
        a.causal = Causal::None;
    }
    if (a.mask) a.mask = pad_columns(*a.mask, extra, false);
    if (a.key_padding_mask) a.key_padding_mask = pad_columns(*a.key_padding_mask, extra, true);
}

// The kernel's options for the heads: masks in (N, H, L, S) terms, the compute dtype.
AttentionOptions head_options(const AttentionOptions& given, const MhaDims& d, std::size_t extra, DType dtype) {
    AttentionOptions a = given;
    if (a.mask) a.mask = head_mask(*a.mask, d);
    if (a.key_padding_mask) a.key_padding_mask = batched_key_padding(*a.key_padding_mask, d);
    if (extra > 0) keep_appended_keys_visible(a, d, extra);
    a.precision = dtype == DType::Float64 ? Precision::Float64 : Precision::Float32;
    return a;
}

// A sink that passes every row on, unchanged, to another (rows_to()).
class RowsPassedOn : public ScoreSink {
public:
    void write_rows(std::size_t matrix, std::size_t row_begin, std::size_t row_count, const float* values) final {
        rows_to().write_rows(matrix, row_begin, row_count, values);
    }
    void write_rows(std::size_t matrix, std::size_t row_begin, std::size_t row_count, const double* values) final {
        rows_to().write_rows(matrix, row_begin, row_count, values);
    }

protected:
    virtual ScoreSink& rows_to() = 0;
};

// Passes the kernel's (1, H, L, S) scores of unbatched input on as (H, L, S). The flat
// matrix index over (1, H) is the one over (H), so rows go through unchanged.
class UnbatchedSink final : public RowsPassedOn {
public:
    explicit UnbatchedSink(ScoreSink& target) : target_(target) {}
    void begin(DType dtype, const Shape& shape) override { target_.begin(dtype, without_batch(shape)); }
    void cancel() noexcept override { target_.cancel(); }
    std::size_t bytes_to_hold(DType dtype, const Shape& shape) const override {
        return target_.bytes_to_hold(dtype, without_batch(shape));
    }

private:
    ScoreSink& rows_to() override { return target_; }
    static Shape without_batch(const Shape& shape) { return Shape(shape.begin() + 1, shape.end()); }
    ScoreSink& target_;
};

// Collects the per-head weights (N, H, L, S) and, once every head is done (finish()),
// hands their mean over the heads to the target: (N, L, S), or (L, S) for unbatched
// input, one whole matrix per batch index. The mean needs all heads of a row, which the
// kernel computes in different tasks, so the per-head weights are held whole.
class HeadAverageSink final : public RowsPassedOn {
public:
    HeadAverageSink(ScoreSink& target, bool unbatched) : target_(target), unbatched_(unbatched) {}
    void begin(DType dtype, const Shape& shape) override {
        heads_.begin(dtype, shape);
        target_.begin(dtype, averaged(shape));  // before the kernel: a file refused now costs no work
    }
    void cancel() noexcept override { target_.cancel(); }
    std::size_t bytes_to_hold(DType dtype, const Shape& shape) const override {
        const std::size_t held = heads_.bytes_to_hold(dtype, shape);
        const std::size_t passed_on = target_.bytes_to_hold(dtype, averaged(shape));
        return passed_on > std::numeric_limits<std::size_t>::max() - held ? std::numeric_limits<std::size_t>::max()
                                                                          : held + passed_on;
    }
    void finish() {
        if (heads_.tensor().dtype() == DType::Float64) {
            hand_over<double>();
        } else {
            hand_over<float>();
        }
    }

private:
    ScoreSink& rows_to() override { return heads_; }
    Shape averaged(const Shape& shape) const {  // (N, H, L, S) -> (N, L, S) or (L, S)
        return unbatched_ ? Shape{shape[2], shape[3]} : Shape{shape[0], shape[2], shape[3]};
    }
    template <class T>
    void hand_over() {
        const xt::xarray<T>& all = heads_.tensor().values<T>();
        const std::size_t rows = all.shape()[2];
        for (std::size_t b = 0; b < all.shape()[0]; ++b) {
            const xt::xarray<T> mean = xt::mean(xt::view(all, b), {0});
            target_.write_rows(b, 0, rows, mean.data());
        }
    }

    TensorScoreSink heads_;
    ScoreSink& target_;
    bool unbatched_;
};

// Runs the kernel once on every head. Weights and logits go to the caller's sinks as the
// rows come, through the adapters the unbatched shape and the head average need.
Tensor attend_heads(const Tensor& qh, const Tensor& kh, const Tensor& vh, const AttentionOptions& attention,
                    const MhaDims& d, bool average_heads, ScoreSink* weights, ScoreSink* logits, Tensor* lse) {
    std::optional<HeadAverageSink> average;
    std::optional<UnbatchedSink> unbatched_weights, unbatched_logits;
    auto adapt = [&](ScoreSink* sink, std::optional<UnbatchedSink>& unbatched) -> ScoreSink* {
        if (!sink || !d.unbatched) return sink;
        return &unbatched.emplace(*sink);
    };
    ScoreSink* to_weights =
        weights && average_heads ? &average.emplace(*weights, d.unbatched) : adapt(weights, unbatched_weights);
    ScoreSink* to_logits = adapt(logits, unbatched_logits);
    Tensor out = scaled_dot_product_attention(qh, kh, vh, attention, to_weights, to_logits, lse);
    if (average) average->finish();
    if (lse && d.unbatched) {  // (1, H, L) -> (H, L)
        *lse = lse->visit([&](const auto& a) {
            using T = typename std::decay_t<decltype(a)>::value_type;
            return Tensor(xt::xarray<T>(xt::reshape_view(a, {d.heads, d.l})));
        });
    }
    return out;
}

// (N, H, L, hd) -> (N·L, E), then the output projection.
template <class T>
Tensor merge_heads(const Tensor& heads_out, const MhaWeights& w, const MhaDims& d) {
    const xt::xarray<T> merged = xt::transpose(heads_out.values<T>(), {0, 2, 1, 3});
    xt::xarray<T> out = linear<T>(merged.data(), d.n * d.l, d.e, w.out_weight, w.out_bias);
    out.reshape(d.output_shape());
    return Tensor(std::move(out));
}

template <class T>
Tensor compute(const Tensor& query, const Tensor& key, const Tensor& value, const MhaWeights& w,
               const MhaOptions& options, ScoreSink* weights, ScoreSink* logits, Tensor* lse) {
    MhaDims d = check_heads(w, options);
    check_inputs(query, key, value, w, d);
    const detail::BlasThreads blas_threads(options.attention.threads);
    const Projected<T> p = project_inputs<T>(query, key, value, w, options.add_zero_attn, d);
    const std::size_t s_all = d.s + p.extra;
    const Tensor qh = split_heads(p.q, d, d.l, d.heads);
    const Tensor kh = split_heads(p.k, d, s_all, d.kv_heads);
    const Tensor vh = split_heads(p.v, d, s_all, d.kv_heads);
    const AttentionOptions attention = head_options(options.attention, d, p.extra, dtype_of<T>::value);
    const Tensor heads_out = attend_heads(qh, kh, vh, attention, d, options.average_heads, weights, logits, lse);
    return merge_heads<T>(heads_out, w, d);
}

// Precision::Auto: float64 when any input is, the layer's weights included
// (docs/cli.md, "--dtype"), else float32.
DType compute_dtype(const Tensor& query, const Tensor& key, const Tensor& value, const MhaWeights& w,
                    const AttentionOptions& options) {
    const DType inputs = detail::compute_dtype(query, key, value, options);
    if (options.precision != Precision::Auto || inputs == DType::Float64) return inputs;
    const std::optional<Tensor>* optional_weights[] = {&w.q_bias,   &w.k_bias, &w.v_bias,
                                                       &w.out_bias, &w.bias_k, &w.bias_v};
    for (const Tensor* t : {&w.q_weight, &w.k_weight, &w.v_weight, &w.out_weight}) {
        if (t->dtype() == DType::Float64) return DType::Float64;
    }
    for (const std::optional<Tensor>* t : optional_weights) {
        if (*t && (*t)->dtype() == DType::Float64) return DType::Float64;
    }
    return DType::Float32;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias, int threads) {
    const Shape xs = x.shape(), ws = weight.shape();
    if (xs.empty() || ws.size() != 2 || ws[1] != xs.back()) {
        throw Error(ErrorKind::Shape, "linear",
                    "input " + shape_to_string(xs) + " does not fit weight " + shape_to_string(ws) +
                        " (expected (…, in) and (out, in))");
    }
    if (bias && bias->shape() != Shape{ws[0]}) {
        throw Error(ErrorKind::Shape, "linear",
                    "bias " + shape_to_string(bias->shape()) + " does not fit weight " + shape_to_string(ws));
    }
    const detail::BlasThreads blas_threads(threads);
    Shape ys = xs;
    ys.back() = ws[0];
    const std::size_t rows = xs.back() == 0 ? 0 : x.size() / xs.back();
    auto run = [&](auto tag) {
        using T = decltype(tag);
        const ValuesAs<T> input(x);
        xt::xarray<T> y = linear<T>(input.data(), rows, xs.back(), weight, bias);
        y.reshape(ys);
        return Tensor(std::move(y));
    };
    if (x.dtype() == DType::Float64 || weight.dtype() == DType::Float64) return run(double{});
    return run(float{});
}

MhaResult multi_head_attention(const Tensor& query, const Tensor& key, const Tensor& value, const MhaWeights& layer,
                               const MhaOptions& options, ScoreSink* weights, ScoreSink* logits, Tensor* lse) {
    if (query.rank() != 2 && query.rank() != 3) {
        throw Error(ErrorKind::Shape, Arg::Query,
                    "expected (N, L, E) or unbatched (L, E), found " + shape_to_string(query.shape()));
    }
    if (compute_dtype(query, key, value, layer, options.attention) == DType::Float64) {
        return {compute<double>(query, key, value, layer, options, weights, logits, lse)};
    }
    return {compute<float>(query, key, value, layer, options, weights, logits, lse)};
}

}  // namespace attn
