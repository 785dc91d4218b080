// Internal: how the file readers of io/ report input that breaks its format's rules
// (docs/errors.md): attn::Error of kind Format whose subject is the file, or the member,
// being read.
#pragma once

#include <string>

#include "attn/error.hpp"

namespace attn::detail {

// Throws ErrorKind::Format "SUBJECT: WHAT".
[[noreturn]] inline void throw_format_error(const std::string& subject, const std::string& what) {
    throw Error(ErrorKind::Format, subject, what);
}

}  // namespace attn::detail
