// attn/error.hpp - the single error type of the attn library.
//
// Every failure the library can detect is reported by throwing attn::Error; nothing
// prints. The kind tells the caller how to react (the CLI maps Usage to exit status 2
// and everything else to 1). The message is one line and names the subject first:
// the file, tensor or argument at fault, then what was expected and what was found.
// An argument of a library call is named in the library's terms (Arg, arg_name); a
// program that takes it from its own users under another name (attn-cli: a flag) reads
// arg() and detail() and says it in its own terms. The conventions: docs/errors.md.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace attn {

enum class ErrorKind {
    Format,  // a file or stream is malformed or of an unsupported kind
    Shape,   // tensors whose shapes do not fit together
    Value,   // a value out of range (a negative length, a NaN where forbidden, ...)
    Io,      // the operating system refused a read or a write
    Usage,   // the caller asked for something contradictory (E not divisible by H, ...)
};

// The arguments of the library's calls that an error can be about.
enum class Arg : std::uint8_t {
    None,
    Query,             // attention: Q
    Key,               // K
    Value,             // V
    QueryKey,          // Q and K together (batch dims, heads)
    KeyValue,          // K and V together
    Mask,              // AttentionOptions::mask (attn_mask)
    KeyPaddingMask,    // AttentionOptions::key_padding_mask
    KeyLengths,        // AttentionOptions::key_lengths
    Scale,             // AttentionOptions::scale
    Window,            // AttentionOptions::window
    Softcap,           // AttentionOptions::softcap
    Alibi,             // AttentionOptions::alibi
    AlibiSlopes,       // AttentionOptions::alibi_slopes
    Sinks,             // AttentionOptions::sinks
    Lse,               // the log-sum-exp output
    Output,            // the attention output
    Weights,           // the weights handed to a ScoreSink
    Logits,            // the logits handed to a ScoreSink
    WeightsAndLogits,  // both score tensors together
    Heads,             // MhaOptions::heads
    KvHeads,           // MhaOptions::kv_heads
    LayerWeights,      // MhaWeights: the projections of a layer
    DType,             // random_tensor's dtype
    Shape,             // random_tensor's shape
    Batch,             // a batch index chosen in a weights tensor (inspect, heatmaps)
    Head,              // a head index chosen in a weights tensor
    QueryIndex,        // a query index chosen in a weights tensor
    JsonLayout,        // io::JsonLayout::Nested, which cannot hold every tensor
};

// The library's name of an argument, as messages without a caller's mapping show it:
// "query", "attn_mask", "key_padding_mask", "num_heads", ...
std::string_view arg_name(Arg arg) noexcept;

// `text` as one printable line, for a message or a terminal: control bytes (C0, DEL, and
// the C1 controls U+0080-U+009F) written as \xNN; every other non-ASCII byte too unless
// `keep_utf8` (a label of a table may be UTF-8 text; a name in an error message is bytes).
std::string printable(std::string_view text, bool keep_utf8 = false);
// 'text', made printable and cut after 200 bytes: a name or a value quoted inside a
// message. Every name a message of the library or of attn-cli holds goes through this.
std::string quoted(std::string_view text);

// What an error is about: a file, tensor or member by its name, or an argument. The name
// is made printable (UTF-8 kept, control bytes as \xNN), so that a file named with a
// newline still makes a one-line message.
struct Subject {
    Subject(const std::string& subject_name) : name(printable(subject_name, /*keep_utf8=*/true)) {}  // NOLINT: implicit
    Subject(const char* subject_name) : name(printable(subject_name, /*keep_utf8=*/true)) {}         // NOLINT
    Subject(Arg subject_arg) : arg(subject_arg), name(arg_name(subject_arg)) {}                      // NOLINT
    Arg arg = Arg::None;
    std::string name;  // empty: the message is the detail alone
};

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const Subject& subject, const std::string& detail)
        : std::runtime_error(subject.name.empty() ? detail : subject.name + ": " + detail),
          kind_(kind),
          arg_(subject.arg),
          detail_(detail) {}

    ErrorKind kind() const noexcept { return kind_; }
    // The argument at fault, Arg::None when the subject is a name (a file, a tensor).
    Arg arg() const noexcept { return arg_; }
    // The message after its subject: what was expected and what was found.
    const std::string& detail() const noexcept { return detail_; }

private:
    ErrorKind kind_;
    Arg arg_;
    std::string detail_;
};

}  // namespace attn
