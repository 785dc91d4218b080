// Tests of the .safetensors reader and writer (lib/src/io/safetensors.cpp): files made from
// torch tensors by tests/data/make_archive_fixtures.py, round trips, and one test per
// rule of docs/formats.md that a hostile file can break.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "attn/error.hpp"
#include "attn/io.hpp"
#include "attn/tensor.hpp"
#include "test_support.hpp"

namespace {

using attn::DType;
using attn::Shape;
using attn::Tensor;
using attn::test::check_tensor;
using attn::test::contains;
using attn::test::error_of;
using attn::test::member;

std::string fixture(const std::string& file) { return attn::test::fixture("safetensors/" + file); }

// A .safetensors file from its header text and buffer; the header is used as given.
std::string make_file(const std::string& header, const std::string& buffer = "") {
    std::string out(8, '\0');
    for (std::size_t i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
    return out + header + buffer;
}

// The message reading `bytes` gives; every reading entry point must give the same.
std::string read_error(const std::string& bytes) {
    const std::string message = error_of([&] { attn::io::decode_safetensors(bytes, "bad.safetensors"); });
    CHECK(contains(message, "bad.safetensors: "));
    CHECK(error_of([&] { attn::io::safetensors_names(bytes, "bad.safetensors"); }) == message);
    CHECK(error_of([&] { attn::io::decode_safetensors_member(bytes, "a", "bad.safetensors"); }) == message);
    return message;
}

attn::io::NamedTensors every_dtype() {
    attn::io::NamedTensors t;
    t.emplace_back("float32", Tensor(xt::xarray<float>{{0.5f, -1e-30f, 3e38f}, {-0.0f, 1.0f, 2.0f}}));
    t.emplace_back("bool", Tensor(xt::xarray<bool>{true, false, true}));
    t.emplace_back("int8", Tensor(xt::xarray<std::int8_t>{-128, 0, 127}));
    t.emplace_back("int16", Tensor(xt::xarray<std::int16_t>{{-32768, 1}, {2, 32767}}));
    t.emplace_back("int32", Tensor(xt::xarray<std::int32_t>{INT32_MIN, INT32_MAX}));
    t.emplace_back("int64", Tensor(xt::xarray<std::int64_t>{INT64_MIN, -1, INT64_MAX}));
    t.emplace_back("uint8", Tensor(xt::xarray<std::uint8_t>{0, 255}));
    t.emplace_back("uint16", Tensor(xt::xarray<std::uint16_t>{0, 65535}));
    t.emplace_back("uint32", Tensor(xt::xarray<std::uint32_t>{0, UINT32_MAX}));
    t.emplace_back("uint64", Tensor(xt::xarray<std::uint64_t>{0, UINT64_MAX}));
    t.emplace_back("float64", Tensor(xt::xarray<double>{1e-300, -2.5, 1e300}));
    t.emplace_back("scalar", Tensor(xt::xarray<double>(7.25)));
    t.emplace_back("empty", Tensor::zeros(DType::Float32, {0, 3}));
    t.emplace_back("also empty", Tensor::zeros(DType::Int8, {2, 0}));
    return t;
}

}  // namespace

TEST_CASE("safetensors: file written from torch tensors, every dtype") {
    const std::string bytes = fixture("torch_mixed.safetensors");
    const std::vector<std::string> offset_order = {"u64",    "i64", "f64", "attn.weight", "empty",
                                                   "scalar", "u32", "i32", "bf16",        "half",
                                                   "u16",    "i16", "i8",  "u8",          "mask"};
    CHECK(attn::io::safetensors_names(bytes, "torch_mixed.safetensors") == offset_order);

    const auto tensors = attn::io::decode_safetensors(bytes, "torch_mixed.safetensors");
    REQUIRE(tensors.size() == offset_order.size());
    for (std::size_t i = 0; i < tensors.size(); ++i) CHECK(tensors[i].first == offset_order[i]);

    check_tensor<float>(member(tensors, "attn.weight"), {2, 3}, {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f});
    // float16 and bfloat16 stay as they are; 2^-24 is float16's smallest subnormal.
    REQUIRE(member(tensors, "half").dtype() == DType::Float16);
    REQUIRE(member(tensors, "bf16").dtype() == DType::BFloat16);
    check_tensor<float>(Tensor(member(tensors, "half").cast<float>()), {5},
                        {1.0f, -2.5f, 65504.0f, 0x1p-14f, 0x1p-24f});
    check_tensor<float>(Tensor(member(tensors, "bf16").cast<float>()), {4}, {1.5f, -2.25f, 3.0f, 0x1p100f});
    check_tensor<double>(member(tensors, "f64"), {2}, {0.1, -1e300});
    check_tensor<std::int64_t>(member(tensors, "i64"), {2, 2}, {-(std::int64_t(1) << 62), 1, 2, 3});
    check_tensor<std::int32_t>(member(tensors, "i32"), {2}, {INT32_MIN, INT32_MAX});
    check_tensor<std::int16_t>(member(tensors, "i16"), {3}, {-32768, 32767, 0});
    check_tensor<std::int8_t>(member(tensors, "i8"), {2}, {-128, 127});
    check_tensor<std::uint8_t>(member(tensors, "u8"), {3}, {0, 255, 7});
    check_tensor<bool>(member(tensors, "mask"), {2, 2}, {true, false, false, true});
    check_tensor<float>(member(tensors, "scalar"), {}, {2.5f});
    check_tensor<float>(member(tensors, "empty"), {0, 4}, {});
    check_tensor<std::uint16_t>(member(tensors, "u16"), {2}, {65535, 1});
    check_tensor<std::uint32_t>(member(tensors, "u32"), {1}, {UINT32_MAX});
    check_tensor<std::uint64_t>(member(tensors, "u64"), {2}, {UINT64_MAX, 5});
}

TEST_CASE("safetensors: unaligned data, listed out of offset order") {
    const std::string bytes = fixture("unaligned.safetensors");
    const auto tensors = attn::io::decode_safetensors(bytes, "unaligned.safetensors");
    REQUIRE(tensors.size() == 4);
    CHECK(tensors[0].first == "a");
    CHECK(tensors[1].first == "b");
    CHECK(tensors[2].first == "c");
    CHECK(tensors[3].first == "d");
    check_tensor<std::uint8_t>(tensors[0].second, {3}, {1, 2, 3});
    check_tensor<float>(tensors[1].second, {2}, {1.25f, -4.0f});
    check_tensor<double>(tensors[2].second, {1}, {6.5});
    check_tensor<std::int16_t>(tensors[3].second, {}, {-7});
}

TEST_CASE("safetensors: one tensor by name") {
    const std::string bytes = fixture("torch_mixed.safetensors");
    check_tensor<std::int8_t>(attn::io::decode_safetensors_member(bytes, "i8", "m.safetensors"), {2}, {-128, 127});

    const std::string message =
        error_of([&] { attn::io::decode_safetensors_member(bytes, "missing", "m.safetensors"); });
    CHECK(contains(message, "m.safetensors: "));
    CHECK(contains(message, "'missing'"));
    CHECK(contains(message, "u64, i64, f64, attn.weight"));
    CHECK(contains(message, "u8, mask"));
}

TEST_CASE("safetensors: encode then decode keeps every dtype, shape, value and the order") {
    const auto tensors = every_dtype();
    attn::io::StringSink sink;
    attn::io::encode_safetensors(tensors, sink);
    const std::string& bytes = sink.bytes();
    attn::test::check_same(attn::io::decode_safetensors(bytes, "out.safetensors"), tensors);

    // The header is JSON padded to a multiple of 8 bytes, with the reference's fields.
    std::uint64_t header_length = 0;
    for (std::size_t i = 0; i < 8; ++i) header_length |= std::uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
    CHECK(header_length % 8 == 0);
    const auto header = nlohmann::json::parse(bytes.substr(8, header_length));
    CHECK(header["float32"]["shape"] == nlohmann::json::array({2, 3}));
    CHECK(header["float32"]["data_offsets"] == nlohmann::json::array({0, 24}));
    CHECK(header["scalar"]["shape"] == nlohmann::json::array());
    // The names of the reference's format (safetensors' Dtype), one per dtype.
    const std::pair<const char*, const char*> names[] = {
        {"bool", "BOOL"},  {"int8", "I8"},    {"int16", "I16"},  {"int32", "I32"},   {"int64", "I64"},  {"uint8", "U8"},
        {"uint16", "U16"}, {"uint32", "U32"}, {"uint64", "U64"}, {"float32", "F32"}, {"float64", "F64"}};
    for (const auto& [tensor, dtype] : names) {
        CAPTURE(tensor);
        CHECK(header[tensor]["dtype"] == dtype);
    }

    SUBCASE("no tensors") {
        attn::io::StringSink empty;
        attn::io::encode_safetensors({}, empty);
        CHECK(empty.bytes().size() % 8 == 0);
        CHECK(attn::io::decode_safetensors(empty.bytes(), "empty.safetensors").empty());
    }
}

TEST_CASE("safetensors: encode refuses duplicate and reserved names") {
    attn::io::NamedTensors tensors;
    tensors.emplace_back("q", Tensor(xt::xarray<float>{1.0f}));
    tensors.emplace_back("q", Tensor(xt::xarray<float>{2.0f}));
    attn::io::StringSink sink;
    CHECK(contains(error_of([&] { attn::io::encode_safetensors(tensors, sink); }, attn::ErrorKind::Usage), "'q'"));

    tensors.pop_back();
    tensors.emplace_back("__metadata__", Tensor(xt::xarray<float>{2.0f}));
    CHECK(contains(error_of([&] { attn::io::encode_safetensors(tensors, sink); }, attn::ErrorKind::Usage),
                   "__metadata__"));
}

TEST_CASE("safetensors: metadata of strings is accepted") {
    const std::string bytes =
        make_file(R"({"__metadata__":{"format":"pt","note":"x"},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})",
                  "\x01\x02");
    check_tensor<std::uint8_t>(attn::io::decode_safetensors_member(bytes, "a", "m.safetensors"), {2}, {1, 2});
}

// ---- one test per broken rule ----------------------------------------------------------

TEST_CASE("safetensors: overlapping offsets") {
    const std::string message = read_error(make_file(
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
        std::string(12, '\0')));
    CHECK(contains(message, "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]"));
}

TEST_CASE("safetensors: a gap between tensors") {
    const std::string message = read_error(make_file(
        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
        std::string(12, '\0')));
    CHECK(contains(message, "tensor 'b': data_offsets [8, 12] leave a gap: expected begin 4"));
}

TEST_CASE("safetensors: data not starting at offset 0") {
    const std::string message =
        read_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0')));
    CHECK(contains(message, "tensor 'a': data_offsets [4, 8] leave a gap: expected begin 0"));
}

TEST_CASE("safetensors: duplicate tensor names") {
    const std::string message = read_error(make_file(
        R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
        "xy"));
    CHECK(contains(message, "header names 'a' twice"));
}

TEST_CASE("safetensors: duplicate key inside an entry") {
    const std::string message =
        read_error(make_file(R"({"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}})", "x"));
    CHECK(contains(message, "entry 'a' has the key 'dtype' twice"));
}

TEST_CASE("safetensors: header running past the end of the file") {
    const std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
    std::string bytes = make_file(header, "x");
    bytes[0] = static_cast<char>(header.size() + 2);  // two bytes more than there are
    const std::string message = read_error(bytes);
    CHECK(contains(message, "header length " + std::to_string(header.size() + 2) + " runs past the end of the file (" +
                                std::to_string(bytes.size()) + " bytes)"));
}

TEST_CASE("safetensors: header length over 100 MB") {
    std::string bytes = make_file("{}");
    const std::uint64_t huge = 100'000'001;
    for (std::size_t i = 0; i < 8; ++i) bytes[i] = static_cast<char>((huge >> (8 * i)) & 0xFF);
    const std::string message = read_error(bytes);
    CHECK(contains(message, "header length 100000001 is over the limit of 100000000 bytes"));
}

TEST_CASE("safetensors: file shorter than the header length") {
    CHECK(contains(read_error(std::string("\x02\0\0", 3)), "file is 3 bytes"));
}

TEST_CASE("safetensors: unsupported dtype") {
    const std::string message =
        read_error(make_file(R"({"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", std::string(8, '\0')));
    CHECK(contains(message, "tensor 'a': unsupported dtype 'C64'"));
    CHECK(contains(message, "BF16"));
}

TEST_CASE("safetensors: byte length that does not fit dtype and shape") {
    const std::string message =
        read_error(make_file(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,12]}})", std::string(12, '\0')));
    CHECK(contains(message, "tensor 'w': data_offsets [0, 12] span 12 bytes, shape (2, 3) F32 needs 24"));
}

TEST_CASE("safetensors: shape whose byte size overflows") {
    const std::string message = read_error(make_file(
        R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", std::string(8, '\0')));
    CHECK(contains(message, "overflows"));
}

TEST_CASE("safetensors: trailing bytes after the last tensor") {
    const std::string message =
        read_error(make_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "xyz"));
    CHECK(contains(message, "(1 trailing bytes)"));
}

TEST_CASE("safetensors: data cut short") {
    const std::string message =
        read_error(make_file(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", "xyz"));
    CHECK(contains(message, "(truncated)"));
}

TEST_CASE("safetensors: invalid JSON header") {
    CHECK(contains(read_error(make_file(R"({"a":{"dtype":"U8",)")), "header is not valid JSON"));
}

TEST_CASE("safetensors: a number in the header beyond double's range") {
    // Found by tests/fuzz/fuzz_safetensors: nlohmann reports it with out_of_range, not
    // parse_error, and that escaped the reader as a non-attn::Error exception.
    for (const char* header : {R"({"a":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}})",
                               R"({"__metadata__":{"x":"y"},"a":-1E+999})"}) {
        CAPTURE(header);
        const std::string message = read_error(make_file(header));
        CHECK(contains(message, "header is not valid JSON"));
        CHECK(contains(message, "number overflow"));
    }
}

TEST_CASE("safetensors: header that is not UTF-8") {
    const std::string message = read_error(make_file("{\"\xff\":{}}"));
    CHECK(contains(message, "header is not valid JSON"));
    CHECK(contains(message, "ill-formed UTF-8"));
    CHECK(contains(message, "\\xff"));  // the bad byte, escaped: the message stays printable
}

TEST_CASE("safetensors: header that is not a JSON object") {
    CHECK(contains(read_error(make_file("[1, 2]")), "header is an array, expected a JSON object"));
    CHECK(contains(read_error(make_file("  {}")), "expected '{'"));
}

TEST_CASE("safetensors: entry with missing or extra keys") {
    CHECK(contains(read_error(make_file(R"({"a":{"dtype":"U8","shape":[0]}})")),
                   "tensor 'a': missing key 'data_offsets'"));
    CHECK(contains(read_error(make_file(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"x":1}})")),
                   "tensor 'a': unexpected key 'x'"));
    CHECK(contains(read_error(make_file(R"({"a":[1]})")), "tensor 'a': header entry is an array"));
}

TEST_CASE("safetensors: shape and offsets that are not non-negative integers") {
    CHECK(contains(read_error(make_file(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})")),
                   "tensor 'a': shape[0] is a negative integer"));
    CHECK(contains(read_error(make_file(R"({"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,0]}})")),
                   "tensor 'a': shape[0] is a float"));
    CHECK(contains(read_error(make_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", "x")),
                   "tensor 'a': data_offsets is an array of 1"));
    CHECK(contains(read_error(make_file(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})")),
                   "data_offsets [4, 0] end before they begin"));
}

TEST_CASE("safetensors: metadata that is not a map of strings") {
    CHECK(contains(read_error(make_file(R"({"__metadata__":{"n":1}})")),
                   "__metadata__ value of 'n' is an unsigned integer, expected a string"));
    CHECK(contains(read_error(make_file(R"({"__metadata__":[]})")), "__metadata__ is an array"));
}
