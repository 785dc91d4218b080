// libFuzzer harness: the .safetensors reader (decode_safetensors, safetensors_names,
// decode_safetensors_member).
//
// The three entry points must agree (as for .npz), and what decode_safetensors accepts,
// encode_safetensors writes back and decode_safetensors reads again unchanged.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "attn/io.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace attn;
    const std::string_view bytes = fuzz::as_text(data, size);
    const std::string name = "fuzz.safetensors";

    std::vector<std::string> names;
    const bool listed = fuzz::attempt([&] { names = io::safetensors_names(bytes, name); });
    io::NamedTensors tensors;
    const bool decoded = fuzz::attempt([&] { tensors = io::decode_safetensors(bytes, name); });
    ATTN_FUZZ_CHECK(listed || !decoded);  // decoding needs a valid header
    if (!decoded) return 0;
    ATTN_FUZZ_CHECK(tensors.size() == names.size());
    constexpr std::size_t kMembersTried = 4;
    for (std::size_t i = 0; i < names.size(); ++i) {
        ATTN_FUZZ_CHECK(tensors[i].first == names[i]);
        ATTN_FUZZ_CHECK(fuzz::consistent(tensors[i].second));
        if (i < kMembersTried) {
            Tensor member;
            ATTN_FUZZ_CHECK(fuzz::attempt([&] { member = io::decode_safetensors_member(bytes, names[i], name); }));
            ATTN_FUZZ_CHECK(fuzz::same_tensor(member, tensors[i].second));
        }
    }
    ATTN_FUZZ_CHECK(!fuzz::attempt([&] { io::decode_safetensors_member(bytes, "\x01no such tensor\x02", name); }));

    io::StringSink sink;
    io::NamedTensors again;
    ATTN_FUZZ_CHECK(fuzz::attempt([&] { io::encode_safetensors(tensors, sink); }));
    ATTN_FUZZ_CHECK(fuzz::attempt([&] { again = io::decode_safetensors(sink.bytes(), "again.safetensors"); }));
    ATTN_FUZZ_CHECK(fuzz::same_tensors(tensors, again));
    return 0;
}
