#!/usr/bin/python3
"""End-to-end tests of the attn-cli program: exit statuses, one-line errors, atomic
outputs, pipelines, formats, and values against numpy computations.

usage: cli_test.py PATH/TO/attn-cli      (needs Debian's python3-numpy)
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

import numpy as np

CLI = None
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
NONFINITE = os.path.join(HERE, "data", "nonfinite")

def run(*args, stdin=None, cwd=None):
    return subprocess.run([CLI, *args], input=stdin, capture_output=True, cwd=cwd, timeout=120)


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
        convert, random = ["convert", q, "-"], ["random", "--shape", "2,3"]
        output = [("--format", ["json", "npy"]), ("--json-layout", ["object", "nested"])]
        dtypes = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64"]
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
        self.assertEqual(os.listdir(self.dir), [])

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
        for dtype in ("bool", "int8", "uint16", "int64", "float64"):
            p = run("convert", paths["q"], "-", "--dtype", dtype)
            self.assertEqual(load_json(p.stdout).dtype, np.dtype(dtype), dtype)
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
        with open(self.path("stderr"), "wb") as err:
            child = subprocess.Popen([CLI, "mha", "--heads", "4", "-q", q, "--seed", "0", "-o", self.path("o.npy"),
                                      "-s", w], stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
        self.assertEqual(child.returncode, 0, read_text(self.path("stderr")))
        weights = np.load(w, mmap_mode="r")
        self.assertEqual(weights.shape, (1, 4, 4096, 4096))
        np.testing.assert_allclose(weights[0, :, ::1000].sum(-1), 1, rtol=1e-5)
        peak = usage.ru_maxrss * 1024  # kB on Linux
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


if __name__ == "__main__":
    CLI = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=1)
