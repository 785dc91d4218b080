// .npy reading and writing (docs/formats.md, numpy/lib/format.py).
#include <algorithm>
#include <iterator>
#include <optional>

#include "attn/io.hpp"
#include "common/text.hpp"
#include "io/format_error.hpp"
#include "io/npy_header.hpp"

namespace attn::io {
namespace {

using detail::ElementEncoding;
using detail::NpyHeader;
using detail::throw_format_error;

// Each DType's descr in a .npy header: its kind letter and item size, in DType order.
struct NpyDType {
    DType dtype;
    char kind;
    std::size_t size;
};
constexpr NpyDType kNpyDTypes[] = {
#define ATTN_NPY_DTYPE(enumerator, type, name, npy_kind, ...) {DType::enumerator, npy_kind, sizeof(type)},
    ATTN_DTYPES(ATTN_NPY_DTYPE)
#undef ATTN_NPY_DTYPE
};

bool is_npy_kind(char kind) {
    return std::any_of(std::begin(kNpyDTypes), std::end(kNpyDTypes), [&](const NpyDType& d) { return d.kind == kind; });
}

// The DType a descr of this kind and item size decodes to without conversion.
std::optional<DType> dtype_of_descr(char kind, std::size_t size) {
    for (const NpyDType& d : kNpyDTypes) {
        if (d.kind == kind && d.size == size) return d.dtype;
    }
    return std::nullopt;
}

// A tokenizer for the Python dict literal of an npy header:
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
public:
    HeaderParser(std::string_view text, const std::string& name) : text_(text), name_(name) {}

    NpyHeader parse() {
        NpyHeader header;
        bool seen_descr = false, seen_order = false, seen_shape = false;
        expect('{');
        while (true) {
            skip_space();
            if (peek() == '}') break;
            const std::string key = parse_string("a key");
            expect(':');
            if (key == "descr") {
                once(seen_descr, key);
                skip_space();
                if (peek() == '[') {
                    throw_format_error(name_, "npy header: structured dtypes (descr is a list) are not supported");
                }
                header.encoding = parse_descr(parse_string("descr"));
            } else if (key == "fortran_order") {
                once(seen_order, key);
                header.fortran_order = parse_bool();
            } else if (key == "shape") {
                once(seen_shape, key);
                header.shape = parse_shape();
            } else {
                throw_format_error(name_, "npy header: unexpected key " + detail::quoted(key) +
                                              " (expected descr, fortran_order, shape)");
            }
            skip_space();
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            if (peek() != '}') {
                throw_format_error(name_, "npy header: expected ',' or '}' at offset " + std::to_string(pos_));
            }
        }
        ++pos_;
        for (auto [seen, key] :
             {std::pair{seen_descr, "descr"}, {seen_order, "fortran_order"}, {seen_shape, "shape"}}) {
            if (!seen) throw_format_error(name_, std::string("npy header: missing key ") + detail::quoted(key));
        }
        skip_space();
        if (pos_ != text_.size()) throw_format_error(name_, "npy header: unexpected text after the dictionary");
        return header;
    }

private:
    char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }

    void skip_space() {
        while (pos_ < text_.size() &&
               (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r'))
            ++pos_;
    }

    void expect(char c) {
        skip_space();
        if (peek() != c) {
            throw_format_error(name_,
                               std::string("npy header: expected '") + c + "' at offset " + std::to_string(pos_));
        }
        ++pos_;
    }

    void once(bool& seen, const std::string& key) {
        if (seen) throw_format_error(name_, "npy header: duplicate key " + detail::quoted(key));
        seen = true;
    }

    std::string parse_string(const char* what) {
        skip_space();
        const char quote = peek();
        if (quote != '\'' && quote != '"') {
            throw_format_error(name_, std::string("npy header: expected a quoted string for ") + what);
        }
        const std::size_t end = text_.find(quote, pos_ + 1);
        if (end == std::string_view::npos) throw_format_error(name_, "npy header: unterminated string");
        std::string s(text_.substr(pos_ + 1, end - pos_ - 1));
        pos_ = end + 1;
        return s;
    }

    bool parse_bool() {
        skip_space();
        for (auto [word, value] : {std::pair{std::string_view("True"), true}, {std::string_view("False"), false}}) {
            if (text_.substr(pos_, word.size()) == word) {
                pos_ += word.size();
                return value;
            }
        }
        throw_format_error(name_, "npy header: fortran_order must be True or False");
    }

    Shape parse_shape() {
        expect('(');
        Shape shape;
        while (true) {
            skip_space();
            if (peek() == ')') break;
            if (peek() == '-') throw_format_error(name_, "npy header: negative dimension in shape");
            if (peek() < '0' || peek() > '9') {
                throw_format_error(name_, "npy header: shape must be a tuple of non-negative integers");
            }
            // Python refuses a decimal literal with a leading zero ("02"), and so numpy's
            // ast.literal_eval: only "0", "00", ... may start with 0.
            const std::size_t digits_at = pos_;
            std::size_t value = 0;
            while (peek() >= '0' && peek() <= '9') {
                const auto digit = static_cast<std::size_t>(peek() - '0');
                if (value > (SIZE_MAX - digit) / 10) {
                    throw_format_error(name_, "npy header: dimension in shape overflows");
                }
                value = value * 10 + digit;
                ++pos_;
            }
            if (text_[digits_at] == '0' && value != 0) {
                throw_format_error(name_, "npy header: dimension " +
                                              detail::quoted(text_.substr(digits_at, pos_ - digits_at)) +
                                              " in shape has a leading zero (numpy refuses it)");
            }
            if (peek() == 'L') ++pos_;  // Python 2 long literal
            shape.push_back(value);
            skip_space();
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            if (peek() != ')') throw_format_error(name_, "npy header: expected ',' or ')' in shape");
            // "(2)" is the integer 2 in Python, not a tuple; numpy refuses it.
            if (shape.size() == 1) {
                throw_format_error(name_, "npy header: shape (" + std::to_string(value) +
                                              ") is not a tuple (expected (" + std::to_string(value) + ",))");
            }
        }
        ++pos_;
        if (shape.size() > kMaxRank) {
            throw_format_error(name_, "npy header: shape has more than " + std::to_string(kMaxRank) + " dimensions");
        }
        return shape;
    }

    ElementEncoding parse_descr(const std::string& descr) {
        auto unsupported = [&](const std::string& why) -> ElementEncoding {
            throw_format_error(name_, "unsupported dtype " + detail::quoted(descr) + " (" + why +
                                          "); expected bool, int8-64, uint8-64, float16, float32 or float64");
        };
        if (descr.size() < 2) return unsupported("malformed descr");
        const char order = descr[0];
        if (order != '<' && order != '>' && order != '=' && order != '|') return unsupported("unknown byte order");
        const char kind = descr[1];
        const std::string size_text = descr.substr(2);
        if (kind == 'O') return unsupported("Python objects need pickle");
        if (kind == 'S' || kind == 'U' || kind == 'a') return unsupported("strings");
        if (kind == 'c') return unsupported("complex numbers");
        if (kind == 'M' || kind == 'm') return unsupported("datetimes");
        if (kind == 'V') return unsupported("raw or structured data");
        if (size_text.empty() || size_text.size() > 2 ||
            !std::all_of(size_text.begin(), size_text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            return unsupported("malformed item size");
        }
        const auto size = static_cast<std::size_t>(std::stoi(size_text));
        ElementEncoding e;
        e.item_size = size;
        e.big_endian = order == '>';
        const std::optional<DType> dtype = dtype_of_descr(kind, size);
        if (!dtype) return unsupported(is_npy_kind(kind) ? "unsupported item size" : "unknown kind");
        e.dtype = *dtype;
        return e;
    }

    std::string_view text_;
    const std::string& name_;
    std::size_t pos_ = 0;
};

std::string descr_of(DType dtype) {
    const std::size_t size = dtype_size(dtype);
    if (kNpyDTypes[static_cast<std::size_t>(dtype)].kind == '\0') {  // bfloat16
        throw Error(ErrorKind::Value, "tensor", "numpy has no dtype " + std::string(dtype_name(dtype)));
    }
    // One-byte items have no byte order: numpy writes '|' for them.
    return (size == 1 ? "|" : "<") + std::string(1, kNpyDTypes[static_cast<std::size_t>(dtype)].kind) +
           std::to_string(size);
}

}  // namespace

std::string npy_header(DType dtype, const Shape& shape) {
    detail::check_rank(shape.size(), ErrorKind::Value, "tensor", "its shape");
    std::string dict = "{'descr': '" + descr_of(dtype) + "', 'fortran_order': False, 'shape': (";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i > 0) dict += ", ";
        dict += std::to_string(shape[i]);
    }
    if (shape.size() == 1) dict += ",";
    dict += "), }";
    // numpy leaves room to grow the first dimension in place (GROWTH_AXIS_MAX_DIGITS = 21),
    // then pads so that the data start at a multiple of 64 bytes; match it byte for byte.
    if (!shape.empty()) dict.append(21 - std::to_string(shape[0]).size(), ' ');
    const std::size_t unpadded = detail::kNpyMagic.size() + 2 + 2 + dict.size() + 1;
    dict.append((64 - unpadded % 64) % 64, ' ');
    dict += '\n';
    std::string header(detail::kNpyMagic);
    header += '\x01';
    header += '\x00';
    header += static_cast<char>(dict.size() & 0xFF);
    header += static_cast<char>((dict.size() >> 8) & 0xFF);
    return header + dict;
}

void encode_npy(const Tensor& tensor, ByteSink& sink) {
    sink.write(npy_header(tensor.dtype(), tensor.shape()));
    // Little-endian host (checked in element_decode.cpp): the array bytes are the data.
    sink.write(static_cast<const char*>(tensor.data()), tensor.nbytes());
}

Tensor decode_npy(std::string_view bytes, const std::string& name) {
    const NpyHeader header = detail::parse_npy_header(bytes, bytes.size(), name);
    detail::check_npy_data_size(header, bytes.size(), name);
    return detail::decode_elements(header.encoding, header.shape, bytes.data() + header.data_offset, name,
                                   header.fortran_order);
}

}  // namespace attn::io

namespace attn::detail {

NpyHeader parse_npy_header(std::string_view prefix, std::size_t file_size, const std::string& name) {
    if (file_size == 0) throw_format_error(name, "file is empty (expected an npy file)");
    if (prefix.substr(0, kNpyMagic.size()) != kNpyMagic) {
        throw_format_error(name, "not an npy file (bad magic; expected \\x93NUMPY)");
    }
    if (prefix.size() < 8) throw_format_error(name, "npy header truncated (file ends after the magic)");
    const auto major = static_cast<unsigned char>(prefix[6]);
    const auto minor = static_cast<unsigned char>(prefix[7]);
    if (major < 1 || major > 3 || minor != 0) {
        throw_format_error(name, "unsupported npy version " + std::to_string(major) + "." + std::to_string(minor) +
                                     " (expected 1.0, 2.0 or 3.0)");
    }
    const std::size_t length_size = major == 1 ? 2 : 4;
    if (prefix.size() < 8 + length_size) throw_format_error(name, "npy header truncated (no header length)");
    const std::size_t header_len = load_le(prefix.data() + 8, length_size);
    if (header_len > kNpyMaxHeaderSize) {
        throw_format_error(name, "npy header length " + std::to_string(header_len) + " is over the cap of " +
                                     std::to_string(kNpyMaxHeaderSize) + " bytes");
    }
    const std::size_t data_offset = 8 + length_size + header_len;
    if (data_offset > file_size) {
        throw_format_error(name, "npy header length " + std::to_string(header_len) +
                                     " runs past the end of the file (" + std::to_string(file_size) + " bytes)");
    }
    if (data_offset > prefix.size()) throw_format_error(name, "npy header truncated");
    std::string_view text = prefix.substr(8 + length_size, header_len);
    NpyHeader header = io::HeaderParser(text, name).parse();
    header.data_offset = data_offset;
    std::size_t size = header.encoding.item_size;
    for (std::size_t d : header.shape)
        size = checked_mul(size, d, name + ": npy shape " + shape_to_string(header.shape));
    header.data_size = size;
    return header;
}

void check_npy_data_size(const NpyHeader& header, std::size_t file_size, const std::string& name) {
    const std::size_t have = file_size - header.data_offset;
    if (have != header.data_size) {
        throw_format_error(name, "npy data is " + std::to_string(have) + " bytes, shape " +
                                     shape_to_string(header.shape) + " needs " + std::to_string(header.data_size) +
                                     (have < header.data_size ? " (truncated)" : " (trailing bytes)"));
    }
}

}  // namespace attn::detail
