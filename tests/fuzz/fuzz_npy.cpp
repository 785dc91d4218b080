// libFuzzer harness: the .npy reader (attn::io::decode_npy).
//
// Whatever it accepts must be a consistent tensor that encode_npy writes back and
// decode_npy reads again to the same dtype, shape and bits.
#include <cstddef>
#include <cstdint>

#include "attn/io.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace attn;
    const std::string_view bytes = fuzz::as_text(data, size);
    Tensor tensor;
    if (!fuzz::attempt([&] { tensor = io::decode_npy(bytes, "fuzz.npy"); })) return 0;
    ATTN_FUZZ_CHECK(fuzz::consistent(tensor));

    io::StringSink sink;
    io::encode_npy(tensor, sink);
    ATTN_FUZZ_CHECK(sink.bytes().size() == io::npy_header(tensor.dtype(), tensor.shape()).size() + tensor.nbytes());
    Tensor again;
    ATTN_FUZZ_CHECK(fuzz::attempt([&] { again = io::decode_npy(sink.bytes(), "again.npy"); }));
    ATTN_FUZZ_CHECK(fuzz::same_tensor(tensor, again));
    return 0;
}
