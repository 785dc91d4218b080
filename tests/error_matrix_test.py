#!/usr/bin/python3
"""The bad-input matrix (tests/errors.md), row by row, and the faults a run can meet:
SIGINT, a closed standard output, a full disk, inputs too large for memory.

usage: error_matrix_test.py PATH/TO/attn-cli      (needs Debian's python3-numpy)

Every row of tests/errors.md runs in a fresh temporary folder that holds `data` and
`tests/data` (links to the repository's) and the row's fixtures, with attn-cli first on
PATH, through `sh -c`. The row passes when the exit status is the row's, standard error
is exactly one line `attn-cli: error: ` followed by text the row's regex matches (at its
start), standard output is empty, the folder holds exactly what it held before the run
(no new file, no `.NAME.tmp-*`), and every file of the row's `existing` column is byte
for byte what it was.

Exit status: 0 all passed, 1 a failure, 77 none failed but some were skipped (CTest's
SKIP_RETURN_CODE, so that a skipped check is reported as skipped, not as passed).
"""
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zipfile
import zlib

import numpy as np

import support

CLI = None
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MATRIX = os.path.join(HERE, "errors.md")
ROW_COLUMNS = ["id", "status", "message", "command", "fixtures", "existing"]
FIXTURE_COLUMNS = ["fixture", "made by"]
PREFIX = "attn-cli: error: "
REQUIRES = "requires "
SPECIAL_FILE = r"/(?:dev|proc|sys)/[\w./-]*[\w]"


# ---- reading tests/errors.md ------------------------------------------------------------

def split_cells(line):
    """The cells of a markdown table line: split at '|' not escaped as '\\|', trimmed, with
    a cell that is one code span unwrapped and '\\|' read as '|'."""
    cells, cell, i = [], "", 0
    body = line.strip()
    assert body.startswith("|") and body.endswith("|"), line
    body = body[1:-1]
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] == "|":
            cell += "|"
            i += 2
            continue
        if body[i] == "|":
            cells.append(cell)
            cell = ""
        else:
            cell += body[i]
        i += 1
    cells.append(cell)
    out = []
    for c in cells:
        c = c.strip()
        if len(c) >= 2 and c.startswith("`") and c.endswith("`") and "`" not in c[1:-1]:
            c = c[1:-1]
        out.append(c)
    return out


def read_tables(path):
    """Every table of the file as (section heading, header cells, rows of cells)."""
    tables, section = [], ""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        if line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|$", lines[i + 1]):
            header = split_cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(split_cells(lines[i]))
                i += 1
            tables.append((section, header, rows))
            continue
        i += 1
    return tables


class Row:
    def __init__(self, section, cells):
        self.section = section
        self.id, status, self.message, self.command, fixtures, existing = cells
        self.status = int(status)
        items = [x.strip() for x in fixtures.split(",") if x.strip()]
        # "requires PATH": a special file the row needs; the row is skipped where it is missing.
        self.requires = [x[len(REQUIRES):].strip() for x in items if x.startswith(REQUIRES)]
        self.fixtures = [x for x in items if not x.startswith(REQUIRES)]
        self.existing = [x.strip() for x in existing.split(",") if x.strip()]


def read_matrix(path=MATRIX):
    rows, fixtures = [], {}
    for section, header, cells in read_tables(path):
        if header == ROW_COLUMNS:
            for c in cells:
                if len(c) != len(ROW_COLUMNS):
                    raise ValueError(f"{path}: row {c[:1]} has {len(c)} cells, expected {len(ROW_COLUMNS)}")
                rows.append(Row(section, c))
        elif header == FIXTURE_COLUMNS:
            for name, code in cells:
                if name in fixtures:
                    raise ValueError(f"{path}: fixture {name} defined twice")
                fixtures[name] = code
    return rows, fixtures


# ---- making fixtures ----------------------------------------------------------------------
# The "made by" column is Python, run in the row's folder with numpy as np and these.

def raw(name, data):
    """A file of these bytes (str is written as UTF-8)."""
    with open(name, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def npy_header(shape, descr="<f4", fortran_order=False, version=(1, 0)):
    """numpy's header for an array of this shape, without the data."""
    import io
    buf = io.BytesIO()
    d = {"descr": descr, "fortran_order": fortran_order, "shape": tuple(shape)}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, d)
    else:
        np.lib.format.write_array_header_2_0(buf, d)
    return buf.getvalue()


def npy_with_header(name, header_text, data=b"", major=1):
    """An .npy file whose header dict is this text, padded as numpy pads it."""
    text = header_text.encode()
    length_size = 2 if major == 1 else 4
    pad = (64 - (6 + 2 + length_size + len(text) + 1) % 64) % 64
    text += b" " * pad + b"\n"
    raw(name, b"\x93NUMPY" + bytes([major, 0]) + len(text).to_bytes(length_size, "little") + text + data)


def sparse(name, prefix, size):
    """A file of `size` bytes that starts with `prefix` and holds nothing after it (a hole)."""
    with open(name, "wb") as f:
        f.write(prefix)
        f.truncate(size)


def st(name, header, data=b""):
    """A .safetensors file: 8-byte little-endian header length, the header, the data.
    A dict header is written as JSON; bytes as they are."""
    text = json.dumps(header).encode() if isinstance(header, dict) else header
    raw(name, struct.pack("<Q", len(text)) + text + data)


def raw_deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def hand_zip(name, members):
    """A zip written field by field with ZIP64 sizes, so that its central directory can
    say what a hostile file would say. Each member: (zip name, payload, method, crc,
    declared size[, flags])."""
    out, central = bytearray(), bytearray()
    for m in members:
        zname, payload, method, crc, size = m[:5]
        flags = m[5] if len(m) > 5 else 0
        zname = zname.encode()
        offset = len(out)
        extra = struct.pack("<HHQQ", 1, 16, size, len(payload))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, flags, method, 0, 0x21, crc,
                           0xFFFFFFFF, 0xFFFFFFFF, len(zname), len(extra))
        out += zname + extra + payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, flags, method, 0, 0x21, crc,
                               0xFFFFFFFF, 0xFFFFFFFF, len(zname), len(extra), 0, 0, 0, 0, offset)
        central += zname + extra
    cd_offset = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), cd_offset, 0)
    raw(name, bytes(out))


def npy_bytes(array):
    import io
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


FIXTURE_GLOBALS = {"np": np, "raw": raw, "npy_header": npy_header, "npy_with_header": npy_with_header,
                   "sparse": sparse, "st": st, "raw_deflate": raw_deflate, "hand_zip": hand_zip,
                   "npy_bytes": npy_bytes, "zipfile": zipfile, "zlib": zlib, "os": os, "json": json}


# ---- running a row ------------------------------------------------------------------------

def listing(folder):
    """Every path under `folder` (links not followed) with a digest of each file."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path):
                out[rel] = "link"
            elif os.path.isfile(path):
                st_ = os.stat(path)
                out[rel] = f"file {st_.st_size}" + ("" if st_.st_size > (1 << 24) else " " + digest(path))
            else:
                out[rel] = "dir"
    return out


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def bin_dir_for(cli):
    """A folder holding `attn-cli`, a link to the program under test."""
    folder = tempfile.mkdtemp(prefix="attn-bin-")
    os.symlink(cli, os.path.join(folder, "attn-cli"))
    return folder


def row_folder():
    folder = tempfile.mkdtemp(prefix="attn-row-")
    os.symlink(os.path.join(ROOT, "data"), os.path.join(folder, "data"))
    os.mkdir(os.path.join(folder, "tests"))
    os.symlink(os.path.join(ROOT, "tests", "data"), os.path.join(folder, "tests", "data"))
    return folder


def make_fixtures(folder, names, fixtures):
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for name in names:
            exec(compile(fixtures[name], f"fixture {name}", "exec"), dict(FIXTURE_GLOBALS))
    finally:
        os.chdir(cwd)


def sentinel(row, path):
    return f"sentinel of {row.id}: {path}\n".encode()


def check_row(row, fixtures, bin_dir):
    """Runs one row; returns the list of what went wrong (empty when it passed)."""
    problems = []
    folder = row_folder()
    try:
        make_fixtures(folder, row.fixtures, fixtures)
        for path in row.existing:
            raw(os.path.join(folder, path), sentinel(row, path))
        before = listing(folder)
        env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""), LC_ALL="C")
        # Standard input is empty (a pipe, not /dev/null, which a chroot may lack).
        p = subprocess.run(["sh", "-c", row.command], cwd=folder, env=env, capture_output=True, input=b"",
                           timeout=120)
        err = p.stderr.decode(errors="replace")
        if p.returncode != row.status:
            problems.append(f"exit status {p.returncode}, expected {row.status}")
        lines = err.split("\n")
        if len(lines) != 2 or lines[1] != "":
            problems.append(f"stderr is not one line: {err!r}")
        elif not lines[0].startswith(PREFIX):
            problems.append(f"stderr does not start with {PREFIX!r}: {err!r}")
        elif not re.match(row.message, lines[0][len(PREFIX):]):
            problems.append(f"message {lines[0][len(PREFIX):]!r} does not match {row.message!r}")
        if p.stdout:
            problems.append(f"stdout is not empty: {p.stdout[:200]!r}")
        after = listing(folder)
        if after != before:
            added = sorted(set(after) - set(before))
            removed = sorted(set(before) - set(after))
            changed = sorted(k for k in set(after) & set(before) if after[k] != before[k])
            problems.append(f"the folder changed: added {added}, removed {removed}, changed {changed}")
        for path in row.existing:
            with open(os.path.join(folder, path), "rb") as f:
                if f.read() != sentinel(row, path):
                    problems.append(f"existing file {path} was changed")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return problems


# ---- the tests --------------------------------------------------------------------------

ROWS, FIXTURES = read_matrix()


class MatrixTest(unittest.TestCase):
    """One test per row of tests/errors.md (added below), and checks of the document."""

    @classmethod
    def setUpClass(cls):
        cls.bin_dir = bin_dir_for(CLI)
        cls.repo_before = {d: listing(os.path.join(ROOT, d)) for d in ("data", os.path.join("tests", "data"))}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.bin_dir, ignore_errors=True)
        # No row may write into the repository's data folders (they are linked in).
        for d, before in cls.repo_before.items():
            if listing(os.path.join(ROOT, d)) != before:
                raise AssertionError(f"a row changed {d}")

    def test_document(self):
        self.assertGreaterEqual(len(ROWS), 100)
        ids = [r.id for r in ROWS]
        self.assertEqual(len(ids), len(set(ids)), "row ids must be unique")
        for r in ROWS:
            self.assertRegex(r.id, r"^[A-Z]+[0-9]{2,3}$")
            self.assertIn(r.status, (1, 2), r.id)
            re.compile(r.message)
            for name in r.fixtures:
                self.assertIn(name, FIXTURES, f"{r.id}: no fixture {name}")
            # A special file the command names is one the row must declare it requires.
            for path in re.findall(SPECIAL_FILE, r.command):
                self.assertIn(path, r.requires, f"{r.id}: the command uses {path}: add 'requires {path}'")
            if "available" in r.message:  # the memory attn-cli sees comes from /proc/meminfo
                self.assertIn("/proc/meminfo", r.requires, r.id)
        used = {name for r in ROWS for name in r.fixtures}
        self.assertEqual(sorted(set(FIXTURES) - used), [], "fixtures no row uses")
        sections = {r.section for r in ROWS}
        for s in ("Usage", "Outputs and the operating system", "Inspect", "mha weights"):
            self.assertTrue(any(x.startswith(s) for x in sections), s)

    def test_the_checker_can_fail(self):
        # A row whose status, message or output is wrong must be reported, not passed.
        good = ROWS[0]
        for cells in ([good.id, str(3 - good.status), good.message, good.command, "", ""],
                      [good.id, str(good.status), "no such message", good.command, "", ""],
                      ["X01", "0", ".*", "attn-cli random --shape 2", "", ""],
                      ["X02", "1", ".*", "attn-cli convert data/q.npy out.npy; false", "", ""],
                      ["X03", "1", ".*", "echo 'attn-cli: error: x' >&2; echo x > out.npy; exit 1", "", ""],
                      ["X04", "1", ".*", "echo 'attn-cli: error: x' >&2; echo > kept; exit 1", "", "kept"]):
            self.assertNotEqual(check_row(Row("test", cells), FIXTURES, self.bin_dir), [], cells)

def add_row_tests():
    for row in ROWS:
        def test(self, row=row):
            support.require_files(self, *row.requires)
            problems = check_row(row, FIXTURES, self.bin_dir)
            if problems:
                self.fail(f"row {row.id} ({row.section}): {row.command}\n  " + "\n  ".join(problems))
        test.__doc__ = f"{row.id}: {row.command}"
        setattr(MatrixTest, f"test_row_{row.id}", test)


add_row_tests()


# ---- faults ---------------------------------------------------------------------------------

def meminfo_available(test):
    """MemAvailable + SwapFree of /proc/meminfo, in bytes: what attn-cli compares with
    (`test` is skipped where there is no /proc/meminfo: attn-cli then checks nothing)."""
    support.require_files(test, "/proc/meminfo")
    fields = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":")
            fields[key] = int(value.split()[0]) * 1024
    return fields["MemAvailable"] + fields.get("SwapFree", 0)


def bytes_to_string(n):
    """attn::bytes_to_string: decimal units, one decimal."""
    if n < 1000:
        return f"{n} bytes"
    value, units = n / 1000, ["kB", "MB", "GB", "TB", "PB", "EB"]
    unit = 0
    while value >= 999.95 and unit + 1 < len(units):
        value /= 1000
        unit += 1
    return f"{value:.1f} {units[unit]}"


def parse_bytes(text):
    number, unit = text.split()
    return float(number) * {"bytes": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15}[unit]


class FaultTest(unittest.TestCase):
    """What a run meets from outside: signals, a closed pipe, a full disk, too little memory."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="attn-fault-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def run_cli(self, *args, **kw):
        return subprocess.run([CLI, *args], cwd=self.dir, capture_output=True, timeout=300, **kw)

    def run_with_rusage(self, *args):
        """(exit status or -signal, stderr, peak RSS in bytes) of one run."""
        status, _, err, peak = support.run_with_rusage([CLI, *args], cwd=self.dir)
        return status, err, peak

    def assert_one_error_line(self, stderr, pattern):
        text = stderr.decode() if isinstance(stderr, bytes) else stderr
        self.assertEqual(text.count("\n"), 1, text)
        self.assertTrue(text.startswith(PREFIX), text)
        self.assertRegex(text[len(PREFIX):], pattern)

    def big_tensor(self):
        """big.npy: 25 million float32, 100 MB; its JSON text is about 250 MB."""
        p = self.run_cli("random", "--shape", "5000,5000", "-o", "big.npy")
        self.assertEqual(p.returncode, 0, p.stderr)
        return "big.npy"

    def wait_for_temp(self, proc, name):
        """Waits until the temporary file of `name` exists and holds data."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            temps = [f for f in os.listdir(self.dir) if f.startswith("." + name + ".tmp-")]
            if temps and os.path.getsize(self.path(temps[0])) > 0:
                return temps[0]
            if proc.poll() is not None:
                self.fail(f"attn-cli ended (status {proc.returncode}) before it was writing {name}")
            time.sleep(0.005)
        self.fail(f"no temporary file of {name} after 60 s")

    # ---- (a) SIGINT ----------------------------------------------------------------------
    def test_sigint_during_a_write_dies_quietly_and_leaves_no_temporary_file(self):
        self.big_tensor()
        p = subprocess.Popen([CLI, "convert", "big.npy", "out.json"], cwd=self.dir, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.wait_for_temp(p, "out.json")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, -signal.SIGINT)  # killed by SIGINT, as without a handler
        self.assertEqual(err, b"")
        self.assertEqual(out, b"")
        self.assertEqual(os.listdir(self.dir), ["big.npy"])

    def signal_in_a_shell(self, signal_number):
        """Sends the signal to attn-cli (not its shell) while it writes out.json; returns
        what the shell printed, `status N`, and its standard error."""
        # The shell's child is found through /proc (CONFIG_PROC_CHILDREN); a background job
        # would not do: a non-interactive shell starts those with SIGINT ignored.
        support.require_files(self, f"/proc/{os.getpid()}/task/{os.getpid()}/children")
        self.big_tensor()
        sh = subprocess.Popen(["sh", "-c", f"'{CLI}' convert big.npy out.json; echo \"status $?\""], cwd=self.dir,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        child = None
        while child is None and time.monotonic() < deadline:
            with open(f"/proc/{sh.pid}/task/{sh.pid}/children") as f:
                pids = f.read().split()
            child = int(pids[0]) if pids else None
            time.sleep(0.005)
        self.assertIsNotNone(child, "attn-cli did not start under sh")
        class Proc:  # wait_for_temp only polls
            returncode = None
            def poll(self):
                return None if os.path.exists(f"/proc/{child}") else 0
        self.wait_for_temp(Proc(), "out.json")
        os.kill(child, signal_number)  # the program alone, as a terminal's Ctrl-C would reach it
        out, err = sh.communicate(timeout=60)
        self.assertEqual(os.listdir(self.dir), ["big.npy"])
        return out, err

    def test_sigint_in_a_shell_gives_status_130(self):
        self.assertEqual(self.signal_in_a_shell(signal.SIGINT), (b"status 130\n", b""))

    # ---- SIGTERM and SIGHUP, as SIGINT -------------------------------------------------------
    def test_sigterm_and_sighup_during_a_write_leave_no_file_and_keep_the_target(self):
        # docs/cli.md, "Signals": the unfinished outputs' temporary files are removed and the
        # process dies of the signal, quietly; an existing target is not touched.
        self.big_tensor()
        for signal_number in (signal.SIGTERM, signal.SIGHUP):
            with self.subTest(signal=signal.Signals(signal_number).name):
                for existing in (False, True):
                    if existing:
                        with open(self.path("out.json"), "wb") as f:
                            f.write(b"sentinel")
                    p = subprocess.Popen([CLI, "convert", "big.npy", "out.json"], cwd=self.dir,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    self.wait_for_temp(p, "out.json")
                    p.send_signal(signal_number)
                    out, err = p.communicate(timeout=60)
                    self.assertEqual(p.returncode, -signal_number)
                    self.assertEqual((out, err), (b"", b""))
                    if existing:
                        with open(self.path("out.json"), "rb") as f:
                            self.assertEqual(f.read(), b"sentinel")
                        os.unlink(self.path("out.json"))
                    self.assertEqual(os.listdir(self.dir), ["big.npy"])

    def test_sigterm_and_sighup_in_a_shell_give_128_plus_the_signal(self):
        # The shell may say what killed its child (dash: "Terminated", "Hangup"); attn-cli says nothing.
        for signal_number, status in ((signal.SIGTERM, b"status 143\n"), (signal.SIGHUP, b"status 129\n")):
            out, err = self.signal_in_a_shell(signal_number)
            self.assertEqual(out, status)
            self.assertNotIn(b"attn-cli", err)
            os.unlink(self.path("big.npy"))

    def test_sigint_ignored_by_the_parent_stays_ignored(self):
        self.big_tensor()
        p = subprocess.Popen([CLI, "convert", "big.npy", "out.json"], cwd=self.dir, stderr=subprocess.PIPE,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        self.wait_for_temp(p, "out.json")
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=300)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(err, b"")
        with open(self.path("out.json"), "rb") as f:
            self.assertEqual(f.read(40), b'{"shape": [5000, 5000], "dtype": "float3')
            f.seek(-2, os.SEEK_END)
            self.assertEqual(f.read(), b"}\n")
        self.assertEqual(sorted(os.listdir(self.dir)), ["big.npy", "out.json"])

    # ---- (b) a closed standard output -------------------------------------------------------
    def test_closed_stdout_ends_by_sigpipe_without_a_message(self):
        self.big_tensor()
        for fmt in ("json", "npy"):
            with self.subTest(format=fmt):
                p = subprocess.Popen([CLI, "convert", "big.npy", "-", "--format", fmt], cwd=self.dir,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                head = p.stdout.read(10)
                p.stdout.close()  # as `| head -c 10` does
                err = p.stderr.read()
                p.stderr.close()
                p.wait(timeout=60)
                self.assertEqual(len(head), 10)
                self.assertEqual(head[:1], b"{" if fmt == "json" else b"\x93")
                self.assertEqual(p.returncode, -signal.SIGPIPE)
                self.assertEqual(err, b"")
                self.assertEqual(os.listdir(self.dir), ["big.npy"])

    def test_closed_stdout_in_a_pipeline_gives_status_141(self):
        self.big_tensor()
        p = subprocess.run(["bash", "-c", f"set -o pipefail; '{CLI}' convert big.npy - --format npy | head -c 10 | wc -c;"
                            " echo \"status $?\""], cwd=self.dir, capture_output=True, timeout=120)
        self.assertEqual(p.stdout.split(), [b"10", b"status", b"141"])
        self.assertEqual(p.stderr, b"")
        self.assertEqual(os.listdir(self.dir), ["big.npy"])

    def test_closed_stdout_with_sigpipe_ignored_is_a_one_line_error(self):
        self.big_tensor()
        # Python ignores SIGPIPE; with restore_signals=False the child inherits that.
        p = subprocess.Popen([CLI, "convert", "big.npy", "-"], cwd=self.dir, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, restore_signals=False)
        p.stdout.read(10)
        p.stdout.close()
        err = p.stderr.read()
        p.stderr.close()
        p.wait(timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assert_one_error_line(err, r"^<stdout>: write failed: Broken pipe$")
        self.assertEqual(os.listdir(self.dir), ["big.npy"])

    # ---- (c) a full disk -------------------------------------------------------------------
    def small_tmpfs(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root (CI runs as root)")
        mnt = tempfile.mkdtemp(prefix="attn-tmpfs-")
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], capture_output=True)
        if p.returncode != 0:
            os.rmdir(mnt)
            self.fail(f"mount -t tmpfs failed as root: {p.stderr.decode().strip()}")
        def unmount():
            subprocess.run(["umount", mnt], check=True)
            os.rmdir(mnt)
        self.addCleanup(unmount)
        return mnt

    def test_full_disk_is_one_line_and_leaves_nothing(self):
        mnt = self.small_tmpfs()
        for fmt in ("npy", "json"):
            with self.subTest(format=fmt):
                out = os.path.join(mnt, "out." + fmt)
                p = self.run_cli("random", "--shape", "1000,1000", "-o", out)  # 4 MB, 1 MiB of room
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assert_one_error_line(p.stderr, "^" + re.escape(out) + ": write failed: No space left on device$")
                self.assertEqual(p.stdout, b"")
                self.assertEqual(os.listdir(mnt), [])
        keep = os.path.join(mnt, "keep.npy")
        with open(keep, "wb") as f:
            f.write(b"sentinel")
        p = self.run_cli("sdpa", "-q", os.path.join(ROOT, "data", "q.npy"), "-o", keep, "-s", os.path.join(mnt, "w.npy"),
                         "--logits", os.path.join(mnt, "l.json"), "--threads", "1")
        self.assertEqual(p.returncode, 0, p.stderr)  # small outputs fit
        for name in ("l.json", "w.npy"):
            os.unlink(os.path.join(mnt, name))
        with open(keep, "wb") as f:
            f.write(b"sentinel")
        p = self.run_cli("random", "--shape", "1000,1000", "-o", keep)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assert_one_error_line(p.stderr, "^" + re.escape(keep) + ": write failed: No space left on device$")
        with open(keep, "rb") as f:
            self.assertEqual(f.read(), b"sentinel")
        self.assertEqual(os.listdir(mnt), ["keep.npy"])

    # ---- (d) inputs too large for this machine's memory -----------------------------------------
    def assert_refused(self, args, subject, what, needed):
        status, err, peak = self.run_with_rusage(*args)
        available = meminfo_available(self)
        self.assertEqual(status, 1, err)
        self.assert_one_error_line(err, "^" + re.escape(f"{subject}: needs {bytes_to_string(needed)} for {what}, ") +
                                   r"[0-9.]+ (kB|MB|GB|TB) available$")
        said = parse_bytes(re.search(r", ([0-9.]+ \w+) available$", err).group(1))
        self.assertLess(abs(said - available), 0.5 * available, "the available memory it names")
        self.assertLess(peak, 300 << 20, "refused before it allocated")
        self.assertFalse(os.path.exists(self.path("out.npy")))

    def test_random_larger_than_memory(self):
        n = meminfo_available(self) * 2 // 4
        self.assert_refused(["random", "--shape", str(n), "-o", "out.npy"], "--shape", f"float32 ({n},)", 4 * n)

    def test_npy_larger_than_memory(self):
        n = meminfo_available(self) * 2 // 4
        header = npy_header((n,))
        sparse(self.path("huge.npy"), header, len(header) + 4 * n)
        self.assert_refused(["convert", "huge.npy", "out.npy"], "huge.npy", f"float32 ({n},)", 4 * n)

    def test_sdpa_weights_larger_than_memory(self):
        length = int((meminfo_available(self) * 2 / 4) ** 0.5) + 1
        np.save(self.path("q.npy"), np.zeros((length, 1), np.float32))
        # Into .npz the weights are held whole (a .npy file would stream: no memory bound).
        self.assert_refused(["sdpa", "-q", "q.npy", "-o", "out.npy", "-s", "w.npz"], "-s/--scores",
                            f"float32 output ({length}, 1) + weights ({length}, {length})", 4 * (length + length ** 2))

    def test_mha_weights_larger_than_memory(self):
        length = int((meminfo_available(self) * 2 / 4) ** 0.5) + 1
        np.save(self.path("x.npy"), np.zeros((1, length, 1), np.float32))
        # Averaged, every head's weights are held whole, even for a .npy file (which
        # would otherwise stream: no memory bound).
        self.assert_refused(["mha", "--heads", "1", "-q", "x.npy", "--seed", "0", "-o", "out.npy", "-s", "w.npy",
                             "--average-heads"],
                            "-s/--scores", f"float32 output (1, 1, {length}, 1) + weights (1, 1, {length}, {length})",
                            4 * (length + length ** 2))

    def test_npz_member_inflating_beyond_memory(self):
        # A deflated member whose central directory and npy header agree on n float32 (the
        # stream holds only the header): the member and its tensor would need 8n bytes.
        n = int(meminfo_available(self) * 0.75) // 4
        header = npy_header((n,))
        size = len(header) + 4 * n
        if size > 64 << 30:
            self.skipTest("this machine has more memory than an npz member may declare (64 GiB)")
        # An unfinished deflate stream of the header and enough zeros for the reader's first
        # look (it reads the header before it checks the size), then filler to bring the
        # compressed size to a ratio deflate can reach. Nothing reads past the first look.
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        payload = deflate.compress(header + bytes(20000)) + deflate.flush(zlib.Z_SYNC_FLUSH) + bytes(size // 1000)
        hand_zip(self.path("x.npz"), [("x.npy", payload, 8, 0, size)])
        self.assert_refused(["convert", "x.npz", "out.npy"], "x.npz:x",
                            f"the inflated member and the float32 tensor ({n},) decoded from it", size + 4 * n)


if __name__ == "__main__":
    CLI = os.path.abspath(sys.argv.pop(1))
    support.main()
