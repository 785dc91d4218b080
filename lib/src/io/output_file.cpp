// Atomic output: a temporary file beside the target, renamed over it on commit.
//
// The target is the file the OUT name leads to (docs/formats.md, "Output: atomic files"):
// a symbolic link is written through, as a shell's `>` and numpy.save write through it,
// never replaced. Its chain is followed link by link (a relative link is relative to the
// folder holding it) to the file at its end; the temporary file goes beside that file and
// is renamed over it, so the link stays a link. A dangling link creates the file it names.
// Written in place instead, with no temporary file (open O_WRONLY | O_TRUNC without
// O_CREAT, what a shell's `>` does to an existing file): a target that exists and is a
// device, a pipe or a socket (/dev/null, /dev/full, a FIFO), which a rename would replace
// by a regular file; and any link that lives in /proc. Such "magic" links
// (/dev/stdout -> /proc/self/fd/1) name an open file, not a path: readlink(2) gives the
// path of a regular file when standard output is redirected to one, so following it and
// renaming over that path would replace the file the shell has open — the data would go
// to a file that is then unlinked (or, as root, /dev/stdout itself would be replaced).
// Opening the link reopens that file; truncating it is what `> /dev/stdout` does in a
// shell.
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "attn/io.hpp"
#include "io/temp_files.hpp"

namespace attn::io {
namespace {

constexpr std::size_t kBufferSize = std::size_t(1) << 20;
constexpr std::size_t kMaxWrite = std::size_t(8) << 20;

[[noreturn]] void fail_errno(const std::string& path, const std::string& what, int err) {
    throw Error(ErrorKind::Io, path, what + ": " + std::strerror(err));
}

void write_all(int fd, const char* data, std::size_t size, const std::string& path) {
    while (size > 0) {
        // Bounded writes: one huge write(2) into the page cache ran 3x slower than 8 MiB ones.
        const ssize_t n = ::write(fd, data, std::min(size, kMaxWrite));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno(path, "write failed", errno);
        }
        data += n;
        size -= static_cast<std::size_t>(n);
    }
}

std::string directory_of(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

std::string base_of(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string join_path(const std::string& directory, const std::string& name) {
    return directory == "/" ? "/" + name : directory + "/" + name;
}

// Linux's own limit on the links of one lookup, past which open(2) fails with ELOOP.
constexpr int kMaxLinks = 40;

// Where writing OUT `path` lands (the rule at the top of this file).
struct OutputTarget {
    std::string path;       // the file to write: `path` after its chain of links
    bool in_place = false;  // written in place: a device, a pipe, a socket, a link of /proc
    bool exists = false;    // `path` exists (not known for a link of /proc)
    mode_t mode = 0;        // its mode, when it exists
    int error = 0;          // errno when the chain could not be followed
};

bool in_proc(const std::string& directory) {
    struct statfs fs {};
    return ::statfs(directory.c_str(), &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC;
}

OutputTarget resolve_target(const std::string& path) {
    OutputTarget target;
    target.path = path;
    for (int links = 0;; ++links) {
        struct stat st {};
        if (::lstat(target.path.c_str(), &st) != 0) {
            if (errno != ENOENT) target.error = errno;
            return target;  // a new file, or the file a dangling link names
        }
        if (!S_ISLNK(st.st_mode)) {
            target.exists = true;
            target.mode = st.st_mode;
            target.in_place = !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
            return target;
        }
        if (in_proc(directory_of(target.path))) {
            target.in_place = true;
            return target;
        }
        if (links == kMaxLinks) {
            target.error = ELOOP;
            return target;
        }
        std::vector<char> link(PATH_MAX + 1);
        const ssize_t size = ::readlink(target.path.c_str(), link.data(), link.size());
        if (size < 0 || static_cast<std::size_t>(size) >= link.size()) {
            target.error = size < 0 ? errno : ENAMETOOLONG;
            return target;
        }
        const std::string next(link.data(), static_cast<std::size_t>(size));
        target.path = next.front() == '/' ? next : join_path(directory_of(target.path), next);
    }
}

// `path` made absolute, with ".", ".." and repeated slashes taken out by their text.
std::string lexically_normal_absolute(const std::string& path) {
    std::string absolute = path;
    if (path.empty() || path.front() != '/') {
        std::vector<char> cwd(PATH_MAX + 1);
        absolute = (::getcwd(cwd.data(), cwd.size()) ? std::string(cwd.data()) : std::string()) + "/" + path;
    }
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (start <= absolute.size()) {
        std::size_t end = absolute.find('/', start);
        if (end == std::string::npos) end = absolute.size();
        const std::string part = absolute.substr(start, end - start);
        if (part == "..") {
            if (!parts.empty()) parts.pop_back();
        } else if (!part.empty() && part != ".") {
            parts.push_back(part);
        }
        start = end + 1;
    }
    std::string normal;
    for (const std::string& part : parts) normal += "/" + part;
    return normal.empty() ? "/" : normal;
}

// What tells two outputs apart: the target's path, absolute with the links of its folder
// resolved, and the file itself (device and inode) when it exists.
struct FileIdentity {
    std::string path;  // empty for standard output
    bool has_inode = false;
    dev_t device = 0;
    ino_t inode = 0;
    bool discards = false;  // the null device
};

FileIdentity identity_of(const std::string& out) {
    FileIdentity identity;
    struct stat st {};
    bool known = false;
    if (out == "-") {
        known = ::fstat(STDOUT_FILENO, &st) == 0;
    } else {
        const OutputTarget target = resolve_target(out);
        const std::string directory = directory_of(target.path);
        if (char* real = ::realpath(directory.c_str(), nullptr)) {
            identity.path = join_path(real, base_of(target.path));
            std::free(real);  // NOLINT(cppcoreguidelines-no-malloc): realpath's allocation
        } else {
            identity.path = lexically_normal_absolute(target.path);
        }
        known = ::stat(target.path.c_str(), &st) == 0;
    }
    // A directory is no output (a closed standard output holds one, app/main.cpp).
    if (known && !S_ISDIR(st.st_mode)) {
        identity.has_inode = true;
        identity.device = st.st_dev;
        identity.inode = st.st_ino;
        struct stat null_device {};
        identity.discards = S_ISCHR(st.st_mode) && ::stat("/dev/null", &null_device) == 0 &&
                            S_ISCHR(null_device.st_mode) && st.st_rdev == null_device.st_rdev;
    }
    return identity;
}

}  // namespace

bool same_output_file(const std::string& a, const std::string& b) {
    const FileIdentity first = identity_of(a);
    const FileIdentity second = identity_of(b);
    if (first.discards || second.discards) return false;
    if (!first.path.empty() && first.path == second.path) return true;
    return first.has_inode && second.has_inode && first.device == second.device && first.inode == second.inode;
}

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
    buffer_.reserve(kBufferSize);
    if (path_ == "-") {
        is_stdout_ = true;
        fd_ = STDOUT_FILENO;
        path_ = "<stdout>";  // how errors name it
        return;
    }
    if (path_.empty()) {
        throw Error(ErrorKind::Usage, "''", "empty output file name (expected a path, or - for standard output)");
    }
    const OutputTarget target = resolve_target(path_);
    // A name too long, a file where a folder should be: fail now, not after the work.
    if (target.error != 0) fail_errno(path_, "cannot create output file", target.error);
    if (target.exists && S_ISDIR(target.mode)) {
        throw Error(ErrorKind::Io, path_, "is a directory, expected a file to write");
    }
    if (target.in_place) {
        // Nothing to stage and rename (the rule at the top of this file): written in place,
        // like standard output, and just as impossible to take back.
        fd_ = ::open(target.path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
        if (fd_ < 0) fail_errno(path_, "cannot open for writing", errno);
        is_direct_ = true;
        return;
    }
    target_ = target.path;
    mode_t mode;
    if (target.exists) {
        mode = target.mode & 07777;
    } else {
        const mode_t mask = ::umask(0);
        ::umask(mask);
        mode = 0666 & ~mask;
    }
    // The temporary name adds 12 bytes to the target's: cut the base so that any name the
    // file system allows as a target still gives a temporary name it allows (NAME_MAX 255).
    constexpr std::size_t kMaxTempBase = 200;
    std::string temp = join_path(directory_of(target_), "." + base_of(target_).substr(0, kMaxTempBase) + ".tmp-XXXXXX");
    fd_ = ::mkostemp(temp.data(), O_CLOEXEC);
    if (fd_ < 0) fail_errno(path_, "cannot create output file", errno);
    temp_path_ = temp;
    detail::register_temp_file(temp_path_);
    ::fchmod(fd_, mode);
}

OutputFile::~OutputFile() {
    if (is_stdout_ || fd_ < 0) return;
    ::close(fd_);
    if (is_direct_) return;
    if (!committed_) {
        ::unlink(temp_path_.c_str());
        detail::unregister_temp_file(temp_path_);
    }
}

void OutputFile::write(const char* data, std::size_t size) {
    if (committed_) throw Error(ErrorKind::Io, path_, "write after commit");
    if (is_direct_) {
        // Unbuffered, so that a device that refuses data (/dev/full) fails while a group of
        // outputs is staged, before any of them is committed.
        write_all(fd_, data, size, path_);
        return;
    }
    if (buffer_.size() + size > kBufferSize) {
        flush();
        if (size >= kBufferSize) {
            write_all(fd_, data, size, path_);
            return;
        }
    }
    buffer_.append(data, size);
}

void OutputFile::expect(std::uint64_t bytes) {
    if (is_stdout_ || is_direct_ || fd_ < 0 || bytes == 0) return;
    auto refuse = [&](std::uint64_t free_bytes) {
        throw Error(ErrorKind::Io, path_,
                    "needs " + bytes_to_string(static_cast<std::size_t>(bytes)) + " on its file system, " +
                        bytes_to_string(static_cast<std::size_t>(free_bytes)) + " free");
    };
    // Compare first: a fallocate that fails part way keeps what it got, and would fill
    // the disk for everyone until the temporary file goes.
    struct statvfs fs {};
    if (::fstatvfs(fd_, &fs) != 0) return;  // cannot tell: find out when writing
    const std::uint64_t free_bytes = std::uint64_t(fs.f_bavail) * fs.f_frsize;
    if (bytes > free_bytes) refuse(free_bytes);
    // KEEP_SIZE: the blocks are reserved, the file stays as long as what is written.
    if (::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(buffer_.size()), static_cast<off_t>(bytes)) != 0 &&
        errno == ENOSPC) {
        refuse(free_bytes);
    }
}

void OutputFile::flush() {
    write_all(fd_, buffer_.data(), buffer_.size(), path_);
    buffer_.clear();
}

void OutputFile::commit() {
    if (committed_) return;
    flush();
    if (is_stdout_) {
        committed_ = true;
        return;
    }
    if (is_direct_) {
        const int result = ::close(fd_);
        fd_ = -1;
        if (result != 0) fail_errno(path_, "write failed", errno);
        committed_ = true;
        return;
    }
    if (::close(fd_) != 0) {
        const int err = errno;
        fd_ = -1;
        ::unlink(temp_path_.c_str());
        detail::unregister_temp_file(temp_path_);
        fail_errno(path_, "write failed", err);
    }
    fd_ = -1;
    // Over an existing file, swap the two names and delete the old data under the
    // temporary name: as atomic as rename(2), and on ext4 it skips the flush that a
    // rename over an existing file forces (auto_da_alloc), which halves write speed.
    if (::renameat2(AT_FDCWD, temp_path_.c_str(), AT_FDCWD, target_.c_str(), RENAME_EXCHANGE) == 0) {
        ::unlink(temp_path_.c_str());
        detail::unregister_temp_file(temp_path_);
        committed_ = true;
        return;
    }
    if (::rename(temp_path_.c_str(), target_.c_str()) != 0) {
        const int err = errno;
        ::unlink(temp_path_.c_str());
        detail::unregister_temp_file(temp_path_);
        fail_errno(path_, "cannot replace output file", err);
    }
    detail::unregister_temp_file(temp_path_);
    committed_ = true;
}

}  // namespace attn::io
