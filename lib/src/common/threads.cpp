#include "common/threads.hpp"

#include <omp.h>

namespace attn::detail {

int resolve_threads(int requested) { return requested > 0 ? requested : omp_get_num_procs(); }

}  // namespace attn::detail
