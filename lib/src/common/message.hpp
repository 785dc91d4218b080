// Internal: text from a file quoted in an error message.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace attn::detail {

// `text` with control and non-ASCII bytes written as \xNN, cut after `limit` bytes, so
// that a message quoting hostile input stays one printable line.
inline std::string printable(std::string_view text, std::size_t limit = 64) {
    static constexpr char kHex[] = "0123456789abcdef";
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

}  // namespace attn::detail
