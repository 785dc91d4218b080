// Computes attention through the installed library and checks one value by hand:
// with identical keys the weights are uniform and the output is the mean of V's rows.
#include <cmath>
#include <cstdio>

#include <attn/attention.hpp>

int main() {
    xt::xarray<float> q = {{1.0f, 2.0f}, {3.0f, -1.0f}};
    xt::xarray<float> k = {{1.0f, 1.0f}, {1.0f, 1.0f}, {1.0f, 1.0f}};
    xt::xarray<float> v = xt::xarray<float>::from_shape({3, 1});
    v(0, 0) = 1.0f;
    v(1, 0) = 2.0f;
    v(2, 0) = 6.0f;
    attn::TensorScoreSink weights;
    const attn::Tensor out =
        attn::scaled_dot_product_attention(attn::Tensor(q), attn::Tensor(k), attn::Tensor(v), {}, &weights);
    const float got = out.values<float>()(1, 0);
    const float w = weights.tensor().values<float>()(0, 2);
    if (std::abs(got - 3.0f) > 1e-6f || std::abs(w - 1.0f / 3.0f) > 1e-6f) {
        std::fprintf(stderr, "attn_consumer: expected output 3 and weight 1/3, got %g and %g\n", got, w);
        return 1;
    }
    std::printf("attn_consumer: ok\n");
    return 0;
}
