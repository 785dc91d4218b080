// attn/half.hpp - float16 and bfloat16 as storage types: 16 bits that convert exactly to
// float, and from any number with rounding to nearest-even.
//
// They hold what a file said, so that `convert` writes back what it read; nothing is
// computed in them. Their conversions are explicit, so arithmetic on them does not
// compile: every computation converts them to float32 first (static_cast<float>).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace attn {
namespace detail {

inline float float_from_bits(std::uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

inline std::uint64_t double_bits(double d) {
    std::uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    return bits;
}

// The 16 bits of a number of `mantissa_bits` explicit mantissa bits and exponent bias
// `bias` (float16: 10, 15; bfloat16: 7, 127) nearest to x, ties to even; beyond the
// largest finite value, infinity; a NaN stays a NaN (quiet, sign and top payload bits kept).
inline std::uint16_t encode_binary16(double x, int mantissa_bits, int bias) {
    const int exponent_bits = 15 - mantissa_bits;
    const auto exponent_all = static_cast<std::uint16_t>(((1u << exponent_bits) - 1) << mantissa_bits);
    const std::uint64_t bits = double_bits(x);
    const auto sign = static_cast<std::uint16_t>((bits >> 48) & 0x8000u);
    if (std::isnan(x)) {
        const auto payload = static_cast<std::uint16_t>((bits >> (52 - mantissa_bits)) & ((1u << mantissa_bits) - 1));
        const auto quiet = static_cast<std::uint16_t>(1u << (mantissa_bits - 1));
        return static_cast<std::uint16_t>(sign | exponent_all | quiet | payload);
    }
    const double a = std::fabs(x);
    if (std::isinf(a)) return static_cast<std::uint16_t>(sign | exponent_all);
    const int min_exponent = 1 - bias;  // of the smallest normal number
    if (a < std::ldexp(1.0, min_exponent)) {
        // Subnormal (or zero): a multiple of 2^(min_exponent - mantissa_bits); rounding up
        // to 2^mantissa_bits units gives the smallest normal number's bits, as it should.
        const double units = std::nearbyint(std::ldexp(a, mantissa_bits - min_exponent));
        return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(units));
    }
    int e = 0;
    const double m = std::frexp(a, &e);                           // a = m * 2^e, m in [0.5, 1)
    double q = std::nearbyint(std::ldexp(m, mantissa_bits + 1));  // in [2^mb, 2^(mb+1)]
    if (q == std::ldexp(1.0, mantissa_bits + 1)) {
        q = std::ldexp(1.0, mantissa_bits);
        ++e;
    }
    const int field = e - 1 + bias;
    if (field >= (1 << exponent_bits) - 1) return static_cast<std::uint16_t>(sign | exponent_all);
    const auto mantissa = static_cast<std::uint16_t>(static_cast<std::uint32_t>(q) - (1u << mantissa_bits));
    return static_cast<std::uint16_t>(sign | (field << mantissa_bits) | mantissa);
}

inline float decode_float16(std::uint16_t bits) {
    const std::uint32_t sign = std::uint32_t(bits & 0x8000u) << 16;
    std::uint32_t exponent = (bits >> 10) & 0x1Fu;
    std::uint32_t mantissa = bits & 0x3FFu;
    if (exponent == 0x1F) return float_from_bits(sign | 0x7F800000u | (mantissa << 13));  // inf or NaN
    if (exponent == 0) {
        if (mantissa == 0) return float_from_bits(sign);
        exponent = 127 - 15 + 1;  // subnormal: normalise
        while ((mantissa & 0x400u) == 0) {
            mantissa <<= 1;
            --exponent;
        }
        return float_from_bits(sign | (exponent << 23) | ((mantissa & 0x3FFu) << 13));
    }
    return float_from_bits(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

template <class T>
constexpr bool is_number_v = std::is_arithmetic_v<T>;

}  // namespace detail

// IEEE 754 binary16: 1 sign, 5 exponent, 10 mantissa bits (numpy's float16, '<f2').
struct float16 {
    std::uint16_t bits = 0;

    constexpr float16() = default;
    template <class T, std::enable_if_t<detail::is_number_v<T>, int> = 0>
    explicit float16(T value) : bits(detail::encode_binary16(static_cast<double>(value), 10, 15)) {}
    static float16 from_bits(std::uint16_t b) {
        float16 h;
        h.bits = b;
        return h;
    }
    template <class T, std::enable_if_t<detail::is_number_v<T>, int> = 0>
    explicit operator T() const {
        return static_cast<T>(detail::decode_float16(bits));
    }
};

// bfloat16: the top 16 bits of a float32 (1 sign, 8 exponent, 7 mantissa bits).
struct bfloat16 {
    std::uint16_t bits = 0;

    constexpr bfloat16() = default;
    template <class T, std::enable_if_t<detail::is_number_v<T>, int> = 0>
    explicit bfloat16(T value) : bits(detail::encode_binary16(static_cast<double>(value), 7, 127)) {}
    static bfloat16 from_bits(std::uint16_t b) {
        bfloat16 h;
        h.bits = b;
        return h;
    }
    template <class T, std::enable_if_t<detail::is_number_v<T>, int> = 0>
    explicit operator T() const {
        return static_cast<T>(detail::float_from_bits(std::uint32_t(bits) << 16));
    }
};

static_assert(sizeof(float16) == 2 && std::is_trivially_copyable_v<float16>);
static_assert(sizeof(bfloat16) == 2 && std::is_trivially_copyable_v<bfloat16>);

// The half types: stored, never computed in.
template <class T>
constexpr bool is_half_v = std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>;

}  // namespace attn
