#!/usr/bin/python3
"""Writes the .npz and .safetensors fixtures of tests/io/test_npz.cpp and tests/io/test_safetensors.cpp.

Run with Debian's interpreter (numpy 1.24, torch 1.13): /usr/bin/python3 tests/data/make_archive_fixtures.py

The good .npz files come from numpy itself (np.savez, np.savez_compressed); the bad ones
are numpy's output with one byte changed, or zips built by hand below so that their
central directory can say what a hostile file would say. There is no safetensors package
for this interpreter, so save_safetensors() writes the format the way the reference
writer (huggingface/safetensors, serialize) does: entries sorted by dtype, largest
alignment first, then by name; `__metadata__` first; header padded with spaces to a
multiple of 8 bytes.
"""
import json
import os
import struct
import zipfile
import zlib

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
NPZ_DIR = os.path.join(HERE, "npz")
SAFETENSORS_DIR = os.path.join(HERE, "safetensors")


# ---- .npz ----------------------------------------------------------------------------

def npz_arrays():
    """One array per case the reader must get right; test_npz.cpp checks these values."""
    return {
        "f32": (np.arange(6, dtype=np.float32).reshape(2, 3) / 4).astype(np.float32),
        "f64": np.array([0.1, -1e300, 2.5], dtype=np.float64),
        "i64": np.array([[-(2**62), 1], [2, 3]], dtype=np.int64),
        "u8": np.array([0, 255, 7, 1], dtype=np.uint8),
        "mask": np.array([True, False, True], dtype=np.bool_),
        "f16": np.array([1.0, -2.5, 65504.0], dtype=np.float16),
        "scalar": np.float64(3.5),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
        "big_endian": np.array([1.5, -2.0], dtype=">f4"),
    }


def npy_bytes(array):
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def npy_header_for(shape, descr="<f4"):
    """The npy header numpy writes for an array of this shape and dtype, without the data."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def raw_deflate(data):
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def hand_zip(members):
    """A zip written field by field, with ZIP64 extras as numpy writes them.

    Each member is a dict: name, payload (the bytes stored in the file), method (0 or 8),
    crc, size (the uncompressed size the headers declare)."""
    out = bytearray()
    central = bytearray()
    for m in members:
        name = m["name"].encode()
        offset = len(out)
        comp_size = len(m["payload"])
        local_extra = struct.pack("<HHQQ", 1, 16, m["size"], comp_size)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, m["method"], 0, 0x21, m["crc"],
                           0xFFFFFFFF, 0xFFFFFFFF, len(name), len(local_extra))
        out += name + local_extra + m["payload"]
        central_extra = struct.pack("<HHQQ", 1, 16, m["size"], comp_size)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, m["method"], 0, 0x21, m["crc"],
                               0xFFFFFFFF, 0xFFFFFFFF, len(name), len(central_extra), 0, 0, 0, 0, offset)
        central += name + central_extra
    cd_offset = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), cd_offset, 0)
    return bytes(out)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def make_npz():
    os.makedirs(NPZ_DIR, exist_ok=True)
    arrays = npz_arrays()
    np.savez(os.path.join(NPZ_DIR, "savez.npz"), **arrays)
    np.savez_compressed(os.path.join(NPZ_DIR, "savez_compressed.npz"), **arrays)

    # A stored member with one data byte changed: only the CRC can tell.
    data = bytearray(open(os.path.join(NPZ_DIR, "savez.npz"), "rb").read())
    first = data.find(b"\x93NUMPY")
    data[first + 128] ^= 0x01  # the first float32 element of "f32" (header is 128 bytes)
    write(os.path.join(NPZ_DIR, "bad_crc.npz"), bytes(data))

    # A member that is not an .npy file, beside one that is.
    with zipfile.ZipFile(os.path.join(NPZ_DIR, "not_npy.npz"), "w") as z:
        z.writestr("a.npy", npy_bytes(np.array([1, 2], dtype=np.int16)))
        z.writestr("notes.txt", b"these are not the tensors you are looking for\n")

    # A zip bomb that tells the truth in its npy header: shape (25e9,) float32 is 100 GB,
    # and the zip entry declares exactly that, from a few hundred compressed bytes.
    header = npy_header_for((25_000_000_000,))
    content = header + bytes(4096)
    claimed = len(header) + 25_000_000_000 * 4
    write(os.path.join(NPZ_DIR, "bomb_claim.npz"),
          hand_zip([{"name": "x.npy", "payload": raw_deflate(content), "method": 8,
                     "crc": zlib.crc32(content), "size": claimed}]))

    # A member of 200 kB (a real, consistent deflate stream with a correct CRC) whose npy
    # header says (4,) float32: 144 bytes. Some random bytes keep its compression ratio
    # plausible, so that only the npy header gives it away.
    header = npy_header_for((4,))
    noise = np.random.default_rng(0).bytes(1000)
    content = header + bytes(16) + noise + bytes(200_000 - len(header) - 16 - len(noise))
    payload = raw_deflate(content)
    assert len(content) < 500 * len(payload), "the ratio check would catch it first"
    write(os.path.join(NPZ_DIR, "bomb_size_mismatch.npz"),
          hand_zip([{"name": "x.npy", "payload": payload, "method": 8, "crc": zlib.crc32(content),
                     "size": len(content)}]))

    # A member whose header and declared size agree but whose deflate stream (CRC and all)
    # ends early.
    header = npy_header_for((1000,))
    full = header + bytes(4000)
    short = header + bytes(1000)
    write(os.path.join(NPZ_DIR, "short_member.npz"),
          hand_zip([{"name": "x.npy", "payload": raw_deflate(short), "method": 8, "crc": zlib.crc32(short),
                     "size": len(full)}]))


# ---- .safetensors --------------------------------------------------------------------

# The reference's Dtype enum order; serialize sorts by it, descending, then by name.
DTYPE_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
               "I32", "U32", "F32", "F64", "I64", "U64"]

TORCH_DTYPES = {
    torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16",
    torch.float16: "F16", torch.bfloat16: "BF16", torch.int32: "I32", torch.float32: "F32",
    torch.float64: "F64", torch.int64: "I64",
}
NUMPY_DTYPES = {np.dtype(np.uint16): "U16", np.dtype(np.uint32): "U32", np.dtype(np.uint64): "U64"}


def tensor_record(value):
    """(dtype name, shape, little-endian bytes) of a torch tensor or numpy array."""
    if isinstance(value, torch.Tensor):
        value = value.contiguous()
        dtype = TORCH_DTYPES[value.dtype]
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16: take the bits
            raw = value.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            raw = value.numpy().tobytes()
        return dtype, list(value.shape), raw
    value = np.ascontiguousarray(value)
    return NUMPY_DTYPES[value.dtype], list(value.shape), value.astype(value.dtype.newbyteorder("<")).tobytes()


def save_safetensors(path, tensors, metadata=None):
    records = [(name,) + tensor_record(value) for name, value in tensors.items()]
    records.sort(key=lambda r: (-DTYPE_ORDER.index(r[1]), r[0]))
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, raw in records:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    write(path, struct.pack("<Q", len(text)) + text + b"".join(r[3] for r in records))


def make_safetensors():
    os.makedirs(SAFETENSORS_DIR, exist_ok=True)
    tensors = {
        "attn.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4,
        "half": torch.tensor([1.0, -2.5, 65504.0, 2.0**-14, 2.0**-24], dtype=torch.float16),
        "bf16": torch.tensor([1.5, -2.25, 3.0, 2.0**100], dtype=torch.bfloat16),
        "f64": torch.tensor([0.1, -1e300], dtype=torch.float64),
        "i64": torch.tensor([[-(2**62), 1], [2, 3]], dtype=torch.int64),
        "i32": torch.tensor([-(2**31), 2**31 - 1], dtype=torch.int32),
        "i16": torch.tensor([-32768, 32767, 0], dtype=torch.int16),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255, 7], dtype=torch.uint8),
        "mask": torch.tensor([[True, False], [False, True]]),
        "scalar": torch.tensor(2.5, dtype=torch.float32),
        "empty": torch.zeros(0, 4, dtype=torch.float32),
        "u16": np.array([65535, 1], dtype=np.uint16),
        "u32": np.array([2**32 - 1], dtype=np.uint32),
        "u64": np.array([2**64 - 1, 5], dtype=np.uint64),
    }
    save_safetensors(os.path.join(SAFETENSORS_DIR, "torch_mixed.safetensors"), tensors, {"format": "pt"})

    # Offsets that leave every multi-byte tensor unaligned, and a header that lists them
    # out of offset order (the reader returns offset order).
    data = (bytes([1, 2, 3]) + struct.pack("<2f", 1.25, -4.0) + struct.pack("<d", 6.5)
            + struct.pack("<h", -7))
    header = {
        "c": {"dtype": "F64", "shape": [1], "data_offsets": [11, 19]},
        "a": {"dtype": "U8", "shape": [3], "data_offsets": [0, 3]},
        "d": {"dtype": "I16", "shape": [], "data_offsets": [19, 21]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [3, 11]},
    }
    text = json.dumps(header).encode()  # unpadded: readers must not need the padding
    write(os.path.join(SAFETENSORS_DIR, "unaligned.safetensors"), struct.pack("<Q", len(text)) + text + data)


if __name__ == "__main__":
    make_npz()
    make_safetensors()
