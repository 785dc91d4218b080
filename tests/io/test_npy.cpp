// .npy reader and writer against files numpy wrote (tests/data/make_npy_fixtures.py).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "attn/io.hpp"
#include "test_support.hpp"

namespace {

using namespace attn;
using attn::test::contains;
using attn::test::error_of;
using attn::test::fixture;

Tensor load(const std::string& name) { return io::decode_npy(fixture("npy/" + name), name); }

// The values make_npy_fixtures.py's values() gives for 24 elements.
template <class T>
std::vector<T> expected_values(std::size_t n = 24) {
    std::vector<T> v(n);
    for (std::size_t i = 0; i < n; ++i) {
        if constexpr (std::is_same_v<T, bool>) {
            v[i] = i % 3 == 0;
        } else if constexpr (std::is_floating_point_v<T>) {
            v[i] = static_cast<T>((static_cast<double>(i) - static_cast<double>(n) / 2) / 4);
        } else if constexpr (std::is_unsigned_v<T>) {
            v[i] = static_cast<T>(i * 7 % 200);
        } else {
            v[i] = static_cast<T>(static_cast<long long>(i * 7 % 200) - 100);
        }
    }
    return v;
}

}  // namespace

TEST_CASE("npy: every descr numpy writes, both byte orders") {
    const Shape shape{2, 3, 4};
    for (const char* order : {"le_", "be_"}) {
        CAPTURE(order);
        const Tensor f2 = load(std::string(order) + "f2.npy");
        CHECK(f2.dtype() == DType::Float16);  // kept as read; its values are exact in float32
        test::check_tensor(Tensor(f2.cast<float>()), shape, expected_values<float>());
        test::check_tensor(load(std::string(order) + "f4.npy"), shape, expected_values<float>());
        test::check_tensor(load(std::string(order) + "f8.npy"), shape, expected_values<double>());
        test::check_tensor(load(std::string(order) + "i2.npy"), shape, expected_values<std::int16_t>());
        test::check_tensor(load(std::string(order) + "i4.npy"), shape, expected_values<std::int32_t>());
        test::check_tensor(load(std::string(order) + "i8.npy"), shape, expected_values<std::int64_t>());
        test::check_tensor(load(std::string(order) + "u2.npy"), shape, expected_values<std::uint16_t>());
        test::check_tensor(load(std::string(order) + "u4.npy"), shape, expected_values<std::uint32_t>());
        test::check_tensor(load(std::string(order) + "u8.npy"), shape, expected_values<std::uint64_t>());
    }
    test::check_tensor(load("b1.npy"), shape, expected_values<bool>());
    test::check_tensor(load("i1.npy"), shape, expected_values<std::int8_t>());
    test::check_tensor(load("u1.npy"), shape, expected_values<std::uint8_t>());
}

TEST_CASE("npy: fortran order is transposed to row-major") {
    test::check_tensor(load("fortran_f4.npy"), {2, 3, 4}, expected_values<float>());
    std::vector<std::int16_t> v = expected_values<std::int16_t>(15);
    test::check_tensor(load("fortran_i2_2d.npy"), {3, 5}, v);
}

TEST_CASE("npy: scalars, vectors, empty shapes, versions 2.0 and 3.0, key order") {
    test::check_tensor(load("scalar_f8.npy"), {}, std::vector<double>{2.5});
    test::check_tensor(load("vector_f4.npy"), {7}, expected_values<float>(7));
    test::check_tensor(load("empty_0x3.npy"), {0, 3}, std::vector<float>{});
    test::check_tensor(load("v2_f4.npy"), {2, 3}, expected_values<float>(6));
    test::check_tensor(load("v3_f4.npy"), {2, 3}, expected_values<float>(6));
    test::check_tensor(load("reordered_keys.npy"), {2, 3, 4}, expected_values<float>());
}

TEST_CASE("npy: special float values survive bit for bit") {
    const Tensor t = load("special_f4.npy");
    const auto& v = t.values<float>();
    CHECK(std::isnan(v(0)));
    CHECK(v(1) == INFINITY);
    CHECK(v(2) == -INFINITY);
    CHECK(v(3) == 0.0f);
    CHECK(std::signbit(v(3)));
    CHECK(v(4) == 1e-45f);
    CHECK(v(5) == 3.4028235e38f);
}

TEST_CASE("npy: the writer produces numpy's own bytes") {
    // np.save output for these arrays is in the fixtures; re-encoding must match exactly.
    for (const char* name : {"le_f4.npy", "le_f8.npy", "b1.npy", "i1.npy", "u1.npy", "le_i8.npy", "le_u2.npy",
                             "scalar_f8.npy", "empty_0x3.npy", "vector_f4.npy"}) {
        CAPTURE(name);
        const std::string original = fixture(std::string("npy/") + name);
        io::StringSink sink;
        io::encode_npy(io::decode_npy(original, name), sink);
        CHECK(sink.bytes() == original);
    }
}

TEST_CASE("npy: round trip of every dtype") {
    for (DType dtype : {DType::Bool, DType::Int8, DType::Int16, DType::Int32, DType::Int64, DType::UInt8, DType::UInt16,
                        DType::UInt32, DType::UInt64, DType::Float32, DType::Float64}) {
        CAPTURE(dtype_name(dtype));
        Tensor t = Tensor::zeros(dtype, {3, 1, 2});
        t.visit([](auto& a) {
            for (std::size_t i = 0; i < a.size(); ++i)
                a.data()[i] = static_cast<typename std::decay_t<decltype(a)>::value_type>(i % 2 ? i : 0);
        });
        io::StringSink sink;
        io::encode_npy(t, sink);
        CHECK(sink.bytes().size() % 64 == t.nbytes() % 64);  // data start 64-byte aligned
        const Tensor back = io::decode_npy(sink.bytes(), "mem");
        CHECK(back.dtype() == dtype);
        CHECK(back.shape() == t.shape());
        CHECK(std::memcmp(back.data(), t.data(), t.nbytes()) == 0);
    }
}

TEST_CASE("npy: bad files name the file and what is wrong") {
    struct Case {
        const char* file;
        const char* message;
    };
    const Case cases[] = {
        {"bad_empty.npy", "file is empty"},
        {"bad_magic.npy", "bad magic"},
        {"bad_truncated_header.npy", "runs past the end"},
        {"bad_header_past_end.npy", "runs past the end of the file"},
        {"bad_header_over_cap.npy", "over the cap of 10000"},
        {"bad_version.npy", "unsupported npy version 4.0"},
        {"bad_data_short.npy", "needs 96 (truncated)"},
        {"bad_data_long.npy", "needs 96 (trailing bytes)"},
        {"bad_missing_key.npy", "missing key 'fortran_order'"},
        {"bad_extra_key.npy", "unexpected key 'x'"},
        {"bad_duplicate_key.npy", "duplicate key 'descr'"},
        {"bad_negative_shape.npy", "negative dimension"},
        {"bad_overflow_shape.npy", "size overflows"},
        {"bad_object.npy", "pickle"},
        {"bad_unicode.npy", "strings"},
        {"bad_complex.npy", "complex"},
        {"bad_structured.npy", "structured"},
        {"bad_datetime.npy", "datetimes"},
        {"bad_descr_control.npy", "unsupported dtype '<i\\x0a4'"},
    };
    for (const Case& c : cases) {
        const std::string file = c.file;
        CAPTURE(file);
        const std::string bytes = fixture(std::string("npy/") + c.file);
        const std::string message = error_of([&] { io::decode_npy(bytes, c.file); });
        CHECK_MESSAGE(contains(message, c.message), message);
        CHECK(message.rfind(c.file, 0) == 0);  // the file name comes first
        CHECK(message.find('\n') == std::string::npos);
    }
}

// An .npy file of `count` float32 zeros whose header dict is `dict`, padded as numpy pads it.
std::string npy_with_header(const std::string& dict, std::size_t count) {
    std::string header = dict;
    header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
    header += '\n';
    std::string bytes = "\x93NUMPY\x01";
    bytes += '\0';
    bytes += static_cast<char>(header.size() & 0xFF);
    bytes += static_cast<char>(header.size() >> 8);
    return bytes + header + std::string(4 * count, '\0');
}

TEST_CASE("npy: shape tuples as numpy's ast.literal_eval reads them") {
    // numpy 1.24, np.lib.format.read_array_header_1_0: (), (2,), (2, 3), (2,3,) and
    // spaces are tuples; "(2)" is the int 2 ("shape is not valid") and "(02,)" a syntax
    // error. numpy also takes (+2,), (0x2,), (True,) and (2_0,), which no writer
    // writes; those are refused here with the general message.
    auto shape = [](const std::string& text, std::size_t count) {
        return io::decode_npy(
                   npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': " + text + ", }", count), "s.npy")
            .shape();
    };
    CHECK(shape("()", 1) == Shape{});
    CHECK(shape("(2,)", 2) == Shape{2});
    CHECK(shape("(2, 3)", 6) == Shape{2, 3});
    CHECK(shape("(2,3,)", 6) == Shape{2, 3});
    CHECK(shape("( 2 , 3 )", 6) == Shape{2, 3});
    CHECK(shape("(0,)", 0) == Shape{0});
    CHECK(shape("(00,)", 0) == Shape{0});
    CHECK(error_of([&] { shape("(2)", 2); }) == "s.npy: npy header: shape (2) is not a tuple (expected (2,))");
    CHECK(error_of([&] { shape("(02,)", 2); }) ==
          "s.npy: npy header: dimension '02' in shape has a leading zero (numpy refuses it)");
    for (const char* refused : {"(+2,)", "(2.0,)", "(True,)", "(0x2,)"}) {
        CAPTURE(refused);
        CHECK(contains(error_of([&] { shape(refused, 2); }), "s.npy: npy header: "));
    }
}

TEST_CASE("npy: each dtype's descr is numpy's, and a descr's kind and size pick the dtype") {
    // numpy's own answers, from /usr/bin/python3: [np.dtype(n).str for n in (bool, int8, ..., float64)]
    const std::pair<DType, const char*> numpy[] = {
        {DType::Bool, "|b1"},   {DType::Int8, "|i1"},    {DType::Int16, "<i2"},  {DType::Int32, "<i4"},
        {DType::Int64, "<i8"},  {DType::UInt8, "|u1"},   {DType::UInt16, "<u2"}, {DType::UInt32, "<u4"},
        {DType::UInt64, "<u8"}, {DType::Float32, "<f4"}, {DType::Float64, "<f8"}};
    for (const auto& [dtype, descr] : numpy) {
        CAPTURE(descr);
        const std::string header = io::npy_header(dtype, {1});
        CHECK(contains(header, std::string("{'descr': '") + descr + "', "));
        // Read back: the same dtype, from numpy's descr or its '=' (native order) spelling.
        for (const char order : {descr[0], '='}) {
            std::string file = header;
            file[file.find(descr)] = order;
            file.append(dtype_size(dtype), '\0');
            CHECK(io::decode_npy(file, "d.npy").dtype() == dtype);
        }
    }
    // A descr of three characters in place of '<f4' keeps the header's padding right.
    const auto with_descr = [](const std::string& descr, std::size_t item_size) {
        std::string file = io::npy_header(DType::Float32, {1});
        file.replace(file.find("<f4"), 3, descr);
        return file + std::string(item_size, '\0');
    };
    CHECK(io::decode_npy(with_descr("<f2", 2), "h.npy").dtype() == DType::Float16);  // kept as read
    CHECK(io::decode_npy(with_descr(">f2", 2), "h.npy").dtype() == DType::Float16);
    CHECK(contains(error_of([&] { io::decode_npy(with_descr("<i3", 3), "x.npy"); }), "(unsupported item size)"));
    CHECK(contains(error_of([&] { io::decode_npy(with_descr("|b2", 2), "x.npy"); }), "(unsupported item size)"));
    CHECK(contains(error_of([&] { io::decode_npy(with_descr("<x4", 4), "x.npy"); }), "(unknown kind)"));
}
