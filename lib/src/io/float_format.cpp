// Shortest round-trip float text (float_format.hpp): float32 by Schubfach, float64 by
// std::to_chars.
//
// libstdc++'s std::to_chars(float) costs about 30 ns a value, which alone caps writing JSON
// at ~130 MB/s of float32. This is Schubfach (R. Giulietti, "The Schubfach way to render
// doubles", 2020) specialised to float32, where the few products involved are small
// enough to compute exactly with 128-bit integers instead of from a table of rounded
// powers of ten. Its output is byte for byte that of std::to_chars(float): the shortest
// digits that read back to the value, the closest such digits when there are several,
// and the shorter of fixed and scientific notation (fixed on a tie).

#include "io/float_format.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>

namespace attn::detail {
namespace {
using UInt128 = __uint128_t;  // GCC and Clang

constexpr std::array<UInt128, 46> kPowersOfFive = [] {
    std::array<UInt128, 46> powers{};
    powers[0] = 1;
    for (std::size_t i = 1; i < powers.size(); ++i) powers[i] = powers[i - 1] * 5;
    return powers;
}();

constexpr char kDigitPairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

// The two characters of n < 100.
const char* digit_pair(unsigned n) { return kDigitPairs + std::size_t{2} * n; }

// floor(q * log10(2)) and floor(log10(3/4 * 2^q)) for the q of float32 (Schubfach's
// fixed-point forms; the arithmetic right shift is floor division).
int floor_log10_pow2(int q) { return static_cast<int>((q * std::int64_t{661971961083}) >> 41); }
int floor_log10_three_quarters_pow2(int q) {
    return static_cast<int>((q * std::int64_t{661971961083} - std::int64_t{274743187321}) >> 41);
}

// floor(c * 2^q * 10^-k) with its lowest bit set when the product is not an integer.
// Compared with an even integer this answers exactly as the real product would.
std::uint64_t scale_round_to_odd(std::uint64_t c, int q, int k) {
    if (k <= 0) {
        // c * 5^-k * 2^(q-k), c * 5^-k held as high * 2^64 + low64 (up to 132 bits).
        const UInt128 five = kPowersOfFive[static_cast<std::size_t>(-k)];
        const UInt128 low = static_cast<UInt128>(c) * static_cast<std::uint64_t>(five);
        const UInt128 high = static_cast<UInt128>(c) * static_cast<std::uint64_t>(five >> 64) + (low >> 64);
        const auto low64 = static_cast<std::uint64_t>(low);
        const int shift = k - q;
        if (shift <= 0) return static_cast<std::uint64_t>(((high << 64) | low64) << -shift);  // q in [0, 3]
        if (shift >= 64) {
            const int high_shift = shift - 64;
            const bool inexact = low64 != 0 || (high & ((UInt128{1} << high_shift) - 1)) != 0;
            return static_cast<std::uint64_t>(high >> high_shift) | static_cast<std::uint64_t>(inexact);
        }
        const UInt128 whole = (high << 64) | low64;  // here -k <= 28, so it fits
        const bool inexact = (whole & ((UInt128{1} << shift) - 1)) != 0;
        return static_cast<std::uint64_t>(whole >> shift) | static_cast<std::uint64_t>(inexact);
    }
    // Values of 2^27 and more: c * 2^(q-k) / 5^k, with q > k.
    const UInt128 numerator = static_cast<UInt128>(c) << (q - k);
    const UInt128 five = kPowersOfFive[static_cast<std::size_t>(k)];
    const UInt128 quotient = numerator / five;
    return static_cast<std::uint64_t>(quotient) | static_cast<std::uint64_t>(quotient * five != numerator);
}

// Sixteen bytes from `from` to `to`: one fixed-size move instead of a call to memcpy
// with a variable length, which costs more than the copy. Callers leave room for it.
void copy16(char* to, const char* from) { std::memcpy(to, from, 16); }

// The eight decimal digits of n < 10^8 as ASCII, the first in the lowest byte: each
// step splits every lane of the word in two with a multiply by a reciprocal (exact for
// these ranges), so there is no loop and no division.
std::uint64_t eight_digits_text(std::uint64_t n) {
    std::uint64_t v = (n / 10000) | ((n % 10000) << 32);             // two 4-digit lanes
    std::uint64_t high = ((v * 10486) >> 20) & 0x0000007F0000007Fu;  // lane / 100
    v = high | ((v - high * 100) << 16);                             // four 2-digit lanes
    high = ((v * 103) >> 10) & 0x000F000F000F000Fu;                  // lane / 10
    v = high | ((v - high * 10) << 8);                               // eight 1-digit lanes
    v |= 0x3030303030303030u;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

// digits * 10^exponent (digits < 10^9) in the shorter of fixed and scientific notation,
// as to_chars does. `exact_integer` is the value itself when it is an integer too large
// for fixed notation to show it through `digits` alone (to_chars prints 123456792, not
// 123456790). `out` needs 32 bytes of room; the result is at most 15 characters.
char* write_decimal(char* out, std::uint64_t digits, int exponent, std::uint64_t exact_integer) {
    // "0000" then the 9 digits, zero-padded: the zeros serve "0.00ddd" below, and copy16
    // may read up to 16 bytes past any digit.
    char text[32] = {'0', '0', '0', '0'};
    const std::uint64_t low = digits % 100000000;
    text[4] = static_cast<char>('0' + digits / 100000000);
    const std::uint64_t low_text = eight_digits_text(low);
    std::memcpy(text + 5, &low_text, 8);
    int length = 1;  // of digits, without leading zeros
    for (std::uint64_t power = 10; power <= 100000000; power *= 10) length += digits >= power ? 1 : 0;
    // Trailing zeros: the last '0' bytes of the eight low digits (all eight when low is 0).
    int zeros = 8;
    if (low != 0) {
        std::uint64_t values = 0;
        std::memcpy(&values, text + 5, 8);
        values ^= 0x3030303030303030u;  // digit values, 0 to 9
        const std::uint64_t nonzero = ((values + 0x7F7F7F7F7F7F7F7Fu) | values) & 0x8080808080808080u;
        zeros = __builtin_clzll(nonzero) >> 3;
    }
    const int first = 13 - length;
    const int count = length - zeros;
    exponent += zeros;
    const int scientific_exponent = exponent + count - 1;
    const int magnitude = scientific_exponent < 0 ? -scientific_exponent : scientific_exponent;
    const int scientific_length = count + (count > 1 ? 1 : 0) + 2 + (magnitude >= 100 ? 3 : 2);
    const int whole = count + exponent;  // digits before the point
    const int fixed_length = exponent >= 0 ? count + exponent : (whole > 0 ? count + 1 : 2 - exponent);
    if (fixed_length <= scientific_length) {
        if (exponent > 0) return std::to_chars(out, out + 20, exact_integer).ptr;
        // d.ddd, ddd or 0.00ddd (at most 3 zeros, or scientific would be shorter) alike:
        // the integer part, the point, the fraction, from the zero-padded text.
        const int integer_length = whole > 0 ? whole : 1;
        const int start = whole > 0 ? first : first - 1 + whole;
        const int fraction_length = count - whole;
        copy16(out, text + start);
        out[integer_length] = '.';
        copy16(out + integer_length + 1, text + start + integer_length);
        return out + integer_length + (fraction_length > 0 ? fraction_length + 1 : 0);
    }
    out[0] = text[first];
    out[1] = '.';
    copy16(out + 2, text + first + 1);
    out += count > 1 ? count + 1 : 1;
    *out++ = 'e';
    *out++ = scientific_exponent < 0 ? '-' : '+';
    if (magnitude >= 100) *out++ = static_cast<char>('0' + magnitude / 100);
    std::memcpy(out, digit_pair(static_cast<unsigned>(magnitude % 100)), 2);
    return out + 2;
}

// The one float32 magnitude whose shortest text, 7.038531e-26, does not survive Python:
// json.load makes it the nearest float64, which is exactly halfway between this float
// and the next, and numpy's cast then rounds to even, away from it. An exhaustive check
// of all 2^32 floats (shortest text -> strtod -> float) found no other.
constexpr std::uint32_t kDoubleRoundingTrap = 0x15AE43FDu;

// `condition ? if_true : if_false` computed with masks, never a branch.
std::uint64_t select(bool condition, std::uint64_t if_true, std::uint64_t if_false) {
    return if_false ^ ((if_true ^ if_false) & (std::uint64_t{0} - static_cast<std::uint64_t>(condition)));
}

// A float32 c * 2^q (c > 0) and the ends of its rounding interval, times 4 * 10^-k,
// each rounded to odd (scale_round_to_odd): what the choice of digits compares.
struct ScaledInterval {
    std::uint64_t middle = 0;
    std::uint64_t lower = 0;
    std::uint64_t upper = 0;
};

// `asymmetric`: c is a power of two, where the next float down is half as far as the
// next one up.
ScaledInterval scale_interval(std::uint64_t c, int q, int k, bool asymmetric) {
    const std::uint64_t c_lower = (c << 2) - (asymmetric ? 1 : 2);
    const int shift = k - q;
    if (k <= 0 && k >= -27 && shift > 0 && shift < 64) {
        // Values from about 1e-20 to 1e8 (most of any tensor): 5^-k fits 64 bits and one
        // 64x64 -> 128 bit product per end does it.
        const auto five = static_cast<std::uint64_t>(kPowersOfFive[static_cast<std::size_t>(-k)]);
        const auto scale = [&](std::uint64_t scaled_c) {
            const UInt128 product = static_cast<UInt128>(scaled_c) * five;
            const bool inexact = (static_cast<std::uint64_t>(product) << (64 - shift)) != 0;
            return static_cast<std::uint64_t>(product >> shift) | static_cast<std::uint64_t>(inexact);
        };
        return {scale(c << 2), scale(c_lower), scale((c << 2) + 2)};
    }
    return {scale_round_to_odd(c << 2, q, k), scale_round_to_odd(c_lower, q, k),
            scale_round_to_odd((c << 2) + 2, q, k)};
}

// The shortest digits in the interval (times 10^k), the closest to the value when there
// are several. An odd c rounds ties away from itself: the interval's ends are then excluded.
std::uint64_t shortest_digits(const ScaledInterval& scaled, std::uint64_t c) {
    const auto [middle, lower, upper] = scaled;
    const std::uint64_t open = c & 1;
    const std::uint64_t s = middle >> 2;
    // One digit fewer: at most one multiple of 10 fits in the interval. Every candidate
    // is tested and the choice made with conditional moves: these tests are coin flips
    // on real data, and mispredicted branches cost more than the arithmetic.
    const std::uint64_t s10 = s / 10 * 10;
    const std::uint64_t t10 = s10 + 10;
    const bool s10_in = lower + open <= s10 << 2;
    const bool t10_in = (t10 << 2) + open <= upper;
    const std::uint64_t t = s + 1;
    const bool s_in = lower + open <= s << 2;
    const bool t_in = (t << 2) + open <= upper;
    // When both s and t fit: the closer one, the even one on a tie. (Bitwise & and | on
    // purpose: short-circuit operators would bring the branches back.)
    const std::uint64_t midpoint = (s << 2) + 2;
    const bool s_closer = (middle < midpoint) | ((middle == midpoint) & ((s & 1) == 0));
    const bool pick_s = s_in & (!t_in | s_closer);
    return select(s10_in != t10_in, select(s10_in, s10, t10), select(pick_s, s, t));
}

}  // namespace

char* format_shortest(char* out, float value) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    *out = '-';
    out += bits >> 31;  // no branch: the sign of real data is a coin flip
    const std::uint32_t fraction = bits & 0x7FFFFFu;
    const int biased_exponent = static_cast<int>((bits >> 23) & 0xFFu);
    if (biased_exponent == 0 && fraction == 0) {
        *out++ = '0';
        return out;
    }
    // value = c * 2^q
    const std::uint64_t c = biased_exponent == 0 ? fraction : (fraction | 0x800000u);
    const int q = biased_exponent == 0 ? -149 : biased_exponent - 150;
    const bool asymmetric = fraction == 0 && biased_exponent > 1;
    const int k = asymmetric ? floor_log10_three_quarters_pow2(q) : floor_log10_pow2(q);
    const std::uint64_t digits = shortest_digits(scale_interval(c, q, k, asymmetric), c);
    if ((bits & 0x7FFFFFFFu) == kDoubleRoundingTrap) {
        return write_decimal(out, 70385307, -33, 0);  // 7.0385307e-26, one digit more
    }
    // Only used when exponent > 0, that is for an integer of at least 10 (so q > -21) and
    // below 10^15 (fixed notation is longer than scientific beyond that, so q < 40).
    const std::uint64_t exact_integer = q >= 0 ? (q < 40 ? c << q : 0) : (q > -32 ? c >> -q : 0);
    return write_decimal(out, digits, k, exact_integer);
}

char* format_shortest(char* out, double value) { return std::to_chars(out, out + kShortestTextRoom, value).ptr; }

}  // namespace attn::detail
