#include "common/threads.hpp"

#include <omp.h>

namespace attn::detail {

// omp_get_num_procs() counts this process's CPU affinity mask (sched_getaffinity), so the
// default needs neither /sys nor /proc: in a chroot without them every allowed core is still
// used (tests/cli_test.py, test_runs_without_sys_and_proc).
int resolve_threads(int requested) { return requested > 0 ? requested : omp_get_num_procs(); }

}  // namespace attn::detail
