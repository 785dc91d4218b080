// Internal: how names and text appear in error messages and in the JSON the library
// writes. One function per job, so that every message quotes a name the same way.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "attn/error.hpp"

namespace attn::detail {

// `text` with control and non-ASCII bytes written as \xNN (only control bytes, C1 ones
// included, with `keep_utf8`), cut after `limit` bytes, so that a message quoting hostile
// input stays one printable line. attn::printable (attn/error.hpp) is this without a limit.
std::string printable(std::string_view text, std::size_t limit = 64, bool keep_utf8 = false);

// 'name', made printable: a member, tensor, key or file name inside a message.
using attn::quoted;

// "a, b, c" with each name made printable; `if_empty` when there are none.
std::string join_names(const std::vector<std::string>& names, std::string_view if_empty = "none");

// "300 is out of range for int8": a value a dtype cannot hold (the JSON reader, casts).
std::string out_of_range(std::string_view value, std::string_view dtype);
// "expected an integer (dtype int32), found 1.5": a non-integer where an integer dtype needs one.
std::string not_an_integer(std::string_view dtype, std::string_view found);

bool ends_with(std::string_view text, std::string_view suffix);

// A JSON string literal, escaped as Python's json.dumps escapes (\" \\ \n \r \t \b \f,
// other control bytes as \u00XX); non-ASCII bytes pass through as the UTF-8 they are.
std::string json_quote(std::string_view text);

// Throws ErrorKind::Io "SUBJECT: WHAT: strerror(err)".
[[noreturn]] void throw_errno(const std::string& subject, const std::string& what, int err);

}  // namespace attn::detail
