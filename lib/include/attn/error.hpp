// attn/error.hpp - the single error type of the attn library.
//
// Every failure the library can detect is reported by throwing attn::Error; nothing
// prints. The kind tells the caller how to react (the CLI maps Usage to exit status 2
// and everything else to 1). The message is one line and names the subject first:
// the file, tensor or option at fault, then what was expected and what was found.
#pragma once

#include <stdexcept>
#include <string>

namespace attn {

enum class ErrorKind {
    Format,  // a file or stream is malformed or of an unsupported kind
    Shape,   // tensors whose shapes do not fit together
    Value,   // a value out of range (a negative length, a NaN where forbidden, ...)
    Io,      // the operating system refused a read or a write
    Usage,   // the caller asked for something contradictory (E not divisible by H, ...)
};

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& subject, const std::string& what)
        : std::runtime_error(subject.empty() ? what : subject + ": " + what), kind_(kind) {}

    ErrorKind kind() const noexcept { return kind_; }

private:
    ErrorKind kind_;
};

}  // namespace attn
