// attn/tensor.hpp - a dense, row-major tensor of one of numpy's numeric dtypes.
//
// attn::Tensor owns an xt::xarray of the dtype it was read or created with, so the file
// readers keep what the file said (an int8 mask stays int8) and the kernels take the
// floating-point array they need without a copy when the dtype already matches.
// float16 and bfloat16 are stored as read (attn/half.hpp) and computed in as float32.
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
#include "attn/half.hpp"

namespace attn {

// Every dtype, once: X(Enumerator, C++ type, numpy name, npy kind, safetensors name), in
// the order of DType and of Tensor::Storage's alternatives. The item size is the C++
// type's; the npy kind is the letter of a .npy descr ('<f4': kind f, 4 bytes) and the
// safetensors name the dtype of a .safetensors header entry (docs/formats.md). DType,
// Tensor::Storage, dtype_of, dispatch_dtype, the names and sizes, and the file formats'
// tables are all made from this list. float16 and bfloat16 (attn/half.hpp) are storage
// only: kernels convert them to float32; bfloat16 has no npy kind ('\0': numpy has none).
#define ATTN_DTYPES(X)                             \
    X(Bool, bool, "bool", 'b', "BOOL")             \
    X(Int8, std::int8_t, "int8", 'i', "I8")        \
    X(Int16, std::int16_t, "int16", 'i', "I16")    \
    X(Int32, std::int32_t, "int32", 'i', "I32")    \
    X(Int64, std::int64_t, "int64", 'i', "I64")    \
    X(UInt8, std::uint8_t, "uint8", 'u', "U8")     \
    X(UInt16, std::uint16_t, "uint16", 'u', "U16") \
    X(UInt32, std::uint32_t, "uint32", 'u', "U32") \
    X(UInt64, std::uint64_t, "uint64", 'u', "U64") \
    X(Float32, float, "float32", 'f', "F32")       \
    X(Float64, double, "float64", 'f', "F64")      \
    X(Float16, float16, "float16", 'f', "F16")     \
    X(BFloat16, bfloat16, "bfloat16", '\0', "BF16")

enum class DType : std::uint8_t {
#define ATTN_DTYPE_ENUMERATOR(enumerator, ...) enumerator,
    ATTN_DTYPES(ATTN_DTYPE_ENUMERATOR)
#undef ATTN_DTYPE_ENUMERATOR
};

using Shape = std::vector<std::size_t>;

// The highest rank a tensor file may hold (numpy's NPY_MAXDIMS): every reader refuses a
// file with more dimensions and every writer a tensor with more (.npy, .npz,
// .safetensors, JSON; docs/formats.md), so what attn-cli writes it can read back.
constexpr std::size_t kMaxRank = 64;

// numpy's name of the dtype: "bool", "int8", ..., "float32", "float64".
std::string_view dtype_name(DType dtype);
// The inverse of dtype_name; nullopt for anything else.
std::optional<DType> dtype_from_name(std::string_view name);
std::size_t dtype_size(DType dtype);
bool is_floating(DType dtype);  // float16, bfloat16, float32 or float64
// float16 or bfloat16: stored as read, computed in as float32.
inline bool is_half(DType dtype) { return dtype == DType::Float16 || dtype == DType::BFloat16; }
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

// The DType of a C++ type: dtype_of<float>::value is DType::Float32.
template <class T>
struct dtype_of;
#define ATTN_DTYPE_OF(enumerator, type, ...)              \
    template <>                                           \
    struct dtype_of<type> {                               \
        static constexpr DType value = DType::enumerator; \
    };
ATTN_DTYPES(ATTN_DTYPE_OF)
#undef ATTN_DTYPE_OF

namespace detail {
// std::variant<xt::xarray<T>...> of the types after the first (a placeholder that lets
// the list below start every type with a comma).
template <class Placeholder, class... T>
struct ArraysOf {
    using type = std::variant<xt::xarray<T>...>;
};
}  // namespace detail

class Tensor {
public:
    // An xt::xarray of each type of ATTN_DTYPES, in the order of DType, so storage_.index()
    // is the dtype.
#define ATTN_DTYPE_COMMA_TYPE(enumerator, type, ...) , type
    using Storage = detail::ArraysOf<void ATTN_DTYPES(ATTN_DTYPE_COMMA_TYPE)>::type;
#undef ATTN_DTYPE_COMMA_TYPE

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

    // The values converted to T (bool to 0/1; one half type to the other through float);
    // moves instead of copying when an rvalue tensor already holds T.
    template <class T>
    xt::xarray<T> cast() const& {
        return std::visit(
            [](const auto& a) {
                using S = typename std::decay_t<decltype(a)>::value_type;
                if constexpr (is_half_v<S> && is_half_v<T> && !std::is_same_v<S, T>) {
                    return xt::xarray<T>(xt::cast<T>(xt::cast<float>(a)));
                } else {
                    return xt::xarray<T>(xt::cast<T>(a));
                }
            },
            storage_);
    }
    template <class T>
    xt::xarray<T> cast() && {
        if (holds<T>()) return std::move(std::get<xt::xarray<T>>(storage_));
        return static_cast<const Tensor&>(*this).cast<T>();
    }
    // A tensor of another dtype holding the same values (a float rounded to the nearest
    // float32). Throws ErrorKind::Value "SUBJECT: element [1]: 300 is out of range for int8"
    // for the first value the dtype cannot hold (first_misfit) instead of casting it.
    Tensor to(DType dtype, const std::string& subject = "tensor") const&;
    Tensor to(DType dtype, const std::string& subject = "tensor") &&;

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
// first non-finite element (no parentheses when `note` is empty). With `compute_dtype`,
// the values are checked as they will be computed: a finite float64 that float32 cannot
// hold (1e300) is refused too, "SUBJECT: element [0]: 1e+300 is out of range for float32".
void check_finite(const Tensor& tensor, const std::string& subject, bool allow_negative_infinity = false,
                  const std::string& note = "", std::optional<DType> compute_dtype = std::nullopt);

// The first element of `tensor` that `dtype` cannot hold, in row-major order: its index
// and what is wrong ("300 is out of range for int8", "expected an integer (dtype int8),
// found -1.5"). To an integer dtype a value must be an integer in range, NaN and the
// infinities are not; to bool, 0 or 1; to float32, a finite value must stay finite.
struct Misfit {
    Shape index;
    std::string what;
};
std::optional<Misfit> first_misfit(const Tensor& tensor, DType dtype);

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
#define ATTN_DTYPE_CASE(enumerator, type, ...) \
    case DType::enumerator: return f(type{});
        ATTN_DTYPES(ATTN_DTYPE_CASE)
#undef ATTN_DTYPE_CASE
    }
    return f(double{});  // no DType holds another value; this keeps every path returning
}

}  // namespace attn
