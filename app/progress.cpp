#include "progress.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>

namespace attn::cli {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kDelay{1000};
constexpr std::chrono::milliseconds kInterval{100};
constexpr int kWidth = 30;

void put(const char* text, std::size_t size) {
    // A progress bar is best effort: a failed write changes nothing.
    while (size > 0) {
        const ssize_t n = ::write(STDERR_FILENO, text, size);
        if (n <= 0) return;
        text += n;
        size -= static_cast<std::size_t>(n);
    }
}

class Bar {
public:
    explicit Bar(std::string label) : label_(std::move(label)), start_(Clock::now()) {}
    Bar(const Bar&) = delete;
    Bar& operator=(const Bar&) = delete;
    ~Bar() { erase(); }

    void update(std::size_t done, std::size_t total) {
        if (done >= total) {
            erase();
            return;
        }
        const auto now = Clock::now();
        if (now - start_ < kDelay || (shown_ && now - last_ < kInterval)) return;
        last_ = now;
        shown_ = true;
        const double fraction = static_cast<double>(done) / static_cast<double>(total);
        const double elapsed = std::chrono::duration<double>(now - start_).count();
        const int filled = static_cast<int>(fraction * kWidth);
        char line[256];
        int n = std::snprintf(line, sizeof line, "\r%s [%.*s%*s] %3d%%  %.1f s", label_.c_str(), filled,
                              "##############################", kWidth - filled, "", static_cast<int>(fraction * 100),
                              elapsed);
        if (done > 0 && n > 0 && n < static_cast<int>(sizeof line)) {
            n += std::snprintf(line + n, sizeof line - static_cast<std::size_t>(n), ", about %.0f s left\033[K",
                               elapsed / fraction - elapsed + 0.5);
        }
        if (n > 0) put(line, std::min(static_cast<std::size_t>(n), sizeof line - 1));
    }

private:
    void erase() {
        if (!shown_) return;
        shown_ = false;
        put("\r\033[K", 4);
    }

    std::string label_;
    Clock::time_point start_, last_;
    bool shown_ = false;
};

}  // namespace

std::function<void(std::size_t, std::size_t)> progress_bar(std::string label) {
    if (!::isatty(STDERR_FILENO)) return {};
    auto bar = std::make_shared<Bar>(std::move(label));
    return [bar](std::size_t done, std::size_t total) { bar->update(done, total); };
}

PhaseTimer::PhaseTimer(bool enabled) : enabled_(enabled), start_(Clock::now()), last_(start_) {}

void PhaseTimer::mark(const char* phase) {
    if (!enabled_) return;
    const auto now = Clock::now();
    phases_.emplace_back(phase, std::chrono::duration<double>(now - last_).count());
    last_ = now;
}

void PhaseTimer::report() const {
    if (!enabled_) return;
    std::string line = "attn-cli: timings:";
    char part[64];
    for (const auto& [phase, seconds] : phases_) {
        std::snprintf(part, sizeof part, " %s %.3f s,", phase, seconds);
        line += part;
    }
    std::snprintf(part, sizeof part, " total %.3f s\n", std::chrono::duration<double>(last_ - start_).count());
    line += part;
    put(line.data(), line.size());
}

}  // namespace attn::cli
