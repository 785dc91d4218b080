// libFuzzer harness: the .safetensors header alone (its JSON text, as the SAX scan of
// lib/src/io/safetensors.cpp reads it).
//
// The input is the header text. When the header is valid, a file made of it and the data
// size it promises must read (names and tensors agreeing, and round-tripping through
// encode_safetensors); when it is not, no file with that header reads.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "attn/io.hpp"
#include "fuzz_support.hpp"
#include "io/safetensors_header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace attn;
    const std::string_view text = fuzz::as_text(data, size);
    const std::string name = "fuzz.safetensors";

    std::uint64_t data_size = 0;
    const bool valid = fuzz::attempt([&] { data_size = detail::safetensors_data_size(text, name); });
    constexpr std::uint64_t kMostData = std::uint64_t(1) << 20;
    if (valid && data_size > kMostData) return 0;
    std::string file(8, '\0');
    for (std::size_t i = 0; i < 8; ++i) file[i] = static_cast<char>((text.size() >> (8 * i)) & 0xFF);
    file += text;
    for (std::uint64_t i = 0; i < data_size; ++i) file += static_cast<char>(i * 37 + 11);

    std::vector<std::string> names;
    ATTN_FUZZ_CHECK(fuzz::attempt([&] { names = io::safetensors_names(file, name); }) == valid);
    if (!valid) return 0;
    io::NamedTensors tensors;
    ATTN_FUZZ_CHECK(fuzz::attempt([&] { tensors = io::decode_safetensors(file, name); }));
    ATTN_FUZZ_CHECK(tensors.size() == names.size());
    for (std::size_t i = 0; i < names.size(); ++i) {
        ATTN_FUZZ_CHECK(tensors[i].first == names[i]);
        ATTN_FUZZ_CHECK(fuzz::consistent(tensors[i].second));
    }
    io::StringSink sink;
    io::NamedTensors again;
    ATTN_FUZZ_CHECK(fuzz::attempt([&] { io::encode_safetensors(tensors, sink); }));
    ATTN_FUZZ_CHECK(fuzz::attempt([&] { again = io::decode_safetensors(sink.bytes(), "again.safetensors"); }));
    ATTN_FUZZ_CHECK(fuzz::same_tensors(tensors, again));
    return 0;
}
