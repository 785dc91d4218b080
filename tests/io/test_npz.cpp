// Tests of the .npz reader and writer (lib/src/io/npz.cpp) against archives numpy wrote and
// hostile ones made by tests/data/make_archive_fixtures.py.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

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

std::string fixture(const std::string& file) { return attn::test::fixture("npz/" + file); }

const std::vector<std::string> kSavezNames = {"f32", "f64",    "i64",   "u8",      "mask",
                                              "f16", "scalar", "empty", "fortran", "big_endian"};

// One tensor of each dtype, with values at the edges of its range.
attn::io::NamedTensors every_dtype() {
    attn::io::NamedTensors t;
    t.emplace_back("bool", Tensor(xt::xarray<bool>{true, false, true}));
    t.emplace_back("int8", Tensor(xt::xarray<std::int8_t>{-128, 0, 127}));
    t.emplace_back("int16", Tensor(xt::xarray<std::int16_t>{{-32768, 1}, {2, 32767}}));
    t.emplace_back("int32", Tensor(xt::xarray<std::int32_t>{INT32_MIN, INT32_MAX}));
    t.emplace_back("int64", Tensor(xt::xarray<std::int64_t>{INT64_MIN, -1, INT64_MAX}));
    t.emplace_back("uint8", Tensor(xt::xarray<std::uint8_t>{0, 255}));
    t.emplace_back("uint16", Tensor(xt::xarray<std::uint16_t>{0, 65535}));
    t.emplace_back("uint32", Tensor(xt::xarray<std::uint32_t>{0, UINT32_MAX}));
    t.emplace_back("uint64", Tensor(xt::xarray<std::uint64_t>{0, UINT64_MAX}));
    t.emplace_back("float32", Tensor(xt::xarray<float>{{0.5f, -1e-30f, 3e38f}, {-0.0f, 1.0f, 2.0f}}));
    t.emplace_back("float64", Tensor(xt::xarray<double>{1e-300, -2.5, 1e300}));
    t.emplace_back("scalar", Tensor(xt::xarray<double>(7.25)));
    t.emplace_back("empty", Tensor::zeros(DType::Float32, {0, 3}));
    return t;
}

}  // namespace

TEST_CASE("npz: archives written by np.savez and np.savez_compressed") {
    for (const char* file : {"savez.npz", "savez_compressed.npz"}) {
        CAPTURE(file);
        const std::string bytes = fixture(file);
        CHECK(attn::io::npz_member_names(bytes, file) == kSavezNames);

        const auto tensors = attn::io::decode_npz(bytes, file);
        REQUIRE(tensors.size() == kSavezNames.size());
        for (std::size_t i = 0; i < tensors.size(); ++i) CHECK(tensors[i].first == kSavezNames[i]);

        check_tensor<float>(member(tensors, "f32"), {2, 3}, {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f});
        check_tensor<double>(member(tensors, "f64"), {3}, {0.1, -1e300, 2.5});
        check_tensor<std::int64_t>(member(tensors, "i64"), {2, 2}, {-(std::int64_t(1) << 62), 1, 2, 3});
        check_tensor<std::uint8_t>(member(tensors, "u8"), {4}, {0, 255, 7, 1});
        check_tensor<bool>(member(tensors, "mask"), {3}, {true, false, true});
        CHECK(member(tensors, "f16").dtype() == attn::DType::Float16);  // kept as read
        check_tensor<float>(attn::Tensor(member(tensors, "f16").cast<float>()), {3}, {1.0f, -2.5f, 65504.0f});
        check_tensor<double>(member(tensors, "scalar"), {}, {3.5});
        check_tensor<float>(member(tensors, "empty"), {0, 3}, {});
        check_tensor<std::int32_t>(member(tensors, "fortran"), {2, 3}, {0, 1, 2, 3, 4, 5});
        check_tensor<float>(member(tensors, "big_endian"), {2}, {1.5f, -2.0f});
    }
}

TEST_CASE("npz: one member by its name with or without .npy") {
    for (const char* file : {"savez.npz", "savez_compressed.npz"}) {
        CAPTURE(file);
        const std::string bytes = fixture(file);
        check_tensor<std::uint8_t>(attn::io::decode_npz_member(bytes, "u8", file), {4}, {0, 255, 7, 1});
        check_tensor<std::uint8_t>(attn::io::decode_npz_member(bytes, "u8.npy", file), {4}, {0, 255, 7, 1});
    }
}

TEST_CASE("npz: a missing member is refused with the members listed") {
    const std::string message =
        error_of([] { attn::io::decode_npz_member(fixture("savez.npz"), "weights", "savez.npz"); });
    CHECK(contains(message, "savez.npz: "));
    CHECK(contains(message, "'weights'"));
    CHECK(contains(message, "f32, f64, i64, u8, mask, f16, scalar, empty, fortran, big_endian"));
}

TEST_CASE("npz: encode then decode keeps every dtype, shape, value and the order") {
    const auto tensors = every_dtype();
    attn::io::StringSink sink;
    attn::io::encode_npz(tensors, sink);
    const std::string& bytes = sink.bytes();
    REQUIRE(bytes.size() > 4);
    CHECK(bytes.compare(0, 4, "PK\x03\x04") == 0);

    std::vector<std::string> names;
    for (const auto& entry : tensors) names.push_back(entry.first);
    CHECK(attn::io::npz_member_names(bytes, "out.npz") == names);
    attn::test::check_same(attn::io::decode_npz(bytes, "out.npz"), tensors);

    SUBCASE("the output does not depend on when it was written") {
        attn::io::StringSink again;
        attn::io::encode_npz(tensors, again);
        CHECK(again.bytes() == bytes);
    }
    SUBCASE("members are stored, as np.savez stores them") {
        // Local header: method at offset 8, then the npy magic right after the name.
        CHECK(bytes[8] == 0);
        CHECK(bytes[9] == 0);
        CHECK(bytes.find("bool.npy\x93NUMPY") != std::string::npos);
    }
}

TEST_CASE("npz: an empty archive round-trips") {
    attn::io::StringSink sink;
    attn::io::encode_npz({}, sink);
    CHECK(sink.bytes().size() == 22);
    CHECK(attn::io::npz_member_names(sink.bytes(), "empty.npz").empty());
    CHECK(attn::io::decode_npz(sink.bytes(), "empty.npz").empty());
    const std::string message = error_of([&] { attn::io::decode_npz_member(sink.bytes(), "q", "empty.npz"); });
    CHECK(contains(message, "archive is empty"));
}

TEST_CASE("npz: encode refuses two tensors of one name") {
    attn::io::NamedTensors tensors;
    tensors.emplace_back("q", Tensor(xt::xarray<float>{1.0f}));
    tensors.emplace_back("q", Tensor(xt::xarray<float>{2.0f}));
    attn::io::StringSink sink;
    const std::string message = error_of([&] { attn::io::encode_npz(tensors, sink); }, attn::ErrorKind::Usage);
    CHECK(contains(message, "'q'"));
}

TEST_CASE("npz: bytes that are no zip archive are refused") {
    const std::string good = fixture("savez.npz");
    SUBCASE("empty") {
        CHECK(contains(error_of([] { attn::io::decode_npz("", "e.npz"); }), "e.npz: empty file"));
    }
    SUBCASE("not a zip at all") {
        const std::string message = error_of([] { attn::io::npz_member_names("hello, world", "t.npz"); });
        CHECK(contains(message, "t.npz: not a valid zip archive"));
    }
    SUBCASE("cut short") {
        const std::string cut = good.substr(0, good.size() - 30);
        CHECK(contains(error_of([&] { attn::io::decode_npz(cut, "cut.npz"); }), "cut.npz: not a valid zip archive"));
    }
    SUBCASE("central directory disagreeing with a local header") {
        // The method of the first central directory entry: stored -> deflated.
        std::string bad = good;
        const std::size_t central = bad.find("PK\x01\x02");
        REQUIRE(central != std::string::npos);
        bad[central + 10] = 8;
        CHECK(contains(error_of([&] { attn::io::decode_npz(bad, "bad.npz"); }), "bad.npz: "));
    }
}

TEST_CASE("npz: a member whose CRC does not match is refused") {
    const std::string bytes = fixture("bad_crc.npz");
    const std::string message = error_of([&] { attn::io::decode_npz_member(bytes, "f32", "bad_crc.npz"); });
    CHECK(contains(message, "bad_crc.npz: member 'f32.npy'"));
    CHECK(contains(message, "CRC"));
    CHECK_THROWS_AS(attn::io::decode_npz(bytes, "bad_crc.npz"), attn::Error);
    // The other members are intact.
    check_tensor<double>(attn::io::decode_npz_member(bytes, "f64", "bad_crc.npz"), {3}, {0.1, -1e300, 2.5});
}

TEST_CASE("npz: zip bomb declaring 100 GB is refused before inflating") {
    const std::string message =
        error_of([] { attn::io::decode_npz_member(fixture("bomb_claim.npz"), "x", "bomb_claim.npz"); });
    CHECK(contains(message, "bomb_claim.npz: member 'x.npy' declares 100000000128 bytes uncompressed"));
    CHECK(contains(message, "1032:1"));
}

TEST_CASE("npz: member whose declared size disagrees with its npy header is refused") {
    const std::string message =
        error_of([] { attn::io::decode_npz_member(fixture("bomb_size_mismatch.npz"), "x", "bomb_size_mismatch.npz"); });
    CHECK(contains(message, "member 'x.npy' declares 200000 bytes uncompressed"));
    CHECK(contains(message, "(4,)"));
    CHECK(contains(message, "implies 144"));
}

TEST_CASE("npz: member that inflates to less than it declares is refused") {
    const std::string message = error_of([] { attn::io::decode_npz(fixture("short_member.npz"), "short_member.npz"); });
    CHECK(contains(message, "member 'x.npy' ends after 1128 bytes"));
    CHECK(contains(message, "declares 4128"));
}

TEST_CASE("npz: member that is not an .npy file is refused") {
    const std::string bytes = fixture("not_npy.npz");
    CHECK(attn::io::npz_member_names(bytes, "not_npy.npz") == std::vector<std::string>{"a", "notes.txt"});
    check_tensor<std::int16_t>(attn::io::decode_npz_member(bytes, "a", "not_npy.npz"), {2}, {1, 2});

    const std::string message = error_of([&] { attn::io::decode_npz_member(bytes, "notes.txt", "not_npy.npz"); });
    CHECK(contains(message, "not_npy.npz:notes.txt"));
    CHECK(contains(message, "not an npy file"));
    CHECK(contains(error_of([&] { attn::io::decode_npz(bytes, "not_npy.npz"); }), "not an npy file"));
}
