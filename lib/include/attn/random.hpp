// attn/random.hpp - deterministic random tensors, drawn the way PyTorch's CPU generator
// draws them.
//
// TorchGenerator is PyTorch's CPU generator: the standard 32-bit Mersenne Twister seeded
// as torch.manual_seed seeds it, and uniform draws made as ATen's
// uniform_real_distribution makes them (24 random bits for float32, 53 for float64). So
// `random_tensor(shape, Distribution::Uniform, seed)` equals
// `torch.manual_seed(seed); torch.rand(shape)` and the mha weight initialisation equals
// that of torch.nn.MultiheadAttention after torch.manual_seed. Normal draws use the
// Box–Muller transform and are deterministic, but not bit-identical to torch.randn.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>

#include "attn/tensor.hpp"

namespace attn {

class TorchGenerator {
public:
    explicit TorchGenerator(std::uint64_t seed) : engine_(static_cast<std::uint32_t>(seed)) {}

    std::uint32_t random() { return engine_(); }
    std::uint64_t random64() {
        const std::uint64_t hi = engine_();
        const std::uint64_t lo = engine_();
        return (hi << 32) | lo;
    }
    // One value of U[from, to), as ATen's uniform_real_distribution<T>.
    float uniform(float from, float to);
    double uniform(double from, double to);
    // Fills `count` values in order, as Tensor.uniform_(from, to) does for a contiguous tensor.
    template <class T>
    void fill_uniform(T* data, std::size_t count, double from, double to) {
        for (std::size_t i = 0; i < count; ++i) data[i] = uniform(static_cast<T>(from), static_cast<T>(to));
    }
    // Fills `count` values of N(mean, std²) (Box–Muller over uniform pairs).
    template <class T>
    void fill_normal(T* data, std::size_t count, double mean, double std);

private:
    std::mt19937 engine_;
};

enum class Distribution { Uniform, Normal };

// A float32 or float64 tensor of U[0, 1) (torch.rand) or N(0, 1) values.
Tensor random_tensor(const Shape& shape, Distribution distribution, std::uint64_t seed, DType dtype = DType::Float32);

}  // namespace attn
