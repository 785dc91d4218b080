// Internal: the parts of the .safetensors reader that the stream reader of tensor_io.cpp
// needs to know how many bytes a .safetensors input promises.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace attn::detail {

// The reference reader's MAX_HEADER_SIZE: the longest header read.
constexpr std::uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// The header length held by the first 8 bytes (at least 8 given); throws ErrorKind::Format
// naming `name` when it is over kSafetensorsMaxHeaderBytes.
std::uint64_t safetensors_header_length(std::string_view bytes, const std::string& name);

// The size of the data buffer a header promises (where its last tensor ends), the header
// (its JSON text, after the 8 length bytes) checked as the reader checks it.
std::uint64_t safetensors_data_size(std::string_view header_text, const std::string& name);

}  // namespace attn::detail
