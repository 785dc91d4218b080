// .npz reading and writing (docs/formats.md, ".npz"): a zip of NAME.npy members, read and
// written in memory with libzip.
//
// A member's sizes come from the central directory and are checked three ways before
// anything is allocated from them: against what the compressed bytes can possibly
// inflate to, against an absolute cap, and against the size the member's own npy header
// implies (read first, from the start of the stream). So a forged size never reaches the
// allocator, and CRCs are checked by libzip when each member has been read to its end.
#include <zip.h>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "attn/error.hpp"
#include "attn/io.hpp"
#include "common/text.hpp"
#include "io/element_decode.hpp"
#include "io/format_error.hpp"
#include "io/npy_header.hpp"

namespace attn::io {
namespace {

using detail::checked_add;
using detail::throw_format_error;

constexpr std::string_view kNpySuffix = ".npy";
// Deflate cannot expand better than 1032:1 (a 258-byte match in two bits); a larger claim
// is a forgery. The constant term covers the few bits a tiny stream starts with.
constexpr std::uint64_t kMaxDeflateRatio = 1032;
constexpr std::uint64_t kDeflateSlackBytes = 1024;
// No attention input comes near this; it stops a self-consistent forged size (npy header
// and zip entry agreeing) from reaching the allocator.
constexpr std::uint64_t kMaxMemberBytes = std::uint64_t(1) << 36;  // 64 GiB
// np.savez stamps members with the current time; a fixed one makes output reproducible
// (libzip stores it as local time, as zip dates are).
constexpr std::time_t kMemberMtime = 946684800;  // 2000-01-01T00:00:00Z

std::string strip_npy_suffix(std::string_view zip_name) {
    if (detail::ends_with(zip_name, kNpySuffix)) zip_name.remove_suffix(kNpySuffix.size());
    return std::string(zip_name);
}

class ZipError {
public:
    ZipError() { zip_error_init(&error_); }
    ~ZipError() { zip_error_fini(&error_); }
    ZipError(const ZipError&) = delete;
    ZipError& operator=(const ZipError&) = delete;
    zip_error_t* get() { return &error_; }
    std::string message() { return zip_error_strerror(&error_); }

private:
    zip_error_t error_;
};

struct ZipDiscard {
    void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct ZipFileClose {
    void operator()(zip_file_t* file) const { zip_fclose(file); }
};
struct ZipSourceFree {
    void operator()(zip_source_t* source) const { zip_source_free(source); }
};
using ZipArchivePtr = std::unique_ptr<zip_t, ZipDiscard>;
using ZipFilePtr = std::unique_ptr<zip_file_t, ZipFileClose>;
using ZipSourcePtr = std::unique_ptr<zip_source_t, ZipSourceFree>;

// ---- reading ---------------------------------------------------------------------------

struct Member {
    zip_uint64_t index = 0;
    std::string zip_name;  // as stored: "q.npy"
    std::string name;      // as the API shows it: "q"
};

class NpzReader {
public:
    NpzReader(std::string_view bytes, const std::string& name) : name_(name), archive_size_(bytes.size()) {
        // libzip opens an empty buffer as a new, empty archive; an empty file is no npz.
        if (bytes.empty()) throw_format_error(name_, "empty file, expected a zip archive (.npz)");
        ZipError error;
        ZipSourcePtr source(zip_source_buffer_create(bytes.data(), bytes.size(), 0, error.get()));
        if (!source) throw_format_error(name_, "cannot read the zip archive: " + error.message());
        archive_.reset(zip_open_from_source(source.get(), ZIP_RDONLY | ZIP_CHECKCONS, error.get()));
        if (!archive_) throw_format_error(name_, "not a valid zip archive (.npz): " + error.message());
        source.release();  // the archive owns it now

        const zip_int64_t count = zip_get_num_entries(archive_.get(), 0);
        if (count < 0) {
            throw_format_error(name_, "cannot list the zip archive: " + std::string(zip_strerror(archive_.get())));
        }
        std::unordered_set<std::string> seen;
        for (zip_int64_t i = 0; i < count; ++i) {
            const char* zip_name = zip_get_name(archive_.get(), zip_uint64_t(i), 0);
            if (zip_name == nullptr) {
                throw_format_error(name_, "cannot read the name of zip entry " + std::to_string(i) + ": " +
                                              zip_strerror(archive_.get()));
            }
            Member member{zip_uint64_t(i), zip_name, strip_npy_suffix(zip_name)};
            // "a" and "a.npy" would both answer to the name "a".
            if (!seen.insert(member.name).second) {
                throw_format_error(name_,
                                   "two members are named " + detail::quoted(member.name) + " (with or without .npy)");
            }
            members_.push_back(std::move(member));
        }
    }

    const std::vector<Member>& members() const { return members_; }

    std::vector<std::string> names() const {
        std::vector<std::string> out;
        out.reserve(members_.size());
        for (const auto& m : members_) out.push_back(m.name);
        return out;
    }

    const Member& find(std::string_view wanted) const {
        for (const auto& m : members_) {
            if (m.zip_name == wanted) return m;
        }
        for (const auto& m : members_) {
            if (m.name == wanted && m.zip_name != m.name) return m;
        }
        if (members_.empty()) {
            throw_format_error(name_, "no member " + detail::quoted(wanted) + ": the archive is empty");
        }
        throw_format_error(name_, "no member " + detail::quoted(wanted) + "; members: " + detail::join_names(names()));
    }

    Tensor decode(const Member& member) const { return decode_npy(read_member(member), tensor_subject(member)); }

private:
    std::string member_subject(const Member& member) const { return "member " + detail::quoted(member.zip_name); }
    // How npy errors name a member: the TENSOR argument that selects it.
    std::string tensor_subject(const Member& member) const { return name_ + ":" + member.name; }

    zip_stat_t checked_stat(const Member& member) const {
        const std::string subject = member_subject(member);
        zip_stat_t st;
        zip_stat_init(&st);
        if (zip_stat_index(archive_.get(), member.index, 0, &st) != 0) {
            throw_format_error(name_, subject + ": " + zip_strerror(archive_.get()));
        }
        constexpr zip_uint64_t needed = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
        if ((st.valid & needed) != needed) {
            throw_format_error(name_, subject + ": the central directory gives no sizes");
        }
        if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE) {
            throw_format_error(name_, subject + " is encrypted; npz members are not");
        }
        // libzip checks this when it opens the archive; it bounds every size below.
        if (st.comp_size > archive_size_) {
            throw_format_error(name_, subject + " declares " + std::to_string(st.comp_size) +
                                          " compressed bytes, more than the " + std::to_string(archive_size_) +
                                          " bytes of the whole archive");
        }
        if (st.comp_method == ZIP_CM_STORE) {
            if (st.size != st.comp_size) {
                throw_format_error(name_, subject + " is stored uncompressed but declares " + std::to_string(st.size) +
                                              " bytes and holds " + std::to_string(st.comp_size));
            }
        } else if (st.comp_method == ZIP_CM_DEFLATE) {
            const std::uint64_t most = st.comp_size > (UINT64_MAX - kDeflateSlackBytes) / kMaxDeflateRatio
                                           ? UINT64_MAX
                                           : st.comp_size * kMaxDeflateRatio + kDeflateSlackBytes;
            if (st.size > most) {
                throw_format_error(name_, subject + " declares " + std::to_string(st.size) +
                                              " bytes uncompressed from " + std::to_string(st.comp_size) +
                                              " compressed, more than deflate can produce (at most 1032:1)");
            }
        } else {
            throw_format_error(name_, subject + " uses compression method " + std::to_string(st.comp_method) +
                                          ", expected 0 (stored) or 8 (deflated)");
        }
        if (st.size > kMaxMemberBytes) {
            throw_format_error(name_, subject + " declares " + std::to_string(st.size) +
                                          " bytes uncompressed, over the limit of " + std::to_string(kMaxMemberBytes));
        }
        return st;
    }

    // Reads exactly `size` bytes; a short member is an error.
    void read_exact(zip_file_t* file, const Member& member, char* out, std::uint64_t size, std::uint64_t done,
                    std::uint64_t declared) const {
        while (size > 0) {
            const zip_int64_t got = zip_fread(file, out, size);
            if (got < 0) {
                throw_format_error(name_, member_subject(member) + ": " + zip_error_strerror(zip_file_get_error(file)));
            }
            if (got == 0) {
                throw_format_error(name_, member_subject(member) + " ends after " + std::to_string(done) +
                                              " bytes, the central directory declares " + std::to_string(declared));
            }
            out += got;
            size -= std::uint64_t(got);
            done += std::uint64_t(got);
        }
    }

    // The npy header comes first so that the size it implies can be checked against the
    // declared size before the member is inflated; a prefix this long holds any header
    // decode_npy accepts.
    detail::NpyHeader read_npy_header(zip_file_t* file, const Member& member, std::uint64_t declared,
                                      std::string& prefix) const {
        const std::uint64_t length = std::min<std::uint64_t>(declared, detail::kNpyMaxPrefix);
        prefix.resize(length);
        read_exact(file, member, prefix.data(), length, 0, declared);
        return detail::parse_npy_header(prefix, declared, tensor_subject(member));
    }

    std::string read_member(const Member& member) const {
        const std::string subject = member_subject(member);
        if (detail::ends_with(member.zip_name, "/")) {
            throw_format_error(name_, subject + " is a directory, not an .npy file");
        }
        const zip_stat_t st = checked_stat(member);

        ZipFilePtr file(zip_fopen_index(archive_.get(), member.index, 0));
        if (!file) throw_format_error(name_, subject + ": " + zip_strerror(archive_.get()));

        std::string bytes;
        const detail::NpyHeader header = read_npy_header(file.get(), member, st.size, bytes);
        const std::uint64_t implied = checked_add(header.data_offset, header.data_size, name_);
        if (implied != st.size) {
            throw_format_error(name_, subject + " declares " + std::to_string(st.size) +
                                          " bytes uncompressed, its npy header (shape " +
                                          shape_to_string(header.shape) + ", " +
                                          std::to_string(header.encoding.item_size) + "-byte items) implies " +
                                          std::to_string(implied));
        }
        // The inflated member and the tensor decoded from it are both held for a moment.
        const std::size_t tensor_bytes =
            header.data_size / header.encoding.item_size * dtype_size(header.encoding.dtype);
        check_memory(checked_add(st.size, tensor_bytes, name_), tensor_subject(member),
                     "the inflated member and the " + std::string(dtype_name(header.encoding.dtype)) + " tensor " +
                         shape_to_string(header.shape) + " decoded from it");
        const std::size_t have = bytes.size();
        bytes.resize(st.size);
        read_exact(file.get(), member, bytes.data() + have, st.size - have, have, st.size);
        // Reading to the end is what makes libzip compare the CRC.
        char extra = 0;
        const zip_int64_t got = zip_fread(file.get(), &extra, 1);
        if (got < 0) throw_format_error(name_, subject + ": " + zip_error_strerror(zip_file_get_error(file.get())));
        if (got > 0) {
            throw_format_error(
                name_, subject + " inflates to more than the " + std::to_string(st.size) + " bytes it declares");
        }
        return bytes;
    }

    std::string name_;
    std::uint64_t archive_size_;
    ZipArchivePtr archive_;
    std::vector<Member> members_;
};

// The 22-byte end-of-central-directory record alone, which is what np.savez writes for no
// arrays; libzip writes nothing at all for an empty archive.
constexpr std::string_view kEmptyZip("PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 22);

// libzip fails here only when memory runs out; there is no file to name yet.
[[noreturn]] void fail_write(const std::string& what) { throw Error(ErrorKind::Io, "", "writing .npz: " + what); }

void check_distinct_names(const NamedTensors& tensors) {
    std::unordered_set<std::string> seen;
    for (const auto& [tensor_name, tensor] : tensors) {
        if (!seen.insert(tensor_name).second) {
            throw Error(ErrorKind::Usage, "tensor " + detail::quoted(tensor_name),
                        "appears twice; the members of an .npz need distinct names");
        }
    }
}

// `bytes` as the member `zip_name`, stored uncompressed (as np.savez stores) with the
// fixed time stamp. `bytes` must live until the archive is closed.
void add_stored_member(zip_t* archive, const std::string& zip_name, const std::string& bytes) {
    const std::string subject = "member " + detail::quoted(zip_name);
    zip_source_t* member = zip_source_buffer(archive, bytes.data(), bytes.size(), 0);
    if (member == nullptr) fail_write(subject + ": " + zip_strerror(archive));
    const zip_int64_t index = zip_file_add(archive, zip_name.c_str(), member, 0);
    if (index < 0) {
        zip_source_free(member);
        fail_write(subject + ": " + zip_strerror(archive));
    }
    if (zip_set_file_compression(archive, zip_uint64_t(index), ZIP_CM_STORE, 0) != 0 ||
        zip_file_set_mtime(archive, zip_uint64_t(index), kMemberMtime, 0) != 0) {
        fail_write(subject + ": " + zip_strerror(archive));
    }
}

// The bytes a closed archive left in its in-memory source.
std::string read_back(zip_source_t* buffer) {
    if (zip_source_open(buffer) != 0) {
        fail_write("cannot read back the zip archive: " + std::string(zip_error_strerror(zip_source_error(buffer))));
    }
    zip_stat_t st;
    zip_stat_init(&st);
    std::string bytes;
    if (zip_source_stat(buffer, &st) == 0 && (st.valid & ZIP_STAT_SIZE)) {
        bytes.resize(st.size);
        const zip_int64_t got = zip_source_read(buffer, bytes.data(), st.size);
        if (got < 0 || zip_uint64_t(got) != st.size) bytes.clear();
    }
    zip_source_close(buffer);
    if (bytes.empty()) fail_write("cannot read back the zip archive");
    return bytes;
}

}  // namespace

std::vector<std::string> npz_member_names(std::string_view zip_bytes, const std::string& name) {
    return NpzReader(zip_bytes, name).names();
}

Tensor decode_npz_member(std::string_view zip_bytes, std::string_view member, const std::string& name) {
    const NpzReader reader(zip_bytes, name);
    return reader.decode(reader.find(member));
}

NamedTensors decode_npz(std::string_view zip_bytes, const std::string& name) {
    const NpzReader reader(zip_bytes, name);
    NamedTensors out;
    out.reserve(reader.members().size());
    for (const auto& member : reader.members()) out.emplace_back(member.name, reader.decode(member));
    return out;
}

void encode_npz(const NamedTensors& tensors, ByteSink& sink) {
    if (tensors.empty()) {
        sink.write(kEmptyZip);
        return;
    }
    check_distinct_names(tensors);
    // libzip reads the member bytes only in zip_close, so they live until then.
    std::vector<std::string> npy_files;
    npy_files.reserve(tensors.size());
    for (const auto& entry : tensors) {
        StringSink npy;
        encode_npy(entry.second, npy);
        npy_files.push_back(npy.take());
    }

    ZipError error;
    ZipSourcePtr buffer(zip_source_buffer_create(nullptr, 0, 0, error.get()));
    if (!buffer) fail_write("cannot create the zip archive: " + error.message());
    ZipArchivePtr archive(zip_open_from_source(buffer.get(), ZIP_TRUNCATE, error.get()));
    if (!archive) fail_write("cannot create the zip archive: " + error.message());
    zip_source_keep(buffer.get());  // the archive frees its reference on close; ours reads the bytes after
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        add_stored_member(archive.get(), tensors[i].first + std::string(kNpySuffix), npy_files[i]);
    }
    if (zip_close(archive.get()) != 0)
        fail_write("cannot write the zip archive: " + std::string(zip_strerror(archive.get())));
    archive.release();  // closed
    sink.write(read_back(buffer.get()));
}

}  // namespace attn::io
