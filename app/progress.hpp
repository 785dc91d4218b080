// What a long run shows on standard error: a progress bar, and with --timings the time
// each phase took.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace attn::cli {

// A callback for AttentionOptions::progress. It draws only when standard error is a
// terminal (otherwise it is empty and costs nothing), from the first update after one
// second, at most ten times a second, and erases its line when the work is done or
// abandoned, so that it never mixes with output or error messages.
std::function<void(std::size_t done, std::size_t total)> progress_bar(std::string label);

// --timings: mark() ends a phase under a name; report() writes one line to standard error,
// `attn-cli: timings: read 0.012 s, attention 0.150 s, write 0.009 s, total 0.171 s`.
class PhaseTimer {
public:
    explicit PhaseTimer(bool enabled);
    void mark(const char* phase);
    void report() const;

private:
    using Clock = std::chrono::steady_clock;
    bool enabled_;
    Clock::time_point start_, last_;
    std::vector<std::pair<const char*, double>> phases_;
};

}  // namespace attn::cli
