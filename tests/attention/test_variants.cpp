// Attention variants: sliding windows, ALiBi, soft-capping, sinks and the log-sum-exp.
// Their formulas on hand-checkable inputs, the merge of partial results through their
// LSE, the errors, and the fast kernel against the reference for every variant and the
// combinations that make sense, across tile edges.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include <xtensor/xview.hpp>

#include "attention/run_both.hpp"
#include "attn/attention.hpp"
#include "attn/random.hpp"
#include "test_support.hpp"

using namespace attn;
using attn::test::normal;
using attn::test::Run;
using attn::test::run;
using attn::test::run_both;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

double at(const Tensor& t, std::initializer_list<std::size_t> index) {
    const auto values = t.cast<double>();
    std::size_t flat = 0;
    std::size_t d = 0;
    for (std::size_t i : index) flat = flat * values.shape()[d++] + i;
    return values.data()[flat];
}

}  // namespace

TEST_CASE("variants: ALiBi slopes are the paper's get_slopes") {
    // Python: get_slopes(8) and get_slopes(6) of ofirpress/attention_with_linear_biases.
    const std::vector<double> eight = alibi_slopes(8);
    const double expected8[] = {0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625};
    REQUIRE(eight.size() == 8);
    for (std::size_t h = 0; h < 8; ++h) CHECK(eight[h] == doctest::Approx(expected8[h]).epsilon(1e-15));
    const std::vector<double> six = alibi_slopes(6);
    const double expected6[] = {0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125};
    REQUIRE(six.size() == 6);
    for (std::size_t h = 0; h < 6; ++h) CHECK(six[h] == doctest::Approx(expected6[h]).epsilon(1e-15));
    CHECK(alibi_slopes(1) == std::vector<double>{std::exp2(-8.0)});
    CHECK(alibi_slopes(0).empty());
}

TEST_CASE("variants: a window hides the keys outside [p_i - left, p_i + right]") {
    // L = 4 queries, S = 6 keys: p_i = i + 2.
    const Tensor q = normal({4, 3}, 1, DType::Float64), k = normal({6, 3}, 2, DType::Float64);
    AttentionOptions o;
    o.window = Window{1, 0};
    const Run r = run_both(q, k, k, o, 1e-12);
    for (std::size_t i = 0; i < 4; ++i) {
        for (std::size_t j = 0; j < 6; ++j) {
            const bool visible = j + 1 >= i + 2 && j <= i + 2;  // p_i - 1 <= j <= p_i
            CAPTURE(i);
            CAPTURE(j);
            CHECK((at(r.weights, {i, j}) > 0) == visible);
            CHECK((at(r.logits, {i, j}) == -kInf) == !visible);
        }
    }
    o.window = Window{-1, 1};  // unbounded on the left: keys 0 .. p_i + 1
    const Run right = run_both(q, k, k, o, 1e-12);
    CHECK(at(right.weights, {0, 3}) > 0);
    CHECK(at(right.weights, {0, 4}) == 0);
    CHECK(at(right.weights, {3, 5}) > 0);
}

TEST_CASE("variants: soft-capping, then ALiBi, then masks, in that order") {
    const Tensor q = normal({1, 2, 3, 4}, 3, DType::Float64), k = normal({1, 2, 5, 4}, 4, DType::Float64);
    AttentionOptions plain;
    plain.scale = 3.0;  // large logits, so that the cap matters
    const Run base = run_both(q, k, k, plain, 1e-12);
    AttentionOptions o = plain;
    o.softcap = 2.0;
    o.alibi = true;
    xt::xarray<double> mask = xt::zeros<double>({3, 5});
    mask(1, 2) = -1.5;
    o.mask = Tensor(mask);
    const Run r = run_both(q, k, k, o, 1e-12);
    const std::vector<double> slopes = alibi_slopes(2);
    for (std::size_t h = 0; h < 2; ++h) {
        for (std::size_t i = 0; i < 3; ++i) {
            for (std::size_t j = 0; j < 5; ++j) {
                const double s = at(base.logits, {0, h, i, j});
                const double expected =
                    2.0 * std::tanh(s / 2.0) - slopes[h] * std::abs(double(i) + 2 - double(j)) + mask(i, j);
                CHECK(at(r.logits, {0, h, i, j}) == doctest::Approx(expected).epsilon(1e-12));
            }
        }
    }
}

TEST_CASE("variants: sinks join the denominator only, and the LSE includes them") {
    const Tensor q = normal({1, 2, 3, 4}, 5, DType::Float64), k = normal({1, 2, 4, 4}, 6, DType::Float64);
    AttentionOptions o;
    o.sinks = Tensor(xt::xarray<double>{0.5, -1.0});
    o.causal = Causal::TopLeft;
    const Run r = run_both(q, k, k, o, 1e-12);
    for (std::size_t h = 0; h < 2; ++h) {
        const double sink = h == 0 ? 0.5 : -1.0;
        for (std::size_t i = 0; i < 3; ++i) {
            double denominator = std::exp(sink), row_sum = 0;
            for (std::size_t j = 0; j <= i; ++j) denominator += std::exp(at(r.logits, {0, h, i, j}));
            for (std::size_t j = 0; j < 4; ++j) {
                const double logit = at(r.logits, {0, h, i, j});
                const double expected = logit == -kInf ? 0.0 : std::exp(logit) / denominator;
                CHECK(at(r.weights, {0, h, i, j}) == doctest::Approx(expected).epsilon(1e-12));
                row_sum += at(r.weights, {0, h, i, j});
            }
            CHECK(row_sum < 1.0);
            CHECK(at(r.lse, {0, h, i}) == doctest::Approx(std::log(denominator)).epsilon(1e-12));
        }
    }
}

TEST_CASE("variants: a row with no visible key has zero output, LSE -inf, or the sink with one") {
    const Tensor q = normal({1, 2, 5, 4}, 7, DType::Float64), k = normal({1, 2, 3, 4}, 8, DType::Float64);
    AttentionOptions o;
    o.causal = Causal::BottomRight;  // queries 0 and 1 see no key (p_i = i - 2)
    Run r = run_both(q, k, k, o, 1e-12);
    for (std::size_t h = 0; h < 2; ++h) {
        for (std::size_t i = 0; i < 2; ++i) {
            CHECK(at(r.lse, {0, h, i}) == -kInf);
            for (std::size_t c = 0; c < 4; ++c) CHECK(at(r.output, {0, h, i, c}) == 0.0);
        }
        CHECK(std::isfinite(at(r.lse, {0, h, 2})));
    }
    o.sinks = Tensor(xt::xarray<double>{0.25, 3.0});
    r = run_both(q, k, k, o, 1e-12);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(at(r.lse, {0, 0, i}) == 0.25);
        CHECK(at(r.lse, {0, 1, i}) == 3.0);
        for (std::size_t c = 0; c < 4; ++c) CHECK(at(r.output, {0, 1, i, c}) == 0.0);
    }
}

TEST_CASE("variants: two partial results merge through their LSE into the whole") {
    // Split-KV decoding: keys [0, 40) and [40, 100) attended separately, then
    // out = sum_p out_p * e^(lse_p - lse) with lse = log(sum_p e^lse_p).
    const std::size_t split = 40;
    const Tensor q = normal({2, 7, 16}, 9, DType::Float64), k = normal({2, 100, 16}, 10, DType::Float64),
                 v = normal({2, 100, 8}, 11, DType::Float64);
    const auto& kv = k.values<double>();
    const auto& vv = v.values<double>();
    const Tensor k1(xt::xarray<double>(xt::view(kv, xt::all(), xt::range(0, split), xt::all())));
    const Tensor k2(xt::xarray<double>(xt::view(kv, xt::all(), xt::range(split, 100), xt::all())));
    const Tensor v1(xt::xarray<double>(xt::view(vv, xt::all(), xt::range(0, split), xt::all())));
    const Tensor v2(xt::xarray<double>(xt::view(vv, xt::all(), xt::range(split, 100), xt::all())));
    Tensor lse, lse1, lse2;
    const Tensor whole = scaled_dot_product_attention(q, k, v, {}, nullptr, nullptr, &lse);
    const Tensor part1 = scaled_dot_product_attention(q, k1, v1, {}, nullptr, nullptr, &lse1);
    const Tensor part2 = scaled_dot_product_attention(q, k2, v2, {}, nullptr, nullptr, &lse2);
    for (std::size_t b = 0; b < 2; ++b) {
        for (std::size_t i = 0; i < 7; ++i) {
            const double a = at(lse1, {b, i}), c = at(lse2, {b, i});
            const double merged = std::max(a, c) + std::log1p(std::exp(-std::abs(a - c)));
            CHECK(merged == doctest::Approx(at(lse, {b, i})).epsilon(1e-13));
            for (std::size_t e = 0; e < 8; ++e) {
                const double out =
                    at(part1, {b, i, e}) * std::exp(a - merged) + at(part2, {b, i, e}) * std::exp(c - merged);
                CHECK(std::abs(out - at(whole, {b, i, e})) < 1e-13);
            }
        }
    }
}

TEST_CASE("variants: per-head slopes (batch..., H) broadcast over the batch") {
    const Tensor q = normal({2, 3, 5, 4}, 12), k = normal({2, 3, 6, 4}, 13);
    AttentionOptions given;
    given.alibi_slopes = Tensor(xt::xarray<float>{{0.5f, 0.1f, 0.0f}, {1.0f, 0.2f, 0.3f}});
    const Run r = run_both(q, k, k, given);
    AttentionOptions none;
    const Run base = run(q, k, k, none, true);
    // Head 2 of batch 0 has slope 0: its logits are the plain ones.
    for (std::size_t i = 0; i < 5; ++i) {
        CHECK(at(r.logits, {0, 2, i, 1}) == doctest::Approx(at(base.logits, {0, 2, i, 1})).epsilon(1e-6));
        CHECK(at(r.logits, {1, 0, i, 0}) ==
              doctest::Approx(at(base.logits, {1, 0, i, 0}) - 1.0 * std::abs(double(i) + 1)).epsilon(1e-6));
    }
    AttentionOptions heads_only;
    heads_only.alibi_slopes = Tensor(xt::xarray<float>{0.5f, 0.1f, 0.0f});
    run_both(q, k, k, heads_only);
}

TEST_CASE("variants: bad options are refused, naming the argument") {
    const Tensor q = normal({1, 2, 3, 4}, 14);
    auto refused = [&](const AttentionOptions& o, ErrorKind kind) {
        test::error_of([&] { scaled_dot_product_attention(q, q, q, o); }, kind);
        test::error_of([&] { reference_attention(q, q, q, o); }, kind);
        return test::error_arg_of([&] { scaled_dot_product_attention(q, q, q, o); });
    };
    AttentionOptions o;
    o.window = Window{-2, 0};
    CHECK(refused(o, ErrorKind::Value) == Arg::Window);
    o = {};
    for (double cap : {0.0, -1.0, std::nan(""), kInf}) {
        o.softcap = cap;
        CHECK(refused(o, ErrorKind::Value) == Arg::Softcap);
    }
    o = {};
    o.alibi = true;
    o.alibi_slopes = Tensor(xt::xarray<float>{1.0f, 2.0f});
    CHECK(refused(o, ErrorKind::Usage) == Arg::Alibi);
    o = {};
    o.alibi_slopes = Tensor(xt::xarray<float>{1.0f, 2.0f, 3.0f});
    CHECK(refused(o, ErrorKind::Shape) == Arg::AlibiSlopes);
    o.alibi_slopes = Tensor(xt::xarray<float>{1.0f, NAN});
    CHECK(refused(o, ErrorKind::Value) == Arg::AlibiSlopes);
    o = {};
    o.sinks = Tensor(xt::xarray<float>{1.0f});
    CHECK(refused(o, ErrorKind::Shape) == Arg::Sinks);
    o.sinks = Tensor(xt::xarray<float>{1.0f, INFINITY});
    CHECK(refused(o, ErrorKind::Value) == Arg::Sinks);
    CHECK(test::contains(test::error_of([&] { scaled_dot_product_attention(q, q, q, o); }, ErrorKind::Value),
                         "sinks: expected finite values, found inf at index 1"));
}

TEST_CASE("variants: the fast kernel equals the reference for every variant across tile edges") {
    const std::size_t sizes[] = {1, 63, 64, 65, 255, 256, 257, 520};
    std::uint64_t seed = 700;
    for (std::size_t l : sizes) {
        for (std::size_t s : sizes) {
            CAPTURE(l);
            CAPTURE(s);
            const Tensor q = normal({1, 4, l, 16}, ++seed), k = normal({1, 2, s, 16}, ++seed),
                         v = normal({1, 2, s, 8}, ++seed);
            AttentionOptions o;
            switch (seed % 5) {
                case 0: o.window = Window{std::int64_t(seed % 97), 0}; break;
                case 1: o.window = Window{40, 7}; break;
                case 2: o.window = Window{-1, 3}; break;
                case 3: o.window = Window{130, -1}; break;
                default: break;
            }
            if (seed % 2 == 0) o.causal = seed % 4 == 0 ? Causal::BottomRight : Causal::TopLeft;
            if (seed % 3 == 0) o.softcap = 1.5;
            if (seed % 3 == 1) o.alibi = true;
            if (seed % 7 < 3) o.sinks = Tensor(xt::xarray<float>{0.3f, -2.0f, 4.0f, 0.0f});
            if (seed % 11 < 4) {
                xt::xarray<bool> mask =
                    xt::cast<bool>(xt::not_equal(xt::arange<std::size_t>(l * s) % 5, std::size_t(0)));
                mask.reshape({l, s});
                if (l > 1) xt::view(mask, 0, xt::all()) = false;  // a fully masked row
                o.mask = Tensor(mask);
            }
            CAPTURE(seed);
            run_both(q, k, v, o);
        }
    }
}

TEST_CASE("variants: float64, GQA, key lengths and broadcast batch dims with every variant") {
    AttentionOptions o;
    o.window = Window{33, 2};
    o.softcap = 5.0;
    o.alibi_slopes = Tensor(xt::xarray<double>{0.2, 0.05, 0.7, 0.01});
    o.sinks = Tensor(xt::xarray<double>{1.0, -1.0, 0.5, 2.0});
    o.key_lengths = {300, 17};
    o.causal = Causal::BottomRight;
    run_both(normal({2, 4, 130, 8}, 800, DType::Float64), normal({2, 2, 300, 8}, 801, DType::Float64),
             normal({2, 2, 300, 5}, 802, DType::Float64), o, 1e-12);
    run_both(normal({2, 4, 130, 8}, 803), normal({1, 2, 300, 8}, 804), normal({1, 2, 300, 5}, 805), o);
    AttentionOptions rank2;  // one head: slopes and sinks of shape (1,)
    rank2.window = Window{6, 2};
    rank2.softcap = 3.0;
    rank2.alibi_slopes = Tensor(xt::xarray<float>{0.25f});
    rank2.sinks = Tensor(xt::xarray<float>{0.5f});
    run_both(normal({19, 8}, 806), normal({23, 8}, 807), normal({23, 8}, 808), rank2);
}
