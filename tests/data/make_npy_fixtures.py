#!/usr/bin/python3
"""Writes the .npy fixtures of tests/io/test_npy.cpp with numpy itself.

Good files hold np.arange-based values so the tests can recompute them; bad files are
valid numpy files cut or edited at a known place. Run: /usr/bin/python3 tests/data/make_npy_fixtures.py
"""
import os

import numpy as np
from numpy.lib import format as npformat

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "npy")
os.makedirs(out, exist_ok=True)


def save(name, array, version=None):
    path = os.path.join(out, name)
    with open(path, "wb") as f:
        if version is None:
            np.save(f, array)
        else:
            npformat.write_array(f, array, version=version)


def values(dtype, shape):
    n = int(np.prod(shape))
    if np.dtype(dtype).kind == "b":
        return (np.arange(n) % 3 == 0).reshape(shape)
    if np.dtype(dtype).kind == "u":
        return (np.arange(n) * 7 % 200).astype(dtype).reshape(shape)
    if np.dtype(dtype).kind == "i":
        return ((np.arange(n) * 7 % 200) - 100).astype(dtype).reshape(shape)
    return ((np.arange(n) - n / 2) / 4).astype(dtype).reshape(shape)


# Every descr numpy writes for the dtypes of docs/formats.md, both byte orders.
for descr in ["<f2", ">f2", "<f4", ">f4", "<f8", ">f8", "|b1", "|i1", "|u1",
              "<i2", ">i2", "<i4", ">i4", "<i8", ">i8", "<u2", ">u2", "<u4", ">u4", "<u8", ">u8"]:
    name = descr.replace("<", "le_").replace(">", "be_").replace("|", "")
    save(f"{name}.npy", values(descr, (2, 3, 4)))

save("fortran_f4.npy", np.asfortranarray(values("<f4", (2, 3, 4))))
save("fortran_i2_2d.npy", np.asfortranarray(values("<i2", (3, 5))))
save("scalar_f8.npy", np.array(2.5))
save("empty_0x3.npy", np.zeros((0, 3), np.float32))
save("vector_f4.npy", values("<f4", (7,)))
save("v2_f4.npy", values("<f4", (2, 3)), version=(2, 0))
save("v3_f4.npy", values("<f4", (2, 3)), version=(3, 0))
save("special_f4.npy", np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, 3.4028235e38], np.float32))

# Unsupported dtypes numpy can write.
save("bad_object.npy", np.array([1, "a", None], dtype=object))
save("bad_unicode.npy", np.array(["ab", "cd"]))
save("bad_complex.npy", np.array([1 + 2j], np.complex64))
save("bad_structured.npy", np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
save("bad_datetime.npy", np.array(["2020-01-01"], dtype="datetime64[D]"))

good = open(os.path.join(out, "le_f4.npy"), "rb").read()
header_len = int.from_bytes(good[8:10], "little")
data_at = 10 + header_len


def raw(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def with_header(text):
    """A v1.0 file with the given header dict text and the le_f4 data."""
    text = text + " " * ((64 - (10 + len(text) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1") + good[data_at:]


raw("bad_empty.npy", b"")
raw("bad_magic.npy", b"\x93NUMPX" + good[6:])
raw("bad_truncated_header.npy", good[:40])
raw("bad_header_past_end.npy", good[:8] + (9000).to_bytes(2, "little") + good[10:100])
raw("bad_header_over_cap.npy", b"\x93NUMPY\x02\x00" + (20000).to_bytes(4, "little") + b" " * 20000)
raw("bad_version.npy", b"\x93NUMPY\x04\x00" + good[8:])
raw("bad_data_short.npy", good[:-4])
raw("bad_data_long.npy", good + b"\0\0\0\0")
raw("bad_missing_key.npy", with_header("{'descr': '<f4', 'shape': (2, 3, 4), }"))
raw("bad_extra_key.npy", with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), 'x': 1, }"))
raw("bad_duplicate_key.npy", with_header("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }"))
raw("bad_negative_shape.npy", with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3, 4), }"))
raw("bad_overflow_shape.npy", with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4), }"))
# Readers must not depend on key order or quote style.
raw("reordered_keys.npy", with_header('{"shape": (2, 3, 4), "fortran_order": False, "descr": "<f4"}'))
# Header bytes quoted in an error must not break the one-line message.
raw("bad_descr_control.npy", with_header("{'descr': '<i\n4', 'fortran_order': False, 'shape': (2, 3, 4), }"))
