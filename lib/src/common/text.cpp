#include "common/text.hpp"

#include <cstring>

#include "attn/error.hpp"

namespace attn::detail {
namespace {

constexpr char kHex[] = "0123456789abcdef";
// Long enough for any name a person would give, short enough for one terminal line.
constexpr std::size_t kNameLimit = 200;

}  // namespace

std::string printable(std::string_view text, std::size_t limit) {
    std::string out;
    for (const char c : text.substr(0, limit)) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte >= 0x20 && byte < 0x7F) {
            out += c;
        } else {
            out += "\\x";
            out += kHex[byte >> 4];
            out += kHex[byte & 0xF];
        }
    }
    return text.size() > limit ? out + "..." : out;
}

std::string quoted(std::string_view name) { return "'" + printable(name, kNameLimit) + "'"; }

std::string join_names(const std::vector<std::string>& names, std::string_view if_empty) {
    if (names.empty()) return std::string(if_empty);
    std::string out;
    for (const auto& name : names) {
        if (!out.empty()) out += ", ";
        out += printable(name, kNameLimit);
    }
    return out;
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
