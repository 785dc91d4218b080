// Helpers shared by the test files: fixtures, error checks, tensor comparisons.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <cstddef>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "attn/error.hpp"
#include "attn/tensor.hpp"

namespace attn::test {

// Path of a fixture under tests/data.
inline std::string data_path(const std::string& relative) { return std::string(ATTN_TEST_DATA_DIR) + "/" + relative; }

// The bytes of a file.
inline std::string fixture_at(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "missing fixture " << path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The bytes of a fixture under tests/data.
inline std::string fixture(const std::string& relative) { return fixture_at(data_path(relative)); }

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// True when `path` exists; otherwise prints "SKIPPED: <test>: needs <path>, which this machine
// lacks" on standard output, which CTest reports as a skipped test (tests/CMakeLists.txt),
// and the caller returns. For a special file (/proc/meminfo) a chroot or container may lack.
inline bool require_file(const char* path) {
    if (std::ifstream(path).good()) return true;
    std::printf("SKIPPED: %s: needs %s, which this machine lacks\n", doctest::getContextOptions()->currentTest->m_name,
                path);
    return false;
}

// The message of the attn::Error that `f` throws, after checking its kind.
template <class F>
std::string error_of(F&& f, ErrorKind kind = ErrorKind::Format) {
    try {
        f();
    } catch (const Error& e) {
        CHECK(static_cast<int>(e.kind()) == static_cast<int>(kind));
        return e.what();
    }
    FAIL("expected an attn::Error");
    return {};
}

// The argument named by the attn::Error that `f` throws (Arg::None when it names a file).
template <class F>
Arg error_arg_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        CHECK(std::string(e.what()) == std::string(arg_name(e.arg())) + ": " + e.detail());
        return e.arg();
    }
    FAIL("expected an attn::Error");
    return Arg::None;
}

// Checks dtype, shape and every value (exactly, NaN equal to NaN).
template <class T>
void check_tensor(const Tensor& t, const Shape& shape, const std::vector<T>& expected) {
    REQUIRE(t.dtype() == dtype_of<T>::value);
    REQUIRE(t.shape() == shape);
    const auto& values = t.values<T>();
    REQUIRE(values.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        if constexpr (std::is_floating_point_v<T>) {
            if (std::isnan(expected[i])) {
                CHECK(std::isnan(values.data()[i]));
                continue;
            }
        }
        CHECK(values.data()[i] == expected[i]);
    }
}

// The tensor of that name in an archive's tensors.
inline const Tensor& member(const std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& name) {
    for (const auto& [n, t] : tensors) {
        if (n == name) return t;
    }
    FAIL("no tensor " << name);
    return tensors.front().second;
}

// Same names in the same order, same dtypes and shapes, and bit-identical values.
inline void check_same(const std::vector<std::pair<std::string, Tensor>>& got,
                       const std::vector<std::pair<std::string, Tensor>>& expected) {
    REQUIRE(got.size() == expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        CAPTURE(expected[i].first);
        CHECK(got[i].first == expected[i].first);
        CHECK(got[i].second.dtype() == expected[i].second.dtype());
        CHECK(got[i].second.shape() == expected[i].second.shape());
        const std::size_t nbytes = expected[i].second.nbytes();
        REQUIRE(got[i].second.nbytes() == nbytes);
        // Bitwise, so -0.0 and every integer bit pattern count; empty tensors have no data.
        if (nbytes > 0) CHECK(std::memcmp(got[i].second.data(), expected[i].second.data(), nbytes) == 0);
    }
}

// The largest |a − b| over two float tensors of the same shape (NaN where only one is NaN).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
    REQUIRE(a.shape() == b.shape());
    const auto x = a.cast<double>();
    const auto y = b.cast<double>();
    double worst = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double p = x.data()[i], q = y.data()[i];
        if (std::isnan(p) || std::isnan(q)) {
            if (std::isnan(p) != std::isnan(q)) return NAN;
            continue;
        }
        if (p == q) continue;  // equal infinities
        worst = std::max(worst, std::abs(p - q));
    }
    return worst;
}

}  // namespace attn::test
