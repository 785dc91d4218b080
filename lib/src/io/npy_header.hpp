// Internal: the parsed header of a .npy file (numpy/lib/format.py is the spec).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "attn/tensor.hpp"
#include "io/element_decode.hpp"

namespace attn::detail {

struct NpyHeader {
    ElementEncoding encoding;
    Shape shape;
    bool fortran_order = false;
    std::size_t data_offset = 0;  // bytes from the start of the file to the data
    std::size_t data_size = 0;    // element count x item size, overflow-checked
};

// The first bytes of every .npy file.
inline constexpr std::string_view kNpyMagic("\x93NUMPY", 6);

// numpy's default cap on the header length (max_header_size).
constexpr std::size_t kNpyMaxHeaderSize = 10000;
// Enough leading bytes to hold any header under the cap.
constexpr std::size_t kNpyMaxPrefix = 12 + kNpyMaxHeaderSize;

// Parses the header from the first bytes of a file; `file_size` is the whole file's
// size, against which the header length is checked. Data-size agreement is checked by
// the caller (file_size - data_offset must equal data_size).
NpyHeader parse_npy_header(std::string_view prefix, std::size_t file_size, const std::string& name);

// Throws unless the file's data bytes are exactly what the header says.
void check_npy_data_size(const NpyHeader& header, std::size_t file_size, const std::string& name);

}  // namespace attn::detail
