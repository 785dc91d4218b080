// Element bytes of a file decoded into a tensor (element_decode.hpp): either byte order,
// float16/bfloat16 kept as they are, column-major data transposed; and the overflow-checked size
// arithmetic the readers measure files with.
#include "io/element_decode.hpp"

#include <cstring>
#include <limits>

#include "io/format_error.hpp"

namespace attn::detail {

void check_rank(std::size_t rank, ErrorKind kind, const std::string& name, const std::string& what) {
    if (rank <= kMaxRank) return;
    throw Error(kind, name,
                what + " has " + std::to_string(rank) + " dimensions, over the cap of " + std::to_string(kMaxRank));
}

std::size_t checked_mul(std::size_t a, std::size_t b, const std::string& subject) {
    if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a) {
        throw_format_error(subject, "size overflows (" + std::to_string(a) + " x " + std::to_string(b) + ")");
    }
    return a * b;
}

std::size_t checked_add(std::size_t a, std::size_t b, const std::string& subject) {
    if (b > std::numeric_limits<std::size_t>::max() - a) {
        throw_format_error(subject, "size overflows (" + std::to_string(a) + " + " + std::to_string(b) + ")");
    }
    return a + b;
}

namespace {

template <class T>
T decode_one(const char* p, const ElementEncoding& e) {
    if constexpr (std::is_same_v<T, bool>) {
        return *p != 0;
    } else {
        std::uint64_t bits = 0;
        const std::size_t n = sizeof(T);
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t shift = e.big_endian ? 8 * (n - 1 - i) : 8 * i;
            bits |= std::uint64_t(static_cast<unsigned char>(p[i])) << shift;
        }
        T v;
        if constexpr (sizeof(T) == 1) {
            const auto b = static_cast<std::uint8_t>(bits);
            std::memcpy(&v, &b, 1);
        } else if constexpr (is_half_v<T>) {
            v = T::from_bits(static_cast<std::uint16_t>(bits));
        } else if constexpr (sizeof(T) == 2) {
            const auto b = static_cast<std::uint16_t>(bits);
            std::memcpy(&v, &b, 2);
        } else if constexpr (sizeof(T) == 4) {
            const auto b = static_cast<std::uint32_t>(bits);
            std::memcpy(&v, &b, 4);
        } else {
            std::memcpy(&v, &bits, 8);
        }
        return v;
    }
}

// Row-major index i of the output -> offset of the same element in column-major data.
class FortranIndex {
public:
    explicit FortranIndex(const Shape& shape) : shape_(shape), index_(shape.size(), 0) {
        stride_.resize(shape.size());
        std::size_t s = 1;
        for (std::size_t d = 0; d < shape.size(); ++d) {
            stride_[d] = s;
            s *= shape[d];
        }
    }
    std::size_t offset() const { return offset_; }
    void advance() {  // next row-major index
        for (std::size_t d = shape_.size(); d-- > 0;) {
            offset_ += stride_[d];
            if (++index_[d] < shape_[d]) return;
            offset_ -= stride_[d] * shape_[d];
            index_[d] = 0;
        }
    }

private:
    Shape shape_;
    Shape index_;
    Shape stride_;
    std::size_t offset_ = 0;
};

}  // namespace

Tensor decode_elements(const ElementEncoding& e, const Shape& shape, const char* bytes, const std::string& name,
                       bool fortran_order) {
    Tensor tensor = Tensor::empty(e.dtype, shape, name);
    const std::size_t count = tensor.size();
    if (count == 0) return tensor;  // no data (and possibly no buffer to copy into)
    tensor.visit([&](auto& a) {
        using T = typename std::decay_t<decltype(a)>::value_type;
        T* out = a.data();
        auto element = [&](std::size_t k) -> T { return decode_one<T>(bytes + k * e.item_size, e); };
        const bool plain = !fortran_order || shape.size() < 2;
        const bool native = !e.big_endian && sizeof(T) == e.item_size && !std::is_same_v<T, bool>;
        if (plain && native) {
            std::memcpy(out, bytes, count * sizeof(T));  // little-endian host: bytes are the values
        } else if (plain) {
            for (std::size_t k = 0; k < count; ++k) out[k] = element(k);
        } else {
            FortranIndex index(shape);
            for (std::size_t k = 0; k < count; ++k, index.advance()) out[k] = element(index.offset());
        }
    });
    return tensor;
}

}  // namespace attn::detail
