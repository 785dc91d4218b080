// libFuzzer harness: JSON tensors (decode_json) and JSON archives (decode_json_archive).
//
// What is read is written back (encode_json in the object layout, and in the nested
// layout when that keeps the dtype; encode_json_archive) and read again: the result must
// be the same dtype, shape and values, NaN equal to NaN.
#include <cstddef>
#include <cstdint>

#include "attn/io.hpp"
#include "fuzz_support.hpp"

namespace {

using namespace attn;

void check_round_trip(const Tensor& tensor) {
    ATTN_FUZZ_CHECK(fuzz::consistent(tensor));
    io::StringSink object;
    io::encode_json(tensor, object, io::JsonLayout::Object);
    Tensor again;
    ATTN_FUZZ_CHECK(fuzz::attempt([&] { again = io::decode_json(object.bytes(), "again.json"); }));
    ATTN_FUZZ_CHECK(fuzz::same_tensor(tensor, again));

    // Bare arrays read back as float32, or bool when every value is true/false: only
    // those dtypes survive the nested layout. Without elements neither does the shape:
    // (2, 0, 3) is [[], []], as numpy's tolist() gives, which reads back as (2, 0).
    const bool nested_keeps_tensor =
        (tensor.dtype() == DType::Float32 || tensor.dtype() == DType::Bool) && tensor.size() > 0;
    if (!nested_keeps_tensor) return;
    io::StringSink nested;
    // Refusing to write millions of empty arrays is an attn::Error.
    if (!fuzz::attempt([&] { io::encode_json(tensor, nested, io::JsonLayout::Nested); })) return;
    Tensor nested_again;
    ATTN_FUZZ_CHECK(fuzz::attempt([&] { nested_again = io::decode_json(nested.bytes(), "nested.json"); }));
    ATTN_FUZZ_CHECK(fuzz::same_tensor(tensor, nested_again));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text = fuzz::as_text(data, size);

    Tensor tensor;
    if (fuzz::attempt([&] { tensor = io::decode_json(text, "fuzz.json"); })) check_round_trip(tensor);

    io::NamedTensors tensors;
    if (fuzz::attempt([&] { tensors = io::decode_json_archive(text, "fuzz.json"); })) {
        for (const auto& entry : tensors) check_round_trip(entry.second);
        io::StringSink sink;
        io::encode_json_archive(tensors, sink);
        io::NamedTensors again;
        ATTN_FUZZ_CHECK(fuzz::attempt([&] { again = io::decode_json_archive(sink.bytes(), "again.json"); }));
        ATTN_FUZZ_CHECK(fuzz::same_tensors(tensors, again));
    }
    return 0;
}
