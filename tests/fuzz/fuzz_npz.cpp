// libFuzzer harness: the .npz reader (decode_npz, npz_member_names, decode_npz_member).
//
// The three entry points must agree: decode_npz gives the members npz_member_names
// lists, in order, each equal to what decode_npz_member reads by that name; a name that
// is not there is an attn::Error. What decode_npz accepts, encode_npz writes back and
// decode_npz reads again to the same names and tensors.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "attn/io.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace attn;
    const std::string_view bytes = fuzz::as_text(data, size);
    const std::string name = "fuzz.npz";

    std::vector<std::string> names;
    const bool listed = fuzz::attempt([&] { names = io::npz_member_names(bytes, name); });
    io::NamedTensors tensors;
    const bool decoded = fuzz::attempt([&] { tensors = io::decode_npz(bytes, name); });
    if (!listed) {
        ATTN_FUZZ_CHECK(!decoded);  // decoding needs the listing
        return 0;
    }

    // Each member by its name: a few of them, so that a big archive stays fast.
    constexpr std::size_t kMembersTried = 4;
    bool every_member_decodes = true;
    for (std::size_t i = 0; i < names.size() && i < kMembersTried; ++i) {
        Tensor member;
        if (fuzz::attempt([&] { member = io::decode_npz_member(bytes, names[i], name); })) {
            ATTN_FUZZ_CHECK(fuzz::consistent(member));
            if (decoded) ATTN_FUZZ_CHECK(fuzz::same_tensor(member, tensors[i].second));
        } else {
            every_member_decodes = false;
        }
    }
    ATTN_FUZZ_CHECK(!fuzz::attempt([&] { io::decode_npz_member(bytes, "\x01no such member\x02", name); }));
    if (!decoded) {
        // Some member is bad; if those tried were all fine there are more than were tried.
        ATTN_FUZZ_CHECK(!every_member_decodes || names.size() > kMembersTried);
        return 0;
    }
    ATTN_FUZZ_CHECK(every_member_decodes);
    ATTN_FUZZ_CHECK(tensors.size() == names.size());
    for (std::size_t i = 0; i < names.size(); ++i) ATTN_FUZZ_CHECK(tensors[i].first == names[i]);

    io::StringSink sink;
    io::encode_npz(tensors, sink);
    io::NamedTensors again;
    ATTN_FUZZ_CHECK(fuzz::attempt([&] { again = io::decode_npz(sink.bytes(), "again.npz"); }));
    ATTN_FUZZ_CHECK(fuzz::same_tensors(tensors, again));
    return 0;
}
