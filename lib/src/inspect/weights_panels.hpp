// Internal: what the inspect summaries and the heatmap renderers share - raw access to
// a weights tensor's values and a parallel loop over them, where a panel starts, the range
// checks of the batch, head and query indices, and positions spelled as in error messages.
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

// Runs body(i, values) for every i in [0, count) on OpenMP threads, `chunk` indices at a
// time, `values` as with_weight_values gives them. body must not throw: an exception
// cannot leave an OpenMP loop.
template <class F>
void parallel_over_weights(const Tensor& weights, std::size_t count, int chunk, F&& body) {
    with_weight_values(weights, [&](const auto* values) {
        const auto n = static_cast<std::ptrdiff_t>(count);
#pragma omp parallel for schedule(dynamic, chunk)
        for (std::ptrdiff_t i = 0; i < n; ++i) body(static_cast<std::size_t>(i), values);
    });
}

// Where panel (batch, head) starts among the row-major values.
inline std::size_t panel_offset(const WeightsLayout& layout, std::size_t batch, std::size_t head) {
    return (batch * layout.heads + head) * layout.queries * layout.keys;
}

// Throws ErrorKind::Usage naming `arg` unless index < count; `what` is the plural noun.
void check_index(std::size_t index, std::size_t count, Arg arg, const std::string& what);

// "(0, 3, 1, 7)": the index of the flat element `offset` of `shape`, as numpy prints it.
std::string position_string(const Shape& shape, std::size_t offset);

// A short number for messages and axis labels: printf's %.{digits}g.
std::string format_number(double value, int digits = 3);

}  // namespace attn::detail
