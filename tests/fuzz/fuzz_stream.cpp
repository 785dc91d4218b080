// libFuzzer harness: the stream reader of standard input and pipes (read_tensor_stream).
//
// The first input byte sets the size of the pieces the source hands out (1 to 16 bytes),
// the rest is the stream. Read in those pieces or all at once, the stream gives the same
// result; what it accepts as an .npy is what decode_npy accepts from the same bytes; and
// an accepted .npy or .safetensors stream followed by endless zeros is refused after at
// most one byte past its end (the one-byte probe), never read further.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "attn/io.hpp"
#include "fuzz_support.hpp"

namespace {

// The bytes in pieces of at most `piece`, then (when `endless`) zeros without end.
class PieceSource final : public attn::io::ByteSource {
public:
    PieceSource(std::string_view bytes, std::size_t piece, bool endless)
        : bytes_(bytes), piece_(piece), endless_(endless) {}
    std::size_t read(char* out, std::size_t size) override {
        const std::size_t n = std::min(size, piece_);
        const std::size_t from_bytes = std::min(n, bytes_.size() - std::min(bytes_.size(), consumed_));
        std::memcpy(out, bytes_.data() + consumed_, from_bytes);
        std::size_t given = from_bytes;
        if (from_bytes == 0 && endless_) {
            std::memset(out, 0, n);
            given = n;
        }
        consumed_ += given;
        return given;
    }
    std::size_t consumed() const { return consumed_; }

private:
    std::string_view bytes_;
    std::size_t piece_;
    bool endless_;
    std::size_t consumed_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace attn;
    if (size == 0) return 0;
    const std::size_t piece = 1 + data[0] % 16;
    const std::string_view bytes = fuzz::as_text(data + 1, size - 1);
    const std::string name = "<fuzz-stream>";

    PieceSource pieces(bytes, piece, false);
    Tensor tensor;
    const bool accepted = fuzz::attempt([&] { tensor = io::read_tensor_stream(pieces, name); });
    ATTN_FUZZ_CHECK(pieces.consumed() <= bytes.size());
    PieceSource whole(bytes, bytes.size() + 1, false);
    Tensor again;
    ATTN_FUZZ_CHECK(fuzz::attempt([&] { again = io::read_tensor_stream(whole, name); }) == accepted);
    if (accepted) {
        ATTN_FUZZ_CHECK(fuzz::consistent(tensor));
        ATTN_FUZZ_CHECK(fuzz::same_tensor(tensor, again));
    }

    const auto format = io::sniff_format(bytes);
    if (format == io::Format::Npy) {
        Tensor decoded;
        ATTN_FUZZ_CHECK(fuzz::attempt([&] { decoded = io::decode_npy(bytes, name); }) == accepted);
        if (accepted) ATTN_FUZZ_CHECK(fuzz::same_tensor(tensor, decoded));
    }
    if (accepted && (format == io::Format::Npy || format == io::Format::Safetensors)) {
        PieceSource endless(bytes, piece, true);
        ATTN_FUZZ_CHECK(!fuzz::attempt([&] { io::read_tensor_stream(endless, name); }));
        ATTN_FUZZ_CHECK(endless.consumed() <= bytes.size() + 1);
    }
    return 0;
}
