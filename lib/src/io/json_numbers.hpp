// Internal: JSON numbers as the JSON tensor reader scans and converts them (docs/formats.md,
// "JSON tensors"). The strict JSON number grammar, scanned with SWAR digit runs (eight
// digits a step), and the conversion of its digits to float32/float64 by Clinger's exact
// fast path, which decides the common cases with one correctly rounded operation; what it
// cannot decide the caller gives to std::from_chars.
//
// Everything on the per-element path is inline here: the reader calls it once per number,
// and a call into another translation unit would cost as much as the scan.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace attn::detail {

inline bool is_json_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
inline bool is_digit(char c) { return static_cast<unsigned char>(c - '0') < 10; }

// A JSON number as scanned: where it ends (null when the text is not a JSON number) and
// its value as digits * 10^exponent, which converts exactly in the common cases.
struct NumberToken {
    const char* end = nullptr;
    bool integral = true;  // no fraction and no exponent
    bool negative = false;
    bool exact = true;         // every significant digit is in `digits`
    std::uint64_t digits = 0;  // the significant digits, at most 19 of them
    int exponent = 0;
};

// Eight ASCII digits as their value, the first digit in the lowest byte: the SWAR
// conversion of fast_float (Lemire), three multiplications instead of eight dependent
// multiply-adds. Zero bytes count as leading zeros.
inline std::uint32_t eight_digits_value(std::uint64_t v) {
    v = ((v & 0x0F0F0F0F0F0F0F0Fu) * 2561) >> 8;
    v = ((v & 0x00FF00FF00FF00FFu) * 6553601) >> 16;
    return static_cast<std::uint32_t>(((v & 0x0000FFFF0000FFFFu) * 42949672960001u) >> 32);
}

// Eight bytes of text with the first one in the lowest byte of the word.
inline std::uint64_t load_eight(const char* text) {
    std::uint64_t v = 0;
    std::memcpy(&v, text, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

inline constexpr std::array<std::uint64_t, 8> kPowersOfTen64 = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};

// `value` followed by the (already checked) digits in [first, last); `end` ends the text.
inline std::uint64_t append_digits(std::uint64_t value, const char* first, const char* last, const char* end) {
    for (; last - first >= 8; first += 8) value = value * 100000000u + eight_digits_value(load_eight(first));
    const auto count = static_cast<std::size_t>(last - first);
    if (count == 0) return value;
    if (end - first >= 8) {
        // The `count` digits moved to the top bytes, zeros (leading zeros) below them.
        const std::uint64_t v = load_eight(first) << (8 * (8 - count));
        return value * kPowersOfTen64[count] + eight_digits_value(v);
    }
    for (; first < last; ++first) value = value * 10 + static_cast<std::uint64_t>(*first - '0');
    return value;
}

// The end of the run of digits at q. Eight bytes at a time where the text allows: one
// unpredictable loop exit per run instead of one per digit is what makes this fast.
inline const char* skip_digits(const char* q, const char* end) {
    while (end - q >= 8) {
        const std::uint64_t v = load_eight(q);
        // The high bit of each byte that is not '0'..'9'. Borrows and carries only move
        // upwards, so the lowest flagged byte, the one that matters, is always right.
        const std::uint64_t non_digits = ((v + 0x4646464646464646u) | (v - 0x3030303030303030u)) & 0x8080808080808080u;
        if (non_digits != 0) return q + (__builtin_ctzll(non_digits) >> 3);
        q += 8;
    }
    while (q < end && is_digit(*q)) ++q;
    return q;
}

// The strict JSON number grammar, -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, at q;
// from_chars alone would also take "1.", ".5", "01" and "-inf". kWithValue also gathers
// digits and exponent (the structural pass needs only where the number ends).
template <bool kWithValue>
NumberToken scan_number(const char* q, const char* end) {
    NumberToken token;
    if (q < end && *q == '-') {
        token.negative = true;
        ++q;
    }
    const char* integer_first = q;
    q = skip_digits(q, end);
    const char* integer_last = q;
    if (integer_last == integer_first) return token;
    if (*integer_first == '0' && integer_last - integer_first > 1) return token;  // leading zeros
    const char* fraction_first = q;
    const char* fraction_last = q;
    if (q < end && *q == '.') {
        fraction_first = ++q;
        q = skip_digits(q, end);
        fraction_last = q;
        if (fraction_last == fraction_first) return token;
        token.integral = false;
    }
    int exponent = 0;
    if (q < end && (*q == 'e' || *q == 'E')) {
        ++q;
        bool negative_exponent = false;
        if (q < end && (*q == '+' || *q == '-')) negative_exponent = *q++ == '-';
        if (q >= end || !is_digit(*q)) return token;
        for (; q < end && is_digit(*q); ++q) exponent = std::min(exponent * 10 + (*q - '0'), 100000);
        if (negative_exponent) exponent = -exponent;
        token.integral = false;
    }
    token.end = q;
    if constexpr (kWithValue) {
        // Clamped: a fraction of a billion zeros must not overflow the exponent.
        token.exponent =
            static_cast<int>(std::max<std::ptrdiff_t>(exponent - (fraction_last - fraction_first), -1000000));
        if (*integer_first == '0') {
            // 0.000123: the zeros after the point are not significant digits.
            while (fraction_first < fraction_last && *fraction_first == '0') ++fraction_first;
            integer_first = integer_last;
        }
        if ((integer_last - integer_first) + (fraction_last - fraction_first) > 19) {
            token.exact = false;
        } else {
            token.digits =
                append_digits(append_digits(0, integer_first, integer_last, end), fraction_first, fraction_last, end);
        }
    }
    return token;
}

// The powers of ten that a double holds exactly.
inline constexpr std::array<double, 23> kExactPowersOfTen = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                                             1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                                             1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

// Clinger's fast path: digits below 2^53 and a power of ten a double holds exactly give
// one correctly rounded operation. For float32 the double is rounded once more, which is
// still correct unless the double fell exactly halfway between two floats (it can reach
// such a midpoint, itself a double, but never cross it). float32 also takes up to 19
// digits, the 17 of Python's repr of a widened float32 ("0.13207972049713135"): the
// double is then within 2 ulps of the true value, so unless it lies within 2 ulps of a
// float32 midpoint it rounds to the right float. False when from_chars must decide.
template <class T>
bool convert_simple_decimal(const NumberToken& token, T& out) {
    constexpr int kMaxPower = static_cast<int>(kExactPowersOfTen.size()) - 1;
    constexpr std::uint64_t kExactDigits = std::uint64_t{1} << 53;
    if (!token.exact || token.exponent < -kMaxPower || token.exponent > kMaxPower) return false;
    if (std::is_same_v<T, double> && token.digits > kExactDigits) return false;
    auto value = static_cast<double>(token.digits);
    value = token.exponent < 0 ? value / kExactPowersOfTen[static_cast<std::size_t>(-token.exponent)]
                               : value * kExactPowersOfTen[static_cast<std::size_t>(token.exponent)];
    if constexpr (std::is_same_v<T, float>) {
        // |value| is 0 or in [1e-22, 1e38]: a normal float, where the 29 low mantissa bits
        // of the double are what rounding to float drops, and 1 then 28 zeros is halfway.
        if (value > 1e38) return false;  // near float's overflow
        std::uint64_t bits = 0;
        std::memcpy(&bits, &value, sizeof bits);
        constexpr std::uint64_t kHalfway = 0x10000000u;
        const std::uint64_t margin = token.digits > kExactDigits ? 4 : 0;
        // |dropped - halfway| <= margin as one unsigned comparison: the sign of that
        // difference is a coin flip, which a branch would mispredict half the time.
        if ((bits & 0x1FFFFFFFu) - (kHalfway - margin) <= 2 * margin) return false;
    }
    out = static_cast<T>(value);
    if (token.negative) out = -out;
    return true;
}

// The decimal exponent of the leading nonzero digit of the JSON number [first, last):
// 2 for "123.4", -3 for "0.00123", 1001 for "1e1001". The rare path: only for numbers
// std::from_chars finds out of range.
long leading_digit_exponent(const char* first, const char* last);

// from_chars reports a value beyond the type's range without storing it; Python (and
// numpy's cast from float) make it infinite when too large and zero when too small.
template <class T>
T out_of_range_value(const char* first, const char* last) {
    const T value = leading_digit_exponent(first, last) > 0 ? std::numeric_limits<T>::infinity() : T{0};
    return *first == '-' ? -value : value;
}

}  // namespace attn::detail
