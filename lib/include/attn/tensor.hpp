// attn/tensor.hpp - a dense, row-major tensor of one of numpy's numeric dtypes.
//
// attn::Tensor owns an xt::xarray of the dtype it was read or created with, so the file
// readers keep what the file said (an int8 mask stays int8) and the kernels take the
// floating-point array they need without a copy when the dtype already matches.
// float16 and bfloat16 data are widened to float32 when read (there is no native type).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <xtensor/xarray.hpp>

#include "attn/error.hpp"

namespace attn {

enum class DType : std::uint8_t {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Float32,
    Float64,
};

using Shape = std::vector<std::size_t>;

// numpy's name of the dtype: "bool", "int8", ..., "float32", "float64".
std::string_view dtype_name(DType dtype);
// The inverse of dtype_name; nullopt for anything else.
std::optional<DType> dtype_from_name(std::string_view name);
std::size_t dtype_size(DType dtype);
bool is_floating(DType dtype);
// "(2, 5, 64)" - the way numpy prints a shape; used in every shape error message.
std::string shape_to_string(const Shape& shape);
// The number of elements of a shape; throws ErrorKind::Value naming `subject` when the
// product of its non-zero dims overflows ptrdiff_t (xtensor's stride type).
std::size_t checked_element_count(const Shape& shape, const Subject& subject);

// The bytes this process may still allocate: MemAvailable + SwapFree of /proc/meminfo;
// nullopt where they cannot be read (then nothing is refused for want of memory).
std::optional<std::size_t> available_memory();
// "40.0 TB": a byte count in decimal units with one decimal, as error messages show it.
std::string bytes_to_string(std::size_t bytes);
// Refuses, before anything is allocated, a buffer that cannot fit in memory: throws
// ErrorKind::Value "SUBJECT: needs 40.0 TB for WHAT, 21.3 GB available" when `bytes`
// exceed available_memory(). Without it the allocation would fail with no name attached,
// or succeed under overcommit and end in the kernel's OOM killer.
void check_memory(std::size_t bytes, const Subject& subject, const std::string& what);

template <class T>
struct dtype_of;
template <>
struct dtype_of<bool> {
    static constexpr DType value = DType::Bool;
};
template <>
struct dtype_of<std::int8_t> {
    static constexpr DType value = DType::Int8;
};
template <>
struct dtype_of<std::int16_t> {
    static constexpr DType value = DType::Int16;
};
template <>
struct dtype_of<std::int32_t> {
    static constexpr DType value = DType::Int32;
};
template <>
struct dtype_of<std::int64_t> {
    static constexpr DType value = DType::Int64;
};
template <>
struct dtype_of<std::uint8_t> {
    static constexpr DType value = DType::UInt8;
};
template <>
struct dtype_of<std::uint16_t> {
    static constexpr DType value = DType::UInt16;
};
template <>
struct dtype_of<std::uint32_t> {
    static constexpr DType value = DType::UInt32;
};
template <>
struct dtype_of<std::uint64_t> {
    static constexpr DType value = DType::UInt64;
};
template <>
struct dtype_of<float> {
    static constexpr DType value = DType::Float32;
};
template <>
struct dtype_of<double> {
    static constexpr DType value = DType::Float64;
};

class Tensor {
public:
    // The alternatives are in the order of DType, so storage_.index() is the dtype.
    using Storage =
        std::variant<xt::xarray<bool>, xt::xarray<std::int8_t>, xt::xarray<std::int16_t>, xt::xarray<std::int32_t>,
                     xt::xarray<std::int64_t>, xt::xarray<std::uint8_t>, xt::xarray<std::uint16_t>,
                     xt::xarray<std::uint32_t>, xt::xarray<std::uint64_t>, xt::xarray<float>, xt::xarray<double>>;

    Tensor() = default;
    template <class T>
    explicit Tensor(xt::xarray<T> values) : storage_(std::move(values)) {}

    // A zero-filled tensor. Both factories refuse shapes checked_element_count refuses and
    // tensors check_memory refuses, naming `subject` (the file or argument the shape came from).
    static Tensor zeros(DType dtype, const Shape& shape, const Subject& subject = "tensor");
    // A tensor whose elements are left uninitialised, for readers that fill it at once.
    static Tensor empty(DType dtype, const Shape& shape, const Subject& subject = "tensor");

    DType dtype() const noexcept { return static_cast<DType>(storage_.index()); }
    Shape shape() const;
    std::size_t rank() const;
    std::size_t size() const;
    std::size_t nbytes() const { return size() * dtype_size(dtype()); }

    // The element bytes, row-major, native byte order.
    const void* data() const;
    void* data();

    template <class T>
    bool holds() const noexcept {
        return std::holds_alternative<xt::xarray<T>>(storage_);
    }

    // The array itself; throws ErrorKind::Value if the dtype is not T.
    template <class T>
    const xt::xarray<T>& values() const {
        if (!holds<T>()) throw_wrong_dtype(dtype_of<T>::value);
        return std::get<xt::xarray<T>>(storage_);
    }
    template <class T>
    xt::xarray<T>& values() {
        if (!holds<T>()) throw_wrong_dtype(dtype_of<T>::value);
        return std::get<xt::xarray<T>>(storage_);
    }

    // The values converted to T (bool to 0/1); moves instead of copying when an rvalue
    // tensor already holds T.
    template <class T>
    xt::xarray<T> cast() const& {
        return std::visit([](const auto& a) { return xt::xarray<T>(xt::cast<T>(a)); }, storage_);
    }
    template <class T>
    xt::xarray<T> cast() && {
        if (holds<T>()) return std::move(std::get<xt::xarray<T>>(storage_));
        return static_cast<const Tensor&>(*this).cast<T>();
    }
    // A tensor of another dtype holding the same values (rounded as static_cast does).
    Tensor to(DType dtype) const&;
    Tensor to(DType dtype) &&;

    template <class F>
    decltype(auto) visit(F&& f) const {
        return std::visit(std::forward<F>(f), storage_);
    }
    template <class F>
    decltype(auto) visit(F&& f) {
        return std::visit(std::forward<F>(f), storage_);
    }

private:
    [[noreturn]] void throw_wrong_dtype(DType wanted) const;

    Storage storage_ = xt::xarray<float>();
};

// The first NaN or infinity of a tensor in row-major order: its index and value.
struct NonFinite {
    Shape index;
    double value;
};
// nullopt when every element is finite (always for bool and integer tensors). With
// `allow_negative_infinity`, -inf counts as finite: in an additive mask it means "masked".
std::optional<NonFinite> first_non_finite(const Tensor& tensor, bool allow_negative_infinity = false);
// Throws ErrorKind::Value "SUBJECT: non-finite value NaN at [0, 3, 17] (NOTE)" for the
// first non-finite element (no parentheses when `note` is empty).
void check_finite(const Tensor& tensor, const std::string& subject, bool allow_negative_infinity = false,
                  const std::string& note = "");

// A tensor's values as T: the tensor's own array when it already holds T, else a
// converted copy. Borrows `tensor`, which must outlive it.
template <class T>
class ValuesAs {
public:
    explicit ValuesAs(const Tensor& tensor) {
        if (tensor.holds<T>()) {
            values_ = &tensor.values<T>();
        } else {
            converted_ = tensor.cast<T>();
            values_ = &converted_;
        }
    }
    ValuesAs(ValuesAs&& other) noexcept
        : converted_(std::move(other.converted_)),
          values_(other.values_ == &other.converted_ ? &converted_ : other.values_) {}
    ValuesAs(const ValuesAs&) = delete;
    ValuesAs& operator=(const ValuesAs&) = delete;
    ValuesAs& operator=(ValuesAs&&) = delete;

    const xt::xarray<T>& operator*() const noexcept { return *values_; }
    const xt::xarray<T>* operator->() const noexcept { return values_; }
    const T* data() const noexcept { return values_->data(); }

private:
    xt::xarray<T> converted_;
    const xt::xarray<T>* values_ = nullptr;
};

// Calls f(T{}) with T the C++ type of `dtype`.
template <class F>
decltype(auto) dispatch_dtype(DType dtype, F&& f) {
    switch (dtype) {
        case DType::Bool: return f(bool{});
        case DType::Int8: return f(std::int8_t{});
        case DType::Int16: return f(std::int16_t{});
        case DType::Int32: return f(std::int32_t{});
        case DType::Int64: return f(std::int64_t{});
        case DType::UInt8: return f(std::uint8_t{});
        case DType::UInt16: return f(std::uint16_t{});
        case DType::UInt32: return f(std::uint32_t{});
        case DType::UInt64: return f(std::uint64_t{});
        case DType::Float32: return f(float{});
        case DType::Float64: break;
    }
    return f(double{});
}

}  // namespace attn
