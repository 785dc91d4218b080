// attn/io.hpp - reading and writing tensors: .npy, .npz, .safetensors and JSON.
//
// The rules of each format are those of docs/formats.md. Every reader treats its
// input as hostile: lengths are checked against the real size before anything is
// allocated and each failure throws attn::Error (ErrorKind::Format, or Io for the
// operating system) whose message starts with the file name. Every writer goes through
// OutputFile, which writes a temporary file beside the target and renames it over the
// target only on commit(), so a failed run leaves no new or half-written file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "attn/tensor.hpp"

namespace attn::io {

enum class Format { Npy, Npz, Safetensors, Json };

enum class JsonLayout {
    Object,  // {"shape": [...], "dtype": "float32", "data": [[...]]}
    Nested,  // bare nested arrays, as tensor.tolist() gives
};

// Tensors with names, in file order (weights files, archives).
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// A TENSOR argument split into its file and its member: "w.npz:q" -> {"w.npz", "q"}.
// A colon is taken as a member separator only after an archive extension
// (.npz, .safetensors, .json), so "C:/x.npy" and "a:b.npy" name plain files.
struct TensorRef {
    std::string path;    // "-" for standard input
    std::string member;  // empty: the file is the tensor, or the archive has one member
};
TensorRef parse_tensor_ref(std::string_view spec);

// The format of a path by its extension; nullopt when the extension names none.
std::optional<Format> format_from_extension(std::string_view path);
// The format of bytes by their first bytes; nullopt when they look like none.
std::optional<Format> sniff_format(std::string_view bytes);

// The whole content of a file, or of standard input for "-". `path` names it in errors;
// `what` says what it should be ("is a directory, expected a tensor file").
std::string read_file(const std::string& path, std::string_view what = "a tensor file");

// How messages name a path: the path made printable (attn::printable), "<stdin>" for "-".
std::string display_name(const std::string& path);

// ---- Inputs without a size: standard input, pipes, character devices ----------------
// Such an input is read as a stream against what its first bytes promise
// (docs/formats.md, "Standard input and other streams"): an .npy or .safetensors input
// is read to the size its header promises, then one byte more is asked for, and any
// such byte is an error ("trailing bytes") before more is read; JSON and .npz, which
// promise no size, are read up to kMaxStreamBytes.

// The most bytes a JSON or .npz input (or a labels file) is read to from a stream.
constexpr std::size_t kMaxStreamBytes = std::size_t(1) << 30;  // 1 GiB

// Bytes read in order from a source of unknown size.
class ByteSource {
public:
    virtual ~ByteSource() = default;
    // Reads up to `size` (> 0) bytes into `out`; returns how many, 0 only at the end.
    virtual std::size_t read(char* out, std::size_t size) = 0;
};

// One TENSOR (with `member` as in TensorRef) read from a stream as read_tensor reads
// standard input: `format` when known (a FIFO's extension), else sniffed from the first
// bytes. `name` is what errors call the input.
Tensor read_tensor_stream(ByteSource& source, const std::string& name, const std::string& member = "",
                          std::optional<Format> format = std::nullopt);

// ---- Reading ----------------------------------------------------------------------
// `name` is what error messages call the input (usually the file name).

Tensor decode_npy(std::string_view bytes, const std::string& name);
// A single JSON tensor: nested arrays or the {shape, dtype, data} object (docs/formats.md, "JSON tensors").
Tensor decode_json(std::string_view text, const std::string& name);
// A JSON object mapping names to JSON tensors (a weights file).
NamedTensors decode_json_archive(std::string_view text, const std::string& name);

std::vector<std::string> npz_member_names(std::string_view zip_bytes, const std::string& name);
// One member by its name with or without ".npy"; the error lists the members if absent.
Tensor decode_npz_member(std::string_view zip_bytes, std::string_view member, const std::string& name);
NamedTensors decode_npz(std::string_view zip_bytes, const std::string& name);

std::vector<std::string> safetensors_names(std::string_view bytes, const std::string& name);
Tensor decode_safetensors_member(std::string_view bytes, std::string_view member, const std::string& name);
NamedTensors decode_safetensors(std::string_view bytes, const std::string& name);

// A TENSOR argument (see TensorRef): the format comes from the extension, else from the
// content. An archive without a member name must hold exactly one tensor.
Tensor read_tensor(const std::string& spec);
// Every tensor of an archive file (.npz, .safetensors, or a JSON object of tensors).
NamedTensors read_tensor_archive(const std::string& path);

// ---- Writing ----------------------------------------------------------------------

class ByteSink {
public:
    virtual ~ByteSink() = default;
    virtual void write(const char* data, std::size_t size) = 0;
    void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
    // At least `bytes` more will be written: a file reserves the space now, so that a
    // disk too small fails (ErrorKind::Io, sizes named) before the work, not after it.
    virtual void expect(std::uint64_t bytes) { (void)bytes; }
};

class StringSink final : public ByteSink {
public:
    using ByteSink::write;
    void write(const char* data, std::size_t size) override { bytes_.append(data, size); }
    const std::string& bytes() const noexcept { return bytes_; }
    std::string take() { return std::move(bytes_); }

private:
    std::string bytes_;
};

// A file written atomically, or standard output for "-". Data are buffered; commit()
// flushes, syncs and renames the temporary file over `path`. Destroying an uncommitted
// OutputFile removes the temporary file and leaves any existing `path` untouched.
// A symbolic link is written through, never replaced: the temporary file goes beside the
// file at the end of its chain and is renamed over that file (a dangling link creates the
// file it names). A target that is not a regular file (/dev/null, a FIFO) and any link of
// /proc (/dev/stdout is /proc/self/fd/1) are written in place, as standard output is: no
// temporary file, and what was written stays written.
class OutputFile final : public ByteSink {
public:
    explicit OutputFile(std::string path);
    ~OutputFile() override;
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    using ByteSink::write;
    void write(const char* data, std::size_t size) override;
    void expect(std::uint64_t bytes) override;
    void commit();
    const std::string& path() const noexcept { return path_; }

private:
    void flush();

    std::string path_;
    std::string target_;  // the file renamed over: path_ with its links followed
    std::string temp_path_;
    int fd_ = -1;
    bool is_stdout_ = false;
    bool is_direct_ = false;  // a device or pipe, written in place
    bool committed_ = false;
    std::string buffer_;
};

// Whether OUT names `a` and `b` lead to one file, however spelled ("-" is standard output):
// the same path once OutputFile has followed its links and the folder's links are
// resolved (realpath; a folder that does not exist is normalised by its text), or the
// same existing file (device and inode: hard links, /dev/stdout and a redirected standard
// output). Written twice in one run, such a file keeps only the last output. The null
// device keeps nothing, so it is no file twice.
bool same_output_file(const std::string& a, const std::string& b);

// Removes the temporary files of every OutputFile not yet committed. Async-signal-safe:
// meant for a SIGINT/SIGTERM handler, which then exits without running destructors.
void remove_pending_outputs() noexcept;

// npy version 1.0, sorted header keys, data aligned to 64 bytes (numpy's own layout).
void encode_npy(const Tensor& tensor, ByteSink& sink);
// The header of encode_npy alone, for writers that stream the data after it.
std::string npy_header(DType dtype, const Shape& shape);
// JSON as docs/formats.md says: shortest round-trip numbers, NaN/Infinity/-Infinity as Python,
// -0.0 with its sign. The nested layout writes whole floats as 1.0 (so that
// torch.tensor(json.load(f)) stays floating); the object layout writes an empty tensor's
// data as a flat [].
void encode_json(const Tensor& tensor, ByteSink& sink, JsonLayout layout = JsonLayout::Object);
// A JSON object of named tensors in the object layout.
void encode_json_archive(const NamedTensors& tensors, ByteSink& sink);
// np.savez layout: one stored NAME.npy member per tensor.
void encode_npz(const NamedTensors& tensors, ByteSink& sink);
void encode_safetensors(const NamedTensors& tensors, ByteSink& sink);

struct WriteOptions {
    std::optional<Format> format;  // default: from the extension; "-" gives JSON
    JsonLayout json_layout = JsonLayout::Object;
};

// Encodes one tensor in `format` (an archive format gets one member named arr_0, as
// np.savez names an unnamed array).
void encode_tensor(const Tensor& tensor, Format format, ByteSink& sink, const WriteOptions& options = {});
// Resolves the format an OUT argument is written in; throws ErrorKind::Usage naming the
// path when the extension names no single-tensor format.
Format output_format(const std::string& path, const WriteOptions& options);
// Writes one tensor to an OUT argument, atomically.
void write_tensor(const std::string& path, const Tensor& tensor, const WriteOptions& options = {});
// The archive format of a weights file name (.npz, .safetensors, .json; "-" is JSON);
// throws ErrorKind::Usage naming the path otherwise.
Format archive_format(const std::string& path);
// Encodes named tensors in an archive format (JSON: an object of tensors).
void encode_tensor_archive(const NamedTensors& tensors, Format format, ByteSink& sink);
// Writes named tensors to .npz, .safetensors or .json (by extension), atomically.
void write_tensor_archive(const std::string& path, const NamedTensors& tensors);

}  // namespace attn::io
