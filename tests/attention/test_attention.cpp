// scaled_dot_product_attention: semantics on hand-checkable inputs, and the fast kernel
// against the plain reference on random shapes across tile edges.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include <xtensor/xview.hpp>

#include "attention/run_both.hpp"
#include "attn/attention.hpp"
#include "attn/io.hpp"
#include "attn/random.hpp"
#include "test_support.hpp"

using namespace attn;
using attn::test::normal;
using attn::test::Run;
using attn::test::run;
using attn::test::run_both;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

}  // namespace

TEST_CASE("sdpa: identical keys give uniform weights and the mean of the values") {
    const Tensor q = normal({1, 3, 4}, 1);
    const Tensor k(xt::xarray<float>(xt::ones<float>({1, 5, 4})));
    const Tensor v = normal({1, 5, 2}, 2);
    const Run r = run_both(q, k, v, {});
    const auto& w = r.weights.values<float>();
    for (std::size_t i = 0; i < w.size(); ++i) CHECK(w.data()[i] == doctest::Approx(0.2));
    const auto& vv = v.values<float>();
    for (std::size_t c = 0; c < 2; ++c) {
        double mean = 0;
        for (std::size_t j = 0; j < 5; ++j) mean += vv(0, j, c) / 5.0;
        for (std::size_t i = 0; i < 3; ++i)
            CHECK(r.output.values<float>()(0, i, c) == doctest::Approx(mean).epsilon(1e-6));
    }
}

TEST_CASE("sdpa: logits are Q.K^T times the scale, 1/sqrt(E) by default") {
    const Tensor q(xt::xarray<float>{{{1, 2, 0, 0}}});
    const Tensor k(xt::xarray<float>{{{3, 1, 0, 0}, {0, 0, 1, 1}}});
    const Run r = run_both(q, k, k, {});
    CHECK(r.logits.values<float>()(0, 0, 0) == doctest::Approx(5.0 / 2.0));
    CHECK(r.logits.values<float>()(0, 0, 1) == 0.0f);  // q·k is exactly 0
    AttentionOptions scaled;
    scaled.scale = 0.3;
    const Run s = run_both(q, k, k, scaled);
    CHECK(s.logits.values<float>()(0, 0, 0) == doctest::Approx(1.5));
    const double e = std::exp(1.5);
    CHECK(s.weights.values<float>()(0, 0, 0) == doctest::Approx(e / (e + 1)));
}

TEST_CASE("sdpa: causal alignments") {
    SUBCASE("top-left, square: query i sees keys 0..i") {
        AttentionOptions o;
        o.causal = Causal::TopLeft;
        const Run r = run_both(normal({2, 4, 3}, 3), normal({2, 4, 3}, 4), normal({2, 4, 3}, 5), o);
        const auto& w = r.weights.values<float>();
        for (std::size_t b = 0; b < 2; ++b) {
            for (std::size_t i = 0; i < 4; ++i) {
                double sum = 0;
                for (std::size_t j = 0; j < 4; ++j) {
                    if (j > i) {
                        CHECK(w(b, i, j) == 0.0f);
                        CHECK(r.logits.values<float>()(b, i, j) == -kInf);
                    }
                    sum += w(b, i, j);
                }
                CHECK(sum == doctest::Approx(1.0));
            }
        }
        CHECK(w(0, 0, 0) == 1.0f);
    }
    SUBCASE("bottom-right, L < S: query i sees keys 0..i+S-L") {
        AttentionOptions o;
        o.causal = Causal::BottomRight;
        const Run r = run_both(normal({2, 6}, 6), normal({5, 6}, 7), normal({5, 3}, 8), o);
        const auto& w = r.weights.values<float>();
        for (std::size_t i = 0; i < 2; ++i) {
            for (std::size_t j = 0; j < 5; ++j) CHECK((w(i, j) == 0.0f) == (j > i + 3));
        }
    }
    SUBCASE("bottom-right, L > S: the first L-S rows see nothing and are zero") {
        AttentionOptions o;
        o.causal = Causal::BottomRight;
        const Run r = run_both(normal({5, 4}, 9), normal({3, 4}, 10), normal({3, 2}, 11), o);
        for (std::size_t i = 0; i < 2; ++i) {
            for (std::size_t c = 0; c < 2; ++c) CHECK(r.output.values<float>()(i, c) == 0.0f);
            for (std::size_t j = 0; j < 3; ++j) CHECK(r.weights.values<float>()(i, j) == 0.0f);
        }
        CHECK(r.weights.values<float>()(2, 0) == 1.0f);
    }
}

TEST_CASE("sdpa: fully masked rows give zero weights and zero output, never NaN") {
    xt::xarray<bool> mask = xt::ones<bool>({3, 4});
    xt::view(mask, 1, xt::all()) = false;
    AttentionOptions o;
    o.mask = Tensor(mask);
    const Run r = run_both(normal({3, 8}, 12), normal({4, 8}, 13), normal({4, 5}, 14), o);
    for (std::size_t c = 0; c < 5; ++c) CHECK(r.output.values<float>()(1, c) == 0.0f);
    for (std::size_t j = 0; j < 4; ++j) {
        CHECK(r.weights.values<float>()(1, j) == 0.0f);
        CHECK(r.logits.values<float>()(1, j) == -kInf);
    }
    SUBCASE("also with a float mask of -inf") {
        xt::xarray<float> fm = xt::zeros<float>({3, 4});
        xt::view(fm, 2, xt::all()) = -std::numeric_limits<float>::infinity();
        AttentionOptions f;
        f.mask = Tensor(fm);
        const Run s = run_both(normal({3, 8}, 12), normal({4, 8}, 13), normal({4, 5}, 14), f);
        for (std::size_t c = 0; c < 5; ++c) CHECK(s.output.values<float>()(2, c) == 0.0f);
    }
}

TEST_CASE("sdpa: a float mask is added to the logits") {
    xt::xarray<float> fm = {{0.5f, -1.0f, 0.0f}};
    AttentionOptions plain, masked;
    masked.mask = Tensor(fm);
    const Tensor q = normal({2, 2, 4}, 15), k = normal({2, 3, 4}, 16);
    const Run a = run_both(q, k, k, plain), b = run_both(q, k, k, masked);
    for (std::size_t i = 0; i < 2; ++i) {
        for (std::size_t j = 0; j < 3; ++j) {
            CHECK(b.logits.values<float>()(1, i, j) == doctest::Approx(a.logits.values<float>()(1, i, j) + fm(0, j)));
        }
    }
}

TEST_CASE("sdpa: key padding and key lengths hide keys per batch item") {
    const Tensor q = normal({2, 2, 3, 4}, 17), k = normal({2, 2, 5, 4}, 18), v = normal({2, 2, 5, 4}, 19);
    AttentionOptions lengths;
    lengths.key_lengths = {2, 4};
    xt::xarray<bool> padding = {{false, false, true, true, true}, {false, false, false, false, true}};
    AttentionOptions padded;
    padded.key_padding_mask = Tensor(padding);
    const Run a = run_both(q, k, v, lengths), b = run_both(q, k, v, padded);
    CHECK(test::max_abs_diff(a.output, b.output) <= 1e-6);
    CHECK(test::max_abs_diff(a.weights, b.weights) <= 1e-6);
    const auto& w = a.weights.values<float>();
    for (std::size_t h = 0; h < 2; ++h) {
        for (std::size_t i = 0; i < 3; ++i) {
            for (std::size_t j = 2; j < 5; ++j) CHECK(w(0, h, i, j) == 0.0f);
            CHECK(w(1, h, i, 4) == 0.0f);
            CHECK(w(1, h, i, 3) > 0.0f);
        }
    }
}

TEST_CASE("sdpa: grouped-query heads read K/V head h / (Hq/Hkv)") {
    const Tensor q = normal({2, 6, 3, 4}, 20), k = normal({2, 2, 5, 4}, 21), v = normal({2, 2, 5, 3}, 22);
    const Run grouped = run_both(q, k, v, {});
    // The same with K/V heads repeated explicitly.
    const xt::xarray<float> kr = xt::repeat(k.values<float>(), 3, 1), vr = xt::repeat(v.values<float>(), 3, 1);
    const Run repeated = run(q, Tensor(kr), Tensor(vr), {});
    CHECK(test::max_abs_diff(grouped.output, repeated.output) == 0.0);
    CHECK(test::max_abs_diff(grouped.weights, repeated.weights) == 0.0);
}

TEST_CASE("sdpa: leading batch dims broadcast") {
    const Tensor q = normal({2, 3, 4, 5}, 23), k = normal({1, 3, 6, 5}, 24), v = normal({3, 6, 2}, 25);
    const Run r = run_both(q, k, v, {});
    CHECK(r.output.shape() == Shape{2, 3, 4, 2});
    const xt::xarray<float> kb = xt::broadcast(k.values<float>(), {2, 3, 6, 5});
    const xt::xarray<float> vb = xt::broadcast(v.values<float>(), {2, 3, 6, 2});
    CHECK(test::max_abs_diff(r.output, run(q, Tensor(kb), Tensor(vb), {}).output) == 0.0);
}

TEST_CASE("sdpa: a batch dim of 0 broadcasts with 1 to 0, as in numpy") {
    // Found by tests/fuzz/fuzz_attention: 0 % 0 in the grouped-query test (all dims 0),
    // and max(1, 0) = 1 batch read from a K/V that holds none.
    SUBCASE("every dim 0") {
        const Tensor t = Tensor::zeros(DType::Float32, {0, 0, 0});
        CHECK(attention_output_shape(t, t, t, {}) == Shape{0, 0, 0});
        CHECK(run(t, t, t, {}).output.shape() == Shape{0, 0, 0});
        CHECK(run(t, t, t, {}, true).output.shape() == Shape{0, 0, 0});
    }
    SUBCASE("a query batch of 1 against a key/value batch of 0") {
        const Tensor q = normal({1, 2, 4}, 1);
        const Tensor k = Tensor::zeros(DType::Float32, {0, 3, 4});
        const Tensor v = Tensor::zeros(DType::Float32, {0, 3, 5});
        CHECK(attention_output_shape(q, k, v, {}) == Shape{0, 2, 5});
        const Run r = run_both(q, k, v, {});
        CHECK(r.output.shape() == Shape{0, 2, 5});
        CHECK(r.weights.shape() == Shape{0, 2, 3});
    }
    SUBCASE("key 1 and value 0 broadcast to 0") {
        const Tensor q = normal({2, 4}, 1);
        const Tensor k = normal({1, 3, 4}, 2);
        const Tensor v = Tensor::zeros(DType::Float32, {0, 3, 5});
        CHECK(attention_output_shape(q, k, v, {}) == Shape{0, 2, 5});
        CHECK(run_both(q, k, v, {}).output.shape() == Shape{0, 2, 5});
    }
    SUBCASE("0 key/value heads are not a grouped-query head count") {
        const Tensor q = normal({1, 2, 2, 4}, 1);
        const Tensor kv = Tensor::zeros(DType::Float32, {1, 0, 3, 4});
        test::error_of([&] { attention_output_shape(q, kv, kv, {}); }, ErrorKind::Shape);
        test::error_of([&] { scaled_dot_product_attention(q, kv, kv, {}); }, ErrorKind::Shape);
    }
}

TEST_CASE("sdpa: E = 0 gives logits 0 and uniform weights in both kernels") {
    // Found by tests/fuzz/fuzz_attention: the default scale 1/sqrt(0) = inf made the
    // reference's logits 0 * inf = NaN while the fast kernel's were 0 (as PyTorch's are).
    const Tensor q = Tensor::zeros(DType::Float32, {2, 0});
    const Tensor k = Tensor::zeros(DType::Float32, {3, 0});
    const Tensor v(xt::xarray<float>{{1, 2}, {3, 4}, {5, 9}});
    for (Causal causal : {Causal::None, Causal::BottomRight}) {
        CAPTURE(static_cast<int>(causal));
        AttentionOptions options;
        options.causal = causal;
        const Run r = run_both(q, k, v, options);
        REQUIRE(r.weights.shape() == Shape{2, 3});
        CHECK(r.logits.values<float>()(1, 0) == 0.0f);
        CHECK(r.weights.values<float>()(1, 2) == doctest::Approx(1.0 / 3));
        CHECK(r.output.values<float>()(1, 1) == doctest::Approx(5.0));
        if (causal == Causal::BottomRight) CHECK(r.weights.values<float>()(0, 2) == 0.0f);  // keys 0..1
    }
}

TEST_CASE("sdpa: precision follows the inputs or the option") {
    const Tensor q = normal({3, 4}, 26, DType::Float64);
    CHECK(scaled_dot_product_attention(q, q, q, {}).dtype() == DType::Float64);
    AttentionOptions f32;
    f32.precision = Precision::Float32;
    CHECK(scaled_dot_product_attention(q, q, q, f32).dtype() == DType::Float32);
    AttentionOptions f64;
    f64.precision = Precision::Float64;
    const Tensor q32 = normal({3, 4}, 26);
    CHECK(scaled_dot_product_attention(q32, q32, q32, f64).dtype() == DType::Float64);
    run_both(q, normal({5, 4}, 27, DType::Float64), normal({5, 2}, 28, DType::Float64), {}, 1e-12);
}

TEST_CASE("sdpa: huge logits stay finite and correct") {
    xt::xarray<float> q = {{100.0f, 0.0f}, {-100.0f, 0.0f}};
    xt::xarray<float> k = {{100.0f, 0.0f}, {99.0f, 0.0f}};
    AttentionOptions o;
    o.scale = 1.0;
    const Run r = run_both(Tensor(q), Tensor(k), Tensor(k), o);
    const auto& w = r.weights.values<float>();
    CHECK(w(0, 0) == 1.0f);  // logits 1e4 and 9900: exp(-100) = 3.7e-44 is below float32's normal range
    CHECK(w(0, 1) < std::numeric_limits<float>::min());
    CHECK(w(1, 1) == 1.0f);
    CHECK(std::isfinite(r.output.values<float>()(1, 0)));
    // In float64 exp(-100) is a normal number: the weight is it, to a relative 1e-12
    // (scale(0): doctest's Approx is then |a − b| < ε·max(|a|, |b|), with no absolute part).
    const Run r64 =
        run_both(Tensor(xt::xarray<double>(q)), Tensor(xt::xarray<double>(k)), Tensor(xt::xarray<double>(k)), o, 1e-12);
    const auto& w64 = r64.weights.values<double>();
    CHECK(w64(0, 1) == doctest::Approx(std::exp(-100.0) / (1 + std::exp(-100.0))).epsilon(1e-12).scale(0));
    CHECK(w64(1, 0) == doctest::Approx(std::exp(-100.0) / (1 + std::exp(-100.0))).epsilon(1e-12).scale(0));
}

TEST_CASE("sdpa: NaN inputs propagate as in PyTorch") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    xt::xarray<float> q = {{1.0f, nan}, {1.0f, 0.0f}, {inf, 0.0f}};
    const Tensor k = normal({300, 2}, 29);  // two key tiles
    for (bool sinks : {false, true}) {
        CAPTURE(sinks);
        TensorScoreSink weights;
        const Tensor out = scaled_dot_product_attention(Tensor(q), k, k, {}, sinks ? &weights : nullptr);
        const auto& o = out.values<float>();
        CHECK(std::isnan(o(0, 0)));
        CHECK(std::isnan(o(0, 1)));
        CHECK(std::isfinite(o(1, 0)));
        CHECK(std::isnan(o(2, 0)));  // ±inf logits: inf − inf in the softmax
    }
    // A NaN among keys a mask hides elsewhere still poisons its own row only.
    xt::xarray<float> kn = normal({300, 2}, 30).values<float>();
    kn(299, 0) = nan;
    xt::xarray<float> q2 = normal({2, 2}, 31).values<float>();
    AttentionOptions o;
    o.key_lengths = {300};
    const Tensor out = scaled_dot_product_attention(Tensor(q2), Tensor(kn), Tensor(kn), o);
    CHECK(std::isnan(out.values<float>()(0, 0)));
    CHECK(std::isnan(out.values<float>()(1, 1)));
    // Hidden by the key length, the NaN key still reaches every row, as in PyTorch's
    // math attention (−inf added to a NaN logit is NaN; 0 times a NaN value is NaN).
    o.key_lengths = {299};
    const Tensor hidden = scaled_dot_product_attention(Tensor(q2), Tensor(kn), Tensor(kn), o);
    CHECK(std::isnan(hidden.values<float>()(0, 0)));
    CHECK(test::max_abs_diff(hidden, reference_attention(Tensor(q2), Tensor(kn), Tensor(kn), o)) == 0);
}

TEST_CASE("sdpa: results that cannot fit in memory are refused before anything is computed") {
    if (!test::require_file("/proc/meminfo")) return;  // the memory attn::core compares with
    // Q (1000, 1, 1000, 1) and K (1, 1000, 1000, 1) broadcast to weights (1000, 1000, 1000, 1000):
    // 4 TB of float32 from 4 MB of inputs.
    const Tensor q = Tensor::zeros(DType::Float32, {1000, 1, 1000, 1});
    const Tensor k = Tensor::zeros(DType::Float32, {1, 1000, 1000, 1});
    for (bool reference : {false, true}) {
        TensorScoreSink weights;
        const std::string m = test::error_of(
            [&] {
                if (reference) {
                    reference_attention(q, k, k, {}, &weights);
                } else {
                    scaled_dot_product_attention(q, k, k, {}, &weights);
                }
            },
            ErrorKind::Value);
        CHECK(m.rfind("weights: needs 4.0 TB for float32 output (1000, 1000, 1000, 1) + weights (1000, 1000, "
                      "1000, 1000), ",
                      0) == 0);
        CHECK(weights.tensor().rank() == 0);  // begin() never came: nothing was allocated
    }
    TensorScoreSink logits;
    const std::string m =
        test::error_of([&] { scaled_dot_product_attention(q, k, k, {}, nullptr, &logits); }, ErrorKind::Value);
    CHECK(test::contains(m, "logits: needs 4.0 TB for float32 output (1000, 1000, 1000, 1) + logits ("));
    CHECK(test::error_arg_of([&] { scaled_dot_product_attention(q, k, k, {}, nullptr, &logits); }) == Arg::Logits);
}

// NaN where `expected` (torch's float64 result) has NaN, the same infinities, and the
// finite values close.
void check_like_torch(const Tensor& got, const Tensor& expected, const std::string& what) {
    INFO(what);
    REQUIRE(got.shape() == expected.shape());
    const xt::xarray<double> a = got.cast<double>(), b = expected.cast<double>();
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double x = a.data()[i], y = b.data()[i];
        const bool same = std::isnan(y)   ? std::isnan(x)
                          : std::isinf(y) ? x == y
                                          : std::isfinite(x) && std::abs(x - y) <= 1e-5 + 1e-5 * std::abs(y);
        if (!same && ++mismatches <= 3) CHECK_MESSAGE(same, "element " << i << ": " << x << ", torch " << y);
    }
    CHECK(mismatches == 0);
}

TEST_CASE("sdpa: the reference propagates NaN and infinities as PyTorch's math attention does") {
    // tests/data/nonfinite: torch 1.13's results (make_nonfinite_fixtures.py), NaN/Inf in
    // Q, K, V and masks, visible or hidden by a mask, the causal rule or key lengths.
    std::size_t cases = 0;
    for (const auto& entry : std::filesystem::directory_iterator(test::data_path("nonfinite"))) {
        if (entry.path().extension() != ".npz") continue;
        const io::NamedTensors arrays = io::read_tensor_archive(entry.path().string());
        auto get = [&](const std::string& name) -> const Tensor* {
            for (const auto& [n, t] : arrays) {
                if (n == name) return &t;
            }
            return nullptr;
        };
        AttentionOptions options;
        if (const Tensor* m = get("mask")) options.mask = *m;
        if (get("causal")) options.causal = Causal::TopLeft;
        if (const Tensor* lengths = get("key_lengths")) {
            for (std::int64_t n : lengths->values<std::int64_t>()) options.key_lengths.push_back(std::size_t(n));
        }
        TensorScoreSink weights;
        const Tensor out = reference_attention(*get("q"), *get("k"), *get("v"), options, &weights);
        const std::string name = entry.path().stem().string();
        check_like_torch(out, *get("torch_out"), name + ": output");
        check_like_torch(weights.tensor(), *get("torch_weights"), name + ": weights");
        ++cases;
    }
    CHECK(cases == 27);
}

TEST_CASE("sdpa: shape errors name both shapes") {
    const Tensor q = normal({2, 3, 4}, 30);
    std::string m = test::error_of(
        [&] {
            scaled_dot_product_attention(q, normal({2, 5, 6}, 31), normal({2, 5, 6}, 31), {});
        },
        ErrorKind::Shape);
    CHECK(test::contains(m, "query (2, 3, 4), key (2, 5, 6)"));
    m = test::error_of(
        [&] {
            scaled_dot_product_attention(q, normal({3, 5, 4}, 32), normal({3, 5, 4}, 32), {});
        },
        ErrorKind::Shape);
    CHECK(test::contains(m, "do not broadcast"));
    m = test::error_of([&] { scaled_dot_product_attention(normal({4}, 1), q, q, {}); }, ErrorKind::Shape);
    CHECK(test::contains(m, "rank >= 2"));
    AttentionOptions bad_mask;
    bad_mask.mask = Tensor(xt::xarray<bool>(xt::ones<bool>({3, 4})));
    m = test::error_of([&] { scaled_dot_product_attention(q, q, q, bad_mask); }, ErrorKind::Shape);
    CHECK(test::contains(m, "attn_mask: shape (3, 4) does not broadcast to the scores (2, 3, 3)"));
    // Errors about an argument carry it, so that a program can name it in its own terms.
    CHECK(test::error_arg_of([&] { scaled_dot_product_attention(q, q, q, bad_mask); }) == Arg::Mask);
    CHECK(test::error_arg_of([&] { scaled_dot_product_attention(normal({4}, 1), q, q, {}); }) == Arg::Query);
    AttentionOptions int_mask;
    int_mask.mask = Tensor(xt::xarray<int>(xt::ones<int>({3, 3})));
    m = test::error_of([&] { scaled_dot_product_attention(q, q, q, int_mask); }, ErrorKind::Value);
    CHECK(test::contains(m, "expected a bool or float mask, found int32"));
    AttentionOptions lengths;
    lengths.key_lengths = {1, 2, 3};
    m = test::error_of([&] { scaled_dot_product_attention(q, q, q, lengths); }, ErrorKind::Shape);
    CHECK(test::contains(m, "expected 1 or 2 values"));
    lengths.key_lengths = {9};
    m = test::error_of([&] { scaled_dot_product_attention(q, q, q, lengths); }, ErrorKind::Value);
    CHECK(test::contains(m, "exceeds the number of keys S = 3"));
    CHECK(attention_output_shape(q, normal({2, 7, 4}, 1), normal({2, 7, 9}, 1), {}) == Shape{2, 3, 9});
}

TEST_CASE("sdpa: the fast kernel equals the reference across tile edges") {
    const std::size_t sizes[] = {1, 63, 64, 65, 255, 256, 257, 777};
    std::uint64_t seed = 100;
    for (std::size_t l : sizes) {
        for (std::size_t s : sizes) {
            CAPTURE(l);
            CAPTURE(s);
            const Tensor q = normal({1, 2, l, 16}, ++seed), k = normal({1, 2, s, 16}, ++seed),
                         v = normal({1, 2, s, 8}, ++seed);
            AttentionOptions o;
            o.causal = seed % 3 == 0 ? Causal::TopLeft : seed % 3 == 1 ? Causal::BottomRight : Causal::None;
            CAPTURE(static_cast<int>(o.causal));
            if (seed % 2 == 0) {
                xt::xarray<bool> mask =
                    xt::cast<bool>(xt::not_equal(xt::arange<std::size_t>(l * s) % 5, std::size_t(0)));
                mask.reshape({l, s});
                if (l > 1) xt::view(mask, 0, xt::all()) = false;  // a fully masked row
                o.mask = Tensor(mask);
            }
            run_both(q, k, v, o);
        }
    }
}

TEST_CASE("sdpa: the fast kernel equals the reference for head sizes across vector widths") {
    // E is the products' inner size (any); Ev is split into SIMD vectors and a remainder.
    std::uint64_t seed = 400;
    for (std::size_t e : {1, 3, 16, 64, 65}) {
        for (std::size_t ev : {1, 7, 8, 16, 17, 64, 80}) {
            CAPTURE(e);
            CAPTURE(ev);
            AttentionOptions o;
            o.causal = seed % 2 ? Causal::TopLeft : Causal::None;
            seed += 6;
            run_both(normal({2, 70, e}, seed), normal({2, 300, e}, seed + 1), normal({2, 300, ev}, seed + 2), o);
            run_both(normal({1, 70, e}, seed + 3, DType::Float64), normal({1, 300, e}, seed + 4, DType::Float64),
                     normal({1, 300, ev}, seed + 5, DType::Float64), o, 1e-12);
        }
    }
}

TEST_CASE("sdpa: the fast kernel equals the reference with GQA, padding, lengths, float64") {
    AttentionOptions o;
    o.causal = Causal::BottomRight;
    o.key_lengths = {70, 129};
    xt::xarray<float> padding = xt::zeros<float>({2, 1, 129});
    padding(0, 0, 3) = -2.5f;
    o.key_padding_mask = Tensor(padding);
    run_both(normal({2, 4, 65, 8}, 200), normal({2, 2, 129, 8}, 201), normal({2, 2, 129, 4}, 202), o);
    run_both(normal({2, 4, 65, 8}, 203, DType::Float64), normal({2, 1, 129, 8}, 204, DType::Float64),
             normal({2, 1, 129, 4}, 205, DType::Float64), o, 1e-12);
    AttentionOptions threads;
    threads.threads = 1;
    run_both(normal({3, 300, 8}, 206), normal({3, 300, 8}, 207), normal({3, 300, 8}, 208), threads);
}

TEST_CASE("sdpa: degenerate sizes (found by fuzz_attention)") {
    SUBCASE("E = 0: every logit is 0, so the output is the mean of the values") {
        for (DType dtype : {DType::Float32, DType::Float64}) {
            const Tensor q = Tensor::zeros(dtype, {2, 3, 0});
            const Tensor v = normal({2, 70, 4}, 500, dtype);
            AttentionOptions o;
            const Run r = run_both(q, Tensor::zeros(dtype, {2, 70, 0}), v, o, 1e-6);
            const xt::xarray<double> mean = xt::mean(v.cast<double>(), {1});
            CHECK(std::abs(r.output.cast<double>()(1, 2, 3) - mean(1, 3)) < 1e-6);
        }
    }
    SUBCASE("no queries with a huge E: no scratch is allocated for them") {
        const Tensor q = Tensor::zeros(DType::Float32, {0, std::size_t(1) << 28});
        const Tensor out = scaled_dot_product_attention(q, q, q, {});
        CHECK(out.shape() == Shape{0, std::size_t(1) << 28});
    }
    SUBCASE("float64 rows masked to -inf and NaN go through exp without undefined conversions") {
        AttentionOptions o;
        o.causal = Causal::BottomRight;  // the first rows see no key
        xt::xarray<double> k = normal({300, 8}, 501, DType::Float64).values<double>();
        run_both(normal({310, 8}, 502, DType::Float64), Tensor(k), normal({300, 8}, 503, DType::Float64), o, 1e-12);
        k(5, 3) = std::numeric_limits<double>::quiet_NaN();
        const Tensor out = scaled_dot_product_attention(normal({4, 8}, 504, DType::Float64), Tensor(k), Tensor(k), {});
        CHECK(std::isnan(out.values<double>()(0, 0)));
    }
}
