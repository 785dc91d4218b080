// attn::Tensor and its dtypes (attn/tensor.hpp): the dtypes' names and sizes, made from
// ATTN_DTYPES and checked against Tensor::Storage; shapes and the memory checks; the
// factories; the scans for non-finite values.
#include "attn/tensor.hpp"

#include <sys/mman.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <type_traits>
#include <variant>

#include "common/text.hpp"

namespace attn {
namespace {

struct DTypeInfo {
    DType dtype;
    std::string_view name;
    std::size_t size;
};

// numpy's bool is one byte, as the C++ bool the table sizes it by.
static_assert(sizeof(bool) == 1);

// In the order of DType, so that kDTypes[dtype] is its entry.
constexpr DTypeInfo kDTypes[] = {
#define ATTN_DTYPE_INFO(enumerator, type, name, ...) {DType::enumerator, name, sizeof(type)},
    ATTN_DTYPES(ATTN_DTYPE_INFO)
#undef ATTN_DTYPE_INFO
};

// Tensor::dtype() is storage_.index(): each dtype's alternative must hold its own type.
#define ATTN_CHECK_DTYPE(enumerator, type, ...)                                                                  \
    static_assert(                                                                                               \
        std::is_same_v<std::variant_alternative_t<static_cast<std::size_t>(DType::enumerator), Tensor::Storage>, \
                       xt::xarray<type>>);                                                                       \
    static_assert(dtype_of<type>::value == DType::enumerator);                                                   \
    static_assert(kDTypes[static_cast<std::size_t>(DType::enumerator)].dtype == DType::enumerator);
ATTN_DTYPES(ATTN_CHECK_DTYPE)
#undef ATTN_CHECK_DTYPE
static_assert(std::variant_size_v<Tensor::Storage> == std::size(kDTypes));

const DTypeInfo& info(DType dtype) { return kDTypes[static_cast<std::size_t>(dtype)]; }

// Asks for transparent huge pages on the 2 MiB-aligned interior of a large fresh buffer,
// as numpy does for its arrays: filling it then costs one page fault per 2 MiB instead of
// one per 4 KiB, which doubles the speed of reading a large .npy file. Only a hint.
void advise_huge_pages(void* data, std::size_t bytes) {
    constexpr std::size_t kMinBytes = std::size_t(4) << 20;
    constexpr std::uintptr_t kHugePage = std::uintptr_t(2) << 20;
    if (bytes < kMinBytes) return;
    const auto start = reinterpret_cast<std::uintptr_t>(data);
    const std::uintptr_t begin = (start + kHugePage - 1) & ~(kHugePage - 1);
    const std::uintptr_t end = (start + bytes) & ~(kHugePage - 1);
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

}  // namespace

std::string_view dtype_name(DType dtype) { return info(dtype).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
    for (const auto& d : kDTypes) {
        if (d.name == name) return d.dtype;
    }
    return std::nullopt;
}

std::size_t dtype_size(DType dtype) { return info(dtype).size; }

bool is_floating(DType dtype) {
    return dispatch_dtype(dtype, [](auto tag) {
        using T = decltype(tag);
        return std::is_floating_point_v<T> || is_half_v<T>;
    });
}

std::string shape_to_string(const Shape& shape) {
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i > 0) s += ", ";
        s += std::to_string(shape[i]);
    }
    if (shape.size() == 1) s += ",";
    return s + ")";
}

std::size_t checked_element_count(const Shape& shape, const Subject& subject) {
    // xtensor's strides are signed products of the trailing dims, zero-sized or not, so
    // the product of the non-zero dims must fit a ptrdiff_t even when there are no elements.
    constexpr auto kLimit = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max());
    std::size_t product = 1;
    bool empty = false;
    for (std::size_t d : shape) {
        if (d == 0) {
            empty = true;
            continue;
        }
        if (product > kLimit / d) {
            throw Error(ErrorKind::Value, subject, "shape " + shape_to_string(shape) + " has too many elements");
        }
        product *= d;
    }
    return empty ? 0 : product;
}
std::optional<std::size_t> available_memory() {
    std::ifstream meminfo("/proc/meminfo");
    std::optional<std::size_t> available, swap_free;
    std::string key;
    std::size_t kib = 0;
    while (meminfo >> key >> kib) {
        if (key == "MemAvailable:") available = kib;
        if (key == "SwapFree:") swap_free = kib;
        meminfo.ignore(std::numeric_limits<std::streamsize>::max(), '\n');  // the " kB"
    }
    if (!available) return std::nullopt;
    const std::size_t total = *available + swap_free.value_or(0);
    constexpr std::size_t kMax = std::numeric_limits<std::size_t>::max() / 1024;
    return total > kMax ? std::numeric_limits<std::size_t>::max() : total * 1024;
}

std::string bytes_to_string(std::size_t bytes) {
    static constexpr const char* kUnits[] = {"kB", "MB", "GB", "TB", "PB", "EB"};
    if (bytes < 1000) return std::to_string(bytes) + " bytes";
    double value = static_cast<double>(bytes) / 1000;
    std::size_t unit = 0;
    while (value >= 999.95 && unit + 1 < std::size(kUnits)) {
        value /= 1000;
        ++unit;
    }
    char text[32];
    std::snprintf(text, sizeof text, "%.1f %s", value, kUnits[unit]);
    return text;
}

void check_memory(std::size_t bytes, const Subject& subject, const std::string& what) {
    // Small buffers are not worth a read of /proc/meminfo.
    constexpr std::size_t kUncheckedBytes = std::size_t(16) << 20;
    if (bytes <= kUncheckedBytes) return;
    const std::optional<std::size_t> available = available_memory();
    if (!available || bytes <= *available) return;
    throw Error(ErrorKind::Value, subject,
                "needs " + bytes_to_string(bytes) + " for " + what + ", " + bytes_to_string(*available) + " available");
}

namespace {

// Every factory's checks: the element count, then the memory the storage needs.
void check_new_tensor(DType dtype, const Shape& shape, const Subject& subject) {
    const std::size_t count = checked_element_count(shape, subject);
    const std::size_t item = dtype_size(dtype);
    const std::string what = std::string(dtype_name(dtype)) + " " + shape_to_string(shape);
    if (count > std::numeric_limits<std::size_t>::max() / item) {
        throw Error(ErrorKind::Value, subject, "shape " + shape_to_string(shape) + " has too many elements");
    }
    check_memory(count * item, subject, what);
}

// The index of element `offset` of a row-major array of this shape.
Shape unravel(std::size_t offset, const Shape& shape) {
    Shape index(shape.size());
    for (std::size_t d = shape.size(); d-- > 0;) {
        index[d] = offset % shape[d];
        offset /= shape[d];
    }
    return index;
}

// "[0, 3, 17]"
std::string index_text(const Shape& index) {
    std::string text = "[";
    for (std::size_t d = 0; d < index.size(); ++d) text += (d > 0 ? ", " : "") + std::to_string(index[d]);
    return text + "]";
}

// A value as messages show it: the shortest text that reads back as the same double,
// NaN, inf and -inf as check_finite names them.
std::string number_text(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
    char buffer[32];
    if (value == std::trunc(value) && std::fabs(value) < 1e17) {  // "300", not "3e+02"
        std::snprintf(buffer, sizeof buffer, "%.0f", value);
        return buffer;
    }
    for (int precision = 1; precision <= 17; ++precision) {
        std::snprintf(buffer, sizeof buffer, "%.*g", precision, value);
        if (std::strtod(buffer, nullptr) == value) break;
    }
    return buffer;
}

template <class T>
std::string integer_text(T value) {
    if constexpr (std::is_same_v<T, bool>)
        return value ? "1" : "0";
    else
        return std::to_string(value);
}

// What is wrong with `value` as a T (first_misfit's rules); nullopt when T holds it.
template <class T, class S>
std::optional<std::string> misfit(S value) {
    const std::string_view target = dtype_name(dtype_of<T>::value);
    if constexpr (is_half_v<S>) {
        return misfit<T>(static_cast<float>(value));  // exact
    } else if constexpr (is_half_v<T>) {
        // A finite value beyond the half type's largest (after rounding) would become infinite.
        const auto wide = static_cast<double>(value);
        if (std::isfinite(wide) && std::isinf(static_cast<float>(T(value)))) {
            if constexpr (std::is_integral_v<S>) return detail::out_of_range(integer_text(value), target);
            return detail::out_of_range(number_text(wide), target);
        }
    } else if constexpr (std::is_floating_point_v<S> && std::is_integral_v<T>) {  // bool is integral
        if (std::isnan(value) || (std::isfinite(value) && value != std::trunc(value))) {
            return detail::not_an_integer(target, number_text(value));
        }
        bool in_range = value == 0 || value == 1;
        if constexpr (!std::is_same_v<T, bool>) {
            in_range = value >= static_cast<double>(std::numeric_limits<T>::min()) &&
                       value < static_cast<double>(std::numeric_limits<T>::max()) + 1.0;
        }
        if (!in_range) return detail::out_of_range(number_text(value), target);
    } else if constexpr (std::is_integral_v<S> && !std::is_same_v<S, bool> && std::is_integral_v<T>) {
        bool in_range = value == 0 || value == 1;
        if constexpr (!std::is_same_v<T, bool>) {
            constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<T>::max());
            if constexpr (std::is_signed_v<S>) {
                in_range = value < 0
                               ? std::is_signed_v<T> && static_cast<std::int64_t>(value) >=
                                                            static_cast<std::int64_t>(std::numeric_limits<T>::min())
                               : static_cast<std::uint64_t>(value) <= kMax;
            } else {
                in_range = static_cast<std::uint64_t>(value) <= kMax;
            }
        }
        if (!in_range) return detail::out_of_range(integer_text(value), target);
    } else if constexpr (std::is_same_v<S, double> && std::is_same_v<T, float>) {
        // Half a float32 ulp above FLT_MAX rounds to infinity (FLT_MAX's last bit is odd).
        if (std::isfinite(value) && std::fabs(value) >= 0x1.ffffffp+127) {
            return detail::out_of_range(number_text(value), target);
        }
    }
    return std::nullopt;
}

}  // namespace

Tensor Tensor::zeros(DType dtype, const Shape& shape, const Subject& subject) {
    check_new_tensor(dtype, shape, subject);
    return dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        typename xt::xarray<T>::shape_type s(shape.begin(), shape.end());
        return Tensor(xt::xarray<T>(s, T{}));
    });
}

Tensor Tensor::empty(DType dtype, const Shape& shape, const Subject& subject) {
    check_new_tensor(dtype, shape, subject);
    return dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        Tensor tensor(xt::xarray<T>::from_shape(shape));
        advise_huge_pages(tensor.data(), tensor.nbytes());
        return tensor;
    });
}

Shape Tensor::shape() const {
    return visit([](const auto& a) { return Shape(a.shape().begin(), a.shape().end()); });
}

std::size_t Tensor::rank() const {
    return visit([](const auto& a) { return a.dimension(); });
}

std::size_t Tensor::size() const {
    return visit([](const auto& a) { return a.size(); });
}

const void* Tensor::data() const {
    return visit([](const auto& a) -> const void* { return a.data(); });
}

void* Tensor::data() {
    return visit([](auto& a) -> void* { return a.data(); });
}

Tensor Tensor::to(DType dtype, const std::string& subject) const& {
    if (dtype == this->dtype()) return *this;
    if (const std::optional<Misfit> misfit = first_misfit(*this, dtype)) {
        throw Error(ErrorKind::Value, subject, "element " + index_text(misfit->index) + ": " + misfit->what);
    }
    return dispatch_dtype(dtype, [&](auto tag) { return Tensor(cast<decltype(tag)>()); });
}

Tensor Tensor::to(DType dtype, const std::string& subject) && {
    if (dtype == this->dtype()) return std::move(*this);
    return static_cast<const Tensor&>(*this).to(dtype, subject);
}

std::optional<Misfit> first_misfit(const Tensor& tensor, DType dtype) {
    std::optional<Misfit> found;
    tensor.visit([&](const auto& a) {
        using S = typename std::decay_t<decltype(a)>::value_type;
        dispatch_dtype(dtype, [&](auto target) {
            using T = decltype(target);
            const S* data = a.data();
            for (std::size_t i = 0; i < a.size(); ++i) {
                if (std::optional<std::string> what = misfit<T>(data[i])) {
                    found = Misfit{unravel(i, tensor.shape()), std::move(*what)};
                    return;
                }
            }
        });
    });
    return found;
}

std::optional<NonFinite> first_non_finite(const Tensor& tensor, bool allow_negative_infinity) {
    const std::optional<std::size_t> offset = tensor.visit([&](const auto& a) -> std::optional<std::size_t> {
        using T = typename std::decay_t<decltype(a)>::value_type;
        if constexpr (std::is_floating_point_v<T> || is_half_v<T>) {
            using F = std::conditional_t<is_half_v<T>, float, T>;  // a half type's value as float
            const T* data = a.data();
            const std::size_t count = a.size();
            for (std::size_t i = 0; i < count; ++i) {
                const auto x = static_cast<F>(data[i]);
                if (!std::isfinite(x) && !(allow_negative_infinity && x < 0 && std::isinf(x))) return i;
            }
        }
        return std::nullopt;
    });
    if (!offset) return std::nullopt;
    NonFinite found{unravel(*offset, tensor.shape()), 0.0};
    found.value = tensor.visit([&](const auto& a) { return static_cast<double>(a.data()[*offset]); });
    return found;
}

void check_finite(const Tensor& tensor, const std::string& subject, bool allow_negative_infinity,
                  const std::string& note, std::optional<DType> compute_dtype) {
    const std::string in_note = note.empty() ? "" : " (" + note + ")";
    if (const std::optional<NonFinite> found = first_non_finite(tensor, allow_negative_infinity)) {
        throw Error(ErrorKind::Value, subject,
                    "non-finite value " + number_text(found->value) + " at " + index_text(found->index) + in_note);
    }
    if (!compute_dtype || !is_floating(*compute_dtype) || *compute_dtype == tensor.dtype()) return;
    if (const std::optional<Misfit> misfit = first_misfit(tensor, *compute_dtype)) {
        throw Error(ErrorKind::Value, subject, "element " + index_text(misfit->index) + ": " + misfit->what + in_note);
    }
}

void Tensor::throw_wrong_dtype(DType wanted) const {
    throw Error(ErrorKind::Value, "tensor",
                "expected dtype " + std::string(dtype_name(wanted)) + ", found " + std::string(dtype_name(dtype())));
}

}  // namespace attn
