// Internal: the shortest text that reads back to a float, as the JSON writer spells every
// floating-point element (docs/formats.md, "JSON tensors"). The text is std::to_chars's:
// the shortest digits that read back to the value, the closest such digits when there are
// several, in the shorter of fixed and scientific notation (fixed on a tie), so "0.1",
// "1e-45", "3.4028235e+38", "16777216", "-0". float32 goes through a Schubfach formatter
// of its own, several times faster than libstdc++'s to_chars and byte for byte the same
// but for one value (format_shortest(char*, float) says which).
#pragma once

#include <cstddef>

namespace attn::detail {

// The bytes of room each function needs at `out`: the text is at most 24 characters
// ("-2.2250738585072014e-308"), the rest is for fixed-size stores past its end.
inline constexpr std::size_t kShortestTextRoom = 33;

// A finite float32 (no NaN or infinity), at most 15 characters; returns the end of the
// text. The one exception to to_chars's text is 7.038531e-26 (bits 0x15AE43FD, either
// sign), written 7.0385307e-26: read as Python's json reads it (the nearest float64, then
// numpy's cast to float32), the shorter text would give the next float.
char* format_shortest(char* out, float value);

// A finite float64, std::to_chars's text itself.
char* format_shortest(char* out, double value);

}  // namespace attn::detail
