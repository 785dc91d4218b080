// What the attention tests share: random inputs, and a run of the fast kernel in both its
// forms against the reference with every result compared.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>

#include "attn/attention.hpp"
#include "attn/random.hpp"
#include "test_support.hpp"

namespace attn::test {

inline Tensor normal(const Shape& shape, std::uint64_t seed, DType dtype = DType::Float32) {
    return random_tensor(shape, Distribution::Normal, seed, dtype);
}

struct Run {
    Tensor output, weights, logits, lse;
};

inline Run run(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options,
               bool reference = false) {
    TensorScoreSink weights, logits;
    Run r;
    r.output = reference ? reference_attention(q, k, v, options, &weights, &logits, &r.lse)
                         : scaled_dot_product_attention(q, k, v, options, &weights, &logits, &r.lse);
    r.weights = std::move(weights.tensor());
    r.logits = std::move(logits.tensor());
    return r;
}

// Both implementations, checked against each other (output, weights, logits, LSE);
// returns the fast one's result. The fast kernel runs twice: with sinks (whole rows,
// exact weights) and without (the flash form, online softmax over key tiles).
inline Run run_both(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options,
                    double tol = 2e-5) {
    Run fast = run(q, k, v, options);
    Run ref = run(q, k, v, options, true);
    Tensor flash_lse;
    const Tensor flash = scaled_dot_product_attention(q, k, v, options, nullptr, nullptr, &flash_lse);
    CHECK(max_abs_diff(flash, ref.output) <= tol);
    CHECK(max_abs_diff(flash_lse, ref.lse) <= tol * 10);
    CHECK(max_abs_diff(fast.output, ref.output) <= tol);
    CHECK(max_abs_diff(fast.weights, ref.weights) <= tol);
    CHECK(max_abs_diff(fast.logits, ref.logits) <= tol * 10);
    CHECK(max_abs_diff(fast.lse, ref.lse) <= tol * 10);
    return fast;
}

}  // namespace attn::test
