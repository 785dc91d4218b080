// Internal: JSON tensor text a block of rows at a time, for writers that stream a tensor
// without holding it (attn/score_writer.hpp). The same text as encode_json, in pieces:
// json_open, then json_rows for every row of the last dimension in order, json_close.
// The shape must have no zero dimension (a tensor without elements is written whole).
#pragma once

#include <cstddef>
#include <string>

#include "attn/io.hpp"
#include "attn/tensor.hpp"

namespace attn::io::detail {

std::string json_open(DType dtype, const Shape& shape, JsonLayout layout);
std::string json_close(const Shape& shape, JsonLayout layout);  // with the final newline

// Rows [first, first + count) with the separators before each; `values` holds row first on.
// Formats only, so blocks may be formatted on several threads at once.
template <class T>
void json_rows(const T* values, const Shape& shape, std::size_t first, std::size_t count, JsonLayout layout,
               ByteSink& out);

extern template void json_rows<float>(const float*, const Shape&, std::size_t, std::size_t, JsonLayout, ByteSink&);
extern template void json_rows<double>(const double*, const Shape&, std::size_t, std::size_t, JsonLayout, ByteSink&);

}  // namespace attn::io::detail
