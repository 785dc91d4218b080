// libFuzzer harness: shape and mask validation, and the kernel against the reference.
//
// The fuzz bytes choose the shapes and dtypes of Q, K and V, a mask, a key padding mask,
// key lengths, the causal rule, the variants (window, soft-cap, ALiBi, slopes, sinks),
// the scale and the precision: mostly shapes that fit
// together (broadcast batch dims, grouped-query heads), then some dims changed at random,
// huge ones included (a tensor with a zero dim holds no data whatever its other dims).
// attention_output_shape must accept or throw attn::Error, and when it refuses, so must
// both kernels. When it accepts and the problem is tiny, scaled_dot_product_attention
// and reference_attention both run: they must throw the same kind of attn::Error or both
// return that shape, with outputs, weights, logits and log-sum-exps that agree within a
// tolerance.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "attn/attention.hpp"
#include "fuzz_support.hpp"

namespace {

using namespace attn;

// Elements any one tensor may hold, and the largest problem run through both kernels.
constexpr std::size_t kMaxElements = 4096;
constexpr std::size_t kMaxBatches = 64;
constexpr std::size_t kMaxRows = 16;

// Dims a mutation may put anywhere; the large ones are only constructible beside a zero.
constexpr std::array<std::size_t, 10> kOddDims = {
    0, 1, 2, 3, 5, 7, 65536, std::size_t{1} << 32, std::size_t{1} << 62, std::numeric_limits<std::size_t>::max()};

std::size_t small_dim(FuzzedDataProvider& in, std::size_t most = 4) {
    return in.ConsumeIntegralInRange<std::size_t>(0, most);
}

// Some of a shape's dims replaced by odd ones, or the shape cut or grown.
void mutate(FuzzedDataProvider& in, Shape& shape) {
    const int what = in.ConsumeIntegralInRange(0, 15);
    if (what == 0 && !shape.empty()) {
        shape[in.ConsumeIntegralInRange<std::size_t>(0, shape.size() - 1)] = in.PickValueInArray(kOddDims);
    } else if (what == 1 && !shape.empty()) {
        shape.erase(shape.begin());
    } else if (what == 2) {
        shape.insert(shape.begin(), small_dim(in));
    } else if (what == 3 && !shape.empty()) {
        shape[in.ConsumeIntegralInRange<std::size_t>(0, shape.size() - 1)] = small_dim(in, 6);
    }
}

// A tensor of `dtype` and `shape` with small values from the fuzz bytes: finite floats
// in [-2, 2] (a float mask may also hold -inf), integers in [-8, 7] ([0, 7] unsigned),
// bools: small enough that float32 logits cannot overflow where float64 ones do not.
std::optional<Tensor> make_tensor(FuzzedDataProvider& in, DType dtype, const Shape& shape, bool mask_values) {
    std::size_t count = 0;
    if (!fuzz::attempt([&] { count = checked_element_count(shape, "fuzz"); }) || count > kMaxElements) {
        return std::nullopt;
    }
    Tensor tensor = Tensor::zeros(dtype, shape);
    tensor.visit([&](auto& a) {
        using T = typename std::decay_t<decltype(a)>::value_type;
        for (std::size_t i = 0; i < a.size(); ++i) {
            const auto byte = in.ConsumeIntegral<std::uint8_t>();
            if constexpr (std::is_same_v<T, bool>) {
                a.data()[i] = (byte & 1) != 0;
            } else if constexpr (std::is_floating_point_v<T>) {
                a.data()[i] = mask_values && byte >= 240 ? -std::numeric_limits<T>::infinity()
                                                         : static_cast<T>((int(byte) - 128) / 64.0);
            } else if constexpr (std::is_unsigned_v<T>) {
                a.data()[i] = static_cast<T>(byte % 8);  // not -1 wrapped to 2^64 - 1
            } else {
                a.data()[i] = static_cast<T>(int(byte % 16) - 8);
            }
        }
    });
    return tensor;
}

DType input_dtype(FuzzedDataProvider& in) {
    const int pick = in.ConsumeIntegralInRange(0, 15);
    if (pick < 7) return DType::Float32;
    if (pick < 14) return DType::Float64;
    return static_cast<DType>(in.ConsumeIntegralInRange(0, 10));  // any, ints and bool too
}

DType mask_dtype(FuzzedDataProvider& in) {
    const int pick = in.ConsumeIntegralInRange(0, 15);
    if (pick < 7) return DType::Bool;
    if (pick < 11) return DType::Float32;
    if (pick < 14) return DType::Float64;
    return static_cast<DType>(in.ConsumeIntegralInRange(0, 10));
}

// Batch dims of an input: the output's, with leading dims dropped, some set to 1, and
// the last one (the head dim) possibly a divisor (grouped-query key/value heads).
Shape input_batch(FuzzedDataProvider& in, const Shape& batch, bool may_group) {
    Shape b(batch.begin() + static_cast<std::ptrdiff_t>(in.ConsumeIntegralInRange<std::size_t>(0, batch.size())),
            batch.end());
    for (std::size_t& d : b) {
        if (in.ConsumeIntegralInRange(0, 7) == 0) d = 1;
    }
    if (may_group && !b.empty() && b.back() > 1 && in.ConsumeBool()) {
        const std::size_t heads = b.back();
        std::size_t divisor = in.ConsumeIntegralInRange<std::size_t>(1, heads);
        while (heads % divisor != 0) --divisor;
        b.back() = divisor;
    }
    return b;
}

Shape append(Shape shape, std::size_t a, std::size_t b) {
    shape.push_back(a);
    shape.push_back(b);
    return shape;
}

bool close(double x, double y, double tolerance) {
    if (std::isnan(x) || std::isnan(y)) return std::isnan(x) && std::isnan(y);
    if (std::isinf(x) || std::isinf(y)) return x == y;
    return std::abs(x - y) <= tolerance * (1 + std::max(std::abs(x), std::abs(y)));
}

bool verbose() {
    static const bool set = std::getenv("ATTN_FUZZ_VERBOSE") != nullptr;
    return set;
}

bool all_close(const Tensor& a, const Tensor& b, double tolerance) {
    if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
    const auto x = a.cast<double>(), y = b.cast<double>();
    for (std::size_t i = 0; i < x.size(); ++i) {
        if (!close(x.data()[i], y.data()[i], tolerance)) {
            if (verbose()) std::fprintf(stderr, "element %zu: %.17g against %.17g\n", i, x.data()[i], y.data()[i]);
            return false;
        }
    }
    return true;
}

// With ATTN_FUZZ_VERBOSE set, the problem is printed before it runs: what a regression
// test needs to rebuild it from a crashing input.
void describe(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options) {
    if (!verbose()) return;
    auto tensor_text = [](const Tensor& t) {
        return std::string(dtype_name(t.dtype())) + " " + shape_to_string(t.shape());
    };
    std::string lengths;
    for (std::size_t n : options.key_lengths) lengths += std::to_string(n) + " ";
    std::fprintf(stderr,
                 "q %s, k %s, v %s, mask %s, key padding %s, key lengths [%s], causal %d, precision %d, scale %s\n",
                 tensor_text(q).c_str(), tensor_text(k).c_str(), tensor_text(v).c_str(),
                 options.mask ? tensor_text(*options.mask).c_str() : "none",
                 options.key_padding_mask ? tensor_text(*options.key_padding_mask).c_str() : "none", lengths.c_str(),
                 static_cast<int>(options.causal), static_cast<int>(options.precision),
                 options.scale ? std::to_string(*options.scale).c_str() : "default");
}

struct Outcome {
    std::optional<ErrorKind> error;
    Tensor output;
    TensorScoreSink weights, logits;
};

template <class F>
Outcome run(F&& attention) {
    Outcome outcome;
    try {
        outcome.output = attention(&outcome.weights, &outcome.logits);
    } catch (const Error& e) {
        outcome.error = e.kind();
    }
    return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);

    // The problem as it would fit together...
    Shape batch(in.ConsumeIntegralInRange<std::size_t>(0, 3));
    for (std::size_t& d : batch) d = small_dim(in);
    const std::size_t L = small_dim(in, 5), S = small_dim(in, 5), E = small_dim(in, 5), Ev = small_dim(in, 5);
    Shape qs = append(input_batch(in, batch, false), L, E);
    Shape ks = append(input_batch(in, batch, true), S, E);
    Shape vs = append(input_batch(in, batch, true), S, Ev);
    // ...then bent.
    mutate(in, qs);
    mutate(in, ks);
    mutate(in, vs);

    AttentionOptions options;
    options.threads = 1;
    options.causal = static_cast<Causal>(in.ConsumeIntegralInRange(0, 2));
    options.precision = static_cast<Precision>(in.ConsumeIntegralInRange(0, 2));
    switch (in.ConsumeIntegralInRange(0, 7)) {
        case 0: options.scale = (in.ConsumeIntegral<std::uint8_t>() - 128) / 32.0; break;
        case 1: options.scale = std::numeric_limits<double>::quiet_NaN(); break;
        case 2: options.scale = 0.0; break;
        default: break;
    }
    std::optional<Shape> mask_shape, padding_shape;
    DType mask_type = DType::Bool, padding_type = DType::Bool;
    if (in.ConsumeBool()) {
        // (batch…, L, S) with leading dims dropped and some dims broadcast.
        Shape m = append(batch, L, S);
        m.erase(m.begin(),
                m.begin() + static_cast<std::ptrdiff_t>(in.ConsumeIntegralInRange<std::size_t>(0, m.size())));
        for (std::size_t& d : m) {
            if (in.ConsumeIntegralInRange(0, 3) == 0) d = 1;
        }
        mutate(in, m);
        mask_shape = m;
        mask_type = mask_dtype(in);
    }
    if (in.ConsumeBool()) {
        // (batch…, S) with trailing batch dims dropped.
        Shape p(batch.begin(),
                batch.begin() + static_cast<std::ptrdiff_t>(in.ConsumeIntegralInRange<std::size_t>(0, batch.size())));
        for (std::size_t& d : p) {
            if (in.ConsumeIntegralInRange(0, 3) == 0) d = 1;
        }
        p.push_back(S);
        mutate(in, p);
        padding_shape = p;
        padding_type = mask_dtype(in);
    }
    if (in.ConsumeBool()) {
        std::size_t count = batch.empty() || in.ConsumeIntegralInRange(0, 3) == 0 ? 1 : batch.front();
        if (in.ConsumeIntegralInRange(0, 7) == 0) count = small_dim(in, 6);
        for (std::size_t i = 0; i < count; ++i) options.key_lengths.push_back(small_dim(in, S + 1));
    }
    // The variants: a window (bounds below -1 are errors), a soft-cap (0 and NaN are
    // errors), ALiBi with the paper's slopes or given ones (both at once is an error), and
    // sinks, the per-head tensors of (H,) shape or bent.
    if (in.ConsumeBool()) {
        options.window = Window{in.ConsumeIntegralInRange<std::int64_t>(-2, 6), in.ConsumeIntegralInRange<std::int64_t>(-2, 6)};
    }
    switch (in.ConsumeIntegralInRange(0, 7)) {
        case 0: options.softcap = in.ConsumeIntegralInRange(1, 64) / 8.0; break;
        case 1: options.softcap = in.ConsumeBool() ? 0.0 : std::numeric_limits<double>::quiet_NaN(); break;
        default: break;
    }
    options.alibi = in.ConsumeIntegralInRange(0, 3) == 0;
    const std::size_t heads = batch.empty() ? 1 : batch.back();
    std::optional<Shape> slopes_shape, sinks_shape;
    if (in.ConsumeIntegralInRange(0, 3) == 0) {
        Shape h{heads};
        mutate(in, h);
        slopes_shape = h;
    }
    if (in.ConsumeIntegralInRange(0, 3) == 0) {
        Shape h{heads};
        mutate(in, h);
        sinks_shape = h;
    }
    const DType q_type = input_dtype(in), k_type = input_dtype(in), v_type = input_dtype(in);

    const std::optional<Tensor> q = make_tensor(in, q_type, qs, false);
    const std::optional<Tensor> k = make_tensor(in, k_type, ks, false);
    const std::optional<Tensor> v = make_tensor(in, v_type, vs, false);
    if (!q || !k || !v) return 0;
    if (mask_shape) {
        std::optional<Tensor> mask = make_tensor(in, mask_type, *mask_shape, true);
        if (!mask) return 0;
        options.mask = std::move(*mask);
    }
    if (padding_shape) {
        std::optional<Tensor> padding = make_tensor(in, padding_type, *padding_shape, true);
        if (!padding) return 0;
        options.key_padding_mask = std::move(*padding);
    }
    for (auto [shape, target] : {std::pair{&slopes_shape, &options.alibi_slopes}, {&sinks_shape, &options.sinks}}) {
        if (!*shape) continue;
        std::optional<Tensor> values = make_tensor(in, DType::Float32, **shape, false);
        if (!values) return 0;
        *target = std::move(*values);
    }

    describe(*q, *k, *v, options);
    Shape out_shape;
    if (!fuzz::attempt([&] { out_shape = attention_output_shape(*q, *k, *v, options); })) {
        // The kernels check the same shapes before they allocate anything.
        ATTN_FUZZ_CHECK(!fuzz::attempt([&] { scaled_dot_product_attention(*q, *k, *v, options); }));
        ATTN_FUZZ_CHECK(!fuzz::attempt([&] { reference_attention(*q, *k, *v, options); }));
        return 0;
    }
    ATTN_FUZZ_CHECK(out_shape.size() >= 2);

    // Only tiny problems go through the kernels.
    std::size_t batches = 1;
    for (std::size_t i = 0; i + 2 < out_shape.size(); ++i) {
        if (out_shape[i] > kMaxBatches) return 0;
        batches *= out_shape[i];
    }
    const std::size_t rows = out_shape[out_shape.size() - 2];
    const std::size_t keys = k->shape()[k->rank() - 2];
    if (batches > kMaxBatches || rows > kMaxRows || keys > kMaxRows || out_shape.back() > kMaxRows) return 0;

    Outcome fast =
        run([&](ScoreSink* w, ScoreSink* l) { return scaled_dot_product_attention(*q, *k, *v, options, w, l); });
    Outcome plain = run([&](ScoreSink* w, ScoreSink* l) { return reference_attention(*q, *k, *v, options, w, l); });
    ATTN_FUZZ_CHECK(fast.error.has_value() == plain.error.has_value());
    if (fast.error) {
        ATTN_FUZZ_CHECK(*fast.error == *plain.error);
        ATTN_FUZZ_CHECK(*fast.error != ErrorKind::Shape);  // attention_output_shape checked the shapes
        return 0;
    }
    ATTN_FUZZ_CHECK(fast.output.shape() == out_shape);
    ATTN_FUZZ_CHECK(plain.output.shape() == out_shape);
    Shape score_shape(out_shape.begin(), out_shape.end() - 1);
    score_shape.push_back(keys);
    ATTN_FUZZ_CHECK(fast.weights.tensor().shape() == score_shape);
    ATTN_FUZZ_CHECK(fast.logits.tensor().shape() == score_shape);

    const double tolerance = fast.output.dtype() == DType::Float64 ? 1e-9 : 2e-4;
    ATTN_FUZZ_CHECK(all_close(fast.output, plain.output, tolerance));
    ATTN_FUZZ_CHECK(all_close(fast.weights.tensor(), plain.weights.tensor(), tolerance));
    ATTN_FUZZ_CHECK(all_close(fast.logits.tensor(), plain.logits.tensor(), tolerance));
    Tensor fast_lse, plain_lse;
    ATTN_FUZZ_CHECK(fuzz::attempt([&] { scaled_dot_product_attention(*q, *k, *v, options, nullptr, nullptr, &fast_lse); }));
    ATTN_FUZZ_CHECK(fuzz::attempt([&] { reference_attention(*q, *k, *v, options, nullptr, nullptr, &plain_lse); }));
    ATTN_FUZZ_CHECK(all_close(fast_lse, plain_lse, tolerance * 10));
    return 0;
}
