// Helpers shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp).
//
// The contract each harness checks: bad input makes the library throw attn::Error and
// nothing else. Any other exception, a failed check (a broken round trip, two readers
// that disagree), a sanitizer report, a crash or a hang is a bug: the harness aborts, and
// libFuzzer saves the input that did it.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "attn/error.hpp"
#include "attn/io.hpp"
#include "attn/tensor.hpp"

namespace attn::fuzz {

[[noreturn]] inline void check_failed(const char* condition, const char* file, int line) {
    std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, condition);
    std::abort();
}

#define ATTN_FUZZ_CHECK(condition) \
    ((condition) ? static_cast<void>(0) : ::attn::fuzz::check_failed(#condition, __FILE__, __LINE__))

// Runs f. True when it returned, false when it threw attn::Error; anything else aborts.
template <class F>
bool attempt(F&& f) {
    try {
        std::forward<F>(f)();
        return true;
    } catch (const Error&) {
        return false;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz: unexpected exception %s: %s\n", typeid(e).name(), e.what());
        std::abort();
    } catch (...) {
        std::fprintf(stderr, "fuzz: unexpected exception of a non-std type\n");
        std::abort();
    }
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

// Same dtype, shape and values: bit for bit (so -0.0 differs from 0.0), but any NaN
// equals any NaN (a text format keeps neither payload nor sign of a NaN).
inline bool same_tensor(const Tensor& a, const Tensor& b) {
    if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
    bool same = true;
    a.visit([&](const auto& values) {
        using T = typename std::decay_t<decltype(values)>::value_type;
        const auto& other = b.values<T>();
        for (std::size_t i = 0; same && i < values.size(); ++i) {
            const T x = values.data()[i], y = other.data()[i];
            if constexpr (is_half_v<T>) {  // bits, but any NaN equals any NaN
                const float fx = static_cast<float>(x), fy = static_cast<float>(y);
                same = std::isnan(fx) || std::isnan(fy) ? std::isnan(fx) && std::isnan(fy) : x.bits == y.bits;
            } else if constexpr (std::is_floating_point_v<T>) {
                if (std::isnan(x) || std::isnan(y)) {
                    same = std::isnan(x) && std::isnan(y);
                    continue;
                }
                same = std::memcmp(&x, &y, sizeof x) == 0;
            } else {
                same = x == y;
            }
        }
    });
    return same;
}

inline bool same_tensors(const io::NamedTensors& a, const io::NamedTensors& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].first != b[i].first || !same_tensor(a[i].second, b[i].second)) return false;
    }
    return true;
}

// The shape's element count agrees with the tensor's storage.
inline bool consistent(const Tensor& t) {
    std::size_t count = 1;
    for (std::size_t d : t.shape()) count *= d;
    return count == t.size() && t.rank() == t.shape().size();
}

}  // namespace attn::fuzz
