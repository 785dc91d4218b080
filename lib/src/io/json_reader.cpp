// JSON tensors read (docs/formats.md, "JSON tensors"): decode_json and decode_json_archive.
//
// Reading never builds a DOM: a tensor's numbers are parsed straight into the storage of
// the final xt::xarray, in its own dtype (json_numbers.hpp: Clinger's exact fast path,
// else std::from_chars), so reading costs the text plus the tensor. When the shape is not
// known before the data (bare nested arrays, or "data" written before "shape"/"dtype"),
// a structural pass over the data finds the shape first and a second pass fills the
// array. Nesting is walked with explicit counters, never by recursion, and is capped at
// kMaxDepth levels, so hostile input cannot overflow the stack; a shape is checked
// against the length of the text before it is allocated.

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "attn/error.hpp"
#include "attn/io.hpp"
#include "attn/tensor.hpp"
#include "common/text.hpp"
#include "io/json_numbers.hpp"

namespace attn::io {
namespace {

using detail::convert_simple_decimal;
using detail::is_digit;
using detail::is_json_space;
using detail::NumberToken;
using detail::out_of_range_value;
using detail::scan_number;

// Deepest array nesting (and so highest rank) a JSON tensor may have: kMaxRank, the cap of
// every format; it is what keeps a "[[[[..." bomb from costing more than a short scan.
constexpr std::size_t kMaxDepth = kMaxRank;

constexpr std::size_t kUnknown = std::numeric_limits<std::size_t>::max();

// The bytes that end quick_layout's run over numbers, commas and spaces.
constexpr std::array<bool, 256> kBracketOrString = [] {
    std::array<bool, 256> table{};
    for (unsigned char c : {'[', ']', '"', '{', '}'}) table[c] = true;
    return table;
}();

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

// "bool, int8, ..., float32 or float64": every dtype's name, in the order of DType.
std::string dtype_names() {
    static constexpr std::string_view kNames[] = {
#define ATTN_DTYPE_NAME(enumerator, type, name, ...) name,
        ATTN_DTYPES(ATTN_DTYPE_NAME)
#undef ATTN_DTYPE_NAME
    };
    std::string names;
    for (std::size_t i = 0; i < std::size(kNames); ++i) {
        if (i > 0) names += i + 1 < std::size(kNames) ? ", " : " or ";
        names += kNames[i];
    }
    return names;
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
                if (!seen.insert(member).second) fail(key_at, "duplicate tensor name " + detail::quoted(member));
                context_ = "member " + detail::quoted(member) + ": ";
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
        if (peek() != ':') fail(p_, "expected ':' after the key " + detail::quoted(key) + ", found " + describe(p_));
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
            fail_in_data(first, detail::out_of_range(std::string(first, last), dtype_name_of<T>()));
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
                            fail_in_data(p_, detail::not_an_integer(dtype_name_of<T>(), describe(p_)));
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

    // Inside the array at `level` (path_index_[level] its elements so far), at its start
    // or after an element: true at its closing ']' (p_ on it), else p_ moved past the ','
    // that follows an element, to where the next one starts.
    bool at_array_end(std::size_t level, bool after_element) {
        skip_space();
        path_depth_ = level + 1;
        const char c = peek();
        if (c == ']') return true;
        if (after_element) {
            if (c != ',') fail_in_data(p_, "expected ',' or ']' after an element, found " + describe(p_));
            ++p_;
            skip_space();
            ++path_index_[level];
        }
        return false;
    }

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
            if (at_array_end(base + depth, after_element)) {
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
            if (peek() == '[') {
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

    // The '[' that open the first element of each level at q, and so the rank of the
    // data there, q moved past them; kMaxDepth + 1 when there are more than kMaxDepth.
    std::size_t opening_brackets(const char*& q) const {
        std::size_t rank = 0;
        for (;;) {
            while (q < end_ && is_json_space(*q)) ++q;
            if (q == end_ || *q != '[') return rank;
            if (rank == kMaxDepth) return rank + 1;
            ++rank;
            ++q;
        }
    }

    // The layout of nested arrays at p_ from their brackets and commas alone, p_ moved
    // past them: a fast first pass for big data that trusts the fill pass to check the
    // rest (that pass rejects any array whose length differs from the shape found here,
    // and read_data any shape the text is too short for). Returns false, p_ unmoved, for
    // what needs scan_layout: true/false first (a bool tensor needs every element seen),
    // strings, objects, arrays where elements belong, deep nesting, unterminated input.
    bool quick_layout(DataLayout& layout) {
        const char* q = p_;
        const std::size_t rank = opening_brackets(q);
        if (rank == 0 || rank > kMaxDepth || q == end_) return false;
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
            } else if (at_array_end(depth, after_element)) {
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
                if (peek() != '[') fail_in_data(p_, "expected an array, found " + describe(p_));
                ++depth;
                opened[depth] = p_++;
                path_index_[depth] = 0;
                after_element = false;
                continue;
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
        // A half type is read as float64 and rounded once; beyond its range, ±infinity, as
        // np.array(data, dtype) makes it (and as a float32 element beyond float32's range is).
        Tensor tensor = Tensor::empty(is_half(dtype) ? DType::Float64 : dtype, shape, name_);
        tensor.visit([&](auto& values) {
            using T = typename std::decay_t<decltype(values)>::value_type;
            if constexpr (!is_half_v<T>) fill(values.data(), shape, count);
        });
        if (!is_half(dtype)) return tensor;
        return dispatch_dtype(dtype, [&](auto tag) { return Tensor(tensor.cast<decltype(tag)>()); });
    }

    // ---- tensors ------------------------------------------------------------------

    Tensor read_tensor_value() {
        skip_space();
        if (peek() == '{') return read_tensor_object();
        bare_ = true;
        const char* start = p_;
        const DataLayout layout = data_layout();
        // torch.tensor's rule: all true/false gives bool, numbers float32. Booleans mixed
        // with numbers are refused at the first boolean, as in the object form.
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
            fail(at, "unknown dtype " + detail::quoted(text) + " (expected " + dtype_names() + ")");
        }
        return *dtype;
    }

    // {"shape": [...], "dtype": "...", "data": [...]} with the keys in any order.
    Tensor read_tensor_object() {
        const char* object_at = p_++;
        bare_ = false;
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
                fail(key_at, "unknown key " + detail::quoted(key) +
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
    std::array<std::size_t, kMaxDepth> path_index_{};
    std::size_t path_depth_ = 0;
};

}  // namespace

Tensor decode_json(std::string_view text, const std::string& name) { return JsonReader(text, name).read_single(); }

NamedTensors decode_json_archive(std::string_view text, const std::string& name) {
    return JsonReader(text, name).read_archive();
}

}  // namespace attn::io
