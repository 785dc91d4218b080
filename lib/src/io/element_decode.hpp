// Internal: decoding raw element bytes of a file into an attn::Tensor.
//
// Shared by the .npy and .safetensors readers. Bytes are decoded explicitly (never
// reinterpreted through a cast) so unaligned data and either byte order are read right.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "attn/tensor.hpp"

namespace attn::detail {

// How the elements of a file are stored; `dtype` is what they decode to.
struct ElementEncoding {
    DType dtype = DType::Float32;
    std::size_t item_size = 4;  // bytes per element in the file
    bool big_endian = false;
};

// Decodes count(shape) elements from `bytes` (exactly count * item_size of them, checked
// by the caller). `fortran_order` data are column-major and are transposed to row-major.
// `name` is what errors call the input (a tensor too large for memory, say).
Tensor decode_elements(const ElementEncoding& encoding, const Shape& shape, const char* bytes, const std::string& name,
                       bool fortran_order = false);

// Safe size arithmetic: throws ErrorKind::Format naming `subject` on overflow.
std::size_t checked_mul(std::size_t a, std::size_t b, const std::string& subject);
std::size_t checked_add(std::size_t a, std::size_t b, const std::string& subject);

// Throws `kind` "NAME: WHAT has RANK dimensions, over the cap of 64" when `rank` is over
// kMaxRank (attn/tensor.hpp).
void check_rank(std::size_t rank, ErrorKind kind, const std::string& name, const std::string& what);

// Little-endian load and store of an unsigned integer of N bytes.
inline std::uint64_t load_le(const char* p, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t(static_cast<unsigned char>(p[i])) << (8 * i);
    return v;
}
inline void store_le(char* p, std::uint64_t v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

}  // namespace attn::detail
