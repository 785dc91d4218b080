// The one timing rule of the benchmarks: best wall time of a few runs.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>

namespace attn::bench {

inline double best_seconds(int runs, const std::function<void()>& f) {
    double best = 1e30;
    for (int i = 0; i < runs; ++i) {
        const auto start = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return best;
}

}  // namespace attn::bench
