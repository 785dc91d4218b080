// JSON tensors (docs/formats.md, "JSON tensors"): the reader against files Python's json and numpy
// wrote (tests/data/make_json_fixtures.py), the writer's exact text, bit-exact round
// trips of every dtype, and every error naming its place.
#include <doctest/doctest.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <xtensor/xadapt.hpp>

#include "attn/io.hpp"
#include "attn/random.hpp"
#include "test_support.hpp"

namespace {

using namespace attn;
using attn::test::contains;
using attn::test::error_of;
using attn::test::fixture;

Tensor decode(const std::string& text) { return io::decode_json(text, "t.json"); }

std::string encode(const Tensor& t, io::JsonLayout layout = io::JsonLayout::Object) {
    io::StringSink sink;
    io::encode_json(t, sink, layout);
    return sink.take();
}

// The message of decoding `text`, checked to be a Format error about t.json.
std::string decode_error(const std::string& text) {
    const std::string message = error_of([&] { decode(text); });
    CHECK(message.rfind("t.json: ", 0) == 0);
    return message;
}

template <class T>
Tensor tensor_of(const Shape& shape, const std::vector<T>& values) {
    auto a = xt::xarray<T>::from_shape(shape);
    REQUIRE(a.size() == values.size());
    std::copy(values.begin(), values.end(), a.begin());
    return Tensor(std::move(a));
}

// Same dtype, shape and bytes: NaN payloads, -0.0 and denormals included.
void check_bit_exact(const Tensor& actual, const Tensor& expected) {
    REQUIRE(actual.dtype() == expected.dtype());
    REQUIRE(actual.shape() == expected.shape());
    if (expected.nbytes() > 0) CHECK(std::memcmp(actual.data(), expected.data(), expected.nbytes()) == 0);
}

// A tensor against the raw little-endian bytes make_json_fixtures.py wrote beside it.
void check_against_bin(const Tensor& t, DType dtype, const Shape& shape, const std::string& bin) {
    REQUIRE(t.dtype() == dtype);
    REQUIRE(t.shape() == shape);
    const std::string bytes = fixture("json/" + bin);
    REQUIRE(bytes.size() == t.nbytes());
    if (!bytes.empty()) CHECK(std::memcmp(t.data(), bytes.data(), bytes.size()) == 0);
}

float float_from_bits(std::uint32_t bits) {
    float f = 0;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// The writer's text of one float: the element of a rank-1, one-element tensor.
template <class T>
std::string element_text(T value, io::JsonLayout layout) {
    const std::string text = encode(tensor_of<T>({1}, {value}), layout);
    const std::size_t open = text.rfind('[');
    return text.substr(open + 1, text.find(']', open) - open - 1);
}

// A float's shortest round-trip text (float_format.hpp) against the text numpy's digits
// give, in the object layout and the nested one; and the text reads back bit for bit.
template <class T, class Bits>
void check_float_text(Bits bits, const std::string& shortest) {
    T value = 0;
    std::memcpy(&value, &bits, sizeof value);
    CAPTURE(shortest);
    // "-0" alone would read back as the integer 0 and lose the sign; the nested layout
    // marks every integral-looking float with ".0" so that json reads a float.
    const bool integral_looking = shortest.find_first_of(".e") == std::string::npos;
    CHECK(element_text(value, io::JsonLayout::Object) == (shortest == "-0" ? "-0.0" : shortest));
    CHECK(element_text(value, io::JsonLayout::Nested) == (integral_looking ? shortest + ".0" : shortest));
    check_bit_exact(decode(encode(tensor_of<T>({1}, {value}))), tensor_of<T>({1}, {value}));
}

template <class T>
std::vector<T> awkward_floats() {
    using L = std::numeric_limits<T>;
    return {T(0),
            -T(0),
            T(1),
            T(-1),
            T(0.1),
            T(1) / T(3),
            L::min(),
            -L::min(),
            L::denorm_min(),
            -L::denorm_min(),
            L::min() / T(3),
            L::max(),
            L::lowest(),
            L::epsilon(),
            L::infinity(),
            -L::infinity(),
            L::quiet_NaN(),
            T(16777216),
            T(123456792),
            T(1e10),
            T(1e-5),
            T(100),
            T(1e16),
            T(-2.5e-30)};
}

template <class T>
std::vector<T> integer_limits() {
    using L = std::numeric_limits<T>;
    return {L::min(), L::max(), T(0), T(1), T(L::max() / 3), T(L::min() / 2)};
}

template <class T>
void check_integer_round_trip(const Shape& shape) {
    const Tensor t = tensor_of<T>(shape, integer_limits<T>());
    check_bit_exact(decode(encode(t)), t);
}

}  // namespace

TEST_CASE("json: every dtype round-trips bit for bit through the object layout") {
    SUBCASE("float32") {
        const Tensor t = tensor_of<float>({4, 6}, awkward_floats<float>());
        check_bit_exact(decode(encode(t)), t);
    }
    SUBCASE("float64") {
        const Tensor t = tensor_of<double>({2, 3, 4}, awkward_floats<double>());
        check_bit_exact(decode(encode(t)), t);
    }
    SUBCASE("bool") {
        const Tensor t = tensor_of<bool>({2, 2}, {true, false, false, true});
        check_bit_exact(decode(encode(t)), t);
    }
    SUBCASE("int8") { check_integer_round_trip<std::int8_t>({6}); }
    SUBCASE("int16") { check_integer_round_trip<std::int16_t>({2, 3}); }
    SUBCASE("int32") { check_integer_round_trip<std::int32_t>({3, 2}); }
    SUBCASE("int64") { check_integer_round_trip<std::int64_t>({6}); }
    SUBCASE("uint8") { check_integer_round_trip<std::uint8_t>({6}); }
    SUBCASE("uint16") { check_integer_round_trip<std::uint16_t>({6}); }
    SUBCASE("uint32") { check_integer_round_trip<std::uint32_t>({6}); }
    SUBCASE("uint64") { check_integer_round_trip<std::uint64_t>({6}); }
    SUBCASE("float16 and bfloat16: every bit pattern but the NaNs (which read back as one NaN)") {
        std::vector<attn::float16> h;
        std::vector<attn::bfloat16> b;
        for (std::uint32_t bits = 0; bits < 0x10000u; ++bits) {
            const auto b16 = static_cast<std::uint16_t>(bits);
            if (!std::isnan(static_cast<float>(attn::float16::from_bits(b16))))
                h.push_back(attn::float16::from_bits(b16));
            if (!std::isnan(static_cast<float>(attn::bfloat16::from_bits(b16))))
                b.push_back(attn::bfloat16::from_bits(b16));
        }
        const Tensor th(xt::xarray<attn::float16>(xt::adapt(h, std::vector<std::size_t>{h.size()})));
        const Tensor tb(xt::xarray<attn::bfloat16>(xt::adapt(b, std::vector<std::size_t>{b.size()})));
        check_bit_exact(decode(encode(th)), th);
        check_bit_exact(decode(encode(tb)), tb);
        CHECK(encode(Tensor(xt::xarray<attn::float16>{attn::float16(0.1)})) ==
              "{\"shape\": [1], \"dtype\": \"float16\", \"data\": [0.099975586]}\n");
    }
}

TEST_CASE("json: float32 and bool round-trip bit for bit through the nested layout") {
    SUBCASE("float32") {
        const Tensor t = tensor_of<float>({2, 3, 4}, awkward_floats<float>());
        check_bit_exact(decode(encode(t, io::JsonLayout::Nested)), t);
    }
    SUBCASE("bool") {
        const Tensor t = tensor_of<bool>({3}, {false, true, true});
        check_bit_exact(decode(encode(t, io::JsonLayout::Nested)), t);
    }
    SUBCASE("random float32 bit patterns") {
        std::mt19937 rng(42);
        std::vector<float> values;
        while (values.size() < 100000) {
            const float f = float_from_bits(static_cast<std::uint32_t>(rng()));
            if (!std::isnan(f)) values.push_back(f);
        }
        const Tensor t = tensor_of<float>({values.size() / 100, 100}, values);
        check_bit_exact(decode(encode(t, io::JsonLayout::Nested)), t);
        check_bit_exact(decode(encode(t)), t);
    }
}

TEST_CASE("json: float32 text is exactly std::to_chars's shortest round-trip text") {
    // The writer has its own float32 formatter (for speed); it must agree with the
    // standard library on every value. Random bit patterns plus every power of two and
    // the subnormals near zero.
    std::vector<float> values;
    std::mt19937 rng(7);
    for (int i = 0; i < 200000; ++i) values.push_back(float_from_bits(static_cast<std::uint32_t>(rng())));
    for (std::uint32_t e = 0; e < 255; ++e) values.push_back(float_from_bits(e << 23));
    for (std::uint32_t m = 1; m < 5000; ++m) values.push_back(float_from_bits(m));
    for (std::uint32_t m = 0; m < 5000; ++m) values.push_back(float_from_bits(0x7F7FFFFFu - m));
    values.erase(std::remove_if(values.begin(), values.end(), [](float f) { return !std::isfinite(f) || f == 0; }),
                 values.end());
    std::string expected = "{\"shape\": [" + std::to_string(values.size()) + "], \"dtype\": \"float32\", \"data\": [";
    char buffer[64];
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) expected += ", ";
        expected.append(buffer, std::to_chars(buffer, buffer + sizeof buffer, values[i]).ptr);
    }
    expected += "]}\n";
    const std::string actual = encode(tensor_of<float>({values.size()}, values));
    CHECK(actual.size() == expected.size());
    CHECK(actual == expected);
}

TEST_CASE("json: float text of edge values is the shortest that reads back, as numpy finds it") {
    // Made with /usr/bin/python3 and numpy: the shortest round-trip digits
    // (np.format_float_scientific / np.format_float_positional with unique=True), in the
    // shorter of fixed and scientific notation, fixed on a tie, and an integer in fixed
    // notation written exactly (std::to_chars's rule: 123456792 where numpy's positional
    // form gives 123456790). After each: Python's repr of the value as a float64.
    SUBCASE("float32: zero, one third, the extremes, denormals, powers of two, 0.1") {
        const std::pair<std::uint32_t, const char*> cases[] = {
            {0x00000000u, "0"},               // 0.0
            {0x80000000u, "-0"},              // -0.0
            {0x3DCCCCCDu, "0.1"},             // 0.10000000149011612
            {0x3F800000u, "1"},               // 1.0
            {0xBFC00000u, "-1.5"},            // -1.5
            {0x3EAAAAABu, "0.33333334"},      // 0.3333333432674408
            {0x7F7FFFFFu, "3.4028235e+38"},   // 3.4028234663852886e+38 (FLT_MAX)
            {0xFF7FFFFFu, "-3.4028235e+38"},  // -3.4028234663852886e+38
            {0x00800000u, "1.1754944e-38"},   // 1.1754943508222875e-38 (FLT_MIN)
            {0x00000001u, "1e-45"},           // 1.401298464324817e-45 (the smallest denormal)
            {0x80000001u, "-1e-45"},          // -1.401298464324817e-45
            {0x007FFFFFu, "1.1754942e-38"},   // 1.1754942106924411e-38 (the largest denormal)
            {0x3A800000u, "0.0009765625"},    // 0.0009765625 (2^-10)
            {0x35800000u, "9.536743e-07"},    // 9.5367431640625e-07 (2^-20)
            {0x4B000000u, "8388608"},         // 8388608.0 (2^23)
            {0x4B800000u, "16777216"},        // 16777216.0 (2^24)
            {0x4E800000u, "1073741824"},      // 1073741824.0 (2^30)
            {0x71800000u, "1.2676506e+30"},   // 1.2676506002282294e+30 (2^100)
            {0x4CEB79A3u, "123456792"},       // 123456792.0
            {0x3727C5ACu, "1e-05"},           // 9.999999747378752e-06
            {0x501502F9u, "1e+10"},           // 10000000000.0
            {0x42C80000u, "100"},             // 100.0
            {0x01391D15u, "3.4e-38"},         // 3.3999998912590545e-38
            {0x5A0E1BCAu, "1e+16"},           // 1.0000000272564224e+16
        };
        for (const auto& [bits, text] : cases) check_float_text<float>(bits, text);
    }
    SUBCASE("float64") {
        const std::pair<std::uint64_t, const char*> cases[] = {
            {0x0000000000000000u, "0"},                        // 0.0
            {0x8000000000000000u, "-0"},                       // -0.0
            {0x3FB999999999999Au, "0.1"},                      // 0.1
            {0x3FD5555555555555u, "0.3333333333333333"},       // 0.3333333333333333
            {0x7FEFFFFFFFFFFFFFu, "1.7976931348623157e+308"},  // 1.7976931348623157e+308 (DBL_MAX)
            {0x0010000000000000u, "2.2250738585072014e-308"},  // 2.2250738585072014e-308 (DBL_MIN)
            {0x0000000000000001u, "5e-324"},                   // 5e-324 (the smallest denormal)
            {0x0000000000000003u, "1.5e-323"},                 // 1.5e-323
            {0x43B0000000000000u, "1152921504606846976"},      // 1.152921504606847e+18 (2^60)
            {0x3EB0000000000000u, "9.5367431640625e-07"},      // 9.5367431640625e-07 (2^-20)
            {0x4341C37937E08000u, "1e+16"},                    // 1e+16
            {0x437B69B4BA630F35u, "123456789012345680"},       // 1.2345678901234568e+17
            {0x44B52D02C7E14AF6u, "1e+23"},                    // 1e+23
        };
        for (const auto& [bits, text] : cases) check_float_text<double>(bits, text);
    }
}

TEST_CASE("json: numbers of every length read as std::from_chars reads them") {
    // Digit runs shorter and longer than the eight the scanner takes at a time, the 19
    // digits that fit its integer, more than that, zeros after the point, and exponents
    // around the 10^22 the fast path holds exactly.
    const std::vector<std::string> numbers = {"0",
                                              "-0",
                                              "7",
                                              "12345678",
                                              "123456789",
                                              "1234567890123456",
                                              "9007199254740993",
                                              "1234567890123456789",
                                              "12345678901234567890",
                                              "18446744073709551615",
                                              "0.1",
                                              "0.000000000000000000001234567",
                                              "1.00000000000000000000000000001",
                                              "3.14159265358979323846264338327950288",
                                              "123456.7890123456789e-3",
                                              "1e22",
                                              "1e23",
                                              "9.999999999999999e22",
                                              "1E-7",
                                              "2.5e+10",
                                              "0.13207972049713135",
                                              "1.0000000596046448",
                                              "100000000000000000000000000000000000000e-2",
                                              "-98765.4321e-12"};
    std::string text = "[";
    for (std::size_t i = 0; i < numbers.size(); ++i) text += (i > 0 ? ", " : "") + numbers[i];
    text += "]";
    const Tensor as_float = decode(text);
    const Tensor as_double = decode(R"({"dtype": "float64", "data": )" + text + "}");
    for (std::size_t i = 0; i < numbers.size(); ++i) {
        CAPTURE(numbers[i]);
        const char* first = numbers[i].data();
        const char* last = first + numbers[i].size();
        float f = 0;
        double d = 0;
        REQUIRE(std::from_chars(first, last, f).ec == std::errc{});
        REQUIRE(std::from_chars(first, last, d).ec == std::errc{});
        CHECK(std::memcmp(&static_cast<const float*>(as_float.data())[i], &f, sizeof f) == 0);
        CHECK(std::memcmp(&static_cast<const double*>(as_double.data())[i], &d, sizeof d) == 0);
    }
}

TEST_CASE("json: the writer's text") {
    const Tensor t = tensor_of<float>({2, 3}, {1.0f, 2.5f, -0.0f, NAN, INFINITY, -INFINITY});
    SUBCASE("object layout: shortest numbers, Python's NaN/Infinity, -0.0 keeps its sign") {
        CHECK(encode(t) ==
              "{\"shape\": [2, 3], \"dtype\": \"float32\", \"data\": [[1, 2.5, -0.0], [NaN, Infinity, -Infinity]]}\n");
    }
    SUBCASE("nested layout: integral floats get .0 so that json/torch read floats") {
        CHECK(encode(t, io::JsonLayout::Nested) == "[[1.0, 2.5, -0.0], [NaN, Infinity, -Infinity]]\n");
    }
    SUBCASE("float32 values print as float32, not as their float64 widening") {
        CHECK(encode(tensor_of<float>({3}, {0.1f, 3.4028235e38f, 1e-45f})) ==
              "{\"shape\": [3], \"dtype\": \"float32\", \"data\": [0.1, 3.4028235e+38, 1e-45]}\n");
        CHECK(encode(tensor_of<double>({2}, {0.1, 5e-324})) ==
              "{\"shape\": [2], \"dtype\": \"float64\", \"data\": [0.1, 5e-324]}\n");
    }
    SUBCASE("7.038531e-26f gets one digit more, so that float64 then float32 reads it back") {
        const float trap = float_from_bits(0x15AE43FDu);
        CHECK(encode(tensor_of<float>({2}, {trap, -trap})) ==
              "{\"shape\": [2], \"dtype\": \"float32\", \"data\": [7.0385307e-26, -7.0385307e-26]}\n");
        // What json.load + np.array(..., dtype="float32") do: nearest double, then float.
        CHECK(static_cast<float>(std::strtod("7.0385307e-26", nullptr)) == trap);
        CHECK(static_cast<float>(std::strtod("7.038531e-26", nullptr)) != trap);
        check_bit_exact(decode(encode(tensor_of<float>({1}, {trap}))), tensor_of<float>({1}, {trap}));
    }
    SUBCASE("scalar") {
        CHECK(encode(tensor_of<float>({}, {0.5f})) == "{\"shape\": [], \"dtype\": \"float32\", \"data\": 0.5}\n");
        CHECK(encode(tensor_of<float>({}, {2.0f}), io::JsonLayout::Nested) == "2.0\n");
    }
    SUBCASE("empty shapes: flat [] in the object layout, nested empties in the nested one") {
        CHECK(encode(Tensor::zeros(DType::Float32, {2, 0, 3})) ==
              "{\"shape\": [2, 0, 3], \"dtype\": \"float32\", \"data\": []}\n");
        CHECK(encode(Tensor::zeros(DType::Int8, {0, 4})) == "{\"shape\": [0, 4], \"dtype\": \"int8\", \"data\": []}\n");
        CHECK(encode(Tensor::zeros(DType::Float32, {2, 0, 3}), io::JsonLayout::Nested) == "[[], []]\n");
        check_bit_exact(decode(encode(Tensor::zeros(DType::UInt16, {3, 0}))), Tensor::zeros(DType::UInt16, {3, 0}));
    }
    SUBCASE("no elements but 10^11 empty arrays: refused in the nested layout, [] in the object one") {
        const Tensor huge = decode(R"({"shape": [1, 100000000000, 0], "data": []})");
        CHECK(encode(huge) == "{\"shape\": [1, 100000000000, 0], \"dtype\": \"float32\", \"data\": []}\n");
        const std::string m = error_of([&] { encode(huge, io::JsonLayout::Nested); }, ErrorKind::Value);
        CHECK(contains(m, "shape (1, 100000000000, 0) has no elements but would be written as more than"));
    }
    SUBCASE("rank above 64 is refused, as every writer refuses it (kMaxRank: what is written reads back)") {
        const Tensor deep = Tensor::zeros(DType::Bool, Shape(70, 1));
        const std::string m = error_of([&] { encode(deep, io::JsonLayout::Nested); }, ErrorKind::Value);
        CHECK(contains(m, "tensor: its shape has 70 dimensions, over the cap of 64"));
        const Tensor at_cap = Tensor::zeros(DType::Bool, Shape(64, 1));
        CHECK(encode(at_cap, io::JsonLayout::Nested) == std::string(64, '[') + "false" + std::string(64, ']') + "\n");
    }
    SUBCASE("integers and bools exactly") {
        CHECK(encode(tensor_of<std::uint64_t>({2}, {18446744073709551615u, 0})) ==
              "{\"shape\": [2], \"dtype\": \"uint64\", \"data\": [18446744073709551615, 0]}\n");
        CHECK(encode(tensor_of<std::int8_t>({1, 2}, {-128, 127})) ==
              "{\"shape\": [1, 2], \"dtype\": \"int8\", \"data\": [[-128, 127]]}\n");
        CHECK(encode(tensor_of<bool>({2}, {true, false}), io::JsonLayout::Nested) == "[true, false]\n");
    }
    SUBCASE("rank 4") {
        std::vector<float> v(16);
        for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
        CHECK(encode(tensor_of<float>({2, 2, 2, 2}, v), io::JsonLayout::Nested) ==
              "[[[[0.0, 1.0], [2.0, 3.0]], [[4.0, 5.0], [6.0, 7.0]]], "
              "[[[8.0, 9.0], [10.0, 11.0]], [[12.0, 13.0], [14.0, 15.0]]]]\n");
    }
}

TEST_CASE("json: the writer streams in chunks of at most 1 MiB") {
    struct ChunkSink final : io::ByteSink {
        using io::ByteSink::write;
        void write(const char* data, std::size_t size) override {
            largest = std::max(largest, size);
            ++writes;
            bytes.append(data, size);
        }
        std::size_t largest = 0;
        std::size_t writes = 0;
        std::string bytes;
    };
    std::vector<float> v(400000);
    std::mt19937 rng(3);
    std::normal_distribution<float> normal;
    for (float& x : v) x = normal(rng);
    const Tensor t = tensor_of<float>({400, 1000}, v);
    ChunkSink sink;
    io::encode_json(t, sink);
    CHECK(sink.bytes.size() > 4u << 20);
    CHECK(sink.writes >= 4);
    CHECK(sink.largest <= 1u << 20);
    CHECK(sink.bytes == encode(t));
    check_bit_exact(decode(sink.bytes), t);
}

TEST_CASE("json: reads what Python's json and numpy wrote") {
    SUBCASE("nested float32 lists (tolist() widens to 17-digit float64 text), NaN and Infinity") {
        const Tensor t = io::decode_json(fixture("json/nested_float32.json"), "nested_float32.json");
        check_against_bin(t, DType::Float32, {3, 4}, "nested_float32.bin");
        const float* v = static_cast<const float*>(t.data());
        CHECK(std::isnan(v[0]));
        CHECK(v[1] == INFINITY);
        CHECK(v[2] == -INFINITY);
        CHECK(std::signbit(v[3]));
        CHECK(v[4] == std::numeric_limits<float>::denorm_min());
        CHECK(v[5] == std::numeric_limits<float>::max());
    }
    SUBCASE("object with indent=2, float64") {
        const Tensor t = io::decode_json(fixture("json/object_float64.json"), "object_float64.json");
        check_against_bin(t, DType::Float64, {2, 3}, "object_float64.bin");
        CHECK(static_cast<const double*>(t.data())[0] == std::numeric_limits<double>::denorm_min());
    }
    SUBCASE("flat int16 data before dtype and shape") {
        check_against_bin(io::decode_json(fixture("json/object_flat_int16.json"), "f"), DType::Int16, {2, 2, 3},
                          "object_flat_int16.bin");
    }
    SUBCASE("bool object and bare bool lists") {
        check_against_bin(io::decode_json(fixture("json/object_bool.json"), "f"), DType::Bool, {2, 3},
                          "object_bool.bin");
        check_against_bin(io::decode_json(fixture("json/nested_bool.json"), "f"), DType::Bool, {2, 3},
                          "nested_bool.bin");
    }
    SUBCASE("scalar") {
        check_against_bin(io::decode_json(fixture("json/scalar.json"), "f"), DType::Float32, {}, "scalar.bin");
    }
    SUBCASE("empty (2, 0, 3)") {
        check_against_bin(io::decode_json(fixture("json/empty.json"), "f"), DType::Float32, {2, 0, 3}, "empty.bin");
    }
    SUBCASE("archive of integer limits") {
        const io::NamedTensors tensors =
            io::decode_json_archive(fixture("json/archive_ints.json"), "archive_ints.json");
        const std::vector<std::pair<std::string, DType>> expected = {
            {"int8", DType::Int8},   {"int16", DType::Int16},   {"int32", DType::Int32},   {"int64", DType::Int64},
            {"uint8", DType::UInt8}, {"uint16", DType::UInt16}, {"uint32", DType::UInt32}, {"uint64", DType::UInt64}};
        REQUIRE(tensors.size() == expected.size());
        for (std::size_t i = 0; i < expected.size(); ++i) {
            CAPTURE(expected[i].first);
            CHECK(tensors[i].first == expected[i].first);
            check_against_bin(tensors[i].second, expected[i].second, {5}, "archive_ints." + expected[i].first + ".bin");
        }
    }
    SUBCASE("weights file: object and bare members, indent=1, in file order") {
        const io::NamedTensors tensors = io::decode_json_archive(fixture("json/weights.json"), "weights.json");
        REQUIRE(tensors.size() == 4);
        CHECK(tensors[0].first == "in_proj_weight");
        CHECK(tensors[1].first == "in_proj_bias");
        CHECK(tensors[2].first == "out_proj.weight");
        CHECK(tensors[3].first == "out_proj.bias");
        check_against_bin(tensors[0].second, DType::Float32, {12, 4}, "weights.in_proj_weight.bin");
        check_against_bin(tensors[1].second, DType::Float32, {12}, "weights.in_proj_bias.bin");
        check_against_bin(tensors[2].second, DType::Float32, {4, 4}, "weights.out_proj.weight.bin");
        check_against_bin(tensors[3].second, DType::Float32, {4}, "weights.out_proj.bias.bin");
    }
}

TEST_CASE("json: object keys in any order, dtype optional, shape optional for nested data") {
    const Tensor expected = tensor_of<std::int32_t>({2, 2}, {1, 2, 3, 4});
    SUBCASE("shape, dtype, data") {
        check_bit_exact(decode(R"({"shape": [2, 2], "dtype": "int32", "data": [[1, 2], [3, 4]]})"), expected);
    }
    SUBCASE("data, shape, dtype") {
        check_bit_exact(decode(R"({"data": [[1, 2], [3, 4]], "shape": [2, 2], "dtype": "int32"})"), expected);
    }
    SUBCASE("dtype, data, no shape") {
        check_bit_exact(decode(R"({"dtype": "int32", "data": [[1, 2], [3, 4]]})"), expected);
    }
    SUBCASE("no dtype means float32") {
        check_bit_exact(decode("{\"data\": [[1, 2], [3, 4]]}"), tensor_of<float>({2, 2}, {1, 2, 3, 4}));
    }
    SUBCASE("whitespace everywhere and a byte order mark") {
        check_bit_exact(decode("\xEF\xBB\xBF \n{ \"shape\" :\t[ 2 , 2 ] ,\r\n \"dtype\" : \"int32\" , \"data\" : "
                               "[ [ 1 , 2 ] , [ 3 , 4 ] ] }\n\n"),
                        expected);
    }
}

TEST_CASE("json: object data nested or flat row-major") {
    const Tensor expected = tensor_of<float>({2, 3, 2}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    SUBCASE("nested") {
        check_bit_exact(
            decode(R"({"shape": [2, 3, 2], "data": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 10], [11, 12]]]})"),
            expected);
    }
    SUBCASE("flat") {
        check_bit_exact(decode(R"({"shape": [2, 3, 2], "data": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]})"), expected);
    }
    SUBCASE("flat, shape last") {
        check_bit_exact(decode(R"({"data": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], "shape": [2, 3, 2]})"), expected);
    }
}

TEST_CASE("json: bare nested arrays give bool only when every element is true/false") {
    SUBCASE("all bools") { check_bit_exact(decode("[[true, false]]"), tensor_of<bool>({1, 2}, {true, false})); }
    SUBCASE("numbers") { check_bit_exact(decode("[[1, -2.5e3], [3, 4]]"), tensor_of<float>({2, 2}, {1, -2500, 3, 4})); }
    SUBCASE("booleans mixed with numbers are refused, as in the object form") {
        CHECK(contains(decode_error("[true, 0.5, false]"), "[0]: expected a number (dtype float32), found true"));
        CHECK(contains(decode_error("[[0.5], [false]]"), "[1][0]: expected a number (dtype float32), found false"));
    }
    SUBCASE("no elements is float32") { check_bit_exact(decode("[]"), Tensor::zeros(DType::Float32, {0})); }
}

TEST_CASE("json: scalars") {
    SUBCASE("bare number") { check_bit_exact(decode(" -1.5 "), tensor_of<float>({}, {-1.5f})); }
    SUBCASE("bare true") { check_bit_exact(decode("true"), tensor_of<bool>({}, {true})); }
    SUBCASE("shape [] with a number") {
        check_bit_exact(decode(R"({"shape": [], "dtype": "int64", "data": -7})"), tensor_of<std::int64_t>({}, {-7}));
    }
    SUBCASE("shape [] with a flat list of one") {
        check_bit_exact(decode(R"({"shape": [], "data": [3]})"), tensor_of<float>({}, {3}));
    }
    SUBCASE("no shape, number data") { check_bit_exact(decode(R"({"data": 2})"), tensor_of<float>({}, {2})); }
}

TEST_CASE("json: shapes with a zero have no elements") {
    SUBCASE("[] is (0,)") { CHECK(decode("[]").shape() == Shape{0}); }
    SUBCASE("[[], []] is (2, 0)") { CHECK(decode("[[], []]").shape() == Shape{2, 0}); }
    SUBCASE("shape (2, 0, 3) with nested empties") {
        check_bit_exact(decode(R"({"shape": [2, 0, 3], "data": [[], []]})"), Tensor::zeros(DType::Float32, {2, 0, 3}));
    }
    SUBCASE("shape (2, 0, 3) with flat []") {
        check_bit_exact(decode(R"({"shape": [2, 0, 3], "dtype": "uint8", "data": []})"),
                        Tensor::zeros(DType::UInt8, {2, 0, 3}));
    }
    SUBCASE("shape (2, 0, 3) with a level too many") {
        CHECK(contains(decode_error(R"({"shape": [2, 0, 3], "data": [[[]], [[]]]})"),
                       "data[0]: expected 0 elements, found 1"));
    }
}

TEST_CASE("json: numbers beyond the dtype's range") {
    SUBCASE("float16: rounded once to nearest-even, beyond its range infinity, as numpy casts") {
        // np.array([65519, 65520, 1 + 2**-11, -1e300], np.float16).view(np.uint16)
        const Tensor t = decode(R"({"dtype": "float16", "data": [65519, 65520, 1.00048828125, -1e300]})");
        REQUIRE(t.dtype() == DType::Float16);
        const auto& v = t.values<attn::float16>();
        CHECK(v(0).bits == 0x7BFF);
        CHECK(v(1).bits == 0x7C00);
        CHECK(v(2).bits == 0x3C00);
        CHECK(v(3).bits == 0xFC00);
    }
    SUBCASE("float32 overflow is infinity and underflow zero, as numpy casts") {
        const Tensor t = decode(R"({"shape": [4], "data": [1e39, -1e39, 1e-50, -1e-4000]})");
        const float* v = static_cast<const float*>(t.data());
        CHECK(v[0] == INFINITY);
        CHECK(v[1] == -INFINITY);
        CHECK(v[2] == 0.0f);
        CHECK((v[3] == 0.0f && std::signbit(v[3])));
    }
    SUBCASE("float32 text rounds once, directly to float32") {
        // 1.00000005960464477539062 is exactly halfway between 1 and the next float;
        // the digits after it decide, which a detour through float64 would lose.
        const Tensor t =
            decode(R"({"shape": [2], "data": [1.000000059604644775390625, 1.0000000596046447753906250001]})");
        CHECK(static_cast<const float*>(t.data())[0] == 1.0f);
        CHECK(static_cast<const float*>(t.data())[1] == std::nextafter(1.0f, 2.0f));
    }
    SUBCASE("float32 from Python's 17-digit text and from text near the halfway points") {
        // Python writes a float32 widened to float64 as the shortest float64 text; and the
        // float64 closest to halfway between two floats is the hardest case for rounding.
        // from_chars<float> rounds every text correctly: the reader must agree with it.
        std::mt19937 rng(5);
        std::string text = "[";
        std::vector<std::string> numbers;
        char buffer[64];
        for (int i = 0; i < 20000; ++i) {
            const float f = float_from_bits(static_cast<std::uint32_t>(rng()) & 0xBFFFFFFFu);  // below 2
            const double halfway = (static_cast<double>(f) + std::nextafter(f, INFINITY)) / 2;
            for (const double d :
                 {static_cast<double>(f), halfway, std::nextafter(halfway, 0.0), std::nextafter(halfway, 4.0)}) {
                numbers.emplace_back(buffer, std::to_chars(buffer, buffer + sizeof buffer, d).ptr);
            }
        }
        for (std::size_t i = 0; i < numbers.size(); ++i) text += (i > 0 ? ", " : "") + numbers[i];
        const Tensor t = decode(text + "]");
        REQUIRE(t.size() == numbers.size());
        std::size_t wrong = 0;
        for (std::size_t i = 0; i < numbers.size(); ++i) {
            float expected = 0;
            std::from_chars(numbers[i].data(), numbers[i].data() + numbers[i].size(), expected);
            const float actual = static_cast<const float*>(t.data())[i];
            if (std::memcmp(&actual, &expected, sizeof actual) != 0) ++wrong;
        }
        CHECK(wrong == 0);
    }
    SUBCASE("which way a number went is its leading digit's exponent, whatever its spelling") {
        const Tensor t =
            decode(R"({"shape": [6], "data": [123.4e37, 0.001e-44, -1000e-49, 123456789012345678901234567890e10,)"
                   R"( 0.0000000000000000000000000000000000000000000000001, -0.0000001e+46]})");
        const float* v = static_cast<const float*>(t.data());
        CHECK(v[0] == INFINITY);
        CHECK((v[1] == 0.0f && !std::signbit(v[1])));
        CHECK((v[2] == 0.0f && std::signbit(v[2])));
        CHECK(v[3] == INFINITY);
        CHECK((v[4] == 0.0f && !std::signbit(v[4])));
        CHECK(v[5] == -INFINITY);
    }
    SUBCASE("float64 overflow") {
        const Tensor t = decode(R"({"shape": [1], "dtype": "float64", "data": [-1e400]})");
        CHECK(static_cast<const double*>(t.data())[0] == -INFINITY);
    }
    SUBCASE("uint64 and int64 limits are exact") {
        check_bit_exact(decode(R"({"shape": [3], "dtype": "uint64", "data": [18446744073709551615, 0, -0]})"),
                        tensor_of<std::uint64_t>({3}, {18446744073709551615u, 0, 0}));
        check_bit_exact(
            decode(R"({"shape": [2], "dtype": "int64", "data": [-9223372036854775808, 9223372036854775807]})"),
            tensor_of<std::int64_t>(
                {2}, {std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()}));
    }
}

TEST_CASE("json: errors say where and what") {
    SUBCASE("ragged nested arrays") {
        const std::string m = decode_error("[[1, 2, 3], [4, 5]]");
        CHECK(contains(m, "[1]: expected 3 elements, found 2"));
        CHECK(contains(m, "line 1, column 13"));
        CHECK(contains(decode_error("[[1, 2], [3, 4, 5]]"), "[1]: expected 2 elements, found 3"));
        CHECK(contains(decode_error("[[1, 2], 3]"), "[1]: expected an array, found 3"));
        CHECK(contains(decode_error("[1, [2]]"), "[1]: expected a number, found an array"));
        CHECK(contains(decode_error(R"({"shape": [2, 3], "data": [[1, 2, 3], [4, 5]]})"),
                       "data[1]: expected 3 elements, found 2"));
        CHECK(contains(decode_error(R"({"shape": [2, 2], "data": [[1, 2], [3, 4], [5, 6]]})"),
                       "data: expected 2 elements, found 3"));
    }
    SUBCASE("non-numbers") {
        const std::string m =
            decode_error(R"({"shape": [2, 4], "dtype": "float32", "data": [[1, 2, 3, 4], [5, 6, 7, "8"]]})");
        CHECK(contains(m, "data[1][3]: expected a number (dtype float32), found a string"));
        CHECK(contains(m, "line 1, column 72"));
        CHECK(contains(decode_error(R"({"data": [[1, 2, 3, 4], [5, 6, 7, "8"]], "shape": [2, 4]})"),
                       "data[1][3]: expected a number, found a string (line 1, column 35)"));
        CHECK(contains(decode_error("[[1, 2], [3, \"x\"]]"), "[1][1]: expected a number, found a string"));
        CHECK(contains(decode_error("[1, null]"), "[1]: expected a number (dtype float32), found null"));
        CHECK(contains(decode_error("[1, {}]"), "[1]: expected a number, found an object"));
        CHECK(contains(decode_error("\"text\""), "expected a number, found a string"));
    }
    SUBCASE("malformed numbers") {
        CHECK(contains(decode_error("[01]"), "malformed number '01'"));
        CHECK(contains(decode_error("[1.]"), "malformed number '1.'"));
        CHECK(contains(decode_error("[.5]"), "found '.'"));
        CHECK(contains(decode_error("[-inf]"), "malformed number '-inf'"));
        CHECK(contains(decode_error("[1e]"), "malformed number '1e'"));
        CHECK(contains(decode_error("[nan]"), "found 'n'"));
        CHECK(contains(decode_error("[1 2]"), "expected ',' or ']' after an element, found 2"));
        CHECK(contains(decode_error("[1,]"), "[1]: expected a number (dtype float32), found ']'"));
    }
    SUBCASE("shape and data disagree") {
        const std::string m = decode_error(R"({"shape": [2, 3], "data": [1, 2, 3, 4, 5]})");
        CHECK(contains(m, "shape (2, 3) needs 6 values, data has 5"));
        CHECK(contains(m, "line 1, column 27"));
        CHECK(contains(decode_error(R"({"shape": [2, 3], "data": [1, 2, 3, 4, 5, 6, 7]})"),
                       "shape (2, 3) needs 6 values, data has 7"));
        CHECK(contains(decode_error(R"({"shape": [3], "data": [1, 2]})"), "data: expected 3 elements, found 2"));
        CHECK(
            contains(decode_error(R"({"shape": [2], "data": 5})"), "data: expected an array for shape (2,), found 5"));
        CHECK(contains(decode_error(R"({"shape": [], "data": [1, 2]})"), "shape () needs 1 value, data has 2"));
    }
    SUBCASE("dtype") {
        CHECK(contains(decode_error(R"({"dtype": "float8", "data": [1]})"), "unknown dtype 'float8' (expected bool"));

        CHECK(contains(decode_error(R"({"dtype": 32, "data": [1]})"), "dtype: expected a string such as \"float32\""));
        CHECK(contains(decode_error(R"({"dtype": "int8", "data": [1, 1.5]})"),
                       "data[1]: expected an integer (dtype int8), found 1.5"));
        CHECK(
            contains(decode_error(R"({"dtype": "int8", "data": [1, 128]})"), "data[1]: 128 is out of range for int8"));
        CHECK(contains(decode_error(R"({"dtype": "uint32", "data": [-1]})"), "data[0]: -1 is out of range for uint32"));
        CHECK(contains(decode_error(R"({"dtype": "int64", "data": [NaN]})"),
                       "data[0]: expected an integer (dtype int64), found NaN"));
        CHECK(contains(decode_error(R"({"dtype": "bool", "data": [true, 1]})"),
                       "data[1]: expected true or false (dtype bool), found 1"));
        CHECK(contains(decode_error(R"({"dtype": "float64", "data": [false]})"),
                       "data[0]: expected a number (dtype float64), found false"));
    }
    SUBCASE("keys") {
        CHECK(contains(decode_error(R"({"shape": [1], "data": [1], "dtpye": "int8"})"),
                       "unknown key 'dtpye' in a tensor object"));
        CHECK(contains(decode_error(R"({"shape": [1], "shape": [1], "data": [1]})"), "duplicate key \"shape\""));
        CHECK(contains(decode_error(R"({"data": [1], "data": [1]})"), "duplicate key \"data\""));
        CHECK(contains(decode_error(R"({"shape": [1]})"), "the tensor object has no \"data\" key"));
        CHECK(contains(decode_error("{}"), "no \"data\" key"));
        CHECK(contains(decode_error(R"({shape: [1]})"), "expected a quoted key, found 's'"));
    }
    SUBCASE("shape entries") {
        CHECK(contains(decode_error(R"({"shape": [2, -1], "data": []})"),
                       "shape[1]: expected a non-negative integer, found -1"));
        CHECK(contains(decode_error(R"({"shape": [2.5], "data": []})"),
                       "shape[0]: expected a non-negative integer, found 2.5"));
        CHECK(contains(decode_error(R"({"shape": ["2"], "data": []})"),
                       "shape[0]: expected a non-negative integer, found a string"));
        CHECK(contains(decode_error(R"({"shape": [99999999999999999999], "data": []})"),
                       "shape[0]: 99999999999999999999 is too large"));
        CHECK(contains(decode_error(R"({"shape": 3, "data": []})"), "shape: expected an array"));
    }
    SUBCASE("element count overflow") {
        const std::string m = decode_error(R"({"shape": [4294967296, 4294967296, 4294967296], "data": []})");
        CHECK(contains(m, "shape (4294967296, 4294967296, 4294967296) has too many elements"));
        // No elements, but xtensor's signed strides would still overflow.
        CHECK(contains(decode_error(R"({"shape": [0, 4294967296, 4294967296], "data": []})"),
                       "shape (0, 4294967296, 4294967296) has too many elements"));
    }
    SUBCASE("a shape far beyond the data is refused before allocating") {
        CHECK(contains(decode_error(R"({"shape": [1000000000000], "data": [1, 2]})"),
                       "shape (1000000000000,) needs 1000000000000 values, data has 2"));
        CHECK(contains(decode_error(R"({"shape": [100000, 100000, 1000], "data": [1, 2]})"), "data has 2"));
    }
    SUBCASE("trailing garbage") {
        const std::string m = decode_error("[1, 2]\n  x");
        CHECK(contains(m, "expected the end of the input after the tensor, found 'x'"));
        CHECK(contains(m, "line 2, column 3"));
        CHECK(contains(decode_error(R"({"data": [1]} {})"), "after the tensor, found an object"));
    }
    SUBCASE("unterminated input") {
        CHECK(contains(decode_error("[[1, 2], [3"), "expected ',' or ']' after an element, found end of input"));
        CHECK(contains(decode_error("[[1, 2],"), "found end of input"));
        CHECK(contains(decode_error(R"({"shape": [2], "data": [1, 2])"),
                       "expected ',' or '}' after an object member, found end of input"));
        CHECK(contains(decode_error(R"({"shape": [2], "dty)"), "unterminated string"));
        CHECK(contains(decode_error(R"({"shape": [2)"), "shape: expected ',' or ']', found end of input"));
        CHECK(contains(decode_error("[1, -"), "malformed number '-'"));
        CHECK(contains(decode_error("[Infin"), "found 'I'"));
    }
    SUBCASE("empty input") {
        CHECK(contains(decode_error(""), "no JSON value (the input is empty)"));
        CHECK(contains(decode_error(" \n "), "the input is empty"));
    }
    SUBCASE("line and column on a later line") {
        const std::string m = decode_error("{\n  \"shape\": [2],\n  \"data\": [1,\n    true]\n}");
        CHECK(contains(m, "data[1]: expected a number (dtype float32), found true (line 4, column 5)"));
    }
}

TEST_CASE("json: nesting deeper than 64 levels is an error, not a stack overflow") {
    SUBCASE("100000 open brackets") {
        const std::string text(100000, '[');
        CHECK(contains(decode_error(text), "arrays nested deeper than 64 levels"));
    }
    SUBCASE("100000 levels, closed") {
        const std::string text = std::string(100000, '[') + "1" + std::string(100000, ']');
        CHECK(contains(decode_error(text), "arrays nested deeper than 64 levels"));
    }
    SUBCASE("in an object's data, after and before the shape") {
        CHECK(contains(decode_error("{\"data\": " + std::string(100000, '[')), "nested deeper than 64"));
        const std::string m =
            decode_error("{\"shape\": [1], \"dtype\": \"int8\", \"data\": " + std::string(100000, '['));
        CHECK(contains(m, "data[0]: expected an integer (dtype int8), found an array"));
    }
    SUBCASE("in an archive member") {
        const std::string m =
            error_of([] { io::decode_json_archive("{\"w\": " + std::string(100000, '['), "w.json"); });
        CHECK(contains(m, "member 'w': "));
        CHECK(contains(m, "nested deeper than 64"));
    }
    SUBCASE("64 levels are fine") {
        const std::string text = std::string(64, '[') + "1" + std::string(64, ']');
        CHECK(decode(text).shape() == Shape(64, 1));
        CHECK(contains(decode_error(std::string(65, '[') + "1" + std::string(65, ']')), "deeper than 64"));
    }
}

TEST_CASE("json: archives of named tensors") {
    SUBCASE("round trip in order, names escaped") {
        io::NamedTensors tensors;
        tensors.emplace_back("in_proj_weight", tensor_of<float>({2, 2}, {1, -0.0f, NAN, 4}));
        tensors.emplace_back("out_proj.bias", tensor_of<std::int64_t>({1}, {-5}));
        tensors.emplace_back("quote\" back\\slash\nnewline \xC3\xA9", tensor_of<bool>({}, {true}));
        io::StringSink sink;
        io::encode_json_archive(tensors, sink);
        CHECK(sink.bytes() ==
              "{\n\"in_proj_weight\": {\"shape\": [2, 2], \"dtype\": \"float32\", \"data\": [[1, -0.0], [NaN, 4]]},\n"
              "\"out_proj.bias\": {\"shape\": [1], \"dtype\": \"int64\", \"data\": [-5]},\n"
              "\"quote\\\" back\\\\slash\\nnewline \xC3\xA9\": {\"shape\": [], \"dtype\": \"bool\", \"data\": true}\n"
              "}\n");
        const io::NamedTensors back = io::decode_json_archive(sink.bytes(), "a.json");
        REQUIRE(back.size() == tensors.size());
        for (std::size_t i = 0; i < back.size(); ++i) {
            CHECK(back[i].first == tensors[i].first);
            check_bit_exact(back[i].second, tensors[i].second);
        }
    }
    SUBCASE("empty archive") {
        io::StringSink sink;
        io::encode_json_archive({}, sink);
        CHECK(sink.bytes() == "{}\n");
        CHECK(io::decode_json_archive(" { } ", "a.json").empty());
    }
    SUBCASE("\\u escapes in names") {
        const io::NamedTensors t = io::decode_json_archive(R"({"a\u00e9\ud83d\ude00": [1]})", "a.json");
        REQUIRE(t.size() == 1);
        CHECK(t[0].first == "a\xC3\xA9\xF0\x9F\x98\x80");
    }
    SUBCASE("errors") {
        const auto archive_error = [](const std::string& text) {
            return error_of([&] { io::decode_json_archive(text, "a.json"); });
        };
        CHECK(contains(archive_error(R"({"w": [1], "w": [2]})"),
                       "a.json: duplicate tensor name 'w' (line 1, column 12)"));
        CHECK(
            contains(archive_error(R"({"w": [[1], [2, 3]]})"), "member 'w': element [1]: expected 1 element, found 2"));
        CHECK(contains(archive_error(R"({"w": {"data": [1, "x"]}})"),
                       "member 'w': data[1]: expected a number, found a string"));
        CHECK(contains(archive_error("[[1]]"), "expected an object mapping names to tensors, found an array"));
        CHECK(contains(archive_error(R"({"w": [1]} x)"), "expected the end of the input after the archive, found 'x'"));
        CHECK(contains(archive_error(R"({"w": [1],})"), "expected a quoted key, found '}'"));
        CHECK(contains(archive_error(R"({"a\ud800": [1]})"), "unpaired surrogate"));
    }
}

TEST_CASE("json: a tensor written in parallel blocks reads back bit for bit") {
    // 3 x 700 x 257 = 539,700 elements: several blocks of rows, formatted on every core.
    const attn::Tensor t = attn::random_tensor({3, 700, 257}, attn::Distribution::Normal, 5);
    for (attn::io::JsonLayout layout : {attn::io::JsonLayout::Object, attn::io::JsonLayout::Nested}) {
        attn::io::StringSink text;
        attn::io::encode_json(t, text, layout);
        const attn::Tensor back = attn::io::decode_json(text.bytes(), "blocks.json");
        REQUIRE(back.shape() == t.shape());
        CHECK(std::memcmp(back.data(), t.data(), t.nbytes()) == 0);
    }
}
