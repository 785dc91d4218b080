// How attn-cli words the library's errors: an error about an argument of a library call
// names the flag that argument came from (docs/errors.md).
#pragma once

#include <string>
#include <string_view>

#include "attn/error.hpp"

namespace attn::cli {

// The flag a library argument is given with; empty for Arg::None.
std::string_view flag_for(Arg arg) noexcept;

// The one-line message for a library error, its subject named as the user wrote it.
std::string error_message(const Error& error);

}  // namespace attn::cli
