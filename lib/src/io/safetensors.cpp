// .safetensors reading and writing (docs/formats.md, ".safetensors").
//
// The reader checks the header the way the reference reader (huggingface/safetensors)
// does before it touches the buffer: the header fits in the file and under 100 MB, is a
// JSON object without duplicate keys, and its entries tile the buffer exactly, each entry
// spanning the bytes its dtype and shape need. Every allocation is therefore bounded by
// the file size.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "attn/error.hpp"
#include "attn/io.hpp"
#include "common/text.hpp"
#include "io/element_decode.hpp"
#include "io/format_error.hpp"
#include "io/safetensors_header.hpp"

namespace attn::io {
namespace {

using detail::checked_add;
using detail::checked_mul;
using detail::ElementEncoding;
using detail::throw_format_error;
using Json = nlohmann::ordered_json;  // the writer's header keeps the tensors' order

constexpr std::size_t kLengthBytes = 8;
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

// A JSON value of the header as far as the checks need it: its type in words, and the
// text of a string or the value of an unsigned integer.
struct Scalar {
    std::string type;  // "an unsigned integer", "a negative integer", "a float", "a string", "an array", ...
    std::string text;
    std::uint64_t number = 0;
};

// One key of a tensor entry: its value, and for an array its element count and first
// elements (as many as the checks read).
struct Field {
    bool present = false;
    Scalar value;
    std::size_t count = 0;
    std::vector<Scalar> items;
};

// One top-level key of the header as the SAX pass saw it.
struct RawEntry {
    std::string name;
    Scalar value;
    // A tensor entry: the first key not expected, and the three expected ones.
    std::optional<std::string> unexpected;
    Field dtype, shape, offsets;
    // __metadata__: its first value that is not a string (key, type).
    std::optional<std::pair<std::string, std::string>> bad_metadata;
};

// Deepest nesting of objects and arrays a header may have: an entry's arrays are at
// depth 3; the cap keeps a "[[[[..." header from costing more than a short scan.
constexpr std::size_t kMaxHeaderDepth = 64;

// The keys of one JSON object, to find a repeat: their bytes in one arena and an
// open-addressing table of 16-byte slots, so no allocation per key (a node-based
// std::unordered_set spent most of the scan allocating and chasing nodes).
class KeySet {
public:
    // False when `key` is already in the set.
    bool insert(std::string_view key) {
        if ((count_ + 1) * 4 > slots_.size() * 3) rehash(std::max<std::size_t>(16, slots_.size() * 2));
        const std::uint64_t hash = std::hash<std::string_view>()(key);
        for (std::size_t i = hash & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
            Slot& slot = slots_[i];
            if (slot.length == kEmpty) {
                // Offsets and lengths fit in 32 bits: the header is at most 100 MB.
                slot = Slot{hash, static_cast<std::uint32_t>(arena_.size()), static_cast<std::uint32_t>(key.size())};
                arena_.append(key);
                ++count_;
                return true;
            }
            if (slot.hash == hash && std::string_view(arena_).substr(slot.offset, slot.length) == key) return false;
        }
    }

private:
    static constexpr std::uint32_t kEmpty = UINT32_MAX;
    struct Slot {
        std::uint64_t hash = 0;
        std::uint32_t offset = 0;
        std::uint32_t length = kEmpty;
    };

    void rehash(std::size_t size) {
        std::vector<Slot> old(size);
        old.swap(slots_);
        for (const Slot& slot : old) {
            if (slot.length == kEmpty) continue;
            std::size_t i = slot.hash & (slots_.size() - 1);
            while (slots_[i].length != kEmpty) i = (i + 1) & (slots_.size() - 1);
            slots_[i] = slot;
        }
    }

    std::vector<Slot> slots_;
    std::string arena_;
    std::size_t count_ = 0;
};

// A SAX handler that keeps of the header only what the checks read: per top-level key,
// the types and the few values above; every other value is checked and dropped. A key
// repeated in any object is an error (nlohmann's DOM would keep the last). Time and
// memory are linear in the header's size (nlohmann's ordered_json DOM was quadratic in
// the key count, and ~40x the header in memory).
class HeaderScan {
public:
    explicit HeaderScan(const std::string& name) : name_(name) {}

    bool null() { return scalar({"a null", "", 0}); }
    bool boolean(bool) { return scalar({"a boolean", "", 0}); }
    bool number_integer(Json::number_integer_t) { return scalar({"a negative integer", "", 0}); }
    bool number_unsigned(Json::number_unsigned_t value) { return scalar({"an unsigned integer", "", value}); }
    bool number_float(Json::number_float_t, const Json::string_t&) { return scalar({"a float", "", 0}); }
    bool string(Json::string_t& value) {
        // Only a tensor's dtype is kept: other strings (metadata values) are dropped unread.
        const bool dtype = !frames_.empty() && frames_.back().role == Role::Entry && frames_.back().key == "dtype";
        return scalar({"a string", dtype ? std::move(value) : std::string(), 0});
    }
    bool binary(Json::binary_t&) { return scalar({"binary", "", 0}); }  // never from JSON text
    bool start_object(std::size_t) { return open(true); }
    bool start_array(std::size_t) { return open(false); }
    bool end_object() { return close(); }
    bool end_array() { return close(); }

    bool key(Json::string_t& key) {
        Frame& frame = frames_.back();
        if (frames_.size() == 1) entry_ = key;
        if (!frame.keys.insert(key)) {
            if (frames_.size() == 1) throw_format_error(name_, "header names " + detail::quoted(key) + " twice");
            throw_format_error(
                name_, "header entry " + detail::quoted(entry_) + " has the key " + detail::quoted(key) + " twice");
        }
        if (frame.role == Role::Entry && key != "dtype" && key != "shape" && key != "data_offsets" &&
            !entries_.back().unexpected) {
            entries_.back().unexpected = key;
        }
        frame.key = std::move(key);
        return true;
    }

    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
        // A syntax error, or out_of_range for a number past double's (1e400).
        std::string_view what = e.what();
        const std::size_t tag_end = what.find("] ");  // drop nlohmann's "[json.exception...] "
        if (tag_end != std::string_view::npos) what.remove_prefix(tag_end + 2);
        throw_format_error(name_, "header is not valid JSON: " + detail::printable(what, 512));
    }

    const std::string& top_type() const { return top_type_; }
    const std::vector<RawEntry>& entries() const { return entries_; }

private:
    enum class Role { Top, Entry, Metadata, Shape, Offsets, Other };
    struct Frame {
        Role role;
        KeySet keys;      // an object's keys so far
        std::string key;  // an object's current key
    };

    // Records a value (a scalar, or an object or array being opened) where it stands;
    // returns the role of its contents when it is a container.
    Role place(Scalar value) {
        if (frames_.empty()) {
            top_type_ = value.type;
            return value.type == "an object" ? Role::Top : Role::Other;
        }
        Frame& parent = frames_.back();
        switch (parent.role) {
            case Role::Top: {
                const bool object = value.type == "an object";
                RawEntry entry;
                entry.name = parent.key;
                entry.value = std::move(value);
                entries_.push_back(std::move(entry));
                if (!object) return Role::Other;
                return parent.key == kMetadataKey ? Role::Metadata : Role::Entry;
            }
            case Role::Entry: {
                RawEntry& entry = entries_.back();
                Field* field = parent.key == "dtype"          ? &entry.dtype
                               : parent.key == "shape"        ? &entry.shape
                               : parent.key == "data_offsets" ? &entry.offsets
                                                              : nullptr;
                if (field == nullptr) return Role::Other;
                const bool array = value.type == "an array";
                field->present = true;
                field->value = std::move(value);
                if (!array || field == &entry.dtype) return Role::Other;
                return field == &entry.shape ? Role::Shape : Role::Offsets;
            }
            case Role::Metadata:
                if (value.type != "a string" && !entries_.back().bad_metadata) {
                    entries_.back().bad_metadata = std::make_pair(parent.key, value.type);
                }
                return Role::Other;
            case Role::Shape:
            case Role::Offsets: {
                Field& field = parent.role == Role::Shape ? entries_.back().shape : entries_.back().offsets;
                // The shape's elements up to one past the rank cap; the offsets' first three.
                const std::size_t kept = parent.role == Role::Shape ? kMaxRank + 1 : 3;
                ++field.count;
                if (field.items.size() < kept) field.items.push_back(std::move(value));
                return Role::Other;
            }
            case Role::Other: break;
        }
        return Role::Other;
    }

    bool scalar(Scalar value) {
        place(std::move(value));
        return true;
    }

    bool open(bool object) {
        if (frames_.size() == kMaxHeaderDepth) {
            throw_format_error(name_, "header is nested deeper than " + std::to_string(kMaxHeaderDepth) + " levels");
        }
        const Role role = place({object ? "an object" : "an array", "", 0});
        frames_.push_back(Frame{role, {}, {}});
        return true;
    }

    bool close() {
        frames_.pop_back();
        return true;
    }

    const std::string& name_;
    std::vector<Frame> frames_;
    std::vector<RawEntry> entries_;
    std::string top_type_;
    std::string entry_;  // the last top-level key, which errors in nested objects name
};

std::uint64_t read_offset(const Scalar& value, const std::string& name, const std::string& what) {
    if (value.type != "an unsigned integer") {
        throw_format_error(name, what + " is " + value.type + ", expected a non-negative integer");
    }
    return value.number;
}

Entry parse_entry(const RawEntry& raw, const std::string& name) {
    const std::string subject = "tensor " + detail::quoted(raw.name);
    if (raw.value.type != "an object") {
        throw_format_error(name, subject + ": header entry is " + raw.value.type +
                                     ", expected an object with dtype, shape and data_offsets");
    }
    if (raw.unexpected) {
        throw_format_error(name, subject + ": unexpected key " + detail::quoted(*raw.unexpected) +
                                     " (expected dtype, shape, data_offsets)");
    }
    for (const auto& [field, key] :
         {std::pair{&raw.dtype, "dtype"}, {&raw.shape, "shape"}, {&raw.offsets, "data_offsets"}}) {
        if (!field->present) throw_format_error(name, subject + ": missing key " + detail::quoted(key));
    }

    Entry entry;
    entry.name = raw.name;
    const Scalar& dtype = raw.dtype.value;
    if (dtype.type != "a string") {
        throw_format_error(name, subject + ": dtype is " + dtype.type + ", expected a string");
    }
    entry.dtype = find_dtype(dtype.text);
    if (entry.dtype == nullptr) {
        throw_format_error(name, subject + ": unsupported dtype " + detail::quoted(dtype.text) +
                                     " (supported: " + supported_dtypes() + ")");
    }

    const Field& shape = raw.shape;
    if (shape.value.type != "an array") {
        throw_format_error(name, subject + ": shape is " + shape.value.type + ", expected an array");
    }
    detail::check_rank(shape.count, ErrorKind::Format, name, subject + ": shape");
    for (std::size_t i = 0; i < shape.items.size(); ++i) {
        entry.shape.push_back(read_offset(shape.items[i], name, subject + ": shape[" + std::to_string(i) + "]"));
    }

    const Field& offsets = raw.offsets;
    if (offsets.value.type != "an array" || offsets.count != 2) {
        throw_format_error(name, subject + ": data_offsets is " +
                                     (offsets.value.type == "an array" ? "an array of " + std::to_string(offsets.count)
                                                                       : offsets.value.type) +
                                     ", expected [begin, end]");
    }
    entry.begin = read_offset(offsets.items[0], name, subject + ": data_offsets[0]");
    entry.end = read_offset(offsets.items[1], name, subject + ": data_offsets[1]");
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

void check_metadata(const RawEntry& metadata, const std::string& name) {
    if (metadata.value.type == "a null") return;
    if (metadata.value.type != "an object") {
        throw_format_error(name, "__metadata__ is " + metadata.value.type + ", expected an object of strings");
    }
    if (metadata.bad_metadata) {
        throw_format_error(name, "__metadata__ value of " + detail::quoted(metadata.bad_metadata->first) + " is " +
                                     metadata.bad_metadata->second + ", expected a string");
    }
}

// A validated file: the entries in ascending offset order and where the buffer starts.
struct Layout {
    std::vector<Entry> entries;
    std::size_t buffer_start = 0;
};

}  // namespace
}  // namespace attn::io

namespace attn::detail {

std::uint64_t safetensors_header_length(std::string_view bytes, const std::string& name) {
    const std::uint64_t header_length = load_le(bytes.data(), 8);
    if (header_length > kSafetensorsMaxHeaderBytes) {
        throw_format_error(name, "header length " + std::to_string(header_length) + " is over the limit of " +
                                     std::to_string(kSafetensorsMaxHeaderBytes) + " bytes");
    }
    return header_length;
}

}  // namespace attn::detail

namespace attn::io {
namespace {

// The header's JSON text, after its 8-byte length, checked to fit in the file and the cap.
std::string_view header_text(std::string_view bytes, const std::string& name) {
    if (bytes.size() < kLengthBytes) {
        throw_format_error(name, "file is " + std::to_string(bytes.size()) +
                                     " bytes, too short for the 8-byte header length of a .safetensors file");
    }
    const std::uint64_t header_length = detail::safetensors_header_length(bytes, name);
    if (header_length > bytes.size() - kLengthBytes) {
        throw_format_error(name, "header length " + std::to_string(header_length) + " runs past the end of the file (" +
                                     std::to_string(bytes.size()) + " bytes)");
    }
    return bytes.substr(kLengthBytes, header_length);
}

// The header's tensor entries, checked one by one in header order (a key repeated
// anywhere has already been an error), then sorted in ascending offset order (a stable
// sort: entries with equal offsets, all empty, keep the header's order).
std::vector<Entry> sorted_entries(std::string_view text, const std::string& name) {
    HeaderScan scan(name);
    Json::sax_parse(text, &scan);
    if (scan.top_type() != "an object") {
        throw_format_error(name, "header is " + scan.top_type() + ", expected a JSON object");
    }
    // The reference reader wants '{' first (no BOM or leading space).
    if (text.front() != '{') {  // not empty: it parsed as an object
        throw_format_error(name, "header starts with byte " + std::to_string(static_cast<unsigned char>(text.front())) +
                                     ", expected '{'");
    }
    std::vector<Entry> entries;
    for (const RawEntry& raw : scan.entries()) {
        if (raw.name == kMetadataKey) {
            check_metadata(raw, name);
        } else {
            entries.push_back(parse_entry(raw, name));
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
    layout.entries = sorted_entries(text, name);
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
        detail::check_rank(tensor.rank(), ErrorKind::Value, subject, "its shape");
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

namespace attn::detail {

std::uint64_t safetensors_data_size(std::string_view header_text, const std::string& name) {
    return io::tiled_end(io::sorted_entries(header_text, name), name);
}

}  // namespace attn::detail
