#!/usr/bin/python3
"""Writes the JSON tensor fixtures of tests/io/test_json.cpp with Python's json and numpy.

Each NAME.json is what Python itself writes (json.dumps of ndarray.tolist(), the way a
user hands tensors to attn-cli); NAME.bin beside it holds the expected tensor as raw
little-endian bytes (ndarray.tobytes()), so the C++ test compares bit for bit without
depending on any other reader. Archive members get NAME.MEMBER.bin. Deterministic: run
it again and the files do not change.

    /usr/bin/python3 tests/data/make_json_fixtures.py
"""
import json
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "json")


def write(name, text, arrays):
    with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
        f.write(text)
    for member, array in arrays.items():
        suffix = "." + member if member else ""
        with open(os.path.join(OUT, name + suffix + ".bin"), "wb") as f:
            f.write(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())


def tensor_object(array):
    return {"shape": list(array.shape), "dtype": str(array.dtype), "data": array.tolist()}


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)

    # float32 with every awkward value; tolist() widens to Python floats, so the text has
    # up to 17 digits ("0.10000000149011612") that must round to the same float32.
    f32 = rng.standard_normal((3, 4)).astype(np.float32)
    f32.flat[:8] = np.array([np.nan, np.inf, -np.inf, -0.0, np.float32(1e-45),
                             np.finfo(np.float32).max, np.finfo(np.float32).tiny, 0.1],
                            dtype=np.float32)
    write("nested_float32", json.dumps(f32.tolist()), {"": f32})

    f64 = rng.standard_normal((2, 3))
    f64.flat[:3] = [5e-324, np.finfo(np.float64).max, -0.0]
    write("object_float64", json.dumps(tensor_object(f64), indent=2), {"": f64})

    # Flat row-major data, keys in an unusual order, data before shape and dtype.
    i16 = rng.integers(-32768, 32768, size=(2, 2, 3), dtype=np.int16)
    text = json.dumps({"data": i16.ravel().tolist(), "dtype": "int16", "shape": list(i16.shape)})
    write("object_flat_int16", text, {"": i16})

    b = rng.integers(0, 2, size=(2, 3)).astype(np.bool_)
    write("object_bool", json.dumps(tensor_object(b)), {"": b})
    write("nested_bool", json.dumps(b.tolist()), {"": b})

    limits = {}
    for dtype in ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]:
        info = np.iinfo(dtype)
        limits[dtype] = np.array([info.min, info.max, 0, 1, info.max // 3], dtype=dtype)
    write("archive_ints", json.dumps({k: tensor_object(v) for k, v in limits.items()}), limits)

    # A weights file as a user writes it from a state_dict: object and bare members mixed.
    e = 4
    weights = {
        "in_proj_weight": rng.standard_normal((3 * e, e)).astype(np.float32),
        "in_proj_bias": rng.standard_normal(3 * e).astype(np.float32),
        "out_proj.weight": rng.standard_normal((e, e)).astype(np.float32),
        "out_proj.bias": np.zeros(e, dtype=np.float32),
    }
    doc = {
        "in_proj_weight": tensor_object(weights["in_proj_weight"]),
        "in_proj_bias": weights["in_proj_bias"].tolist(),
        "out_proj.weight": weights["out_proj.weight"].tolist(),
        "out_proj.bias": tensor_object(weights["out_proj.bias"]),
    }
    write("weights", json.dumps(doc, indent=1), weights)

    scalar = np.array(2.5, dtype=np.float32)
    write("scalar", json.dumps(tensor_object(scalar)), {"": scalar})

    empty = np.zeros((2, 0, 3), dtype=np.float32)
    write("empty", json.dumps(tensor_object(empty)), {"": empty})


if __name__ == "__main__":
    main()
