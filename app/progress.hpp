// A progress bar on standard error for computations longer than about a second.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace attn::cli {

// A callback for AttentionOptions::progress. It draws only when standard error is a
// terminal (otherwise it is empty and costs nothing), from the first update after one
// second, at most ten times a second, and erases its line when the work is done or
// abandoned, so that it never mixes with output or error messages.
std::function<void(std::size_t done, std::size_t total)> progress_bar(std::string label);

}  // namespace attn::cli
