// Dispatch between formats, whole-file reading and atomic writing of OUT arguments.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string_view>

#include "attn/io.hpp"
#include "common/text.hpp"
#include "io/json_numbers.hpp"
#include "io/npy_header.hpp"
#include "io/safetensors_header.hpp"

namespace attn::io {
namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// An open file descriptor, closed on scope exit. Errors name it as display_name does.
class InputFile {
public:
    // `what` says what the file should be, in errors: "a tensor file", "a labels file".
    explicit InputFile(const std::string& path, std::string_view what = "a tensor file") : path_(display_name(path)) {
        if (path.empty())
            throw Error(ErrorKind::Usage, "''",
                        "empty file name (expected " + std::string(what) + ", or - for standard input)");
        if (path == "-") {
            fd_ = STDIN_FILENO;
            owned_ = false;
        } else {
            fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd_ < 0) detail::throw_errno(path_, "cannot open", errno);
        }
        struct stat st {};
        if (::fstat(fd_, &st) != 0) detail::throw_errno(path_, "cannot stat", errno);
        if (S_ISDIR(st.st_mode)) throw Error(ErrorKind::Io, path_, "is a directory, expected " + std::string(what));
        regular_ = S_ISREG(st.st_mode);
        size_ = regular_ ? static_cast<std::size_t>(st.st_size) : 0;
    }
    ~InputFile() {
        if (owned_ && fd_ >= 0) ::close(fd_);
    }
    InputFile(const InputFile&) = delete;
    InputFile& operator=(const InputFile&) = delete;

    bool regular() const { return regular_; }
    std::size_t size() const { return size_; }

    // Reads exactly `size` bytes at `offset` of a regular file.
    void read_at(char* out, std::size_t size, std::size_t offset) const {
        const std::size_t wanted = offset + size;
        while (size > 0) {
            const ssize_t n =
                ::pread(fd_, out, std::min<std::size_t>(size, std::size_t(1) << 30), static_cast<off_t>(offset));
            if (n < 0) {
                if (errno == EINTR) continue;
                detail::throw_errno(path_, "read failed", errno);
            }
            if (n == 0) {
                throw Error(ErrorKind::Io, path_,
                            "file ends at byte " + std::to_string(offset) + " while being read, expected " +
                                std::to_string(wanted) + " (its size when opened: " + std::to_string(size_) + ")");
            }
            out += n;
            size -= static_cast<std::size_t>(n);
            offset += static_cast<std::size_t>(n);
        }
    }

    // The whole of a regular file.
    std::string read_all() const {
        check_memory(size_, path_, "the whole file");
        std::string bytes(size_, '\0');
        read_at(bytes.data(), size_, 0);
        return bytes;
    }

    int fd() const { return fd_; }
    const std::string& name() const { return path_; }

private:
    std::string path_;
    int fd_ = -1;
    bool owned_ = true;
    bool regular_ = false;
    std::size_t size_ = 0;
};

// A file descriptor read as a stream (standard input, a pipe, a character device).
class FdSource final : public ByteSource {
public:
    FdSource(int fd, const std::string& name) : fd_(fd), name_(name) {}
    std::size_t read(char* out, std::size_t size) override {
        while (true) {
            const ssize_t n = ::read(fd_, out, std::min<std::size_t>(size, std::size_t(1) << 30));
            if (n >= 0) return static_cast<std::size_t>(n);
            if (errno != EINTR) detail::throw_errno(name_, "read failed", errno);
        }
    }

private:
    int fd_;
    const std::string& name_;
};

// The bytes of a stream read so far, read further only up to a size asked for.
class StreamBytes {
public:
    explicit StreamBytes(ByteSource& source) : source_(source) {}

    // Reads until `size` bytes are held or the stream ends; false when it ended short
    // (then bytes() is the whole input). The buffer doubles as bytes come (a pipe gives
    // 64 KiB a read), with realloc, which moves large blocks without copying them and
    // leaves the new room untouched: memory is what was read, never what was promised.
    bool fill(std::size_t size) {
        while (used_ < size && !ended_) {
            if (used_ == capacity_) grow(std::min(size, std::max(2 * capacity_, std::size_t(1) << 16)));
            const std::size_t got = source_.read(buffer_.get() + used_, std::min(size, capacity_) - used_);
            used_ += got;
            ended_ = got == 0;
        }
        return used_ >= size;
    }
    // Whether one more byte follows those held (it is read, and kept).
    bool more() { return fill(used_ + 1); }
    bool ended() const { return ended_; }
    // Refuses a promise of more bytes than memory holds, before any is read.
    static void check_room(std::size_t size, const std::string& name) {
        check_memory(size, name, "the input its header promises");
    }
    std::string_view bytes() const { return {buffer_.get(), used_}; }

private:
    void grow(std::size_t capacity) {
        char* grown = static_cast<char*>(std::realloc(buffer_.get(), capacity));
        if (grown == nullptr) throw std::bad_alloc();
        static_cast<void>(buffer_.release());
        buffer_.reset(grown);
        capacity_ = capacity;
    }
    struct Free {
        void operator()(char* p) const { std::free(p); }
    };

    ByteSource& source_;
    std::unique_ptr<char, Free> buffer_;
    std::size_t capacity_ = 0;
    std::size_t used_ = 0;
    bool ended_ = false;
};

// The format of a stream from its first bytes (at least 9, or the whole input): as
// sniff_format, except that a .safetensors header length is checked against the cap, the
// stream's size being unknown.
std::optional<Format> sniff_stream(std::string_view bytes) {
    if (bytes.size() >= 9 && bytes[8] == '{') {
        const std::uint64_t header = detail::load_le(bytes.data(), 8);
        if (header >= 2 && header <= detail::kSafetensorsMaxHeaderBytes) return Format::Safetensors;
    }
    return sniff_format(bytes);
}

[[noreturn]] void throw_trailing(const std::string& name, const std::string& what) {
    throw Error(ErrorKind::Format, name, what + " (trailing bytes; the input was read no further)");
}

// An .npy stream: the header, then the data bytes it promises, then a one-byte probe.
// Returns when the stream ended short, for decode_npy to name what is missing.
void read_npy_stream(StreamBytes& in, const std::string& name) {
    // Every .npy file is longer than 12 bytes: magic, version, length, at least "{}".
    if (!in.fill(12)) return;
    const std::string_view first = in.bytes();
    const std::size_t length_size = first[6] == 1 ? 2 : 4;
    const std::size_t header_length = detail::load_le(first.data() + 8, length_size);
    if (header_length <= detail::kNpyMaxHeaderSize && !in.fill(8 + length_size + header_length)) return;
    // Throws for a bad magic, version or header, and for a header length over the cap.
    const detail::NpyHeader header = detail::parse_npy_header(in.bytes(), in.bytes().size(), name);
    const std::size_t total = detail::checked_add(header.data_offset, header.data_size, name);
    StreamBytes::check_room(total, name);
    if (!in.fill(total)) return;
    if (in.more()) {
        throw_trailing(name, "npy data is longer than the " + std::to_string(header.data_size) + " bytes shape " +
                                 shape_to_string(header.shape) + " needs");
    }
}

// A .safetensors stream: the 8 length bytes, the header, the data buffer it promises,
// then a one-byte probe. Returns when the stream ended short, as read_npy_stream does.
void read_safetensors_stream(StreamBytes& in, const std::string& name) {
    if (!in.fill(8)) return;
    const std::uint64_t header_length = detail::safetensors_header_length(in.bytes(), name);
    if (!in.fill(8 + header_length)) return;
    const std::uint64_t data_size =
        detail::safetensors_data_size(std::string_view(in.bytes()).substr(8, header_length), name);
    const std::size_t total = detail::checked_add(8 + header_length, data_size, name);
    StreamBytes::check_room(total, name);
    if (!in.fill(total)) return;
    if (in.more())
        throw_trailing(name,
                       "input is longer than the " + std::to_string(total) + " bytes its header and data_offsets take");
}

// A stream that promises no size (JSON, .npz, text), read whole up to kMaxStreamBytes.
void read_capped_stream(StreamBytes& in, const std::string& name, const std::string& what) {
    if (in.fill(kMaxStreamBytes + 1)) {
        throw Error(ErrorKind::Format, name,
                    what + " read from a stream is over the cap of " + std::to_string(kMaxStreamBytes) +
                        " bytes (give it as a regular file)");
    }
}

std::string_view format_noun(Format format) {
    switch (format) {
        case Format::Npz: return "an .npz archive";
        case Format::Json: return "JSON";
        default: return "input";
    }
}

// Reads a stream into `in` as far as its format allows. Returns its format when the
// stream told it; nullopt when the input is whole (it ended) and resolve_input_format
// is to sniff it, or when its first bytes match no format.
std::optional<Format> read_stream(StreamBytes& in, std::optional<Format> format, const std::string& name) {
    if (!format) {
        in.fill(9);
        // Only JSON whitespace so far: JSON or nothing known, read whole (up to the cap).
        if (!in.ended() && std::all_of(in.bytes().begin(), in.bytes().end(), detail::is_json_space)) {
            read_capped_stream(in, name, "JSON");
        }
        if (in.ended()) return std::nullopt;
        format = sniff_stream(in.bytes());
        if (!format) return std::nullopt;  // resolve_input_format names it unrecognised
    }
    switch (*format) {
        case Format::Npy: read_npy_stream(in, name); break;
        case Format::Safetensors: read_safetensors_stream(in, name); break;
        case Format::Npz:
        case Format::Json: read_capped_stream(in, name, std::string(format_noun(*format))); break;
    }
    return format;
}

// A regular .npy file read straight into the tensor's memory: one copy, no file buffer.
Tensor read_npy_file(const InputFile& file, const std::string& name) {
    std::string prefix(std::min(file.size(), detail::kNpyMaxPrefix), '\0');
    file.read_at(prefix.data(), prefix.size(), 0);
    const detail::NpyHeader header = detail::parse_npy_header(prefix, file.size(), name);
    detail::check_npy_data_size(header, file.size(), name);
    const auto& e = header.encoding;
    const bool native =
        !e.big_endian && !header.fortran_order && e.dtype != DType::Bool && dtype_size(e.dtype) == e.item_size;
    if (native) {
        Tensor tensor = Tensor::empty(e.dtype, header.shape, name);
        file.read_at(static_cast<char*>(tensor.data()), header.data_size, header.data_offset);
        return tensor;
    }
    // The file's bytes and the decoded tensor are both held for a moment.
    const std::size_t tensor_bytes = header.data_size / e.item_size * dtype_size(e.dtype);
    check_memory(header.data_size + tensor_bytes, name,
                 "the data bytes and the " + std::string(dtype_name(e.dtype)) + " tensor " +
                     shape_to_string(header.shape) + " decoded from them");
    std::string data(header.data_size, '\0');
    file.read_at(data.data(), data.size(), header.data_offset);
    return detail::decode_elements(e, header.shape, data.data(), name, header.fortran_order);
}

Format resolve_input_format(std::optional<Format> by_extension, std::string_view bytes, const std::string& name) {
    if (by_extension) return *by_extension;
    if (auto f = sniff_format(bytes)) return *f;
    if (bytes.empty()) throw Error(ErrorKind::Format, name, "file is empty (expected a tensor)");
    throw Error(ErrorKind::Format, name, "unrecognised format (expected .npy, .npz, .safetensors or JSON content)");
}

std::optional<Format> extension_format(const std::string& path) {
    return path == "-" ? std::nullopt : format_from_extension(path);
}

// The archive's only tensor, when no member was named.
std::string only_member(const std::vector<std::string>& names, const std::string& name) {
    if (names.size() == 1) return names.front();
    if (names.empty()) throw Error(ErrorKind::Format, name, "holds no tensors (expected one)");
    throw Error(ErrorKind::Format, name,
                "holds " + std::to_string(names.size()) + " tensors (" + detail::join_names(names) + "); name one as " +
                    name + ":NAME");
}

// The first bytes of a zip archive's first local file header (an .npz with members).
constexpr std::string_view kZipMagic("PK\x03\x04", 4);

bool starts_with(std::string_view bytes, std::string_view prefix) { return bytes.substr(0, prefix.size()) == prefix; }

// An 8-byte little-endian header length that fits in the bytes, then the header's '{'.
bool looks_like_safetensors(std::string_view bytes) {
    if (bytes.size() < 9 || bytes[8] != '{') return false;
    const std::uint64_t header = detail::load_le(bytes.data(), 8);
    return header >= 2 && header <= bytes.size() - 8;
}

// The first byte after JSON whitespace opens an array or an object.
bool looks_like_json(std::string_view bytes) {
    const auto first = std::find_if_not(bytes.begin(), bytes.end(), detail::is_json_space);
    return first != bytes.end() && (*first == '[' || *first == '{');
}

void check_no_member(const TensorRef& ref, const std::string& name) {
    if (!ref.member.empty())
        throw Error(ErrorKind::Usage, name + ":" + ref.member,
                    "an .npy file holds one tensor; drop " + quoted(":" + ref.member));
}

// One tensor of a whole input in a known format; `member` as in TensorRef.
Tensor decode_input(std::string_view bytes, Format format, const std::string& member, const std::string& name) {
    switch (format) {
        case Format::Npy: check_no_member({"", member}, name); return decode_npy(bytes, name);
        case Format::Npz:
            if (bytes.empty()) throw Error(ErrorKind::Format, name, "file is empty (expected an npz archive)");
            return decode_npz_member(bytes, member.empty() ? only_member(npz_member_names(bytes, name), name) : member,
                                     name);
        case Format::Safetensors:
            if (bytes.empty()) throw Error(ErrorKind::Format, name, "file is empty (expected a safetensors file)");
            return decode_safetensors_member(
                bytes, member.empty() ? only_member(safetensors_names(bytes, name), name) : member, name);
        case Format::Json: break;
    }
    if (member.empty()) return decode_json(bytes, name);
    NamedTensors all = decode_json_archive(bytes, name);
    std::vector<std::string> names;
    for (auto& [key, tensor] : all) {
        if (key == member) return std::move(tensor);
        names.push_back(key);
    }
    throw Error(ErrorKind::Format, name + ":" + member,
                "no tensor named " + quoted(member) + " (members: " + detail::join_names(names) + ")");
}

// Every tensor of a whole input in an archive format.
NamedTensors decode_archive(std::string_view bytes, Format format, const std::string& name) {
    switch (format) {
        case Format::Npz: return decode_npz(bytes, name);
        case Format::Safetensors: return decode_safetensors(bytes, name);
        case Format::Json: return decode_json_archive(bytes, name);
        case Format::Npy: break;
    }
    throw Error(ErrorKind::Format, name,
                "expected an archive of named tensors (.npz, .safetensors or a JSON object), found an npy file");
}

}  // namespace

std::string display_name(const std::string& path) {
    return path == "-" ? "<stdin>" : attn::printable(path, /*keep_utf8=*/true);
}

TensorRef parse_tensor_ref(std::string_view spec) {
    for (std::string_view ext : {".npz:", ".safetensors:", ".json:"}) {
        const auto at = lower(spec).rfind(ext);
        if (at != std::string::npos) {
            const std::size_t colon = at + ext.size() - 1;
            return {std::string(spec.substr(0, colon)), std::string(spec.substr(colon + 1))};
        }
    }
    if (spec.size() > 1 && spec.substr(0, 2) == "-:") return {"-", std::string(spec.substr(2))};
    return {std::string(spec), ""};
}

std::optional<Format> format_from_extension(std::string_view path) {
    const std::string p = lower(path);
    if (detail::ends_with(p, ".npy")) return Format::Npy;
    if (detail::ends_with(p, ".npz")) return Format::Npz;
    if (detail::ends_with(p, ".safetensors")) return Format::Safetensors;
    if (detail::ends_with(p, ".json")) return Format::Json;
    return std::nullopt;
}

std::optional<Format> sniff_format(std::string_view bytes) {
    if (starts_with(bytes, detail::kNpyMagic)) return Format::Npy;
    if (starts_with(bytes, kZipMagic)) return Format::Npz;
    if (looks_like_safetensors(bytes)) return Format::Safetensors;
    if (looks_like_json(bytes)) return Format::Json;
    return std::nullopt;
}

std::string read_file(const std::string& path, std::string_view what) {
    InputFile file(path, what);
    if (file.regular()) return file.read_all();
    FdSource source(file.fd(), file.name());
    StreamBytes in(source);
    read_capped_stream(in, file.name(), "input");
    return std::string(in.bytes());
}

Tensor read_tensor_stream(ByteSource& source, const std::string& name, const std::string& member,
                          std::optional<Format> format) {
    StreamBytes in(source);
    const auto told = read_stream(in, format, name);
    return decode_input(in.bytes(), told ? *told : resolve_input_format(std::nullopt, in.bytes(), name), member, name);
}

Tensor read_tensor(const std::string& spec) {
    const TensorRef ref = parse_tensor_ref(spec);
    const std::string name = display_name(ref.path);
    InputFile file(ref.path);
    const auto by_extension = extension_format(ref.path);
    if (!file.regular()) {
        FdSource source(file.fd(), name);
        return read_tensor_stream(source, name, ref.member, by_extension);
    }
    if (by_extension == Format::Npy) {
        check_no_member(ref, name);
        return read_npy_file(file, name);
    }
    const std::string bytes = file.read_all();
    return decode_input(bytes, resolve_input_format(by_extension, bytes, name), ref.member, name);
}

NamedTensors read_tensor_archive(const std::string& path) {
    const std::string name = display_name(path);
    InputFile file(path);
    const auto by_extension = extension_format(path);
    if (file.regular()) {
        const std::string bytes = file.read_all();
        return decode_archive(bytes, resolve_input_format(by_extension, bytes, name), name);
    }
    FdSource source(file.fd(), name);
    StreamBytes in(source);
    const auto told = read_stream(in, by_extension, name);
    return decode_archive(in.bytes(), told ? *told : resolve_input_format(std::nullopt, in.bytes(), name), name);
}

Format output_format(const std::string& path, const WriteOptions& options) {
    if (options.format) return *options.format;
    if (path == "-") return Format::Json;
    if (auto f = format_from_extension(path)) return *f;
    throw Error(ErrorKind::Usage, path,
                "cannot tell the output format: expected a name ending in .npy, .json, .npz or .safetensors");
}

void encode_tensor(const Tensor& tensor, Format format, ByteSink& sink, const WriteOptions& options) {
    switch (format) {
        case Format::Npy: encode_npy(tensor, sink); break;
        case Format::Json: encode_json(tensor, sink, options.json_layout); break;
        case Format::Npz: encode_npz({{"arr_0", tensor}}, sink); break;
        case Format::Safetensors: encode_safetensors({{"arr_0", tensor}}, sink); break;
    }
}

void write_tensor(const std::string& path, const Tensor& tensor, const WriteOptions& options) {
    const Format format = output_format(path, options);
    OutputFile out(path);
    encode_tensor(tensor, format, out, options);
    out.commit();
}

Format archive_format(const std::string& path) {
    const auto format = path == "-" ? std::optional<Format>(Format::Json) : format_from_extension(path);
    if (!format || *format == Format::Npy) {
        throw Error(ErrorKind::Usage, path, "expected a weights file name ending in .npz, .safetensors or .json");
    }
    return *format;
}

void encode_tensor_archive(const NamedTensors& tensors, Format format, ByteSink& sink) {
    switch (format) {
        case Format::Npz: encode_npz(tensors, sink); break;
        case Format::Safetensors: encode_safetensors(tensors, sink); break;
        case Format::Json: encode_json_archive(tensors, sink); break;
        case Format::Npy: throw Error(ErrorKind::Usage, "archive", "an .npy file holds one tensor, not named tensors");
    }
}

void write_tensor_archive(const std::string& path, const NamedTensors& tensors) {
    const Format format = archive_format(path);
    OutputFile out(path);
    encode_tensor_archive(tensors, format, out);
    out.commit();
}

}  // namespace attn::io
