// The registry of temporary files of uncommitted outputs (temp_files.hpp). Fixed storage
// and atomics only, so that remove_pending_outputs can run in a signal handler (unlink
// is async-signal-safe; malloc and locks are not).
#include "io/temp_files.hpp"

#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>

#include "attn/io.hpp"

namespace attn::detail {
namespace {

constexpr std::size_t kMaxTempFiles = 16;
constexpr std::size_t kMaxTempPath = 4096;

struct TempSlot {
    std::atomic<bool> used{false};
    char path[kMaxTempPath] = {};
};

std::array<TempSlot, kMaxTempFiles>& temp_slots() {
    static std::array<TempSlot, kMaxTempFiles> slots;
    return slots;
}

}  // namespace

void register_temp_file(const std::string& path) {
    if (path.size() >= kMaxTempPath) return;  // not removable from a signal handler; still removed normally
    for (auto& slot : temp_slots()) {
        bool expected = false;
        if (slot.used.load() || !slot.used.compare_exchange_strong(expected, true)) continue;
        std::memcpy(slot.path, path.c_str(), path.size() + 1);
        return;
    }
}

void unregister_temp_file(const std::string& path) {
    for (auto& slot : temp_slots()) {
        if (slot.used.load() && path == slot.path) {
            slot.path[0] = '\0';
            slot.used.store(false);
            return;
        }
    }
}

}  // namespace attn::detail

namespace attn::io {

void remove_pending_outputs() noexcept {
    for (auto& slot : detail::temp_slots()) {
        if (slot.used.load() && slot.path[0] != '\0') ::unlink(slot.path);
    }
}

}  // namespace attn::io
