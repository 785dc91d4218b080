// Atomic output: a temporary file beside the target, renamed over it on commit.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

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

}  // namespace

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
    struct stat target {};
    mode_t mode;
    const bool exists = ::stat(path_.c_str(), &target) == 0;
    // A name too long, a file where a folder should be: fail now, not after the work.
    if (!exists && errno != ENOENT) fail_errno(path_, "cannot create output file", errno);
    if (exists) {
        if (S_ISDIR(target.st_mode)) throw Error(ErrorKind::Io, path_, "is a directory, expected a file to write");
        if (!S_ISREG(target.st_mode)) {
            // A device or a pipe (/dev/null, /dev/stdout, a FIFO): there is nothing to stage
            // and rename, which would replace the device node with a regular file. Written in
            // place, like standard output, and just as impossible to take back.
            fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
            if (fd_ < 0) fail_errno(path_, "cannot open for writing", errno);
            is_direct_ = true;
            return;
        }
        mode = target.st_mode & 07777;
    } else {
        const mode_t mask = ::umask(0);
        ::umask(mask);
        mode = 0666 & ~mask;
    }
    // The temporary name adds 12 bytes to the target's: cut the base so that any name the
    // file system allows as a target still gives a temporary name it allows (NAME_MAX 255).
    constexpr std::size_t kMaxTempBase = 200;
    std::string temp = directory_of(path_) + "/." + base_of(path_).substr(0, kMaxTempBase) + ".tmp-XXXXXX";
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
    if (::renameat2(AT_FDCWD, temp_path_.c_str(), AT_FDCWD, path_.c_str(), RENAME_EXCHANGE) == 0) {
        ::unlink(temp_path_.c_str());
        detail::unregister_temp_file(temp_path_);
        committed_ = true;
        return;
    }
    if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
        const int err = errno;
        ::unlink(temp_path_.c_str());
        detail::unregister_temp_file(temp_path_);
        fail_errno(path_, "cannot replace output file", err);
    }
    detail::unregister_temp_file(temp_path_);
    committed_ = true;
}

}  // namespace attn::io
