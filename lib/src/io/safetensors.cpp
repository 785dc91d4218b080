// .safetensors reading and writing (docs/formats.md, ".safetensors").
//
// The reader checks the header the way the reference reader (huggingface/safetensors)
// does before it touches the buffer: the header fits in the file and under 100 MB, is a
// JSON object without duplicate keys, and its entries tile the buffer exactly, each entry
// spanning the bytes its dtype and shape need. Every allocation is therefore bounded by
// the file size.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "attn/error.hpp"
#include "attn/io.hpp"
#include "common/text.hpp"
#include "io/element_decode.hpp"
#include "io/format_error.hpp"

namespace attn::io {
namespace {

using detail::checked_add;
using detail::checked_mul;
using detail::ElementEncoding;
using detail::throw_format_error;
using Json = nlohmann::ordered_json;  // keeps header order, so equal offsets keep it too

constexpr std::size_t kLengthBytes = 8;
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;  // the reference reader's MAX_HEADER_SIZE
constexpr std::string_view kMetadataKey = "__metadata__";

struct SafetensorsDType {
    std::string_view name;
    ElementEncoding encoding;
};

constexpr ElementEncoding plain(DType dtype, std::size_t item_size) { return ElementEncoding{dtype, item_size, false}; }

// Every DType under its own name (F16 and BF16 included).
#define ATTN_SAFETENSORS_DTYPE(enumerator, type, name, npy_kind, safetensors_name) \
    {safetensors_name, plain(DType::enumerator, sizeof(type))},
const SafetensorsDType kDTypes[] = {
    ATTN_DTYPES(ATTN_SAFETENSORS_DTYPE)  // BOOL, I8, ..., F64, F16, BF16
};
#undef ATTN_SAFETENSORS_DTYPE

const SafetensorsDType* find_dtype(std::string_view name) {
    for (const auto& d : kDTypes) {
        if (d.name == name) return &d;
    }
    return nullptr;
}

std::string_view dtype_file_name(DType dtype) {
    for (const auto& d : kDTypes) {
        if (d.encoding.dtype == dtype) return d.name;
    }
    return "F32";  // unreachable: every DType has an entry
}

std::string supported_dtypes() {
    std::string out;
    for (const auto& d : kDTypes) {
        if (!out.empty()) out += ", ";
        out += d.name;
    }
    return out;
}

std::string offsets_text(std::uint64_t begin, std::uint64_t end) {
    return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

struct Entry {
    std::string name;
    const SafetensorsDType* dtype = nullptr;
    Shape shape;
    std::uint64_t begin = 0;
    std::uint64_t end = 0;
};

// nlohmann keeps the last of duplicate keys silently; this callback sees every key first.
class DuplicateKeyCheck {
public:
    explicit DuplicateKeyCheck(const std::string& name) : name_(name) {}

    bool operator()(int depth, Json::parse_event_t event, Json& parsed) {
        switch (event) {
            case Json::parse_event_t::object_start: keys_.emplace_back(); break;
            case Json::parse_event_t::object_end:
                if (!keys_.empty()) keys_.pop_back();
                break;
            case Json::parse_event_t::key: {
                const std::string& key = parsed.get_ref<const std::string&>();
                if (depth == 1) entry_ = key;
                if (!keys_.empty() && !keys_.back().insert(key).second) {
                    if (depth == 1) throw_format_error(name_, "header names " + detail::quoted(key) + " twice");
                    throw_format_error(name_, "header entry " + detail::quoted(entry_) + " has the key " +
                                                  detail::quoted(key) + " twice");
                }
                break;
            }
            default: break;
        }
        return true;
    }

private:
    const std::string& name_;
    std::vector<std::unordered_set<std::string>> keys_;
    std::string entry_;
};

std::string json_type(const Json& j) {
    if (j.is_number_unsigned()) return "an unsigned integer";
    if (j.is_number_integer()) return "a negative integer";
    if (j.is_number_float()) return "a float";
    const std::string type = j.type_name();
    return (type == "array" || type == "object" ? "an " : "a ") + type;
}

std::uint64_t read_offset(const Json& j, const std::string& name, const std::string& what) {
    if (!j.is_number_unsigned()) {
        throw_format_error(name, what + " is " + json_type(j) + ", expected a non-negative integer");
    }
    return j.get<std::uint64_t>();
}

Entry parse_entry(const std::string& tensor, const Json& value, const std::string& name) {
    const std::string subject = "tensor " + detail::quoted(tensor);
    if (!value.is_object()) {
        throw_format_error(name, subject + ": header entry is " + json_type(value) +
                                     ", expected an object with dtype, shape and data_offsets");
    }
    for (const auto& item : value.items()) {
        if (item.key() != "dtype" && item.key() != "shape" && item.key() != "data_offsets") {
            throw_format_error(name, subject + ": unexpected key " + detail::quoted(item.key()) +
                                         " (expected dtype, shape, data_offsets)");
        }
    }
    for (const char* key : {"dtype", "shape", "data_offsets"}) {
        if (!value.contains(key)) throw_format_error(name, subject + ": missing key " + detail::quoted(key));
    }

    Entry entry;
    entry.name = tensor;
    const Json& dtype = value["dtype"];
    if (!dtype.is_string()) {
        throw_format_error(name, subject + ": dtype is " + json_type(dtype) + ", expected a string");
    }
    entry.dtype = find_dtype(dtype.get_ref<const std::string&>());
    if (entry.dtype == nullptr) {
        throw_format_error(name, subject + ": unsupported dtype " +
                                     detail::quoted(dtype.get_ref<const std::string&>()) +
                                     " (supported: " + supported_dtypes() + ")");
    }

    const Json& shape = value["shape"];
    if (!shape.is_array()) throw_format_error(name, subject + ": shape is " + json_type(shape) + ", expected an array");
    for (std::size_t i = 0; i < shape.size(); ++i) {
        entry.shape.push_back(read_offset(shape[i], name, subject + ": shape[" + std::to_string(i) + "]"));
    }

    const Json& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2) {
        throw_format_error(
            name, subject + ": data_offsets is " +
                      (offsets.is_array() ? "an array of " + std::to_string(offsets.size()) : json_type(offsets)) +
                      ", expected [begin, end]");
    }
    entry.begin = read_offset(offsets[0], name, subject + ": data_offsets[0]");
    entry.end = read_offset(offsets[1], name, subject + ": data_offsets[1]");
    if (entry.end < entry.begin) {
        throw_format_error(
            name, subject + ": data_offsets " + offsets_text(entry.begin, entry.end) + " end before they begin");
    }

    std::size_t count = 1;
    for (std::size_t d : entry.shape) count = checked_mul(count, d, name);
    const std::size_t needed = checked_mul(count, entry.dtype->encoding.item_size, name);
    if (entry.end - entry.begin != needed) {
        throw_format_error(name, subject + ": data_offsets " + offsets_text(entry.begin, entry.end) + " span " +
                                     std::to_string(entry.end - entry.begin) + " bytes, shape " +
                                     shape_to_string(entry.shape) + " " + std::string(entry.dtype->name) + " needs " +
                                     std::to_string(needed));
    }
    return entry;
}

void check_metadata(const Json& metadata, const std::string& name) {
    if (metadata.is_null()) return;
    if (!metadata.is_object()) {
        throw_format_error(name, "__metadata__ is " + json_type(metadata) + ", expected an object of strings");
    }
    for (const auto& item : metadata.items()) {
        if (!item.value().is_string()) {
            throw_format_error(name, "__metadata__ value of " + detail::quoted(item.key()) + " is " +
                                         json_type(item.value()) + ", expected a string");
        }
    }
}

// A validated file: the entries in ascending offset order and where the buffer starts.
struct Layout {
    std::vector<Entry> entries;
    std::size_t buffer_start = 0;
};

// The header's JSON text, after its 8-byte length, checked to fit in the file and the cap.
std::string_view header_text(std::string_view bytes, const std::string& name) {
    if (bytes.size() < kLengthBytes) {
        throw_format_error(name, "file is " + std::to_string(bytes.size()) +
                                     " bytes, too short for the 8-byte header length of a .safetensors file");
    }
    const std::uint64_t header_length = detail::load_le(bytes.data(), kLengthBytes);
    if (header_length > kMaxHeaderBytes) {
        throw_format_error(name, "header length " + std::to_string(header_length) + " is over the limit of " +
                                     std::to_string(kMaxHeaderBytes) + " bytes");
    }
    if (header_length > bytes.size() - kLengthBytes) {
        throw_format_error(name, "header length " + std::to_string(header_length) + " runs past the end of the file (" +
                                     std::to_string(bytes.size()) + " bytes)");
    }
    return bytes.substr(kLengthBytes, header_length);
}

// The header parsed: a JSON object without duplicate keys, starting with '{'.
Json parse_header(std::string_view text, const std::string& name) {
    Json header;
    try {
        header = Json::parse(text, DuplicateKeyCheck(name));
    } catch (const Json::exception& e) {  // parse_error, or out_of_range for a number past double's (1e400)
        std::string_view what = e.what();
        const std::size_t tag_end = what.find("] ");  // drop nlohmann's "[json.exception...] "
        if (tag_end != std::string_view::npos) what.remove_prefix(tag_end + 2);
        throw_format_error(name, "header is not valid JSON: " + detail::printable(what, 512));
    }
    if (!header.is_object()) throw_format_error(name, "header is " + json_type(header) + ", expected a JSON object");
    // The reference reader wants '{' first (no BOM or leading space).
    if (text.front() != '{') {  // not empty: it parsed as an object
        throw_format_error(name, "header starts with byte " + std::to_string(static_cast<unsigned char>(text.front())) +
                                     ", expected '{'");
    }
    return header;
}

// The header's tensor entries, checked one by one, in ascending offset order (a stable
// sort: entries with equal offsets, all empty, keep the header's order).
std::vector<Entry> sorted_entries(const Json& header, const std::string& name) {
    std::vector<Entry> entries;
    for (const auto& item : header.items()) {
        if (item.key() == kMetadataKey) {
            check_metadata(item.value(), name);
        } else {
            entries.push_back(parse_entry(item.key(), item.value(), name));
        }
    }
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    return entries;
}

// The entries must tile the buffer: each begins where the one before ends. Returns where
// the last one ends.
std::uint64_t tiled_end(const std::vector<Entry>& entries, const std::string& name) {
    std::uint64_t expected = 0;
    const Entry* previous = nullptr;
    for (const Entry& entry : entries) {
        const std::string subject =
            "tensor " + detail::quoted(entry.name) + ": data_offsets " + offsets_text(entry.begin, entry.end);
        if (entry.begin < expected) {
            throw_format_error(name, subject + " overlap tensor " + detail::quoted(previous->name) + " " +
                                         offsets_text(previous->begin, previous->end));
        }
        if (entry.begin > expected) {
            throw_format_error(name, subject + " leave a gap: expected begin " + std::to_string(expected) +
                                         (previous ? " where tensor " + detail::quoted(previous->name) + " ends"
                                                   : " (the buffer starts with the first tensor)"));
        }
        expected = entry.end;
        previous = &entry;
    }
    return expected;
}

// The buffer after the header must be exactly what the entries tile: no trailing bytes,
// none missing.
void check_buffer_size(std::uint64_t data_end, std::size_t buffer_start, std::size_t file_size,
                       const std::string& name) {
    const std::uint64_t buffer_size = file_size - buffer_start;
    if (data_end == buffer_size) return;
    const std::uint64_t file_needs = checked_add(buffer_start, data_end, name);
    if (data_end < buffer_size) {
        throw_format_error(name, "file is " + std::to_string(file_size) + " bytes but header and data end at " +
                                     std::to_string(file_needs) + " (" + std::to_string(buffer_size - data_end) +
                                     " trailing bytes)");
    }
    throw_format_error(name, "file is " + std::to_string(file_size) + " bytes but its data_offsets need " +
                                 std::to_string(file_needs) + " (truncated)");
}

Layout parse_layout(std::string_view bytes, const std::string& name) {
    const std::string_view text = header_text(bytes, name);
    Layout layout;
    layout.buffer_start = kLengthBytes + text.size();
    layout.entries = sorted_entries(parse_header(text, name), name);
    check_buffer_size(tiled_end(layout.entries, name), layout.buffer_start, bytes.size(), name);
    return layout;
}

Tensor decode_entry(std::string_view bytes, const Layout& layout, const Entry& entry, const std::string& name) {
    return detail::decode_elements(entry.dtype->encoding, entry.shape, bytes.data() + layout.buffer_start + entry.begin,
                                   name + ":" + entry.name);
}

std::vector<std::string> entry_names(const Layout& layout) {
    std::vector<std::string> out;
    out.reserve(layout.entries.size());
    for (const auto& e : layout.entries) out.push_back(e.name);
    return out;
}

}  // namespace

std::vector<std::string> safetensors_names(std::string_view bytes, const std::string& name) {
    return entry_names(parse_layout(bytes, name));
}

Tensor decode_safetensors_member(std::string_view bytes, std::string_view member, const std::string& name) {
    const Layout layout = parse_layout(bytes, name);
    for (const auto& entry : layout.entries) {
        if (entry.name == member) return decode_entry(bytes, layout, entry, name);
    }
    if (layout.entries.empty()) {
        throw_format_error(name, "no tensor " + detail::quoted(member) + ": the file holds none");
    }
    throw_format_error(name,
                       "no tensor " + detail::quoted(member) + "; tensors: " + detail::join_names(entry_names(layout)));
}

NamedTensors decode_safetensors(std::string_view bytes, const std::string& name) {
    const Layout layout = parse_layout(bytes, name);
    NamedTensors out;
    out.reserve(layout.entries.size());
    for (const auto& entry : layout.entries) out.emplace_back(entry.name, decode_entry(bytes, layout, entry, name));
    return out;
}

// The tensors are laid out in the order given, so reading the file back gives that order.
void encode_safetensors(const NamedTensors& tensors, ByteSink& sink) {
    Json header = Json::object();
    std::unordered_set<std::string> seen;
    std::uint64_t offset = 0;
    for (const auto& [tensor_name, tensor] : tensors) {
        const std::string subject = "tensor " + detail::quoted(tensor_name);
        if (tensor_name == kMetadataKey) {
            throw Error(ErrorKind::Usage, subject, "is a reserved name in .safetensors");
        }
        if (!seen.insert(tensor_name).second) {
            throw Error(ErrorKind::Usage, subject, "appears twice; .safetensors needs distinct names");
        }
        const std::uint64_t end = offset + tensor.nbytes();
        header[tensor_name] = Json{{"dtype", std::string(dtype_file_name(tensor.dtype()))},
                                   {"shape", tensor.shape()},
                                   {"data_offsets", {offset, end}}};
        offset = end;
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const Json::type_error&) {
        throw Error(ErrorKind::Usage, "", "a tensor name is not valid UTF-8, which .safetensors requires");
    }
    // Padding to 8 bytes keeps the buffer aligned for readers that map the file.
    text.append((kLengthBytes - text.size() % kLengthBytes) % kLengthBytes, ' ');

    char length[kLengthBytes];
    detail::store_le(length, text.size(), kLengthBytes);
    sink.write(length, kLengthBytes);
    sink.write(text);
    // The library assumes a little-endian host (as decode_elements does): the element
    // bytes in memory are already the file's.
    for (const auto& entry : tensors) {
        // An empty tensor's data pointer may be null, which no write may be given.
        if (entry.second.nbytes() > 0) sink.write(static_cast<const char*>(entry.second.data()), entry.second.nbytes());
    }
}

}  // namespace attn::io
