#!/usr/bin/python3
"""End-to-end tests of the attn-cli program: exit statuses, one-line errors, atomic
outputs, pipelines, formats, and values against numpy computations.

usage: cli_test.py PATH/TO/attn-cli [TestClass.test_name ...]      (needs Debian's python3-numpy)

Exit status: 0 all passed, 1 a failure, 77 none failed but some were skipped (a test
needing root or a special file this machine lacks; each skip is printed with its reason).
"""
import io
import json
import math
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

import numpy as np

import support

CLI = None
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
NONFINITE = os.path.join(HERE, "data", "nonfinite")

def run(*args, stdin=None, cwd=None):
    return subprocess.run([CLI, *args], input=stdin, capture_output=True, cwd=cwd, timeout=120)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def read_text(path):
    with open(path) as f:
        return f.read()


def load_json(text):
    j = json.loads(text)
    return np.array(j["data"], dtype=j["dtype"]).reshape(j["shape"])


def sdpa_reference(q, k, v, allowed=None, scale=None):
    """float64 attention; `allowed` is a bool mask (True = may attend)."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    logits = q @ np.swapaxes(k, -1, -2) * scale
    if allowed is not None:
        logits = np.where(allowed, logits, -np.inf)
    m = logits.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(logits - m)
    s = e.sum(-1, keepdims=True)
    w = np.where(s > 0, e / np.where(s > 0, s, 1), 0)
    return w @ v, w


def assert_like_torch(test, got, want, what):
    """NaN where torch has NaN, the same infinities, finite values close."""
    got, want = got.astype(np.float64), want.astype(np.float64)
    test.assertEqual(got.shape, want.shape, what)
    nan_differs = np.argwhere(np.isnan(got) != np.isnan(want))
    test.assertEqual(nan_differs.tolist(), [], f"{what}: NaN positions differ (attn-cli, torch)")
    for sign in (np.isposinf, np.isneginf):
        test.assertEqual(np.argwhere(sign(got) != sign(want)).tolist(), [], f"{what}: infinities differ")
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-5, err_msg=what)


def nonfinite_cases():
    return sorted(f[:-4] for f in os.listdir(NONFINITE) if f.endswith(".npz"))


# ---- heatmaps: an independent PNG decoder and the layout of lib/src/render/heatmap.cpp ----

INK = 0x222222                 # text and tick marks (heatmap.cpp kInk)
VIRIDIS_0 = 0x440154           # viridis(0) and viridis(1) (attn/inspect.hpp) ...
VIRIDIS_1 = 0xfde725
VIRIDIS_HALF = 0x21918c        # ... and matplotlib's viridis(0.5) = (0.127568, 0.566949, 0.550556) in 8 bits


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def decode_png(data, packed=True):
    """An 8-bit, non-interlaced grey, grey+alpha, RGB or RGBA PNG (what libpng writes for
    attn::encode_png: RGB) decoded with zlib alone, every chunk's CRC checked and the row
    filters 0-4 undone. Returns (height, width) of 0xRRGGBB ints (packed, RGB only), else
    (height, width, channels) bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, idat, header = 8, b"", None
    while True:
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body), kind
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    assert pos == len(data), "bytes after IEND"
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and interlace == 0, header
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[colour_type]
    raw = zlib.decompress(idat)
    stride = width * channels
    assert len(raw) == height * (stride + 1), "image data of the wrong size"
    rows, prior = [], [0] * stride
    for y in range(height):
        kind, line = raw[y * (stride + 1)], list(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xff
        elif kind == 2:
            line = [(x + b) & 0xff for x, b in zip(line, prior)]
        elif kind == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - channels] if i >= channels else 0) + prior[i]) // 2) & 0xff
        elif kind == 4:
            for i in range(stride):
                left, up_left = (line[i - channels], prior[i - channels]) if i >= channels else (0, 0)
                line[i] = (line[i] + paeth(left, prior[i], up_left)) & 0xff
        else:
            assert kind == 0, f"filter type {kind}"
        rows.append(line)
        prior = line
    pixels = np.array(rows, np.uint8).reshape(height, width, channels)
    if not packed:
        return pixels
    assert channels == 3, "packed colours are RGB"
    p = pixels.astype(np.uint32)
    return (p[..., 0] << 16) | (p[..., 1] << 8) | p[..., 2]


def encode_png_rows(pixels, width, colour_type):
    """A PNG of these 8-bit rows with filter y % 5 on row y: decode_png's own test."""
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[colour_type]
    stride = width * channels
    raw, prior = b"", [0] * stride
    for y, line in enumerate(pixels.tolist()):
        kind = y % 5
        left = [line[i - channels] if i >= channels else 0 for i in range(stride)]
        up_left = [prior[i - channels] if i >= channels else 0 for i in range(stride)]
        predict = {0: [0] * stride, 1: left, 2: prior, 3: [(a + b) // 2 for a, b in zip(left, prior)],
                   4: [paeth(a, b, c) for a, b, c in zip(left, prior, up_left)]}[kind]
        raw += bytes([kind] + [(x - p) & 0xff for x, p in zip(line, predict)])
        prior = line
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, len(pixels), 8, colour_type, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def text_width(text):
    """Pixels of a text line: the 5x7 font at 2x on a 12 px advance (heatmap.cpp text_width)."""
    return len(text) * 12 - 2 if text else 0


def nice_step(minimum):
    step = 1.0
    while step < minimum:
        for m in (2.0, 2.5, 2.0):  # 1 -> 2 -> 5 -> 10
            step *= m
            if step >= minimum:
                break
    return step


def lround(x):
    return int(math.floor(x + 0.5))


class HeatmapLayout:
    """Where render_heatmap (lib/src/render/heatmap.cpp) puts things, computed from its
    rules and constants: margins 16, a header of 60 px, panels aiming at 512 px with cells
    of at most 48 px, ticks every 1, 2 or 5 x 10^n indices at least 40 px apart (queries),
    the widest key number plus two characters or one 22 px text line (key tokens) apart,
    labels cut to 12 characters, and the colour bar 20 px wide, at least 160 px tall."""

    def __init__(self, title, heads_in_file, queries, keys, heads, query_labels, key_labels, top):
        def axis(count):
            factor = max(1, -(-count // 512))
            cells = -(-count // factor)
            return factor, cells, min(max(512 // cells, 1), 48)

        def ticks(count, factor, cell_px, spacing, labels):
            step = int(nice_step(spacing / (cell_px / factor)))
            return [(int((i + 0.5) * cell_px / factor), (labels[i] if len(labels[i]) <= 12 else labels[i][:11] + "~")
                     if labels else str(i)) for i in range(0, count, step)]

        y_factor, y_cells, self.cell_h = axis(queries)
        x_factor, x_cells, self.cell_w = axis(keys)
        self.panel_h, self.panel_w = y_cells * self.cell_h, x_cells * self.cell_w
        self.query_ticks = ticks(queries, y_factor, self.cell_h, 40, query_labels)
        self.key_ticks = ticks(keys, x_factor, self.cell_w, 22 if key_labels else text_width(str(keys - 1)) + 24,
                               key_labels)
        widest = lambda ts: max(text_width(label) for _, label in ts)
        self.left = 18 + 2 * 4 + widest(self.query_ticks) + 8 + 5
        self.key_label_h = widest(self.key_ticks) if key_labels else 18
        block_w = self.left + max(self.panel_w, text_width(f"head {heads[-1]}")) + 28
        block_h = 28 + self.panel_h + (5 + 4 + self.key_label_h + 8 + 18 + 4) + 16
        n = len(heads)
        cols = n if n <= 4 else min(n, max(4, math.ceil(math.sqrt(n))))
        rows = -(-n // cols)
        self.panels = [(16 + (k % cols) * block_w + self.left, 60 + (k // cols) * block_h + 28) for k in range(n)]
        bar_x, bar_y, bar_h = 16 + cols * block_w, 60 + 28, max(self.panel_h, 160)
        self.bar = (bar_x, bar_y, bar_h)
        raw = top / 5
        magnitude = 10.0 ** math.floor(math.log10(raw))
        for m in (1.0, 2.0, 5.0, 10.0):
            step = m * magnitude
            if step >= raw:
                break
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        values = []
        while len(values) * step <= top * (1 + 1e-9):
            values.append(len(values) * step)
        self.bar_ticks = [(bar_y + lround((1 - v / top) * (bar_h - 1)), "%.*f" % (decimals, v)) for v in values]
        label_w = max([text_width("weight")] + [text_width(label) + 30 for _, label in self.bar_ticks])
        info = (f"{heads_in_file} head{'s' if heads_in_file != 1 else ''}, {queries} quer{'ies' if queries != 1 else 'y'}"
                f" x {keys} key{'s' if keys != 1 else ''}")
        self.width = max(bar_x + 20 + label_w, 16 + max(text_width(title), text_width(info))) + 16
        self.height = 60 + max(rows * block_h, 28 + bar_h + 18) + 16


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def assert_error(self, proc, status, *fragments):
        self.assertEqual(proc.returncode, status, proc.stderr)
        err = proc.stderr.decode()
        self.assertTrue(err.startswith("attn-cli: error: "), err)
        self.assertEqual(err.count("\n"), 1, f"expected one line: {err!r}")
        for f in fragments:
            self.assertIn(f, err)
        self.assertEqual(proc.stdout, b"")

    # ---- the program's face --------------------------------------------------------
    def test_version_and_help(self):
        p = run("--version")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout.decode(), r"^attn-cli \d+\.\d+\.\d+")
        p = run("--help")
        self.assertEqual(p.returncode, 0)
        for word in ("sdpa", "mha", "convert", "random", "inspect", "Examples", "Exit status"):
            self.assertIn(word, p.stdout.decode())
        for sub in ("sdpa", "mha", "convert", "random", "inspect"):
            h = run(sub, "--help")
            self.assertEqual(h.returncode, 0)
            self.assertIn("Examples", h.stdout.decode())

    def test_usage_errors_exit_2_with_one_line(self):
        self.assert_error(run("frobnicate"), 2, "frobnicate: unknown subcommand")
        self.assert_error(run("--frobnicate"), 2, "--frobnicate: unknown flag")
        self.assert_error(run(), 2)
        self.assert_error(run("sdpa"), 2, "--query")
        self.assert_error(run("sdpa", "-q", "x.npy", "--bogus"), 2, "--bogus")
        self.assert_error(run("sdpa", "-q", "x.npy", "--causal", "sideways"), 2, "--causal")
        self.assert_error(run("sdpa", "-q", "x.npy", "--dtype", "float16"), 2, "--dtype")
        self.assert_error(run("sdpa", "-q", "x.npy", "--threads", "0"), 2, "--threads")
        q = os.path.join(DATA, "q.npy")
        self.assert_error(run("sdpa", "-q", q, "-o", self.path("out.txt")), 2, "out.txt", ".npy, .json")
        self.assert_error(run("mha", "--heads", "3", "-q", q, "--seed", "0"), 2, "--heads")
        self.assert_error(run("mha", "--heads", "8", "--kv-heads", "3", "-q", q, "--seed", "0"), 2, "--kv-heads")
        self.assert_error(run("random", "--shape", "2,-1"), 2, "--shape")
        self.assertEqual(os.listdir(self.dir), [])

    def test_unknown_subcommand_lists_every_subcommand(self):
        # The subcommands as --help lists them (app/commands.cpp's table) ...
        text = run("--help").stdout.decode()
        listed = [line.split()[0] for line in text.split("Subcommands:\n", 1)[1].split("\n\n", 1)[0].splitlines()]
        self.assertEqual(listed, ["sdpa", "mha", "convert", "random", "inspect"])
        for sub in listed:
            self.assertEqual(run(sub, "--help").returncode, 0, sub)
        # ... are the ones a usage error offers, in the same order.
        expected = "(expected one of " + ", ".join(listed) + "; see attn-cli --help)"
        self.assert_error(run(), 2, "missing subcommand " + expected)
        self.assert_error(run("frobnicate"), 2, "frobnicate: unknown subcommand " + expected)
        self.assert_error(run("--frobnicate"), 2, "--frobnicate: unknown flag " + expected)

    # Flags whose values are names: (arguments before the flag, flag, its names in order).
    def enum_flags(self):
        q = os.path.join(DATA, "q.npy")
        sdpa, mha = ["sdpa", "-q", q], ["mha", "--heads", "8", "-q", q, "--seed", "0"]
        bits = self.path("bits.npy")  # values every dtype holds (a cast refuses others)
        np.save(bits, np.array([[0, 1], [1, 0]], np.float32))
        convert, random = ["convert", bits, "-"], ["random", "--shape", "2,3"]
        output = [("--format", ["json", "npy"]), ("--json-layout", ["object", "nested"])]
        dtypes = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "bfloat16",
                  "float32", "float64"]
        cases = [(args, "--causal", ["top-left", "bottom-right"]) for args in (sdpa, mha)]
        cases += [(args, "--dtype", ["auto", "float32", "float64"]) for args in (sdpa, mha)]
        cases += [(convert, "--dtype", dtypes), (random, "--dist", ["uniform", "normal"]),
                  (random, "--dtype", ["float32", "float64"])]
        cases += [(args, flag, names) for args in (sdpa, mha, convert, random) for flag, names in output]
        return cases

    def test_enum_flags_take_their_names_and_refuse_anything_else(self):
        for args, flag, names in self.enum_flags():
            for name in names:
                with self.subTest(sub=args[0], flag=flag, value=name):
                    p = run(*args, flag, name)
                    self.assertEqual(p.returncode, 0, p.stderr)
                    self.assertEqual(p.stderr, b"")
            # Not the enum's numbers, nor another case: only the names.
            for bad in ("bogus", "1", names[-1].upper()):
                with self.subTest(sub=args[0], flag=flag, value=bad):
                    listed = "{" + ",".join(names) + "}"
                    self.assert_error(run(*args, flag, bad), 2,
                                      f"error: {flag}: {bad} not in {listed} (see attn-cli {args[0]} --help)\n")
        self.assertEqual(os.listdir(self.dir), ["bits.npy"])  # the input enum_flags made

    def test_enum_flags_do_what_their_names_say(self):
        rng = np.random.default_rng(3)
        q, k, v = (rng.standard_normal(shape, dtype=np.float32) for shape in ((2, 3, 8), (2, 5, 8), (2, 5, 4)))
        paths = {}
        for name, tensor in (("q", q), ("k", k), ("v", v)):
            paths[name] = self.path(name + ".npy")
            np.save(paths[name], tensor)
        sdpa = ["sdpa", "-q", paths["q"], "-k", paths["k"], "-v", paths["v"]]
        # --causal: bare is top-left (query i sees keys 0..i); bottom-right aligns the ends.
        allowed = {"top-left": np.tril(np.ones((3, 5), bool)), "bottom-right": np.tril(np.ones((3, 5), bool), 2)}
        for causal, name in ((["--causal"], "top-left"), (["--causal", "top-left"], "top-left"),
                             (["--causal", "bottom-right"], "bottom-right")):
            p = run(*sdpa, *causal, "-s", self.path("w.npy"), "-o", self.path("o.npy"))
            self.assertEqual(p.returncode, 0, p.stderr)
            out, weights = sdpa_reference(q, k, v, allowed[name])
            np.testing.assert_allclose(np.load(self.path("w.npy")), weights, atol=1e-6, err_msg=" ".join(causal))
            np.testing.assert_allclose(np.load(self.path("o.npy")), out, atol=1e-5, err_msg=" ".join(causal))
        # --dtype (precision), --format and --json-layout, written to standard output.
        for args, dtype in (([], "float32"), (["--dtype", "auto"], "float32"), (["--dtype", "float32"], "float32"),
                            (["--dtype", "float64"], "float64")):
            p = run(*sdpa, *args, "--format", "npy")
            self.assertTrue(p.stdout.startswith(b"\x93NUMPY"), args)
            self.assertIn(("'descr': '<f%d'" % (4 if dtype == "float32" else 8)).encode(), p.stdout[:128], args)
        self.assertEqual(json.loads(run(*sdpa, "--format", "json").stdout)["dtype"], "float32")
        self.assertEqual(json.loads(run(*sdpa, "--json-layout", "object").stdout)["shape"], [2, 3, 4])
        nested = json.loads(run(*sdpa, "--json-layout", "nested").stdout)
        self.assertEqual(np.array(nested).shape, (2, 3, 4))
        # convert --dtype, random --dist and --dtype.
        bits = self.path("bits.npy")  # values every dtype holds (a cast refuses others)
        np.save(bits, np.array([[0, 1], [1, 0]], np.float32))
        for dtype in ("bool", "int8", "uint16", "int64", "float64"):
            p = run("convert", bits, "-", "--dtype", dtype)
            self.assertEqual(load_json(p.stdout).dtype, np.dtype(dtype), dtype)
            np.testing.assert_array_equal(load_json(p.stdout), np.array([[0, 1], [1, 0]], dtype))
        uniform = load_json(run("random", "--shape", "1000", "--dist", "uniform").stdout)
        normal = load_json(run("random", "--shape", "1000", "--dist", "normal", "--dtype", "float64").stdout)
        self.assertTrue(((uniform >= 0) & (uniform < 1)).all())
        self.assertEqual(uniform.dtype, np.float32)
        self.assertTrue((normal < 0).any())
        self.assertEqual(normal.dtype, np.float64)

    def test_bad_input_exits_1_names_the_file_and_writes_nothing(self):
        out = self.path("out.npy")
        missing = self.path("missing.npy")
        self.assert_error(run("sdpa", "-q", missing, "-o", out), 1, missing, "No such file")
        bad = self.path("bad.npy")
        with open(bad, "wb") as f:
            f.write(b"\x93NUMPY\x01\x00\xff")
        self.assert_error(run("sdpa", "-q", bad, "-o", out), 1, bad)
        k = self.path("k.npy")
        np.save(k, np.zeros((2, 5, 32), np.float32))
        self.assert_error(run("sdpa", "-q", os.path.join(DATA, "q.npy"), "-k", k, "-o", out), 1,
                          "(2, 5, 64)", "(2, 5, 32)")
        self.assertEqual(sorted(os.listdir(self.dir)), ["bad.npy", "k.npy"])

    def test_every_bad_fixture_is_exit_1_one_line_no_output(self):
        data = os.path.join(HERE, "data")
        bad = [os.path.join(data, "npy", f) for f in sorted(os.listdir(os.path.join(data, "npy"))) if f.startswith("bad_")]
        bad += [os.path.join(data, "npz", f) for f in ("bad_crc.npz", "bomb_claim.npz", "bomb_size_mismatch.npz",
                                                         "not_npy.npz", "short_member.npz")]
        made = {
            "ragged.json": b"[[1, 2], [3]]",
            "text.json": b'[[1, "a"]]',
            "deep.json": b"[" * 100000 + b"]" * 100000,
            "mismatch.json": b'{"shape": [2, 2], "dtype": "float32", "data": [1, 2, 3]}',
            "overlap.safetensors": (lambda h: len(h).to_bytes(8, "little") + h + b"\0" * 8)(
                b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'),
            "past_end.safetensors": (1000).to_bytes(8, "little") + b"{}",
        }
        for name, content in made.items():
            with open(self.path(name), "wb") as f:
                f.write(content)
            bad.append(self.path(name))
        self.assertGreaterEqual(len(bad), 30)
        for path in bad:
            with self.subTest(path=os.path.basename(path)):
                out = self.path("out.npy")
                p = run("convert", path, out)
                self.assert_error(p, 1, path)
                self.assertFalse(os.path.exists(out))
        self.assertEqual(sorted(os.listdir(self.dir)), sorted(made))

    def test_failed_run_leaves_existing_outputs_untouched(self):
        out, scores = self.path("out.npy"), self.path("w.npy")
        for p in (out, scores):
            with open(p, "w") as f:
                f.write("keep")
        k = self.path("k.npy")
        np.save(k, np.zeros((2, 5, 32), np.float32))
        p = run("sdpa", "-q", os.path.join(DATA, "q.npy"), "-k", k, "-o", out, "-s", scores)
        self.assertEqual(p.returncode, 1)
        for p in (out, scores):
            self.assertEqual(read_text(p), "keep")
        # An output whose folder does not exist fails before anything is written.
        p = run("sdpa", "-q", os.path.join(DATA, "q.npy"), "-o", out, "-s", self.path("no/such/dir/w.npy"))
        self.assert_error(p, 1, "no/such/dir/w.npy")
        self.assertEqual(read_text(out), "keep")
        self.assertEqual(sorted(os.listdir(self.dir)), ["k.npy", "out.npy", "w.npy"])

    def test_longest_legal_output_name_is_written(self):
        # NAME_MAX is 255: the temporary file beside a 254-byte name must still be legal.
        name = "a" * 250 + ".npy"
        p = run("convert", os.path.join(DATA, "q.npy"), self.path(name))
        self.assertEqual(p.returncode, 0, p.stderr)
        np.testing.assert_array_equal(np.load(self.path(name)), np.load(os.path.join(DATA, "q.npy")))
        self.assertEqual(os.listdir(self.dir), [name])
        self.assert_error(run("convert", os.path.join(DATA, "q.npy"), self.path("b" * 256 + ".npy")), 1,
                          "cannot create output file: File name too long")
        self.assertEqual(os.listdir(self.dir), [name])

    # ---- values ---------------------------------------------------------------------
    def test_classic_example_matches_numpy(self):
        q, k, v = (np.load(os.path.join(DATA, f"{n}.npy")) for n in "qkv")
        p = run("sdpa", "-q", os.path.join(DATA, "q.npy"), "-k", os.path.join(DATA, "k.npy"),
                "-v", os.path.join(DATA, "v.npy"), "-o", self.path("o.npy"), "-s", self.path("w.json"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"")
        out, w = sdpa_reference(q, k, v)
        got = np.load(self.path("o.npy"))
        self.assertEqual(got.shape, (2, 5, 64))
        self.assertEqual(got.dtype, np.float32)
        np.testing.assert_allclose(got, out, atol=1e-5)
        with open(self.path("w.json")) as f:
            gw = load_json(f.read())
        self.assertEqual(gw.shape, (2, 5, 5))
        np.testing.assert_allclose(gw, w, atol=1e-6)
        np.testing.assert_allclose(gw.sum(-1), 1, atol=1e-6)

    def test_json_inputs_equal_npy_inputs(self):
        a = run("sdpa", *sum((["-" + n, os.path.join(DATA, f"{n}.npy")] for n in "qkv"), []), "--format", "npy")
        b = run("sdpa", *sum((["-" + n, os.path.join(DATA, f"{n}.json")] for n in "qkv"), []), "--format", "npy")
        self.assertEqual(a.returncode, 0, a.stderr)
        self.assertEqual(a.stdout, b.stdout)

    def test_masks_causal_and_key_lengths(self):
        q, k, v = (np.load(os.path.join(DATA, f"{n}.npy")) for n in "qkv")
        mask = self.path("m.npy")
        allowed = np.random.default_rng(0).random((5, 5)) > 0.4
        allowed[2] = False
        np.save(mask, allowed)
        p = run("sdpa", "-q", os.path.join(DATA, "q.npy"), "-k", os.path.join(DATA, "k.npy"),
                "-v", os.path.join(DATA, "v.npy"), "--mask", mask, "--causal", "--key-lengths", "4,5",
                "--format", "npy")
        self.assertEqual(p.returncode, 0, p.stderr)
        lengths = np.arange(5)[None, None, :] < np.array([4, 5])[:, None, None]
        causal = np.tril(np.ones((5, 5), bool))
        out, _ = sdpa_reference(q, k, v, allowed & causal & lengths)
        with open(self.path("o.npy"), "wb") as f:
            f.write(p.stdout)
        got = np.load(self.path("o.npy"))
        np.testing.assert_allclose(got, out, atol=1e-5)
        self.assertTrue(np.all(got[:, 2] == 0))  # fully masked row

    def test_logits_and_scale(self):
        q = np.load(os.path.join(DATA, "q.npy"))
        p = run("sdpa", "-q", os.path.join(DATA, "q.npy"), "--scale", "0.5", "--logits", self.path("l.npy"),
                "-o", self.path("o.npy"), "--causal", "bottom-right")
        self.assertEqual(p.returncode, 0, p.stderr)
        logits = np.load(self.path("l.npy"))
        want = (q.astype(np.float64) @ np.swapaxes(q, -1, -2) * 0.5)
        want[:, np.triu_indices(5, 1)[0], np.triu_indices(5, 1)[1]] = -np.inf
        np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-4)

    def test_mha_save_weights_round_trip(self):
        q = os.path.join(DATA, "q.npy")
        for ext in ("npz", "safetensors", "json"):
            w = self.path(f"w.{ext}")
            a = run("mha", "--heads", "8", "-q", q, "--seed", "5", "--save-weights", w, "-o", self.path("a.npy"),
                    "-s", self.path("sa.npy"))
            self.assertEqual(a.returncode, 0, a.stderr)
            b = run("mha", "--heads", "8", "-q", q, "--weights", w, "-o", self.path("b.npy"), "-s", self.path("sb.npy"))
            self.assertEqual(b.returncode, 0, b.stderr)
            np.testing.assert_array_equal(np.load(self.path("a.npy")), np.load(self.path("b.npy")))
            np.testing.assert_array_equal(np.load(self.path("sa.npy")), np.load(self.path("sb.npy")))
            self.assertEqual(np.load(self.path("sa.npy")).shape, (2, 8, 5, 5))

    def test_mha_example_matches_numpy(self):
        q = np.load(os.path.join(DATA, "q.npy")).astype(np.float64)
        wts = np.load(os.path.join(DATA, "mha_weights.npz"))
        p = run("mha", "--heads", "8", "-q", os.path.join(DATA, "q.npy"), "--weights",
                os.path.join(DATA, "mha_weights.npz"), "-o", self.path("o.npy"), "-s", self.path("w.npy"),
                "--average-heads")
        self.assertEqual(p.returncode, 0, p.stderr)
        e, h = 64, 8
        proj = q @ wts["in_proj_weight"].T.astype(np.float64) + wts["in_proj_bias"]
        qp, kp, vp = (proj[..., i * e:(i + 1) * e].reshape(2, 5, h, e // h).transpose(0, 2, 1, 3) for i in range(3))
        o, w = sdpa_reference(qp, kp, vp)
        o = o.transpose(0, 2, 1, 3).reshape(2, 5, e) @ wts["out_proj.weight"].T + wts["out_proj.bias"]
        np.testing.assert_allclose(np.load(self.path("o.npy")), o, atol=2e-5)
        np.testing.assert_allclose(np.load(self.path("w.npy")), w.mean(1), atol=2e-6)

    def test_mha_missing_weight_names_are_listed(self):
        w = self.path("w.npz")
        np.savez(w, **{"layer.q.weight": np.zeros((4, 4), np.float32)})
        p = run("mha", "--heads", "2", "-q", os.path.join(DATA, "q.npy"), "--weights", w)
        self.assert_error(p, 1, "in_proj_weight", "found: layer.q.weight")
        p = run("mha", "--heads", "2", "-q", os.path.join(DATA, "q.npy"), "--weights", w, "--seed", "1")
        self.assert_error(p, 2, "--seed")

    def test_mha_streamed_scores_equal_collected_ones(self):
        # As for sdpa: .npy and JSON files stream per head, standard output collects; with
        # --average-heads the heads are averaged first, then handed over whole.
        q, q2d = self.path("q.npy"), self.path("q2d.npy")
        x = np.random.default_rng(7).standard_normal((2, 130, 16), dtype=np.float32)
        np.save(q, x)
        np.save(q2d, x[0])
        cases = [(q, ["--causal", "--key-lengths", "100,130"]), (q, ["--add-zero-attn", "--causal"]),
                 (q, ["--average-heads"]), (q2d, []), (q2d, ["--average-heads", "--add-bias-kv"])]
        for query, extra in cases:
            for flag, ext, fmt in (("-s", "npy", "npy"), ("--logits", "json", "json")):
                what = f"{query} {extra} {flag}"
                args = ["mha", "--heads", "4", "-q", query, "--seed", "3", "--threads", "2", *extra]
                streamed = self.path(f"scores.{ext}")
                p = run(*args, "-o", self.path("o.npy"), flag, streamed)
                self.assertEqual(p.returncode, 0, p.stderr)
                whole = run(*args, "-o", self.path("o.npy"), flag, "-", "--format", fmt)
                self.assertEqual(whole.returncode, 0, whole.stderr)
                with open(streamed, "rb") as f:
                    self.assertEqual(f.read(), whole.stdout, what)

    def test_mha_weights_stream_into_a_file(self):
        # (1, 4, 4096, 4096) float32 weights: a 256 MiB file, written while memory stays
        # at the program's own size (collected whole, the peak was above the file's size).
        q = self.path("q.npy")
        np.save(q, np.random.default_rng(8).standard_normal((1, 4096, 16), dtype=np.float32))
        w = self.path("w.npy")
        status, _, err, peak = support.run_with_rusage([CLI, "mha", "--heads", "4", "-q", q, "--seed", "0", "-o",
                                                        self.path("o.npy"), "-s", w])
        self.assertEqual(status, 0, err)
        weights = np.load(w, mmap_mode="r")
        self.assertEqual(weights.shape, (1, 4, 4096, 4096))
        np.testing.assert_allclose(weights[0, :, ::1000].sum(-1), 1, rtol=1e-5)
        # AddressSanitizer's shadow memory and quarantine add their own (157 MB seen):
        # there the bound is the file's size, which a run holding the weights whole exceeds.
        bound = os.path.getsize(w) * (1 if os.environ.get("ATTN_TEST_SANITIZED") else 0.25)
        self.assertLess(peak, bound, f"peak RSS {peak} bytes")
        del weights

    # ---- non-finite values ------------------------------------------------------------
    def sdpa_nonfinite(self, name):
        """attn-cli's output and weights for tests/data/nonfinite/NAME.npz, and torch's."""
        path = os.path.join(NONFINITE, name + ".npz")
        case = np.load(path)
        args = ["sdpa", "-q", path + ":q", "-k", path + ":k", "-v", path + ":v", "-o", self.path("o.npy")]
        if "mask" in case:
            args += ["--mask", path + ":mask"]
        if "causal" in case:
            args += ["--causal"]
        if "key_lengths" in case:
            args += ["--key-lengths", ",".join(str(n) for n in case["key_lengths"])]
        p = run(*args, "-s", self.path("w.npy"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, b"")
        out = np.load(self.path("o.npy"))
        # Without weights the kernel takes its other path (online softmax): same output.
        p = run(*args)
        self.assertEqual(p.returncode, 0, p.stderr)
        np.testing.assert_allclose(np.load(self.path("o.npy")), out, rtol=1e-5, atol=1e-6, equal_nan=True,
                                   err_msg=name + ": output without weights")
        return out, np.load(self.path("w.npy")), case["torch_out"], case["torch_weights"]

    def test_nonfinite_inputs_propagate_as_in_torch(self):
        # Keys hidden by the causal rule or key lengths count too (math attention adds
        # -inf to their logits and multiplies their values by 0): NaN there reaches rows.
        cases = nonfinite_cases()
        self.assertEqual(len(cases), 27)
        for name in cases:
            with self.subTest(case=name):
                out, w, torch_out, torch_w = self.sdpa_nonfinite(name)
                assert_like_torch(self, out, torch_out, name + ": output")
                assert_like_torch(self, w, torch_w, name + ": weights")
        # What the cases show, spelled out: a NaN key poisons every row, a NaN query only
        # its own, and a row masked entirely by -inf is zeros, not NaN.
        out, _, _, _ = self.sdpa_nonfinite("nan_k")
        self.assertTrue(np.isnan(out).all())
        out, _, _, _ = self.sdpa_nonfinite("nan_q")
        self.assertEqual(np.isnan(out).any(-1).tolist(), [False, True, False, False])
        out, w, _, _ = self.sdpa_nonfinite("neginf_float_mask_rows")
        self.assertTrue((w[2] == 0).all() and (out[2] == 0).all())
        self.assertTrue(np.isfinite(out).all())

    def test_check_finite_passes_finite_inputs_and_masked_minus_inf(self):
        q = os.path.join(DATA, "q.npy")
        mask = self.path("m.npy")
        m = np.zeros((5, 5), np.float32)
        m[:, 4] = -np.inf
        np.save(mask, m)
        a = run("sdpa", "-q", q, "--mask", mask, "--format", "npy")
        b = run("sdpa", "-q", q, "--mask", mask, "--format", "npy", "--check-finite")
        self.assertEqual(b.returncode, 0, b.stderr)
        self.assertEqual(a.stdout, b.stdout)
        c = run("mha", "--heads", "8", "-q", q, "--weights", os.path.join(DATA, "mha_weights.npz"), "--check-finite")
        self.assertEqual(c.returncode, 0, c.stderr)
        self.assertEqual(load_json(c.stdout).shape, (2, 5, 64))
        self.assertEqual(run("convert", q, "-", "--check-finite").returncode, 0)

    # ---- pipelines and formats -------------------------------------------------------
    def test_pipeline_through_stdin_and_stdout(self):
        r = run("random", "--shape", "2,5,64", "--seed", "0", "--format", "npy")
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith(b"\x93NUMPY"))
        s = run("sdpa", "-q", "-", "--causal", stdin=r.stdout)
        self.assertEqual(s.returncode, 0, s.stderr)
        out = load_json(s.stdout)
        with open(self.path("q.npy"), "wb") as f:
            f.write(r.stdout)
        q = np.load(self.path("q.npy"))
        ref, _ = sdpa_reference(q, q, q, np.tril(np.ones((5, 5), bool)))
        np.testing.assert_allclose(out, ref, atol=1e-5)
        c = run("convert", "-", "-", "--format", "npy", stdin=s.stdout)
        self.assertEqual(c.returncode, 0, c.stderr)
        self.assertTrue(c.stdout.startswith(b"\x93NUMPY"))

    def test_several_stdout_outputs_come_in_order(self):
        p = run("sdpa", "-q", os.path.join(DATA, "q.npy"), "-s", "-")
        self.assertEqual(p.returncode, 0, p.stderr)
        docs = p.stdout.decode().strip().split("\n")
        self.assertEqual(len(docs), 2)
        self.assertEqual(json.loads(docs[0])["shape"], [2, 5, 64])
        self.assertEqual(json.loads(docs[1])["shape"], [2, 5, 5])

    def test_streamed_scores_equal_collected_ones(self):
        # Files in .npy or JSON are written block by block while the kernel runs; standard
        # output and archives are collected whole. Both must give the same bytes.
        q = self.path("q.npy")
        rng = np.random.default_rng(5)
        x = rng.standard_normal((2, 3, 130, 16), dtype=np.float32)
        np.save(q, x)
        for layout in ("object", "nested"):
            for name, flag in (("w", "-s"), ("l", "--logits")):
                streamed = self.path(f"{name}.json")
                p = run("sdpa", "-q", q, "--causal", "--threads", "2", "-o", self.path("o.npy"), flag, streamed,
                        "--json-layout", layout)
                self.assertEqual(p.returncode, 0, p.stderr)
                whole = run("sdpa", "-q", q, "--causal", "-o", self.path("o.npy"), flag, "-", "--json-layout", layout)
                self.assertEqual(whole.returncode, 0, whole.stderr)
                with open(streamed, "rb") as f:
                    self.assertEqual(f.read(), whole.stdout, f"{name} {layout}")
        w = self.path("w.npy")
        p = run("sdpa", "-q", q, "--causal", "-o", self.path("o.npy"), "-s", w, "--logits", self.path("l.npz"))
        self.assertEqual(p.returncode, 0, p.stderr)
        allowed = np.tril(np.ones((130, 130), bool))
        _, ref = sdpa_reference(x, x, x, allowed)
        np.testing.assert_allclose(np.load(w), ref, atol=2e-6)
        logits = np.where(allowed, x @ np.swapaxes(x, -1, -2) / 4, -np.inf)
        np.testing.assert_allclose(np.load(self.path("l.npz"))["arr_0"], logits, rtol=1e-5, atol=1e-5)
        whole = run("sdpa", "-q", q, "--causal", "-o", self.path("o.npy"), "-s", "-", "--format", "npy")
        with open(w, "rb") as f:
            self.assertEqual(f.read(), whole.stdout)

    def test_streamed_scores_on_a_full_disk_leave_nothing(self):
        mount = self.path("small")
        os.mkdir(mount)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mount], capture_output=True).returncode:
            self.skipTest("cannot mount a tmpfs here (needs root)")
        try:
            rng = np.random.default_rng(6)
            big, small = self.path("big.npy"), self.path("small.npy")
            np.save(big, rng.standard_normal((1, 16, 512, 8), dtype=np.float32))
            np.save(small, rng.standard_normal((1, 4, 512, 8), dtype=np.float32))
            # 16 MiB of .npy weights: refused before any work, the sizes named.
            p = run("sdpa", "-q", big, "--threads", "2", "-o", self.path("o.npy"), "-s", os.path.join(mount, "w.npy"))
            self.assert_error(p, 1, os.path.join(mount, "w.npy"), "needs 16.8 MB on its file system, 8.4 MB free")
            # 1M weights as JSON: more than 3 bytes each, so the disk fills while they stream.
            p = run("sdpa", "-q", small, "--threads", "2", "-o", self.path("o.npy"),
                    "-s", os.path.join(mount, "w.json"))
            self.assert_error(p, 1, os.path.join(mount, "w.json"), "No space left on device")
            self.assertEqual(os.listdir(mount), [])
            self.assertFalse(os.path.exists(self.path("o.npy")))
        finally:
            subprocess.run(["umount", mount], check=True)

    def test_random_equals_torch_rand_values(self):
        # torch.manual_seed(0); torch.rand(2, 3) (PyTorch 1.13 and 2.x)
        p = run("random", "--shape", "2,3", "--seed", "0")
        got = load_json(p.stdout)
        want = np.array([[0.4962566, 0.7682218, 0.08847743], [0.13203049, 0.30742282, 0.6340787]], np.float32)
        np.testing.assert_array_equal(got, want)

    def test_convert_every_format_round_trip(self):
        src = os.path.join(DATA, "k.npy")
        original = np.load(src)
        for ext in ("json", "npz", "safetensors", "npy"):
            dst = self.path(f"k.{ext}")
            p = run("convert", src, dst)
            self.assertEqual(p.returncode, 0, p.stderr)
            back = self.path(f"back_{ext}.npy")
            p = run("convert", dst, back)
            self.assertEqual(p.returncode, 0, p.stderr)
            np.testing.assert_array_equal(np.load(back), original)
        p = run("convert", src, self.path("k64.npy"), "--dtype", "float64")
        self.assertEqual(np.load(self.path("k64.npy")).dtype, np.float64)
        p = run("convert", src, "-", "--json-layout", "nested")
        nested = np.array(json.loads(p.stdout), np.float32)
        np.testing.assert_array_equal(nested, original)


    # ---- streams: endless and oversized input (issue 17) -----------------------------
    # Standard input and pipes are read against what their header promises, with a
    # one-byte probe for trailing bytes; a .safetensors header is parsed in one SAX pass.
    # The peak RSS of attn-cli alone: a child forked from this (large) Python process
    # inherits its RSS high-water mark through exec, so a small Python (-S, no numpy)
    # starts attn-cli and writes its exit status and ru_maxrss to the file argv[1].
    MAXRSS = ("import os, sys\n"
              "pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)\n"
              "_, status, usage = os.wait4(pid, 0)\n"
              "open(sys.argv[1], 'w').write(f'{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss * 1024}')\n")

    def measured(self, args):
        return [sys.executable, "-S", "-c", self.MAXRSS, self.path("maxrss"), CLI, *args]

    def measurement(self):
        status, peak = read_text(self.path("maxrss")).split()
        return int(status), int(peak)

    def rss_bound(self, bytes_):
        # AddressSanitizer's shadow memory and quarantine add their own (157 MB seen).
        return bytes_ + (250_000_000 if os.environ.get("ATTN_TEST_SANITIZED") else 0)

    def run_fed(self, args, feed, timeout=20):
        """attn-cli ARGS with standard input from `sh -c FEED`: (exit status, stderr,
        seconds); fails if attn-cli still runs after `timeout` seconds."""
        import time
        feeder = subprocess.Popen(["sh", "-c", feed], stdout=subprocess.PIPE, cwd=self.dir)
        start = time.monotonic()
        with open(self.path("stderr"), "wb") as err:
            child = subprocess.Popen([CLI, *args], stdin=feeder.stdout, stdout=subprocess.DEVNULL, stderr=err,
                                     cwd=self.dir)
            feeder.stdout.close()
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                self.fail(f"attn-cli {' '.join(args)} still reading after {timeout} s")
            finally:
                feeder.kill()
                feeder.wait()
        return child.returncode, read_text(self.path("stderr")), time.monotonic() - start

    def run_rss(self, args, feed):
        """attn-cli ARGS with standard input from `sh -c FEED`: (exit status, stderr, peak
        RSS in bytes)."""
        feeder = subprocess.Popen(["sh", "-c", feed], stdout=subprocess.PIPE, cwd=self.dir)
        with open(self.path("stderr"), "wb") as err:
            child = subprocess.Popen(self.measured(args), stdin=feeder.stdout, stdout=subprocess.DEVNULL,
                                     stderr=err, cwd=self.dir)
            feeder.stdout.close()
            child.wait(timeout=120)
        feeder.kill()
        feeder.wait()
        status, peak = self.measurement()
        return status, read_text(self.path("stderr")), peak

    def small_npy(self):
        np.save(self.path("small.npy"), np.array([1.5, -2.0], np.float32))  # 8 data bytes
        return "small.npy"

    def test_stdin_npy_then_512_mib_stops_at_the_promise(self):
        self.small_npy()
        status, err, peak = self.run_rss(["convert", "-", "out.npy"], "cat small.npy; head -c 536870912 /dev/zero")
        self.assertEqual(status, 1, err)
        self.assertRegex(err, r"^attn-cli: error: <stdin>: npy data is longer than the 8 bytes shape \(2,\) needs "
                              r"\(trailing bytes; the input was read no further\)\n$")
        # Read whole, the peak was 531 MB; now the header, 8 bytes and a probe.
        self.assertLess(peak, self.rss_bound(50_000_000), f"peak RSS {peak} bytes")
        self.assertFalse(os.path.exists(self.path("out.npy")))

    def test_endless_input_after_a_header_stops_within_seconds(self):
        self.small_npy()
        st_header = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
        with open(self.path("small.safetensors"), "wb") as f:
            f.write(len(st_header).to_bytes(8, "little") + st_header + bytes(8))
        for fixture, message in [("small.npy", "npy data is longer than the 8 bytes"),
                                 ("small.safetensors", f"input is longer than the {16 + len(st_header)} bytes")]:
            with self.subTest(fixture):
                status, err, seconds = self.run_fed(["sdpa", "-q", "-", "-k", "small.npy", "-v", "small.npy"],
                                                    f"cat {fixture} /dev/zero", timeout=20)
                self.assertEqual(status, 1, err)
                self.assertIn(f"attn-cli: error: <stdin>: {message}", err)
                self.assertEqual(err.count("\n"), 1, err)
                self.assertLess(seconds, 10)

    def test_fifo_path_is_read_as_a_stream(self):
        self.small_npy()
        fifo = self.path("pipe")
        os.mkfifo(fifo)
        import time
        feeder = subprocess.Popen(["sh", "-c", "cat small.npy /dev/zero > pipe"], cwd=self.dir)
        start = time.monotonic()
        p = subprocess.run([CLI, "convert", fifo, self.path("out.npy")], capture_output=True, timeout=20)
        seconds = time.monotonic() - start
        feeder.kill()
        feeder.wait()
        self.assert_error(p, 1, fifo + ": npy data is longer than the 8 bytes shape (2,) needs (trailing bytes")
        self.assertLess(seconds, 10)
        # A FIFO fed a valid .npy and closed is read like the file.
        feeder = subprocess.Popen(["sh", "-c", "cat small.npy > pipe"], cwd=self.dir)
        p = run("convert", fifo, self.path("out.json"))
        feeder.wait()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(read_text(self.path("out.json")))["data"], [1.5, -2.0])

    def test_streams_read_every_format_whole(self):
        # Through a pipe (no size), each format reads as from its file, members included.
        a = np.arange(6, dtype=np.float32).reshape(2, 3)
        np.savez(self.path("a.npz"), a=a)
        for out in ("a.json", "a.safetensors"):
            p = run("convert", self.path("a.npz"), self.path(out))
            self.assertEqual(p.returncode, 0, p.stderr)
        for name in ("a.npz", "a.json", "a.safetensors"):
            with self.subTest(name):
                p = subprocess.run(["sh", "-c", f"cat {name} | '{CLI}' convert - -"], capture_output=True,
                                   cwd=self.dir, timeout=60)
                self.assertEqual(p.returncode, 0, p.stderr)
                np.testing.assert_array_equal(load_json(p.stdout.decode()), a)
        # A member of an archive on standard input (-:NAME).
        np.savez(self.path("w.npz"), a=a, b=np.ones((1, 2), np.int8))
        p = subprocess.run(["sh", "-c", f"cat w.npz | '{CLI}' sdpa -q -:a -k a.json -v a.safetensors"],
                           capture_output=True, cwd=self.dir, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(load_json(p.stdout.decode()).shape, (2, 3))

    def test_char_device_fails_fast(self):
        if not os.path.exists("/dev/zero"):
            self.skipTest("no /dev/zero")
        p = run("sdpa", "-q", "/dev/zero", "-k", "/dev/zero", "-v", "/dev/zero")
        self.assert_error(p, 1, "/dev/zero: unrecognised format")

    def safetensors_with_header(self, name, header):
        with open(self.path(name), "wb") as f:
            f.write(len(header).to_bytes(8, "little") + header)
        return self.path(name)

    def timed_rss(self, args):
        import time
        start = time.monotonic()
        with open(self.path("stderr"), "wb") as err:
            subprocess.run(self.measured(args), stdout=subprocess.DEVNULL, stderr=err, timeout=120)
        seconds = time.monotonic() - start
        status, peak = self.measurement()
        return status, read_text(self.path("stderr")), seconds, peak

    def test_safetensors_header_of_100000_metadata_keys_parses_in_linear_time(self):
        # nlohmann's ordered_json took 36 s over these keys (a linear search per key).
        meta = {f"key{i:06d}": "v" for i in range(100_000)}
        header = json.dumps({"__metadata__": meta, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})
        path = self.safetensors_with_header("meta.safetensors", header.encode())
        with open(path, "ab") as f:
            f.write(np.array([1.5, 2.5], np.float32).tobytes())
        status, err, seconds, peak = self.timed_rss(["convert", path, self.path("out.json")])
        self.assertEqual(status, 0, err)
        self.assertEqual(json.loads(read_text(self.path("out.json")))["data"], [1.5, 2.5])
        self.assertLess(seconds, 5)
        self.assertLess(peak, self.rss_bound(10 * len(header) + 50_000_000), f"peak RSS {peak} bytes")

    def test_safetensors_deep_header_is_refused_in_bounded_time_and_memory(self):
        # 10 MB of nesting took 388 MB as a DOM; the scan stops at 64 levels.
        depth = 5_000_000
        header = b'{"__metadata__": ' + b"[" * depth + b"]" * depth + b"}"
        path = self.safetensors_with_header("deep.safetensors", header)
        status, err, seconds, peak = self.timed_rss(["convert", path, self.path("out.npy")])
        self.assertEqual(status, 1, err)
        self.assertEqual(err, f"attn-cli: error: {path}: header is nested deeper than 64 levels\n")
        self.assertLess(seconds, 5)
        self.assertLess(peak, self.rss_bound(10 * len(header) + 50_000_000), f"peak RSS {peak} bytes")

    def test_rank_cap_of_safetensors_matches_npy(self):
        # A rank-64 tensor goes through every format and back; 65 is refused by each reader.
        shape = [1] * 64
        header = json.dumps({"a": {"dtype": "F32", "shape": shape, "data_offsets": [0, 4]}}).encode()
        path = self.safetensors_with_header("r64.safetensors", header)
        with open(path, "ab") as f:
            f.write(bytes(4))
        for out in ("o.npy", "o.json", "o.npz", "o.safetensors"):
            with self.subTest(out):
                p = run("convert", path, self.path(out))
                self.assertEqual(p.returncode, 0, p.stderr)
                p = run("convert", self.path(out), "-")  # numpy itself stops at 32 dimensions
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(json.loads(p.stdout)["shape"], shape)
        header = json.dumps({"a": {"dtype": "F32", "shape": [1] * 65, "data_offsets": [0, 4]}}).encode()
        path = self.safetensors_with_header("r65.safetensors", header)
        with open(path, "ab") as f:
            f.write(bytes(4))
        self.assert_error(run("convert", path, self.path("o.npy")), 1,
                          path + ": tensor 'a': shape has 65 dimensions, over the cap of 64")

    # ---- inspect ----------------------------------------------------------------------
    def mha_weights(self):
        """The example's per-head weights (2, 8, 5, 5), as the README makes them."""
        w = self.path("w.npy")
        p = run("mha", "--heads", "8", "-q", os.path.join(DATA, "q.npy"), "--weights",
                os.path.join(DATA, "mha_weights.npz"), "-s", w, "-o", self.path("o.npy"))
        self.assertEqual(p.returncode, 0, p.stderr)
        return w

    def test_inspect_json_matches_numpy(self):
        w = self.mha_weights()
        p = run("inspect", w, "--json", "--top-k", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, b"")
        doc = json.loads(p.stdout)
        a = np.load(w).astype(np.float64)
        self.assertEqual(doc["shape"], [2, 8, 5, 5])
        self.assertEqual(doc["layout"], {"batches": 2, "heads": 8, "queries": 5, "keys": 5})
        self.assertEqual(len(doc["panels"]), 16)
        self.assertEqual(doc["warnings"], [])
        ent = -(a * np.log2(a)).sum(-1)
        for panel in doc["panels"]:
            b, h = panel["batch"], panel["head"]
            self.assertLess(panel["row_sum_error"], 1e-6)
            self.assertAlmostEqual(panel["row_sum_error"], np.abs(a[b, h].sum(-1) - 1).max(), delta=1e-6)
            self.assertAlmostEqual(panel["entropy_bits"]["mean"], ent[b, h].mean(), places=5)
            self.assertAlmostEqual(panel["entropy_bits"]["min"], ent[b, h].min(), places=5)
            self.assertAlmostEqual(panel["entropy_bits"]["uniform"], np.log2(5))
            self.assertEqual(panel["max_weight"], float(np.float32(a[b, h].max())))
            self.assertEqual(panel["nan"], 0)
            for entry in panel["top_k"]:
                row = a[b, h, entry["query"]]
                want = sorted(range(5), key=lambda j: (-row[j], j))[:2]
                self.assertEqual(entry["keys"], want)
                np.testing.assert_allclose(entry["weights"], row[want], rtol=1e-6)
        # Narrowed to one batch, head and query.
        p = run("inspect", w, "--json", "--batch", "1", "--head", "3", "--query", "4", "--top-k", "1")
        doc = json.loads(p.stdout)
        self.assertEqual([(x["batch"], x["head"]) for x in doc["panels"]], [(1, 3)])
        self.assertEqual(doc["panels"][0]["top_k"], [{"query": 4, "keys": [int(a[1, 3, 4].argmax())],
                                                      "weights": [float(np.float32(a[1, 3, 4].max()))]}])

    def test_inspect_text_report(self):
        w = self.mha_weights()
        p = run("inspect", w, "--labels", os.path.join(DATA, "tokens.txt"), "--batch", "0", "--head", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertIn("(2, 8, 5, 5) read as 2 batches x 8 heads of 5 queries x 5 keys", out)
        self.assertIn("entropy (bits)", out)
        self.assertIn('query 0 "the"', out)
        self.assertIn("top 3 keys per query", out)
        rows = [line for line in out.splitlines() if line.split()[:2] == ["0", "2"]]
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0].split()[2], "5")  # queries
        self.assertAlmostEqual(float(rows[0].split()[7]), np.log2(5), places=3)  # uniform

    def test_inspect_warns_on_rows_that_do_not_sum_to_one(self):
        w = self.path("r.npy")
        a = np.full((2, 3, 4), 0.25, np.float32)
        a[1, 2, 0] = 0.5
        np.save(w, a)
        p = run("inspect", w)
        self.assertEqual(p.returncode, 0, p.stderr)
        err = p.stderr.decode()
        self.assertTrue(err.startswith("attn-cli: warning: " + w + ": 1 of 6 rows do not sum to 1"), err)
        self.assertIn("head 1, query 2", err)
        self.assertEqual(err.count("\n"), 1)
        self.assertIn("batch  head", p.stdout.decode())
        doc = json.loads(run("inspect", w, "--json").stdout)
        self.assertAlmostEqual(doc["panels"][1]["row_sum_error"], 0.25)
        self.assertEqual(len(doc["warnings"]), 1)

    def test_inspect_bad_input(self):
        neg = self.path("neg.npy")
        a = np.full((2, 2, 3), 1 / 3, np.float32)
        a[1, 0, 2] = -0.25
        np.save(neg, a)
        self.assert_error(run("inspect", neg), 1, neg, "negative weight -0.25 at (1, 0, 2)")
        flat = self.path("flat.npy")
        np.save(flat, np.ones(4, np.float32) / 4)
        self.assert_error(run("inspect", flat), 1, flat, "rank >= 2", "(4,)")
        w = self.mha_weights()
        labels = self.path("labels.txt")
        with open(labels, "w") as f:
            f.write("a\nb\nc\n")
        self.assert_error(run("inspect", w, "--labels", labels), 1, labels, "expected 5 labels", "found 3")
        self.assert_error(run("inspect", w, "--key-labels", labels, "--heatmap", self.path("h.png")), 1, labels)
        self.assertFalse(os.path.exists(self.path("h.png")))
        self.assert_error(run("inspect", self.path("missing.npy")), 1, "missing.npy")

    def test_inspect_usage_errors_exit_2(self):
        w = self.mha_weights()
        self.assert_error(run("inspect", w, "--batch", "2"), 2, "--batch", "expected 0 to 1")
        self.assert_error(run("inspect", w, "--head", "8"), 2, "--head")
        self.assert_error(run("inspect", w, "--query", "9"), 2, "--query")
        self.assert_error(run("inspect", w, "--top-k", "-1"), 2, "--top-k")
        self.assert_error(run("inspect", w, "--heatmap", self.path("h.txt")), 2, "--heatmap", ".png")
        self.assert_error(run("inspect", w, "--json", "--ansi"), 2, "--ansi")
        self.assert_error(run("inspect", w, "--labels", "a", "--key-labels", "b"), 2, "--labels")
        self.assert_error(run("inspect"), 2, "SCORES")

    def test_inspect_heatmap_writes_a_png(self):
        w = self.mha_weights()
        png = self.path("h.png")
        p = run("inspect", w, "--heatmap", png, "--labels", os.path.join(DATA, "tokens.txt"), "--batch", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(png, "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(b"\x89PNG\r\n\x1a\n"))
        self.assertEqual(data[12:16], b"IHDR")
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        self.assertGreater(width, 4 * 5)  # a grid of 8 panels, 4 across
        self.assertGreater(height, 2 * 5)
        self.assertEqual(data[24:26], b"\x08\x02")  # 8-bit RGB
        # A failed run leaves an existing file alone and no temporary file behind.
        self.assertEqual(run("inspect", w, "--heatmap", png, "--head", "9").returncode, 2)
        with open(png, "rb") as f:
            self.assertEqual(f.read(), data)
        self.assert_error(run("inspect", w, "--heatmap", self.path("no/such/dir/h.png")), 1, "no/such/dir/h.png")
        self.assertEqual(sorted(os.listdir(self.dir)), ["h.png", "o.npy", "w.npy"])

    def test_inspect_ansi_fits_the_width(self):
        w = self.mha_weights()
        p = run("inspect", w, "--ansi", "--head", "3", "--width", "30")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertTrue(out.startswith(w + ": batch 0, head 3"))
        self.assertIn("\x1b[38;2;", out)
        for line in out.splitlines()[1:]:
            self.assertLessEqual(len(re.sub(r"\x1b\[[0-9;]*m", "", line)), 30, line)

    # ---- the machine, memory bounds, heatmaps, the table, timings, the progress bar --------
    # (issue 17: what the suite claims, asserted)

    def test_runs_without_sys_and_proc(self):
        # A chroot or container may lack /sys and /proc: attn-cli still works (threads from
        # the CPU affinity mask, no memory check). They are hidden here by empty tmpfs mounts
        # in a private mount namespace, which needs root and unshare(1).
        if os.geteuid() != 0 or not shutil.which("unshare"):
            self.skipTest("hiding /sys and /proc needs root and unshare(1)")
        q = os.path.join(DATA, "q.npy")
        want_sdpa = run("sdpa", "-q", q, "--format", "npy").stdout
        want_mha = run("mha", "--heads", "8", "-q", q, "--seed", "0", "--format", "npy").stdout
        # The sanitizers' runtime reads its options and threads from /proc and cannot run
        # without it: under them only what attn-cli itself reads of /proc (meminfo) is hidden.
        hide_proc = ("mount --bind /dev/null /proc/meminfo" if self.SANITIZED else "mount -t tmpfs none /proc")
        script = ('mount -t tmpfs none /sys && ' + hide_proc + ' || exit 99; '
                  'test -e /sys/devices/system/cpu/online && exit 98; test -s /proc/meminfo && exit 98; '
                  '"$0" sdpa -q "$1" --format npy > "$2" && "$0" mha --heads 8 -q "$1" --seed 0 --format npy > "$3"')
        p = subprocess.run(["unshare", "--mount", "sh", "-c", script, CLI, q, self.path("s.npy"), self.path("m.npy")],
                           capture_output=True, timeout=120)
        if p.returncode == 99:
            self.skipTest("cannot mount a tmpfs in a new mount namespace here: " + p.stderr.decode().strip())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, b"")
        with open(self.path("s.npy"), "rb") as f:
            self.assertEqual(f.read(), want_sdpa)
        with open(self.path("m.npy"), "rb") as f:
            self.assertEqual(f.read(), want_mha)

    # Peak memory (os.wait4's ru_maxrss). Under the sanitizers (ATTN_TEST_SANITIZED, set by
    # CTest) ASan's shadow memory and quarantine add their own, and the Debug kernel is slow:
    # there a smaller problem runs and the bound is the size of what holding it whole needs.
    SANITIZED = bool(os.environ.get("ATTN_TEST_SANITIZED"))
    MEMORY_BOUND = 64 << 20  # README.md, "Large problems": tens of MB whatever L and S are

    def peak_of(self, *args):
        status, _, err, peak = support.run_with_rusage([CLI, *args], cwd=self.dir)
        self.assertEqual(status, 0, err)
        return peak

    def test_long_sequence_memory_is_bounded(self):
        # B1 H1 L32768 D64 without weights: the (L, S) matrix would be 4 GiB; the kernel
        # holds the inputs, the output and a few tiles per thread (README: 39 MB peak).
        length, dim = (16384, 16) if self.SANITIZED else (32768, 64)
        x = np.random.default_rng(20).standard_normal((1, 1, length, dim), dtype=np.float32)
        np.save(self.path("q.npy"), x)
        peak = self.peak_of("sdpa", "-q", "q.npy", "--causal", "--threads", "2", "-o", "o.npy")
        matrix = 4 * length * length
        # Under the sanitizers their own memory (~150 MB) counts: half the matrix still
        # tells a kernel that holds it from one that does not.
        bound = matrix // 2 if self.SANITIZED else self.MEMORY_BOUND
        self.assertLess(peak, bound, f"peak RSS {peak} bytes for L = S = {length}")
        self.assertLess(bound, matrix)
        # The result is right where it is cheap to check: the first and last query rows.
        out = np.load(self.path("o.npy"), mmap_mode="r")
        for i in (0, 1, length - 1):
            ref, _ = sdpa_reference(x[0, 0, i:i + 1], x[0, 0, :i + 1], x[0, 0, :i + 1])
            np.testing.assert_allclose(out[0, 0, i:i + 1], ref, rtol=1e-4, atol=1e-5)

    def test_streamed_weights_memory_is_bounded(self):
        # Weights streamed into a .npy (256 MiB) and a JSON file (16.8 million weights, about
        # 250 MB of text) while the kernel runs: memory stays bounded by a few blocks of rows,
        # far below the weights (README: a 4 GiB weights file at 55 MB peak). A writer that
        # held the weights whole would need at least the float32 tensor: 268 MB and 67 MB.
        # Under the sanitizers only the .npy: their own memory (157 MB seen) is more than the
        # JSON case's tensor, and the 256 MiB file is the bound.
        cases = [("w.npy", 8192)] + ([] if self.SANITIZED else [("w.json", 4096)])
        for name, length in cases:
            with self.subTest(weights=name):
                x = np.random.default_rng(21).standard_normal((1, 1, length, 16), dtype=np.float32)
                np.save(self.path("q.npy"), x)
                peak = self.peak_of("sdpa", "-q", "q.npy", "--threads", "2", "-o", "o.npy", "-s", name)
                held = 4 * length * length
                bound = held if self.SANITIZED else min(self.MEMORY_BOUND, held * 3 // 4)
                self.assertLess(peak, bound, f"peak RSS {peak} bytes writing {name} of ({length}, {length})")
                path = self.path(name)
                if name.endswith(".npy"):
                    w = np.load(path, mmap_mode="r")
                    self.assertEqual(w.shape, (1, 1, length, length))
                    np.testing.assert_allclose(w[0, 0, ::1000].sum(-1), 1, rtol=1e-5)
                    _, ref = sdpa_reference(x[0, 0, :2], x[0, 0], x[0, 0])
                    np.testing.assert_allclose(w[0, 0, :2], ref, atol=1e-6)
                    del w
                else:
                    with open(path, "rb") as f:
                        head = f.read(100)
                        f.seek(-6, os.SEEK_END)
                        tail = f.read()
                    self.assertTrue(head.startswith(b'{"shape": [1, 1, %d, %d], "dtype": "float32", "data": [[[['
                                                    % (length, length)), head)
                    self.assertEqual(tail, b"]]]]}\n")
                    self.assertGreater(os.path.getsize(path), 10 * length * length)
                os.unlink(path)

    def test_inspect_memory_is_about_the_file(self):
        # A 2x8x2048x2048 float32 dump (256 MiB) is read without a second copy of its data
        # (README: 277 MB peak, 1.03x the file; 303 MB with --heatmap): the table and the
        # heatmap stay below 1.25x the file, where a copy would need 2x.
        w = np.lib.format.open_memmap(self.path("big.npy"), "w+", np.float32, (2, 8, 2048, 2048))
        w[:] = 1 / 2048
        del w
        size = os.path.getsize(self.path("big.npy"))
        for flags in ([], ["--heatmap", "h.png"]):
            with self.subTest(flags=flags):
                peak = self.peak_of("inspect", "big.npy", "--top-k", "1", *flags)
                bound = size * (2 if self.SANITIZED else 1.25)
                self.assertLess(peak, bound, f"peak RSS {peak} bytes for a file of {size}")
        self.assertTrue(read_bytes(self.path("h.png")).startswith(b"\x89PNG\r\n\x1a\n"))

    # Heatmaps, decoded by decode_png below (zlib alone, not the project's libpng reader), and
    # checked against the layout lib/src/render/heatmap.cpp computes (HeatmapLayout).
    def heatmap(self, weights, *flags):
        np.save(self.path("w.npy"), weights)
        p = run("inspect", "w.npy", "--heatmap", "h.png", "--top-k", "0", *flags, cwd=self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(self.path("h.png"), "rb") as f:
            return decode_png(f.read())

    def labels_file(self, name, tokens):
        with open(self.path(name), "w") as f:
            f.write("".join(t + "\n" for t in tokens))
        return name

    def assert_ink_in_boxes(self, image, region, boxes, what):
        """Within region (x0, y0, x1, y1) the label ink lies only inside `boxes`, and every
        box holds some: labels drawn where ticks are, nothing where they are not."""
        x0, y0, x1, y1 = region
        ink = image[y0:y1, x0:x1] == INK
        inside = np.zeros_like(ink)
        for bx0, by0, bx1, by1 in boxes:
            box = (slice(max(by0, y0) - y0, max(0, min(by1, y1) - y0)), slice(max(bx0, x0) - x0, max(0, min(bx1, x1) - x0)))
            self.assertTrue(ink[box].any(), f"{what}: no ink in the label box {(bx0, by0, bx1, by1)}")
            inside[box] = True
        stray = np.argwhere(ink & ~inside)
        self.assertEqual(stray[:5].tolist(), [], f"{what}: ink outside the label boxes (row, column in the region)")

    def test_heatmap_labels_colour_bar_and_cells(self):
        # One head of 5 queries x 5 keys: cells of 48 px, every token a tick; the long token
        # is cut to 12 characters ending in '~'.
        w = np.full((1, 5, 5), 0.2, np.float32)
        w[0, 0] = [0.6, 0.3, 0.0, 0.05, 0.05]  # the scale top, half of it, and 0
        tokens = ["a", "bb", "the_longest_token_of_all", "Cq", "d"]
        image = self.heatmap(w, "--labels", self.labels_file("t.txt", tokens))
        layout = HeatmapLayout("w.npy", 1, 5, 5, [0], tokens, tokens, 0.6)
        self.assertEqual(image.shape[:2], (layout.height, layout.width))
        (panel_x, panel_y), = layout.panels
        self.assertEqual((layout.cell_w, layout.cell_h), (48, 48))
        drawn = [t if len(t) <= 12 else t[:11] + "~" for t in tokens]
        self.assertEqual([label for _, label in layout.query_ticks], drawn)
        self.assertEqual([label for _, label in layout.key_ticks], drawn)
        # Query labels: right-aligned 14 px left of the panel, centred on their tick (cap height 14).
        right = panel_x - 1 - 5 - 8
        boxes = [(right - text_width(label), panel_y + off - 7, right, panel_y + off - 7 + 18)
                 for off, label in layout.query_ticks]
        after_axis_name = panel_x - layout.left + 4 + 18  # "query", upright at the block's left edge
        self.assert_ink_in_boxes(image, (after_axis_name, panel_y - 20, right + 4, panel_y + layout.panel_h + 20), boxes,
                                 "query labels")
        long_ink = np.argwhere(image[boxes[2][1]:boxes[2][3], after_axis_name:right] == INK)[:, 1] + after_axis_name
        self.assertGreaterEqual(long_ink.min(), right - 142, "the cut label is 12 characters wide")
        self.assertLess(long_ink.min(), right - 130)
        # Key labels: upright, 18 px wide, from 10 px under the panel down by their length.
        top = panel_y + layout.panel_h + 1 + 5 + 4
        boxes = [(panel_x + off - 7, top, panel_x + off - 7 + 18, top + text_width(label))
                 for off, label in layout.key_ticks]
        self.assert_ink_in_boxes(image, (panel_x - 20, top, panel_x + layout.panel_w + 20, top + layout.key_label_h),
                                 boxes, "key labels")
        self.assertEqual(layout.key_label_h, 142)  # the band fits the longest label, cut
        long_ink = np.argwhere(image[top:top + layout.key_label_h, boxes[2][0]:boxes[2][2]] == INK)[:, 0]
        self.assertGreater(long_ink.max(), 11 * 12, "the cut label is 12 characters long")
        # Cells: the colour of a weight w is viridis(w / top), matplotlib's colour map.
        def cell(r, c):
            return image[panel_y + r * 48 + 24, panel_x + c * 48 + 24]
        self.assertEqual(cell(0, 0), VIRIDIS_1)
        self.assertEqual(cell(0, 1), VIRIDIS_HALF)
        self.assertEqual(cell(0, 2), VIRIDIS_0)
        self.assertEqual(len({cell(r, c) for r in range(1, 5) for c in range(5)}), 1)  # 0.2 everywhere
        # The colour bar: viridis from the top of the scale (row y) down to 0, one colour a row.
        bar_x, bar_y, bar_h = layout.bar
        column = [image[bar_y + i, bar_x + 10] for i in range(bar_h)]
        self.assertEqual(bar_h, 240)
        self.assertEqual((column[0], column[-1]), (VIRIDIS_1, VIRIDIS_0))
        self.assertEqual(column[119], VIRIDIS_HALF)  # t = 1 - 119/239: entry 128 of 256, as t = 0.5
        greens = [(c >> 8) & 0xff for c in column]
        self.assertEqual(greens, sorted(greens, reverse=True), "the green channel rises from 0 to the top")
        self.assertTrue(all((image[bar_y + i, bar_x:bar_x + 20] == column[i]).all() for i in range(bar_h)))
        # Its ticks at 0, 0.2, 0.4, 0.6 (steps of 1, 2 or 5 x 10^n): a 5 px mark right of the
        # bar on the row of each value, and a label beside it.
        self.assertEqual([label for _, label in layout.bar_ticks], ["0.0", "0.2", "0.4", "0.6"])
        marks = np.flatnonzero((image[bar_y - 10:bar_y + bar_h + 10, bar_x + 21:bar_x + 26] == INK).all(1)) + bar_y - 10
        self.assertEqual(marks.tolist(), sorted(y for y, _ in layout.bar_ticks))
        left = bar_x + 20 + 1 + 5 + 8
        boxes = [(left, y - 7, left + text_width(label), y - 7 + 18) for y, label in layout.bar_ticks]
        self.assert_ink_in_boxes(image, (left - 2, bar_y - 8, image.shape[1], bar_y + bar_h + 20), boxes,
                                 "colour bar labels")

    def test_heatmap_ticks_are_thinned(self):
        # 300 queries x 300 keys at one pixel each: a label every index would overlap, so
        # ticks go every 1, 2 or 5 x 10^n indices, at least 40 px apart for queries and, for
        # key numbers, the widest number plus two characters (58 px), for key tokens one text
        # line (22 px): every 50th query, every 100th key number, every 50th key token.
        w = np.full((1, 300, 300), 1 / 300, np.float32)
        tokens = [f"t{i}" for i in range(300)]
        for flags, queries, keys in (((), list(range(0, 300, 50)), list(range(0, 300, 100))),
                                     (("--labels", self.labels_file("t.txt", tokens)), list(range(0, 300, 50)),
                                      list(range(0, 300, 50)))):
            with self.subTest(labels=bool(flags)):
                image = self.heatmap(w, *flags)
                names = tokens if flags else []
                layout = HeatmapLayout("w.npy", 1, 300, 300, [0], names, names, 1 / 300)
                self.assertEqual(image.shape[:2], (layout.height, layout.width))
                self.assertEqual((layout.cell_w, layout.panel_w), (1, 300))
                (panel_x, panel_y), = layout.panels
                # The tick marks: 5 px left of the panel and under it, exactly at the chosen indices.
                rows = np.flatnonzero((image[panel_y:panel_y + 300, panel_x - 6:panel_x - 1] == INK).all(1))
                self.assertEqual(rows.tolist(), [i for i in queries])  # centre of index i is pixel i
                cols = np.flatnonzero((image[panel_y + 301:panel_y + 306, panel_x:panel_x + 300] == INK).all(0))
                self.assertEqual(cols.tolist(), keys)
                self.assertEqual([off for off, _ in layout.query_ticks], queries)
                self.assertEqual([off for off, _ in layout.key_ticks], keys)
                # Labels only at those ticks.
                right = panel_x - 14
                boxes = [(right - text_width(label), panel_y + off - 7, right, panel_y + off + 11)
                         for off, label in layout.query_ticks]
                after_axis_name = panel_x - layout.left + 4 + 18
                self.assert_ink_in_boxes(image, (after_axis_name, panel_y - 20, right + 4, panel_y + 320), boxes,
                                         "query labels")
                top = panel_y + 300 + 10
                if flags:
                    boxes = [(panel_x + off - 7, top, panel_x + off + 11, top + text_width(label))
                             for off, label in layout.key_ticks]
                else:
                    boxes = [(panel_x + off - text_width(label) // 2, top,
                              panel_x + off - text_width(label) // 2 + text_width(label), top + 18)
                             for off, label in layout.key_ticks]
                self.assert_ink_in_boxes(image, (panel_x - 30, top, panel_x + 330, top + layout.key_label_h), boxes,
                                         "key labels")

    def test_png_decoder_reads_every_filter(self):
        # decode_png itself, on a PNG written here with each filter type on some row.
        rng = np.random.default_rng(22)
        for channels, colour_type in ((1, 0), (3, 2), (4, 6)):
            pixels = rng.integers(0, 256, (5, 7 * channels), dtype=np.uint8)
            data = encode_png_rows(pixels, 7, colour_type)
            got = decode_png(data, packed=False)
            np.testing.assert_array_equal(got, pixels.reshape(5, 7, channels), f"colour type {colour_type}")

    def test_inspect_table_columns_hold_the_figures(self):
        # A (1, 2, 3, 4) dump whose figures are known: head 0 has a one-hot row, head 1 a row
        # of zeros (not counted) and a row off 1 by float32's rounding.
        a = np.array([[[[0.5, 0.25, 0.25, 0], [1, 0, 0, 0], [0.25] * 4],
                       [[0.7, 0.1, 0.1, 0.1], [0, 0, 0, 0], [0.4, 0.3, 0.2, 0.1]]]], np.float32)
        np.save(self.path("w.npy"), a)
        p = run("inspect", "w.npy", "--top-k", "2", cwd=self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, b"")
        lines = p.stdout.decode().split("\n")
        self.assertEqual(lines[:4], [
            "w.npy: float32 (1, 2, 3, 4) read as 1 batch x 2 heads of 3 queries x 4 keys", "",
            "                      row sum   ------ entropy (bits) ------       max   share   zero",
            "batch  head  queries  max error    mean     min     max uniform    weight   <1e-3   rows    NaN    Inf"])
        for head in (0, 1):
            panel = a[0, head].astype(np.float64)
            counted = panel[panel.sum(-1) > 0]
            sums = counted.sum(-1)
            p_rows = counted / sums[:, None]
            entropy = 0.0 - np.where(p_rows > 0, p_rows * np.log2(np.where(p_rows > 0, p_rows, 1)), 0).sum(-1)
            cells = [("%d", 0, 5), ("%d", head, 6), ("%d", 3, 9), ("%.2g", np.abs(sums - 1).max(), 11),
                     ("%.3f", entropy.mean(), 8), ("%.3f", entropy.min(), 8), ("%.3f", entropy.max(), 8),
                     ("%.3f", 2.0, 8), ("%.4g", panel.max(), 10), ("%.3f", (panel < 1e-3).mean(), 8),
                     ("%d", len(panel) - len(counted), 7), ("%d", 0, 7), ("%d", 0, 7)]
            want = "".join((fmt % value).rjust(width) for fmt, value, width in cells)
            self.assertEqual(lines[4 + head], want, f"head {head}")
            # The columns under their headers: each figure ends where a header word ends.
            figure_ends = [m.end() for m in re.finditer(r"\S+", lines[4 + head])]
            self.assertEqual(len(figure_ends), 13)
            self.assertLessEqual(set(figure_ends), {m.end() for m in re.finditer(r"\S+", lines[3])})
        # Head 0 worked by hand: sums exactly 1; entropies 1.5, 0 and 2 bits; 4 of 12 weights zero.
        self.assertEqual(lines[4], "    0     0        3          0   1.167   0.000   2.000   2.000         1   0.333"
                                   "      0      0      0")
        self.assertEqual(lines[6:], ["", "top 2 keys per query: key weight", "batch 0, head 0",
                                     "  query 0 ->   0 0.5000   1 0.2500", "  query 1 ->   0 1.0000   1 0.0000",
                                     "  query 2 ->   0 0.2500   1 0.2500", "batch 0, head 1",
                                     "  query 0 ->   0 0.7000   1 0.1000", "  query 1 ->   0 0.0000   1 0.0000",
                                     "  query 2 ->   0 0.4000   1 0.3000", ""])

    def test_timings_line_on_stderr_leaves_stdout_alone(self):
        q = os.path.join(DATA, "q.npy")
        number = r"(\d+\.\d{3}) s"
        for args, phases in ((["sdpa", "-q", q], ["read", "attention", "write"]),
                             (["sdpa", "-q", q, "-s", self.path("w.npy")], ["read", "attention (streaming scores)", "write"]),
                             (["mha", "--heads", "8", "-q", q, "--seed", "0"], ["read", "attention", "write"])):
            with self.subTest(args=args[:1] + args[3:]):
                plain = run(*args, "--format", "npy")
                timed = run(*args, "--format", "npy", "--timings")
                self.assertEqual(timed.returncode, 0, timed.stderr)
                self.assertEqual(timed.stdout, plain.stdout)
                self.assertTrue(timed.stdout.startswith(b"\x93NUMPY"))
                self.assertEqual(plain.stderr, b"")
                pattern = ("attn-cli: timings: " + ", ".join(re.escape(ph) + " " + number for ph in phases) +
                           ", total " + number + "\n")
                m = re.fullmatch(pattern, timed.stderr.decode())
                self.assertIsNotNone(m, timed.stderr)
                seconds = [float(x) for x in m.groups()]
                self.assertAlmostEqual(sum(seconds[:-1]), seconds[-1], delta=0.0025)  # each rounded to 1 ms
                self.assertLess(seconds[-1], 60)

    def progress_job(self):
        """sdpa arguments for a run of a few seconds (the bar shows from one second in): one
        thread on L = S = 32768 (275 GFLOP, 2.7 s at 100 GFLOP/s), or 4096 in the slower
        sanitizer build."""
        length = 4096 if self.SANITIZED else 32768
        np.save(self.path("q.npy"), np.random.default_rng(23).standard_normal((1, 1, length, 64), dtype=np.float32))
        return ["sdpa", "-q", "q.npy", "--threads", "1", "-o", "o.npy"]

    def run_on_pty(self, args):
        """Runs attn-cli with standard error on a pseudo-terminal: (status, what it wrote there,
        seconds it ran). Standard output goes to a file."""
        main, sub = pty.openpty()
        with open(self.path("stdout"), "wb") as out:
            start = time.monotonic()
            child = subprocess.Popen([CLI, *args], cwd=self.dir, stdout=out, stderr=sub)
        os.close(sub)
        seen = b""
        while True:
            ready, _, _ = select.select([main], [], [], 120)
            if not ready:
                child.kill()
                self.fail("no end of attn-cli after 120 s")
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: every writer of the terminal closed it
                chunk = b""
            if not chunk:
                break
            seen += chunk
        status = child.wait(timeout=60)
        os.close(main)
        return status, seen, time.monotonic() - start

    def test_progress_bar_on_a_terminal_only(self):
        support.require_files(self, "/dev/ptmx")  # pseudo-terminals
        args = self.progress_job()
        status, seen, seconds = self.run_on_pty(args)
        self.assertEqual(status, 0, seen)
        if seconds < 1.5:
            self.skipTest(f"the job took {seconds:.1f} s here, too short for a bar (shown after 1 s)")
        # Drawn in place ("\r" then the bar, "\033[K" clearing what a longer line left) ...
        frames = re.findall(rb"\rattn-cli: attention \[([# ]{30})\] +(\d+)%  (\d+\.\d) s(?:, about \d+ s left\x1b\[K)?",
                            seen)
        self.assertGreater(len(frames), 0, seen[:300])
        percents = [int(p) for _, p, _ in frames]
        self.assertEqual(percents, sorted(percents))
        for bar, percent, _ in frames:  # both from the fraction done: floor(30 f) and floor(100 f)
            self.assertEqual(bar, b"#" * bar.count(b"#") + b" " * (30 - bar.count(b"#")))
            self.assertIn(bar.count(b"#"), range(int(percent) * 3 // 10, (int(percent) + 1) * 3 // 10 + 1))
        self.assertGreaterEqual(min(float(t) for _, _, t in frames), 1.0)  # not in the first second
        # ... and erased at the end: the last thing written clears the line, no newline anywhere.
        self.assertTrue(seen.endswith(b"\r\x1b[K"), seen[-80:])
        self.assertNotIn(b"\n", seen)
        self.assertEqual(np.load(self.path("o.npy")).shape, (1, 1, len(np.load(self.path("q.npy"))[0, 0]), 64))
        # Standard error not a terminal (a pipe), and --no-progress on the terminal, side by
        # side (one thread each): nothing written.
        piped = subprocess.Popen([CLI, *args[:-1], "o2.npy"], cwd=self.dir, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        status, seen, _ = self.run_on_pty(args + ["--no-progress"])
        self.assertEqual((status, seen), (0, b""))
        out, err = piped.communicate(timeout=120)
        self.assertEqual((piped.returncode, out, err), (0, b"", b""))

    # ---- Hardening: flags and mha weights (issue 17) -------------------------------------

    def test_mha_float64_weights_compute_in_float64(self):
        """--dtype auto widens to the weights' float64: the output is float64 and matches a
        numpy float64 computation to 1e-12 (float32 arithmetic is off by ~1e-7)."""
        weights = dict(np.load(os.path.join(DATA, "mha_weights.npz")))
        w64 = self.path("w64.npz")
        np.savez(w64, **{name: t.astype(np.float64) for name, t in weights.items()})
        q = np.load(os.path.join(DATA, "q.npy"))
        self.assertEqual(q.dtype, np.float32)
        p = run("mha", "--heads", "8", "-q", os.path.join(DATA, "q.npy"), "--weights", w64, "-o", self.path("o.npy"))
        self.assertEqual(p.returncode, 0, p.stderr)
        out = np.load(self.path("o.npy"))
        self.assertEqual(out.dtype, np.float64)
        x = q.astype(np.float64)
        n, l, e = x.shape
        heads, hd = 8, e // 8
        proj = x @ weights["in_proj_weight"].astype(np.float64).T + weights["in_proj_bias"].astype(np.float64)
        qh, kh, vh = (proj[..., i * e:(i + 1) * e].reshape(n, l, heads, hd).transpose(0, 2, 1, 3) for i in range(3))
        attended, _ = sdpa_reference(qh, kh, vh)
        merged = attended.transpose(0, 2, 1, 3).reshape(n, l, e)
        want = merged @ weights["out_proj.weight"].astype(np.float64).T + weights["out_proj.bias"].astype(np.float64)
        np.testing.assert_allclose(out, want, rtol=0, atol=1e-12)
        # Forced float32: float32 output, and float32's rounding shows.
        p = run("mha", "--heads", "8", "-q", os.path.join(DATA, "q.npy"), "--weights", w64, "--dtype", "float32",
                "-o", self.path("o32.npy"))
        self.assertEqual(p.returncode, 0, p.stderr)
        out32 = np.load(self.path("o32.npy"))
        self.assertEqual(out32.dtype, np.float32)
        self.assertGreater(np.abs(out32 - want).max(), 1e-10)

    def test_inspect_json_null_when_no_row_counts(self):
        """Panels whose rows are all NaN or all zeros have no row-sum figure: null in JSON,
        '-' in the table; a panel with a counted row has its numbers."""
        w = np.full((3, 2, 4), 0.25, np.float32)
        w[0] = np.nan
        w[1] = 0
        path = self.path("w.npy")
        np.save(path, w)
        p = run("inspect", path, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        panels = json.loads(p.stdout)["panels"]
        for panel in panels[:2]:
            self.assertIsNone(panel["row_sum_error"], panel)
            self.assertIsNone(panel["worst_query"], panel)
            self.assertIsNone(panel["entropy_bits"]["mean"], panel)
        self.assertEqual(panels[1]["zero_rows"], 2)
        self.assertEqual(panels[1]["near_zero_share"], 1)
        self.assertEqual(panels[2]["row_sum_error"], 0)
        self.assertEqual(panels[2]["worst_query"], 0)
        table = run("inspect", path, "--top-k", "0")
        self.assertEqual(table.returncode, 0, table.stderr)
        rows = table.stdout.decode().splitlines()[-3:]
        self.assertEqual([r.split()[3] for r in rows], ["-", "-", "0"])
        # No rows at all: the figures over rows and weights are null too.
        empty = self.path("e.npy")
        np.save(empty, np.zeros((1, 0, 4), np.float32))
        panel = json.loads(run("inspect", empty, "--json").stdout)["panels"][0]
        for figure in ("row_sum_error", "worst_query", "max_weight", "near_zero_share"):
            self.assertIsNone(panel[figure], figure)

    def test_number_spellings_give_the_same_run(self):
        """--scale reads decimal spellings alike, a subnormal included; only what a double
        cannot hold, and non-decimal text, is refused (tests/errors.md, G14-G22)."""
        q = os.path.join(DATA, "q.npy")
        outputs = []
        for spelling in ("0.125", ".125", "1.25e-1", "+0.125", "125E-3"):
            p = run("sdpa", "-q", q, "--scale", spelling, "--format", "npy")
            self.assertEqual(p.returncode, 0, p.stderr)
            outputs.append(p.stdout)
        self.assertEqual(len(set(outputs)), 1)
        self.assertEqual(run("sdpa", "-q", q, "--scale", "1e-310", "-o", self.path("o.npy")).returncode, 0)
        # Boolean switches may repeat; a list flag given once as N,N works as before.
        p = run("sdpa", "-q", q, "--no-progress", "--no-progress", "--key-lengths", "5,3", "--format", "npy")
        self.assertEqual(p.returncode, 0, p.stderr)
        r = run("random", "--shape", "2,0,3", "--format", "npy")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(np.load(io.BytesIO(r.stdout)).shape, (2, 0, 3))

    def test_inspect_unreadable_labels_named_in_one_line(self):
        """A labels file that cannot be read is named with the system's reason, exit 1
        (root reads anything: as root the program runs as the user nobody, 65534)."""
        w = self.mha_weights()
        labels = self.path("labels.txt")
        with open(labels, "w") as f:
            f.write("a\nb\nc\nd\ne\n")
        os.chmod(labels, 0)
        drop = None
        if os.geteuid() == 0:
            os.chmod(self.dir, 0o755)  # nobody reads the weights beside the labels

            def drop():
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
        p = subprocess.run([CLI, "inspect", w, "--labels", labels], capture_output=True, timeout=120,
                           preexec_fn=drop)
        self.assert_error(p, 1, labels + ": cannot open: Permission denied")

    # ---- hardening: output paths (symbolic links, one file named twice, standard output) ----
    def read_bytes(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def sdpa_outputs(self, out, scores):
        """Runs the classic sdpa with -o OUT -s SCORES in the test folder."""
        return subprocess.run([CLI, "sdpa", "-q", os.path.join(DATA, "q.npy"), "-k", os.path.join(DATA, "k.npy"),
                               "-v", os.path.join(DATA, "v.npy"), "-o", out, "-s", scores], cwd=self.dir,
                              capture_output=True, timeout=120)

    def test_symbolic_link_outputs_are_written_through(self):
        p = self.sdpa_outputs("ref_out.npy", "ref_w.json")
        self.assertEqual(p.returncode, 0, p.stderr)
        want_out, want_w = self.read_bytes("ref_out.npy"), self.read_bytes("ref_w.json")
        os.mkdir(self.path("sub"))
        links = {  # link -> what it points to, and the file written at the end of its chain
            "sub/rel_out.npy": ("../t_rel_out.npy", "t_rel_out.npy"),
            "sub/rel_w.json": ("../t_rel_w.json", "t_rel_w.json"),
            "abs_out.npy": (self.path("t_abs_out.npy"), "t_abs_out.npy"),
            "chain_w.json": ("chain2_w.json", "sub/t_chain_w.json"),  # two links
            "chain2_w.json": ("sub/t_chain_w.json", "sub/t_chain_w.json"),
            "dangling_out.npy": ("sub/t_new_out.npy", "sub/t_new_out.npy"),
            "old_w.json": ("t_old_w.json", "t_old_w.json"),
        }
        for link, (to, _) in links.items():
            os.symlink(to, self.path(link))
        with open(self.path("t_old_w.json"), "w") as f:
            f.write("old")
        os.chmod(self.path("t_old_w.json"), 0o640)
        for out, scores in (("sub/rel_out.npy", "sub/rel_w.json"), ("abs_out.npy", "chain_w.json"),
                            ("dangling_out.npy", "old_w.json")):
            with self.subTest(out=out, scores=scores):
                p = self.sdpa_outputs(out, scores)
                self.assertEqual(p.returncode, 0, p.stderr)
                for name, want in ((out, want_out), (scores, want_w)):
                    self.assertTrue(os.path.islink(self.path(name)), name)  # the link stays a link
                    self.assertEqual(os.readlink(self.path(name)), links[name][0])
                    self.assertEqual(self.read_bytes(links[name][1]), want, name)  # byte for byte
        self.assertEqual(os.stat(self.path("t_old_w.json")).st_mode & 0o777, 0o640)  # the target's mode kept
        # convert too, and nothing left beside the targets.
        os.symlink("t_conv.json", self.path("conv.json"))
        p = run("convert", os.path.join(DATA, "q.npy"), self.path("conv.json"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(read_text(self.path("t_conv.json")))["shape"], [2, 5, 64])
        leftovers = [n for d in (self.dir, self.path("sub")) for n in os.listdir(d) if ".tmp-" in n]
        self.assertEqual(leftovers, [])

    def test_dev_stdout_redirected_to_a_file_gets_the_whole_file(self):
        if not os.path.isdir("/proc/self/fd"):
            self.skipTest("no /proc/self/fd")
        want = self.read_bytes_of(os.path.join(DATA, "q.npy"))
        os.symlink("/proc/self/fd/1", self.path("my_stdout"))  # what /dev/stdout is
        # The folder's own link first: a program that renamed over the link would replace only
        # that one, where /dev/stdout (as root) would be lost for the whole machine.
        names = [self.path("my_stdout"), "/proc/self/fd/1", "/dev/fd/1"]
        if os.path.islink("/dev/stdout"):
            names.append("/dev/stdout")
        for name in names:  # no subTest: the first failure must stop the loop before /dev/stdout
            with open(self.path("cap.npy"), "wb") as f:
                f.write(b"longer than the npy file, to be truncated: " * 100)
            with open(self.path("cap.npy"), "r+b") as f:  # as `> cap.npy` would, without truncating
                p = subprocess.run([CLI, "convert", os.path.join(DATA, "q.npy"), name, "--format", "npy"],
                                   stdout=f, stderr=subprocess.PIPE, timeout=120)
            self.assertEqual(p.returncode, 0, (name, p.stderr))
            self.assertTrue(os.path.islink(self.path("my_stdout")), name)
            self.assertEqual(self.read_bytes("cap.npy"), want, name)
            self.assertEqual(sorted(os.listdir(self.dir)), ["cap.npy", "my_stdout"], name)
        if os.path.exists("/dev/stdout"):
            self.assertTrue(os.path.islink("/dev/stdout"))

    def read_bytes_of(self, path):
        with open(path, "rb") as f:
            return f.read()

    def test_two_outputs_naming_one_file_are_a_usage_error(self):
        with open(self.path("a.npy"), "w") as f:
            f.write("keep")
        os.link(self.path("a.npy"), self.path("hard.npy"))
        os.symlink("a.npy", self.path("soft.npy"))
        q = os.path.join(DATA, "q.npy")
        for args, later, earlier in (
                (["sdpa", "-q", q, "-o", "a.npy", "-s", "hard.npy"], "-s/--scores", "-o/--output"),
                (["sdpa", "-q", q, "-o", "out.npy", "--logits", "soft.npy", "--lse", "./hard.npy"], "--lse",
                 "--logits"),
                (["mha", "--heads", "8", "--seed", "0", "-q", q, "-o", self.path("a.npy"), "--logits", "hard.npy"], "--logits",
                  "-o/--output"),
                # a folder that does not exist: the same name once normalised by its text
                (["mha", "--heads", "8", "--seed", "0", "-q", q, "-o", "out.npy", "-s", "w.json", "--save-weights",
                  self.path("no/such/../../w.json")], "--save-weights", "-s/--scores")):
            with self.subTest(args=args):
                p = subprocess.run([CLI, *args], cwd=self.dir, capture_output=True, timeout=120)
                self.assert_error(p, 2, f"{later}: names the same file as {earlier}")
                self.assertEqual(read_text(self.path("a.npy")), "keep")
                self.assertEqual(sorted(os.listdir(self.dir)), ["a.npy", "hard.npy", "soft.npy"])
        # Not one file: an output beside its own input, and the null device twice.
        p = subprocess.run([CLI, "convert", "a.npy", "a.npy"], cwd=self.dir, capture_output=True)
        self.assertEqual(p.returncode, 1)  # "keep" is no tensor: read first, refused as bad input
        p = run("sdpa", "-q", q, "-o", "/dev/null", "-s", "/dev/null", "--logits", "-", "--format", "npy")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith(b"\x93NUMPY"))

    def test_standard_output_write_failures_are_reported(self):
        if not os.path.exists("/dev/full"):
            self.skipTest("no /dev/full")
        w = self.path("w.npy")
        np.save(w, np.full((2, 5, 5), 0.2, np.float32))
        for args in (["inspect", w], ["inspect", w, "--ansi"], ["inspect", w, "--json"], ["--help"],
                     ["convert", "--help"], ["--version"], ["random", "--shape", "3"]):
            with self.subTest(args=args):
                with open("/dev/full", "wb") as full:
                    p = subprocess.run([CLI, *args], stdout=full, stderr=subprocess.PIPE, timeout=120)
                self.assertEqual(p.returncode, 1)
                self.assertEqual(p.stderr, b"attn-cli: error: <stdout>: write failed: No space left on device\n")
                # closed: EBADF, and standard output written nowhere else
                p = subprocess.run([CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                                   pass_fds=(), preexec_fn=lambda: os.close(1))
                self.assertEqual(p.returncode, 1)
                self.assertEqual(p.stderr, b"attn-cli: error: <stdout>: write failed: Bad file descriptor\n")

    def test_long_inspect_table_is_written_whole(self):
        w = self.path("w.npy")
        np.save(w, np.full((1, 2, 2000, 4), 0.25, np.float32))  # 4000 top-k lines, over 64 KiB
        p = run("inspect", w)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.decode().splitlines()
        self.assertEqual(sum(line.startswith("  query ") for line in lines), 4000)
        self.assertGreater(len(p.stdout), 64 << 10)
        self.assertTrue(lines[-1].startswith("  query 1999 ->"), lines[-1])

    # ---- hardening: names and strictness (issue 17): labels and file names with
    # control bytes are shown as \xNN; explicit --dtype casts refuse what they cannot hold.

    def test_inspect_labels_with_control_bytes_are_escaped(self):
        w = self.mha_weights()
        labels = self.path("esc_labels.txt")
        with open(labels, "wb") as f:
            f.write(b"the\n\x1b[31mred\nca\rt\n\xc2\x9bcsi\n\xe2\x96\x81ok\n")
        p = run("inspect", w, "--labels", labels, "--batch", "0", "--head", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        for raw in (b"\x1b", b"\r", b"\xc2\x9b"):
            self.assertNotIn(raw, p.stdout)
        out = p.stdout.decode()
        self.assertIn('query 1 "\\x1b[31mred"', out)
        self.assertIn('query 2 "ca\\x0dt"', out)
        self.assertIn('query 3 "\\xc2\\x9bcsi"', out)
        self.assertIn('query 4 "\u2581ok"', out)  # UTF-8 text is shown as it is
        png = self.path("esc.png")
        p = run("inspect", w, "--labels", labels, "--heatmap", png)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertGreater(os.path.getsize(png), 0)

    def test_inspect_file_name_with_control_bytes_is_escaped(self):
        w = self.path("w\x1b[2J.npy")
        np.save(w, np.full((1, 1, 2, 2), 0.5, np.float32))
        p = run("inspect", w)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn(b"\x1b", p.stdout)
        self.assertTrue(p.stdout.decode().startswith(w.replace("\x1b", "\\x1b") + ": float32 (1, 1, 2, 2)"))

    def test_convert_casts_what_the_dtype_holds(self):
        src = self.path("c.npy")
        np.save(src, np.array([[-128, 127], [0, 255]], np.float64))
        out = self.path("c8.npy")
        p = run("convert", src, out, "--dtype", "int16")
        self.assertEqual(p.returncode, 0, p.stderr)
        np.testing.assert_array_equal(np.load(out), np.array([[-128, 127], [0, 255]], np.int16))
        self.assert_error(run("convert", src, out, "--dtype", "int8"), 1, src, "element [1, 1]: 255 is out of range for int8")


    # ---- float16 and bfloat16: kept as read ------------------------------------------

    def write_safetensors(self, name, dtype, shape, raw):
        header = json.dumps({"t": {"dtype": dtype, "shape": shape, "data_offsets": [0, len(raw)]}}).encode()
        with open(self.path(name), "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header + raw)
        return self.path(name)

    def read_safetensors(self, path):
        data = read_bytes(path)
        n = struct.unpack("<Q", data[:8])[0]
        return json.loads(data[8 : 8 + n]), data[8 + n :]

    def test_convert_keeps_float16(self):
        src = self.path("h.npy")
        values = np.array([[0.1, -2.5, 65504, 2.0**-24], [np.inf, -0.0, np.nan, 3.14159]], np.float16)
        np.save(src, values)
        out = self.path("o.npy")
        p = run("convert", src, out)
        self.assertEqual((p.returncode, p.stderr), (0, b""))
        self.assertEqual(read_bytes(out), read_bytes(src))  # numpy's own bytes, '<f2' header included
        p = run("convert", src, self.path("o.safetensors"))
        self.assertEqual(p.returncode, 0, p.stderr)
        header, data = self.read_safetensors(self.path("o.safetensors"))
        self.assertEqual(header["arr_0"]["dtype"], "F16")
        self.assertEqual(data, values.tobytes())
        p = run("convert", src, self.path("o.npz"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(np.load(self.path("o.npz"))["arr_0"].dtype, np.float16)
        p = run("convert", src, "-")
        self.assertEqual(p.returncode, 0, p.stderr)
        doc = json.loads(p.stdout)
        self.assertEqual(doc["dtype"], "float16")
        self.assertEqual(np.array(doc["data"], np.float16).tobytes()[:8], values[0].tobytes())
        # JSON back to float16: the same bits
        np.save(self.path("j.npy"), values[0])
        with open(self.path("h.json"), "wb") as f:
            f.write(run("convert", self.path("j.npy"), "-").stdout)
        p = run("convert", self.path("h.json"), self.path("back.npy"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(read_bytes(self.path("back.npy")), read_bytes(self.path("j.npy")))

    def test_convert_keeps_bfloat16_in_safetensors_and_widens_it_for_numpy(self):
        wide = np.array([[1.5, -2.25], [0.10009765625, 2.0**100]], np.float32)
        raw = (wide.view(np.uint32) >> 16).astype("<u2").tobytes()  # exact in bfloat16
        src = self.write_safetensors("b.safetensors", "BF16", [2, 2], raw)
        out = self.path("o.safetensors")
        p = run("convert", src, out)
        self.assertEqual((p.returncode, p.stderr), (0, b""))
        header, data = self.read_safetensors(out)
        self.assertEqual(header["arr_0"]["dtype"], "BF16")
        self.assertEqual(data, raw)
        for name in ("o.npy", "o.npz"):
            p = run("convert", src, self.path(name))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(
                p.stderr.decode(), f"attn-cli: note: {src}: bfloat16 written as float32 (numpy has no bfloat16)\n"
            )
        got = np.load(self.path("o.npy"))
        self.assertEqual(got.dtype, np.float32)
        np.testing.assert_array_equal(got, wide)

    def test_convert_dtype_float16_rounds_to_nearest_even_and_refuses_overflow(self):
        src = self.path("f.npy")
        values = np.array([1.0, 0.1, 1 + 2.0**-11, 65519.0, 1e-7, -np.inf])
        np.save(src, values)
        out = self.path("o.npy")
        p = run("convert", src, out, "--dtype", "float16")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(np.load(out).tobytes(), values.astype(np.float16).tobytes())
        p = run("convert", src, self.path("o.safetensors"), "--dtype", "bfloat16")
        self.assertEqual(p.returncode, 0, p.stderr)
        header, data = self.read_safetensors(self.path("o.safetensors"))
        self.assertEqual(header["arr_0"]["dtype"], "BF16")
        # float64 -> bfloat16, round to nearest even, from the float64 bits
        bits = values.view(np.uint64)
        want = []
        for b, v in zip(bits.tolist(), values.tolist()):
            if math.isinf(v):
                want.append(0xFF80 if v < 0 else 0x7F80)
                continue
            f = np.float32(v)  # these values are exact enough in float32 that no double rounding occurs
            u = int(np.array(f).view(np.uint32))
            want.append((u + 0x7FFF + ((u >> 16) & 1)) >> 16)
        self.assertEqual(data, np.array(want, "<u2").tobytes())
        np.save(src, np.array([1.0, 70000.0]))
        self.assert_error(run("convert", src, out, "--dtype", "float16"), 1, "element [1]: 70000 is out of range for float16")

    def test_mha_save_weights_widens_bfloat16_for_numpy_with_a_note(self):
        layer = np.load(os.path.join(DATA, "mha_weights.npz"))
        header, raw = {}, b""
        for name in layer.files:
            wide = layer[name].astype(np.float32)
            data = (wide.view(np.uint32) >> 16).astype("<u2").tobytes()  # truncated: a bfloat16 value
            header[name] = {"dtype": "BF16", "shape": list(wide.shape), "data_offsets": [len(raw), len(raw) + len(data)]}
            raw += data
        text = json.dumps(header).encode()
        src = self.path("w.safetensors")
        with open(src, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + raw)
        q = os.path.join(DATA, "q.npy")
        p = run("mha", "--heads", "8", "-q", q, "--weights", src, "-o", self.path("o.npy"), "--save-weights", self.path("s.npz"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr.decode(), f"attn-cli: note: {src}: bfloat16 written as float32 (numpy has no bfloat16)\n")
        saved = np.load(self.path("s.npz"))
        want = (layer["out_proj.weight"].astype(np.float32).view(np.uint32) & 0xFFFF0000).view(np.float32)
        np.testing.assert_array_equal(saved["out_proj.weight"], want)
        p = run("mha", "--heads", "8", "-q", q, "--weights", src, "-o", self.path("o.npy"), "--save-weights", self.path("s.safetensors"))
        self.assertEqual((p.returncode, p.stderr), (0, b""))
        header, _ = self.read_safetensors(self.path("s.safetensors"))
        self.assertEqual(header["out_proj.weight"]["dtype"], "BF16")

    def test_sdpa_on_float16_inputs_equals_sdpa_on_their_float32_values(self):
        rng = np.random.default_rng(17)
        q = rng.standard_normal((2, 3, 5, 8)).astype(np.float16)
        k = rng.standard_normal((2, 3, 7, 8)).astype(np.float16)
        v = rng.standard_normal((2, 3, 7, 8)).astype(np.float16)
        for name, a in (("q", q), ("k", k), ("v", v)):
            np.save(self.path(name + "16.npy"), a)
            np.save(self.path(name + "32.npy"), a.astype(np.float32))
        outs = []
        for w in ("16", "32"):
            out = self.path("o" + w + ".npy")
            args = ["-q", self.path("q" + w + ".npy"), "-k", self.path("k" + w + ".npy"), "-v", self.path("v" + w + ".npy")]
            p = run("sdpa", *args, "--check-finite", "-o", out)
            self.assertEqual(p.returncode, 0, p.stderr)
            outs.append(read_bytes(out))
        self.assertEqual(outs[0], outs[1])
        self.assertEqual(np.load(self.path("o16.npy")).dtype, np.float32)


if __name__ == "__main__":
    CLI = os.path.abspath(sys.argv.pop(1))
    support.main()
