"""What tests/cli_test.py and tests/error_matrix_test.py share: how a suite ends, and
what a test that needs something of the machine does when the machine lacks it.

A special file (/sys, /proc, /dev/full) or root may be missing (a chroot without /sys
mounted, a container): a test that needs one is SKIPPED with a visible reason, never
failed and never passed. A script exits 77 when nothing failed but something was
skipped, which CTest reports as skipped (SKIP_RETURN_CODE in tests/CMakeLists.txt).
"""
import os
import subprocess
import sys
import tempfile
import unittest

SKIPPED = 77


def missing(*paths):
    """The paths of `paths` that do not exist on this machine."""
    return [p for p in paths if not os.path.exists(p)]


def require_files(test, *paths):
    """Skips `test` (a unittest.TestCase) unless every path exists."""
    absent = missing(*paths)
    if absent:
        test.skipTest("needs " + ", ".join(absent) + ", which this machine lacks")


def main():
    """Runs the tests of the script being run (its own argv handling done); prints each skip
    with its reason on standard error and exits 0 (all passed), 1 (a failure) or 77 (none
    failed, some skipped)."""
    program = unittest.main(module="__main__", verbosity=1, exit=False)
    result = program.result
    for test, reason in result.skipped:
        print(f"SKIPPED {test.id()}: {reason}", file=sys.stderr)
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(SKIPPED if result.skipped else 0)


# The child's peak RSS counts the memory of the process it was forked from (Linux keeps the
# old address space's high-water mark across fork and exec, vfork too): forked from the test,
# a run would carry the test's own tens of MB of numpy arrays. So the program is started by
# this small helper (python3 -S, a few MB), which reports the peak of its child.
_PEAK_HELPER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
if code < 0:
    import signal
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def run_with_rusage(argv, cwd=None):
    """Runs argv to its end: (exit status or -signal, standard output, standard error as
    text, the program's peak resident memory in bytes, the helper's few MB included). Both
    streams go to temporary files (not /dev/null, which a chroot may lack), so no pipe fills."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as peak:
        child = subprocess.run([sys.executable, "-S", "-c", _PEAK_HELPER, peak.name, *argv], cwd=cwd, stdout=out,
                               stderr=err)
        out.seek(0)
        err.seek(0)
        return child.returncode, out.read(), err.read().decode(errors="replace"), int(peak.read()) * 1024  # kB
