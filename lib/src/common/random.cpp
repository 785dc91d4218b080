#include "attn/random.hpp"

#include <cmath>

namespace attn {

// ATen: x = (bits & (2^digits − 1)) · 2^−digits, then x · (to − from) + from, in the
// value type (its dist_acctype on CPU).
float TorchGenerator::uniform(float from, float to) {
    const float x = static_cast<float>(random() & ((1u << 24) - 1)) * (1.0f / 16777216.0f);
    return x * (to - from) + from;
}

double TorchGenerator::uniform(double from, double to) {
    const double x = static_cast<double>(random64() & ((std::uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
    return x * (to - from) + from;
}

template <class T>
void TorchGenerator::fill_normal(T* data, std::size_t count, double mean, double std) {
    constexpr double kTwoPi = 6.283185307179586;
    for (std::size_t i = 0; i < count; i += 2) {
        const double u1 = 1.0 - uniform(0.0, 1.0);  // (0, 1]: log is finite
        const double u2 = uniform(0.0, 1.0);
        const double radius = std::sqrt(-2.0 * std::log(u1));
        data[i] = static_cast<T>(radius * std::cos(kTwoPi * u2) * std + mean);
        if (i + 1 < count) data[i + 1] = static_cast<T>(radius * std::sin(kTwoPi * u2) * std + mean);
    }
}

template void TorchGenerator::fill_normal<float>(float*, std::size_t, double, double);
template void TorchGenerator::fill_normal<double>(double*, std::size_t, double, double);

Tensor random_tensor(const Shape& shape, Distribution distribution, std::uint64_t seed, DType dtype) {
    if (dtype != DType::Float32 && dtype != DType::Float64) {
        throw Error(ErrorKind::Usage, Arg::DType,
                    "random tensors are float32 or float64, not " + std::string(dtype_name(dtype)));
    }
    checked_element_count(shape, Arg::Shape);
    Tensor tensor = Tensor::empty(dtype, shape, Arg::Shape);
    TorchGenerator generator(seed);
    tensor.visit([&](auto& a) {
        using T = typename std::decay_t<decltype(a)>::value_type;
        if constexpr (std::is_floating_point_v<T>) {
            if (distribution == Distribution::Uniform) {
                generator.fill_uniform(a.data(), a.size(), 0.0, 1.0);
            } else {
                generator.fill_normal(a.data(), a.size(), 0.0, 1.0);
            }
        }
    });
    return tensor;
}

}  // namespace attn
