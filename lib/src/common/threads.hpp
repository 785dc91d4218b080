// Internal: how many worker threads a call uses.
#pragma once

namespace attn::detail {

// The number of threads worker code should use: `requested`, or all cores when 0.
int resolve_threads(int requested);

}  // namespace attn::detail
