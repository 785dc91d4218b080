// json.cpp - JSON tensors, as docs/formats.md, "JSON tensors", describes them.
//
// Reading never builds a DOM: a tensor's numbers are parsed straight into the storage of
// the final xt::xarray, in its own dtype (Clinger's exact fast path, else std::from_chars),
// so reading costs the text plus the tensor (docs/formats.md). When the shape is not known
// before the data (bare nested arrays, or "data" written before "shape"/"dtype"), a
// structural pass over the data finds the shape first and a second pass fills the array.
// Nesting is walked with explicit counters, never by recursion, and is capped at
// kMaxDepth levels, so hostile input cannot overflow the stack; a shape is checked
// against the length of the text before it is allocated.
//
// Writing streams through a fixed chunk buffer into the ByteSink; every number is the
// shortest text that reads back to the same value (std::to_chars's text, float32 through
// a faster formatter of its own), non-finite values spelt as Python's json spells them.

#include <omp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "attn/error.hpp"
#include "attn/io.hpp"
#include "attn/tensor.hpp"
#include "common/text.hpp"
#include "io/json_rows.hpp"

namespace attn::io {
namespace {

// Deepest array nesting (and so highest rank) a JSON tensor may have. numpy caps ndim at
// 64 too; the cap is what keeps a "[[[[..." bomb from costing more than a short scan.
constexpr std::size_t kMaxDepth = 64;

// Output is handed to the sink in pieces of this size, so writing needs no more memory
// than the tensor itself plus one chunk.
constexpr std::size_t kWriteChunk = std::size_t{1} << 20;

// Enough room for any one formatted element: the shortest float64 text is at most 24
// characters ("-2.2250738585072014e-308"), plus ".0" and a ", " separator.
constexpr std::size_t kMaxElementText = 40;

// The most empty arrays the nested layout writes for a tensor without elements.
constexpr std::size_t kMaxEmptyArrays = std::size_t{1} << 24;
// Elements a thread formats at a time when a large tensor is written in parallel.
constexpr std::size_t kParallelBlockElements = std::size_t{1} << 18;

constexpr std::size_t kUnknown = std::numeric_limits<std::size_t>::max();

// The bytes that end quick_layout's run over numbers, commas and spaces.
constexpr std::array<bool, 256> kBracketOrString = [] {
    std::array<bool, 256> table{};
    for (unsigned char c : {'[', ']', '"', '{', '}'}) table[c] = true;
    return table;
}();

bool is_json_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool is_digit(char c) { return static_cast<unsigned char>(c - '0') < 10; }

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
std::uint32_t eight_digits_value(std::uint64_t v) {
    v = ((v & 0x0F0F0F0F0F0F0F0Fu) * 2561) >> 8;
    v = ((v & 0x00FF00FF00FF00FFu) * 6553601) >> 16;
    return static_cast<std::uint32_t>(((v & 0x0000FFFF0000FFFFu) * 42949672960001u) >> 32);
}

// Eight bytes of text with the first one in the lowest byte of the word.
std::uint64_t load_eight(const char* text) {
    std::uint64_t v = 0;
    std::memcpy(&v, text, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

constexpr std::array<std::uint64_t, 8> kPowersOfTen64 = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};

// `value` followed by the (already checked) digits in [first, last); `end` ends the text.
std::uint64_t append_digits(std::uint64_t value, const char* first, const char* last, const char* end) {
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
const char* skip_digits(const char* q, const char* end) {
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
constexpr std::array<double, 23> kExactPowersOfTen = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
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

// What a structural pass over a tensor's data found.
struct DataLayout {
    Shape shape;
    bool has_bools = false;
    bool has_numbers = false;
};

template <class T>
std::string_view dtype_name_of() {
    return dtype_name(dtype_of<T>::value);
}

// "1 element", "3 elements".
std::string count_of_elements(std::size_t count) {
    return std::to_string(count) + (count == 1 ? " element" : " elements");
}

std::string quote_for_message(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        if (static_cast<unsigned char>(c) < 0x20) {
            static constexpr char kHex[] = "0123456789abcdef";
            out += "\\x";
            out += kHex[(static_cast<unsigned char>(c) >> 4) & 0xF];
            out += kHex[static_cast<unsigned char>(c) & 0xF];
        } else {
            out += c;
        }
    }
    return out + "\"";
}

// A reader over the whole text with an explicit position. Errors name the place in the
// tensor (data[1][3]) and the line and column of the text.
class JsonReader {
public:
    JsonReader(std::string_view text, const std::string& name)
        : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()), name_(name) {}

    Tensor read_single() {
        start_document();
        Tensor tensor = read_tensor_value();
        finish_document("the tensor");
        return tensor;
    }

    NamedTensors read_archive() {
        start_document();
        if (peek() != '{') {
            fail(p_, "expected an object mapping names to tensors, found " + describe(p_));
        }
        ++p_;
        NamedTensors tensors;
        std::set<std::string> seen;
        skip_space();
        if (peek() == '}') {
            ++p_;
        } else {
            for (;;) {
                skip_space();
                const char* key_at = p_;
                std::string member = read_key();
                if (!seen.insert(member).second) fail(key_at, "duplicate tensor name " + quote_for_message(member));
                context_ = "member " + quote_for_message(member) + ": ";
                Tensor tensor = read_tensor_value();
                context_.clear();
                tensors.emplace_back(std::move(member), std::move(tensor));
                if (after_member('}')) break;
            }
        }
        finish_document("the archive");
        return tensors;
    }

private:
    // ---- positions and errors -----------------------------------------------------

    [[nodiscard]] char peek() const { return p_ < end_ ? *p_ : '\0'; }
    void skip_space() {
        while (p_ < end_ && is_json_space(*p_)) ++p_;
    }
    bool starts_with_at(const char* at, std::string_view word) const {
        return static_cast<std::size_t>(end_ - at) >= word.size() && std::memcmp(at, word.data(), word.size()) == 0;
    }

    std::string location(const char* at) const {
        std::size_t line = 1;
        const char* line_start = begin_;
        for (const char* q = begin_; q < at; ++q) {
            if (*q == '\n') {
                ++line;
                line_start = q + 1;
            }
        }
        return " (line " + std::to_string(line) + ", column " + std::to_string(at - line_start + 1) + ")";
    }

    [[noreturn]] void fail(const char* at, const std::string& what) const {
        throw Error(ErrorKind::Format, name_, context_ + what + location(at));
    }

    // The place in the tensor's data that path_index_[0..path_depth_) names.
    [[nodiscard]] std::string data_path() const {
        std::string path;
        if (bare_) {
            if (path_depth_ == 0) return path;
            path = "element ";
        } else {
            path = "data";
        }
        for (std::size_t i = 0; i < path_depth_; ++i) {
            path += '[';
            path += std::to_string(path_index_[i]);
            path += ']';
        }
        return path;
    }

    [[noreturn]] void fail_in_data(const char* at, const std::string& what) const {
        std::string path = data_path();
        fail(at, path.empty() ? what : path + ": " + what);
    }

    // An array at `at` whose length is not the one its level needs.
    [[noreturn]] void fail_count(const char* at, std::size_t expected, std::size_t found) const {
        fail_in_data(at, "expected " + count_of_elements(expected) + ", found " + std::to_string(found));
    }

    // What the text at `at` is, for "expected X, found Y".
    std::string describe(const char* at) const {
        if (at >= end_) return "end of input";
        switch (*at) {
            case '"': return "a string";
            case '{': return "an object";
            case '[': return "an array";
            default: break;
        }
        for (std::string_view word : {"true", "false", "null", "NaN", "Infinity", "-Infinity"}) {
            if (starts_with_at(at, word)) return std::string(word);
        }
        if (*at == '-' || is_digit(*at)) {
            // The token as written, cut short so that one line stays one line.
            constexpr std::ptrdiff_t kShown = 32;
            const NumberToken token = scan_number<false>(at, end_);
            if (token.end != nullptr) {
                return token.end - at <= kShown ? std::string(at, token.end) : std::string(at, kShown) + "...";
            }
            const char* q = at;
            while (q < end_ && q - at < kShown && !is_json_space(*q) && *q != ',' && *q != ']' && *q != '}') ++q;
            return "malformed number '" + std::string(at, q) + "'";
        }
        const auto byte = static_cast<unsigned char>(*at);
        if (byte >= 0x20 && byte < 0x7F) return std::string("'") + *at + "'";
        static constexpr char kHex[] = "0123456789ABCDEF";
        return std::string("byte 0x") + kHex[byte >> 4] + kHex[byte & 0xF];
    }

    void start_document() {
        if (starts_with_at(p_, "\xEF\xBB\xBF")) p_ += 3;  // a UTF-8 byte order mark
        skip_space();
        if (p_ == end_) fail(p_, "no JSON value (the input is empty)");
    }

    void finish_document(const char* what) {
        skip_space();
        if (p_ != end_)
            fail(p_, std::string("expected the end of the input after ") + what + ", found " + describe(p_));
    }

    // After an object member: true at the closing brace, false at a comma.
    bool after_member(char close) {
        skip_space();
        const char c = peek();
        if (c == ',') {
            ++p_;
            return false;
        }
        if (c == close) {
            ++p_;
            return true;
        }
        fail(p_, std::string("expected ',' or '") + close + "' after an object member, found " + describe(p_));
    }

    // ---- strings ------------------------------------------------------------------

    // A key and its colon.
    std::string read_key() {
        if (peek() != '"') fail(p_, "expected a quoted key, found " + describe(p_));
        std::string key = read_string();
        skip_space();
        if (peek() != ':') fail(p_, "expected ':' after the key " + quote_for_message(key) + ", found " + describe(p_));
        ++p_;
        skip_space();
        return key;
    }

    unsigned read_hex4(const char* at) {
        if (end_ - at < 4) fail(at, "unterminated \\u escape");
        unsigned value = 0;
        for (int i = 0; i < 4; ++i) {
            const char c = at[i];
            value <<= 4;
            if (is_digit(c)) {
                value |= static_cast<unsigned>(c - '0');
            } else if (c >= 'a' && c <= 'f') {
                value |= static_cast<unsigned>(c - 'a' + 10);
            } else if (c >= 'A' && c <= 'F') {
                value |= static_cast<unsigned>(c - 'A' + 10);
            } else {
                fail(at, "invalid \\u escape");
            }
        }
        return value;
    }

    static void append_utf8(std::string& out, unsigned code) {
        if (code < 0x80) {
            out += static_cast<char>(code);
        } else if (code < 0x800) {
            out += static_cast<char>(0xC0 | (code >> 6));
            out += static_cast<char>(0x80 | (code & 0x3F));
        } else if (code < 0x10000) {
            out += static_cast<char>(0xE0 | (code >> 12));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (code >> 18));
            out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
        }
    }

    // A string at p_ (which is at its opening quote), escapes decoded to UTF-8.
    std::string read_string() {
        const char* start = p_;
        ++p_;
        std::string out;
        for (;;) {
            if (p_ >= end_) fail(start, "unterminated string");
            const char c = *p_;
            if (c == '"') {
                ++p_;
                return out;
            }
            if (static_cast<unsigned char>(c) < 0x20) fail(p_, "control character in a string");
            if (c != '\\') {
                out += c;
                ++p_;
                continue;
            }
            if (end_ - p_ < 2) fail(start, "unterminated string");
            const char* escape = p_;
            p_ += 2;
            switch (escape[1]) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    unsigned code = read_hex4(p_);
                    p_ += 4;
                    if (code >= 0xD800 && code < 0xDC00) {
                        // A high surrogate must be followed by a low one.
                        if (!starts_with_at(p_, "\\u")) fail(escape, "unpaired surrogate in a \\u escape");
                        const unsigned low = read_hex4(p_ + 2);
                        if (low < 0xDC00 || low >= 0xE000) fail(escape, "unpaired surrogate in a \\u escape");
                        p_ += 6;
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    } else if (code >= 0xDC00 && code < 0xE000) {
                        fail(escape, "unpaired surrogate in a \\u escape");
                    }
                    append_utf8(out, code);
                    break;
                }
                default: fail(escape, "invalid escape in a string");
            }
        }
    }

    // ---- numbers ------------------------------------------------------------------

    // from_chars reports a value beyond the type's range without storing it; Python (and
    // numpy's cast from float) make it infinite when too large and zero when too small.
    template <class T>
    static T out_of_range_value(const char* first, const char* last) {
        const bool negative = *first == '-';
        const char* q = negative ? first + 1 : first;
        // The decimal exponent of the leading nonzero digit decides which way it went.
        long magnitude = 0;
        bool seen_nonzero = false;
        bool in_fraction = false;
        for (; q < last && *q != 'e' && *q != 'E'; ++q) {
            if (*q == '.') {
                in_fraction = true;
            } else if (!seen_nonzero && *q != '0') {
                seen_nonzero = true;
                if (in_fraction) --magnitude;
            } else if (!seen_nonzero && in_fraction) {
                --magnitude;
            } else if (seen_nonzero && !in_fraction) {
                ++magnitude;
            }
        }
        if (q < last) {
            ++q;
            const bool negative_exponent = *q == '-';
            if (*q == '+' || *q == '-') ++q;
            long exponent = 0;
            for (; q < last; ++q) exponent = std::min(exponent * 10 + (*q - '0'), 1000000L);
            magnitude += negative_exponent ? -exponent : exponent;
        }
        const T value = magnitude > 0 ? std::numeric_limits<T>::infinity() : T{0};
        return negative ? -value : value;
    }

    template <class T>
    void parse_integer(const char* first, const char* last, T& out) const {
        bool in_range;
        if (*first == '-') {
            std::int64_t value = 0;
            const auto result = std::from_chars(first, last, value);
            in_range = result.ec == std::errc{} && value >= static_cast<std::int64_t>(std::numeric_limits<T>::min());
            if (in_range) out = static_cast<T>(value);
        } else {
            std::uint64_t value = 0;
            const auto result = std::from_chars(first, last, value);
            in_range = result.ec == std::errc{} && value <= static_cast<std::uint64_t>(std::numeric_limits<T>::max());
            if (in_range) out = static_cast<T>(value);
        }
        if (!in_range) {
            fail_in_data(first, std::string(first, last) + " is out of range for " + std::string(dtype_name_of<T>()));
        }
    }

    // One element of the data into `out`, in the tensor's own dtype.
    template <class T>
    void parse_element(T& out) {
        const char c = peek();
        if constexpr (std::is_same_v<T, bool>) {
            if (c == 't' && starts_with_at(p_, "true")) {
                out = true;
                p_ += 4;
            } else if (c == 'f' && starts_with_at(p_, "false")) {
                out = false;
                p_ += 5;
            } else {
                fail_in_data(p_, "expected true or false (dtype bool), found " + describe(p_));
            }
        } else {
            if (c == '-' || is_digit(c)) {
                const NumberToken token = scan_number<true>(p_, end_);
                if (token.end != nullptr) {
                    if constexpr (std::is_floating_point_v<T>) {
                        if (!convert_simple_decimal(token, out) &&
                            std::from_chars(p_, token.end, out).ec != std::errc{}) {
                            out = out_of_range_value<T>(p_, token.end);
                        }
                    } else {
                        if (!token.integral) {
                            fail_in_data(p_, "expected an integer (dtype " + std::string(dtype_name_of<T>()) +
                                                 "), found " + describe(p_));
                        }
                        parse_integer(p_, token.end, out);
                    }
                    p_ = token.end;
                    return;
                }
            }
            parse_special_element(out);
        }
    }

    // "malformed number '01'" when the text starts like a number, else "expected X, found Y".
    std::string unexpected_element(const char* at, const std::string& expected) const {
        const std::string found = describe(at);
        return found.rfind("malformed", 0) == 0 ? found : expected + ", found " + found;
    }

    // The rare spellings of an element, kept out of the hot path of parse_element.
    template <class T>
    void parse_special_element(T& out) {
        if constexpr (std::is_floating_point_v<T>) {
            if (starts_with_at(p_, "NaN")) {
                out = std::numeric_limits<T>::quiet_NaN();
                p_ += 3;
                return;
            }
            if (starts_with_at(p_, "Infinity")) {
                out = std::numeric_limits<T>::infinity();
                p_ += 8;
                return;
            }
            if (starts_with_at(p_, "-Infinity")) {
                out = -std::numeric_limits<T>::infinity();
                p_ += 9;
                return;
            }
            // Bare arrays mixing true/false with numbers read as numbers, as in torch.tensor.
            if (bools_as_numbers_ && starts_with_at(p_, "true")) {
                out = T{1};
                p_ += 4;
                return;
            }
            if (bools_as_numbers_ && starts_with_at(p_, "false")) {
                out = T{0};
                p_ += 5;
                return;
            }
        }
        fail_in_data(p_, unexpected_element(p_, std::string(std::is_floating_point_v<T> ? "expected a number"
                                                                                        : "expected an integer") +
                                                    " (dtype " + std::string(dtype_name_of<T>()) + ")"));
    }

    // One element in a structural pass: checks its spelling, records its kind.
    void scan_element(DataLayout& layout) {
        const char c = peek();
        if (c == '-' || is_digit(c)) {
            const NumberToken token = scan_number<false>(p_, end_);
            if (token.end != nullptr) {
                p_ = token.end;
                layout.has_numbers = true;
                return;
            }
        }
        for (std::string_view word : {"NaN", "Infinity", "-Infinity"}) {
            if (starts_with_at(p_, word)) {
                p_ += word.size();
                layout.has_numbers = true;
                return;
            }
        }
        for (std::string_view word : {"true", "false"}) {
            if (starts_with_at(p_, word)) {
                p_ += word.size();
                layout.has_bools = true;
                return;
            }
        }
        fail_in_data(p_, unexpected_element(p_, "expected a number"));
    }

    // ---- the structural pass ------------------------------------------------------

    // Walks one value at p_ (a number or nested arrays) to its end and returns the shape
    // its nesting gives, checking that every array of a level has the same length.
    // path_index_[0..base) already names where the value sits.
    DataLayout scan_layout(std::size_t base) {
        DataLayout layout;
        path_depth_ = base;
        if (peek() != '[') {
            scan_element(layout);
            return layout;
        }
        std::array<std::size_t, kMaxDepth> lengths;
        lengths.fill(kUnknown);
        std::array<const char*, kMaxDepth> opened{};
        std::size_t rank = kUnknown;
        std::size_t depth = 0;  // relative to base
        opened[0] = p_++;
        path_index_[base] = 0;
        bool after_element = false;
        for (;;) {
            skip_space();
            path_depth_ = base + depth + 1;
            char c = peek();
            bool closing = false;
            if (after_element) {
                if (c == ',') {
                    ++p_;
                    skip_space();
                    c = peek();
                    ++path_index_[base + depth];
                } else if (c == ']') {
                    closing = true;
                } else {
                    fail_in_data(p_, "expected ',' or ']' after an element, found " + describe(p_));
                }
            } else if (c == ']') {
                closing = true;
            }
            if (closing) {
                ++p_;
                const std::size_t count = after_element ? path_index_[base + depth] + 1 : 0;
                path_depth_ = base + depth;
                if (rank == kUnknown) rank = depth + 1;  // an empty innermost array
                if (lengths[depth] == kUnknown) {
                    lengths[depth] = count;
                } else if (lengths[depth] != count) {
                    fail_count(opened[depth], lengths[depth], count);
                }
                if (depth == 0) break;
                --depth;
                after_element = true;
                continue;
            }
            if (c == '[') {
                if (rank != kUnknown && depth + 1 >= rank) fail_in_data(p_, "expected a number, found an array");
                if (base + depth + 1 >= kMaxDepth) {
                    fail_in_data(p_, "arrays nested deeper than " + std::to_string(kMaxDepth) + " levels");
                }
                ++depth;
                opened[depth] = p_++;
                path_index_[base + depth] = 0;
                after_element = false;
                continue;
            }
            if (rank == kUnknown) {
                rank = depth + 1;
            } else if (depth + 1 != rank) {
                fail_in_data(p_, "expected an array, found " + describe(p_));
            }
            scan_element(layout);
            after_element = true;
        }
        layout.shape.assign(lengths.begin(), lengths.begin() + static_cast<std::ptrdiff_t>(rank));
        return layout;
    }

    // The layout of nested arrays at p_ from their brackets and commas alone, p_ moved
    // past them: a fast first pass for big data that trusts the fill pass to check the
    // rest (that pass rejects any array whose length differs from the shape found here,
    // and read_data any shape the text is too short for). Returns false, p_ unmoved, for
    // what needs scan_layout: true/false first (a bool tensor needs every element seen),
    // strings, objects, arrays where elements belong, deep nesting, unterminated input.
    bool quick_layout(DataLayout& layout) {
        const char* q = p_;
        std::size_t rank = 0;  // the '[' that open the first element of each level
        for (;;) {
            while (q < end_ && is_json_space(*q)) ++q;
            if (q == end_ || *q != '[') break;
            if (rank == kMaxDepth) return false;
            ++rank;
            ++q;
        }
        if (rank == 0 || q == end_) return false;
        const char first = *q;
        if (first == 't' || first == 'f' || first == '"' || first == '{') return false;
        // Only the first array of each level is counted: in a valid tensor the others match.
        std::array<std::size_t, kMaxDepth> commas{};
        std::array<bool, kMaxDepth> in_first{};
        std::fill(in_first.begin(), in_first.begin() + static_cast<std::ptrdiff_t>(rank), true);
        std::size_t level = rank - 1;
        for (;;) {
            std::size_t pending = 0;  // commas since the last bracket
            for (; q < end_ && !kBracketOrString[static_cast<unsigned char>(*q)]; ++q) pending += *q == ',';
            if (q == end_) return false;
            const char c = *q++;
            if (in_first[level]) commas[level] += pending;
            if (c == '[') {
                if (level + 1 >= rank) return false;
                ++level;
            } else if (c == ']') {
                in_first[level] = false;
                if (level == 0) break;
                --level;
            } else {
                return false;
            }
        }
        layout = DataLayout{};
        layout.has_numbers = true;
        for (std::size_t d = 0; d < rank; ++d) layout.shape.push_back(commas[d] + 1);
        if (first == ']') layout.shape.back() = 0;  // the innermost arrays are empty
        p_ = q;
        return true;
    }

    // The layout of the data at p_, moving p_ past it.
    DataLayout data_layout() {
        DataLayout layout;
        if (!quick_layout(layout)) layout = scan_layout(0);
        return layout;
    }

    // ---- filling a tensor ---------------------------------------------------------

    // The elements of one innermost array (p_ just past its '['), through its ']'.
    // Returns how many there were; those beyond `capacity` are checked and counted only.
    template <class T>
    std::size_t read_row(T* out, std::size_t capacity, std::size_t depth) {
        path_depth_ = depth + 1;
        skip_space();
        if (peek() == ']') {
            ++p_;
            return 0;
        }
        std::size_t count = 0;
        for (;;) {
            path_index_[depth] = count;
            if (count < capacity) {
                parse_element(out[count]);
            } else {
                T ignored{};
                parse_element(ignored);
            }
            ++count;
            if (p_ < end_ && *p_ == ',') {  // the common case first: no space before ','
                ++p_;
            } else {
                skip_space();
                const char c = peek();
                if (c == ']') {
                    ++p_;
                    return count;
                }
                if (c != ',') fail_in_data(p_, "expected ',' or ']' after an element, found " + describe(p_));
                ++p_;
            }
            skip_space();
        }
    }

    // Nested data of a known shape (rank >= 1, p_ just past the outer '[').
    template <class T>
    void fill_nested(T* out, const Shape& shape, const char* outer) {
        const std::size_t rank = shape.size();
        std::array<const char*, kMaxDepth> opened{};
        opened[0] = outer;
        std::size_t depth = 0;
        path_index_[0] = 0;
        bool after_element = false;
        for (;;) {
            if (depth + 1 == rank) {
                const std::size_t count = read_row(out, shape[depth], depth);
                if (count != shape[depth]) {
                    path_depth_ = depth;
                    fail_count(opened[depth], shape[depth], count);
                }
                out += count;
            } else {
                skip_space();
                path_depth_ = depth + 1;
                char c = peek();
                bool closing = false;
                if (after_element) {
                    if (c == ',') {
                        ++p_;
                        skip_space();
                        c = peek();
                        ++path_index_[depth];
                    } else if (c == ']') {
                        closing = true;
                    } else {
                        fail_in_data(p_, "expected ',' or ']' after an element, found " + describe(p_));
                    }
                } else if (c == ']') {
                    closing = true;
                }
                if (closing) {
                    ++p_;
                    const std::size_t count = after_element ? path_index_[depth] + 1 : 0;
                    if (count != shape[depth]) {
                        path_depth_ = depth;
                        fail_count(opened[depth], shape[depth], count);
                    }
                } else {
                    if (path_index_[depth] == shape[depth]) {
                        const std::size_t count = count_remaining(depth);
                        path_depth_ = depth;
                        fail_count(opened[depth], shape[depth], count);
                    }
                    if (c != '[') fail_in_data(p_, "expected an array, found " + describe(p_));
                    ++depth;
                    opened[depth] = p_++;
                    path_index_[depth] = 0;
                    after_element = false;
                    continue;
                }
            }
            // The array at `depth` is complete.
            if (depth == 0) return;
            --depth;
            after_element = true;
        }
    }

    // Counts the elements of the array at `depth` when there are too many: the one at p_,
    // those after it, and the path_index_[depth] before it.
    std::size_t count_remaining(std::size_t depth) {
        std::size_t count = path_index_[depth];
        for (;;) {
            scan_layout(depth + 1);
            ++count;
            skip_space();
            path_depth_ = depth + 1;
            const char c = peek();
            if (c == ']') return count;
            if (c != ',') fail_in_data(p_, "expected ',' or ']' after an element, found " + describe(p_));
            ++p_;
            skip_space();
            path_index_[depth] = count;
        }
    }

    // The data value at p_, nested or flat row-major, into `out` of shape `shape`.
    template <class T>
    void fill(T* out, const Shape& shape, std::size_t count) {
        path_depth_ = 0;
        const char* start = p_;
        if (shape.empty()) {
            if (peek() == '[') {  // a scalar may be written as a flat list of one value
                ++p_;
                const std::size_t found = read_row(out, 1, 0);
                if (found != 1) fail(start, "shape () needs 1 value, data has " + std::to_string(found));
            } else {
                parse_element(*out);
            }
            return;
        }
        if (peek() != '[') {
            fail_in_data(p_, "expected an array for shape " + shape_to_string(shape) + ", found " + describe(p_));
        }
        ++p_;
        skip_space();
        if (shape.size() >= 2 && peek() != '[') {
            // Flat row-major data (or an empty list, which fits any shape with no elements).
            const std::size_t found = read_row(out, count, 0);
            if (found != count) {
                fail(start, "shape " + shape_to_string(shape) + " needs " + std::to_string(count) +
                                " values, data has " + std::to_string(found));
            }
            return;
        }
        fill_nested(out, shape, start);
    }

    // Allocates the tensor and fills it from the data value at p_.
    Tensor read_data(DType dtype, const Shape& shape, const char* shape_at) {
        std::size_t count = 0;
        try {
            count = checked_element_count(shape, name_);
        } catch (const Error&) {
            fail(shape_at, "shape " + shape_to_string(shape) + " has too many elements");
        }
        const char* start = p_;
        // Each element takes at least two characters (a digit and a separator), so a shape
        // that the remaining text cannot possibly fill is refused before allocating it.
        if (count > 0 && count - 1 > static_cast<std::size_t>(end_ - p_) / 2) {
            const DataLayout layout = scan_layout(0);
            std::size_t found = 1;
            for (std::size_t d : layout.shape) found *= d;
            fail(start, "shape " + shape_to_string(shape) + " needs " + std::to_string(count) + " values, data has " +
                            std::to_string(found));
        }
        Tensor tensor = Tensor::empty(dtype, shape, name_);
        tensor.visit([&](auto& values) { fill(values.data(), shape, count); });
        return tensor;
    }

    // ---- tensors ------------------------------------------------------------------

    Tensor read_tensor_value() {
        skip_space();
        if (peek() == '{') return read_tensor_object();
        bare_ = true;
        bools_as_numbers_ = true;
        const char* start = p_;
        const DataLayout layout = data_layout();
        // torch.tensor's rule: all true/false gives bool, anything else float32.
        const DType dtype = layout.has_bools && !layout.has_numbers ? DType::Bool : DType::Float32;
        p_ = start;
        return read_data(dtype, layout.shape, start);
    }

    Shape read_shape() {
        if (peek() != '[') fail(p_, "shape: expected an array of non-negative integers, found " + describe(p_));
        ++p_;
        Shape shape;
        skip_space();
        if (peek() == ']') {
            ++p_;
            return shape;
        }
        for (;;) {
            skip_space();
            const char* at = p_;
            const std::string where = "shape[" + std::to_string(shape.size()) + "]: ";
            const NumberToken token = is_digit(peek()) ? scan_number<false>(p_, end_) : NumberToken{};
            if (token.end == nullptr || !token.integral) {
                fail(at, where + "expected a non-negative integer, found " + describe(at));
            }
            std::size_t extent = 0;
            if (std::from_chars(at, token.end, extent).ec != std::errc{}) {
                fail(at, where + std::string(at, token.end) + " is too large");
            }
            if (shape.size() == kMaxDepth) fail(at, "shape has more than " + std::to_string(kMaxDepth) + " dimensions");
            shape.push_back(extent);
            p_ = token.end;
            skip_space();
            const char c = peek();
            if (c == ']') {
                ++p_;
                return shape;
            }
            if (c != ',') fail(p_, "shape: expected ',' or ']', found " + describe(p_));
            ++p_;
        }
    }

    DType read_dtype() {
        const char* at = p_;
        if (peek() != '"') fail(at, "dtype: expected a string such as \"float32\", found " + describe(at));
        const std::string text = read_string();
        const std::optional<DType> dtype = dtype_from_name(text);
        if (!dtype) {
            fail(at, "unknown dtype " + quote_for_message(text) +
                         " (expected bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32 or "
                         "float64)");
        }
        return *dtype;
    }

    // {"shape": [...], "dtype": "...", "data": [...]} with the keys in any order.
    Tensor read_tensor_object() {
        const char* object_at = p_++;
        bare_ = false;
        bools_as_numbers_ = false;
        std::optional<Shape> shape;
        const char* shape_at = nullptr;
        std::optional<DType> dtype;
        const char* data_at = nullptr;
        DataLayout layout_of_data;
        std::optional<Tensor> tensor;
        skip_space();
        if (peek() == '}') fail(object_at, "the tensor object has no \"data\" key");
        for (;;) {
            skip_space();
            const char* key_at = p_;
            const std::string key = read_key();
            if (key == "shape") {
                if (shape) fail(key_at, "duplicate key \"shape\"");
                shape_at = p_;
                shape = read_shape();
            } else if (key == "dtype") {
                if (dtype) fail(key_at, "duplicate key \"dtype\"");
                dtype = read_dtype();
            } else if (key == "data") {
                if (data_at != nullptr) fail(key_at, "duplicate key \"data\"");
                data_at = p_;
                if (shape && dtype) {
                    tensor = read_data(*dtype, *shape, shape_at);  // the one-pass case
                } else {
                    layout_of_data = data_layout();  // parsed once the other keys are known
                }
            } else {
                fail(key_at, "unknown key " + quote_for_message(key) +
                                 R"( in a tensor object (expected "shape", "dtype" and "data"))");
            }
            if (after_member('}')) break;
        }
        if (data_at == nullptr) fail(object_at, "the tensor object has no \"data\" key");
        if (!tensor) {
            const char* object_end = p_;
            p_ = data_at;
            tensor = shape ? read_data(dtype.value_or(DType::Float32), *shape, shape_at)
                           : read_data(dtype.value_or(DType::Float32), layout_of_data.shape, data_at);
            p_ = object_end;
        }
        return std::move(*tensor);
    }

    const char* begin_;
    const char* p_;
    const char* end_;
    const std::string& name_;
    std::string context_;  // "member \"name\": " while reading an archive member
    bool bare_ = false;    // bare nested arrays: paths read "element [1][3]", not "data[1][3]"
    bool bools_as_numbers_ = false;
    std::array<std::size_t, kMaxDepth> path_index_{};
    std::size_t path_depth_ = 0;
};

// ---- writing ------------------------------------------------------------------------

// Collects output in one fixed chunk and hands it to the sink each time it fills.
class ChunkWriter {
public:
    explicit ChunkWriter(ByteSink& sink) : sink_(sink), buffer_(new char[kWriteChunk]) {}

    void put(std::string_view text) {
        if (text.size() > kWriteChunk - size_) {
            flush();
            if (text.size() > kWriteChunk) {  // straight through, still in chunks
                for (std::size_t at = 0; at < text.size(); at += kWriteChunk) {
                    sink_.write(text.data() + at, std::min(kWriteChunk, text.size() - at));
                }
                return;
            }
        }
        std::memcpy(buffer_.get() + size_, text.data(), text.size());
        size_ += text.size();
    }
    void put(char c) {
        *reserve(1) = c;
        ++size_;
    }

    // Room for `size` bytes at the returned pointer; commit() says how many were used.
    char* reserve(std::size_t size) {
        if (kWriteChunk - size_ < size) flush();
        return buffer_.get() + size_;
    }
    void commit(char* end) { size_ = static_cast<std::size_t>(end - buffer_.get()); }

    void flush() {
        if (size_ > 0) sink_.write(buffer_.get(), size_);
        size_ = 0;
    }

private:
    ByteSink& sink_;
    std::unique_ptr<char[]> buffer_;
    std::size_t size_ = 0;
};

void put_repeated(ChunkWriter& writer, char c, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) writer.put(c);
}

// ---- shortest float32 text -------------------------------------------------------
//
// libstdc++'s std::to_chars(float) costs about 30 ns a value, which alone caps writing at
// ~130 MB/s of float32. This is Schubfach (R. Giulietti, "The Schubfach way to render
// doubles", 2020) specialised to float32, where the few products involved are small
// enough to compute exactly with 128-bit integers instead of from a table of rounded
// powers of ten. Its output is byte for byte that of std::to_chars(float): the shortest
// digits that read back to the value, the closest such digits when there are several,
// and the shorter of fixed and scientific notation (fixed on a tie).

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

// A finite float32 as std::to_chars(out, end, value) writes it (but for the trap above),
// at most 15 characters.
char* format_float32(char* out, float value) {
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
    // At a power of two the next float down is half as far as the next one up.
    const bool asymmetric = fraction == 0 && biased_exponent > 1;
    const int k = asymmetric ? floor_log10_three_quarters_pow2(q) : floor_log10_pow2(q);
    // The value and the ends of its rounding interval, times 4 * 10^-k.
    const std::uint64_t c_lower = (c << 2) - (asymmetric ? 1 : 2);
    std::uint64_t middle = 0;
    std::uint64_t lower = 0;
    std::uint64_t upper = 0;
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
        middle = scale(c << 2);
        lower = scale(c_lower);
        upper = scale((c << 2) + 2);
    } else {
        middle = scale_round_to_odd(c << 2, q, k);
        lower = scale_round_to_odd(c_lower, q, k);
        upper = scale_round_to_odd((c << 2) + 2, q, k);
    }
    // An odd c rounds ties away from itself: the interval's ends are then excluded.
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
    const std::uint64_t digits = select(s10_in != t10_in, select(s10_in, s10, t10), select(pick_s, s, t));
    if ((bits & 0x7FFFFFFFu) == kDoubleRoundingTrap) {
        return write_decimal(out, 70385307, -33, 0);  // 7.0385307e-26, one digit more
    }
    // Only used when exponent > 0, that is for an integer of at least 10 (so q > -21) and
    // below 10^15 (fixed notation is longer than scientific beyond that, so q < 40).
    const std::uint64_t exact_integer = q >= 0 ? (q < 40 ? c << q : 0) : (q > -32 ? c >> -q : 0);
    return write_decimal(out, digits, k, exact_integer);
}

char* put_word(char* out, std::string_view word) {
    std::memcpy(out, word.data(), word.size());
    return out + word.size();
}

// One element at `out` (kMaxElementText bytes of room). `mark_float` adds ".0" to an
// integral-looking float so that bare arrays read back as floats (json gives int, and
// torch.tensor/np.array an integer dtype, for "1"); the object form names its dtype.
template <class T>
char* format_element(char* out, T value, bool mark_float) {
    if constexpr (std::is_same_v<T, bool>) {
        return put_word(out, value ? "true" : "false");
    } else if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(value)) return put_word(out, "NaN");
        if (std::isinf(value)) return put_word(out, value > 0 ? "Infinity" : "-Infinity");
        char* end = nullptr;
        if constexpr (std::is_same_v<T, float>) {
            end = format_float32(out, value);
        } else {
            end = std::to_chars(out, out + kMaxElementText, value).ptr;
        }
        // "-0" would read back as the integer 0 and lose the sign: always write "-0.0".
        // Only an integral value can print without '.' or 'e'; testing that first keeps
        // the scan off the path of every other value.
        if ((mark_float || value == 0) && value == std::trunc(value)) {
            bool integral_looking = true;
            for (const char* q = out; q < end; ++q) {
                if (*q == '.' || *q == 'e') {
                    integral_looking = false;
                    break;
                }
            }
            if (integral_looking && (mark_float || std::signbit(value))) {
                *end++ = '.';
                *end++ = '0';
            }
        }
        return end;
    } else {
        return std::to_chars(out, out + kMaxElementText, value).ptr;
    }
}

// Rows [first, last) of a tensor of this shape as nested-array text, with the brackets
// and separators before each row (none before row 0: the caller opened `rank` levels).
// `values` holds row `first` onwards; a row is the last dimension of the first `rank`.
template <class T>
void format_rows(ChunkWriter& writer, const T* values, const Shape& shape, std::size_t rank, std::size_t first,
                 std::size_t last, bool mark_float) {
    const std::size_t row_length = shape[rank - 1];
    // The odometer starts at the index of row first − 1, whose brackets came before.
    std::vector<std::size_t> index(rank);  // over the outer dimensions
    for (std::size_t d = rank - 1, rest = first == 0 ? 0 : first - 1; d-- > 0;) {
        index[d] = rest % shape[d];
        rest /= shape[d];
    }
    for (std::size_t row = first; row < last; ++row, values += row_length) {
        if (row > 0) {
            std::size_t levels = 1;  // the row itself and every outer level that wrapped
            for (std::size_t d = rank - 1; d-- > 0;) {
                if (++index[d] < shape[d]) break;
                index[d] = 0;
                ++levels;
            }
            put_repeated(writer, ']', levels);
            writer.put(", ");
            put_repeated(writer, '[', levels);
        }
        for (std::size_t i = 0; i < row_length; ++i) {
            char* out = writer.reserve(kMaxElementText + 2);
            if (i > 0) {
                *out++ = ',';
                *out++ = ' ';
            }
            writer.commit(format_element(out, values[i], mark_float));
        }
    }
}

// The data as nested arrays, "[[1, 2], [3, 4]]" (Python's json.dumps separators).
template <class T>
void write_nested(ChunkWriter& writer, const T* data, const Shape& shape, bool mark_float) {
    if (shape.empty()) {
        writer.commit(format_element(writer.reserve(kMaxElementText), data[0], mark_float));
        return;
    }
    // Arrays inside an empty one have no elements: write the levels down to the first 0.
    std::size_t rank = shape.size();
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (shape[d] == 0) {
            rank = d + 1;
            break;
        }
    }
    const std::size_t row_length = shape[rank - 1];
    std::size_t rows = 1;
    for (std::size_t d = 0; d + 1 < rank; ++d) {
        // Without elements the text is not bounded by the tensor's memory: (1, 10^11, 0)
        // is 10^11 empty arrays. Refuse what no reader could want.
        if (row_length == 0 && rows > kMaxEmptyArrays / shape[d]) {
            throw Error(ErrorKind::Value, Arg::JsonLayout,
                        "a tensor of shape " + shape_to_string(shape) +
                            " has no elements but would be written as more than " + std::to_string(kMaxEmptyArrays) +
                            " empty arrays; write the object layout instead");
        }
        rows *= shape[d];
    }
    put_repeated(writer, '[', rank);
    // Formatting numbers is nearly all the cost: blocks of rows are formatted on every
    // core, a wave of blocks at a time (memory stays bounded), and written in order.
    const std::size_t block_rows =
        std::max<std::size_t>(1, kParallelBlockElements / std::max<std::size_t>(1, row_length));
    const std::size_t blocks = (rows + block_rows - 1) / block_rows;
    const int threads = blocks > 1 ? omp_get_max_threads() : 1;
    if (threads <= 1) {
        format_rows(writer, data, shape, rank, 0, rows, mark_float);
    } else {
        std::vector<StringSink> parts(static_cast<std::size_t>(threads));
        for (std::size_t wave = 0; wave < blocks; wave += parts.size()) {
            const std::size_t wave_blocks = std::min(parts.size(), blocks - wave);
#pragma omp parallel for num_threads(threads) schedule(static, 1)
            for (std::size_t k = 0; k < wave_blocks; ++k) {
                const std::size_t first = (wave + k) * block_rows;
                StringSink& part = parts[k];
                part = StringSink();
                ChunkWriter block_writer(part);
                format_rows(block_writer, data + first * row_length, shape, rank, first,
                            std::min(rows, first + block_rows), mark_float);
                block_writer.flush();
            }
            writer.flush();
            for (std::size_t k = 0; k < wave_blocks; ++k) writer.put(parts[k].bytes());
        }
    }
    put_repeated(writer, ']', rank);
}

// What the object layout writes before the data: {"shape": [2, 3], "dtype": "float32", "data":
std::string object_head(DType dtype, const Shape& shape) {
    std::string head = R"({"shape": [)";
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (d > 0) head += ", ";
        head += std::to_string(shape[d]);
    }
    head += R"(], "dtype": ")";
    head += dtype_name(dtype);
    head += R"(", "data": )";
    return head;
}

void write_tensor_json(ChunkWriter& writer, const Tensor& tensor, JsonLayout layout) {
    const Shape shape = tensor.shape();
    if (layout == JsonLayout::Object) writer.put(object_head(tensor.dtype(), shape));
    if (layout == JsonLayout::Object && tensor.size() == 0 && !shape.empty()) {
        // Flat and empty: the shape says the rest, and nested empties could be any size.
        writer.put("[]}");
        return;
    }
    tensor.visit([&](const auto& values) { write_nested(writer, values.data(), shape, layout == JsonLayout::Nested); });
    if (layout == JsonLayout::Object) writer.put('}');
}

}  // namespace

namespace detail {

std::string json_open(DType dtype, const Shape& shape, JsonLayout layout) {
    return (layout == JsonLayout::Object ? object_head(dtype, shape) : std::string()) + std::string(shape.size(), '[');
}

std::string json_close(const Shape& shape, JsonLayout layout) {
    return std::string(shape.size(), ']') + (layout == JsonLayout::Object ? "}\n" : "\n");
}

template <class T>
void json_rows(const T* values, const Shape& shape, std::size_t first, std::size_t count, JsonLayout layout,
               ByteSink& out) {
    ChunkWriter writer(out);
    format_rows(writer, values, shape, shape.size(), first, first + count, layout == JsonLayout::Nested);
    writer.flush();
}

template void json_rows<float>(const float*, const Shape&, std::size_t, std::size_t, JsonLayout, ByteSink&);
template void json_rows<double>(const double*, const Shape&, std::size_t, std::size_t, JsonLayout, ByteSink&);

}  // namespace detail

Tensor decode_json(std::string_view text, const std::string& name) { return JsonReader(text, name).read_single(); }

NamedTensors decode_json_archive(std::string_view text, const std::string& name) {
    return JsonReader(text, name).read_archive();
}

void encode_json(const Tensor& tensor, ByteSink& sink, JsonLayout layout) {
    ChunkWriter writer(sink);
    write_tensor_json(writer, tensor, layout);
    writer.put('\n');
    writer.flush();
}

void encode_json_archive(const NamedTensors& tensors, ByteSink& sink) {
    ChunkWriter writer(sink);
    writer.put('{');
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        writer.put(i == 0 ? "\n" : ",\n");
        writer.put(attn::detail::json_quote(tensors[i].first));
        writer.put(": ");
        write_tensor_json(writer, tensors[i].second, JsonLayout::Object);
    }
    writer.put(tensors.empty() ? "}\n" : "\n}\n");
    writer.flush();
}

}  // namespace attn::io
