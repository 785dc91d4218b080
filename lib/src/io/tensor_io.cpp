// Dispatch between formats, whole-file reading and atomic writing of OUT arguments.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <string_view>

#include "attn/io.hpp"
#include "common/text.hpp"
#include "io/json_numbers.hpp"
#include "io/npy_header.hpp"

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

    std::string read_all() const {
        std::string bytes;
        if (regular_) {
            check_memory(size_, path_, "the whole file");
            bytes.resize(size_);
            read_at(bytes.data(), size_, 0);
            return bytes;
        }
        std::size_t used = 0;
        bytes.resize(std::size_t(1) << 16);
        while (true) {
            if (used == bytes.size()) {
                check_memory(bytes.size() * 2, path_, "the input read so far");
                bytes.resize(bytes.size() * 2);
            }
            const ssize_t n = ::read(fd_, bytes.data() + used, bytes.size() - used);
            if (n < 0) {
                if (errno == EINTR) continue;
                detail::throw_errno(path_, "read failed", errno);
            }
            if (n == 0) break;
            used += static_cast<std::size_t>(n);
        }
        bytes.resize(used);
        return bytes;
    }

private:
    std::string path_;
    int fd_ = -1;
    bool owned_ = true;
    bool regular_ = false;
    std::size_t size_ = 0;
};

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

Format resolve_input_format(const std::string& path, std::string_view bytes) {
    if (path != "-") {
        if (auto f = format_from_extension(path)) return *f;
    }
    if (auto f = sniff_format(bytes)) return *f;
    if (bytes.empty()) throw Error(ErrorKind::Format, display_name(path), "file is empty (expected a tensor)");
    throw Error(ErrorKind::Format, display_name(path),
                "unrecognised format (expected .npy, .npz, .safetensors or JSON content)");
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

std::string read_file(const std::string& path, std::string_view what) { return InputFile(path, what).read_all(); }

Tensor read_tensor(const std::string& spec) {
    const TensorRef ref = parse_tensor_ref(spec);
    const std::string name = display_name(ref.path);
    const std::string subject = ref.member.empty() ? name : name + ":" + ref.member;
    InputFile file(ref.path);
    const auto by_extension = ref.path == "-" ? std::nullopt : format_from_extension(ref.path);
    if (by_extension == Format::Npy && file.regular()) {
        if (!ref.member.empty())
            throw Error(ErrorKind::Usage, subject, "an .npy file holds one tensor; drop " + quoted(":" + ref.member));
        return read_npy_file(file, name);
    }
    const std::string bytes = file.read_all();
    switch (resolve_input_format(ref.path, bytes)) {
        case Format::Npy:
            if (!ref.member.empty())
                throw Error(ErrorKind::Usage, subject,
                            "an .npy file holds one tensor; drop " + quoted(":" + ref.member));
            return decode_npy(bytes, name);
        case Format::Npz:
            if (bytes.empty()) throw Error(ErrorKind::Format, name, "file is empty (expected an npz archive)");
            return decode_npz_member(
                bytes, ref.member.empty() ? only_member(npz_member_names(bytes, name), name) : ref.member, name);
        case Format::Safetensors:
            if (bytes.empty()) throw Error(ErrorKind::Format, name, "file is empty (expected a safetensors file)");
            return decode_safetensors_member(
                bytes, ref.member.empty() ? only_member(safetensors_names(bytes, name), name) : ref.member, name);
        case Format::Json: break;
    }
    if (ref.member.empty()) return decode_json(bytes, name);
    NamedTensors all = decode_json_archive(bytes, name);
    std::vector<std::string> names;
    for (auto& [member, tensor] : all) {
        if (member == ref.member) return std::move(tensor);
        names.push_back(member);
    }
    throw Error(ErrorKind::Format, subject,
                "no tensor named " + quoted(ref.member) + " (members: " + detail::join_names(names) + ")");
}

NamedTensors read_tensor_archive(const std::string& path) {
    const std::string name = display_name(path);
    const std::string bytes = read_file(path);
    switch (resolve_input_format(path, bytes)) {
        case Format::Npz: return decode_npz(bytes, name);
        case Format::Safetensors: return decode_safetensors(bytes, name);
        case Format::Json: return decode_json_archive(bytes, name);
        case Format::Npy: break;
    }
    throw Error(ErrorKind::Format, name,
                "expected an archive of named tensors (.npz, .safetensors or a JSON object), found an npy file");
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
