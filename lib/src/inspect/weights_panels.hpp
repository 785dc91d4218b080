// Internal: what the inspect summaries and the heatmap renderers share - raw access to
// a weights tensor's values, the range checks of the batch, head and query indices, and positions
// spelled as in error messages.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "attn/inspect.hpp"
#include "attn/tensor.hpp"

namespace attn::detail {

// Calls f(const T*) on the row-major values: float32 and float64 without a copy, any
// other dtype converted to float64 (the inner loops then run on plain pointers).
template <class F>
decltype(auto) with_weight_values(const Tensor& weights, F&& f) {
    if (weights.holds<float>()) return f(weights.values<float>().data());
    if (weights.holds<double>()) return f(weights.values<double>().data());
    const ValuesAs<double> converted(weights);
    return f(converted.data());
}

// Throws ErrorKind::Usage naming `arg` unless index < count; `what` is the plural noun.
void check_index(std::size_t index, std::size_t count, Arg arg, const std::string& what);

// "(0, 3, 1, 7)": the index of the flat element `offset` of `shape`, as numpy prints it.
std::string position_string(const Shape& shape, std::size_t offset);

// A short number for messages and axis labels: printf's %.{digits}g.
std::string format_number(double value, int digits = 3);

}  // namespace attn::detail
