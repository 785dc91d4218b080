// attn::Tensor: dtypes, shapes, conversions.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "test_support.hpp"

using namespace attn;

TEST_CASE("tensor: dtype names round trip; every dtype of ATTN_DTYPES has numpy's name and size, its C++ type") {
    // numpy's own answers, from /usr/bin/python3:
    //   [(np.dtype(n).name, np.dtype(n).itemsize) for n in (bool, int8, ..., float64)]
    const std::vector<std::pair<std::string, std::size_t>> numpy = {{"bool", 1},    {"int8", 1},    {"int16", 2},
                                                                    {"int32", 4},   {"int64", 8},   {"uint8", 1},
                                                                    {"uint16", 2},  {"uint32", 4},  {"uint64", 8},
                                                                    {"float32", 4}, {"float64", 8}, {"float16", 2},
                                                                    {"bfloat16", 2}};  // bfloat16: ml_dtypes' (and
                                                                                       // torch's) name, not numpy's
    std::vector<DType> listed;
#define ATTN_TEST_DTYPE(enumerator, type, ...)                                                              \
    listed.push_back(DType::enumerator);                                                                    \
    CHECK(dtype_of<type>::value == DType::enumerator);                                                      \
    CHECK(dispatch_dtype(DType::enumerator, [](auto tag) { return std::is_same_v<decltype(tag), type>; })); \
    CHECK(Tensor::zeros(DType::enumerator, {2}).holds<type>());                                             \
    CHECK(is_floating(DType::enumerator) == (std::is_floating_point_v<type> || is_half_v<type>));
    ATTN_DTYPES(ATTN_TEST_DTYPE)
#undef ATTN_TEST_DTYPE
    REQUIRE(listed.size() == numpy.size());
    for (std::size_t i = 0; i < listed.size(); ++i) {
        CAPTURE(numpy[i].first);
        CHECK(static_cast<std::size_t>(listed[i]) == i);  // the enum's order is the list's
        CHECK(dtype_name(listed[i]) == numpy[i].first);
        CHECK(dtype_size(listed[i]) == numpy[i].second);
        CHECK(dtype_from_name(numpy[i].first) == listed[i]);
        const Tensor t = Tensor::zeros(listed[i], {2, 3});
        CHECK(t.dtype() == listed[i]);
        CHECK(t.nbytes() == 6 * numpy[i].second);
    }
    CHECK_FALSE(dtype_from_name("").has_value());
}

TEST_CASE("tensor: shapes print as numpy prints them") {
    CHECK(shape_to_string({}) == "()");
    CHECK(shape_to_string({5}) == "(5,)");
    CHECK(shape_to_string({2, 5, 64}) == "(2, 5, 64)");
}

TEST_CASE("tensor: element counts refuse overflow") {
    CHECK(checked_element_count({2, 3, 0}, "x") == 0);
    CHECK(checked_element_count({}, "x") == 1);
    const std::string message = test::error_of(
        [] {
            checked_element_count({1ull << 40, 1ull << 40}, "x.npy");
        },
        ErrorKind::Value);
    CHECK(test::contains(message, "x.npy"));
}

TEST_CASE("tensor: cast converts values and moves when the dtype matches") {
    Tensor t(xt::xarray<std::int32_t>{{1, -2}, {3, 4}});
    const xt::xarray<float> f = t.cast<float>();
    CHECK(f(0, 1) == -2.0f);
    Tensor b(xt::xarray<bool>{true, false});
    CHECK(b.cast<double>()(0) == 1.0);
    Tensor g(xt::xarray<float>{1.5f, 2.5f});
    const float* before = g.values<float>().data();
    const xt::xarray<float> moved = std::move(g).cast<float>();
    CHECK(moved.data() == before);
    CHECK(Tensor(xt::xarray<double>{-2.0}).to(DType::Int32).values<std::int32_t>()(0) == -2);
    CHECK(Tensor(xt::xarray<double>{0.1}).to(DType::Float32).values<float>()(0) == 0.1f);
}

TEST_CASE("tensor: to() refuses a value the dtype cannot hold, naming it and its index") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    auto error = [](const Tensor& t, DType dtype) {
        return test::error_of([&] { (void)t.to(dtype, "x.npy"); }, ErrorKind::Value);
    };
    const Tensor values(xt::xarray<double>{{1, 300}, {nan, -1.5}});
    CHECK(error(values, DType::Int8) == "x.npy: element [0, 1]: 300 is out of range for int8");
    CHECK(error(values, DType::Int32) == "x.npy: element [1, 0]: expected an integer (dtype int32), found NaN");
    CHECK(error(Tensor(xt::xarray<double>{-1.5}), DType::UInt64) ==
          "x.npy: element [0]: expected an integer (dtype uint64), found -1.5");
    CHECK(error(Tensor(xt::xarray<float>{0, -std::numeric_limits<float>::infinity()}), DType::Int64) ==
          "x.npy: element [1]: -inf is out of range for int64");
    CHECK(error(Tensor(xt::xarray<double>{9223372036854775808.0}), DType::Int64) ==
          "x.npy: element [0]: 9.223372036854776e+18 is out of range for int64");
    CHECK(error(Tensor(xt::xarray<std::int64_t>{255, 256}), DType::UInt8) ==
          "x.npy: element [1]: 256 is out of range for uint8");
    CHECK(error(Tensor(xt::xarray<std::int32_t>{-1}), DType::UInt32) ==
          "x.npy: element [0]: -1 is out of range for uint32");
    CHECK(error(Tensor(xt::xarray<std::uint64_t>{18446744073709551615ULL}), DType::Int64) ==
          "x.npy: element [0]: 18446744073709551615 is out of range for int64");
    CHECK(error(Tensor(xt::xarray<std::int32_t>{1, 0, 2}), DType::Bool) ==
          "x.npy: element [2]: 2 is out of range for bool");
    CHECK(error(Tensor(xt::xarray<double>{1e300}), DType::Float32) ==
          "x.npy: element [0]: 1e+300 is out of range for float32");
    // In range: the limits themselves, 0 and 1 to bool, float32's largest value, infinities to float32.
    CHECK(Tensor(xt::xarray<double>{-128, 127}).to(DType::Int8).values<std::int8_t>()(0) == -128);
    CHECK(Tensor(xt::xarray<double>{255}).to(DType::UInt8).values<std::uint8_t>()(0) == 255);
    CHECK(Tensor(xt::xarray<std::int64_t>{0, 1}).to(DType::Bool).values<bool>()(1));
    CHECK(Tensor(xt::xarray<double>{3.4028234663852886e38, -inf}).to(DType::Float32).values<float>()(0) ==
          std::numeric_limits<float>::max());
    CHECK(Tensor(xt::xarray<bool>{true}).to(DType::UInt8).values<std::uint8_t>()(0) == 1);
}

TEST_CASE("tensor: check_finite with a compute dtype refuses a finite value that dtype makes infinite") {
    const Tensor t(xt::xarray<double>{{1, 2}, {3, -1e300}});
    CHECK(
        test::error_of([&] { check_finite(t, "q.npy", false, "--check-finite", DType::Float32); }, ErrorKind::Value) ==
        "q.npy: element [1, 1]: -1e+300 is out of range for float32 (--check-finite)");
    check_finite(t, "q.npy", false, "--check-finite", DType::Float64);  // no error
    check_finite(t, "q.npy");                                           // no error: finite as it is
}

TEST_CASE("tensor: asking for the wrong dtype is an error naming both") {
    Tensor t(xt::xarray<float>{1.0f});
    const std::string message = test::error_of([&] { (void)t.values<double>(); }, ErrorKind::Value);
    CHECK(test::contains(message, "expected dtype float64, found float32"));
}

TEST_CASE("tensor: shapes whose non-zero dims overflow are refused even without elements") {
    const Shape huge{0, std::size_t(1) << 40, std::size_t(1) << 40};
    CHECK(test::contains(test::error_of([&] { checked_element_count(huge, "x"); }, ErrorKind::Value),
                         "too many elements"));
    test::error_of([&] { Tensor::empty(DType::Float32, huge); }, ErrorKind::Value);
    CHECK(Tensor::empty(DType::Float32, {0, 1u << 20, 3}).size() == 0);
}

TEST_CASE("tensor: byte counts print in decimal units") {
    CHECK(bytes_to_string(0) == "0 bytes");
    CHECK(bytes_to_string(999) == "999 bytes");
    CHECK(bytes_to_string(1000) == "1.0 kB");
    CHECK(bytes_to_string(21'300'000'000) == "21.3 GB");
    CHECK(bytes_to_string(999'960'000) == "1.0 GB");
    CHECK(bytes_to_string(40'000'000'000'000) == "40.0 TB");
}

TEST_CASE("tensor: storage that cannot fit in memory is refused before it is allocated") {
    if (!test::require_file("/proc/meminfo")) return;
    const std::optional<std::size_t> available = available_memory();
    REQUIRE(available.has_value());  // Linux: /proc/meminfo has MemAvailable
    CHECK(*available > 0);
    // 2^52 bytes of float32: more than any machine has, strides far from overflowing.
    const Shape huge{std::size_t(1) << 20, std::size_t(1) << 20, std::size_t(1) << 10};
    const std::string message =
        test::error_of([&] { Tensor::empty(DType::Float32, huge, "--shape"); }, ErrorKind::Value);
    CHECK(message.rfind("--shape: needs 4.5 PB for float32 (1048576, 1048576, 1024), ", 0) == 0);
    CHECK(test::contains(message, " available"));
    test::error_of([&] { Tensor::zeros(DType::Float64, huge, "x.npy"); }, ErrorKind::Value);
    // Relative to what this machine has: twice the available memory.
    const std::string relative =
        test::error_of([&] { check_memory(*available * 2, "q.npy", "the whole file"); }, ErrorKind::Value);
    CHECK(test::contains(relative, "q.npy: needs " + bytes_to_string(*available * 2) + " for the whole file, "));
    check_memory(1 << 20, "small", "a small buffer");  // below the checked size: no error
}

TEST_CASE("tensor: the first non-finite value in row-major order") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    xt::xarray<float> a = xt::zeros<float>({2, 3, 4});
    CHECK_FALSE(first_non_finite(Tensor(a)).has_value());
    a(1, 2, 3) = nan;
    a(1, 0, 1) = -inf;
    const auto found = first_non_finite(Tensor(a));
    REQUIRE(found.has_value());
    CHECK(found->index == Shape{1, 0, 1});
    CHECK(found->value == -static_cast<double>(inf));
    SUBCASE("-inf allowed, as in an additive mask") {
        const auto masked = first_non_finite(Tensor(a), true);
        REQUIRE(masked.has_value());
        CHECK(masked->index == Shape{1, 2, 3});
        CHECK(std::isnan(masked->value));
    }
    SUBCASE("the error names the subject, the value and its index") {
        CHECK(test::error_of([&] { check_finite(Tensor(a), "q.npy", false, "--check-finite"); }, ErrorKind::Value) ==
              "q.npy: non-finite value -inf at [1, 0, 1] (--check-finite)");
        CHECK(test::error_of([&] { check_finite(Tensor(a), "m.npy", true); }, ErrorKind::Value) ==
              "m.npy: non-finite value NaN at [1, 2, 3]");
        xt::xarray<double> d = {1.0, static_cast<double>(inf)};
        CHECK(test::error_of([&] { check_finite(Tensor(d), "x"); }, ErrorKind::Value) ==
              "x: non-finite value inf at [1]");
        check_finite(Tensor(xt::xarray<float>{1.0f, -2.0f}), "finite");  // no error
    }
    SUBCASE("integer and bool tensors are always finite; a scalar has index []") {
        CHECK_FALSE(first_non_finite(Tensor(xt::xarray<std::int32_t>{1, 2})).has_value());
        CHECK_FALSE(first_non_finite(Tensor(xt::xarray<bool>{true})).has_value());
        CHECK(test::error_of([&] { check_finite(Tensor(xt::xarray<double>(nan)), "s"); }, ErrorKind::Value) ==
              "s: non-finite value NaN at []");
    }
}

TEST_CASE("half: every float16 and bfloat16 bit pattern converts to float exactly and back") {
    for (std::uint32_t b = 0; b < 0x10000u; ++b) {
        const auto bits = static_cast<std::uint16_t>(b);
        const float h = static_cast<float>(float16::from_bits(bits));
        const float bf = static_cast<float>(bfloat16::from_bits(bits));
        if (std::isnan(h)) {
            // A NaN stays a NaN, quiet, with its sign.
            CHECK((float16(h).bits & 0xFE00u) == ((bits & 0x8000u) | 0x7E00u));
        } else {
            CHECK(float16(h).bits == bits);
            CHECK(float16(static_cast<double>(h)).bits == bits);
        }
        if (std::isnan(bf)) {
            CHECK((bfloat16(bf).bits & 0xFFC0u) == ((bits & 0x8000u) | 0x7FC0u));
        } else {
            CHECK(bfloat16(bf).bits == bits);
        }
    }
    // numpy: np.float16(2**-24), np.float16(65504), np.float16(np.inf)
    CHECK(static_cast<float>(float16::from_bits(0x0001)) == std::ldexp(1.0f, -24));
    CHECK(static_cast<float>(float16::from_bits(0x7BFF)) == 65504.0f);
    CHECK(std::isinf(static_cast<float>(float16::from_bits(0x7C00))));
    CHECK(static_cast<float>(bfloat16::from_bits(0x3F80)) == 1.0f);
}

TEST_CASE("half: conversion from float rounds to nearest, ties to even, and overflows to infinity") {
    // np.float16(x).view(np.uint16) for each x
    CHECK(float16(0.1).bits == 0x2E66);
    CHECK(float16(1.0 + std::ldexp(1.0, -11)).bits == 0x3C00);         // tie: to even (down)
    CHECK(float16(1.0 + 3 * std::ldexp(1.0, -11)).bits == 0x3C02);     // tie: to even (up)
    CHECK(float16(1.0 + std::ldexp(1.0, -11) + 1e-9).bits == 0x3C01);  // above the tie: up
    CHECK(float16(65519.0).bits == 0x7BFF);
    CHECK(float16(65520.0).bits == 0x7C00);  // half an ulp above 65504: the tie rounds to infinity
    CHECK(float16(-1e300).bits == 0xFC00);
    CHECK(float16(std::ldexp(1.0, -25)).bits == 0x0000);  // tie between 0 and the least subnormal
    CHECK(float16(std::ldexp(3.0, -25)).bits == 0x0002);
    CHECK(float16(std::ldexp(1023.5, -24)).bits == 0x0400);  // the last subnormal rounds up to the least normal
    CHECK(float16(-0.0).bits == 0x8000);
    CHECK(float16(std::int64_t(2048 + 1)).bits == 0x6800);  // 2049: a tie, to even 2048
    // torch.tensor(x, dtype=torch.float64).to(torch.bfloat16).view(torch.int16)
    CHECK(bfloat16(0.1).bits == 0x3DCD);
    CHECK(bfloat16(1.0 + std::ldexp(1.0, -8)).bits == 0x3F80);  // tie: to even
    CHECK(bfloat16(1.0 + 3 * std::ldexp(1.0, -8)).bits == 0x3F82);
    CHECK(bfloat16(1e300).bits == 0x7F80);
    CHECK(bfloat16(static_cast<double>(std::numeric_limits<float>::max())).bits == 0x7F80);  // rounds past the largest
}

TEST_CASE("half: to() converts to and from float16 and bfloat16, refusing a finite value that would overflow") {
    const Tensor wide(xt::xarray<double>{1.0, 0.1, -65504.0});
    const Tensor h = wide.to(DType::Float16);
    REQUIRE(h.dtype() == DType::Float16);
    CHECK(h.values<float16>()(1).bits == 0x2E66);
    const xt::xarray<float> back = h.cast<float>();
    CHECK(back(2) == -65504.0f);
    CHECK(h.to(DType::BFloat16).values<bfloat16>()(0).bits == 0x3F80);
    CHECK(Tensor(xt::xarray<double>{-65504.0}).to(DType::Float16).to(DType::Int32).values<std::int32_t>()(0) == -65504);
    CHECK(test::error_of([&] { (void)h.to(DType::Int32, "h.npy"); }, ErrorKind::Value) ==
          "h.npy: element [1]: expected an integer (dtype int32), found 0.0999755859375");
    const Tensor inf(xt::xarray<float>{1.0f, std::numeric_limits<float>::infinity()});
    CHECK(std::isinf(static_cast<float>(inf.to(DType::Float16).values<float16>()(1))));  // not finite: kept
    auto error = [](const Tensor& t, DType dtype) {
        return test::error_of([&] { (void)t.to(dtype, "x.npy"); }, ErrorKind::Value);
    };
    CHECK(error(Tensor(xt::xarray<double>{1.0, 70000.0}), DType::Float16) ==
          "x.npy: element [1]: 70000 is out of range for float16");
    CHECK(error(Tensor(xt::xarray<std::int32_t>{65520}), DType::Float16) ==
          "x.npy: element [0]: 65520 is out of range for float16");
    CHECK(error(Tensor(xt::xarray<double>{1e39}), DType::BFloat16) ==
          "x.npy: element [0]: 1e+39 is out of range for bfloat16");
    const std::optional<NonFinite> nan = first_non_finite(Tensor(xt::xarray<float>{1.0f, NAN}).to(DType::Float16));
    REQUIRE(nan.has_value());
    CHECK(nan->index == Shape{1});
}
