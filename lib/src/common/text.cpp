#include "common/text.hpp"

#include <cstring>

#include "attn/error.hpp"

namespace attn::detail {
namespace {

constexpr char kHex[] = "0123456789abcdef";
// Long enough for any name a person would give, short enough for one terminal line.
constexpr std::size_t kNameLimit = 200;

}  // namespace

std::string printable(std::string_view text, std::size_t limit, bool keep_utf8) {
    std::string out;
    const std::string_view kept = text.substr(0, limit);
    bool in_c1_control = false;
    for (std::size_t i = 0; i < kept.size(); ++i) {
        const auto byte = static_cast<unsigned char>(kept[i]);
        // U+0080-U+009F in UTF-8 is C2 80-C2 9F: a terminal may take it for CSI and the like.
        const bool c1_control = in_c1_control || (byte == 0xC2 && i + 1 < kept.size() &&
                                                  (static_cast<unsigned char>(kept[i + 1]) & 0xE0) == 0x80);
        in_c1_control = byte == 0xC2 && c1_control;
        if ((byte >= 0x20 && byte < 0x7F) || (keep_utf8 && byte >= 0x80 && !c1_control)) {
            out += kept[i];
        } else {
            out += "\\x";
            out += kHex[byte >> 4];
            out += kHex[byte & 0xF];
        }
    }
    return text.size() > limit ? out + "..." : out;
}

}  // namespace attn::detail

namespace attn {

std::string printable(std::string_view text, bool keep_utf8) {
    return detail::printable(text, std::string_view::npos, keep_utf8);
}

std::string quoted(std::string_view text) { return "'" + detail::printable(text, detail::kNameLimit) + "'"; }

}  // namespace attn

namespace attn::detail {

std::string join_names(const std::vector<std::string>& names, std::string_view if_empty) {
    if (names.empty()) return std::string(if_empty);
    std::string out;
    for (const auto& name : names) {
        if (!out.empty()) out += ", ";
        out += printable(name, kNameLimit);
    }
    return out;
}

std::string out_of_range(std::string_view value, std::string_view dtype) {
    return std::string(value) + " is out of range for " + std::string(dtype);
}

std::string not_an_integer(std::string_view dtype, std::string_view found) {
    return "expected an integer (dtype " + std::string(dtype) + "), found " + std::string(found);
}

bool ends_with(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string json_quote(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    out += "\\u00";
                    out += kHex[static_cast<unsigned char>(c) >> 4];
                    out += kHex[static_cast<unsigned char>(c) & 0xF];
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

void throw_errno(const std::string& subject, const std::string& what, int err) {
    throw Error(ErrorKind::Io, subject, what + ": " + std::strerror(err));
}

}  // namespace attn::detail
