// multi_head_attention: weights by name, PyTorch's initialisation, save/load round trip,
// grouped-query heads, the options that reshape the keys, and weights and logits handed
// to score sinks (streamed per head, averaged, unbatched, refused when too large).
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include <xtensor/xview.hpp>

#include "attn/mha.hpp"
#include "attn/random.hpp"
#include "test_support.hpp"

using namespace attn;

namespace {

Tensor normal(const Shape& shape, std::uint64_t seed) { return random_tensor(shape, Distribution::Normal, seed); }

MhaWeights seeded(std::size_t e, std::size_t heads, std::uint64_t seed, std::size_t kv_heads = 0) {
    MhaInit init;
    init.embed_dim = e;
    init.heads = heads;
    init.kv_heads = kv_heads;
    return init_mha_weights(init, seed);
}

// Seeded weights with bias_k and bias_v.
MhaWeights seeded_with_bias_kv(std::size_t e, std::size_t heads, std::uint64_t seed) {
    MhaInit init;
    init.embed_dim = e;
    init.heads = heads;
    init.add_bias_kv = true;
    return init_mha_weights(init, seed);
}

MhaOptions with_heads(std::size_t heads) {
    MhaOptions o;
    o.heads = heads;
    return o;
}

// The layer's output and its weights, collected whole.
struct Collected {
    Tensor output, weights;
};

Collected with_weights(const Tensor& q, const Tensor& k, const Tensor& v, const MhaWeights& w, const MhaOptions& o) {
    TensorScoreSink weights;
    Tensor output = multi_head_attention(q, k, v, w, o, &weights).output;
    return {std::move(output), std::move(weights.tensor())};
}

// Keeps what a sink is told: begin()'s dtype and shape, and every row by its (matrix,
// row) index. Calls may come from several threads.
class RecordingSink final : public ScoreSink {
public:
    void begin(DType dtype, const Shape& shape) override {
        ++begins_;
        dtype_ = dtype;
        shape_ = shape;
    }
    void write_rows(std::size_t matrix, std::size_t row_begin, std::size_t row_count, const float* values) override {
        record(matrix, row_begin, row_count, values);
    }
    void write_rows(std::size_t matrix, std::size_t row_begin, std::size_t row_count, const double* values) override {
        record(matrix, row_begin, row_count, values);
    }
    int begins() const { return begins_; }
    DType dtype() const { return dtype_; }
    const Shape& shape() const { return shape_; }
    std::size_t repeated() const { return repeated_; }
    // The rows as one float64 tensor of begin()'s shape; every row must have come.
    Tensor tensor() const {
        xt::xarray<double> all = xt::xarray<double>::from_shape(shape_);
        const std::size_t length = shape_.back(), per_matrix = shape_[shape_.size() - 2];
        REQUIRE(rows_.size() == (length == 0 ? 0 : all.size() / length));
        for (const auto& [index, row] : rows_) {
            std::copy(row.begin(), row.end(), all.data() + (index.first * per_matrix + index.second) * length);
        }
        return Tensor(std::move(all));
    }

private:
    template <class T>
    void record(std::size_t matrix, std::size_t row_begin, std::size_t row_count, const T* values) {
        const std::lock_guard<std::mutex> lock(mutex_);
        const std::size_t length = shape_.back();
        for (std::size_t r = 0; r < row_count; ++r) {
            const T* row = values + r * length;
            if (!rows_.emplace(std::pair{matrix, row_begin + r}, std::vector<double>(row, row + length)).second) {
                ++repeated_;
            }
        }
    }

    int begins_ = 0;
    DType dtype_ = DType::Bool;
    Shape shape_;
    std::mutex mutex_;
    std::map<std::pair<std::size_t, std::size_t>, std::vector<double>> rows_;
    std::size_t repeated_ = 0;
};

}  // namespace

TEST_CASE("mha: --seed draws exactly torch.manual_seed(0); nn.MultiheadAttention(64, 8)") {
    // data/mha_weights.npz was written by PyTorch (data/make_example.py).
    const io::NamedTensors torch_dict =
        io::read_tensor_archive(std::string(ATTN_EXAMPLE_DATA_DIR) + "/mha_weights.npz");
    const io::NamedTensors ours = mha_state_dict(seeded(64, 8, 0));
    REQUIRE(ours.size() == torch_dict.size());
    for (std::size_t i = 0; i < ours.size(); ++i) {
        CAPTURE(ours[i].first);
        CHECK(ours[i].first == torch_dict[i].first);  // same names, same order
        CHECK(test::max_abs_diff(ours[i].second, torch_dict[i].second) == 0.0);
    }
}

TEST_CASE("mha: saved weights load back and give the same output") {
    const Tensor q = normal({2, 5, 16}, 1), k = normal({2, 7, 16}, 2);
    const MhaWeights w = seeded_with_bias_kv(16, 4, 3);
    MhaOptions o = with_heads(4);
    o.add_zero_attn = true;
    const Collected first = with_weights(q, k, k, w, o);
    for (io::Format format : {io::Format::Npz, io::Format::Safetensors, io::Format::Json}) {
        io::StringSink bytes;
        io::encode_tensor_archive(mha_state_dict(w), format, bytes);
        const io::NamedTensors back = format == io::Format::Npz           ? io::decode_npz(bytes.bytes(), "w")
                                      : format == io::Format::Safetensors ? io::decode_safetensors(bytes.bytes(), "w")
                                                                          : io::decode_json_archive(bytes.bytes(), "w");
        const Collected again = with_weights(q, k, k, mha_weights_from_state_dict(back, "", "w"), o);
        CHECK(test::max_abs_diff(first.output, again.output) == 0.0);
        CHECK(test::max_abs_diff(first.weights, again.weights) == 0.0);
    }
}

TEST_CASE("mha: weight names - packed, per-projection, separate Linear, prefixed") {
    const MhaWeights w = seeded(8, 2, 4);
    const io::NamedTensors packed = mha_state_dict(w);
    const Tensor q = normal({1, 3, 8}, 5);
    const Tensor expected = multi_head_attention(q, q, q, w, with_heads(2)).output;

    io::NamedTensors linear, prefixed;
    const Tensor& in_w = test::member(packed, "in_proj_weight");
    const Tensor& in_b = test::member(packed, "in_proj_bias");
    const char* names[] = {"q_proj", "k_proj", "v_proj"};
    for (std::size_t p = 0; p < 3; ++p) {
        linear.emplace_back(std::string(names[p]) + ".weight",
                            Tensor(xt::xarray<float>(xt::view(in_w.values<float>(), xt::range(8 * p, 8 * p + 8)))));
        linear.emplace_back(std::string(names[p]) + ".bias",
                            Tensor(xt::xarray<float>(xt::view(in_b.values<float>(), xt::range(8 * p, 8 * p + 8)))));
    }
    linear.emplace_back("o_proj.weight", test::member(packed, "out_proj.weight"));
    linear.emplace_back("o_proj.bias", test::member(packed, "out_proj.bias"));
    CHECK(test::max_abs_diff(
              multi_head_attention(q, q, q, mha_weights_from_state_dict(linear, "", "m"), with_heads(2)).output,
              expected) == 0.0);
    for (const auto& [name, t] : packed) prefixed.emplace_back("encoder.layers.0.self_attn." + name, t);
    prefixed.emplace_back("encoder.layers.0.linear1.weight", normal({4, 8}, 6));
    const MhaWeights from_prefix = mha_weights_from_state_dict(prefixed, "encoder.layers.0.self_attn.", "model.npz");
    CHECK(test::max_abs_diff(multi_head_attention(q, q, q, from_prefix, with_heads(2)).output, expected) == 0.0);

    SUBCASE("missing names list what was expected and what was found") {
        const std::string m = test::error_of([&] { mha_weights_from_state_dict(prefixed, "decoder.", "model.npz"); });
        CHECK(test::contains(m, "model.npz: expected in_proj_weight, or q_proj_weight/k_proj_weight/v_proj_weight"));
        CHECK(test::contains(m, "under prefix 'decoder.'"));
        io::NamedTensors no_out(packed.begin(), packed.begin() + 2);
        const std::string n = test::error_of([&] { mha_weights_from_state_dict(no_out, "", "w.npz"); });
        CHECK(test::contains(n, "expected out_proj.weight (or o_proj.weight); found: in_proj_bias, in_proj_weight"));
    }
    SUBCASE("a parameter under two of its names is ambiguous, prefixed or not") {
        const std::pair<const char*, const char*> pairs[] = {
            {"in_proj_weight", "q_proj_weight"},  {"in_proj_weight", "q_proj.weight"},
            {"in_proj_weight", "k_proj.weight"},  {"in_proj_weight", "v_proj_weight"},
            {"q_proj_weight", "q_proj.weight"},   {"v_proj_weight", "v_proj.weight"},
            {"in_proj_bias", "q_proj.bias"},      {"in_proj_bias", "v_proj.bias"},
            {"out_proj.weight", "o_proj.weight"}, {"out_proj.bias", "o_proj.bias"}};
        for (const auto& [first, second] : pairs) {
            for (const std::string prefix : {"", "layers.1."}) {
                CAPTURE(first);
                CAPTURE(second);
                const io::NamedTensors both = {{prefix + first, normal({8, 8}, 8)},
                                               {prefix + second, normal({8, 8}, 9)}};
                const std::string m = test::error_of([&] { mha_weights_from_state_dict(both, prefix, "w.npz"); });
                CHECK(test::contains(
                    m, "w.npz: ambiguous weights: " + prefix + first + " and " + prefix + second + " both give the "));
            }
        }
    }
    SUBCASE("wrong shapes name the tensor and both shapes") {
        io::NamedTensors bad = packed;
        bad[1].second = normal({5}, 7);  // in_proj_bias
        const std::string m = test::error_of([&] { mha_weights_from_state_dict(bad, "", "w.npz"); }, ErrorKind::Shape);
        CHECK(test::contains(m, "in_proj_bias: expected shape (24,), found (5,)"));
    }
}

TEST_CASE("mha: float64 weights with float32 inputs compute in float64 under Precision::Auto") {
    const MhaWeights w32 = seeded(8, 2, 4);
    io::NamedTensors dict64;
    for (const auto& [name, t] : mha_state_dict(w32)) dict64.emplace_back(name, Tensor(t.cast<double>()));
    const MhaWeights w64 = mha_weights_from_state_dict(dict64, "", "w64");
    const Tensor q = normal({1, 3, 8}, 5);
    const Tensor q64(q.cast<double>());
    const Tensor expected = multi_head_attention(q64, q64, q64, w64, with_heads(2)).output;
    const Tensor automatic = multi_head_attention(q, q, q, w64, with_heads(2)).output;
    CHECK(automatic.dtype() == DType::Float64);
    CHECK(test::max_abs_diff(automatic, expected) == 0.0);
    MhaOptions forced = with_heads(2);
    forced.attention.precision = Precision::Float32;
    CHECK(multi_head_attention(q, q, q, w64, forced).output.dtype() == DType::Float32);
    CHECK(multi_head_attention(q, q, q, w32, with_heads(2)).output.dtype() == DType::Float32);
}

TEST_CASE("mha: heads that do not divide are usage errors; shape mismatches name the tensor") {
    const MhaWeights w = seeded(8, 2, 8);
    const Tensor q = normal({1, 3, 8}, 9);
    CHECK(test::contains(test::error_of([&] { multi_head_attention(q, q, q, w, with_heads(3)); }, ErrorKind::Usage),
                         "must divide by 3 heads"));
    MhaOptions g = with_heads(2);
    g.kv_heads = 3;
    CHECK(test::contains(test::error_of([&] { multi_head_attention(q, q, q, w, g); }, ErrorKind::Usage),
                         "3 must divide 2"));
    const Tensor wrong = normal({1, 3, 6}, 10);
    CHECK(test::contains(
        test::error_of([&] { multi_head_attention(q, wrong, wrong, w, with_heads(2)); }, ErrorKind::Shape),
        "key: expected (N, L, 8)"));
    MhaInit bad;
    bad.embed_dim = 10;
    bad.heads = 4;
    CHECK(test::contains(test::error_of([&] { init_mha_weights(bad, 0); }, ErrorKind::Usage), "multiple of 4 heads"));
}

TEST_CASE("mha: grouped-query heads equal MHA with the K/V projections repeated per group") {
    const std::size_t e = 16, heads = 4, groups = 2, hd = e / heads;
    const MhaWeights grouped = seeded(e, heads, 11, groups);
    CHECK(grouped.k_weight.shape() == Shape{groups * hd, e});
    MhaWeights repeated = grouped;
    xt::xarray<float> k = xt::zeros<float>({e, e}), v = xt::zeros<float>({e, e});
    for (std::size_t h = 0; h < heads; ++h) {
        const std::size_t g = h / (heads / groups);
        xt::view(k, xt::range(h * hd, h * hd + hd)) =
            xt::view(grouped.k_weight.values<float>(), xt::range(g * hd, g * hd + hd));
        xt::view(v, xt::range(h * hd, h * hd + hd)) =
            xt::view(grouped.v_weight.values<float>(), xt::range(g * hd, g * hd + hd));
    }
    repeated.k_weight = Tensor(k);
    repeated.v_weight = Tensor(v);
    repeated.k_bias = Tensor::zeros(DType::Float32, {e});
    repeated.v_bias = Tensor::zeros(DType::Float32, {e});
    const Tensor q = normal({2, 5, e}, 12), kv = normal({2, 6, e}, 13);
    MhaOptions o = with_heads(heads);
    o.kv_heads = groups;
    const Collected a = with_weights(q, kv, kv, grouped, o);
    const Collected b = with_weights(q, kv, kv, repeated, with_heads(heads));
    CHECK(test::max_abs_diff(a.output, b.output) <= 1e-6);
    CHECK(test::max_abs_diff(a.weights, b.weights) <= 1e-6);
    // Saved under separate-Linear names, which PyTorch's module cannot hold.
    CHECK(mha_state_dict(grouped).front().first == "q_proj.weight");
}

TEST_CASE("mha: averaged weights are the mean over heads; unbatched input drops N") {
    const MhaWeights w = seeded(8, 2, 14);
    const Tensor q = normal({1, 3, 8}, 15);
    MhaOptions avg = with_heads(2);
    avg.average_heads = true;
    const Collected per_head = with_weights(q, q, q, w, with_heads(2));
    const Collected averaged = with_weights(q, q, q, w, avg);
    CHECK(averaged.weights.shape() == Shape{1, 3, 3});
    const xt::xarray<float> mean = xt::mean(per_head.weights.values<float>(), {1});
    CHECK(test::max_abs_diff(averaged.weights, Tensor(mean)) <= 1e-7);

    const Tensor unbatched(xt::xarray<float>(xt::view(q.values<float>(), 0)));
    const Collected u = with_weights(unbatched, unbatched, unbatched, w, with_heads(2));
    CHECK(u.output.shape() == Shape{3, 8});
    CHECK(u.weights.shape() == Shape{2, 3, 3});
    CHECK(test::max_abs_diff(u.output, Tensor(xt::xarray<float>(xt::view(per_head.output.values<float>(), 0)))) == 0.0);
}

TEST_CASE("mha: with bias_k or a zero key, causal and key lengths still leave the appended keys visible") {
    const MhaWeights w = seeded_with_bias_kv(8, 2, 16);
    const Tensor q = normal({2, 4, 8}, 17);
    MhaOptions o = with_heads(2);
    o.add_zero_attn = true;
    o.attention.causal = Causal::TopLeft;
    o.attention.key_lengths = {2, 4};
    const Collected r = with_weights(q, q, q, w, o);
    const auto& s = r.weights.values<float>();
    REQUIRE(r.weights.shape() == Shape{2, 2, 4, 6});
    for (std::size_t h = 0; h < 2; ++h) {
        for (std::size_t i = 0; i < 4; ++i) {
            CHECK(s(0, h, i, 4) > 0.0f);  // bias key
            CHECK(s(0, h, i, 5) > 0.0f);  // zero key
            for (std::size_t j = 0; j < 4; ++j) {
                const bool visible = j <= i && j < 2;  // batch item 0 has key length 2
                CHECK((s(0, h, i, j) > 0.0f) == visible);
            }
        }
    }
}

TEST_CASE("mha: weights and logits streamed to a sink are those collected whole, each row once") {
    // 130 queries: three row blocks per head, handed over from several threads.
    const MhaWeights w = seeded(16, 4, 18);
    const Tensor q = normal({2, 130, 16}, 19), k = normal({2, 100, 16}, 20);
    MhaOptions o = with_heads(4);
    o.attention.causal = Causal::BottomRight;
    o.attention.key_lengths = {70, 100};
    o.attention.threads = 2;
    TensorScoreSink weights, logits;
    const Tensor collected = multi_head_attention(q, k, k, w, o, &weights, &logits).output;
    RecordingSink streamed_weights, streamed_logits;
    const Tensor streamed = multi_head_attention(q, k, k, w, o, &streamed_weights, &streamed_logits).output;
    CHECK(test::max_abs_diff(streamed, collected) == 0.0);
    for (const auto& [sink, whole] : {std::pair{&streamed_weights, &weights}, {&streamed_logits, &logits}}) {
        CHECK(sink->begins() == 1);
        CHECK(sink->dtype() == DType::Float32);
        CHECK(sink->shape() == Shape{2, 4, 130, 100});
        CHECK(sink->repeated() == 0);
        CHECK(test::max_abs_diff(sink->tensor(), whole->tensor()) == 0.0);
    }
}

TEST_CASE("mha: unbatched input reports (H, L, S) to the sinks, and (L, S) averaged") {
    const MhaWeights w = seeded_with_bias_kv(8, 2, 21);
    const Tensor batched = normal({1, 3, 8}, 22);
    const Tensor q(xt::xarray<float>(xt::view(batched.values<float>(), 0)));
    MhaOptions o = with_heads(2);
    o.add_zero_attn = true;
    RecordingSink weights, logits;
    multi_head_attention(q, q, q, w, o, &weights, &logits);
    CHECK(weights.shape() == Shape{2, 3, 5});  // S = 3 keys + bias_k + the zero key
    CHECK(logits.shape() == Shape{2, 3, 5});
    const Collected per_batch = with_weights(batched, batched, batched, w, o);
    CHECK(test::max_abs_diff(weights.tensor(),
                             Tensor(xt::xarray<float>(xt::view(per_batch.weights.values<float>(), 0)))) == 0.0);

    o.average_heads = true;
    RecordingSink averaged;
    TensorScoreSink collected;
    multi_head_attention(q, q, q, w, o, &averaged, &logits);
    multi_head_attention(q, q, q, w, o, &collected);
    CHECK(averaged.shape() == Shape{3, 5});
    CHECK(logits.shape() == Shape{2, 3, 5});  // logits stay per head
    CHECK(collected.tensor().shape() == Shape{3, 5});
    CHECK(test::max_abs_diff(averaged.tensor(), collected.tensor()) == 0.0);
}

TEST_CASE("mha: averaged weights reach a sink a whole matrix per batch index, the exact mean over heads") {
    const MhaWeights w = seeded(16, 4, 23);
    for (DType dtype : {DType::Float32, DType::Float64}) {
        CAPTURE(dtype_name(dtype));
        const Tensor q = Tensor(normal({3, 70, 16}, 24).cast<double>());
        MhaOptions o = with_heads(4);
        o.attention.causal = Causal::TopLeft;
        o.attention.precision = dtype == DType::Float64 ? Precision::Float64 : Precision::Float32;
        const Collected per_head = with_weights(q, q, q, w, o);
        o.average_heads = true;
        RecordingSink averaged;
        multi_head_attention(q, q, q, w, o, &averaged);
        CHECK(averaged.begins() == 1);
        CHECK(averaged.dtype() == dtype);
        CHECK(averaged.shape() == Shape{3, 70, 70});
        CHECK(averaged.repeated() == 0);
        const Tensor mean = per_head.weights.visit([](const auto& a) -> Tensor {
            using T = typename std::decay_t<decltype(a)>::value_type;
            if constexpr (std::is_floating_point_v<T>) {
                return Tensor(xt::xarray<T>(xt::mean(a, {1})));
            } else {
                FAIL("float weights expected");
                return Tensor();
            }
        });
        CHECK(test::max_abs_diff(averaged.tensor(), mean) == 0.0);
    }
}

TEST_CASE("mha: weights or logits that cannot fit in memory are refused before the kernel runs, naming them") {
    if (!test::require_file("/proc/meminfo")) return;  // the memory attn::core compares with
    // E = 1, L = S = 10^6: 4 TB of float32 weights per head from 4 MB of input.
    const MhaWeights w = seeded(1, 1, 25);
    const Tensor q = Tensor::zeros(DType::Float32, {1, 1000000, 1});
    const MhaOptions o = with_heads(1);
    TensorScoreSink weights, logits;
    auto refused = [&](const MhaOptions& options, ScoreSink* to_weights, ScoreSink* to_logits) {
        return test::error_arg_of([&] { multi_head_attention(q, q, q, w, options, to_weights, to_logits); });
    };
    const std::string m = test::error_of([&] { multi_head_attention(q, q, q, w, o, &weights); }, ErrorKind::Value);
    CHECK(m.rfind("weights: needs 4.0 TB for float32 output (1, 1, 1000000, 1) + weights (1, 1, 1000000, 1000000), ",
                  0) == 0);
    CHECK(refused(o, &weights, nullptr) == Arg::Weights);
    CHECK(refused(o, nullptr, &logits) == Arg::Logits);
    CHECK(refused(o, &weights, &logits) == Arg::WeightsAndLogits);
    CHECK(weights.tensor().rank() == 0);  // begin() never came: nothing was allocated

    // Averaging holds every head's weights, even for a sink that keeps nothing itself.
    MhaOptions average = o;
    average.average_heads = true;
    RecordingSink streamed;
    CHECK(refused(average, &streamed, nullptr) == Arg::Weights);
    CHECK(streamed.begins() == 0);
}
