// What the inspect summaries and the heatmap renderers share (weights_panels.hpp).
#include "inspect/weights_panels.hpp"

#include <cstdio>
#include <vector>

#include "attn/error.hpp"

namespace attn::detail {

void check_index(std::size_t index, std::size_t count, Arg arg, const std::string& what) {
    if (index < count) return;
    throw Error(ErrorKind::Usage, arg,
                "expected 0 to " + std::to_string(count - 1) + " (the tensor has " + std::to_string(count) + " " +
                    what + "), found " + std::to_string(index));
}

std::string position_string(const Shape& shape, std::size_t offset) {
    std::vector<std::size_t> index(shape.size());
    for (std::size_t d = shape.size(); d-- > 0;) {
        index[d] = offset % shape[d];
        offset /= shape[d];
    }
    std::string text = "(";
    for (std::size_t d = 0; d < index.size(); ++d) text += (d > 0 ? ", " : "") + std::to_string(index[d]);
    return text + ")";
}

std::string format_number(double value, int digits) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.*g", digits, value);
    return buffer;
}

}  // namespace detail
